#!/usr/bin/env python3
"""dynmem top in a real terminal (tmux): it draws the VMs sorted by pressure,
highest first, redraws, quits on q and on Ctrl-C, and leaves the terminal as
it found it (main screen, echo and line editing back on); --json is refused."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Tap, check, dynamic_vm, editing, main, running, sim_host,  # noqa: E402
                        static_vm, wait_for)


tap = Tap()

CONFIG = (sim_host("8G")
          + dynamic_vm("calm", "small.csv")
          + dynamic_vm("pressed", "high-3g.csv", minimum="1G", maximum="1G")
          + static_vm("zoff", "1G", "small.csv"))


class Tmux:
    """A private tmux server running one command in a window 120 (or width) x 30."""

    def __init__(self, command, env, width=120):
        self.dir = tempfile.mkdtemp(prefix="dynmem-top-")
        self.sock = os.path.join(self.dir, "tmux.sock")
        self.status = os.path.join(self.dir, "status")
        self.stty = os.path.join(self.dir, "stty")
        # after dynmem exits: its status, then the terminal's settings as it left them
        # (the shell outlives a Ctrl-C meant for dynmem)
        script = (f"trap : INT; {command}; echo $? > {self.status}; stty -a > {self.stty}; "
                  "sleep 600")
        self.tmux("new-session", "-d", "-x", str(width), "-y", "30", "sh", "-c", script, env=env)

    def tmux(self, *args, env=None):
        return subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null"] + list(args),
                              capture_output=True, text=True, timeout=60, env=env)

    def screen(self):
        return self.tmux("capture-pane", "-p").stdout

    def alternate(self):
        return self.tmux("display", "-p", "#{alternate_on}").stdout.strip()

    def keys(self, *keys):
        self.tmux("send-keys", *keys)

    def exit_status(self):
        try:
            with open(self.status) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def close(self):
        self.tmux("kill-server")
        shutil.rmtree(self.dir, ignore_errors=True)


def table(screen):
    """The VM names in the order top shows them."""
    lines = screen.splitlines()
    head = [i for i, line in enumerate(lines) if line.startswith("NAME ")]
    if not head:
        return []
    return [line.split()[0] for line in lines[head[0] + 1:] if line.strip()]


def run_top(d, socket=None, width=120, env=None):
    env = dict(os.environ, TERM="xterm-256color", ASAN_OPTIONS=os.environ.get(
        "ASAN_OPTIONS", "") + ":detect_leaks=1", **(env or {}))
    return Tmux(f"{d.dynmem} --socket {socket or d.socket} top", env, width)


def pressed_first(screen):
    names = table(screen)
    return names if names[:1] == ["pressed"] and set(names) == {"pressed", "calm",
                                                                  "zoff"} else None


@tap.case
def it_draws_sorted_by_pressure_and_quits_on_q(bins):
    check(shutil.which("tmux"), "tmux is installed")
    with running(bins, CONFIG) as d:
        wait_for(lambda: (d.vm("pressed")["pressure_percent"] or 0) > 100 and
                 d.vm("calm")["pressure_percent"] is not None, "pressures known")
        t = run_top(d)
        try:
            names = wait_for(lambda: pressed_first(t.screen()), "top to draw the VMs")
            check(names == ["pressed", "calm", "zoff"],
                  "highest pressure first, unknown last", t.screen())
            screen = t.screen()
            check("dynmem top" in screen and "Memory 8 GiB" in screen and "PRESSURE" in screen,
                  "a title, the host line and the table", screen)
            check(t.alternate() == "1", "on the alternate screen")
            first = screen.splitlines()[0]
            wait_for(lambda: t.screen().splitlines()[0] != first, "a redraw (the clock moves)")
            t.keys("x")  # other keys do nothing
            t.keys("q")
            wait_for(lambda: t.exit_status() is not None, "top to quit on q")
            check(t.exit_status() == 0, "exit status 0", t.exit_status())
            wait_for(lambda: os.path.exists(t.stty) and os.path.getsize(t.stty), "stty")
            check(t.alternate() == "0", "back on the main screen")
            with open(t.stty) as f:
                stty = f.read()
            check(" icanon" in stty and " echo " in stty, "line editing and echo are back",
                  stty)
            check("PRESSURE" not in t.screen(), "the table is gone with the alternate screen")
        finally:
            t.close()


@tap.case
def ctrl_c_quits_too(bins):
    with running(bins, CONFIG) as d:
        t = run_top(d)
        try:
            wait_for(lambda: table(t.screen()), "top to draw")
            t.keys("C-c")
            wait_for(lambda: t.exit_status() is not None, "top to quit on Ctrl-C")
            check(t.exit_status() == 0, "exit status 0", t.exit_status())
            wait_for(lambda: os.path.exists(t.stty) and os.path.getsize(t.stty), "stty")
            with open(t.stty) as f:
                stty = f.read()
            check(" icanon" in stty and " echo " in stty, "the terminal is restored", stty)
            check(t.alternate() == "0", "back on the main screen")
        finally:
            t.close()


@tap.case
def it_says_so_when_the_daemon_is_gone(bins):
    with running(bins, CONFIG) as d:
        t = run_top(d)
        try:
            wait_for(lambda: table(t.screen()), "top to draw")
            d.stop()
            wait_for(lambda: "no dynmemd is listening" in t.screen(),
                     "the reason on the screen")
            t.keys("q")
            wait_for(lambda: t.exit_status() == 0, "top to quit")
        finally:
            t.close()


# Two names of 63 characters, the most a VM name may have, alike but for their end.
LONG = [("averyverylongname-of-a-vm-that-takes-its-whole-63-characters-" + n) for n in ("01", "02")]
LONG_CONFIG = CONFIG + "".join(static_vm(name, "512M", "small.csv", autostart=True)
                                for name in LONG)


@tap.case
def a_long_name_is_shortened_with_a_mark_to_fit_the_terminal(bins):
    with running(bins, LONG_CONFIG) as d:
        for locale, mark in (("C.UTF-8", "\u2026"), ("C", "~")):
            t = run_top(d, width=100, env={"LC_ALL": locale})
            try:
                wait_for(lambda: len(table(t.screen())) == 5, "top to draw the VMs")
                lines = t.screen().splitlines()
                head = [line for line in lines if line.startswith("NAME ")][0]
                check(head.rstrip().endswith("WEIGHT"), "every column shows in 100 columns",
                      t.screen())
                names = [line.split()[0] for line in lines if line.startswith("averyv")]
                check(len(names) == 2 and all(mark in n for n in names), "both marked " + mark,
                      t.screen())
                check(names[0] != names[1] and {n[-2:] for n in names} == {"01", "02"},
                      "the names' ends tell them apart", names)
                check(all(len(n) >= 10 for n in names), "10 characters at least", names)
                rows = [line for line in lines if line.startswith("averyv")]
                check(all(line.split()[-1].isdigit() for line in rows), "WEIGHT on every row",
                      t.screen())
                check("calm" in table(t.screen()), "a short name as it is", t.screen())
                t.keys("q")
                wait_for(lambda: t.exit_status() is not None, "top to quit")
            finally:
                t.close()
        listed = d.ok("list").out
        check(all(name in listed for name in LONG), "dynmem list: the whole names", listed)


# Names that the usual cut at 10 characters makes alike: "web-fr…-01" (their ends alike),
# "db-pri…ica" (alike but in their middle), and one that is alike with neither.
ALIKE = ["web-frontend-production-01", "web-frontend-staging-01",
         "db-primary-eu-west-01-replica", "db-primary-us-east-01-replica",
         "averyverylongname-of-a-vm-that-takes-its-whole-63-characters-01"]
ALIKE_CONFIG = CONFIG + "".join(static_vm(name, "512M", "small.csv", autostart=True)
                                for name in ALIKE)


@tap.case
def names_alike_once_shortened_are_told_apart(bins):
    with running(bins, ALIKE_CONFIG) as d:
        for locale, mark in (("C.UTF-8", "\u2026"), ("C", "~")):
            t = run_top(d, width=100, env={"LC_ALL": locale})
            try:
                # One whole frame, read once: a capture taken while top redraws may mix two.
                screen = wait_for(lambda: (lambda s: s if len(table(s)) == 8 and sum(
                    mark in n for n in table(s)) == 5 else None)(t.screen()),
                                  "top to draw the VMs, the long names marked " + mark)
                names = [n for n in table(screen) if n not in ("calm", "pressed", "zoff")]
                check(len(names) == 5 and all(mark in n for n in names), "all marked " + mark,
                      names, screen)
                check(len(set(names)) == 5, "no two alike", names)
                # the column takes what the other columns leave, and they widen with their
                # figures ("warning" in STATUS is wider than its heading), so only the same
                # width for all is certain
                check(len({len(n) for n in names}) == 1 and 7 <= len(names[0]) <= 12,
                      "each cut to the same width, what the other columns leave", names)
                web = sorted(n for n in names if n.startswith("web-"))
                check(len(web) == 2 and {n[-4:] for n in web} == {"n-01", "g-01"},
                      "web-*: more of the end", web)
                db = sorted(n for n in names if n.startswith("db"))
                check(len(db) == 2 and "eu-w" in db[0] and "us-e" in db[1],
                      "db-*: where they differ", db)
                rows = [line for line in screen.splitlines() if line.split()[:1] == [names[0]]]
                check(rows and rows[0].rstrip().split()[-1].isdigit(), "WEIGHT still shows",
                      screen)
                t.keys("q")
                wait_for(lambda: t.exit_status() is not None, "top to quit")
            finally:
                t.close()


@tap.case
def a_warning_line_shows_what_status_warns_of(bins):
    def warnings(request, reply):
        h = reply.get("host")
        if h:
            h.update(state_saved=False, state_error="cannot write /var/lib/dynmem/calm: "
                     "No space left on device", overcommitted=True,
                     overcommit_error="the running VMs' minimums (9 GiB in all) exceed memory",
                     config_warning_count=2,
                     backend_error="libvirt at qemu:///system: Failed to connect socket")
            h["relief"] = {"enabled": True, "short": True, "short_bytes": 512 << 20,
                           "short_for_ms": 90000, "moves": 0, "done": 0, "failed": 0,
                           "no_room": 0}

    with running(bins, CONFIG) as d:
        t = run_top(d)
        try:
            wait_for(lambda: len(table(t.screen())) == 3, "top to draw")
            lines = t.screen().splitlines()
            check(lines[2].strip() == "" and lines[3].startswith("NAME "),
                  "nothing to warn of: a blank line, the table where it was", t.screen())
            t.keys("q")
            wait_for(lambda: t.exit_status() is not None, "top to quit")
        finally:
            t.close()
        with editing(d, warnings) as path:
            t = run_top(d, socket=path, width=140)  # every warning at once: a long line
            try:
                wait_for(lambda: len(table(t.screen())) == 3, "top to draw")
                lines = t.screen().splitlines()
                check(lines[2] == "! backend UNREACHABLE; memory OVERCOMMITTED; state NOT SAVED; "
                      "2 config warnings; "
                      "short of 512 MiB "
                      "for 90s (relief); see dynmem status", "one line of warnings", t.screen())
                check(lines[3].startswith("NAME "), "the table where it was", t.screen())
                t.keys("q")
                wait_for(lambda: t.exit_status() is not None, "top to quit")
            finally:
                t.close()


@tap.case
def it_needs_a_terminal(bins):
    with running(bins, CONFIG) as d:
        r = d.cli("top")
        check(r.rc == 2 and r.out == "" and r.err ==
              "dynmem: top needs a terminal, and its standard output is not one: use dynmem "
              "list (--json for programs) or dynmem counters --interval 1s "
              "(dynmem --help)\n", "a usage error (2) that says what to use instead", r)


@tap.case
def json_is_refused_rather_than_ignored(bins):
    with running(bins, CONFIG) as d:
        said = ("dynmem: top: --json does not apply to the live view; for programs: dynmem list "
                "--json, or dynmem counters --json --interval 1s (dynmem --help)")
        r = d.cli("top", "--json")
        check(r.rc == 2 and r.out == "" and r.err == said + "\n", "without a terminal", r)
        # on a terminal too, instead of drawing the live view
        t = Tmux(f"{d.dynmem} --socket {d.socket} top --json",
                 dict(os.environ, TERM="xterm-256color"), width=200)
        try:
            wait_for(lambda: t.exit_status() is not None, "top --json to exit")
            check(t.exit_status() == 2 and said in t.screen(), "on a terminal", t.screen())
        finally:
            t.close()


if __name__ == "__main__":
    main(tap)
