#!/usr/bin/env python3
"""What the policy learned of each running VM survives a restart of dynmemd: kept in
running.json, given back to the VM it reattaches, shown by dynmem show --json
("learned"); a saved history that does not hold is dropped with a warning naming the
VM, and the daemon runs on."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Daemon, Tap, check, main, sim_host, wait_for  # noqa: E402

tap = Tap()


def outliving_vm(name):
    # rises of 400 MiB within a report every 20 s: surprises the history learns
    return (f'\n[vm "{name}"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 4G\n'
            f"trace = @DATA@/bumps.csv\noutlive = yes\nautostart = yes\n")


def config():
    return sim_host("8G") + outliving_vm("web1") + outliving_vm("web2")


def learned(d, name):
    return d.vm(name)["learned"]


def has_learned(d, name):
    v = d.vm(name)
    return v["state"] == "running" and v["learned"] and v["learned"]["cover_bytes"] > 0 \
        and v["learned"]["samples"] >= 30


def running_file(d):
    with open(os.path.join(d.state_dir, "running.json")) as f:
        return json.load(f)


def saved_samples(entry):
    return sum(entry["policy"]["rise_weights"])


@tap.case
def learned_history_survives_a_restart(bins):
    with Daemon(bins, config()).start() as d:
        wait_for(lambda: has_learned(d, "web1"), "web1 to learn its rises")
        before = learned(d, "web1")
        rc = d.stop()
        check(rc == 0, f"dynmemd exit status {rc} on SIGTERM", d.log())
        saved = {v["name"]: v for v in running_file(d)["vms"]}
        check(saved["web1"]["policy"]["version"] == 1 and saved_samples(saved["web1"]) >= 25,
              "what it learned is in running.json", saved)
        d.start()
        check("web1: reattached: running" in d.log(), "reattached", d.log())
        check("web1: what the policy learned of it is kept" in d.log(), "said so", d.log())
        after = learned(d, "web1")
        # what was saved at the stop, aged by a few seconds, and at most a few samples more
        total = saved_samples(saved["web1"])
        check(total * 0.99 <= after["samples"] <= total + 20,
              "the history it had, not a fresh one", after, total)
        check(after["cover_bytes"] > 0 and
              abs(after["cover_bytes"] - before["cover_bytes"]) <= before["cover_bytes"] / 4,
              "its cover for unforeseen rises is what it was", before, after)


@tap.case
def a_bad_saved_history_costs_only_itself(bins):
    with Daemon(bins, config()).start() as d:
        wait_for(lambda: has_learned(d, "web1") and has_learned(d, "web2"), "both to learn")
        d.stop()
        path = os.path.join(d.state_dir, "running.json")
        doc = running_file(d)
        for v in doc["vms"]:
            if v["name"] == "web1":
                v["policy"]["rise_weights"] = v["policy"]["rise_weights"][:-1]  # cut short
        kept = [v for v in doc["vms"] if v["name"] == "web2"][0]
        with open(path, "w") as f:
            json.dump(doc, f)
        d.start()
        log = d.log()
        check("web1: what the policy learned of it is dropped: policy: rise_weights: not a "
              "list of 24 numbers; it learns again from nothing" in log,
              "one warning names the VM and why", log)
        check(log.count("web1: what the policy learned") == 1, "once", log)
        check(d.vm("web1")["state"] == "running", "the VM is still reattached", d.vm("web1"))
        fresh = learned(d, "web1")
        check(fresh is None or fresh["samples"] < 10, "web1 learns again from nothing", fresh)
        check(learned(d, "web2")["samples"] >= saved_samples(kept) * 0.99,
              "web2 keeps its own", learned(d, "web2"))
        # a newer dynmemd's history is not misread
        d.stop()
        doc = running_file(d)
        for v in doc["vms"]:
            if v["name"] == "web2":
                v["policy"]["version"] = 7
        with open(path, "w") as f:
            json.dump(doc, f)
        d.start()
        check("web2: what the policy learned of it was written by a newer dynmemd (version 7 "
              "is newer than this dynmem reads (1)); ignored" in d.log(), "said so", d.log())
        check(d.vm("web2")["state"] == "running", "still reattached", d.vm("web2"))


if __name__ == "__main__":
    main(tap)
