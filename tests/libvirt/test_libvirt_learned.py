#!/usr/bin/env python3
"""With backend libvirt, what the policy learned of each running domain survives a
restart of dynmemd, also when libvirt cannot be reached as dynmemd starts: running.json
is left as it was until libvirt's list is read, a domain that list has running gets its
entry back as it is taken in (dynmem show --json "learned" is what it was), an entry
that does not hold is dropped with one warning naming the domain, which is balanced all
the same, and an entry of another domain of that name (its UUID) gives it nothing.
dynmemd runs against libvirt's test driver (test:///FILE): each connection finds the
domains of FILE running, and while FILE is missing libvirt cannot be reached."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Daemon, Tap, check, main, wait_for  # noqa: E402

tap = Tap()

UUIDS = {"web": "6695eb01-f6a4-8304-79aa-97f2502e193f",
         "db": "1f0c2e58-3a47-4c1e-9d43-5d2a11c0a7b2",
         "other": "8a3d7c10-52e4-4b8f-a1c9-0e6f2b9d4c35"}


def domain(name):
    return f"""<domain type='test'><name>{name}</name><uuid>{UUIDS[name]}</uuid>
<maxMemory slots='1' unit='KiB'>2097152</maxMemory>
<memory unit='KiB'>1048576</memory><currentMemory unit='KiB'>524288</currentMemory>
<vcpu>1</vcpu><os><type>hvm</type></os>
<cpu><numa><cell id='0' cpus='0' memory='262144' unit='KiB'/></numa></cpu>
<devices><memballoon model='virtio'/>
<memory model='virtio-mem'><target><size unit='KiB'>786432</size><node>0</node>
<block unit='KiB'>2048</block><requested unit='KiB'>262144</requested></target>
<alias name='ua-dynmem-vmem'/></memory></devices>
<metadata><dynmem:memory xmlns:dynmem='urn:dynmem:domain:1'>
<dynmem:minimum unit='bytes'>268435456</dynmem:minimum>
<dynmem:maximum unit='bytes'>1073741824</dynmem:maximum>
<dynmem:buffer>20</dynmem:buffer><dynmem:weight>5000</dynmem:weight>
<dynmem:first unit='bytes'>2097152</dynmem:first>
</dynmem:memory></metadata></domain>"""


CONFIG = """backend = libvirt
libvirt_uri = test://@DIR@/node.xml
memory = 8G
interval = 200ms
"""


def policy(rises):
    """What a dynmemd that watched a VM a while wrote: 500 samples' weight of small
    rises and `rises` of about 128 MiB (lib/policy_save.h)."""
    weights = [0.0] * 24
    weights[0], weights[9] = 500.0, float(rises)
    return {"version": 1, "age_ms": 1000, "interval_ms": 1000, "persistence": 0.5,
            "persist_xy": 10.0, "persist_xx": 20.0, "rise_weights": weights}


def entry(name, uuid, learned):
    return {"name": name, "state": "running", "assigned_bytes": 512 << 20,
            "target_bytes": 512 << 20, "uuid": uuid, "policy": learned}


def running_file(d):
    with open(os.path.join(d.state_dir, "running.json")) as f:
        return json.load(f)


def write_running(d, doc):
    os.makedirs(d.state_dir, exist_ok=True)
    with open(os.path.join(d.state_dir, "running.json"), "w") as f:
        json.dump(doc, f)


def node_file(d):
    return os.path.join(d.dir, "node.xml")


def libvirt_answers(d, yes):
    """The test driver's file there (libvirt answers) or moved away (it cannot)."""
    away = node_file(d) + ".away"
    if yes:
        os.rename(away, node_file(d))
    else:
        os.rename(node_file(d), away)


def since(d, mark):
    return d.log()[mark:]


def learned(d, name):
    return d.vm(name)["learned"]


def balanced(d, name):
    v = d.vm(name)
    return v["state"] == "running" and v["dynamic"] and v["reason"] not in ("static", "none")


def start(d):
    mark = len(d.log())
    d.start()
    return mark


def stop(d):
    rc = d.stop()
    check(rc == 0, f"dynmemd exit status {rc} on SIGTERM", d.log()[-3000:])


@tap.case
def learned_state_comes_back_when_libvirt_answers_after_dynmemd_started(bins):
    with Daemon(bins, CONFIG) as d:
        with open(node_file(d), "w") as f:
            f.write("<node>\n" + "\n".join(domain(n) for n in UUIDS) + "\n</node>\n")
        # what an earlier dynmemd wrote, web's and db's history; "other" of a domain
        # since undefined, another defined under its name; "gone" no longer defined
        write_running(d, {"version": 1, "written_at_ms": int(time.time() * 1000), "vms": [
            entry("web", UUIDS["web"], policy(40)), entry("db", UUIDS["db"], policy(20)),
            entry("other", "0b5e1a6c-9f7d-4e2a-8c31-7d4f6a2e9b10", policy(30)),
            entry("gone", "5c9e2f41-7a3b-4d6e-b812-3f0a9c7e1d24", policy(30))]})

        # libvirt answers at the start: reattached, what was learned given back
        mark = start(d)
        wait_for(lambda: all(d.vm(n)["state"] == "running" for n in UUIDS),
                 "web, db and other running")
        log = since(d, mark)
        check("web: reattached: running" in log and
              "web: what the policy learned of it is kept" in log, "web reattached", log)
        before = learned(d, "web")
        check(before and before["cover_bytes"] > 0 and 530 <= before["samples"] <= 541,
              "web has what running.json kept", before)
        check("other: was running when dynmemd stopped, but the VM of that name is another "
              f"now (uuid {UUIDS['other']}, was 0b5e1a6c-9f7d-4e2a-8c31-7d4f6a2e9b10); it "
              "starts from nothing" in log, "another domain of that name: said so", log)
        check(learned(d, "other") is None, "and it gets nothing of the entry",
              learned(d, "other"))
        stop(d)
        saved = {v["name"]: v for v in running_file(d)["vms"]}
        check(saved["web"]["uuid"] == UUIDS["web"] and saved["web"]["policy"]["version"] == 1,
              "running.json has web's UUID and history, though it took no sample", saved)

        # libvirt cannot be reached as dynmemd starts: the file waits for its list
        saved["db"]["policy"] = policy(20)  # a history cut short, as a bad write leaves it
        saved["db"]["policy"]["rise_weights"] = saved["db"]["policy"]["rise_weights"][:-1]
        saved["other"]["policy"] = policy(30)  # of a domain since undefined, as above
        saved["other"]["uuid"] = "0b5e1a6c-9f7d-4e2a-8c31-7d4f6a2e9b10"
        doc = running_file(d)
        doc["vms"] = list(saved.values()) + [
            entry("gone", "5c9e2f41-7a3b-4d6e-b812-3f0a9c7e1d24", policy(30))]
        write_running(d, doc)
        with open(os.path.join(d.state_dir, "running.json")) as f:
            waiting = f.read()
        libvirt_answers(d, False)
        mark = start(d)
        wait_for(lambda: "the 4 VMs" in since(d, mark), "dynmemd to say the VMs wait")
        check("libvirt at test://" in since(d, mark) and "cannot be reached: the 4 VMs" in
              since(d, mark), "it says why they wait", since(d, mark))
        check("no longer defined" not in since(d, mark), "no entry is taken as gone",
              since(d, mark))
        stop(d)  # before libvirt answered: the file is as it was
        with open(os.path.join(d.state_dir, "running.json")) as f:
            check(f.read() == waiting, "running.json is left as it was", since(d, mark))

        mark = start(d)
        libvirt_answers(d, True)
        wait_for(lambda: "web" in d.vms() and learned(d, "web") is not None and
                 balanced(d, "db"), "web to get its history back once libvirt answers")
        log = since(d, mark)
        check("web: reattached: running" in log and
              "web: what the policy learned of it is kept" in log, "web reattached", log)
        after = learned(d, "web")
        # what it had before the restarts, aged by a few seconds
        check(before["samples"] * 0.99 <= after["samples"] <= before["samples"] + 20,
              "the history it had, not a fresh one", after, before)
        check(abs(after["cover_bytes"] - before["cover_bytes"]) <= before["cover_bytes"] / 4,
              "the same cover", after, before)
        check("db: what the policy learned of it is dropped: policy: rise_weights: not a "
              "list of 24 numbers; it learns again from nothing" in log,
              "one warning names db and why", log)
        check(log.count("db: what the policy learned") == 1, "once", log)
        check(balanced(d, "db") and learned(d, "db") is None,
              "db is balanced all the same, learning from nothing", d.vm("db"))
        check("other: was running when dynmemd stopped, but the VM of that name is another "
              f"now (uuid {UUIDS['other']}, was 0b5e1a6c-9f7d-4e2a-8c31-7d4f6a2e9b10); it "
              "starts from nothing" in log, "another domain of that name: said so", log)
        check(learned(d, "other") is None and balanced(d, "other"),
              "it gets nothing of the entry, and is balanced", d.vm("other"))
        check("gone: was running when dynmemd stopped but is no longer defined" in log,
              "the entry no domain claimed is dropped", log)
        wait_for(lambda: "gone" not in {v["name"] for v in running_file(d)["vms"]},
                 "running.json to be written again without it")
        saved = {v["name"]: v for v in running_file(d)["vms"]}
        check(saved["web"]["policy"]["rise_weights"][9] > 0, "web's history is in it", saved)


if __name__ == "__main__":
    main(tap)
