#!/usr/bin/env python3
"""The systemd unit as meson installs it: `systemd-analyze security --offline=true`
rates its exposure at 3.0 or less, and every protection that is off is explained in
a comment of the unit. Skipped where systemd-analyze is missing (Debian: package
systemd, which scripts/deps.sh installs; it works without systemd running).

usage: test_unit_security.py UNIT"""
import re
import shutil
import subprocess
import sys

TARGET = 3.0


def explained(lines, comments, name):
    for i, line in enumerate(lines):
        if line.startswith(name + "="):
            j = i - 1
            while j >= 0 and lines[j] and not lines[j].startswith("#"):
                j -= 1  # settings grouped under one comment
            return j >= 0 and lines[j].startswith("#")
    return name + "=" in comments


def main():
    unit = sys.argv[1]
    if not shutil.which("systemd-analyze"):
        print("1..0 # SKIP systemd-analyze is missing (Debian package systemd)")
        return 0
    print("1..2", flush=True)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                       capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    if not m:
        print("not ok 1 - exposure rated")
        for line in (r.stdout + r.stderr).splitlines():
            print(f"# {line}")
        return 1
    level = float(m.group(1))
    print(f"# exposure {level} (target <= {TARGET})")
    print(f"{'ok' if level <= TARGET else 'not ok'} 1 - exposure {level} <= {TARGET}")
    # Each setting rated as a risk ("✗ Setting=") is explained: set, with a comment
    # right above it (or above the settings grouped with it); not set, named in one.
    lines = open(unit).read().splitlines()
    comments = "\n".join(line for line in lines if line.startswith("#"))
    missing = []
    for line in r.stdout.splitlines():
        m = re.match(r"✗ (\S+?)=", line)
        if m and not any(explained(lines, comments, n) for n in m.group(1).split("/") if n):
            missing.append(m.group(1))
    print(f"{'ok' if not missing else 'not ok'} 2 - every protection left off is explained")
    for name in missing:
        print(f"# no comment for {name}=")
    return 0 if level <= TARGET and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
