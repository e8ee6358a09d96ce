"""dynmemtest: the one harness of dynmem's Python test suites (daemon, e2e,
faults, hostile, agent, web, and bench/agent_demand.py). It starts dynmemd on a
temporary socket and state directory and drives it with the real dynmem
command, boots guests (through dynmemd's QEMU backend, or directly under QEMU
for the agent's own tests), runs dynmem-guest and agent-peer, prints TAP, and
cleans up whatever a case leaves behind. Each suite keeps only its cases:

    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from dynmemtest import Tap, check, main, running

    tap = Tap()

    @tap.case
    def something_holds(bins):
        with running(bins, CONFIG) as d:
            check(d.vm("web1")["state"] == "off", "off at first")

    if __name__ == "__main__":
        main(tap)

A configuration on the simulated backend is built of sim_host(), dynamic_vm() and
static_vm(), so that a suite names only its memory and its VMs.

A case that cannot run here raises Skip("why") (TAP "ok N - name # SKIP why");
a script that cannot run at all calls skip_all("why") ("1..0 # SKIP why"), so
that scripts/test-summary.py names the reason. Every wait polls a condition
with a generous timeout; nothing sleeps and then asserts on timing.
"""
import glob
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TESTS = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(TESTS, "daemon", "data")  # @DATA@ in configurations
FAULTS_DATA = os.path.join(TESTS, "faults", "data")  # @FAULTS@
MIB = 1024 * 1024
GIB = 1024 * MIB
WAIT = 60.0  # seconds: generous, machines are shared and sanitizers slow
BOOT_TIMEOUT = 240  # start to a guest whose agent reports: TCG on 2 shared, busy cores
OOM_MARKERS = ("Out of memory", "invoked oom-killer", "oom-kill:")
# A command dynmemd is started under, e.g. "valgrind --error-exitcode=99 ..." (the
# valgrind suite sets it); empty: dynmemd runs directly.
WRAPPER = shlex.split(os.environ.get("DYNMEM_DAEMON_WRAPPER", ""))
# How the shipped unit starts dynmemd (daemon/dynmemd.service.in): user dynmem, groups
# dynmem and kvm (SupplementaryGroups=), CAP_SETUID and CAP_SETGID its only
# capabilities, no_new_privs (Daemon.as_the_unit()).
UNIT = ["setpriv", "--reuid=dynmem", "--regid=dynmem", "--groups=dynmem,kvm",
        "--inh-caps=+setuid,+setgid", "--ambient-caps=+setuid,+setgid",
        "--bounding-set=-all,+setuid,+setgid", "--no-new-privs"]


# ---- checks, waits, TAP ----

class Failure(Exception):
    pass


class Skip(Exception):
    """Raised by a case that cannot run here (e.g. needs root): TAP's skip."""


def check(cond, what, *details):
    if not cond:
        raise Failure(what + "".join("\n" + str(d) for d in details))


def qemu_version(binary):
    """A QEMU binary's version, "X.Y.Z" from its --version line, or None."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"QEMU emulator version (\d+\.\d+\.\d+)", out)
    return m.group(1) if m else None


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


def comment(text):
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


def mib(b):
    return f"{b / MIB:.0f} MiB"


def skip_all(why):
    """The whole script cannot run here: say why, in TAP, and exit."""
    print(f"1..0 # SKIP {why}", flush=True)
    sys.exit(0)


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root")


class Tap:
    """TAP output, two ways. Cases: functions registered with @tap.case and run
    in order by run(ctx), one line each, the plan first. Checks: ok(cond, name)
    as they happen, done() prints the plan last."""

    def __init__(self):
        self.cases = []
        self.n = 0
        self.failed = 0

    def case(self, fn):
        self.cases.append(fn)
        return fn

    def prerequisite(self, fn):
        """A case the later ones cannot run without (the guests boot): when it fails,
        they are reported skipped with its name instead of each waiting out its own
        timeout for guests that are not there."""
        fn.prerequisite = True
        return self.case(fn)

    def selected(self):
        """The cases DYNMEM_TEST_CASES names (comma-separated; the second QEMU's set
        runs a chosen few, tests/with-qemu.py), in their order; all without it.
        run() reports the others as skipped, with DYNMEM_TEST_CASES_WHY."""
        names = [n for n in os.environ.get("DYNMEM_TEST_CASES", "").split(",") if n]
        unknown = set(names) - {fn.__name__ for fn in self.cases}
        if unknown:
            raise SystemExit(f"DYNMEM_TEST_CASES names no such case: {sorted(unknown)}")
        return [fn for fn in self.cases if not names or fn.__name__ in names]

    def run(self, ctx):
        cases = self.selected()
        why = os.environ.get("DYNMEM_TEST_CASES_WHY") or "not in DYNMEM_TEST_CASES"
        print(f"1..{len(self.cases)}", flush=True)
        blocked = None  # the prerequisite that failed
        for fn in self.cases:
            name = fn.__name__.replace("_", " ")
            if fn not in cases:
                self._line(True, f"{name} # SKIP {why}")
                continue
            if blocked:
                self._line(True, f"{name} # SKIP not run: '{blocked}' failed")
                continue
            failed_before = self.failed
            t0 = time.monotonic()
            try:
                fn(ctx)
                self._line(True, name)
            except Skip as e:
                self._line(True, f"{name} # SKIP {e}")
            except Exception as e:  # a failed case must not stop the others
                detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
                self._line(False, name, detail)
            comment(f"{time.monotonic() - t0:.1f} s")
            if getattr(fn, "prerequisite", False) and self.failed > failed_before:
                blocked = name
        return 1 if self.failed else 0

    def ok(self, cond, name, diag=None):
        self._line(bool(cond), name, diag)
        return cond

    def _line(self, good, name, diag=None):
        self.n += 1
        print(f"{'ok' if good else 'not ok'} {self.n} - {name}", flush=True)
        if not good:
            self.failed += 1
            comment(diag or "")
            # meson's console (--print-errorlogs) shows a failed test's stderr, not its TAP
            print(f"not ok {self.n} - {name}\n{diag or ''}", file=sys.stderr, flush=True)

    comment = staticmethod(comment)
    skip_all = staticmethod(skip_all)

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0

    def concurrently(self, *checks):
        """Run checks (functions of one argument with an ok() like this one's) each in a
        thread of its own, for checks that mostly wait on a program (a sample interval, a
        timeout); their results are then reported in the order given, as if run one after
        the other. A check that raises is reported as a failed one with its traceback."""
        results = [[] for _ in checks]

        class Recorder:
            def __init__(self, out):
                self.out = out

            def ok(self, cond, name, diag=None):
                self.out.append((bool(cond), name, diag))
                return cond

        def run(i, check):
            try:
                check(Recorder(results[i]))
            except Exception:  # reported in its place, not lost in the thread
                name = getattr(getattr(check, "func", check), "__name__", "a check")
                results[i].append((False, f"{name} ran to its end",
                                   traceback.format_exc()))

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(checks)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for out in results:
            for good, name, diag in out:
                self._line(good, name, diag)


def main(tap, setup=None, teardown=None):
    """usage: test.py DYNMEMD DYNMEM. Runs the cases with ctx = setup(bins) (which
    may skip the script), or the binaries themselves; teardown(ctx) always."""
    if len(sys.argv) != 3:
        print("usage: test.py DYNMEMD DYNMEM", file=sys.stderr)
        sys.exit(2)
    bins = (os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    ctx = setup(bins) if setup else bins
    try:
        rc = tap.run(ctx)
    finally:
        if teardown:
            teardown(ctx)
    sys.exit(rc)


# ---- configurations on the simulated backend ----

def sim_host(memory, *lines, policy=None):
    """The head of a configuration for the simulated backend: memory, a 100 ms cycle,
    further [host] lines (e.g. "http = 127.0.0.1:0"), [sim] speed 20 (a trace runs 20
    times as fast as written), then a [policy] section of policy's lines if given.
    The VMs' sections follow: sim_host("4G") + dynamic_vm("web1", "rise.csv")."""
    text = f"\nmemory = {memory}\ninterval = 100ms\n" + "".join(line + "\n" for line in lines)
    text += "\n[sim]\nspeed = 20\n"
    if policy:
        text += "\n[policy]\n" + policy + "\n"
    return text


def _vm_section(name, keys):
    lines = "".join(f"{key} = {value}\n" for key, value in keys if value is not None)
    return f'\n[vm "{name}"]\n' + lines


def _trace(trace):
    """A file name alone is one of tests/daemon/data (@DATA@)."""
    return trace if "/" in trace else "@DATA@/" + trace


def dynamic_vm(name, trace, startup="1G", minimum="512M", maximum="4G", weight=None,
               autostart=True):
    """A dynamic VM's section: by default 1G at startup within [512M, 4G], autostarted;
    trace is a file of tests/daemon/data or a path (@FAULTS@/wave.csv)."""
    return _vm_section(name, [("dynamic", "yes"), ("startup", startup), ("minimum", minimum),
                              ("maximum", maximum), ("weight", weight), ("trace", _trace(trace)),
                              ("autostart", "yes" if autostart else None)])


def static_vm(name, startup, trace, minimum=None, maximum=None, autostart=False):
    """A VM of fixed size (dynamic off, the default), not autostarted unless asked;
    trace as for dynamic_vm."""
    return _vm_section(name, [("startup", startup), ("minimum", minimum), ("maximum", maximum),
                              ("trace", _trace(trace)),
                              ("autostart", "yes" if autostart else None)])


# ---- dynmemd and the dynmem command ----

class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def __repr__(self):
        return f"rc={self.rc} out={self.out!r} err={self.err!r}"


class Daemon:
    """One dynmemd in a temporary directory. config is the text after [host]'s
    socket/state_dir lines; @DATA@ and @FAULTS@ become the test data directories,
    @DIR@ that temporary directory (where write_file puts files)."""

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
        self.prefix = []  # a command dynmemd runs under: UNIT starts it as its unit does
        self.proc = None
        self.write_config(config)

    def write_config(self, config):
        text = (config.replace("@DATA@", DATA).replace("@FAULTS@", FAULTS_DATA)
                .replace("@DIR@", self.dir))
        head = f"[host]\nsocket = {self.socket}\nstate_dir = {self.state_dir}\n"
        if text.lstrip().startswith("[host]"):
            text = text.lstrip()[len("[host]"):]
        else:
            head += "\n"
        with open(self.conf, "w") as f:
            f.write(head + text)

    def __enter__(self):
        """with Daemon(bins, config) as d: a dynmemd to start when the case says
        (d.start()), stopped with SIGTERM and cleaned up however the block ends. How it
        exits is not checked: `running` checks that."""
        return self

    def __exit__(self, *exc):
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            pass  # cleanup() kills it
        finally:
            self.cleanup()
        return False

    def conf_line(self, text):
        """The number of the configuration file's line that reads text, whole."""
        with open(self.conf) as f:
            return f.read().split("\n").index(text) + 1

    def check_config(self, *args):
        """dynmemd -n (check the configuration and exit) with args; the finished process."""
        return subprocess.run([self.dynmemd, "-n", "-f", self.conf] + list(args),
                              capture_output=True, text=True, timeout=WAIT)

    def write_state(self, name, text):
        """A file in the state directory before dynmemd starts, as an earlier dynmemd (or a
        damaged disk) left it; returns its path."""
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def write_file(self, name, text, executable=False):
        """A file (a policy script, a stand-in kernel or QEMU) in the temporary
        directory, @DIR@ in text replaced as in the configuration; returns its path."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text.replace("@DIR@", self.dir))
        if executable:
            os.chmod(path, 0o755)
        return path

    def as_the_unit(self):
        """Start dynmemd as the shipped unit would: user dynmem, groups dynmem and kvm,
        with CAP_SETUID and CAP_SETGID only, no_new_privs, in a folder that is dynmem's.
        Raises Skip where that cannot be done (not root, no user dynmem, no group kvm,
        under DYNMEM_DAEMON_WRAPPER)."""
        import grp
        import pwd
        if os.geteuid() != 0:
            raise Skip("needs root (setpriv gives dynmemd the unit's capabilities)")
        if WRAPPER:
            raise Skip(f"{os.path.basename(WRAPPER[0])} would run setpriv, not dynmemd")
        try:
            user = pwd.getpwnam("dynmem")
            grp.getgrnam("kvm")
        except KeyError:
            raise Skip("no user dynmem or group kvm (scripts/deps.sh creates them: "
                       "systemd-sysusers daemon/sysusers.conf)") from None
        self._give_dir(user)
        self.prefix = UNIT
        return user

    def as_user(self, name):
        """Start dynmemd as an ordinary user, as an operator trying it out starts it: that
        user and its own group alone, no capability, in a folder that is the user's.
        Returns the user's passwd entry. Raises Skip where that cannot be done (not root,
        under DYNMEM_DAEMON_WRAPPER)."""
        import pwd
        if os.geteuid() != 0:
            raise Skip("needs root (setpriv starts dynmemd as another user)")
        if WRAPPER:
            raise Skip(f"{os.path.basename(WRAPPER[0])} would run setpriv, not dynmemd")
        user = pwd.getpwnam(name)
        self._give_dir(user)
        self.prefix = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                       "--clear-groups"]
        return user

    def _give_dir(self, user):
        for top, dirs, files in os.walk(self.dir):
            for name in dirs + files + [""]:
                os.lchown(os.path.join(top, name), user.pw_uid, user.pw_gid)

    def start(self, expect_ready=True):
        args = WRAPPER + self.prefix + [self.dynmemd, "-d", "-f", self.conf] + self.extra_args
        env = dict(os.environ)
        if self.prefix:  # LeakSanitizer cannot follow a process that changed users
            env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        if self.group:
            args += ["-g", self.group]
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
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

    def log_count(self, text):
        return self.log().count(text)

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

    def kill9(self):
        """kill -9 dynmemd and reap it."""
        self.proc.kill()
        self.proc.wait()
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

    def status(self):
        return self.json("status")

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


class running:
    """with running(bins, config) as d: ... — a started daemon, cleaned up after;
    it must exit 0 on SIGTERM with no sanitizer report."""

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


class editing:
    """with editing(d, edit) as path: a control socket at path that hands each request to
    d's dynmemd and its reply to edit(request, reply), which changes the reply in place,
    before passing it on. What dynmem prints of states this host cannot make (a libvirt
    domain's problem, a relief move, a state file that cannot be written) is then tested
    on dynmemd's own answers: d.ok("show", "web1", socket_path=path)."""

    def __init__(self, d, edit):
        self.d, self.edit = d, edit
        self.path = os.path.join(d.dir, "edited.sock")
        self.stop = threading.Event()

    def __enter__(self):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(16)
        self.server.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self.path

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        conn.settimeout(WAIT)
        with conn, self.d.connect() as up, conn.makefile("rb") as lines:
            for line in lines:
                if not line.strip():
                    continue
                up.sendall(line)
                reply = read_line(up)
                self.edit(json.loads(line), reply)
                conn.sendall((json.dumps(reply) + "\n").encode())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.server.close()
        os.unlink(self.path)
        return False


def accounting(d, memory):
    """Σ assigned of the VMs holding memory ≤ memory, each running VM within its
    [minimum, maximum]; returns the VMs."""
    vms = d.vms()
    held = 0
    for v in vms.values():
        if v["state"] in ("running", "stopping"):
            held += v["assigned_bytes"]
        if v["state"] == "running":
            check(v["minimum_bytes"] <= v["assigned_bytes"] <= v["maximum_bytes"],
                  f"{v['name']} within [minimum, maximum]", v)
    check(held <= memory, f"Σ assigned {held // MIB} MiB within memory {memory // MIB} MiB", vms)
    return vms


def state_files(state_dir):
    """{name: parsed JSON} for every *.json file; fails on one that does not parse."""
    files = {}
    for name in sorted(os.listdir(state_dir)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(state_dir, name)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            files[name] = json.loads(raw)
        except ValueError as e:
            raise Failure(f"{path} does not parse ({e}): {raw[:200]!r}")
    return files


def leftovers(state_dir):
    """Files a half-done write would leave behind (temporaries)."""
    return [n for n in os.listdir(state_dir) if ".tmp" in n]


class Sampler:
    """Samples `dynmem status --json` and `dynmem list --json` in a thread and
    keeps what the invariants need: the largest sum of assigned memory, each
    running VM's smallest assigned memory, and every violation seen."""

    def __init__(self, d, interval=0.5):
        self.d = d
        self.interval = interval
        self.samples = 0
        self.max_assigned = 0
        self.min_assigned = {}
        self.violations = []
        self.series = []  # (time, {name: assigned})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as e:  # the daemon may be restarting: note it, go on
                self.last_error = e
            self._stop.wait(self.interval)

    def sample(self):
        h = self.d.json("status")
        vms = self.d.json("list")
        memory = h["memory_bytes"]
        total = sum(v["assigned_bytes"] for v in vms)
        self.samples += 1
        self.max_assigned = max(self.max_assigned, total, h["assigned_bytes"])
        if h["assigned_bytes"] > memory or total > memory:
            self.violations.append(f"assigned {h['assigned_bytes']} (VMs: {total}) > {memory}")
        self.series.append((time.monotonic(), {v["name"]: v["assigned_bytes"] for v in vms}))
        for v in vms:
            if v["state"] != "running":
                continue
            a = v["assigned_bytes"]
            self.min_assigned[v["name"]] = min(self.min_assigned.get(v["name"], a), a)
            if a < v["minimum_bytes"]:
                self.violations.append(f"{v['name']}: assigned {a} < minimum {v['minimum_bytes']}")
            if a > v["maximum_bytes"]:
                self.violations.append(f"{v['name']}: assigned {a} > maximum {v['maximum_bytes']}")


# ---- guest images and processes ----

def build_image(outdir, programs, source=None):
    """guest/image/build.sh OUTDIR PROGRAMS... (it locks the folder and rebuilds only
    when its inputs change): None, or why it cannot be built here."""
    source = source or os.environ.get("DYNMEM_SOURCE_ROOT") or os.path.dirname(TESTS)
    if os.geteuid() != 0:
        return "needs root (the guest image and QEMU's sockets)"
    for tool in ("qemu-system-x86_64", "cpio"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    cache = os.path.join(outdir, "cache")
    os.makedirs(cache, exist_ok=True)
    # Reuse a kernel package another image folder of this build already fetched.
    parent = os.path.dirname(os.path.abspath(outdir))
    if not glob.glob(os.path.join(cache, "*.deb")):
        for pattern in (os.path.join(parent, "..", "*", "*", "cache", "linux-image-*.deb"),
                        os.path.join(parent, "..", "..", "guest", "cache", "linux-image-*.deb")):
            for deb in glob.glob(pattern):
                try:
                    os.link(deb, os.path.join(cache, os.path.basename(deb)))
                except OSError:
                    pass
    with open(outdir + ".log", "w") as log:
        rc = subprocess.call([os.path.join(source, "guest", "image", "build.sh"), outdir,
                              *programs], stdout=log, stderr=subprocess.STDOUT)
    return f"the guest image could not be built (see {outdir}.log)" if rc else None


def image_from_env(dir_var, programs_var):
    """The image folder named by $dir_var, built from the ':'-separated programs in
    $programs_var; skips the whole script when it cannot be had."""
    out = os.environ.get(dir_var)
    programs = [p for p in os.environ.get(programs_var, "").split(":") if p]
    if not out or len(programs) != 2:
        skip_all(f"{dir_var} or {programs_var} unset (run through meson test)")
    why = build_image(out, programs)
    if why:
        skip_all(why)
    return out


def guest_image():
    """The bundled image with dynmem-guest and dynmem-load (e2e and hostile tests)."""
    return image_from_env("DYNMEM_E2E_IMAGE_DIR", "DYNMEM_E2E_PROGRAMS")


def wait_reporting(show, name, timeout=BOOT_TIMEOUT, where="", why=lambda v: ""):
    """VM `name` (show(name): as `dynmem show --json`) running, with a known demand and
    the guest's own MemTotal (its agent reports); returns it. While it is neither
    running nor starting, the timeout's message says "NAME is STATE" + where + why(the
    VM). where (" on HOST") also goes into what is waited for."""
    def booted():
        v = show(name)
        if v["state"] not in ("running", "starting"):
            raise Failure(f"{name} is {v['state']}{where}{why(v)}")
        return v if v["demand_bytes"] is not None and v["guest_visible_bytes"] else None
    return wait_for(booted, f"{name} to boot and report{where}", timeout=timeout, interval=0.5)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z")


def rss(pid):
    """VmRSS of a process, in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class QemuDaemon(Daemon):
    """dynmemd -v with backend qemu, booting an image; guests are stopped at the end."""

    def __init__(self, bins, config, image):
        os.environ["DYNMEM_GUEST_IMAGE_DIR"] = image
        super().__init__(bins, "[host]\nbackend = qemu\n" + config, extra_args=["-v"])
        self.run_dir = os.path.dirname(self.socket)

    def console(self, name):
        try:
            with open(os.path.join(self.state_dir, name + ".console.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def qemu_pid(self, name):
        """From the pid file dynmemd writes ("PID STARTTIME")."""
        try:
            with open(os.path.join(self.run_dir, name + ".pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def oom_lines(self, name):
        return [line for line in self.console(name).splitlines()
                if any(m in line for m in OOM_MARKERS)]

    def load(self, name):
        """(held, target) in bytes from the last dynmem-load line of the console, or None."""
        for line in reversed(self.console(name).splitlines()):
            if "dynmem-load: holding " in line and "(target " in line:
                try:
                    held = int(line.split("holding ")[1].split(" MiB")[0])
                    target = int(line.split("(target ")[1].split(" MiB")[0])
                    return held * MIB, target * MIB
                except (IndexError, ValueError):
                    continue
        return None

    def wait_booted(self, name, timeout=BOOT_TIMEOUT):
        """wait_reporting; on a timeout, the daemon's log and the guest's console say why."""
        try:
            return wait_reporting(self.vm, name, timeout, why=lambda v: f": {v.get('refusal')}")
        except Failure as e:
            raise Failure(f"{e}\n-- dynmemd's log, last lines:\n{self.log()[-3000:]}"
                          f"\n-- {name}'s console, last lines:\n{self.console(name)[-1500:]}") \
                from None

    def stop_guests(self):
        """Stop every VM at once (--force) and kill what is still left of our QEMUs."""
        try:
            for name, v in self.vms().items():
                if v["state"] in ("running", "stopping", "starting", "crashed"):
                    self.cli("stop", "--force", name)
        except Exception:  # the daemon may be gone: the pid files still say what runs
            pass
        if not os.path.isdir(self.run_dir):
            return
        for f in os.listdir(self.run_dir):
            pid = self.qemu_pid(f[:-4]) if f.endswith(".pid") else None
            if pid and self.dir in cmdline(pid):  # its console log is in our folder
                os.kill(pid, signal.SIGKILL)

    def finish(self):
        """Teardown: the guests, then dynmemd (its exit and sanitizer report commented)."""
        self.stop_guests()
        rc = self.stop()
        log = self.log()
        if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
            comment(f"dynmemd exited with {rc} on SIGTERM")
            comment(log[-4000:])
        self.cleanup()


# ---- the hostile guest (tests/hostile) ----

GUEST_VM = """
[vm "{name}"]
dynamic = yes
startup = 256M
minimum = 256M
maximum = {maximum}
buffer = 20
weight = {weight}
accel = tcg
shutdown_timeout = 1s
{boot}
autostart = yes
"""


def hostile_image():
    """The hostile guest's image (hostile-agent as /bin/dynmem-guest, and dynmem-load)."""
    return image_from_env("DYNMEM_HOSTILE_IMAGE_DIR", "DYNMEM_HOSTILE_PROGRAMS")


def honest_vm(name, weight, plan, maximum="1G"):
    """A guest of the bundled image whose dynmem-load follows plan."""
    return GUEST_VM.format(name=name, weight=weight, maximum=maximum,
                           boot=f"append = dynmem.load={plan}")


def hostile_vm(name, weight, image, schedule, maximum="1G"):
    """A guest of the hostile image whose agent misbehaves on schedule."""
    with open(os.path.join(image, "cmdline")) as f:
        cmdline_text = f.read().strip()
    boot = (f"kernel = {image}/vmlinuz\ninitrd = {image}/initrd.img\n"
            f"append = {cmdline_text} dynmem.hostile={schedule}")
    return GUEST_VM.format(name=name, weight=weight, maximum=maximum, boot=boot)


def lines_about(log, name):
    """The lines of dynmemd's log that name VM `name`."""
    return [line for line in log.splitlines() if f'"{name}"' in line or f"{name}:" in line]


def water_fill(memory, vms):
    """What the policy's allocation gives each VM when the floors fit and the
    needs do not: every VM its floor, the rest shared toward need in
    proportion to weight, what capped VMs cannot take shared among the rest.
    vms: {name: (floor, need, weight)}; returns {name: bytes}."""
    got = {n: f for n, (f, _, _) in vms.items()}
    left = memory - sum(got.values())
    open_ = {n for n, (f, need, w) in vms.items() if need > f and w > 0}
    while left > 0 and open_:
        total_w = sum(vms[n][2] for n in open_)
        capped = {n for n in open_ if left * vms[n][2] / total_w >= vms[n][1] - got[n]}
        if not capped:
            for n in open_:
                got[n] += left * vms[n][2] / total_w
            left = 0
            break
        for n in capped:
            left -= vms[n][1] - got[n]
            got[n] = vms[n][1]
        open_ -= capped
    return got


def console_summaries(console, mode):
    """(lines, bytes, opens, seconds) of each 'hostile-agent: MODE: ...' summary line."""
    out = []
    tag = f"hostile-agent: {mode}: "
    for line in console.splitlines():
        if tag not in line:
            continue
        words = line.split(tag, 1)[1].replace(",", "").split()
        try:
            out.append((int(words[0]), int(words[2]), int(words[4]), float(words[7])))
        except (IndexError, ValueError):
            continue
    return out


# ---- the guest agent: agent-peer, a fake /proc, a guest under QEMU ----

def parse_fields(text):
    """'a=1 b=x c=0.5' -> {'a': 1, 'b': 'x', 'c': 0.5}; words without '=' are skipped."""
    out = {}
    for word in text.split():
        if "=" not in word:
            continue
        k, v = word.split("=", 1)
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


class Peer:
    """agent-peer SOCKET [options] (the host side, lib/agent.c): every output line
    goes to a queue and to self.lines."""

    def __init__(self, exe, sock, *args, timeout=60):
        self.proc = subprocess.Popen(
            [exe, "--timeout", str(int(timeout)), *args, sock],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.q = queue.Queue()
        self.lines = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            self.q.put(line)
        self.q.put(None)

    def wait_for(self, pred, timeout):
        """The first new line for which pred(line) is true, or None at timeout or EOF."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                self.q.put(None)
                return None
            if pred(line):
                return line

    def report(self, timeout, pred=lambda r: True):
        """The next report (as a dict) satisfying pred, or None."""
        line = self.wait_for(
            lambda l: l.startswith("report ") and pred(parse_fields(l)), timeout)
        return parse_fields(line) if line else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=5)
        return self.proc.returncode

    def text(self):
        return "\n".join(self.lines)


MEMINFO = """MemTotal:        1048576 kB
MemFree:          262144 kB
MemAvailable:     524288 kB
Buffers:            1024 kB
Cached:           131072 kB
SwapCached:            0 kB
Active(file):      65536 kB
SwapTotal:        102400 kB
SwapFree:          92160 kB
Committed_AS:    2097152 kB
"""
VMSTAT = """pgmajfault 10
workingset_refault_anon 1
workingset_refault_file 2
oom_kill 3
balloon_inflate 25600
balloon_deflate 0
"""
PSI_IDLE = ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


def write_in_place(path, text):
    """Rewrite a file the agent keeps open (it preads the same inode)."""
    with open(path, "r+") as f:
        f.write(text)
        f.truncate()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def make_root(root):
    """A fake /proc and /sys for dynmem-guest --root: 1 GiB, a deflate-on-oom
    balloon and a virtio-mem device, two offline memory blocks, idle PSI."""
    write(f"{root}/proc/meminfo", MEMINFO)
    write(f"{root}/proc/vmstat", VMSTAT)
    write(f"{root}/proc/pressure/memory", PSI_IDLE)
    os.symlink("/proc/self", f"{root}/proc/self")
    write(f"{root}/sys/bus/virtio/devices/virtio0/device", "0x0005\n")
    write(f"{root}/sys/bus/virtio/devices/virtio0/features", "0010" + "0" * 60 + "\n")
    os.makedirs(f"{root}/sys/bus/virtio/devices/virtio0/driver")
    write(f"{root}/sys/bus/virtio/devices/virtio1/device", "0x0018\n")
    os.makedirs(f"{root}/sys/bus/virtio/devices/virtio1/driver")
    write(f"{root}/sys/devices/system/memory/auto_online_blocks", "offline\n")
    write(f"{root}/sys/devices/system/memory/memory0/state", "online\n")
    write(f"{root}/sys/devices/system/memory/memory1/state", "offline\n")
    write(f"{root}/sys/devices/system/memory/memory2/state", "offline\n")
    write(f"{root}/sys/class/virtio-ports/vport0p1/name", "org.dynmem.agent.0\n")
    os.makedirs(f"{root}/dev")


class Agent:
    """dynmem-guest --root ROOT [args], its stderr in a log of logdir."""

    def __init__(self, exe, root, logdir, *args):
        self.log = os.path.join(logdir, f"agent-{time.monotonic_ns()}.log")
        self.proc = subprocess.Popen([exe, "--root", root, *args], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)


class GuestVM:
    """One QEMU TCG guest booted from the bundled image, per guest/image/README.md,
    without dynmemd: a QMP socket for the balloon and the agent's socket."""

    def __init__(self, image, rundir, mem_mib=256, vmem_mib=512, append=""):
        self.rundir = rundir
        self.console = os.path.join(rundir, "console.log")
        self.agent_sock = os.path.join(rundir, "agent.sock")
        self.qmp_sock = os.path.join(rundir, "qmp.sock")
        with open(os.path.join(image, "cmdline")) as f:
            cmdline_text = f.read().strip()
        argv = [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35",
            "-m", f"{mem_mib}M,maxmem={mem_mib + vmem_mib}M",
            "-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
            "-kernel", os.path.join(image, "vmlinuz"),
            "-initrd", os.path.join(image, "initrd.img"),
            "-append", f"{cmdline_text} {append}".strip(),
            "-serial", f"file:{self.console}",
            "-qmp", f"unix:{self.qmp_sock},server=on,wait=off",
            "-object", f"memory-backend-ram,id=vmem0,size={vmem_mib}M",
            "-device", "virtio-mem-pci,id=vm0,memdev=vmem0,block-size=2M,requested-size=0",
            "-device", "virtio-balloon-pci,id=balloon0,deflate-on-oom=on,free-page-reporting=on",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=agent0,path={self.agent_sock},server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=agent0,name=org.dynmem.agent.0",
        ]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(rundir, "qemu.err"), "w"))

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_console(self, needle, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.console_text():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def wait_socket(self, path, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not os.path.exists(path):
            time.sleep(0.1)
        return os.path.exists(path)

    def qmp(self, *commands):
        """Run QMP commands ({'execute': ...} dicts) in one session; their replies."""
        if not self.wait_socket(self.qmp_sock, 20):
            raise RuntimeError("no QMP socket")
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(self.qmp_sock)
        f = s.makefile("rw")
        f.readline()  # greeting
        replies = []
        for cmd in [{"execute": "qmp_capabilities"}, *commands]:
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "return" in msg or "error" in msg:
                    replies.append(msg)
                    break
        s.close()
        return replies[1:]

    def balloon(self, target_bytes):
        return self.qmp({"execute": "balloon", "arguments": {"value": int(target_bytes)}})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
