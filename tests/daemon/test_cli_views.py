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
from dynmemtest import Tap, check, editing, main, running, wait_for  # noqa: E402


tap = Tap()

CONFIG = """
memory = 4G
interval = 100ms

[sim]
speed = 20

[vm "web1"]
dynamic = yes
startup = 1G
minimum = 512M
maximum = 3G
trace = @DATA@/rise.csv
autostart = yes

[vm "db1"]
startup = 512M
trace = @DATA@/flat-300m.csv
"""

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
        check(plain["db1"]["STATUS"] == "unknown", "an off VM's status", plain)
        with editing(d, with_problem) as path:
            rows = table(d.ok("list", socket_path=path).out)
        check(rows["db1"]["STATUS"] == "problem", "db1 flagged", rows)
        check(rows["web1"]["STATUS"] in ("ok", "low", "warning"), "web1 as it was", rows)


if __name__ == "__main__":
    main(tap)
