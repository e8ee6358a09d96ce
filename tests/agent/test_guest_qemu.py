#!/usr/bin/env python3
"""dynmem-guest inside the bundled guest image under QEMU TCG, one boot.

The image is built with dynmem-guest and dynmem-load (guest/image/build.sh,
into --image-dir); the guest runs a load that climbs to the OOM killer every
~12 s: with no swap and no page cache in the image, the last moments before
an OOM kill are the stall this guest can show. agent-peer (lib/agent.c, as a
backend drives it) talks to the agent through QEMU's socket: handshake and
capabilities, reports every second with sane figures, a PSI-triggered report
when the guest stalls, reconnection after the host side closes, an
incompatible host refused by both sides, and the agent's own footprint; the
guest has swap of its own, so the agent sets up no burst absorber, and, started
as root by the image's init, it keeps no capability once set up: what follows
(the stall reports of the trigger it armed before, the reconnection) it does
without one.
Prints TAP; skips when no image can be built.

usage: test_guest_qemu.py --guest EXE --load EXE --peer EXE --image-dir DIR --source DIR
"""
import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import WAIT, GuestVM, Peer, Tap, build_image, parse_fields  # noqa: E402


MIB = 1 << 20
# The guest has swap of its own (a zram device its init sets up, as zram-generator
# would): the agent must leave it alone and set up no absorber.
LOAD = "dynmem.load=ramp:230M:8s,hold:2s,ramp:60M:2s,loop dynmem.swap=64M"
BOOT_TIMEOUT = 150  # TCG on a shared, busy machine


def check_first_session(t, vm, peer):
    ready = peer.wait_for(lambda l: l.startswith("ready "), BOOT_TIMEOUT)
    t.ok(ready is not None, "the agent in the guest answers the host's hello",
         peer.text() + "\n--- console\n" + vm.console_text()[-3000:])
    if not ready:
        return None
    caps = parse_fields(ready).get("caps", "")
    t.ok(caps == "balloon,virtio-mem,psi,psi-trigger,online-movable",
         "capabilities: balloon, virtio-mem, PSI with a trigger, online-movable", ready)
    r = peer.report(WAIT)
    ok = r is not None and 150 * MIB < r["total"] <= 256 * MIB and \
        r["avail"] <= r["total"] and r["free"] <= r["total"] and r["committed"] > 0 and \
        str(r["demand"]).isdigit() and 0 < r["demand"] <= r["total"]
    t.ok(ok, "a report with sane figures (256 MiB guest)", r)
    t.ok(r is not None and r["unknown_keys"] == 0,
         "the host parser knows every key the agent sends", r)
    ticks = [peer.report(WAIT, lambda x: x["cause"] == "tick") for _ in range(3)]
    seqs = [x["seq"] for x in ticks if x]
    t.ok(len(seqs) == 3 and all(b > a for a, b in zip(seqs, seqs[1:])),
         "tick reports keep coming, numbered", seqs)
    gaps = [b["time_ms"] - a["time_ms"] for a, b in zip(ticks, ticks[1:]) if a and b]
    t.comment(f"guest time between tick reports: {gaps} ms (interval 1000 ms)")
    return ticks[-1] or r


def check_own_swap(t, vm):
    text = vm.console_text()
    t.ok("swap of its own: /dev/zram0" in text and
         "absorber: none: the guest has swap of its own" in text and
         "absorber: /dev/zram" not in text,
         "a guest with swap of its own gets no absorber", text[-3000:])


def check_capabilities(t, vm):
    text = vm.console_text()
    t.ok("dynmem-guest: capabilities after start-up: none;" in text,
         "once set up the agent drops every capability (no absorber to drain)", text[-3000:])


def check_psi(t, vm, peer):
    r = peer.report(120, lambda x: x["cause"] == "psi")
    t.ok(r is not None, "a PSI-triggered report arrives when the guest starts to stall",
         peer.text()[-2000:] + "\n--- console\n" + vm.console_text()[-2000:])
    if r:
        t.comment(f"psi report: stall={r['stall']} some_avg10={r['some_avg10_bp'] / 100:.2f}% "
                  f"avail={r['avail'] // MIB} MiB demand={r['demand'] // MIB} MiB")
    return r


def footprint(t, peer, first):
    reports = [parse_fields(l) for l in peer.lines if l.startswith("report ")]
    last = reports[-1] if reports else None
    if not first or not last or last["time_ms"] <= first["time_ms"]:
        t.ok(False, "footprint measured", peer.text()[-500:])
        return
    rss = max(r["self_rss"] for r in reports)
    cpu = (last["self_cpu_us"] - first["self_cpu_us"]) / 1000 / \
        (last["time_ms"] - first["time_ms"]) * 100
    t.comment(f"agent footprint: RSS up to {rss / 1024:.0f} KiB, CPU {cpu:.3f} % "
              f"over {(last['time_ms'] - first['time_ms']) / 1000:.0f} s of guest time (TCG)")
    t.ok(0 < rss < MIB, "the agent stays under 1 MiB resident", rss)


def check_reconnect(t, args, vm, last_seq):
    peer = Peer(args.peer, vm.agent_sock, "--reports", "2", timeout=3 * WAIT)
    ready = peer.wait_for(lambda l: l.startswith("ready "), WAIT)
    r = peer.report(WAIT)
    t.ok(ready is not None and r is not None and r["seq"] > last_seq,
         "after the host side closes and reconnects, the handshake and reports resume",
         peer.text())
    peer.stop()


def check_incompatible(t, args, vm):
    peer = Peer(args.peer, vm.agent_sock, "--versions", "7-9", "--until-refused",
                timeout=3 * WAIT)
    refused = peer.wait_for(lambda l: l.startswith("refused "), WAIT)
    t.ok(refused is not None and "7-9" in refused, "an incompatible host is refused",
         peer.text())
    peer.stop()
    line = "dynmem-guest: host speaks protocol versions 7-9, this agent 1-1: incompatible"
    t.ok(vm.wait_console(line, WAIT), "the agent logs one clear line on the console",
         vm.console_text()[-2000:])
    peer = Peer(args.peer, vm.agent_sock, "--reports", "1", timeout=3 * WAIT)
    t.ok(peer.report(WAIT) is not None, "a compatible host is served again afterwards",
         peer.text())
    peer.stop()


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--guest", "--load", "--peer", "--image-dir", "--source"):
        ap.add_argument(opt, required=True)
    args = ap.parse_args()
    t = Tap()
    why = build_image(args.image_dir, [args.guest, args.load], args.source)
    if why:
        t.skip_all(why)
        return 0
    tmp = tempfile.mkdtemp(prefix="dmq-", dir="/tmp")
    vm = GuestVM(args.image_dir, tmp, mem_mib=256, vmem_mib=512, append=LOAD)
    peer = None
    try:
        peer = Peer(args.peer, vm.agent_sock, timeout=BOOT_TIMEOUT + 6 * WAIT)
        first = check_first_session(t, vm, peer)
        if first:
            check_own_swap(t, vm)
            check_capabilities(t, vm)
            check_psi(t, vm, peer)
            footprint(t, peer, first)
            last_seq = max(parse_fields(l)["seq"] for l in peer.lines
                           if l.startswith("report "))
            peer.stop()
            peer = None
            check_reconnect(t, args, vm, last_seq)
            check_incompatible(t, args, vm)
    finally:
        if peer:
            peer.stop()
        vm.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
