#!/usr/bin/env python3
"""Every settings rule of Hyper-V, allowed and refused, through dynmem set and
dynmem create; and dynmem delete."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (DATA, GIB, MIB, Tap, check, dynamic_vm, main, running,  # noqa: E402
                        sim_host, static_vm, wait_for)


tap = Tap()

CONFIG = (sim_host("8G")
          + dynamic_vm("web1", "flat-300m.csv")
          + dynamic_vm("off1", "flat-300m.csv", maximum="2G", autostart=False)
          + static_vm("static1", "256M", "flat-300m.csv"))


@tap.case
def running_vm_refuses_startup_and_dynamic_changes(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        d.fails("set", "web1", "--startup", "2G",
                contains="dynmem: web1: cannot change startup while the VM is running")
        d.fails("set", "web1", "--dynamic", "off",
                contains="dynmem: web1: cannot change dynamic while the VM is running")
        v = d.vm("web1")
        check(v["startup_bytes"] == GIB and v["dynamic"] is True, "unchanged after refusals", v)


@tap.case
def running_vm_minimum_may_only_be_lowered(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        d.fails("set", "web1", "--minimum", "768M",
                contains="web1: minimum can only be lowered while the VM is running")
        d.ok("set", "web1", "--minimum", "256M")
        check(d.vm("web1")["minimum_bytes"] == 256 * MIB, "minimum lowered")


@tap.case
def running_vm_maximum_may_only_be_raised(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        d.fails("set", "web1", "--maximum", "2G",
                contains="web1: maximum can only be raised while the VM is running")
        # one command is taken whole or not at all (a reload takes what it can)
        d.fails("set", "web1", "--weight", "100", "--maximum", "2G",
                contains="web1: maximum can only be raised while the VM is running")
        check(d.vm("web1")["weight"] != 100, "nothing of the refused command taken", d.vm("web1"))
        d.ok("set", "web1", "--maximum", "6G")
        check(d.vm("web1")["maximum_bytes"] == 6 * GIB, "maximum raised")


@tap.case
def buffer_and_weight_change_any_time(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        d.ok("set", "web1", "--buffer", "50", "--weight", "9000")
        d.ok("set", "off1", "--buffer", "35%", "--weight", "0")
        v, o = d.vm("web1"), d.vm("off1")
        check(v["buffer_percent"] == 50 and v["weight"] == 9000, "running VM changed", v)
        check(o["buffer_percent"] == 35 and o["weight"] == 0, "off VM changed", o)
        d.fails("set", "web1", "--buffer", "4", rc=2,
                contains="web1: buffer 4 % is outside 5..2000 %")
        d.fails("set", "web1", "--buffer", "2001", rc=2, contains="outside 5..2000 %")
        d.fails("set", "web1", "--weight", "10001", rc=2, contains="web1: weight 10001 is outside")


@tap.case
def lend_changes_any_time(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        check(d.vm("web1")["lend"] is True, "lend on by default", d.vm("web1"))
        check("Lend:            on" in d.ok("show", "web1").out, "show says it")
        d.ok("set", "web1", "--lend", "no")
        check(d.vm("web1")["lend"] is False, "switched off while running", d.vm("web1"))
        check("Lend:            off" in d.ok("show", "web1").out, "show says it")
        d.ok("set", "off1", "--lend", "off")
        check(d.vm("off1")["lend"] is False, "off VM changed", d.vm("off1"))
        d.fails("set", "web1", "--lend", "sometimes", rc=2,
                contains="--lend: \"sometimes\" is not yes/no, on/off, true/false or 1/0")


@tap.case
def off_vm_takes_startup_and_dynamic_changes(bins):
    with running(bins, CONFIG) as d:
        d.ok("set", "off1", "--startup", "1536M", "--dynamic", "off")
        o = d.vm("off1")
        check(o["startup_bytes"] == 1536 * MIB and o["dynamic"] is False, "changed while off", o)
        d.ok("start", "off1")
        check(d.vm("off1")["assigned_bytes"] == 1536 * MIB, "starts with the new startup")


@tap.case
def minimum_startup_maximum_stay_ordered(bins):
    with running(bins, CONFIG) as d:
        d.fails("set", "off1", "--minimum", "1536M", rc=2,
                contains="off1: minimum 1.5 GiB is above startup 1 GiB")
        d.fails("set", "off1", "--startup", "3G", rc=2,
                contains="off1: startup 3 GiB is above maximum 2 GiB")
        d.fails("set", "off1", "--maximum", "768M", rc=2, contains="above maximum 768 MiB")
        d.fails("set", "off1", "--minimum", "16M", rc=2, contains="minimum 16 MiB is below 32 MiB")
        d.fails("set", "off1", "--startup", "1000001K", rc=2,
                contains="not a multiple of the 2 MiB block")
        d.ok("set", "off1", "--startup", "3G", "--maximum", "3G", "--minimum", "3G")
        o = d.vm("off1")
        check(o["minimum_bytes"] == o["startup_bytes"] == o["maximum_bytes"] == 3 * GIB,
              "several settings in one change are checked together", o)


@tap.case
def static_vm_minimum_and_maximum_follow_its_startup(bins):
    # static1 took minimum = maximum = startup (256M) from the file's defaults
    with running(bins, CONFIG) as d:
        d.ok("set", "static1", "--startup", "1G")
        v = d.vm("static1")
        check(v["startup_bytes"] == GIB and v["maximum_bytes"] == GIB and
              v["minimum_bytes"] == 256 * MIB, "maximum follows a larger startup", v)
        d.ok("set", "static1", "--startup", "128M")
        v = d.vm("static1")
        check(v["startup_bytes"] == v["minimum_bytes"] == 128 * MIB and
              v["maximum_bytes"] == GIB, "minimum follows a smaller startup", v)
        d.fails("set", "static1", "--startup", "2G", "--maximum", "1G", rc=2,
                contains="static1: startup 2 GiB is above maximum 1 GiB")
        d.fails("set", "off1", "--startup", "3G", rc=2,
                contains="off1: startup 3 GiB is above maximum")
        d.kill9()
        d.start()
        v = d.vm("static1")
        check((v["minimum_bytes"], v["startup_bytes"], v["maximum_bytes"]) ==
              (128 * MIB, 128 * MIB, GIB), "kept across a crash of dynmemd", v)


@tap.case
def static_vm_keeps_its_startup_size_and_counts(bins):
    with running(bins, CONFIG) as d:
        d.ok("create", "fixed1", "--startup", "768M", "--dynamic", "off",
             "-o", f"trace={DATA}/flat-300m.csv")
        d.ok("start", "fixed1")
        # demand (300M) is far below startup; a dynamic VM would shrink, a static one must not
        h = wait_for(lambda: (h := d.json("status"))["cycles"] > 20 and h, "cycles to pass")
        v = d.vm("fixed1")
        check(v["assigned_bytes"] == 768 * MIB, "static VM keeps startup", v)
        check(h["assigned_bytes"] >= 768 * MIB, "it counts against the host", h)


@tap.case
def create_defines_a_vm_with_defaults(bins):
    with running(bins, CONFIG) as d:
        r = d.ok("create", "new1", "--startup", "512M", "--dynamic", "on",
                 "-o", f"trace={DATA}/small.csv", "--json")
        v = d.vm("new1")
        check(v["origin"] == "created" and v["state"] == "off", "created, off", v)
        check(v["maximum_bytes"] == 2 * GIB and v["minimum_bytes"] == 512 * MIB and
              v["buffer_percent"] == 20 and v["weight"] == 5000, "defaults completed", v)
        check('"name": "new1"' in r.out, "create --json prints the VM", r)
        d.ok("start", "new1")
        d.fails("create", "new1", "-o", f"trace={DATA}/small.csv",
                contains="new1: already exists")
        d.fails("create", "web1", contains="web1: already exists")


@tap.case
def create_refuses_what_the_backend_cannot_run(bins):
    with running(bins, CONFIG) as d:
        d.fails("create", "new2", rc=2, contains="the sim backend needs a trace")
        d.fails("create", "new2", "-o", "trace=/nonexistent.csv", rc=2, contains="/nonexistent.csv")
        d.fails("create", "new2", "-o", f"trace={DATA}/small.csv", "-o", "colour=red", rc=2,
                contains="new2: backend sim takes no key \"colour\"")
        d.fails("create", "new2", "-o", f"tarce={DATA}/small.csv", rc=2,
                contains="new2: backend sim takes no key \"tarce\" (did you mean \"trace\"?)")
        d.fails("create", "new2", "-o", f"trace={DATA}/small.csv", "-o", "wieght=100", rc=2,
                contains="new2: backend sim takes no key \"wieght\" (did you mean --weight?)")
        d.fails("create", "new2", "--startup", "1G", "--maximum", "512M",
                "-o", f"trace={DATA}/small.csv", rc=2,
                contains="new2: startup 1 GiB is above maximum")
        # startup not given: the sizes given are named, not the default startup (1 GiB)
        d.fails("create", "new2", "--minimum", "2G", "--maximum", "1G",
                "-o", f"trace={DATA}/small.csv", rc=2,
                contains="new2: minimum 2 GiB is above maximum 1 GiB")
        d.fails("create", "new2", "--dynamic", "on", "--minimum", "2G", "--maximum", "8G",
                "-o", f"trace={DATA}/small.csv", rc=2,
                contains="new2: minimum 2 GiB is above startup 1 GiB (startup is not set and "
                         "defaults to 1 GiB)")
        d.fails("show", "new2", contains="no such VM")


@tap.case
def delete_only_created_vms_that_are_off(bins):
    with running(bins, CONFIG) as d:
        d.fails("delete", "web1", contains="web1: defined in " + d.conf + ":")
        d.ok("create", "tmp1", "-o", f"trace={DATA}/small.csv", "--startup", "256M")
        d.ok("start", "tmp1")
        d.fails("delete", "tmp1", contains="tmp1: running; stop it first")
        d.ok("stop", "tmp1")
        r = d.ok("delete", "tmp1", "--json")
        v = json.loads(r.out)
        check(v["name"] == "tmp1" and v["state"] == "off" and v["origin"] == "created",
              "delete --json prints the VM as it was, as stop --json does", r)
        d.fails("show", "tmp1", contains="tmp1: no such VM")
        d.fails("delete", "tmp1", contains="tmp1: no such VM")
        d.ok("create", "tmp2", "-o", f"trace={DATA}/small.csv")
        r = d.ok("delete", "tmp2")
        check(r.out == "", "without --json it says nothing", r)


@tap.case
def every_setting_has_an_option(bins):
    usage = subprocess.run([bins[1], "--help"], capture_output=True, text=True).stdout
    for option in ("--dynamic on|off", "--startup SIZE", "--minimum SIZE", "--maximum SIZE",
                   "--buffer PERCENT", "--weight 0..10000", "--block SIZE"):
        check(option in usage, f"{option} in the usage", usage)
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        d.ok("create", "blk1", "--block", "4M", "--startup", "512M", "-o", f"trace={DATA}/small.csv")
        check(d.vm("blk1")["block_bytes"] == 4 * MIB, "create takes --block", d.vm("blk1"))
        d.ok("set", "off1", "--block", "8M")
        check(d.vm("off1")["block_bytes"] == 8 * MIB, "set takes --block while off")
        d.fails("set", "web1", "--block", "4M",
                contains="web1: cannot change block size while the VM is running")
        d.fails("set", "off1", "--block", "3M", rc=2,
                contains="off1: block size 3 MiB is not a power of two")
        d.fails("set", "off1", "--block", "big", rc=2, contains='--block: "big" is not a size')


@tap.case
def set_changes_autostart(bins):
    usage = subprocess.run([bins[1], "--help"], capture_output=True, text=True).stdout
    check("Options of set: --autostart on|off" in usage, "set's --autostart in the usage", usage)
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        check(d.vm("off1")["autostart"] is False, "off1 not autostarted", d.vm("off1"))
        r = d.json("set", "off1", "--autostart", "yes")
        check(r["autostart"] is True, "the reply shows it", r)
        check(d.vm("off1")["autostart"] is True and d.vm("off1")["state"] == "off",
              "on, and the VM is not started by it", d.vm("off1"))
        check("off1: autostart on" in d.log(), "logged", d.log())
        d.ok("set", "web1", "--autostart", "off")
        check(d.vm("web1")["autostart"] is False and d.vm("web1")["state"] == "running",
              "off on a running VM, which keeps running", d.vm("web1"))
        out = d.ok("show", "web1").out
        check(re.search(r"^Autostart: +off$", out, re.M), "show says so", out)
        d.ok("set", "off1", "--autostart", "off", "--weight", "100")
        check(d.vm("off1")["autostart"] is False and d.vm("off1")["weight"] == 100,
              "with a setting", d.vm("off1"))
        # a refused setting changes nothing, autostart included
        d.fails("set", "web1", "--autostart", "on", "--startup", "2G",
                contains="web1: cannot change startup while the VM is running")
        check(d.vm("web1")["autostart"] is False, "refused as a whole", d.vm("web1"))
        d.fails("set", "off1", "--autostart", "maybe", rc=2,
                contains='--autostart: "maybe" is not yes/no, on/off, true/false or 1/0')
        d.fails("set", "off1", "--autostart", rc=2, contains="option --autostart needs a value")
        d.fails("set", "off1", "--autostart", "on", "--autostart", "off", rc=2,
                contains="--autostart given twice")
        d.fails("set", "off1", rc=2, contains="nothing to change")
        # create keeps its flag
        d.ok("create", "auto1", "--startup", "256M", "--autostart", "-o", f"trace={DATA}/small.csv")
        check(d.vm("auto1")["autostart"] is True, "create --autostart", d.vm("auto1"))
        d.ok("set", "auto1", "--autostart", "0")
        check(d.vm("auto1")["autostart"] is False, "a created VM's too", d.vm("auto1"))


@tap.case
def set_reset_hands_settings_back_to_the_file(bins):
    usage = subprocess.run([bins[1], "--help"], capture_output=True, text=True).stdout
    check("--reset KEY[,KEY...]" in usage, "set's --reset in the usage", usage)
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        check(d.vm("web1")["overrides"] == [], "a VM of the file: nothing overridden yet",
              d.vm("web1"))
        d.ok("set", "web1", "--buffer", "50", "--weight", "9000", "--minimum", "256M")
        d.ok("set", "web1", "--autostart", "off")
        v = d.vm("web1")
        check(v["overrides"] == ["minimum_bytes", "buffer_percent", "weight", "autostart"],
              "the overrides listed", v)
        out = d.ok("show", "web1").out
        check(re.search(r"^Overridden: +minimum, buffer, weight, autostart$", out, re.M),
              "show says which settings are overrides", out)
        # the notes cite the line of each key the value comes from, not the section's
        with open(d.conf) as f:
            lines = f.read().split("\n")
        section = lines.index('[vm "web1"]')
        minimum = lines.index("minimum = 512M", section) + 1
        autostart = lines.index("autostart = yes", section) + 1
        r = d.ok("set", "web1", "--reset", "weight")
        check(r.out == f"web1: weight (the default) from {d.conf} again\n",
              "the note: weight is not in the file", r)
        v = d.vm("web1")
        check(v["weight"] == 5000 and v["buffer_percent"] == 50 and
              v["overrides"] == ["minimum_bytes", "buffer_percent", "autostart"],
              "weight back to the file's, the others kept", v)
        # The file's minimum 512M is above the running VM's 256M: a running VM's minimum is
        # only lowered, so that value waits for the VM to be off, as at a reload.
        r = d.ok("set", "web1", "--reset", "all")
        check(r.out == f"web1: minimum (line {minimum}), buffer (the default), autostart "
              f"(line {autostart}) from {d.conf} again\n", "the note names them, with lines", r)
        check(r.err == "dynmem: warning: web1: minimum kept while the VM runs (minimum can only "
              f"be lowered while the VM is running); minimum (line {minimum}) from {d.conf} "
              "is taken once it is off\n", "the warning says what waits, why and from where", r)
        v = d.vm("web1")
        check(v["buffer_percent"] == 20 and v["autostart"] is True and v["overrides"] == [] and
              v["minimum_bytes"] == 256 * MIB and v["reset_pending"] == ["minimum_bytes"],
              "the file's values taken where a running VM can", v)
        out = d.ok("show", "web1").out
        check(re.search(r"^Overridden: +none$", out, re.M) and
              re.search(r"^Waits for off: +minimum ", out, re.M), "show says so", out)
        d.ok("stop", "web1")
        wait_for(lambda: d.vm("web1")["minimum_bytes"] == 512 * MIB, "the file's minimum once off")
        check(d.vm("web1")["reset_pending"] == [], "nothing waits any more", d.vm("web1"))
        check(f"web1: off: minimum (line {minimum}) from {d.conf} now" in d.log(), "logged",
              d.log())
        # a reset of what was never overridden changes nothing and says so
        r = d.ok("set", "off1", "--reset", "weight,buffer")
        check("off1: nothing to reset: none of it was set with dynmem set" in r.out, "said", r)
        # several words, repeated options
        d.ok("set", "off1", "--weight", "1", "--buffer", "30", "--lend", "off")
        d.ok("set", "off1", "--reset", "weight,lend", "--reset", "buffer")
        check(d.vm("off1")["overrides"] == [], "every word taken", d.vm("off1"))


@tap.case
def set_reset_refusals(bins):
    with running(bins, CONFIG) as d:
        d.ok("create", "c1", "--startup", "256M", "-o", f"trace={DATA}/small.csv")
        check("overrides" not in d.vm("c1"), "a created VM has no overrides to show", d.vm("c1"))
        d.fails("set", "c1", "--reset", "all",
                contains="c1: made with dynmem create, so ")
        d.fails("set", "c1", "--reset", "weight", contains="has no values to go back to")
        d.fails("set", "nope", "--reset", "all", contains="dynmem: nope: no such VM")
        d.fails("set", "off1", "--reset", "bogus", rc=2,
                contains='--reset: "bogus" is not a setting')
        d.fails("set", "off1", "--reset", "buffer_percent", rc=2,
                contains='--reset: "buffer_percent" is not a setting')
        d.fails("set", "off1", "--reset", rc=2, contains="option --reset needs a value")
        d.fails("set", "off1", "--reset", "weight,", rc=2, contains='"weight," is not KEY[,KEY...]')
        d.fails("set", "off1", "--reset", "weight", "--buffer", "30", rc=2,
                contains="set: --reset goes alone")
        d.fails("set", "off1", "--reset", "all", "--autostart", "on", rc=2,
                contains="set: --reset goes alone")
        d.fails("create", "c2", "--reset", "all", rc=2, contains="unknown option --reset")


@tap.case
def set_on_an_unknown_vm(bins):
    with running(bins, CONFIG) as d:
        d.fails("set", "nope", "--weight", "1", contains="dynmem: nope: no such VM")


if __name__ == "__main__":
    main(tap)
