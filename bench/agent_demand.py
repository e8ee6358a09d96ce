#!/usr/bin/env python3
"""agent_demand: does the agent-based demand estimate track a guest's true demand?

Boots the bundled guest image with dynmem-guest and dynmem-load under QEMU
(no daemon), runs a dynmem-load plan with plateaus, follows the console's
"dynmem-load: holding N MiB" lines, and reads the agent's reports through
agent-peer (lib/agent.c: the same parser and estimate the daemon uses). At
the end of each plateau it compares, over the last reports:

  true      = what dynmem-load holds + the guest's own use when idle
              (MemTotal - MemAvailable on the first, empty plateau)
  estimate  = lib/agent.c's demand (docs/demand.md)
  naive     = MemTotal - MemAvailable (no balloon correction)
  committed = Committed_AS

A last plateau inflates the balloon (deflate-on-oom) by --balloon MiB while
the load holds still: ballooned pages look used inside the guest, and only
the estimate takes them off. Prints a Markdown table for
docs/benchmarks-agent.md.

usage: bench/agent_demand.py [--build DIR] [--mem MIB] [--plateaus LIST] [--hold S]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, "tests"))
from dynmemtest import GuestVM, Peer, build_image, parse_fields  # noqa: E402

MIB = 1 << 20


def plan_spec(plateaus, hold_s):
    steps = [f"hold:{hold_s}s"]
    for p in plateaus:
        steps += [f"ramp:{p}M:2s", f"hold:{hold_s}s"]
    return ",".join(steps)


class Console:
    """Follows the console log; remembers when each 'holding N MiB' line arrived."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.held = []  # (host monotonic s, MiB)

    def poll(self):
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.pos)
                text = f.read()
        except OSError:
            return
        cut = text.rfind("\n") + 1
        self.pos += len(text[:cut].encode(errors="replace"))
        now = time.monotonic()
        for line in text[:cut].splitlines():
            if line.startswith("dynmem-load: holding "):
                self.held.append((now, int(line.split()[2])))

    def stable(self, mib, lines):
        """True when the last `lines` lines all say `mib`."""
        last = [m for _, m in self.held[-lines:]]
        return len(last) == lines and all(m == mib for m in last)


def reports_since(peer, t0_ms):
    return [parse_fields(l) for l in peer.lines
            if l.startswith("report ") and parse_fields(l).get("rx_ms", 0) >= t0_ms]


def measure(peer, window_s):
    """Medians over the reports of the last window_s seconds."""
    rs = [r for r in reports_since(peer, time.monotonic() * 1000 - window_s * 1000)
          if isinstance(r.get("demand"), int)]
    if not rs:
        return None
    med = lambda k: statistics.median(r[k] for r in rs)
    return {"estimate": med("demand"), "naive": med("total") - med("avail"),
            "committed": med("committed"), "total": med("total"), "n": len(rs),
            "balloon": med("balloon")}


def wait_plateau(vm, console, peer, mib, settle_lines, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        console.poll()
        if console.stable(mib, settle_lines):
            return True
        if vm.proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def row(name, held, true, m):
    err = (m["estimate"] - true) / true * 100
    cerr = (m["committed"] - true) / true * 100
    return (f"| {name} | {held} | {true / MIB:.0f} | {m['estimate'] / MIB:.0f} | {err:+.1f} % "
            f"| {m['naive'] / MIB:.0f} | {m['committed'] / MIB:.0f} | {cerr:+.1f} % |"), err, cerr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(SOURCE, "build"))
    ap.add_argument("--mem", type=int, default=512, help="guest base memory, MiB")
    ap.add_argument("--plateaus", default="64,128,256,384,128",
                    help="MiB dynmem-load holds, in order")
    ap.add_argument("--hold", type=int, default=12, help="seconds per plateau")
    ap.add_argument("--balloon", type=int, default=128, help="MiB to balloon at the end (0: no)")
    args = ap.parse_args()
    plateaus = [int(x) for x in args.plateaus.split(",")]
    exes = {"guest": "guest/agent/dynmem-guest", "load": "tests/agent/dynmem-load",
            "peer": "tests/agent/agent-peer"}
    exes = {k: os.path.join(args.build, v) for k, v in exes.items()}
    for k, v in exes.items():
        if not os.access(v, os.X_OK):
            sys.exit(f"agent_demand: {v} missing (ninja -C {args.build})")
    image = os.path.join(args.build, "bench", "agent-guest-image")
    why = build_image(image, [exes["guest"], exes["load"]], SOURCE)
    if why:
        sys.exit(f"agent_demand: {why}")

    tmp = tempfile.mkdtemp(prefix="dmb-", dir="/tmp")
    spec = plan_spec(plateaus, args.hold)
    vm = GuestVM(image, tmp, mem_mib=args.mem, vmem_mib=512, append=f"dynmem.load={spec}")
    peer = Peer(exes["peer"], vm.agent_sock, timeout=3600)
    console = Console(vm.console)
    rows, errs, cerrs = [], [], []
    settle = max(3, args.hold - 4)  # seconds of console lines before measuring
    window = max(2, args.hold - settle - 1)
    try:
        if not wait_plateau(vm, console, peer, 0, settle, 300):
            sys.exit("agent_demand: the guest did not start its load\n" + vm.console_text()[-2000:])
        idle = measure(peer, window)
        baseline = idle["naive"]
        rows.append(f"| idle | 0 | {baseline / MIB:.0f} | {idle['estimate'] / MIB:.0f} | — "
                    f"| {idle['naive'] / MIB:.0f} | {idle['committed'] / MIB:.0f} | "
                    f"{(idle['committed'] - baseline) / baseline * 100:+.1f} % |")
        for i, mib in enumerate(plateaus):
            if not wait_plateau(vm, console, peer, mib, settle, 120):
                sys.exit(f"agent_demand: plateau {mib} MiB not reached\n" +
                         vm.console_text()[-2000:])
            m = measure(peer, window)
            text, e, c = row(f"{i + 1}", mib, baseline + mib * MIB, m)
            rows.append(text)
            errs.append(e)
            cerrs.append(c)
        if args.balloon:
            mib = plateaus[-1]
            vm.balloon((args.mem - args.balloon) * MIB)
            time.sleep(args.hold)
            m = measure(peer, window)
            text, e, c = row(f"{len(plateaus)} + balloon {args.balloon} MiB", mib,
                             baseline + mib * MIB, m)
            rows.append(text)
            errs.append(e)
            cerrs.append(c)
            if m["balloon"] < args.balloon * MIB * 0.9:
                print(f"note: the balloon reached only {m['balloon'] / MIB:.0f} MiB")
        reports = [parse_fields(l) for l in peer.lines if l.startswith("report ")]
    finally:
        peer.stop()
        vm.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"guest: -m {args.mem}M, MemTotal {idle['total'] / MIB:.0f} MiB; "
          f"plan {spec}; medians of the last {window} s of reports\n")
    print("| plateau | load holds (MiB) | true demand (MiB) | estimate (MiB) | error "
          "| MemTotal − MemAvailable (MiB) | Committed_AS (MiB) | Committed_AS error |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    print(f"\nestimate error: max |{max(abs(e) for e in errs):.1f}| %; "
          f"Committed_AS error: {min(cerrs):+.1f} .. {max(cerrs):+.1f} %")
    first, last = reports[0], reports[-1]
    span = (last["time_ms"] - first["time_ms"]) / 1000
    cpu = (last["self_cpu_us"] - first["self_cpu_us"]) / 1e6 / span * 100 if span > 0 else 0
    print(f"agent: RSS up to {max(r['self_rss'] for r in reports) / 1024:.0f} KiB, "
          f"CPU {cpu:.2f} % of one vCPU over {span:.0f} s (TCG), {len(reports)} reports")
    return 0 if max(abs(e) for e in errs) <= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
