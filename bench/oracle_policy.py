#!/usr/bin/env python3
"""oracle_policy: an exec: policy that knows the future, for benchmarks only.

    dynmem-sim SCENARIO.ini --policy "exec:python3 bench/oracle_policy.py SCENARIO.ini"

It reads the scenario's traces and gives every running VM the most it will demand
between now and the next step (`[sim] step`), with nothing on top; when that does not
fit the host, each VM gets what it demands now plus an equal share of what is left. A VM
OOM-killed under this policy could not have been saved by any policy that knew the next
step: the real policies' OOM kills are judged against it (bench/heldout.py). It is not
a policy to run: no daemon knows the future.

A VM's demand follows its trace from the decision at which it was admitted, one step
before the oracle first sees it running (dynmem-sim's order: decide, then start).
"""
import bisect
import configparser
import json
import os
import re
import sys

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size(text):
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)\s*", text)
    return int(m.group(1)) * UNITS[m.group(2)]


def seconds(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def load_traces(scenario):
    cp = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#",))
    cp.read(scenario, encoding="utf-8")
    base = os.path.dirname(os.path.abspath(scenario))
    step = seconds(cp.get("sim", "step", fallback="1s"))
    traces = {}
    for section in cp.sections():
        m = re.fullmatch(r'vm "(.*)"', section)
        if not m:
            continue
        path = os.path.join(base, cp.get(section, "trace"))
        ts, ds = [], []
        with open(path, encoding="utf-8") as f:
            f.readline()
            for line in f:
                t, d = line.split(",")
                ts.append(float(t))
                ds.append(int(d) if d.strip().isdigit() else size(d))
        traces[m.group(1)] = (ts, ds)
    return step, traces


def demand(trace, t):
    ts, ds = trace
    j = bisect.bisect_right(ts, t) - 1
    if j < 0:
        return ds[0]
    if j >= len(ts) - 1:
        return ds[-1]
    return ds[j] + (ds[j + 1] - ds[j]) * (t - ts[j]) / (ts[j + 1] - ts[j])


def peak(trace, t0, t1):
    """Most demand in [t0, t1]: at an end or at a row between (linear between rows)."""
    ts, _ = trace
    best = max(demand(trace, t0), demand(trace, t1))
    j = bisect.bisect_right(ts, t0)
    while j < len(ts) and ts[j] <= t1:
        best = max(best, trace[1][j])
        j += 1
    return int(best)


def main():
    step, traces = load_traces(sys.argv[1])
    started = {}
    for line in sys.stdin:
        req = json.loads(line)
        now = req["time"]
        wants, nows = {}, {}
        for vm in req["vms"]:
            name = vm["name"]
            if not vm["running"] or name not in traces:
                continue
            t0 = started.setdefault(name, now - step)
            rel = now - t0
            wants[name] = max(vm["minimum"], min(vm["maximum"],
                                                 peak(traces[name], rel, rel + step)))
            nows[name] = max(vm["minimum"], min(vm["maximum"], int(demand(traces[name], rel))))
        memory = req["host"]["memory"]
        if sum(wants.values()) > memory:
            left = max(0, memory - sum(nows.values()))
            share = left // max(1, len(nows))
            wants = {n: min(wants[n], nows[n] + share) for n in nows}
        print(json.dumps({"targets": wants}), flush=True)


if __name__ == "__main__":
    main()
