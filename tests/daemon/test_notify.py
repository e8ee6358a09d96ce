#!/usr/bin/env python3
"""dynmemd under systemd's Type=notify, with a notification socket of our own (the
documented protocol: datagrams to $NOTIFY_SOCKET): READY=1 comes once the control
socket answers and the state file's VMs are there; WATCHDOG=1 comes from the
balancing cycle, often enough for WATCHDOG_USEC and never more often than cycles
run and none while it stops; a cycle too slow for the watchdog is warned about;
SIGTERM sends STOPPING=1."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Daemon, Tap, check, main, read_line, request, sim_host,  # noqa: E402
                        static_vm, wait_for)

tap = Tap()

CONFIG = sim_host("8G") + static_vm("web1", "1G", "small.csv", autostart=True)


class Notified:
    """A notification socket and a dynmemd told about it."""

    def __init__(self, bins, config, watchdog_usec):
        self.d = Daemon(bins, config)
        self.path = os.path.join(self.d.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.watchdog_usec = watchdog_usec
        self.messages = []  # (time received, text)

    def start(self):
        os.environ["NOTIFY_SOCKET"] = self.path
        os.environ["WATCHDOG_USEC"] = str(self.watchdog_usec)
        try:
            self.d.start(expect_ready=False)
        finally:
            del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
        return self

    def receive(self, timeout):
        """Every datagram within timeout seconds."""
        self.sock.settimeout(0.05)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, text, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, m in self.messages:
                if text in m.split("\n"):
                    return t
            self.receive(0.1)
        raise AssertionError(f"no {text} in {self.messages!r}\n{self.d.log()}")

    def close(self):
        self.d.stop()
        self.d.cleanup()
        self.sock.close()


def stopped(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


def list_now(d):
    """One list request, at once (no retry)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(d.socket)
    s.sendall(request("list"))
    reply = read_line(s)
    s.close()
    return reply


@tap.case
def ready_once_the_socket_answers_and_the_state_is_loaded(bins):
    first = Daemon(bins, CONFIG).start()  # leaves a created VM in the state file
    first.ok("create", "made1", "--startup", "512M", "-o", "trace=" + os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "data", "small.csv"))
    state_dir = first.state_dir
    first.stop()
    n = Notified(bins, CONFIG, 2_000_000)
    n.d.state_dir = state_dir
    n.d.write_config(CONFIG)
    try:
        n.start()
        n.wait_for("READY=1")
        # Ready means serving: the socket answers now, with the state file's VMs.
        reply = list_now(n.d)
        names = [v["name"] for v in reply["vms"]]
        check("made1" in names and "web1" in names, "the VMs are there at READY", reply)
        ready = [m for _, m in n.messages if "READY=1" in m]
        check(len(ready) == 1 and "STATUS=balancing 2 VMs" in ready[0], "one READY", ready)
    finally:
        n.close()
        first.cleanup()


@tap.case
def the_watchdog_is_fed_by_the_cycle(bins):
    n = Notified(bins, CONFIG, 1_000_000)  # 1 s: a ping at least every 250 ms is due
    try:
        n.start()
        n.wait_for("READY=1")
        before = n.d.json("status")
        n.messages.clear()
        # 3 s, and on until three pings however long a loaded machine takes (60 s at most).
        start = time.monotonic()
        pinged = lambda: [t for t, m in n.messages if m == "WATCHDOG=1"]
        while ((len(pinged()) < 3 or time.monotonic() - start < 3) and
               time.monotonic() - start < 60):
            n.receive(0.1)
        took = time.monotonic() - start
        after = n.d.json("status")
        pings = pinged()
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        cycles = after["cycles"] - before["cycles"]
        print(f"# {len(pings)} pings in {took:.1f} s, {cycles} cycles; longest gap "
              f"{max(gaps, default=0) * 1000:.0f} ms", flush=True)
        # Counts, not timings: pings while it cycles, never more than one a quarter
        # of the watchdog's second (the rate limit), each from a cycle.
        check(len(pings) >= 3, "pings while the loop cycles", pings)
        check(len(pings) <= took / 0.25 + 1, "at most one a quarter of the period", len(pings),
              took)
        check(len(pings) <= cycles, "each ping from a cycle", len(pings), cycles)
        # A loop that stops cycling stops pinging.
        os.kill(n.d.proc.pid, 19)  # SIGSTOP
        wait_for(lambda: stopped(n.d.proc.pid), "dynmemd to be stopped")
        n.receive(0.2)  # what it sent before it stopped
        n.messages.clear()
        n.receive(1.0)
        os.kill(n.d.proc.pid, 18)  # SIGCONT
        check(not n.messages, "pings while stopped", n.messages)
        n.wait_for("WATCHDOG=1")
        n.d.stop()
        n.receive(0.5)
        check(any("STOPPING=1" in m for _, m in n.messages), "STOPPING=1", n.messages)
    finally:
        n.close()


@tap.case
def an_interval_the_watchdog_cannot_wait_for_is_warned_about(bins):
    n = Notified(bins, CONFIG.replace("interval = 100ms", "interval = 1s"), 1_000_000)
    try:
        n.start()
        n.wait_for("READY=1")
        said = (f"{n.d.conf}:{n.d.conf_line('interval = 1s')}: warning: [host] interval 1s "
                "is more than half the watchdog's ")
        wait_for(lambda: said in n.d.log(), "the warning, at the line of interval")
    finally:
        n.close()
    # interval left at its default, 1 s: the file alone
    n = Notified(bins, CONFIG.replace("interval = 100ms\n", ""), 1_000_000)
    try:
        n.start()
        n.wait_for("READY=1")
        said = f"{n.d.conf}: warning: [host] interval 1s is more than half the watchdog's "
        wait_for(lambda: said in n.d.log(), "the warning, without a line")
    finally:
        n.close()


if __name__ == "__main__":
    main(tap)
