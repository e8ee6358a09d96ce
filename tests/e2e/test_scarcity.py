#!/usr/bin/env python3
"""Two guests under dynmemd with the QEMU backend (TCG) on a host too small for
both loads: the one with the heavier weight keeps more, neither goes below
its minimum, and the memory the VMs hold never exceeds the host's budget
(`dynmem status --json` and `dynmem list --json` sampled twice a second
throughout). A third VM whose startup size cannot fit is refused with the
reason, and stays off. Prints TAP.

usage: test_scarcity.py DYNMEMD DYNMEM
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (MIB, QemuDaemon, Sampler, Tap, check, comment, guest_image, main, mib,
                        wait_for)  # noqa: E402


tap = Tap()

MEMORY = 1000 * MIB
MINIMUM = 256 * MIB
LOAD = 560 * MIB  # each wants ~700 MiB with its buffer: 1.4 GiB in all, 1000 MiB there
PLAN = "hold:6s,ramp:560M:15s,hold:3600s"

VM = """
[vm "{name}"]
dynamic = yes
startup = 256M
minimum = 256M
maximum = 1G
buffer = 20
weight = {weight}
accel = tcg
shutdown_timeout = 1s
append = dynmem.load={plan}
autostart = {autostart}
"""

CONFIG = f"""memory = {MEMORY // MIB}M
interval = 1s
""" + VM.format(name="heavy", weight=9000, plan=PLAN, autostart="yes") + \
    VM.format(name="light", weight=1000, plan=PLAN, autostart="yes") + \
    VM.format(name="big", weight=5000, plan=PLAN, autostart="no").replace(
        "startup = 256M", "startup = 900M")


def setup(bins):
    d = QemuDaemon(bins, CONFIG, guest_image())
    d.start()
    s = Sampler(d).__enter__()
    return {"d": d, "sampler": s, "t0": time.monotonic()}


def teardown(ctx):
    ctx["sampler"].__exit__(None, None, None)
    ctx["d"].finish()


@tap.prerequisite
def both_guests_boot(ctx):
    d = ctx["d"]
    for name in ("heavy", "light"):
        v = d.wait_booted(name)
        comment(f"{name}: reporting {time.monotonic() - ctx['t0']:.1f} s after dynmemd started, "
                f"MemTotal {mib(v['guest_visible_bytes'])}")


def gap_holds(d, samples, gap):
    """The heavier VM ahead by at least gap in each of the last `samples` looks."""
    history = []

    def ahead():
        vms = d.vms()
        h, lt = vms["heavy"]["assigned_bytes"], vms["light"]["assigned_bytes"]
        history.append((h, lt))
        recent = history[-samples:]
        return recent if len(recent) == samples and all(a - b >= gap for a, b in recent) \
            else None
    return ahead


@tap.case
def the_heavier_weight_keeps_more(ctx):
    d = ctx["d"]
    # Both climb at once; light, short of memory, may be OOM-killed on the way (and restarted).
    wait_for(lambda: (lambda x: x if x and x[1] >= LOAD else None)(d.load("heavy")),
             "heavy's load to reach 560 MiB", timeout=120, interval=0.25)
    recent = wait_for(gap_holds(d, 10, 64 * MIB),
                      "heavy to hold at least 64 MiB more than light for 10 looks in a row",
                      timeout=180, interval=0.5)
    h, lt = recent[-1]
    comment(f"under scarcity: heavy {mib(h)}, light {mib(lt)} of {mib(MEMORY)}; "
            f"OOM kills in light: {len(d.oom_lines('light'))}, in heavy: "
            f"{len(d.oom_lines('heavy'))}")
    vms = d.vms()
    check(vms["heavy"]["reason"] != "none", "heavy is managed", vms["heavy"])
    check(h + lt <= MEMORY, "together within the host's memory", h, lt)


@tap.case
def nobody_goes_below_its_minimum_and_the_budget_holds(ctx):
    s = ctx["sampler"]
    check(s.samples >= 20, "sampled throughout", s.samples)
    check(not s.violations, "no violation in any sample", s.violations[:10])
    for name in ("heavy", "light"):
        check(s.min_assigned.get(name, 0) >= MINIMUM, f"{name} never below its minimum",
              s.min_assigned)
    comment(f"{s.samples} samples: largest sum assigned {mib(s.max_assigned)} of "
            f"{mib(MEMORY)}; smallest: " +
            ", ".join(f"{n} {mib(b)}" for n, b in sorted(s.min_assigned.items())))


@tap.case
def a_start_that_cannot_fit_is_refused_with_the_reason(ctx):
    d = ctx["d"]
    r = d.cli("start", "big")
    check(r.rc != 0, "refused", r)
    check("big: not enough memory: startup 900 MiB does not fit" in r.err, "with the reason", r)
    check(d.vm("big")["state"] == "off", "and the VM is off", d.vm("big"))
    check("big: start refused: not enough memory" in d.log(), "logged", d.log()[-2000:])
    check(d.status()["refused_starts"] >= 1, "counted", d.status())


if __name__ == "__main__":
    main(tap, setup, teardown)
