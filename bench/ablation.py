#!/usr/bin/env python3
"""ablation: what each part of the dynmem policy adds, on the real traces.

Each row turns one part off through its tunable (docs/policy.md) and replays the
Bitbrains host of bench/bitbrains_data.py; ratios are against `hyperv` in the same run:

    projection      persistence_max_permille = 0, trend_lookahead = 0s
                    (the figure as reported: no change carried on)
    learned headroom  headroom_permille = 0 (the buffer only)
    headroom pool   headroom_pool_percent = 0 (each VM max(its cover, its buffer))
    kill weight     headroom_kill_weight = 0 (a rise past the cover and the guest's swap
                    counted as any other miss)
    cover per time  headroom_period = 0s (the cover's share counted per decision)
    band            grow_band_percent = 100, shrink_band_percent = 0
                    (grow whenever below want, shrink whenever above it: the deadband only)
    slow shrink     shrink_delay = 0s, shrink_step_percent = 100
                    (no waiting after a peak, no steps)
    probe           probe_max_percent = 0 (figures believed when they may over-count)

Sets: the tuning half, the held-out half (32 GiB each), all 80 VMs on 64 GiB and on a
tight 48 GiB, with linear interpolation between samples, and the tuning half and all 80
on 64 GiB with the samples held as steps.

    bench/ablation.py

Without the dataset it says so and exits 0; with $DYNMEM_BITBRAINS naming a folder that is
neither a trace set nor a month of the archive's raw files, it says why and exits 1.
"""
import concurrent.futures
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitbrains_data as bb  # noqa: E402
import simbench  # noqa: E402

VARIANTS = [
    ("dynmem", {}),
    ("without projection", {"persistence_max_permille": 0, "trend_lookahead": "0s"}),
    ("without learned headroom", {"headroom_permille": 0}),
    ("without headroom pool", {"headroom_pool_percent": 0}),
    ("without kill weight", {"headroom_kill_weight": 0}),
    ("cover per decision", {"headroom_period": "0s"}),
    ("without band", {"grow_band_percent": 100, "shrink_band_percent": 0}),
    ("without slow shrink", {"shrink_delay": "0s", "shrink_step_percent": 100}),
    ("without probe", {"probe_max_percent": 0}),
]
SETS = [  # label, subset, memory (None: 64 GiB scaled), interpolation
    ("tuning half, linear", "tune", None, "linear"),
    ("held-out half, linear", "held-out", None, "linear"),
    ("all 80, 64 GiB, linear", "all", None, "linear"),
    ("all 80, 48 GiB, linear", "all", "48G", "linear"),
    ("tuning half, step", "tune", None, "step"),
    ("all 80, 64 GiB, step", "all", None, "step"),
]


def ratio(a, b):
    return f"{a / b:.2f}" if b else "n/a"


def main():
    dataset = bb.find_dataset()
    if not dataset:
        print("ablation: the Bitbrains dataset was not found (set DYNMEM_BITBRAINS); skipped")
        return 0
    sim = simbench.find_sim()
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        jobs = {}
        for k, (label, which, memory, interp) in enumerate(SETS):
            names = bb.subset(dataset, which)
            memory = memory or bb.host_memory(names)
            for v, (variant, keys) in enumerate(VARIANTS):
                path = bb.scenario(dataset, tmp, names, memory, interp=interp, policy_keys=keys,
                                   tag=f"a{k}-{v}")
                jobs[(label, variant)] = pool.submit(simbench.run, sim, path, "dynmem")
                if v == 0:
                    jobs[(label, "hyperv")] = pool.submit(simbench.run, sim, path, "hyperv")
        for label, _, _, _ in SETS:
            h = jobs[(label, "hyperv")].result()
            print(f"\n{label}: hyperv short {h['short_seconds']:,.0f} VM-s, "
                  f"{h['host_mean_bytes'] / bb.GIB:.2f} GiB, {h['resize_ops']:,} resizes, "
                  f"{h['oom_kills']} OOM kills\n")
            print("| variant | short vs hyperv | memory vs hyperv | resizes vs hyperv |"
                  " OOM kills |")
            print("|---|---:|---:|---:|---:|")
            for variant, _ in VARIANTS:
                r = jobs[(label, variant)].result()
                print(f"| {variant} | {ratio(r['short_seconds'], h['short_seconds'])} |"
                      f" {r['host_mean_bytes'] / h['host_mean_bytes']:.3f} |"
                      f" {ratio(r['resize_ops'], h['resize_ops'])} | {r['oom_kills']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
