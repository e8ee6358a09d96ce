#!/usr/bin/env python3
"""bench/migration: what live migration costs a VM with dynamic memory, against the
same VM sized statically at its maximum, and how long the relief rule takes to end a
sustained shortage. docs/migration.md says how to read them.

Two libvirt hosts on this machine (tests/migration/twohost.py: each its own
libvirtd, network namespace and dynmemd), three TCG guests on host A booting the
test image, each given the same history by dynmem-load: its load rises to near
2 GiB, holds, and falls back to 256 MiB.

  dynamic      512 MiB of boot memory, up to 2 GiB with virtio-mem (dynmem enable):
               dynmemd plugs what the load needs and unplugs it once it falls
  static       2 GiB of boot memory, no dynamic memory: the guest touched 1.8 GiB
               and freed it again, and the host cannot tell
  static-idle  2 GiB of boot memory, never loaded beyond 256 MiB: the same static VM
               without the history (what QEMU's zero-page detection saves)

Each is then live-migrated to host B (dynmem migrate, libvirt's job statistics),
one at a time, the others idle. Ratios are against `static`, measured in the same
run. Then the relief rule: a VM on A, A's memory lowered below the VM's minimum
(a sustained shortage), the time from there to the VM running on B.

usage: bench.py DYNMEMD DYNMEM [--out DIR] [--shortage-for SECONDS]
       (as root; needs the guest image: DYNMEM_E2E_IMAGE_DIR, DYNMEM_E2E_PROGRAMS,
       DYNMEM_SOURCE_ROOT, as meson sets them: meson test -C build --benchmark
       --suite migration -v; DYNMEM_MIGRATION_QEMU=BINARY: the domains' QEMU,
       twohost.py)
"""
import argparse
import json
import os
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "migration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from twohost import (MIB, TwoHosts, console, domain, host_config,  # noqa: E402
                     migration_qemu, migration_result, skip_reason_here, wait_for)
from dynmemtest import OOM_MARKERS, guest_image  # noqa: E402

HISTORY = "hold:5s,ramp:1800M:60s,hold:20s,ramp:256M:10s,hold:36000s"
IDLE = "hold:5s,ramp:256M:10s,hold:36000s"
VARIANTS = (  # name, boot memory MiB, dynamic, plan
    ("dynamic", 512, True, HISTORY),
    ("static", 2048, False, HISTORY),
    ("static-idle", 2048, False, IDLE),
)
BASELINE = "static"
RELIEF = """
[cluster]
relief = {relief}
shortage_for = {shortage_for}s
cooldown = 10m
peer_timeout = 3s

[peer "{peer}"]
libvirt_uri = {uri}
http = {http}
"""


def say(text):
    print(text, flush=True)


def appending(xml):
    return re.sub(r"(<serial type='file'><source path='[^']*')/>", r"\1 append='on'/>", xml)


def configure(hosts, memory, shortage_for):
    for h, peer in ((hosts.a, hosts.b), (hosts.b, hosts.a)):
        h.config = (lambda mem, h=h, peer=peer: host_config(mem).replace("@ADDR@", h.addr) +
                    RELIEF.format(relief="yes" if h is hosts.a else "no",
                                  shortage_for=shortage_for, peer=peer.name, uri=peer.uri(),
                                  http=peer.http_url()))
        h.d.write_config("[host]\nbackend = libvirt\n" + h.config(memory[h.name]))


def set_memory(h, mib):
    h.d.write_config("[host]\nbackend = libvirt\n" + h.config(mib))
    h.d.send(signal.SIGHUP)
    wait_for(lambda: h.status()["memory_bytes"] == mib * MIB, f"{h.name}: memory {mib}M",
             timeout=30, interval=0.2)


def loaded(h, name):
    """The load's last line on the console: (held MiB, target MiB), or None."""
    for line in reversed(console(h.lv, name).splitlines()):
        m = re.search(r"dynmem-load: holding (\d+) MiB \(target (\d+) MiB\)", line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def history(a):
    """Wait until every guest went through its history, and the dynamic one shrank back."""
    wait_for(lambda: all((loaded(a, n) or (0, 0))[0] >= 1700 for n, _, _, p in VARIANTS
                         if p == HISTORY), "the loads to reach 1.7 GiB", timeout=900, interval=2)
    peak = a.vm("dynamic")["assigned_bytes"]
    say(f"# the loads reached 1.7 GiB; dynamic holds {peak // MIB} MiB")
    wait_for(lambda: all((loaded(a, n) or (9999, 0))[0] <= 300 for n, _, _, _ in VARIANTS),
             "the loads to fall back to 256 MiB", timeout=600, interval=2)
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] <= 700 * MIB and
                          v["assigned_bytes"] == v["target_bytes"] else None)(a.vm("dynamic")),
                 "dynamic to give its memory back", timeout=600, interval=2)
    say(f"# dynamic gave it back: {v['assigned_bytes'] // MIB} MiB "
        f"(demand {v['demand_bytes'] // MIB} MiB)")
    return peak


def migrate(a, b, name):
    held = a.vm(name)["assigned_bytes"]
    _, out, _ = a.migrate(name, b, extra=["--persistent"])
    r = migration_result(out)
    st = r["stats"]
    row = {"variant": name, "held_mib": held // MIB, "elapsed_ms": r["elapsed_ms"],
           "time_ms": st["time_elapsed"], "sent_mib": st["data_processed"] / MIB,
           "normal_mib": st["memory_normal_bytes"] / MIB, "zero_pages": st["memory_constant"],
           "downtime_ms": st["downtime"], "iterations": st.get("memory_iteration")}
    say(f"# {name}: {row}")
    return row


def table(rows):
    base = next(r for r in rows if r["variant"] == BASELINE)
    say("| VM | held when it left | time | sent | of which pages | zero pages | downtime | "
        "time vs static | sent vs static | downtime vs static |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        say(f"| {r['variant']} | {r['held_mib']} MiB | {r['time_ms'] / 1000:.1f} s | "
            f"{r['sent_mib']:.0f} MiB | {r['normal_mib']:.0f} MiB | {r['zero_pages']} | "
            f"{r['downtime_ms']} ms | {r['time_ms'] / base['time_ms']:.2f} | "
            f"{r['sent_mib'] / base['sent_mib']:.2f} | "
            f"{r['downtime_ms'] / max(1, base['downtime_ms']):.2f} |")


def relief(a, b, shortage_for):
    """The dynamic VM back on A; A's memory below its minimum; until it runs on B."""
    a_name = "dynamic"
    b.migrate(a_name, a, extra=["--persistent", "--undefinesource"])
    wait_for(lambda: a.vm(a_name)["migration"] is None, "dynamic back on A", timeout=60)
    before = a.status()["relief"]
    t0 = time.monotonic()
    set_memory(a, 448)  # below its 512 MiB minimum: short of its need from now
    wait_for(lambda: a.status()["relief"]["moves"] > before["moves"], "the relief rule to move",
             timeout=shortage_for + 120, interval=0.1)
    t_decided = time.monotonic() - t0
    wait_for(lambda: b.domstate(a_name) == "running" and
             (b.vms().get(a_name) or {}).get("migration") is None and
             b.vm(a_name)["state"] == "running", "dynamic to run on B", timeout=600,
             interval=0.1)
    t_running = time.monotonic() - t0
    ev = [e for e in a.d.json("events") if e["kind"] == "relief"]
    return {"shortage_for_s": shortage_for, "decided_s": round(t_decided, 1),
            "running_on_b_s": round(t_running, 1), "events": [e["text"] for e in ev]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dynmemd")
    ap.add_argument("dynmem")
    ap.add_argument("--out", default=None)
    ap.add_argument("--shortage-for", type=int, default=30)
    args = ap.parse_args()
    why = skip_reason_here()
    if why:
        say(f"1..0 # SKIP {why}")
        return 0
    image = guest_image()
    binary, version = migration_qemu()
    say(f"# QEMU {'.'.join(map(str, version or ()))} ({binary or 'libvirt default'}), "
        f"libvirt {os.popen('libvirtd --version').read().split()[-1]}")
    bins = (os.path.abspath(args.dynmemd), os.path.abspath(args.dynmem))
    os.environ["DYNMEM_CLI"] = bins[1]
    hosts = TwoHosts(bins, "", "")
    a, b = hosts.a, hosts.b
    configure(hosts, {"A": 6144, "B": 6144}, args.shortage_for)
    t0 = time.monotonic()
    hosts.start()
    try:
        for name, mem, dynamic, plan in VARIANTS:
            a.lv.define(appending(domain(a.lv, name, image, memory=mem, plan=plan)))
            if dynamic:
                a.d.ok("enable", name, "--minimum", "512M", "--maximum", "2G")
            a.virsh("start", name)
        peak = history(a)
        rows = [migrate(a, b, name) for name, _, _, _ in VARIANTS]
        oom = {n: [line for line in console(a.lv, n).splitlines()
                   if any(m in line for m in OOM_MARKERS)] for n, _, _, _ in VARIANTS}
        result = {"rows": rows, "dynamic_peak_mib": peak // MIB, "oom": oom}
        result["relief"] = relief(a, b, args.shortage_for)
        table(rows)
        r = result["relief"]
        say(f"\nrelief: shortage_for {r['shortage_for_s']} s; move decided after "
            f"{r['decided_s']} s; the VM ran on B after {r['running_on_b_s']} s")
        for text in r["events"]:
            say(f"  {text}")
        if any(oom.values()):
            say(f"OOM in a guest (the run does not count): {oom}")
        say(f"# the whole run took {time.monotonic() - t0:.0f} s")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "migration.json"), "w") as f:
                json.dump(result, f, indent=2)
        return 1 if any(oom.values()) else 0
    finally:
        hosts.stop()


if __name__ == "__main__":
    sys.exit(main())
