"""e2elib: what the end-to-end tests share: dynmemd with the QEMU backend
running the bundled guest image (with dynmem-guest and dynmem-load) under
TCG, driven by the real dynmem command, through tests/daemon/harness.py.

The guest image is built with guest/image/build.sh into DYNMEM_E2E_IMAGE_DIR
(the folder test-qemu-agent builds the same image into, so one build serves
both; build.sh locks it and rebuilds only when its inputs change) from the
static programs in DYNMEM_E2E_PROGRAMS (':'-separated). Without an image the
test prints "1..0 # SKIP" with the reason.

Every wait polls `dynmem ... --json` (or a console log) for a condition with
a generous timeout; nothing sleeps and then asserts.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
from harness import GIB, MIB, Daemon, Failure, Tap, check, wait_for  # noqa: E402,F401

BOOT_TIMEOUT = 240  # start to a guest whose agent reports: TCG on 2 shared, busy cores
OOM_MARKERS = ("Out of memory", "invoked oom-killer", "oom-kill:")


def skip_all(why):
    print(f"1..0 # SKIP {why}", flush=True)
    sys.exit(0)


def guest_image():
    """The image folder, built if needed; skips the whole test when it cannot be."""
    out = os.environ.get("DYNMEM_E2E_IMAGE_DIR")
    src = os.environ.get("DYNMEM_SOURCE_ROOT")
    programs = [p for p in os.environ.get("DYNMEM_E2E_PROGRAMS", "").split(":") if p]
    if not out or not src or len(programs) != 2:
        skip_all("DYNMEM_E2E_IMAGE_DIR, DYNMEM_SOURCE_ROOT or DYNMEM_E2E_PROGRAMS unset "
                 "(run through meson test)")
    if os.geteuid() != 0:
        skip_all("needs root (the guest image and QEMU's sockets)")
    if subprocess.run(["sh", "-c", "command -v qemu-system-x86_64"],
                      capture_output=True).returncode != 0:
        skip_all("qemu-system-x86_64 is not installed")
    os.makedirs(out, exist_ok=True)
    with open(out + ".log", "w") as log:
        r = subprocess.run([os.path.join(src, "guest", "image", "build.sh"), out] + programs,
                           stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        skip_all(f"the guest image could not be built (see {out}.log)")
    return out


class QemuDaemon(Daemon):
    """dynmemd -v with backend qemu, booting the test image; guests are stopped at the end."""

    def __init__(self, bins, config, image):
        os.environ["DYNMEM_GUEST_IMAGE_DIR"] = image
        super().__init__(bins, "[host]\nbackend = qemu\n" + config, extra_args=["-v"])
        self.run_dir = os.path.dirname(self.socket)

    # ---- the guests ----

    def console(self, name):
        try:
            with open(os.path.join(self.state_dir, name + ".console.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def qemu_pid(self, name):
        try:
            with open(os.path.join(self.run_dir, name + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
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
        """Running, with a known demand and the guest's own MemTotal (its agent reports)."""
        def booted():
            v = self.vm(name)
            if v["state"] not in ("running", "starting"):
                raise Failure(f"{name} is {v['state']}: {v.get('refusal')}\n{self.log()[-3000:]}")
            return v if v["demand_bytes"] is not None and v["guest_visible_bytes"] else None
        return wait_for(booted, f"{name} to boot and report", timeout=timeout, interval=0.5)

    def status(self):
        return self.json("status")

    def stop_guests(self):
        """Stop every VM at once (--force) and kill what is still left of our QEMUs."""
        try:
            for name, v in self.vms().items():
                if v["state"] in ("running", "stopping", "starting", "crashed"):
                    self.cli("stop", "--force", name)
        except Exception:  # the daemon may be gone: the pid files still say what runs
            pass
        self.kill_leftovers()

    def kill_leftovers(self):
        if not os.path.isdir(self.run_dir):
            return
        for f in os.listdir(self.run_dir):
            if not f.endswith(".pid"):
                continue
            pid = self.qemu_pid(f[:-4])
            if pid and self.run_dir in cmdline(pid):
                os.kill(pid, signal.SIGKILL)

    def kill9(self):
        """kill -9 dynmemd and reap it."""
        self.proc.kill()
        self.proc.wait()
        self.logf.close()


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
        now = time.monotonic()
        self.series.append((now, {v["name"]: v["assigned_bytes"] for v in vms}))
        for v in vms:
            if v["state"] != "running":
                continue
            a = v["assigned_bytes"]
            self.min_assigned[v["name"]] = min(self.min_assigned.get(v["name"], a), a)
            if a < v["minimum_bytes"]:
                self.violations.append(f"{v['name']}: assigned {a} < minimum {v['minimum_bytes']}")
            if a > v["maximum_bytes"]:
                self.violations.append(f"{v['name']}: assigned {a} > maximum {v['maximum_bytes']}")


def comment(text):
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


def mib(b):
    return f"{b / MIB:.0f} MiB"


def run(tap, setup, teardown):
    """main(): bins from argv, set-up (may skip), the cases, teardown always."""
    if len(sys.argv) != 3:
        print("usage: test.py DYNMEMD DYNMEM", file=sys.stderr)
        sys.exit(2)
    bins = (os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    ctx = setup(bins)
    try:
        rc = tap.run(ctx)
    finally:
        teardown(ctx)
    sys.exit(rc)


__all__ = ["BOOT_TIMEOUT", "GIB", "MIB", "Failure", "QemuDaemon", "Sampler", "Tap", "alive",
           "check", "comment", "guest_image", "json", "mib", "run", "skip_all", "wait_for"]
