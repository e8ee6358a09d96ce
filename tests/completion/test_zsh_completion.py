#!/usr/bin/env python3
"""The zsh completion of dynmem, dynmemd, dynmem-sim, dynmem-tracegen and
dynmem-guest (completion/zsh/): each file is found by compinit in a plain
`zsh -f` (no rc file, no framework) and defines its function; a line is then
completed as zsh completes it, in an interactive `zsh -f -i` on a terminal
(a pseudo-terminal), with compadd wrapped to write down every match it is
given. Checked as the bash completion is (test_completion.py): commands,
options, the values of the options that take a few words, files, VM names
from a real dynmemd (simulated VMs, no QEMU). So that the files cannot fall
behind the programs: every command of `dynmem --help` is completed, every long
option of each program's --help is in its completion and no other, and each
option offered for a dynmem command is one that command accepts. Nothing may
go to the standard error (an _arguments spec zsh cannot read says so there).

usage: test_zsh_completion.py DYNMEMD DYNMEM, with DYNMEM_ZSH_COMPLETION_DIR
(the files), DYNMEM_SIM, DYNMEM_TRACEGEN and DYNMEM_GUEST (those programs) set.
"""
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Daemon, Tap, check, main, running, skip_all  # noqa: E402

tap = Tap()
FILES = os.environ["DYNMEM_ZSH_COMPLETION_DIR"]
PROGRAMS = {"dynmem-sim": os.environ["DYNMEM_SIM"],
            "dynmem-tracegen": os.environ["DYNMEM_TRACEGEN"],
            "dynmem-guest": os.environ["DYNMEM_GUEST"]}
NAMES = ("dynmem", "dynmemd", "dynmem-sim", "dynmem-tracegen", "dynmem-guest")
TIMEOUT = 60

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

# Typed at the first prompt of `zsh -f -i`. At the next one, zle-line-init puts
# $ZLINE on the line and completes it (complete-word, as TAB does); the
# wrapped compadd appends the words it is given that match to $ZOUT, then adds
# them as it would have. A closing mark says the completion ran; then exit.
SETUP = r"""
fpath=($ZDIR $fpath)
autoload -Uz compinit && compinit -u -D
unsetopt autolist automenu listambiguous beep
compadd() {
        # -O, -A, -D: _arguments and _describe sorting matches, not adding them
        if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
                builtin compadd "$@"
                return
        fi
        local -a matched
        builtin compadd -O matched "$@"
        (( $#matched )) && print -rl -- $matched >>$ZOUT
        builtin compadd "$@"
}
complete_line() {
        BUFFER=$ZLINE
        CURSOR=$#BUFFER
        zle complete-word
        print -r -- '<<done>>' >>$ZOUT
        BUFFER=' exit'
        zle accept-line
}
zle -N zle-line-init complete_line
"""


def complete(line, env=None, cwd=None, path=None):
    """The matches zsh offers for the command line's last word (after a trailing
    space, an empty one), in the order given and each once."""
    tmp = tempfile.mkdtemp(prefix="dynmem-zsh-")
    try:
        setup, out, err = (os.path.join(tmp, f) for f in ("setup.zsh", "out", "err"))
        with open(setup, "w") as f:
            f.write(SETUP)
        e = dict(os.environ, PATH=os.pathsep.join((path or []) + [os.environ["PATH"]]),
                 ZDIR=FILES, ZLINE=line, ZOUT=out, TERM="xterm")
        e.update(env or {})
        master, slave = pty.openpty()
        with open(err, "w") as errf:
            p = subprocess.Popen(["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=errf,
                                 env=e, cwd=cwd, start_new_session=True)
        os.close(slave)
        screen = b""
        try:
            os.write(master, f"source {setup}\n".encode())
            deadline = time.monotonic() + TIMEOUT
            while p.poll() is None and time.monotonic() < deadline:
                if select.select([master], [], [], 0.5)[0]:
                    try:
                        screen += os.read(master, 65536)
                    except OSError:  # the shell has gone: EIO
                        break
            if p.poll() is None:
                p.kill()
            p.wait()
        finally:
            os.close(master)
        got = open(out).read().split("\n") if os.path.exists(out) else []
        stderr = open(err).read()
        check("<<done>>" in got, f"{line!r}: completed", screen[-2000:], stderr)
        check(stderr == "", f"{line!r}: nothing on stderr", stderr)
        words = got[:got.index("<<done>>")]
        return list(dict.fromkeys(w for w in words if w))
    finally:
        shutil.rmtree(tmp)


def help_text(program):
    r = subprocess.run([program, "--help"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"{program} --help", r)
    return r.stdout


def long_options(text):
    return {"--" + o for o in re.findall(r"--([a-z][a-z-]*[a-z])", text)}


def offered_long_options(line, path=None):
    return {w for w in complete(line, path=path) if w.startswith("--")}


def dynmem_commands(dynmem):
    """The commands and whether each takes NAME, as `dynmem --help` lists them."""
    table = help_text(dynmem).split("Commands:\n")[1].split("\n\n")[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^  ([a-z][a-z-]*) +([A-Z_ ]*?) {2,}",
                                                        table, re.M)}


def in_path(bins):
    return [os.path.dirname(bins[1])]


@tap.case
def each_file_defines_its_completion_function(bins):
    files = sorted(os.listdir(FILES))
    check(files == sorted("_" + n for n in NAMES), "one file per program, _PROGRAM", files)
    for name in NAMES:
        with open(os.path.join(FILES, "_" + name)) as f:
            first = f.readline()
        check(first == f"#compdef {name}\n", f"_{name} begins #compdef {name}", first)
        # compinit reads #compdef; autoload +X loads the function without running it
        r = subprocess.run(["zsh", "-f", "-c", 'fpath=($1 $fpath); autoload -Uz compinit; '
                            'compinit -u -D; f=$_comps[$2]; print -r -- $f; autoload +X $f && '
                            '(( $+functions[$f] )) && print defined', "zsh", FILES, name],
                           capture_output=True, text=True, timeout=TIMEOUT)
        check(r.returncode == 0 and r.stdout == f"_{name}\ndefined\n" and r.stderr == "",
              f"zsh -f: compinit maps {name} to _{name}, which is defined", r)


@tap.case
def every_command_of_dynmem_help_is_completed(bins):
    p = in_path(bins)
    commands = dynmem_commands(bins[1])
    check(len(commands) > 10 and "list" in commands and commands["show"] == "NAME",
          "dynmem --help read", commands)
    got = complete("dynmem ", path=p)
    check(sorted(got) == sorted(commands), "the commands after `dynmem `", got, sorted(commands))
    check(complete("dynmem s", path=p) == ["show", "status", "start", "stop", "set"],
          "the commands starting with s")
    check(sorted(complete("dynmem --socket /x ", path=p)) == sorted(commands),
          "the commands after an option with its value")
    check(sorted(complete("dynmem help ", path=p)) == sorted(commands),
          "the commands after `dynmem help `")
    check(complete("dynmem help set ", path=p) == [], "help takes one COMMAND")
    check(complete("dynmem help --", path=p) == [], "help takes no option")
    check(complete("dynmem libvirt-hook --", path=p) == [], "libvirt-hook: libvirt's arguments")


@tap.case
def options_after_a_command(bins):
    p = in_path(bins)
    got = complete("dynmem set vm1 --", path=p)
    for o in ("--buffer", "--weight", "--lend", "--dynamic", "--autostart", "--reset", "--socket",
              "--json"):
        check(o in got, f"set offers {o}", got)
    check("--force" not in got and "--name" not in got and "--option" not in got,
          "set offers no option of another command", got)
    check(complete("dynmem set vm1 --we", path=p) == ["--weight"], "a prefix")
    check("--name" in complete("dynmem list --", path=p), "list offers --name")
    check(complete("dynmem stop vm1 --f", path=p) == ["--force"], "stop --force")
    check(sorted(complete("dynmem --", path=p)) ==
          sorted(["--socket", "--json", "--timeout", "--help", "--version"]), "before the command")
    check("--version" not in complete("dynmem show vm1 --", path=p), "--version before it only")
    check(complete("dynmem migrate vm1 ", path=p) == [], "migrate: DEST_URI is free")
    check(complete("dynmem set vm1 --startup ", path=p) == [], "a size is free text")
    check(offered_long_options("dynmem frobnicate --", path=p) ==
          {"--socket", "--json", "--timeout", "--help"}, "an unknown command: the common ones")


@tap.case
def values_of_the_options_that_take_a_few_words(bins):
    p = in_path(bins)
    for line in ("dynmem set vm1 --lend ", "dynmem set vm1 --dynamic ",
                 "dynmem set vm1 --autostart ", "dynmem enable vm1 --lend "):
        check(complete(line, path=p) == ["on", "off"], f"{line!r}: on off")
    check(complete("dynmem set vm1 --lend=o", path=p) == ["on", "off"], "--lend=on|off")
    check("on" not in complete("dynmem create new1 --autostart ", path=p),
          "create's --autostart takes no value")
    check(complete("dynmem counters --set ", path=p) == ["balancer", "vm"], "--set")
    check(complete("dynmem counters --set=b", path=p) == ["balancer"], "--set=VALUE")
    got = complete("dynmem set vm1 --reset ", path=p)
    check({"buffer", "weight", "autostart", "all"} <= set(got), "--reset KEY", got)
    check(complete("dynmem set vm1 --reset buffer,we", path=p) == ["weight"],
          "--reset KEY,KEY: the key after the comma")


@tap.case
def files_for_socket_and_scenarios(bins):
    tmp = tempfile.mkdtemp(prefix="dynmem-completion-")
    try:
        open(os.path.join(tmp, "dynmemd.sock"), "w").close()
        os.mkdir(os.path.join(tmp, "run"))
        got = complete("dynmem --socket ", path=in_path(bins), cwd=tmp)
        check(sorted(got) == ["dynmemd.sock", "run"], "--socket: files and folders", got)
        got = complete("dynmem list -s d", path=in_path(bins), cwd=tmp)
        check(got == ["dynmemd.sock"], "-s: the same", got)
        for f in ("article.ini", "trace.csv"):
            open(os.path.join(tmp, f), "w").close()
        got = complete("dynmem-sim ", cwd=tmp)
        check("article.ini" in got and "run" in got and "trace.csv" not in got,
              "dynmem-sim: scenario files (*.ini) and folders", got)
        got = complete("dynmem-sim article.ini --report ", cwd=tmp)
        check({"article.ini", "run", "trace.csv"} <= set(got), "--report FILE", got)
        got = complete("dynmem-guest --root ", cwd=tmp)
        check(got == ["run"], "dynmem-guest --root: folders", got)
    finally:
        shutil.rmtree(tmp)


@tap.case
def vm_names_from_dynmemd(bins):
    p = in_path(bins)
    with running(bins, CONFIG) as d:
        env = {"DYNMEM_SOCKET": d.socket}
        got = complete("dynmem show ", path=p, env=env)
        check(sorted(got) == ["db1", "web1", "web2"], "every VM after `dynmem show `", got)
        check(sorted(complete("dynmem start w", path=p, env=env)) == ["web1", "web2"],
              "by prefix")
        check(complete(f"dynmem --socket {d.socket} set d", path=p) == ["db1"],
              "from the socket on the line")
        check(complete(f"dynmem --socket={d.socket} stop d", path=p) == ["db1"],
              "from --socket=PATH")
        check(complete(f"dynmem migrate -s {d.socket} d", path=p) == ["db1"],
              "-s after the command")
        check(sorted(complete("dynmem counters --vm web", path=p, env=env)) == ["web1", "web2"],
              "counters --vm NAME")
        check(complete("dynmem create ", path=p, env=env) == [], "create: a new name")
        check(not any(w in complete("dynmem list ", path=p, env=env) for w in ("web1", "db1")),
              "list takes no NAME")
        check(complete("dynmem list web1 --", path=p, env=env) == [],
              "nor anything after one that is not its own")
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
    offered = offered_long_options("dynmem --", path=p)
    for command, operands in dynmem_commands(bins[1]).items():
        offered |= offered_long_options(f"dynmem {command} {operands.strip()} --", path=p)
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
        for option in offered_long_options(f"dynmem {command} {' '.join(names)} --", path=p):
            r = subprocess.run([bins[1], "--socket", "/nonexistent", command, *names, option,
                                "x"], capture_output=True, text=True, timeout=30)
            check("unknown option" not in r.stderr, f"dynmem {command} takes {option}", r.stderr)


@tap.case
def values_of_dynmem_sim_dynmemd_guest_and_tracegen(bins):
    check(complete("dynmem-sim x.ini --policy ") == ["dynmem", "static", "hyperv"],
          "--policy NAME")
    check(complete("dynmem-sim x.ini -p h") == ["hyperv"], "-p by prefix")
    check(complete("dynmem-sim x.ini --sweep ") == ["memory="], "--sweep memory=")
    check(complete("dynmem-sim x.ini --sweep memory=") == [], "its range is free text")
    check(complete("dynmem-sim x.ini --slo ") == ["short=", "oom="], "--slo short= oom=")
    check(complete("dynmem-sim x.ini --jobs ") == [], "--jobs N is free text")
    check(complete("dynmemd -g roo") == ["root"], "dynmemd --group: the groups")
    check(complete("dynmem-guest --absorber ") == ["auto", "off", "force"], "--absorber MODE")
    check(complete("dynmem-guest --absorber=f") == ["force"], "--absorber=MODE")
    check(complete("dynmem-tracegen ") ==
          ["diurnal", "batch", "leak", "idle", "warmup", "office"], "tracegen: the shapes")
    check(complete("dynmem-tracegen leak --rate ") == [], "a size is free text")
    check(not {"diurnal", "batch"} & set(complete("dynmem-tracegen leak ")), "one shape")


@tap.case
def every_long_option_of_each_program_help_is_completed(bins):
    for name, program in {"dynmemd": bins[0], **PROGRAMS}.items():
        helped = long_options(help_text(program))
        offered = offered_long_options(f"{name} --")
        check(helped and offered == helped, f"{name}: the long options of --help, no others",
              f"only in --help: {sorted(helped - offered)}",
              f"only completed: {sorted(offered - helped)}")


if __name__ == "__main__":
    if not shutil.which("zsh"):
        skip_all("zsh is not installed (scripts/deps.sh)")
    main(tap)
