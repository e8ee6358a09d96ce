#!/usr/bin/env python3
"""The man pages against the programs' --help: each command of `dynmem --help`
is described once in dynmem(1), and every long option a program's --help names
is in its man page and the other way round.

    test_manpages.py SOURCE_ROOT DYNMEM DYNMEM_SIM DYNMEM_TRACEGEN

Prints TAP, one line per case.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Tap  # noqa: E402

ROOT, DYNMEM, SIM, TRACEGEN = (os.path.abspath(a) for a in sys.argv[1:5])
tap = Tap()


def man(name):
    with open(os.path.join(ROOT, "man", name), encoding="utf-8") as f:
        # roff's escaped minus is a plain one here; font changes go.
        return re.sub(r"\\f[BIRP]", "", f.read().replace("\\-", "-"))


def section(text, title):
    m = re.search(rf"^\.SH {title}\n(.*?)(?=^\.SH )", text, re.S | re.M)
    assert m, f"no .SH {title}"
    return m.group(1)


def help_text(program):
    r = subprocess.run([program, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{program} --help: exit {r.returncode}"
    return r.stdout


def long_options(text):
    return set(re.findall(r"--([a-z][a-z-]*[a-z])", text))


def same(what, in_help, in_man):
    missing, extra = sorted(in_help - in_man), sorted(in_man - in_help)
    assert not missing and not extra, \
        f"{what}: only in --help: {missing}; only in the man page: {extra}"


@tap.case
def dynmem_commands_described_once(_):
    helped = re.findall(r"^  ([a-z][a-z-]*) ", help_text(DYNMEM).split("Commands:\n")[1]
                        .split("\n\n")[0], re.M)
    # A command's entry: .TP, then its name (bold) first on the next line.
    entries = re.findall(r"^\.TP\n\.B[IR]? \"?([a-z][a-z-]*)", section(man("dynmem.1"), "COMMANDS"),
                         re.M)
    twice = sorted({c for c in entries if entries.count(c) > 1})
    assert not twice, f"dynmem(1) describes {twice} more than once"
    same("dynmem commands", set(helped), set(entries))


@tap.case
def dynmem_options(_):
    same("dynmem options", long_options(help_text(DYNMEM)), long_options(man("dynmem.1")))


@tap.case
def dynmem_sim_options(_):
    same("dynmem-sim options", long_options(help_text(SIM)), long_options(man("dynmem-sim.1")))


@tap.case
def dynmem_tracegen_options(_):
    same("dynmem-tracegen options", long_options(help_text(TRACEGEN)),
         long_options(man("dynmem-tracegen.1")))


sys.exit(tap.run(None))
