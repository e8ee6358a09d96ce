"""hostilelib: what the hostile-guest and kill tests share, on top of
tests/e2e/e2elib.py: the image of the hostile guest (hostile-agent installed
as /bin/dynmem-guest, and dynmem-load), built with guest/image/build.sh into
DYNMEM_HOSTILE_IMAGE_DIR from DYNMEM_HOSTILE_PROGRAMS; VM sections for honest
and hostile guests; dynmemd's RSS and its log lines about one VM; the
weighted water-filling the policy uses under scarcity, to say what share a VM
is due.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from e2elib import *  # noqa: E402,F401,F403
from e2elib import MIB, skip_all  # noqa: E402


def hostile_image():
    """The hostile guest's image folder, built if needed (skips the test when it cannot be)."""
    out = os.environ.get("DYNMEM_HOSTILE_IMAGE_DIR")
    src = os.environ.get("DYNMEM_SOURCE_ROOT")
    programs = [p for p in os.environ.get("DYNMEM_HOSTILE_PROGRAMS", "").split(":") if p]
    if not out or not src or len(programs) != 2:
        skip_all("DYNMEM_HOSTILE_IMAGE_DIR or DYNMEM_HOSTILE_PROGRAMS unset (run through meson)")
    os.makedirs(out, exist_ok=True)
    with open(out + ".log", "w") as log:
        r = subprocess.run([os.path.join(src, "guest", "image", "build.sh"), out] + programs,
                           stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        skip_all(f"the hostile guest image could not be built (see {out}.log)")
    return out


HONEST = """
[vm "{name}"]
dynamic = yes
startup = 256M
minimum = 256M
maximum = {maximum}
buffer = 20
weight = {weight}
accel = tcg
shutdown_timeout = 1s
append = dynmem.load={plan}
autostart = yes
"""

HOSTILE = """
[vm "{name}"]
dynamic = yes
startup = 256M
minimum = 256M
maximum = {maximum}
buffer = 20
weight = {weight}
accel = tcg
shutdown_timeout = 1s
kernel = {image}/vmlinuz
initrd = {image}/initrd.img
append = {cmdline} dynmem.hostile={schedule}
autostart = yes
"""


def honest_vm(name, weight, plan, maximum="1G"):
    return HONEST.format(name=name, weight=weight, plan=plan, maximum=maximum)


def hostile_vm(name, weight, image, schedule, maximum="1G"):
    with open(os.path.join(image, "cmdline")) as f:
        cmdline = f.read().strip()
    return HOSTILE.format(name=name, weight=weight, image=image, cmdline=cmdline,
                          schedule=schedule, maximum=maximum)


def rss(pid):
    """VmRSS of a process, in bytes (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def lines_about(log, name):
    """The lines of dynmemd's log that name VM `name`."""
    return [line for line in log.splitlines() if f'"{name}"' in line or f"{name}:" in line]


def water_fill(memory, vms):
    """What the policy's allocation gives each VM when the floors fit and the
    needs do not: every VM its floor, the rest shared toward need in
    proportion to weight, what capped VMs cannot take shared among the rest.
    vms: {name: (floor, need, weight)}; returns {name: bytes}."""
    got = {n: f for n, (f, _, _) in vms.items()}
    left = memory - sum(got.values())
    open_ = {n for n, (f, need, w) in vms.items() if need > f and w > 0}
    while left > 0 and open_:
        total_w = sum(vms[n][2] for n in open_)
        capped = set()
        for n in open_:
            room = vms[n][1] - got[n]
            if left * vms[n][2] / total_w >= room:
                capped.add(n)
        if not capped:
            for n in open_:
                got[n] += left * vms[n][2] / total_w
            left = 0
            break
        for n in capped:
            left -= vms[n][1] - got[n]
            got[n] = vms[n][1]
        open_ -= capped
    return got


def console_summaries(console, mode):
    """(lines, bytes, opens, seconds) of each 'hostile-agent: MODE: ...' summary line."""
    out = []
    for line in console.splitlines():
        tag = f"hostile-agent: {mode}: "
        if tag not in line:
            continue
        words = line.split(tag, 1)[1].replace(",", "").split()
        try:
            out.append((int(words[0]), int(words[2]), int(words[4]), float(words[7])))
        except (IndexError, ValueError):
            continue
    return out
