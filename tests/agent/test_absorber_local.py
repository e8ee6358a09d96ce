#!/usr/bin/env python3
"""dynmem-guest's burst absorber on this host, against a fake /proc and /sys
(--root): which guests get one, how it is sized and set up, adoption after a
restart, and when it is drained. Under a test root the agent does everything
but swapon(2) and swapoff(2) (they act on the whole machine), so the fake
/dev/zramN is a plain file that receives the swap header. No host is needed:
the agent drains without one. The real thing runs in a guest under QEMU in
tests/e2e/test_absorber.py. Prints TAP.

usage: test_absorber_local.py DYNMEM_GUEST
"""
import os
import shutil
import struct
import subprocess
import sys
from functools import partial
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import WAIT, Tap  # noqa: E402

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def meminfo(total_kb, avail_kb):
    return (f"MemTotal: {total_kb} kB\nMemFree: {avail_kb} kB\nMemAvailable: {avail_kb} kB\n"
            "Cached: 0 kB\nActive(file): 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
            "Committed_AS: 1000 kB\n")


def psi(total_us):
    return (f"some avg10=0.00 avg60=0.00 avg300=0.00 total={total_us}\n"
            f"full avg10=0.00 avg60=0.00 avg300=0.00 total={total_us}\n")


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def make_root(root, swaps="", avail_kb=524288):
    """A 1 GiB guest with zram loaded (hot_add answers 1) and /proc/swaps as given."""
    write(f"{root}/proc/meminfo", meminfo(1048576, avail_kb))
    write(f"{root}/proc/vmstat", "pgmajfault 0\noom_kill 0\n")
    write(f"{root}/proc/swaps", SWAPS_HEADER + swaps)
    write(f"{root}/proc/pressure/memory", psi(0))
    write(f"{root}/sys/class/zram-control/hot_add", "1\n")
    write(f"{root}/sys/block/zram1/disksize", "0\n")
    write(f"{root}/sys/block/zram1/mm_stat", "0 0 0 0 0 0 0 0 0\n")
    write(f"{root}/dev/zram1", "")
    write(f"{root}/sys/class/zram-control/hot_remove", "")
    os.makedirs(f"{root}/run", exist_ok=True)
    add_port(root)


def add_port(root):
    """dynmem's virtio-serial port, named in /sys; no device node: no host on it."""
    write(f"{root}/sys/class/virtio-ports/vport0p1/name", "org.dynmem.agent.0\n")


class Agent:
    """The agent on dynmem's port, which it cannot open: it runs without a host."""

    def __init__(self, exe, root, *args):
        self.log = os.path.join(root, "agent.log")
        self.proc = subprocess.Popen([exe, "--root", root, *args],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    def text(self):
        return read(self.log) or ""

    def wait_log(self, needle, timeout=WAIT):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text():
                return True
            time.sleep(0.05)
        return needle in self.text()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)


def check_setup(t, exe, tmp):
    root = os.path.join(tmp, "plain")
    make_root(root)
    a = Agent(exe, root)
    try:
        up = a.wait_log("absorber: /dev/zram1")
        t.ok(up, "a guest without swap gets an absorber on a new zram device", a.text())
        size = read(f"{root}/sys/block/zram1/disksize").strip()
        t.ok(size == str(1024 * MIB), "sized 100 % of MemTotal by default", size)
        with open(f"{root}/dev/zram1", "rb") as f:
            page = f.read(PAGE)
        version, last_page, bad = struct.unpack_from("<III", page, 1024)
        t.ok(len(page) == PAGE and page[PAGE - 10:] == b"SWAPSPACE2" and version == 1 and
             last_page == 1024 * MIB // PAGE - 1 and bad == 0,
             "a version-1 swap header for the whole device", (len(page), version, last_page))
        t.ok((read(f"{root}/run/dynmem-guest/absorber") or "").strip() == "1",
             "the device is remembered for a restart", read(f"{root}/run/dynmem-guest/absorber"))
    finally:
        a.stop()


def check_no_port(t, exe, tmp):
    """A machine without dynmem's port (a host the agent was installed on, a VM without
    dynmem's channel) is left as it is: no absorber, until the port appears."""
    root = os.path.join(tmp, "noport")
    make_root(root)
    shutil.rmtree(f"{root}/sys/class/virtio-ports")
    a = Agent(exe, root)
    try:
        said = a.wait_log("nothing is set up until it exists")
        time.sleep(2)
        t.ok(said and "absorber:" not in a.text() and
             read(f"{root}/sys/block/zram1/disksize").strip() == "0" and
             os.path.getsize(f"{root}/dev/zram1") == 0 and
             not os.path.exists(f"{root}/run/dynmem-guest/absorber"),
             "without dynmem's port no zram device is touched", a.text())
        add_port(root)
        t.ok(a.wait_log("absorber: /dev/zram1"), "the port appears: the absorber is set up",
             a.text())
    finally:
        a.stop()


def check_own_swap(t, exe, tmp):
    root = os.path.join(tmp, "own")
    make_root(root, "/dev/vda2\t\t\t\tpartition\t1048572\t\t0\t\t-2\n")
    a = Agent(exe, root)
    try:
        t.ok(a.wait_log("absorber: none: the guest has swap of its own"),
             "a guest with swap of its own is left alone", a.text())
        t.ok(read(f"{root}/sys/block/zram1/disksize").strip() == "0" and
             os.path.getsize(f"{root}/dev/zram1") == 0, "no zram device is touched")
    finally:
        a.stop()
    forced = Agent(exe, root, "--absorber=force", "--absorber-size=25")
    try:
        t.ok(forced.wait_log("absorber: /dev/zram1, 256 MiB"),
             "--absorber=force sets one up next to it (--absorber-size=25: 256 MiB)",
             forced.text())
    finally:
        forced.stop()
    # A root of its own: check_setup's runs beside this one (Tap.concurrently).
    off_root = os.path.join(tmp, "off")
    make_root(off_root)
    off = Agent(exe, off_root, "--absorber=off")
    try:
        t.ok(off.wait_log("absorber: none: turned off"), "--absorber=off", off.text())
    finally:
        off.stop()
    bad = subprocess.run([exe, "--absorber-size=0"], capture_output=True, text=True)
    t.ok(bad.returncode == 2 and "--absorber-size" in bad.stderr, "--absorber-size=0 is refused",
         bad.stderr)


def check_adopt_and_drain(t, exe, tmp):
    root = os.path.join(tmp, "adopt")
    make_root(root, "/dev/zram3\t\t\t\tpartition\t262140\t\t0\t\t100\n", avail_kb=60 * 1024)
    write(f"{root}/run/dynmem-guest/absorber", "3\n")
    write(f"{root}/sys/block/zram3/disksize", f"{256 * MIB}\n")
    # 64 MiB stored (and the swap header's page) in 20 MiB of RAM; 60 MiB available
    # < 64 MiB - 20 MiB + MemTotal / 32: no room yet
    write(f"{root}/sys/block/zram3/mm_stat",
          f"{64 * MIB + PAGE} {18 * MIB} {20 * MIB} 0 0 0 0 0 0\n")
    a = Agent(exe, root)
    try:
        t.ok(a.wait_log("absorber: /dev/zram3, 256 MiB"),
             "a restarted agent adopts the device it set up (still swapped on)", a.text())
        t.ok(read(f"{root}/sys/block/zram1/disksize").strip() == "0", "and adds no other")
        time.sleep(1.5)  # a sample or more with no room
        t.ok("drained" not in a.text(), "no drain while the guest has no room for its pages",
             a.text())
        write(f"{root}/proc/meminfo", meminfo(1048576, 80 * 1024))
        for i in range(10):  # room now, but the guest keeps stalling: the burst goes on
            with open(f"{root}/proc/pressure/memory", "r+") as f:
                f.write(psi(1000 * (i + 1)))
                f.truncate()
            time.sleep(0.25)
        t.ok("drained" not in a.text(), "no drain while the guest still stalls", a.text())
        t.ok(a.wait_log("absorber: drained 64 MiB back into RAM"),
             "drained once MemAvailable holds them, less the RAM they hold now, with "
             "1/32 of MemTotal to spare, and the stall is over",
             a.text())
        write(f"{root}/sys/block/zram3/mm_stat", f"{PAGE} 100 {PAGE} 0 0 0 0 0 0\n")
        n = a.text().count("drained")
        time.sleep(2.5)
        t.ok(a.text().count("drained") == n, "the swap header alone is not drained again",
             a.text())
        t.ok("empty again" not in a.text(), "an absorber a drain emptied is not said to have "
             "emptied by itself", a.text())
    finally:
        a.stop()


def check_not_adopted(t, exe, tmp):
    root = os.path.join(tmp, "stale")
    make_root(root)
    write(f"{root}/run/dynmem-guest/absorber", "3\n")
    write(f"{root}/sys/block/zram3/disksize", f"{256 * MIB}\n")  # no longer swapped on
    a = Agent(exe, root)
    try:
        t.ok(a.wait_log("absorber: /dev/zram1"), "a remembered device not in use is not adopted",
             a.text())
    finally:
        a.stop()


def check_empty_again(t, exe, tmp):
    root = os.path.join(tmp, "empty")
    make_root(root, avail_kb=1024)  # no room to drain into
    a = Agent(exe, root)
    try:
        a.wait_log("absorber: /dev/zram1")
        write(f"{root}/sys/block/zram1/mm_stat",
              f"{24 * MIB + PAGE} {9 * MIB} {10 * MIB} 0 0 0 0 0 0\n")
        time.sleep(1.5)  # a sample sees it hold 24 MiB
        write(f"{root}/sys/block/zram1/mm_stat", f"{PAGE} 100 {PAGE} 0 0 0 0 0 0\n")
        t.ok(a.wait_log("absorber: empty again without a drain (24 MiB at most") and
             "drained" not in a.text(),
             "an absorber the workload emptied by using its pages again is logged, no drain",
             a.text())
    finally:
        a.stop()


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe = os.path.abspath(sys.argv[1])
    t = Tap()
    tmp = tempfile.mkdtemp(prefix="dmga-", dir="/tmp")
    try:
        # each on a root of its own, mostly waiting on the agent's 1 s samples
        t.concurrently(partial(check_setup, exe=exe, tmp=tmp),
                       partial(check_own_swap, exe=exe, tmp=tmp),
                       partial(check_adopt_and_drain, exe=exe, tmp=tmp),
                       partial(check_not_adopted, exe=exe, tmp=tmp),
                       partial(check_empty_again, exe=exe, tmp=tmp),
                       partial(check_no_port, exe=exe, tmp=tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
