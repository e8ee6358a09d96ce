#!/usr/bin/env python3
"""headroom_bound: how short any demand-plus-headroom rule can be with step-held samples.

With each 5-minute Bitbrains sample held until the next (bench/heldout.py --interp step),
every rise arrives whole, between two decisions: a VM given its demand d plus a headroom h
after a sample is short at the next sample exactly when the rise exceeds h, and killed
when it exceeds h plus its swap. This script replays that model per sample for the
real-traces host of bench/bitbrains_data.py (minimum 128 MiB, maximum the provisioned
size, 256 MiB of swap) and asks how far the short samples can go at Hyper-V's memory:

    hyperv      h = 20 % of d (the model's figures next to the simulator's, as a check)
    additive    h = a constant c_i per VM
    relative    h = p_i % of d per VM

For the last two every VM's constant is chosen knowing its whole three days (in-sample:
no policy that sees only the past can do as well with that form), to make the sum of
short samples smallest with the mean memory held no larger than Hyper-V's (a Lagrange
multiplier on memory, found by bisection), and again with no more OOM kills than
Hyper-V's (a cost per kill, also found by bisection). The ratios are what such a policy could reach
at best; a policy tuned on the tuning half sees neither half's future.

Two more rows learn from the past only, as the headroom pool does (docs/policy.md): each
VM keeps a histogram of its rises per sample (buckets of x sqrt(2) from 8 MiB, halved
every 6 h) and is given the headroom h that makes share missed(h) + price x h smallest,
the price being the one that holds Hyper-V's memory (bisection). The second keeps one
histogram per quartile of the VM's own past levels and reads the one of its level now:
a headroom that follows the VM's state (a bursty VM idling low rises from there), which
the policy does not model. Two more rows try other states, also learned online: one
histogram for the samples after a fall of more than 10 % and one for the others (a VM
that fell may rise back), and the headroom counted from the highest of the VM's last two
samples instead of the last one (memory kept for a VM that regrows soon), its rises
measured from there. The last keeps one histogram for the samples whose next one rose by
more than 10 % a day before (within a sample either way) and one for the others: what a
daily rhythm in the VMs' rises would be worth; the last lines say how much likelier a
rise is after one at the same time the day before, counted directly.

    bench/headroom_bound.py [--sets tune,held-out,all]

Pure Python, a few minutes. Without the dataset it says so and exits 0 (with
$DYNMEM_BITBRAINS naming a folder that is neither a trace set nor a raw month: 1, and why).
"""
import argparse
import bisect
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitbrains_data as bb  # noqa: E402

MIN_BYTES = 128 * bb.MIB
SWAP = 256 * bb.MIB
CANDIDATES = 120  # headroom values tried per VM (quantiles of its rises)


def replay(demand, headroom, maximum):
    """(short samples, OOM kills, mean held) for held_k = clamp(d_k + headroom(d_k))."""
    short = oom = 0
    held_sum = 0.0
    held = None
    for d in demand:
        if held is not None:
            short += d > held
            oom += d > held + SWAP
        held = min(maximum, max(MIN_BYTES, d + headroom(d)))
        held_sum += held
    return short, oom, held_sum / len(demand)


def quantiles(values, n):
    values = sorted(set(values))
    if len(values) <= n:
        return values
    return [values[round(i * (len(values) - 1) / (n - 1))] for i in range(n)]


def options(demand, maximum, form):
    """Every candidate constant of one VM with its (short, oom, mean held)."""
    if form == "additive":
        rises = [b - a for a, b in zip(demand, demand[1:]) if b > a]
        return [replay(demand, lambda d, c=c: c, maximum) for c in [0] + quantiles(rises, CANDIDATES)]
    ratios = [b / a - 1 for a, b in zip(demand, demand[1:]) if b > a and a > 0]
    return [replay(demand, lambda d, p=p: d * p, maximum) for p in [0.0] + quantiles(ratios, CANDIDATES)]


def best_at(opts, budget, kill_cost=0.0):
    """The per-VM choice with the fewest short samples (plus kill_cost per OOM kill) at
    mean memory <= budget."""
    def pick(lam):
        total = [0, 0, 0.0]
        for o in opts:
            s, k, m = min(o, key=lambda x: x[0] + kill_cost * x[1] + lam * x[2] / bb.MIB)
            total[0] += s
            total[1] += k
            total[2] += m
        return total

    lo, hi = 1e-9, 1e3
    for _ in range(50):
        mid = (lo * hi) ** 0.5
        if pick(mid)[2] > budget:
            lo = mid
        else:
            hi = mid
    return pick(hi)


def best_without_more_kills(opts, budget, kills):
    """best_at with the smallest cost of a kill that keeps the OOM kills <= kills."""
    lo, hi = 0.0, 64.0
    best = best_at(opts, budget, hi)
    if best[1] > kills:
        return best
    for _ in range(12):
        mid = (lo + hi) / 2
        r = best_at(opts, budget, mid)
        if r[1] > kills:
            lo = mid
        else:
            hi, best = mid, r
    return best


RISE_EDGES = [8 * bb.MIB * 2 ** (i / 2) for i in range(24)]  # the policy's buckets
RISE_DECAY = 0.5 ** (1 / 72)  # per 5-minute sample: halved every 6 h
LEVEL_CLASSES = 4  # quartiles of the VM's past levels
LEVEL_HISTORY = 12  # samples seen before the level classes are used


def level_class(levels, demand, k):
    """The quartile of the VM's past levels that sample k is in (0 before LEVEL_HISTORY)."""
    if len(levels) < LEVEL_HISTORY:
        return 0
    return min(LEVEL_CLASSES - 1, bisect.bisect_left(levels, demand[k]) * LEVEL_CLASSES
               // len(levels))


def fall_class(levels, demand, k):
    """1 after a fall of more than 10 % from the sample before, else 0."""
    return 1 if k > 0 and demand[k] < 0.9 * demand[k - 1] else 0


DAY = 288  # 5-minute samples in a day


def day_class(levels, demand, k):
    """1 when the VM rose by more than 10 % at this time of day yesterday (into one of the
    three samples around k + 1, a day before), else 0: what a daily rhythm would foretell."""
    for j in range(k - DAY, k - DAY + 3):
        if 1 <= j < len(demand) and demand[j] > 1.1 * demand[j - 1]:
            return 1
    return 0


STATES = {  # name: (classes, class of sample k, samples the base is the highest of)
    "one": (1, lambda levels, demand, k: 0, 1),
    "level": (LEVEL_CLASSES, level_class, 1),
    "fall": (2, fall_class, 1),
    "highest-2": (1, lambda levels, demand, k: 0, 2),
    "day": (2, day_class, 1),
}


def online(traces, caps, price, state):
    """(short samples, OOM kills, mean held) for the pool learned online: held = base +
    the headroom priced from the histogram of the VM's state (STATES), base the highest
    of its last samples, each rise measured from the base it came after."""
    classes, class_of, span = STATES[state]
    short = oom = 0
    held_sum = 0.0
    for name, demand in traces.items():
        maximum = bb.align(caps[name])
        hist = [[0.0] * len(RISE_EDGES) for _ in range(classes)]
        weight = [0.0] * classes
        levels = []
        held = prev_class = prev_base = None
        for k, d in enumerate(demand):
            if held is not None:
                short += d > held
                oom += d > held + SWAP
                for c in range(classes):
                    weight[c] *= RISE_DECAY
                    hist[c] = [w * RISE_DECAY for w in hist[c]]
                weight[prev_class] += 1
                rise = d - prev_base
                if rise >= RISE_EDGES[0]:
                    hist[prev_class][min(len(RISE_EDGES) - 1,
                                         bisect.bisect_right(RISE_EDGES, rise) - 1)] += 1
            cls = class_of(levels, demand, k)
            bisect.insort(levels, d)
            base = max(demand[max(0, k - span + 1):k + 1])
            if weight[cls] < 6:  # too little history: the buffer, as the pool gives
                h, base = 0.2 * d, d
            else:
                above = sum(hist[cls])
                h, best = 0.0, above / weight[cls]
                for i, w in enumerate(hist[cls]):
                    above -= w
                    edge = RISE_EDGES[i] * math.sqrt(2)
                    cost = above / weight[cls] + price * edge / bb.MIB
                    if cost < best:
                        h, best = edge, cost
            held = min(maximum, max(MIN_BYTES, base + h))
            held_sum += held
            prev_class, prev_base = cls, base
    return short, oom, held_sum / max(len(demand) for demand in traces.values())


def online_at(traces, caps, budget, state):
    """online() at the lowest price that holds no more than budget."""
    lo, hi = 1e-7, 1.0
    for _ in range(18):
        mid = (lo * hi) ** 0.5
        if online(traces, caps, mid, state)[2] > budget:
            lo = mid
        else:
            hi = mid
    return online(traces, caps, hi, state)


def daily_lift(traces, within):
    """How much likelier a rise of more than 20 % is after one at the same time the day
    before (within `within` samples either way) than after none: (P(big | big a day
    before) / P(big)). 1 means no daily rhythm."""
    big = before = both = count = 0
    for demand in traces.values():
        rose = [k > 0 and demand[k] > 1.2 * demand[k - 1] for k in range(len(demand))]
        for k in range(DAY + within + 1, len(demand)):
            then = any(rose[k - DAY - within:k - DAY + within + 1])
            count += 1
            big += rose[k]
            before += then
            both += rose[k] and then
    return (both / before) / (big / count) if before and big else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="tune,held-out,all")
    args = ap.parse_args()
    dataset = bb.find_dataset()
    if not dataset:
        print("headroom_bound: the Bitbrains dataset was not found (set DYNMEM_BITBRAINS); skipped")
        return 0
    caps = bb.capacities(dataset)
    lifts = []
    print("| set | rule | short samples | vs hyperv | OOM kills | mean held GiB | vs hyperv |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for which in args.sets.split(","):
        traces = {n: bb.read_trace(dataset, n)[1] for n in bb.subset(dataset, which)}
        h = [0, 0, 0.0]
        for n, d in traces.items():
            s, k, m = replay(d, lambda x: x * 0.2, bb.align(caps[n]))
            h = [h[0] + s, h[1] + k, h[2] + m]
        rows = [("hyperv (buffer 20 %)", h)]
        for form in ("additive", "relative"):
            opts = [options(d, bb.align(caps[n]), form) for n, d in traces.items()]
            rows.append((f"{form}, per VM, in-sample", best_at(opts, h[2])))
            rows.append((f"{form}, per VM, in-sample, OOM kills <= hyperv",
                         best_without_more_kills(opts, h[2], h[1])))
        for state, label in (("one", "pool learned online (past only)"),
                             ("level", "pool learned online, per level quartile"),
                             ("fall", "pool learned online, after a fall > 10 % apart"),
                             ("highest-2", "pool learned online, above the higher of the last 2"),
                             ("day", "pool learned online, after a rise at this time yesterday apart")):
            rows.append((label, online_at(traces, caps, h[2], state)))
        for label, (s, k, m) in rows:
            print(f"| {which} | {label} | {s:,} | {s / h[0]:.2f} | {k} | {m / bb.GIB:.2f} |"
                  f" {m / h[2]:.3f} |")
        lifts.append(f"{which}: a rise of more than 20 % after one at the same time the day "
                     f"before is {daily_lift(traces, 0):.2f} x as likely as any (at that "
                     f"sample), {daily_lift(traces, 1):.2f} x (within a sample either way)")
    for line in lifts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
