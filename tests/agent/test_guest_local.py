#!/usr/bin/env python3
"""dynmem-guest on this host, against a fake /proc and /sys (--root) and a unix
socket standing in for its virtio-serial port, with agent-peer (lib/agent.c)
as the host side. Checks what the agent reads and reports, the handshake both
ways (including incompatible versions), reconnection, PSI polling where no
trigger can be armed, onlining of offline memory blocks, bad input from the
host, that a missing port does not make it spin, that virtio devices bound
after it started (udev under systemd) are found and announced, and that a
/proc/meminfo without MemTotal stops reports, with one log line, until it is
back, that a second agent on the same guest waits for the first to stop, and
that the agent's pages are locked in RAM. Prints TAP.

usage: test_guest_local.py DYNMEM_GUEST AGENT_PEER
"""
import contextlib
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (MIB, PSI_IDLE, WAIT, Agent, Peer, Tap, make_root, parse_fields,  # noqa: E402
                        write, write_in_place)


def wait_until(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def check_session(t, peer, agent):
    ready = peer.wait_for(lambda l: l.startswith("ready "), 20)
    t.ok(ready is not None, "handshake: the agent answers the host's hello",
         peer.text() + "\n" + agent.text())
    f = parse_fields(ready or "")
    t.ok(f.get("version") == 1 and f.get("caps") == "balloon,virtio-mem,psi,online-movable",
         "hello: version 1 and capabilities (no PSI trigger on a plain file)", ready)
    r = peer.report(WAIT)
    t.ok(r is not None and r["cause"] == "hello", "a report follows the handshake at once",
         peer.text())
    r = r or {}
    want = {"total": 1024 * MIB, "avail": 512 * MIB, "free": 256 * MIB,
            "committed": 2048 * MIB, "balloon": 100 * MIB, "oom_kill": 3,
            "swap": 92160 * 1024}
    got = {k: r.get(k) for k in want}
    t.ok(got == want, "report carries /proc/meminfo and /proc/vmstat in bytes", f"{got}\n{want}")
    t.ok(r.get("demand") == 412 * MIB,
         "demand = MemTotal - MemAvailable - balloon (deflate-on-oom)", r.get("demand"))
    t.ok(r.get("unknown_keys") == 0, "the host parser knows every key the agent sends", r)
    t.ok(0 < r.get("self_rss", 0) < 4 * MIB, "the agent reports its own RSS",
         r.get("self_rss"))
    ticks = [peer.report(WAIT, lambda x: x["cause"] == "tick") for _ in range(3)]
    seqs = [x["seq"] for x in ticks if x]
    t.ok(len(seqs) == 3 and seqs == list(range(seqs[0], seqs[0] + 3)),
         "reports keep coming at the interval, numbered", seqs)
    return seqs[-1] if seqs else 0


def check_onlining(t, root, peer):
    states = lambda: [open(f"{root}/sys/devices/system/memory/memory{i}/state").read().strip()
                      for i in (1, 2)]
    t.ok(wait_until(lambda: states() == ["online_movable"] * 2, WAIT),
         "offline memory blocks are brought online movable", states())
    r = peer.report(WAIT, lambda x: x["onlined"] == 2)
    t.ok(r is not None, "reports count the blocks the agent onlined", peer.text()[-500:])


def check_psi_polling(t, root, peer):
    write_in_place(f"{root}/proc/pressure/memory",
                   "some avg10=5.00 avg60=1.00 avg300=0.20 total=1000\n"
                   "full avg10=1.00 avg60=0.00 avg300=0.00 total=500\n")
    r = peer.report(WAIT, lambda x: x["some_total_us"] == 1000)
    t.ok(r is not None and r["some_avg10_bp"] == 500,
         "PSI figures are reported (avg10 in basis points, total in us)", r)
    time.sleep(0.3)
    # a stall goes on: its total keeps growing, 60 ms of stall every 200 ms
    r, total, deadline = None, 61000, time.monotonic() + WAIT
    while r is None and time.monotonic() < deadline:
        write_in_place(f"{root}/proc/pressure/memory",
                       f"some avg10=9.00 avg60=1.00 avg300=0.20 total={total}\n"
                       "full avg10=1.00 avg60=0.00 avg300=0.00 total=500\n")
        r = peer.report(0.2, lambda x: x["cause"] == "psi")
        total += 60000
    t.ok(r is not None and r["some_total_us"] >= 61000,
         "without a trigger, polling sees the stall and reports at once", peer.text()[-800:])
    write_in_place(f"{root}/proc/pressure/memory", PSI_IDLE)


def check_reconnect(t, peer_exe, port, agent, last_seq):
    peer = Peer(peer_exe, port, "--listen", "--interval", "200", "--reports", "3", timeout=20)
    ready = peer.wait_for(lambda l: l.startswith("ready "), 15)
    r = peer.report(WAIT)
    t.ok(ready is not None and r is not None and r["seq"] > last_seq,
         "after the host side closes and comes back the agent reconnects; seq goes on",
         peer.text() + "\n" + agent.text())
    peer.stop()


def check_incompatible(t, agent, agent_exe, peer_exe, root, port, tmp):
    peer = Peer(peer_exe, port, "--listen", "--versions", "5-9", "--until-refused", timeout=20)
    refused = peer.wait_for(lambda l: l.startswith("refused "), 15)
    # whichever comes first, the agent's announcement or its version=0 answer
    t.ok(refused is not None and "5-9" in refused and "1-1" in refused,
         "a host speaking only 5-9 and an agent speaking 1 refuse each other", peer.text())
    # The host side stays until the agent has read its versions: killed earlier, it can
    # close the connection with the agent's hello unread, and the agent sees a reset instead.
    line = "host speaks protocol versions 5-9, this agent 1-1: incompatible"
    deadline = time.monotonic() + WAIT
    while line not in agent_text(tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    peer.stop()
    t.ok(line in agent_text(tmp), "the agent logs one clear line", agent_text(tmp))

    agent.stop()  # one agent at a time on the port
    newer = Agent(agent_exe, root, tmp, "--versions", "3-4")
    peer = Peer(peer_exe, port, "--listen", "--until-refused", timeout=20)
    refused = peer.wait_for(lambda l: l.startswith("refused "), 15)
    t.ok(refused is not None and "speaks protocol versions 3-4, the host 1-1" in refused,
         "an agent speaking only 3-4 is refused by the host", peer.text())
    t.ok(peer.wait_for(lambda l: l.startswith("report "), 1.5) is None,
         "a refused agent sends no reports", peer.text())
    peer.stop()
    newer.stop()


def agent_text(tmp):
    out = ""
    for name in sorted(os.listdir(tmp)):
        if name.startswith("agent-") and name.endswith(".log"):
            with open(os.path.join(tmp, name), errors="replace") as f:
                out += f.read()
    return out


@contextlib.contextmanager
def raw_host(agent_exe, root, port, tmp):
    """A host side that is a bare socket, and an agent connected to it: (conn, agent).
    The agent is stopped on the way out."""
    if os.path.exists(port):
        os.unlink(port)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(port)
    srv.listen(1)
    srv.settimeout(10)
    agent = Agent(agent_exe, root, tmp)
    try:
        conn, _ = srv.accept()
        conn.settimeout(10)
        with conn:
            yield conn, agent
    finally:
        srv.close()
        agent.stop()


def check_host_junk(t, agent_exe, root, port, tmp):
    """Raw host: junk, an over-long line, then a good hello: the agent still answers."""
    with raw_host(agent_exe, root, port, tmp) as (conn, agent):
        conn.sendall(b"DMG1 hello min=x max=1\nGARBAGE \x00\xff\n" + b"y" * 3000 + b"\n" +
                     b"DMG1 hello min=1 max=1 interval_ms=999999\n")
        data = b""
        end = time.monotonic() + 10
        while b"cause=hello" not in data and time.monotonic() < end:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        lines = data.decode(errors="replace").splitlines()
        hello = [l for l in lines if l.startswith("DMG1 hello") and "version=" in l]
        t.ok(hello and "version=1 interval_ms=60000" in hello[0],
             "after junk and an over-long line a good hello is answered; "
             "the interval is clamped to 60 s", "\n".join(lines))
        t.ok(all(len(l) + 1 <= 1024 for l in lines), "every agent line fits 1024 bytes")
        # A shorter hello after that longer one: the bytes the longer left behind in the
        # agent's line buffer ("99" after "2000") are not read as part of it.
        conn.sendall(b"DMG1 hello min=1 max=1 interval_ms=2000\n")
        data = b""
        end = time.monotonic() + WAIT
        while b"interval_ms=2000" not in data and time.monotonic() < end:
            try:
                chunk = conn.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        t.ok(b"version=1 interval_ms=2000 " in data,
             "a shorter hello after a longer one is answered (read within its own length)",
             data.decode(errors="replace") + agent.text())
        time.sleep(0.3)
    t.ok("ignored a malformed line from the host" in agent.text(), "junk is logged",
         agent.text())


def check_log_flood(t, agent_exe, root, port, tmp):
    """A host sending 200 junk lines at once gets a burst of them into the guest's log,
    not all; once the rate allows, the next line says how many were left out."""
    with raw_host(agent_exe, root, port, tmp) as (conn, agent):
        conn.sendall(b"junk\n" * 200)
        # the burst is logged once the agent has read the lines, however late that is
        wait_until(lambda: "ignored a malformed line from the host" in agent.text(), WAIT)
        time.sleep(7.5)  # the burst's end, then ten a minute: room for one more line
        conn.sendall(b"junk\n")
        wait_until(lambda: "suppressed" in agent.text(), WAIT)
    # what was logged before the line that says how many were left out
    flood = agent.text().split("messages suppressed")[0].rpartition("\n")[0]
    logged = flood.count("ignored a malformed line from the host")
    lines = flood.count("dynmem-guest:")
    t.ok(0 < logged and lines <= 30,
         "200 junk lines at once: a burst of 30 lines at most reaches the log",
         f"{logged} junk lines of {lines}:\n{flood}")
    left_out = re.search(r"\((\d+) messages suppressed\)", agent.text())
    t.ok(left_out is not None and int(left_out.group(1)) >= 200 - logged,
         "the next line that gets through says how many were left out", agent.text()[-600:])


def check_no_spin(t, agent_exe, root, tmp):
    agent = Agent(agent_exe, root, tmp, "--port", os.path.join(tmp, "nothing-here"))
    time.sleep(0.5)
    before = agent.cpu_ticks()
    time.sleep(3)
    used = agent.cpu_ticks() - before
    alive = agent.proc.poll() is None
    agent.stop()
    t.ok(alive and used < 50, "without a port the agent waits and retries, it does not spin",
         f"alive={alive} cpu ticks in 3 s={used}")
    t.ok(agent.text().count("looking again every 1 s") == 1,
         "a missing port is logged once", agent.text())


def add_devices(root):
    """The balloon (deflate-on-oom) and virtio-mem devices, bound, as in make_root, both
    at once (made aside and renamed in): an agent scanning between the two would announce
    them in two handshakes, and the test looks at the first."""
    devices = f"{root}/sys/bus/virtio/devices"
    staged = devices + ".new"
    write(f"{staged}/virtio0/device", "0x0005\n")
    write(f"{staged}/virtio0/features", "0010" + "0" * 60 + "\n")
    os.makedirs(f"{staged}/virtio0/driver")
    write(f"{staged}/virtio1/device", "0x0018\n")
    os.makedirs(f"{staged}/virtio1/driver")
    os.rename(staged, devices)  # onto the empty directory: one step


def check_devices_bound_late(t, agent_exe, peer_exe, tmp):
    """Under systemd the agent starts before udev loads the virtio drivers: devices
    bound later are found, announced, and the balloon taken off the demand."""
    root = os.path.join(tmp, "late")
    make_root(root)
    shutil.rmtree(f"{root}/sys/bus/virtio/devices")
    os.makedirs(f"{root}/sys/bus/virtio/devices")
    port = os.path.join(root, "dev", "vport0p1")
    peer = Peer(peer_exe, port, "--listen", "--interval", "200", timeout=60)
    agent = Agent(agent_exe, root, tmp)
    try:
        first = peer.wait_for(lambda l: l.startswith("ready "), 20)
        t.ok(first is not None and parse_fields(first).get("caps") == "psi,online-movable",
             "without bound devices the handshake names none", first or peer.text())
        r = peer.report(WAIT)
        t.ok(r is not None and r.get("demand") == 512 * MIB,
             "the balloon's pages count as used while no deflate-on-oom balloon is known", r)
        add_devices(root)
        again = peer.wait_for(lambda l: l.startswith("ready "), 15)
        t.ok(again is not None and
             parse_fields(again).get("caps") == "balloon,virtio-mem,psi,online-movable",
             "devices bound later are announced in a new handshake",
             peer.text()[-1000:] + "\n" + agent.text())
        r = peer.report(WAIT, lambda x: x["cause"] == "tick")
        t.ok(r is not None and r.get("demand") == 412 * MIB,
             "and the balloon's pages are taken off the demand", r)
        t.ok(peer.lines.count("connected") == 1, "all on one connection (not a reconnect)",
             peer.text()[-1000:])
    finally:
        peer.stop()
        agent.stop()


def check_meminfo_lost(t, agent_exe, peer_exe, tmp):
    """MemTotal gone from /proc/meminfo while a host listens: no reports, one line said
    (not one a second), and reports again, on the same connection, once it is back."""
    root = os.path.join(tmp, "lost")
    make_root(root)
    port = os.path.join(root, "dev", "vport0p1")
    meminfo = f"{root}/proc/meminfo"
    good = open(meminfo).read()
    peer = Peer(peer_exe, port, "--listen", "--interval", "200", timeout=60)
    agent = Agent(agent_exe, root, tmp)
    try:
        r = peer.report(WAIT, lambda x: x["cause"] == "tick")
        t.ok(r is not None, "reports come before MemTotal goes", peer.text() + agent.text())
        write_in_place(meminfo, "".join(l + "\n" for l in good.splitlines()
                                        if not l.startswith("MemTotal")))
        said = wait_until(lambda: "no usable MemTotal" in agent.text(), WAIT)
        seq = max((parse_fields(l).get("seq", 0) for l in peer.lines
                   if l.startswith("report ")), default=0)
        time.sleep(1.5)  # seven intervals
        later = [l for l in peer.lines if l.startswith("report ") and
                 parse_fields(l).get("seq", 0) > seq]
        t.ok(said and agent.text().count("no usable MemTotal") == 1 and not later,
             "without MemTotal no reports, and that is logged once", agent.text())
        write_in_place(meminfo, good)
        r = peer.report(WAIT, lambda x: x["seq"] > seq)
        t.ok(r is not None and r["total"] == 1024 * MIB and
             "/proc/meminfo: readable again" in agent.text() and
             peer.lines.count("connected") == 1,
             "once it is back reports go on, on the same connection, and that is logged",
             peer.text()[-1000:] + "\n" + agent.text())
    finally:
        peer.stop()
        agent.stop()


def check_options(t, agent_exe, tmp):
    """Option values are whole numbers in range or refused (exit 2, the value named);
    --help lists every option, and the man page documents each."""
    def run(*args):
        return subprocess.run([agent_exe, "--root", "/nonexistent", *args],
                              capture_output=True, text=True, timeout=10)
    bad = [("--absorber-size=50abc", "50abc"), ("--absorber-size=-4294967295", "-4294967295"),
           ("--absorber-size=0", "0"), ("--absorber-size=201", "201"),
           ("--versions=1-2x", "1-2x"), ("--versions=2-1", "2-1"), ("--versions=1-1001", "1-1001"),
           ("--versions=+1-1", "+1-1"), ("--absorber=on", "on")]
    wrong = [(a, r.returncode, r.stderr) for a, v in bad
             for r in [run(a)] if r.returncode != 2 or v not in r.stderr]
    t.ok(not wrong, "option values out of range or not plain numbers are refused, and named",
         wrong)
    good = [(a, r.returncode, r.stderr) for a in ("--absorber-size=200", "--versions=1-1000")
            for r in [run(a)] if r.returncode != 1 or "meminfo" not in r.stderr]
    t.ok(not good, "values in range are taken (then /proc/meminfo is missing: exit 1)", good)
    regular = os.path.join(tmp, "regular-file")
    open(regular, "w").close()
    r = run("--port", regular)
    t.ok(r.returncode == 2 and "a regular file; wants a character device, a FIFO or a unix "
         "socket" in r.stderr and os.path.getsize(regular) == 0,
         "--port naming a regular file is refused (it would take a hello a second)",
         (r.returncode, r.stderr))
    r = run("extra")
    t.ok(r.returncode == 2 and 'unexpected argument "extra"' in r.stderr,
         "an argument that is no option is refused, and named", (r.returncode, r.stderr))
    h = run("--help")
    helped = set(re.findall(r"--[a-z][a-z-]+", h.stdout))
    man = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "man",
                            "dynmem-guest.8")).read().replace("\\-", "-")
    documented = set(re.findall(r"--[a-z][a-z-]+", man.split(".SH OPTIONS")[1].split(".SH")[0]))
    t.ok(h.returncode == 0 and "--help" in helped and helped == documented,
         "--help lists every option, --help too, and the man page's OPTIONS the same ones",
         f"rc={h.returncode} only in --help: {helped - documented}, "
         f"only in the man page: {documented - helped}")


def check_memory_locked(t, agent_exe, root, tmp):
    """The agent locks its pages in RAM (mlockall): a guest short of memory must not
    reclaim the program that reports it. Its resident memory stays what it uses (the
    pages are locked as they are touched), and VmLck covers it. Where RLIMIT_MEMLOCK
    cannot hold its mappings, it says so instead."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    room = 8 * MIB if hard == resource.RLIM_INFINITY else min(hard, 8 * MIB)
    if soft != resource.RLIM_INFINITY and soft < room:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (room, hard))
    agent = Agent(agent_exe, root, tmp)  # the port of make_root, no host on it
    try:
        wait_until(lambda: "memory hotplug" in agent.text(), WAIT)
        with open(f"/proc/{agent.proc.pid}/status") as f:
            status = {l.split(":")[0]: l.split()[1] for l in f if l.startswith("Vm")}
    finally:
        agent.stop()
    locked, rss = int(status.get("VmLck", 0)), int(status.get("VmRSS", 0))
    if room < 2 * MIB and os.geteuid() != 0:
        t.ok(locked == 0 and "memory not locked" in agent.text(),
             "without room under RLIMIT_MEMLOCK the agent says its memory is not locked",
             agent.text())
        return
    t.ok(0 < rss <= locked and rss < 2 * MIB and "memory not locked" not in agent.text(),
         "the agent's pages are locked in RAM, and it stays as small as it was",
         f"VmLck {locked} kB, VmRSS {rss} kB\n{agent.text()}")


def check_cmdline_value(t, agent_exe, tmp):
    """A bad dynmem.agent.absorber_size= on the kernel command line: one line that names
    the word as given there and what it wants (not the option --absorber-size, which the
    administrator did not give); the default size stays."""
    root = os.path.join(tmp, "cmdline")
    make_root(root)
    write(f"{root}/proc/cmdline", "BOOT_IMAGE=/vmlinuz dynmem.agent.absorber_size=abc quiet\n")
    agent = Agent(agent_exe, root, tmp)  # the port of make_root, no host on it
    try:
        wait_until(lambda: "memory hotplug" in agent.text(), WAIT)
    finally:
        agent.stop()
    text = agent.text()
    t.ok("ignored dynmem.agent.absorber_size=abc: wants a whole percent of MemTotal, 1..200"
         in text and "--absorber-size" not in text and text.count("absorber_size") == 1,
         "a bad value on the kernel command line is named as given there, once", text)


def check_meminfo_error(t, agent_exe, tmp):
    """An unreadable /proc/meminfo at start: exit 1 with its own error, not one of the
    files opened after it (here /proc/self/statm, missing)."""
    root = os.path.join(tmp, "loop")
    os.makedirs(os.path.join(root, "proc"))
    os.symlink("meminfo", os.path.join(root, "proc", "meminfo"))
    r = subprocess.run([agent_exe, "--root", root], capture_output=True, text=True, timeout=10)
    t.ok(r.returncode == 1 and "proc/meminfo: Too many levels of symbolic links" in r.stderr,
         "an unreadable /proc/meminfo is named with its own error", (r.returncode, r.stderr))


def check_long_port_path(t, agent_exe, root, tmp):
    """--port PATH, a character device or FIFO at a path of 300 bytes: opened as given
    (not cut at 255 bytes), and the agent announces itself on it."""
    d = os.path.join(tmp, "p" * 100, "q" * 100, "r" * 60)
    os.makedirs(d)
    fifo = os.path.join(d, "port")
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    agent = Agent(agent_exe, root, tmp, "--port", fifo)
    try:
        got = b""
        end = time.monotonic() + 10
        while b"\n" not in got and time.monotonic() < end:
            try:
                got += os.read(fd, 4096)
            except BlockingIOError:
                time.sleep(0.05)
    finally:
        agent.stop()
        os.close(fd)
    t.ok(len(fifo) > 255 and got.startswith(b"DMG1 hello "),
         "a port path longer than 255 bytes is opened whole", (len(fifo), got, agent.text()))


def check_one_at_a_time(t, agent_exe, tmp):
    """A second agent on the same guest (say, one started by hand while the service runs)
    says which one runs and waits for it to stop rather than drain the same absorber and
    throttle the same cgroups; it starts once the first has stopped, and a stop signal
    ends its wait (exit 0)."""
    root = os.path.join(tmp, "one")
    make_root(root)
    os.makedirs(os.path.join(root, "run"))  # the lock goes in run/dynmem-guest
    first = Agent(agent_exe, root, tmp)  # the port of make_root, no host on it
    second = third = None
    try:
        started = wait_until(lambda: "memory hotplug" in first.text(), WAIT)
        second = Agent(agent_exe, root, tmp)
        waiting = wait_until(lambda: "waiting until it stops" in second.text(), WAIT)
        time.sleep(1)
        t.ok(started and waiting and f"another dynmem-guest runs (pid {first.proc.pid} holds "
             "/run/dynmem-guest/lock)" in second.text() and
             "memory hotplug" not in second.text() and second.proc.poll() is None,
             "a second agent on the same guest says which one runs, and waits",
             first.text() + "\n---\n" + second.text())
        first.stop()
        t.ok(wait_until(lambda: "memory hotplug" in second.text(), WAIT),
             "it starts once the first has stopped", second.text())
        third = Agent(agent_exe, root, tmp)
        wait_until(lambda: "waiting until it stops" in third.text(), WAIT)
        third.proc.terminate()
        rc = third.proc.wait(timeout=5)
        t.ok(rc == 0 and "stopping (signal 15)" in third.text() and
             "memory hotplug" not in third.text(),
             "SIGTERM ends a waiting agent's wait: exit 0", (rc, third.text()))
    finally:
        for a in (first, second, third):
            if a and a.proc.poll() is None:
                a.stop()


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    agent_exe, peer_exe = map(os.path.abspath, sys.argv[1:])
    t = Tap()
    tmp = tempfile.mkdtemp(prefix="dmg-", dir="/tmp")
    root = os.path.join(tmp, "root")
    port = os.path.join(root, "dev", "vport0p1")
    agent = None
    try:
        make_root(root)
        peer = Peer(peer_exe, port, "--listen", "--interval", "200", timeout=60)
        agent = Agent(agent_exe, root, tmp)  # finds its port by name under sys/class
        last = check_session(t, peer, agent)
        check_onlining(t, root, peer)
        check_psi_polling(t, root, peer)
        last = max(last, max((parse_fields(l).get("seq", 0) for l in peer.lines
                              if l.startswith("report ")), default=0))
        peer.stop()
        check_reconnect(t, peer_exe, port, agent, last)
        check_incompatible(t, agent, agent_exe, peer_exe, root, port, tmp)
        agent = None
        check_host_junk(t, agent_exe, root, port, tmp)
        check_log_flood(t, agent_exe, root, port, tmp)
        check_no_spin(t, agent_exe, root, tmp)
        check_devices_bound_late(t, agent_exe, peer_exe, tmp)
        check_meminfo_lost(t, agent_exe, peer_exe, tmp)
        check_options(t, agent_exe, tmp)
        check_memory_locked(t, agent_exe, root, tmp)
        check_cmdline_value(t, agent_exe, tmp)
        check_meminfo_error(t, agent_exe, tmp)
        check_long_port_path(t, agent_exe, root, tmp)
        check_one_at_a_time(t, agent_exe, tmp)
    finally:
        if agent:
            agent.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
