#!/usr/bin/env python3
"""A state directory that fills up or turns read-only under a running dynmemd
(a 64 KiB tmpfs, filled, or remounted read-only; skipped when not root or
where no tmpfs can be mounted). While it cannot write: balancing goes on (a VM's memory still follows its
demand up and down), `dynmem set` and `dynmem create` succeed with a "not
saved" warning, `dynmem status` shows NOT SAVED, each file's failure is logged
once however many cycles and changes come, and no half-written or temporary
file is left: state.json keeps its last good content and every JSON file
parses, also when the disk fills in the middle of a write larger than the
space left. When space or write access returns, both files are written again
without another change, and the log says so. Prints TAP.

usage: test_state_dir.py DYNMEMD DYNMEM
"""
import errno
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (DATA, GIB, Daemon, Skip, Tap, accounting, check, dynamic_vm,  # noqa: E402
                        leftovers, main, need_root, sim_host, state_files, static_vm, wait_for)


tap = Tap()

MEMORY = 6 * GIB
CONFIG = (sim_host("6G", policy="shrink_delay = 1s")
          + dynamic_vm("wave1", "@FAULTS@/wave.csv", maximum="3G")
          + static_vm("spare", "256M", "small.csv"))

PAGE = 4096


class tmpfs_state:
    """A daemon whose state directory is a 64 KiB tmpfs of its own."""

    def __init__(self, bins):
        need_root()
        self.d = Daemon(bins, CONFIG)
        os.makedirs(self.d.state_dir)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "dynmem-faults",
                            self.d.state_dir], capture_output=True, text=True)
        if r.returncode != 0:  # root without CAP_SYS_ADMIN, e.g. in a container
            self.d.cleanup()
            raise Skip(f"cannot mount a tmpfs: {r.stderr.strip()}")

    def __enter__(self):
        try:
            return self.d.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        try:
            if exc and exc[0] is None:
                rc = self.d.stop()
                check(rc == 0, f"dynmemd exits with 0 at SIGTERM, not {rc}", self.d.log())
        finally:
            if self.d.proc and self.d.proc.poll() is None:
                self.d.proc.kill()
                self.d.proc.wait()
            subprocess.run(["umount", "-l", self.d.state_dir], check=False)
            self.d.cleanup()
        return False


def fill(path):
    """Write until the file system is full; returns the bytes written."""
    n = 0
    chunk = b"\0" * PAGE
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
                n += PAGE
        except OSError as e:
            check(e.errno == errno.ENOSPC, f"filling stops at ENOSPC, not {e}")
    return n


def read(path):
    with open(path) as f:
        return json.load(f)


def follows_demand(d, name, spread=GIB):
    """Wait until the VM's assigned memory has moved over at least spread
    (up and down), checking the accounting at every look."""
    seen = []

    def moved():
        v = accounting(d, MEMORY)[name]
        seen.append(v["assigned_bytes"])
        return max(seen) - min(seen) >= spread

    wait_for(moved, f"{name}'s memory to follow its demand over {spread >> 20} MiB")


def unsaved_changes(d, why):
    """set and create succeed with a warning; status says NOT SAVED."""
    r = d.ok("set", "wave1", "--weight", "42")
    check("dynmem: warning: wave1: not saved" in r.err and why in r.err, "set warns", r)
    r = d.ok("set", "wave1", "--buffer", "30")
    check("not saved" in r.err, "every change warns", r)
    r = d.ok("create", "late1", "--startup", "256M", "-o", f"trace={DATA}/small.csv")
    check("not saved" in r.err, "create warns", r)
    h = d.json("status")
    check(h["state_saved"] is False and why in h["state_error"], "status --json", h)
    check("NOT SAVED" in d.ok("status").out, "status shows NOT SAVED")
    # running.json is written when a VM starts or stops: make it try, twice.
    for _ in range(2):
        d.ok("start", "spare")
        d.ok("stop", "spare")


def said_once(d, why):
    state = os.path.join(d.state_dir, "state.json")
    running = os.path.join(d.state_dir, "running.json")
    seen = d.json("status")["cycles"]
    wait_for(lambda: d.json("status")["cycles"] >= seen + 30, "30 more cycles")
    log = d.log()
    check(d.log_count(f"cannot write {state}: {why}") == 1,
          "the state file's failure is logged once", log)
    check(d.log_count(f"cannot write {running}: {why}") == 1,
          "running.json's failure is logged once", log)


def nothing_half_written(d, before):
    check(not leftovers(d.state_dir), "no temporary file left", os.listdir(d.state_dir))
    files = state_files(d.state_dir)
    check(files["state.json"] == before, "state.json keeps its last good content",
          files["state.json"], before)
    check("running.json" in files, "running.json is still there", sorted(files))


def saved_again(d):
    """Both files written again without another change."""
    state = os.path.join(d.state_dir, "state.json")
    wait_for(lambda: d.json("status")["state_saved"], "status to say saved again")
    vms = {v["name"]: v for v in read(state)["vms"]}
    check(vms.get("wave1", {}).get("settings", {}).get("weight") == 42 and "late1" in vms,
          "what was changed meanwhile is in state.json", vms)
    check(f"state saved to {state} again" in d.log(), "the log says so", d.log())
    wait_for(lambda: "running.json written again" in d.log(), "running.json written again")
    check(not leftovers(d.state_dir), "no temporary file left", os.listdir(d.state_dir))
    state_files(d.state_dir)


@tap.case
def a_full_state_directory_is_said_once_and_written_again_when_space_returns(bins):
    with tmpfs_state(bins) as d:
        d.wait_state("wave1", "running")
        before = read(os.path.join(d.state_dir, "state.json"))
        filler = os.path.join(d.state_dir, "filler")
        fill(filler)
        why = os.strerror(errno.ENOSPC)
        unsaved_changes(d, why)
        follows_demand(d, "wave1")
        said_once(d, why)
        nothing_half_written(d, before)
        os.unlink(filler)
        saved_again(d)
        follows_demand(d, "wave1")


@tap.case
def a_read_only_state_directory_is_said_once_and_written_again_when_writable(bins):
    with tmpfs_state(bins) as d:
        d.wait_state("wave1", "running")
        before = read(os.path.join(d.state_dir, "state.json"))
        subprocess.run(["mount", "-o", "remount,ro", d.state_dir], check=True)
        why = os.strerror(errno.EROFS)
        unsaved_changes(d, why)
        follows_demand(d, "wave1")
        said_once(d, why)
        nothing_half_written(d, before)
        subprocess.run(["mount", "-o", "remount,rw", d.state_dir], check=True)
        saved_again(d)


@tap.case
def a_disk_that_fills_in_the_middle_of_a_write_leaves_the_old_file(bins):
    with tmpfs_state(bins) as d:
        # A state file of several pages: forty created VMs with long trace paths.
        long_trace = os.path.join(d.dir, "t" * 150 + ".csv")
        with open(os.path.join(DATA, "small.csv")) as src, open(long_trace, "w") as dst:
            dst.write(src.read())
        for i in range(40):
            d.ok("create", f"pad{i:02d}", "--startup", "256M", "-o", f"trace={long_trace}")
        state = os.path.join(d.state_dir, "state.json")
        before = read(state)
        size = os.path.getsize(state)
        check(size > 2 * PAGE, f"state.json spans pages ({size} bytes)")
        filler = os.path.join(d.state_dir, "filler")
        written = fill(filler)
        os.truncate(filler, written - PAGE)  # one page free: the write starts, then fails
        r = d.ok("create", "pad40", "--startup", "256M", "-o", f"trace={long_trace}")
        check("not saved" in r.err and os.strerror(errno.ENOSPC) in r.err,
              "the change warns that it is not saved", r)
        nothing_half_written(d, before)
        os.unlink(filler)
        wait_for(lambda: d.json("status")["state_saved"], "saved again")
        check(len(read(state)["vms"]) == 41, "every created VM is in state.json")
        state_files(d.state_dir)


if __name__ == "__main__":
    main(tap)
