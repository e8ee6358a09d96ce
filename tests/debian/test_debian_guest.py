#!/usr/bin/env python3
"""An ordinary guest under dynmemd's QEMU backend: Debian 12 booted by systemd
from guest/debian/build.sh's image (profile base), dynmem-guest installed as a
service, nothing on the kernel command line about memory hotplug. One guest,
two boots, checked through qemu-guest-agent (Debian's package in the guest):

- the agent came up as a systemd service (its cgroup is the unit's, systemd
  never restarted it, its pages are locked in RAM within the unit's sandbox)
  and the host heard it with every capability;
- neither the kernel command line, the kernel's default nor a udev rule
  brings hot-added memory online: only the agent can;
- a rising load (tmpfs filled 16 MiB a second) gets memory hot-added, every
  block comes online, movable, and no process is OOM-killed;
- half the load freed: memory is unplugged while the guest runs;
- with --reboot, a reboot while above the startup size: dynmem asks for the
  startup size, the new boot sees the startup memory only, its agent reports
  again and an idle guest is not grown back. A reboot under TCG here takes one
  to four minutes, so it runs only in the suite debian-slow, when
  DYNMEM_SLOW_TESTS=1 (test-qemu-vm checks the same reset path with the busybox
  image in the default suite, test-balancer the balancer's answer to it).

The whole script costs 6-11 min here (the image from nothing 100-340 s, a
systemd boot under TCG 2-7 min, the load 3 min): the default suite reports it skipped;
DYNMEM_DEBIAN_TESTS=1 (or DYNMEM_SLOW_TESTS=1) runs it.

The cases before the reboot are debiancases.py's, shared with
test_debian_libvirt.py (the same guest as a libvirt domain). Prints TAP; skips when the image cannot be built here (not root, no
debootstrap or QEMU, Debian's archive unreachable).

usage: test_debian_guest.py [--reboot] DYNMEMD DYNMEM   (env: DYNMEM_SOURCE_ROOT,
       DYNMEM_DEBIAN_IMAGE_DIR, DYNMEM_DEBIAN_AGENT: the agent binary or .deb)
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from debiancases import (BOOT_TIMEOUT, CASES, NAME, SETTINGS, STARTUP, ready_lines,  # noqa: E402
                         try_sh)
from debianlib import Guest, build_image, cannot_build_reason, overlay, qga_socket, vm_section  # noqa: E402
from dynmemtest import (WAIT, Failure, QemuDaemon, Tap, check, comment, main, mib,  # noqa: E402
                        skip_all, wait_for)

REBOOT = "--reboot" in sys.argv
if REBOOT:
    sys.argv.remove("--reboot")
    if os.environ.get("DYNMEM_SLOW_TESTS") != "1":
        skip_all("the Debian guest's reboot scenario takes 8-12 min under TCG here: "
                 "DYNMEM_SLOW_TESTS=1 runs it")
elif os.environ.get("DYNMEM_DEBIAN_TESTS") != "1" and os.environ.get("DYNMEM_SLOW_TESTS") != "1":
    skip_all("the Debian guest takes 6-11 min under TCG here (its image from nothing "
             "100-340 s, a systemd boot 2-7 min): DYNMEM_DEBIAN_TESTS=1 runs it")

tap = Tap()
for case in CASES:
    tap.case(case)

def setup(bins):
    source = os.environ.get("DYNMEM_SOURCE_ROOT")
    out = os.environ.get("DYNMEM_DEBIAN_IMAGE_DIR")
    agent = os.environ.get("DYNMEM_DEBIAN_AGENT")
    if not source or not out or not agent:
        skip_all("DYNMEM_SOURCE_ROOT, DYNMEM_DEBIAN_IMAGE_DIR or DYNMEM_DEBIAN_AGENT unset "
                 "(run through meson test)")
    why = cannot_build_reason(source)
    if why:
        skip_all(why)
    try:
        image, took, cached = build_image(source, out, "base", agent, out + ".log")
    except RuntimeError as e:
        print("1..1\nnot ok 1 - the image builds", flush=True)
        comment(e)
        sys.exit(1)
    comment(f"image {'up to date' if cached else 'built'} in {took:.0f} s: {image}")
    d = QemuDaemon(bins, "memory = 3G\ninterval = 1s\n\n[policy]\nshrink_delay = 5s\n", image)
    run_dir = os.path.dirname(d.socket)
    disk = overlay(image, os.path.join(d.dir, NAME + ".qcow2"))
    qpath = qga_socket(run_dir, NAME)
    with open(d.conf, "a") as f:
        f.write(vm_section(NAME, image, disk, qpath, SETTINGS + "\ncpus = 2\naccel = auto"))
    d.start()
    return {"d": d, "g": Guest(qpath), "t0": time.monotonic(), "console": lambda: d.console(NAME)}


def teardown(ctx):
    ctx["d"].finish()


def after_a_reboot_it_starts_at_its_startup_size(ctx):
    d, g = ctx["d"], ctx["g"]
    check(d.vm(NAME)["assigned_bytes"] > STARTUP, "above its startup size before the reboot")
    n_ready = len(ready_lines(d))
    g.qga.call("guest-shutdown", {"mode": "reboot"})
    t = time.monotonic()

    try:
        wait_for(lambda: try_sh(g, "cat /proc/sys/kernel/random/boot_id").strip() not in
                 ("", ctx["boot0"]), "the guest to boot again", timeout=BOOT_TIMEOUT, interval=2)
    except Failure as e:
        raise Failure(f"{e}\n{d.vm(NAME)}\n-- dynmemd --\n{d.log()[-2500:]}\n-- console --\n"
                      f"{d.console(NAME)[-4000:]}")
    comment(f"rebooted; qemu-guest-agent answers {time.monotonic() - t:.0f} s after the request")
    v = d.vm(NAME)
    check(v["target_bytes"] == STARTUP, "dynmem asks for the startup size", v)
    wait_for(lambda: len(ready_lines(d)) > n_ready, "the agent of the new boot to handshake",
             timeout=BOOT_TIMEOUT, interval=1)
    check(g.sh("systemctl is-active dynmem-guest || true").strip() == "active",
          "the agent runs as a service again")
    # As at the first boot, MemTotal is read once the agent runs: the first
    # virtio-mem block is part of the startup size, and only the agent onlines it.
    memtotal = wait_for(lambda: (lambda m: m if m >= ctx["memtotal0"] else None)(
        g.meminfo("MemTotal")), "the first block to come online", timeout=60, interval=1)
    check(memtotal == ctx["memtotal0"], "the new boot sees its startup memory only",
          f"MemTotal {memtotal} now, {ctx['memtotal0']} at the first boot")
    # An idle guest wants less than its startup size: nothing learnt before the
    # reboot may grow it again. Watch it for 20 s of the agent's reports, and on
    # until dynmemd has run 20 cycles (of 1 s) on them, however loaded the machine.
    start, first = time.monotonic(), d.status()["cycles"]
    while True:
        v = d.vm(NAME)
        check(v["assigned_bytes"] == STARTUP and v["target_bytes"] == STARTUP,
              "an idle guest stays at its startup size after the reboot", v)
        if time.monotonic() - start >= 20 and d.status()["cycles"] - first >= 20:
            break
        check(time.monotonic() - start < WAIT, f"dynmemd ran no 20 cycles in {WAIT:.0f} s",
              d.status())
        time.sleep(1)
    check(v["backend"]["signal"] == "agent", "the agent's reports were what it watched", v)
    comment(f"demand {mib(v['demand_bytes'] or 0)} after the reboot")


if REBOOT:
    tap.case(after_a_reboot_it_starts_at_its_startup_size)

if __name__ == "__main__":
    main(tap, setup, teardown)
