#!/usr/bin/env python3
"""bench.py: dynmemd under load. Starts dynmemd with N simulated VMs (default
1,000) at a 1 s cycle, sends control requests at a steady rate (default 100
per second, each on a new connection like the dynmem command) for a while,
and reports the cycle's lateness (p50/p99/max, from dynmemd's own histogram;
a cycle later than a whole interval is skipped and counted apart), its CPU use
in % of one core, its memory (RSS), and the requests' latency (each request's
own round trip, and counted from when it was due, which a stall delays for every
request queued behind it).

    python3 bench/daemon/bench.py [--build DIR] [--vms 1000] [--rate 100]
                                  [--duration 60] [--mix show=60,status=25,list=10,set=5]
                                  [--policy-sleep SECONDS] [--baseline DYNMEMD]
                                  [--json] [--check]

--policy-sleep runs the VMs under an exec: policy (Python, demand + 30 %) that
sleeps that long before each reply. --baseline measures another dynmemd (say, an
earlier version) the same way in the same run, first, and prints both with the
ratios.

--check exits 1 when a target of issue 3 is missed: p99 lateness < 50 ms,
CPU < 5 % of one core, RSS < 64 MiB. Build without sanitizers (meson setup
build && ninja -C build); figures from a sanitizer build mean little.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
TRACES = 20
DEFAULT_MIX = "show=60,status=25,list=10,set=5"


def write_traces(d, seed):
    rng = random.Random(seed)
    for t in range(TRACES):
        demand, rows = rng.uniform(300, 1500), ["seconds,demand"]
        for s in range(0, 3601, 30):
            demand = min(3000.0, max(200.0, demand + rng.gauss(0, 120)))
            rows.append(f"{s},{int(demand)}M")
        with open(os.path.join(d, f"trace-{t}.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")


# An exec: policy that thinks for argv[1] seconds, then gives each VM demand + 30 %.
SLOW_POLICY = """import json, sys, time
delay = float(sys.argv[1])
for line in sys.stdin:
    req = json.loads(line)
    time.sleep(delay)
    targets = {vm["name"]: max(vm["minimum"], min(vm["maximum"], int(vm["demand"] * 1.3)))
               for vm in req["vms"] if vm["running"] and vm["demand"] is not None}
    print(json.dumps({"targets": targets}), flush=True)
"""


def write_config(d, vms, interval, policy_sleep=None):
    lines = ["[host]", f"memory = {int(vms * 1.25)}G", f"interval = {interval}",
             f"socket = {d}/run/dynmemd.sock", f"state_dir = {d}/state"]
    if policy_sleep is not None:
        with open(os.path.join(d, "slow-policy.py"), "w") as f:
            f.write(SLOW_POLICY)
        lines.append(f"policy = exec:{sys.executable} -S {d}/slow-policy.py {policy_sleep}")
    lines.append("")
    for i in range(vms):
        lines += [f'[vm "vm{i:05d}"]', "dynamic = yes", "startup = 1G", "minimum = 512M",
                  "maximum = 4G", f"weight = {1000 + (i * 37) % 9000}",
                  f"trace = trace-{i % TRACES}.csv", "autostart = yes", ""]
    path = os.path.join(d, "dynmem.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def call(sock_path, req, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        return json.loads(buf)
    finally:
        s.close()


def proc_cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def proc_mem_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def hist_diff(after, before):
    b = {u: c for u, c in before}
    return [(u, c - b.get(u, 0)) for u, c in after if c - b.get(u, 0) > 0]


def hist_quantile(hist, q):
    total = sum(c for _, c in hist)
    if total == 0:
        return 0.0
    seen = 0
    for upper, c in hist:
        seen += c
        if seen >= q * total:
            return upper
    return hist[-1][0]


def parse_mix(text):
    """"show=60,status=20,list=10,set=10" -> a list of 100 command names."""
    mix = []
    for part in text.split(","):
        name, _, share = part.partition("=")
        if name not in ("show", "status", "list", "set") or not share.isdigit():
            raise argparse.ArgumentTypeError(f"bad mix entry {part!r}")
        mix += [name] * int(share)
    if not mix:
        raise argparse.ArgumentTypeError("empty mix")
    return mix


class Load(threading.Thread):
    """Requests at a steady rate, commands drawn in turn from the mix."""

    def __init__(self, sock_path, vms, rate, duration, mix):
        super().__init__(daemon=True)
        self.sock_path, self.vms, self.rate, self.duration = sock_path, vms, rate, duration
        self.mix = mix
        self.latencies, self.since_due, self.errors = [], [], 0

    def request(self, i):
        name = f"vm{random.randrange(self.vms):05d}"
        kind = self.mix[i % len(self.mix)]
        if kind == "set":
            return {"version": 1, "command": "set", "name": name,
                    "settings": {"weight": random.randrange(10001)}}
        if kind == "show":
            return {"version": 1, "command": "show", "name": name}
        return {"version": 1, "command": kind}

    def run(self):
        start, n = time.monotonic(), int(self.rate * self.duration)
        for i in range(n):
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.monotonic()
            try:
                ok = call(self.sock_path, self.request(i)).get("ok")
            except (OSError, ValueError):
                ok = False
            t1 = time.monotonic()
            self.latencies.append((t1 - t0) * 1000.0)
            # One client, one request at a time: a stalled daemon delays the requests
            # queued behind the slow one too. Counted from when each was due, they show it.
            self.since_due.append((t1 - max(due, start)) * 1000.0)
            self.errors += 0 if ok else 1


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def wait_ready(sock_path, proc, vms, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: dynmemd exited with {proc.returncode}")
        try:  # a dynmemd that waits for a slow policy answers late: allow for it
            host = call(sock_path, {"version": 1, "command": "status"}, timeout=60)["host"]
            if host["running"] == vms and host["cycles"] >= 3:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    sys.exit("bench: dynmemd did not start every VM in time")


def measure(args, d, dynmemd):
    write_traces(d, args.seed)
    conf = write_config(d, args.vms, args.interval, args.policy_sleep)
    sock_path = os.path.join(d, "run", "dynmemd.sock")
    log = open(os.path.join(d, "dynmemd.log"), "wb")
    proc = subprocess.Popen([dynmemd, "-d", "-f", conf], stdout=log, stderr=log)
    try:
        wait_ready(sock_path, proc, args.vms)
        time.sleep(args.warmup)
        before = call(sock_path, {"version": 1, "command": "status"})["host"]
        cpu0, t0 = proc_cpu_ms(proc.pid), time.monotonic()
        load = Load(sock_path, args.vms, args.rate, args.duration, args.mix)
        load.start()
        rss_max = 0
        while load.is_alive():
            rss_max = max(rss_max, proc_mem_kib(proc.pid, "VmRSS"))
            load.join(0.5)
        cpu1, t1 = proc_cpu_ms(proc.pid), time.monotonic()
        after = call(sock_path, {"version": 1, "command": "status"})["host"]
        hwm = proc_mem_kib(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    hist = hist_diff(after["cycle_lateness_histogram"], before["cycle_lateness_histogram"])
    # A cycle later than a whole interval is skipped, not measured: count each as late
    # by one interval (the least it was), so a loop that stalls shows in the p99.
    skipped = after["cycles_skipped"] - before["cycles_skipped"]
    with_skipped = sorted(hist + [(float(after["interval_ms"]), skipped)])
    return {
        "dynmemd": dynmemd,
        "vms": args.vms, "interval": args.interval, "rate_per_s": args.rate,
        "mix": args.mix_text, "policy_sleep_s": args.policy_sleep,
        "duration_s": round(t1 - t0, 1), "requests": len(load.latencies),
        "request_errors": load.errors,
        "cycles": after["cycles"] - before["cycles"],
        "cycles_skipped": after["cycles_skipped"] - before["cycles_skipped"],
        "cycle_lateness_p50_ms": hist_quantile(hist, 0.50),
        "cycle_lateness_p99_ms": hist_quantile(hist, 0.99),
        "cycle_lateness_max_ms": max((u for u, _ in hist), default=0.0),
        "cycle_lateness_p99_with_skipped_ms": hist_quantile(with_skipped, 0.99),
        "cycle_duration_p99_ms": after["cycle_duration_p99_ms"],
        "cpu_percent_of_one_core": round((cpu1 - cpu0) / ((t1 - t0) * 1000.0) * 100.0, 2),
        "rss_max_mib": round(rss_max / 1024.0, 1),
        "rss_peak_mib": round(hwm / 1024.0, 1),
        "request_p50_ms": round(percentile(load.latencies, 0.50), 2),
        "request_p99_ms": round(percentile(load.latencies, 0.99), 2),
        "request_since_due_p99_ms": round(percentile(load.since_due, 0.99), 2),
        "request_since_due_max_ms": round(max(load.since_due, default=0.0), 2),
    }


def report_pair(base, new):
    """Both runs side by side, with new / baseline for the numbers."""
    print(f"{'':28s} {'baseline':>14s} {'this':>14s} {'this/baseline':>14s}")
    for k, v in new.items():
        b = base[k]
        ratio = ""
        if isinstance(v, (int, float)) and isinstance(b, (int, float)) and b:
            ratio = f"{v / b:.4f}"
        if k == "dynmemd":
            b, v = os.path.relpath(b), os.path.relpath(v)
        print(f"{k:28s} {str(b):>14s} {str(v):>14s} {ratio:>14s}")


TARGETS = [("cycle_lateness_p99_ms", 50.0, "ms"), ("cpu_percent_of_one_core", 5.0, "%"),
           ("rss_peak_mib", 64.0, "MiB")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", help="build directory (default build-release/, else build/)")
    ap.add_argument("--dynmemd")
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--interval", default="1s")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mix", default=DEFAULT_MIX,
                    help="shares of each request, default " + DEFAULT_MIX)
    ap.add_argument("--policy-sleep", type=float,
                    help="use an exec: policy that sleeps this long before each reply")
    ap.add_argument("--baseline", help="another dynmemd to measure first, the same way")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    args.mix_text, args.mix = args.mix, parse_mix(args.mix)
    if not args.build:
        args.build = "build-release" if os.path.isdir("build-release") else "build"
    args.dynmemd = os.path.abspath(args.dynmemd or os.path.join(args.build, "daemon", "dynmemd"))
    if not os.access(args.dynmemd, os.X_OK):
        sys.exit(f"bench: no dynmemd at {args.dynmemd}; build first (meson setup build && "
                 "ninja -C build)")
    runs = []
    for dynmemd in ([os.path.abspath(args.baseline)] if args.baseline else []) + [args.dynmemd]:
        d = tempfile.mkdtemp(prefix="dynmemd-bench-")
        try:
            runs.append(measure(args, d, dynmemd))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    r = runs[-1]
    if args.json:
        print(json.dumps(runs if args.baseline else r, indent=2))
    elif args.baseline:
        report_pair(runs[0], r)
    else:
        for k, v in r.items():
            print(f"{k:28s} {v}")
    missed = [f"{k} {r[k]} >= {limit} {unit}" for k, limit, unit in TARGETS if r[k] >= limit]
    for m in missed:
        print(f"bench: target missed: {m}", file=sys.stderr)
    return 1 if args.check and (missed or r["request_errors"]) else 0


if __name__ == "__main__":
    sys.exit(main())
