#!/bin/sh
# demo.sh: the README's main command. On Debian 12, as root, from a clone of
# the repository: installs what is missing (scripts/deps.sh), builds dynmem
# into build/, builds the bundled guest image into build/guest (Debian's cloud
# kernel, busybox, the dynmem-guest agent and dynmem-load), and starts dynmemd
# with demo/demo.conf: three small QEMU guests whose demands rise and fall at
# different times on a host given too little memory for all their maxima.
# Then it shows `dynmem list` every 2 s while memory flows between them, for
# DYNMEM_DEMO_SECONDS (default 120) or until Ctrl-C, stops the guests and
# dynmemd, checks that no QEMU is left, and prints a summary. While it runs,
# dynmemd serves its live page on a free loopback port (DYNMEM_DEMO_HTTP).
#
#   scripts/demo.sh          the QEMU demo (runtime files in build/demo/)
#   scripts/demo.sh --sim    the simulator instead: the article's host under the
#                            static, hyperv and dynmem policies, HTML reports in
#                            build/demo/ (DYNMEM_DEMO_OUT overrides the folder)
#
# Exit status: 0 done, 1 something failed (the message says what), 2 usage.
set -eu
cd "$(dirname "$0")/.."

usage() {
        sed -n '13,16p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
        echo "demo.sh: error: $*" >&2
        exit 1
}

MODE=qemu
case "${1:-}" in
"") ;;
--sim) MODE=sim ;;
-h | --help)
        usage
        exit 0
        ;;
*)
        usage >&2
        exit 2
        ;;
esac

scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null || ninja -C build

# ---- the simulator: the article's host, three policies ----

run_sim() {
        scenario=scenarios/article.ini
        out=${DYNMEM_DEMO_OUT:-build/demo}
        mkdir -p "$out"
        for policy in static hyperv dynmem; do
                echo "== $policy =="
                build/sim/dynmem-sim "$scenario" --policy "$policy" \
                        --report "$out/article-$policy.html"
                echo
        done
        echo "Reports: $out/article-static.html $out/article-hyperv.html" \
                "$out/article-dynmem.html"
}

if [ "$MODE" = sim ]; then
        run_sim
        exit 0
fi

# ---- the QEMU demo ----

[ "$(id -u)" = 0 ] || die "run as root (the guest image and the guests need it); or try --sim"

DEMO=$(pwd)/build/demo
RUN=$DEMO/run
SOCK=$RUN/dynmemd.sock
SECONDS_WANTED=${DYNMEM_DEMO_SECONDS:-120}
DYNMEM=build/cli/dynmem
DAEMON_PID=
INTERRUPTED=

case $SECONDS_WANTED in
'' | *[!0-9]*) die "DYNMEM_DEMO_SECONDS must be a number of seconds" ;;
esac

dm() {
        "$DYNMEM" --socket "$SOCK" "$@"
}

# A hard link to a kernel package another image folder of this build fetched.
share_kernel() {
        mkdir -p build/guest/cache
        ls build/guest/cache/linux-image-*.deb >/dev/null 2>&1 && return 0
        for deb in build/tests/qemu/guest-image*/cache/linux-image-*.deb; do
                [ -f "$deb" ] && ln -f "$deb" build/guest/cache/ 2>/dev/null && return 0
        done
        return 0
}

build_image() {
        echo "demo.sh: building the guest image (build/guest; cached once built)"
        share_kernel
        mkdir -p "$DEMO"
        guest/image/build.sh build/guest build/guest/agent/dynmem-guest \
                build/tests/qemu/dynmem-load >"$DEMO/image.log" 2>&1 ||
                { cat "$DEMO/image.log" >&2; die "the guest image could not be built"; }
        tail -n 1 "$DEMO/image.log"
}

# Kill the QEMU processes a previous demo left behind (their pid files name
# them: "PID STARTTIME", or "PID" from an older dynmemd; their command line
# names the demo's folder).
clear_leftovers() {
        for pidfile in "$RUN"/*.pid; do
                [ -f "$pidfile" ] || continue
                pid=
                read -r pid _ <"$pidfile" 2>/dev/null || true
                case $pid in '' | *[!0-9]*) continue ;; esac
                if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$DEMO/"; then
                        echo "demo.sh: stopping QEMU pid $pid left by an earlier demo"
                        kill -KILL "$pid" 2>/dev/null || true
                fi
        done
        rm -rf "$RUN" "$DEMO/state"
}

start_daemon() {
        if [ -S "$SOCK" ] && dm status >/dev/null 2>&1; then
                die "a demo is already running (dynmemd on $SOCK); stop it first"
        fi
        clear_leftovers
        mkdir -p "$RUN" "$DEMO/state"
        # The live page on a free loopback port (DYNMEM_DEMO_HTTP=ADDRESS:PORT to choose).
        HTTP=${DYNMEM_DEMO_HTTP:-}
        if [ -z "$HTTP" ]; then
                HTTP=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        fi
        sed -e "s#@DEMO_DIR@#$DEMO#g" -e "s#@DEMO_HTTP@#$HTTP#g" demo/demo.conf >"$DEMO/dynmem.conf"
        : >"$DEMO/samples.jsonl"
        # Its own session: a Ctrl-C at this terminal reaches the demo, not dynmemd.
        setsid build/daemon/dynmemd -d -v -f "$DEMO/dynmem.conf" >"$DEMO/dynmemd.log" 2>&1 &
        DAEMON_PID=$!
        n=0
        until dm status >/dev/null 2>&1; do
                if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
                        cat "$DEMO/dynmemd.log" >&2
                        die "dynmemd did not start"
                fi
                n=$((n + 1))
                [ $n -lt 300 ] || die "dynmemd does not answer on $SOCK"
                sleep 0.1
        done
        echo "demo.sh: dynmemd pid $DAEMON_PID, log $DEMO/dynmemd.log"
        echo "demo.sh: live page http://$HTTP/ (metrics: http://$HTTP/metrics)"
        grep -m 3 'accel' "$DEMO/dynmemd.log" | sed 's/^/  /' || true
}

# The last "dynmem-load: holding N MiB" of each guest's console.
guest_loads() {
        line=""
        for log in "$DEMO"/state/*.console.log; do
                [ -f "$log" ] || continue
                name=$(basename "$log" .console.log)
                held=$(grep -a 'dynmem-load: holding' "$log" | tail -n 1 |
                        sed -n 's/.*holding \([0-9]*\) MiB.*/\1/p')
                line="$line  $name ${held:--} MiB"
        done
        echo "load in the guests (dynmem-load):$line"
}

show() {
        elapsed=$1
        if [ -t 1 ]; then
                printf '\033[H\033[2J'
        fi
        echo "dynmem demo  $(date +%T)  ${elapsed}s of ${SECONDS_WANTED}s  (Ctrl-C ends it)  live page: http://$HTTP/"
        dm status --json 2>/dev/null | python3 -c '
import json, sys
h = json.load(sys.stdin)
m = 1 << 20
print("host: %d MiB for VMs, %d MiB assigned, %d MiB available, %d running" % (
    h["memory_bytes"] // m, h["assigned_bytes"] // m, h["available_bytes"] // m,
    h["running"]))' || true
        dm list || true
        guest_loads
        echo
}

sample() {
        dm list --json 2>/dev/null | python3 -c '
import json, sys, time
print(json.dumps({"t": time.time(), "vms": json.load(sys.stdin)}))' >>"$DEMO/samples.jsonl" ||
                true
}

watch_memory() {
        start=$(date +%s)
        trap 'INTERRUPTED=1' INT TERM
        while [ -z "$INTERRUPTED" ]; do
                elapsed=$(($(date +%s) - start))
                [ "$elapsed" -lt "$SECONDS_WANTED" ] || break
                sample
                show "$elapsed"
                sample # what the screen showed lies between the two samples
                kill -0 "$DAEMON_PID" 2>/dev/null || die "dynmemd exited; see $DEMO/dynmemd.log"
                sleep 2 || true
        done
        trap - INT TERM
        [ -z "$INTERRUPTED" ] || echo "demo.sh: interrupted"
}

vm_names() {
        dm list --json 2>/dev/null |
                python3 -c 'import json, sys; print(" ".join(v["name"] for v in json.load(sys.stdin)))'
}

# The counters each VM has now (show --json), for the summary.
save_counters() {
        for vm in $(vm_names); do
                dm show "$vm" --json 2>/dev/null | python3 -c '
import json, sys; print(json.dumps(json.load(sys.stdin)))' || true
        done >"$DEMO/final.jsonl"
}

stop_everything() {
        [ -n "$DAEMON_PID" ] || return 0
        echo "demo.sh: stopping the guests"
        pids=
        for vm in $(vm_names); do
                state=$(dm show "$vm" --json 2>/dev/null |
                        python3 -c 'import json, sys; print(json.load(sys.stdin)["state"])' ||
                        echo unknown)
                case $state in running | starting | stopping | crashed)
                        dm stop "$vm" >/dev/null 2>&1 &
                        pids="$pids $!"
                        ;;
                esac
        done
        for p in $pids; do wait "$p" || true; done
        echo "demo.sh: stopping dynmemd"
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" || echo "demo.sh: dynmemd exited with status $?"
        DAEMON_PID=
        left=
        for pidfile in "$RUN"/*.pid; do
                [ -f "$pidfile" ] || continue
                # "PID STARTTIME" (or "PID" from an older dynmemd): the first word.
                pid=
                read -r pid _ <"$pidfile" 2>/dev/null || true
                case $pid in '' | *[!0-9]*) continue ;; esac
                kill -0 "$pid" 2>/dev/null && left="$left $pid"
        done
        if [ -n "$left" ]; then
                echo "demo.sh: QEMU still running:$left; killing it" >&2
                for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
                return 1
        fi
        echo "demo.sh: no QEMU left running"
}

summary() {
        python3 - "$DEMO" <<'EOF'
import json, os, re, sys
demo = sys.argv[1]
MIB = 1 << 20
peak, rss, top, memory = {}, {}, 0, None
with open(os.path.join(demo, "samples.jsonl")) as f:
    for line in f:
        try:
            s = json.loads(line)
        except ValueError:
            continue
        total = 0
        for v in s["vms"]:
            a = v.get("assigned_bytes") or 0
            peak[v["name"]] = max(peak.get(v["name"], 0), a)
            rss[v["name"]] = max(rss.get(v["name"], 0), v.get("host_rss_bytes") or 0)
            total += a
        top = max(top, total)
ops = {}
try:
    with open(os.path.join(demo, "final.jsonl")) as f:
        total = 0
        for line in f:
            v = json.loads(line)
            # The last state counts as a sample: a grow after the last screen is a peak too.
            a = v.get("assigned_bytes") or 0
            peak[v["name"]] = max(peak.get(v["name"], 0), a)
            rss[v["name"]] = max(rss.get(v["name"], 0), v.get("host_rss_bytes") or 0)
            total += a
            c = v.get("counters", v)
            if "add_operations" in c:
                ops[v["name"]] = (c["add_operations"], c["remove_operations"], "counters")
        top = max(top, total)
except (OSError, ValueError):
    pass
with open(os.path.join(demo, "dynmemd.log"), errors="replace") as f:
    log = f.read()
for name in peak:
    if name not in ops:
        grows = len(re.findall(r"^dynmemd: %s \+" % re.escape(name), log, re.M))
        shrinks = len(re.findall(r"^dynmemd: %s -" % re.escape(name), log, re.M))
        ops[name] = (grows, shrinks, "log")
ooms = 0
for name in peak:
    try:
        with open(os.path.join(demo, "state", name + ".console.log"), errors="replace") as f:
            ooms += f.read().count("Out of memory")
    except OSError:
        pass
m = re.search(r"memory ([0-9.]+ [KMGT]iB)", log)
parts = ["%s peaked at %d MiB assigned (%d grows, %d shrinks; QEMU resident up to %d MiB)"
         % (n, peak[n] // MIB, ops[n][0], ops[n][1], rss.get(n, 0) // MIB) for n in sorted(peak)]
if not parts:
    print("Summary: no sample was taken.")
    sys.exit(0)
print("Summary: " + "; ".join(parts) + ". Together they held at most %d MiB at once, within"
      " the host's %s for VMs, although their maxima add up to %d MiB; grows and shrinks"
      " are counted from %s. dynmemd's log: %s/dynmemd.log; the guests' consoles: %s/state/."
      % (top // MIB, m.group(1) if m else "budget", len(peak) * 1024,
         "dynmem show --json" if all(o[2] == "counters" for o in ops.values())
         else "dynmemd's log (-v)", demo, demo))
print("The guests' consoles show %s." % ("no OOM kill" if not ooms else
      "%d OOM kill%s (a load that outran the memory being plugged; it restarts after 5 s)"
      % (ooms, "" if ooms == 1 else "s")))
EOF
}

cleanup() {
        status=$?
        trap - EXIT INT TERM
        if [ -n "$DAEMON_PID" ]; then
                save_counters || true
                stop_everything || status=1
        fi
        exit $status
}

build_image
trap cleanup EXIT
start_daemon
watch_memory
save_counters
stop_everything || exit 1
summary
