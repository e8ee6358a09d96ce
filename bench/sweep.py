#!/usr/bin/env python3
"""sweep: the capacity curve of the 80 Bitbrains VMs, from dynmem-sim --sweep.

The real-traces host of bench/bitbrains_data.py (30 s steps, buffer 20, 256 MiB of
guest swap, 3 days) at every host size from 40 to 96 GiB in steps of 4 GiB, under
static, hyperv and dynmem, with the service level "short at most 0.1 % of VM-seconds":

    dynmem-sim SCENARIO --sweep memory=40G:96G:4G --slo short=0.1% --report sweep.html

prints the numbers as a markdown table and the smallest host per policy, writes the
page and a PNG of its curves (headless Chromium) to --out, and times the sweep
(--runs times, the median, with the load average: the machine is shared).

    bench/sweep.py [--out DIR] [--runs 3] [--interp linear|step|jump|wander]

Without the dataset it says so and exits 0; with $DYNMEM_BITBRAINS naming a folder that is
neither a trace set nor a month of the archive's raw files, it says why and exits 1.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitbrains_data as bb  # noqa: E402
import simbench  # noqa: E402

POLICIES = ("static", "hyperv", "dynmem")


def screenshot(page, png):
    chromium = shutil.which("chromium")
    if not chromium:
        print("(no chromium: no PNG)")
        return
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={png}", "--window-size=760,1010",
                    "file://" + os.path.abspath(page)],
                   capture_output=True, timeout=300, check=False)
    print(f"curves: {png}" if os.path.exists(png) else "(chromium wrote no PNG)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--interp", default="linear", choices=bb.FILLS)
    args = ap.parse_args()
    dataset = bb.find_dataset()
    if not dataset:
        print("sweep: the Bitbrains dataset was not found (set DYNMEM_BITBRAINS); skipped")
        return 0
    sim = simbench.find_sim()
    os.makedirs(args.out, exist_ok=True)
    page = os.path.join(args.out, f"sweep-bitbrains-{args.interp}.html")
    with tempfile.TemporaryDirectory() as tmp:
        names = bb.subset(dataset, "all")
        path = bb.scenario(dataset, tmp, names, "64G", interp=args.interp, tag="bitbrains-80vms-3days")
        walls, out = [], None
        for _ in range(args.runs):
            load = os.getloadavg()[0]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            p = subprocess.run([sim, path, "--sweep", "memory=40G:96G:4G", "--slo", "short=0.1%",
                                "--json", "--report", page], capture_output=True, text=True,
                               check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = json.loads(p.stdout)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            walls.append((out["wall_s"], load, cpu))
    print(f"80 Bitbrains VMs, 3 days, {args.interp} interpolation; sweep of 15 sizes x 3"
          f" policies on {out['workers']} workers: wall"
          f" {statistics.median(w for w, _, _ in walls):.1f} s, CPU"
          f" {statistics.median(c for _, _, c in walls):.1f} s (medians of {len(walls)}; each: "
          + ", ".join(f"{w:.1f} s wall, {c:.1f} s CPU at load {la:.1f}" for w, la, c in walls)
          + ")\n")
    print("| host GiB | " + " | ".join(f"{p} short % | {p} OOM | {p} mean GiB" for p in POLICIES)
          + " |")
    print("|---:|" + "---:|---:|---:|" * len(POLICIES))
    by = {(pt["memory_bytes"], pt["policy"]): pt for pt in out["points"]}
    for size in sorted({pt["memory_bytes"] for pt in out["points"]}):
        cells = []
        for p in POLICIES:
            pt = by[(size, p)]
            star = "" if pt["started"] == pt["vms"] else f" ({pt['started']} started)"
            cells.append(f"{pt['short_share'] * 100:.4f}{star} | {pt['oom_kills']} |"
                         f" {pt['host_mean_bytes'] / bb.GIB:.1f}")
        print(f"| {size // bb.GIB} | " + " | ".join(cells) + " |")
    print("\nsmallest host with every VM started and short at most 0.1 % of VM-seconds: "
          + ", ".join(f"{p} {(out['smallest_bytes'][p] or 0) // bb.GIB or 'none'}"
                      + (" GiB" if out['smallest_bytes'][p] else "") for p in POLICIES))
    screenshot(page, os.path.splitext(page)[0] + ".png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
