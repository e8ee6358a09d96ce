"""faults: what the fault-injection scripts share on top of tests/daemon/harness.py:
the test data, reading every JSON file of a state directory, and the memory
accounting every script checks (Σ assigned ≤ memory, each VM within
[minimum, maximum])."""
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))

import harness  # noqa: E402
from harness import MIB, Failure, check  # noqa: E402

DATA = os.path.join(HERE, "data")


def config(text):
    """A configuration with @FAULTS@ replaced by this folder's data directory."""
    return text.replace("@FAULTS@", DATA)


def state_files(state_dir):
    """{name: parsed JSON} for every *.json file; fails on one that does not parse."""
    files = {}
    for name in sorted(os.listdir(state_dir)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(state_dir, name)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            files[name] = json.loads(raw)
        except ValueError as e:
            raise Failure(f"{path} does not parse ({e}): {raw[:200]!r}")
    return files


def leftovers(state_dir):
    """Files a half-done write would leave: temporaries and anything not JSON we know."""
    return [n for n in os.listdir(state_dir) if n.endswith(".tmp") or ".tmp" in n]


def accounting(d, memory):
    """Σ assigned of the VMs holding memory ≤ memory, each running VM within its
    [minimum, maximum]; returns the list."""
    vms = d.vms()
    held = 0
    for v in vms.values():
        if v["state"] in ("running", "stopping"):
            held += v["assigned_bytes"]
        if v["state"] == "running":
            check(v["minimum_bytes"] <= v["assigned_bytes"] <= v["maximum_bytes"],
                  f"{v['name']} within [minimum, maximum]", v)
    check(held <= memory, f"Σ assigned {held // MIB} MiB within memory {memory // MIB} MiB", vms)
    return vms


def log_count(d, text):
    return d.log().count(text)


class Skip(Exception):
    """Raised by a case that cannot run here (e.g. needs root): TAP's skip."""


class Tap(harness.Tap):
    """harness.Tap with skips: a case raising Skip prints 'ok N - name # SKIP why'."""

    def run(self, bins):
        print(f"1..{len(self.cases)}", flush=True)
        failed = 0
        for i, fn in enumerate(self.cases, 1):
            name = fn.__name__.replace("_", " ")
            t0 = time.monotonic()
            try:
                fn(bins)
                print(f"ok {i} - {name}", flush=True)
            except Skip as e:
                print(f"ok {i} - {name} # SKIP {e}", flush=True)
            except Exception as e:  # a failed case must not stop the others
                failed += 1
                print(f"not ok {i} - {name}", flush=True)
                detail = str(e) if isinstance(e, Failure) else traceback.format_exc()
                for line in detail.splitlines():
                    print(f"# {line}", flush=True)
            print(f"# {time.monotonic() - t0:.1f} s", flush=True)
        return 1 if failed else 0


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root")
