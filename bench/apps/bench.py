#!/usr/bin/env python3
"""bench/apps/bench.py: real applications in ordinary guests, four ways. Method,
figures and advice: docs/benchmarks-apps.md.

The guests boot guest/debian/build.sh's image (profile apps: Debian 12, systemd,
dynmem-guest as a service, PostgreSQL 15 with a pgbench database of ~600 MiB,
Redis 7) under dynmemd's QEMU backend, each with 2 vCPUs and its own qcow2 overlay
(cache=none: the host's page cache must not lend a guest memory nobody counts).
Each workload runs in two phases of three guests, every guest busy for the same
window:

  solo    one dynmemd with room for all: case 1 static at the startup size (512 MiB),
          case 2 static at the maximum (2 GiB), case 3 dynamic 512 MiB..2 GiB
  shared  one dynmemd with 2.5 GiB for VMs: case 4 dynamic, beside two guests with
          the same settings and the same workload (startups 1.5 GiB, 1 GiB to share)

Running the cases of a phase side by side, not one after another, lets the shared
machine's changing load hit them alike: the ratios are from one window.

Workloads (each driven by its own tool from Debian, through qemu-guest-agent):
  pgbench  pgbench -S (select only), 2 clients, on the database that is larger than
           the startup memory: throughput in transactions/s
  redis    cycles of redis-benchmark: SET of 16,000-byte values over 32,000 keys
           (~450 MiB of data, ~550 MiB resident), GET of as many, FLUSHALL, then idle
           40 s: a memory curve that rises, holds and falls. Throughput: requests
           per second of benchmark time (idle time excluded); a step the OOM killer
           broke counts its time and no requests

Per guest: throughput, OOM kills (/proc/vmstat oom_kill), time short of memory
(PSI memory "some" and "full" seconds in the window), mean assigned memory and
mean QEMU RSS (`dynmem list --json` every second).

usage: bench.py --dynmemd EXE --dynmem EXE --guest AGENT --source DIR [--out DIR]
                [--workloads pgbench,redis] [--duration S] [--policy KEY=VALUE] [--analyse]
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "debian"))
from debianlib import (Guest, build_image, cannot_build_reason, for_qemu, overlay,  # noqa: E402
                       qga_socket, vm_section)
from qga import QgaError  # noqa: E402

MIB = 1 << 20
BOOT_TIMEOUT = 900

STATIC = "dynamic = no\nstartup = {s}\nminimum = {s}\nmaximum = {s}\n"
DYNAMIC = "dynamic = yes\nstartup = 512M\nminimum = 512M\nmaximum = 2G\n"
COMMON = "cpus = 2\naccel = auto\n"
PHASES = {
    "solo": ("memory = 8G", [("case1", STATIC.format(s="512M")), ("case2", STATIC.format(s="2G")),
                             ("case3", DYNAMIC)]),
    "shared": ("memory = 2560M", [("case4", DYNAMIC), ("peer1", DYNAMIC), ("peer2", DYNAMIC)]),
}

# ---- the workloads: an in-guest readiness check, the script, and its parser ----
#
# The scripts print their lines twice: to stdout and, tagged "dynmem-bench:", to
# the serial console, which the host reads from dynmemd's console log. A guest
# that thrashes so hard that qemu-guest-agent no longer answers still leaves
# what it did there. "counters" lines carry the guest's OOM kills and PSI totals.

PRELUDE = r"""say() { echo "$*"; echo "dynmem-bench: $*" >/dev/ttyS0 2>/dev/null || true; }
counters() {
  oom=$(awk '$1 == "oom_kill" { print $2 }' /proc/vmstat)
  psi=$(awk -F'total=' '/^some/ { printf "psi_some_us=%s ", $2 } /^full/ { printf "psi_full_us=%s", $2 }' /proc/pressure/memory)
  say "counters at=$(date +%s.%N) oom_kill=$oom $psi"
}
# The kernel's evidence on the page cache, every 10 s: refaults and activations of
# file and swapped pages, swap-ins and -outs (/proc/vmstat), the file LRU lists and
# MemAvailable (kB), PSI some (us).
ws() {
  v=$(awk '$1 ~ /^workingset_(refault|activate)_(file|anon)$|^pgmajfault$|^pswp(in|out)$/ { printf "%s=%s ", $1, $2 }' /proc/vmstat)
  m=$(awk '$1 ~ /^(Active\(file\)|Inactive\(file\)|MemAvailable|MemTotal):$/ { k = $1; gsub(/[():]/, "", k); printf "%s_kb=%s ", k, $2 }' /proc/meminfo)
  p=$(awk -F'total=' '/^some/ { print $2 }' /proc/pressure/memory)
  say "ws at=$(date +%s.%N) $v$m psi_some_us=$p"
}
sampler() { while :; do ws; sleep 10; done; }
"""

PG_READY = "su postgres -c 'pg_isready -q' && systemctl is-active -q postgresql"
# pg_prewarm (PostgreSQL's own, as after a restart) reads the tables and indexes
# into the page cache first: pgbench then measures a warm database, and what the
# guest could keep of it. A guest too small keeps the last part read.
PG_PREWARM = ("create extension if not exists pg_prewarm; "
              "select sum(pg_prewarm(c, 'read')) from unnest(array['pgbench_accounts', "
              "'pgbench_accounts_pkey', 'pgbench_branches', 'pgbench_tellers']::regclass[]) c")
PG_SCRIPT = PRELUDE + r"""counters
sampler & sampler_pid=$!
cd /tmp
s=$(date +%s.%N)
blocks=$(su postgres -c "psql -qAt -d bench -c \"@PREWARM@\"" 2>&1 | tail -n 1)
say "prewarm blocks=$blocks start=$s end=$(date +%s.%N)"
su postgres -c 'pgbench -S -c 2 -j 2 -T @DURATION@ -P 20 bench' 2>&1 |
  while read -r line; do say "$line"; done
kill $sampler_pid
counters
"""

REDIS_KEYS, REDIS_VALUE, REDIS_PAUSE, REDIS_CHUNKS = 32000, 16000, 40, 8
REDIS_READY = "redis-cli ping | grep -q PONG"
# A SET (or GET) phase of 2 x REDIS_KEYS requests runs as REDIS_CHUNKS runs of
# redis-benchmark, so that a slow stretch of the shared machine still counts the
# work done. Each chunk: ok=1 finished, ok=0 failed (its time counts, its
# requests do not), ok=cut (stopped by the window's end: not counted); a chunk
# begun and never ended counts as failed up to the window's end. After a failed
# chunk the cycle goes to its FLUSHALL: a GET would read missing keys.
REDIS_SCRIPT = PRELUDE + r"""counters
end=$(( $(date +%s) + @DURATION@ )); cycle=0
say "window end=$end"
redis-cli flushall >/dev/null
while [ $(date +%s) -lt $end ]; do
  cycle=$((cycle + 1)); ok=1
  for t in set get; do
    c=0
    while [ $ok = 1 ] && [ $c -lt @CHUNKS@ ]; do
      c=$((c + 1))
      left=$(( end - $(date +%s) )); [ $left -gt 0 ] || { ok=cut; break; }
      s=$(date +%s.%N)
      say "begin cycle=$cycle test=$t chunk=$c start=$s"
      out=$(timeout $left redis-benchmark -q -t $t -n @N@ -r @KEYS@ -d @VALUE@ -P 16 -c 4 --csv 2>&1)
      rc=$?; e=$(date +%s.%N)
      if [ $rc = 0 ]; then ok=1; elif [ $rc = 124 ]; then ok=cut; else ok=0; fi
      say "step cycle=$cycle test=$t chunk=$c ok=$ok n=@N@ start=$s end=$e"
      [ $ok = 1 ] || echo "$out" | tail -n 2 | while read -r line; do say "  | $line"; done
    done
  done
  redis-cli flushall >/dev/null 2>&1
  say "flush cycle=$cycle at=$(date +%s.%N) used=$(redis-cli info memory 2>/dev/null | sed -n 's/^used_memory_peak_human://p' | tr -d '\r')"
  sleep @PAUSE@
done
say "restarts $(systemctl show -p NRestarts --value redis-server)"
counters
"""


def fill(script, **values):
    for k, v in values.items():
        script = script.replace(f"@{k}@", str(v))
    return script


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def parse_counters(lines):
    """The first and the last "counters" line: (before, after) dicts or None."""
    c = [fields(l) for l in lines if l.startswith("counters ")]
    conv = (lambda d: {"oom_kill": int(d.get("oom_kill", 0)),
                       "psi_some_s": int(d.get("psi_some_us", 0)) / 1e6,
                       "psi_full_s": int(d.get("psi_full_us", 0)) / 1e6})
    return (conv(c[0]) if c else None, conv(c[-1]) if len(c) > 1 else None)


def parse_cache(lines):
    """The kernel's page-cache evidence over the window, from the "ws" lines: file
    refaults and activations (MiB/s), Active(file) and Inactive(file) (mean MiB)."""
    ws = [fields(l) for l in lines if l.startswith("ws ")]
    if len(ws) < 2:
        return None
    span = float(ws[-1]["at"]) - float(ws[0]["at"])
    rate = (lambda k: round((int(ws[-1][k]) - int(ws[0][k])) * 4096 / MIB / span, 3)
            if span > 0 and k in ws[0] and k in ws[-1] else None)
    kb = (lambda k: round(statistics.mean(int(w[k]) for w in ws if k in w) / 1024)
          if all(k in w for w in ws) else None)
    return {"refault_file_mib_s": rate("workingset_refault_file"),
            "activate_file_mib_s": rate("workingset_activate_file"),
            "active_file_mean_mib": kb("Activefile_kb"),
            "inactive_file_mean_mib": kb("Inactivefile_kb"), "samples": len(ws)}


def parse_pgbench(lines, duration):
    tps = [float(m.group(1)) for l in lines for m in [re.match(r"tps = ([\d.]+)", l)] if m]
    prog = [(float(m.group(1)), float(m.group(2))) for l in lines
            for m in [re.match(r"progress: ([\d.]+) s, ([\d.]+) tps", l)] if m]
    tail = [v for t, v in prog if t > duration * 2 / 3]
    pre = [fields(l) for l in lines if l.startswith("prewarm ")]
    r = {"unit": "tx/s", "finished": bool(tps), "progress": prog, "busy_s": duration,
         "steady": round(statistics.mean(tail), 1) if tail else None,
         "prewarm_s": round(float(pre[0]["end"]) - float(pre[0]["start"]), 1) if pre else None,
         "prewarm_blocks": pre[0].get("blocks") if pre else None}
    if tps:
        r["throughput"] = tps[-1]
    else:  # never finished (a guest that stopped answering): what its progress lines say
        r["throughput"] = sum(v for _, v in prog) * 20 / duration if prog else 0.0
    return r


def parse_redis(lines, duration):
    end = next((float(fields(l)["end"]) for l in lines if l.startswith("window ")), None)
    key = (lambda d: (d["cycle"], d["test"], d.get("chunk")))
    begun = {key(d): d for d in (fields(l) for l in lines if l.startswith("begin "))}
    steps = [fields(l) for l in lines if l.startswith("step ")]
    ended = {key(d) for d in steps}
    counted = [(float(d["start"]), float(d["end"]), d["ok"] == "1", int(d["n"]))
               for d in steps if d["ok"] in ("0", "1")]
    # begun, never ended: failed, up to the window's end
    counted += [(float(d["start"]), end, False, 0) for k, d in begun.items()
                if k not in ended and end is not None and float(d["start"]) < end]
    busy = sum(e - s for s, e, _, _ in counted)
    done = sum(n for _, _, ok, n in counted if ok)
    m = [l for l in lines if l.startswith("restarts ")]
    return {"throughput": done / busy if busy else 0.0, "unit": "req/s",
            "finished": bool(m), "steps": len(counted),
            "failed_steps": len([c for c in counted if not c[2]]),
            "cycles": len({d["cycle"] for d in begun.values()}), "busy_s": round(busy, 1),
            "requests": done, "redis_restarts": int(m[-1].split()[1]) if m else None}


WORKLOADS = {
    "pgbench": (PG_READY, lambda d: fill(PG_SCRIPT, DURATION=d, PREWARM=PG_PREWARM),
                parse_pgbench),
    "redis": (REDIS_READY,
              lambda d: fill(REDIS_SCRIPT, DURATION=d, N=2 * REDIS_KEYS // REDIS_CHUNKS,
                             KEYS=REDIS_KEYS, VALUE=REDIS_VALUE, PAUSE=REDIS_PAUSE,
                             CHUNKS=REDIS_CHUNKS),
              parse_redis),
}

# ---- one dynmemd and its guests ----


class Host:
    def __init__(self, args, root, memory_line, vms):
        self.args, self.root, self.names = args, root, [n for n, _ in vms]
        shutil.rmtree(root, ignore_errors=True)
        for d in ("run", "state", "disks"):
            os.makedirs(os.path.join(root, d))
        self.socket = os.path.join(root, "run", "dynmemd.sock")
        conf = (f"[host]\nbackend = qemu\nsocket = {self.socket}\n"
                f"state_dir = {root}/state\n{memory_line}\ninterval = 1s\n")
        if args.policy:  # [policy] tunables, e.g. lend_hold=30m (docs/policy.md)
            conf += "[policy]\n" + "".join(f"{kv.partition('=')[0].strip()} = "
                                            f"{kv.partition('=')[2].strip()}\n"
                                            for kv in args.policy)
        self.guests = {}
        for name, sizes in vms:
            # attached through qemu_args (cache=none): QEMU opens it by name, as its user
            disk = for_qemu(overlay(args.image, os.path.join(root, "disks", name + ".qcow2")))
            qpath = qga_socket(os.path.join(root, "run"), name)
            conf += vm_section(name, args.image, disk, qpath, sizes + COMMON, drive_cache="none")
            self.guests[name] = Guest(qpath)
        self.conf = os.path.join(root, "dynmem.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.samples = []  # (time, {name: list entry})
        self.stop_ev = threading.Event()
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.root, "dynmemd.log"), "w")
        self.proc = subprocess.Popen([self.args.dynmemd, "-d", "-v", "-f", self.conf],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def list(self):
        r = subprocess.run([self.args.dynmem, "--socket", self.socket, "list", "--json"],
                           capture_output=True, text=True)
        return {v["name"]: v for v in json.loads(r.stdout)} if r.returncode == 0 else None

    def _sample(self):
        n = 0
        while not self.stop_ev.is_set():
            try:
                v = self.list()
                if v:
                    for name, e in v.items():
                        e["qemu_cpu_s"] = self.qemu_cpu_s(name)
                        if n % 5 == 0:  # smaps walks every mapping: not every second
                            e["guest_ram_rss_bytes"] = self.guest_ram_rss(name, e)
                    self.samples.append((time.time(), v))
            except (OSError, ValueError):
                pass
            n += 1
            self.stop_ev.wait(1.0)

    def qemu_pid(self, name):
        """From dynmemd's pid file: "PID STARTTIME" (docs/qemu-backend.md)."""
        try:
            with open(os.path.join(self.root, "run", name + ".pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError):
            return None

    def qemu_cpu_s(self, name):
        """CPU seconds (user + system) the guest's QEMU has used: under TCG the work
        a guest gets done is bounded by the CPU it is given, which the shared
        machine hands out unevenly; throughput per CPU second takes that out."""
        pid = self.qemu_pid(name)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def guest_ram_rss(self, name, entry):
        """Resident bytes of QEMU's guest RAM mappings (base RAM and the virtio-mem
        backend, found by their sizes in /proc/PID/smaps): QEMU's RSS without its
        own heap and, under TCG, its translation cache (up to 1 GiB here). A
        dynamic VM's base RAM (-m size=) and its virtio-mem region (the
        memory-backend's size=) are read from QEMU's command line. None when no
        mapping matched (nothing to report)."""
        try:
            pid = self.qemu_pid(name)
            with open(f"/proc/{pid}/smaps") as f:
                text = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            return None
        sizes = set()
        for flag, arg in zip(argv, argv[1:]):
            m = re.match(r"^(?:memory-backend-\w+,.*?)?\bsize=(\d+)([kMG]?)\b", arg)
            if flag in ("-m", "-object") and m:
                sizes.add(int(m.group(1)) << {"": 0, "k": 10, "M": 20, "G": 30}[m.group(2)])
        total, size, found = 0, 0, False
        for line in text.splitlines():
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
            if m:
                size = int(m.group(2), 16) - int(m.group(1), 16)
            elif line.startswith("Rss:") and any(abs(size - s) <= 4 * MIB for s in sizes):
                total += int(line.split()[1]) * 1024
                found = True
        return total if found else None

    def stop(self):
        self.stop_ev.set()
        for n in self.names:
            subprocess.run([self.args.dynmem, "--socket", self.socket, "stop", "--force", n],
                           capture_output=True)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_ready(host, ready):
    deadline = time.time() + BOOT_TIMEOUT
    pending = set(host.names)
    while pending:
        if time.time() > deadline or host.proc.poll() is not None:
            sys.exit(f"bench.py: guests {sorted(pending)} not ready; see {host.root}")
        for n in sorted(pending):
            g = host.guests[n]
            try:
                code, _, _ = g.qga.sh("systemctl is-system-running --wait >/dev/null; " + ready,
                                         timeout=30)
                if code == 0:
                    pending.discard(n)
            except (OSError, QgaError):
                pass
        time.sleep(2)


GRACE_S = 300  # after the window: a slow guest's last step and its counters


def console_lines(host, name):
    """The lines the workload script printed to the guest's serial console."""
    try:
        with open(os.path.join(host.root, "state", name + ".console.log"), "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    tag = "dynmem-bench: "
    return [line.split(tag, 1)[1].strip() for line in text.splitlines() if tag in line]


def run_phase(args, workload, phase, duration):
    memory_line, vms = PHASES[phase]
    ready, script, parse = WORKLOADS[workload]
    host = Host(args, os.path.join(args.out, workload, phase), memory_line, vms)
    print(f"bench.py: {workload}/{phase}: booting {', '.join(host.names)}", flush=True)
    t0 = time.time()
    host.start()
    res = {}
    try:
        wait_ready(host, ready)
        print(f"bench.py: {workload}/{phase}: ready after {time.time() - t0:.0f} s; "
              f"{duration} s of load", flush=True)
        pids = {n: g.qga.spawn(["/bin/sh", "-c", script(duration)])
                for n, g in host.guests.items()}
        start = time.time()
        ends, deadline = {}, start + duration + GRACE_S
        while len(ends) < len(pids) and time.time() < deadline:
            time.sleep(5)
            for n in sorted(set(pids) - set(ends)):
                try:
                    if host.guests[n].qga.status(pids[n])[0]:
                        ends[n] = time.time()
                except (OSError, QgaError):
                    pass  # busy or thrashing: its console says what it did
        for n in host.names:
            lines = console_lines(host, n)
            with open(os.path.join(host.root, n + ".lines"), "w") as f:
                f.write("\n".join(lines) + "\n")
            res[n] = summarise(host, n, start, ends.get(n), duration, lines, parse)
    finally:
        host.stop()
    with open(os.path.join(host.root, "samples.json"), "w") as f:
        json.dump(host.samples, f)
    return res


def summarise(host, name, start, end, duration, lines, parse):
    """One guest's figures over its window (start to its script's end, or to the
    window's end when it never finished)."""
    stop = end or start + duration
    win = [s[name] for t, s in host.samples if start <= t <= stop and name in s]
    mean = (lambda k: round(statistics.mean(v[k] or 0 for v in win) / MIB) if win else None)
    before, after = parse_counters(lines)
    r = parse(lines, duration)
    r.update({
        "finished": bool(end) and r.get("finished", True),
        "window_s": round(stop - start),
        "oom_kills": after["oom_kill"] - before["oom_kill"] if before and after else None,
        "stall_some_s": round(after["psi_some_s"] - before["psi_some_s"], 1)
        if before and after else None,
        "stall_full_s": round(after["psi_full_s"] - before["psi_full_s"], 1)
        if before and after else None,
        "assigned_mean_mib": mean("assigned_bytes"),
        "assigned_peak_mib": round(max(v["assigned_bytes"] for v in win) / MIB) if win else None,
        "rss_mean_mib": mean("host_rss_bytes"),
        "guest_ram_rss_mean_mib": ram_mean(win),
        "samples": len(win),
        "cache": parse_cache(lines),
    })
    cpu = [v["qemu_cpu_s"] for v in win if v.get("qemu_cpu_s") is not None]
    r["qemu_cpu_s"] = round(cpu[-1] - cpu[0], 1) if len(cpu) > 1 else None
    # the work over the CPU its QEMU had: pgbench's tx/s and redis' req/s (of the
    # benchmark's busy time) times the time they cover, per CPU second of the window
    span = r.get("busy_s") or r["window_s"]
    r["per_cpu_s"] = (round(r["throughput"] * span / r["qemu_cpu_s"], 2)
                      if r.get("throughput") and r["qemu_cpu_s"] else None)
    if r["oom_kills"] is None:  # its last counters never came: ask its kernel log
        r["oom_kills_console"] = console_oom_kills(host, name)
    return r


def ram_mean(win):
    v = [e["guest_ram_rss_bytes"] for e in win if e.get("guest_ram_rss_bytes") is not None]
    return round(statistics.mean(v) / MIB) if v else None


def console_oom_kills(host, name):
    try:
        with open(os.path.join(host.root, "state", name + ".console.log"), "rb") as f:
            return f.read().decode(errors="replace").count("Out of memory: Killed process")
    except OSError:
        return None


# ---- the report ----

def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def headline(res):
    c1, c2, c3, c4 = (res.get(k, {}) for k in ("case1", "case2", "case3", "case4"))
    return {
        "throughput_3_vs_2": ratio(c3.get("throughput"), c2.get("throughput")),
        "per_cpu_3_vs_2": ratio(c3.get("per_cpu_s"), c2.get("per_cpu_s")),
        "per_cpu_1_vs_2": ratio(c1.get("per_cpu_s"), c2.get("per_cpu_s")),
        "assigned_3_vs_2": ratio(c3.get("assigned_mean_mib"), c2.get("assigned_mean_mib")),
        "rss_3_vs_2": ratio(c3.get("rss_mean_mib"), c2.get("rss_mean_mib")),
        "guest_ram_rss_3_vs_2": ratio(c3.get("guest_ram_rss_mean_mib"),
                                      c2.get("guest_ram_rss_mean_mib")),
        "throughput_1_vs_2": ratio(c1.get("throughput"), c2.get("throughput")),
        "throughput_4_vs_3": ratio(c4.get("throughput"), c3.get("throughput")),
        "throughput_4_vs_2": ratio(c4.get("throughput"), c2.get("throughput")),
        "assigned_4_vs_2": ratio(c4.get("assigned_mean_mib"), c2.get("assigned_mean_mib")),
    }


def print_report(all_res):
    for workload, res in all_res.items():
        unit = next((r["unit"] for r in res.values() if r.get("unit")), "")
        run = res.get("_run", {})
        print(f"\n== {workload} ({unit}), run started {run.get('started', '?')}")
        print(f"{'guest':8s} {'throughput':>10s} {'per CPU s':>9s} {'OOM':>4s} {'stall some/full s':>18s} "
              f"{'assigned mean/peak MiB':>23s} {'QEMU RSS MiB':>13s} {'guest RAM RSS':>14s}")
        for n in ("case1", "case2", "case3", "case4", "peer1", "peer2"):
            r = res.get(n)
            if not r:
                continue
            tp = f"{r['throughput']:.1f}" if r.get("throughput") is not None else "-"
            tp += "" if r.get("finished") else "*"
            oom = r["oom_kills"] if r["oom_kills"] is not None else f"{r.get('oom_kills_console')}?"
            stall = f"{r['stall_some_s']}/{r['stall_full_s']}"
            print(f"{n:8s} {tp:>10s} {r.get('per_cpu_s')!s:>9s} {oom:>4} {stall:>18s} "
                  f"{r['assigned_mean_mib']:>12}/{r['assigned_peak_mib']:<10} "
                  f"{r['rss_mean_mib']:>13} {r.get('guest_ram_rss_mean_mib')!s:>14}")
        h = headline(res)
        print("  " + ", ".join(f"{k} {v}" for k, v in h.items()))
        print("  (* did not finish: the guest stopped answering; ? OOM kills its console "
              "shows, its counters never came)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for opt in ("--dynmemd", "--dynmem", "--guest", "--source"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--out", default="build/bench-apps")
    ap.add_argument("--workloads", default="pgbench,redis")
    ap.add_argument("--duration", type=int, default=300, help="seconds of load per phase")
    ap.add_argument("--phases", default="solo,shared", help="solo (cases 1-3), shared (case 4)")
    ap.add_argument("--policy", action="append", default=[], metavar="KEY=VALUE",
                    help="a [policy] tunable for dynmemd (repeatable), e.g. lend_hold=30m")
    ap.add_argument("--analyse", action="store_true",
                    help="print the report of an earlier run's results.json in --out")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench.py: terminated"))
    for k in ("dynmemd", "dynmem", "guest", "source", "out"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    if args.analyse:
        with open(path) as f:
            print_report(json.load(f)["workloads"])
        return
    why = cannot_build_reason(args.source)
    if why:
        sys.exit(f"bench.py: {why}")
    try:
        args.image, took, cached = build_image(args.source, os.path.join(args.out, "image"),
                                               "apps", args.guest,
                                               os.path.join(args.out, "image.log"))
    except RuntimeError as e:
        sys.exit(f"bench.py: {e}")
    print(f"bench.py: image {'up to date' if cached else 'built'} in {took:.0f} s", flush=True)
    # Workloads not run now keep the figures of their own (earlier) run: each
    # workload's cases are always from one run, and say when it was.
    try:
        with open(path) as f:
            all_res = json.load(f)["workloads"]
    except (OSError, ValueError, KeyError):
        all_res = {}
    for workload in args.workloads.split(","):
        if workload not in WORKLOADS:
            sys.exit(f"bench.py: unknown workload {workload!r}")
        all_res[workload] = {"_run": {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                      "duration_s": args.duration,
                                      "policy": args.policy}}
        for phase in args.phases.split(","):
            if phase not in PHASES:
                sys.exit(f"bench.py: unknown phase {phase!r}")
            all_res[workload].update(run_phase(args, workload, phase, args.duration))
            with open(path, "w") as f:
                json.dump({"duration_s": args.duration, "workloads": all_res}, f, indent=1)
    for workload, res in all_res.items():
        for k, v in headline(res).items():
            res.setdefault("_headline", {})[k] = v
    with open(path, "w") as f:
        json.dump({"duration_s": args.duration, "workloads": all_res}, f, indent=1)
    print_report(all_res)
    print(f"\nresults: {path}; logs, consoles and guest outputs under {args.out}/WORKLOAD/PHASE")


if __name__ == "__main__":
    main()
