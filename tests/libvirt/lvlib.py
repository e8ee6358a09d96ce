"""lvlib: what the libvirt end-to-end tests share, on top of lvhost.py (an
isolated libvirtd) and tests/dynmemtest.py (dynmemd, the CLI, the guest
images, the sampler of invariants, TAP):

  - LvDaemon: dynmemd with `backend = libvirt`, run inside the host's
    namespaces (as on a real host: it reaches the guests' channel sockets
    under /var/lib/libvirt), driven by the real dynmem command from outside;
  - domain(): the XML of a small TCG domain booting the bundled guest image
    (dynmem-guest and dynmem-load inside) with a load plan on its command
    line, its console in a file the test reads, no USB controller
    (libvirt's default UHCI costs a TCG guest CPU for nothing); acpi=True
    (the benchmark) turns ACPI on: libvirt's default without <acpi/> is
    -no-acpi, the guest then has no HPET or ACPI PM timer, falls back to a
    jiffies clock under TCG and runs its timed load far slower than
    dynmemd's own QEMU guests, which have ACPI. The tests' cases were
    written and timed for the default (their scarcity case has not been
    checked with ACPI on);
  - install_hook(): libvirt's qemu hook (dynmem libvirt-hook) in the host's
    private /etc/libvirt/hooks/qemu.d, its stderr kept in a file;
  - balloon_current(): what libvirt itself says a domain holds.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from dynmemtest import (MIB, WAIT, WRAPPER, Daemon, Failure, Sampler, Skip, Tap,  # noqa: E402,F401
                        check, comment, guest_image, hostile_image, main, mib, skip_all,
                        wait_for, wait_reporting)
from lvhost import LibvirtHost, skip_reason  # noqa: E402,F401

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{image}/vmlinuz</kernel>
    <initrd>{image}/initrd.img</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
{features}  <on_reboot>{on_reboot}</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{emulator}    <controller type='usb' model='none'/>
    <serial type='file'><source path='{console}'/></serial>
{devices}  </devices>
</domain>
"""

HOOK = """#!/bin/bash
# dynmem's admission hook for this test host (docs/libvirt.md shows the installed one);
# its stderr goes to libvirt (which shows it when the start is refused) and to a file
exec {dynmem} --socket {socket} libvirt-hook "$@" 2> >(tee -a {log} >&2)
"""


def check_can_run():
    why = skip_reason()
    if why:
        skip_all(why)


class LvDaemon(Daemon):
    """dynmemd -v with backend libvirt, inside host's namespaces."""

    def __init__(self, bins, host, config):
        super().__init__(bins, "[host]\nbackend = libvirt\n" + config, extra_args=["-v"])
        self.host = host

    def start(self, expect_ready=True):
        args = (["setpriv", "--pdeathsig", "KILL"] + self.host.enter() + WRAPPER +
                [self.dynmemd, "-d", "-f", self.conf] + self.extra_args)
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        if expect_ready:
            wait_for(self._ready, "dynmemd to listen on " + self.socket)
        return self

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def status(self):
        return self.json("status")

    def finish(self, tap, name, t0):
        """Stops dynmemd at a test's end: its exit status and sanitizer reports said,
        and, when the test failed, its log kept outside its temporary folder."""
        rc = self.stop()
        log = self.log()
        if rc != 0 or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
            comment(f"dynmemd exited with {rc} on SIGTERM")
            comment(log[-4000:])
        comment(f"the whole test took {time.monotonic() - t0:.0f} s")
        if tap.failed:
            fd, kept = tempfile.mkstemp(prefix=f"{name}-dynmemd-", suffix=".log")
            with os.fdopen(fd, "w") as f:
                f.write(log)
            comment(f"dynmemd's log: {kept}")


def console_path(host, name):
    return os.path.join(host.root, "out", name + ".console")


def domain(host, name, image, memory=256, plan=None, extra="", console=None, acpi=False,
           on_reboot="destroy", vcpus=1, devices="", emulator=None):
    """The XML of a test domain; plan: dynmem-load's plan (None: no load); console: its
    serial's file (default: in the host's folder, console() reads it); acpi: ACPI and
    the APIC on, as dynmemd's own QEMU guests have them; on_reboot: what a guest reboot
    does (libvirt's <on_reboot>; "restart" keeps the same QEMU); devices: more XML in
    <devices> (a disk, a channel); emulator: the QEMU binary (libvirt's <emulator>;
    None: libvirt's default)."""
    with open(os.path.join(image, "cmdline")) as f:
        cmdline = f.read().strip()
    if plan:
        cmdline += f" dynmem.load={plan}"
    if extra:
        cmdline += " " + extra
    features = "  <features>\n    <acpi/>\n    <apic/>\n  </features>\n" if acpi else ""
    return DOMAIN.format(name=name, memory=memory, image=image, cmdline=cmdline,
                         console=console or console_path(host, name), features=features,
                         on_reboot=on_reboot, vcpus=vcpus, devices=devices,
                         emulator=f"    <emulator>{emulator}</emulator>\n" if emulator else "")


def console(host, name):
    try:
        with open(console_path(host, name), "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def install_hook(host, dynmem, socket):
    """The admission hook; returns the file its stderr goes to."""
    log = os.path.join(host.root, "out", "hook.log")
    path = os.path.join(host.root, "etc", "hooks", "qemu.d", "dynmem")
    with open(path, "w") as f:
        f.write(HOOK.format(dynmem=dynmem, socket=socket, log=log))
    os.chmod(path, 0o755)
    return log


def balloon_current(host, name):
    """libvirt's balloon.current of a running domain, in bytes (virtio-mem included)."""
    out = host.virsh("domstats", "--balloon", name)
    m = re.search(r"balloon\.current=(\d+)", out)
    if not m:
        raise Failure(f"no balloon.current for {name}: {out}")
    return int(m.group(1)) * 1024


def domstate(host, name):
    return host.virsh("domstate", name).strip()


def qemu_pid(host, name):
    """The pid of a running domain's QEMU, read from libvirt's pid file."""
    try:
        with open(host.path(f"/run/libvirt/qemu/{name}.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


__all__ = ["MIB", "WAIT", "Failure", "LvDaemon", "LibvirtHost", "Sampler", "Tap", "balloon_current",
           "check", "check_can_run", "comment", "console", "domain", "domstate", "guest_image",
           "hostile_image", "install_hook", "main", "mib", "qemu_pid", "signal", "wait_for",
           "wait_reporting"]
