#!/usr/bin/env python3
"""The bash completion of dynmem, dynmemd, dynmem-sim, dynmem-tracegen and
dynmem-guest (completion/): each script is sourced in a plain `bash --norc
--noprofile` (no bash-completion package), its function called as bash calls it
with COMP_WORDS, COMP_CWORD and COMP_LINE set, and COMPREPLY checked: commands,
options, the values of the options that take a few words, VM names from a real
dynmemd (simulated VMs, no QEMU). So that the scripts cannot fall behind the
programs: every command of `dynmem --help` is completed, every long option of
each program's --help is in its completion and no other, and each option
offered for a dynmem command is one that command accepts.

usage: test_completion.py DYNMEMD DYNMEM, with DYNMEM_COMPLETION_DIR (the
scripts), DYNMEM_SIM, DYNMEM_TRACEGEN and DYNMEM_GUEST (those programs) set.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Daemon, Tap, check, main, running  # noqa: E402

tap = Tap()
SCRIPTS = os.environ["DYNMEM_COMPLETION_DIR"]
PROGRAMS = {"dynmem-sim": os.environ["DYNMEM_SIM"],
            "dynmem-tracegen": os.environ["DYNMEM_TRACEGEN"],
            "dynmem-guest": os.environ["DYNMEM_GUEST"]}

CONFIG = """
memory = 4G
interval = 100ms

[vm "web1"]
startup = 512M
trace = @DATA@/flat-300m.csv

[vm "web2"]
startup = 512M
trace = @DATA@/flat-300m.csv

[vm "db1"]
startup = 512M
trace = @DATA@/flat-300m.csv
"""

# bash as a completion runs: the script sourced, the function `complete -p` names
# for the program called with the program, the word completed and the one before.
DRIVER = r"""
source "$1" || exit 3
[[ $(complete -p "$2") =~ -F\ ([^ ]+) ]] || exit 4
shift 2
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"${BASH_REMATCH[1]}" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def complete(line, env=None, cwd=None, path=None):
    """COMPREPLY for the command line (its last word is completed; after a trailing
    space, an empty one), as a list; the program's own file from completion/."""
    # bash splits words at COMP_WORDBREAKS' = and : too: --set=b is --set, =, b
    words = [t for w in shlex.split(line) for t in re.split(r"([=:]+)", w) if t]
    words += [""] if line.endswith(" ") else []
    program = words[0]
    e = dict(os.environ, PATH=os.pathsep.join((path or []) + [os.environ["PATH"]]))
    e.update(env or {})
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "driver",
                        os.path.join(SCRIPTS, program), program] + words,
                       capture_output=True, text=True, env=e, cwd=cwd, timeout=60)
    check(r.returncode == 0 and r.stderr == "", f"{line!r}: completed, nothing on stderr", r)
    return [w for w in r.stdout.split("\n") if w]


def help_text(program):
    r = subprocess.run([program, "--help"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"{program} --help", r)
    return r.stdout


def long_options(text):
    return {"--" + o for o in re.findall(r"--([a-z][a-z-]*[a-z])", text)}


def dynmem_commands(dynmem):
    """The commands and whether each takes NAME, as `dynmem --help` lists them."""
    table = help_text(dynmem).split("Commands:\n")[1].split("\n\n")[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^  ([a-z][a-z-]*) +([A-Z_ ]*?) {2,}",
                                                        table, re.M)}


def in_path(bins):
    return [os.path.dirname(bins[1])]


@tap.case
def every_command_of_dynmem_help_is_completed(bins):
    commands = dynmem_commands(bins[1])
    check(len(commands) > 10 and "list" in commands and commands["show"] == "NAME",
          "dynmem --help read", commands)
    got = complete("dynmem ", path=in_path(bins))
    check(sorted(got) == sorted(commands), "the commands after `dynmem `", got, sorted(commands))
    check(complete("dynmem s", path=in_path(bins)) == ["show", "status", "start", "stop", "set"],
          "the commands starting with s")
    check(sorted(complete("dynmem --socket /x ", path=in_path(bins))) == sorted(commands),
          "the commands after an option with its value")
    check(sorted(complete("dynmem help ", path=in_path(bins))) == sorted(commands),
          "the commands after `dynmem help `")
    check(complete("dynmem help set ", path=in_path(bins)) == [], "help takes one COMMAND")
    check(complete("dynmem help --", path=in_path(bins)) == [], "help takes no option")


@tap.case
def options_after_a_command(bins):
    got = complete("dynmem set vm1 --", path=in_path(bins))
    for o in ("--buffer", "--weight", "--lend", "--dynamic", "--autostart", "--reset", "--socket",
              "--json"):
        check(o in got, f"set offers {o}", got)
    check("--force" not in got and "--name" not in got and "--option" not in got,
          "set offers no option of another command", got)
    check(complete("dynmem set vm1 --we", path=in_path(bins)) == ["--weight"], "a prefix")
    check("--name" in complete("dynmem list ", path=in_path(bins)), "list offers --name")
    check(complete("dynmem stop vm1 --f", path=in_path(bins)) == ["--force"], "stop --force")
    check(complete("dynmem --", path=in_path(bins)) ==
          ["--socket", "--json", "--timeout", "--help", "--version"], "before the command")
    check(complete("dynmem create new1 ", path=in_path(bins)) ==
          complete("dynmem create new1 --", path=in_path(bins)), "create: its options after NAME")
    check(complete("dynmem migrate vm1 ", path=in_path(bins)) == [], "migrate: DEST_URI is free")
    check(complete("dynmem set vm1 --startup ", path=in_path(bins)) == [], "a size is free text")


@tap.case
def values_of_the_options_that_take_a_few_words(bins):
    p = in_path(bins)
    for line in ("dynmem set vm1 --lend ", "dynmem set vm1 --dynamic ",
                 "dynmem set vm1 --autostart ", "dynmem enable vm1 --lend "):
        check(complete(line, path=p) == ["on", "off"], f"{line!r}: on off")
    check(complete("dynmem set vm1 --lend o", path=p) == ["on", "off"], "on|off by prefix")
    check("on" not in complete("dynmem create new1 --autostart ", path=p),
          "create's --autostart takes no value")
    check(complete("dynmem counters --set ", path=p) == ["balancer", "vm"], "--set")
    check(complete("dynmem counters --set=b", path=p) == ["balancer"], "--set=VALUE")
    got = complete("dynmem set vm1 --reset ", path=p)
    check({"buffer", "weight", "autostart", "all"} <= set(got), "--reset KEY", got)
    check(complete("dynmem set vm1 --reset buffer,we", path=p) == ["buffer,weight"],
          "--reset KEY,KEY")


@tap.case
def files_for_socket(bins):
    tmp = tempfile.mkdtemp(prefix="dynmem-completion-")
    try:
        open(os.path.join(tmp, "dynmemd.sock"), "w").close()
        os.mkdir(os.path.join(tmp, "run"))
        got = complete("dynmem --socket ", path=in_path(bins), cwd=tmp)
        check(sorted(got) == ["dynmemd.sock", "run"], "--socket: files and folders", got)
        got = complete("dynmem list -s d", path=in_path(bins), cwd=tmp)
        check(got == ["dynmemd.sock"], "-s: the same", got)
    finally:
        shutil.rmtree(tmp)


@tap.case
def vm_names_from_dynmemd(bins):
    p = in_path(bins)
    with running(bins, CONFIG) as d:
        env = {"DYNMEM_SOCKET": d.socket}
        got = complete("dynmem show ", path=p, env=env)
        check(got == ["db1", "web1", "web2"], "every VM after `dynmem show `", got)
        check(complete("dynmem start w", path=p, env=env) == ["web1", "web2"], "by prefix")
        check(complete(f"dynmem --socket {d.socket} set d", path=p) == ["db1"],
              "from the socket on the line")
        check(complete(f"dynmem --socket={d.socket} stop d", path=p) == ["db1"],
              "from --socket=PATH (bash splits it at '=')")
        check(complete(f"dynmem migrate -s {d.socket} d", path=p) == ["db1"],
              "-s after the command")
        check(complete("dynmem counters --vm web", path=p, env=env) == ["web1", "web2"],
              "counters --vm NAME")
        check(complete("dynmem set web1 ", path=p, env=env) ==
              complete("dynmem set web1 --", path=p, env=env), "after NAME: the options")
        check(complete("dynmem create ", path=p, env=env) == [], "create: a new name")
        check(complete("dynmem list ", path=p, env=env) == complete("dynmem list --", path=p),
              "list takes no NAME")
    # No dynmemd: no names, nothing on the terminal (complete() checks stderr).
    d = Daemon(bins, CONFIG)
    try:
        check(complete("dynmem show ", path=p, env={"DYNMEM_SOCKET": d.socket}) == [],
              "no dynmemd, no names")
    finally:
        d.cleanup()


@tap.case
def every_long_option_of_dynmem_help_is_completed(bins):
    p = in_path(bins)
    offered = set(complete("dynmem --", path=p))
    for command in dynmem_commands(bins[1]):
        offered |= set(complete(f"dynmem {command} vm1 vm2 --", path=p))
    helped = long_options(help_text(bins[1]))
    check(offered == helped, "the long options of dynmem --help, no others",
          f"only in --help: {sorted(helped - offered)}",
          f"only completed: {sorted(offered - helped)}")


@tap.case
def every_option_offered_is_one_its_command_takes(bins):
    # The CLI is the judge: an option it does not know is "unknown option".
    p = in_path(bins)
    for command, operands in dynmem_commands(bins[1]).items():
        names = operands.split()
        for option in complete(f"dynmem {command} {' '.join(names)} --", path=p):
            r = subprocess.run([bins[1], "--socket", "/nonexistent", command, *names, option,
                                "x"], capture_output=True, text=True, timeout=30)
            check("unknown option" not in r.stderr, f"dynmem {command} takes {option}", r.stderr)


@tap.case
def dynmem_sim_scenarios_and_policies(bins):
    check(complete("dynmem-sim x.ini --policy ") == ["dynmem", "static", "hyperv"],
          "--policy NAME")
    check(complete("dynmem-sim x.ini -p h") == ["hyperv"], "-p by prefix")
    tmp = tempfile.mkdtemp(prefix="dynmem-completion-")
    try:
        for f in ("article.ini", "trace.csv"):
            open(os.path.join(tmp, f), "w").close()
        os.mkdir(os.path.join(tmp, "scenarios"))
        got = complete("dynmem-sim ", cwd=tmp)
        check(sorted(got) == ["article.ini", "scenarios"], "scenario files and folders", got)
        got = complete("dynmem-sim article.ini --report ", cwd=tmp)
        check(sorted(got) == ["article.ini", "scenarios", "trace.csv"], "--report FILE", got)
    finally:
        shutil.rmtree(tmp)
    check(complete("dynmem-sim x.ini --sweep ") == ["memory="], "--sweep memory=")
    check(complete("dynmem-sim x.ini --sweep memory=") == [], "its range is free text")


@tap.case
def dynmemd_guest_and_tracegen(bins):
    check(complete("dynmemd -g roo") == ["root"], "dynmemd --group: the groups")
    check(complete("dynmem-guest --absorber ") == ["auto", "off", "force"], "--absorber MODE")
    check(complete("dynmem-guest --absorber=f") == ["force"], "--absorber=MODE")
    check(complete("dynmem-tracegen ") ==
          ["diurnal", "batch", "leak", "idle", "warmup", "office"], "tracegen: the shapes")
    check(complete("dynmem-tracegen leak --rate ") == [], "a size is free text")
    check(complete("dynmem-tracegen leak ") == [], "one shape")


@tap.case
def every_long_option_of_each_program_help_is_completed(bins):
    for name, program in {"dynmemd": bins[0], **PROGRAMS}.items():
        helped = long_options(help_text(program))
        offered = set(complete(f"{name} --"))
        check(helped and offered == helped, f"{name}: the long options of --help, no others",
              f"only in --help: {sorted(helped - offered)}",
              f"only completed: {sorted(offered - helped)}")


if __name__ == "__main__":
    main(tap)
