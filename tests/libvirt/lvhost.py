"""lvhost: isolated libvirt hosts for tests, any number of them side by side.

A LibvirtHost is a real libvirtd and virtlogd (Debian 12: libvirt 9.0) in a
mount namespace of their own, where private folders are mounted over
/etc/libvirt, /run/libvirt (a tmpfs), /var/lib/libvirt, /var/log/libvirt and
/var/cache/libvirt, and a private /etc/passwd and /etc/group add the user
libvirt-qemu that libvirtd 9.0 insists on even when QEMU runs as root. So
nothing of a libvirt already on the machine is seen or touched, and several
hosts run at once. Each host has its own host_uuid (libvirt refuses to
migrate between two ends with the same one), and optionally:

  - its own network namespace (net=True) with loopback up; connect() joins
    two such hosts with a veth pair, addresses of the caller's choosing;
  - libvirtd listening on TCP (tcp_port=N: listen_addr, auth none, for tests
    only) and its own migration port range;
  - no cgroups for its QEMUs (cgroups=False: qemu.conf cgroup_controllers =
    [], for the benchmark). By default libvirt puts every QEMU in the
    machine's own /machine cgroup; under cgroup v1 all the domains of every
    libvirt host on the machine then share that one group's CPU weight (1024)
    against each other process's own, so they are scheduled unlike the QEMU
    processes dynmemd starts itself.

The default pid files (/run/libvirtd.pid, /run/virtlogd.pid) would clash:
both daemons keep theirs in the private /run/libvirt. Everything the host runs is started through nsenter into its namespaces:
run() and popen() for any command (dynmemd runs there too, as it would on a
real host: it must see /var/lib/libvirt to reach the guests' channel
sockets), virsh() for libvirt's client. The namespaces are held by a keeper
process; every process the harness starts gets SIGKILL if the test dies
(setpriv --pdeathsig), and stop() destroys the domains and kills whatever is
left in the mount namespace (QEMU processes included).

QEMU runs in the host's mount namespace (qemu.conf namespaces = [], not one
of libvirt's own per domain), so that stop() finds every process; its pid
files are read too, in case libvirtd is gone.

Mount points: /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
/var/cache/libvirt are created (empty) on the machine when missing, as the
libvirt-daemon-system package would; nothing is ever mounted on them outside
a host's namespace.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

PRIVATE = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
           "/var/cache/libvirt")
QEMU_USER = "libvirt-qemu:x:64055:64055:libvirt qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
QEMU_GROUP = "libvirt-qemu:x:64055:\n"
START_TIMEOUT = 120  # libvirtd probes QEMU's capabilities once per host: slow on a busy machine
TOOLS = ("libvirtd", "virtlogd", "virsh", "unshare", "nsenter", "setpriv")


class HostError(Exception):
    pass


def missing_tools():
    """What this machine lacks to run a host (names), or []."""
    return [t for t in TOOLS if not shutil.which(t, path=os.environ.get("PATH", "") +
                                               ":/usr/sbin:/sbin")]


def skip_reason():
    """Why hosts cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (namespaces and libvirtd)"
    missing = missing_tools()
    if missing:
        return ("missing " + ", ".join(missing) + " (apt-get install libvirt-daemon "
                "libvirt-daemon-driver-qemu libvirt-clients)")
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed"
    return None


LIBVIRTD_CONF = """\
host_uuid = "{uuid}"
listen_tls = 0
listen_tcp = {listen_tcp}
{tcp}
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
migration_port_min = {mig_min}
migration_port_max = {mig_max}
"""

KEEPER = """\
set -eu
R=$1
mount --bind "$R/etc" /etc/libvirt
mount -t tmpfs -o mode=0755 tmpfs /run/libvirt
mount --bind "$R/lib" /var/lib/libvirt
mount --bind "$R/log" /var/log/libvirt
mount --bind "$R/cache" /var/cache/libvirt
mount --bind "$R/passwd" /etc/passwd
mount --bind "$R/group" /etc/group
if [ "${2:-}" = net ]; then ip link set lo up; fi
echo ready
exec sleep 2147483647
"""


class LibvirtHost:
    """One isolated libvirt host. root: a folder for its private state (made
    when None, removed by stop()); name: for messages and file names."""

    def __init__(self, root=None, name="host", net=False, tcp_port=None,
                 listen_addr="127.0.0.1", migration_ports=None, cgroups=True):
        self.name = name
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix=f"dynmem-lvhost-{name}-")
        self.net = net
        self.tcp_port = tcp_port
        self.cgroups = cgroups
        self.listen_addr = listen_addr
        self.migration_ports = migration_ports or (49152, 49215)
        self.uuid = str(uuid.uuid4())
        self.keeper = None
        self.libvirtd = None
        self.virtlogd = None
        self.logs = []

    # ---- set-up ----

    def _write(self, rel, text, mode=0o644):
        path = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def _prepare(self):
        for d in ("etc/qemu", "etc/hooks/qemu.d", "lib", "log", "cache", "out"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        for p in PRIVATE[1:]:
            os.makedirs(p, exist_ok=True)  # mount points, empty on the machine
        with open("/etc/passwd") as f:
            passwd = f.read()
        with open("/etc/group") as f:
            group = f.read()
        if "\nlibvirt-qemu:" not in "\n" + passwd:
            passwd += QEMU_USER
        if "\nlibvirt-qemu:" not in "\n" + group:
            group += QEMU_GROUP
        self._write("passwd", passwd)
        self._write("group", group)
        tcp = ""
        if self.tcp_port:
            tcp = (f'tcp_port = "{self.tcp_port}"\nlisten_addr = "{self.listen_addr}"\n'
                   'auth_tcp = "none"')
        self._write("etc/libvirtd.conf", LIBVIRTD_CONF.format(
            uuid=self.uuid, listen_tcp=1 if self.tcp_port else 0, tcp=tcp))
        self._write("etc/qemu.conf", QEMU_CONF.format(mig_min=self.migration_ports[0],
                                                      mig_max=self.migration_ports[1]) +
                    ("" if self.cgroups else "cgroup_controllers = []\n"))
        self._write("etc/keeper.sh", KEEPER, 0o755)

    def create(self):
        """Make the namespaces (no daemons yet: connect() hosts before they listen)."""
        if self.keeper:
            return self
        self._prepare()
        flags = ["--mount", "--propagation", "private"] + (["--net"] if self.net else [])
        self.keeper = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "unshare"] + flags +
            ["sh", os.path.join(self.root, "etc", "keeper.sh"), self.root] +
            (["net"] if self.net else []),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.keeper.stdout.readline().strip()
        if line != "ready":
            self.keeper.kill()
            raise HostError(f"{self.name}: the namespace could not be made: {line}"
                            f"{self.keeper.stdout.read()}")
        return self

    def start(self, timeout=START_TIMEOUT):
        """Make the namespaces if needed, start virtlogd and libvirtd; returns self."""
        self.create()
        self.virtlogd = self._daemon("virtlogd", ["-p", "/run/libvirt/virtlogd.pid"])
        self._wait(lambda: os.path.exists(self.path("/run/libvirt/virtlogd-sock")),
                   "virtlogd's socket", timeout)
        self.start_libvirtd(timeout)
        return self

    def _daemon(self, prog, args):
        log = open(os.path.join(self.root, "out", prog + ".out"), "ab")
        self.logs.append(log)
        return subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + self.enter() + [prog] + args,
                                stdout=log, stderr=subprocess.STDOUT)

    def start_libvirtd(self, timeout=START_TIMEOUT):
        """(Re)start libvirtd and wait until it answers."""
        args = ["-p", "/run/libvirt/libvirtd.pid"] + (["--listen"] if self.tcp_port else [])
        self.libvirtd = self._daemon("libvirtd", args)

        def answers():
            if self.libvirtd.poll() is not None:
                raise HostError(f"{self.name}: libvirtd exited with {self.libvirtd.returncode}:"
                                f"\n{self.tail('libvirtd.out')}\n{self.libvirtd_log()[-3000:]}")
            return self.run(["virsh", "-q", "-c", "qemu:///system", "uri"],
                            check=False).returncode == 0
        self._wait(answers, "libvirtd to answer", timeout)

    def kill_libvirtd(self, sig=signal.SIGKILL):
        """Signal libvirtd (SIGKILL by default) and reap it; the guests keep running."""
        if self.libvirtd and self.libvirtd.poll() is None:
            self.libvirtd.send_signal(sig)
            self.libvirtd.wait()

    def _wait(self, pred, what, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        raise HostError(f"{self.name}: timed out after {timeout}s waiting for {what}")

    # ---- running things inside ----

    def enter(self):
        """The command prefix that runs a program in this host's namespaces."""
        pid = self.keeper.pid
        ns = [f"--mount=/proc/{pid}/ns/mnt"]
        if self.net:
            ns.append(f"--net=/proc/{pid}/ns/net")
        return ["nsenter"] + ns + ["--"]

    def path(self, inside):
        """A path inside the host's mount namespace, readable from outside."""
        return f"/proc/{self.keeper.pid}/root{inside}"

    def run(self, args, check=True, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        p = subprocess.run(self.enter() + list(args), **kw)
        if check and p.returncode != 0:
            raise HostError(f"{self.name}: {' '.join(args)}: exit {p.returncode}: "
                            f"{p.stderr.strip() if p.stderr else ''}")
        return p

    def popen(self, args, **kw):
        return subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + self.enter() + list(args),
                                **kw)

    def virsh(self, *args, check=True):
        """virsh -c qemu:///system ARGS; its output (stripped). check: raise on failure."""
        p = self.run(["virsh", "-q", "-c", "qemu:///system"] + list(args), check=False)
        if check and p.returncode != 0:
            raise HostError(f"{self.name}: virsh {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout.strip() if check else p

    def define(self, xml):
        path = self._write(f"out/define-{uuid.uuid4().hex}.xml", xml)
        self.virsh("define", path)

    def uri(self):
        """Where other hosts reach this one (TCP), or None."""
        if not self.tcp_port:
            return None
        return f"qemu+tcp://{self.listen_addr}:{self.tcp_port}/system"

    def tail(self, name, n=4000):
        try:
            with open(os.path.join(self.root, "out", name), errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def libvirtd_log(self):
        try:
            with open(self.path("/var/log/libvirt/libvirtd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ---- tear-down ----

    def _members(self):
        """Pids of processes in this host's mount namespace, but the keeper."""
        try:
            mine = os.readlink(f"/proc/{self.keeper.pid}/ns/mnt")
        except OSError:
            return []
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == self.keeper.pid:
                continue
            try:
                if os.readlink(f"/proc/{p}/ns/mnt") == mine:
                    pids.append(int(p))
            except OSError:
                continue
        return pids

    def _qemu_pids(self):
        """The guests' QEMUs, from libvirt's pid files (libvirtd may be gone)."""
        pids = []
        try:
            folder = self.path("/run/libvirt/qemu")
            for f in os.listdir(folder):
                if f.endswith(".pid"):
                    with open(os.path.join(folder, f)) as fh:
                        pids.append(int(fh.read().strip()))
        except (OSError, ValueError):
            pass
        return pids

    def stop(self):
        """Destroy every domain, stop the daemons, kill what is left, remove the root."""
        if self.keeper and self.keeper.poll() is None:
            if self.libvirtd and self.libvirtd.poll() is None:
                out = self.virsh("list", "--name", check=False)
                for name in (out.stdout.split() if out.returncode == 0 else []):
                    self.virsh("destroy", name, check=False)
            for p in (self.libvirtd, self.virtlogd):
                if p and p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            for pid in self._members() + self._qemu_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.keeper.kill()
            self.keeper.wait()
        for log in self.logs:
            log.close()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def connect(a, b, addr_a, addr_b, prefix=24):
    """Join two hosts made with net=True by a veth pair: a gets addr_a, b addr_b.
    Call it after create() and before start() when libvirtd listens on these addresses."""
    if not (a.net and b.net):
        raise HostError("connect() needs two hosts with their own network namespace")
    ia, ib = f"dm{a.keeper.pid}", f"dm{b.keeper.pid}"
    a.run(["ip", "link", "add", ia, "type", "veth", "peer", "name", ib])
    a.run(["ip", "link", "set", ib, "netns", str(b.keeper.pid)])
    a.run(["ip", "addr", "add", f"{addr_a}/{prefix}", "dev", ia])
    b.run(["ip", "addr", "add", f"{addr_b}/{prefix}", "dev", ib])
    a.run(["ip", "link", "set", ia, "up"])
    b.run(["ip", "link", "set", ib, "up"])
