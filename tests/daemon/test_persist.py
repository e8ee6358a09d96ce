#!/usr/bin/env python3
"""What survives a restart (dynmem set, dynmem create), how the state file and
the configuration combine, reload on SIGHUP, a clean exit on SIGTERM, and a
state directory that cannot be written."""
import json
import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import (DATA, GIB, MIB, Daemon, Tap, check, dynamic_vm, main,  # noqa: E402
                        sim_host, static_vm, wait_for)


tap = Tap()

BASE = sim_host("8G")
DB1 = static_vm("db1", "512M", "small.csv")


def config(weight=5000, maximum="4G", extra=""):
    return BASE + dynamic_vm("web1", "flat-300m.csv", maximum=maximum, weight=weight) + DB1 + extra


def restart(d):
    rc = d.stop()
    check(rc == 0, f"dynmemd exit status {rc} on SIGTERM", d.log())
    d.start()


def state_file(d):
    with open(os.path.join(d.state_dir, "state.json")) as f:
        return json.load(f)


@tap.case
def set_survives_a_restart(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("set", "web1", "--buffer", "40", "--weight", "100")
        st = state_file(d)
        check(st["version"] == 1 and st["vms"] == [
            {"name": "web1", "origin": "config",
             "settings": {"buffer_percent": 40, "weight": 100}}],
            "only the changed fields are kept", st)
        restart(d)
        v = d.vm("web1")
        check(v["buffer_percent"] == 40 and v["weight"] == 100, "kept across restart", v)


@tap.case
def state_overrides_only_what_set_changed(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("set", "web1", "--weight", "100")
        d.stop()
        d.write_config(config(weight=7000, maximum="6G"))
        d.start()
        v = d.vm("web1")
        check(v["weight"] == 100, "the overridden field keeps the set value", v)
        check(v["maximum_bytes"] == 6 * GIB, "other fields follow the file", v)


@tap.case
def created_vm_survives_a_restart(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("create", "new1", "--startup", "256M", "--maximum", "1G", "--dynamic", "on",
             "--autostart", "-o", f"trace={DATA}/small.csv")
        d.ok("create", "new2", "-o", f"trace={DATA}/small.csv")
        d.ok("delete", "new2")
        restart(d)
        vms = d.vms()
        check("new2" not in vms, "a deleted VM stays deleted", vms)
        v = vms["new1"]
        check(v["origin"] == "created" and v["startup_bytes"] == 256 * MIB and
              v["maximum_bytes"] == GIB and v["dynamic"] is True and v["autostart"] is True,
              "settings kept", v)
        d.wait_state("new1", "running")


@tap.case
def set_autostart_survives_a_restart_and_a_reload(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.ok("set", "db1", "--autostart", "yes")
        d.ok("set", "web1", "--autostart", "no")
        st = state_file(d)
        check(st["vms"] == [
            {"name": "db1", "origin": "config", "settings": {}, "autostart": True},
            {"name": "web1", "origin": "config", "settings": {}, "autostart": False}],
            "kept as overrides of the file", st)
        check(d.vm("db1")["state"] == "off", "not started by the change", d.vm("db1"))
        # a reload keeps what dynmem set chose, as it keeps overridden settings
        d.send(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log(), "the reload")
        check(d.vm("db1")["autostart"] is True and d.vm("web1")["autostart"] is False,
              "kept by the reload", d.vms())
        restart(d)
        check(d.vm("db1")["autostart"] is True and d.vm("web1")["autostart"] is False,
              "kept across the restart", d.vms())
        d.wait_state("db1", "running")
        check(d.vm("web1")["state"] == "off", "web1 no longer autostarts", d.vm("web1"))
        check(state_file(d) == st, "written back the same", state_file(d), st)


@tap.case
def set_reset_survives_a_restart_and_a_reload(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.ok("set", "web1", "--buffer", "40", "--weight", "100")
        d.ok("set", "db1", "--weight", "7", "--autostart", "yes")
        d.ok("set", "web1", "--reset", "weight")
        d.ok("set", "db1", "--reset", "all")
        st = state_file(d)
        check(st["vms"] == [{"name": "web1", "origin": "config",
                             "settings": {"buffer_percent": 40}}],
              "the state file keeps only what is still overridden", st)
        # a reload: the file's new weight is web1's again; its buffer stays overridden
        d.write_config(config(weight=8000))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.vm("web1")["weight"] == 8000, "the file's new weight")
        check(d.vm("web1")["buffer_percent"] == 40, "the buffer still overridden", d.vm("web1"))
        restart(d)
        web1, db1 = d.vm("web1"), d.vm("db1")
        check(web1["weight"] == 8000 and web1["buffer_percent"] == 40 and
              web1["overrides"] == ["buffer_percent"], "web1 after the restart", web1)
        check(db1["weight"] == 5000 and db1["autostart"] is False and db1["state"] == "off" and
              db1["overrides"] == [], "db1 is the file's again", db1)
        check(state_file(d) == st, "written back the same", state_file(d), st)


@tap.case
def a_waiting_reset_survives_a_restart(bins):
    # The file's minimum 512M is above web1's 256M while it runs: a running VM's minimum
    # is only lowered, so that reset waits for the VM to be off, and the wait is saved
    # with the value in force. Simulated VMs never outlive dynmemd: after the restart
    # web1 is off, and takes the file's value before its autostart. (A VM found running
    # again keeps waiting: test-daemon_parts, a_waiting_reset_survives_a_restart.)
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.ok("set", "web1", "--minimum", "256M", "--weight", "100")
        r = d.ok("set", "web1", "--reset", "minimum")
        check("web1: minimum kept while the VM runs" in r.err, "the reset waits", r)
        st = state_file(d)
        check(st["vms"] == [{"name": "web1", "origin": "config",
                             "settings": {"minimum_bytes": 256 * MIB, "weight": 100},
                             "reset_pending": ["minimum_bytes"]}],
              "the waiting reset is saved with the value in force", st)
        before = len(d.log())
        restart(d)
        log = d.log()[before:]
        # each citing the line of the file's minimum key, not of web1's section
        with open(d.conf) as f:
            lines = f.read().split("\n")
        minimum = lines.index("minimum = 512M", lines.index('[vm "web1"]')) + 1
        kept = re.search(r"web1: minimum kept until the VM is off; then minimum \(line "
                         f"{minimum}\\) from {re.escape(d.conf)} is taken", log)
        taken = re.search(f"web1: off: minimum \\(line {minimum}\\) from {re.escape(d.conf)} now",
                          log)
        started = log.find("web1: autostart")
        check(kept and taken and 0 <= kept.start() < taken.start() < started,
              "loaded, then taken before the autostart", log)
        d.wait_state("web1", "running")
        v = d.vm("web1")
        check(v["minimum_bytes"] == 512 * MIB and v["reset_pending"] == [] and
              v["weight"] == 100 and v["overrides"] == ["weight"], "the file's minimum", v)
        check(state_file(d)["vms"] == [{"name": "web1", "origin": "config",
                                        "settings": {"weight": 100}}],
              "nothing waits in the state file any more", state_file(d))


@tap.case
def a_bad_name_in_a_waiting_reset_costs_only_itself(bins):
    # As a later or damaged dynmemd may have written it: "bogus" and a setting without
    # its value are dropped, each named; the rest of the entry and the file stand.
    with Daemon(bins, config()) as d:
        d.write_state("state.json", json.dumps({"version": 1, "vms": [
            {"name": "db1", "origin": "config", "settings": {"weight": 7}},
            {"name": "web1", "origin": "config",
             "settings": {"minimum_bytes": 256 * MIB, "weight": 100},
             "reset_pending": ["bogus", "minimum_bytes", "buffer_percent"]}]}))
        d.start()
        log = d.log()
        check('state file: web1: reset_pending: "bogus" is not a setting, "buffer_percent" '
              'without its value in "settings"; dropped' in log, "the log names them", log)
        check(re.search(r"web1: off: minimum \(line \d+\) from \S+ now", log), "the rest is taken",
              log)
        web1, db1 = d.vm("web1"), d.vm("db1")
        check(web1["minimum_bytes"] == 512 * MIB and web1["weight"] == 100 and
              web1["reset_pending"] == [] and web1["overrides"] == ["weight"], "web1", web1)
        check(db1["weight"] == 7, "the other entry is kept", db1)
        check("this entry is dropped" not in log and "set aside" not in log,
              "no entry dropped, the file not set aside", log)


@tap.case
def set_autostart_on_a_created_vm_survives_a_restart(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("create", "new1", "--startup", "256M", "-o", f"trace={DATA}/small.csv")
        d.ok("set", "new1", "--autostart", "on")
        vm = [v for v in state_file(d)["vms"] if v["name"] == "new1"]
        check(len(vm) == 1 and vm[0]["autostart"] is True, "saved", vm)
        restart(d)
        check(d.vm("new1")["autostart"] is True, "kept", d.vm("new1"))
        d.wait_state("new1", "running")


@tap.case
def lend_off_survives_a_restart(bins):
    with Daemon(bins, config()).start() as d:
        check(d.vm("web1")["lend"] is True, "lend is on by default", d.vm("web1"))
        d.ok("set", "web1", "--lend", "no")
        st = state_file(d)
        check(st["vms"] == [{"name": "web1", "origin": "config", "settings": {"lend": False}}],
              "kept as an override", st)
        restart(d)
        check(d.vm("web1")["lend"] is False, "still off after a restart", d.vm("web1"))


@tap.case
def a_state_file_without_lend_means_yes(bins):
    # As dynmemd wrote it before the lend setting: every other setting of a created VM.
    with Daemon(bins, config()) as d:
        old = {"version": 1, "vms": [
            {"name": "old1", "origin": "created", "autostart": False,
             "settings": {"dynamic": True, "startup_bytes": 512 * MIB, "minimum_bytes": 256 * MIB,
                          "maximum_bytes": GIB, "buffer_percent": 20, "weight": 5000,
                          "block_bytes": 2 * MIB},
             "backend": {"trace": f"{DATA}/small.csv"}}]}
        d.write_state("state.json", json.dumps(old))
        d.start()
        v = d.vm("old1")
        check(v["origin"] == "created" and v["maximum_bytes"] == GIB, "loaded", d.log())
        check(v["lend"] is True, "lend: yes", v)


@tap.case
def config_wins_over_a_created_vm_of_the_same_name(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("create", "x1", "--startup", "256M", "-o", f"trace={DATA}/small.csv")
        d.stop()
        d.write_config(config(extra='[vm "x1"]\nstartup = 768M\ntrace = @DATA@/small.csv\n'))
        d.start()
        v = d.vm("x1")
        check(v["origin"] == "config" and v["startup_bytes"] == 768 * MIB, "file wins", v)
        check("x1: made with dynmem create, now defined" in d.log(), "and says so", d.log())


@tap.case
def sighup_reloads_the_configuration(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.ok("start", "db1")
        d.write_config(config(weight=8000, extra='[vm "new9"]\nstartup = 256M\n'
                                                 'trace = @DATA@/small.csv\nautostart = yes\n')
                       .replace(DB1, ""))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.vm("web1")["weight"] == 8000, "the new weight")
        d.wait_state("new9", "running")
        check("db1" in d.vms(), "a running VM gone from the file stays until it stops")
        d.ok("stop", "db1")
        wait_for(lambda: "db1" not in d.vms(), "db1 to go once off")


@tap.case
def sighup_keeps_what_a_running_vm_cannot_take(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.write_config(config().replace("startup = 1G", "startup = 2G"))
        d.send(signal.SIGHUP)
        # at the line of the key the running VM refuses, not the VM's section
        line = d.conf_line("startup = 2G")
        wait_for(lambda: f"{d.conf}:{line}: web1: keeping the current startup until the VM is "
                 "off: cannot change startup while the VM is running" in d.log(),
                 "the refusal in the log, at startup's line")
        v = d.vm("web1")
        check(v["startup_bytes"] == GIB and v["reset_pending"] == ["startup_bytes"],
              "startup kept while running, the file's waiting", v)
        # and where the operator looks: a warning of the configuration in force
        said = (f'{d.conf}:{line}: warning: vm "web1" takes this file\'s startup once it is '
                "off: cannot change startup while the VM is running")
        h = d.status()
        check(h["config_warnings"] == [said] and h["config_warning_count"] == 1,
              "in dynmem status", h)
        check("1 warning in the configuration in force:" in d.ok("status").out and
              said in d.ok("status").out, "in words too", d.ok("status").out)
        d.send(signal.SIGHUP)  # still running: still said, once
        wait_for(lambda: d.log_count("web1: keeping the current startup") == 2, "the reload")
        check(d.status()["config_warnings"] == [said], "said once", d.status())
        d.write_config(config())  # the file changed back: nothing waits
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["config_warnings"] == [], "gone with the file changed back")
        check(d.vm("web1")["reset_pending"] == [], "nothing waits", d.vm("web1"))
        d.write_config(config().replace("startup = 1G", "startup = 2G"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["config_warnings"] == [said], "back with the change")
        d.ok("stop", "web1")
        # once off the VM takes the file's startup, with no reload
        wait_for(lambda: d.vm("web1")["startup_bytes"] == 2 * GIB, "taken once off")
        h = d.status()
        check(h["config_warnings"] == [] and h["config_warning_count"] == 0,
              "gone once the file's settings are in force", h)
        check(d.vm("web1")["reset_pending"] == [], "nothing waits", d.vm("web1"))


@tap.case
def sighup_applies_what_a_running_vm_can_take(bins):
    """One reload raises web1's weight and lowers its maximum while it runs: the weight is
    taken at once; the maximum, which a running VM may only raise, keeps its value with a
    warning at its key's line, waits as a reset does (in the state file too) and the file's
    is taken once the VM is off. dynmem set of a waiting setting ends its wait."""
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.write_config(config(weight=8000, maximum="2G"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.vm("web1")["weight"] == 8000, "the new weight, at once")
        v = d.vm("web1")
        check(v["maximum_bytes"] == 4 * GIB and v["reset_pending"] == ["maximum_bytes"] and
              v["overrides"] == [], "the maximum kept, the file's waiting", v)
        line = d.conf_line("maximum = 2G")
        check(f"{d.conf}:{line}: web1: keeping the current maximum until the VM is off: maximum "
              "can only be raised while the VM is running" in d.log(), "logged at its line",
              d.log())
        said = (f'{d.conf}:{line}: warning: vm "web1" takes this file\'s maximum once it is '
                "off: maximum can only be raised while the VM is running")
        check(d.status()["config_warnings"] == [said], "in dynmem status", d.status())
        check(re.search(r"^Waits for off: +maximum ", d.ok("show", "web1").out, re.M),
              "dynmem show says what waits", d.ok("show", "web1").out)
        check(state_file(d)["vms"] == [{"name": "web1", "origin": "config",
                                        "settings": {"maximum_bytes": 4 * GIB},
                                        "reset_pending": ["maximum_bytes"]}],
              "saved with the value in force", state_file(d))
        d.ok("stop", "web1")
        wait_for(lambda: d.vm("web1")["maximum_bytes"] == 2 * GIB, "the file's maximum once off")
        check(re.search(f"web1: off: maximum \\(line {line}\\) from {re.escape(d.conf)} now",
                        d.log()), "and says so", d.log())
        v = d.vm("web1")
        check(v["weight"] == 8000 and v["reset_pending"] == [], "the file's settings", v)
        check(d.status()["config_warnings"] == [], "the warning gone", d.status())
        check(state_file(d)["vms"] == [], "nothing saved", state_file(d))
        d.ok("start", "web1")
        d.wait_state("web1", "running")
        check(d.vm("web1")["maximum_bytes"] == 2 * GIB, "started with it", d.vm("web1"))

        # lowered again while it runs, then set with dynmem set: nothing of the file waits
        d.write_config(config(weight=8000, maximum="1G"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.vm("web1")["reset_pending"] == ["maximum_bytes"], "the wait")
        check(len(d.status()["config_warnings"]) == 1, "warned", d.status())
        d.ok("set", "web1", "--maximum", "3G")
        v = d.vm("web1")
        check(v["maximum_bytes"] == 3 * GIB and v["reset_pending"] == [] and
              v["overrides"] == ["maximum_bytes"], "set anew", v)
        check(d.status()["config_warnings"] == [], "the warning gone with the wait",
              d.status())


@tap.case
def what_a_running_vm_cannot_take_is_named_at_its_line(bins):
    """A setting a running VM refuses at a reload is named at its key's line, whichever it
    is; one the file no longer gives went back to its default, at the VM's section, and
    the warning says so."""
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.write_config(config(maximum="2G"))
        d.send(signal.SIGHUP)
        said = (f'{d.conf}:{d.conf_line("maximum = 2G")}: warning: vm "web1" takes this '
                "file's maximum once it is off: maximum can only be raised while the VM is "
                "running")
        wait_for(lambda: d.status()["config_warnings"] == [said], "maximum, at its line")
    two = config().replace("startup = 1G", "startup = 2G")
    with Daemon(bins, two).start() as d:
        d.wait_state("web1", "running")
        d.write_config(two.replace("startup = 2G\n", ""))
        d.send(signal.SIGHUP)
        section = d.conf_line('[vm "web1"]')
        said = (f'{d.conf}:{section}: warning: vm "web1" takes this file\'s startup once it is '
                "off: cannot change startup while the VM is running (the file leaves startup at "
                "its default)")
        wait_for(lambda: d.status()["config_warnings"] == [said],
                 "a default, at the section, said to be one")
        check(f"{d.conf}:{section}: web1: keeping the current startup until the VM is off: "
              "cannot change startup while the VM is running (the file leaves startup at its "
              "default)" in d.log(), "the log's words", d.log())


@tap.case
def overrides_that_no_longer_fit_name_the_files_line(bins):
    """Settings changed with dynmem set that the file's new values no longer fit are
    dropped, naming the line of the file's key they clash with: at a reload, and from
    the state file at the start."""
    small = config().replace("startup = 512M", "startup = 128M")
    with Daemon(bins, config()).start() as d:
        d.ok("set", "db1", "--minimum", "256M")
        d.write_config(small)
        d.send(signal.SIGHUP)
        said = (f"db1: the settings changed with dynmem set no longer fit "
                f"{d.conf}:{d.conf_line('startup = 128M')} (minimum 256 MiB is above startup "
                "128 MiB); they are dropped")
        wait_for(lambda: said in d.log(), "at a reload, the line of startup")
        check(d.vm("db1")["minimum_bytes"] == 128 * MIB, "the file's settings stand", d.vm("db1"))
    with Daemon(bins, config()).start() as d:
        d.ok("set", "db1", "--minimum", "256M")
        d.stop()
        d.write_config(small)
        d.start()
        said = (f"state file: db1: the settings changed with dynmem set no longer fit "
                f"{d.conf}:{d.conf_line('startup = 128M')} (minimum 256 MiB is above startup "
                "128 MiB); they are dropped")
        check(said in d.log(), "at the start, the line of startup", said, d.log())


@tap.case
def sighup_with_a_broken_file_keeps_the_old_one(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.write_config(config() + "\n[vm \"bad\"]\nweight = heavy\n")
        d.send(signal.SIGHUP)
        wait_for(lambda: "reload failed" in d.log(), "the failure in the log")
        check(":" in d.log() and "weight: \"heavy\"" in d.log(), "FILE:LINE message", d.log())
        vms = d.vms()
        check("bad" not in vms and vms["web1"]["state"] == "running", "old config in force", vms)
        # where the operator looks after systemctl reload: dynmem status, not only the log
        h = d.status()
        check(re.search(re.escape(d.conf) + r":\d+: weight: \"heavy\"", h["reload_error"] or ""),
              "status names the first problem", h)
        out = d.ok("status").out
        check(re.search(r"Config: +RELOAD FAILED: .*weight: \"heavy\".*the configuration in force "
                        r"is the one read before", out), "and says it in words", out)
        d.write_config(config())
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["reload_error"] is None, "a reload that works to clear it")
        check("RELOAD FAILED" not in d.ok("status").out, "gone from the words too")


@tap.case
def a_reload_error_quoting_bytes_not_utf8_leaves_status_working(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.write_config(config() + '\n[vm "bad"]\nweight = heXavy\n')
        with open(d.conf, "rb") as f:
            text = f.read()
        with open(d.conf, "wb") as f:
            f.write(text.replace(b"heXavy", b"he\xffavy"))
        d.send(signal.SIGHUP)
        wait_for(lambda: "reload failed" in d.log(), "the failure in the log")
        h = d.status()
        check(re.search(r"weight: \"he\?avy\"", h["reload_error"] or ""),
              "the byte shown as ?, and the status still a reply", h)


@tap.case
def sighup_with_a_binary_file_logs_the_first_problems(bins):
    """A binary file has a problem on nearly every line: the first 20 are logged, then one
    line for the rest, and dynmem status says how many the log shows."""
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        with open(d.conf, "wb") as f:
            f.write(b"\x7fELF\x02\x01\x01\x00\x00\n" * 7000)
        d.send(signal.SIGHUP)
        wait_for(lambda: "more problems" in d.log(), "the closing line in the log")
        log = d.log()
        nul = [ln for ln in log.splitlines() if f"{d.conf}:" in ln and "a NUL byte" in ln]
        check(len(nul) == 20, "the first 20 problems are logged", len(nul), log[-3000:])
        check(f"{d.conf}:20: a NUL byte" in nul[-1], "with their lines", nul[-1:])
        check("... and 6,980 more problems" in log, "then how many more", log[-3000:])
        h = d.status()
        check(re.match(re.escape(d.conf) + r":1: a NUL byte.*\(and 6,999 more; the next 19 in "
                       r"the log\)$", h["reload_error"] or ""), "status says what the log holds", h)
        check(d.vms()["web1"]["state"] == "running", "the configuration in force stays")


@tap.case
def sighup_with_an_empty_file_removes_nothing(bins):
    """A file caught between truncation and writing (an editor, a deployment tool) would
    otherwise remove every VM and drop its saved settings."""
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        d.ok("set", "db1", "--weight", "7000")
        open(d.conf, "w").close()  # truncated, not yet written
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["reload_error"], "the refusal in status")
        check(d.status()["reload_error"].startswith(f"{d.conf}: empty (being written?)"),
              "it says the file is empty", d.status())
        p = d.check_config()  # what dynmemd -n says of it, before a reload
        check(p.returncode == 2 and p.stderr.startswith(f"{d.conf}: empty (being written?); a "
                                                        "reload refuses it"),
              "dynmemd -n refuses it with the same words", p)
        vms = d.vms()
        check(vms["web1"]["state"] == "running" and vms["db1"]["weight"] == 7000,
              "every VM and its settings stay", vms)
        check("db1" in vms, "db1 too", vms)
        d.write_config(BASE)
        d.send(signal.SIGHUP)
        wait_for(lambda: "db1" not in d.vms(), "a file with the host's keys and no VM is taken")


@tap.case
def sighup_changes_the_policy_and_says_so(bins):
    """A new policy replaces the one in force whole; status and the log name the one that runs
    (the failure half of it, out of memory, is unit/balancer_replace)."""
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        policy = lambda: d.status()["policy"]  # noqa: E731
        check(policy() == "dynmem", "dynmem at start", d.status())
        d.write_config(config().replace("interval = 100ms", "interval = 100ms\npolicy = hyperv"))
        d.send(signal.SIGHUP)
        wait_for(lambda: "policy hyperv replaces dynmem" in d.log(), "the change in the log")
        check(policy() == "hyperv", "status names the policy in force", d.status())
        d.write_config(config().replace("interval = 100ms", "interval = 100ms\npolicy = magic"))
        d.send(signal.SIGHUP)
        wait_for(lambda: "reload failed: the configuration in force stays (policy hyperv)"
                 in d.log(), "the failure names the policy in force")
        check(policy() == "hyperv", "still hyperv", d.status())
        check(d.vm("web1")["state"] == "running", "web1 runs on")


@tap.case
def start_and_sighup_warn_of_a_comment_in_a_text_value(bins):
    text = config().replace("interval = 100ms", "interval = 100ms\n"
                            "libvirt_uri = qemu:///system # the local one")
    said = ('warning: libvirt_uri: "qemu:///system # the local one" holds " # the local one" as '
            "part of the value")
    with Daemon(bins, text).start() as d:
        check(d.log_count(said) == 1, "said at the start", d.log())
        d.send(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log(), "the reload")
        check(d.log_count(said) == 2, "and at a reload, which goes on", d.log())


@tap.case
def start_and_sighup_warn_of_memory_beyond_the_host(bins):
    said = "warning: [host] memory 4096 TiB and reserve "
    with Daemon(bins, config().replace("memory = 8G", "memory = 4096T")).start() as d:
        check(d.log_count(said) == 1 and "(MemTotal, /proc/meminfo)" in d.log(),
              "said at the start", d.log())
        d.send(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log(), "the reload")
        check(d.log_count(said) == 2, "and at a reload, which goes on", d.log())
        # where the operator looks: dynmem status, as long as that file is in force
        with open(d.conf) as f:
            line = f.read().split("\n").index("memory = 4096T") + 1
        h = d.status()
        check(h["config_warning_count"] == 1 and len(h["config_warnings"]) == 1 and
              h["config_warnings"][0].startswith(f"{d.conf}:{line}: {said}"),
              "the warning in the JSON, FILE:LINE first", h)
        out = d.ok("status").out
        check(re.search(r"Config: +1 warning in the configuration in force:\n +" +
                        re.escape(f"{d.conf}:{line}: {said}"), out), "and in words", out)
        # a reload that fails keeps the configuration in force, and its warning
        d.write_config(config().replace("memory = 8G", "memory = 4096T") +
                       "\n[vm \"bad\"]\nweight = heavy\n")
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["reload_error"], "the failed reload")
        check(d.status()["config_warning_count"] == 1, "the warning stays", d.status())
        check(re.search(r"RELOAD FAILED.*\n.*1 warning", d.ok("status").out),
              "both in words", d.ok("status").out)
        # a reload of a file that does not warn clears it
        d.write_config(config())
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["reload_error"] is None, "the reload that works")
        h = d.status()
        check(h["config_warnings"] == [] and h["config_warning_count"] == 0, "no warning", h)
        check("warning" not in d.ok("status").out, "gone from the words too")


@tap.case
def status_shows_the_first_config_warnings_and_how_many(bins):
    """Seven warnings (traces whose names hold " #"): the first five in status (JSON and
    words), the others counted."""
    vms = "".join(static_vm(f"t{i}", "512M", f"@DIR@/t # {i}.csv") for i in range(7))
    with Daemon(bins, config(extra=vms)) as d:
        with open(os.path.join(DATA, "small.csv")) as f:
            trace = f.read()
        for i in range(7):
            with open(os.path.join(d.dir, f"t # {i}.csv"), "w") as f:
                f.write(trace)
        d.start()
        h = d.status()
        check(h["config_warning_count"] == 7 and len(h["config_warnings"]) == 5, "5 of 7", h)
        check(all(f'" # {i}.csv" as part of the value' in w for i, w in
                  enumerate(h["config_warnings"])), "the first ones, in order", h)
        out = d.ok("status").out
        check("7 warnings in the configuration in force:" in out and
              out.count("# 4.csv\" as part of the value") == 1 and "# 5.csv\"" not in out and
              re.search(r"\n +and 2 more in the log\n", out), "5 lines and the rest counted", out)


@tap.case
def sighup_says_what_waits_for_a_restart(bins):
    with Daemon(bins, config()).start() as d:
        d.write_config(config().replace("interval = 100ms", "interval = 100ms\n"
                                        "admin_group = root\nqemu_user = nobody"))
        d.send(signal.SIGHUP)
        wait_for(lambda: "reloaded" in d.log(), "the reload")
        for key in ("admin_group", "qemu_user"):
            check(f"[host] {key} changes when dynmemd restarts" in d.log(), f"{key}: said",
                  d.log())
        check("libvirt_uri" not in d.log(), "nothing said of what did not change", d.log())
        # compared with what is in force, not with the file last read
        said = "[host] admin_group changes when dynmemd restarts"
        d.write_config(config())
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 2, "the second reload")
        check(d.log_count(said) == 1, "back to the file in force: nothing waits", d.log())
        d.write_config(config().replace("interval = 100ms", "interval = 100ms\nadmin_group = root"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 3, "the third reload")
        check(d.log_count(said) == 2, "a change not in force yet is said again", d.log())


@tap.case
def status_shows_what_waits_for_a_restart_until_the_file_agrees(bins):
    """A reload's warning that a key changes only when dynmemd restarts is one of the
    configuration's warnings in status (JSON and words), in the log's words, until a
    reload reads the file back at what runs or dynmemd restarts."""
    with Daemon(bins, config()).start() as d:
        original = open(d.conf).read()
        moved = original.replace(f"state_dir = {d.state_dir}\n",
                                 f"state_dir = {d.state_dir}-new\nhttp = 127.0.0.1:0\n")
        check(moved != original, "the file names the state directory", original)
        with open(d.conf, "w") as f:
            f.write(moved)
        state_dir = (f"{d.conf}:{d.conf_line(f'state_dir = {d.state_dir}-new')}: warning: "
                     "[host] state_dir changes when dynmemd restarts")
        http = (f"{d.conf}:{d.conf_line('http = 127.0.0.1:0')}: warning: [host] http changes "
                "when dynmemd restarts")

        def send(text):
            with open(d.conf, "w") as f:
                f.write(text)
            d.send(signal.SIGHUP)

        def reload(text, n):
            send(text)
            wait_for(lambda: d.log_count("reloaded") == n, f"reload {n}")
            return d.status()

        h = reload(moved, 1)
        check(h["config_warnings"] == [state_dir, http] and h["config_warning_count"] == 2,
              "both in status --json", h)
        check(h["state_dir"] == d.state_dir and h["http_url"] is None, "what runs stays", h)
        out = d.ok("status").out
        check("2 warnings in the configuration in force:" in out and
              re.search(r"\n +" + re.escape(state_dir) + "\n", out) and
              re.search(r"\n +" + re.escape(http) + "\n", out), "both in status's words", out)
        check(d.log_count(state_dir) == 1 and d.log_count(http) == 1, "the log's words",
              d.log())
        # a reload refused keeps the configuration in force, its warnings too
        send(moved + '\n[vm "bad"]\nweight = heavy\n')
        wait_for(lambda: d.status()["reload_error"], "the failed reload")
        check(d.status()["config_warnings"] == [state_dir, http], "kept by a failed reload",
              d.status())
        # the file back at what runs: nothing waits
        h = reload(original, 2)
        check(h["config_warnings"] == [] and h["config_warning_count"] == 0, "gone", h)
        check("warning" not in d.ok("status").out, "gone from the words", d.ok("status").out)
        # what waited, taken by a restart: nothing waits
        moved = original.replace("interval = 100ms\n", "interval = 100ms\nhttp = 127.0.0.1:0\n")
        h = reload(moved, 3)
        http = (f"{d.conf}:{d.conf_line('http = 127.0.0.1:0')}: warning: [host] http changes "
                "when dynmemd restarts")
        check(h["config_warnings"] == [http], "the http change waits, at its new line", h)
        restart(d)
        h = d.status()
        check(h["http_url"] is not None and h["config_warnings"] == [] and
              h["config_warning_count"] == 0, "in force after the restart, no warning", h)


PEER = """
[peer "b"]
libvirt_uri = qemu+ssh://b/system
http = http://127.0.0.1:1
"""


@tap.case
def what_waits_for_a_restart_is_named_at_its_line(bins):
    """Each key a reload found changed that waits for a restart is warned of at the line
    that gives it; a key the file no longer gives (back at its default) has no line, and
    the warning says it is no longer given."""
    with Daemon(bins, config()).start() as d:
        original = open(d.conf).read()
        moved = (original.replace(f"socket = {d.socket}\n", f"socket = {d.socket}-new\n")
                 .replace("speed = 20\n", "speed = 10\nseed = 3\nduration = 1h\n"))
        check(moved.count("-new") == 1 and "speed = 10" in moved, "the file to change",
              original)
        with open(d.conf, "w") as f:
            f.write(moved)
        socket = (f"{d.conf}:{d.conf_line(f'socket = {d.socket}-new')}: warning: [host] socket "
                  "changes when dynmemd restarts")
        speed = (f"{d.conf}:{d.conf_line('speed = 10')}: warning: [sim] speed changes when "
                 "dynmemd restarts")
        seed = (f"{d.conf}:{d.conf_line('seed = 3')}: warning: seed: nothing in dynmemd is "
                "random, so it ignores the seed (a generated trace takes its seed from "
                "dynmem-tracegen --seed)")
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 1, "the reload")
        h = d.status()
        # nothing waits for the seed, read by nothing, nor for duration, dynmem-sim's:
        # the seed's own warning alone
        check(h["config_warnings"] == [seed, socket, speed], "FILE:LINE of each", h)
        check(all(d.log_count(w) == 1 for w in (seed, socket, speed)), "the log's words",
              d.log())
        check(h["socket"] == d.socket, "the socket in force stays", h)

        # removed: state_dir and [sim] speed fall back to their defaults, which differ
        gone = (original.replace(f"state_dir = {d.state_dir}\n", "")
                .replace("speed = 20\n", ""))
        check(gone != original and "state_dir" not in gone, "the keys to remove", gone)
        with open(d.conf, "w") as f:
            f.write(gone)
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 2, "the second reload")
        h = d.status()
        check(h["config_warnings"] == [
            f"{d.conf}: warning: [host] state_dir (no longer given) changes when dynmemd "
            "restarts",
            f"{d.conf}: warning: [sim] speed (no longer given) changes when dynmemd restarts"],
            "no line for a key no longer given, and it says so", h)
        check(h["state_dir"] == d.state_dir, "the state directory in force stays", h)


@tap.case
def start_and_sighup_warn_of_a_seed(bins):
    """[sim] seed is read by nothing: dynmemd warns of it at its line, at the start, at a
    reload and in dynmemd -n, as dynmem-sim does; the file loads."""
    text = config().replace("speed = 20\n", "speed = 20\nseed = 7\n")
    check("seed = 7" in text, "the file gives a seed", text)
    with Daemon(bins, text) as d:
        said = (f"{d.conf}:{d.conf_line('seed = 7')}: warning: seed: nothing in dynmemd is "
                "random, so it ignores the seed (a generated trace takes its seed from "
                "dynmem-tracegen --seed)")
        p = d.check_config()
        check(p.returncode == 0 and said in p.stderr, "dynmemd -n: OK, with the warning", p)
        d.start()
        h = d.status()
        check(h["config_warnings"] == [said] and h["config_warning_count"] == 1,
              "at the start, in status", h)
        check(d.log_count(said) == 1, "and in the log", d.log())
        check(said in d.ok("status").out, "and in status's words", d.ok("status").out)
        # another seed at a reload: warned of again, nothing waits for a restart
        d.write_config(config().replace("speed = 20\n", "speed = 20\nseed = 8\n"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 1, "the reload")
        again = said.replace("seed = 7", "seed = 8")
        h = d.status()
        check(h["config_warnings"] == [again] and "when dynmemd restarts" not in d.log(),
              "the seed's warning alone", h, d.log())
        # no seed: no warning
        d.write_config(config())
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 2, "the second reload")
        check(d.status()["config_warnings"] == [], "gone with the key", d.status())


@tap.case
def sim_keys_wait_for_a_restart_only_under_the_simulated_backend(bins):
    """dynmemd reads [sim] only with backend sim: under backend qemu a changed [sim] key
    is no warning. backend itself cannot change at a reload: the reload is refused at
    the key's line, or without one when the file no longer gives it (back at sim)."""
    qemu = "[host]\nbackend = qemu\nmemory = 2G\ninterval = 100ms\n\n[sim]\nspeed = 20\n"
    with Daemon(bins, qemu).start() as d:
        d.write_config(qemu.replace("speed = 20\n", "speed = 10\nstep = 2s\n"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reloaded") == 1, "the reload")
        h = d.status()
        check(h["config_warnings"] == [] and h["reload_error"] is None,
              "nothing waits: dynmemd under backend qemu reads no [sim] key", h)
        check("when dynmemd restarts" not in d.log(), "nor does the log say so", d.log())

        # backend sim in the file, [sim] changed too: refused at backend's line
        d.write_config(qemu.replace("backend = qemu", "backend = sim")
                       .replace("speed = 20\n", "speed = 5\n"))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.status()["reload_error"], "the refused reload")
        said = (f"{d.conf}:{d.conf_line('backend = sim')}: [host] backend changes only when "
                "dynmemd restarts")
        h = d.status()
        check(h["reload_error"] == said and h["config_warnings"] == [],
              "the reload refused at the line of backend, nothing else said", h)
        check(d.log_count(said) == 1 and "when dynmemd restarts" not in
              d.log().replace(said, ""), "the log's words", d.log())
        # backend taken out of the file: the default, sim, with no line
        d.write_config(qemu.replace("backend = qemu\n", ""))
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reload failed") == 2, "the second refused reload")
        h = d.status()
        check(h["reload_error"] == f"{d.conf}: [host] backend (no longer given) changes only "
              "when dynmemd restarts", "no line for a key no longer given, and it says so", h)


@tap.case
def errors_of_host_keys_name_their_lines(bins):
    """dynmemd's own errors of [host] keys (a path not absolute, an http address, a group
    that does not exist, a backend it does not know, a reserve that leaves nothing) name
    the key's line: at a reload, which is refused, and at the start, which fails."""
    bad = [
        ("web_dir = relative/web", '[host] web_dir "relative/web" must be an absolute path'),
        ("http = 192.0.2.1:9100", "[host] http: "),
        ("admin_group = no-such-group-dynmem",
         "[host] admin_group: there is no group no-such-group-dynmem"),
        ("backend = vmware", '[host] backend: unknown backend "vmware" (known: sim, qemu, '
         "libvirt)"),
    ]
    with Daemon(bins, config()).start() as d:
        for n, (line, error) in enumerate(bad, 1):
            d.write_config(config().replace("interval = 100ms\n", f"interval = 100ms\n{line}\n"))
            d.send(signal.SIGHUP)
            wait_for(lambda: d.log_count("reload failed") == n, f"reload {n} refused")
            said = f"{d.conf}:{d.conf_line(line)}: {error}"
            h = d.status()
            check((h["reload_error"] or "").startswith(said), f"{line}: refused at its line", said,
                  h)
            check(said in d.log(), f"{line}: the log's words", d.log())
    for line, error in bad:
        with Daemon(bins, config().replace("interval = 100ms\n",
                                           f"interval = 100ms\n{line}\n")) as d:
            d.start(expect_ready=False)
            rc = d.proc.wait(timeout=60)
            said = f"{d.conf}:{d.conf_line(line)}: {error}"
            check(rc == 2 and said in d.log(), f"{line}: the start fails at its line", rc,
                  d.log())
    # a reserve that leaves nothing of the host (memory left out): at the line of reserve
    nothing = config().replace("memory = 8G\n", "reserve = 4096T\n")
    with Daemon(bins, config()).start() as d:
        d.write_config(nothing)
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reload failed") == 1, "the reload refused")
        said = (f"{d.conf}:{d.conf_line('reserve = 4096T')}: [host] reserve 4096 TiB leaves "
                "nothing of the host's ")
        check((d.status()["reload_error"] or "").startswith(said), "refused at its line", said,
              d.status())
    with Daemon(bins, nothing) as d:
        d.start(expect_ready=False)
        rc = d.proc.wait(timeout=60)
        said = (f"{d.conf}:{d.conf_line('reserve = 4096T')}: [host] reserve 4096 TiB leaves "
                "nothing of the host's ")
        check(rc == 2 and said in d.log(), "the start fails at its line", said, rc, d.log())
    # socket and state_dir, which the test's files give at lines 2 and 3
    with Daemon(bins, config()) as d:
        socket, state_dir = d.socket, d.state_dir
        for key, value in (("socket", "run/dynmemd.sock"), ("state_dir", "state")):
            d.write_config(config())
            with open(d.conf) as f:
                text = f.read()
            with open(d.conf, "w") as f:
                f.write(text.replace({"socket": socket, "state_dir": state_dir}[key], value, 1))
            said = (f"{d.conf}:{d.conf_line(f'{key} = {value}')}: [host] {key} \"{value}\" "
                    "must be an absolute path")
            p = d.check_config()
            check(p.returncode == 2 and said in p.stderr, f"dynmemd -n: {key} at its line", p)
            d.start(expect_ready=False)
            rc = d.proc.wait(timeout=60)
            check(rc == 2 and said in d.log(), f"the start: {key} at its line", rc, d.log())
            d.logf.close()


@tap.case
def errors_of_vm_settings_name_their_lines(bins):
    """A rule between a VM's settings is an error at the line of the key the message is
    about, citing the other key's line: with dynmemd -n, at a reload, which is refused,
    and at the start, which fails."""
    bad = config(maximum="256M")

    def said(d):
        return (f"{d.conf}:{d.conf_line('startup = 1G')}: vm \"web1\": startup 1 GiB is above "
                f"maximum 256 MiB (maximum at line {d.conf_line('maximum = 256M')})")

    with Daemon(bins, config()).start() as d:
        d.write_config(bad)
        p = d.check_config()
        check(p.returncode == 2 and said(d) in p.stderr, "dynmemd -n: at startup's line",
              said(d), p)
        d.send(signal.SIGHUP)
        wait_for(lambda: d.log_count("reload failed") == 1, "the reload refused")
        check(d.status()["reload_error"] == said(d), "refused at startup's line", said(d),
              d.status())
        check(said(d) in d.log(), "the log's words", d.log())
    with Daemon(bins, bad) as d:
        d.start(expect_ready=False)
        rc = d.proc.wait(timeout=60)
        check(rc == 2 and said(d) in d.log(), "the start fails at startup's line", rc, d.log())


@tap.case
def sighup_with_a_bad_peer_keeps_the_peers(bins):
    with Daemon(bins, config(extra=PEER)).start() as d:
        def names():
            return [p["name"] for p in d.status()["peers"]]

        check(names() == ["b"], "the peer in force", d.status())
        d.write_config(config(extra=PEER.replace("http://127.0.0.1:1", "ftp://b")))
        p = subprocess.run([d.dynmemd, "-n", "-f", d.conf], capture_output=True, text=True)
        check(p.returncode == 2 and f'{d.conf}:' in p.stderr and
              'peer "b": http "ftp://b" is not http://HOST[:PORT]' in p.stderr,
              "dynmemd -n names the peer's http with its line", p)
        d.send(signal.SIGHUP)
        wait_for(lambda: "reload failed" in d.log(), "the failure in the log")
        check(names() == ["b"], "the peers in force stay", d.status(), d.log())


@tap.case
def sigterm_exits_cleanly(bins):
    with Daemon(bins, config()).start() as d:
        d.wait_state("web1", "running")
        rc = d.stop()
        check(rc == 0, "exit status 0", rc, d.log())
        check(not os.path.exists(d.socket), "socket removed", d.log())
        check("stopped" in d.log(), "says it stopped", d.log())


@tap.case
def second_daemon_on_the_same_socket_is_refused(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("set", "web1", "--weight", "123")
        before = state_file(d)
        p = subprocess.run([d.dynmemd, "-d", "-f", d.conf], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 1 and "another dynmemd is listening on " + d.socket in p.stderr,
              "refused with the reason", p)
        check(state_file(d) == before, "state file untouched")
        check(d.vm("web1")["weight"] == 123, "the first one still serves")


@tap.case
def second_daemon_on_the_same_state_dir_is_refused(bins):
    with Daemon(bins, config()).start() as d:
        d.ok("set", "web1", "--weight", "123")
        before = state_file(d)
        with Daemon(bins, config(), state_dir=d.state_dir) as other:  # its own socket
            other.start(expect_ready=False)
            rc = other.proc.wait(timeout=30)
            check(rc == 1 and f"another dynmemd (pid {d.proc.pid}) uses the state directory "
                  f"{d.state_dir}" in other.log(), "refused with the reason", rc, other.log())
            check(not os.path.exists(other.socket), "its socket removed", other.log())
        check(state_file(d) == before, "state file untouched")
        check(d.vm("web1")["weight"] == 123, "the first one still serves")
        rc = d.stop()
        check(rc == 0, "the first one stops cleanly", rc, d.log())
        d.start()  # and the directory is free again once it has stopped
        check(d.vm("web1")["weight"] == 123, "a restart takes the directory", d.log())


@tap.case
def unwritable_state_dir_keeps_running_and_says_so(bins):
    with Daemon(bins, config()) as d:
        blocker = os.path.join(d.dir, "blocker")
        open(blocker, "w").close()
        d.state_dir = os.path.join(blocker, "state")  # a directory under a file: never writable
        d.write_config(config())
        d.start()
        h = d.json("status")
        check(h["state_saved"] is False and "cannot write" in h["state_error"], "status", h)
        check("dynmem set and dynmem create will not survive a restart" in d.log(), "log", d.log())
        r = d.ok("set", "web1", "--weight", "42")
        check("dynmem: warning: web1: not saved" in r.err, "the change warns", r)
        check(d.vm("web1")["weight"] == 42, "but is made")
        check("NOT SAVED" in d.ok("status").out, "human status shows it")


@tap.case
def corrupt_state_file_is_set_aside(bins):
    with Daemon(bins, config()) as d:
        d.write_state("state.json",
                      '{"version": 1, "vms": [{"name": "web1", "origin": "elsewhere"}]}')
        d.start()
        check(os.path.exists(os.path.join(d.state_dir, "state.json.bad")), "set aside", d.log())
        check("origin must be config or created" in d.log(), "the reason is logged", d.log())
        check(state_file(d) == {"version": 1, "vms": []}, "a good state file written")
        d.wait_state("web1", "running")


@tap.case
def one_bad_entry_costs_the_others_nothing(bins):
    with Daemon(bins, config()) as d:
        text = ('{"version": 1, "vms": [\n'
                '  {"name":"web1","origin":"config","settings":{"weight":42}},\n'
                '  {"name":"db1","origin":"config","settings":{"weight":"heavy"}},\n'
                '  {"name":"new1","origin":"created","autostart":false,"settings":{"dynamic":false,'
                '"startup_bytes":268435456},"backend":{"trace":"' + DATA + '/small.csv"}}\n]}\n')
        path = d.write_state("state.json", text)
        d.start()
        check(d.vm("web1")["weight"] == 42, "the override before the bad entry is kept", d.log())
        check(d.vm("new1")["startup_bytes"] == 256 * MIB, "the created VM after it too", d.log())
        check(d.vm("db1")["weight"] == 5000, "the bad one is dropped: the file's value")
        check(re.search(re.escape(path) + r": vms\[1\]: .*weight.*; this entry is dropped",
                        d.log()), "the log names the entry and why", d.log())
        check(f"state file set aside as {path}.bad; the other 2 entries are kept" in d.log(),
              "and where the file as it was went", d.log())
        with open(path + ".bad") as f:
            check(f.read() == text, "set aside whole")
        names = sorted(v["name"] for v in state_file(d)["vms"])
        check(names == ["new1", "web1"], "the good entries written back", names)


@tap.case
def one_bad_running_entry_costs_the_others_nothing(bins):
    # running.json: the VMs around a bad entry are still reattached (the simulated ones
    # never outlive dynmemd, so each is found off), the host's counters kept.
    with Daemon(bins, config()) as d:
        text = ('{"version": 1, "host": {"add_operations": 1000}, "vms": [\n'
                '  {"name":"web1","state":"running","assigned_bytes":1073741824,'
                '"target_bytes":1073741824},\n'
                '  {"name":"db1","state":"paused","assigned_bytes":536870912,'
                '"target_bytes":536870912},\n'
                '  {"name":"gone1","state":"stopping","assigned_bytes":536870912,'
                '"target_bytes":536870912}\n]}\n')
        path = d.write_state("running.json", text)
        d.start()
        log = d.log()
        check("web1: was running when dynmemd stopped; nothing of it runs now: off" in log,
              "the entry before the bad one is reattached", log)
        check("gone1: was running when dynmemd stopped but is no longer defined" in log,
              "the entry after it too", log)
        check("db1: was running" not in log, "the bad one is not", log)
        check(f'{path}: vms[1]: db1: state "paused" is not running or stopping; this entry '
              "is dropped" in log, "the log names the entry and why", log)
        check(f"{path} set aside as {path}.bad; the other 2 entries are kept" in log,
              "and where the file as it was went", log)
        with open(path + ".bad") as f:
            check(f.read() == text, "set aside whole")
        c = d.json("counters", "--set", "balancer")["balancer"]
        check(c["memory_add_operations"] >= 1000, "the host's counters are kept", c)
        d.wait_state("web1", "running")


@tap.case
def bad_host_counters_cost_only_the_counters(bins):
    # running.json: host counters that cannot be read start from zero, said in the log;
    # the VMs are still reattached and the file as it was is set aside.
    with Daemon(bins, config()) as d:
        text = ('{"version": 1, "host": {"add_operations": 1000, "crashes": -3}, "vms": [\n'
                '  {"name":"web1","state":"running","assigned_bytes":1073741824,'
                '"target_bytes":1073741824},\n'
                '  {"name":"db1","state":"stopping","assigned_bytes":536870912,'
                '"target_bytes":536870912}\n]}\n')
        path = d.write_state("running.json", text)
        d.start()
        log = d.log()
        check("web1: was running when dynmemd stopped; nothing of it runs now: off" in log and
              "db1: was running when dynmemd stopped" in log, "the VMs are reattached", log)
        check(f"{path}: host: crashes: not a count of 0..2^62; the host's counters start from "
              "zero, the VMs are still reattached" in log, "the log says why", log)
        check(f"{path} set aside as {path}.bad; its 2 entries are kept" in log,
              "and where the file as it was went", log)
        check("no VM is reattached" not in log, "not the whole file", log)
        with open(path + ".bad") as f:
            check(f.read() == text, "set aside whole")
        c = d.json("counters", "--set", "balancer")["balancer"]
        check(c["memory_add_operations"] < 1000, "the host's counters start from zero", c)
        d.wait_state("web1", "running")
        with open(path) as f:
            check(json.load(f)["host"].get("crashes", 0) >= 0, "a good file written", path)


def set_aside_beside_an_earlier_one(bins, name, logged):
    """A bad NAME goes beside a NAME.bad set aside before, never over it; logged(bad)
    is the log line that names where it went."""
    d = Daemon(bins, config())
    bad = d.write_state(name + ".bad", "set aside earlier")
    d.write_state(name, '{"version": 1, "vms": [')  # cut short
    try:
        d.start()
        with open(bad) as f:
            check(f.read() == "set aside earlier", "the earlier one is kept", d.log())
        with open(bad + ".1") as f:
            check(f.read() == '{"version": 1, "vms": [', "this one beside it", d.log())
        check(logged(bad) in d.log(), "the log names it", d.log())
        return d
    except BaseException:
        d.stop()
        d.cleanup()
        raise


@tap.case
def a_state_file_set_aside_before_is_kept(bins):
    with set_aside_beside_an_earlier_one(bins, "state.json",
                                         lambda bad: f"state file set aside as {bad}.1") as d:
        check(state_file(d) == {"version": 1, "vms": []}, "a good state file written")


@tap.case
def a_running_file_set_aside_before_is_kept(bins):
    # running.json (the VMs a restart reattaches) is set aside as state.json is.
    with set_aside_beside_an_earlier_one(
            bins, "running.json", lambda bad: f"set aside as {bad}.1, no VM is reattached") as d:
        d.wait_state("web1", "running")


def set_aside_files(d):
    return sorted(n for n in os.listdir(d.state_dir) if ".bad" in n)


# What a newer dynmemd may add within version 1: a setting of each JSON type.
FUTURE_SETTINGS = {"future_str": "s", "future_num": 3, "future_real": 2.5,
                   "future_obj": {"k": [None, True]}, "future_list": [1, "x", {}]}
LATER = {"a": [1, "x"], "b": None}


@tap.case
def a_newer_dynmemds_additions_are_written_back(bins):
    # A downgrade: a newer dynmemd wrote a member of the file, a member of an entry and
    # settings this one does not know. The entry is kept with what this one knows; the
    # additions are named once and written back as they were with every change, beside
    # what this one writes, so that an upgrade again finds them. Nothing is set aside.
    with Daemon(bins, config()) as d:
        path = d.write_state("state.json", json.dumps({
            "version": 1, "later": LATER, "vms": [
                {"name": "web1", "origin": "config", "colour": "red",
                 "settings": dict(weight=42, **FUTURE_SETTINGS)}]}))
        d.start()
        check(d.vm("web1")["weight"] == 42, "the entry is kept", d.log())
        log = d.log()
        check(f'{path}: vms[0] (web1): member "colour", setting "future_str", setting '
              '"future_num", setting "future_real", setting "future_obj", setting '
              '"future_list": not known to this dynmemd (written by a newer one?); ignored, '
              "and written back with the state file" in log, "named", log)
        check(f'{path}: member "later": not known to this dynmemd (written by a newer one?); '
              "ignored, and written back" in log, "beside vms too", log)
        d.ok("set", "web1", "--buffer", "30")
        want = {"version": 1, "later": LATER, "vms": [
            {"name": "web1", "origin": "config", "colour": "red",
             "settings": dict(buffer_percent=30, weight=42, **FUTURE_SETTINGS)}]}
        check(state_file(d) == want, "written back beside the change", state_file(d))
        check(set_aside_files(d) == [], "nothing set aside", set_aside_files(d))
        check("set aside" not in d.log(), "nor said to be", d.log())
        restart(d)
        check(state_file(d) == want, "and again by the next start", state_file(d))
        check(d.log_count("not known to this dynmemd") == 4, "named once per start", d.log())

        # a reset of every setting is back to the configuration's values: the newer
        # dynmemd's settings go too; the entry's other members stay
        r = d.ok("set", "web1", "--reset", "all")
        check("future_str, future_num, future_real, future_obj, future_list (not known to "
              "this dynmemd) dropped" in r.out + r.err, "the reset says so", r)
        check(state_file(d) == {"version": 1, "later": LATER, "vms": [
            {"name": "web1", "origin": "config", "settings": {}, "colour": "red"}]},
            "the unknown settings are gone", state_file(d))
        check(d.vm("web1")["weight"] == 5000, "the file's weight", d.vm("web1"))


@tap.case
def a_reset_of_some_settings_keeps_a_newer_dynmemds(bins):
    with Daemon(bins, config()) as d:
        d.write_state("state.json", json.dumps({"version": 1, "vms": [
            {"name": "web1", "origin": "config",
             "settings": {"weight": 42, "buffer_percent": 30, "future_num": 3}}]}))
        d.start()
        d.ok("set", "web1", "--reset", "weight,autostart")
        check(state_file(d)["vms"] == [{"name": "web1", "origin": "config",
                                        "settings": {"buffer_percent": 30, "future_num": 3}}],
              "only the named settings go", state_file(d))


@tap.case
def a_removed_vm_takes_a_newer_dynmemds_additions_with_it(bins):
    # A VM made with dynmem create and deleted, or gone from the configuration: what a
    # newer dynmemd wrote for it goes with it; the file's own additions stay.
    with Daemon(bins, config()) as d:
        d.write_state("state.json", json.dumps({"version": 1, "later": LATER, "vms": [
            {"name": "db1", "origin": "config", "colour": "blue",
             "settings": {"future_num": 3}},
            {"name": "new1", "origin": "created", "autostart": False, "numa": {"node": 1},
             "settings": {"startup_bytes": 256 * MIB, "future_list": [1, 2]},
             "backend": {"trace": f"{DATA}/small.csv"}}]}))
        d.start()
        check(d.vm("new1")["startup_bytes"] == 256 * MIB, "the created VM is kept", d.log())
        vms = {v["name"]: v for v in state_file(d)["vms"]}
        check(vms["new1"].get("numa") == {"node": 1} and
              vms["new1"]["settings"].get("future_list") == [1, 2], "carried at start", vms)
        d.ok("delete", "new1")
        check(state_file(d) == {"version": 1, "later": LATER, "vms": [
            {"name": "db1", "origin": "config", "colour": "blue",
             "settings": {"future_num": 3}}]}, "deleted with its additions", state_file(d))
        d.write_config(config().replace(DB1, ""))
        d.send(signal.SIGHUP)
        wait_for(lambda: "db1" not in d.vms(), "db1 to be removed")
        wait_for(lambda: state_file(d)["vms"] == [], "db1 to leave the state file")
        check(state_file(d) == {"version": 1, "later": LATER, "vms": []},
              "the file's own additions stay", state_file(d))
        check(set_aside_files(d) == [], "nothing set aside", set_aside_files(d))


@tap.case
def a_state_file_of_a_newer_version_is_set_aside(bins):
    with Daemon(bins, config()) as d:
        text = '{"version": 2, "vms": {"web1": {"weight": 42}}}\n'
        path = d.write_state("state.json", text)
        d.start()
        log = d.log()
        check(f"{path}: version 2, written by a newer dynmemd (this one reads version 1)" in log,
              "the reason", log)
        check(f"state file set aside as {path}.bad; starting from the configuration alone" in
              log, "set aside", log)
        with open(path + ".bad") as f:
            check(f.read() == text, "never overwritten")
        check(d.vm("web1")["weight"] == 5000, "the configuration's value", d.vm("web1"))


if __name__ == "__main__":
    main(tap)
