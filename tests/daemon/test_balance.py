#!/usr/bin/env python3
"""The balancer through the daemon: admission refused when the host is full,
weights under scarcity, memory following demand, room made for a start."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (GIB, MIB, Tap, check, dynamic_vm, main, running, sim_host,  # noqa: E402
                        static_vm, wait_for)

tap = Tap()

FULL = (sim_host("2G")
        + static_vm("big1", "1536M", "small.csv", minimum="1536M", autostart=True)
        + static_vm("big2", "1G", "small.csv"))

SCARCE = (sim_host("3G", policy="shrink_delay = 2s")
          + dynamic_vm("heavy", "high-3g.csv", weight=9000)
          + dynamic_vm("light", "high-3g.csv", weight=1000))

GROW = sim_host("8G") + dynamic_vm("web1", "rise.csv")


def within_budget(d, memory):
    h = d.json("status")
    check(h["assigned_bytes"] <= memory, "the host budget is never exceeded", h)
    return h


@tap.case
def a_start_that_cannot_fit_is_refused_with_the_reason(bins):
    with running(bins, FULL) as d:
        d.wait_state("big1", "running")
        r = d.fails("start", "big2", contains="dynmem: big2: not enough memory: startup 1 GiB")
        check("every VM at its minimum" in r.err, "the reason says why", r)
        v = d.vm("big2")
        check(v["state"] == "off" and "not enough memory" in (v["refusal"] or ""), "off", v)
        h = within_budget(d, 2 * GIB)
        check(h["refused_starts"] == 1, "counted", h)
        check("big2: start refused: not enough memory" in d.log(), "logged", d.log())


@tap.case
def a_start_fits_once_the_host_has_room(bins):
    with running(bins, FULL) as d:
        d.wait_state("big1", "running")
        d.ok("stop", "big1")
        d.ok("start", "big2")
        check(d.vm("big2")["state"] == "running", "admitted once big1 is off")
        d.fails("start", "big1", contains="big1: not enough memory")


@tap.case
def heavier_weight_keeps_more_under_scarcity(bins):
    with running(bins, SCARCE) as d:
        d.wait_state("heavy", "running")
        d.wait_state("light", "running")

        def settled():
            vms = d.vms()
            within_budget(d, 3 * GIB)
            for v in vms.values():
                check(v["assigned_bytes"] >= v["minimum_bytes"], "nobody below minimum", v)
            h, l = vms["heavy"]["assigned_bytes"], vms["light"]["assigned_bytes"]
            return h >= l + 512 * MIB and (h, l)

        h, l = wait_for(settled, "heavy to hold clearly more than light")
        for _ in range(20):  # and it stays that way, within the budget
            vms = d.vms()
            check(vms["heavy"]["assigned_bytes"] > vms["light"]["assigned_bytes"], "", vms)
            check(vms["light"]["assigned_bytes"] >= 512 * MIB, "light above its minimum", vms)
            within_budget(d, 3 * GIB)
        d.ok("set", "light", "--weight", "10000")
        d.ok("set", "heavy", "--weight", "0")
        wait_for(lambda: (v := d.vms())["light"]["assigned_bytes"] >
                 v["heavy"]["assigned_bytes"] + 512 * MIB, "weights to turn the balance")


@tap.case
def memory_follows_demand(bins):
    with running(bins, GROW) as d:
        d.wait_state("web1", "running")
        v = wait_for(lambda: (v := d.vm("web1"))["assigned_bytes"] >= 1536 * MIB and v,
                     "web1 to grow past its startup as demand rises to 1.5 GiB")
        check(v["assigned_bytes"] <= v["maximum_bytes"], "never above maximum", v)
        check(v["reason"] in ("demand", "stall", "waiting", "hold", "maximum"), "reason", v)


@tap.case
def room_is_made_for_a_start_by_shrinking_others(bins):
    cfg = SCARCE.replace("autostart = yes\n", "", 1) + \
        '\n[vm "late"]\nstartup = 1G\ntrace = @DATA@/small.csv\n'
    with running(bins, cfg) as d:
        d.wait_state("light", "running")  # heavy stays off
        wait_for(lambda: d.vm("light")["assigned_bytes"] >= 2560 * MIB, "light to fill the host")
        d.ok("start", "late")
        vms = d.vms()
        check(vms["late"]["state"] == "running", "admitted", vms)
        check(vms["light"]["assigned_bytes"] + vms["late"]["assigned_bytes"] <= 3 * GIB,
              "within the budget", vms)


if __name__ == "__main__":
    main(tap)
