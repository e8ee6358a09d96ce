#!/bin/sh
# test.sh: the README's test command. Installs what is missing (Debian 12, as
# root), builds dynmem with AddressSanitizer and UndefinedBehaviorSanitizer,
# runs the whole suite, and ends with one line: "N passed, N failed, N skipped",
# followed by why, when anything was skipped.
#
# The daemon's integration scripts also run with dynmemd under valgrind
# memcheck (suite "valgrind"), from a second build without sanitizers
# ($BUILD-plain): valgrind and the sanitizers do not mix. Its results count in
# the same line.
#
#   scripts/test.sh                         everything
#   scripts/test.sh [meson test arguments]  e.g. --suite unit (the sanitized build
#                                           only; --suite valgrind: the plain one only)
#   DYNMEM_TEST_VALGRIND=0 scripts/test.sh  everything but the valgrind suite
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
BUILD=${DYNMEM_TEST_BUILD:-build-test}
PLAIN=$BUILD-plain

# Which builds this run needs: the valgrind suite asked for alone runs only there.
main=1
valgrind=0
[ $# -eq 0 ] && [ "${DYNMEM_TEST_VALGRIND:-1}" != 0 ] && valgrind=1
prev=""
for a in "$@"; do
        case "$prev/$a" in
        --suite/valgrind | */--suite=valgrind | */dynmem:valgrind)
                main=0 valgrind=1 ;;
        esac
        prev=$a
done

status=0
logs=""
if [ $main = 1 ]; then
        if [ ! -d "$BUILD" ]; then
                meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
        fi
        ninja -C "$BUILD" >/dev/null || ninja -C "$BUILD"
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
        meson test -C "$BUILD" --print-errorlogs "$@" || status=$?
        logs="$BUILD/meson-logs/testlog.json"
fi
if [ $valgrind = 1 ]; then
        if [ ! -d "$PLAIN" ]; then
                meson setup "$PLAIN" -Dbuildtype=debugoptimized >/dev/null
        fi
        # Only what the suite runs: dynmemd and dynmem.
        ninja -C "$PLAIN" daemon/dynmemd cli/dynmem >/dev/null ||
                ninja -C "$PLAIN" daemon/dynmemd cli/dynmem
        [ $# -eq 0 ] && set -- --suite valgrind
        meson test -C "$PLAIN" --no-rebuild --print-errorlogs "$@" || status=$?
        logs="$logs $PLAIN/meson-logs/testlog.json"
fi
# A full run without the valgrind suite says so in the summary.
absent=valgrind:
if [ $# -eq 0 ] && [ $valgrind = 0 ]; then
        absent="valgrind:turned off (DYNMEM_TEST_VALGRIND=0)"
fi
# shellcheck disable=SC2086
python3 scripts/test-summary.py --absent "$absent" $logs || status=1
exit $status
