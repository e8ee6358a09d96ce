#!/usr/bin/env python3
"""dynmemd with the libvirt backend against a real, isolated libvirtd 9.0
(lvhost.py) running TCG domains that boot the bundled guest image. One host
and one set of guests serve every case, in order:

  enable and disable edit the persistent XML (and disable gives it back);
  a static domain is listed, never resized, and enable is refused while it
  runs; domains started with virsh are picked up and grown under load
  through libvirt; under scarcity the heavier weight keeps more; settings
  live in the domain's metadata; memory is taken back once the load falls;
  kill -9 of libvirtd and of dynmemd in the middle of a resize; dynmemd
  started while libvirtd is down (dynmem status says libvirt cannot be
  reached, and why); a hostile agent on a libvirt domain, first with lies
  dynmemd takes, then with garbage it refuses; bad metadata in one domain,
  then undefined; a domain stopped and started behind dynmemd's back;
  admission through libvirt's qemu hook (refused when it cannot fit, dynmem
  start through libvirt, dynmemd down).

The hostile domain's agent (tests/hostile/hostile-agent.c) first sends
well-formed reports, which dynmemd takes (the demand it shows is the agent's),
claiming far more than its 512 MiB maximum with every page in use and 100 % of
the time stalled: for ten of dynmemd's cycles after it has grown to its
maximum, neither dynmemd's request nor libvirt's own figure (balloon.current)
is above that maximum, web keeps its minimum and its demand, and the domains
together stay within the host's memory. Then it floods reports, sends garbage
and wrong protocol versions, and claims again: dynmemd has refused it, hears
nothing more from it and falls back to the balloon's statistics, and the same
holds for fifteen cycles.

The memory the VMs hold, their minimums and maximums are sampled twice a
second throughout (dynmemtest.Sampler). Prints TAP.

usage: test_libvirt_e2e.py DYNMEMD DYNMEM
"""
import os
import re
import time

from lvlib import (MIB, WAIT, Failure, LibvirtHost, LvDaemon, Sampler, Skip, Tap, balloon_current,
                   check, check_can_run, comment, console, domain, domstate, guest_image,
                   hostile_image as build_hostile_image, install_hook, main, mib, qemu_pid,
                   wait_for, wait_reporting)

tap = Tap()

# plain 256 MiB, and 1024 MiB for web and db, who need ~590 MiB each under load (their
# demand: the load plus ~75 MiB of the guest's own): their needs do not fit, so weight
# decides, web keeps its need and db gets the rest (~435 MiB). Needs that fit leave
# weight only the buffers above them to share (docs/policy.md): with a 400 MiB load
# (needs 476 and 472 MiB) that was 76 MiB, and web was held 48 MiB ahead, not 64.
MEMORY = 1280 * MIB
NS = "urn:dynmem:domain:1"
# A gentle ramp: web (the heavier) gets what it needs and its load is never OOM-killed
# (the image's init would start the plan again, and its load would not fall); db,
# starved, may be.
PLAN = "hold:5s,ramp:512M:30s,hold:45s,ramp:32M:3s,hold:3600s"
BOOT = 300  # a start to an agent that reports: TCG on two busy cores


def setup(bins):
    check_can_run()
    image = guest_image()
    hostile_image = build_hostile_image()
    host = LibvirtHost(name="e2e")
    # A reactive policy (as in bench/qemu): shrinks asked 2 s after demand falls, no
    # headroom learned from the load's rise and no growing ahead of a trend, so memory
    # follows the load within seconds; the fault cases need a shrink in flight soon
    # after they ask for one.
    d = LvDaemon(bins, host, f"memory = {MEMORY // MIB}M\ninterval = 1s\n\n[policy]\n"
                 "shrink_delay = 2s\ntrend_lookahead = 0s\npersistence_max_permille = 0\n"
                 "headroom_permille = 0\nstall_memory = 0s\n")
    host.create()
    hook_log = install_hook(host, bins[1], d.socket)
    host.start()
    ctx = {"host": host, "d": d, "image": image, "hostile_image": hostile_image,
           "hook_log": hook_log, "t0": time.monotonic()}
    host.define(domain(host, "web", image, plan=PLAN))
    host.define(domain(host, "db", image, plan=PLAN))
    host.define(domain(host, "plain", image))
    host.define(domain(host, "tiny", image))
    d.start()
    ctx["sampler"] = Sampler(d).__enter__()
    return ctx


def teardown(ctx):
    ctx["sampler"].__exit__(None, None, None)
    d, host = ctx["d"], ctx["host"]
    for v in ctx["sampler"].violations[:20]:
        comment(f"violation: {v}")
    d.finish(tap, "libvirt-e2e", ctx["t0"])
    host.stop()
    d.cleanup()


def mib_of(v):
    return v / MIB


def wait_running(d, name, timeout=WAIT):
    return wait_for(lambda: (lambda v: v if v["state"] == "running" else None)(d.vm(name)),
                    f"dynmemd to see {name} running", timeout=timeout, interval=0.2)


def wait_booted(d, host, name):
    return wait_reporting(d.vm, name, BOOT, why=lambda v: f"\n{console(host, name)[-2000:]}")


def lines(log, text):
    return [line for line in log.splitlines() if text in line]


def watch(d, seconds, cycles, look=lambda: None):
    """Call look() every half second for `seconds`, and on until dynmemd has run
    `cycles` more cycles (within WAIT): a window for what must not happen that a
    loaded machine cannot leave without the daemon at work in it."""
    first = d.status()["cycles"]
    start = time.monotonic()
    while True:
        look()
        ran = d.status()["cycles"] - first
        if time.monotonic() - start >= seconds and ran >= cycles:
            return ran
        check(time.monotonic() - start < WAIT, f"dynmemd ran {ran} cycles in {WAIT:.0f} s, "
              f"not {cycles}", d.log()[-2000:])
        time.sleep(0.5)


# ---- enable and disable ----

@tap.case
def enable_writes_what_libvirt_needs_and_disable_takes_it_out(ctx):
    d, host = ctx["d"], ctx["host"]
    before = host.virsh("dumpxml", "--inactive", "web")
    v = d.vm("web")
    check(v["origin"] == "libvirt" and not v["dynamic"], "web is listed, static", v)
    d.ok("enable", "web", "--minimum", "256M", "--maximum", "1G", "--weight", "8000")
    xml = host.virsh("dumpxml", "--inactive", "web")
    for part in ("<memory model='virtio-mem'>", "<alias name='ua-dynmem-vmem'/>",
                 "<maxMemory slots=", "<numa>", "name='org.dynmem.agent.0'",
                 "<stats period='1'/>", f"xmlns:dynmem=\"{NS}\"", "<dynmem:weight>8000"):
        check(part in xml, f"the persistent XML has {part}", xml)
    # As the QEMU backend's VMs, web boots with its first virtio-mem block plugged rather than
    # as boot RAM: 254 MiB of boot memory (its NUMA cell), the device 768 + 2 MiB made larger
    # to the next 128 MiB, requested one block, and the block recorded for disable.
    for part in ("memory='260096' unit='KiB'", "<size unit='KiB'>917504</size>",
                 "<requested unit='KiB'>2048</requested>"):
        check(part in xml, f"the persistent XML has {part}", xml)
    check(re.search(r"<dynmem:first unit=.bytes.>2097152</dynmem:first>", xml),
          "the metadata records the first block", xml)
    v = d.vm("web")
    check(v["dynamic"] and v["maximum_bytes"] == 1024 * MIB and v["weight"] == 8000 and
          v["startup_bytes"] == 256 * MIB and not v.get("problem"),
          "dynmemd reads the settings from the domain", v)
    r = d.ok("disable", "web")
    check("static again" in r.out, "disable says what it did", r)
    after = host.virsh("dumpxml", "--inactive", "web")
    check(after == before, "disable gives back the very XML enable started from",
          f"--- before\n{before}\n--- after\n{after}")
    d.ok("enable", "web", "--minimum", "256M", "--maximum", "1G", "--weight", "8000")
    d.ok("enable", "db", "--minimum", "256M", "--maximum", "1G", "--weight", "2000")


@tap.case
def a_static_domain_is_listed_and_enable_is_refused_while_it_runs(ctx):
    d, host = ctx["d"], ctx["host"]
    host.virsh("start", "plain")
    v = wait_running(d, "plain")
    check(not v["dynamic"] and v["assigned_bytes"] == 256 * MIB, "plain is static, 256 MiB", v)
    d.fails("enable", "plain", "--maximum", "1G", contains="running")
    check("ua-dynmem" not in host.virsh("dumpxml", "--inactive", "plain"),
          "nothing was written to plain")


# ---- balancing through libvirt ----

@tap.case
def domains_started_with_virsh_are_picked_up_and_grown_under_load(ctx):
    d, host = ctx["d"], ctx["host"]
    host.virsh("start", "web")
    host.virsh("start", "db")
    v = wait_running(d, "web")
    # Its first block is the domain's from the start (before its driver plugs it): it holds
    # its startup size, as dynmemd counts it.
    check(v["assigned_bytes"] == 256 * MIB, "web holds its 256 MiB startup size from the start",
          v)
    wait_running(d, "db")
    d.fails("disable", "web", contains="only while it is shut off")
    check("ua-dynmem-vmem" in host.virsh("dumpxml", "--inactive", "web"),
          "a refused disable leaves web's XML as it was")
    v = wait_booted(d, host, "web")
    comment(f"web reports {time.monotonic() - ctx['t0']:.0f} s into the test, MemTotal "
            f"{mib(v['guest_visible_bytes'])}")
    # libvirt learns of the plug from QEMU's size-change event, which may come after the
    # agent's first report on a busy machine.
    def plugged():
        live = host.virsh("dumpxml", "web")
        cur = re.search(r"<current unit='KiB'>(\d+)</current>", live)
        return live if cur and int(cur.group(1)) >= 2048 else None

    wait_for(plugged, "the guest to plug the first block at boot (the live XML's <current>)",
             interval=0.5)
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] >= 480 * MIB else None)(d.vm("web")),
                 "web to grow past 480 MiB", timeout=240, interval=0.5)
    live = host.virsh("dumpxml", "web")
    req = int(re.search(r"<requested unit='KiB'>(\d+)</requested>", live).group(1)) * 1024
    check(req > 0, "the growth is virtio-mem's, asked through libvirt (its live XML)", live)
    wait_for(lambda: abs(d.vm("web")["assigned_bytes"] - balloon_current(host, "web")) <= 4 * MIB,
             "dynmemd's figure to match libvirt's balloon.current", timeout=WAIT, interval=0.5)
    comment(f"web: {mib(v['assigned_bytes'])} assigned, demand {mib(v['demand_bytes'])}, "
            f"requested {mib(req)} of virtio-mem")


@tap.case
def under_scarcity_the_heavier_weight_keeps_more(ctx):
    d = ctx["d"]
    streak, looks, fullest = [], [], [0]

    def ahead():
        vms = d.vms()
        w, b = vms["web"]["assigned_bytes"], vms["db"]["assigned_bytes"]
        fullest[0] = max(fullest[0], d.status()["assigned_bytes"])
        streak.append((w, b))
        looks.append(" | ".join(f"{n} {mib(v['assigned_bytes'])} (demand "
                                f"{mib(v.get('demand_bytes') or 0)}, {v['reason']})"
                                for n, v in ((n, vms[n]) for n in ("web", "db"))))
        recent = streak[-5:]
        return len(recent) == 5 and all(x - y >= 64 * MIB for x, y in recent)
    try:
        wait_for(ahead, "web (weight 8000) to hold 64 MiB more than db (2000)", timeout=240,
                 interval=1.0)
    except Failure:
        # Weight can only decide once the host is full: if the guests' loads (TCG on a
        # busy machine) never filled it, the case has nothing to judge; say so.
        if fullest[0] < MEMORY - 64 * MIB:
            raise Skip(f"the host never came within 64 MiB of full (at most "
                       f"{mib(fullest[0])} of {mib(MEMORY)}): no scarcity to judge weight by")
        for look in looks[-60::6]:  # what each held and needed, every 6th look of the last 60
            comment(look)
        raise
    h = d.status()
    w, b = streak[-1]
    comment(f"web {mib(w)}, db {mib(b)}, host {mib(h['assigned_bytes'])} of {mib(MEMORY)}")
    check(h["assigned_bytes"] <= MEMORY, "the host's budget holds", h)


@tap.case
def settings_live_in_the_domains_metadata(ctx):
    d, host = ctx["d"], ctx["host"]
    d.ok("set", "db", "--weight", "3000")
    for flag in ("--live", "--config"):
        meta = host.virsh("metadata", "db", NS, flag)
        check("<weight>3000</weight>" in meta, f"dynmem set wrote the metadata ({flag})", meta)
    hand = meta.replace("<weight>3000</weight>", "<weight>2500</weight>")
    host.virsh("metadata", "db", NS, "--key", "dynmem", "--set", hand, "--live", "--config")
    wait_for(lambda: d.vm("db")["weight"] == 2500,
             "dynmemd to take a change made with virsh metadata", timeout=WAIT, interval=0.2)
    d.fails("set", "db", "--maximum", "2G", contains="raise the maximum while it is off")


@tap.case
def memory_is_taken_back_once_the_load_falls(ctx):
    d = ctx["d"]
    # db (the lighter) may grow when web gives back: only web's own shrink is certain
    try:
        wait_for(lambda: d.vm("web")["assigned_bytes"] <= 400 * MIB,
                 "web to shrink below 400 MiB", timeout=240, interval=1.0)
    except Failure as e:
        loads = [line for line in console(ctx["host"], "web").splitlines()
                 if "dynmem-load" in line and "holding" not in line]
        raise Failure(f"{e}\nweb's load:\n" + "\n".join(loads[-15:]))
    finally:
        # db's load may have been OOM-killed and started again: it leaves, so that what
        # follows does not depend on where its load is
        ctx["host"].virsh("destroy", "db")
        wait_for(lambda: d.vm("db")["state"] == "off", "db to be off", timeout=WAIT, interval=0.2)
    comment(f"after the load: web {mib(d.vm('web')['assigned_bytes'])}")


# ---- faults ----

def start_resize(d, name, buffer):
    """Change the buffer and wait until dynmemd has asked for the new size."""
    before = d.vm(name)["target_bytes"]
    d.ok("set", name, "--buffer", str(buffer))
    return wait_for(lambda: (lambda v: v if v["target_bytes"] != before else None)(d.vm(name)),
                    f"a resize of {name} to be asked", timeout=WAIT, interval=0.05)


@tap.case
def kill_9_of_libvirtd_in_the_middle_of_a_resize(ctx):
    d, host = ctx["d"], ctx["host"]
    pids = {n: qemu_pid(host, n) for n in ("web", "plain")}
    check(all(pids.values()), "libvirt's pid files name both QEMUs", pids)
    v = start_resize(d, "web", 400)
    host.kill_libvirtd()
    comment(f"libvirtd killed while web moves from {mib(v['assigned_bytes'])} to "
            f"{mib(v['target_bytes'])}")
    wait_for(lambda: lines(d.log(), "the VMs keep their sizes until it answers again"),
             "dynmemd to say libvirt is gone", timeout=WAIT, interval=0.2)
    # backoff retries meanwhile (1 s, then 2 s): said once. Four cycles (of 1 s) see
    # the one after 1 s and reach the one after 2 more, however late they run.
    watch(d, 4, 4)
    check(d.proc.poll() is None, "dynmemd is alive", d.log()[-2000:])
    check(len(lines(d.log(), "until it answers again")) == 1, "said once", d.log()[-3000:])
    vms = d.vms()
    check(all(vms[n]["state"] == "running" for n in pids), "every VM still listed running", vms)
    check(all(os.path.exists(f"/proc/{p}") for p in pids.values()),
          "the guests' QEMUs keep running", pids)
    host.start_libvirtd()
    wait_for(lambda: lines(d.log(), "qemu:///system answers again (libvirt"),
             "dynmemd to reconnect", timeout=60, interval=0.2)
    for n in pids:
        check(domstate(host, n) == "running", f"{n} still runs in libvirt")
    wait_for(lambda: abs(d.vm("web")["assigned_bytes"] - balloon_current(host, "web")) <= 4 * MIB,
             "dynmemd's figure for web to match libvirt's again", timeout=WAIT, interval=0.5)
    wait_for(lambda: (lambda v: v["assigned_bytes"] >= v["target_bytes"] - 8 * MIB)(d.vm("web")),
             "web to reach its target through the new connection", timeout=120, interval=0.5)


@tap.case
def kill_9_of_dynmemd_in_the_middle_of_a_resize(ctx):
    d, host = ctx["d"], ctx["host"]
    v = start_resize(d, "web", 20)  # a shrink (asked 2 s after: [policy] shrink_delay)
    d.kill9()
    comment(f"dynmemd killed while web moves from {mib(v['assigned_bytes'])} to "
            f"{mib(v['target_bytes'])}")
    d.start()
    wait_for(lambda: d.vm("web")["state"] == "running" and d.vm("plain")["state"] == "running",
             "the restarted dynmemd to see web and plain running", timeout=WAIT, interval=0.2)
    log = d.log()
    check(lines(log, "web: reattached"), "web is reattached (counters kept)", log[-3000:])
    check(d.vm("web")["weight"] == 8000 and d.vm("db")["weight"] == 2500,
          "the settings came back from the domains (running or not)", d.vms())

    def consistent():
        vms, h = d.vms(), d.status()
        ours = sum(vms[n]["assigned_bytes"] for n in ("web", "plain"))
        theirs = sum(balloon_current(host, n) for n in ("web", "plain"))
        return abs(ours - theirs) <= 8 * MIB and h["assigned_bytes"] == ours
    wait_for(consistent, "the memory dynmemd counts to be libvirt's, once", timeout=WAIT,
             interval=0.5)
    check(d.status()["assigned_bytes"] <= MEMORY, "the budget holds", d.status())


@tap.case
def dynmemd_started_while_libvirtd_is_down_waits_for_it(ctx):
    d, host = ctx["d"], ctx["host"]
    check(d.stop() == 0, "dynmemd stops on SIGTERM", d.log()[-2000:])
    host.kill_libvirtd()
    said = len(lines(d.log(), "until it answers again"))
    d.start()
    wait_for(lambda: len(lines(d.log(), "until it answers again")) == said + 1,
             "the new dynmemd to say libvirt cannot be reached", timeout=WAIT, interval=0.2)
    check(d.status() is not None and d.proc.poll() is None, "dynmemd runs and answers",
          d.log()[-2000:])
    # dynmem status and top say so, with what the log said, until libvirt answers
    h = d.status()
    check(h.get("backend_error") and "the VMs keep their sizes until it answers again" in
          h["backend_error"], "status --json has why libvirt cannot be reached", h)
    out = d.ok("status").out
    check(re.search(r"^Backend: +UNREACHABLE: libvirt at qemu:///system: ", out, re.M),
          "dynmem status says libvirt cannot be reached", out)
    # a start of a domain defined meanwhile is not known: the note says why
    r = d.ok("admit", "definedmeanwhile")
    check("admitted unchecked" in r.out and
          "libvirt at qemu:///system cannot be reached now" in r.out,
          "admitting a domain dynmemd cannot know says why it is unknown", r)
    host.start_libvirtd()
    wait_for(lambda: d.vm("web")["state"] == "running" and d.vm("plain")["state"] == "running",
             "dynmemd to find web and plain once libvirtd answers", timeout=60, interval=0.2)
    check(d.status().get("backend_error") is None and "UNREACHABLE" not in d.ok("status").out,
          "once libvirt answers, status no longer says it cannot be reached", d.status())
    check(d.vm("web")["dynamic"] and d.vm("web")["weight"] == 8000,
          "web's settings came from its metadata", d.vm("web"))
    wait_for(lambda: abs(d.vm("web")["assigned_bytes"] - balloon_current(host, "web")) <= 4 * MIB,
             "dynmemd's figure for web to be libvirt's", timeout=WAIT, interval=0.5)


# ---- hostile input ----

# The hostile domain runs hostile-agent (tests/hostile) in place of dynmem-guest, in turn:
# for CLAIM seconds well-formed reports, which dynmemd takes, claiming far more than its
# maximum (every page in use, 100 % of the time stalled, short by twice its MemTotal); a
# flood of reports; garbage and wrong protocol versions, which get the agent refused; then
# the claim again, which a refused agent makes unheard (dynmemd falls back to the balloon's
# statistics). CLAIM covers the agent's first report, the domain's growth to its maximum
# and the window after it on a busy machine; the case fails, saying so, if it runs out.
HOSTILE_MAX = 512 * MIB
CLAIM = 45
HOSTILE_SCHEDULE = f"max:{CLAIM},flood:15,garbage:15,max"
SLACK = 8 * MIB  # a few blocks: the guest onlines what it is given block by block


def hostile_modes(host):
    """The hostile agent's modes so far, in order, from its console."""
    return re.findall(r"hostile-agent: mode (\w+)", console(host, "hostile"))


def hostile_looker(d, host, seen):
    """A look() for watch(): what libvirt says each running domain holds, against the
    hostile domain's maximum, web's minimum and the demand web reports, and the host's
    memory; what breaks them goes into seen["broken"], the most each held into seen."""
    def look():
        vms = d.vms()
        held = {n: balloon_current(host, n) for n in ("hostile", "web", "plain")}
        for n, b in held.items():
            seen[n] = max(seen.get(n, 0), b)
        web, hostile = vms["web"], vms["hostile"]
        due = max(web["minimum_bytes"], min(web["demand_bytes"] or 0, web["maximum_bytes"]))
        broken = []
        if held["hostile"] > HOSTILE_MAX or hostile["target_bytes"] > HOSTILE_MAX:
            broken.append(f"hostile above its maximum: libvirt says {mib(held['hostile'])}, "
                          f"dynmemd asks {mib(hostile['target_bytes'])}")
        if held["web"] + SLACK < due:
            broken.append(f"web holds {mib(held['web'])} (libvirt), below its due {mib(due)} "
                          f"(minimum {mib(web['minimum_bytes'])}, demand "
                          f"{mib(web['demand_bytes'] or 0)})")
        if sum(held.values()) > MEMORY:
            broken.append(f"the domains hold {mib(sum(held.values()))} of {mib(MEMORY)}")
        seen.setdefault("broken", []).extend(broken)
        return held
    return look


@tap.case
def a_hostile_agent_whose_claims_dynmemd_takes_gets_no_more_than_its_maximum(ctx):
    d, host, image = ctx["d"], ctx["host"], ctx["hostile_image"]
    host.define(domain(host, "hostile", image, extra=f"dynmem.hostile={HOSTILE_SCHEDULE}"))
    d.ok("enable", "hostile", "--minimum", "256M", "--maximum", "512M", "--weight", "5000")
    host.virsh("start", "hostile")
    ctx["hostile_started"] = True
    wait_for(lambda: "max" in hostile_modes(host), "the hostile agent to start claiming",
             timeout=BOOT, interval=0.5)
    started = time.monotonic()
    # dynmemd takes its reports: the demand it shows is the agent's, above the maximum
    v = wait_for(lambda: (lambda v: v if v["backend"]["signal"] == "agent" and
                          (v["demand_bytes"] or 0) > HOSTILE_MAX else None)(d.vm("hostile")),
                 "dynmemd to take the agent's claim above the maximum", interval=0.2)
    comment(f"hostile claims {mib(v['demand_bytes'])} ({v['backend']['signal']}, agent "
            f"{v['backend']['agent_state']}, reason {v['reason']}), MemTotal "
            f"{mib(v['guest_visible_bytes'] or 0)}")
    seen = {}
    look = hostile_looker(d, host, seen)
    # Believed, it grows: as far as its maximum, as libvirt says, and for 10 of dynmemd's
    # cycles more (of 1 s) it stays there while it claims on.
    wait_for(lambda: look()["hostile"] >= HOSTILE_MAX - SLACK or seen["broken"],
             "the hostile domain to grow to its maximum (libvirt's balloon.current)",
             interval=0.5)
    comment(f"hostile at {mib(seen['hostile'])} {time.monotonic() - started:.0f} s into its claim")
    watch(d, 0, 10, look)
    comment("libvirt said at most: " + ", ".join(f"{n} {mib(seen[n])}" for n in
                                                  ("hostile", "web", "plain")))
    check(not seen["broken"], "while it claims, the hostile domain stays within its maximum, "
          "web keeps its minimum and its demand, the host's memory holds", *seen["broken"][:10])
    modes = hostile_modes(host)
    check(modes == ["max"], f"all of it while the agent claimed (its modes: {modes}; "
          f"{time.monotonic() - started:.0f} s of its {CLAIM} s: lengthen CLAIM)")
    v = d.vm("hostile")
    check(v["backend"]["signal"] == "agent" and v["demand_bytes"] > HOSTILE_MAX,
          "dynmemd still takes the agent's claim", v)
    check(d.proc.poll() is None, "dynmemd is alive", d.log()[-2000:])


@tap.case
def a_hostile_agent_sending_garbage_is_refused_and_gets_no_more_than_its_maximum(ctx):
    d, host = ctx["d"], ctx["host"]
    check(ctx.get("hostile_started"), "the hostile domain was started (the case before)")
    # its flood, its garbage, then its claim again, unheard
    wait_for(lambda: hostile_modes(host)[-1:] == ["max"] and len(hostile_modes(host)) > 1,
             "the hostile agent's garbage to end", timeout=BOOT, interval=0.5)
    wait_for(lambda: lines(d.log(), '"hostile": guest agent'),
             "lib/agent's parser to see through it (its garbage logged)", interval=0.2)
    v = wait_for(lambda: (lambda v: v if v["backend"]["agent_state"] == "refused" else None)(
        d.vm("hostile")), "dynmemd to refuse the agent (its wrong versions)", interval=0.2)
    seen = {}
    look = hostile_looker(d, host, seen)
    # 15 of dynmemd's cycles (of 1 s) balancing against its unheard claim
    watch(d, 0, 15, look)
    check(not seen["broken"], "the hostile domain stays within its maximum, web keeps its "
          "minimum and its demand, the host's memory holds", *seen["broken"][:10])
    check(d.proc.poll() is None, "dynmemd is alive", d.log()[-2000:])
    v = d.vm("hostile")
    check(v["backend"]["signal"] != "agent", "its claim is not heard", v)
    comment(f"hostile claims {mib(v['demand_bytes'] or 0)} ({v['backend']['signal']}), "
            f"MemTotal {mib(v['guest_visible_bytes'] or 0)}")
    comment(f"hostile: {mib(d.vm('hostile')['assigned_bytes'])}, "
            f"{len(lines(d.log(), 'hostile'))} log lines about it")
    host.virsh("destroy", "hostile")
    wait_for(lambda: d.vm("hostile")["state"] == "off", "hostile to be off", timeout=WAIT,
             interval=0.2)


@tap.case
def bad_metadata_is_reported_for_that_domain_and_the_others_are_balanced(ctx):
    d, host = ctx["d"], ctx["host"]
    host.define(domain(host, "bad", ctx["image"]))
    host.virsh("metadata", "bad", NS, "--key", "dynmem", "--config", "--set",
               "<memory><minimum>1</minimum><maximum>3</maximum><weight>99999</weight></memory>")
    v = wait_for(lambda: (lambda v: v if v.get("problem") else None)(d.vm("bad")),
                 "dynmemd to report bad's metadata", timeout=WAIT, interval=0.2)
    check("weight" in v["problem"] and not v["dynamic"], "the problem is named", v)
    d.fails("set", "bad", "--weight", "10", contains="metadata")
    w = d.vm("web")
    check(w["dynamic"] and not w.get("problem") and w["status"] != "unknown",
          "web is still balanced", w)
    check(len(lines(d.log(), "bad: not balanced")) == 1, "the log says it once",
          d.log()[-2000:])
    host.virsh("undefine", "bad")
    wait_for(lambda: "bad" not in d.vms(), "dynmemd to drop bad once libvirt undefines it",
             timeout=WAIT, interval=0.2)


@tap.case
def a_domain_stopped_and_started_behind_dynmemds_back_is_followed(ctx):
    d, host = ctx["d"], ctx["host"]
    held = d.status()["assigned_bytes"]
    host.virsh("destroy", "plain")
    wait_for(lambda: d.vm("plain")["state"] == "off", "plain to be off in dynmemd",
             timeout=WAIT, interval=0.1)
    check(d.status()["assigned_bytes"] <= held - 200 * MIB, "its memory is free again",
          d.status())
    host.virsh("start", "plain")
    wait_running(d, "plain", timeout=WAIT)


# ---- admission through libvirt's hook ----

@tap.case
def a_start_that_cannot_fit_is_refused_through_the_hook(ctx):
    d, host = ctx["d"], ctx["host"]
    host.define(domain(host, "big", ctx["image"], memory=1200))
    wait_for(lambda: "big" in d.vms(), "dynmemd to list big", timeout=WAIT, interval=0.2)
    p = host.virsh("start", "big", check=False)
    check(p.returncode != 0 and "not enough memory" in p.stderr,
          "virsh start big fails with dynmemd's reason", p)
    check(domstate(host, "big") == "shut off", "big stays off")
    d.fails("start", "big", contains="not enough memory")


@tap.case
def dynmem_start_and_stop_go_through_libvirt(ctx):
    d, host = ctx["d"], ctx["host"]
    r = d.ok("start", "tiny")
    check("started by libvirt" in r.out, "dynmem start says who started it", r)
    check(domstate(host, "tiny") == "running", "libvirt runs tiny")
    check(not lines(open(ctx["hook_log"]).read() if os.path.exists(ctx["hook_log"]) else "",
                    "tiny: starts without admission"),
          "the hook knew dynmemd was starting tiny itself (no wait on it)")
    r = d.ok("stop", "--force", "tiny")
    check("stopped by libvirt" in r.out, "dynmem stop says who stopped it", r)
    wait_for(lambda: domstate(host, "tiny") == "shut off", "libvirt to shut tiny off",
             timeout=WAIT, interval=0.2)


@tap.case
def a_guest_reboot_brings_the_domain_back_to_its_startup_size(ctx):
    d, host = ctx["d"], ctx["host"]
    host.define(domain(host, "boots", ctx["image"], plan="hold:3s,ramp:256M:10s,hold:3600s",
                       on_reboot="restart"))
    d.ok("enable", "boots", "--minimum", "256M", "--maximum", "768M", "--weight", "5000")
    host.virsh("start", "boots")
    wait_booted(d, host, "boots")
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] >= 320 * MIB else None)(
        d.vm("boots")), "boots to grow under its load", timeout=BOOT, interval=0.5)
    comment(f"boots: {mib(v['assigned_bytes'])} before the reset")
    events = len(lines(d.log(), "boots: the guest restarted; back to 256 MiB"))
    host.virsh("reset", "boots")
    wait_for(lambda: len(lines(d.log(), "boots: the guest restarted; back to 256 MiB")) > events,
             "dynmemd to take boots back to its startup size", timeout=WAIT, interval=0.2)
    check(domstate(host, "boots") == "running", "boots runs on (libvirt restarted the guest)")
    low = wait_for(lambda: (lambda v: v if v["assigned_bytes"] <= 256 * MIB else None)(
        d.vm("boots")), "boots to hold no more than its startup size", timeout=WAIT, interval=0.2)
    comment(f"boots: {mib(low['assigned_bytes'])} after the reset")
    check(low["assigned_bytes"] == 256 * MIB,
          "after the reset boots holds its startup size, the first block counted", low)
    # The first MemTotal dynmemd has after the reboot is the new boot's (its startup
    # memory less the kernel's), not the old boot's balloon statistics QEMU still holds.
    seen = wait_for(lambda: d.vm("boots")["guest_visible_bytes"], "a MemTotal of the new boot",
                    timeout=BOOT, interval=0.2)
    check(seen <= 256 * MIB, "the first MemTotal after the reboot is the new boot's", mib(seen))
    v = wait_booted(d, host, "boots")
    comment(f"boots: reporting again after the reboot, MemTotal {mib(v['guest_visible_bytes'])}, "
            f"signal {v['backend']['signal']}")
    host.virsh("destroy", "boots")
    wait_for(lambda: d.vm("boots")["state"] == "off", "boots to be off", timeout=WAIT,
             interval=0.2)


@tap.case
def with_dynmemd_down_a_start_goes_ahead_and_is_logged(ctx):
    d, host = ctx["d"], ctx["host"]
    check(d.stop() == 0, "dynmemd stops on SIGTERM", d.log()[-2000:])
    host.virsh("start", "tiny")
    check(domstate(host, "tiny") == "running", "tiny started without dynmemd")
    with open(ctx["hook_log"]) as f:
        text = f.read()
    check(lines(text, "tiny: starts without admission"), "the hook said so", text)
    host.virsh("destroy", "tiny")
    d.start()
    wait_running(d, "web")


@tap.case
def the_static_domain_was_never_resized(ctx):
    d, host = ctx["d"], ctx["host"]
    log = d.log()
    check(not lines(log, "plain +") and not lines(log, "plain -"), "no resize of plain",
          lines(log, "plain"))
    check(balloon_current(host, "plain") == 256 * MIB, "libvirt says plain holds 256 MiB")
    check("virtio-mem" not in host.virsh("dumpxml", "plain"), "no virtio-mem in plain")


@tap.case
def the_budget_minimum_and_maximum_held_throughout(ctx):
    s = ctx["sampler"]
    over = [(round(t - ctx["t0"], 1), {n: mib(a) for n, a in vms.items() if a})
            for t, vms in s.series if sum(vms.values()) > MEMORY]
    check(s.samples > 50, "the sampler ran", s.samples)
    check(not s.violations, "no violation", s.violations[:10], over[:10])
    comment(f"{s.samples} samples, the VMs held at most {mib(s.max_assigned)} of "
            f"{mib(MEMORY)}")


if __name__ == "__main__":
    main(tap, setup, teardown)
