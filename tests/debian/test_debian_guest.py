#!/usr/bin/env python3
"""An ordinary guest under dynmemd's QEMU backend: Debian 12 booted by systemd
from guest/debian/build.sh's image (profile base), dynmem-guest installed as a
service, nothing on the kernel command line about memory hotplug. One guest,
two boots, checked through qemu-guest-agent (Debian's package in the guest):

- the agent came up as a systemd service (its cgroup is the unit's, systemd
  never restarted it) and the host heard it with every capability;
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

Prints TAP; skips when the image cannot be built here (not root, no
debootstrap or QEMU, Debian's archive unreachable).

usage: test_debian_guest.py [--reboot] DYNMEMD DYNMEM   (env: DYNMEM_SOURCE_ROOT,
       DYNMEM_DEBIAN_IMAGE_DIR, DYNMEM_DEBIAN_AGENT: the agent binary or .deb)
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from debianlib import Guest, build_image, cannot_build_reason, overlay, qga_socket, vm_section  # noqa: E402
from dynmemtest import (MIB, Failure, QemuDaemon, Tap, check, comment, main, mib, skip_all,  # noqa: E402
                        wait_for)
from qga import QgaError  # noqa: E402

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
NAME = "deb"
STARTUP = 512 * MIB
MAXIMUM = 1536 * MIB
BUFFER = 20
FILL_STEPS = 36  # x 16 MiB = 576 MiB of tmpfs, one step a second
BOOT_TIMEOUT = 420  # systemd boot under TCG on two shared, busy cores

SIZES = f"""dynamic = yes
startup = 512M
minimum = 512M
maximum = 1536M
buffer = {BUFFER}
cpus = 2
accel = auto"""


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
        f.write(vm_section(NAME, image, disk, qpath, SIZES))
    d.start()
    return {"d": d, "g": Guest(qpath), "t0": time.monotonic()}


def teardown(ctx):
    ctx["d"].finish()


def wait_qga(ctx, what, timeout=BOOT_TIMEOUT):
    g = ctx["g"]
    check(g.qga.wait_up(timeout), f"qemu-guest-agent to answer ({what})", ctx["d"].log()[-2000:],
          ctx["d"].console(NAME)[-3000:])


def try_sh(g, script):
    """stdout of script, or "" while the guest does not answer."""
    try:
        return g.sh(script)
    except (OSError, QgaError):
        return ""


def ready_lines(d):
    return [line for line in d.log().splitlines() if "guest agent" in line and " ready:" in line]


@tap.case
def the_guest_boots_with_systemd(ctx):
    d, g = ctx["d"], ctx["g"]
    wait_qga(ctx, "first boot")
    state = wait_for(lambda: (lambda s: s if s in ("running", "degraded") else None)(
        try_sh(g, "systemctl is-system-running || true").strip()),
        "systemd to finish booting", timeout=BOOT_TIMEOUT, interval=2)
    ctx["memtotal0"] = g.meminfo("MemTotal")
    ctx["boot0"] = g.boot_id()
    comment(f"systemd {state} {time.monotonic() - ctx['t0']:.0f} s after dynmemd started; "
            f"MemTotal {mib(ctx['memtotal0'])}")
    failed = g.sh("systemctl --failed --no-legend --plain | cut -d' ' -f1").split()
    check(not failed, "no unit failed", failed)
    check(d.vm(NAME)["assigned_bytes"] == STARTUP, "it starts with its startup size", d.vm(NAME))


@tap.case
def the_agent_runs_as_a_systemd_service(ctx):
    d, g = ctx["d"], ctx["g"]
    check(g.sh("systemctl is-enabled dynmem-guest").strip() == "enabled", "the unit is enabled")
    check(g.sh("systemctl is-active dynmem-guest || true").strip() == "active",
          "the unit is active", g.sh("systemctl status dynmem-guest --no-pager || true"))
    pid = g.sh("systemctl show -p MainPID --value dynmem-guest").strip()
    check(g.sh(f"readlink /proc/{pid}/exe").strip() == "/usr/sbin/dynmem-guest",
          "its main process is the agent")
    cgroup = g.sh(f"cat /proc/{pid}/cgroup")
    check("/system.slice/dynmem-guest.service" in cgroup, "it runs in the unit's cgroup", cgroup)
    check(g.sh("systemctl show -p NRestarts --value dynmem-guest").strip() == "0",
          "systemd never had to restart it")
    v = wait_for(lambda: (lambda v: v if v["demand_bytes"] else None)(d.vm(NAME)),
                 "the host to have the agent's demand", timeout=120, interval=1)
    comment(f"demand {mib(v['demand_bytes'])}, guest MemTotal {mib(v['guest_visible_bytes'])}")
    # Capabilities are read again at every handshake: the last one must show the
    # devices, although the agent started before udev had loaded their drivers.
    caps = wait_for(lambda: (lambda r: r and all(c in r[-1] for c in ("balloon", "virtio-mem"))
                             and r[-1])(ready_lines(d)),
                    "a handshake with the balloon and virtio-mem among the capabilities",
                    timeout=60, interval=1)
    comment(caps.split("dynmemd: ")[-1])
    check("online-movable" in caps and "psi" in caps, "PSI and onlining too", caps)


@tap.case
def nothing_but_the_agent_onlines_memory(ctx):
    g = ctx["g"]
    cmdline = g.sh("cat /proc/cmdline")
    check("memhp" not in cmdline and "memory_hotplug" not in cmdline,
          "nothing about hotplug on the kernel command line", cmdline)
    check(g.sh("cat /sys/devices/system/memory/auto_online_blocks").strip() == "offline",
          "the kernel leaves hot-added memory offline")
    rules = g.sh("grep -ls 'SUBSYSTEM==\"memory\"' /lib/udev/rules.d/* /etc/udev/rules.d/* "
                 "| xargs -r grep -l state || true").split()
    check(not rules, "no udev rule onlines memory", rules)


def fill(g, steps, first=1):
    """Start filling a tmpfs with 16 MiB files, one a second (in the background)."""
    g.sh("mkdir -p /mnt/fill && (mountpoint -q /mnt/fill || "
         "mount -t tmpfs -o size=1200m,mode=700 fill /mnt/fill)")
    g.qga.spawn(["/bin/sh", "-c", f"i={first}; while [ $i -lt {first + steps} ]; do "
                 "dd if=/dev/zero of=/mnt/fill/f$i bs=1M count=16 status=none; "
                 "i=$((i + 1)); sleep 1; done"])


@tap.case
def a_rising_load_gets_memory_hot_added_and_online(ctx):
    d, g = ctx["d"], ctx["g"]
    ooms = g.vmstat("oom_kill")
    t = time.monotonic()
    fill(g, FILL_STEPS)
    want = FILL_STEPS * 16 * MIB
    wait_for(lambda: int(try_sh(g, "du -sm /mnt/fill | cut -f1") or 0) * MIB >= want,
             "the guest to hold its load", timeout=300, interval=2)

    def grown():
        v = d.vm(NAME)
        return v if v["assigned_bytes"] >= STARTUP + 256 * MIB and \
            v["guest_visible_bytes"] >= ctx["memtotal0"] + 256 * MIB else None
    v = wait_for(grown, "assigned memory and the guest's MemTotal to grow", timeout=180,
                 interval=1)
    comment(f"assigned {mib(v['assigned_bytes'])}, guest MemTotal "
            f"{mib(v['guest_visible_bytes'])} {time.monotonic() - t:.0f} s after the fill began")
    blocks = g.memory_blocks()
    hot = [b for b in blocks if b[2] != "-" and "Movable" in b[2]]
    offline = [b for b in blocks if b[1] != "online"]
    check(not offline, "every memory block is online", offline)
    check(len(hot) * 128 * MIB >= 256 * MIB, "the hot-added blocks are movable (unpluggable)",
          blocks)
    journal = g.sh("journalctl -b -u dynmem-guest --no-pager -o cat")
    check("memory blocks online" in journal, "the agent brought them online", journal[-1500:])
    check(g.vmstat("oom_kill") == ooms, "no OOM kill in the guest")
    check(v["assigned_bytes"] <= MAXIMUM, "never above its maximum", v)
    ctx["grown"] = v["assigned_bytes"]


@tap.case
def half_the_load_freed_gives_memory_back(ctx):
    d, g = ctx["d"], ctx["g"]
    g.sh("rm -f " + " ".join(f"/mnt/fill/f{i}" for i in range(1, FILL_STEPS // 2 + 1)))
    t = time.monotonic()
    before = d.vm(NAME)["guest_visible_bytes"]
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] <= ctx["grown"] - 128 * MIB
                          and v["guest_visible_bytes"] < before else None)(d.vm(NAME)),
                 "memory to be unplugged", timeout=180, interval=1)
    comment(f"assigned {mib(v['assigned_bytes'])}, guest MemTotal "
            f"{mib(v['guest_visible_bytes'])} {time.monotonic() - t:.0f} s after the load fell")
    check(v["assigned_bytes"] > STARTUP, "still above its startup size (half the load held)", v)
    ctx["before_reboot"] = v["assigned_bytes"]


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
    # reboot may grow it again. Watch it for 20 s of the agent's reports.
    end = time.monotonic() + 20
    while time.monotonic() < end:
        v = d.vm(NAME)
        check(v["assigned_bytes"] == STARTUP and v["target_bytes"] == STARTUP,
              "an idle guest stays at its startup size after the reboot", v)
        time.sleep(1)
    comment(f"demand {mib(v['demand_bytes'] or 0)} after the reboot")


if REBOOT:
    tap.case(after_a_reboot_it_starts_at_its_startup_size)

if __name__ == "__main__":
    main(tap, setup, teardown)
