#!/usr/bin/env python3
"""bench/bitbrains_convert.py on a month of made-up VMs in the archive's raw format.

Each VM file breaks one rule of the selection (zero usage, a gap, a late start, a
changing provisioned size, flat usage, usage above provisioned, too few samples) or
keeps them all; the cases check which VMs are taken, the rows written (seconds from
the window's start, bytes, a repeated timestamp kept once, unreadable rows skipped),
--vms, --exclude and --start-day, the refusals, that bench/heldout.py replays the
set it writes, on the issue's host or on one with another step, swap and buffer (and
refuses values dynmem-sim would), and that it converts a raw month given to it and
refuses a folder that is neither.

    test_bitbrains_convert.py DYNMEM_SIM SOURCE_ROOT

Prints TAP.
"""
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simtap  # noqa: E402

SIM = os.path.abspath(sys.argv[1])
ROOT = os.path.abspath(sys.argv[2])
CONVERT = os.path.join(ROOT, "bench", "bitbrains_convert.py")
HELDOUT = os.path.join(ROOT, "bench", "heldout.py")
TMP = tempfile.mkdtemp(prefix="dynmem-bbconvert-")
MONTH = os.path.join(TMP, "month")
T0 = 1372629804  # the first timestamp of the month
SAMPLES = 864  # three days at 5 minutes
PROVISIONED_KB = 4194304.0
HEADER = ("Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\t"
          "CPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\t"
          "Disk read throughput [KB/s];\tDisk write throughput [KB/s];\t"
          "Network received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n")


def usage(k, vm):
    """A varied usage in KB: about 1 GiB, a day's cycle, distinct at every sample."""
    return 1048576.0 + 400000.0 * math.sin(k / 40.0 + vm) + 13.25 * k


def write_vm(number, rows, extra=""):
    with open(os.path.join(MONTH, f"{number}.csv"), "w", encoding="utf-8") as f:
        f.write(HEADER)
        for t, prov, use in rows:
            f.write(f"{t};\t2;\t5851.9989;\t747.1;\t12.7;\t{prov};\t{use};\t0.0;\t1.0;\t11.0;\t27.2\n")
        f.write(extra)


def good_rows(vm, start=T0, samples=SAMPLES, days=None):
    n = samples if days is None else days * 288
    return [(start + 300 * k, PROVISIONED_KB, usage(k, vm)) for k in range(n)]


# The month: VM number -> what it breaks ("" for none).
MONTH_VMS = {}


def make_month():
    os.makedirs(MONTH)
    for number in (1, 3, 5, 8, 13, 21):  # taken unless the case says otherwise
        write_vm(number, good_rows(number, days=6))
        MONTH_VMS[number] = ""
    rows = good_rows(2, days=6)
    rows[100] = (rows[100][0], PROVISIONED_KB, 0.0)
    write_vm(2, rows)
    MONTH_VMS[2] = "zero usage"
    rows = good_rows(4, days=6)
    del rows[200:204]  # 1,500 s without a sample
    write_vm(4, rows)
    MONTH_VMS[4] = "gap over 900 s"
    write_vm(6, good_rows(6, start=T0 + 7200, days=6))
    MONTH_VMS[6] = "starts late"
    rows = good_rows(7, days=6)
    rows[300:] = [(t, PROVISIONED_KB * 2, u) for t, _, u in rows[300:]]
    write_vm(7, rows)
    MONTH_VMS[7] = "provisioned size changes"
    write_vm(9, [(T0 + 300 * k, PROVISIONED_KB, 500000.0 + (k % 3)) for k in range(6 * 288)])
    MONTH_VMS[9] = "flat"
    rows = good_rows(10, days=6)
    rows[50] = (rows[50][0], PROVISIONED_KB, PROVISIONED_KB + 1)
    write_vm(10, rows)
    MONTH_VMS[10] = "usage above provisioned"
    rows = good_rows(11, days=6)
    del rows[10:40:2]  # 15 samples missing, no gap over 600 s
    write_vm(11, rows)
    MONTH_VMS[11] = "too few samples"
    # Taken, with a repeated timestamp and unreadable rows to skip (one of them infinite).
    rows = good_rows(12, days=6)
    rows.insert(5, (rows[5][0], PROVISIONED_KB, 1.0))
    write_vm(12, rows[:5] + [rows[6], rows[5]] + rows[7:],
             extra="garbage\n1372629804;\t2\nnan;\tnan\ninf;\t2;\t1;\t1;\t1;\t1.0;\t1.0\n")
    MONTH_VMS[12] = ""


def convert(out, *args):
    return subprocess.run([sys.executable, CONVERT, MONTH, out, *args], capture_output=True,
                          text=True, timeout=120)


def manifest(out):
    with open(os.path.join(out, "manifest.csv"), encoding="utf-8") as f:
        return {row["vm"]: row for row in csv.DictReader(f)}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def the_rules_pick_the_vms_that_keep_them():
    out = os.path.join(TMP, "all")
    r = convert(out)
    check(r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
    taken = sorted(int(row["source_file"][:-4]) for row in manifest(out).values())
    want = sorted(n for n, why in MONTH_VMS.items() if not why)
    check(taken == want, f"taken {taken}, want {want}")
    for number, why in MONTH_VMS.items():
        if why:
            check(f"{why}: 1" in r.stdout, f"'{why}: 1' missing from: {r.stdout}")
    names = sorted(os.listdir(out))
    check(names == ["SOURCE.md", "capacity.csv", "manifest.csv"] +
          [f"vm{k:03d}.csv" for k in range(1, len(want) + 1)], f"files {names}")
    with open(os.path.join(out, "capacity.csv"), encoding="utf-8") as f:
        caps = list(csv.DictReader(f))
    check(all(int(c["provisioned_bytes"]) == 4 << 30 for c in caps), f"capacity {caps}")
    return f"{len(taken)} of {len(MONTH_VMS)} taken"


def rows_are_seconds_and_bytes_from_the_window_start():
    out = os.path.join(TMP, "rows")
    check(convert(out).returncode == 0, "convert failed")
    by_source = {row["source_file"]: name for name, row in manifest(out).items()}
    with open(os.path.join(out, by_source["1.csv"] + ".csv"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    check(lines[0] == "seconds,demand", f"header {lines[0]}")
    check(len(lines) == 1 + SAMPLES, f"{len(lines) - 1} rows, want {SAMPLES} (three days)")
    for k in (0, 1, 500, SAMPLES - 1):
        seconds, demand = lines[1 + k].split(",")
        check(int(seconds) == 300 * k, f"row {k}: {seconds} s")
        check(int(demand) == round(usage(k, 1) * 1024), f"row {k}: {demand} bytes")
    with open(os.path.join(out, by_source["12.csv"] + ".csv"), encoding="utf-8") as f:
        rows = [line.split(",") for line in f.read().splitlines()[1:]]
    seconds = [int(s) for s, _ in rows]
    check(seconds == sorted(set(seconds)), "a timestamp written twice or out of order")
    check(int(rows[5][1]) == round(usage(5, 12) * 1024),
          f"the repeated timestamp kept {rows[5][1]}, not its first row")
    with open(os.path.join(out, "SOURCE.md"), encoding="utf-8") as f:
        check("unreadable rows skipped: 4" in f.read(), "the four bad rows not counted")


def vms_are_taken_evenly_spaced_and_excluded_by_manifest():
    out = os.path.join(TMP, "two")
    check(convert(out, "--vms", "2").returncode == 0, "convert --vms 2 failed")
    taken = [row["source_file"] for row in manifest(out).values()]
    check(taken == ["1.csv", "8.csv"], f"--vms 2 took {taken}")  # of 1 3 5 8 12 13 21
    rest = os.path.join(TMP, "rest")
    r = convert(rest, "--exclude", os.path.join(out, "manifest.csv"))
    check(r.returncode == 0, r.stderr)
    taken = sorted(int(row["source_file"][:-4]) for row in manifest(rest).values())
    check(taken == [3, 5, 12, 13, 21], f"--exclude left {taken}")


def a_later_window_starts_days_later():
    out = os.path.join(TMP, "later")
    r = convert(out, "--start-day", "3")
    check(r.returncode == 0, r.stderr)
    by_source = {row["source_file"]: row for row in manifest(out).values()}
    check(int(by_source["1.csv"]["first_timestamp"]) == T0 + 3 * 86400,
          f"window starts at {by_source['1.csv']['first_timestamp']}")
    # The zero and the gap lie in the first three days; the later window is clean.
    check("2.csv" in by_source and "4.csv" in by_source, f"taken {sorted(by_source)}")
    with open(os.path.join(out, "vm001.csv"), encoding="utf-8") as f:
        check(f.read().splitlines()[1] == f"0,{round(usage(864, 1) * 1024)}",
              "the later window's first row")


def bad_input_is_refused_and_nothing_half_written():
    r = subprocess.run([sys.executable, CONVERT, os.path.join(TMP, "none"),
                        os.path.join(TMP, "o1")], capture_output=True, text=True)
    check(r.returncode == 1 and "no such folder" in r.stderr, f"{r.returncode} {r.stderr}")
    check(not os.path.exists(os.path.join(TMP, "o1")), "output written for a missing folder")
    full = os.path.join(TMP, "full")
    os.makedirs(full)
    open(os.path.join(full, "keep"), "w", encoding="utf-8").close()
    r = convert(full)
    check(r.returncode == 2 and "not an empty folder" in r.stderr, f"{r.returncode} {r.stderr}")
    check(os.listdir(full) == ["keep"], "a non-empty folder was written into")
    r = convert(os.path.join(TMP, "o2"), "--days", "0")
    check(r.returncode == 2, f"--days 0: exit {r.returncode}")
    odd = os.path.join(TMP, "odd")
    os.makedirs(odd)
    with open(os.path.join(odd, "1.csv"), "w", encoding="utf-8") as f:
        f.write("a,b\n1,2\n")
    r = subprocess.run([sys.executable, CONVERT, odd, os.path.join(TMP, "o3")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "not a GWA-T-12 file" in r.stderr, f"{r.returncode} {r.stderr}")
    r = convert(os.path.join(TMP, "o4"), "--days", "20")
    check(r.returncode == 1 and "no VM qualifies" in r.stderr, f"{r.returncode} {r.stderr}")


def taken():
    """How many of the month's VMs keep every rule."""
    return sum(1 for why in MONTH_VMS.values() if not why)


def heldout(*args, **env):
    """bench/heldout.py on the whole set, linear, neither oracle nor equal memory, with the
    dynmem-sim under test and no $DYNMEM_BITBRAINS but what env gives."""
    e = dict(os.environ, DYNMEM_BUILD=os.path.dirname(os.path.dirname(SIM)))
    e.pop("DYNMEM_BITBRAINS", None)
    e.update(env)
    return subprocess.run([sys.executable, HELDOUT, "--sets", "all", "--interp", "linear",
                           "--no-oracle", "--no-equal-memory", "--jobs", "1", *args],
                          capture_output=True, text=True, env=e, timeout=600)


def heldout_replays_the_set():
    out = os.path.join(TMP, "replay")
    check(convert(out).returncode == 0, "convert failed")
    r = heldout("--dataset", out)
    check(r.returncode == 0, f"heldout exit {r.returncode}: {r.stderr}")
    vms = taken()
    for policy in ("hyperv", "dynmem"):
        check(f"| all: {policy} | {vms}/{vms} |" in r.stdout, f"no {policy} row in {r.stdout}")


def heldout_changes_the_hosts_settings_and_refuses_bad_ones():
    out = os.path.join(TMP, "settings")
    check(convert(out).returncode == 0, "convert failed")
    keep = os.path.join(TMP, "settings-kept")
    r = heldout("--dataset", out, "--keep", keep, "--step", "60s", "--swap", "1G",
                "--buffer", "10")
    check(r.returncode == 0, f"heldout exit {r.returncode}: {r.stderr}")
    with open(os.path.join(keep, "all-linear-b10.ini"), encoding="utf-8") as f:
        ini = f.read()
    vms = taken()
    for line, count in (("step = 60s", 1), ("swap = 1G", vms), ("buffer = 10", vms)):
        check(ini.count(line + "\n") == count, f"{line!r} not {count} times in {ini}")
    check(f"| all: dynmem | {vms}/{vms} |" in r.stdout, f"no dynmem row in {r.stdout}")
    for flag, value, said in (("--step", "2x", 'step: "2x" is not a duration'),
                              ("--swap", "-1", 'swap: "-1" is not a size')):
        r = heldout("--dataset", out, flag, value)
        check(r.returncode == 1 and said in r.stderr and "| all:" not in r.stdout,
              f"{flag} {value}: exit {r.returncode}: {r.stderr} {r.stdout}")


def heldout_takes_a_raw_month_and_refuses_anything_else():
    r = heldout("--dataset", MONTH)
    check(r.returncode == 0, f"heldout on the raw month: exit {r.returncode}: {r.stderr}")
    vms = taken()
    check(f"{vms} of its {vms} qualifying VMs (14 read)" in r.stderr, f"no note: {r.stderr}")
    check(f"| all: dynmem | {vms}/{vms} |" in r.stdout, f"no dynmem row in {r.stdout}")
    junk = os.path.join(TMP, "junk")
    os.makedirs(junk)
    for r, how in ((heldout("--dataset", junk), "--dataset"),
                   (heldout(DYNMEM_BITBRAINS=junk), "DYNMEM_BITBRAINS")):
        check(r.returncode == 1 and "is neither a trace set" in r.stderr,
              f"{how} on a folder of nothing: exit {r.returncode}: {r.stderr}")


def main():
    make_month()
    try:
        return simtap.run_cases([
            the_rules_pick_the_vms_that_keep_them,
            rows_are_seconds_and_bytes_from_the_window_start,
            vms_are_taken_evenly_spaced_and_excluded_by_manifest,
            a_later_window_starts_days_later,
            bad_input_is_refused_and_nothing_half_written,
            heldout_replays_the_set,
            heldout_changes_the_hosts_settings_and_refuses_bad_ones,
            heldout_takes_a_raw_month_and_refuses_anything_else,
        ])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
