#!/usr/bin/env python3
"""Does scripts/deps.sh install what `dpkg-buildpackage` needs? Every
Build-Depends of debian/control (each alternative's first name, without
version, architecture qualifier or build profile) must be a package that
`scripts/deps.sh --print` lists, one that such a package provides (apt's
Provides: debhelper provides debhelper-compat and dh-sequence-*), or one
dpkg-buildpackage needs anyway (build-essential's). Prints what is missing
and exits 1 (also when it reads no Build-Depends at all), or exits 0.

usage: build_deps_listed.py SOURCE_DIR
"""
import re
import subprocess
import sys


def build_depends(control):
    """The Build-Depends field of the source paragraph, as one string."""
    text = open(control, encoding="utf-8").read().split("\n\n")[0]
    m = re.search(r"^Build-Depends:(.*?)(?=^\S|\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


def names(field):
    """[[alternative names], ...] from a Build-Depends field."""
    out = []
    for dep in field.split(","):
        alts = []
        for alt in dep.split("|"):
            alt = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip()
            if alt:
                alts.append(alt.split(":")[0])
        if alts:
            out.append(alts)
    return out


def provided_by(packages):
    """Every name the packages provide (apt-cache show, candidate versions)."""
    out = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                         capture_output=True, text=True).stdout
    provided = set()
    for m in re.finditer(r"^Provides:(.*)$", out, re.M):
        provided.update(p.split("(")[0].strip() for p in m.group(1).split(","))
    return provided


def main():
    src = sys.argv[1]
    listed = subprocess.run(["sh", f"{src}/scripts/deps.sh", "--print"], capture_output=True,
                            text=True, check=True).stdout.split()
    have = set(listed) | provided_by(listed) | {"build-essential", "dpkg-dev", "make", "gcc"}
    wanted = names(build_depends(f"{src}/debian/control"))
    if not wanted:  # nothing read is not "all covered"
        print("debian/control: no Build-Depends in the source paragraph")
        return 1
    missing = [" | ".join(alts) for alts in wanted if not any(a in have for a in alts)]
    if missing:
        print("scripts/deps.sh misses Build-Depends: " + ", ".join(missing))
        return 1
    print(f"scripts/deps.sh covers all {len(wanted)} Build-Depends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
