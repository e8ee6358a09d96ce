#!/usr/bin/env python3
"""heldout: dynmem against Hyper-V's rule on real traces it was not tuned on.

The real-traces host of bench/bitbrains_data.py (64 GiB for 80 Bitbrains VMs, 30 s
steps, buffer 20, 256 MiB of guest swap), replayed under `hyperv`, `dynmem` and an oracle
that knows the next step (bench/oracle_policy.py: the OOM kills no policy could have
avoided). The sets were fixed before the policy was tuned:

    tune       the odd-numbered VMs (tuned on), 32 GiB
    held-out   the even-numbered VMs (never tuned on), 32 GiB
    all        all 80 VMs, 64 GiB
    days-1-2   all 80 VMs, the first two days (tuned on)
    day-3      all 80 VMs, the last day (held out), startup from the demand there

Each set runs with the simulator's linear interpolation between the 5-minute samples
and with the samples held as steps (`--interp`), so that no gain can come from the
straight lines drawn between samples. Ratios are against `hyperv` in the same run.

    bench/heldout.py [--sets all,tune,...] [--interp linear,step] [--no-oracle]
                     [--policy-key KEY=VALUE ...]

Without the dataset it says so and exits 0.
"""
import argparse
import concurrent.futures
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitbrains_data as bb  # noqa: E402
import simbench  # noqa: E402

SETS = {
    "tune": ("tune", 0, 3),
    "held-out": ("held-out", 0, 3),
    "all": ("all", 0, 3),
    "days-1-2": ("all", 0, 2),
    "day-3": ("all", 2, 1),
}
ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "oracle_policy.py")


def build(dataset, tmp, set_name, interp, keys):
    which, start_day, days = SETS[set_name]
    names = bb.subset(dataset, which)
    return bb.scenario(dataset, tmp, names, bb.host_memory(names), days=days,
                       start_day=start_day, interp=interp, policy_keys=keys,
                       tag=f"{set_name}-{interp}")


def policies(path, oracle):
    out = ["hyperv", "dynmem"]
    if oracle:
        out.append(f"exec:python3 {ORACLE} {path}")
    return out


def row(label, r, h):
    def ratio(a, b):
        return f"{a / b:.2f}" if b else "n/a"
    return (f"| {label} | {r['started']}/{r['vms']} | {r['short_seconds']:,.0f} |"
            f" {r['oom_kills']} | {r['host_mean_bytes'] / bb.GIB:.2f} | {r['resize_ops']:,} |"
            f" {ratio(r['short_seconds'], h['short_seconds'])} |"
            f" {ratio(r['host_mean_bytes'], h['host_mean_bytes'])} |"
            f" {ratio(r['resize_ops'], h['resize_ops'])} |")


def verdict(r, h, o):
    """The goal, checked: short <= 0.5x, memory <= 1x, resizes <= 1/3, OOM kills."""
    miss = []
    if r["short_seconds"] > 0.5 * h["short_seconds"]:
        miss.append("short > 0.5x hyperv")
    if r["host_mean_bytes"] > h["host_mean_bytes"]:
        miss.append("memory > hyperv")
    if r["resize_ops"] * 3 > h["resize_ops"]:
        miss.append("resizes > 1/3 hyperv")
    if r["oom_kills"] > h["oom_kills"]:
        miss.append("more OOM kills than hyperv")
    if o is not None and r["oom_kills"] > o["oom_kills"]:
        miss.append("OOM kills the oracle avoids")
    return "goal met" if not miss else "not met: " + ", ".join(miss)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="tune,held-out,all,days-1-2,day-3")
    ap.add_argument("--interp", default="linear,step")
    ap.add_argument("--no-oracle", action="store_true")
    ap.add_argument("--policy-key", action="append", default=[],
                    help="KEY=VALUE for the scenario's [policy] section (experiments)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    dataset = bb.find_dataset()
    if not dataset:
        print("heldout: the Bitbrains dataset was not found (set DYNMEM_BITBRAINS); skipped")
        return 0
    sim = simbench.find_sim()
    keys = dict(kv.split("=", 1) for kv in args.policy_key)
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        jobs = {}
        for interp in args.interp.split(","):
            for set_name in args.sets.split(","):
                path = build(dataset, tmp, set_name, interp, keys)
                for p in policies(path, not args.no_oracle):
                    jobs[(interp, set_name, p[:6])] = pool.submit(simbench.run, sim, path, p)
        for interp in args.interp.split(","):
            print(f"\n### {interp} interpolation between samples\n")
            print("| set / policy | started | short VM-s | OOM kills | host mean GiB | resizes |"
                  " short vs hyperv | memory vs hyperv | resizes vs hyperv |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            verdicts = []
            for set_name in args.sets.split(","):
                res = {p: jobs[(interp, set_name, p)].result()
                       for p in ("hyperv", "dynmem", "exec:p") if (interp, set_name, p) in jobs}
                h = res["hyperv"]
                labels = {"hyperv": "hyperv", "dynmem": "dynmem", "exec:p": "oracle (next step)"}
                for p, r in res.items():
                    print(row(f"{set_name}: {labels[p]}", r, h))
                verdicts.append(f"- {set_name}: "
                                + verdict(res["dynmem"], h, res.get("exec:p")))
            print()
            print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
