#!/bin/sh
# deps.sh: install what dynmem needs to build, test and run its demo on Debian 12.
# Idempotent: asks apt only for packages that are missing. Needs root for that.
#
#   scripts/deps.sh            build + test + demo packages
#   scripts/deps.sh --print    list them and exit
#
# debhelper, pkgconf and the -dev packages above are debian/control's
# Build-Depends (the package suite checks that this list covers them); lintian
# and git (it copies the files git knows) are the package suite's.
#
# The browser test also needs node and npm (not from this list: they come with
# the machine's Node.js) and fetches playwright-core once (tests/web/setup.sh).
set -eu

PACKAGES="
  build-essential pkg-config meson ninja-build clang clang-format
  libjansson-dev libinih-dev libevent-dev libmicrohttpd-dev libcmocka-dev
  python3 valgrind
  qemu-system-x86 qemu-utils busybox-static cpio kmod
  libclang-rt-14-dev
  libjs-dygraphs python3-prometheus-client tmux chromium
  debhelper lintian pkgconf git
"

if [ "${1:-}" = "--print" ]; then
        echo $PACKAGES
        exit 0
fi

missing=""
for p in $PACKAGES; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing="$missing $p"
        fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
        echo "deps.sh: missing packages:$missing" >&2
        echo "deps.sh: run as root (or: sudo apt-get install$missing)" >&2
        exit 1
fi
echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
