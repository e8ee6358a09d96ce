#!/usr/bin/env python3
"""bitbrains_convert: a month of raw GWA-T-12 Bitbrains traces as a dynmem trace set.

Reads a folder of the archive's per-VM files (`1.csv`, `2.csv`, ..., the original
format: `;` and a tab between fields, a header, `Timestamp [ms]` holding Unix seconds,
`Memory capacity provisioned [KB]` and `Memory usage [KB]`) and writes the set that
bench/heldout.py, bench/ablation.py and bench/sweep.py read (DYNMEM_BITBRAINS): one
`vmNNN.csv` per VM (`seconds,demand`, demand in bytes), `capacity.csv`
(`vm,provisioned_bytes`), `manifest.csv` (where each VM came from) and `SOURCE.md`.

The selection is the one the shared 80-VM set was made with, so a set from another
month, another window or other VMs is the same kind of data: within each VM's window
(DAYS days from its first sample at or after the month's first timestamp plus
--start-day days), the VM qualifies only with at least 850 of every 864 samples, a
window at least DAYS days less 20 minutes long, a first sample within an hour of the
window's start, no gap over 900 s, no sample of zero usage, a coefficient of variation
of at least 0.1 and at least 100 distinct values, one provisioned size, and usage never
above it. Of the qualifying VMs, in the order of their file numbers, --vms are taken
evenly spaced. Timestamps seen twice keep their first row. Run on `rnd/2013-7` with the
defaults it writes the shared 80-VM set row for row (that copy ends its lines with CR LF).

    bench/bitbrains_convert.py SRC_DIR OUT_DIR [--start-day N] [--days N] [--vms N]
                               [--exclude MANIFEST.csv]

--exclude leaves out the VMs a set's manifest.csv names (other VMs of the same month).
OUT_DIR must not exist or be empty. Exit status: 0 written, 1 no VM qualifies or a
file cannot be read, 2 usage.
"""
import argparse
import csv
import math
import os
import re
import statistics
import sys

DAY = 86400
SAMPLE_S = 300  # the archive's sampling interval
MAX_GAP_S = 900
LATE_S = 3600
MIN_DISTINCT = 100
MIN_COV = 0.1


class ConvertError(Exception):
    pass


def read_vm(path):
    """(timestamp, provisioned KB, usage KB) rows in time order, first of equal times;
    and the number of rows that could not be read."""
    rows, bad, seen = [], 0, set()
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
        if "Memory usage" not in header:
            raise ConvertError(f"{path}: not a GWA-T-12 file (no 'Memory usage' column)")
        names = [h.strip() for h in header.split(";")]
        try:
            t_col = next(i for i, h in enumerate(names) if h.startswith("Timestamp"))
            p_col = names.index("Memory capacity provisioned [KB]")
            u_col = names.index("Memory usage [KB]")
        except (StopIteration, ValueError) as e:
            raise ConvertError(f"{path}: a column is missing from the header") from e
        for line in f:
            if not line.strip():
                continue
            fields = line.split(";")
            try:
                t = int(float(fields[t_col]))
                prov, use = float(fields[p_col]), float(fields[u_col])
            except (IndexError, ValueError, OverflowError):  # short, not numbers, infinite
                bad += 1
                continue
            if not (math.isfinite(prov) and math.isfinite(use)) or prov < 0 or use < 0:
                bad += 1
                continue
            rows.append((t, prov, use))
    rows.sort(key=lambda r: r[0])
    kept = []
    for r in rows:
        if r[0] not in seen:
            seen.add(r[0])
            kept.append(r)
    return kept, bad


def window(rows, start, days):
    """The rows of the DAYS-day window that starts at the first sample at or after start."""
    rows = [r for r in rows if r[0] >= start]
    if not rows:
        return []
    t0 = rows[0][0]
    return [r for r in rows if r[0] - t0 < days * DAY]


def rejections(w, start, days):
    """Why a window does not qualify (an empty list when it does)."""
    if not w:
        return ["no samples"]
    expected = days * DAY // SAMPLE_S
    why = []
    if len(w) < expected - round(expected * 14 / 864):
        why.append("too few samples")
    if w[-1][0] - w[0][0] < days * DAY - 1200:
        why.append("window too short")
    if w[0][0] - start > LATE_S:
        why.append("starts late")
    if any(b[0] - a[0] > MAX_GAP_S for a, b in zip(w, w[1:])):
        why.append("gap over 900 s")
    use = [r[2] for r in w]
    if any(u == 0 for u in use):
        why.append("zero usage")
    mean = statistics.fmean(use)
    if mean <= 0 or statistics.pstdev(use) / mean < MIN_COV or len(set(use)) < MIN_DISTINCT:
        why.append("flat")
    if len({r[1] for r in w}) != 1:
        why.append("provisioned size changes")
    if any(r[2] > r[1] for r in w):
        why.append("usage above provisioned")
    return why


def excluded_ids(path):
    ids = set()
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            m = re.search(r"(\d+)\.csv$", row.get("source_file") or "")
            if m:
                ids.add(int(m.group(1)))
    return ids


def convert(src, out, start_day, days, vms, exclude):
    if not os.path.isdir(src):
        raise ConvertError(f"{src}: no such folder")
    files = {int(m.group(1)): n for n in os.listdir(src)
             if (m := re.fullmatch(r"(\d+)\.csv", n))}
    if not files:
        raise ConvertError(f"{src}: no N.csv files")
    data, bad_rows = {}, 0
    for i in sorted(files):
        data[i], bad = read_vm(os.path.join(src, files[i]))
        bad_rows += bad
    firsts = [rows[0][0] for rows in data.values() if rows]
    if not firsts:
        raise ConvertError(f"{src}: no readable samples")
    start = min(firsts) + start_day * DAY
    qualifying, counts = [], {}
    for i in sorted(data):
        w = window(data[i], start, days)
        why = rejections(w, start, days)
        for reason in why:
            counts[reason] = counts.get(reason, 0) + 1
        if not why and i not in exclude:
            qualifying.append((i, w))
    if not qualifying:
        raise ConvertError(f"{src}: no VM qualifies ({summary(counts)})")
    n = min(vms, len(qualifying))
    picked = [qualifying[k * len(qualifying) // n] for k in range(n)]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "capacity.csv"), "w", encoding="utf-8") as cap, \
            open(os.path.join(out, "manifest.csv"), "w", encoding="utf-8") as man:
        cap.write("vm,provisioned_bytes\n")
        man.write("vm,source_file,first_timestamp,samples,provisioned_bytes\n")
        for k, (i, w) in enumerate(picked, 1):
            name = f"vm{k:03d}"
            prov = int(round(w[0][1] * 1024))
            cap.write(f"{name},{prov}\n")
            man.write(f"{name},{files[i]},{w[0][0]},{len(w)},{prov}\n")
            with open(os.path.join(out, name + ".csv"), "w", encoding="utf-8") as f:
                f.write("seconds,demand\n")
                for t, _, use in w:
                    f.write(f"{t - w[0][0]},{int(round(use * 1024))}\n")
    with open(os.path.join(out, "SOURCE.md"), "w", encoding="utf-8") as f:
        f.write(
            "# Bitbrains (GWA-T-12) traces converted by bench/bitbrains_convert.py\n\n"
            f"From `{os.path.abspath(src)}`: {len(data)} VMs read, {len(qualifying)} qualify, "
            f"{n} taken; window of {days} days from day {start_day} of the folder; "
            f"rejections: {summary(counts)}; unreadable rows skipped: {bad_rows}.\n\n"
            "Cite: S. Shen, V. van Beek, A. Iosup, \"Statistical Characterization of "
            "Business-Critical Workloads Hosted in Cloud Datacenters\", CCGrid 2015, and the "
            "Grid Workloads Archive (http://gwa.ewi.tudelft.nl). The trace was provided by "
            "Bitbrains IT Services Inc.\n")
    return len(data), len(qualifying), n, counts, bad_rows


def summary(counts):
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"


def main():
    ap = argparse.ArgumentParser(
        description="Convert a month of raw GWA-T-12 Bitbrains traces into a dynmem trace "
        "set (vmNNN.csv, capacity.csv, manifest.csv).")
    ap.add_argument("src", metavar="SRC_DIR", help="the month's folder of N.csv files")
    ap.add_argument("out", metavar="OUT_DIR", help="where to write the set (new or empty)")
    ap.add_argument("--start-day", type=int, default=0,
                    help="days after the folder's first timestamp the window starts (0)")
    ap.add_argument("--days", type=int, default=3, help="length of each VM's window (3)")
    ap.add_argument("--vms", type=int, default=80, help="VMs to take, evenly spaced (80)")
    ap.add_argument("--exclude", metavar="MANIFEST.csv",
                    help="leave out the VMs another set's manifest.csv names")
    args = ap.parse_args()
    if args.start_day < 0 or not 1 <= args.days <= 31 or not 1 <= args.vms <= 999:
        ap.error("--start-day must be 0 or more, --days 1 to 31, --vms 1 to 999")
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        ap.error(f"{args.out} exists and is not an empty folder")
    try:
        exclude = excluded_ids(args.exclude) if args.exclude else set()
        read, qualify, taken, counts, bad = convert(args.src, args.out, args.start_day,
                                                    args.days, args.vms, exclude)
    except (ConvertError, OSError) as e:
        print(f"bitbrains_convert: {e}", file=sys.stderr)
        return 1
    print(f"bitbrains_convert: {read} VMs read, {qualify} qualify, {taken} written to "
          f"{args.out} (rejections: {summary(counts)}; unreadable rows skipped: {bad})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
