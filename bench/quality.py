#!/usr/bin/env python3
"""quality: every bundled scenario under static, hyperv and dynmem, in one table.

Ratios are against hyperv measured in the same run. A second table runs dynmem with
and without pressure-stall information (psi = no on every VM), to show what stall
information adds.

    bench/quality.py [scenarios/*.ini]      (markdown on stdout)
"""
import glob
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simbench  # noqa: E402

POLICIES = ("static", "hyperv", "dynmem")


def ratio(a, b):
    return "n/a" if b == 0 else f"{a / b:.2f}"


def main():
    sim = simbench.find_sim()
    scenarios = sys.argv[1:] or sorted(
        p for p in glob.glob(os.path.join(simbench.ROOT, "scenarios", "*.ini"))
        if not p.endswith("-static.ini"))
    totals = {p: {"short": 0.0, "mem": 0.0, "ops": 0, "oom": 0} for p in POLICIES}
    print("| scenario | policy | started | OOM kills | short VM-s | host mean MiB | resizes |"
          " short vs hyperv | memory vs hyperv | resizes vs hyperv |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc in scenarios:
        res = {p: simbench.run(sim, sc, p) for p in POLICIES}
        h = res["hyperv"]
        for p in POLICIES:
            r = res[p]
            t = totals[p]
            t["short"] += r["short_seconds"]
            t["mem"] += r["host_mean_bytes"]
            t["ops"] += r["resize_ops"]
            t["oom"] += r["oom_kills"]
            print(f"| {os.path.basename(sc)} | {p} | {r['started']}/{r['vms']} | {r['oom_kills']} |"
                  f" {r['short_seconds']:.0f} | {simbench.mib(r['host_mean_bytes']):.0f} |"
                  f" {r['resize_ops']} | {ratio(r['short_seconds'], h['short_seconds'])} |"
                  f" {ratio(r['host_mean_bytes'], h['host_mean_bytes'])} |"
                  f" {ratio(r['resize_ops'], h['resize_ops'])} |")
    h = totals["hyperv"]
    for p in POLICIES:
        t = totals[p]
        print(f"| **all** | {p} | | {t['oom']} | {t['short']:.0f} | {simbench.mib(t['mem']):.0f} |"
              f" {t['ops']} | {ratio(t['short'], h['short'])} | {ratio(t['mem'], h['mem'])} |"
              f" {ratio(t['ops'], h['ops'])} |")

    print()
    print("| scenario | stall information | short VM-s | OOM kills | host mean MiB | resizes |")
    print("|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for sc in scenarios:
            off = simbench.variant(sc, lambda t: re.sub(r"^(\[vm .*\])$", r"\1\npsi = no", t,
                                                        flags=re.M).replace("psi = yes\n", ""),
                                   tmp)
            for label, path in (("yes", sc), ("no", off)):
                r = simbench.run(sim, path, "dynmem")
                print(f"| {os.path.basename(sc)} | {label} | {r['short_seconds']:.0f} |"
                      f" {r['oom_kills']} | {simbench.mib(r['host_mean_bytes']):.0f} |"
                      f" {r['resize_ops']} |")


if __name__ == "__main__":
    main()
