#!/usr/bin/env python3
"""A balancing loop that never waits: while an exec: policy holds its reply, or
a QEMU never answers its QMP greeting, `status` is answered and the cycles go on
(as counted by dynmemd itself: never stopped for long, however loaded the machine
is); the late reply is still applied.
A QEMU asked what it offers that is silent for 20 s is killed and asked once
more: one silent once goes on to the start, one that never answers fails it
after the second 20 s with the reason, and nothing of either is left running;
a QEMU whose QMP broke off while asked is asked once more too. A policy that
answers garbage or dies keeps the VMs at their targets, is restarted after a
pause that doubles, and is followed again once it answers. What a policy writes on
its standard error reaches the log, so many lines a minute."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (MIB, WAIT, Skip, Tap, check, dynamic_vm, main, request,  # noqa: E402
                        running, wait_for)

tap = Tap()

# The policy reads what to do from a file next to it, for every request: a
# number of seconds to think, then a target for "web", or "garbage", or "die", or
# "hold" and a target: answer only once a file "release" is there. It notes when it
# starts and when it answers garbage (the clock's time, for the restart pauses).
POLICY = """#!/bin/sh
dir=$(dirname "$0")
echo "start $(date +%s.%N)" >> "$dir/events"
while read -r line; do
    echo "$line" > "$dir/last-request"
    read -r mode < "$dir/mode"
    case "$mode" in
    garbage) echo "garbage $(date +%s.%N)" >> "$dir/events"; echo 'this is not JSON' ;;
    die) exit 3 ;;
    hold*)
        : > "$dir/holding"
        while [ ! -e "$dir/release" ]; do sleep 0.05; done
        rm -f "$dir/holding" "$dir/release"
        set -- $mode; echo "{\\"targets\\": {\\"web\\": $2}}" ;;
    *) set -- $mode; sleep "$1"; echo "{\\"targets\\": {\\"web\\": $2}}" ;;
    esac
done
"""

CONFIG = """
memory = 8G
interval = 100ms
policy = exec:/bin/sh @DIR@/policy.sh
""" + dynamic_vm("web", "flat-300m.csv") + dynamic_vm("db", "flat-300m.csv")


def set_mode(d, mode):
    path = os.path.join(d.dir, "mode")
    with open(path + ".tmp", "w") as f:
        f.write(mode + "\n")
    os.rename(path + ".tmp", path)


class daemon_with_policy(running):
    def __init__(self, bins, mode):
        super().__init__(bins, CONFIG)
        self.d.write_file("policy.sh", POLICY)
        set_mode(self.d, mode)


def target(d, name):
    return d.vm(name)["target_bytes"]


def host(d):
    return d.json("status")


def timed_status(s):
    """One `status` request on connection s: its time and what it says of the host."""
    t0 = time.monotonic()
    s.sendall(request("status"))
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        check(chunk, "dynmemd closed the connection")
        buf += chunk
    reply = json.loads(buf)
    check(reply.get("ok"), "status failed", buf)
    return time.monotonic() - t0, reply["host"]


def holding(d):
    return os.path.exists(os.path.join(d.dir, "holding"))


def policy_starts(d):
    return len(events(d, "start"))


@tap.case
def status_and_cycles_do_not_wait_for_a_slow_policy(bins):
    with daemon_with_policy(bins, f"0 {1536 * MIB}") as d:
        wait_for(lambda: target(d, "web") == 1536 * MIB, "the first reply to be applied")
        # The next request is held until the test releases it: however long the
        # machine's load makes the checks take (within the 10 s dynmemd gives it).
        set_mode(d, f"hold {1280 * MIB}")
        wait_for(lambda: holding(d), "a request the policy holds")
        before = host(d)
        # 20 status requests (or more) and 10 cycles while the policy holds its reply. A
        # loop that waited for the policy would answer none of them and run no cycle (or
        # kill the policy when the reply was due, and start it again).
        p99, worst, calls, after = status_calls_while(
            d, 0, at_least=20, until=lambda st: st["cycles"] - before["cycles"] >= 10)
        print(f"# {calls} status calls while the policy held its reply: p99 "
              f"{p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms; cycles "
              f"{after['cycles'] - before['cycles']}, skipped "
              f"{after['cycles_skipped'] - before['cycles_skipped']}, lateness p99 "
              f"{after['cycle_lateness_p99_ms']} ms", flush=True)
        check(holding(d) and policy_starts(d) == 1, "the held request was not the one still "
              "asked", policy_starts(d), d.log())
        wait_for(lambda: "has not answered for" in d.log(), "the lateness to be reported")
        # The held reply, late, is applied; so are replies that take 3 s.
        set_mode(d, f"3 {1024 * MIB}")
        d.write_file("release", "")
        wait_for(lambda: target(d, "web") == 1280 * MIB, "the held reply to be applied")
        wait_for(lambda: target(d, "web") == 1024 * MIB, "a reply after 3 s to be applied")
        check(policy_starts(d) == 1 and "killed" not in d.log(),
              "the policy was killed for thinking", d.log())
        check(d.log().count("has not answered for") <= 6, "lateness reported too often",
              d.log())


def status_calls_while(d, seconds, at_least=100, until=lambda status: True):
    """Time `status` requests on one connection for `seconds`, at least `at_least`,
    and until the last reply satisfies `until` (within WAIT): the worst 1 %, the
    worst, how many, and the last reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(WAIT)
    s.connect(d.socket)
    times = []
    t0 = time.monotonic()
    while True:
        took, last = timed_status(s)
        times.append(took)
        if len(times) >= at_least and time.monotonic() - t0 >= seconds and until(last):
            break
        check(time.monotonic() - t0 < WAIT, f"not so within {WAIT:.0f} s", last)
        time.sleep(0.05)
    s.close()
    times.sort()
    return times[int(len(times) * 0.99) - 1], times[-1], len(times), last


def events(d, kind):
    """The times the policy noted (policy.sh) of one kind, in order."""
    try:
        with open(os.path.join(d.dir, "events")) as f:
            lines = f.read().split("\n")[:-1]  # the last line may be being written
    except FileNotFoundError:
        return []
    return [float(line.split()[1]) for line in lines if line.split()[0] == kind]


def policy_log(d):
    return [line for line in d.log().splitlines() if "policy:" in line]


def restarts_after_garbage(d):
    """For each garbage reply, the seconds until the policy's next start (the ones
    that came so far), as the policy itself noted them."""
    starts = events(d, "start")
    return [next(s for s in starts if s > g) - g for g in events(d, "garbage")
            if any(s > g for s in starts)]


def pause_notices(d):
    """(pause in ms, failures in a row) of each "will be restarted" notice."""
    return [(int(ms), int(n)) for ms, n in
            re.findall(r"restarted (\d+) ms after its failure \((\d+) in a row\)", d.log())]


@tap.case
def garbage_or_death_keeps_targets_and_restarts_with_backoff(bins):
    with daemon_with_policy(bins, f"0 {1536 * MIB}") as d:
        wait_for(lambda: target(d, "web") == 1536 * MIB, "the policy's target")
        db = target(d, "db")
        set_mode(d, "garbage")
        wait_for(lambda: len(events(d, "garbage")) >= 2, "a second garbage reply")
        set_mode(d, "die")
        # The restarts as the policy saw them: the garbage is written before dynmemd
        # reads it and a start noted after dynmemd forks, so each interval is at least
        # the pause dynmemd kept. A loaded machine only makes them longer.
        gaps = wait_for(lambda: len(restarts_after_garbage(d)) >= 2 and restarts_after_garbage(d),
                        "a restart after the second garbage reply")
        print("# restarts after garbage: " + ", ".join(f"{g:.2f} s" for g in gaps), flush=True)
        check(gaps[0] >= 1.0, f"restarted {gaps[0]:.2f} s after the first failure, not 1 s",
              d.log())
        check(gaps[1] >= 2.0, f"restarted {gaps[1]:.2f} s after the second failure, not 2 s",
              d.log())
        wait_for(lambda: "exited with status 3" in d.log(), "the exit to be reported")
        # The loop goes on deciding meanwhile, and a decision that falls inside a pause
        # says how long it is: 1 s, then twice as long each time. (With the loop late
        # by more than a pause, none may fall in the first ones: it waits for one.)
        wait_for(lambda: pause_notices(d), "a decision during a pause to say so")
        for ms, n in pause_notices(d):
            check(ms == min(1000 << (n - 1), 64000), f"pause {ms} ms after {n} in a row",
                  "\n".join(policy_log(d)))
        check(target(d, "web") == 1536 * MIB and target(d, "db") == db,
              "a VM left its target while the policy failed or died", d.vms())
        # Answering again: followed again, after the pause (doubled with each failure:
        # longer if the machine's load made the waits above long).
        set_mode(d, f"0 {1280 * MIB}")
        wait_for(lambda: target(d, "web") == 1280 * MIB, "the restarted policy's target",
                 timeout=2 * WAIT)


# 30 lines on its standard error for each request (a request every 100 ms: 300 lines a
# second), and how many so far in a file next to it.
CHATTY = """#!/bin/sh
dir=$(dirname "$0")
n=0
while read -r line; do
    i=0
    while [ $i -lt 30 ]; do
        i=$((i + 1)); n=$((n + 1))
        echo "chatter $n" >&2
    done
    echo "$n" > "$dir/written.tmp" && mv "$dir/written.tmp" "$dir/written"
    echo '{"targets": {}}'
done
"""


def written(d):
    try:
        with open(os.path.join(d.dir, "written")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


@tap.case
def a_policy_flooding_its_stderr_is_limited_in_the_log(bins):
    # Each line went to dynmemd's standard error as it came (the journal under systemd; to
    # /dev/null in the background), for as long as dynmemd ran. Now through its log: 10 at
    # once, then 10 a minute, the next line shown saying how many were not, and the
    # lines not said by the end (here SIGTERM) counted then.
    t0 = time.monotonic()
    r = running(bins, CONFIG.replace("policy.sh", "chatty.sh"))
    r.d.write_file("chatty.sh", CHATTY)
    with r as d:
        wait_for(lambda: written(d) >= 600, "600 lines on the policy's standard error")
        check(d.stop() == 0, "dynmemd exited 0 on SIGTERM", d.log())
        total, log = written(d), d.log()
    minutes = (time.monotonic() - t0) / 60
    lines = log.splitlines()
    shown = [x for x in lines if re.match(r'^dynmemd: policy "/bin/sh [^"]*": chatter \d+', x)]
    check(not any(x.startswith("chatter ") for x in lines), "a line not through the log", log)
    check(10 <= len(shown) <= 10 + 10 * minutes + 1,
          f"{len(shown)} lines shown in {minutes:.2f} minutes", log)
    held = sum(int(n) for n in re.findall(r" \(after (\d+) lines not shown\)$", log, re.M))
    final = re.findall(r'^dynmemd: policy "[^"]*": (\d+) more lines of its standard error not '
                       r"shown$", log, re.M)
    check(len(final) == 1, "the lines held back counted at the end", log)
    # Every line it wrote was shown or counted (some after the last count in the file).
    check(total <= len(shown) + held + int(final[0]) <= total + 30,
          "every line shown or counted", len(shown), held, final, total)


# QEMU itself, stopped before it runs: it never greets on QMP (a hung QEMU).
FROZEN_QEMU = """#!/bin/sh
echo run >> @DIR@/hung-runs
kill -STOP $$
exec qemu-system-x86_64 "$@"
"""

# Stopped the first time only (as a QEMU too slow to answer on a busy host
# would be); the next runs are the real QEMU.
ONCE_FROZEN_QEMU = """#!/bin/sh
echo run >> @DIR@/web-runs
if [ "$(wc -l < @DIR@/web-runs)" -eq 1 ]; then
    kill -STOP $$
fi
exec qemu-system-x86_64 "$@"
"""

HUNG = """
memory = 2G
interval = 100ms
backend = qemu

[vm "hung"]
startup = 256M
kernel = @DIR@/vmlinuz
qemu = @DIR@/frozen-qemu
"""

SLOW_ONCE = """
[vm "web"]
startup = 256M
kernel = @DIR@/vmlinuz
qemu = @DIR@/once-frozen-qemu
"""


class daemon_with_frozen_qemu(running):
    def __init__(self, bins):
        super().__init__(bins, HUNG + SLOW_ONCE)
        self.d.write_file("vmlinuz", "not a kernel: only web's QEMU reads it, and refuses it\n")
        self.d.write_file("frozen-qemu", FROZEN_QEMU, executable=True)
        self.d.write_file("once-frozen-qemu", ONCE_FROZEN_QEMU, executable=True)
        for name in ("hung-runs", "web-runs"):
            self.d.write_file(name, "")
            os.chmod(os.path.join(self.d.dir, name), 0o666)  # written as the QEMU user


def runs(d, name):
    with open(os.path.join(d.dir, name + "-runs")) as f:
        return len(f.readlines())


def asked_again(log, name):
    """The log's lines saying that VM name's probe was silent and is asked again."""
    return [line for line in log.splitlines()
            if f'vm "{name}": QEMU ' in line and "did not answer what it offers (it did not "
            "answer on" in line and "within 20 s; killed); asking again" in line]


def start_in_background(d, name):
    return subprocess.Popen([d.dynmem, "--socket", d.socket, "start", name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# The longest dynmemd's loop may stop while a QEMU does not greet: far above what a
# loaded machine causes (its cycles up to 2.85 s late with the suite on 2 shared
# cores beside other jobs), far below what waiting for the greeting would (20 s,
# the greeting's timeout, for every status call then and every cycle).
LOOP_STOPS_AT_MOST_S = 10.0


def check_responsive(d, before, what):
    """status answered, and the loop never stopped for long, over 5 s (and 100 calls)."""
    p99, worst, calls, after = status_calls_while(d, 5.0)
    longest = max(after["cycle_lateness_max_ms"], after["cycle_duration_max_ms"]) / 1000
    print(f"# {calls} status calls while {what}: p99 {p99 * 1000:.1f} ms, "
          f"max {worst * 1000:.1f} ms; cycles {after['cycles'] - before['cycles']}, "
          f"skipped {after['cycles_skipped'] - before['cycles_skipped']}, loop stopped "
          f"{longest:.2f} s at most", flush=True)
    check(worst < LOOP_STOPS_AT_MOST_S, f"a status call took {worst:.2f} s while {what}")
    check(longest < LOOP_STOPS_AT_MOST_S, f"a cycle came {longest:.2f} s late while {what}",
          after)


@tap.case
def status_and_cycles_do_not_wait_for_a_silent_qemu(bins):
    if not shutil.which("qemu-system-x86_64"):
        raise Skip("qemu-system-x86_64 is not installed")
    with daemon_with_frozen_qemu(bins) as d:
        # Both asked what they offer at once: the waits overlap.
        before = host(d)
        hung = start_in_background(d, "hung")
        web = start_in_background(d, "web")
        wait_for(lambda: d.vm("hung")["state"] == "starting", "the start to be under way")
        check_responsive(d, before, "QEMU does not greet")
        check(d.vm("hung")["state"] == "starting", "the start ended early", d.vm("hung"))
        # After 20 s both are killed and asked again.
        wait_for(lambda: runs(d, "hung") == 2, "the silent QEMU to be asked again")
        before = host(d)
        check_responsive(d, before, "QEMU does not greet, asked again")
        # Web's second QEMU answered: its start went on to the VM's own QEMU (3 runs),
        # which refused the kernel: the start fails for that, not for the probe.
        out, err = web.communicate(timeout=WAIT)
        log = d.log()
        print(f"# web's start: {web.returncode}: {err.strip()}", flush=True)
        check(len(asked_again(log, "web")) == 1, "web's silent probe said and asked again", log)
        check(runs(d, "web") == 3, f"web's wrapper ran {runs(d, 'web')} times, not probe + "
              "probe + VM", log)
        check(web.returncode != 0 and "what it offers" not in err,
              "web's start error is the VM's, not the probe's", out, err, log)
        # Hung's second QEMU is silent too: killed after another 20 s, and the waiting
        # `dynmem start` hears why.
        out, err = hung.communicate(timeout=WAIT)
        print(f"# hung's start: {hung.returncode}: {err.strip()}", flush=True)
        check(hung.returncode != 0 and "what it offers (asked twice): it did not answer on"
              in err and "within 20 s; killed" in err, "the start's reply", hung.returncode,
              out, err)
        check(runs(d, "hung") == 2 and len(asked_again(d.log(), "hung")) == 1,
              f"the silent QEMU ran {runs(d, 'hung')} times, not twice", d.log())
        for name in ("hung", "web"):
            check(d.vm(name)["state"] == "off", f"{name} is not off", d.vm(name))
        for wrapper in ("frozen-qemu", "once-frozen-qemu"):
            path = os.path.join(d.dir, wrapper)
            check(not subprocess.run(["pgrep", "-f", path], capture_output=True).stdout,
                  f"a {wrapper} still runs")


# The first run of this "QEMU" answers qmp_capabilities, ends QMP and stays (as a
# QEMU whose monitor broke off would); the next runs are the real QEMU.
LYING_QEMU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu",
                          "lying-qemu.py")
ONCE_BROKEN_QEMU = """#!/bin/sh
echo run >> @DIR@/runs
if [ "$(wc -l < @DIR@/runs)" -eq 1 ]; then
    LYING_QEMU_MODE=linger exec python3 @LYING@ "$@"
fi
exec qemu-system-x86_64 "$@"
"""


@tap.case
def a_probe_that_broke_off_is_asked_once_more(bins):
    if not shutil.which("qemu-system-x86_64"):
        raise Skip("qemu-system-x86_64 is not installed")
    config = HUNG.replace("frozen-qemu", "once-broken-qemu").replace('"hung"', '"web"')
    daemon = running(bins, config)
    d = daemon.d
    d.write_file("vmlinuz", "not a kernel: QEMU refuses it once it was asked\n")
    d.write_file("runs", "")
    os.chmod(os.path.join(d.dir, "runs"), 0o666)  # written as the QEMU user
    d.write_file("once-broken-qemu",
                 ONCE_BROKEN_QEMU.replace("@DIR@", d.dir).replace("@LYING@", LYING_QEMU),
                 executable=True)
    with daemon as d:
        r = subprocess.run([d.dynmem, "--socket", d.socket, "start", "web"],
                           capture_output=True, text=True, timeout=WAIT)
        log = d.log()
        with open(os.path.join(d.dir, "runs")) as f:
            ran = len(f.readlines())
        print(f"# start: {r.returncode}: {r.stderr.strip()}", flush=True)
        check("did not answer what it offers (QMP on" in log and "asking again" in log,
              "the broken-off probe said and asked again", log)
        # Asked again, answered: the start went on to the VM's own QEMU (3 runs),
        # which refused the kernel: the start fails for that, not for the probe.
        console = os.path.join(d.state_dir, "web.console.log")
        said = open(console, errors="replace").read()[-3000:] if os.path.exists(console) else ""
        check(ran == 3, f"the wrapper ran {ran} times, not probe + probe + VM", log, said)
        check(r.returncode != 0 and "what it offers" not in r.stderr,
              "the start's error is the VM's, not the probe's", r.stderr, log)
        check(d.vm("web")["state"] == "off", "the VM is off", d.vm("web"))


if __name__ == "__main__":
    main(tap)
