#!/usr/bin/env python3
"""Command-line tests of dynmem-sim: usage and exit codes, scenario and trace
errors as FILE:LINE before anything runs, the --json keys and values,
determinism, --timeline, --report, the built-in policies and an exec: policy.

    test_cli.py DYNMEM_SIM DATA_DIR

Prints TAP: a plan, then "ok N - name" / "not ok N - name" per case.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simtap  # noqa: E402

SIM = os.path.abspath(sys.argv[1])
DATA = os.path.abspath(sys.argv[2])
SMALL = os.path.join(DATA, "small.ini")
TMP = tempfile.mkdtemp(prefix="dynmem-sim-test-")
MIB = 1 << 20

# The interpreter running this script, without the start-up cost of a wrapper
# (a policy's first answer is due within 1 s of its start).
PYTHON = f"exec {sys.executable} -S"

JSON_KEYS = {
    "policy", "duration_s", "vms", "started", "refused", "vm_seconds", "short_seconds",
    "short_byte_seconds", "oom_kills", "host_mean_bytes", "host_peak_bytes",
    "budget_violations", "resize_ops", "reaction_p50_s", "reaction_p95_s", "policy_failures",
    "policy_failed",
}


def run(*args, timeout=120):
    return subprocess.run([SIM, *args], capture_output=True, text=True, timeout=timeout)


def write(name, text):
    path = os.path.join(TMP, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def sim_json(*args):
    r = run(*args, "--json")
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)


def expect_exit(r, code, *needles):
    assert r.returncode == code, f"exit {r.returncode}, expected {code}; stderr: {r.stderr}"
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr}"


GOOD_VM = """
[vm "a"]
dynamic = yes
startup = 512M
minimum = 256M
maximum = 1G
trace = a.csv
"""


def scenario(name, text, trace="seconds,demand\n0,300M\n10,400M\n"):
    write("a.csv", trace)
    return write(name, text)


# ---- usage ----

def test_help():
    r = run("--help")
    assert r.returncode == 0, r.returncode
    assert "Usage: dynmem-sim SCENARIO.ini" in r.stdout
    assert "--policy" in r.stdout and "--json" in r.stdout and "--report" in r.stdout


def test_version():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("dynmem-sim "), r.stdout


def test_bad_option():
    expect_exit(run("--bogus", SMALL), 2, "Usage")


def test_no_scenario():
    expect_exit(run(), 2, "expected one scenario file")
    expect_exit(run(SMALL, SMALL), 2, "expected one scenario file")
    expect_exit(run("--policy"), 2)


def test_missing_scenario():
    path = os.path.join(TMP, "nope.ini")
    r = run(path)
    expect_exit(r, 2, path, "cannot open")
    assert r.stdout == ""


def test_unknown_policy():
    expect_exit(run(SMALL, "--policy", "greedy"), 2, 'unknown policy "greedy"')
    expect_exit(run(SMALL, "--policy", "exec:"), 2, '--policy "exec:" names no program after exec:')
    # Only white space after exec: was taken, and every run then failed to start it.
    for policy in ("exec: ", "exec:\t ", "exec:\n"):
        r = run(SMALL, "--policy", policy)
        shown = policy.replace("\t", " ").replace("\n", " ")  # quoted on one line
        expect_exit(r, 2, f'--policy "{shown}" names no program after exec:')
        assert r.stdout == "" and r.stderr.count("dynmem-sim:") == 1, r.stderr


# ---- bad scenarios and traces: FILE:LINE, exit 2, nothing runs ----

def test_malformed_scenario():
    path = scenario("bad.ini", "[host]\nmemory = 4G\nmemroy = 1G\n" + GOOD_VM)
    timeline = os.path.join(TMP, "never.csv")
    r = run(path, "--json", "--timeline", timeline)
    expect_exit(r, 2, f'{path}:3: unknown key "memroy" in [host]')
    assert r.stdout == "", "something ran"
    assert not os.path.exists(timeline), "the timeline was written"


def test_several_errors_reported():
    path = scenario("bad2.ini", "[host]\nmemory = lots\n[sim]\nstep = 0\n" + GOOD_VM +
                    "weight = 99999\n[what]\n")
    r = run(path)
    expect_exit(r, 2, f"{path}:2: memory", f"{path}:4: step", f"{path}:12: weight",
                f"{path}:13: unknown section")


def test_bad_values_and_settings():
    # At the line of the key the message is about (minimum, line 5), with the line of the
    # one it is held against.
    path = scenario("bad3.ini", "[host]\nmemory = 4G\n[vm \"a\"]\nstartup = 1G\nminimum = 2G\n"
                    "trace = a.csv\n")
    expect_exit(run(path), 2,
                f'{path}:5: vm "a": minimum 2 GiB is above startup 1 GiB (startup at line 4)')
    # Without startup, the sizes the file gives are named, not the default startup.
    path = scenario("bad4.ini", "[host]\nmemory = 4G\n[vm \"a\"]\nminimum = 2G\nmaximum = 1G\n"
                    "trace = a.csv\n")
    r = run(path)
    expect_exit(r, 2, f'{path}:4: vm "a": minimum 2 GiB is above maximum 1 GiB (maximum at line 5)')
    assert "startup" not in r.stderr, r.stderr
    # A size the block does not divide: at the size's line, citing the block's.
    path = scenario("bad5.ini", "[host]\nmemory = 4G\n[vm \"a\"]\nblock = 4M\ntrace = a.csv\n"
                    "startup = 1026M\n")
    expect_exit(run(path), 2, f'{path}:6: vm "a": startup 1026 MiB is not a multiple of the '
                "4 MiB block size, as 1 GiB and 1028 MiB are (block at line 4)")


def test_duration_zero_refused():
    # 0 was taken as "until the last trace ends", without a word
    path = scenario("zero.ini", "[host]\nmemory = 2G\n[sim]\nduration = 0\n" + GOOD_VM)
    r = run(path)
    expect_exit(r, 2, f"{path}:4: duration: 0 is outside 1ms..8784h")
    assert r.stdout == "", r.stdout


def test_step_longer_than_a_peak_of_a_trace_warned():
    # A static VM of 512M whose 3-minute trace peaks at 900M between two steps of 1h: the
    # run saw no OOM kill and said nothing; with a step of 90s it sees the kill.
    trace = "seconds,demand\n0,300M\n60,400M\n120,900M\n180,300M\n"
    vm = '[vm "web"]\nstartup = 512M\ntrace = a.csv\n'
    path = scenario("long-step.ini", "[host]\nmemory = 2G\n[sim]\nstep = 1h\n" + vm, trace)
    r = run(path, "--policy", "static", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f'{path}:4: warning: [sim] step 1h is not shorter than the 2m of the '
                        'narrowest peak of the trace a.csv (vm "web", between its rows at 60 and '
                        '180 seconds): its demand is read once a step, so such a peak can fall '
                        'between two steps unseen (no time short, no OOM kill); a step under 2m '
                        'sees every peak\n'), r.stderr
    assert json.loads(r.stdout)["oom_kills"] == 0
    path = scenario("row-step.ini", "[host]\nmemory = 2G\n[sim]\nstep = 90s\n" + vm, trace)
    r = run(path, "--policy", "static", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["oom_kills"] == 1, r.stdout
    # step left at 1s: at the trace's line; one warning for a trace two VMs replay
    trace = "seconds,demand\n0,300M\n0.4,400M\n0.8,300M\n"
    path = scenario("fine.ini", "[host]\nmemory = 2G\n" + vm + vm.replace("web", "db"), trace)
    r = run(path, "--policy", "static")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"{path}:5: warning: [sim] step 1s is not shorter than the 800ms "
                               'of the narrowest peak of the trace a.csv (vm "web", between its '
                               "rows at 0 and 0.8 seconds)"), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    # rows closer than a step that make no peak of their own: a step function's corners
    # 1 ms apart (bench/bitbrains_data.py's step fill), a rise to a level that holds
    trace = ("seconds,demand\n0,300M\n299.999,300M\n300,400M\n599.999,400M\n600,350M\n"
             "899.999,350M\n900,300M\n")
    path = scenario("corners.ini", "[host]\nmemory = 2G\n[sim]\nstep = 30s\n" + vm, trace)
    r = run(path, "--policy", "static")
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_memory_required():
    path = scenario("nomem.ini", "[host]\npolicy = hyperv\n" + GOOD_VM)
    expect_exit(run(path), 2, "memory is required")


def test_memory_beyond_this_machine_is_no_warning():
    # A scenario's host is made up: dynmem-sim never holds it against this machine's memory.
    r = run(scenario("huge.ini", "[host]\nmemory = 4096T\n[sim]\nduration = 5s\n" + GOOD_VM),
            "--json")
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr and "MemTotal" not in r.stderr, r.stderr


def test_unknown_vm_key():
    path = scenario("vmkey.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "kernel = /boot/vmlinuz\n")
    expect_exit(run(path), 2, f'{path}:10: unknown key "kernel" in [vm "a"]: neither a VM key '
                "(dynamic, startup, minimum, maximum, buffer, weight, block, lend, autostart) "
                "nor a key of backend sim (trace, start, swap, report_scale, psi, outlive)")
    # A misspelt VM setting is not the backend's: the key meant is named.
    path = scenario("vmkey2.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "wieght = 5000\n")
    expect_exit(run(path), 2, f'{path}:10: unknown key "wieght" in [vm "a"] '
                '(did you mean "weight"?)')


def test_bad_sim_key_value():
    path = scenario("simkey.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "start = soon\n")
    expect_exit(run(path), 2, f'{path}:10: start: "soon" is not a duration')


def test_switches_take_every_form():
    # psi is a BOOL like dynamic: the same words, and a refusal that names them
    path = scenario("psi-true.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "psi = true\n")
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr
    path = scenario("psi-maybe.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "psi = maybe\n")
    expect_exit(run(path), 2, f'{path}:10: psi: "maybe" is not yes/no, on/off, true/false or 1/0')


def test_size_without_unit_refused():
    # "512" is 512 bytes: a unit left out, said with the key, in the scenario and the backend's keys
    path = scenario("nounit.ini", "[host]\nmemory = 4G\n" + GOOD_VM.replace("512M", "512"))
    expect_exit(run(path), 2, f'{path}:6: startup: "512" has no unit and would be 512 bytes; '
                "write 512M or 512MiB")
    path = scenario("nounit-swap.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "swap = 256\n")
    expect_exit(run(path), 2, f'{path}:10: swap: "256" has no unit and would be 256 bytes')
    # A zero and plain bytes from 1 MiB on are what they say.
    path = scenario("zero-swap.ini", "[host]\nmemory = 4294967296\nreserve = 0\n" + GOOD_VM +
                    "swap = 0\n")
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr


def test_sizes_in_scenario_keys_named_with_the_bad_value():
    path = scenario("swap-big.ini", "[host]\nmemory = 4G\n" + GOOD_VM +
                    "swap = 18446744073709551616\n")
    expect_exit(run(path), 2, f'{path}:10: swap: "18446744073709551616" is too large')
    for bad in ("-1G", "1G2", "0x100M", "1e9"):
        path = scenario("swap-bad.ini", "[host]\nmemory = 4G\n" + GOOD_VM + f"swap = {bad}\n")
        expect_exit(run(path), 2, f'{path}:10: swap: "{bad}" is not a size')
    path = scenario("swap-blank.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "swap = 256 MiB\n")
    expect_exit(run(path), 2, f'{path}:10: swap: "256 MiB" has a blank between the number and '
                "its unit; write 256MiB")
    path = scenario("swap-empty.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "swap =\n")
    expect_exit(run(path), 2, f"{path}:10: swap: empty value")
    path = scenario("rate-bad.ini", "[host]\nmemory = 4G\n[sim]\ngrow_rate = 512\n" + GOOD_VM)
    expect_exit(run(path), 2, f'{path}:4: grow_rate: "512" has no unit')


STATIC_OVER = """[host]
memory = 4G
policy = static

[vm "a"]
startup = 512M
trace = a.csv
"""


def test_swap_of_any_size_does_not_wrap():
    # held + swap wrapped past 2^64 before: the largest swap made every VM at its size an
    # OOM kill, where any swap above the shortfall makes none.
    trace = "seconds,demand\n0,600M\n60,600M\n"
    for swap, kills in (("1G", 0), ("18446744073709551615", 0), ("16777215T", 0), ("0", 1)):
        path = scenario("swap-any.ini", STATIC_OVER + f"swap = {swap}\n", trace=trace)
        out = sim_json(path)
        assert out["oom_kills"] == kills, (swap, out["oom_kills"])
        assert out["short_seconds"] > 0, out


def test_rates_of_any_size_do_not_wrap():
    # grow_rate x step beyond 2^64 bytes converted to nonsense before (no growth at all on
    # x86-64): the fastest rate must be at least as fast as a fast one.
    trace = "seconds,demand\n0,300M\n60,300M\n61,3G\n600,3G\n"
    vm = ('[vm "a"]\ndynamic = yes\nstartup = 512M\nminimum = 256M\nmaximum = 6G\n'
          "trace = a.csv\n")
    short = {}
    for rate in ("1T", "16777215T", "18446744073709551615"):
        path = scenario("rate-any.ini", "[host]\nmemory = 8G\npolicy = hyperv\n[sim]\n"
                        f"step = 30s\ngrow_rate = {rate}\nshrink_rate = {rate}\n" + vm,
                        trace=trace)
        short[rate] = sim_json(path)["short_seconds"]
    assert short["16777215T"] == short["1T"] == short["18446744073709551615"], short


def test_comment_after_a_backend_value_explained():
    # '#' after a value is part of it (inih): the backend's message says what starts a comment
    path = scenario("hash.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "start = 10s   # later\n")
    expect_exit(run(path), 2, f'{path}:10: start: "10s   # later" is not a duration '
                '(a comment after a value starts with " ;"')
    path = scenario("semi.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "swap = 256M; later\n")
    expect_exit(run(path), 2, f'{path}:10: swap: "256M; later" is not a size '
                '(a comment after a value starts with " ;": white space before the \';\')')
    path = scenario("ok-comment.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "swap = 256M ; fine\n")
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr
    # The error above already says where comments start: no warning repeats it.
    r = run(scenario("hash.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "start = 10s   # later\n"))
    assert "warning" not in r.stderr, r.stderr


def test_comment_in_a_text_value_warned_of():
    # Part of the value, as a path may hold " #": the run goes on, with a warning at its line.
    r = run(scenario("hash-policy.ini", "[host]\nmemory = 4G\npolicy = static # for now\n"
                     "[sim]\nduration = 5s\n" + GOOD_VM))
    expect_exit(r, 2, ':3: policy: "static # for now" is not dynmem')
    assert "warning" not in r.stderr, r.stderr
    keep = write("keep.sh", "while read -r l; do echo '{\"targets\": {}}'; done\n")
    path = scenario("hash-exec.ini", "[host]\nmemory = 4G\n"
                    f"policy = exec:sh {keep} # mine\n[sim]\nduration = 2s\n" + GOOD_VM)
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr
    want = (f'{path}:3: warning: policy: "exec:sh {keep} # mine" holds " # mine" '
            "as part of the value (a comment after a value starts with \" ;\", white space and "
            "';'; '#' starts a comment only at the start of a line)\n")
    assert want in r.stderr, r.stderr


def test_times_beyond_a_year_refused():
    # Unix times (a monitoring export) or a start years away would run for decades.
    path = scenario("epoch.ini", "[host]\nmemory = 4G\n" + GOOD_VM,
                    trace="seconds,demand\n1733472000,300M\n1733472060,400M\n")
    r = run(path, timeout=30)
    expect_exit(r, 2, os.path.join(TMP, "a.csv") + ":2:", "more than 366 days", "not Unix time")
    path = scenario("late.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "start = 8785h\n")
    expect_exit(run(path, timeout=30), 2, f'{path}:10: start: "8785h" is more than 366 days')
    path = scenario("late-s.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "start = 40000000\n")
    expect_exit(run(path, timeout=30), 2,
                f'{path}:10: start: "40000000" (seconds) is more than 366 days')


def test_start_after_the_run_refused():
    # It would be counted as never started, as a VM refused for want of memory is.
    path = scenario("after.ini", "[host]\nmemory = 4G\n[sim]\nduration = 10s\n" + GOOD_VM +
                    "start = 10s\n")
    r = run(path)
    expect_exit(r, 2, f'{path}:12: start: "10s" is not before the end of the run '
                "([sim] duration 10s)")
    assert r.stdout == ""
    # Just before the end it starts; without a duration the run lasts until it has.
    path = scenario("before.ini", "[host]\nmemory = 4G\n[sim]\nduration = 10s\n" + GOOD_VM +
                    "start = 9s\n")
    assert sim_json(path)["started"] == 1
    path = scenario("nodur.ini", "[host]\nmemory = 4G\n" + GOOD_VM + "start = 1h\n")
    assert sim_json(path)["started"] == 1


def test_scenario_without_vms_refused():
    for text in ("[host]\nmemory = 4G\n", "[host]\nmemory = 4G\n[sim]\nduration = 1h\n"):
        path = write("novms.ini", text)
        r = run(path)
        expect_exit(r, 2, f'{path}: no [vm "NAME"] section: a scenario needs a VM')
        assert r.stdout == ""
        expect_exit(run(path, "--sweep", "memory=1G:2G:1G"), 2, "a scenario needs a VM")


def test_trace_required():
    path = write("notrace.ini", "[host]\nmemory = 4G\n[vm \"a\"]\nstartup = 1G\n")
    expect_exit(run(path), 2, f'{path}:3: vm "a": the sim backend needs a trace')


def test_missing_trace():
    path = write("missing.ini", "[host]\nmemory = 4G\n" +
                 GOOD_VM.replace("a.csv", "traces/gone.csv"))
    r = run(path)
    # the scenario's line of the trace = key, then the trace's own path and error
    expect_exit(r, 2, f"{path}:9: trace: " + os.path.join(TMP, "traces/gone.csv") +
                ": cannot open: No such file or directory")
    assert r.stdout == ""


def test_bad_trace_line():
    path = scenario("badtrace.ini", "[host]\nmemory = 4G\n" + GOOD_VM,
                    trace="seconds,demand\n0,300M\n# fine so far\n10,lots\n")
    r = run(path)
    expect_exit(r, 2, f"{path}:9: trace: " + os.path.join(TMP, "a.csv") + ":4:",
                '"lots" is not a demand')
    assert r.stdout == ""


def test_trace_without_header():
    path = scenario("nohead.ini", "[host]\nmemory = 4G\n" + GOOD_VM, trace="0,300M\n")
    expect_exit(run(path), 2, os.path.join(TMP, "a.csv") + ":1: expected the header")


def test_trace_with_a_nul_byte_refused():
    # A NUL byte must not end the row unseen: "0,1G" would be read from "0,1G<NUL>junk".
    for trace, line in (("seconds,demand\n0,300M\x00junk\n", 2),
                        ("seconds,demand\n0,300M\x00\n10,400M\n", 2)):
        path = scenario("nul.ini", "[host]\nmemory = 4G\n" + GOOD_VM, trace=trace)
        r = run(path)
        expect_exit(r, 2, os.path.join(TMP, "a.csv") + f":{line}: a NUL byte in the line")
        assert r.stdout == ""


def test_trace_that_is_a_directory_refused():
    os.makedirs(os.path.join(TMP, "dir.csv"), exist_ok=True)
    path = write("dirtrace.ini", "[host]\nmemory = 4G\n" + GOOD_VM.replace("a.csv", "dir.csv"))
    r = run(path)
    expect_exit(r, 2, os.path.join(TMP, "dir.csv") + ": cannot read: Is a directory")
    assert "no rows" not in r.stderr


def test_trace_that_is_a_fifo_refused():
    # A FIFO without a writer used to be waited on for ever.
    fifo = os.path.join(TMP, "fifo.csv")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    path = write("fifotrace.ini", "[host]\nmemory = 4G\n" + GOOD_VM.replace("a.csv", "fifo.csv"))
    r = run(path)
    expect_exit(r, 2, fifo + ": cannot read: a FIFO or socket, not a file")


def test_trace_relative_to_scenario():
    # Run from another directory: the trace is found next to the scenario.
    path = scenario("rel.ini", "[host]\nmemory = 4G\n" + GOOD_VM)
    r = subprocess.run([SIM, path, "--json"], capture_output=True, text=True, cwd="/",
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_documented_scenario_runs():
    # The annotated scenario of docs/simulator.md, as a reader would copy it.
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                       "simulator.md")
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    block = text.split("```ini\n", 1)[1].split("```", 1)[0]
    write("traces/web1.csv", "seconds,demand\n0,300M\n10,400M\n")
    path = write("documented.ini", block.replace("duration = 24h", "duration = 30s", 1))
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr


# ---- --json ----

def test_json_keys_exactly():
    out = sim_json(SMALL)
    assert set(out) == JSON_KEYS, f"keys differ: {set(out) ^ JSON_KEYS}"


def test_json_values_sensible():
    out = sim_json(SMALL)
    assert out["policy"] == "dynmem"
    assert out["duration_s"] == 120
    assert out["vms"] == 3 and out["started"] == 3 and out["refused"] == 0
    # web and fixed run from the first step, batch from 10 s
    assert 340 <= out["vm_seconds"] <= 350, out["vm_seconds"]
    assert 0 <= out["short_seconds"] <= out["vm_seconds"]
    assert (out["short_byte_seconds"] > 0) == (out["short_seconds"] > 0)
    assert out["oom_kills"] == 0
    assert out["budget_violations"] == 0
    assert 0 < out["host_mean_bytes"] <= out["host_peak_bytes"] <= 3584 * 2**20
    assert out["resize_ops"] > 0
    assert 0 <= out["reaction_p50_s"] <= out["reaction_p95_s"]
    for key in JSON_KEYS - {"policy"}:
        assert isinstance(out[key], (int, float)) and out[key] >= 0, key


def test_refused_vm_counted():
    path = scenario("refused.ini", "[host]\nmemory = 1G\n" + GOOD_VM +
                    "[vm \"huge\"]\nstartup = 2G\ntrace = a.csv\n")
    out = sim_json(path)
    assert out["vms"] == 2 and out["started"] == 1 and out["refused"] == 1, out


def test_startup_beyond_host_memory_warned():
    # Such a VM was only counted as never started, with no word on why.
    path = scenario("too-big.ini", "[host]\nmemory = 1G\n[sim]\nduration = 5s\n" + GOOD_VM +
                    "[vm \"huge\"]\nminimum = 256M\nstartup = 1536M\ntrace = a.csv\n")
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr  # a what-if: the run goes ahead
    assert json.loads(r.stdout)["refused"] == 1, r.stdout  # the warning is not in the JSON
    want = (f'{path}:14: warning: vm "huge": startup 1536 MiB is more than [host] memory '
            "1 GiB: it can never start (the results count it as never started); lower its "
            "startup to 1 GiB or less, or raise [host] memory to 1536 MiB or more\n")
    assert r.stderr == want, r.stderr
    # A startup of the whole host is no warning: it starts while nothing else runs.
    path = scenario("whole-host.ini", "[host]\nmemory = 1G\n[sim]\nduration = 5s\n" +
                    "[vm \"all\"]\nstartup = 1G\ntrace = a.csv\n")
    r = run(path, "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["refused"] == 0, r.stdout


def test_startup_beyond_the_largest_swept_host_warned():
    # A sweep replaces [host] memory: the largest size it runs is what counts.
    path = scenario("too-big-sweep.ini", "[host]\nmemory = 1G\n[sim]\nduration = 5s\n" +
                    "[vm \"huge\"]\nstartup = 1536M\ntrace = a.csv\n")
    r = run(path, "--sweep", "memory=512M:1.4G:256M", "--policy", "static", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["points"][-1]["started"] == 0, r.stdout
    assert r.stderr == (f'{path}:6: warning: vm "huge": startup 1536 MiB is more than the largest '
                        "host of the sweep (1280 MiB): it starts at no size (each point counts "
                        "it as never started); lower its startup to 1280 MiB or less, or sweep "
                        "up to 1536 MiB or more\n"), r.stderr
    r = run(path, "--sweep", "memory=1G:2G:512M", "--policy", "static", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr


DAEMON_CONF = """[host]
memory = 4G
reserve = 512M
interval = 2s
backend = qemu
socket = /run/dynmem/dynmemd.sock
state_dir = /var/lib/dynmem
http = 127.0.0.1:8080
http_allow_remote = no
web_dir = /usr/share/dynmem/web
qemu_user = dynmem-qemu
libvirt_uri = qemu:///system
[sim]
duration = 5s
speed = 10
[policy]
shrink_delay = 10s
[vm "a"]
startup = 512M
lend = no
autostart = yes
trace = a.csv
[cluster]
relief = yes
cooldown = 5m
[peer "b"]
libvirt_uri = qemu+ssh://b/system
http = http://b:8080
"""


def test_daemon_only_keys_warned():
    # Accepted in silence before: a real dynmem.conf may be pointed at, so a warning per key,
    # and the run goes ahead; the keys dynmem-sim reads (reserve, interval, lend...) are none.
    path = scenario("daemon.ini", DAEMON_CONF)
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["started"] == 1, r.stdout
    lines = {5: "backend", 6: "socket", 7: "state_dir", 8: "http", 9: "http_allow_remote",
             10: "web_dir", 11: "qemu_user", 12: "libvirt_uri", 15: "speed", 21: "autostart",
             24: "relief", 25: "cooldown", 27: "libvirt_uri", 28: "http"}
    want = "".join(f"{path}:{n}: warning: {key}: used by dynmemd only; dynmem-sim ignores it\n"
                   for n, key in lines.items())
    assert r.stderr == want, r.stderr
    # An error elsewhere still refuses the scenario; the warnings come after it.
    path = scenario("daemon-bad.ini", DAEMON_CONF.replace("speed = 10", "speed = fast"))
    r = run(path)
    expect_exit(r, 2, f'{path}:15: speed: "fast" is not a number')


def test_seed_warned_as_ignored():
    # Read and never used: nothing in the simulator is random, so a seed must not look as if
    # it chose anything. A warning at its line; the run goes ahead, the same for any seed.
    text = "[host]\nmemory = 2G\n[sim]\nduration = 5s\nseed = 7\n" + GOOD_VM
    path = scenario("seed.ini", text)
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f"{path}:5: warning: seed: nothing in dynmem-sim is random, so it "
                        "ignores the seed (a generated trace takes its seed from "
                        "dynmem-tracegen --seed)\n"), r.stderr
    other = run(scenario("seed-8.ini", text.replace("seed = 7", "seed = 8")), "--json")
    unset = run(scenario("no-seed.ini", text.replace("seed = 7\n", "")), "--json")
    assert other.returncode == 0 and "seed" in other.stderr, other.stderr
    assert unset.returncode == 0 and unset.stderr == "", unset.stderr
    assert r.stdout == other.stdout == unset.stdout
    # A seed that is no number is still an error, with no warning beside it.
    r = run(scenario("seed-bad.ini", text.replace("seed = 7", "seed = x")))
    expect_exit(r, 2, f'{path.replace("seed.ini", "seed-bad.ini")}:5: seed: "x" is not a whole '
                "number")
    assert "warning" not in r.stderr, r.stderr


def test_warnings_past_twenty_are_counted():
    # The first 20 warnings are printed, then how many more: none is lost without a word,
    # and they are counted as warnings, not as problems of the scenario.
    vms = "".join(f'[vm "v{i}"]\nstartup = 64M\nautostart = yes\ntrace = a.csv\n'
                  for i in range(30))
    path = scenario("many-warnings.ini", "[host]\nmemory = 4G\n[sim]\nduration = 5s\n" + vms)
    r = run(path, "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 21, r.stderr
    assert lines[:20] == [f"{path}:{7 + 4 * i}: warning: autostart: used by dynmemd only; "
                          "dynmem-sim ignores it" for i in range(20)], r.stderr
    assert lines[20] == "... and 10 more warnings", r.stderr
    # After an error, the warnings' closing line says warnings: "problems" would count errors
    # that are not there. (" # mine" is part of the path, which is warned of; the file has
    # that name. The first VM that starts too late is the error.)
    write("a.csv # mine", "seconds,demand\n0,300M\n")
    bad = "".join(f'[vm "v{i}"]\nstart = 9s\ntrace = a.csv # mine\n' for i in range(23))
    path = scenario("many-both.ini", "[host]\nmemory = 4G\n[sim]\nduration = 5s\n" + bad)
    r = run(path)
    expect_exit(r, 2)
    lines = r.stderr.splitlines()
    assert len(lines) == 22, r.stderr
    assert lines[0].startswith(f'{path}:6: start: "9s" is not before the end'), r.stderr
    assert all(": warning: trace: " in line for line in lines[1:21]), r.stderr
    assert lines[21] == "... and 3 more warnings", r.stderr


def test_deterministic():
    first = run(SMALL, "--json")
    second = run(SMALL, "--json")
    assert first.returncode == 0 and second.returncode == 0
    assert first.stdout == second.stdout


def test_human_summary():
    r = run(SMALL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("policy dynmem, 3 VMs")
    for name in ("web", "batch", "fixed"):
        assert f"\n{name} " in r.stdout, name


def test_human_summary_counts_one_as_one():
    # "1 VMs over 10s" before; "resize operations" likewise
    path = scenario("one-vm.ini", "[host]\nmemory = 2G\n[sim]\nduration = 10s\n"
                    "[vm \"a\"]\nstartup = 512M\ntrace = a.csv\n")
    r = run(path, "--policy", "static")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("policy static, 1 VM over 10s on a host with "), r.stdout
    assert "; 0 resize operations\n" in r.stdout, r.stdout


# ---- --timeline and --report ----

def test_timeline():
    path = os.path.join(TMP, "timeline.csv")
    r = run(SMALL, "--timeline", path)
    assert r.returncode == 0, r.stderr
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[0] == "seconds,vm,state,demand,assigned,target,reason", lines[0]
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 3 * 120, len(rows)  # every step, every VM
    last = -1.0
    for row in rows:
        assert len(row) == 7, row
        assert row[1] in ("web", "batch", "fixed"), row
        t = float(row[0])
        assert t >= last
        last = t
        assert all(int(x) >= 0 for x in row[3:6]), row
    assert any(row[1] == "batch" and row[2] == "off" for row in rows)  # before its start
    assert any(row[2] == "running" for row in rows)


def test_timeline_unwritable():
    r = run(SMALL, "--timeline", "/nonexistent-dir/t.csv")
    expect_exit(r, 1, "/nonexistent-dir/t.csv")


def test_report_html():
    path = os.path.join(TMP, "report.html")
    r = run(SMALL, "--report", path, "--json")
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)  # --json still prints its object
    with open(path, encoding="utf-8") as f:
        html = f.read()
    assert html.startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 4  # the host and each VM
    assert "</html>" in html
    for name in ("web", "batch", "fixed"):
        assert name in html
    assert "<script" not in html and "http://" not in html  # self-contained


def test_full_disk_is_an_error():
    with open("/dev/full", "w") as full:
        for args in ([SMALL, "--json"], [SMALL]):
            r = subprocess.run([SIM, *args], stdout=full, stderr=subprocess.PIPE, text=True,
                               timeout=60)
            expect_exit(r, 1, "cannot write")
    expect_exit(run(SMALL, "--timeline", "/dev/full"), 1, "cannot write /dev/full")
    expect_exit(run(SMALL, "--report", "/dev/full"), 1, "cannot write /dev/full")


def test_report_unwritable():
    # Found before the run, not after it: nothing is printed as if it had gone well.
    r = run(SMALL, "--report", "/nonexistent-dir/r.html")
    expect_exit(r, 1, "/nonexistent-dir/r.html: No such file or directory")
    assert r.stdout == "", r.stdout


def outputs_dir(name):
    """An empty directory for the outputs of one case."""
    path = os.path.join(TMP, name)
    os.makedirs(path)
    return path


def test_no_output_left_by_a_run_that_cannot_write_another():
    # The timeline was created (an older one emptied) before the report's path was found
    # unwritable, and left so.
    out = outputs_dir("outputs-unwritable")
    timeline = os.path.join(out, "t.csv")
    r = run(SMALL, "--timeline", timeline, "--report", "/nonexistent-dir/r.html")
    expect_exit(r, 1, "/nonexistent-dir/r.html: No such file or directory")
    assert os.listdir(out) == [], os.listdir(out)
    with open(timeline, "w", encoding="utf-8") as f:
        f.write("an older timeline\n")
    r = run(SMALL, "--timeline", timeline, "--report", "/nonexistent-dir/r.html")
    expect_exit(r, 1, "/nonexistent-dir/r.html")
    with open(timeline, encoding="utf-8") as f:
        assert f.read() == "an older timeline\n"
    assert os.listdir(out) == ["t.csv"], os.listdir(out)


def test_no_output_left_by_a_run_that_is_killed():
    # Killed half-way (here by its own policy): the report was left empty and the
    # timeline half-written, in place of the older ones.
    out = outputs_dir("outputs-killed")
    timeline, report = os.path.join(out, "t.csv"), os.path.join(out, "r.html")
    r = run(SMALL, "--timeline", timeline, "--report", report, "--policy",
            "exec:kill -9 $PPID")
    assert r.returncode == -9, (r.returncode, r.stderr)
    assert os.listdir(out) == [], os.listdir(out)
    for path in (timeline, report):
        with open(path, "w", encoding="utf-8") as f:
            f.write("older\n")
    r = run(SMALL, "--timeline", timeline, "--report", report, "--policy",
            "exec:kill -9 $PPID")
    assert r.returncode == -9, (r.returncode, r.stderr)
    for path in (timeline, report):
        with open(path, encoding="utf-8") as f:
            assert f.read() == "older\n", path
    assert sorted(os.listdir(out)) == ["r.html", "t.csv"], os.listdir(out)


def test_outputs_replace_older_files_whole():
    out = outputs_dir("outputs-replaced")
    timeline, report = os.path.join(out, "t.csv"), os.path.join(out, "r.html")
    for path in (timeline, report):
        with open(path, "w", encoding="utf-8") as f:
            f.write("older\n" * 100000)
    r = run(SMALL, "--timeline", timeline, "--report", report)
    assert r.returncode == 0, r.stderr
    with open(timeline, encoding="utf-8") as f:
        assert f.read().startswith("seconds,vm,state,")
    with open(report, encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>\n"), text[-40:]
    assert sorted(os.listdir(out)) == ["r.html", "t.csv"], os.listdir(out)
    # Created as fopen() creates a file: 0666 less the umask.
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(report).st_mode & 0o777 == 0o666 & ~umask, oct(os.stat(report).st_mode)


def test_outputs_that_would_overwrite_an_input_refused():
    # --timeline naming the VM's trace emptied it, and the run then failed on the empty
    # trace; --report naming the scenario replaced it with the page.
    trace_text = "seconds,demand\n0,300M\n10,400M\n"
    trace = write("inputs/t.csv", trace_text)
    ini = write("inputs/s.ini", "[host]\nmemory = 4G\n[sim]\nduration = 20s\n"
                "[vm \"a\"]\nstartup = 512M\ntrace = t.csv\n")
    with open(ini, encoding="utf-8") as f:
        ini_text = f.read()
    cases = ((["--timeline", trace], f'--timeline {trace} is the trace of vm "a" ({ini}:7): '
              "it would be overwritten"),
             (["--report", ini], f"--report {ini} is the scenario: it would be overwritten"),
             (["--report", os.path.join(TMP, "inputs", "..", "inputs", "t.csv")],
              'is the trace of vm "a"'),
             (["--sweep", "memory=1G:2G:1G", "--report", trace], 'is the trace of vm "a"'))
    for args, needle in cases:
        r = run(ini, *args)
        expect_exit(r, 2, needle)
        assert r.stdout == "", (args, r.stdout)
    with open(trace, encoding="utf-8") as f:
        assert f.read() == trace_text
    with open(ini, encoding="utf-8") as f:
        assert f.read() == ini_text


def test_outputs_naming_the_same_file_refused():
    out = outputs_dir("outputs-same")
    path = os.path.join(out, "both")
    expect_exit(run(SMALL, "--timeline", path, "--report", path), 2,
                f"--timeline and --report name the same file {path}")
    assert os.listdir(out) == [], os.listdir(out)
    with open(path, "w", encoding="utf-8") as f:
        f.write("older\n")
    os.symlink(path, os.path.join(out, "link"))
    expect_exit(run(SMALL, "--timeline", path, "--report", os.path.join(out, "link")), 2,
                "name the same file")
    # Not a regular file: both may go there.
    r = run(SMALL, "--timeline", "/dev/null", "--report", "/dev/null")
    assert r.returncode == 0, r.stderr


# ---- policies ----

def test_static_never_resizes():
    out = sim_json(SMALL, "--policy", "static")
    assert out["policy"] == "static"
    assert out["resize_ops"] == 0
    assert out["host_peak_bytes"] == 3 * 512 * 2**20


def test_policies_differ():
    static = sim_json(SMALL, "--policy", "static")
    hyperv = sim_json(SMALL, "--policy", "hyperv")
    dynmem = sim_json(SMALL)
    assert hyperv["policy"] == "hyperv" and hyperv["resize_ops"] > 0
    # Dynamic memory serves the spikes a static size cannot.
    assert dynmem["short_seconds"] < static["short_seconds"]
    assert hyperv["short_seconds"] < static["short_seconds"]


POLICY_PY = """
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    targets = {}
    for vm in req["vms"]:
        if vm["running"] and vm["demand"] is not None:
            want = int(vm["demand"] * 1.3)
            want = max(vm["minimum"], min(vm["maximum"], want))
            targets[vm["name"]] = want
    print(json.dumps({"targets": targets}), flush=True)
"""


def test_exec_policy():
    script = write("policy.py", POLICY_PY)
    spec = f"exec:{PYTHON} {script}"
    out = sim_json(SMALL, "--policy", spec)
    assert out["policy"].startswith("exec:") and spec.startswith(out["policy"]), out["policy"]
    assert out["started"] == 3 and out["budget_violations"] == 0
    assert out["resize_ops"] > 0
    assert out["policy_failures"] == 0 and out["policy_failed"] is False, out
    static = sim_json(SMALL, "--policy", "static")
    assert out["short_seconds"] < static["short_seconds"]
    assert static["policy_failures"] == 0 and static["policy_failed"] is False, static


def test_exec_policy_named_in_full():
    script = write("a-policy-with-a-rather-long-name-to-see-it-reported-whole.py", POLICY_PY)
    spec = f"exec:{PYTHON} {script}"
    out = sim_json(SMALL, "--policy", spec)
    assert out["policy"] == spec, out["policy"]


def test_exec_policy_keeping_targets():
    script = write("keep.py", 'import sys\nfor line in sys.stdin:\n'
                   '    print(\'{"targets": {}}\', flush=True)\n')
    out = sim_json(SMALL, "--policy", f"exec:{PYTHON} {script}")
    assert out["resize_ops"] == 0  # every VM keeps its startup size


def test_exec_policy_from_scenario():
    script = write("policy2.py", POLICY_PY)
    path = scenario("execpol.ini", f"[host]\nmemory = 4G\npolicy = exec:{PYTHON} {script}\n" +
                    GOOD_VM)
    out = sim_json(path)
    assert out["policy"].startswith("exec:")
    assert out["resize_ops"] > 0


def test_exec_policy_failure_is_survived():
    # A policy that answers every other request (it exits after each answer): as under
    # dynmemd the VMs keep their targets meanwhile, and the run is a run of it; its
    # failures are counted (as dynmemd's policy_refusals), in the JSON and the summary.
    script = write("flaky.sh", "read -r line; echo '{\"targets\": {\"web\": 1073741824}}'\n")
    r = run(SMALL, "--json", "--policy", f"exec:sh {script}")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["resize_ops"] > 0, out  # its answers were applied
    assert out["policy_failed"] is False and out["policy_failures"] > 0, out
    assert "exited with status 0" in r.stderr, r.stderr
    r = run(SMALL, "--policy", f"exec:sh {script}")
    assert r.returncode == 0, r.stderr
    assert f"  external policy failures: {out['policy_failures']} (previous targets stood)\n" \
        in r.stdout, r.stdout


def test_exec_policy_that_never_answered_fails_the_run():
    # A typo in its path, or nonsense for every answer: the figures are those of targets
    # that never moved, which looked like a working static policy with exit status 0.
    for policy, why in (("exec:/nonexistent/policy", "/nonexistent/policy: not found"),
                        ("exec:while read l; do echo nonsense; done", "not JSON")):
        r = run(SMALL, "--json", "--policy", policy)
        expect_exit(r, 1, why, f'small.ini: policy "{policy}" never answered (')
        out = json.loads(r.stdout)  # the results are printed all the same, and say so
        assert out["policy_failed"] is True and out["policy_failures"] > 0, out
        assert out["resize_ops"] == 0, out  # every VM kept its startup size
        assert f"never answered ({out['policy_failures']} failures): the run failed" in r.stderr
    page = os.path.join(TMP, "never-answered.html")
    r = run(SMALL, "--policy", "exec:/nonexistent/policy", "--report", page)
    assert r.returncode == 1, r.stderr
    assert "  external policy failed: it never answered (" in r.stdout, r.stdout
    with open(page, encoding="utf-8") as f:
        html = f.read()
    assert 'id="policy-failed"' in html and 'id="policy-failures">' in html, html



CHATTY_SH = """n=0
while read -r line; do
    n=$((n + 1))
    echo "request $n: a word" >&2; echo "request $n: another" >&2; echo "request $n: more" >&2
    echo '{"targets": {}}'
done
"""


def test_exec_policy_stderr_limited_per_run():
    # The program's standard error was passed through whole: 1,350 lines a simulated day of
    # "sh: 1: /opt/x: not found" for a typo in its path. Now the first ten lines of the run,
    # each naming the policy, and a line saying how many more there were.
    script = write("chatty.sh", CHATTY_SH)
    policy = f"exec:sh {script}"
    r = run(SMALL, "--json", "--policy", policy)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)  # nothing of it in the JSON
    lines = r.stderr.splitlines()
    assert len(lines) == 11, r.stderr
    for i, line in enumerate(lines[:10]):
        request, which = divmod(i, 3)
        word = ("a word", "another", "more")[which]
        assert line == f'dynmem-sim: policy "sh {script}": request {request + 1}: {word}', line
    assert lines[10] == (f'dynmem-sim: policy "sh {script}": 350 more lines of its standard '
                         "error not shown"), lines[10]
    # The same limit for every run of a sweep.
    r = run(SMALL, "--sweep", "memory=2G:3G:1G", "--policy", policy, "--jobs", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("request 1: a word\n") == 2, r.stderr
    assert r.stderr.count("350 more lines of its standard error not shown\n") == 2, r.stderr
    assert len(r.stderr.splitlines()) == 22, r.stderr


def test_exec_policy_failure_text_is_printable():
    # The reply names a VM with a terminal escape, a bell and a C1 CSI: the message that
    # quotes it reaches stderr with spaces for them
    script = write("escapes.py", 'import sys\nfor line in sys.stdin:\n'
                   '    print(\'{"targets": {"\\\\u001b[2J\\\\u0007\\\\u009b31mvm": 1}}\', '
                   'flush=True)\n')
    r = subprocess.run([SIM, SMALL, "--json", "--policy", f"exec:{PYTHON} {script}"],
                       capture_output=True, timeout=120)
    assert r.returncode == 1, r.stderr  # it never answered usefully
    err = r.stderr.decode("utf-8", "replace")
    assert 'unknown VM " [2J  31mvm"' in err, err
    assert not any(c in err for c in "\x1b\x07\x9b"), repr(err)
    assert all(len(line.encode()) <= 400 for line in err.splitlines()), err

def handover_scenario(interval):
    """One VM gives memory back at 300 s as another needs it, on a host that is full."""
    write("handover/giver.csv", "seconds,demand\n0,1500M\n299,1500M\n300,100M\n600,100M\n")
    write("handover/taker.csv", "seconds,demand\n0,300M\n299,300M\n300,1000M\n600,1000M\n")
    return write("handover/handover.ini", f"""[host]
memory = 2G
reserve = 0
policy = hyperv
interval = {interval}

[sim]
duration = 450s
step = 30s

[vm "giver"]
dynamic = yes
startup = 1600M
minimum = 64M
maximum = 2G
trace = giver.csv

[vm "taker"]
dynamic = yes
startup = 400M
minimum = 64M
maximum = 2G
trace = taker.csv
""")


def handover_rows(interval):
    timeline = os.path.join(TMP, "handover", f"timeline-{interval}.csv")
    r = run(handover_scenario(interval), "--timeline", timeline)
    assert r.returncode == 0, r.stderr
    with open(timeline, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split(",") for line in f][1:]
    return {(float(row[0]), row[1]): row for row in rows}


def test_memory_freed_by_a_shrink_is_handed_on_within_the_step():
    # dynmemd decides every [host] interval (1 s): the memory the giver's shrink frees
    # goes to the taker that waited for it seconds later, not at the next 30-s step.
    rows = handover_rows("1s")
    assert rows[(300.0, "taker")][6] == "waiting", rows[(300.0, "taker")]
    assert int(rows[(330.0, "taker")][4]) >= 1000 * MIB, rows[(330.0, "taker")]
    assert int(rows[(330.0, "giver")][4]) < 500 * MIB, rows[(330.0, "giver")]
    # A daemon that decides once a step hands it on at the next step.
    rows = handover_rows("30s")
    assert rows[(300.0, "taker")][6] == "waiting", rows[(300.0, "taker")]
    assert int(rows[(330.0, "taker")][4]) < 1000 * MIB, rows[(330.0, "taker")]
    assert int(rows[(360.0, "taker")][4]) >= 1000 * MIB, rows[(360.0, "taker")]


TESTS = [(name, fn) for name, fn in globals().items()
         if name.startswith("test_") and callable(fn)]


def main():
    status = simtap.run_cases([fn for _, fn in TESTS])
    shutil.rmtree(TMP, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
