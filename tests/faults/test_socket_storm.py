#!/usr/bin/env python3
"""The control socket under a storm: a thousand clients connect at once; a
fifth send nothing, a fifth half a line, a fifth a request over the 64 KiB
limit, a fifth malformed JSON, a fifth a valid `list`. dynmemd stays alive,
every client that sent a line gets an answer (the reply, an error naming what
is wrong, or "too many clients"), the valid ones get their list once the silent
ones leave, the cycle keeps running meanwhile (seen through the HTTP status,
which does not go through the socket), the refusals are rate-limited in the
log, and no connection is left behind. Then the same with dynmemd's descriptor
limit lowered below its client limit (accept fails with EMFILE): it pauses
accepting instead of spinning, and serves everyone once descriptors are free.
Non-root callers in the socket's group (as root: `nobody` through setpriv;
skipped otherwise) get a clear "needs root" for set, start, stop, create and
delete in the middle of a storm of a thousand requests, and nothing changes. Prints TAP.

usage: test_socket_storm.py DYNMEMD DYNMEM
"""
import json
import os
import resource
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (WAIT, Daemon, Skip, Tap, check, dynamic_vm, main, request,  # noqa: E402
                        sim_host, static_vm, wait_for)


tap = Tap()

CLIENTS = 1000
KINDS = ("silent", "partial", "oversized", "malformed", "valid")
REQUEST_MAX = 64 * 1024

CONFIG = (sim_host("8G", "http = 127.0.0.1:0")
          + dynamic_vm("wave1", "@FAULTS@/wave.csv", maximum="3G")
          + static_vm("spare", "256M", "small.csv"))
NAMES = ["spare", "wave1"]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * CLIENTS + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            raise Skip(f"needs {want} descriptors, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def read_reply(s):
    """The first line the daemon sends, parsed; None at EOF or reset without one."""
    buf = b""
    try:
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    line = buf.split(b"\n", 1)[0]
    return json.loads(line) if line else None


def too_many(reply):
    return bool(reply) and not reply.get("ok") and "too many clients" in reply.get("error", "")


class Client(threading.Thread):
    def __init__(self, path, kind, go, release):
        super().__init__(daemon=True)
        self.path, self.kind, self.go, self.release = path, kind, go, release
        self.replies = []  # every reply, in order (valid clients retry after a refusal)
        self.first_done = threading.Event()
        self.error = None

    def attempt(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.path)  # blocking: waits while the listen backlog is full
            s.settimeout(WAIT * 2)
            payload = {
                "silent": b"",
                "partial": b'{"version": 1, "comm',
                "oversized": b'{"version": 1, "command": "list", "x": "' + b"x" * (REQUEST_MAX + 4096),
                "malformed": b'{"version": 1, "command": \n',
                "valid": request("list"),
            }[self.kind]
            try:
                s.sendall(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused or cut off while sending: its answer may still be there
            if self.kind in ("silent", "partial"):
                self.first_done.set()
                self.release.wait()
                return None
            reply = read_reply(s)
            self.replies.append(reply)
            return reply
        finally:
            s.close()

    def run(self):
        try:
            self.go.wait()
            reply = self.attempt()
            self.first_done.set()
            # A refused valid client tries again until it is served.
            deadline = time.monotonic() + WAIT * 2
            while self.kind == "valid" and too_many(reply) and time.monotonic() < deadline:
                time.sleep(0.05)
                reply = self.attempt()
        except Exception as e:  # reported by the test
            self.error = repr(e)
            self.first_done.set()


def http_cycles(url):
    with urllib.request.urlopen(url + "api/v1/status", timeout=WAIT) as r:
        return json.load(r)["cycles"]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def storm(d, during=None, first_answers=True, after=None, kinds=KINDS):
    """Run CLIENTS clients of every kind at once; during(d) runs while the silent
    ones hold their connections (once every client had its first answer, with
    first_answers), after(d) before they let go. Returns the clients."""
    go, release = threading.Event(), threading.Event()
    threading.stack_size(256 * 1024)
    clients = [Client(d.socket, kinds[i % len(kinds)], go, release) for i in range(CLIENTS)]
    for c in clients:
        c.start()
    try:
        go.set()
        for c in clients if first_answers else ():
            check(c.first_done.wait(WAIT * 2), f"a {c.kind} client got no first answer")
        if during:
            during(d)
        if after:
            after(d)
    finally:
        release.set()
        for c in clients:
            c.join(WAIT * 2)
    check(not any(c.is_alive() for c in clients), "every client finished")
    errors = [f"{c.kind}: {c.error}" for c in clients if c.error]
    check(not errors, "no client failed", *errors[:5])
    return clients


def outcome(c):
    if c.kind in ("silent", "partial"):
        return "held"
    r = c.replies[0] if c.replies else None
    return "no reply" if r is None else "too many" if too_many(r) else \
        "ok" if r.get("ok") else "error"


def summary(clients):
    """One comment line: how the first attempt of each kind went."""
    counts = {}
    for c in clients:
        key = f"{c.kind} {outcome(c)}"
        counts[key] = counts.get(key, 0) + 1
    print("# first attempts: " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())),
          flush=True)


def judge(d, clients):
    by = {k: [c for c in clients if c.kind == k] for k in KINDS}
    summary(clients)
    for c in by["valid"]:
        last = c.replies[-1]
        check(last and last.get("ok") and sorted(v["name"] for v in last["vms"]) == NAMES,
              "every valid client gets its list", c.replies)
    for c in by["malformed"]:
        r = c.replies[0]
        check(r and not r.get("ok") and (too_many(r) or r.get("error")),
              "every malformed request gets an error reply", c.replies)
    check(not by["malformed"] or any(not too_many(c.replies[0]) for c in by["malformed"]),
          "some malformed requests reach the parser")
    for c in by["oversized"]:
        r = c.replies[0]
        check(r is None or (not r.get("ok") and (too_many(r) or "longer than" in r["error"])),
              "an oversized request is refused", c.replies)
    check(not by["oversized"] or any(r and "longer than 65536 bytes" in r["error"]
                                     for r in (c.replies[0] for c in by["oversized"])),
          "oversized requests are told the limit", [c.replies for c in by["oversized"]][:3])


def served_again(d):
    """Alive, answering, every storm connection gone."""
    check(d.proc.poll() is None, "dynmemd is alive", d.log())
    wait_for(lambda: d.json("status")["clients"] == 1, "the storm's connections to be gone")
    check(sorted(d.vms()) == NAMES, "list answers")


def rate_limited(d, text):
    n = d.log().count(text)
    check(n <= 40, f"'{text}' logged {n} times: rate-limited", d.log()[-2000:])
    return n


class started:
    def __init__(self, bins, **kw):
        raise_nofile()
        self.d = Daemon(bins, CONFIG, **kw)

    def __enter__(self):
        self.d.start()
        self.d.wait_state("wave1", "running")
        return self.d

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                rc = self.d.stop()
                check(rc == 0, f"dynmemd exits with 0 at SIGTERM, not {rc}", self.d.log())
                log = self.d.log()
                check("ERROR: AddressSanitizer" not in log and "runtime error:" not in log,
                      "no sanitizer report", log)
        finally:
            self.d.cleanup()
        return False


@tap.case
def a_thousand_clients_at_once_while_the_cycle_runs(bins):
    with started(bins) as d:
        url = d.json("status")["http_url"]
        check(url, "HTTP is on")
        url = url if url.endswith("/") else url + "/"

        def during(d):
            # The socket is full of silent clients now; the cycle goes on.
            seen = http_cycles(url)
            wait_for(lambda: http_cycles(url) >= seen + 20, "20 cycles during the storm")
            check(d.proc.poll() is None, "alive during the storm", d.log())

        clients = storm(d, during)
        judge(d, clients)
        served_again(d)
        rate_limited(d, "control: client refused: too many clients")


@tap.case
def at_its_descriptor_limit_dynmemd_pauses_accepting_and_recovers(bins):
    with started(bins) as d:
        before = d.json("status")["cycles"]
        # Fewer descriptors than clients it would serve: accept() fails with EMFILE.
        soft, hard = resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (48, hard))

        def during(d):
            wait_for(lambda: "control: accept: Too many open files" in d.log(), "EMFILE logged")
            # Not spinning on the ready socket: while it cannot accept, dynmemd uses
            # little CPU. A loop retrying accept() at once would use a whole core;
            # a paused one wakes ten times a second, well under half of one (a busy
            # machine only lowers what dynmemd gets, never raises it).
            cpu0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            time.sleep(3)  # the window measured, not a deadline
            cpu = cpu_seconds(d.proc.pid) - cpu0
            wall = time.monotonic() - t0
            check(cpu < 0.5 * wall, f"dynmemd used {cpu:.2f} s of CPU in {wall:.2f} s at its "
                  "descriptor limit: spinning")
            check(d.proc.poll() is None, "alive at the limit", d.log())

        def after(d):  # descriptors again; the silent ones still hold theirs
            resource.prlimit(d.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))

        clients = storm(d, during, first_answers=False, after=after)
        for c in clients:
            if c.kind == "valid":
                last = c.replies[-1]
                check(last and last.get("ok"), "every valid client is served in the end",
                      c.replies)
        served_again(d)
        check(d.json("status")["cycles"] > before, "the cycle ran")
        rate_limited(d, "control: accept: Too many open files")


def as_nobody(d, *args):
    """dynmem ARGS as nobody, retried while the socket is full."""
    def attempt():
        r = d.cli(*args, user="nobody")
        return None if "too many clients" in r.err else r
    return wait_for(attempt, f"nobody's dynmem {' '.join(args)} to be answered")


@tap.case
def non_root_callers_are_refused_during_a_storm(bins):
    if os.geteuid() != 0:
        raise Skip("needs root to run dynmem as another user")
    with started(bins, group="nogroup") as d:
        before = d.vms()

        def during(d):
            alive = []
            for args in (["set", "wave1", "--weight", "1"], ["start", "spare"],
                         ["stop", "wave1"], ["create", "evil", "--startup", "256M"],
                         ["delete", "spare"]):
                alive.append(sum(t.is_alive() for t in threading.enumerate()) - 1)
                r = as_nobody(d, *args)
                check(r.rc == 1 and r.err.startswith("dynmem: ") and
                      "permission denied" in r.err and f"{args[0]} needs root" in r.err,
                      f"nobody may not {args[0]}", r)
            r = as_nobody(d, "list")
            check(r.rc == 0, "nobody may list", r)
            print(f"# storm clients running as nobody asked: {alive}", flush=True)
            check(alive[0] > 0, "nobody asked in the middle of the storm")

        # No silent clients here: they would hold every slot until the idle timeout.
        clients = storm(d, during, first_answers=False, kinds=KINDS[2:])
        judge(d, clients)
        served_again(d)
        after = d.vms()
        check(after["wave1"]["weight"] == before["wave1"]["weight"] and
              after["wave1"]["state"] == "running" and after["spare"]["state"] == "off" and
              "evil" not in after, "nothing changed", after)
        check(d.log().count("refused: needs root") == 5, "each refusal logged, storm or not",
              d.log()[-3000:])


if __name__ == "__main__":
    main(tap)
