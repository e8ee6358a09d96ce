"""harness: start dynmemd on a temporary socket and state directory and drive it
with the real dynmem command, printing TAP (one line per case).

Every wait polls for a condition with a generous timeout; nothing sleeps and then
asserts on timing.
"""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MIB = 1024 * 1024
GIB = 1024 * MIB
WAIT = 60.0  # seconds: generous, machines are shared and sanitizers slow
# A command dynmemd is started under, e.g. "valgrind --error-exitcode=99 ..." (the
# valgrind suite sets it); empty: dynmemd runs directly.
WRAPPER = shlex.split(os.environ.get("DYNMEM_DAEMON_WRAPPER", ""))


class Failure(Exception):
    pass


def check(cond, what, *details):
    if not cond:
        raise Failure(what + "".join("\n" + str(d) for d in details))


def wait_for(pred, what, timeout=WAIT, interval=0.05):
    """Poll pred() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Failure as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise Failure(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self):
        return f"rc={self.rc} out={self.out!r} err={self.err!r}"


class Daemon:
    """One dynmemd in a temporary directory. config is the text after [host]'s
    socket/state_dir lines; @DATA@ is replaced by the test data directory."""

    def __init__(self, bins, config, group=None, state_dir=None, extra_args=()):
        self.dynmemd, self.dynmem = bins
        self.dir = tempfile.mkdtemp(prefix="dynmemd-test-")
        os.chmod(self.dir, 0o755)  # the CLI may run as nobody
        self.socket = os.path.join(self.dir, "run", "dynmemd.sock")
        self.state_dir = state_dir or os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "dynmem.conf")
        self.log_path = os.path.join(self.dir, "dynmemd.log")
        self.group = group
        self.extra_args = list(extra_args)
        self.proc = None
        self.write_config(config)

    def write_config(self, config):
        text = config.replace("@DATA@", DATA)
        head = f"[host]\nsocket = {self.socket}\nstate_dir = {self.state_dir}\n"
        if text.lstrip().startswith("[host]"):
            text = text.lstrip()[len("[host]"):]
        else:
            head += "\n"
        with open(self.conf, "w") as f:
            f.write(head + text)

    def start(self, expect_ready=True):
        args = WRAPPER + [self.dynmemd, "-d", "-f", self.conf] + self.extra_args
        if self.group:
            args += ["-g", self.group]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        if expect_ready:
            wait_for(self._ready, "dynmemd to listen on " + self.socket)
        return self

    def _ready(self):
        """Serving requests (the socket appears before set-up ends)."""
        if self.proc.poll() is not None:
            raise Failure(f"dynmemd exited with {self.proc.returncode}:\n{self.log()}")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(WAIT)
        try:
            s.connect(self.socket)
            s.sendall(request("status"))
            reply = read_line(s)
            return bool(reply and reply.get("ok"))
        except OSError:
            return False
        finally:
            s.close()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=WAIT):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.logf.close()

    def cleanup(self):
        if self.proc and self.proc.poll() is None and WRAPPER:
            try:  # a clean exit, so that the wrapper checks for leaks too
                self.stop()
            except subprocess.TimeoutExpired:
                pass
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        report = wrapper_report(self.log())
        shutil.rmtree(self.dir, ignore_errors=True)
        check(not report, "the wrapper reported errors in dynmemd", report)

    # ---- the CLI ----

    def cli(self, *args, user=None, env=None, socket_path=None):
        cmd = [self.dynmem, "--socket", socket_path or self.socket] + list(args)
        if user:
            cmd = ["setpriv", f"--reuid={user}", f"--regid={user_group(user)}",
                   "--clear-groups"] + cmd
        e = dict(os.environ)
        if user:  # LeakSanitizer cannot ptrace as another user; leaks are checked as root
            e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        e.update(env or {})
        p = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=WAIT * 2)
        return Result(p)

    def ok(self, *args, **kw):
        r = self.cli(*args, **kw)
        check(r.rc == 0, f"dynmem {' '.join(args)} failed", r)
        return r

    def fails(self, *args, rc=1, contains=None, **kw):
        r = self.cli(*args, **kw)
        check(r.rc == rc, f"dynmem {' '.join(args)}: expected exit {rc}", r)
        check(r.err.startswith("dynmem: "), "error line must start with 'dynmem: '", r)
        check(r.err.count("\n") == 1, "expected exactly one line on stderr", r)
        if contains:
            check(contains in r.err, f"expected {contains!r} in stderr", r)
        return r

    def json(self, *args, **kw):
        r = self.ok(*(list(args) + ["--json"]), **kw)
        return json.loads(r.out)

    def vm(self, name):
        return self.json("show", name)

    def vms(self):
        return {v["name"]: v for v in self.json("list")}

    def wait_state(self, name, state):
        return wait_for(lambda: self.vm(name)["state"] == state, f"{name} to be {state}")

    # ---- raw protocol ----

    def raw(self, data, timeout=WAIT):
        """Send raw bytes on a new connection, return every line received until EOF."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.socket)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return [json.loads(line) for line in buf.decode().splitlines() if line]
        finally:
            s.close()

    def connect(self):
        """A new connection; retried while the listen backlog is full."""
        deadline = time.monotonic() + WAIT
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(WAIT)
            try:
                s.connect(self.socket)
                return s
            except BlockingIOError:
                s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


def wrapper_report(log):
    """What valgrind (run quiet: errors only) wrote in dynmemd's log, or ""."""
    if not WRAPPER:
        return ""
    return "\n".join(line for line in log.splitlines() if re.match(r"==\d+== ", line))


def user_group(user):
    import grp
    import pwd
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def request(command, **fields):
    return (json.dumps(dict(version=1, command=command, **fields)) + "\n").encode()


def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return json.loads(buf) if buf else None


class Tap:
    """Run test functions, printing a TAP line for each."""

    def __init__(self):
        self.cases = []

    def case(self, fn):
        self.cases.append(fn)
        return fn

    def run(self, bins):
        print(f"1..{len(self.cases)}", flush=True)
        failed = 0
        for i, fn in enumerate(self.cases, 1):
            name = fn.__name__.replace("_", " ")
            try:
                fn(bins)
                print(f"ok {i} - {name}", flush=True)
            except Exception as e:  # a failed case must not stop the others
                failed += 1
                print(f"not ok {i} - {name}", flush=True)
                detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
                for line in detail.splitlines():
                    print(f"# {line}", flush=True)
        return 1 if failed else 0


def main(tap):
    if len(sys.argv) != 3:
        print("usage: test.py DYNMEMD DYNMEM", file=sys.stderr)
        sys.exit(2)
    sys.exit(tap.run((os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))))


class running:
    """with running(bins, config) as d: ... — a started daemon, cleaned up after."""

    def __init__(self, bins, config, **kw):
        self.d = Daemon(bins, config, **kw)

    def __enter__(self):
        try:
            return self.d.start()
        except BaseException:
            self.d.cleanup()
            raise

    def __exit__(self, *exc):
        rc = self.d.stop()
        log = self.d.log()
        self.d.cleanup()
        if exc[0] is None:
            check(rc == 0, f"dynmemd exited with {rc} on SIGTERM", log)
            check("ERROR: AddressSanitizer" not in log and "runtime error:" not in log,
                  "sanitizer report in dynmemd's log", log)
        return False
