#!/bin/sh
# run.sh: build one of dynmem's libFuzzer targets with clang (ASan + UBSan)
# and run it for SECONDS on its seed corpus (DYNMEM_FUZZ_SECONDS, when set,
# takes the place of SECONDS: the test suite runs each target briefly, a
# longer run is `DYNMEM_FUZZ_SECONDS=600 meson test -C BUILD -t 0 --suite fuzz`).
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer options...]     e.g. fuzz/run.sh agent 600
#
# TARGET is a fuzz/TARGET_fuzz.c file; its seeds are fuzz/corpus/TARGET/ (and
# fuzz/TARGET.dict its dictionary, if any). New
# inputs go to $FUZZ_DIR/TARGET-corpus (default build-fuzz/), crashes to
# $FUZZ_DIR/TARGET-crash-*, so the checked-in corpus is never changed. To add
# what a long run found to the seeds: copy (or `-merge=1`) files from the
# work corpus into fuzz/corpus/TARGET/. Exit status: 0 no finding, 1 a
# finding or a build failure (libFuzzer is told to exit 1, not its default 77,
# which meson would read as a skip), 77 no clang/libFuzzer here (a skip).
set -eu
cd "$(dirname "$0")/.."

[ $# -ge 2 ] || { echo "usage: $0 TARGET SECONDS [libFuzzer options...]" >&2; exit 2; }
TARGET=$1
SECONDS_=${DYNMEM_FUZZ_SECONDS:-$2}
shift 2
case $TARGET in *[!a-z0-9_]* | '') echo "run.sh: bad target name: $TARGET" >&2; exit 2 ;; esac
case $SECONDS_ in *[!0-9]* | '') echo "run.sh: SECONDS must be a number" >&2; exit 2 ;; esac
SRC=fuzz/${TARGET}_fuzz.c
SEEDS=fuzz/corpus/$TARGET
[ -f "$SRC" ] || { echo "run.sh: no $SRC" >&2; exit 2; }
[ -d "$SEEDS" ] || { echo "run.sh: no $SEEDS" >&2; exit 2; }

CLANG=${CLANG:-clang}
if ! command -v "$CLANG" >/dev/null 2>&1; then
        echo "run.sh: $CLANG not found (apt-get install clang libclang-rt-14-dev)"
        exit 77
fi
FUZZ_DIR=${FUZZ_DIR:-build-fuzz}
mkdir -p "$FUZZ_DIR/$TARGET-corpus"
BIN=$FUZZ_DIR/${TARGET}_fuzz

# The library sources and libraries each target needs. POLICY is every module of
# the pure policy (lib/policy*.c but the exec: client, policy_exec*.c, and the
# saving of what it learned to JSON, policy_save.c), so a new one needs no edit here.
POLICY="$(ls lib/policy*.c | grep -v "policy_exec\|policy_save" | tr '\n' ' ')lib/settings.c lib/units.c"
LIBS=""
case $TARGET in
agent) LIBSRC="lib/agent.c lib/agent_wire.c lib/agent_estimate.c lib/bucket.c" ;;
config) LIBSRC="lib/config.c lib/suggest.c $POLICY"; LIBS="-linih" ;;
trace) LIBSRC="lib/trace.c lib/config.c lib/suggest.c lib/log.c lib/bucket.c $POLICY"; LIBS="-linih" ;;
control) LIBSRC="lib/control.c lib/agent_wire.c lib/vm.c lib/counters.c lib/config.c lib/suggest.c $POLICY"
        LIBS="-linih -ljansson" ;;
policy_exec) LIBSRC="$(ls lib/policy_exec*.c | tr '\n' ' ')lib/child.c lib/mono.c lib/log.c lib/bucket.c $POLICY"
        LIBS="-levent -ljansson" ;;
qmp) LIBSRC="lib/qmp.c lib/mono.c lib/log.c lib/bucket.c"; LIBS="-levent -ljansson" ;;
libvirt_xml) LIBSRC="backend/libvirt_xml.c backend/libvirt_edit.c lib/settings.c lib/units.c"
        LIBS="$(pkg-config --cflags --libs libxml-2.0 2>/dev/null || echo -lxml2) -Ibackend" ;;
*) echo "run.sh: unknown target $TARGET" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086
if ! "$CLANG" -std=c17 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Ilib -o "$BIN" "$SRC" $LIBSRC $LIBS -lm 2>"$FUZZ_DIR/$TARGET-build.log"; then
        if grep -q "libclang_rt.fuzzer\|cannot find -l\|fuzzer.*not found" "$FUZZ_DIR/$TARGET-build.log"; then
                echo "run.sh: libFuzzer is missing (apt-get install libclang-rt-14-dev)"
                exit 77
        fi
        cat "$FUZZ_DIR/$TARGET-build.log" >&2
        exit 1
fi

DICT=
[ -f "fuzz/$TARGET.dict" ] && DICT="-dict=fuzz/$TARGET.dict"
echo "run.sh: $BIN for $SECONDS_ s on $SEEDS (+ $FUZZ_DIR/$TARGET-corpus)"
# shellcheck disable=SC2086
exec "$BIN" -max_total_time="$SECONDS_" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
        -error_exitcode=1 -timeout_exitcode=1 \
        -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/$TARGET-crash-" $DICT "$@" \
        "$FUZZ_DIR/$TARGET-corpus" "$SEEDS"
