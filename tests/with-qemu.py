#!/usr/bin/env python3
"""Run one real-guest test under a chosen QEMU, and say which.

usage: with-qemu.py [--backports DIR] [--mix MIX] -- COMMAND [ARGS...]

Without --backports the test runs with the QEMU in PATH (Debian 12's 7.2).
With it, scripts/qemu-backports.sh provides QEMU from bookworm-backports
(10.0) in DIR (downloaded and unpacked once, then cached), and its wrapper's
folder goes first in PATH, so every `qemu-system-x86_64` the test starts
(through dynmemd's qemu key default, or directly) is that one. When that
QEMU cannot be had, the test is skipped with the reason:
"1..0 # SKIP QEMU 10.0 from bookworm-backports cannot be had: ...", after
"# qemu-under-test: 10.0 unavailable".

The second QEMU's set is shorter, to keep the default suite short: --mix
says what of the test runs under it: "NAME,NAME..." those cases
(DYNMEM_TEST_CASES, read by tests/qemu/qtest.c and tests/dynmemtest.py,
which reports the others as skipped with the reason), "-" nothing (the whole
test is reported as skipped with the reason), "" all of it. With
DYNMEM_TEST_QEMU10=all in the environment every test runs with all its cases.

Before the test's own TAP it prints "# qemu-under-test: VERSION PATH",
which scripts/test-summary.py counts per QEMU version.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHORTER = ("not in the second QEMU's shorter set, which keeps the default suite short "
           "(DYNMEM_TEST_QEMU10=all runs it)")
FETCH = os.path.join(HERE, "..", "scripts", "qemu-backports.sh")
sys.path.insert(0, HERE)
from dynmemtest import qemu_version  # noqa: E402


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    sep = argv.index("--")
    opts, command = argv[:sep], argv[sep + 1:]
    backports = cases = None
    all_only = False
    while opts:
        opt = opts.pop(0)
        if opt == "--backports" and opts:
            backports = opts.pop(0)
        elif opt == "--mix" and opts:
            mix = opts.pop(0)
            all_only = mix == "-"
            cases = mix if mix not in ("", "-") else None
        else:
            print(f"with-qemu.py: unknown option {opt}", file=sys.stderr)
            return 2
    env = dict(os.environ)
    if backports:
        r = subprocess.run([FETCH, backports], capture_output=True, text=True)
        wrapper = (r.stdout.strip().splitlines() or [""])[-1]
        found = qemu_version(wrapper) if r.returncode == 0 and wrapper else None
        if not found or not found.startswith("10."):
            why = (f"its wrapper {wrapper} runs QEMU {found or 'of no known version'}"
                   if r.returncode == 0
                   else (r.stderr.strip().splitlines() or ["no reason given"])[-1])
            # Counted per QEMU all the same: the summary names 10.0 and its skips.
            print(f"# qemu-under-test: 10.0 unavailable\n"
                  f"1..0 # SKIP QEMU 10.0 from bookworm-backports cannot be had: {why}",
                  flush=True)
            return 0
        env["PATH"] = os.path.dirname(wrapper) + os.pathsep + env.get("PATH", "")
    if os.environ.get("DYNMEM_TEST_QEMU10") == "all":
        cases, all_only = None, False
    env.pop("DYNMEM_TEST_CASES", None)
    env.pop("DYNMEM_TEST_CASES_WHY", None)
    if cases:
        env["DYNMEM_TEST_CASES"] = cases
        env["DYNMEM_TEST_CASES_WHY"] = SHORTER
    binary = shutil.which("qemu-system-x86_64", path=env.get("PATH"))
    version = qemu_version(binary) if binary else None
    if version:
        print(f"# qemu-under-test: {version} {binary}", flush=True)
        if cases:
            print(f"# cases under QEMU {version}: {cases.replace(',', ', ')}", flush=True)
    if all_only:
        print(f"1..0 # SKIP {SHORTER}", flush=True)
        return 0
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    sys.exit(main())
