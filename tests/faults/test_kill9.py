#!/usr/bin/env python3
"""kill -9 of dynmemd in the middle of resizes, on the simulated backend, then a
restart; repeated at different moments. Before each kill, settings are changed
with `dynmem set` (and a VM is made with `dynmem create`) while VMs grow and
shrink; the kill lands from at once to a little after the request. After
every kill: every *.json file in the state directory parses; after the
restart no VM is lost, no temporary file is left, every change whose reply
said "ok" is there, the autostart VMs run again, and the accounting holds
(Σ assigned ≤ memory, each VM within [minimum, maximum]) over several cycles.
Prints TAP.

usage: test_kill9.py DYNMEMD DYNMEM
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (DATA, GIB, Daemon, Tap, accounting, check, dynamic_vm,  # noqa: E402
                        leftovers, main, sim_host, state_files, static_vm, wait_for)


tap = Tap()

MEMORY = 4 * GIB
CONFIG = (sim_host("4G", policy="shrink_delay = 1s")
          + dynamic_vm("wave1", "@FAULTS@/wave.csv", maximum="3G", weight=8000)
          + dynamic_vm("wave2", "@FAULTS@/wave-b.csv", maximum="3G", weight=2000)
          + static_vm("static1", "512M", "small.csv", autostart=True)
          + static_vm("spare", "256M", "small.csv"))

CONFIGURED = {"wave1", "wave2", "static1", "spare"}
AUTOSTART = ("wave1", "wave2", "static1")

# Delays between sending the last request and the kill, in seconds: at once,
# while the request is served, just after its reply, and well after it.
DELAYS = (0.0, 0.002, 0.005, 0.01, 0.03, 0.1, 0.3)


def resizing(d):
    """A VM whose memory is on its way to another target."""
    for v in d.vms().values():
        if v["state"] == "running" and v["assigned_bytes"] != v["target_bytes"]:
            return v["name"]
    return None


def kill_during_set(d, args, delay):
    """Send `dynmem ARGS` and kill -9 dynmemd delay seconds later; the
    request's Result-like (rc, out, err), the reply possibly cut short."""
    cmd = [d.dynmem, "--socket", d.socket] + list(args)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if delay:
        time.sleep(delay)  # where the kill lands, not a check of how long anything takes
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.logf.close()
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


class Run:
    """The daemon the rounds share, and what every answered change set."""
    d = None
    expected = {}  # name -> {field: value}
    known = set(CONFIGURED)


def one_round(bins, rnd, delay):
    if Run.d is None:
        Run.d = Daemon(bins, CONFIG)
        Run.d.start()
    d = Run.d
    for name in AUTOSTART:
        d.wait_state(name, "running")
    wait_for(lambda: resizing(d), "a VM to be resizing")
    # One change answered before the kill, one racing with it.
    weight = 1000 + 1000 * rnd
    d.ok("set", "wave2", "--weight", str(weight))
    Run.expected.setdefault("wave2", {})["weight"] = weight
    new = f"made{rnd}"
    d.ok("create", new, "--startup", "256M", "-o", f"trace={DATA}/small.csv")
    Run.known.add(new)
    buffer = 10 + rnd
    rc, out, err = kill_during_set(d, ["set", "wave1", "--buffer", str(buffer)], delay)
    if rc == 0:
        Run.expected.setdefault("wave1", {})["buffer_percent"] = buffer
    # The files as the kill left them, before a restart rewrites them.
    files = state_files(d.state_dir)
    check("state.json" in files, "state.json is there", os.listdir(d.state_dir))

    d.start()
    vms = d.vms()
    check(set(vms) == Run.known, "no VM lost and none added", sorted(vms),
          sorted(Run.known), d.log())
    for name, fields in Run.expected.items():
        for field, value in fields.items():
            check(vms[name][field] == value,
                  f"{name} {field} {value}, answered ok before the kill, is kept", vms[name])
    check(not leftovers(d.state_dir), "no temporary file left", os.listdir(d.state_dir))
    state_files(d.state_dir)
    for name in AUTOSTART:
        d.wait_state(name, "running")
    # The accounting, over ten cycles of balancing after the restart.
    seen = d.json("status")["cycles"]
    while d.json("status")["cycles"] < seen + 10:
        accounting(d, MEMORY)
    accounting(d, MEMORY)


def make_round(rnd, delay):
    def fn(bins):
        one_round(bins, rnd, delay)
    fn.__name__ = f"kill_9_{delay * 1000:g}_ms_after_a_set_during_resizes_then_restart"
    return fn


for i, delay in enumerate(DELAYS):
    tap.case(make_round(i, delay))


@tap.case
def after_every_kill_sigterm_still_exits_cleanly(bins):
    d = Run.d
    check(d is not None, "a daemon ran")
    try:
        rc = d.stop()
        log = d.log()
        check(rc == 0, f"dynmemd exits with 0 at SIGTERM, not {rc}", log)
        check("ERROR: AddressSanitizer" not in log and "runtime error:" not in log,
              "no sanitizer report", log)
        state_files(d.state_dir)
        check(not leftovers(d.state_dir), "no temporary file left", os.listdir(d.state_dir))
    finally:
        d.cleanup()


if __name__ == "__main__":
    main(tap)
