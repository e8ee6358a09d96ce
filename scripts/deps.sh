#!/bin/sh
# deps.sh: install what dynmem needs to build, test and run its demo on Debian 12,
# and create its system users (dynmem, dynmem-qemu: daemon/sysusers.conf, as the
# install does) so that QEMU runs as dynmem-qemu here too, never as root.
# Idempotent: asks apt only for packages that are missing. Needs root for that.
#
# systemd is there for systemd-sysusers and systemd-analyze (the unit's security
# test); both work without systemd running. acl (setfacl) is qemu-config's: the
# KVM device judged for the QEMU user with ACLs on it.
#
#   scripts/deps.sh            build + test + demo packages
#   scripts/deps.sh --print    list them and exit
#
# debhelper, pkgconf and the -dev packages above are debian/control's
# Build-Depends (the package suite checks that this list covers them); lintian
# and git (it copies the files git knows) are the package suite's; zsh runs the
# zsh completion in its tests.
#
# The browser test also needs node and npm (not from this list: they come with
# the machine's Node.js) and fetches playwright-core once (tests/web/setup.sh).
set -eu

PACKAGES="
  build-essential pkg-config meson ninja-build clang clang-format
  libjansson-dev libinih-dev libevent-dev libmicrohttpd-dev libcmocka-dev
  libcap-dev libsystemd-dev systemd acl
  python3 valgrind
  qemu-system-x86 qemu-utils busybox-static cpio kmod debootstrap e2fsprogs
  libclang-rt-14-dev
  libjs-dygraphs python3-prometheus-client tmux chromium
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev libxml2-dev
  iproute2 zsh
  debhelper lintian pkgconf git
"

if [ "${1:-}" = "--print" ]; then
        echo $PACKAGES
        exit 0
fi

# The users, from the same file the install ships (nothing when they exist).
SYSUSERS=$(cd "$(dirname "$0")/.." && pwd)/daemon/sysusers.conf
users() {
        getent passwd dynmem >/dev/null && getent passwd dynmem-qemu >/dev/null && return 0
        if [ "$(id -u)" != 0 ]; then
                echo "deps.sh: users dynmem and dynmem-qemu are missing; as root:" \
                        "systemd-sysusers $SYSUSERS" >&2
                return 0
        fi
        systemd-sysusers "$SYSUSERS"
}

missing=""
for p in $PACKAGES; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing="$missing $p"
        fi
done
if [ -z "$missing" ]; then
        users
        exit 0
fi

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
users
