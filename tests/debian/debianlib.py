"""debianlib: what the tests and bench/apps share to run dynmem's ordinary guest
(guest/debian/build.sh: Debian 12, systemd, dynmem-guest installed as a
service, qemu-guest-agent) under dynmemd's QEMU backend.

- build_image(): builds (or finds up to date) the image, or says why it cannot
  be had here; a failure of the build itself is an error, not a reason to skip.
- overlay(): a qcow2 file over the image's disk.raw, one per guest, so that
  guests never write the shared image.
- vm_section(): a [vm] section booting the image, with the guest agent's port
  and qemu-guest-agent's port (org.qemu.guest_agent.0, a unix socket in the
  run folder, driven with qga.Qga).
- Guest: what the tests ask a running guest through qemu-guest-agent.

dynmemd's launcher runs QEMU as user dynmem-qemu ([host] qemu_user, docs/security.md):
what QEMU opens by name itself (qemu-guest-agent's socket, a disk attached through
qemu_args) must be that user's; qga_socket() and for_qemu() see to it.
"""
import os
import pwd
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

from qga import Qga, QgaError

MIB = 1 << 20


def cannot_build_reason(source):
    """Why the image cannot be built here (None: it can): not root, a tool missing,
    Debian's archive unreachable."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, QEMU's sockets)"
    for tool in ("debootstrap", "mkfs.ext4", "unshare", "qemu-img", "qemu-system-x86_64"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return f"{tool} is not installed (scripts/deps.sh installs it)"
    mirror = os.environ.get("DEBIAN_MIRROR") or apt_mirror()
    if not mirror:
        return "no Debian archive in apt's sources (set DEBIAN_MIRROR)"
    try:
        urllib.request.urlopen(mirror.rstrip("/") + "/dists/bookworm/Release", timeout=20).close()
    except (OSError, urllib.error.URLError) as e:
        return f"Debian's archive {mirror} is not reachable ({e})"
    return None


def apt_mirror():
    """The Debian archive apt uses, as guest/debian/build.sh finds it."""
    urls = []
    for d, names in (("/etc/apt", ["sources.list"]), ("/etc/apt/sources.list.d", None)):
        try:
            files = names or sorted(os.listdir(d))
        except OSError:
            continue
        for name in files:
            path = os.path.join(d, name)
            try:
                text = open(path).read()
            except OSError:
                continue
            if name.endswith(".sources"):
                for m in re.finditer(r"^URIs:\s*(.+)$", text, re.M):
                    urls += m.group(1).split()
            else:
                urls += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
    for u in urls:
        if "security" not in u and re.search(r"/debian/?$", u):
            return u
    return None


def build_image(source, out, profile, agent, log_path):
    """Run guest/debian/build.sh; the image folder, or raise RuntimeError with the log's tail."""
    os.makedirs(out, exist_ok=True)
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        r = subprocess.run([os.path.join(source, "guest", "debian", "build.sh"), out, profile,
                            agent], stdout=log, stderr=subprocess.STDOUT)
    with open(log_path) as f:
        text = f.read()
    if r.returncode != 0:
        raise RuntimeError(f"guest/debian/build.sh failed ({log_path}):\n{text[-2000:]}")
    return out, time.monotonic() - t0, "up to date" in text


def overlay(image, path):
    """A qcow2 overlay of image/disk.raw at path (replacing one left there)."""
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                    os.path.join(image, "disk.raw"), "-F", "raw", path], check=True)
    return path


QEMU_USER = "dynmem-qemu"  # [host] qemu_user's default


def for_qemu(path):
    """path, given to the user QEMU runs as (where that user exists: as root without it,
    dynmemd runs QEMU as root)."""
    try:
        user = pwd.getpwnam(QEMU_USER)
    except KeyError:
        return path
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


def qga_socket(run_dir, name):
    """Where QEMU binds qemu-guest-agent's socket of guest name: a folder of run_dir that
    only QEMU's user may write (the tests, as root, connect to it)."""
    folder = os.path.join(run_dir, "qga")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for_qemu(folder)
    return os.path.join(folder, name + ".qga")


def vm_section(name, image, disk, qga_path, sizes, extra="", drive_cache=None):
    """A [vm "name"] section booting the image. sizes: the memory keys as text.
    drive_cache: None attaches the disk with the `disk` key (QEMU's default cache);
    e.g. "none" attaches it through qemu_args with that cache mode instead."""
    with open(os.path.join(image, "cmdline")) as f:
        cmdline = f.read().strip()
    if drive_cache:
        drive = (f"\n  -drive file={disk},if=virtio,format=qcow2,cache={drive_cache}")
        disk_key = ""
    else:
        drive, disk_key = "", f"disk = {disk}\n"
    return (f'\n[vm "{name}"]\n{sizes.strip()}\n'
            f"kernel = {os.path.join(image, 'vmlinuz')}\n"
            f"initrd = {os.path.join(image, 'initrd.img')}\n"
            f"append = {cmdline}\n{disk_key}"
            "qemu_args = -device virtio-serial-pci,id=qga-serial\n"
            f"  -chardev socket,id=qga,path={qga_path},server=on,wait=off\n"
            "  -device virtserialport,bus=qga-serial.0,chardev=qga,name=org.qemu.guest_agent.0"
            f"{drive}\n"
            f"shutdown_timeout = 60s\nautostart = yes\n{extra}")


class Guest:
    """A running guest of the image, through qemu-guest-agent."""

    def __init__(self, qga_path):
        self.qga = Qga(qga_path)

    def sh(self, script, timeout=120.0):
        """stdout of a shell script that must succeed."""
        code, out, err = self.qga.sh(script, timeout=timeout)
        if code != 0:
            raise QgaError(f"guest: `{script}` exited {code}: {err.strip()[-500:]}")
        return out

    def boot_id(self):
        return self.sh("cat /proc/sys/kernel/random/boot_id").strip()

    def meminfo(self, key):
        """A /proc/meminfo figure in bytes."""
        m = re.search(rf"^{re.escape(key)}:\s+(\d+) kB", self.sh("cat /proc/meminfo"), re.M)
        return int(m.group(1)) * 1024 if m else None

    def vmstat(self, key):
        m = re.search(rf"^{re.escape(key)} (\d+)$", self.sh("cat /proc/vmstat"), re.M)
        return int(m.group(1)) if m else None

    def psi_memory(self):
        """(some, full) stall totals in seconds since boot, from /proc/pressure/memory."""
        text = self.sh("cat /proc/pressure/memory")
        tot = dict(re.findall(r"^(some|full) .*total=(\d+)$", text, re.M))
        return int(tot.get("some", 0)) / 1e6, int(tot.get("full", 0)) / 1e6

    def memory_blocks(self):
        """[(block, state, zones)] of /sys/devices/system/memory."""
        out = self.sh("cd /sys/devices/system/memory && for b in memory[0-9]*; do "
                      "echo $b $(cat $b/state) $(cat $b/valid_zones 2>/dev/null || echo -); done")
        return [tuple(line.split(None, 2)) for line in out.splitlines() if line.strip()]
