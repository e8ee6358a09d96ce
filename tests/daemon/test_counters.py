#!/usr/bin/env python3
"""dynmem counters: the two Dynamic Memory counter sets, one sample or a
series, as text, CSV and JSON, and what the numbers mean after real changes."""
import csv
import io
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (GIB, MIB, Tap, check, dynamic_vm, main, running, sim_host,  # noqa: E402
                        static_vm, wait_for)


tap = Tap()

CONFIG = (sim_host("6G")
          + dynamic_vm("web1", "rise.csv")
          + dynamic_vm("idle", "small.csv", maximum="2G")
          + static_vm("spare", "1G", "small.csv"))

BALANCER_KEYS = [
    "available_memory_bytes", "available_memory_for_balancing_bytes",
    "average_pressure_percent", "system_current_pressure_percent", "added_memory_bytes",
    "removed_memory_bytes", "memory_add_operations", "memory_remove_operations",
]
VM_KEYS = [
    "added_memory_bytes", "removed_memory_bytes", "memory_add_operations",
    "memory_remove_operations", "physical_memory_bytes", "guest_visible_physical_memory_bytes",
    "current_pressure_percent", "average_pressure_percent", "minimum_pressure_percent",
    "maximum_pressure_percent", "guest_available_memory_bytes", "lent_memory_bytes",
]


def grown(d):
    """web1 has grown for its rising demand and idle has shrunk to its minimum."""
    c = d.json("counters")
    w, i = c["vms"]["web1"], c["vms"]["idle"]
    return c if w["added_memory_bytes"] > 0 and i["removed_memory_bytes"] > 0 else None


@tap.case
def the_json_has_both_sets_in_snake_case(bins):
    with running(bins, CONFIG) as d:
        c = d.json("counters")
        check(sorted(c) == ["balancer", "time_ms", "vms"], "top-level members", c)
        check(list(c["balancer"]) == BALANCER_KEYS, "balancer counters, in order", c)
        check(sorted(c["vms"]) == ["idle", "spare", "web1"], "every VM", c)
        for name, v in c["vms"].items():
            check(list(v) == VM_KEYS, f"{name}: VM counters, in order", v)
        spare = c["vms"]["spare"]
        check(spare["physical_memory_bytes"] == 0 and spare["current_pressure_percent"] is None
              and spare["guest_visible_physical_memory_bytes"] is None
              and spare["lent_memory_bytes"] == 0,
              "an off VM holds nothing, is lent nothing and has no pressure", spare)


@tap.case
def the_counters_follow_what_happened(bins):
    with running(bins, CONFIG) as d:
        c = wait_for(lambda: grown(d), "web1 to grow and idle to shrink")
        vms = d.vms()
        b, w, i = c["balancer"], c["vms"]["web1"], c["vms"]["idle"]
        check(w["added_memory_bytes"] > 0 and w["removed_memory_bytes"] == 0, "web1 grew", w)
        check(i["removed_memory_bytes"] >= 256 * MIB, "idle gave memory back", i)
        check(b["added_memory_bytes"] >= w["added_memory_bytes"]
              and b["memory_add_operations"] >= w["memory_add_operations"]
              and b["memory_remove_operations"] >= i["memory_remove_operations"],
              "the balancer's sums cover every VM's", c)
        # the idle VM sits at its minimum: nothing changes it any more
        idle = wait_for(lambda: d.json("counters", "--vm", "idle")["vms"]["idle"]
                        if d.vm("idle")["assigned_bytes"] == 512 * MIB else None,
                        "idle at its minimum")
        check(idle["physical_memory_bytes"] == 512 * MIB, "physical memory is assigned", idle)
        check(idle["guest_visible_physical_memory_bytes"] == 512 * MIB,
              "the simulated guest sees what it holds", idle)
        check(0 < idle["guest_available_memory_bytes"] < 512 * MIB, "guest available", idle)
        for name in ("web1", "idle"):
            v = c["vms"][name]
            check(v["minimum_pressure_percent"] <= v["average_pressure_percent"]
                  <= v["maximum_pressure_percent"], f"{name}: min <= average <= max", v)
            check(v["minimum_pressure_percent"] <= v["current_pressure_percent"]
                  <= v["maximum_pressure_percent"], f"{name}: min <= current <= max", v)
        check(b["available_memory_bytes"] <= b["available_memory_for_balancing_bytes"],
              "available for balancing includes available", b)
        check(b["available_memory_bytes"] + sum(v["assigned_bytes"] for v in vms.values())
              >= 5 * GIB, "available plus assigned is about the host's memory", b, vms)


@tap.case
def sets_and_one_vm(bins):
    with running(bins, CONFIG) as d:
        c = d.json("counters", "--set", "balancer")
        check(sorted(c) == ["balancer", "time_ms"], "--set balancer: no VMs", c)
        c = d.json("counters", "--set", "vm")
        check(sorted(c) == ["time_ms", "vms"], "--set vm: no balancer", c)
        c = d.json("counters", "--vm", "web1")
        check(list(c["vms"]) == ["web1"] and "balancer" in c, "--vm: that VM only", c)
        text = d.ok("counters", "--vm", "idle").out
        for title in ("Dynamic Memory Balancer", "Dynamic Memory VM(idle)", "Added Memory",
                      "Guest Visible Physical Memory", "System Current Pressure",
                      "Available Memory For Balancing"):
            check(title in text, f"the listing shows {title!r}", text)
        check("web1" not in text, "--vm leaves the other VMs out", text)
        d.fails("counters", "--vm", "nosuch", contains="nosuch: no such VM")
        d.fails("counters", "--set", "disk", rc=2, contains="--set")
        d.fails("counters", "--set", "balancer", "--vm", "web1", rc=2, contains="--vm")
        d.fails("counters", "--interval", "5ms", rc=2, contains="--interval")
        d.fails("counters", "--count", "0", rc=2, contains="--count")
        d.fails("counters", "web1", rc=2, contains="takes no VM name")


@tap.case
def a_series_is_csv_like_typeperf(bins):
    with running(bins, CONFIG) as d:
        r = d.ok("counters", "--interval", "200ms", "--count", "3", "--vm", "web1")
        rows = list(csv.reader(io.StringIO(r.out)))
        check(len(rows) == 4, "a header and three samples", r)
        head = rows[0]
        check(head[0] == "time" and "\\Dynamic Memory Balancer\\Available Memory" in head
              and "\\Dynamic Memory VM(web1)\\Memory Add Operations" in head
              and len(head) == 1 + 8 + 12, "the header names each counter", head)
        for row in rows[1:]:
            check(len(row) == len(head), "every sample has every column", row)
            ops = row[head.index("\\Dynamic Memory VM(web1)\\Memory Add Operations")]
            check(ops.isdigit(), "operations are whole numbers", row)
        r = d.ok("counters", "--count", "2", "--interval", "100ms", "--json", "--set", "vm")
        lines = [json.loads(line) for line in r.out.splitlines()]
        check(len(lines) == 2 and all("vms" in x and "balancer" not in x for x in lines),
              "--json: one object per sample", r)


if __name__ == "__main__":
    main(tap)
