#!/usr/bin/env python3
"""What dynmem list, show and status print of states the simulated backend cannot make:
a libvirt domain whose dynmem settings cannot be used (its `problem`), the relief rule
moving a VM, a state file that cannot be written, minimums beyond memory. dynmemd runs
on the sim backend; its answers reach dynmem through a socket that edits them
(dynmemtest.editing), so that each state is printed from a reply dynmemd really gave."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Tap, check, dynamic_vm, editing, main, running, sim_host,  # noqa: E402
                        static_vm, wait_for)


tap = Tap()

CONFIG = (sim_host("4G")
          + dynamic_vm("web1", "rise.csv", maximum="3G")
          + static_vm("db1", "512M", "flat-300m.csv"))

PROBLEM = "dynmem metadata: <dynmem:minimum> 16 MiB is below 32 MiB"


def with_problem(request, reply):
    """db1 as a libvirt domain whose metadata fails."""
    vms = reply.get("vms", [reply["vm"]] if "vm" in reply else [])
    for vm in vms:
        if vm["name"] == "db1":
            vm.update(origin="libvirt", problem=PROBLEM)


def table(out):
    """dynmem list's table as {name: {column: cell}}: cells hold one space at most
    ("1 GiB"), columns are two apart at least."""
    rows = [re.split(r" {2,}", line.strip()) for line in out.splitlines()]
    return {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}


@tap.case
def show_prints_a_vms_problem_only_when_it_has_one(bins):
    with running(bins, CONFIG) as d:
        check("Problem:" not in d.ok("show", "db1").out, "no problem, no line")
        with editing(d, with_problem) as path:
            out = d.ok("show", "db1", socket_path=path).out
            check(re.search(r"^Problem: +" + re.escape(PROBLEM) + "$", out, re.M),
                  "the problem, in the style of the other lines", out)
            check(re.search(r"^Defined by: +libvirt$", out, re.M), "its owner", out)
            check("Problem:" not in d.ok("show", "web1", socket_path=path).out,
                  "not on another VM", out)


@tap.case
def list_flags_a_vm_with_a_problem_in_its_status(bins):
    with running(bins, CONFIG) as d:
        wait_for(lambda: d.vm("web1")["status"] != "unknown", "web1's demand")
        plain = table(d.ok("list").out)
        check(plain["db1"]["STATUS"] == "none", "an off VM's status: it holds no memory", plain)
        check(re.search(r"^Status: +none$", d.ok("show", "db1").out, re.M),
              "show says the same of it", d.ok("show", "db1").out)
        with editing(d, with_problem) as path:
            rows = table(d.ok("list", socket_path=path).out)
        check(rows["db1"]["STATUS"] == "problem", "db1 flagged", rows)
        check(rows["web1"]["STATUS"] in ("ok", "low", "warning"), "web1 as it was", rows)


@tap.case
def status_prints_every_host_warning(bins):
    def warnings(request, reply):
        if "host" not in reply:
            return  # status also asks for the VMs
        h = reply["host"]
        h.update(state_saved=False, state_error="cannot write /var/lib/dynmem/web1: "
                 "No space left on device", overcommitted=True,
                 overcommit_error="the running VMs' minimums (5 GiB in all) exceed memory (4 GiB)",
                 backend_error="libvirt at qemu:///system: Failed to connect socket to "
                 "'/run/libvirt/libvirt-sock': No such file or directory; the VMs keep their "
                 "sizes until it answers again (retrying every 30 s at most)")
        h["relief"] = {"enabled": True, "short": True, "short_bytes": 512 << 20,
                       "short_for_ms": 90000, "shortage_for_ms": 60000, "cooldown_ms": 300000,
                       "moves": 2, "done": 1, "failed": 0, "no_room": 1, "moving": "web1",
                       "last": "moving web1 to hostb: short of memory for 1.5m"}

    with running(bins, CONFIG) as d:
        out = d.ok("status").out
        check("NOT SAVED" not in out and "OVERCOMMITTED" not in out and "Relief:" not in out
              and "UNREACHABLE" not in out, "nothing to warn of", out)
        with editing(d, warnings) as path:
            out = d.ok("status", socket_path=path).out
        for line in (r"Backend: +UNREACHABLE: libvirt at qemu:///system: Failed to connect socket "
                     r"to '/run/libvirt/libvirt-sock': No such file or directory; the VMs keep "
                     r"their sizes until it answers again \(retrying every 30 s at most\)$",
                     r"Memory: +OVERCOMMITTED: the running VMs' minimums \(5 GiB in all\) "
                     r"exceed memory \(4 GiB\)",
                     r"State: +NOT SAVED: cannot write /var/lib/dynmem/web1: No space left",
                     r"Relief: +on: short of memory now; 2 moves \(1 done, 0 failed\), "
                     r"1 without room",
                     r" +short of 512 MiB for 90s",
                     r" +moving web1 now",
                     r" +last: moving web1 to hostb: short of memory for 1.5m"):
            check(re.search("^" + line, out, re.M), line, out)
        # what needs the operator comes last, in dynmem(1)'s order: after the relief rule
        order = [m.start() if m else -1 for m in (re.search(r"^" + w, out, re.M) for w in (
            "Relief:", "Backend: +UNREACHABLE:", "Memory: +OVERCOMMITTED:", "State: +NOT SAVED:"))]
        check(-1 not in order and order == sorted(order),
              "Relief, then Backend: UNREACHABLE, Memory, State", out)


@tap.case
def status_names_the_vms_with_a_problem(bins):
    def both(request, reply):
        for vm in reply.get("vms", []):
            vm.update(origin="libvirt", problem=PROBLEM)

    with running(bins, CONFIG) as d:
        out = d.ok("status").out
        check("Problems:" not in out, "no problem, no line", out)
        with editing(d, with_problem) as path:
            out = d.ok("status", socket_path=path).out
            check(re.search(r"^Problems: +db1 \(see dynmem show NAME\)$", out, re.M),
                  "db1 named, after the host", out)
            check(out.index("Problems:") > out.index("Uptime:"), "last, with the warnings", out)
            host = d.json("status", socket_path=path)
            check("Problems" not in str(host) and host["vms"] == 2, "--json: the host as it was",
                  host)
        with editing(d, both) as path:
            out = d.ok("status", socket_path=path).out
        names = re.search(r"^Problems: +(.*) \(see dynmem show NAME\)$", out, re.M)
        check(names and sorted(names.group(1).split(", ")) == ["db1", "web1"], "both, one line",
              out)


@tap.case
def show_prints_what_the_guest_sees_and_the_host_rss_when_known(bins):
    def rss(request, reply):
        if reply.get("vm", {}).get("name") == "web1":
            reply["vm"]["host_rss_bytes"] = 700 << 20

    with running(bins, CONFIG) as d:
        wait_for(lambda: d.vm("web1")["guest_visible_bytes"], "web1 observed")
        seen = d.vm("web1")["guest_visible_bytes"]
        out = d.ok("show", "web1").out
        check(re.search(r"^Guest sees: +\d+(\.\d+)? [MG]iB$", out, re.M), "what the guest sees",
              out, seen)
        check("Host RSS:" not in out, "the simulator knows no RSS: no line", out)
        off = d.ok("show", "db1").out
        check("Guest sees:" not in off and "Host RSS:" not in off, "an off VM: neither", off)
        with editing(d, rss) as path:
            out = d.ok("show", "web1", socket_path=path).out
        check(re.search(r"^Host RSS: +700 MiB$", out, re.M), "the host's RSS", out)
        check(out.index("Autostart:") < out.index("Guest sees:") < out.index("Host RSS:"),
              "in the web page's order", out)


if __name__ == "__main__":
    main(tap)
