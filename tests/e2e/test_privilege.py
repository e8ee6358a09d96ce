#!/usr/bin/env python3
"""Least privilege, checked on real processes: dynmemd run as the unit runs it (user
dynmem, CAP_SETUID and CAP_SETGID, no_new_privs) keeps no capability; its QEMU launcher
keeps those two only; QEMU runs as user dynmem-qemu with that user's groups, no
capability, no_new_privs and its seccomp sandbox, holds only what it was handed, and
as its user can open none of dynmemd's files or sockets, nor touch dynmemd. A QEMU an
older dynmemd started as root is reattached and stopped by the unprivileged one.
Prints TAP.

usage: test_privilege.py DYNMEMD DYNMEM
"""
import grp
import json
import os
import pwd
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (BOOT_TIMEOUT, MIB, QemuDaemon, Tap, check, comment,  # noqa: E402
                        guest_image, main, skip_all, wait_for)

tap = Tap()

SETUID_SETGID = (1 << 6) | (1 << 7)

CONFIG = """memory = 1G
interval = 1s

[vm "p1"]
startup = 256M
accel = tcg
shutdown_timeout = 1s
autostart = yes
"""


def status_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict((k, v.strip()) for k, v in (line.split(":", 1) for line in f if ":" in line))


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def no_caps(st):
    return all(int(st[k], 16) == 0 for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"))


def as_user(uid, gid, groups, fn):
    """fn() in a child with exactly these ids (as QEMU has them); its result, or the error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            out = fn()
        except Exception as e:  # noqa: BLE001 - reported to the parent
            out = f"{type(e).__name__}: {e}"
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def attempts(d, dynmemd_pid, launcher_pid):
    """What QEMU's user tries: each entry (what, callable raising on refusal)."""
    run_dir, state = d.run_dir, d.state_dir

    def connect(path):
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        s.close()

    return [
        ("read state.json", lambda: open(os.path.join(state, "state.json")).read()),
        ("read running.json", lambda: open(os.path.join(state, "running.json")).read()),
        ("open its own console log by name",
         lambda: open(os.path.join(state, "p1.console.log"), "a").close()),
        ("create a file in the run folder", lambda: open(os.path.join(run_dir, "x"), "w")),
        ("create a file in the state folder", lambda: open(os.path.join(state, "x"), "w")),
        ("connect to the control socket", lambda: connect(d.socket)),
        ("connect to its QMP socket", lambda: connect(os.path.join(run_dir, "p1.qmp"))),
        ("connect to its agent socket", lambda: connect(os.path.join(run_dir, "p1.agent"))),
        ("read /etc/shadow", lambda: open("/etc/shadow").read()),
        ("read dynmemd's memory", lambda: open(f"/proc/{dynmemd_pid}/mem", "rb").read(1)),
        ("signal dynmemd", lambda: os.kill(dynmemd_pid, 0)),
        ("read the launcher's memory", lambda: open(f"/proc/{launcher_pid}/mem", "rb").read(1)),
        ("signal the launcher", lambda: os.kill(launcher_pid, 0)),
    ]


def check_qemu(d, qemu, dynmemd_pid, launcher_pid):
    user = pwd.getpwnam("dynmem-qemu")
    groups = sorted(os.getgrouplist("dynmem-qemu", user.pw_gid))
    st = status_of(qemu)
    comment(f"QEMU pid {qemu}: Uid {st['Uid']}, Gid {st['Gid']}, Groups {st['Groups']}, "
            f"CapEff {st['CapEff']}, NoNewPrivs {st['NoNewPrivs']}, Seccomp {st['Seccomp']}")
    check(st["Uid"].split() == [str(user.pw_uid)] * 4, "uid dynmem-qemu (all four)", st)
    check(st["Gid"].split() == [str(user.pw_gid)] * 4, "its gid", st)
    check(sorted(int(g) for g in st["Groups"].split()) == groups, "its groups, no more", st)
    check(no_caps(st), "no capability", st)
    check(st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", "no_new_privs, -sandbox on", st)
    check(int(st["PPid"]) == dynmemd_pid, "dynmemd's child (it reaps it)", st)
    # What it holds: what it was handed, and nothing else of dynmemd's.
    mine = os.path.realpath(d.dir)
    held = [os.readlink(f"/proc/{qemu}/fd/{fd}") for fd in os.listdir(f"/proc/{qemu}/fd")]
    files = sorted({h for h in held if h.startswith("/")})
    comment(f"QEMU's files: {files}")
    allowed = {os.path.join(mine, "state", "p1.console.log"), "/dev/null",
               os.path.realpath(os.path.join(os.environ["DYNMEM_GUEST_IMAGE_DIR"], "vmlinuz")),
               os.path.realpath(os.path.join(os.environ["DYNMEM_GUEST_IMAGE_DIR"], "initrd.img"))}
    check(set(files) <= allowed | {"/dev/kvm"}, "only what it was handed", files)
    results = {what: as_user(user.pw_uid, user.pw_gid, groups, fn)
               for what, fn in attempts(d, dynmemd_pid, launcher_pid)}
    allowed_through = {what: r for what, r in results.items()
                       if not (isinstance(r, str) and r.startswith("PermissionError"))}
    comment(f"as QEMU's user: {len(results) - len(allowed_through)} of {len(results)} refused")
    check(not allowed_through, "QEMU's user reaches none of these", allowed_through)


@tap.case
def dynmemd_keeps_nothing_and_qemu_runs_as_its_own_user(ctx):
    d = QemuDaemon(ctx["bins"], CONFIG, ctx["image"])
    ctx["daemons"].append(d)
    d.as_the_unit()
    d.start()
    wait_for(lambda: d.vm("p1")["state"] == "running", "p1 to run", timeout=BOOT_TIMEOUT)
    me = d.proc.pid
    st = status_of(me)
    check(st["Uid"].split()[0] == str(ctx["dynmem"].pw_uid) and no_caps(st), "dynmemd", st)
    check(st["NoNewPrivs"] == "1", "dynmemd: no_new_privs", st)
    check({int(g) for g in st["Groups"].split()} == {ctx["dynmem"].pw_gid,
                                                       grp.getgrnam("kvm").gr_gid},
          "dynmemd: groups dynmem and kvm, no more", st)
    kids = {p: status_of(p) for p in children(me)}
    launcher = [p for p, s in kids.items() if s["Name"] == "dynmem-launcher"]
    check(len(launcher) == 1, "one launcher", kids)
    ls = kids[launcher[0]]
    check(ls["Uid"].split() == [str(ctx["dynmem"].pw_uid)] * 4, "the launcher runs as dynmem", ls)
    check(int(ls["CapPrm"], 16) == SETUID_SETGID and int(ls["CapEff"], 16) == SETUID_SETGID,
          "the launcher keeps CAP_SETUID and CAP_SETGID only", ls)
    comment(f"dynmemd pid {me}: CapPrm {st['CapPrm']}; launcher pid {launcher[0]}: "
            f"CapPrm {ls['CapPrm']}")
    check_qemu(d, d.qemu_pid("p1"), me, launcher[0])
    d.stop_guests()
    d.stop()


def legacy_qemu(d, name):
    """QEMU with the command line an older dynmemd used, as root, with its pid file."""
    run_dir, state, image = d.run_dir, d.state_dir, os.environ["DYNMEM_GUEST_IMAGE_DIR"]
    os.makedirs(run_dir, exist_ok=True)
    os.makedirs(state, exist_ok=True)
    sock = lambda kind: os.path.join(run_dir, f"{name}.{kind}")  # noqa: E731
    argv = ["qemu-system-x86_64", "-name", f"guest={name}", "-nodefaults", "-no-user-config",
            "-display", "none", "-machine", "pc", "-accel", "tcg", "-smp", "1",
            "-m", "size=262144k", "-device",
            "virtio-balloon-pci,id=dm-balloon,deflate-on-oom=on,free-page-reporting=on",
            "-device", "virtio-serial-pci,id=dm-serial",
            "-chardev", f"socket,id=dm-agent,path={sock('agent')},server=on,wait=off",
            "-device", "virtserialport,bus=dm-serial.0,chardev=dm-agent,name=org.dynmem.agent.0",
            "-chardev", f"file,id=dm-console,path={state}/{name}.console.log,append=on",
            "-serial", "chardev:dm-console", "-pidfile", sock("pid"),
            "-chardev", f"socket,id=dm-qmp,path={sock('qmp')},server=on,wait=off",
            "-mon", "chardev=dm-qmp,mode=control", "-sandbox", "on",
            "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img")]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: os.path.exists(sock("pid")) and os.path.exists(sock("qmp")), "legacy QEMU")
    with open(os.path.join(state, "running.json"), "w") as f:
        counters = ("added_bytes", "removed_bytes", "add_operations", "remove_operations",
                    "refused_starts", "crashes", "policy_refusals")
        json.dump({"version": 1, "host": {k: 0 for k in counters}, "vms": [
            {"name": name, "state": "running", "assigned_bytes": 256 * MIB,
             "target_bytes": 256 * MIB}]}, f)
    return proc


@tap.case
def a_qemu_an_older_dynmemd_started_as_root_is_reattached(ctx):
    d = QemuDaemon(ctx["bins"], CONFIG.replace("p1", "old").replace("autostart = yes\n", ""),
                   ctx["image"])
    ctx["daemons"].append(d)
    proc = legacy_qemu(d, "old")
    ctx["legacy"] = proc
    check(status_of(proc.pid)["Uid"].split()[0] == "0", "the old QEMU runs as root")
    # What systemd does on the first start as User=dynmem: its folders become dynmem's.
    d.as_the_unit()
    d.start()
    wait_for(lambda: "reattached to QEMU pid %d" % proc.pid in d.log(), "the reattach")
    v = d.vm("old")
    check(v["state"] == "running", "running again, nothing restarted", v)
    wait_for(lambda: "old" in d.ok("list").out, "listed")
    r = d.cli("stop", "--force", "old")
    check(r.rc == 0, "stopped through its QMP socket", r)
    proc.wait(timeout=60)
    check(d.vm("old")["state"] == "off", "off", d.vm("old"))
    d.stop()


def setup(bins):
    if os.geteuid() != 0:
        skip_all("needs root (setpriv gives dynmemd the unit's capabilities)")
    try:
        dynmem = pwd.getpwnam("dynmem")
        pwd.getpwnam("dynmem-qemu")
    except KeyError:
        skip_all("no users dynmem and dynmem-qemu (scripts/deps.sh creates them with "
                 "systemd-sysusers daemon/sysusers.conf)")
    image = guest_image()
    os.environ["DYNMEM_GUEST_IMAGE_DIR"] = image
    return {"bins": bins, "image": image, "dynmem": dynmem, "daemons": []}


def teardown(ctx):
    for d in ctx["daemons"]:
        d.finish()
    if ctx.get("legacy") and ctx["legacy"].poll() is None:
        ctx["legacy"].kill()
        ctx["legacy"].wait()


if __name__ == "__main__":
    main(tap, setup, teardown)
