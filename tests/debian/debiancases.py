"""debiancases: the checks of the ordinary guest (guest/debian/build.sh's image,
profile base) that hold whatever runs it, shared by test_debian_guest.py (dynmemd's
QEMU backend) and test_debian_libvirt.py (a libvirt domain under dynmemd's libvirt
backend). Each is a case function of ctx:

  d        the test's dynmemd (dynmemtest.Daemon or lvlib.LvDaemon)
  g        debianlib.Guest of the guest NAME, through qemu-guest-agent
  console  a function returning the guest's serial console so far
  t0       time.monotonic() when dynmemd started

in this order: the guest boots with systemd at its startup size; the agent runs
as a systemd service and the host hears it with every capability; nothing but
the agent onlines hot-added memory; a rising load (tmpfs filled 16 MiB a second)
gets memory hot-added, online and movable, without an OOM kill; half the load
freed gives memory back while the guest runs. Every guest here has the settings
SETTINGS (512 MiB startup and minimum, 1536 MiB maximum, buffer 20 %).
"""
import time

from debianlib import MIB
from dynmemtest import check, comment, mib, wait_for
from qga import QgaError

NAME = "deb"
STARTUP = 512 * MIB
MAXIMUM = 1536 * MIB
BUFFER = 20
FILL_STEPS = 36  # x 16 MiB = 576 MiB of tmpfs, one step a second
BOOT_TIMEOUT = 420  # systemd boot under TCG on two shared, busy cores

# The memory settings, as dynmemd's [vm] keys and as `dynmem enable` options.
SETTINGS = f"""dynamic = yes
startup = 512M
minimum = 512M
maximum = 1536M
buffer = {BUFFER}"""
ENABLE_OPTIONS = ["--minimum", "512M", "--maximum", "1536M", "--buffer", str(BUFFER)]


def wait_qga(ctx, what, timeout=BOOT_TIMEOUT):
    g = ctx["g"]
    check(g.qga.wait_up(timeout), f"qemu-guest-agent to answer ({what})", ctx["d"].log()[-2000:],
          ctx["console"]()[-3000:])


def try_sh(g, script):
    """stdout of script, or "" while the guest does not answer."""
    try:
        return g.sh(script)
    except (OSError, QgaError):
        return ""


def ready_lines(d):
    return [line for line in d.log().splitlines() if "guest agent" in line and " ready:" in line]


def the_guest_boots_with_systemd(ctx):
    d, g = ctx["d"], ctx["g"]
    wait_qga(ctx, "first boot")
    state = wait_for(lambda: (lambda s: s if s in ("running", "degraded") else None)(
        try_sh(g, "systemctl is-system-running || true").strip()),
        "systemd to finish booting", timeout=BOOT_TIMEOUT, interval=2)
    ctx["memtotal0"] = g.meminfo("MemTotal")
    ctx["boot0"] = g.boot_id()
    comment(f"systemd {state} {time.monotonic() - ctx['t0']:.0f} s after dynmemd started; "
            f"MemTotal {mib(ctx['memtotal0'])}")
    failed = g.sh("systemctl --failed --no-legend --plain | cut -d' ' -f1").split()
    check(not failed, "no unit failed", failed)
    check(d.vm(NAME)["assigned_bytes"] == STARTUP, "it starts with its startup size", d.vm(NAME))


def the_agent_runs_as_a_systemd_service(ctx):
    d, g = ctx["d"], ctx["g"]
    check(g.sh("systemctl is-enabled dynmem-guest").strip() == "enabled", "the unit is enabled")
    check(g.sh("systemctl is-active dynmem-guest || true").strip() == "active",
          "the unit is active", g.sh("systemctl status dynmem-guest --no-pager || true"))
    pid = g.sh("systemctl show -p MainPID --value dynmem-guest").strip()
    check(g.sh(f"readlink /proc/{pid}/exe").strip() == "/usr/sbin/dynmem-guest",
          "its main process is the agent")
    cgroup = g.sh(f"cat /proc/{pid}/cgroup")
    check("/system.slice/dynmem-guest.service" in cgroup, "it runs in the unit's cgroup", cgroup)
    check(g.sh("systemctl show -p NRestarts --value dynmem-guest").strip() == "0",
          "systemd never had to restart it")
    status = g.sh(f"grep -E '^Vm(Lck|RSS)' /proc/{pid}/status")
    vm = {l.split(":")[0]: int(l.split()[1]) for l in status.splitlines()}
    journal = g.sh("journalctl -b -u dynmem-guest --no-pager || true")
    check(0 < vm.get("VmRSS", 0) <= vm.get("VmLck", 0) and "memory not locked" not in journal,
          "under the unit's sandbox its pages are locked in RAM (mlockall)", status, journal)
    v = wait_for(lambda: (lambda v: v if v["demand_bytes"] else None)(d.vm(NAME)),
                 "the host to have the agent's demand", timeout=120, interval=1)
    comment(f"demand {mib(v['demand_bytes'])}, guest MemTotal {mib(v['guest_visible_bytes'])}")
    # Capabilities are read again at every handshake: the last one must show the
    # devices, although the agent started before udev had loaded their drivers.
    caps = wait_for(lambda: (lambda r: r and all(c in r[-1] for c in ("balloon", "virtio-mem"))
                             and r[-1])(ready_lines(d)),
                    "a handshake with the balloon and virtio-mem among the capabilities",
                    timeout=60, interval=1)
    comment(caps.split("dynmemd: ")[-1])
    check("online-movable" in caps and "psi" in caps, "PSI and onlining too", caps)


def nothing_but_the_agent_onlines_memory(ctx):
    g = ctx["g"]
    cmdline = g.sh("cat /proc/cmdline")
    check("memhp" not in cmdline and "memory_hotplug" not in cmdline,
          "nothing about hotplug on the kernel command line", cmdline)
    check(g.sh("cat /sys/devices/system/memory/auto_online_blocks").strip() == "offline",
          "the kernel leaves hot-added memory offline")
    rules = g.sh("grep -ls 'SUBSYSTEM==\"memory\"' /lib/udev/rules.d/* /etc/udev/rules.d/* "
                 "| xargs -r grep -l state || true").split()
    check(not rules, "no udev rule onlines memory", rules)


def fill(g, steps, first=1):
    """Start filling a tmpfs with 16 MiB files, one a second (in the background)."""
    g.sh("mkdir -p /mnt/fill && (mountpoint -q /mnt/fill || "
         "mount -t tmpfs -o size=1200m,mode=700 fill /mnt/fill)")
    g.qga.spawn(["/bin/sh", "-c", f"i={first}; while [ $i -lt {first + steps} ]; do "
                 "dd if=/dev/zero of=/mnt/fill/f$i bs=1M count=16 status=none; "
                 "i=$((i + 1)); sleep 1; done"])


def a_rising_load_gets_memory_hot_added_and_online(ctx):
    d, g = ctx["d"], ctx["g"]
    ooms = g.vmstat("oom_kill")
    t = time.monotonic()
    fill(g, FILL_STEPS)
    want = FILL_STEPS * 16 * MIB
    wait_for(lambda: int(try_sh(g, "du -sm /mnt/fill | cut -f1") or 0) * MIB >= want,
             "the guest to hold its load", timeout=300, interval=2)

    def grown():
        v = d.vm(NAME)
        return v if v["assigned_bytes"] >= STARTUP + 256 * MIB and \
            v["guest_visible_bytes"] >= ctx["memtotal0"] + 256 * MIB else None
    v = wait_for(grown, "assigned memory and the guest's MemTotal to grow", timeout=180,
                 interval=1)
    comment(f"assigned {mib(v['assigned_bytes'])}, guest MemTotal "
            f"{mib(v['guest_visible_bytes'])} {time.monotonic() - t:.0f} s after the fill began")
    blocks = g.memory_blocks()
    hot = [b for b in blocks if b[2] != "-" and "Movable" in b[2]]
    offline = [b for b in blocks if b[1] != "online"]
    check(not offline, "every memory block is online", offline)
    check(len(hot) * 128 * MIB >= 256 * MIB, "the hot-added blocks are movable (unpluggable)",
          blocks)
    journal = g.sh("journalctl -b -u dynmem-guest --no-pager -o cat")
    check("memory blocks online" in journal, "the agent brought them online", journal[-1500:])
    check(g.vmstat("oom_kill") == ooms, "no OOM kill in the guest")
    check(v["assigned_bytes"] <= MAXIMUM, "never above its maximum", v)
    ctx["grown"] = v["assigned_bytes"]


def half_the_load_freed_gives_memory_back(ctx):
    d, g = ctx["d"], ctx["g"]
    g.sh("rm -f " + " ".join(f"/mnt/fill/f{i}" for i in range(1, FILL_STEPS // 2 + 1)))
    t = time.monotonic()
    before = d.vm(NAME)["guest_visible_bytes"]
    v = wait_for(lambda: (lambda v: v if v["assigned_bytes"] <= ctx["grown"] - 128 * MIB
                          and v["guest_visible_bytes"] < before else None)(d.vm(NAME)),
                 "memory to be unplugged", timeout=180, interval=1)
    comment(f"assigned {mib(v['assigned_bytes'])}, guest MemTotal "
            f"{mib(v['guest_visible_bytes'])} {time.monotonic() - t:.0f} s after the load fell")
    check(v["assigned_bytes"] > STARTUP, "still above its startup size (half the load held)", v)
    ctx["before_reboot"] = v["assigned_bytes"]


# The later cases cannot run without a booted guest: they are skipped, not timed out.
the_guest_boots_with_systemd.prerequisite = True

# In order: each case needs the ones before it.
CASES = [the_guest_boots_with_systemd, the_agent_runs_as_a_systemd_service,
         nothing_but_the_agent_onlines_memory, a_rising_load_gets_memory_hot_added_and_online,
         half_the_load_freed_gives_memory_back]
