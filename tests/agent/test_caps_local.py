#!/usr/bin/env python3
"""dynmem-guest's capabilities once it is set up, on this host against a fake
/proc and /sys (--root, as tests/agent/test_absorber_local.py lays them out),
read from /proc/PID/status. Started as root it holds every capability of the
bounding set; once set up it keeps CAP_SYS_ADMIN only while it has a burst
absorber (each drain's swapoff and swapon), CAP_IPC_LOCK only when locking its
pages needed it (RLIMIT_MEMLOCK below its mappings), nothing else in any set,
and no_new_privs is on. An absorber that goes off for good while the agent
runs (a drain's swapon failed) takes CAP_SYS_ADMIN with it; a drain whose
swapoff failed, to be tried again, does not. Under a test root a drain runs
neither system call: DYNMEM_GUEST_TEST_DRAIN says how it ends. Needs root (a
process started otherwise holds no capability to drop): skipped otherwise.
That it still does its work with what it keeps (reports, stall reports from
its PSI trigger, reconnecting) under a real kernel is checked in
tests/agent/test_guest_qemu.py. Prints TAP.

usage: test_caps_local.py DYNMEM_GUEST
"""
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Tap, skip_all  # noqa: E402

from test_absorber_local import PAGE, make_root, read, write  # noqa: E402

CAP_IPC_LOCK = 1 << 14
CAP_SYS_ADMIN = 1 << 21
KIB = 1024
MIB = 1024 * KIB
STARTED = "memory hotplug"  # the agent's start line, logged once it is set up
DRAIN_FAILED = {  # what the agent logs when a drain failed so (DYNMEM_GUEST_TEST_DRAIN)
    "swapoff-fails": "absorber: a drain failed (swapoff)",
    "swapon-fails": "absorber: swapon failed after a drain; absorber off",
}


def status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {l.split(":")[0]: l.split(":", 1)[1].strip() for l in f}


def bounding():
    """What a program this test starts as root holds before it drops anything."""
    return int(status(os.getpid())["CapBnd"], 16)


def names(bits):
    known = {CAP_IPC_LOCK: "CAP_IPC_LOCK", CAP_SYS_ADMIN: "CAP_SYS_ADMIN"}
    out = [known.get(1 << i, f"cap {i}") for i in range(64) if bits >> i & 1]
    return ", ".join(out) or "none"


def wait_log(log, needle, timeout=10):
    end = time.monotonic() + timeout
    while needle not in (read(log) or "") and time.monotonic() < end:
        time.sleep(0.05)
    return read(log) or ""


def start_agent(exe, root, *args, memlock=None, env=None):
    """The agent started and set up: (its process, its log's path). memlock: its
    RLIMIT_MEMLOCK; env: what its environment adds to this test's."""
    log = os.path.join(root, "agent.log")

    def limit():
        if memlock is not None:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))

    proc = subprocess.Popen([exe, "--root", root, *args],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                            preexec_fn=limit, env={**os.environ, **(env or {})})
    wait_log(log, STARTED)
    return proc, log


def run_agent(exe, root, *args, memlock=None):
    """The agent started and set up: (its /proc status, its log). memlock: its RLIMIT_MEMLOCK."""
    proc, log = start_agent(exe, root, *args, memlock=memlock)
    try:
        st = status(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    return st, read(log) or ""


def run_failing_drain(exe, root, how, memlock):
    """An agent with an absorber whose drains fail as how says (DYNMEM_GUEST_TEST_DRAIN):
    (its /proc status before the absorber holds anything, its status once the first drain has
    failed, its log)."""
    make_root(root)
    proc, log = start_agent(exe, root, memlock=memlock, env={"DYNMEM_GUEST_TEST_DRAIN": how})
    try:
        before = status(proc.pid)
        # 64 MiB stored in 20 MiB of RAM, with 512 MiB available: room to drain at once
        write(f"{root}/sys/block/zram1/mm_stat",
              f"{64 * MIB + PAGE} {18 * MIB} {20 * MIB} 0 0 0 0 0 0\n")
        wait_log(log, DRAIN_FAILED[how])
        if how == "swapon-fails":
            wait_log(log, "capabilities: CAP_SYS_ADMIN dropped")
        after = status(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    return before, after, read(log) or ""


def check_sets(t, st, log, want, what):
    got = {k: int(st[k], 16) for k in ("CapPrm", "CapEff", "CapInh", "CapAmb")}
    t.ok(STARTED in log and got == {"CapPrm": want, "CapEff": want, "CapInh": 0, "CapAmb": 0},
         f"{what}: keeps {names(want)} (permitted and effective), nothing inheritable or "
         "ambient", f"{ {k: names(v) for k, v in got.items()} }\n{log}")
    t.ok(st.get("NoNewPrivs") == "1", f"{what}: no_new_privs on", st.get("NoNewPrivs"))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        skip_all("needs root: an agent started as another user holds no capability to drop")
    exe = os.path.abspath(sys.argv[1])
    start = bounding()
    if not start & CAP_SYS_ADMIN:
        skip_all("this test runs without CAP_SYS_ADMIN in its bounding set, the one the "
                 "agent keeps for its absorber")
    t = Tap()
    tmp = tempfile.mkdtemp(prefix="dmg-caps-", dir="/tmp")
    try:
        # An absorber (under the test root: a zram device that is a plain file): its drains
        # need CAP_SYS_ADMIN, nothing else does. 8 MiB of RLIMIT_MEMLOCK hold the lock.
        root = os.path.join(tmp, "absorber")
        make_root(root)
        st, log = run_agent(exe, root, memlock=8 * MIB)
        t.ok("absorber: /dev/zram1" in log, "the agent has an absorber", log)
        check_sets(t, st, log, CAP_SYS_ADMIN, "with an absorber")
        t.ok("capabilities after start-up: CAP_SYS_ADMIN (the absorber's drains); "
             f"{bin(start).count('1') - 1} dropped" in log, "... and says so", log)

        root = os.path.join(tmp, "off")
        make_root(root)
        st, log = run_agent(exe, root, "--absorber=off", memlock=8 * MIB)
        check_sets(t, st, log, 0, "without an absorber")
        t.ok("capabilities after start-up: none;" in log, "... and says so", log)

        # RLIMIT_MEMLOCK below the agent's mappings (64 KiB, the default before Linux 5.16):
        # the lock needs CAP_IPC_LOCK, which is kept, else a locked stack that grows faults.
        if not start & CAP_IPC_LOCK:
            t.ok(True, "a lock beyond RLIMIT_MEMLOCK keeps CAP_IPC_LOCK # SKIP no CAP_IPC_LOCK "
                 "in this test's bounding set")
        else:
            root = os.path.join(tmp, "memlock")
            make_root(root)
            st, log = run_agent(exe, root, "--absorber=off", memlock=64 * KIB)
            locked = int(st.get("VmLck", "0 kB").split()[0])
            t.ok(locked * KIB > 64 * KIB and "memory not locked" not in log,
                 "RLIMIT_MEMLOCK of 64 KiB: the pages are locked all the same (CAP_IPC_LOCK)",
                 f"VmLck {locked} kB\n{log}")
            check_sets(t, st, log, CAP_IPC_LOCK, "a lock beyond RLIMIT_MEMLOCK")

        # A drain whose swapoff failed is tried again later: CAP_SYS_ADMIN stays for it.
        before, after, log = run_failing_drain(exe, os.path.join(tmp, "swapoff-fails"),
                                               "swapoff-fails", 8 * MIB)
        check_sets(t, before, log, CAP_SYS_ADMIN, "before a drain whose swapoff fails")
        t.ok(DRAIN_FAILED["swapoff-fails"] in log, "the drain's swapoff failed", log)
        check_sets(t, after, log, CAP_SYS_ADMIN, "after it (drained again later)")
        t.ok("CAP_SYS_ADMIN dropped" not in log, "... and says nothing of it", log)

        # A drain whose swapon failed leaves the absorber off for good: CAP_SYS_ADMIN goes, and
        # only it (with 64 KiB of RLIMIT_MEMLOCK, CAP_IPC_LOCK stays, where the test holds it).
        lock = start & CAP_IPC_LOCK
        before, after, log = run_failing_drain(exe, os.path.join(tmp, "swapon-fails"),
                                               "swapon-fails", 64 * KIB if lock else 8 * MIB)
        check_sets(t, before, log, CAP_SYS_ADMIN | lock, "before a drain whose swapon fails")
        t.ok(DRAIN_FAILED["swapon-fails"] in log, "the drain's swapon failed: absorber off", log)
        check_sets(t, after, log, lock, "once the absorber is off for good")
        said = ("capabilities: CAP_SYS_ADMIN dropped, the absorber being off for good; left: "
                + ("CAP_IPC_LOCK (the memory lock)" if lock else "none"))
        t.ok(said in log, "... and says so", log)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
