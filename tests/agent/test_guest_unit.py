#!/usr/bin/env python3
"""dynmem-guest's systemd unit (guest/agent/dynmem-guest.service), as
`systemd-analyze security --offline=true` reads it: the agent can open the
devices it needs (no ProtectClock=, PrivateDevices=, DevicePolicy= or
DeviceAllow=: on systemd 245 to 252 ProtectClock= alone implies
DeviceAllow=char-rtc, which closes /dev/vport* and /dev/zram* to the unit),
the clock is still out of its reach (no CAP_SYS_TIME, @clock filtered), the
absorber's swapon and swapoff are not filtered, the capabilities are
CAP_SYS_RESOURCE and CAP_SYS_ADMIN only with no_new_privs (the man page says
which the agent keeps once set up), and a usage error (exit status 2) is
not restarted. Needs systemd-analyze (Debian package
systemd; it need not run); skipped without it. Prints TAP.

usage: test_guest_unit.py UNIT MANPAGE
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Skip, Tap, check, main  # noqa: E402

tap = Tap()


def settings(unit):
    return [line.strip() for line in open(unit) if line.strip() and not line.startswith("#")]


def analyze(ctx):
    if not shutil.which("systemd-analyze"):
        raise Skip("systemd-analyze is missing (Debian package systemd)")
    if "analysis" not in ctx:
        with tempfile.TemporaryDirectory(prefix="dynmem-guest-unit-") as tmp:
            copy = os.path.join(tmp, "dynmem-guest.service")
            shutil.copy(ctx["unit"], copy)
            r = subprocess.run(["systemd-analyze", "security", "--offline=true", copy],
                               capture_output=True, text=True, timeout=120)
        ctx["analysis"] = r.stdout + r.stderr
    return {m.group(2): m.group(1)
            for m in re.finditer(r"^([✓✗]) (\S+)", ctx["analysis"], re.M)}


@tap.case
def the_agents_devices_stay_open(ctx):
    lines = settings(ctx["unit"])
    for name in ("ProtectClock=", "PrivateDevices=", "DevicePolicy=", "DeviceAllow="):
        check(not any(line.startswith(name) and not line.endswith("=no") for line in lines),
              f"no {name}: it would close /dev/vport* and /dev/zram* to the agent",
              [line for line in lines if line.startswith(name)])


@tap.case
def the_clock_is_out_of_reach(ctx):
    rated = analyze(ctx)
    for name in ("SystemCallFilter=~@clock", "CapabilityBoundingSet=~CAP_SYS_TIME",
                 "CapabilityBoundingSet=~CAP_WAKE_ALARM"):
        check(rated.get(name) == "✓", f"{name} on", rated.get(name))


@tap.case
def swapon_and_swapoff_are_allowed(ctx):
    rated = analyze(ctx)
    check(rated.get("SystemCallFilter=~@swap") == "✗", "@swap not filtered (the absorber)",
          rated.get("SystemCallFilter=~@swap"))
    for name in ("@module", "@mount", "@debug", "@raw-io", "@reboot"):
        check(rated.get("SystemCallFilter=~" + name) == "✓", f"{name} filtered",
              rated.get("SystemCallFilter=~" + name))


@tap.case
def two_capabilities_and_the_man_page_names_them(ctx):
    lines = settings(ctx["unit"])
    check("CapabilityBoundingSet=CAP_SYS_RESOURCE CAP_SYS_ADMIN" in lines,
          "CAP_SYS_RESOURCE and CAP_SYS_ADMIN, nothing else")
    check("AmbientCapabilities=" not in "\n".join(lines), "no ambient capabilities")
    check("NoNewPrivileges=yes" in lines,
          "no_new_privs: what the agent drops once set up cannot come back")
    man = open(ctx["man"]).read()
    systemd = man.split(".SH SYSTEMD")[1].split(".SH ")[0]
    check("CAP_SYS_RESOURCE" in systemd and "CAP_SYS_ADMIN" in systemd,
          "the man page's SYSTEMD section names both")
    kept = " ".join(man.split(".SH CAPABILITIES")[-1].split(".SH ")[0].split())
    check(".SH CAPABILITIES" in man and "CAP_SYS_ADMIN while it has an absorber" in kept and
          "CAP_IPC_LOCK when locking its pages needed it" in kept and "no_new_privs" in kept,
          "the man page says what the agent keeps once set up, and why", kept)


@tap.case
def a_usage_error_is_not_restarted(ctx):
    lines = settings(ctx["unit"])
    check("Restart=always" in lines, "the agent is restarted when it dies")
    check("RestartPreventExitStatus=2" in lines,
          "but not after a usage error (exit status 2), which would only print the usage "
          "into the journal every RestartSec=", [l for l in lines if l.startswith("Restart")])
    man = " ".join(open(ctx["man"]).read().split())
    status = man.split(".SH EXIT STATUS")[1].split(".SH")[0]
    check("2 on a usage error" in status and
          "not after a usage error" in man.split(".SH SYSTEMD")[1],
          "the man page says 2 is a usage error and that the unit does not restart it")


def setup(args):
    return {"unit": args[0], "man": args[1]}


if __name__ == "__main__":
    main(tap, setup)
