#!/bin/sh
# qemu-backports.sh: QEMU from Debian 12's bookworm-backports (10.0) in a
# private folder, beside Debian 12's own QEMU 7.2, which it never replaces.
#
#   scripts/qemu-backports.sh DIR    prints DIR/bin/qemu-system-x86_64 (a wrapper
#                                    that runs the unpacked QEMU with its own
#                                    firmware) and exits 0, or prints why not
#                                    on stderr and exits 1
#
# Nothing of the system changes: apt runs with a private source list, package
# lists and cache under DIR/apt (only the bookworm-backports suite of the
# Debian archive this machine already uses), `apt-get download` fetches
# qemu-system-x86, qemu-system-common and qemu-system-data, plus every package
# they depend on that is not installed here in a version that satisfies them
# (seabios, for one), and `dpkg-deb -x` unpacks them into DIR/root. The result
# is cached: a second run only checks that the wrapper still runs. Several
# callers at once wait for each other (flock on DIR.lock).
#
# QEMU's modules: QEMU looks for a module in QEMU_MODULE_DIR (the wrapper's),
# then in the folder it was built for, /usr/lib/x86_64-linux-gnu/qemu, which
# is Debian 12's QEMU 7.2's. A module that 10.0 asks for and the private
# folder lacks is taken from 7.2 there, which QEMU refuses ("Only modules from
# the same build can be loaded") and then aborts on (an assertion in
# module_load_dso), as it does at libvirt's capability probe (qom-list-types
# loads every device module). So the private folder gets every module package
# of 10.0 whose modules Debian 12 keeps in that folder (qemu-system-common
# there ships the OpenGL and SPICE ones; qemu-block-extra, qemu-system-gui when
# installed), their libraries come from bookworm when missing here, and the
# wrapper counts as good only when `-device help` (which loads every device
# module, as libvirt's probe does) succeeds in an empty environment.
# DYNMEM_BACKPORTS_MIRROR=URL takes the packages from that Debian archive
# instead of the one apt uses here.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
case $1 in /*) DIR=$1 ;; *) DIR=$(pwd)/$1 ;; esac
case $DIR in *"'"*) echo "$0: DIR must not contain a single quote" >&2; exit 2 ;; esac
SUITE=bookworm-backports
WRAPPER=$DIR/bin/qemu-system-x86_64
PACKAGES="qemu-system-x86 qemu-system-common qemu-system-data"
PACKAGES="$PACKAGES qemu-system-modules-opengl qemu-system-modules-spice"
# 7.2's modules of these, when installed, are in the folder 10.0 falls back on.
for p in qemu-block-extra qemu-system-gui; do
        dpkg-query -W -f '${db:Status-Abbrev}' $p 2>/dev/null | grep -q '^ii' &&
                PACKAGES="$PACKAGES $p"
done

fail() {
        echo "$*" >&2
        exit 1
}

# The wrapper is good when it runs, says it is QEMU, and loads every device
# module from the environment libvirt gives it (none).
works() {
        "$WRAPPER" --version 2>/dev/null | grep -q '^QEMU emulator version' &&
                env -i "$WRAPPER" -machine none -nodefaults -display none -device help \
                        >/dev/null 2>"$DIR/device-help.err"
}
cached() {
        [ -x "$WRAPPER" ] && [ -f "$DIR/ok" ] && works
}

if cached; then
        echo "$WRAPPER"
        exit 0
fi

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9
if cached; then
        echo "$WRAPPER"
        exit 0
fi

for tool in apt-get apt-cache dpkg-deb dpkg-query flock; do
        command -v $tool >/dev/null || fail "$tool is not installed"
done

# The Debian archive apt uses here for bookworm (a mirror, or deb.debian.org),
# or DYNMEM_BACKPORTS_MIRROR.
# shellcheck disable=SC2016 # apt's own $(FIELD) syntax, not the shell's
MIRROR=${DYNMEM_BACKPORTS_MIRROR:-$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' \
        2>/dev/null | awk '$1 == "bookworm" { print $2; exit }')}
[ -n "$MIRROR" ] || fail "apt knows no Debian bookworm archive here (see /etc/apt/sources.list*)"

rm -rf "$DIR"
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/apt/parts" \
        "$DIR/debs" "$DIR/root" "$DIR/bin"
# QEMU from the backports suite; what it needs and this machine lacks, from
# bookworm itself when the backports suite does not have it (apt prefers
# bookworm's: backports are NotAutomatic).
printf 'deb %s %s main\ndeb %s bookworm main\n' "$MIRROR" "$SUITE" "$MIRROR" >"$DIR/apt/sources.list"
PRIVATE="-o Dir::Etc::SourceList=$DIR/apt/sources.list -o Dir::Etc::SourceParts=$DIR/apt/parts
 -o Dir::State::Lists=$DIR/apt/lists -o Dir::Cache=$DIR/apt/cache -o APT::Sandbox::User=root"

# shellcheck disable=SC2086
apt-get -qq $PRIVATE --error-on=any update >"$DIR/apt/update.log" 2>&1 ||
        fail "apt-get update of $SUITE from $MIRROR failed: $(head -n 1 "$DIR/apt/update.log")"
# shellcheck disable=SC2086
VERSION=$(apt-cache $PRIVATE show qemu-system-x86 2>/dev/null |
        awk '/^Version:/ && /bpo/ { print $2; exit }')
[ -n "$VERSION" ] || fail "$SUITE has no qemu-system-x86"

# shellcheck disable=SC2086
download() { (cd "$DIR/debs" && apt-get -qq $PRIVATE download "$@") >>"$DIR/download.log" 2>&1; }

set --
for p in $PACKAGES; do set -- "$@" "$p=$VERSION"; done
download "$@" || fail "apt-get download of QEMU $VERSION failed: $(tail -n 1 "$DIR/download.log")"

# One dependency ("name (op version)") is satisfied by what dpkg has installed.
installed_satisfies() {
        name=${1%% *}
        have=$(dpkg-query -W -f '${db:Status-Abbrev} ${Version}' "$name" 2>/dev/null) || return 1
        case $have in ii*) ;; *) return 1 ;; esac
        have=${have#* }
        have=${have# }
        case $1 in *"("*) ;; *) return 0 ;; esac
        rel=${1#*(}
        rel=${rel%)}
        op=${rel%% *}
        want=${rel#* }
        case $op in
        '>=') dpkg --compare-versions "$have" ge "$want" ;;
        '<=') dpkg --compare-versions "$have" le "$want" ;;
        '>>') dpkg --compare-versions "$have" gt "$want" ;;
        '<<') dpkg --compare-versions "$have" lt "$want" ;;
        '=') dpkg --compare-versions "$have" eq "$want" ;;
        *) return 1 ;;
        esac
}

# What the downloaded packages depend on and this machine lacks: fetch it too.
# A dependency on one of them, or on a name one of them provides
# (qemu-system-any), is met.
ours=" $PACKAGES "
for deb in "$DIR"/debs/*.deb; do
        ours="$ours $(dpkg-deb -f "$deb" Provides | tr ',' '\n' | sed 's/^ *//; s/[ (].*//' | tr '\n' ' ')"
done
extra=""
for deb in "$DIR"/debs/*.deb; do
        deps=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//; s/:any//')
        old_ifs=$IFS
        IFS='
'
        for dep in $deps; do
                [ -n "$dep" ] || continue
                name=${dep%% *}
                ok=0
                # Alternatives: any one of ours or installed will do.
                IFS='|'
                for alt in $dep; do
                        alt=$(echo "$alt" | sed 's/^ *//; s/ *$//')
                        case "$ours" in *" ${alt%% *} "*) ok=1 && break ;; esac
                        installed_satisfies "$alt" && ok=1 && break
                done
                IFS='
'
                [ $ok = 1 ] || extra="$extra ${dep%%[ |]*}"
        done
        IFS=$old_ifs
done
extra=$(echo "$extra" | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -n "${extra# }" ]; then
        # shellcheck disable=SC2086
        download $extra || fail "apt-get download of$extra failed: $(tail -n 1 "$DIR/download.log")"
fi

for deb in "$DIR"/debs/*.deb; do
        dpkg-deb -x "$deb" "$DIR/root" || fail "dpkg-deb -x $deb failed"
done
BINARY=$DIR/root/usr/bin/qemu-system-x86_64
[ -x "$BINARY" ] || fail "the packages have no usr/bin/qemu-system-x86_64"

# Libraries unpacked here (shared objects beside QEMU's module folder) come
# first, then the system's; QEMU's modules and firmware are its own (-L is
# searched before the system's folders, which stay as a fallback).
LIBS=""
ls "$DIR"/root/usr/lib/x86_64-linux-gnu/*.so* >/dev/null 2>&1 &&
        LIBS=$DIR/root/usr/lib/x86_64-linux-gnu
missing=$(LD_LIBRARY_PATH=$LIBS ldd "$BINARY" 2>&1 | awk '/not found/ { print $1 }' | tr '\n' ' ')
[ -z "$missing" ] || fail "QEMU $VERSION needs libraries not found here: $missing"

{
        echo "#!/bin/sh"
        echo "# QEMU $VERSION from $SUITE, unpacked by scripts/qemu-backports.sh:"
        echo "# its own modules, firmware and option ROMs, then the system's."
        [ -n "$LIBS" ] && echo "LD_LIBRARY_PATH='$LIBS'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" &&
                echo "export LD_LIBRARY_PATH"
        echo "QEMU_MODULE_DIR='$DIR/root/usr/lib/x86_64-linux-gnu/qemu'"
        echo "export QEMU_MODULE_DIR"
        firmware="-L '$DIR/root/usr/share/qemu'"
        [ -d "$DIR/root/usr/share/seabios" ] && firmware="$firmware -L '$DIR/root/usr/share/seabios'"
        echo "exec '$BINARY' $firmware \"\$@\""
} >"$WRAPPER"
chmod 755 "$WRAPPER"
"$WRAPPER" --version 2>&1 | grep -q '^QEMU emulator version' ||
        fail "QEMU $VERSION does not run: $("$WRAPPER" --version 2>&1 | head -n 1)"
works || fail "QEMU $VERSION cannot load its modules (-device help): $(tail -n 2 "$DIR/device-help.err" | tr '\n' ' ')"
echo "$VERSION" >"$DIR/ok"
rm -rf "$DIR/apt/cache" "$DIR/debs"
echo "$WRAPPER"
