#!/usr/bin/env python3
"""One guest under dynmemd with the QEMU backend (TCG), one boot for every case:
its load rises past its startup size and memory is hot-added (the daemon's
assigned memory and the guest's own MemTotal grow, no OOM in its console);
the load falls and the memory goes back to within its minimum plus buffer
(the time it takes is printed); dynmemd is killed with -9 and restarted
while the guest runs: the same QEMU carries on and the next rise of the load
is followed; QEMU is killed with -9: dynmemd carries on, the VM is crashed
and its memory is free again. Prints TAP.

usage: test_grow.py DYNMEMD DYNMEM
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (MIB, QemuDaemon, Sampler, Tap, alive, check, comment, guest_image, main,
                        mib, wait_for)  # noqa: E402


tap = Tap()

STARTUP = 256 * MIB
MINIMUM = 256 * MIB
BUFFER = 20
HIGH = 448 * MIB  # the load's high level; 256 MiB guests show ~217 MiB MemTotal
LOW = 32 * MIB
# 99 s period: 6 s quiet, a 20 s climb to 448 MiB, 20 s there, down to 32 MiB in 3 s, 50 s low.
# (22 MiB/s: a TCG guest sharing two cores with other tests faults memory in slowly, and
# one that fills its boot memory before plugged memory is online can run out of the
# unmovable memory its kernel needs; docs/benchmarks-qemu.md.)
PLAN = "hold:6s,ramp:448M:20s,hold:20s,ramp:32M:3s,hold:50s,loop"
# Back within minimum plus buffer (one block of slack).
BOUND = MINIMUM + MINIMUM * BUFFER // 100 + 2 * MIB

CONFIG = f"""memory = 2G
interval = 1s

[policy]
shrink_delay = 5s

[vm "g1"]
dynamic = yes
startup = 256M
minimum = 256M
maximum = 1G
buffer = {BUFFER}
accel = tcg
shutdown_timeout = 1s
append = dynmem.load={PLAN}
autostart = yes
"""


def setup(bins):
    image = guest_image()
    d = QemuDaemon(bins, CONFIG, image)
    d.start()
    return {"d": d, "t0": time.monotonic(), "sampler": Sampler(d).__enter__()}


def teardown(ctx):
    s = ctx["sampler"]
    s.__exit__(None, None, None)
    comment(f"{s.samples} samples of status and list: largest sum assigned "
            f"{mib(s.max_assigned)}; violations: {s.violations or 'none'}")
    ctx["d"].finish()


def high_load(d):
    load = d.load("g1")
    return load and load[1] >= HIGH


def low_load(d):
    load = d.load("g1")
    return load and load[1] <= LOW


@tap.prerequisite
def the_guest_boots_and_its_agent_reports(ctx):
    d = ctx["d"]
    v = d.wait_booted("g1")
    comment(f"booted and reporting {time.monotonic() - ctx['t0']:.1f} s after dynmemd started; "
            f"MemTotal {mib(v['guest_visible_bytes'])}, demand {mib(v['demand_bytes'])}")
    check(v["assigned_bytes"] == STARTUP, "starts with its startup size", v)
    check(v["host_rss_bytes"] and v["host_rss_bytes"] > 32 * MIB, "QEMU's RSS is reported", v)
    b = wait_for(lambda: (x := d.vm("g1")["backend"])["signal"] == "agent" and x,
                 "demand from the agent")
    check(b["name"] == "qemu" and b["agent_state"] == "ready" and
          b["agent_protocol_version"] == 1 and "psi" in b["agent_capabilities"],
          "show says the agent is ready, its protocol and capabilities", b)
    check(b["pid"] == d.qemu_pid("g1") and b["accelerator"].startswith("tcg") and
          b["version"].count(".") == 2, "QEMU's pid, accelerator and version", b)
    # What the backend chose from this QEMU (docs/qemu-backend.md, "QEMU versions").
    major, minor = (int(x) for x in b["version"].split(".")[:2])
    choices = {c["name"]: c["value"] for c in b["choices"] or []}
    check(b["machine"] == f"pc-i440fx-{major}.{minor}", "the versioned machine type", b)
    check(choices.get("virtio-mem dynamic-memslots") == ("on" if (major, minor) >= (8, 2) else "off")
          and choices.get("virtio-mem unplugged-inaccessible") ==
          ("on" if (major, minor) >= (8, 1) else "off"),
          "virtio-mem's options as this QEMU version offers them", b)
    run_with = next((c for c in b["choices"] or [] if c["name"] == "-run-with user="), {})
    check(run_with.get("value") == "not used" and
          run_with.get("why", "").startswith(f"QEMU {major}.{minor} offers it;" if (major, minor) >= (9, 1)
                                             else f"QEMU {major}.{minor} has no -run-with user="),
          "-run-with user=: offered from 9.1 on, not used, and why", b)
    comment(f"QEMU {b['version']}: machine {b['machine']}; {b['choices']}; offers {b['offers']}")
    out = d.ok("show", "g1").out
    check("Guest agent:     ready" in out and f"Process:         {b['pid']}" in out and
          f"Machine:         {b['machine']}" in out and "Chosen:          virtio-mem" in out,
          "and so does the human view", out)


@tap.case
def a_rising_load_gets_memory_hot_added(ctx):
    d = ctx["d"]
    wait_for(lambda: high_load(d), "the load to climb toward 448 MiB", timeout=120, interval=0.2)
    t = time.monotonic()

    def grown():
        v = d.vm("g1")
        return v if v["assigned_bytes"] >= STARTUP + HIGH // 2 and \
            v["guest_visible_bytes"] >= STARTUP + HIGH // 4 else None
    v = wait_for(grown, "assigned memory and the guest's MemTotal to grow", timeout=90)
    comment(f"assigned {mib(v['assigned_bytes'])}, guest MemTotal "
            f"{mib(v['guest_visible_bytes'])}, {time.monotonic() - t:.1f} s after the load "
            f"reached its top; QEMU RSS {mib(v['host_rss_bytes'])}")
    load = wait_for(lambda: (lambda x: x if x and x[0] >= HIGH else None)(d.load("g1")),
                    "dynmem-load to hold 448 MiB", timeout=60, interval=0.2)
    check(load[0] >= HIGH, "the guest holds its whole load", load)
    check(not d.oom_lines("g1"), "no OOM in the guest's console", d.oom_lines("g1"))
    check(v["assigned_bytes"] <= v["maximum_bytes"], "never above its maximum", v)


@tap.case
def a_falling_load_gives_memory_back(ctx):
    d = ctx["d"]
    wait_for(lambda: low_load(d), "the load to fall to 32 MiB", timeout=120, interval=0.1)
    t = time.monotonic()
    v = wait_for(lambda: (lambda x: x if x["assigned_bytes"] <= BOUND else None)(d.vm("g1")),
                 f"assigned memory back within minimum plus buffer ({mib(BOUND)})", timeout=120,
                 interval=0.25)
    took = time.monotonic() - t
    ctx["shrunk"] = time.monotonic()
    comment(f"back to {mib(v['assigned_bytes'])} {took:.1f} s after the load fell "
            f"(shrink_delay 5 s); guest MemTotal {mib(v['guest_visible_bytes'] or 0)}")
    check(v["assigned_bytes"] >= MINIMUM, "not below its minimum", v)
    check(not d.oom_lines("g1"), "no OOM in the guest's console", d.oom_lines("g1"))


@tap.case
def dynmemd_killed_and_restarted_reattaches(ctx):
    d = ctx["d"]
    before = d.vm("g1")
    pid = d.qemu_pid("g1")
    check(pid and alive(pid), "QEMU runs", pid)
    d.kill9()
    check(alive(pid), "QEMU survives kill -9 of dynmemd", pid)
    d.start()
    v = d.vm("g1")
    check(v["state"] == "running", "running again after the restart", v, d.log()[-2000:])
    check(d.qemu_pid("g1") == pid and alive(pid), "the same QEMU process", pid, d.qemu_pid("g1"))
    check("g1: reattached" in d.log(), "the log says it reattached", d.log()[-2000:])
    keys = ("dynamic", "startup_bytes", "minimum_bytes", "maximum_bytes", "buffer_percent",
            "weight")
    check(all(v[k] == before[k] for k in keys), "settings intact", v, before)
    c0, c1 = before.get("counters"), v.get("counters")
    if isinstance(c0, dict) and isinstance(c1, dict):
        check(c1.get("add_operations", 0) >= c0.get("add_operations", 0),
              "counters kept", c0, c1)
    # Managed again: the next rise of the load is followed.
    wait_for(lambda: high_load(d), "the load to rise again", timeout=150, interval=0.2)
    v = wait_for(lambda: (lambda x: x if x["assigned_bytes"] >= STARTUP + HIGH // 2 else None)(
        d.vm("g1")), "memory to be hot-added again after the restart", timeout=90)
    comment(f"after the restart: assigned {mib(v['assigned_bytes'])} for the next rise")
    check(not d.oom_lines("g1"), "no OOM in the guest's console", d.oom_lines("g1"))


@tap.case
def qemu_killed_the_vm_crashes_and_its_memory_is_free(ctx):
    d = ctx["d"]
    pid = d.qemu_pid("g1")
    h = d.status()
    held = h["assigned_bytes"]
    check(held > 0, "the guest holds memory", h)
    os.kill(pid, signal.SIGKILL)
    v = wait_for(lambda: (lambda x: x if x["state"] == "crashed" else None)(d.vm("g1")),
                 "g1 to be crashed", timeout=60)
    h2 = wait_for(lambda: (lambda x: x if x["available_bytes"] == x["memory_bytes"] else None)(
        d.status()), "its memory to be available again")
    comment(f"available {mib(h['available_bytes'])} -> {mib(h2['available_bytes'])}")
    check(v["assigned_bytes"] == 0 and h2["assigned_bytes"] == 0, "it holds nothing", v, h2)
    check(h2["crashes"] >= 1, "counted as a crash", h2)
    check(d.proc.poll() is None, "dynmemd carries on")
    check("g1: crashed" in d.log(), "the log says so", d.log()[-2000:])
    r = d.cli("stop", "g1")
    check(r.rc == 0 and d.vm("g1")["state"] == "off", "a crashed VM is stopped to off", r)


if __name__ == "__main__":
    main(tap, setup, teardown)
