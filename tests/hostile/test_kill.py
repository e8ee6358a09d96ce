#!/usr/bin/env python3
"""kill -9 in the middle of a resize, with real guests under dynmemd's QEMU
backend (TCG). Two guests whose loads climb, one after the other, so that the
daemon is plugging virtio-mem into them:

- dynmemd is killed with -9 while it plugs memory into `first`, and started
  again: both guests keep running (the same QEMU pids), are managed again
  (reattached, their assigned memory read back from QEMU and consistent with
  what the guests see, and `first`'s rising load followed), no state file is
  corrupt and a setting changed before the kill is intact;
- the QEMU of `second` is killed with -9 while memory is being plugged into
  it: dynmemd carries on, the VM is `crashed`, its memory is available to the
  host again, `first` carries on (its cycle runs, it keeps its memory and its
  reports); then `dynmem start second` boots it again.

Prints TAP.

usage: test_kill.py DYNMEMD DYNMEM
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (MIB, QemuDaemon, Sampler, Tap, alive, check, comment, guest_image, main,
                        mib, state_files, wait_for)  # noqa: E402


tap = Tap()

MEMORY = 2048 * MIB
STARTUP = 256 * MIB
# Each load climbs at ~20 MiB/s (TCG guests fault memory in slowly), `second` once
# `first` is done.
PLANS = {
    "first": "hold:5s,ramp:448M:22s,hold:3600s",
    "second": "hold:50s,ramp:448M:22s,hold:3600s",
}

VM = """
[vm "{name}"]
dynamic = yes
startup = 256M
minimum = 256M
maximum = 1G
buffer = 20
weight = 5000
accel = tcg
shutdown_timeout = 1s
append = dynmem.load={plan}
autostart = yes
"""

CONFIG = f"""memory = {MEMORY // MIB}M
interval = 1s
""" + "".join(VM.format(name=n, plan=p) for n, p in PLANS.items())


def setup(bins):
    d = QemuDaemon(bins, CONFIG, guest_image())
    d.start()
    return {"d": d, "t0": time.monotonic(), "sampler": Sampler(d).__enter__()}


def teardown(ctx):
    ctx["sampler"].__exit__(None, None, None)
    ctx["d"].finish()


def plugging(d, name):
    """Wait until memory is being added to `name`: a grow was asked (its target
    is above what it holds) and QEMU has begun it (its assigned memory grew
    since the last look) or has not finished it a look later (a plug that
    lands whole, as with dynamic-memslots, is seen only so)."""
    last = [None]

    def moving():
        v = d.vm(name)
        prev, last[0] = last[0], v
        asked = lambda x: x["assigned_bytes"] < (x.get("target_bytes") or 0)  # noqa: E731
        if prev is None or not asked(v):
            return None
        return v if v["assigned_bytes"] > prev["assigned_bytes"] or asked(prev) else None
    return wait_for(moving, f"memory to be plugged into {name}", timeout=180, interval=0.2)


def consistent(v):
    """Assigned memory as read back agrees with the guest's own MemTotal: the
    kernel keeps ~40 MiB of a 256 MiB guest and ~2 % of plugged memory."""
    a, seen = v["assigned_bytes"], v["guest_visible_bytes"] or 0
    return seen and seen <= a <= seen + 48 * MIB + a // 32


@tap.prerequisite
def both_guests_boot(ctx):
    d = ctx["d"]
    for name in PLANS:
        v = d.wait_booted(name)
        comment(f"{name}: reporting {time.monotonic() - ctx['t0']:.1f} s after dynmemd "
                f"started, MemTotal {mib(v['guest_visible_bytes'])}")
    # A setting changed at run time, to be found intact after the restart.
    d.ok("set", "second", "--weight", "7000")


@tap.case
def dynmemd_killed_during_a_plug_reattaches(ctx):
    d = ctx["d"]
    pids = {n: d.qemu_pid(n) for n in PLANS}
    before = {n: d.vm(n) for n in PLANS}
    v = plugging(d, "first")
    comment(f"first: assigned {mib(v['assigned_bytes'])}, moving to "
            f"{mib(v['target_bytes'])} when dynmemd is killed")
    d.kill9()
    for n, pid in pids.items():
        check(pid and alive(pid), f"{n}'s QEMU survives kill -9 of dynmemd", pid)
    files = state_files(d.state_dir)
    comment(f"state files after the kill: {', '.join(files) or 'none'}")
    d.start()
    log = d.log()
    for n, pid in pids.items():
        v = d.vm(n)
        check(v["state"] == "running", f"{n} running after the restart", v, log[-2000:])
        check(d.qemu_pid(n) == pid and alive(pid), f"{n}: the same QEMU process", pid)
        check(f"{n}: reattached" in log, f"{n}: the log says it reattached", log[-2000:])
        keys = ("dynamic", "startup_bytes", "minimum_bytes", "maximum_bytes", "buffer_percent")
        check(all(v[k] == before[n][k] for k in keys), f"{n}: settings intact", v, before[n])
    check(d.vm("second")["weight"] == 7000, "a setting changed at run time is kept",
          d.vm("second"))
    state_files(d.state_dir)
    # Read back from QEMU: what the daemon says agrees with what the guests see.
    for n in PLANS:
        v = wait_for(lambda: (lambda x: x if consistent(x) else None)(d.vm(n)),
                     f"{n}'s assigned memory read back and consistent with its MemTotal",
                     timeout=60, interval=0.5)
        comment(f"{n} after the restart: assigned {mib(v['assigned_bytes'])}, guest MemTotal "
                f"{mib(v['guest_visible_bytes'])}")
    # Managed again: first's rise is followed to the top of its load.
    v = wait_for(lambda: (lambda x: x if x["assigned_bytes"] >= STARTUP + 300 * MIB and
                          consistent(x) else None)(d.vm("first")),
                 "first's plug to go on after the restart", timeout=120, interval=0.5)
    comment(f"first grown to {mib(v['assigned_bytes'])} after the restart")
    check(not d.oom_lines("first"), "no OOM in first", d.oom_lines("first"))


@tap.case
def qemu_killed_during_a_plug_crashes_alone(ctx):
    d = ctx["d"]
    v = plugging(d, "second")
    pid = d.qemu_pid("second")
    first = d.vm("first")
    h0 = d.status()
    comment(f"second: assigned {mib(v['assigned_bytes'])}, moving to "
            f"{mib(v['target_bytes'])} when its QEMU is killed")
    os.kill(pid, signal.SIGKILL)
    v = wait_for(lambda: (lambda x: x if x["state"] == "crashed" else None)(d.vm("second")),
                 "second to be crashed", timeout=60)
    check(d.proc.poll() is None, "dynmemd carries on")
    check(v["assigned_bytes"] == 0, "second holds nothing", v)

    def returned():
        h, f = d.status(), d.vm("first")
        return h if h["available_bytes"] == h["memory_bytes"] - f["assigned_bytes"] else None
    h = wait_for(returned, "second's memory to be available again")
    comment(f"available {mib(h0['available_bytes'])} -> {mib(h['available_bytes'])}")
    check(h["crashes"] >= 1, "counted as a crash", h)
    check("second: crashed" in d.log(), "the log says so", d.log()[-2000:])
    t0 = time.monotonic()
    h1 = wait_for(lambda: (lambda x: x if x["cycles"] >= h["cycles"] + 5 else None)(d.status()),
                  "five more cycles", timeout=60)
    f = d.vm("first")
    check(f["state"] == "running" and f["demand_bytes"] is not None, "first runs and reports",
          first, f)
    check(f["assigned_bytes"] >= f["demand_bytes"], "first keeps the memory it needs", f)
    comment(f"5 cycles in {time.monotonic() - t0:.1f} s after the crash; first holds "
            f"{mib(f['assigned_bytes'])}")
    del h1


@tap.case
def the_crashed_vm_starts_again(ctx):
    d = ctx["d"]
    t0 = time.monotonic()
    d.ok("start", "second")
    v = d.wait_booted("second")
    comment(f"second booted and reporting again {time.monotonic() - t0:.1f} s after its start")
    check(v["assigned_bytes"] >= STARTUP, "with its memory", v)
    check(d.qemu_pid("second") and alive(d.qemu_pid("second")), "a new QEMU runs")


@tap.case
def the_budget_and_minimums_hold_throughout(ctx):
    s = ctx["sampler"]
    check(s.samples >= 20, "sampled throughout", s.samples)
    check(not s.violations, "no violation in any sample", s.violations[:10])
    comment(f"{s.samples} samples: largest sum {mib(s.max_assigned)} of {mib(MEMORY)}")


if __name__ == "__main__":
    main(tap, setup, teardown)
