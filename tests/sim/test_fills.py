#!/usr/bin/env python3
"""The fills between samples that the real-trace benchmarks replay (bench/bitbrains_data.py).

Every fill passes through each sample at its time; `step` holds a sample until the
next; `jump` holds it and changes to the next at one moment inside the interval, the
same moment on every run and a different one for another VM; `wander` walks in 30-s
rows, pinned at both samples, within half the lower sample and the cap, the same on
every run. A fill it does not know is refused by name, and a trace replayed with each
fill runs in dynmem-sim.

    test_fills.py DYNMEM_SIM SOURCE_ROOT

Prints TAP.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simtap  # noqa: E402

SIM = os.path.abspath(sys.argv[1])
ROOT = os.path.abspath(sys.argv[2])
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bitbrains_data as bb  # noqa: E402

MIB = 1 << 20
TS = [0.0, 300.0, 600.0, 900.0, 1200.0]
DS = [400 * MIB, 1600 * MIB, 1600 * MIB, 200 * MIB, 900 * MIB]
CAP = 2048 * MIB


def rows(fill, seed="vm001", start=0.0, end=1200.0):
    return bb.window_rows(TS, DS, start, end, fill, seed=seed, cap=CAP)


def value_at(rs, t):
    """What dynmem-sim reads at t from rows rs (linear between rows)."""
    for (t0, d0), (t1, d1) in zip(rs, rs[1:]):
        if t0 <= t < t1:
            return d0 + (d1 - d0) * (t - t0) / (t1 - t0)
    return rs[-1][1]


def every_fill_passes_through_each_sample():
    for fill in bb.FILLS:
        rs = rows(fill)
        times = [t for t, _ in rs]
        assert times == sorted(set(times)), f"{fill}: rows not strictly in order"
        for t, d in zip(TS, DS):
            assert (t, d) in rs, f"{fill}: no row ({t}, {d})"


def step_holds_each_sample_until_the_next():
    rs = rows("step")
    for (t0, d0), t1 in zip(zip(TS, DS), TS[1:]):
        for x in (t0 + 1, (t0 + t1) / 2, t1 - 0.01):
            assert value_at(rs, x) == d0, (x, value_at(rs, x), d0)


def jump_changes_once_inside_each_interval():
    rs = rows("jump")
    moments = []
    for (t0, d0), (t1, d1) in zip(zip(TS, DS), zip(TS[1:], DS[1:])):
        inside = [(t, d) for t, d in rs if t0 < t < t1]
        if d0 == d1:
            assert all(d == d0 for _, d in inside), inside
            continue
        jumps = [t for (t, d), (u, e) in zip(inside, inside[1:]) if d != e]
        assert len(jumps) == 1, (t0, inside)
        at = next(u for (t, d), (u, e) in zip(inside, inside[1:]) if d != e)
        assert value_at(rs, at - 0.01) == d0 and value_at(rs, at + 0.01) == d1
        moments.append(at - t0)
    assert moments and len(set(round(m) for m in moments)) == len(moments), moments
    assert rows("jump") == rs, "the same seed gave other rows"
    assert rows("jump", seed="vm002") != rs, "another VM changed at the same moments"


def wander_is_pinned_bounded_and_the_same_every_run():
    rs = rows("wander")
    lo = min(DS) / 2
    assert all(lo <= d <= CAP for _, d in rs), [d for _, d in rs if not lo <= d <= CAP]
    # 30-s rows: 10 per 5-minute interval
    assert len(rs) == 1 + 10 * (len(TS) - 1), len(rs)
    inside = [d for t, d in rs if t not in TS]
    assert len(set(inside)) > len(inside) // 2, "the walk does not wander"
    # between two equal samples it wanders too (the VM's median change sets its spread)
    flat = [d for t, d in rs if 300 < t < 600]
    assert any(d != DS[1] for d in flat), flat
    assert rows("wander") == rs
    assert rows("wander", seed="vm002") != rs


def rows_stay_in_order_as_written_whatever_the_draw():
    """Written with 3 decimals, as write_trace does: strictly increasing for any seed,
    also for intervals of a few milliseconds, where a jump has no room and holds."""
    ts = [0.0, 0.004, 0.007, 300.0, 300.003, 600.0]
    ds = [100 * MIB, 200 * MIB, 50 * MIB, 300 * MIB, 10 * MIB, 400 * MIB]
    for fill in ("jump", "wander"):
        for k in range(2000):
            rs = bb.window_rows(ts, ds, 0.0, 600.0, fill, seed=f"vm{k}", cap=CAP)
            written = [float(f"{t:.3f}") for t, _ in rs]
            assert all(a < b for a, b in zip(written, written[1:])), (fill, k, written)
            assert all(d >= 0 for _, d in rs), (fill, k)
    # an interval too short for a moment inside it is held, not drawn as a line
    rs = bb.window_rows([0.0, 0.003], [100 * MIB, 200 * MIB], 0.0, 0.003, "jump", seed="vm1",
                        cap=CAP)
    assert value_at(rs, 0.0015) == 100 * MIB, rs


def a_window_that_starts_later_starts_from_the_sample_before():
    for fill in ("step", "jump", "wander"):
        rs = rows(fill, start=450.0)
        assert rs[0] == (0.0, DS[1]), (fill, rs[0])
        assert (600.0 - 450.0, DS[2]) in rs, fill


def an_unknown_fill_is_refused_by_name():
    try:
        rows("cubic")
    except ValueError as e:
        assert "cubic" in str(e) and "wander" in str(e), e
    else:
        raise AssertionError("cubic was taken")


def dynmem_sim_replays_every_fill():
    with tempfile.TemporaryDirectory() as tmp:
        for fill in bb.FILLS:
            trace = os.path.join(tmp, f"{fill}.csv")
            bb.write_trace(trace, rows(fill))
            ini = os.path.join(tmp, f"{fill}.ini")
            with open(ini, "w", encoding="utf-8") as f:
                f.write("[host]\nmemory = 4G\n\n[sim]\nstep = 30s\nduration = 20m\n\n"
                        f'[vm "a"]\ntrace = {trace}\ndynamic = yes\nstartup = 512M\n'
                        "minimum = 128M\nmaximum = 2G\nswap = 256M\n")
            p = subprocess.run([SIM, ini, "--policy", "dynmem", "--json"],
                               capture_output=True, text=True, check=False)
            assert p.returncode == 0, (fill, p.stderr)


sys.exit(simtap.run_cases([
    every_fill_passes_through_each_sample,
    step_holds_each_sample_until_the_next,
    jump_changes_once_inside_each_interval,
    wander_is_pinned_bounded_and_the_same_every_run,
    rows_stay_in_order_as_written_whatever_the_draw,
    a_window_that_starts_later_starts_from_the_sample_before,
    an_unknown_fill_is_refused_by_name,
    dynmem_sim_replays_every_fill,
]))
