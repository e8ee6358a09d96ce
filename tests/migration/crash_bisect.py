#!/usr/bin/env python3
"""crash_bisect: live-migrate the migration test's guest between two isolated
libvirt hosts (twohost.py) with virsh only, no dynmemd running, and count
guest kernels that crash on the destination. A bisection tool for the crash
in docs/migration.md (Limits), not part of any suite.

The domain is the migration test's "web" (512 MiB startup, 1 GiB maximum,
the same load plan) as `dynmem enable` leaves it: dynmemd runs once on host
A to enable it, its XML is read back (inactive) and dynmemd is stopped
before the domain starts. Then, per run: start, wait for the guest, set up
the memory (--mode), migrate A->B->A... --migrations times, and after each
move watch the console for an oops/panic and for the guest's heartbeat
(dynmem.debug=1 prints a meminfo line every 2 s).

  --mode plain    nothing plugged, balloon at startup
  --mode plug     virtio-mem plugged (virsh update-memory-device --requested-size)
  --mode balloon  plugged, then the balloon inflated (virsh setmem --live)
  --balloon-xml KEY=VALUE  an attribute set on <memballoon> (e.g. freePageReporting=off)
  --cmdline-extra TEXT     appended to the guest's kernel command line
  --emulator PATH          another QEMU for both hosts' domain (<emulator>)
  --acpi                   ACPI and the APIC on (always with --emulator: libvirt 9.0
                           turns ACPI off with -no-acpi, which QEMU 9.0 removed)
  --memory MIB, --maximum MIB  web's boot memory (and minimum) and maximum (512, 1024)

usage (root, from a meson build folder):
  crash_bisect.py BUILD IMAGE_DIR --mode plug --runs 3 --migrations 3
"""
import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from twohost import ADDR_A, ADDR_B, LIBVIRT_PORT, MigrationHost, connect  # noqa: E402
from lvlib import LvDaemon, domain  # noqa: E402

CRASH = ("Kernel panic", "BUG: ", "Oops: ", "general protection fault", "RIP: ")
PLAN = "hold:3s,ramp:420M:12s,hold:3600s"  # the migration test's web


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def enabled_xml(build, a, image, extra, acpi, memory=512, maximum=1024):
    """web's XML after `dynmem enable`, from a dynmemd run once on host A; memory: its
    boot memory and minimum, maximum: its maximum (MiB)."""
    bins = [os.path.join(build, "daemon", "dynmemd"), os.path.join(build, "cli", "dynmem")]
    xml = domain(a, "web", image, memory=memory, plan=PLAN, extra=extra, acpi=acpi)
    xml = re.sub(r"(<serial type='file'><source path='[^']*')/>", r"\1 append='on'/>", xml)
    a.define(xml)
    d = LvDaemon(bins, a, f"memory = {maximum + 512}M\ninterval = 1s\n")
    d.start()
    try:
        d.ok("enable", "web", "--minimum", f"{memory}M", "--maximum", f"{maximum}M", "--weight",
             "5000", "--buffer", "40")
    finally:
        d.stop()
        d.cleanup()
    return a.virsh("dumpxml", "--inactive", "web")


def set_balloon_attrs(xml, attrs):
    for kv in attrs:
        k, v = kv.split("=", 1)
        m = re.search(r"<memballoon [^>]*>", xml)
        tag = m.group(0)
        if f"{k}=" in tag:
            new = re.sub(rf"{k}='[^']*'", f"{k}='{v}'", tag)
        else:
            new = tag[:-1] + f" {k}='{v}'>"
        xml = xml.replace(tag, new)
    return xml


def console(host):
    try:
        with open(os.path.join(host.root, "out", "web.console"), "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def wait(pred, what, timeout, interval=1.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = pred()
        if r:
            return r
        time.sleep(interval)
    raise TimeoutError(what)


def crashed(text):
    return [line for line in text.splitlines() if any(c in line for c in CRASH)]


def qemu_log(host):
    try:
        with open(host.path("/var/log/libvirt/qemu/web.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def heartbeats(text):
    return text.count("dynmem-guest-image: meminfo")


def prepare_memory(host, mode):
    if mode in ("plug", "balloon"):
        host.virsh("update-memory-device", "web", "--requested-size", "256MiB", "--live")
        wait(lambda: re.search(r"<current unit='KiB'>262144</current>",
                               host.virsh("dumpxml", "web")), "256 MiB plugged", 120)
    if mode == "balloon":
        host.virsh("setmem", "web", "384M", "--live")  # the balloon: 128 MiB of the 512 MiB startup
        time.sleep(10)
    log(f"  memory: {host.virsh('domstats', '--balloon', 'web').split()[1:3]}")


def one_run(a, b, xml_path, mode, migrations, settle):
    """Returns (migrations done, crashed after which one or None, lines)."""
    for h in (a, b):
        try:
            os.unlink(os.path.join(h.root, "out", "web.console"))
        except OSError:
            pass
    a.virsh("create", xml_path)
    wait(lambda: "dynmem-guest-image: ready" in console(a), "boot", 400)
    time.sleep(25)  # the load ramps to ~470 MiB (15 s)
    prepare_memory(a, mode)
    src, dst = a, b
    for i in range(1, migrations + 1):
        before = heartbeats(console(a)) + heartbeats(console(b))
        t0 = time.monotonic()
        p = src.run(["virsh", "-c", "qemu:///system", "migrate", "--live", "web", dst.uri()],
                    check=False, timeout=900)
        if p.returncode != 0:
            log(f"  migration {i} failed: {p.stderr.strip()}")
            log("  console: " + " | ".join((console(src) + console(dst)).splitlines()[-8:]))
            log("  QEMU's log: " + " | ".join(qemu_log(src).splitlines()[-4:]))
            return i - 1, None, [p.stderr.strip()]
        log(f"  migration {i} {src.name}->{dst.name} in {time.monotonic() - t0:.1f} s")
        end = time.monotonic() + settle
        while time.monotonic() < end:
            text = console(a) + console(b)
            bad = crashed(text)
            if bad or dst.virsh("domstate", "web", check=False).stdout.strip() != "running":
                time.sleep(3)
                return i, i, crashed(console(a) + console(b)) or ["domain not running"]
            time.sleep(1)
        after = heartbeats(console(a)) + heartbeats(console(b))
        if after <= before:
            return i, i, ["no heartbeat after the migration (guest hung)"]
        src, dst = dst, src
    src.virsh("destroy", "web", check=False)
    return migrations, None, []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("image")
    ap.add_argument("--mode", choices=("plain", "plug", "balloon"), default="plain")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--migrations", type=int, default=3)
    ap.add_argument("--settle", type=int, default=20)
    ap.add_argument("--balloon-xml", action="append", default=[])
    ap.add_argument("--cmdline-extra", default="")
    ap.add_argument("--emulator", help="another QEMU binary for both hosts (implies --acpi: "
                    "libvirt 9.0 turns ACPI off with -no-acpi, which QEMU 9.0 removed)")
    ap.add_argument("--acpi", action="store_true", help="ACPI and the APIC on in the guest")
    ap.add_argument("--memory", type=int, default=512, help="boot memory and minimum, MiB")
    ap.add_argument("--maximum", type=int, default=1024, help="maximum, MiB")
    ap.add_argument("--keep", help="a folder for the consoles of crashed runs")
    args = ap.parse_args()
    a = MigrationHost(name="A", net=True, tcp_port=LIBVIRT_PORT, listen_addr=ADDR_A)
    b = MigrationHost(name="B", net=True, tcp_port=LIBVIRT_PORT, listen_addr=ADDR_B)
    results = []
    try:
        a.create()
        b.create()
        connect(a, b, ADDR_A, ADDR_B)
        a.start()
        b.start()
        extra = ("dynmem.debug=1 " + args.cmdline_extra).strip()
        xml = enabled_xml(args.build, a, args.image, extra, args.acpi or bool(args.emulator),
                          args.memory, args.maximum)
        a.virsh("undefine", "web")
        xml = set_balloon_attrs(xml, args.balloon_xml)
        if args.emulator:
            xml = re.sub(r"<emulator>[^<]*</emulator>", f"<emulator>{args.emulator}</emulator>",
                         xml)
        xml_path = os.path.join(a.root, "out", "web-enabled.xml")
        with open(xml_path, "w") as f:
            f.write(xml)
        log("domain XML: " + " ".join(re.findall(r"<memballoon[^>]*>|<memory model[^>]*>|"
                                               r"<emulator>[^<]*<|<acpi/>|<memory unit[^<]*<|"
                                               r"<size unit[^<]*<", xml)))
        for r in range(1, args.runs + 1):
            log(f"run {r} ({args.mode})")
            done, bad_at, lines = one_run(a, b, xml_path, args.mode, args.migrations, args.settle)
            results.append((done, bad_at))
            log(f"run {r}: {done} migrations, " +
                (f"CRASH after migration {bad_at}: " + " | ".join(lines[:6]) if bad_at else "ok"))
            if bad_at and args.keep:
                os.makedirs(args.keep, exist_ok=True)
                with open(os.path.join(args.keep, f"{args.mode}-run{r}.console"), "w") as f:
                    f.write(console(a) + "\n----- B -----\n" + console(b))
            for h in (a, b):
                h.virsh("destroy", "web", check=False)
    finally:
        a.stop()
        b.stop()
    mig = sum(d for d, _ in results)
    bad = sum(1 for _, x in results if x)
    log(f"SUMMARY mode={args.mode} balloon={args.balloon_xml} runs={len(results)} "
        f"migrations={mig} crashed_runs={bad}")


if __name__ == "__main__":
    main()
