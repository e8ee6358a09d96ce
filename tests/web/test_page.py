#!/usr/bin/env python3
"""The live page in a real browser: dynmemd runs simulated VMs whose demand
keeps moving; headless Chromium (Debian's, driven by playwright-core) opens
the page and must show a row per VM, a drawn chart per running VM and for the
host, numbers that change, the events, no error and no request beyond
dynmemd; while dynmemd does not answer, the figures say how old they are,
and the charts break where the polls were missed. A screenshot is saved in the build directory.

    test_page.py DYNMEMD DYNMEM BUILD_DIR

Prints TAP; exits 77 (skipped) when chromium cannot be installed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Tap, check, running, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


tap = Tap()

CONFIG = """
memory = 8G
interval = 200ms
http = 127.0.0.1:0

[sim]
speed = 10

[vm "web1"]
dynamic = yes
startup = 1G
minimum = 512M
maximum = 3G
trace = {wave}
autostart = yes

[vm "db1"]
dynamic = yes
startup = 2G
minimum = 1G
maximum = 3G
buffer = 30
weight = 8000
lend = no
trace = {steps}
autostart = yes

[vm "spare"]
startup = 1G
trace = {steps}
"""


def write_traces(tmp):
    wave, steps = os.path.join(tmp, "wave.csv"), os.path.join(tmp, "steps.csv")
    with open(wave, "w") as f:
        f.write("seconds,demand\n")
        for k in range(0, 7200, 15):
            f.write(f"{k},{400 if (k // 15) % 2 == 0 else 1800}M\n")
    with open(steps, "w") as f:
        f.write("seconds,demand\n")
        for k in range(0, 7200, 25):
            f.write(f"{k},{900 + (k // 25) % 4 * 300}M\n")
    return wave, steps


REFUSAL = 'backend: <img src=x id="pwn1"> & "quoted" \'single\' </td>'
PROBLEM = '<dynmem:minimum>1G & <script id="pwn2">x</script>'
ODD_NAME = '<i id="pwn3">odd</i>&"'
PEER = '<b id="pwn4">peer</b>'
PEER_ERROR = 'http://peer:9100/: <img id="pwn7"> refused'
EVENT = 'crashed: <img id="pwn6"> & "x"'
STATE_ERROR = 'cannot write /var/lib/dynmem/<b id="pwn8">x</b>: No space left on device'
OVERCOMMIT = "the running VMs' minimums (9 GiB in all) exceed memory (8 GiB) & <i id=\"pwn9\">"
RELIEF_LAST = 'moving web1 to <img id="pwn10">: short of memory for 90s'


def make_fixture(d):
    """The API's answers, made from dynmemd's own: VMs without an agent, stopped after a
    refused start, arriving by migration, with a problem, with a name that is markup."""
    vms = d.json("list")
    base = next(v for v in vms if v["name"] == "web1")

    def like(name, **changes):
        vm = json.loads(json.dumps(base))
        vm["name"] = name
        vm.update(changes)
        return vm

    backend = dict(base["backend"], name="qemu", signal="none", agent_state="waiting",
                   pid=4242, accelerator="kvm", version="10.0.0", machine="pc-q35-10.0",
                   choices=[{"name": 'virtio-mem <b id="pwn5">x</b>', "value": "on",
                             "why": 'QEMU & "10.0"'}], offers=None)
    fixture_vms = [
        like("noagent", demand_bytes=None, pressure_percent=None, status="unknown",
             lent_bytes=512 * 1024, backend=backend),
        like("stopped", state="off", assigned_bytes=0, demand_bytes=None,
             pressure_percent=None, status="none", target_bytes=0, lent_bytes=0,
             reason="none", refusal=REFUSAL, autostart=False,
             overrides=["buffer_percent", "weight", "autostart"], reset_pending=["minimum_bytes"]),
        like("moving", migration="incoming", status="unknown"),
        like("broken", origin="libvirt", problem=PROBLEM),
        like(ODD_NAME),
    ]
    status = d.json("status")
    status["peers"] = [{"name": PEER, "libvirt_uri": None, "http": None, "state": "down",
                        "error": PEER_ERROR, "age_ms": None, "memory_bytes": None,
                        "assigned_bytes": None, "available_for_balancing_bytes": None,
                        "running": None}]
    status.update(state_saved=False, state_error=STATE_ERROR, overcommitted=True,
                  overcommit_error=OVERCOMMIT)
    status["relief"] = dict(status["relief"], enabled=True, short=True,
                            short_bytes=512 * 1024 * 1024, short_for_ms=90000, moves=2, done=1,
                            failed=0, no_room=1, moving="web1", last=RELIEF_LAST)
    counters = d.json("counters")
    counters["vms"] = {v["name"]: dict(next(iter(counters["vms"].values())))
                       for v in fixture_vms}
    events = {"events": [{"seq": 1, "time_ms": 1700000000000, "kind": "crashed",
                          "vm": "stopped", "text": EVENT}], "next": 2, "dropped": 0,
              "more": False}
    return {"vms": fixture_vms, "status": status, "counters": counters, "events": events}


def setup():
    p = subprocess.run([os.path.join(HERE, "setup.sh")], capture_output=True, text=True,
                       timeout=900)
    if p.returncode == 77:
        print(f"1..0 # SKIP {p.stderr.strip()}", flush=True)
        sys.exit(77)
    if p.returncode != 0:
        print("1..0", flush=True)
        print(f"Bail out! {p.stderr.strip()}", flush=True)
        sys.exit(1)
    return p.stdout.strip()


def main():
    if len(sys.argv) != 4:
        print("usage: test_page.py DYNMEMD DYNMEM BUILD_DIR", file=sys.stderr)
        sys.exit(2)
    bins = (os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    shot = os.path.join(os.path.abspath(sys.argv[3]), "dynmem-page.png")
    modules = setup()
    result = {}

    @tap.case
    def the_page_shows_the_vms_charts_and_events(b):
        with tempfile.TemporaryDirectory() as tmp:
            wave, steps = write_traces(tmp)
            with running(b, CONFIG.format(wave=wave, steps=steps)) as d:
                wait_for(lambda: d.vm("db1")["state"] == "running", "the VMs to run")
                url = d.json("status")["http_url"]
                env = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(modules, "playwright-core"))
                p = subprocess.run(["node", os.path.join(HERE, "page_check.cjs"), url, shot],
                                   capture_output=True, text=True, timeout=600, env=env)
                check(p.stdout.strip(), "page_check.cjs reported", p.stderr)
                result.update(json.loads(p.stdout.strip().splitlines()[-1]))
                result["show"] = d.ok("show", "db1").out
                check("failure" not in result, "the browser run", result.get("failure"),
                      p.stderr)

    @tap.case
    def one_row_per_vm_with_every_column(b):
        rows = result.get("last", {})
        check(sorted(rows) == ["db1", "spare", "web1"], "a row per VM", rows)
        db1 = rows["db1"]
        for col in ("name", "state", "assigned", "lent", "demand", "pressure", "status", "minimum",
                    "startup", "maximum", "buffer", "weight", "lend"):
            check(col in db1, f"column {col}", db1)
        check(db1["state"] == "running" and db1["minimum"] == "1 GiB" and
              db1["startup"] == "2 GiB" and db1["maximum"] == "3 GiB" and
              db1["buffer"] == "30 %" and db1["weight"] == "8000", "db1's settings", db1)
        # the setting lend, as `dynmem show` prints it (a Lend column was missing)
        check(db1["lend"] == "off" and rows["web1"]["lend"] == "on", "lend", rows)
        # lending is off (lend_hold = 0): nothing of db1's target is a loan
        check(db1["lent"] == "0 B", "db1 is lent nothing", db1)
        check(rows["spare"]["state"] == "off" and rows["spare"]["pressure"] == "-" and
              rows["spare"]["status"] == "none", "an off VM: it holds no memory, status none",
              rows["spare"])
        check(result["host"]["memory"] == "8 GiB" and result["host"]["vms"] == "3 (2 running)",
              "the host line", result["host"])
        # no [peer] sections: no Peers label (the header's flex layout showed it, empty)
        check(result["host"]["peersShown"] is False, "no peers", result["host"])
        # no relief rule, minimums within memory, the state saved: nothing said of them
        check(result["host"]["alertsShown"] == [], "no relief and no warnings", result["host"])

    @tap.case
    def a_vm_chosen_by_its_name_shows_all_dynmem_show_prints(b):
        # Only the table's columns were on the page before: not its target, reason, block,
        # whether it is dynamic, where it is defined, autostart, refusal or backend.
        none, det = result.get("detailsNone", {}), result.get("details", {})
        check(none.get("hidden") is True and none.get("selected") == [], "nothing chosen", none)
        check(det.get("hidden") is False and det.get("name") == "db1" and
              det.get("selected") == ["db1"], "db1 chosen", det)
        page_fields = det.get("fields", {})
        show = {}
        for line in result.get("show", "").splitlines():
            label, _, value = line.partition(":")
            if label.strip() and value.strip():
                show[label.strip()] = value.strip()
        check(len(show) > 15, "dynmem show's lines", result.get("show"))
        missing = [k for k in show if k not in page_fields]
        check(not missing, "every line of dynmem show on the page", missing, page_fields)
        for k in ("Name", "Dynamic memory", "Minimum", "Startup", "Maximum", "Buffer", "Weight",
                  "Block", "Lend", "Defined by", "Autostart", "Overridden", "Backend",
                  "Demand from"):
            check(page_fields.get(k) == show[k], f"{k} as dynmem show has it", page_fields, show)

    @tap.case
    def the_numbers_change(b):
        check(result.get("changed") is True, "assigned or demand changed while watching",
              result.get("first"), result.get("last"))

    @tap.case
    def charts_are_drawn_from_the_local_library(b):
        check(result.get("dygraph") == "function", "dygraphs loaded from dynmemd",
              result.get("dygraph"))
        charts = result.get("charts", {})
        check(sorted(charts) == ["db1", "web1"], "a chart per running VM", charts)
        check(all(ink > 500 for ink in charts.values()), "each chart has drawn lines", charts)
        check(result.get("hostChart", {}).get("host-chart", 0) > 500, "the host chart",
              result.get("hostChart"))
        check(result.get("foreign") == [], "no request leaves dynmemd (no CDN)",
              result.get("foreign"))

    @tap.case
    def events_and_no_errors(b):
        events = result.get("events", [])
        check(any(re.search(r"(db1|web1) [+-][\d.]+ [MG]iB: .*pressure", e) for e in events),
              "grows and shrinks with their size and reason", events)
        check(result.get("errors") == [], "no script errors", result.get("errors"))
        check(result.get("connection", "").startswith("updated"), "connected",
              result.get("connection"))

    @tap.case
    def figures_left_when_dynmemd_stops_answering_say_how_old(b):
        # The last figures stayed as they were, with no word of their age, before.
        lost = result.get("lost", {})
        check(re.fullmatch(r"dynmemd not answering: .*; figures from \d\d:\d\d:\d\d",
                           lost.get("connection", "")), "the connection line", lost)
        check(lost.get("tdColor") == "rgb(93, 104, 120)", "the table greyed out", lost)
        check(result.get("recovered") is True, "in full colour again once dynmemd answers",
              result.get("recovered"))

    @tap.case
    def the_charts_break_where_polls_are_missing(b):
        # The lines joined the last point before dynmemd stopped answering to the first
        # after, as if the figures had moved straight from one to the other, before.
        before, after = result.get("gapsBefore", {}), result.get("gapsAfter", {})
        check(sorted(after) == ["db1", "host-chart", "web1"], "every chart seen", after)
        check(all(after[k] > before.get(k, 0) for k in after),
              "a gap more in each, where the polls failed", before, after)

    @tap.case
    def a_screenshot_is_saved(b):
        check(os.path.getsize(shot) > 10000, "the screenshot", shot)
        print(f"# screenshot: {shot}", flush=True)

    @tap.case
    def vms_a_test_cannot_make_here_and_strings_that_look_like_markup(b):
        # dynmemd serves the page; its API is answered from VM objects it gave, changed
        # into what needs guests, libvirt or a second host to make for real.
        with tempfile.TemporaryDirectory() as tmp:
            wave, steps = write_traces(tmp)
            with running(b, CONFIG.format(wave=wave, steps=steps)) as d:
                wait_for(lambda: d.vm("db1")["state"] == "running", "the VMs to run")
                fixture = make_fixture(d)
                path = os.path.join(tmp, "fixture.json")
                with open(path, "w") as f:
                    json.dump(fixture, f)
                url = d.json("status")["http_url"]
                env = dict(os.environ, PLAYWRIGHT_CORE=os.path.join(modules, "playwright-core"))
                p = subprocess.run(["node", os.path.join(HERE, "fixture_check.cjs"), url, path,
                                    shot.replace(".png", "-fixture.png")],
                                   capture_output=True, text=True, timeout=600, env=env)
        check(p.stdout.strip(), "fixture_check.cjs reported", p.stderr)
        r = json.loads(p.stdout.strip().splitlines()[-1])
        check("failure" not in r, "the browser run", r.get("failure"), p.stderr)
        check(r.get("errors") == [], "no script errors", r.get("errors"))
        seen = [r["page"]] + list(r["vms"].values())
        check(all(v["injected"] == [] for v in seen), "no markup from the API's strings",
              [v["injected"] for v in seen])
        rows = r["page"]["rows"]
        check(sorted(rows) == sorted(v["name"] for v in fixture["vms"]), "a row per VM", rows)

        # no agent yet: nothing known of its demand
        waiting = r["vms"]["noagent"]
        row = waiting["rows"]["noagent"]
        check(row["demand"] == "-" and row["pressure"] == "-" and row["status"] == "unknown",
              "unknown demand", row)
        check(waiting["details"]["Guest agent"] == "waiting" and
              waiting["details"]["Demand from"] == "none" and
              waiting["details"]["Demand"] == "-" and "Agent protocol" not in waiting["details"],
              "the agent waited for", waiting["details"])
        check(waiting["details"]["Lent"] == "512 KiB" and row["lent"] == "512 KiB",
              "a size under 1 MiB in KiB, as dynmem show has it", row, waiting["details"])
        check(waiting["details"]["Chosen"] == 'virtio-mem <b id="pwn5">x</b>=on (QEMU & "10.0")',
              "the backend's choice, as text", waiting["details"])

        # stopped, its last start refused
        off = r["vms"]["stopped"]
        check(off["rows"]["stopped"]["state"] == "off" and
              off["rows"]["stopped"]["assigned"] == "0 B", "the stopped VM", off["rows"])
        check(off["details"]["Last refusal"] == REFUSAL, "the refusal, as text", off["details"])
        check(off["details"].get("Overridden") == "buffer, weight, autostart" and
              off["details"].get("Reset waits") == "minimum (the file's values once the VM is off)",
              "overrides and a reset that waits, by the names dynmem set takes", off["details"])

        # arriving by live migration
        moving = r["vms"]["moving"]["rows"]["moving"]
        check(moving["state"] == "running (incoming)", "the migration under way", moving)
        check(r["vms"]["moving"]["details"]["State"] == "running (incoming)", "in the details",
              r["vms"]["moving"]["details"])

        # a libvirt domain whose dynmem settings cannot be used
        broken = r["vms"]["broken"]["details"]
        check(broken["Problem"] == PROBLEM and broken["Defined by"] == "libvirt",
              "the problem, as text", broken)
        # and flagged in the table, as dynmem list flags it (its status looked fine before)
        check(rows["broken"]["status"] == "problem" and rows["noagent"]["status"] == "unknown",
              "the problem in the status column", rows)

        # a name that is markup (dynmemd refuses such names; the page must not rely on it)
        odd = r["vms"][ODD_NAME]
        check(odd["detailsName"] == ODD_NAME and odd["details"]["Name"] == ODD_NAME and
              ODD_NAME in odd["rows"], "a name that looks like markup", odd)

        # peers and events
        # a peer that cannot be asked, and why (its error was not shown before)
        check(r["page"]["peersShown"] and r["page"]["peers"] == PEER + " down: " + PEER_ERROR,
              "the peer, as text", r["page"]["peers"])
        check(any(EVENT in e for e in r["page"]["events"]), "the event, as text",
              r["page"]["events"])

        # the host's warnings, in the header beside its figures, as text (neither the
        # state file's error nor overcommitted minimums were on the page before, and the
        # relief rule only as "short of memory" after the peers)
        host = r["page"]["host"]
        check(host.get("host-overcommit") == OVERCOMMIT, "overcommitted minimums", host)
        check(host.get("host-state") == STATE_ERROR, "the state file not written", host)
        check(host.get("host-relief") == "short of memory now (512 MiB for 90s); 2 moves "
              "(1 done, 0 failed), 1 without room; moving web1 now; last: " + RELIEF_LAST,
              "the relief rule", host)
        check(r["page"]["alertColor"] == "rgb(255, 180, 168)", "the warnings stand out",
              r["page"]["alertColor"])

    sys.exit(tap.run(bins))


if __name__ == "__main__":
    main()
