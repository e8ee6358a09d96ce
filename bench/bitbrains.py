#!/usr/bin/env python3
"""bitbrains: how small a host carries 80 real VMs with no OOM kill, per policy.

The 80 memory traces come from the GWA-T-12 Bitbrains trace (Rnd sub-trace, 3 days,
5-minute samples of VMware active memory). They are not part of dynmem: point
DYNMEM_BITBRAINS at a folder holding vm001.csv..vm080.csv and capacity.csv in the
simulator's format (see ../shared/datasets/bitbrains-rnd/SOURCE.md, which also says how
to cite the data: S. Shen, V. van Beek, A. Iosup, CCGrid 2015). Without it, the
benchmark says so and exits 0.

Every VM gets maximum = its provisioned memory; dynamic VMs start with enough for the
trace's first sample plus 20 % (at least 1 GiB, at most the maximum: the traces begin
mid-life, not at boot) and may shrink to min(256 MiB, startup). For static, every VM keeps its
provisioned memory (what the operator reserved without Dynamic Memory). For each
policy a bisection finds the smallest host memory (to 1 GiB) that carries all 80 with
no OOM kill and every VM started. The simulated step is 5 s (the traces change every
300 s).

    bench/bitbrains.py [--days N] [--swap SIZE]

With --swap (e.g. 256M) every VM has that much guest swap, so a brief shortfall is
paging rather than an OOM kill.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitbrains_data as bb  # noqa: E402
import simbench  # noqa: E402

GIB = bb.GIB
MIB = bb.MIB
find_dataset = bb.find_dataset
align = bb.align


def first_demand(dataset, name):
    return bb.read_trace(dataset, name)[1][0]


def scenario(dataset, memory, days, static, swap="0"):
    lines = ["[host]", f"memory = {memory}", "", "[sim]", f"duration = {days * 24}h",
             "step = 5s", "report_interval = 5s", ""]
    for name, provisioned in sorted(bb.capacities(dataset).items()):
        prov = align(provisioned)
        lines += [f'[vm "{name}"]', f"trace = {os.path.join(dataset, name + '.csv')}",
                  f"swap = {swap}"]
        if static:
            lines += ["dynamic = no", f"startup = {prov}"]
        else:
            startup = min(prov, max(GIB, align(first_demand(dataset, name) * 6 // 5)))
            minimum = max(32 * MIB, min(256 * MIB, startup))
            lines += ["dynamic = yes", f"startup = {startup}", f"minimum = {minimum}",
                      f"maximum = {prov}"]
        lines.append("")
    return "\n".join(lines)


def carries(sim, dataset, memory, days, policy, tmp, swap):
    path = os.path.join(tmp, "bitbrains.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write(scenario(dataset, memory, days, policy == "static", swap))
    r = simbench.run(sim, path, policy)
    return r["oom_kills"] == 0 and r["refused"] == 0, r


LIMIT_GIB = 512


def smallest_host(sim, dataset, days, policy, tmp, swap):
    """Smallest host in GiB with no OOM kill, or None when even LIMIT_GIB is not enough."""
    ok, best = carries(sim, dataset, LIMIT_GIB * GIB, days, policy, tmp, swap)
    if not ok:
        return None, best
    lo, hi = 1, LIMIT_GIB
    while lo < hi:
        mid = (lo + hi) // 2
        ok, r = carries(sim, dataset, mid * GIB, days, policy, tmp, swap)
        if ok:
            hi, best = mid, r
        else:
            lo = mid + 1
    return lo, best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--swap", default="0")
    args = ap.parse_args()
    dataset = find_dataset()
    if not dataset:
        print("bitbrains: dataset not found (set DYNMEM_BITBRAINS); skipped")
        return 0
    sim = simbench.find_sim()
    print(f"80 Bitbrains VMs, {args.days} day(s), provisioned 387.5 GiB in all, guest swap"
          f" {args.swap}")
    print("| policy | smallest host with no OOM kill (GiB) | vs static | OOM kills at that size"
          f" (or at {LIMIT_GIB} GiB) | short VM-s | host mean GiB | resizes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        results = {p: smallest_host(sim, dataset, args.days, p, tmp, args.swap)
                   for p in ("static", "hyperv", "dynmem")}
    base = results["static"][0]
    for p, (gib, r) in results.items():
        size = str(gib) if gib else f"none up to {LIMIT_GIB}"
        vs = f"{gib / base:.2f}" if gib and base else "n/a"
        print(f"| {p} | {size} | {vs} | {r['oom_kills']} | {r['short_seconds']:.0f} |"
              f" {r['host_mean_bytes'] / GIB:.1f} | {r['resize_ops']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
