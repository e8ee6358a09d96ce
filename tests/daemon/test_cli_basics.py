#!/usr/bin/env python3
"""dynmemd and dynmem basics: config check, list/show/status, start/stop, errors."""
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (DATA, GIB, MIB, Daemon, Tap, check, dynamic_vm, main, running,  # noqa: E402
                        sim_host, static_vm, wait_for)


tap = Tap()

CONFIG = (sim_host("4G")
          + dynamic_vm("web1", "rise.csv", maximum="3G")
          + static_vm("db1", "512M", "flat-300m.csv"))

VM_FIELDS = {
    "name": str, "state": str, "dynamic": bool, "startup_bytes": int,
    "minimum_bytes": int, "maximum_bytes": int, "buffer_percent": int, "weight": int,
    "assigned_bytes": int, "status": str, "lent_bytes": int,
}


def check_config(bins, text):
    with Daemon(bins, text) as d:
        return d.check_config(), d.conf


@tap.case
def config_check_accepts_a_good_file(bins):
    p, conf = check_config(bins, CONFIG)
    check(p.returncode == 0, "dynmemd -n on a good file", p)
    check("configuration OK" in p.stdout and "2 VMs" in p.stdout, "summary line", p)


@tap.case
def one_vm_is_counted_as_one(bins):
    one = sim_host("4G") + static_vm("web1", "1G", "small.csv")
    p, conf = check_config(bins, one)
    check(p.returncode == 0 and p.stdout.endswith(", 1 VM\n"), "dynmemd -n", p)
    with running(bins, one) as d:
        check(", 1 VM, listening on " in d.log(), "the start", d.log())
        d.send(signal.SIGHUP)
        wait_for(lambda: f"reloaded {d.conf}: 1 VM\n" in d.log(), "the reload")


@tap.case
def config_check_reports_file_and_line(bins):
    bad = CONFIG + "\n[vm \"x1\"]\nstartup = 1G\nbuffer = 1\ntrace = @DATA@/small.csv\n"
    p, conf = check_config(bins, bad)
    check(p.returncode == 2, "exit 2 on a bad file", p)
    check(re.search(re.escape(conf) + r":\d+: buffer: \"1\"", p.stderr), "FILE:LINE: message", p)
    p, conf = check_config(bins, CONFIG + "\n[vm \"x2\"]\nflavour = big\ntrace = @DATA@/small.csv\n")
    check(p.returncode == 2 and re.search(re.escape(conf) + r":\d+: unknown key \"flavour\"",
                                          p.stderr), "unknown backend key with its line", p)
    p, conf = check_config(bins, CONFIG + "\n[vm \"x3\"]\ntrace = @DATA@/bad.csv\n")
    check(p.returncode == 2 and "bad.csv:3:" in p.stderr, "bad trace reported with its line", p)


@tap.case
def config_check_warns_of_a_comment_in_a_text_value(bins):
    # " #" is part of a text value (a path may hold it): the file is good, with a warning
    rule = ("as part of the value (a comment after a value starts with \" ;\", white space and "
            "';'; '#' starts a comment only at the start of a line)")
    p, conf = check_config(bins, CONFIG.replace("interval = 100ms\n", "interval = 100ms\n"
                                                "libvirt_uri = qemu:///system # the local one\n"))
    check(p.returncode == 0 and "configuration OK" in p.stdout, "still good", p)
    check(re.search(re.escape(conf) + r":\d+: warning: libvirt_uri: \"qemu:///system # the local "
                    r"one\" holds \" # the local one\" " + re.escape(rule), p.stderr),
          "FILE:LINE: warning: with the rule", p)
    # beside an error that does not say where comments start, the warning says it
    p, conf = check_config(bins, CONFIG + "\n[vm \"x5\"]\ntrace = @DATA@/small.csv # mine\n")
    check(p.returncode == 2 and "small.csv # mine: cannot open" in p.stderr and
          re.search(r":\d+: warning: trace: .* holds \" # mine\" ", p.stderr),
          "a path that cannot be opened, and why", p)
    # an error that does say it is not repeated by a warning
    p, conf = check_config(bins, CONFIG.replace("speed = 20", "speed = 20 # fast"))
    check(p.returncode == 2 and "warning" not in p.stderr, "no warning for a number", p)


@tap.case
def config_check_counts_the_warnings_past_twenty(bins):
    # the first 20 warnings, then how many more: as warnings, not as problems of the file
    vms = "".join(f'\n[vm "w{i}"]\nstartup = 64M\ntrace = @DIR@/t.csv # mine\n' for i in range(23))
    with Daemon(bins, sim_host("4G") + vms) as d:
        d.write_file("t.csv # mine", "seconds,demand\n0,64M\n")
        p = d.check_config()
        lines = p.stderr.splitlines()
        check(p.returncode == 0 and "configuration OK" in p.stdout, "still good", p)
        check(len(lines) == 21 and all(": warning: trace: " in w for w in lines[:20]) and
              lines[20] == "... and 3 more warnings", "20 warnings, then how many more", p)


@tap.case
def config_check_warns_of_memory_beyond_the_host(bins):
    # more than any host has: a warning with the line, the figures and what to do; still good
    with Daemon(bins, CONFIG.replace("memory = 4G", "memory = 4096T")) as d:
        with open(d.conf) as f:
            line = f.read().split("\n").index("memory = 4096T") + 1
        p = d.check_config()
        check(p.returncode == 0 and "configuration OK" in p.stdout, "still good", p)
        check(re.search(re.escape(f"{d.conf}:{line}: warning: [host] memory 4096 TiB and reserve ")
                        + r"[0-9.]+ [MG]iB \(kept for the host outside memory\) make [0-9.]+ TiB, "
                        r"more than the host's [0-9.]+ [GT]iB \(MemTotal, /proc/meminfo\): .*lower "
                        r"memory to [0-9.]+ [GT]iB or less, or leave it out", p.stderr),
              "FILE:LINE: warning: with MemTotal and what to do", p)
    # memory left out is MemTotal less the reserve: nothing to warn of
    p, conf = check_config(bins, CONFIG.replace("memory = 4G", ""))
    check(p.returncode == 0 and "warning" not in p.stderr, "no warning without memory", p)
    # memory left out and a reserve larger than the host: an error at the line of reserve
    with Daemon(bins, CONFIG.replace("memory = 4G", "reserve = 4096T")) as d:
        p = d.check_config()
        said = (f"{d.conf}:{d.conf_line('reserve = 4096T')}: [host] reserve 4096 TiB leaves "
                "nothing of the host's ")
        check(p.returncode == 2 and said in p.stderr and p.stderr.endswith(" for VMs\n"),
              "a reserve that leaves nothing, at its line", said, p)


@tap.case
def config_check_warns_of_a_vm_that_can_never_start(bins):
    # a startup above the memory for VMs is refused at every start: a warning at its line
    huge = CONFIG + dynamic_vm("huge", "small.csv", startup="6G", minimum="6G", maximum="8G")
    with Daemon(bins, huge) as d:
        p = d.check_config()
        said = (f'{d.conf}:{d.conf_line("startup = 6G")}: warning: vm "huge": startup 6 GiB is '
                "more than [host] memory 4 GiB: it can never start (each start is refused); "
                "lower its startup to 4 GiB or less, or raise [host] memory to 6 GiB or more")
        check(p.returncode == 0 and "configuration OK" in p.stdout and said in p.stderr,
              "still good, with the warning", said, p)
    # the default startup (1 GiB) on a host with less: at the VM's section
    small = sim_host("512M") + static_vm("db1", "256M", "small.csv") + \
        '\n[vm "plain"]\ntrace = @DATA@/small.csv\n'
    with Daemon(bins, small) as d:
        p = d.check_config()
        at = d.conf_line('[vm "plain"]')
        check(p.returncode == 0 and f'{d.conf}:{at}: warning: vm "plain": startup 1 GiB is more '
              'than [host] memory 512 MiB' in p.stderr and '"db1"' not in p.stderr,
              "a default startup at its section's line", p)


@tap.case
def config_check_names_the_line_of_a_missing_trace(bins):
    # the trace's own path and error, after the configuration line of its trace = key
    with Daemon(bins, CONFIG + "\n[vm \"x4\"]\nstartup = 1G\ntrace = @DATA@/gone.csv\n") as d:
        with open(d.conf) as f:
            line = f.read().split("\n").index(f"trace = {DATA}/gone.csv") + 1
        p = d.check_config()
        want = f"{d.conf}:{line}: trace: {DATA}/gone.csv: cannot open: No such file or directory"
        check(p.returncode == 2 and want in p.stderr, "FILE:LINE: trace: PATH: why", want, p)
    p, conf = check_config(bins, CONFIG + "\n[vm \"x3\"]\ntrace = @DATA@/bad.csv\n")
    check(re.search(re.escape(conf) + r":\d+: trace: .*bad\.csv:3: ", p.stderr),
          "a bad row too", p)


@tap.case
def config_check_names_the_backend_problem(bins):
    p, _ = check_config(bins, "[host]\nbackend = qemu\n[vm \"a\"]\nkernel = /nonexistent/vmlinuz\n"
                           "initrd = /nonexistent/initrd.img\n")
    check(p.returncode == 2 and re.search(r"\.conf:\d+: vm \"a\": kernel /nonexistent/vmlinuz: "
                                          r"No such file", p.stderr),
          "a qemu VM's missing kernel is named with its line", p)
    with Daemon(bins, "[host]\nbackend = vmware\n") as d:
        p = d.check_config()
        check(p.returncode == 2 and f"{d.conf}:{d.conf_line('backend = vmware')}: [host] "
              "backend: unknown backend \"vmware\" (known: sim, qemu, libvirt)" in p.stderr,
              "unknown backend, at its line", p)
    p, conf = check_config(bins, "[host]\nbackend = libvirt\n\n[vm \"web\"]\nstartup = 1G\n")
    check(p.returncode == 2 and
          ("the VMs are libvirt's domains" in p.stderr or "without libvirt" in p.stderr),
          "a [vm] section with backend libvirt is refused (libvirt owns the VMs)", p)


@tap.case
def config_check_checks_what_dynmemd_will_need(bins):
    with Daemon(bins, "") as d:
        def check_n(config, *args):
            d.write_config(config)
            return d.check_config(*args)
        p = check_n("", "-g", "no-such-dynmem-group")
        check(p.returncode == 2 and "dynmemd: -g: there is no group no-such-dynmem-group\n"
              in p.stderr, "-g names a group that does not exist", p)
        p = check_n("", "-g", "root")
        check(p.returncode == 0, "-g names one that does", p)
        # a running dynmemd refuses it as well, instead of serving root alone
        p = subprocess.run([d.dynmemd, "-d", "-f", d.conf, "-g", "no-such-dynmem-group"],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 2 and "no group no-such-dynmem-group" in p.stderr,
              "and so does a start", p)

        blocker = d.write_file("blocker", "a file, not a directory")
        socket = d.socket
        d.socket = f"{blocker}/run/dynmemd.sock"
        p = check_n("")
        check(p.returncode == 2 and f"{d.conf}:{d.conf_line(f'socket = {d.socket}')}: [host] "
              f"socket: the directory of {blocker}/run/dynmemd.sock cannot be created: "
              f"{blocker} is not a directory" in p.stderr,
              "a socket directory that cannot be created, at the line of socket", p)
        d.socket = f"{d.dir}/new/deeper/dynmemd.sock"
        p = check_n("")
        check(p.returncode == 0 and not os.path.exists(os.path.join(d.dir, "new")),
              "one that can be is good, and -n creates nothing", p)
        d.socket = socket

        # dynmemd runs without its state directory, saving nothing: a warning
        state_dir = d.state_dir
        d.state_dir = f"{blocker}/state"
        p = check_n("")
        check(p.returncode == 0 and p.stderr == f"{d.conf}:"
              f"{d.conf_line(f'state_dir = {d.state_dir}')}: warning: [host] state_dir "
              f"{blocker}/state cannot be created: {blocker} is not a directory; dynmemd would "
              "run, but keep nothing there (what dynmem set and create change would not "
              "survive a restart)\n" and "configuration OK" in p.stdout,
              "a state directory that cannot be created, at the line of state_dir", p)
        p = check_n("backend = qemu\n")
        check(p.returncode == 0 and p.stderr.endswith("would not survive a restart) and start "
                                                      "no VM (a VM's console log goes there)\n"),
              "with backend qemu, no VM could start", p)
        d.state_dir = f"{d.dir}/new/state"
        p = check_n("")
        check(p.returncode == 0 and p.stderr == "" and not os.path.exists(f"{d.dir}/new"),
              "one that can be is good, and -n creates nothing", p)
        d.state_dir = state_dir

        flat = d.write_file("flat.sh", "#!/bin/sh\n")
        good = d.write_file("good.sh", "#!/bin/sh\n", executable=True)
        p = check_n("policy = exec:/nonexistent/dynmem-policy --fast\n")
        check(p.returncode == 2 and re.search(re.escape(d.conf) + r":\d+: policy: program "
                                              r"/nonexistent/dynmem-policy: No such file",
                                              p.stderr), "a missing exec: program, with its line", p)
        p = check_n(f"policy = exec:{flat}\n")
        check(p.returncode == 2 and f"program {flat} is not executable" in p.stderr,
              "a program that cannot be executed", p)
        p = check_n("policy = exec:no-such-dynmem-policy\n")
        check(p.returncode == 2 and "program no-such-dynmem-policy is not in PATH" in p.stderr,
              "a name not in PATH", p)
        p = check_n(f"policy = exec:{good} --fast\n")
        check(p.returncode == 0, "an executable program is good", p)

@tap.case
def config_check_refuses_a_machine_without_virtio_mem(bins):
    with Daemon(bins, "") as d:
        kernel = d.write_file("vmlinuz", "kernel")
        initrd = d.write_file("initrd.img", "initrd")
        d.write_config(f"[host]\nbackend = qemu\n[vm \"tiny\"]\nkernel = {kernel}\n"
                       f"initrd = {initrd}\nmachine = microvm\n")
        p = d.check_config()
        check(p.returncode == 2 and re.search(
            re.escape(d.conf) + r":\d+: vm \"tiny\": machine: \"microvm\" cannot take "
            r"virtio-mem hot-plug", p.stderr), "refused with the VM, the key and its line", p)
        d.write_config(f"[host]\nbackend = qemu\n[vm \"tiny\"]\nkernel = {kernel}\n"
                       f"initrd = {initrd}\nmachine = q35\n")
        p = d.check_config()
        check(p.returncode == 0, "q35 is good", p)

@tap.case
def the_example_configuration_checks_as_installed_and_uncommented(bins):
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "daemon",
                           "dynmem.conf.example")
    text = open(example).read()
    p, _ = check_config(bins, text)
    check(p.returncode == 0 and "0 VMs" in p.stdout, "as installed: good, no VM", p)
    # Its VMs uncommented, with files where they point (a temporary folder here).
    with Daemon(bins, "") as d:
        images = os.path.join(d.dir, "images")
        os.makedirs(images)
        for f in ("vmlinuz", "initrd.img"):
            open(os.path.join(images, f), "w").close()
        # dynmemd reads a qcow2 disk's header (its backing chain) when it checks the file
        for f in ("web1.qcow2", "batch1.qcow2"):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", os.path.join(images, f),
                            "1M"], check=True)
        head, vms = text.split("\n# [vm ", 1)  # the VM examples follow the [host] section
        live = head + "\n" + re.sub(r"^# (\[vm |[a-z_]+ = )", r"\1", "# [vm " + vms, flags=re.M)
        live = live.replace("/var/lib/dynmem/images", images)
        check(live.count("[vm ") == 2 and "\n# memory = 48G" in live, "two VMs uncommented", live)
        with open(d.conf, "w") as f:
            f.write(live)
        p = d.check_config()
        check(p.returncode == 0 and "2 VMs" in p.stdout, "with its VMs: good, 2 VMs", p)


@tap.case
def the_http_example_checks_as_written(bins):
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "http.md")
    with open(doc) as f:
        block = f.read().split("```ini\n", 1)[1].split("```", 1)[0]
    p, _ = check_config(bins, block)
    check(p.returncode == 0, "docs/http.md's [host] block is a good configuration", p)


@tap.case
def dynmemd_refuses_bad_usage(bins):
    p = subprocess.run([bins[0], "--bogus"], capture_output=True, text=True)
    check(p.returncode == 2 and "Usage" in p.stderr, "exit 2 with usage", p)
    for args in (["-n", "-f", ""], ["--config=", "-n"]):  # an unset variable in a script
        p = subprocess.run([bins[0], *args], capture_output=True, text=True)
        check(p.returncode == 2 and p.stderr.startswith("dynmemd: -f/--config needs a file\n"),
              "an empty -f is bad usage, not the default file", args, p)


@tap.case
def list_and_show_json_have_the_documented_fields(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        vms = d.json("list")
        check(isinstance(vms, list) and [v["name"] for v in vms] == ["db1", "web1"],
              "an array of VMs sorted by name", vms)
        for v in vms:
            for key, typ in VM_FIELDS.items():
                check(isinstance(v.get(key), typ), f"{key} is a {typ.__name__}", v)
            for key in ("demand_bytes", "pressure_percent"):
                check(key in v, f"{key} present", v)
            check(v["state"] in ("running", "off", "starting", "stopping", "crashed"), "state", v)
            check(v["status"] in ("ok", "low", "warning", "unknown", "none"), "status", v)
        off = vms[0]
        check(off["state"] == "off" and off["assigned_bytes"] == 0 and
              off["demand_bytes"] is None and off["pressure_percent"] is None and
              off["status"] == "none", "an off VM holds nothing and has no demand", off)
        check(off["startup_bytes"] == 512 * MIB and off["dynamic"] is False, "db1 settings", off)
        web = wait_for(lambda: (v := d.vm("web1"))["demand_bytes"] is not None and v,
                       "web1 to report demand")
        check(web["assigned_bytes"] >= web["minimum_bytes"], "assigned within bounds", web)
        check(isinstance(web["pressure_percent"], (int, float)), "pressure is a number", web)
        check(web["status"] != "unknown", "status known once demand is", web)
        # lending is off (lend_hold = 0): nothing of the target is a loan
        check(web["lent_bytes"] == 0 and off["lent_bytes"] == 0, "nothing lent", web, off)
        shown = d.json("show", "db1")
        check(shown["name"] == "db1" and set(VM_FIELDS) <= set(shown), "show prints one VM", shown)


BACKEND_FIELDS = ["accelerator", "agent_capabilities", "agent_protocol_version", "agent_state",
                  "choices", "machine", "name", "offers", "pid", "resizing", "signal", "version"]


@tap.case
def show_says_what_the_backend_knows(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        web, db = d.json("show", "web1")["backend"], d.json("show", "db1")["backend"]
        check(sorted(web) == BACKEND_FIELDS and sorted(db) == BACKEND_FIELDS,
              "every member, null where it does not apply", web, db)
        check(web["name"] == "sim" and web["signal"] == "trace" and db["signal"] == "none",
              "a simulated VM's demand is its trace while it runs", web, db)
        check(web["agent_state"] is None and web["pid"] is None and web["accelerator"] is None,
              "no agent, process or accelerator in the simulator", web)
        check(web["machine"] is None and web["choices"] is None and web["offers"] is None,
              "no machine type or hypervisor options either", web)
        check(isinstance(web["resizing"], bool) and db["resizing"] is False, "resizing", web, db)
        out = d.ok("show", "web1").out
        check("Backend:         sim" in out and "Demand from:     trace" in out and
              "Resizing:" in out and "Process:" not in out and "Guest agent:" not in out and
              "Machine:" not in out and "Chosen:" not in out,
              "the human view leaves out what does not apply", out)
        check(re.search(r"^Target: .*\nLent: +0 B\nReason:", out, re.M),
              "the loan in the target, after it", out)


@tap.case
def status_json_describes_the_host(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        h = wait_for(lambda: (h := d.json("status"))["cycles"] > 2 and h, "a few cycles")
        for key in ("memory_bytes", "reserve_bytes", "available_bytes", "assigned_bytes",
                    "vms", "running", "cycles"):
            check(isinstance(h.get(key), int), f"{key} is a number", h)
        check(h["memory_bytes"] == 4 * GIB, "memory from the config", h)
        check(h["available_bytes"] == h["memory_bytes"] - h["assigned_bytes"], "available", h)
        check("pressure_percent" in h and h["backend"] == "sim" and h["policy"] == "dynmem", "", h)
        check(isinstance(h["cycle_lateness_p99_ms"], (int, float)), "lateness p99", h)
        check(isinstance(h["cycle_lateness_histogram"], list), "lateness histogram", h)
        check(h["state_saved"] is True and h["state_error"] is None, "state saved", h)
        r = d.ok("status")
        check("VM memory:" in r.out and "4 GiB" in r.out, "human status", r)


@tap.case
def human_list_is_an_aligned_table(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        lines = d.ok("list").out.splitlines()
        header = lines[0].split()
        check(header == ["NAME", "STATE", "ASSIGNED", "DEMAND", "PRESSURE", "STATUS", "MIN",
                         "STARTUP", "MAX", "BUFFER", "WEIGHT"], "header", lines)
        check(len(lines) == 3, "one row per VM", lines)
        ends = [m.end() for m in re.finditer(r"WEIGHT", lines[0])]
        check(all(len(line) == ends[0] for line in lines), "right-aligned last column", lines)
        check("512 MiB" in lines[1] and "GiB" in lines[2], "sizes in MiB/GiB", lines)
        check(lines[1].startswith("db1 ") and " off " in lines[1], "db1 row", lines)


LONG_NAME = "vm-" + "x" * 56 + "-end"  # 63 characters, the longest a name can be


@tap.case
def list_shows_the_longest_name_whole(bins):
    # Names were cut at 39 characters: two VMs alike up to there looked the same.
    with running(bins, CONFIG + f'\n[vm "{LONG_NAME}"]\nstartup = 512M\ntrace = @DATA@/flat-300m.csv\n') as d:
        lines = d.ok("list").out.splitlines()
        check(any(line.startswith(LONG_NAME + "  ") for line in lines), "the whole name", lines)
        check(len({len(line) for line in lines}) == 1, "still aligned", lines)


@tap.case
def list_name_prints_the_names_alone(bins):
    # For scripts and the shell's completion: every VM, whatever its state, one a line.
    with running(bins, CONFIG + f'\n[vm "{LONG_NAME}"]\nstartup = 512M\ntrace = @DATA@/flat-300m.csv\n') as d:
        d.wait_state("web1", "running")
        r = d.ok("list", "--name")
        check(r.out == f"db1\n{LONG_NAME}\nweb1\n" and r.err == "",
              "the names in list's order, nothing else", r)
        d.fails("list", "--name", "--json", rc=2,
                contains="list: --name prints the names alone; --json prints the whole VM objects")
        d.fails("--json", "list", "--name", rc=2, contains="--name prints the names alone")
        d.fails("show", "web1", "--name", rc=2, contains="show: unknown option --name")
        p = subprocess.run([d.dynmem, "--help"], capture_output=True, text=True)
        check("Option of list: --name" in p.stdout, "--help names it", p)


@tap.case
def output_that_cannot_be_written_is_exit_1(bins):
    # Exit 0 with the output lost before; a series went on for ever once its reader left.
    with running(bins, CONFIG) as d:
        for args in (["list"], ["status"], ["counters"]):
            with open("/dev/full", "w") as full:
                p = subprocess.run([d.dynmem, "--socket", d.socket, *args], stdout=full,
                                   stderr=subprocess.PIPE, text=True, timeout=30)
            check(p.returncode == 1 and "cannot write the standard output" in p.stderr,
                  f"{args[0]} to a full disk", p)
        p = subprocess.Popen([d.dynmem, "--socket", d.socket, "counters", "--interval", "100ms"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        p.stdout.readline()
        p.stdout.close()
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        check(rc == 1, "a series ends when its reader leaves", rc)
        p.stderr.close()


@tap.case
def start_and_stop(bins):
    with running(bins, CONFIG) as d:
        d.ok("start", "db1")
        v = d.vm("db1")
        check(v["state"] == "running" and v["assigned_bytes"] == 512 * MIB,
              "start replies once running, with the startup size", v)
        d.ok("stop", "db1")
        v = d.vm("db1")
        check(v["state"] == "off" and v["assigned_bytes"] == 0, "stop replies once off", v)
        r = d.ok("start", "db1", "--json")
        check('"state": "running"' in r.out, "start --json prints the VM", r)
        d.ok("stop", "db1", "--force")
        d.wait_state("db1", "off")


@tap.case
def life_cycle_errors_are_one_clear_line(bins):
    with running(bins, CONFIG) as d:
        d.wait_state("web1", "running")
        d.fails("start", "web1", contains="dynmem: web1: already running")
        d.fails("stop", "db1", contains="dynmem: db1: not running")
        d.fails("show", "web9", contains="dynmem: web9: no such VM")
        d.fails("start", "web9", contains="web9: no such VM")


@tap.case
def a_failed_start_names_the_vm_once(bins):
    config = ("memory = 2G\ninterval = 100ms\nbackend = qemu\n\n"
              "[vm \"web4\"]\nstartup = 256M\nkernel = @DIR@/vmlinuz\nqemu = /bin/false\n")
    r = running(bins, config)
    kernel = r.d.write_file("vmlinuz", "there when dynmemd starts, gone when web4 does\n")
    with r as d:
        os.remove(kernel)
        e = d.fails("start", "web4", contains=f"dynmem: web4: kernel {kernel}: No such file")
        check('vm "web4"' not in e.err, "the name once", e)
        v = d.vm("web4")
        check(v["refusal"].startswith(f"kernel {kernel}: "), "show's refusal: the reason alone", v)
        text = d.json("events")[-1]["text"]
        check(text.startswith(f"web4 could not start: kernel {kernel}"), "the event's", text)
        said = [line for line in d.log().splitlines() if f"kernel {kernel}" in line]
        check(len(said) == 1 and f"web4: cannot start: kernel {kernel}: No such file" in said[0]
              and 'vm "web4"' not in said[0], "the log's line", said)
        # a start that fails later, in the loop (QEMU cannot be asked what it offers)
        r.d.write_file("vmlinuz", "back\n")
        e = d.fails("start", "web4", contains="dynmem: web4: cannot ask QEMU /bin/false what it ")
        check('vm "web4"' not in e.err and e.err.count("web4") == 1, "the name once", e)
        check(d.vm("web4")["refusal"].startswith("cannot ask QEMU /bin/false"), "show's", e)
        said = [line for line in d.log().splitlines() if "web4: cannot start: " in line]
        check(len(said) == 2 and "web4: cannot start: cannot ask QEMU /bin/false" in said[1] and
              'vm "web4"' not in said[1], "the log's line", said)


@tap.case
def admit_of_a_vm_dynmemd_runs_does_not_call_it_unknown(bins):
    with running(bins, CONFIG) as d:
        r = d.ok("admit", "db1")
        check("not known" not in r.out and "dynmemd runs this VM itself" in r.out and
              "dynmem start db1" in r.out, "admit says the VM is dynmemd's own", r)
        check(d.vm("db1")["state"] == "off", "nothing started", d.vm("db1"))
        r = d.ok("admit", "web9")
        check("web9: not known to dynmemd" in r.out, "a VM dynmemd does not know", r)
        # --json: the VM, as start --json prints it; null for a VM dynmemd does not know
        r = d.ok("admit", "db1", "--json")
        v = json.loads(r.out)
        check(v["name"] == "db1" and v["state"] == "off", "admit --json prints the VM", r)
        r = d.ok("admit", "web9", "--json")
        check(json.loads(r.out) is None, "admit --json of a VM dynmemd does not know: null", r)


@tap.case
def no_daemon_says_where_it_looked(bins):
    with Daemon(bins, CONFIG) as d:
        r = d.fails("list", contains="no dynmemd is listening on " + d.socket)
        env = dict(os.environ, DYNMEM_SOCKET="/nonexistent/dynmemd.sock")
        p = subprocess.run([d.dynmem, "list"], capture_output=True, text=True, env=env)
        check(p.returncode == 1 and "/nonexistent/dynmemd.sock" in p.stderr,
              "DYNMEM_SOCKET is where it looks", p)
        # a path that is there but no socket: said so, not "refused" as if dynmemd were down
        plain = os.path.join(d.dir, "plain-file")
        with open(plain, "w", encoding="utf-8") as f:
            f.write("not a socket\n")
        for path, kind in ((plain, "a regular file"), (d.dir, "a folder")):
            r = d.fails("list", socket_path=path,
                        contains=f"{path} is not a socket but {kind}; point --socket or "
                                 "DYNMEM_SOCKET at dynmemd's socket")
            check("no dynmemd is listening" not in r.err, "not the message of no daemon", r)


@tap.case
def socket_from_the_environment(bins):
    with running(bins, CONFIG) as d:
        env = dict(os.environ, DYNMEM_SOCKET=d.socket)
        p = subprocess.run([d.dynmem, "list"], capture_output=True, text=True, env=env)
        check(p.returncode == 0 and "web1" in p.stdout, "DYNMEM_SOCKET honoured", p)
        p = subprocess.run([d.dynmem, "--socket", d.socket, "show", "web1"],
                           capture_output=True, text=True, env=dict(os.environ,
                                                                    DYNMEM_SOCKET="/x"))
        check(p.returncode == 0, "--socket wins over DYNMEM_SOCKET", p)
        # An empty --socket (a script's unset variable) is bad usage: it would otherwise
        # reach the daemon of DYNMEM_SOCKET or the default one, and change what it has.
        for args in (["--socket", ""], ["--socket="], ["-s", ""], ["list", "--socket", ""]):
            argv = args + ["list"] if args[0] != "list" else args
            p = subprocess.run([d.dynmem, *argv], capture_output=True, text=True, env=env)
            check(p.returncode == 2 and p.stdout == ""
                  and p.stderr.startswith("dynmem: --socket needs a path")
                  and p.stderr.count("\n") == 1, f"dynmem {argv}: bad usage", p)
        # an empty DYNMEM_SOCKET counts as not set, as dynmem(1) says: --socket then decides
        p = subprocess.run([d.dynmem, "--socket", d.socket, "list"], capture_output=True,
                           text=True, env=dict(os.environ, DYNMEM_SOCKET=""))
        check(p.returncode == 0 and "web1" in p.stdout, "an empty DYNMEM_SOCKET is not set", p)


@tap.case
def help_and_version_are_what_they_say(bins):
    dynmem = bins[1]
    p = subprocess.run([dynmem, "--help"], capture_output=True, text=True)
    check(p.returncode == 0 and "-V, --version" in p.stdout, "--help names --version", p)
    p = subprocess.run([dynmem, "--version"], capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout.startswith("dynmem "), "--version works", p)
    # as dynmemd and dynmem-sim: -V before the command prints the version, whatever follows
    for args in (["--version", "extra"], ["-V", "list"], ["--socket", "/nonexistent", "-V"]):
        q = subprocess.run([dynmem, *args], capture_output=True, text=True)
        check(q.returncode == 0 and q.stdout == p.stdout and q.stderr == "",
              f"dynmem {' '.join(args)}: the version", q)
    # after the command it is no option of the command: the message says where it goes
    q = subprocess.run([dynmem, "list", "--version"], capture_output=True, text=True)
    check(q.returncode == 2 and q.stdout == "" and q.stderr.startswith(
        "dynmem: list: --version goes before the command: dynmem --version"),
        "dynmem list --version: where --version goes", q)
    usage = subprocess.run([dynmem, "--help"], capture_output=True, text=True).stdout
    # help [COMMAND], as git and virsh have it: the usage, as --help and COMMAND --help
    for args, like in ((["help"], ["--help"]), (["help", "set"], ["set", "--help"]),
                       (["help", "libvirt-hook"], ["--help"]), (["help", "help"], ["--help"])):
        p = subprocess.run([dynmem] + args, capture_output=True, text=True)
        q = subprocess.run([dynmem] + like, capture_output=True, text=True)
        check(p.returncode == 0 and p.stdout == q.stdout == usage and p.stderr == "",
              f"dynmem {' '.join(args)} is dynmem {' '.join(like)}", p)
    check(re.search(r"^  help +\[COMMAND\] ", usage, re.M), "--help lists help", usage)
    # COMMAND --help and -h, for every command: what help COMMAND prints (help --help was
    # bad usage, and libvirt-hook --help read its standard input for libvirt's XML and
    # printed nothing)
    commands = re.findall(r"^  (\S+) ", usage.split("Commands:\n")[1].split("\n\n")[0], re.M)
    check("set" in commands and "libvirt-hook" in commands and "help" in commands,
          "the commands read from --help", commands)
    for command in commands:
        like = subprocess.run([dynmem, "help", command], capture_output=True, text=True)
        for option in ("--help", "-h"):
            p = subprocess.run([dynmem, command, option], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=30)
            check(p.returncode == 0 and p.stdout == like.stdout == usage and p.stderr == "",
                  f"dynmem {command} {option} is dynmem help {command}", p)
    for args, said in ((["help", "frobnicate"],
                        'dynmem: unknown command "frobnicate" (dynmem --help)\n'),
                       (["help", "set", "list"],
                        "dynmem: help: expected one COMMAND at most (dynmem --help)\n"),
                       (["help", "--json"],
                        "dynmem: help: takes a COMMAND, no option (dynmem --help)\n"),
                       (["--json", "help"],
                        "dynmem: help: --json does not apply to the usage (dynmem --help)\n")):
        p = subprocess.run([dynmem] + args, capture_output=True, text=True)
        check(p.returncode == 2 and p.stderr == said and p.stdout == "",
              f"dynmem {' '.join(args)}: bad usage", p)
    p = subprocess.run([dynmem, "frobnicate"], capture_output=True, text=True)
    check(p.stderr == 'dynmem: unknown command "frobnicate" (dynmem --help)\n',
          "the same words without help", p)


@tap.case
def cli_usage_errors_exit_2(bins):
    with running(bins, CONFIG) as d:
        d.fails("frobnicate", rc=2, contains="unknown command")
        d.fails("set", "web1", rc=2, contains="nothing to change")
        d.fails("set", "web1", "--startup", "lots", rc=2, contains="is not a size")
        d.fails("set", "web1", "--startup", "2 G", rc=2,
                contains='--startup: "2 G" has a blank between the number and its unit; '
                         'write 2G')
        # A plain number below 1 MiB is a unit left out, as in the file.
        d.fails("set", "web1", "--startup", "512", rc=2,
                contains='--startup: "512" has no unit and would be 512 bytes; '
                         'write 512M or 512MiB')
        d.fails("set", "web1", "--startup", "99999999999T", rc=2,
                contains='--startup: "99999999999T" is larger than 16 TiB')
        d.fails("set", "web1", "--weight", "99999999999", rc=2,
                contains='--weight: "99999999999" is larger than 10000')
        # An option given twice is a mistake (--minimum for --maximum), as in the file.
        d.fails("set", "web1", "--weight", "100", "--weight", "200", rc=2,
                contains="--weight given twice")
        d.fails("create", "new1", "-o", "trace=a.csv", "--option", "trace=b.csv",
                rc=2, contains="--option: trace given twice")
        check(d.vm("web1")["weight"] == 5000 and "new1" not in d.vms(), "nothing changed",
              d.vms())
        d.fails("set", "web1", "--weight", "many", rc=2, contains="--weight")
        d.fails("set", "web1", "--dynamic", "maybe", rc=2,
                contains='--dynamic: "maybe" is not yes/no, on/off, true/false or 1/0')
        # A bare number is seconds, and the refusal says it was read so.
        d.fails("counters", "--interval", "0.05", rc=2,
                contains='--interval: "0.05" (seconds) is not a duration of 100ms or more')
        d.fails("show", rc=2, contains="expected one VM name")
        d.fails("list", "web1", rc=2, contains="takes no VM name")
        d.fails("start", "web1", "--force", rc=2)
        d.fails("show", "-bad", rc=2)
        # A long option may be shortened while it begins one option alone; one that begins
        # two is named as such, not as unknown.
        d.fails("set", "web1", "--b", "30", rc=2,
                contains="set: option --b is ambiguous: --buffer, --block (dynmem --help)")
        d.fails("set", "web1", "--m=1G", rc=2,
                contains="set: option --m is ambiguous: --minimum, --maximum (dynmem --help)")
        d.fails("set", "web1", "--bogus", rc=2, contains="set: unknown option --bogus")
        d.ok("set", "web1", "--wei", "4000")
        check(d.vm("web1")["weight"] == 4000, "--wei is --weight", d.vm("web1"))


@tap.case
def a_value_dynmemd_refuses_is_bad_usage_as_one_dynmem_refuses(bins):
    with Daemon(bins, CONFIG) as d:
        d.start()
        d.wait_state("web1", "running")
        # dynmem reads --weight as a number; dynmemd checks its range: exit 2 either way
        d.fails("set", "web1", "--weight", "10001", rc=2,
                contains="dynmem: web1: weight 10001 is outside 0..10000")
        d.fails("set", "db1", "--minimum", "1G", rc=2, contains="db1: minimum 1 GiB is above")
        trace = d.write_file("gone.csv", open(os.path.join(DATA, "small.csv")).read())
        d.fails("create", "new1", "-o", f"trace={trace}", "-o", "colour=red", rc=2,
                contains='new1: backend sim takes no key "colour"')
        # what the VM's state forbids is dynmemd's refusal, not bad usage
        d.fails("set", "web1", "--startup", "2G", rc=1,
                contains="web1: cannot change startup while the VM is running")
        # a VM whose own keys fail when it starts (EINVAL too): a refusal, not bad usage
        d.ok("create", "new1", "-o", f"trace={trace}")
        d.stop()
        os.remove(trace)
        d.start()
        d.fails("start", "new1", rc=1, contains="new1: cannot start: ")


SLOW = CONFIG.replace("interval = 100ms", "interval = 60s")


def start_in_background(d, name):
    """dynmem start NAME, which waits for the next cycle (a minute away with SLOW)."""
    p = subprocess.Popen([d.dynmem, "--socket", d.socket, "start", name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: d.vm(name)["state"] == "starting", f"{name} to be starting")
    return p


@tap.case
def stop_cancels_a_start_that_waits(bins):
    with running(bins, SLOW) as d:
        p = start_in_background(d, "db1")
        d.ok("stop", "db1")
        out, err = p.communicate(timeout=60)
        check(p.returncode == 1 and err == "dynmem: db1: start cancelled by a stop\n",
              "the waiting start is told", p.returncode, err)
        check(d.vm("db1")["state"] == "off", "off again")


@tap.case
def sigterm_tells_waiting_clients(bins):
    with Daemon(bins, SLOW) as d:
        d.start()
        p = start_in_background(d, "db1")
        rc = d.stop()
        out, err = p.communicate(timeout=60)
        check(rc == 0, "clean exit", rc, d.log())
        check(p.returncode == 1 and "db1: dynmemd is stopping" in err, "told", err)


if __name__ == "__main__":
    main(tap)
