#!/bin/sh
# test.sh: the README's test command. Installs what is missing (Debian 12, as
# root), builds dynmem with AddressSanitizer and UndefinedBehaviorSanitizer,
# runs the whole suite, and ends with one line: "N passed, N failed, N skipped".
#
#   scripts/test.sh [meson test arguments...]     e.g. scripts/test.sh --suite unit
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh
BUILD=${DYNMEM_TEST_BUILD:-build-test}
if [ ! -d "$BUILD" ]; then
        meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$BUILD" >/dev/null || ninja -C "$BUILD"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
meson test -C "$BUILD" --print-errorlogs "$@" || status=$?
python3 scripts/test-summary.py "$BUILD/meson-logs/testlog.json" || status=1
exit $status
