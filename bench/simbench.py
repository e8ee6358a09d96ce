"""Helpers shared by dynmem's simulator benchmarks: run dynmem-sim, rewrite scenarios."""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_sim():
    for build in (os.environ.get("DYNMEM_BUILD", ""), "build-release", "build"):
        path = os.path.join(ROOT, build, "sim", "dynmem-sim") if build else ""
        if path and os.access(path, os.X_OK):
            return path
    sys.exit("dynmem-sim not found: build first (meson setup build && ninja -C build)")


def run(sim, scenario, policy, extra=()):
    """Run one scenario under one policy; return the --json object."""
    out = subprocess.run([sim, scenario, "--policy", policy, "--json", *extra],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def variant(scenario, edit, directory):
    """Write a copy of a scenario with absolute trace paths, edited by edit(text)."""
    base = os.path.dirname(os.path.abspath(scenario))
    with open(scenario, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^trace = (?!/)(.*)$", lambda m: "trace = " + os.path.join(base, m.group(1)),
                  text, flags=re.M)
    text = edit(text)
    fd, path = tempfile.mkstemp(suffix=".ini", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def mib(b):
    return b / 1048576.0
