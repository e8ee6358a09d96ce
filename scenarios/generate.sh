#!/bin/sh
# generate.sh: regenerate every trace under scenarios/traces/ with
# dynmem-tracegen. The traces are committed; running this again produces the
# same bytes (same seeds, same output), which the test suite checks.
#
#   scenarios/generate.sh [TRACEGEN] [OUTDIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
gen=${1:-$here/../build/sim/dynmem-tracegen}
out=${2:-$here/traces}
mkdir -p "$out"

t() { # t NAME SHAPE ARGS...
        name=$1; shift
        "$gen" "$@" > "$out/$name.csv"
}

# article.ini: ten office VMs of the article's host (24 h)
t office-1   office  --seed 101 --base 280M --peak 720M
t office-2   office  --seed 102 --base 300M --peak 640M --phase 20m
t office-3   office  --seed 103 --base 260M --peak 780M --phase 40m
t office-4   office  --seed 104 --base 320M --peak 700M --phase 1h
t web-a      diurnal --seed 105 --base 300M --peak 820M --phase 2h
t web-b      diurnal --seed 106 --base 280M --peak 760M --phase 5h
t batch-a    batch   --seed 107 --base 240M --peak 1600M --every 4h --hold 15m
t batch-b    batch   --seed 108 --base 260M --peak 1400M --every 5h --hold 10m
t idle-a     idle    --seed 109 --base 300M
t warm-a     warmup  --seed 110 --base 250M --peak 1100M --tau 2h

# web-diurnal.ini: a web tier serving several time zones (24 h)
for i in 1 2 3 4 5 6; do
        t web-tier-$i diurnal --seed $((200 + i)) --base 600M --peak 2600M --phase $((i * 3))h
done

# batch-spikes.ini: batch workers that jump from idle to busy (12 h)
for i in 1 2 3 4 5 6; do
        t batch-$i batch --seed $((300 + i)) --duration 12h --interval 30s --base 400M \
                --peak 3G --every 90m --rise 20s --hold 25m
done
t steady-1 diurnal --seed 311 --duration 12h --base 1200M --peak 1500M --period 6h
t steady-2 diurnal --seed 312 --duration 12h --base 900M --peak 1300M --period 4h

# memory-leak.ini: two leaking services among steady ones (24 h)
t leak-1 leak --seed 401 --base 500M --peak 3500M --rate 200M
t leak-2 leak --seed 402 --base 400M --peak 2500M --rate 120M
for i in 1 2 3 4; do
        t service-$i diurnal --seed $((410 + i)) --base 700M --peak 1400M --phase $((i * 2))h
done

# idle.ini: a dozen forgotten VMs (24 h)
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
        t idle-$i idle --seed $((500 + i)) --base $((150 + i * 20))M --noise 3
done

# cache-warmup.ini: database caches warming after a restart (8 h)
for i in 1 2 3 4 5 6; do
        t warmup-$i warmup --seed $((600 + i)) --duration 8h --interval 30s --base 400M \
                --peak $((1800 + i * 200))M --tau $((20 + i * 10))m
done

# signals.ini: guests whose own demand figure over- or under-counts (12 h)
for i in 1 2 3 4 5 6; do
        t signal-$i diurnal --seed $((700 + i)) --duration 12h --base 600M --peak 1800M \
                --period 6h --phase $((i))h
done
