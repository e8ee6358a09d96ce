#!/usr/bin/env python3
"""Who may do what, and what dynmemd keeps: members of [host] admin_group may change
settings through the socket and readers may not (`dynmem migrate`'s request to write what
dynmemd learned of the domain into it among them; SO_PEERCRED and SO_PEERGROUPS, the
groups of the connecting process); an admin_group that does not exist is a
configuration error; run as root dynmemd says so once (with backend libvirt, with the
group it needs instead); run as the unit runs it (user dynmem in groups dynmem and kvm,
with CAP_SETUID and CAP_SETGID, no_new_privs) it keeps those groups and no capability,
and its exec: policy has none either; QEMU never runs as root (a qemu_user that is root
or missing refuses every start, is said, and makes dynmemd -n refuse the file), and without those capabilities it runs as
dynmemd's own user, which is said; a user libvirt's socket refuses is told the group; run
by hand as an ordinary user outside group dynmem it serves root and that user (a group
named with -g must be one of the user's)."""
import grp
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (Daemon, Skip, Tap, check, main, need_root, running,  # noqa: E402
                        sim_host, static_vm, wait_for)

tap = Tap()

CONFIG = (sim_host("4G", "admin_group = staff")
          + static_vm("web1", "1G", "small.csv", autostart=True))


def as_nobody(d, *args, groups=()):
    """dynmem as nobody (group nogroup, the socket's), with these supplementary groups."""
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup"]
    cmd += [f"--groups={','.join(str(grp.getgrnam(g).gr_gid) for g in groups)}"] if groups \
        else ["--clear-groups"]
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    return subprocess.run(cmd + [d.dynmem, "--socket", d.socket] + list(args),
                          capture_output=True, text=True, env=env, timeout=60)


@tap.case
def admin_group_members_may_change_readers_may_not(bins):
    with running(bins, CONFIG, group="nogroup") as d:
        d.wait_state("web1", "running")
        r = as_nobody(d, "set", "web1", "--weight", "1")
        check(r.returncode == 1 and "needs root or group staff" in r.stderr,
              "a reader may not change", r)
        r = as_nobody(d, "set", "web1", "--weight", "7", groups=["staff"])
        check(r.returncode == 0, "a member of staff may change", r.stderr)
        check(d.vm("web1")["weight"] == 7, "the change holds", d.vm("web1"))
        r = as_nobody(d, "stop", "web1", groups=["adm", "staff"])
        check(r.returncode == 0, "also among other groups", r.stderr)
        check("refused: needs root or group staff" in d.log(), "the refusal is logged", d.log())
        # dynmem migrate's request (the command carry) changes a domain: a reader is refused,
        # and the migration goes ahead (libvirt's test driver: it cannot migrate p2p)
        r = as_nobody(d, "migrate", "--connect", "test:///default", "test", "test:///default")
        if "built without libvirt" not in r.stderr:
            check(r.returncode == 1 and "dynmem: test: what dynmemd learned of it goes along as "
                  "last written, up to 5 minutes ago: permission denied: carry needs root or "
                  "group staff\n" in r.stderr and "test: migration to test:///default failed"
                  in r.stderr, "carry: a reader may not", r)


@tap.case
def an_admin_group_that_does_not_exist_is_refused(bins):
    with running(bins, "memory = 4G\n") as d:
        with open(d.conf, "a") as f:
            f.write("admin_group = no-such-group-dynmem\n")
        r = d.check_config()
        said = (f"{d.conf}:{d.conf_line('admin_group = no-such-group-dynmem')}: [host] "
                "admin_group: there is no group no-such-group-dynmem")
        check(r.returncode == 2 and said in r.stderr, "dynmemd -n, at the key's line", said, r)


@tap.case
def as_root_it_says_so_once(bins):
    need_root()
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        check(d.log().count("running as root") == 1, "said once", d.log())


# Backend libvirt with a socket of this test's: no libvirtd needed for what dynmemd says.
LIBVIRT = "backend = libvirt\nlibvirt_uri = qemu:///system?socket=@DIR@/libvirt-sock\nmemory = 4G\n"
GROUP_FIX = "systemctl edit dynmemd: [Service] SupplementaryGroups=kvm libvirt libvirt-qemu"


def need_libvirt(d):
    p = d.check_config()
    if "without libvirt" in p.stderr:
        raise Skip("dynmemd was built without libvirt")


@tap.case
def as_root_with_libvirt_it_says_what_the_backend_needs_instead(bins):
    need_root()
    with running(bins, LIBVIRT) as d:
        need_libvirt(d)
        wait_for(lambda: "libvirt-sock" in d.log(), "the connection's error")
        log = d.log()
        check(log.count("running as root, which backend libvirt does not need") == 1 and
              GROUP_FIX in log and "docs/libvirt.md, Install" in log, "said once, with the group",
              log)
        check("CAP_SETUID" not in log, "not the QEMU backend's needs", log)
        # libvirtd not there: no socket to be refused by, so no hint of the group
        check("No such file or directory" in log and "may not connect" not in log,
              "a missing socket is not a refusal", log)


@tap.case
def a_user_refused_by_libvirts_socket_is_told_the_group(bins):
    r = running(bins, LIBVIRT)
    try:
        need_libvirt(r.d)
        r.d.as_the_unit()
    except Skip:
        r.d.cleanup()
        raise
    # libvirt's socket as a host without the drop-in has it: another user's, mode 0600
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(r.d.dir, "libvirt-sock"))
        os.chmod(os.path.join(r.d.dir, "libvirt-sock"), 0o600)
        sock.listen(1)
        with r as d:
            wait_for(lambda: "libvirt-sock" in d.log(), "the connection's error")
            log = d.log()
            check(re.search(r"error: libvirt at qemu:///system\?socket=\S+: Failed to connect "
                            r"socket to '\S+/libvirt-sock': Permission denied; the VMs keep their "
                            r"sizes .*; this user may not connect to libvirt's socket: give the user "
                            r"dynmemd runs as libvirt's group libvirt", log) and GROUP_FIX in log,
                  "the refusal, with the group to give", log)
    finally:
        sock.close()


def caps(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {k: fields[k].strip() for k in ("Uid", "Groups", "CapPrm", "CapEff", "CapInh",
                                            "CapAmb", "NoNewPrivs")}


@tap.case
def as_the_unit_runs_it_it_keeps_no_capability(bins):
    r = running(bins, CONFIG)
    try:
        user = r.d.as_the_unit()
    except Skip:
        r.d.cleanup()
        raise
    with r as d:
        d.wait_state("web1", "running")
        c = caps(d.proc.pid)
        check(c["Uid"].split() == [str(user.pw_uid)] * 4, "runs as dynmem (all four)", c)
        check({int(g) for g in c["Groups"].split()} == {user.pw_gid, grp.getgrnam("kvm").gr_gid},
              "groups dynmem and kvm, no more", c)
        for k in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
            check(int(c[k], 16) == 0, f"{k} is empty", c)
        check(c["NoNewPrivs"] == "1", "no_new_privs", c)
        check("without capabilities" in d.log(), "said", d.log())
        d.ok("set", "web1", "--weight", "9")  # root may still change settings


# A policy that writes down who it runs as, then answers every request.
WHO_POLICY = """grep -E '^(Uid|Groups|Cap...|NoNewPrivs):' /proc/$$/status > @DIR@/policy-status.tmp
mv @DIR@/policy-status.tmp @DIR@/policy-status
while read -r line; do echo '{"targets": {}}'; done"""


@tap.case
def an_exec_policy_runs_as_dynmemd_without_capabilities(bins):
    r = running(bins, "")
    try:
        r.d.write_file("policy.sh", WHO_POLICY)
        r.d.write_config(CONFIG.replace("admin_group = staff\n",
                                        "policy = exec:/bin/sh @DIR@/policy.sh\n"))
        user = r.d.as_the_unit()
    except Skip:
        r.d.cleanup()
        raise
    with r as d:
        path = os.path.join(d.dir, "policy-status")
        wait_for(lambda: os.path.exists(path), "the policy to start")
        with open(path) as f:
            c = {k: v.strip() for k, v in (line.split(":", 1) for line in f)}
        check(c["Uid"].split() == [str(user.pw_uid)] * 4, "as dynmem (all four)", c)
        for k in ("CapPrm", "CapEff", "CapInh", "CapAmb"):
            check(int(c[k], 16) == 0, f"{k} is empty", c)
        check(int(c["CapBnd"], 16) & ~0xC0 == 0, "nothing beyond the unit's bounding set", c)
        check(c["NoNewPrivs"] == "1", "no_new_privs", c)


# The QEMU backend with a VM that is never really started: what it says about who
# QEMU runs as, and whether a start is refused, comes before QEMU is run.
QEMU_CONFIG = """
memory = 2G
interval = 100ms
backend = qemu
@USER@

[vm "q1"]
startup = 256M
kernel = @DIR@/vmlinuz
qemu = /bin/false
"""


def qemu_daemon(bins, user_line):
    r = running(bins, QEMU_CONFIG.replace("@USER@", user_line))
    r.d.write_file("vmlinuz", "never read\n")
    return r


@tap.case
def qemu_never_runs_as_root(bins):
    need_root()
    for line, said in (("qemu_user = root", "QEMU never runs as root, and user root is root"),
                       ("qemu_user = no-such-user-dynmem",
                        "there is no user no-such-user-dynmem for QEMU")):
        with qemu_daemon(bins, line) as d:
            at = f"{d.conf}:{d.conf_line(line)}: warning: no VM can start: {said}"
            check(at in d.log(), "said at start, at the line of qemu_user", at, d.log())
            d.fails("start", "q1", contains=said)
            check(d.vm("q1")["state"] == "off", "not started", d.vm("q1"))
            # dynmemd -n (the unit's ExecStartPre=) refuses the file, at the same line
            p = d.check_config()
            at = f"{d.conf}:{d.conf_line(line)}: no VM can start: {said}"
            check(p.returncode == 2 and at in p.stderr and "configuration OK" not in p.stdout,
                  "dynmemd -n: an error at the line of qemu_user", at, p)
    with qemu_daemon(bins, "") as d:  # dynmem-qemu, which scripts/deps.sh makes
        p = d.check_config()
        check(p.returncode == 0 and "configuration OK" in p.stdout, "the default user is good", p)


@tap.case
def without_capabilities_qemu_runs_as_dynmemds_own_user(bins):
    r = qemu_daemon(bins, "")
    try:
        user = r.d.as_the_unit()
    except Skip:
        r.d.cleanup()
        raise
    r.d.prefix = [a for a in r.d.prefix if "caps" not in a and "bounding" not in a]
    with r as d:
        check(f"QEMU runs as dynmemd's own user {user.pw_name} (uid {user.pw_uid})" in d.log(),
              "said at start", d.log())


def need_group_dynmem():
    try:
        grp.getgrnam("dynmem")
    except KeyError:
        raise Skip("no group dynmem (scripts/deps.sh creates it: systemd-sysusers "
                   "daemon/sysusers.conf)") from None


@tap.case
def as_an_ordinary_user_outside_group_dynmem_it_serves_that_user(bins):
    need_group_dynmem()
    r = running(bins, "memory = 4G\n")
    try:
        user = r.d.as_user("nobody")
    except Skip:
        r.d.cleanup()
        raise
    with r as d:
        check("user nobody is not in group dynmem: only root and user nobody may use "
              f"{d.socket} (-g gives it to a group of this user's)" in d.log(), "said at start",
              d.log())
        check(os.stat(d.socket).st_gid == user.pw_gid, "the socket keeps its own group",
              os.stat(d.socket))
        r = d.cli("list", user="nobody")
        check(r.rc == 0, "its user may use it", r)
        # another user of the socket's group may connect, and is told who may use it
        r = subprocess.run(["setpriv", "--reuid=daemon", f"--regid={user.pw_gid}",
                            "--clear-groups", d.dynmem, "--socket", d.socket, "list"],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        check(r.returncode == 1 and r.stderr == "dynmem: permission denied: the control socket "
              "serves root and user nobody only\n", "others are refused", r)


@tap.case
def a_group_named_with_g_must_be_one_of_the_users(bins):
    with Daemon(bins, "memory = 4G\n") as d:
        d.as_user("nobody")
        said = ("dynmemd: -g: user nobody is not in group staff, so it cannot give the control "
                "socket to that group (only root can); run dynmemd as a member of staff, or "
                "name one of user nobody's groups\n")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        p = subprocess.run(d.prefix + [d.dynmemd, "-n", "-f", d.conf, "-g", "staff"],
                           capture_output=True, text=True, timeout=60, env=env)
        check(p.returncode == 2 and said in p.stderr, "dynmemd -n", p)
        p = subprocess.run(d.prefix + [d.dynmemd, "-d", "-f", d.conf, "-g", "staff"],
                           capture_output=True, text=True, timeout=60, env=env)
        check(p.returncode == 2 and p.stderr == said, "a start", p)
        check(not os.path.exists(d.socket), "no socket is left", d.socket)
        p = subprocess.run(d.prefix + [d.dynmemd, "-n", "-f", d.conf, "-g", "nogroup"],
                           capture_output=True, text=True, timeout=60, env=env)
        check(p.returncode == 0, "its own group may be named", p)


if __name__ == "__main__":
    main(tap)
