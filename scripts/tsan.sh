#!/bin/sh
# tsan.sh: the libvirt backend's tests with ThreadSanitizer, for the threads
# that call libvirt beside dynmemd's loop (the reader, the resize worker and the
# event glue; docs/libvirt.md, "Tests"). Not part of scripts/test.sh: it needs
# its own build (ThreadSanitizer mixes with no other sanitizer) and the libvirt
# suite's end-to-end tests take minutes. Prints every report and exits 1 if
# there is any, else with meson test's status. libvirt-e2e and libvirt-hang
# skip themselves unless run as root with libvirtd installed.
#
#   scripts/tsan.sh                         the libvirt suite
#   scripts/tsan.sh [meson test arguments]  e.g. libvirt-work libvirt-backend
#
# The build is build-tsan (DYNMEM_TSAN_BUILD to change it). Reports from inside
# libvirt are suppressed in tests/libvirt/tsan.supp, each with its reason.
set -eu
cd "$(dirname "$0")/.."

BUILD=${DYNMEM_TSAN_BUILD:-build-tsan}
if [ ! -d "$BUILD" ]; then
        meson setup "$BUILD" -Db_sanitize=thread -Db_lundef=false \
                --buildtype=debugoptimized >/dev/null
fi
ninja -C "$BUILD" >/dev/null || ninja -C "$BUILD"

reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
# every process's reports (dynmemd's too, whose exit status the end-to-end
# tests do not judge) go to files here; the tests' own verdicts stay theirs
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 history_size=4 \
log_path=$reports/tsan suppressions=$PWD/tests/libvirt/tsan.supp"
[ $# -eq 0 ] && set -- --suite libvirt
status=0
meson test -C "$BUILD" --print-errorlogs "$@" || status=$?
if [ -n "$(ls "$reports")" ]; then
        cat "$reports"/*
        echo "ThreadSanitizer: $(grep -h -c '^WARNING: ThreadSanitizer' "$reports"/* |
                awk '{n += $1} END {print n}') report(s)"
        exit 1
fi
echo "ThreadSanitizer: no report"
exit $status
