#!/usr/bin/env python3
"""dynmem top in a real terminal (tmux): it draws the VMs sorted by pressure,
highest first, redraws, quits on q and on Ctrl-C, and leaves the terminal as
it found it (main screen, echo and line editing back on)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Tap, check, main, running, wait_for  # noqa: E402


tap = Tap()

CONFIG = """
memory = 8G
interval = 100ms

[sim]
speed = 20

[vm "calm"]
dynamic = yes
startup = 1G
minimum = 512M
maximum = 4G
trace = @DATA@/small.csv
autostart = yes

[vm "pressed"]
dynamic = yes
startup = 1G
minimum = 1G
maximum = 1G
trace = @DATA@/high-3g.csv
autostart = yes

[vm "zoff"]
startup = 1G
trace = @DATA@/small.csv
"""


class Tmux:
    """A private tmux server running one command in an 120x30 window."""

    def __init__(self, command, env):
        self.dir = tempfile.mkdtemp(prefix="dynmem-top-")
        self.sock = os.path.join(self.dir, "tmux.sock")
        self.status = os.path.join(self.dir, "status")
        self.stty = os.path.join(self.dir, "stty")
        # after dynmem exits: its status, then the terminal's settings as it left them
        # (the shell outlives a Ctrl-C meant for dynmem)
        script = (f"trap : INT; {command}; echo $? > {self.status}; stty -a > {self.stty}; "
                  "sleep 600")
        self.tmux("new-session", "-d", "-x", "120", "-y", "30", "sh", "-c", script, env=env)

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


def run_top(d):
    env = dict(os.environ, TERM="xterm-256color", ASAN_OPTIONS=os.environ.get(
        "ASAN_OPTIONS", "") + ":detect_leaks=1")
    return Tmux(f"{d.dynmem} --socket {d.socket} top", env)


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


@tap.case
def it_needs_a_terminal(bins):
    with running(bins, CONFIG) as d:
        for args in (["top"], ["top", "--json"]):
            r = d.cli(*args)
            check(r.rc == 2 and r.out == "" and r.err ==
                  "dynmem: top needs a terminal, and its standard output is not one: use dynmem "
                  "list (--json for programs) or dynmem counters --interval 1s "
                  "(dynmem --help)\n", "a usage error (2) that says what to use instead", args, r)


if __name__ == "__main__":
    main(tap)
