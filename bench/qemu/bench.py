#!/usr/bin/env python3
"""bench/qemu/bench.py: dynmemd with the QEMU backend and four real guests under
TCG: how fast memory follows a load step, how fast a stalling guest is
helped with and without the agent's PSI trigger, and how much host memory
the guests cost compared with the same guests sized statically. Results and
method: docs/benchmarks-qemu.md.

Phase 1 (policy dynmem): guests t1, t2 (agent with its PSI trigger) and p1,
p2 (the agent told dynmem.agent.trigger=0: a report every second only) each
repeat a load step from 48 MiB to 400 MiB (in 100 ms) and back, every 40 s,
staggered; startup 256 MiB (~217 MiB MemTotal), maximum 1 GiB. The policy
is made purely reactive so that steps make the guests stall: buffer 5 %,
[policy] trend_lookahead = 0s and persistence_max_permille = 0 (no growing
ahead of a rising demand), headroom_permille = 0 (no headroom learned from
earlier steps), stall_memory = 0s (no learned correction carried from one
step to the next), shrink_delay = 5s (back to the startup size between steps).
Phase 2 (policy static): the same four guests and plans, each given the
1 GiB a static VM needs for the step.

--set throttle (the default) measures dynmem-guest's burst absorber and its
throttle: guests a1, a2 with both (the agent's default), b1 with the absorber
alone (dynmem.agent.throttle=0), t1 with neither (dynmem.agent.absorber=0 too),
all four with the PSI trigger and a load whose pages compress about 2:1
(dynmem.load.fill=50); phase 2 runs the same four statically at their startup
size (256 MiB: what they would suffer without dynmem), phase 3 at 1 GiB.
--set absorber is the same with a1, a2 (both) against t1, t2 (neither).

"Back at full speed" is measured by the load's own progress (dynmem-load logs
what it rewrote and mapped each second): the time its work would take
unconstrained (rewriting at its schedule, mapping at its speed in phase 3)
over the time it took, from the memory being online until it is at 90 % or
more for good within the step's window.
--set trigger is the earlier comparison (t1, t2 with the trigger, p1, p2
with 1 s reports, no absorber; phases dynmem and static 1 GiB).

Every phase runs once per QEMU (--qemu, repeated; default the
qemu-system-x86_64 in PATH; --backports DIR adds QEMU 10.0 from
bookworm-backports through scripts/qemu-backports.sh), one QEMU after the
other in the same run, and the report compares them.

Guest-side times come from a probe in the guest image (bench/qemu/probe.c,
installed as /bin/dynmem-load around the real load) that stamps every load
line, the first growth of PSI memory "some" total (the guest starts to
stall) and every change of MemTotal (plugged memory online) with the
guest's monotonic clock; each console line's arrival is stamped here, and
a guest time maps to host time by the lower envelope of (arrival - guest
time) over the lines within 30 s. The daemon's requests are its -v log
lines ("NAME +N MiB: reason"), stamped on arrival from its stderr pipe;
what the daemon sees is `dynmem list --json`, polled every 100 ms.

usage: bench.py --dynmemd EXE --dynmem EXE --guest EXE --load EXE --probe EXE
                --source DIR [--out DIR] [--set absorber|trigger] [--duration S]
                [--static-duration S] [--qemu BINARY]... [--backports DIR]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

MIB = 1 << 20
LOW_MIB, HIGH_MIB = 48, 400
HIGH_HOLD_S = 8
PERIOD_S = 40.2  # a_i + b_i + 8 s high + 2 x 100 ms ramps
SETS = {  # name, trigger, absorber, throttle, seconds before the first step
    "trigger": [("t1", True, False, False, 4), ("p1", False, False, False, 12),
                ("t2", True, False, False, 20), ("p2", False, False, False, 28)],
    "absorber": [("a1", True, True, True, 4), ("t1", True, False, False, 12),
                 ("a2", True, True, True, 20), ("t2", True, False, False, 28)],
    "throttle": [("a1", True, True, True, 4), ("b1", True, True, False, 12),
                 ("a2", True, True, True, 20), ("t1", True, False, False, 28)],
}
GUESTS = SETS["absorber"]  # the set this run measures (main() sets it)
FILL = {"trigger": 0, "absorber": 50, "throttle": 50}  # dynmem.load.fill: % of each page that is data
RECOVERED_QUIET_S = 1.0  # full speed: no stall for this long and the absorber empty
LOAD_FULL = 0.9  # full speed by the load's own measure: this share of its unconstrained progress
BUFFER = 5  # percent: a thin margin, so that a step makes the guest stall (see the docs)
SETTLE_S = 3  # steps this soon after the load started are not counted (agent connecting)


def plan(first_s):
    rest = PERIOD_S - first_s - HIGH_HOLD_S - 0.2
    return (f"hold:{first_s}s,ramp:{HIGH_MIB}M:100ms,hold:{HIGH_HOLD_S}s,"
            f"ramp:{LOW_MIB}M:100ms,hold:{int(rest * 1000)}ms,loop")


def vm_section(name, trigger, absorber, throttle, first_s, static, fill, qemu):
    append = (f"dynmem.load={plan(first_s)}" + ("" if trigger else " dynmem.agent.trigger=0") +
              ("" if absorber else " dynmem.agent.absorber=0") +
              ("" if throttle else " dynmem.agent.throttle=0") +
              (f" dynmem.load.fill={fill}" if fill else ""))
    size = {None: None, "full": "1G", "startup": "256M"}[static]
    sizes = (f"dynamic = no\nstartup = {size}\nminimum = {size}\nmaximum = {size}\n" if static
             else "dynamic = yes\nstartup = 256M\nminimum = 256M\nmaximum = 1G\n")
    return (f'\n[vm "{name}"]\n{sizes}buffer = {BUFFER}\naccel = auto\ncpus = 1\n'
            f"shutdown_timeout = 1s\nappend = {append}\nautostart = yes\nqemu = {qemu}\n")


def config(root, static, fill, qemu):
    """static: None (policy dynmem), "full" (1 GiB each) or "startup" (256 MiB each)."""
    text = (f"[host]\nbackend = qemu\nsocket = {root}/run/dynmemd.sock\n"
            f"state_dir = {root}/state\nmemory = 6G\ninterval = 1s\n"
            f"policy = {'static' if static else 'dynmem'}\n\n[policy]\nshrink_delay = 5s\n"
            "trend_lookahead = 0s\npersistence_max_permille = 0\nheadroom_permille = 0\n"
            "stall_memory = 0s\n")
    return text + "".join(vm_section(*g, static, fill, qemu) for g in GUESTS)


# ---- the image ----

def build_image(args, out):
    progs = os.path.join(out, "programs")
    os.makedirs(progs, exist_ok=True)
    for src, name in ((args.probe, "dynmem-load"), (args.load, "dynmem-load-real"),
                      (args.guest, "dynmem-guest")):
        shutil.copy(src, os.path.join(progs, name))
    image = os.path.join(out, "image")
    log = os.path.join(out, "image.log")
    with open(log, "w") as f:
        r = subprocess.run([os.path.join(args.source, "guest/image/build.sh"), image] +
                           [os.path.join(progs, n) for n in
                            ("dynmem-guest", "dynmem-load", "dynmem-load-real")],
                           stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        sys.exit(f"bench.py: the guest image could not be built; see {log}")
    return image


# ---- watching a run ----

class Watch:
    """Console lines (stamped on arrival), daemon log lines (stamped), list samples."""

    def __init__(self, args, root, names):
        self.args, self.root, self.names = args, root, names
        self.console = {n: [] for n in names}  # (arrival, line)
        self.daemon = []                        # (arrival, line)
        self.samples = []                       # (time, {name: vm json})
        self.stop = threading.Event()
        self.threads = []

    def start(self, proc):
        self.threads = [threading.Thread(target=self._daemon_lines, args=(proc,), daemon=True),
                        threading.Thread(target=self._consoles, daemon=True),
                        threading.Thread(target=self._list, daemon=True)]
        for t in self.threads:
            t.start()

    def _daemon_lines(self, proc):
        with open(os.path.join(self.root, "dynmemd.log"), "w") as log:
            for line in proc.stderr:
                self.daemon.append((time.time(), line.rstrip("\n")))
                log.write(line)
                log.flush()

    def _consoles(self):
        pos = {n: 0 for n in self.names}
        partial = {n: "" for n in self.names}
        while not self.stop.is_set():
            for n in self.names:
                path = os.path.join(self.root, "state", n + ".console.log")
                try:
                    with open(path, "rb") as f:
                        f.seek(pos[n])
                        data = f.read()
                except OSError:
                    continue
                if not data:
                    continue
                now = time.time()
                pos[n] += len(data)
                text = partial[n] + data.decode(errors="replace")
                lines = text.split("\n")
                partial[n] = lines.pop()
                self.console[n].extend((now, line) for line in lines)
            self.stop.wait(0.005)

    def _list(self):
        while not self.stop.is_set():
            try:
                r = subprocess.run([self.args.dynmem, "--socket", self.root + "/run/dynmemd.sock",
                                    "list", "--json"], capture_output=True, text=True)
            except OSError:  # the program is being rebuilt: the next poll tries again
                self.stop.wait(0.1)
                continue
            if r.returncode == 0:
                try:
                    self.samples.append((time.time(),
                                         {v["name"]: v for v in json.loads(r.stdout)}))
                except ValueError:
                    pass
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        for t in self.threads[1:]:
            t.join()


def fresh_root(root, config_text):
    """An empty root with run/ and state/ and config_text as its dynmem.conf;
    returns the configuration's path."""
    shutil.rmtree(root, ignore_errors=True)
    for d in ("run", "state"):
        os.makedirs(os.path.join(root, d))
    conf = os.path.join(root, "dynmem.conf")
    with open(conf, "w") as f:
        f.write(config_text)
    return conf


def start_dynmemd(args, conf):
    """dynmemd in the foreground on conf, its log on a pipe (for Watch), the
    guests' image from args.image."""
    env = dict(os.environ, DYNMEM_GUEST_IMAGE_DIR=args.image)
    return subprocess.Popen([args.dynmemd, "-d", "-v", "-f", conf], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)


def stop_dynmemd(args, root, proc, names):
    """Stop the guests at once (no shutdown to wait for), then dynmemd."""
    for n in names:
        subprocess.run([args.dynmem, "--socket", root + "/run/dynmemd.sock", "stop",
                        "--force", n], capture_output=True)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def run_phase(args, root, static, duration, qemu):
    """static: None, "full" or "startup" (config())."""
    conf = fresh_root(root, config(root, static, FILL[args.set], qemu))
    names = [g[0] for g in GUESTS]
    proc = start_dynmemd(args, conf)
    w = Watch(args, root, names)
    w.start(proc)
    t0 = time.time()
    print(f"bench.py: {qemu}: {'static ' + static if static else 'dynmem'} phase: {duration} s "
          f"of load after the guests boot", flush=True)
    try:
        deadline = t0 + 300
        while not all(any("| dynmem-load: holding" in l for _, l in w.console[n])
                      for n in names):
            if time.time() > deadline or proc.poll() is not None:
                sys.exit(f"bench.py: the guests did not boot (dynmemd "
                         f"{'exited' if proc.poll() is not None else 'runs'}); see {root}")
            time.sleep(0.5)
        booted = time.time()
        print(f"bench.py: guests running {booted - t0:.0f} s after dynmemd started",
              flush=True)
        time.sleep(duration)
    finally:
        w.finish()
        stop_dynmemd(args, root, proc, names)
    w.booted = booted
    with open(os.path.join(root, "raw.json"), "w") as f:
        json.dump({"booted": booted, "console": w.console, "daemon": w.daemon,
                   "samples": w.samples}, f)
    return w


class Raw:
    """A finished phase read back from its raw.json (--analyse)."""

    def __init__(self, root):
        with open(os.path.join(root, "raw.json")) as f:
            d = json.load(f)
        self.booted = d["booted"]
        self.console = {n: [tuple(x) for x in v] for n, v in d["console"].items()}
        self.daemon = [tuple(x) for x in d["daemon"]]
        self.samples = [tuple(x) for x in d["samples"]]


# ---- analysis ----

PROBE = re.compile(r"probe: t=(\d+) (.*)$")


def probe_events(lines):
    """[(arrival, guest_seconds, text)] of the probe's lines."""
    out = []
    for arrival, line in lines:
        m = PROBE.search(line)
        if m:
            out.append((arrival, int(m.group(1)) / 1e6, m.group(2)))
    return out


def to_host(events, g):
    """Host time of guest time g: lower envelope of arrival - guest over +-30 s."""
    near = [a - t for a, t, _ in events if abs(t - g) <= 30]
    return g + min(near) if near else None


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def steps_of(name, first_s, events):
    """(guest time of a step, end of its window) per step: per run of the load (a restart
    starts a new plan). A window lasts HIGH_HOLD_S, or until the load restarts (after
    an OOM kill): a step whose load was killed still counts."""
    starts = [t for _, t, text in events if text.startswith("start pid=")]
    out = []
    for i, s in enumerate(starts):
        # the load's clock starts with its first line, just after the probe started it
        first = next((t for _, t, text in events
                      if t >= s and text.startswith("| dynmem-load: holding")), None)
        if first is None:
            continue
        end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        k = 0
        while True:
            step = first + first_s + k * PERIOD_S
            if step >= end or step + HIGH_HOLD_S > events[-1][1]:
                break
            if step - first >= SETTLE_S:
                out.append((step, min(step + HIGH_HOLD_S, end)))
            k += 1
    return out


def analyse_guest(w, name, first_s, map_ref=None):
    ev = probe_events(w.console[name])
    stalls = [t for _, t, text in ev if text.startswith("stall")]
    # a kernel message may be printed into the middle of a probe line: its digits only
    mem = [(t, int(m.group(1))) for _, t, text in ev
           if (text.startswith("memtotal") or text.startswith("tick memtotal")) and
           (m := re.search(r"kb=(\d+)", text))]
    requests = [(a, line.rsplit(": ", 1)[-1]) for a, line in w.daemon
                if re.match(rf"dynmemd: {name} \+", line)]
    wakes = [a for a, line in w.daemon if "extra cycle" in line]
    ooms = [a for a, line in w.console[name] if "Out of memory" in line]
    swaps = [(t, int(text.split("kb=")[1])) for _, t, text in ev if text.startswith("swap kb=")]
    speeds = load_speeds(ev, map_ref)
    rows = []
    for step, window in steps_of(name, first_s, ev):
        h_step = to_host(ev, step)
        if h_step is None or to_host(ev, window) is None:
            continue  # no console line near it to place it in host time
        r = {"step_host": h_step}
        st = [t for t in stalls if step <= t < window]
        quiet = not [t for t in stalls if step - 1.0 <= t < step]
        r["stall"] = st[0] - step if st and quiet else None
        before = [kb for t, kb in mem if t < step]
        base = before[-1] if before else None
        on = [t for t, kb in mem if step <= t < window and base is not None and kb > base]
        r["online"] = on[0] - step if on else None
        req = [(a, why) for a, why in requests if h_step - 0.05 <= a < to_host(ev, window)]
        r["request"] = req[0][0] - h_step if req else None
        r["reason"] = req[0][1] if req else None
        if r["stall"] is not None:
            h_stall = to_host(ev, step + r["stall"])
            wk = [a for a in wakes if h_stall - 0.01 <= a < h_stall + 2.0]
            r["stall_to_wakeup"] = wk[0] - h_stall if wk else None
            # the reaction to the stall: the first plug request from its start on, and the
            # first growth of MemTotal after it (a request made before the stall is counted
            # in requests_before_stall, not here)
            after = [a for a, _ in requests if h_stall - 0.005 <= a < to_host(ev, window)]
            r["stall_to_request"] = after[0] - h_stall if after else None
            r["request_before_stall"] = bool(req) and req[0][0] < h_stall - 0.005
            # the request came from the extra cycle the stall report asked for (the guest
            # was still short when its agent reported), not from a later cycle
            r["request_in_wakeup_cycle"] = (bool(after) and bool(wk) and
                                            0 <= after[0] - wk[0] < 0.01)
            t_stall = step + r["stall"]
            at_stall = [kb for t, kb in mem if t <= t_stall]
            grew = [t for t, kb in mem if t_stall < t < window and at_stall and kb > at_stall[-1]]
            r["stall_to_online"] = grew[0] - t_stall if grew else None
        seen_base = [s[name]["assigned_bytes"] for t, s in w.samples
                     if t < h_step and name in s]
        win = [(t, s[name]["assigned_bytes"]) for t, s in w.samples
               if h_step <= t < to_host(ev, window) and name in s]
        if seen_base and win:
            b0 = seen_base[-1]
            top = max(a for _, a in win)
            grew = [t for t, a in win if a > b0]
            full = [t for t, a in win if top > b0 and a - b0 >= 0.9 * (top - b0)]
            r["seen"] = grew[0] - h_step if grew else None
            r["full"] = full[0] - h_step if full else None
            r["from"], r["to"] = b0, top
        r["oom"] = 0
        recovery(r, step, window, stalls, mem, swaps)
        load_recovery(r, step, window, mem, speeds)
        rows.append(r)
    # an OOM kill belongs to the last step before it (a guest with an absorber may be killed
    # well after its step's window), if that step is less than a period old
    for a in ooms:
        before = [r for r in rows if r["step_host"] <= a < r["step_host"] + PERIOD_S]
        if before:
            before[-1]["oom"] += 1
    return rows, len(ooms)


LOAD_LINE = re.compile(r"^\| dynmem-load: holding (\d+) MiB \(target (\d+) MiB\), "
                       r"touched (\d+) KiB in (\d+) us(?:, mapped (\d+) KiB)?")
LOAD_TICK_S, LOAD_TOUCH_PERIOD_S, LOAD_CHUNK_MIB = 0.1, 2.0, 2  # as in dynmem-load.c


def load_due_kib_per_s(held_mib):
    """What dynmem-load rewrites a second when it keeps up: ceil(chunks x tick / period)
    chunks each tick (holder_touch_slice)."""
    chunks = held_mib // LOAD_CHUNK_MIB
    per_tick = -(-chunks * LOAD_TICK_S // LOAD_TOUCH_PERIOD_S) if chunks else 0
    return per_tick * LOAD_CHUNK_MIB * 1024 / LOAD_TICK_S


def load_lines(ev):
    """[(start, end, held MiB, touched KiB, busy s, mapped KiB)]: the load's intervals between
    two of its lines (guest times)."""
    out, prev = [], None
    for _, t, text in ev:
        if text.startswith("start pid="):
            prev = None
            continue
        m = LOAD_LINE.match(text)
        if not m:
            continue
        held, _, kib, us, mapped = (int(x or 0) for x in m.groups())
        if prev is not None and t > prev:
            out.append((prev, t, held, kib, us / 1e6, mapped))
        prev = t
    return out


def map_speed(lines):
    """KiB a busy second the load maps new chunks at, over the intervals it spent mapping only
    (nothing rewritten), or None."""
    v = [mapped / busy for _, _, _, kib, busy, mapped in lines if mapped and not kib and busy]
    return statistics.median(v) if v else None


def load_speeds(ev, map_ref):
    """[(start, end, held MiB, progress)]: the load's own progress in each interval, the time
    its work would take unconstrained over the time it took: what it rewrote at what it
    rewrites when it keeps up (load_due_kib_per_s), what it mapped at map_ref KiB/s (its
    mapping speed with memory to spare, map_speed). Above 1 while it catches up after a
    stall; None when it held nothing and mapped nothing."""
    out = []
    for a, b, held, kib, _, mapped in load_lines(ev):
        due = load_due_kib_per_s(held)
        if not due and not mapped:
            out.append((a, b, held, None))
            continue
        need = (kib / due if due else 0) + (mapped / map_ref if map_ref else 0)
        out.append((a, b, held, need / (b - a)))
    return out


def load_recovery(r, step, window, mem, speeds):
    """Back at full speed by the load's own measure: from the memory being online (the last
    growth of MemTotal in the step's window) to the end of the last interval, ending after
    that, in which the load made less than LOAD_FULL of its progress (load_speeds); not back
    (load_back_missed) when no interval at full progress follows within the window. An
    interval that began before the memory came counts as after it: the measure errs late, by
    at most the load's log period (1 s)."""
    r["online_to_load_speed"], r["load_back_missed"], r["load_online_late"] = None, None, None
    growth = [t for (t, kb), (_, prev) in zip(mem[1:], mem) if step <= t < window and kb > prev]
    if not growth:
        return
    online = growth[-1]
    after = [(b, p) for a, b, held, p in speeds if online < b <= window]
    slow = [b for b, p in after if p is None or p < LOAD_FULL]
    back = slow[-1] if slow else online
    # no line of the load after the memory came (it was still mapping when the window
    # closed), or none at full progress after the last slow one: not back
    r["load_back_missed"] = not [b for b, _ in after if b > back]
    r["online_to_load_speed"] = None if r["load_back_missed"] else back - online
    # memory that came with less than 2 s of the window left cannot show a recovery in it
    r["load_online_late"] = online > window - 2.0


def recovery(r, step, window, stalls, mem, swaps):
    """Back at full speed after a step: from the last growth of MemTotal in the step's window
    (the memory that came is online) to the moment from which the guest neither stalls nor
    holds pages in swap (the absorber), if that lasts RECOVERED_QUIET_S within the window
    (else None and full_speed_missed). Also the most swap in use in the window."""
    in_win = [(t, kb) for t, kb in swaps if step <= t < window]
    r["swap_peak_kb"] = max([kb for _, kb in in_win], default=0)
    growth = [t for (t, kb), (_, prev) in zip(mem[1:], mem) if step <= t < window and kb > prev]
    r["online_to_full_speed"], r["full_speed_missed"] = None, None
    if not growth:
        return
    quiet = max([t for t in stalls if step <= t < window], default=step)
    held = [t for t, kb in in_win if kb > 0]
    if held:
        emptied = [t for t, kb in in_win if kb == 0 and t > held[-1]]
        quiet = max(quiet, emptied[0]) if emptied else None
    ok = quiet is not None and quiet + RECOVERED_QUIET_S <= window
    r["full_speed_missed"] = not ok
    r["online_to_full_speed"] = max(0.0, quiet - growth[-1]) if ok else None


def sums_of(w, key):
    sums = [sum((v.get(key) or 0) for v in s.values()) for t, s in w.samples if t >= w.booted]
    return (statistics.mean(sums) if sums else 0, max(sums) if sums else 0, len(sums))


def summarize(values):
    v = [x for x in values if x is not None]
    return {"n": len(v), "p50_ms": round(pct(v, 50) * 1000, 1) if v else None,
            "p95_ms": round(pct(v, 95) * 1000, 1) if v else None,
            "max_ms": round(max(v) * 1000, 1) if v else None}


def groups_of(set_name):
    """{label: (members, own_wakeups)}: wakeups are not per VM in the daemon's log, so wakeup
    figures are a group's own only where it is the one group with the trigger."""
    if set_name == "trigger":
        return {"trigger": ([g for g in GUESTS if g[1]], True),
                "1 s reports": ([g for g in GUESTS if not g[1]], False)}
    out = {}
    for label, absorber, throttle in (("absorber + throttle", True, True),
                                      ("absorber only", True, False), ("neither", False, False)):
        members = [g for g in GUESTS if g[2] == absorber and g[3] == throttle]
        if members:
            out[label] = (members, False)
    return out


def startup_phase(w, set_name):
    """Steps and OOM kills per group with every guest static at its startup size."""
    out = {}
    for label, (members, _) in groups_of(set_name).items():
        rows = []
        for name, _, _, _, first in members:
            rows += analyse_guest(w, name, first)[0]
        out[label] = {"steps": len(rows), "steps_with_oom": len([r for r in rows if r["oom"]]),
                      "swap_peak_mib": round(max([r["swap_peak_kb"] for r in rows],
                                                 default=0) / 1024)}
    return out


def static_speed(w, set_name):
    """The load with memory to spare (static 1 GiB), per group: its mapping speed (the
    reference load_speeds() takes), and the share of its intervals held at HIGH_MIB (from 2 s
    after the step) and at LOW_MIB that the measure calls full speed."""
    out = {}
    for label, (members, _) in groups_of(set_name).items():
        lines, high, low = [], [], []
        for name, *_ in members:
            lines += load_lines(probe_events(w.console[name]))
        ref = map_speed(lines)
        for name, _, _, _, first in members:
            ev = probe_events(w.console[name])
            speeds = load_speeds(ev, ref)
            for step, window in steps_of(name, first, ev):
                high += [p for a, b, held, p in speeds
                         if step + 2 <= a and b <= window and held == HIGH_MIB and p is not None]
                low += [p for a, b, held, p in speeds
                        if step - 8 <= a and b <= step and held == LOW_MIB and p is not None]
        out[label] = {
            "map_kib_per_s": round(ref) if ref else None,
            "high_p50": round(statistics.median(high), 3) if high else None,
            "low_p50": round(statistics.median(low), 3) if low else None,
            "high_full": len([p for p in high if p >= LOAD_FULL]), "n_high": len(high),
            "low_full": len([p for p in low if p >= LOAD_FULL]), "n_low": len(low)}
    return out


def report(dyn, stat, out, set_name, startup=None):
    res = {"set": set_name, "groups": {}, "guests": {}}
    res["static_speed"] = static_speed(stat, set_name)
    for label, (members, own_wakeups) in groups_of(set_name).items():
        rows, ooms = [], 0
        map_ref = res["static_speed"][label]["map_kib_per_s"]
        for name, _, _, _, first in members:
            r, o = analyse_guest(dyn, name, first, map_ref)
            rows += r
            ooms += o
            res["guests"][name] = r
        res["groups"][label] = {
            "steps": len(rows),
            "stalled_steps": len([r for r in rows if r["stall"] is not None]),
            "requests_before_any_stall":
            len([r for r in rows if r.get("request_before_stall")]) +
            len([r for r in rows if r["stall"] is None and r["request"] is not None]),
            "stall_to_request": summarize([r.get("stall_to_request") for r in rows]),
            # wakeups are not per VM in the log: only the trigger group's are its own
            "stall_to_request_in_wakeup_cycle": summarize(
                [r.get("stall_to_request") for r in rows
                 if r.get("request_in_wakeup_cycle") and own_wakeups]),
            "stall_to_wakeup": summarize([r.get("stall_to_wakeup") for r in rows
                                          if own_wakeups]),
            "first_request_reasons": {k: len([r for r in rows if r["reason"] == k])
                                      for k in sorted({r["reason"] for r in rows
                                                       if r["reason"]})},
            "stall_to_online": summarize([r.get("stall_to_online") for r in rows]),
            "step_to_request": summarize([r["request"] for r in rows]),
            "step_to_daemon_sees_plug": summarize([r.get("seen") for r in rows]),
            "step_to_daemon_sees_90pct": summarize([r.get("full") for r in rows]),
            "step_to_guest_memtotal_grows": summarize([r["online"] for r in rows]),
            "oom_kills": ooms,
            "steps_with_oom": len([r for r in rows if r["oom"]]),
            "online_to_full_speed": summarize([r["online_to_full_speed"] for r in rows
                                               if not r["oom"]]),
            "full_speed_missed": len([r for r in rows
                                      if r["full_speed_missed"] and not r["oom"]]),
            "online_to_load_speed": summarize([r["online_to_load_speed"] for r in rows
                                               if not r["oom"]]),
            "load_back_missed": len([r for r in rows if r["load_back_missed"] and not r["oom"]]),
            "load_back_missed_online_late": len([r for r in rows if r["load_back_missed"] and
                                                 r["load_online_late"] and not r["oom"]]),
            "load_back_within_2s": len([r for r in rows if not r["oom"] and
                                        r["online_to_load_speed"] is not None and
                                        r["online_to_load_speed"] <= 2.0]),
            "load_back_measured": len([r for r in rows if not r["oom"] and
                                       r["load_back_missed"] is not None]),
            "swap_peak_mib": summarize([r["swap_peak_kb"] / 1024 / 1000 for r in rows]),
        }
    da, dap, _ = sums_of(dyn, "assigned_bytes")
    sa, sap, _ = sums_of(stat, "assigned_bytes")
    res["assigned"] = {"dynmem_mean_mib": round(da / MIB), "dynmem_peak_mib": round(dap / MIB),
                       "static_mean_mib": round(sa / MIB), "static_peak_mib": round(sap / MIB),
                       "mean_ratio": round(da / sa, 3) if sa else None}
    dm, dp, dn = sums_of(dyn, "host_rss_bytes")
    sm, sp, sn = sums_of(stat, "host_rss_bytes")
    res["rss"] = {"dynmem_mean_mib": round(dm / MIB), "dynmem_peak_mib": round(dp / MIB),
                  "static_mean_mib": round(sm / MIB), "static_peak_mib": round(sp / MIB),
                  "mean_ratio": round(dm / sm, 3) if sm else None,
                  "peak_ratio": round(dp / sp, 3) if sp else None, "samples": [dn, sn]}
    accel = re.findall(r"accel (\w+) \(", "\n".join(l for _, l in dyn.daemon))
    res["accel"] = sorted(set(accel))
    if startup is not None:
        res["static_startup"] = startup_phase(startup, set_name)
    # What the backend chose from this QEMU (logged once per VM at start: the first).
    chosen = [l for _, l in dyn.daemon if re.search(r": QEMU \d+\.\d+\.\d+, machine ", l)]
    res["qemu_features"] = re.sub(r'^.*?vm "[^"]+": ', "", chosen[0]) if chosen else None
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def print_report(res):
    def fmt(s):
        return (f"p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms  (n={s['n']})"
                if s["n"] else "no samples")
    print(f"accelerator: {', '.join(res['accel']) or 'unknown'}")
    print(f"QEMU: {res.get('qemu_features') or 'unknown'}")
    for label, g in res["groups"].items():
        print(f"\n== {label}: {g['steps']} steps, {g['stalled_steps']} with a stall, "
              f"{g['requests_before_any_stall']} plug requests before any stall, "
              f"{g['oom_kills']} OOM kills ({g['steps_with_oom']} steps)")
        print(f"  first plug request's reason: {g['first_request_reasons']}")
        for key in ("stall_to_wakeup", "stall_to_request", "stall_to_request_in_wakeup_cycle",
                    "stall_to_online", "step_to_request",
                    "step_to_daemon_sees_plug", "step_to_daemon_sees_90pct",
                    "step_to_guest_memtotal_grows", "online_to_full_speed",
                    "online_to_load_speed"):
            print(f"  {key.replace('_', ' '):32s} {fmt(g[key])}")
        print(f"  the load back at {LOAD_FULL:.0%} of its speed: within 2 s of the memory "
              f"online in {g['load_back_within_2s']} of {g['load_back_measured']} steps, not "
              f"back in the window in {g['load_back_missed']} (of which the memory came "
              f"with less than 2 s of the window left: {g['load_back_missed_online_late']})")
        sp = g["swap_peak_mib"]
        print(f"  steps not back at full speed in their window (no OOM kill): "
              f"{g['full_speed_missed']}; swap (absorber) peak per step MiB p50 "
              f"{sp['p50_ms']} p95 {sp['p95_ms']} max {sp['max_ms']}")
    for label, g in res.get("static_speed", {}).items():
        print(f"\n== the load with 1 GiB (static), {label}: maps {g['map_kib_per_s']} KiB a busy "
              f"second; progress at {HIGH_MIB} MiB p50 "
              f"{g['high_p50']}, {g['high_full']} of {g['n_high']} intervals at full speed; at "
              f"{LOW_MIB} MiB p50 {g['low_p50']}, {g['low_full']} of {g['n_low']}")
    for label, g in res.get("static_startup", {}).items():
        print(f"\n== static at the startup size (256 MiB), {label}: {g['steps']} steps, "
              f"{g['steps_with_oom']} with an OOM kill; swap peak {g['swap_peak_mib']} MiB")
    r = res["rss"]
    print(f"\nhost memory (sum of QEMU RSS): dynmem mean {r['dynmem_mean_mib']} MiB, peak "
          f"{r['dynmem_peak_mib']} MiB; static (1 GiB each) mean {r['static_mean_mib']} MiB, "
          f"peak {r['static_peak_mib']} MiB; ratio mean {r['mean_ratio']}, peak "
          f"{r['peak_ratio']}")
    a = res["assigned"]
    print(f"memory assigned (sum): dynmem mean {a['dynmem_mean_mib']} MiB, peak "
          f"{a['dynmem_peak_mib']} MiB; static mean {a['static_mean_mib']} MiB; ratio mean "
          f"{a['mean_ratio']}")


def qemu_version(binary):
    r = subprocess.run([binary, "--version"], capture_output=True, text=True)
    m = re.search(r"QEMU emulator version (\d+\.\d+\.\d+)", r.stdout)
    if not m:
        sys.exit(f"bench.py: {binary} --version does not say a QEMU version")
    return m.group(1)


def qemus(args):
    """[(version, binary)] to run under, in the order given."""
    binaries = list(args.qemu or ["qemu-system-x86_64"])
    if args.backports:
        fetch = os.path.join(args.source, "scripts", "qemu-backports.sh")
        r = subprocess.run([fetch, args.backports], capture_output=True, text=True)
        if r.returncode == 0:
            binaries.append(r.stdout.strip().splitlines()[-1])
        else:
            print(f"bench.py: no QEMU from bookworm-backports: {r.stderr.strip()}", flush=True)
    return [(qemu_version(b), b) for b in binaries]


def compare(results):
    """One line per QEMU: the figures the report compares, side by side."""
    print("\n== QEMU versions, same run")
    for version, res in results.items():
        r = res["rss"]
        for label, g in res["groups"].items():
            print(f"  QEMU {version}, {label}: step to 90 % plugged p50 "
                  f"{g['step_to_daemon_sees_90pct']['p50_ms']} ms; stall to request p50 "
                  f"{g['stall_to_request']['p50_ms']} ms, to online p50 "
                  f"{g['stall_to_online']['p50_ms']} ms; {g['steps_with_oom']} of "
                  f"{g['steps']} steps OOM-killed")
        print(f"  QEMU {version}: RSS dynmem/static mean {r['mean_ratio']}, peak "
              f"{r['peak_ratio']}")


def run_qemu(args, base, binary, with_startup):
    """The phases under one QEMU (or read back with --analyse): dyn, stat, startup."""
    if args.analyse:
        return (Raw(os.path.join(base, "dynmem")), Raw(os.path.join(base, "static")),
                Raw(os.path.join(base, "static-startup")) if with_startup else None)
    dyn = run_phase(args, os.path.join(base, "dynmem"), None, args.duration, binary)
    startup = (run_phase(args, os.path.join(base, "static-startup"), "startup",
                         args.static_duration, binary) if with_startup else None)
    stat = run_phase(args, os.path.join(base, "static"), "full", args.static_duration, binary)
    return dyn, stat, startup


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for opt in ("--dynmemd", "--dynmem", "--guest", "--load", "--probe", "--source"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--out", default="build/bench-qemu")
    ap.add_argument("--duration", type=int, default=420)
    ap.add_argument("--static-duration", type=int, default=120)
    ap.add_argument("--set", choices=sorted(SETS), default="throttle",
                    help="throttle: dynmem-guest's absorber and throttle, the absorber alone, "
                         "neither (default); absorber: both against neither; "
                         "trigger: PSI trigger against 1 s reports")
    ap.add_argument("--qemu", action="append",
                    help="a QEMU binary to run the guests under (repeat for several; default "
                         "qemu-system-x86_64)")
    ap.add_argument("--backports", metavar="DIR",
                    help="also run under QEMU from bookworm-backports, unpacked into DIR")
    ap.add_argument("--analyse", action="store_true",
                    help="only analyse the raw.json files of an earlier run in --out")
    args = ap.parse_args()
    for k in ("dynmemd", "dynmem", "guest", "load", "probe", "source"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    global GUESTS
    GUESTS = SETS[args.set]
    with_startup = args.set != "trigger"
    if args.analyse:
        runs = [(d[len("qemu-"):], None) for d in sorted(os.listdir(out)) if d.startswith("qemu-")]
    else:
        runs = qemus(args)
        args.image = build_image(args, out)
    results = {}
    for version, binary in runs:
        base = os.path.join(out, "qemu-" + version)
        dyn, stat, startup = run_qemu(args, base, binary, with_startup)
        results[version] = report(dyn, stat, base, args.set, startup)
        print(f"\n==== QEMU {version}")
        print_report(results[version])
    if len(results) > 1:
        compare(results)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"set": args.set, "qemu": results}, f, indent=1)
    print(f"\nresults: {out}/results.json; per QEMU: {out}/qemu-VERSION/")


if __name__ == "__main__":
    main()
