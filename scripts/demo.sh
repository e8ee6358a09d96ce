#!/bin/sh
# demo.sh: the README's main command. Installs what is missing (Debian 12, as
# root), builds dynmem, and runs the article's host: ten VMs with 512 MiB of
# startup memory and a 2 GiB maximum on a host with 8 GiB in all, where ten
# static 2 GiB VMs would leave room for only three. It replays the same day
# under the static, hyperv and dynmem policies and writes an HTML report.
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null || ninja -C build

SCENARIO=scenarios/article.ini
OUT=${DYNMEM_DEMO_OUT:-build/demo}
mkdir -p "$OUT"
for policy in static hyperv dynmem; do
        echo "== $policy =="
        build/sim/dynmem-sim "$SCENARIO" --policy "$policy" --report "$OUT/article-$policy.html"
        echo
done
echo "Reports: $OUT/article-static.html $OUT/article-hyperv.html $OUT/article-dynmem.html"
