#!/usr/bin/env python3
"""same_decisions: does a change to the policy leave every decision as it was?

Replays scenarios through two builds of dynmem-sim (BASELINE, e.g. built from the
commit before a change, and the current one) under the dynmem policy, and compares
their `--json` summaries and `--timeline` CSVs (every VM's demand, assigned size,
target and reason at every step) byte for byte. For a change meant to make the policy
faster, not different. The scenarios: the bundled ones (scenarios/*.ini) and, when the
Bitbrains dataset is found (DYNMEM_BITBRAINS or the usual places, see
bitbrains_data.py), the real-traces host of bench/heldout.py: all 80 VMs, the odd and
the even ones, each with linear and step interpolation, and all 80 on 40 GiB
(scarcity).

    bench/same_decisions.py --baseline /path/to/old/dynmem-sim [--sim NEW] [--jobs N]
                            [--policy-key KEY=VALUE ...]

--policy-key adds a [policy] line to every scenario (e.g. headroom_pool_percent=100, to
compare an opt-in part that the defaults leave off).

Prints one line per scenario and exits 1 if any differs.
"""
import argparse
import concurrent.futures
import filecmp
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitbrains_data as bb  # noqa: E402
import simbench  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def with_keys(path, tmp, keys):
    """The bundled scenario at path with keys added to its [policy], in tmp beside its traces."""
    if not keys:
        return path
    folder = os.path.join(tmp, "bundled")
    if not os.path.isdir(folder):
        os.makedirs(folder)
        os.symlink(os.path.join(ROOT, "scenarios", "traces"), os.path.join(folder, "traces"))
    copy = os.path.join(folder, os.path.basename(path))
    with open(path, encoding="utf-8") as f, open(copy, "w", encoding="utf-8") as out:
        out.write(f.read() + "\n[policy]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    return copy


def scenarios(tmp, keys):
    """(label, path) of every scenario compared."""
    out = [(os.path.basename(p), with_keys(p, tmp, keys))
           for p in sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.ini")))]
    dataset = bb.find_dataset()
    if not dataset:
        print("# no Bitbrains dataset: bundled scenarios only")
        return out
    for which in ("all", "tune", "held-out"):
        names = bb.subset(dataset, which)
        for interp in ("linear", "step"):
            tag = f"{which}-{interp}"
            out.append((f"bitbrains {tag}", bb.scenario(dataset, tmp, names, bb.host_memory(names),
                                                        interp=interp, policy_keys=keys,
                                                        tag=tag)))
    names = bb.subset(dataset, "all")
    out.append(("bitbrains all on 40G", bb.scenario(dataset, tmp, names, "40G",
                                                         policy_keys=keys, tag="all-40g")))
    return out


def replay(sim, scenario, out_dir):
    """Run one build on one scenario; return the paths of its summary and timeline."""
    os.makedirs(out_dir, exist_ok=True)
    summary, timeline = os.path.join(out_dir, "summary.json"), os.path.join(out_dir, "timeline.csv")
    with open(summary, "w", encoding="utf-8") as f:
        subprocess.run([sim, scenario, "--policy", "dynmem", "--json", "--timeline", timeline],
                       stdout=f, check=True, cwd=os.path.dirname(scenario))
    return summary, timeline


def compare(baseline, sim, label, scenario, tmp):
    key = label.replace(" ", "_").replace("/", "_")
    old = replay(baseline, scenario, os.path.join(tmp, "old", key))
    new = replay(sim, scenario, os.path.join(tmp, "new", key))
    same = all(filecmp.cmp(a, b, shallow=False) for a, b in zip(old, new))
    return label, same


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="dynmem-sim built before the change")
    ap.add_argument("--sim", default=None, help="dynmem-sim to check (default: this tree's)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--policy-key", action="append", default=[], metavar="KEY=VALUE",
                    help="a [policy] line added to every scenario")
    args = ap.parse_args()
    keys = {}
    for item in args.policy_key:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            ap.error(f"--policy-key {item!r} is not KEY=VALUE")
        keys[key.strip()] = value.strip()
    # Each build runs in its scenario's folder: a relative path is taken from here first.
    baseline = os.path.abspath(args.baseline)
    sim = os.path.abspath(args.sim or simbench.find_sim())
    with tempfile.TemporaryDirectory(prefix="same-decisions-") as tmp:
        todo = scenarios(tmp, keys)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(lambda s: compare(baseline, sim, s[0], s[1], tmp), todo))
    differ = [label for label, same in results if not same]
    for label, same in results:
        print(f"{'same' if same else 'DIFFERENT':9} {label}")
    print(f"{len(results) - len(differ)} of {len(results)} scenarios decided the same")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
