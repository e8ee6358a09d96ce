#!/usr/bin/env python3
"""dynmemd with the libvirt backend while libvirtd hangs: libvirtd stopped
with SIGSTOP (its socket still accepts, nothing answers), against a real,
isolated libvirtd 9.0 (lvhost.py) running one dynamic TCG domain:

  the domain boots and settles; libvirtd is stopped while its guest's load
  is about to rise; for the whole stop (longer than libvirt's keepalive, so
  that the connection is dropped and dynmemd's reconnection meets the stopped
  libvirtd too) dynmem status answers within its ordinary client timeout and
  says that libvirt is not answering, and nothing is resized although the
  guest's load rises; after SIGCONT libvirt answers again, status says so
  and the domain grows to its demand through libvirt. Then dynmemd is
  restarted while libvirtd is stopped: it answers from the start, says libvirt
  is not answering, and finds and balances the domain once libvirtd goes on.

Nothing asserts how fast anything answers: each command has the CLI's own
timeout. Prints TAP.

usage: test_libvirt_hang.py DYNMEMD DYNMEM
"""
import re
import signal
import time

from lvlib import (MIB, WAIT, LibvirtHost, LvDaemon, Tap, balloon_current, check,
                   check_can_run, comment, console, domain, guest_image, install_hook, main, mib,
                   wait_for, wait_reporting)

tap = Tap()

MEMORY = 1024 * MIB
# The load holds small while the guest boots and settles, then asks for ~300 MiB more:
# the rise comes while libvirtd is stopped (the stop lasts well past the ramp).
PLAN = "hold:40s,ramp:320M:10s,hold:3600s"
BOOT = 300  # a start to an agent that reports: TCG on two busy cores
STOPPED = 45  # seconds libvirtd stays stopped at least: past libvirt's keepalive (5 s x 3)
NOT_ANSWERING = "not answering"


def setup(bins):
    check_can_run()
    image = guest_image()
    host = LibvirtHost(name="hang")
    d = LvDaemon(bins, host, f"memory = {MEMORY // MIB}M\ninterval = 1s\n\n[policy]\n"
                 "shrink_delay = 2s\ntrend_lookahead = 0s\npersistence_max_permille = 0\n"
                 "headroom_permille = 0\nstall_memory = 0s\n")
    host.create()
    install_hook(host, bins[1], d.socket)
    host.start()
    host.define(domain(host, "web", image, plan=PLAN))
    d.start()
    return {"host": host, "d": d, "image": image, "t0": time.monotonic()}


def teardown(ctx):
    d, host = ctx["d"], ctx["host"]
    if host.libvirtd and host.libvirtd.poll() is None:
        host.libvirtd.send_signal(signal.SIGCONT)  # never leave it stopped
    d.finish(tap, "libvirt-hang", ctx["t0"])
    host.stop()
    d.cleanup()


def lines(log, text):
    return [line for line in log.splitlines() if text in line]


def resizes(d):
    log = d.log()
    return lines(log, "web +") + lines(log, "web -")


def stop_libvirtd(host):
    host.libvirtd.send_signal(signal.SIGSTOP)


def cont_libvirtd(host):
    host.libvirtd.send_signal(signal.SIGCONT)


def says_not_answering(d):
    """status answers (within the CLI's timeout) and says libvirt is not answering."""
    h = d.status()
    why = h.get("backend_error") or ""
    return why if NOT_ANSWERING in why else None


def timed_status(d):
    t = time.monotonic()
    h = d.status()
    return h, time.monotonic() - t


@tap.prerequisite
def a_dynamic_domain_boots_and_settles(ctx):
    d, host = ctx["d"], ctx["host"]
    d.ok("enable", "web", "--minimum", "256M", "--maximum", "768M")
    host.virsh("start", "web")
    wait_reporting(d.vm, "web", BOOT, why=lambda: f"\n{console(host, 'web')[-2000:]}")
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] == v["target_bytes"] and
                          v["demand_bytes"] and v["assigned_bytes"] <= 400 * MIB
                          else None)(d.vm("web")),
                 "web to settle before its load rises", timeout=WAIT, interval=0.5)
    comment(f"web holds {mib(v['assigned_bytes'])}, demand {mib(v['demand_bytes'])}")


@tap.case
def with_libvirtd_stopped_status_answers_and_nothing_is_resized(ctx):
    d, host = ctx["d"], ctx["host"]
    before = d.vm("web")
    resized = len(resizes(d))
    stop_libvirtd(host)
    stopped_at = time.monotonic()
    why = wait_for(lambda: says_not_answering(d), "status to say libvirt is not answering",
                   timeout=WAIT, interval=0.5)
    comment(f"status: {why}")
    out = d.ok("status").out
    check(re.search(r"^Backend: +UNREACHABLE: libvirt at qemu:///system: .*not answering", out,
                    re.M), "dynmem status says libvirt is not answering", out)
    slowest = 0.0
    # past the keepalive (the connection dropped, a reconnection waiting on the stopped
    # libvirtd) and the guest's load rising meanwhile (its ramp begins 40 s after boot;
    # what it asks for is not seen once the connection is gone: nothing is decided then)
    while time.monotonic() - stopped_at < STOPPED:
        h, took = timed_status(d)
        slowest = max(slowest, took)
        check(NOT_ANSWERING in (h.get("backend_error") or ""),
              "status says libvirt is not answering throughout the stop", h)
        time.sleep(1)
    v = d.vm("web")
    comment(f"after {time.monotonic() - stopped_at:.0f} s stopped: web holds "
            f"{mib(v['assigned_bytes'])}, target {mib(v['target_bytes'])}; the slowest "
            f"status took {slowest:.1f} s")
    check(v["target_bytes"] == before["target_bytes"] and
          v["assigned_bytes"] == before["assigned_bytes"],
          "nothing was asked of libvirt while it did not answer", before, v)
    check(len(resizes(d)) == resized, "no resize of web while libvirt did not answer",
          resizes(d)[resized:])
    check(d.proc.poll() is None, "dynmemd is alive", d.log()[-2000:])
    ctx["held"] = v["assigned_bytes"]


@tap.case
def after_sigcont_libvirt_answers_and_the_domain_grows_to_its_demand(ctx):
    d, host = ctx["d"], ctx["host"]
    cont_libvirtd(host)
    wait_for(lambda: d.status().get("backend_error") is None,
             "status to no longer say libvirt is not answering", timeout=WAIT, interval=0.5)
    check("UNREACHABLE" not in d.ok("status").out, "dynmem status no longer says so")
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] >= ctx["held"] + 64 * MIB
                          else None)(d.vm("web")),
                 "web to grow through libvirt again", timeout=120, interval=0.5)
    wait_for(lambda: abs(d.vm("web")["assigned_bytes"] - balloon_current(host, "web")) <= 4 * MIB,
             "dynmemd's figure for web to be libvirt's", timeout=WAIT, interval=0.5)
    comment(f"web grew to {mib(v['assigned_bytes'])}")


@tap.case
def dynmemd_started_while_libvirtd_is_stopped_answers_and_recovers(ctx):
    d, host = ctx["d"], ctx["host"]
    check(d.stop() == 0, "dynmemd stops on SIGTERM", d.log()[-2000:])
    stop_libvirtd(host)
    d.start()  # listens: its first connection to libvirt does not hold it up
    why = wait_for(lambda: says_not_answering(d), "the new dynmemd to say libvirt is not "
                   "answering", timeout=WAIT, interval=0.5)
    comment(f"status: {why}")
    check(d.proc.poll() is None, "dynmemd runs", d.log()[-2000:])
    cont_libvirtd(host)
    wait_for(lambda: d.status().get("backend_error") is None,
             "status to no longer say libvirt is not answering", timeout=WAIT, interval=0.5)
    wait_for(lambda: d.vm("web")["state"] == "running" and d.vm("web")["dynamic"],
             "dynmemd to find web running once libvirtd goes on", timeout=WAIT, interval=0.5)
    wait_for(lambda: abs(d.vm("web")["assigned_bytes"] - balloon_current(host, "web")) <= 4 * MIB,
             "dynmemd's figure for web to be libvirt's", timeout=WAIT, interval=0.5)
    d.ok("set", "web", "--buffer", "40")
    wait_for(lambda: (lambda v: v if v["assigned_bytes"] == v["target_bytes"] and
                      abs(v["assigned_bytes"] - balloon_current(host, "web")) <= 4 * MIB
                      else None)(d.vm("web")),
             "web to be balanced through the new connection", timeout=120, interval=0.5)


if __name__ == "__main__":
    main(tap, setup, teardown)
