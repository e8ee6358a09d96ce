"""twohost: two libvirt hosts on one machine, each with its own dynmemd,
joined by a network of their own, for migration tests and benchmarks.

Each Host is an isolated libvirt host from tests/libvirt/lvhost.py (its own
libvirtd and virtlogd, host_uuid, /etc, /run, /var/lib, /var/log and
/var/cache libvirt folders in a private mount namespace) in a network
namespace of its own. A veth pair the harness makes joins the two
namespaces (A gets ADDR_A, B gets ADDR_B); nothing else is reachable from
them, so libvirt's connections and QEMU's migration streams run over those
two addresses only:

  - each libvirtd listens on TCP at its own address (auth none: tests only);
  - each qemu.conf sets migration_address and migration_host to its own
    address, so `virsh migrate --live DOM qemu+tcp://ADDR_B/system` needs
    no --migrateuri and QEMU listens for incoming migrations there alone;
  - each host's dynmemd (backend libvirt) runs inside that host's
    namespaces, as it would on a real host, with libvirt's admission hook
    installed, and serves its read-only HTTP API on its own address (what
    a peer's relief rule reads); tests drive it through its control socket
    from outside.

The guest image, kernel and consoles live in the build and temporary
folders both hosts see (only libvirt's own folders are private), which is
what libvirt needs to start the same domain on either side.

The domains run the QEMU libvirt finds (Debian 12: 7.2), or the one
$DYNMEM_MIGRATION_QEMU names (a QEMU binary or wrapper, e.g. the one
scripts/qemu-backports.sh prints), as their <emulator> on both hosts; from
QEMU 9.0 on with ACPI on, as libvirt 9.0 turns ACPI off with -no-acpi, an
option QEMU 9.0 removed.
"""
import glob
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "libvirt"))
from lvhost import LibvirtHost, connect  # noqa: E402
from lvlib import (MIB, Failure, LvDaemon, check, comment, console,  # noqa: E402,F401
                   install_hook, mib, qemu_pid, skip_reason, wait_for)
from lvlib import domain as lv_domain  # noqa: E402
from dynmemtest import qemu_version  # noqa: E402

ADDR_A, ADDR_B = "10.237.0.1", "10.237.0.2"
LIBVIRT_PORT = 16509
HTTP_PORT = 9180
NS = "urn:dynmem:domain:1"


def migration_qemu():
    """The QEMU the domains run ($DYNMEM_MIGRATION_QEMU, else None: libvirt's) and its
    version ((major, minor), or None: the one in PATH)."""
    binary = os.environ.get("DYNMEM_MIGRATION_QEMU") or None
    found = qemu_version(binary or shutil.which("qemu-system-x86_64") or "")
    return binary, tuple(int(x) for x in found.split(".")[:2]) if found else None


def domain(host, name, image, **kw):
    """A test domain (lvlib's) that runs migration_qemu(), ACPI on from QEMU 9.0."""
    binary, version = migration_qemu()
    if binary:
        kw.setdefault("emulator", binary)
    if version and version >= (9, 0):
        kw["acpi"] = True
    return lv_domain(host, name, image, **kw)


class MigrationHost(LibvirtHost):
    """A LibvirtHost whose QEMU takes incoming migrations on its own address."""

    def _prepare(self):
        super()._prepare()
        with open(os.path.join(self.root, "etc", "qemu.conf"), "a") as f:
            f.write(f'migration_address = "{self.listen_addr}"\n'
                    f'migration_host = "{self.listen_addr}"\n')


class Host:
    """One libvirt host with its dynmemd. config: [host] keys beyond the
    backend, the socket and the state folder (memory, interval ...), and any
    further sections ([cluster], [peer "NAME"])."""

    def __init__(self, bins, name, addr, config):
        self.name = name
        self.addr = addr
        self.bins = bins
        self.lv = MigrationHost(name=name, net=True, tcp_port=LIBVIRT_PORT, listen_addr=addr)
        self.d = LvDaemon(bins, self.lv, config.replace("@ADDR@", addr))
        self.hook_log = None

    # ---- set-up ----

    def create(self):
        self.lv.create()
        self.hook_log = install_hook(self.lv, self.bins[1], self.d.socket)

    def start(self):
        self.lv.start()
        self.d.start()

    def stop(self, keep_logs=None):
        """Stop dynmemd, then the host; keep_logs: a folder to copy the logs into first."""
        try:
            rc = self.d.stop()
            log = self.d.log()
            if rc not in (0, None) or "ERROR: AddressSanitizer" in log or "runtime error:" in log:
                comment(f"{self.name}: dynmemd exited with {rc}")
                comment(log[-4000:])
            if keep_logs:
                os.makedirs(keep_logs, exist_ok=True)
                for name, text in (("dynmemd", log), ("libvirtd", self.lv.libvirtd_log()),
                                   ("hook", self.hook_text())):
                    with open(os.path.join(keep_logs, f"{self.name}-{name}.log"), "w") as f:
                        f.write(text)
                # the guests' consoles and QEMU's own logs (why a domain stopped)
                for src in (glob.glob(os.path.join(self.lv.root, "out", "*.console")) +
                            glob.glob(os.path.join(self.lv.root, "log", "qemu", "*.log"))):
                    shutil.copy(src, os.path.join(keep_logs, f"{self.name}-{os.path.basename(src)}"))
        finally:
            self.lv.stop()
            self.d.cleanup()

    # ---- what it says ----

    def uri(self):
        return self.lv.uri()

    def http_url(self):
        return f"http://{self.addr}:{HTTP_PORT}"

    def http_get(self, path):
        """GET a path of this host's dynmemd HTTP API, from inside its network namespace."""
        code = ("import sys, urllib.request; "
                "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")
        return self.lv.run(["python3", "-c", code, self.http_url() + path]).stdout

    def vms(self):
        return self.d.vms()

    def vm(self, name):
        return self.d.vm(name)

    def status(self):
        return self.d.json("status")

    def virsh(self, *args, check=True):
        return self.lv.virsh(*args, check=check)

    def domstate(self, name):
        p = self.lv.virsh("domstate", name, check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def hook_text(self):
        try:
            with open(self.hook_log) as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    # ---- migrating ----

    def migrate(self, name, dest, via="dynmem", extra=(), check_ok=True, timeout=600):
        """Live-migrate name to host dest from inside this host's namespaces,
        with `dynmem migrate` (its --json result) or `virsh migrate --live`.
        Returns (returncode, stdout, stderr)."""
        if via == "dynmem":  # this host's dynmemd is asked to write what it learned, fresh
            args = [self.bins[1], "--socket", self.d.socket, "migrate", name, dest.uri(),
                    "--json"] + list(extra)
        else:
            args = ["virsh", "-c", "qemu:///system", "migrate", "--live", name,
                    dest.uri()] + list(extra)
        p = self.lv.run(args, check=False, timeout=timeout)
        if check_ok:
            check(p.returncode == 0, f"{via} migrate {name} {self.name} -> {dest.name} failed",
                  p.stdout, p.stderr)
        return p.returncode, p.stdout, p.stderr

    def popen_migrate(self, name, dest, extra=()):
        """`dynmem migrate NAME DEST --json` in the background (a Popen)."""
        import subprocess
        return self.lv.popen([self.bins[1], "--socket", self.d.socket, "migrate", name,
                              dest.uri(), "--json"] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def migration_result(stdout):
    """The JSON `dynmem migrate --json` printed."""
    try:
        return json.loads(stdout)
    except ValueError as e:
        raise Failure(f"dynmem migrate printed no JSON: {stdout!r}") from e


class TwoHosts:
    """Host A and host B, joined by a veth pair; config_a / config_b as for Host."""

    def __init__(self, bins, config_a, config_b):
        self.a = Host(bins, "A", ADDR_A, config_a)
        self.b = Host(bins, "B", ADDR_B, config_b)

    def start(self):
        self.a.create()
        self.b.create()
        connect(self.a.lv, self.b.lv, ADDR_A, ADDR_B)
        self.a.start()
        self.b.start()
        return self

    def hosts(self):
        return (self.a, self.b)

    def stop(self, keep_logs=None):
        for h in self.hosts():
            try:
                h.stop(keep_logs)
            except Exception as e:  # one host's tear-down must not keep the other alive
                comment(f"{h.name}: tear-down: {e}")


def host_config(memory_mib, interval="1s", extra=""):
    """[host] keys for a host's dynmemd (its HTTP API on its own address)."""
    return (f"memory = {memory_mib}M\ninterval = {interval}\n"
            f"http = @ADDR@:{HTTP_PORT}\nhttp_allow_remote = yes\n" + extra)


def skip_reason_here():
    why = skip_reason()
    if why:
        return why
    binary, version = migration_qemu()
    if binary and not version:
        return f"DYNMEM_MIGRATION_QEMU={binary} does not run as QEMU ({binary} --version)"
    if not os.path.exists("/sbin/ip") and not os.path.exists("/usr/sbin/ip") and \
            not os.path.exists("/bin/ip"):
        return "ip (iproute2) is not installed"
    return None
