#!/usr/bin/env python3
"""The host's `memory` lowered at run time (the configuration edited, then
SIGHUP), on the simulated backend with three VMs that all want more than
they can get. Lowered but above the minimums: the VMs are squeezed within
the new memory, the heavier keeping more, none below its minimum. Lowered
below the sum of the minimums: dynmemd says so once in its log and in
`dynmem status` (text and JSON), takes every VM down to its minimum and
none below it, and refuses a start; raised again: it says the minimums fit
again and the VMs grow back. Every look also checks each VM's bounds.
Prints TAP.

usage: test_memory.py DYNMEMD DYNMEM
"""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (GIB, MIB, Daemon, Tap, accounting, check, dynamic_vm, main,  # noqa: E402
                        sim_host, static_vm, wait_for)


tap = Tap()

VMS = (dynamic_vm("heavy", "high-3g.csv", weight=9000)
       + dynamic_vm("middle", "high-3g.csv", weight=5000)
       + dynamic_vm("light", "high-3g.csv", weight=1000)
       + static_vm("late", "256M", "small.csv"))


def conf(memory):
    return sim_host(memory, policy="shrink_delay = 1s") + VMS


NAMES = ("heavy", "middle", "light")
MINIMUM = 512 * MIB


def bounds(d):
    """Every VM within [minimum, maximum], whatever memory is (no budget check)."""
    vms = d.vms()
    for name in NAMES:
        v = vms[name]
        check(v["state"] == "running", f"{name} keeps running", v)
        check(v["minimum_bytes"] <= v["assigned_bytes"] <= v["maximum_bytes"],
              f"{name} within [minimum, maximum]", v)
    return vms


def reload(d, memory):
    done = d.log_count("reloaded ")
    d.write_config(conf(memory))
    d.send(signal.SIGHUP)
    wait_for(lambda: d.log_count("reloaded ") > done, "the reload", timeout=60)
    check(d.json("status")["memory_bytes"] == parse(memory), "memory in force", d.log())


def parse(size):
    return int(size[:-1]) * {"M": MIB, "G": GIB}[size[-1]]


class daemon:
    def __init__(self, bins):
        self.d = Daemon(bins, conf("8G"))

    def __enter__(self):
        self.d.start()
        for name in NAMES:
            self.d.wait_state(name, "running")
        # All three grow well past their startup size first.
        wait_for(lambda: all(v["assigned_bytes"] >= 2 * GIB
                             for n, v in bounds(self.d).items() if n in NAMES),
                 "the VMs to grow")
        return self.d

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                rc = self.d.stop()
                check(rc == 0, f"dynmemd exits with 0 at SIGTERM, not {rc}", self.d.log())
        finally:
            self.d.cleanup()
        return False


def settled(d, memory):
    """Σ assigned within memory, and unchanged over ten cycles."""
    def stable():
        first = accounting(d, memory)
        seen = d.json("status")["cycles"]
        while d.json("status")["cycles"] < seen + 10:
            bounds(d)
        last = accounting(d, memory)
        return last if all(first[n]["assigned_bytes"] == last[n]["assigned_bytes"]
                           for n in NAMES) else None
    return wait_for(stable, f"the VMs to settle within {memory >> 20} MiB")


@tap.case
def lowered_memory_squeezes_the_vms_by_weight(bins):
    with daemon(bins) as d:
        reload(d, "2500M")
        vms = settled(d, 2500 * MIB)
        a = {n: vms[n]["assigned_bytes"] for n in NAMES}
        check(a["heavy"] >= a["middle"] >= a["light"] >= MINIMUM and a["heavy"] > a["light"],
              "the heavier keeps more, none below its minimum", a)
        print(f"# assigned after lowering to 2500 MiB: { {n: v >> 20 for n, v in a.items()} }")
        check(d.json("status")["overcommitted"] is False, "not overcommitted")
        check("overcommitted" not in d.log(), "nothing said about minimums", d.log())


@tap.case
def memory_below_the_minimums_is_said_once_and_no_vm_goes_below_its_minimum(bins):
    with daemon(bins) as d:
        reload(d, "1G")
        wait_for(lambda: d.json("status")["overcommitted"], "status to say overcommitted")
        wait_for(lambda: all(v["assigned_bytes"] == MINIMUM
                             for n, v in bounds(d).items() if n in NAMES),
                 "every VM at its minimum")
        h = d.json("status")
        check("minimums (1.5 GiB in all) exceed memory (1 GiB)" in h["overcommit_error"],
              "status --json says why", h)
        out = d.ok("status").out
        check("OVERCOMMITTED:" in out and "no VM is taken below its minimum" in out,
              "status says so", out)
        seen = h["cycles"]
        while d.json("status")["cycles"] < seen + 20:
            bounds(d)
        check(d.log_count("overcommitted: the running VMs' minimums (1.5 GiB in all) exceed "
                           "memory (1 GiB)") == 1, "said once in the log", d.log())
        r = d.fails("start", "late", contains="not enough memory")
        check(d.vm("late")["state"] == "off", "a start is refused", r)
        bounds(d)

        reload(d, "8G")
        wait_for(lambda: not d.json("status")["overcommitted"], "status to clear")
        check("minimums fit memory (8 GiB) again" in d.log(), "the log says so", d.log())
        wait_for(lambda: all(v["assigned_bytes"] >= 2 * GIB
                             for n, v in accounting(d, 8 * GIB).items() if n in NAMES),
                 "the VMs to grow back")


@tap.case
def lowered_twice_in_a_row_the_budget_holds_once_settled(bins):
    with daemon(bins) as d:
        reload(d, "4G")
        reload(d, "3G")
        vms = settled(d, 3 * GIB)
        a = {n: vms[n]["assigned_bytes"] for n in NAMES}
        check(a["heavy"] >= a["middle"] >= a["light"] >= MINIMUM, "by weight", a)


if __name__ == "__main__":
    main(tap)
