#!/usr/bin/env python3
"""The systemd unit and the system users as `meson install` puts them (into a
temporary DESTDIR, tag systemd): `systemd-analyze security --offline=true` rates the
installed unit's exposure at 3.0 or less; every protection it rates as off is
explained in a comment of the unit; those docs/security.md names are on; the installed sysusers.d file creates users
dynmem and dynmem-qemu (in group kvm), neither root nor in group root. Cases that
need systemd-analyze or systemd-sysusers (Debian package systemd, which
scripts/deps.sh installs; neither needs systemd running) are skipped without them.

usage: test_unit_security.py DYNMEMD DYNMEM (with DYNMEM_BUILD_ROOT in the environment)
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Skip, Tap, check, comment, main, need_root, skip_all  # noqa: E402

tap = Tap()

TARGET = 3.0


def installed(ctx, pattern):
    found = glob.glob(os.path.join(ctx["destdir"], "**", pattern), recursive=True)
    check(len(found) == 1, f"one installed {pattern}", found)
    return found[0]


@tap.case
def meson_installs_the_unit_and_the_users(ctx):
    unit = installed(ctx, "dynmemd.service")
    check(re.search(r"/lib/systemd/system/dynmemd\.service$", unit), "in systemd's folder", unit)
    users = installed(ctx, "dynmem.conf")
    check(re.search(r"/lib/sysusers\.d/dynmem\.conf$", users), "in sysusers.d", users)
    text = open(unit).read()
    check(not re.search(r"@[A-Z_]+@", text), "every @VARIABLE@ substituted", text)
    for line in ("User=dynmem", "Type=notify", "KillMode=process", "NoNewPrivileges=yes"):
        check(line in text.splitlines(), f"the unit says {line}")


def analyze(ctx):
    if not shutil.which("systemd-analyze"):
        raise Skip("systemd-analyze is missing (Debian package systemd)")
    if "analysis" not in ctx:
        unit = installed(ctx, "dynmemd.service")
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                           capture_output=True, text=True, timeout=120)
        ctx["analysis"] = r.stdout + r.stderr
    return ctx["analysis"]


@tap.case
def the_installed_unit_is_rated_3_or_less(ctx):
    out = analyze(ctx)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    check(m, "an exposure level", out)
    level = float(m.group(1))
    comment(f"exposure {level} (target <= {TARGET})")
    check(level <= TARGET, f"exposure {level} above {TARGET}", out)


def explained(lines, comments, name):
    """Set under a comment (or among settings grouped under one), or named in one."""
    for i, line in enumerate(lines):
        if line.startswith(name + "="):
            j = i - 1
            while j >= 0 and lines[j] and not lines[j].startswith("#"):
                j -= 1
            return j >= 0 and lines[j].startswith("#")
    return name + "=" in comments


@tap.case
def every_protection_left_off_is_explained(ctx):
    out = analyze(ctx)
    lines = open(installed(ctx, "dynmemd.service")).read().splitlines()
    comments = "\n".join(line for line in lines if line.startswith("#"))
    off = [m.group(1) for m in re.finditer(r"^✗ (\S+?)=", out, re.M)]
    check(off, "systemd-analyze rated some settings as off (its format changed?)", out)
    missing = [s for s in off
               if not any(explained(lines, comments, n) for n in s.split("/") if n)]
    comment(f"{len(off)} settings rated off")
    check(not missing, "no comment in the unit for " + ", ".join(missing))


# What docs/security.md says the unit takes away, as systemd-analyze reads the unit.
CLAIMED_ON = ["SystemCallFilter=~@debug", "SystemCallFilter=~@mount",
              "SystemCallFilter=~@module", "SystemCallFilter=~@raw-io", "ProtectHome=",
              "PrivateTmp=", "NoNewPrivileges=", "CapabilityBoundingSet=~CAP_SYS_PTRACE"]


@tap.case
def the_protections_the_docs_name_are_on(ctx):
    out = analyze(ctx)
    rated = {m.group(2): m.group(1) for m in re.finditer(r"^([✓✗]) (\S+)", out, re.M)}
    for name in CLAIMED_ON:
        check(rated.get(name) == "✓", f"{name} on", rated.get(name))
    check(re.search(r"^✓ ProtectSystem=.*strict read-only", out, re.M), "ProtectSystem=strict")
    check(re.search(r"^✓ User=/DynamicUser=.*non-root", out, re.M), "a non-root user")
    lines = open(installed(ctx, "dynmemd.service")).read().splitlines()
    check(any(line.startswith("SystemCallFilter=~") and "process_vm_readv" in line
              and "process_vm_writev" in line for line in lines),
          "process_vm_readv and process_vm_writev denied")
    check("AmbientCapabilities=CAP_SETUID CAP_SETGID" in lines
          and "CapabilityBoundingSet=CAP_SETUID CAP_SETGID" in lines,
          "CAP_SETUID and CAP_SETGID, nothing else")


@tap.case
def the_installed_sysusers_file_creates_both_users(ctx):
    need_root()
    if not shutil.which("systemd-sysusers"):
        raise Skip("systemd-sysusers is missing (Debian package systemd)")
    root = os.path.join(ctx["tmp"], "root")
    os.makedirs(os.path.join(root, "etc"))
    r = subprocess.run(["systemd-sysusers", "--root=" + root, installed(ctx, "dynmem.conf")],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "systemd-sysusers", r.stdout, r.stderr)
    passwd = {f[0]: f for f in (line.split(":") for line in open(os.path.join(root, "etc",
                                                                               "passwd")))}
    group = {f[0]: f for f in (line.rstrip("\n").split(":")
                               for line in open(os.path.join(root, "etc", "group")))}
    for user in ("dynmem", "dynmem-qemu"):
        check(user in passwd, f"user {user}", passwd)
        check(passwd[user][2] != "0" and passwd[user][3] != "0", f"{user} is not root",
              passwd[user])
        check(passwd[user][6].strip().endswith("nologin"), f"{user} has no shell", passwd[user])
    check("dynmem-qemu" in group["kvm"][3].split(","), "dynmem-qemu in group kvm", group)
    check("root" not in group or not group["root"][3], "nobody added to group root", group)


def setup(bins):
    build = os.environ.get("DYNMEM_BUILD_ROOT")
    if not build:
        skip_all("DYNMEM_BUILD_ROOT is not set (meson test sets it)")
    tmp = tempfile.mkdtemp(prefix="dynmem-unit-")
    destdir = os.path.join(tmp, "dest")
    r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--quiet",
                        "--tags", "systemd", "--destdir", destdir],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        shutil.rmtree(tmp)
        print("1..1\nnot ok 1 - meson install")
        comment(r.stdout + r.stderr)
        sys.exit(1)
    return {"tmp": tmp, "destdir": destdir}


def teardown(ctx):
    shutil.rmtree(ctx["tmp"], ignore_errors=True)


if __name__ == "__main__":
    main(tap, setup, teardown)
