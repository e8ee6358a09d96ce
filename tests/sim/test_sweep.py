#!/usr/bin/env python3
"""dynmem-sim --sweep: usage errors, the JSON (every size x policy, the same figures as
single runs at that size, whatever the number of workers), the smallest host meeting
the service level, the human table, the HTML page, and failures in a worker.

    test_sweep.py DYNMEM_SIM DATA_DIR

Prints TAP: a plan, then "ok N - name" / "not ok N - name" per case.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simtap  # noqa: E402

SIM = os.path.abspath(sys.argv[1])
DATA = os.path.abspath(sys.argv[2])
SMALL = os.path.join(DATA, "small.ini")
TMP = tempfile.mkdtemp(prefix="dynmem-sweep-test-")
GIB = 1 << 30
SWEEP = "memory=1G:4G:512M"  # 7 sizes: too small for all three VMs up to room for all


def run(*args, timeout=300):
    return subprocess.run([SIM, *args], capture_output=True, text=True, timeout=timeout)


def sweep_json(*args):
    r = run(SMALL, "--sweep", SWEEP, "--json", *args)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)


def expect_exit(r, code, *needles):
    assert r.returncode == code, f"exit {r.returncode}, expected {code}; stderr: {r.stderr}"
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr: {r.stderr}"


def test_usage_errors():
    # One sentence for both before, naming neither the field nor its text.
    expect_exit(run(SMALL, "--sweep", "memory=4G:1G:512M"), 2,
                '--sweep: FROM "4G" is above TO "1G": the sizes go up from FROM to TO '
                "(memory=1G:4G:512M)")
    expect_exit(run(SMALL, "--sweep", "memory=1G:2G"), 2, "memory=FROM:TO:STEP")
    expect_exit(run(SMALL, "--sweep", "cpus=1:2:1"), 2, "memory=FROM:TO:STEP")
    for step in ("0", "0G"):
        expect_exit(run(SMALL, "--sweep", f"memory=1G:2G:{step}"), 2,
                    f'--sweep: STEP "{step}" is 0: the sizes would never reach TO')
    # An empty field (a trailing, leading or doubled ':') was skipped before.
    expect_exit(run(SMALL, "--sweep", "memory=1G:2G:1G:"), 2, "memory=FROM:TO:STEP")
    expect_exit(run(SMALL, "--sweep", "memory=:1G:2G:1G"), 2, "memory=FROM:TO:STEP")
    expect_exit(run(SMALL, "--sweep", "memory=1G::2G:1G"), 2, "memory=FROM:TO:STEP")
    expect_exit(run(SMALL, "--sweep", "memory=1G:2G:1G" + " " * 200), 2, "memory=FROM:TO:STEP")
    expect_exit(run(SMALL, "--sweep", "memory=32M:10G:1M"), 2, "more than 1000")
    expect_exit(run(SMALL, "--sweep", "memory=1G:2 G:1G"), 2,
                '--sweep: TO "2 G" has a blank between the number and its unit; write 2G')
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "short=0.1"), 2, "short=P%")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "short=150%"), 2, "short=P%")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "oom=-1"), 2, "oom=N")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "latency=1"), 2, "expected short")
    # The second range silently replaced the first before.
    expect_exit(run(SMALL, "--sweep", SWEEP, "--sweep", "memory=1G:2G:1G"), 2,
                "--sweep given more than once")
    # The second of a repeated key silently replaced the first before.
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "short=1%", "--slo", "short=2%"), 2,
                "short= given more than once")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "oom=0", "--slo", "oom=3"), 2,
                "oom= given more than once")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--jobs", "0"), 2, "--jobs")
    # The last of a repeated --jobs was silently kept before.
    expect_exit(run(SMALL, "--sweep", SWEEP, "--jobs", "2", "--jobs", "4"), 2,
                "--jobs given more than once")
    # A policy given twice was swept twice before.
    expect_exit(run(SMALL, "--sweep", SWEEP, "--policy", "static", "--policy", "hyperv",
                    "--policy", "static"), 2, '--policy "static" given more than once')
    expect_exit(run(SMALL, "--sweep", SWEEP, "--policy", "exec: "), 2,
                '--policy "exec: " names no program after exec:')
    expect_exit(run(SMALL, "--sweep", SWEEP, "--timeline", os.path.join(TMP, "t.csv")), 2,
                "--timeline with --sweep")
    expect_exit(run(SMALL, "--slo", "short=1%"), 2, "--slo needs --sweep")
    expect_exit(run(SMALL, "--jobs", "2"), 2, "--jobs needs --sweep")
    expect_exit(run(SMALL, "--policy", "hyperv", "--policy", "dynmem"), 2,
                "--policy more than once needs --sweep")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--policy", "nonsense"), 2, "unknown policy")


def test_sizes_read_as_host_memory_is():
    # Plain bytes below 1 MiB were taken: memory=40:96:4 swept hosts of 40 to 96 bytes.
    expect_exit(run(SMALL, "--sweep", "memory=40:96:4"), 2,
                '--sweep: FROM "40" has no unit and would be 40 bytes; write 40M')
    expect_exit(run(SMALL, "--sweep", "memory=1G:4096:512M"), 2, 'TO "4096" has no unit')
    expect_exit(run(SMALL, "--sweep", "memory=1G:2G:512"), 2, 'STEP "512" has no unit')
    # Each bad field named, with its text.
    expect_exit(run(SMALL, "--sweep", "memory=1G:lots:1G"), 2, '--sweep: TO "lots" is not a size')
    expect_exit(run(SMALL, "--sweep", "memory=-1G:2G:1G"), 2, 'FROM "-1G" is not a size')
    expect_exit(run(SMALL, "--sweep", "memory=1G:2G:1Gx"), 2, 'STEP "1Gx" is not a size')
    expect_exit(run(SMALL, "--sweep", "memory=1G: 2G:1G"), 2, 'TO " 2G" is not a size')
    expect_exit(run(SMALL, "--sweep", "memory=1G:18446744073709551616:1G"), 2,
                'TO "18446744073709551616" is too large')
    # Below the least [host] memory a scenario takes.
    expect_exit(run(SMALL, "--sweep", "memory=16M:2G:16M"), 2, "FROM 16M is below 32 MiB")
    # Units of every kind, decimals, and plain bytes of 1 MiB and more.
    r = run(SMALL, "--sweep", "memory=1.5GiB:1610612736:1024K", "--policy", "static", "--json")
    assert r.returncode == 0, r.stderr
    assert [p["memory_bytes"] for p in json.loads(r.stdout)["points"]] == [3 * GIB // 2]
    r = run(SMALL, "--sweep", "memory=33554432:32M:1M", "--policy", "static", "--json")
    assert r.returncode == 0, r.stderr


def test_sizes_beyond_json_integers_refused():
    # 9000000T is more than 2^63 bytes: memory_bytes would be written negative.
    expect_exit(run(SMALL, "--sweep", "memory=9000000T:9000000T:1G"), 2, "below 8 EiB")
    expect_exit(run(SMALL, "--sweep", "memory=8000000T:9000000T:1000000T"), 2, "below 8 EiB")


def test_slo_and_jobs_take_plain_numbers_only():
    # strtod and strtoul took leading blanks, signs, exponents, hex and "inf" before.
    for slo in ("short= 1%", "short=1e-1%", "short=0x1p-3%", "short=inf%", "short=.5%",
                "short=5.%", "short=%", "short=-0%", "short=1%%"):
        expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", slo), 2,
                    f'--slo: "{slo}" is not short=P% (0..100)')
    for slo in ("oom= 5", "oom=+5", "oom=", "oom= -1", "oom=5 ", "oom=0x10"):
        expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", slo), 2, f'--slo: "{slo}" is not oom=N')
    for jobs in (" 2", "+2", "-1", "2 ", "", "18446744073709551617"):
        expect_exit(run(SMALL, "--sweep", SWEEP, "--jobs", jobs), 2, f'--jobs: "{jobs}" is not 1..64')
    out = run(SMALL, "--sweep", "memory=2G:2G:1G", "--policy", "static", "--slo", "short=0.25%",
              "--slo", "oom=12", "--jobs", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["slo"] == {"short_share": 0.0025, "oom_kills": 12}, out.stdout


def test_oom_beyond_json_integers_refused():
    # Written as -1 in the JSON's slo before: the count is a signed 64-bit integer there.
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "oom=99999999999999999999"), 2, "oom=N")
    expect_exit(run(SMALL, "--sweep", SWEEP, "--slo", "oom=9223372036854775808"), 2, "oom=N")
    out = sweep_json("--slo", "oom=9223372036854775807", "--policy", "static")
    assert out["slo"]["oom_kills"] == 9223372036854775807, out["slo"]


def test_every_size_and_policy():
    out = sweep_json()
    pts = out["points"]
    sizes = sorted({p["memory_bytes"] for p in pts})
    assert sizes == [GIB + k * 512 * 2**20 for k in range(7)], sizes
    assert [p["policy"] for p in pts[:3]] == ["static", "hyperv", "dynmem"], pts[:3]
    assert len(pts) == 21, len(pts)
    for p in pts:
        assert p["ok"] and p["vms"] == 3 and p["budget_violations"] == 0, p
        assert p["policy_failures"] == 0 and p["policy_failed"] is False, p
        assert p["host_mean_bytes"] <= p["memory_bytes"], p
    assert out["smallest_bytes"] is None, out["smallest_bytes"]  # no --slo given
    assert out["workers"] >= 1 and out["wall_s"] > 0, out


def test_points_match_single_runs():
    pts = sweep_json("--policy", "hyperv", "--policy", "dynmem", "--jobs", "3")["points"]
    for p in pts[::3]:
        with open(SMALL, encoding="utf-8") as f:
            text = f.read().replace("memory = 3584M", f"memory = {p['memory_bytes']}")
        path = os.path.join(TMP, "single.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("trace = traces/", f"trace = {DATA}/traces/"))
        r = run(path, "--policy", p["policy"], "--json")
        assert r.returncode == 0, r.stderr
        single = json.loads(r.stdout)
        for key in ("started", "short_seconds", "oom_kills", "resize_ops", "host_mean_bytes"):
            assert single[key] == p[key], (key, single[key], p[key], p["memory_bytes"])


def test_workers_do_not_change_figures():
    one = sweep_json("--jobs", "1")
    many = sweep_json("--jobs", "5")
    strip = [{k: v for k, v in p.items()} for p in one["points"]]
    assert strip == many["points"], "different figures with 1 and 5 workers"
    assert one["workers"] == 1 and many["workers"] == 5, (one["workers"], many["workers"])


def test_smallest_host_meeting_the_slo():
    out = sweep_json("--slo", "short=1%", "--slo", "oom=0")
    assert out["slo"] == {"short_share": 0.01, "oom_kills": 0}, out["slo"]
    for policy in ("static", "hyperv", "dynmem"):
        pts = [p for p in out["points"] if p["policy"] == policy]
        for p in pts:
            meets = (p["started"] == p["vms"] and p["oom_kills"] == 0 and
                     p["short_seconds"] <= 0.01 * p["vm_seconds"])
            assert p["meets_slo"] == meets, p
        # The smallest size from which every larger one meets it.
        expect = None
        for p in reversed(pts):
            if not p["meets_slo"]:
                break
            expect = p["memory_bytes"]
        assert out["smallest_bytes"][policy] == expect, (policy, out["smallest_bytes"], pts)
    assert out["smallest_bytes"]["dynmem"] is not None, out
    assert out["smallest_bytes"]["static"] is None or \
        out["smallest_bytes"]["static"] >= out["smallest_bytes"]["dynmem"], out


def test_human_table():
    r = run(SMALL, "--sweep", SWEEP, "--slo", "short=1%")
    assert r.returncode == 0, r.stderr
    assert "7 host sizes x 3 policies" in r.stdout, r.stdout
    assert re.search(r"^1 GiB\s", r.stdout, re.M) and re.search(r"^4 GiB\s", r.stdout, re.M)
    assert "smallest host meeting the service level" in r.stdout, r.stdout
    assert re.search(r"^  dynmem\s+\S+ [GM]iB$", r.stdout, re.M), r.stdout


def test_one_size_one_policy_one_worker_counted_as_one():
    # "1 host sizes x 1 policies ... on 1 workers" before, and so on the page
    page = os.path.join(TMP, "one.html")
    r = run(SMALL, "--sweep", "memory=2G:2G:512M", "--policy", "static", "--jobs", "1",
            "--report", page)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^sweep of \S+: 1 host size x 1 policy in [0-9.]+ s on 1 worker$",
                     r.stdout, re.M), r.stdout
    with open(page, encoding="utf-8") as f:
        html = f.read()
    assert "1 host size &times; 1 policy, simulated on 1 worker process in" in html, html[:2000]


def test_human_table_explains_its_stars():
    # "(* not every VM started)" was printed under every table, with or without a star.
    r = run(SMALL, "--sweep", "memory=3G:4G:1G")
    assert r.returncode == 0, r.stderr
    assert "*" not in r.stdout and "not every VM started" not in r.stdout, r.stdout
    r = run(SMALL, "--sweep", "memory=1G:4G:1G", "--policy", "static")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^1 GiB\s+[0-9.]+\*", r.stdout, re.M), r.stdout
    assert "(* not every VM started)" in r.stdout, r.stdout


def test_human_table_columns_line_up():
    # A mean of "1015.5 MiB" overflowed its 7 columns and pushed the rest of its row.
    r = run(SMALL, "--sweep", "memory=1G:2G:1G", "--policy", "static", "--policy", "dynmem")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "1015.5 MiB" in lines[3], lines[3]
    table = lines[1:4]
    assert len({len(line) for line in table}) == 1, table


def test_html_page():
    page = os.path.join(TMP, "sweep.html")
    r = run(SMALL, "--sweep", SWEEP, "--slo", "short=1%", "--report", page, "--json")
    assert r.returncode == 0, r.stderr
    with open(page, encoding="utf-8") as f:
        html = f.read()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert 'id="short-curve"' in html and 'id="oom-curve"' in html
    assert len(re.findall(r'<polyline class="curve" data-policy="dynmem"', html)) == 2
    assert len(re.findall(r'<tr data-bytes="\d+">', html)) == 7
    assert 'id="smallest"' in html and 'class="slo"' in html
    assert "<script" not in html and "http" not in html


def test_report_unwritable():
    # Found before the sweep runs, not once it is over.
    r = run(SMALL, "--sweep", SWEEP, "--report", "/nonexistent/dir/x.html")
    expect_exit(r, 1, "/nonexistent/dir/x.html: No such file or directory")
    assert r.stdout == "", r.stdout


def test_a_failed_sweep_leaves_an_older_report_as_it_was():
    # A worker killed (here by its policy): the sweep fails, and its report, opened
    # before, was left empty in place of the older one.
    out = os.path.join(TMP, "failed-sweep")
    os.makedirs(out)
    report = os.path.join(out, "sweep.html")
    with open(report, "w", encoding="utf-8") as f:
        f.write("older\n")
    r = run(SMALL, "--sweep", "memory=2G:3G:1G", "--policy", "exec:kill -9 $PPID", "--report",
            report)
    expect_exit(r, 1, "runs did not report")
    with open(report, encoding="utf-8") as f:
        assert f.read() == "older\n"
    assert os.listdir(out) == ["sweep.html"], os.listdir(out)


def test_a_policy_that_never_answers_fails_its_runs():
    # A typo in an exec: policy's path: its points were "ok" with the figures of targets that
    # never moved, no count of its failures, and exit status 0, as if it were static.
    policy = "exec:/nonexistent/policy"
    r = run(SMALL, "--sweep", "memory=2G:3G:1G", "--policy", policy, "--policy", "hyperv",
            "--json")
    expect_exit(r, 1, "/nonexistent/policy: not found",
                f"{policy} at 2 GiB: the policy never answered (")
    out = json.loads(r.stdout)
    for p in out["points"]:
        if p["policy"] == policy:
            assert not p["ok"] and p["policy_failed"] and p["policy_failures"] > 0, p
            assert not p["meets_slo"], p
        else:
            assert p["ok"] and not p["policy_failed"] and p["policy_failures"] == 0, p
    # The table says it, with the count, in a column the exec: policy has.
    r = run(SMALL, "--sweep", "memory=2G:3G:1G", "--policy", policy, "--policy", "hyperv")
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert "failures" in lines[2] and lines[2].count("failures") == 1, lines[2]
    failures = out["points"][0]["policy_failures"]
    assert re.search(rf"^2 GiB\s+never answered\s+{failures}\s+[0-9.]+\s", lines[3]), lines[3]
    assert len({len(line) for line in lines[1:5]}) == 1, lines[1:5]  # the columns line up
    page = os.path.join(TMP, "never-answered.html")
    r = run(SMALL, "--sweep", "memory=2G:3G:1G", "--policy", policy, "--policy", "hyperv",
            "--report", page)
    assert r.returncode == 1, r.stderr
    with open(page, encoding="utf-8") as f:
        html = f.read()
    assert html.count('class="failed">never answered</td>') == 2, html
    assert html.count(f'<td class="policy-failures">{failures}</td>') == 2, html
    assert html.count("<th>policy failures</th>") == 1, html
    assert len(re.findall(r'<circle class="point"', html)) == 2 * 2, html  # hyperv's only


def test_a_policy_that_fails_at_times_is_counted():
    # One that answers every other request (it exits after each answer): its runs are
    # runs of it (ok, exit status 0), with its failures counted as a single run counts them.
    script = os.path.join(TMP, "flaky.sh")
    with open(script, "w", encoding="utf-8") as f:
        f.write("read -r line; echo '{\"targets\": {\"web\": 1073741824}}'\n")
    policy = f"exec:sh {script}"
    r = run(SMALL, "--sweep", "memory=2G:3G:1G", "--policy", policy, "--json")
    assert r.returncode == 0, r.stderr
    points = json.loads(r.stdout)["points"]
    for p in points:
        assert p["ok"] and not p["policy_failed"] and p["policy_failures"] > 0, p
        assert p["resize_ops"] > 0, p
    with open(SMALL, encoding="utf-8") as f:
        text = f.read().replace("memory = 3584M", "memory = 2G")
    single = os.path.join(TMP, "flaky.ini")
    with open(single, "w", encoding="utf-8") as f:
        f.write(text.replace("trace = traces/", f"trace = {DATA}/traces/"))
    r = run(single, "--policy", policy, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["policy_failures"] == points[0]["policy_failures"], r.stdout


CASES = [v for k, v in sorted(globals().items()) if k.startswith("test_")]


def main():
    status = simtap.run_cases(CASES)
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
