#!/usr/bin/env python3
"""scale: dynmem-sim replaying 1,000 VMs for a simulated day at 1 s steps, and one
policy decision for 10,000 VMs (bench/policy_bench, with demands drawn at random and
from the bundled traces).

The 1,000 VMs take the bundled 24-hour traces in turn (scenarios/traces), each with a
512 MiB..2 GiB range, on a host sized so the VMs want more than it has at the peak.
Wall time is measured for static, hyperv and dynmem in the same run (static is the
loop with no resizing: the baseline for the cost of deciding).

    bench/scale.py [--vms N] [--duration 24h]
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simbench  # noqa: E402


def write_scenario(path, vms, duration):
    traces = sorted(t for t in glob.glob(os.path.join(simbench.ROOT, "scenarios", "traces", "*.csv"))
                    if sum(1 for _ in open(t, encoding="utf-8")) >= 1400)  # the 24 h ones
    lines = ["[host]", f"memory = {vms * 900}M", "", "[sim]", f"duration = {duration}", ""]
    for i in range(vms):
        lines += [f'[vm "vm{i:04d}"]', "dynamic = yes", "startup = 1G", "minimum = 512M",
                  "maximum = 2G", f"weight = {1000 + (i * 37) % 9000}", "swap = 256M",
                  f"trace = {traces[i % len(traces)]}", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--duration", default="24h")
    args = ap.parse_args()
    sim = simbench.find_sim()
    print(f"dynmem-sim, {args.vms} VMs, {args.duration} at 1 s steps")
    print("| policy | wall s | vs static | short VM-s | resizes |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scale.ini")
        write_scenario(path, args.vms, args.duration)
        base = None
        for policy in ("static", "hyperv", "dynmem"):
            start = time.monotonic()
            r = simbench.run(sim, path, policy)
            wall = time.monotonic() - start
            base = base or wall
            print(f"| {policy} | {wall:.1f} | {wall / base:.2f} | {r['short_seconds']:.0f} |"
                  f" {r['resize_ops']} |")
    bench = os.path.join(os.path.dirname(sim), "..", "bench", "policy_bench")
    print()
    traces = os.path.join(simbench.ROOT, "scenarios", "traces")
    print(subprocess.run([bench, "--traces", traces], check=True, capture_output=True,
                         text=True).stdout)


if __name__ == "__main__":
    main()
