#!/usr/bin/env python3
"""With backend libvirt, what the policy learned of each running domain survives a
restart of dynmemd, also when libvirt cannot be reached as dynmemd starts: running.json
is left as it was until libvirt's list is read, a domain that list has running gets its
entry back as it is taken in (dynmem show --json "learned" is what it was), an entry
that does not hold is dropped with one warning naming the domain, which is balanced all
the same, and an entry of another domain of that name (its UUID) gives it nothing.

What the policy learned also travels with a domain in its live metadata (an element in
the namespace urn:dynmem:learned:1): dynmemd writes it on a timer (its period,
5 minutes, is DYNMEM_TEST_CARRY_PERIOD_MS here, an environment variable only the tests
set), and a domain taken in running that holds one, as a domain arriving by live
migration does, is given that learned state; one that does not hold (not JSON, over
4 KiB, dated ahead of the clock, of a newer version) is dropped with one warning naming
the domain, which is balanced all the same. dynmemd's own writes do not have the domain's
XML read again. `dynmem migrate` has dynmemd write it fresh just before the migration
starts (the control command "carry"), and goes ahead with one line on stderr saying why
when it cannot be.

dynmemd runs against libvirt's test driver (test:///FILE): each connection finds the
domains of FILE running, and while FILE is missing libvirt cannot be reached."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Daemon, Tap, check, main, request, wait_for  # noqa: E402

tap = Tap()

UUIDS = {"web": "6695eb01-f6a4-8304-79aa-97f2502e193f",
         "db": "1f0c2e58-3a47-4c1e-9d43-5d2a11c0a7b2",
         "other": "8a3d7c10-52e4-4b8f-a1c9-0e6f2b9d4c35"}
CARRIERS = {"moved": "0d9a3f6e-1b2c-4d5e-8f70-112233445566",
            "notjson": "0d9a3f6e-1b2c-4d5e-8f70-112233445567",
            "huge": "0d9a3f6e-1b2c-4d5e-8f70-112233445568",
            "ahead": "0d9a3f6e-1b2c-4d5e-8f70-112233445569",
            "newer": "0d9a3f6e-1b2c-4d5e-8f70-11223344556a",
            "cut": "0d9a3f6e-1b2c-4d5e-8f70-11223344556b"}
LEARNED_NS = "urn:dynmem:learned:1"


def carried(text):
    """The element a dynmemd on another host left in the live XML (text: its JSON)."""
    return (f"<dynmemlearned:learned xmlns:dynmemlearned='{LEARNED_NS}'>{text}"
            "</dynmemlearned:learned>")


def domain(name, extra=""):
    uuid = UUIDS.get(name) or CARRIERS[name]
    return f"""<domain type='test'><name>{name}</name><uuid>{uuid}</uuid>
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
</dynmem:memory>{extra}</metadata></domain>"""


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


def write_node(d, names, extra=None):
    extra = extra or {}
    with open(node_file(d), "w") as f:
        f.write("<node>\n" + "\n".join(domain(n, extra.get(n, "")) for n in names) +
                "\n</node>\n")


def now_ms():
    return int(time.time() * 1000)


@tap.case
def a_domain_arriving_with_learned_metadata_is_given_it(bins):
    """(b) and (c): domains found running with the element, as a domain that arrived by
    live migration is; no running.json entry for them."""
    good = json.dumps({"written_at_ms": now_ms() - 60000, "policy": policy(40)})
    ahead = json.dumps({"written_at_ms": now_ms() + 3600 * 1000, "policy": policy(40)})
    newer = dict(policy(40), version=2)
    cut = policy(40)
    cut["rise_weights"] = cut["rise_weights"][:-1]
    extra = {"moved": carried(good),
             "notjson": carried("{\"written_at_ms\": 1, \"policy\": "),
             "huge": carried(json.dumps({"written_at_ms": now_ms(), "policy": policy(40),
                                         "pad": "x" * 5000})),
             "ahead": carried(ahead),
             "newer": carried(json.dumps({"written_at_ms": now_ms(), "policy": newer})),
             "cut": carried(json.dumps({"written_at_ms": now_ms(), "policy": cut}))}
    with Daemon(bins, CONFIG) as d:
        write_node(d, CARRIERS, extra)
        mark = start(d)
        wait_for(lambda: all(balanced(d, n) for n in CARRIERS), "every domain balanced")
        wait_for(lambda: learned(d, "moved") is not None, "moved to have what it carried")
        log = since(d, mark)
        check("moved: what the policy learned of it came carried in the VM (written " in log,
              "one line says it was carried", log)
        check(log.count("moved: what the policy learned") == 1, "once", log)
        got = learned(d, "moved")
        # 540 samples' weight, aged by a minute (a half-life of hours)
        check(got["cover_bytes"] > 0 and 530 <= got["samples"] <= 541,
              "moved has what its element says", got)
        why = {"notjson": "not JSON: ",
               "huge": "larger than 4096 bytes",
               "ahead": "written_at_ms: ",
               "cut": "policy: rise_weights: not a list of 24 numbers"}
        for name, reason in why.items():
            line = (f"{name}: what the policy learned of it, carried in the VM, is dropped: "
                    f"{reason}")
            check(line in log, f"{name}: one warning says why", log)
            check(log.count(f"{name}: what the policy learned") == 1, f"{name}: once", log)
        check("ahead of this host's clock; it learns again" in log, "ahead: says so", log)
        check("newer: what the policy learned of it, carried in the VM, was written by a newer "
              "dynmemd (version 2 is newer than this dynmem reads (1)); ignored" in log,
              "a newer version: ignored with one warning", log)
        check(log.count("newer: what the policy learned") == 1, "newer: once", log)
        for name in why.keys() | {"newer"}:
            check(learned(d, name) is None and balanced(d, name),
                  f"{name} learns from nothing and is balanced", d.vm(name))
        stop(d)


@tap.case
def running_json_goes_first_when_it_is_newer(bins):
    """A restart here: running.json's entry and the element both hold learned state; the
    one written later is taken."""
    old = json.dumps({"written_at_ms": now_ms() - 3600 * 1000, "policy": policy(5)})
    with Daemon(bins, CONFIG) as d:
        write_node(d, ["web", "db"], {"web": carried(old), "db": carried(
            json.dumps({"written_at_ms": now_ms() + 1000, "policy": policy(5)}))})
        write_running(d, {"version": 1, "written_at_ms": now_ms(), "vms": [
            entry("web", UUIDS["web"], policy(300)), entry("db", UUIDS["db"], policy(300))]})
        mark = start(d)
        wait_for(lambda: learned(d, "web") is not None and learned(d, "db") is not None,
                 "both to have learned state")
        log = since(d, mark)
        check(learned(d, "web")["samples"] > 700, "web: running.json's, the newer",
              learned(d, "web"))
        check("web: what the policy learned of it came carried" not in log,
              "the older element is not taken", log)
        check(learned(d, "db")["samples"] < 600, "db: the element's, the newer",
              learned(d, "db"))
        check("db: what the policy learned of it came carried in the VM" in log,
              "and said", log)
        stop(d)


@tap.case
def dynmemd_writes_what_it_learned_into_the_live_metadata(bins):
    """(a) and (d): with the period at 500 ms the timer writes web's learned state (given
    back from running.json) into its live metadata, again and again; dynmemd's own writes
    do not have the domain's XML read again."""
    os.environ["DYNMEM_TEST_CARRY_PERIOD_MS"] = "500"
    try:
        with Daemon(bins, CONFIG, extra_args=["-v"]) as d:  # -v: the debug lines
            write_node(d, ["web"])
            write_running(d, {"version": 1, "written_at_ms": now_ms(), "vms": [
                entry("web", UUIDS["web"], policy(40))]})
            mark = start(d)
            written = 'vm "web": what the policy learned is in its live metadata'
            wait_for(lambda: since(d, mark).count(written) >= 4,
                     "web's learned state written four times")
            log = since(d, mark)
            check(log.count('vm "web": its XML read again') <= 2,
                  "the writes do not have web read again", log)
            check("refused the metadata" not in log, "libvirt took every write", log)
            # what was written is read back as an arriving domain's: dynmem set has web's
            # XML read again, and a dynmemd started on that XML takes it in
            stop(d)
    finally:
        del os.environ["DYNMEM_TEST_CARRY_PERIOD_MS"]


STALE = "what dynmemd learned of it goes along as last written, up to 5 minutes ago: "


class OlderDynmemd:
    """A socket that answers every request as a dynmemd without the command "carry"."""

    def __init__(self, path):
        self.path = path
        self.asked = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.sock.settimeout(30)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            command = json.loads(conn.makefile("rb").readline())["command"]
            self.asked.append(command)
            conn.sendall((json.dumps({"version": 1, "ok": False, "errno": 95,
                                      "error": f'unknown command "{command}"'}) +
                          "\n").encode())

    def close(self):
        self.sock.close()
        self.thread.join(timeout=30)


@tap.case
def dynmem_migrate_has_dynmemd_write_what_it_learned_first(bins):
    """`dynmem migrate` asks this host's dynmemd to write what it learned of the domain into
    its live metadata just before the migration starts, and the migration goes ahead
    whatever stops that (no dynmemd, an older one, a domain of which nothing was learned),
    with one line on stderr saying why, stdout left to --json. libvirt's test driver
    cannot migrate: each migration ends here with libvirt's error, after the write."""
    with Daemon(bins, CONFIG, extra_args=["-v"]) as d:  # -v: the debug line of each write
        write_node(d, ["web", "db"])
        write_running(d, {"version": 1, "written_at_ms": now_ms(), "vms": [
            entry("web", UUIDS["web"], policy(40))]})
        mark = start(d)
        wait_for(lambda: learned(d, "web") is not None and balanced(d, "db"),
                 "web to have what running.json kept, db balanced")
        written = 'vm "web": what the policy learned is in its live metadata'

        # the control command itself
        before = since(d, mark).count(written)
        reply = d.raw(request("carry", name="web"))
        check(len(reply) == 1 and reply[0]["ok"] and reply[0]["vm"]["name"] == "web" and
              reply[0]["note"] == "web: what the policy learned of it is in its live metadata "
              f"(libvirt at test://{node_file(d)}): a migration takes it along",
              "carry: web's is written, said once written", reply)
        check(since(d, mark).count(written) > before, "the write was made before the answer",
              since(d, mark))
        reply = d.raw(request("carry", name="nosuch"))
        check(not reply[0]["ok"] and reply[0]["errno"] == 2 and
              reply[0]["error"] == "nosuch: no such VM", "carry: an unknown VM", reply)
        check(learned(d, "db") is None, "db: nothing learned", d.vm("db"))
        reply = d.raw(request("carry", name="db"))
        check(not reply[0]["ok"] and reply[0]["errno"] == 61 and "nothing to carry" in
              reply[0]["error"], "carry: nothing learned of db: nothing to write", reply)

        # dynmem migrate: the write, then the migration
        source = f"test://{node_file(d)}"
        before = since(d, mark).count(written)
        r = d.cli("migrate", "--connect", source, "web", "test:///default")
        check(r.rc == 1 and "web: migration to test:///default failed" in r.err,
              "the migration was tried (the test driver cannot)", r)
        check(STALE not in r.err and r.err.count("\n") == 1, "no word of an old state", r)
        check(r.out.startswith("web: dynmemd wrote what it learned of it into it, fresh\n"
                               "web: migrating to test:///default"),
              "written first, said so", r)
        check(since(d, mark).count(written) > before, "dynmemd wrote it", since(d, mark))
        r = d.cli("migrate", "--json", "--connect", source, "web", "test:///default")
        out = json.loads(r.out)
        check(r.rc == 1 and out["learned_fresh"] is True and out["ok"] is False,
              "--json: stdout is the one object, learned_fresh true", r)

        # nothing learned of db: it goes ahead, one line says why
        r = d.cli("migrate", "--connect", source, "db", "test:///default")
        check(r.rc == 1 and "dynmem: db: nothing learned of it yet: nothing goes along: "
              "dynmemd has learned nothing of it (not balanced here, or not yet): nothing to "
              "carry\n" in r.err and STALE not in r.err and
              "db: migration to test:///default failed" in r.err and r.err.count("\n") == 2,
              "db: one line says why, then the migration", r)

        # --no-carry: dynmemd is not asked
        before = since(d, mark).count(written)
        r = d.cli("migrate", "--no-carry", "--connect", source, "web", "test:///default")
        check(r.rc == 1 and STALE not in r.err and "dynmemd wrote" not in r.out,
              "--no-carry: not asked", r)
        check(since(d, mark).count(written) == before, "nothing written", since(d, mark))

        # an older dynmemd, without the command
        older_path = os.path.join(d.dir, "older.sock")
        older = OlderDynmemd(older_path)
        r = d.cli("migrate", "--json", "--connect", source, "web", "test:///default",
                  socket_path=older_path)
        older.close()
        check(older.asked == ["carry"], "the older dynmemd was asked", older.asked)
        check(r.rc == 1 and f"dynmem: web: {STALE}dynmemd on {older_path} is older than this "
              "dynmem and cannot be asked to write it fresh\n" in r.err and
              r.err.count("\n") == 2, "an older dynmemd: one line says so", r)
        check(json.loads(r.out)["learned_fresh"] is False, "--json: stdout is the object", r)

        # no dynmemd: the same
        stop(d)
        r = d.cli("migrate", "--json", "--connect", source, "web", "test:///default")
        check(r.rc == 1 and f"dynmem: web: {STALE}no dynmemd is listening on {d.socket}\n"
              in r.err and "web: migration to test:///default failed" in r.err,
              "no dynmemd: one line says so, then the migration", r)
        check(json.loads(r.out)["learned_fresh"] is False, "--json: stdout is the object", r)


if __name__ == "__main__":
    main(tap)
