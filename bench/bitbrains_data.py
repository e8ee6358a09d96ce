"""bitbrains_data: dynmem-sim scenarios built at run time from the 80 Bitbrains traces.

The traces (GWA-T-12 Bitbrains, Rnd, 3 days of VMware active memory at 5-minute samples)
are not part of dynmem: they are read from $DYNMEM_BITBRAINS or
../shared/datasets/bitbrains-rnd (see SOURCE.md there, which says how to cite them). The
scenario files and any derived traces are written to a temporary directory and never
kept.

The real-traces host (the one the policy is judged on): `memory` for the VMs (64 GiB for
all 80, proportionally less for a subset), `reserve = 4G`, 30 s steps; every VM
`dynamic = yes`, maximum its provisioned size, startup its first sample + 20 % (at
least 512 MiB, at most the maximum; sizes rounded up to 2 MiB), minimum 128 MiB (or the
startup if smaller), buffer 20, weight 5000, 256 MiB of guest swap, starting 30 s apart.

Subsets and windows, fixed before any tuning:
- the tuning half is the odd-numbered VMs (vm001, vm003, ... vm079), the held-out half
  the even-numbered ones (vm002 ... vm080);
- the time split takes the first two days (tuning) and the last day (held out); a
  window that starts later begins each VM's trace at that time, its startup sized
  from the demand there.

Interpolation: dynmem-sim interpolates linearly between trace rows. `interp="step"`
writes traces that hold each sample until the next one (a row 1 ms before each sample
repeats the previous value), so a policy cannot profit from the straight lines the
simulator draws between 5-minute samples. Two more fills, seeded by the VM's name so
that every run writes the same rows, put the change somewhere a policy cannot know:
`interp="jump"` holds each sample and makes the change to the next one at a moment
drawn uniformly within the interval (a job that starts at some point between two
samples); `interp="wander"` walks from each sample to the next in 30-s steps, a random
walk pinned at both samples (a Brownian bridge) whose spread halfway is half the
larger of the change and the VM's median change between samples, kept between half
the lower sample and the VM's provisioned size.
"""
import atexit
import bisect
import csv
import os
import random
import re
import statistics
import shutil
import sys
import tempfile
import zlib

MIB = 1 << 20
GIB = 1 << 30
DAY = 86400
ALL_DAYS = 3


_converted = {}


def usable_dataset(path, who):
    """A trace set (vmNNN.csv and capacity.csv) as it is; a folder of raw GWA-T-12 files
    (1.csv, 2.csv, ...: a month as the archive publishes it) converted once per run, as
    bench/bitbrains_convert.py does with its defaults, into a temporary set removed at
    exit; anything else ends the run, saying why (`who` names what gave the path)."""
    path = os.path.abspath(path)
    if os.path.exists(os.path.join(path, "capacity.csv")):
        return path
    if path in _converted:
        return _converted[path]
    if os.path.isdir(path) and any(re.fullmatch(r"\d+\.csv", n) for n in os.listdir(path)):
        import bitbrains_convert as bc  # noqa: E402 (only for raw folders)
        out = tempfile.mkdtemp(prefix="dynmem-bitbrains-")
        atexit.register(shutil.rmtree, out, True)
        try:
            read, qualify, taken, _, _ = bc.convert(path, out, 0, ALL_DAYS, 80, set())
        except (bc.ConvertError, OSError) as e:
            sys.exit(f"{who}: {e}")
        print(f"{who}: {path} holds raw GWA-T-12 files: {taken} of its {qualify} qualifying "
              f"VMs ({read} read) taken as bench/bitbrains_convert.py takes them, for this run",
              file=sys.stderr)
        _converted[path] = out
        return out
    sys.exit(f"{who}: {path} is neither a trace set (vmNNN.csv and capacity.csv) nor a "
             "month of raw GWA-T-12 files (1.csv, 2.csv, ...); bench/bitbrains_convert.py "
             "makes a set from such a month")


def find_dataset():
    """The folder holding vm001.csv..vm080.csv and capacity.csv, or None. $DYNMEM_BITBRAINS
    may also name a month of raw GWA-T-12 files (usable_dataset()); set to anything else,
    it ends the run with why, rather than skipping the benchmark."""
    env = os.environ.get("DYNMEM_BITBRAINS")
    if env is not None:
        return usable_dataset(env, "DYNMEM_BITBRAINS")
    # ../shared/datasets/bitbrains-rnd beside the clone, or beside a folder above it
    d = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _ in range(3):
        d = os.path.dirname(d)
        cand = os.path.join(d, "shared", "datasets", "bitbrains-rnd")
        if os.path.exists(os.path.join(cand, "capacity.csv")):
            return cand
    return None


def align(b):
    return -(-b // (2 * MIB)) * 2 * MIB


def capacities(dataset):
    with open(os.path.join(dataset, "capacity.csv"), encoding="utf-8") as f:
        return {row["vm"]: int(row["provisioned_bytes"]) for row in csv.DictReader(f)}


def vm_number(name):
    return int("".join(c for c in name if c.isdigit()) or 0)


def subset(dataset, which):
    """'all', 'tune' (odd-numbered VMs) or 'held-out' (even-numbered)."""
    names = sorted(capacities(dataset))
    if which == "tune":
        return [n for n in names if vm_number(n) % 2 == 1]
    if which == "held-out":
        return [n for n in names if vm_number(n) % 2 == 0]
    return names


def read_trace(dataset, name):
    ts, ds = [], []
    with open(os.path.join(dataset, name + ".csv"), encoding="utf-8") as f:
        f.readline()
        for line in f:
            t, d = line.split(",")
            ts.append(float(t))
            ds.append(int(d))
    return ts, ds


def value_at(ts, ds, t, interp):
    j = bisect.bisect_right(ts, t) - 1
    if j < 0:
        return ds[0]
    if j >= len(ts) - 1 or interp == "step":
        return ds[j]
    f = (t - ts[j]) / (ts[j + 1] - ts[j])
    return round(ds[j] + (ds[j + 1] - ds[j]) * f)


FILLS = ("linear", "step", "jump", "wander")
WANDER_STEP = 30.0  # seconds between the rows of a wander


def wander_rows(rng, t0, t1, d0, d1, spread, cap):
    """The rows strictly between (t0, d0) and (t1, d1) of a random walk pinned at both."""
    n = max(1, round((t1 - t0) / WANDER_STEP))
    # a bridge over n steps of deviation s spreads s * sqrt(n) / 2 halfway
    s = 2.0 * spread / n ** 0.5
    walk, w = [], 0.0
    for _ in range(n):
        w += rng.gauss(0.0, s)
        walk.append(w)
    lo, rows = min(d0, d1) / 2, []
    for k in range(1, n):
        f = k / n
        d = d0 + (d1 - d0) * f + walk[k - 1] - f * walk[-1]
        rows.append((t0 + (t1 - t0) * f, round(min(max(d, lo), cap))))
    return rows


def window_rows(ts, ds, start, end, interp, seed="", cap=None):
    """Rows (seconds from the window's start, demand) for [start, end].

    seed names the trace for the seeded fills (jump, wander); cap bounds a wander."""
    if interp not in FILLS:
        raise ValueError(f"unknown interpolation {interp} ({', '.join(FILLS)})")
    rng = random.Random(zlib.crc32(f"{seed}:{start}".encode()))
    if interp == "wander":  # the VM's median change between samples
        changes = [abs(b - a) for a, b in zip(ds, ds[1:])]
        typical = statistics.median(changes) if changes else 0
        cap = cap if cap is not None else max(ds) * 2
    first = value_at(ts, ds, start, "step" if interp in ("jump", "wander") else interp)
    rows = [(0.0, first)]
    prev_t, prev = start, first
    for t, d in zip(ts, ds):
        if t <= start:
            continue
        if t > end:
            break
        if interp == "step":
            rows.append((t - start - 0.001, prev))
        elif interp == "jump":
            # in whole milliseconds, as the rows are written: a moment at least 2 ms from
            # either sample, so that its two rows and the sample's stay in order
            p_ms, q_ms, s_ms = round(prev_t * 1000), round(t * 1000), round(start * 1000)
            if q_ms - p_ms >= 4 and d != prev:
                at = p_ms + 2 + rng.randrange(q_ms - p_ms - 3)
                rows.append(((at - 1 - s_ms) / 1000, prev))
                rows.append(((at - s_ms) / 1000, d))
                rows.append(((q_ms - 1 - s_ms) / 1000, d))
            else:  # too short to put a moment in, or no change: held, as a step
                rows.append(((q_ms - 1 - s_ms) / 1000, prev))
        elif interp == "wander":
            spread = max(abs(d - prev), typical) / 2
            rows += [(x - start, y) for x, y in wander_rows(rng, prev_t, t, prev, d, spread, cap)]
        rows.append((t - start, d))
        prev_t, prev = t, d
    return rows


def write_trace(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("seconds,demand\n")
        for t, d in rows:
            f.write(f"{t:.3f},{d}\n")


def scenario(dataset, tmp, names, memory, days=ALL_DAYS, start_day=0, interp="linear",
             policy_keys=None, step="30s", swap="256M", buffer=20, tag="s"):
    """Write a scenario for `names` and return its path. memory is a size string."""
    caps = capacities(dataset)
    start, end = start_day * DAY, (start_day + days) * DAY
    lines = ["[host]", f"memory = {memory}", "reserve = 4G", "", "[sim]", f"step = {step}",
             f"duration = {days * 24}h", ""]
    if policy_keys:
        lines += ["[policy]"] + [f"{k} = {v}" for k, v in policy_keys.items()] + [""]
    derived = start > 0 or interp != "linear"
    for i, name in enumerate(names):
        ts, ds = read_trace(dataset, name)
        path = os.path.join(dataset, name + ".csv")
        rows = window_rows(ts, ds, start, end, interp, seed=name, cap=align(caps[name]))
        if derived:
            path = os.path.join(tmp, f"{tag}-{name}.csv")
            write_trace(path, rows)
        prov = align(caps[name])
        startup = min(prov, max(512 * MIB, align(rows[0][1] * 6 // 5)))
        lines += [f'[vm "{name}"]', f"trace = {path}", "dynamic = yes", f"startup = {startup}",
                  f"minimum = {min(128 * MIB, startup)}", f"maximum = {prov}", f"buffer = {buffer}",
                  "weight = 5000", f"swap = {swap}", f"start = {30 * i}s", ""]
    path = os.path.join(tmp, f"{tag}.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def host_memory(names, total_gib=64, of=80):
    """The real-traces host scaled to a subset: 64 GiB for 80 VMs."""
    return f"{total_gib * len(names) // of}G"
