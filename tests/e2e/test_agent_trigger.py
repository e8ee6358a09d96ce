#!/usr/bin/env python3
"""dynmem-guest with its stall reports turned off, as bench/qemu runs it for the
"plain 1 s reports" half of the reaction benchmark: `--no-trigger`, or the
word dynmem.agent.trigger=0 on the kernel command line (what the bundled
image's agent reads, since init passes no options). On a fake /proc (the
setting of tests/agent/test_guest_local.py, where no trigger can be armed
and the agent polls instead), a growing stall brings no cause=psi report but
the periodic reports still carry the PSI figures; a command line that only
looks similar leaves stall reports on. Prints TAP.

usage: test_agent_trigger.py DYNMEM_GUEST AGENT_PEER
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (PSI_IDLE, WAIT, Agent, Peer, Tap, make_root, write,  # noqa: E402
                        write_in_place)


STALL = ("some avg10=9.00 avg60=1.00 avg300=0.20 total={}\n"
         "full avg10=1.00 avg60=0.00 avg300=0.00 total=500\n")


def session(t, agent_exe, peer_exe, tmp, cmdline, args, stall_reports, name):
    root = os.path.join(tmp, name)
    make_root(root)
    write(f"{root}/proc/cmdline", cmdline + "\n")
    port = os.path.join(root, "dev", "vport0p1")
    # each wait below ends once what it awaits has come, within WAIT (60 s) however
    # loaded the machine is; the peer outlives them all
    peer = Peer(peer_exe, port, "--listen", "--interval", "200", timeout=6 * WAIT)
    agent = Agent(agent_exe, root, tmp, *args)
    try:
        ready = peer.wait_for(lambda l: l.startswith("ready "), WAIT)
        t.ok(ready is not None, f"{name}: handshake", peer.text() + "\n" + agent.text())
        # some pressure first: the polling fallback starts looking (when it is on)
        write_in_place(f"{root}/proc/pressure/memory", STALL.format(1000))
        r = peer.report(WAIT, lambda x: x["some_total_us"] == 1000)
        t.ok(r is not None, f"{name}: PSI figures are reported", peer.text()[-800:])
        time.sleep(0.3)
        write_in_place(f"{root}/proc/pressure/memory", STALL.format(61000))
        if stall_reports:
            # a stall goes on: its total keeps growing (as the kernel's does), so a
            # busy machine that delays the agent's first look cannot hide it
            r, total, deadline = None, 61000, time.monotonic() + WAIT
            while r is None and time.monotonic() < deadline:
                r = peer.report(0.2, lambda x: x["cause"] == "psi")
                total += 20000
                write_in_place(f"{root}/proc/pressure/memory", STALL.format(total))
            t.ok(r is not None, f"{name}: a stall is reported at once", peer.text()[-800:])
        else:
            # wait for three periodic reports carrying the stall: none of them a psi one
            seen = []
            while len(seen) < 3:
                r = peer.report(WAIT, lambda x: x["some_total_us"] == 61000)
                if r is None:
                    break
                seen.append(r["cause"])
            t.ok(len(seen) == 3 and "psi" not in seen,
                 f"{name}: the stall shows in periodic reports only", seen)
            t.ok("PSI read, no stall reports" in agent.text(), f"{name}: the agent says so",
                 agent.text())
        write_in_place(f"{root}/proc/pressure/memory", PSI_IDLE)
    finally:
        agent.stop()
        peer.stop()


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    agent_exe, peer_exe = map(os.path.abspath, sys.argv[1:])
    t = Tap()
    tmp = tempfile.mkdtemp(prefix="dmg-", dir="/tmp")
    base = "console=ttyS0 quiet dynmem.load=ramp:100M:1s"
    try:
        session(t, agent_exe, peer_exe, tmp, base + " dynmem.agent.trigger=0", [], False,
                "cmdline")
        session(t, agent_exe, peer_exe, tmp, base, ["--no-trigger"], False, "option")
        session(t, agent_exe, peer_exe, tmp,
                base + " xdynmem.agent.trigger=0 dynmem.agent.trigger=01", [], True, "lookalike")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
