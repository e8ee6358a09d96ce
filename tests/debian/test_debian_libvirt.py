#!/usr/bin/env python3
"""The ordinary guest as a libvirt domain: Debian 12 from guest/debian/build.sh's
image (profile base, dynmem-guest installed as a service), defined in a real,
isolated libvirtd 9.0 (tests/libvirt/lvhost.py) as an ordinary domain with a
disk and a qemu-guest-agent channel, made dynamic with `dynmem enable` (which
writes the virtio-mem device, the agent's channel, the balloon's statistics and
the settings into its XML), started with virsh, and balanced by dynmemd's
libvirt backend. The checks are debiancases.py's, the same as the QEMU
backend's test_debian_guest.py: the agent came up as a systemd service, nothing
but the agent brings hot-added memory online (nothing on the kernel command
line), a rising load is grown through libvirt and a falling one shrunk; and
libvirt's own figure for the domain follows what dynmemd assigned.

The first run here took 163 s with the image built (load average about 15); a
systemd boot under TCG takes 1-7 min on this machine, the image from nothing
100-340 s (shared with test_debian_guest.py): the default suite reports it skipped; DYNMEM_DEBIAN_TESTS=1 (or DYNMEM_SLOW_TESTS=1) runs it. Skips when
the image cannot be built or libvirtd cannot run here.

usage: test_debian_libvirt.py DYNMEMD DYNMEM   (env: DYNMEM_SOURCE_ROOT,
       DYNMEM_DEBIAN_IMAGE_DIR, DYNMEM_DEBIAN_AGENT: the agent binary or .deb)
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "libvirt"))
from debiancases import CASES, ENABLE_OPTIONS, NAME, STARTUP  # noqa: E402
from debianlib import Guest, build_image, cannot_build_reason, overlay  # noqa: E402
from dynmemtest import Tap, check, comment, main, mib, skip_all, wait_for  # noqa: E402
from lvlib import (LibvirtHost, LvDaemon, balloon_current, check_can_run, console,  # noqa: E402
                   domain)

if os.environ.get("DYNMEM_DEBIAN_TESTS") != "1" and os.environ.get("DYNMEM_SLOW_TESTS") != "1":
    skip_all("the Debian guest as a libvirt domain takes 3-10 min under TCG here (its image "
             "from nothing 100-340 s, a systemd boot 1-7 min): DYNMEM_DEBIAN_TESTS=1 runs it")

tap = Tap()


@tap.prerequisite
def an_ordinary_domain_is_made_dynamic_and_started(ctx):
    d, host = ctx["d"], ctx["host"]
    v = d.vm(NAME)
    check(v["origin"] == "libvirt" and not v["dynamic"], "dynmemd lists the domain, static", v)
    d.ok("enable", NAME, *ENABLE_OPTIONS)
    xml = host.virsh("dumpxml", "--inactive", NAME)
    check("memhp" not in xml and "memory_hotplug" not in xml,
          "nothing about hotplug on the domain's kernel command line", xml)
    for part in ("<memory model='virtio-mem'>", "name='org.dynmem.agent.0'", "<stats period="):
        check(part in xml, f"enable wrote {part} into the domain", xml)
    v = d.vm(NAME)
    check(v["dynamic"] and v["startup_bytes"] == STARTUP, "dynmemd reads its settings", v)
    host.virsh("start", NAME)
    ctx["t0"] = time.monotonic()


for case in CASES:
    tap.case(case)

# What an operator's domain has before dynmem: its disk and qemu-guest-agent's channel.
DEVICES = """    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <channel type='unix'>
      <source mode='bind' path='{qga}'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
"""


def setup(bins):
    source = os.environ.get("DYNMEM_SOURCE_ROOT")
    out = os.environ.get("DYNMEM_DEBIAN_IMAGE_DIR")
    agent = os.environ.get("DYNMEM_DEBIAN_AGENT")
    if not source or not out or not agent:
        skip_all("DYNMEM_SOURCE_ROOT, DYNMEM_DEBIAN_IMAGE_DIR or DYNMEM_DEBIAN_AGENT unset "
                 "(run through meson test)")
    check_can_run()
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
    # cgroups off: the domain's QEMU is scheduled as the test's own processes (niceness
    # included), not in libvirt's /machine group (tests/libvirt/lvhost.py)
    host = LibvirtHost(name="debian", cgroups=False)
    d = LvDaemon(bins, host, "memory = 3G\ninterval = 1s\n\n[policy]\nshrink_delay = 5s\n")
    ctx = {"host": host, "d": d, "t0": time.monotonic(), "console": lambda: console(host, NAME)}
    host.start()
    disk = overlay(image, os.path.join(host.root, "out", NAME + ".qcow2"))
    qpath = os.path.join(host.root, "out", NAME + ".qga")
    host.define(domain(host, NAME, image, memory=STARTUP // (1 << 20), acpi=True, vcpus=2,
                       on_reboot="restart", devices=DEVICES.format(disk=disk, qga=qpath)))
    d.start()
    ctx["g"] = Guest(qpath)
    return ctx


def teardown(ctx):
    d, host = ctx["d"], ctx["host"]
    rc = d.stop()
    log = d.log()
    if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
        comment(f"dynmemd exited with {rc} on SIGTERM")
        comment(log[-4000:])
    comment(f"the whole test took {time.monotonic() - ctx['t0']:.0f} s from the domain's start")
    host.stop()
    d.cleanup()


@tap.case
def libvirt_reports_what_dynmemd_assigned(ctx):
    d, host = ctx["d"], ctx["host"]

    def agree():
        v = d.vm(NAME)
        return v if not v["backend"].get("resizing") and \
            balloon_current(host, NAME) == v["assigned_bytes"] else None
    v = wait_for(agree, "libvirt's balloon.current to match the assigned memory", timeout=60,
                 interval=1)
    comment(f"assigned {mib(v['assigned_bytes'])}, libvirt's balloon.current the same")
    check(v["backend"]["name"] == "libvirt" and v["origin"] == "libvirt",
          "the domain is balanced by the libvirt backend", v)


if __name__ == "__main__":
    main(tap, setup, teardown)
