#!/usr/bin/env python3
"""bench/libvirt/bench.py: the same four guests and load steps under
`backend = qemu` and under `backend = libvirt` (a real libvirtd 9.0 in its own
mount namespace, tests/libvirt/lvhost.py), one after the other in one run:
how long a stall takes to become a resize request and a request to become
memory online in the guest (p50, p95), and dynmemd's CPU per VM. Results and
method: docs/libvirt.md ("Benchmark").

The guests, loads, policy and probes are bench/qemu/bench.py's (its functions
are imported), its default set: a1, a2 (the agent with its PSI trigger and its
burst absorber) and t1, t2 (the trigger, no absorber), pages half data, each
stepping from 48 MiB to 400 MiB of load and back every 40 s,
staggered; startup 256 MiB, maximum 1 GiB, buffer 5 %, a reactive policy.
Both phases run TCG (accel = tcg; domain type 'qemu'), so only the path
between dynmemd and QEMU differs: QMP from dynmemd, or libvirt's API (its
RPC, its job lock, its own QMP) in between.

Request time is dynmemd's log line ("NAME +N MiB: reason"), stamped as it
arrives; stall and online times are the guest probe's, mapped to host time
(bench/qemu/bench.py explains how). dynmemd's CPU is utime + stime from
/proc/PID/stat over the measured part of each phase.

usage: bench.py --dynmemd EXE --dynmem EXE --guest EXE --load EXE --probe EXE
                --source DIR [--out DIR] [--duration S] [--phases qemu,libvirt] [--analyse]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "qemu"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "libvirt"))
import bench as qb  # noqa: E402  bench/qemu/bench.py
from lvhost import LibvirtHost, skip_reason  # noqa: E402
from lvlib import domain  # noqa: E402

POLICY = ("\n[policy]\nshrink_delay = 5s\ntrend_lookahead = 0s\npersistence_max_permille = 0\n"
          "headroom_permille = 0\nstall_memory = 0s\n")  # bench/qemu/bench.py's
TARGET_REQUEST_MS = 20.0  # the libvirt path may add this much at p95 to stall -> request
TARGET_ONLINE_RATIO = 2.0  # and take at most twice as long from request to online


SET = "absorber"  # bench/qemu/bench.py's default set of guests


def guest_extras(trigger, absorber):
    """The kernel command line a guest of the set gets beside its load plan."""
    fill = qb.FILL[SET]
    return " ".join(([] if trigger else ["dynmem.agent.trigger=0"]) +
                    ([] if absorber else ["dynmem.agent.absorber=0"]) +
                    ([f"dynmem.load.fill={fill}"] if fill else []))


def qemu_config(root):
    text = (f"[host]\nbackend = qemu\nsocket = {root}/run/dynmemd.sock\n"
            f"state_dir = {root}/state\nmemory = 6G\ninterval = 1s\n" + POLICY)
    for name, trigger, absorber, first in qb.GUESTS:
        # TCG in both phases (libvirt's domains are type 'qemu'): only the path differs
        text += qb.vm_section(name, trigger, absorber, first, None, qb.FILL[SET],
                                "qemu-system-x86_64").replace(
            "accel = auto", "accel = tcg")
    return text


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(w, proc, duration, names):
    """Wait for every guest's load, then measure for duration s; returns (booted, cpu s)."""
    t0 = time.time()
    while not all(any("| dynmem-load: holding" in line for _, line in w.console[n])
                  for n in names):
        if time.time() > t0 + 300 or proc.poll() is not None:
            sys.exit("bench.py: the guests did not boot")
        time.sleep(0.5)
    booted = time.time()
    c0 = cpu_seconds(proc.pid)
    print(f"bench.py:   guests running {booted - t0:.0f} s in; measuring {duration} s",
          flush=True)
    time.sleep(duration)
    return booted, cpu_seconds(proc.pid) - c0


def run_qemu(args, root):
    conf = qb.fresh_root(root, qemu_config(root))
    names = [g[0] for g in qb.GUESTS]
    proc = qb.start_dynmemd(args, conf)
    w = qb.Watch(args, root, names)
    w.start(proc)
    print("bench.py: phase qemu (dynmemd runs QEMU itself)", flush=True)
    try:
        w.booted, w.cpu = measure(w, proc, args.duration, names)
    finally:
        w.finish()
        qb.stop_dynmemd(args, root, proc, names)
    return w


def run_libvirt(args, root):
    conf = qb.fresh_root(root, f"[host]\nbackend = libvirt\nsocket = {root}/run/dynmemd.sock\n"
                         f"state_dir = {root}/state\nmemory = 6G\ninterval = 1s\n" + POLICY)
    names = [g[0] for g in qb.GUESTS]
    host = LibvirtHost(name="bench", cgroups=False)  # scheduled as dynmemd's own QEMUs
    host.start()
    proc = None
    w = qb.Watch(args, root, names)
    print("bench.py: phase libvirt (libvirtd runs QEMU; dynmemd drives libvirt)", flush=True)
    try:
        for name, trigger, absorber, first in qb.GUESTS:
            host.define(domain(host, name, args.image, plan=qb.plan(first),
                               extra=guest_extras(trigger, absorber),
                               console=os.path.join(root, "state", name + ".console.log"),
                               acpi=True))
        proc = host.popen([args.dynmemd, "-d", "-v", "-f", conf], stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True, start_new_session=True)
        w.start(proc)
        sock = root + "/run/dynmemd.sock"
        while not os.path.exists(sock):
            time.sleep(0.1)
        for name in names:
            subprocess.run([args.dynmem, "--socket", sock, "enable", name, "--minimum", "256M",
                            "--maximum", "1G", "--buffer", str(qb.BUFFER)], check=True,
                           capture_output=True)
            host.virsh("start", name)
        w.booted, w.cpu = measure(w, proc, args.duration, names)
    finally:
        w.finish()
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        host.stop()
    return w


def save_raw(w, root):
    with open(os.path.join(root, "raw.json"), "w") as f:
        json.dump({"booted": w.booted, "cpu": w.cpu, "duration": w.duration,
                   "console": w.console, "daemon": w.daemon, "samples": w.samples}, f)


def load_raw(root):
    w = qb.Raw(root)
    with open(os.path.join(root, "raw.json")) as f:
        d = json.load(f)
    w.cpu, w.duration = d["cpu"], d["duration"]
    return w


def analyse(w):
    rows = {"all": [], "absorber": [], "no absorber": []}
    ooms = 0
    for name, _, absorber, first in qb.GUESTS:
        r, o = qb.analyse_guest(w, name, first)
        rows["all"] += r
        rows["absorber" if absorber else "no absorber"] += r
        ooms += o
    out = {"cpu_s": round(w.cpu, 2), "duration_s": w.duration,
           "cpu_ms_per_vm_s": round(w.cpu * 1000 / w.duration / len(qb.GUESTS), 2),
           "oom_kills": ooms, "groups": {}}
    for label, rs in rows.items():
        out["groups"][label] = {
            "steps": len(rs),
            "stall_to_request": qb.summarize([r.get("stall_to_request") for r in rs]),
            "stall_to_online": qb.summarize([r.get("stall_to_online") for r in rs]),
            "step_to_request": qb.summarize([r["request"] for r in rs]),
            "request_to_online": qb.summarize(
                [r["online"] - r["request"] for r in rs
                 if r["online"] is not None and r["request"] is not None and
                 r["online"] >= r["request"]]),
        }
    return out


def verdict(res):
    q, lv = res["qemu"]["groups"]["all"], res["libvirt"]["groups"]["all"]
    out = {}
    a, b = q["stall_to_request"]["p95_ms"], lv["stall_to_request"]["p95_ms"]
    if a is not None and b is not None:
        out["added_to_request_p95_ms"] = round(b - a, 1)
        out["request_target_met"] = b - a < TARGET_REQUEST_MS
    q_on, l_on = q["request_to_online"]["p95_ms"], lv["request_to_online"]["p95_ms"]
    if q_on and l_on:
        out["online_p95_ratio"] = round(l_on / q_on, 2)
        out["online_target_met"] = l_on / q_on <= TARGET_ONLINE_RATIO
    q_cpu, l_cpu = res["qemu"]["cpu_ms_per_vm_s"], res["libvirt"]["cpu_ms_per_vm_s"]
    out["cpu_ratio"] = round(l_cpu / q_cpu, 2) if q_cpu else None
    return out


def print_report(res):
    def fmt(s):
        return (f"p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms  (n={s['n']})"
                if s["n"] else "no samples")
    for phase in ("qemu", "libvirt"):
        p = res[phase]
        print(f"\n== backend {phase}: dynmemd CPU {p['cpu_s']} s in {p['duration_s']} s "
              f"({p['cpu_ms_per_vm_s']} ms per VM-second), {p['oom_kills']} OOM kills")
        for label, g in p["groups"].items():
            print(f"  {label} ({g['steps']} steps)")
            for key in ("stall_to_request", "request_to_online", "stall_to_online",
                        "step_to_request"):
                print(f"    {key.replace('_', ' '):20s} {fmt(g[key])}")
    print(f"\nverdict: {json.dumps(res['verdict'])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for opt in ("--dynmemd", "--dynmem", "--guest", "--load", "--probe", "--source"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--out", default="build/bench-libvirt")
    ap.add_argument("--duration", type=int, default=300)
    ap.add_argument("--phases", default="qemu,libvirt",
                    help="run these phases (the others are read from an earlier run)")
    ap.add_argument("--analyse", action="store_true",
                    help="only analyse the raw.json files of an earlier run in --out")
    args = ap.parse_args()
    why = skip_reason()
    if why:
        sys.exit(f"bench.py: cannot run a libvirt host here: {why}")
    for k in ("dynmemd", "dynmem", "guest", "load", "probe", "source"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    qb.GUESTS = qb.SETS[SET]
    run = [] if args.analyse else args.phases.split(",")
    if run:
        args.image = qb.build_image(args, out)
    for phase, fn in (("qemu", run_qemu), ("libvirt", run_libvirt)):
        if phase in run:
            w = fn(args, os.path.join(out, phase))
            w.duration = args.duration
            save_raw(w, os.path.join(out, phase))
    res = {phase: analyse(load_raw(os.path.join(out, phase))) for phase in ("qemu", "libvirt")}
    res["verdict"] = verdict(res)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print_report(res)
    print(f"\nresults: {out}/results.json; logs and consoles: {out}/qemu, {out}/libvirt")


if __name__ == "__main__":
    main()
