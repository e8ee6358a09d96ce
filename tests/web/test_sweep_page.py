#!/usr/bin/env python3
"""The capacity sweep's HTML report in a real browser: dynmem-sim sweeps the small
scenario over seven host sizes under three policies; headless Chromium (Debian's,
driven by playwright-core) opens the page and must show, for each policy, a drawn
curve of short VM-seconds and of OOM kills with a point per size, the service level
line, the smallest host meeting it (the same as --json says), a table row per size,
no error and no request beyond the file. A screenshot is saved in the build directory.

    test_sweep_page.py DYNMEM_SIM SCENARIO BUILD_DIR

Prints TAP; exits 77 (skipped) when chromium cannot be installed.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from dynmemtest import Tap, check  # noqa: E402
from test_page import setup  # noqa: E402

tap = Tap()
POLICIES = ["static", "hyperv", "dynmem"]
SIZES = 7


def main():
    if len(sys.argv) != 4:
        print("usage: test_sweep_page.py DYNMEM_SIM SCENARIO BUILD_DIR", file=sys.stderr)
        sys.exit(2)
    sim, scenario = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shot = os.path.join(os.path.abspath(sys.argv[3]), "dynmem-sweep.png")
    modules = setup()
    result, expected = {}, {}

    @tap.case
    def the_sweep_page_opens(b):
        with tempfile.TemporaryDirectory() as tmp:
            page = os.path.join(tmp, "sweep.html")
            r = subprocess.run([sim, scenario, "--sweep", "memory=1G:4G:512M", "--slo",
                                "short=1%", "--report", page, "--json"],
                               capture_output=True, text=True, timeout=600)
            check(r.returncode == 0, "dynmem-sim --sweep", r.stderr)
            expected.update(json.loads(r.stdout))
            env = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(modules, "playwright-core"))
            p = subprocess.run(["node", os.path.join(HERE, "sweep_check.cjs"), page, shot],
                               capture_output=True, text=True, timeout=600, env=env)
            check(p.stdout.strip(), "sweep_check.cjs reported", p.stderr)
            result.update(json.loads(p.stdout.strip().splitlines()[-1]))
            check("failure" not in result, "the browser run", result.get("failure"), p.stderr)

    @tap.case
    def a_drawn_curve_per_policy_in_both_charts(b):
        for chart in ("short", "oom"):
            c = result.get(chart) or {}
            check(c.get("shown"), f"the {chart} chart is laid out", c)
            check(sorted(c.get("curves", {})) == sorted(POLICIES), f"{chart}: a curve per policy",
                  c)
            for policy, curve in c["curves"].items():
                check(curve["points"] == SIZES and curve["finite"] and curve["inside"],
                      f"{chart}/{policy}: a point per size, inside the chart", curve)
                check(curve["width"] > 100, f"{chart}/{policy}: drawn across the sizes", curve)
            colours = {curve["stroke"] for curve in c["curves"].values()}
            check(len(colours) == len(POLICIES), f"{chart}: one colour per policy", colours)
            check(c.get("markers") == SIZES * len(POLICIES), f"{chart}: the markers", c)
        check(result["short"]["slo"] == 1, "the service level line", result["short"])

    @tap.case
    def the_smallest_host_is_the_one_the_json_names(b):
        shown = result.get("smallest", {})
        check(sorted(shown) == sorted(POLICIES), "a smallest host per policy", shown)
        for policy in POLICIES:
            want = expected["smallest_bytes"][policy] or 0
            check(shown[policy]["bytes"] == want, f"{policy}: as --json says", shown, want)
        check(expected["smallest_bytes"]["dynmem"], "dynmem meets the level somewhere",
              expected["smallest_bytes"])
        check(result["short"]["smallest"] == sum(1 for p in POLICIES
                                                  if expected["smallest_bytes"][p]),
              "a marker per policy that meets it", result["short"])

    @tap.case
    def a_table_row_per_size(b):
        rows = result.get("rows", [])
        check(len(rows) == SIZES, "a row per size", rows)
        check(rows[0][0] == "1 GiB" and rows[-1][0] == "4 GiB", "from 1 to 4 GiB", rows)
        check(all(len(r) == 1 + 5 * len(POLICIES) for r in rows), "every column", rows[0])
        meets = sum(1 for p in expected["points"] if p["meets_slo"])
        check(result.get("meets") == meets, "the sizes that meet it are marked", meets,
              result.get("meets"))

    @tap.case
    def no_errors_no_network_and_a_screenshot(b):
        check(result.get("errors") == [], "no script errors", result.get("errors"))
        check(result.get("foreign") == [], "nothing fetched beyond the file",
              result.get("foreign"))
        check(os.path.getsize(shot) > 10000, "the screenshot", shot)
        print(f"# screenshot: {shot}", flush=True)

    sys.exit(tap.run(None))


if __name__ == "__main__":
    main()
