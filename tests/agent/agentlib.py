"""agentlib: what the guest agent tests and bench/agent_demand.py share.

- Tap: TAP output (one line per check, the plan at the end).
- Peer: runs agent-peer (the host side, lib/agent.c) and reads its lines in a
  thread; wait_for() waits for a line matching a predicate, with a timeout.
- parse_fields(): "key=value ..." into a dict (numbers as int/float).
- GuestVM: builds the bundled guest image with dynmem-guest and dynmem-load
  (guest/image/build.sh) and boots it under QEMU TCG as guest/image/README.md
  says, with a QMP socket for the balloon and the agent's socket.
"""
import glob
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} - {name}", flush=True)
        if not cond:
            self.failed += 1
            for line in str(diag or "").splitlines():
                print(f"# {line}", flush=True)
        return cond

    def comment(self, text):
        for line in str(text).splitlines():
            print(f"# {line}", flush=True)

    def skip_all(self, why):
        print(f"1..0 # SKIP {why}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        return 1 if self.failed else 0


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
    """agent-peer SOCKET [options]: every output line goes to a queue and to self.lines."""

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


def build_image(source, outdir, programs, log_path):
    """guest/image/build.sh OUTDIR PROGRAMS...; None or the reason it failed."""
    if os.geteuid() != 0:
        return "building the guest image needs root"
    for tool in ("qemu-system-x86_64", "cpio"):
        if not shutil.which(tool):
            return f"{tool} is missing"
    os.makedirs(os.path.join(outdir, "cache"), exist_ok=True)
    # Reuse a kernel package another image folder of this build already fetched.
    cache = os.path.join(outdir, "cache")
    parent = os.path.dirname(os.path.abspath(outdir))
    if not glob.glob(os.path.join(cache, "*.deb")):
        for pattern in (os.path.join(parent, "..", "*", "*", "cache", "linux-image-*.deb"),
                        os.path.join(parent, "..", "..", "guest", "cache", "linux-image-*.deb")):
            for deb in glob.glob(pattern):
                try:
                    os.link(deb, os.path.join(cache, os.path.basename(deb)))
                except OSError:
                    pass
    with open(log_path, "w") as log:
        rc = subprocess.call([os.path.join(source, "guest/image/build.sh"), outdir, *programs],
                             stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        return f"guest/image/build.sh failed (see {log_path})"
    return None


class GuestVM:
    """One QEMU TCG guest booted from the bundled image, per guest/image/README.md."""

    def __init__(self, image, rundir, mem_mib=256, vmem_mib=512, append=""):
        self.rundir = rundir
        self.console = os.path.join(rundir, "console.log")
        self.agent_sock = os.path.join(rundir, "agent.sock")
        self.qmp_sock = os.path.join(rundir, "qmp.sock")
        with open(os.path.join(image, "cmdline")) as f:
            cmdline = f.read().strip()
        argv = [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35",
            "-m", f"{mem_mib}M,maxmem={mem_mib + vmem_mib}M",
            "-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
            "-kernel", os.path.join(image, "vmlinuz"),
            "-initrd", os.path.join(image, "initrd.img"),
            "-append", f"{cmdline} {append}".strip(),
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
