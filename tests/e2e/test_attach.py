#!/usr/bin/env python3
"""STATE_DIR/running.json, on the simulated backend (no guest needed): it
lists the VMs that hold memory and is rewritten when one starts or stops;
after `kill -9 dynmemd` a restart reads it, and a VM whose backend has
nothing left of it (every simulated VM) is off with the reason logged, then
autostarted as usual; a damaged file is set aside; a VM it lists that the
configuration no longer defines is left alone with a warning; a state
directory that cannot be written is logged once. Reattaching to a running
QEMU is e2e-grow's. Prints TAP.

usage: test_attach.py DYNMEMD DYNMEM
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Daemon, Tap, check, dynamic_vm, main, sim_host, static_vm,  # noqa: E402
                        wait_for)


tap = Tap()

CONFIG = (sim_host("8G")
          + dynamic_vm("web1", "flat-300m.csv")
          + static_vm("db1", "512M", "small.csv"))


def running_file(d):
    with open(os.path.join(d.state_dir, "running.json")) as f:
        return json.load(f)


def listed(d):
    try:
        return {v["name"]: v for v in running_file(d)["vms"]}
    except (OSError, ValueError):
        return None


@tap.case
def running_vms_are_listed_and_unlisted(bins):
    with Daemon(bins, CONFIG) as d:
        d.start()
        d.wait_state("web1", "running")
        vms = wait_for(lambda: (lambda x: x if x and "web1" in x else None)(listed(d)),
                       "web1 in running.json")
        check(vms["web1"]["state"] == "running" and vms["web1"]["assigned_bytes"] > 0,
              "with its state and memory", vms)
        check("db1" not in vms, "an off VM is not listed", vms)
        d.ok("start", "db1")
        wait_for(lambda: "db1" in (listed(d) or {}), "db1 listed once started")
        d.ok("stop", "db1")
        wait_for(lambda: "db1" not in (listed(d) or {"db1": 1}), "db1 unlisted once stopped")
        check(not os.path.exists(os.path.join(d.state_dir, "running.json.tmp")),
              "no temporary file left")
        f = running_file(d)
        check(f["version"] == 1 and isinstance(f["host"], dict), "versioned, with host counters", f)
        check(d.stop() == 0, "clean exit", d.log())
        check("web1" in listed(d), "still listed after SIGTERM: guests outlive dynmemd", listed(d))


@tap.case
def after_kill_9_a_vm_with_nothing_left_is_off_and_autostarts(bins):
    with Daemon(bins, CONFIG) as d:
        d.start()
        d.wait_state("web1", "running")
        d.ok("start", "db1")
        wait_for(lambda: {"web1", "db1"} <= set(listed(d) or {}), "both listed")
        d.proc.kill()
        d.proc.wait()
        d.start()
        log = d.log()
        for name in ("web1", "db1"):
            check(f"{name}: was running when dynmemd stopped; nothing of it runs now: off" in log,
                  f"{name}: the reason is logged", log)
        check(d.vm("db1")["state"] == "off", "db1 is off", d.vm("db1"))
        d.wait_state("web1", "running")  # autostart, as at every start
        wait_for(lambda: set(listed(d) or {}) == {"web1"}, "running.json follows")
        check(d.stop() == 0, "clean exit", d.log())


@tap.case
def a_damaged_file_is_set_aside(bins):
    with Daemon(bins, CONFIG) as d:
        d.write_state("running.json", '{"version": 1, "vms": [{"name": "web1", "state": '
                      '"flying", "assigned_bytes": 1, "target_bytes": 1}]}')
        d.start()
        check(os.path.exists(os.path.join(d.state_dir, "running.json.bad")), "set aside",
              d.log())
        check('state "flying" is not running or stopping' in d.log(), "the reason is logged",
              d.log())
        d.wait_state("web1", "running")
        wait_for(lambda: "web1" in (listed(d) or {}), "a good file written again")
        check(d.stop() == 0, "clean exit", d.log())


@tap.case
def bad_values_are_refused(bins):
    cases = [
        ('{"version": 2, "vms": []}', "version 2, written by a newer dynmemd"),
        ('{"version": 1, "vms": [{"name": "web1", "state": "running", "assigned_bytes": -1, '
         '"target_bytes": 0}]}', "sizes out of range"),
        ('{"version": 1, "vms": [{"name": "../x", "state": "running", "assigned_bytes": 1, '
         '"target_bytes": 0}]}', "invalid VM name"),
        ('{"version": 1, "host": {"crashes": 99999999999999999999}, "vms": []}', ""),
        ('{"version": 1, "vms": [{"name": "a", "state": "running", "assigned_bytes": 1, '
         '"target_bytes": 1}, {"name": "a", "state": "running", "assigned_bytes": 1, '
         '"target_bytes": 1}]}', "listed twice"),
        ('{"version": 1, "vms": {}}', "expected"),
        ("[1, 2", ""),
    ]
    for text, reason in cases:
        with Daemon(bins, CONFIG) as d:
            d.write_state("running.json", text)
            d.start()
            check(os.path.exists(os.path.join(d.state_dir, "running.json.bad")),
                  "set aside: " + text, d.log())
            check(reason in d.log(), f"reason {reason!r}", d.log())
            check(d.stop() == 0, "clean exit", d.log())


@tap.case
def a_vm_no_longer_defined_is_left_alone(bins):
    with Daemon(bins, CONFIG) as d:
        d.write_state("running.json", json.dumps({"version": 1, "vms": [
            {"name": "gone", "state": "running", "assigned_bytes": 1 << 30,
             "target_bytes": 1 << 30}]}))
        d.start()
        check("gone: was running when dynmemd stopped but is no longer defined" in d.log(),
              "warned", d.log())
        check("gone" not in (listed(d) or {}), "not listed any more", listed(d))
        check(d.stop() == 0, "clean exit", d.log())


@tap.case
def an_unwritable_state_dir_is_logged_once(bins):
    d = Daemon(bins, CONFIG)
    blocker = os.path.join(d.dir, "blocker")
    open(blocker, "w").close()
    d.state_dir = os.path.join(blocker, "state")
    d.write_config(CONFIG)
    try:
        d.start()
        d.wait_state("web1", "running")
        d.ok("start", "db1")
        d.ok("stop", "db1")
        n = d.log().count("cannot write " + d.state_dir + "/running.json")
        check(n == 1, "one error line for writing running.json", n, d.log())
        check(d.proc.poll() is None, "dynmemd carries on")
    finally:
        d.stop()
        d.cleanup()


if __name__ == "__main__":
    main(tap)
