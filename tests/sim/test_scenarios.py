#!/usr/bin/env python3
"""The bundled scenarios and their traces: scenarios/generate.sh rebuilds every
committed trace byte for byte (same seed, same result), every bundled scenario
loads and runs, dynmem-tracegen refuses bad arguments, and the article's host
starts all ten VMs under dynmem with no OOM kill and no budget violation.

    test_scenarios.py DYNMEM_SIM DYNMEM_TRACEGEN SOURCE_ROOT

Prints TAP, one line per case.
"""
import filecmp
import glob
import json
import os
import subprocess
import sys
import tempfile
import traceback

SIM, GEN, ROOT = (os.path.abspath(a) for a in sys.argv[1:4])
SCENARIOS = os.path.join(ROOT, "scenarios")


def sim_json(scenario, *args):
    r = subprocess.run([SIM, scenario, "--json", *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"{scenario}: exit {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)


def test_traces_regenerate_identically():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([os.path.join(SCENARIOS, "generate.sh"), GEN, tmp], check=True)
        committed = sorted(os.listdir(os.path.join(SCENARIOS, "traces")))
        made = sorted(os.listdir(tmp))
        assert committed == made, f"different files: {set(committed) ^ set(made)}"
        _, mismatch, errors = filecmp.cmpfiles(os.path.join(SCENARIOS, "traces"), tmp, made,
                                               shallow=False)
        assert not mismatch and not errors, f"differ: {mismatch + errors}"


def test_tracegen_same_seed_same_bytes():
    args = ["batch", "--seed", "7", "--duration", "2h"]
    a = subprocess.run([GEN, *args], capture_output=True, check=True).stdout
    b = subprocess.run([GEN, *args], capture_output=True, check=True).stdout
    c = subprocess.run([GEN, "batch", "--seed", "8", "--duration", "2h"], capture_output=True,
                       check=True).stdout
    assert a == b and a != c


def test_tracegen_version_and_help():
    # As every other dynmem program: -V, --version (it was an unrecognized option, exit 2).
    for args in (["--version"], ["-V"], ["idle", "--version"]):
        r = subprocess.run([GEN, *args], capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", (args, r.returncode, r.stderr)
        assert r.stdout.startswith("dynmem-tracegen ") and r.stdout.count("\n") == 1, r.stdout
    r = subprocess.run([GEN, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "-h, --help" in r.stdout and "-V, --version" in r.stdout, r


def test_tracegen_refuses_an_option_its_shape_does_not_use():
    # idle --phase 3h wrote the same trace as idle alone, without a word
    for args, needle in ((["idle", "--phase", "3h"],
                          "--phase is for diurnal and office only; idle does not use it"),
                         (["leak", "--tau", "1h"], "--tau is for warmup only; leak does not use it"),
                         (["office", "--period", "12h"],
                          "--period is for diurnal only; office does not use it"),
                         (["warmup", "--every", "1h"],
                          "--every is for batch only; warmup does not use it"),
                         (["diurnal", "--rate", "1G"],
                          "--rate is for leak only; diurnal does not use it")):
        r = subprocess.run([GEN, *args], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == "", (args, r.returncode)
        assert r.stderr == f"dynmem-tracegen: {needle}\n", (args, r.stderr)
    # idle stays at --base: a --peak is refused, and the default peak does not refuse a base
    r = subprocess.run([GEN, "idle", "--peak", "4G"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == ("dynmem-tracegen: --peak is not for idle, which "
                                              "stays at --base (with small blips over it)\n"), r
    r = subprocess.run([GEN, "idle", "--base", "2G", "--duration", "10m"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stderr == "", r
    r = subprocess.run([GEN, "idle", "--base", "20T"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == "dynmem-tracegen: --base must be at most 16T\n", r
    # each shape's own options are taken
    for args in (["office", "--phase", "1h"], ["diurnal", "--period", "6h", "--phase", "1h"],
                 ["batch", "--every", "1h", "--rise", "10s", "--hold", "5m"],
                 ["leak", "--rate", "64M"], ["warmup", "--tau", "10m"]):
        r = subprocess.run([GEN, *args, "--duration", "10m"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", (args, r.stderr)


def test_tracegen_refuses_bad_arguments():
    for args in (["nosuchshape"], [], ["diurnal", "--peak", "1G", "--base", "2G"],
                 ["leak", "--rate", "banana"], ["idle", "--interval", "0s"],
                 ["diurnal", "--noise", "150"], ["diurnal", "--peak", "17T"],
                 ["diurnal", "--duration", "8760h", "--interval", "1s"],
                 ["batch", "--duration", "8000h", "--interval", "1h", "--every", "1s",
                  "--rise", "1s", "--hold", "1s"]):
        r = subprocess.run([GEN, *args], capture_output=True, text=True)
        assert r.returncode == 2, f"{args}: exit {r.returncode}"
        assert r.stderr.startswith("dynmem-tracegen:"), r.stderr


def test_tracegen_names_the_option_with_a_bad_value():
    # "bad value" alone before; an empty or negative --seed and a NaN --noise (which
    # wrote "nan" demand rows) were taken.
    for args, needle in ((["leak", "--rate", "banana"], '--rate: "banana" is not a size'),
                         (["diurnal", "--tau", "3q"], '--tau: "3q" is not a duration'),
                         (["diurnal", "--base", "1X"], '--base: "1X" is not a size'),
                         (["diurnal", "--seed", ""], '--seed: "" is not a whole number'),
                         (["diurnal", "--seed", "-1"], '--seed: "-1" is not a whole number'),
                         (["diurnal", "--seed", "99999999999999999999999"], "--seed: "),
                         (["diurnal", "--noise", "nan"], '--noise: "nan" is not a percentage'),
                         (["diurnal", "--noise", ""], '--noise: "" is not a percentage'),
                         # Plain bytes below 1 MiB were taken (and every row clamped to
                         # 16 MiB), as no other size dynmem reads takes them.
                         (["diurnal", "--base", "256"],
                          '--base: "256" has no unit and would be 256 bytes; write 256M'),
                         (["diurnal", "--peak", "1024"], '--peak: "1024" has no unit'),
                         (["leak", "--rate", "128"], '--rate: "128" has no unit'),
                         (["diurnal", "--peak", "-1G"], '--peak: "-1G" is not a size'),
                         (["diurnal", "--peak", "1G "], '--peak: "1G " is not a size'),
                         (["diurnal", "--base", ""], '--base: "" is not a size'),
                         (["diurnal", "--peak", "2 G"],
                          '--peak: "2 G" has a blank between the number and its unit; write 2G'),
                         (["diurnal", "--peak", "99999999999T"], '--peak: "99999999999T" is too large')):
        r = subprocess.run([GEN, *args], capture_output=True, text=True)
        assert r.returncode == 2, f"{args}: exit {r.returncode}"
        assert r.stderr.startswith("dynmem-tracegen: ") and needle in r.stderr, (args, r.stderr)


def test_tracegen_takes_sizes_with_units_or_bytes():
    # Units of every spelling, decimals, plain bytes of 1 MiB and more, and a zero base.
    for args in (["diurnal", "--base", "0", "--peak", "1.5G"],
                 ["diurnal", "--base", "268435456", "--peak", "1GiB"],
                 ["leak", "--base", "512MB", "--peak", "2g", "--rate", "1048576"]):
        r = subprocess.run([GEN, *args, "--duration", "10m"], capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.startswith("seconds,demand\n"), (args, r.stdout[:40])


def test_tracegen_says_which_option_is_out_of_range():
    # One sentence listing every condition before, whichever one failed.
    for args, needle in ((["diurnal", "--peak", "1G", "--base", "2G"],
                          "--peak 1 GiB must be at least --base 2 GiB"),
                         # Neither size was named, nor that one was the default.
                         (["diurnal", "--peak", "200M"],
                          "--peak 200 MiB must be at least --base 256 MiB (the default)"),
                         (["diurnal", "--base", "1.5G"],
                          "--peak 1 GiB (the default) must be at least --base 1.5 GiB"),
                         (["idle", "--interval", "0s"], "--interval must be at least 1s"),
                         (["diurnal", "--noise", "150"], "--noise must be 0..100"),
                         (["diurnal", "--peak", "17T"], "--peak must be at most 16T"),
                         (["diurnal", "--duration", "1m", "--interval", "2m"],
                          "--duration must be at least --interval"),
                         # A trace dynmem-sim then refused was written before.
                         (["idle", "--duration", "8785h", "--interval", "1h"],
                          "--duration must be at most 8784h (366 days), the longest trace "
                          "dynmem-sim takes"),
                         (["leak", "--rate", "0"], "--rate must be positive"),
                         (["warmup", "--tau", "0s"], "--tau must be positive")):
        r = subprocess.run([GEN, *args], capture_output=True, text=True)
        assert r.returncode == 2, f"{args}: exit {r.returncode}"
        assert r.stderr == f"dynmem-tracegen: {needle}\n", (args, r.stderr)


def test_tracegen_full_disk_is_exit_1():
    # A short trace stays in stdio's buffer until exit: that it could not be written
    # went unnoticed (exit 0) before.
    with open("/dev/full", "w") as full:
        r = subprocess.run([GEN, "diurnal", "--duration", "2m"], stdout=full,
                           stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1, f"exit {r.returncode}: {r.stderr}"
    assert "cannot write the trace" in r.stderr, r.stderr


def test_tracegen_writes_traces_the_simulator_takes():
    # Rows in whole seconds, strictly increasing (a fractional --interval among the
    # jobs' corners), numeric demand (a leak with peak = base is flat) at most 16 TiB.
    cases = (["leak", "--peak", "256M", "--duration", "1h"],
             ["batch", "--seed", "3", "--interval", "1500ms", "--every", "10m",
              "--duration", "4h"],
             ["diurnal", "--base", "16T", "--peak", "16T", "--noise", "50", "--duration", "1h"],
             ["idle", "--duration", "8784h", "--interval", "1h"])
    with tempfile.TemporaryDirectory() as tmp:
        for args in cases:
            out = subprocess.run([GEN, *args], capture_output=True, text=True, check=True).stdout
            lines = out.splitlines()
            assert lines[0] == "seconds,demand", (args, lines[0])
            prev = -1
            for line in lines[1:]:
                seconds, demand = line.split(",")
                assert seconds.isdigit() and demand.isdigit(), (args, line)
                assert int(seconds) > prev, (args, line, prev)
                assert 0 < int(demand) <= 16 << 40, (args, line)
                prev = int(seconds)
            with open(os.path.join(tmp, "t.csv"), "w", encoding="utf-8") as f:
                f.write(out)
            ini = os.path.join(tmp, "s.ini")
            with open(ini, "w", encoding="utf-8") as f:
                f.write("[host]\nmemory = 2G\n[sim]\nduration = 60s\n"
                        "[vm \"a\"]\nstartup = 1G\ntrace = t.csv\n")
            sim_json(ini)


def test_every_bundled_scenario_runs():
    for path in sorted(glob.glob(os.path.join(SCENARIOS, "*.ini"))):
        out = sim_json(path, "--policy", "hyperv")
        assert out["budget_violations"] == 0, path
        assert out["vms"] > 0, path


def test_article_host_starts_all_ten():
    out = sim_json(os.path.join(SCENARIOS, "article.ini"))
    assert out["started"] == 10 and out["refused"] == 0, out
    assert out["oom_kills"] == 0, out
    assert out["budget_violations"] == 0, out
    static = sim_json(os.path.join(SCENARIOS, "article-static.ini"))
    assert static["started"] == 3 and static["refused"] == 7, static


TESTS = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]


def main():
    print(f"1..{len(TESTS)}")
    failed = 0
    for i, (name, fn) in enumerate(TESTS, 1):
        try:
            fn()
            print(f"ok {i} - {name}")
        except Exception:  # noqa: BLE001 - every failure is reported as TAP
            failed += 1
            print(f"not ok {i} - {name}")
            for line in traceback.format_exc().splitlines():
                print(f"# {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
