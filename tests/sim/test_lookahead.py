#!/usr/bin/env python3
"""No lookahead: a decision at time t is the same whatever the traces hold after t.

Six VMs replay seeded random traces (steps, ramps and spikes; one guest under-reports,
one starts late, the host runs short at times). The same scenario runs again with every
trace replaced after T by a different future (a surge, a collapse, noise). The
timelines (demand, assigned, target and reason of every VM at every step) must agree
up to T under every policy, at 1 s and at 30 s steps, and differ after it (so the test
can fail). The traces have a row at T itself, so no demand before T is interpolated
toward a row after it.

    test_lookahead.py DYNMEM_SIM

Prints TAP.
"""
import csv
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simtap  # noqa: E402

SIM = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="dynmem-lookahead-")
MIB = 1 << 20
T = 3600  # the present, in seconds
END = 7200


def past(rng):
    """Rows up to T: a level that wanders, jumps and ramps."""
    rows, t, level = [], 0, rng.randint(200, 900) * MIB
    while t < T:
        rows.append((t, level))
        t = min(T, t + rng.choice((5, 7, 30, 300)))
        kind = rng.random()
        if kind < 0.15:
            level = rng.randint(100, 1800) * MIB  # a jump
        else:
            level = max(64 * MIB, int(level * rng.uniform(0.9, 1.12)))
    rows.append((T, level))
    return rows


def future(rng, kind, level):
    rows, t = [], T
    while t < END:
        t += rng.choice((3, 11, 60))
        if kind == "surge":
            level = min(1900 * MIB, int(level * 1.2))
        elif kind == "collapse":
            level = max(64 * MIB, int(level * 0.6))
        else:
            level = rng.randint(64, 1900) * MIB
        rows.append((t, level))
    return rows


def write_trace(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("seconds,demand\n")
        f.writelines(f"{t},{d}\n" for t, d in rows)


def scenario(name, futures, step):
    rng = random.Random(7)
    lines = ["[host]", "memory = 5G", "", "[sim]", f"duration = {END}s", f"step = {step}", ""]
    for i in range(6):
        rows = past(rng)
        rows += future(random.Random(100 + i), futures, rows[-1][1]) if futures else \
            [(END, rows[-1][1])]
        path = os.path.join(TMP, f"{name}-{i}.csv")
        write_trace(path, rows)
        lines += [f'[vm "vm{i}"]', "dynamic = yes", "startup = 512M", "minimum = 128M",
                  "maximum = 2G", f"weight = {1000 + 1500 * i}", f"trace = {path}",
                  "swap = 256M", f"start = {1800 if i == 5 else 0}s",
                  f"report_scale = {0.8 if i == 2 else 1.0}", ""]
    path = os.path.join(TMP, f"{name}.ini")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def timeline(path, policy):
    out = path + f".{policy}.csv"
    r = subprocess.run([SIM, path, "--policy", policy, "--timeline", out], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(out, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check(step, policy):
    base = timeline(scenario(f"base-{step}", None, step), policy)
    before = [r for r in base if float(r["seconds"]) <= T]
    assert len(before) >= 6 * T // int(step.rstrip("s")), len(before)
    for kind in ("surge", "collapse", "noise"):
        other = timeline(scenario(f"{kind}-{step}", kind, step), policy)
        assert other[:len(before)] == before, f"{kind}: a decision before {T} s differs"
        assert other[len(before):] != base[len(before):], f"{kind}: the futures do not differ"


def test_dynmem_1s():
    check("1s", "dynmem")


def test_dynmem_30s():
    check("30s", "dynmem")


def test_hyperv_1s():
    check("1s", "hyperv")


CASES = [test_dynmem_1s, test_dynmem_30s, test_hyperv_1s]


def main():
    status = simtap.run_cases(CASES)
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
