#!/usr/bin/env python3
"""dynmem events: every grow and shrink with its size and reason, every start
and refused start, with times; --follow keeps printing, and a follower that
falls too far behind is told how many events it missed."""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Tap, check, dynamic_vm, main, running, sim_host, static_vm,  # noqa: E402
                        wait_for)


tap = Tap()

CONFIG = (sim_host("3G")
          + dynamic_vm("web1", "rise.csv", maximum="2G")
          + static_vm("big", "4G", "small.csv", minimum="4G", maximum="4G")
          + static_vm("spare", "512M", "small.csv"))

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (.*)$")


def texts(d):
    out = d.ok("events").out
    lines = out.splitlines()
    for line in lines:
        check(LINE.match(line), "each event starts with its time", line)
    return [LINE.match(line).group(1) for line in lines]


class Follower:
    """dynmem events --follow in the background, its lines collected."""

    def __init__(self, d, *args, read=True):
        cmd = [d.dynmem, "--socket", d.socket, "events", "--follow"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.thread = None
        if read:
            self.start_reading()

    def start_reading(self):
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.thread:
            self.thread.join(timeout=30)
        return self.proc.stderr.read()


@tap.case
def grows_and_starts_are_listed_with_size_and_reason(bins):
    with running(bins, CONFIG) as d:
        wait_for(lambda: any(t.startswith("web1 +") for t in texts(d)), "web1 to grow")
        t = texts(d)
        check("web1 started with 1 GiB" in t, "the start is listed", t)
        grow = [x for x in t if x.startswith("web1 +")]
        check(all(re.match(r"^web1 \+\d+(\.\d+)? [MG]iB: (.*, )?pressure (\d+ %|unknown)$", x)
                  for x in grow), "grows read 'web1 +SIZE: pressure P %'", grow)
        events = d.json("events")
        adds = [e for e in events if e["kind"] == "add"]
        check(adds and all(e["to_bytes"] - e["from_bytes"] == e["bytes"] and e["reason"]
                           for e in adds), "--json: sizes and reasons", adds)
        seqs = [e["seq"] for e in events]
        check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "in order", seqs)


@tap.case
def a_refused_start_is_an_event(bins):
    with running(bins, CONFIG) as d:
        d.fails("start", "big", contains="not enough memory")
        t = texts(d)
        check(any(x.startswith("big start refused: not enough memory") for x in t),
              "the refusal is listed with its reason", t)
        ev = [e for e in d.json("events") if e["kind"] == "refused"]
        check(ev and ev[0]["vm"] == "big" and "not enough memory" in ev[0]["message"],
              "--json: kind refused with the message", ev)


# A policy whose every reply names a VM with a terminal escape, a newline and a bell
# (JSON escapes, so the program's own words reach the failure's text).
ESCAPING_POLICY = """#!/bin/sh
while read -r line; do
    printf '%s\\n' '{"targets": {"\\u001b[2J\\u001b[31mweb\\nFAKE 00:00:00  vm\\u0007": 1}}'
done
"""


@tap.case
def a_policy_failure_is_listed_without_control_characters(bins):
    d0 = running(bins, CONFIG + "\n[host]\npolicy = exec:/bin/sh @DIR@/policy.sh\n")
    d0.d.write_file("policy.sh", ESCAPING_POLICY)
    with d0 as d:
        wait_for(lambda: any(x.startswith("policy: ") for x in texts(d)), "a policy failure")
        out = d.ok("events").out
        check(not any(c in out for c in "\x1b\x07"), "no escape or bell in the text", repr(out))
        policy = [x for x in texts(d) if x.startswith("policy: ")]
        check(any('unknown VM " [2J [31mweb FAKE 00:00:00  vm "' in x for x in policy),
              "the newline is a space: the name stays on the event's line", policy)
        ev = [e for e in d.json("events") if e["kind"] == "policy"]
        check(ev and all(not any(ord(c) < 0x20 or ord(c) == 0x7f for c in e["message"] + e["text"])
                         for e in ev), "--json: message and text without control characters", ev)
        raw = d.ok("events", "--json").out
        check("\\u001b" not in raw and "\\n" not in raw and "\\u0007" not in raw,
              "--json lines carry no escaped control characters", raw)


@tap.case
def follow_prints_new_events_as_they_come(bins):
    with running(bins, CONFIG) as d:
        f = Follower(d)
        try:
            wait_for(lambda: any("web1 started" in x for x in f.lines), "the history first")
            d.ok("start", "spare")
            wait_for(lambda: any(x.endswith("spare started with 512 MiB") for x in f.lines),
                     "the new start to be followed")
        finally:
            err = f.stop()
        check(err == "", "nothing on stderr", err)
        j = Follower(d, "--json")
        try:
            d.ok("stop", "spare")
            d.ok("start", "spare")
            wait_for(lambda: sum('"spare"' in x and '"started"' in x for x in j.lines) >= 2,
                     "--json lines")
        finally:
            j.stop()
        for line in j.lines:
            check("kind" in json.loads(line), "one JSON object per line", line)


@tap.case
def follow_ends_when_the_daemon_goes_away(bins):
    with running(bins, CONFIG) as d:
        f = Follower(d)
        wait_for(lambda: f.lines, "some events")
        d.stop()
        rc = f.proc.wait(timeout=60)
        err = f.proc.stderr.read()
        check(rc == 1 and err.startswith("dynmem: "), "exit 1 with the reason", rc, err)


# Many VMs whose demand keeps moving: a few hundred events per second.
BUSY_HEAD = """
memory = 64G
interval = 20ms
policy = hyperv

[sim]
speed = 50
"""


def busy_config(trace):
    vms = "".join(f"""
[vm "vm{i:02d}"]
dynamic = yes
startup = 1G
minimum = 256M
maximum = 3G
trace = {trace}
autostart = yes
""" for i in range(24))
    return BUSY_HEAD + vms


def saw_trace(path):
    with open(path, "w") as f:
        f.write("seconds,demand\n")
        for k in range(0, 7200, 10):
            f.write(f"{k},{300 if (k // 10) % 2 == 0 else 2000}M\n")


@tap.case
def a_follower_that_falls_behind_is_told_what_it_missed(bins):
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "saw.csv")
        saw_trace(trace)
        with running(bins, busy_config(trace)) as d:
            # The follower's output pipe is not read: once it is full the
            # follower stops asking, and the daemon goes on without it.
            f = Follower(d, read=False)
            try:
                first = wait_for(lambda: d.json("events")[-1]["seq"] > 0 and
                                 d.json("events")[-1]["seq"], "events")
                # the ring holds 4096: wait until twice that happened since
                wait_for(lambda: d.json("events")[-1]["seq"] > first + 8192 + 2000,
                         "many events", timeout=300)
                f.start_reading()
                wait_for(lambda: any("events missed" in x for x in f.lines),
                         "the follower to say it missed events", timeout=120)
            finally:
                f.stop()
            missed = [x for x in f.lines if "events missed" in x]
            n = int(re.match(r"^\((\d+) events missed", missed[0]).group(1))
            check(n > 0, "a count of missed events", missed)
            check(d.ok("status").out, "the daemon still answers")


if __name__ == "__main__":
    main(tap)
