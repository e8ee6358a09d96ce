#!/bin/sh
# test_package.sh: the Debian packages, built, checked, installed and purged
# on this machine. Prints TAP.
#
#   test_package.sh SOURCE_DIR
#
# 0. checks that scripts/deps.sh lists every Build-Depends (build_deps_listed.py);
# 1. copies the source (the files git knows, as they are now) to a temporary
#    folder and runs `dpkg-buildpackage -us -uc -b` there (nocheck: the suite
#    runs the tests; parallel on every core), bounded by BUILD_TIMEOUT;
# 2. lintian on the .changes, while 3. runs: no error and no warning
#    (overrides carry a comment in debian/*.lintian-overrides);
# 3. `apt-get install ./dynmem_*.deb ./dynmem-guest_*.deb`, then: dynmem
#    --version, dynmemd -n on the installed configuration, the conffile, the
#    unit files, the users dynmem and dynmem-qemu, the man pages, the bash and
#    zsh completion (zsh's compinit finds the latter, when zsh is here), the
#    libvirt backend and its hook;
# 4. the installed dynmemd runs on the installed configuration until dynmem
#    status answers, and stops: it leaves its lock, state.json and running.json
#    in /var/lib/dynmem, as on any host where it ran (with a console log and its
#    trimmed .old beside them, as a guest's run leaves);
# 5. `apt-get remove`: the programs go, the conffile stays; `apt-get purge`:
#    nothing of either package is left, only the system users dynmem and
#    dynmem-qemu and their groups (Debian policy keeps system users and groups).
#
# Installing touches the whole machine, so the steps from install to purge
# hold a lock (/run/lock/dynmem-package-test.lock) and the packages are purged
# on any failure. Skipped with the reason: not root, a tool missing, or a
# dynmem package installed here already (not ours to remove).
set -u

SRC=$(cd "$1" && pwd)
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1200}
APT_LOCK_TIMEOUT=600
n=0
failed=0

ok() {
        n=$((n + 1))
        echo "ok $n - $*"
}
not_ok() {
        n=$((n + 1))
        failed=$((failed + 1))
        echo "not ok $n - $*"
}
check() { # check DESCRIPTION COMMAND...
        what=$1
        shift
        if "$@" >"$TMP/check.out" 2>&1; then
                ok "$what"
        else
                not_ok "$what"
                sed 's/^/# /' "$TMP/check.out" | tail -n 20
        fi
}
comment() { echo "# $*"; }
skip_all() {
        echo "1..0 # SKIP $*"
        exit 0
}

[ "$(id -u)" = 0 ] || skip_all "needs root (it installs packages)"
for tool in dpkg-buildpackage dh lintian apt-get apt-cache git timeout flock python3; do
        command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed (scripts/deps.sh)"
done
for p in dynmem dynmem-guest; do
        if dpkg-query -W -f '${db:Status-Abbrev}' $p 2>/dev/null | grep -qv '^un'; then
                skip_all "package $p is already installed here; not ours to remove"
        fi
done

TMP=$(mktemp -d /tmp/dynmem-package.XXXXXX)
LOCK=/run/lock/dynmem-package-test.lock
installed=0
purge_all() {
        [ $installed = 1 ] || return 0
        apt-get purge -y -qq -o DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT dynmem dynmem-guest \
                >"$TMP/purge-on-exit.log" 2>&1
        installed=0
}
dynmemd_pid=""
trap '[ -z "$dynmemd_pid" ] || kill "$dynmemd_pid" 2>/dev/null; purge_all; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM

echo "1..17"

# ---- what the build needs, from scripts/deps.sh (what a fresh machine gets) ----
check "scripts/deps.sh installs every Build-Depends of debian/control" \
        python3 "$SRC/tests/package/build_deps_listed.py" "$SRC"

# ---- build ----
mkdir "$TMP/src"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 tar -cf - --ignore-failed-read 2>/dev/null) | tar -xf - -C "$TMP/src"
jobs=$(nproc 2>/dev/null || echo 2)
t0=$(date +%s)
(cd "$TMP/src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
        timeout "$BUILD_TIMEOUT" dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1
rc=$?
t1=$(date +%s)
if [ $rc = 0 ] && ls "$TMP"/dynmem_*.deb "$TMP"/dynmem-guest_*.deb >/dev/null 2>&1; then
        ok "dpkg-buildpackage -us -uc -b builds dynmem and dynmem-guest"
        comment "built in $((t1 - t0)) s on $jobs cores: $(cd "$TMP" && ls ./*.deb | tr '\n' ' ')"
else
        not_ok "dpkg-buildpackage -us -uc -b builds dynmem and dynmem-guest (exit $rc after $((t1 - t0)) s)"
        tail -n 40 "$TMP/build.log" | sed 's/^/# /'
        echo "Bail out! no packages to go on with"
        exit 1
fi

# ---- lintian, beside the install (it only reads the packages) ----
changes=$(ls "$TMP"/dynmem_*.changes | head -n 1)
lintian_start=$(date +%s)
(
        lintian --fail-on error,warning "$changes" >"$TMP/lintian.log" 2>&1
        echo $? >"$TMP/lintian.rc"
        date +%s >"$TMP/lintian.end"
) &
lintian_pid=$!

# ---- install ----
users_before=$(getent passwd dynmem dynmem-qemu | cut -d: -f1 | tr '\n' ' ')
exec 9>"$LOCK"
flock -w $APT_LOCK_TIMEOUT 9 || { echo "Bail out! $LOCK stays locked"; exit 1; }
installed=1
t0=$(date +%s)
(cd "$TMP" && apt-get install -y -qq -o DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT \
        ./dynmem_*.deb ./dynmem-guest_*.deb) >"$TMP/install.log" 2>&1
rc=$?
comment "apt-get install took $(($(date +%s) - t0)) s"
if [ $rc = 0 ]; then
        ok "apt-get install ./dynmem_*.deb ./dynmem-guest_*.deb"
else
        not_ok "apt-get install ./dynmem_*.deb ./dynmem-guest_*.deb"
        tail -n 30 "$TMP/install.log" | sed 's/^/# /'
fi
version=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version 2>/dev/null)
check "dynmem --version says $version" sh -c "dynmem --version | grep -qx 'dynmem $version'"
check "dynmemd -n accepts the installed /etc/dynmem/dynmem.conf" dynmemd -n
check "/etc/dynmem/dynmem.conf is a conffile of dynmem" \
        sh -c "dpkg-query -W -f '\${Conffiles}' dynmem | grep -q ' /etc/dynmem/dynmem.conf '"
check "the units are installed with the installed programs' paths" sh -c \
        "grep -q '^ExecStart=/usr/sbin/dynmemd ' /lib/systemd/system/dynmemd.service &&
         grep -q '^ExecStart=/usr/sbin/dynmem-guest' /lib/systemd/system/dynmem-guest.service"
check "the users dynmem and dynmem-qemu exist (sysusers.d, created at install unless they were here)" sh -c \
        "grep -q '^u dynmem ' /usr/lib/sysusers.d/dynmem.conf &&
         grep -q '^u dynmem-qemu ' /usr/lib/sysusers.d/dynmem.conf &&
         getent passwd dynmem && getent passwd dynmem-qemu && getent group dynmem"
[ -n "$users_before" ] && comment "users here before the install: $users_before"
check "man pages and the static agent" sh -c \
        "for m in man1/dynmem.1 man1/dynmem-sim.1 man1/dynmem-tracegen.1 man5/dynmem.conf.5 \
                  man8/dynmemd.8 man8/dynmem-guest.8; do
                 test -f /usr/share/man/\$m.gz || { echo missing \$m; exit 1; }; done
         ! readelf -d /usr/sbin/dynmem-guest | grep -q NEEDED &&
         dynmem-guest --help >/dev/null"
check "bash and zsh completion of every program, where each shell looks" sh -c \
        "for p in dynmem dynmemd dynmem-sim dynmem-tracegen dynmem-guest; do
                 test -f /usr/share/bash-completion/completions/\$p &&
                 test -f /usr/share/zsh/vendor-completions/_\$p || { echo missing \$p; exit 1; }
                 ! command -v zsh >/dev/null || zsh -f -c 'autoload -Uz compinit; compinit -u -D;
                         [[ \$_comps[\$1] == _\$1 ]]' zsh \$p || { echo zsh: no _\$p; exit 1; }
         done"
check "the libvirt backend and its hook are in the package" sh -c \
        "printf '[host]\\nbackend = libvirt\\n' >$TMP/libvirt.conf && dynmemd -n -f $TMP/libvirt.conf &&
         test -x /usr/share/dynmem/libvirt-hook &&
         grep -q '^exec /usr/bin/dynmem libvirt-hook ' /usr/share/dynmem/libvirt-hook"
wait $lintian_pid
sed 's/^/# lintian: /' "$TMP/lintian.log"
comment "lintian took $(($(cat "$TMP/lintian.end") - lintian_start)) s (while installing)"
if [ "$(cat "$TMP/lintian.rc")" = 0 ]; then
        ok "lintian: no error, no warning"
else
        not_ok "lintian: no error, no warning"
fi
dpkg -L dynmem dynmem-guest 2>/dev/null | sort -u >"$TMP/files"
comment "$(wc -l <"$TMP/files") paths in the two packages"

# ---- a run of dynmemd, so that purge meets what one leaves in /var/lib/dynmem ----
dynmemd -d >"$TMP/dynmemd.log" 2>&1 &
dynmemd_pid=$!
i=0
until dynmem status >/dev/null 2>&1 || [ $i -ge 300 ] || ! kill -0 $dynmemd_pid 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
done
kill -TERM $dynmemd_pid 2>/dev/null
wait $dynmemd_pid
rc=$?
dynmemd_pid=""
# a guest's console log and its trimmed part, as the qemu backend names them (no QEMU here)
: >/var/lib/dynmem/web.console.log && : >/var/lib/dynmem/web.console.log.old
check "the installed dynmemd ran, stopped on SIGTERM and left its lock and state in /var/lib/dynmem" sh -c \
        "test $rc = 0 && grep -q '^dynmemd: started' $TMP/dynmemd.log &&
         test -f /var/lib/dynmem/dynmemd.lock && test -f /var/lib/dynmem/state.json &&
         test -f /var/lib/dynmem/running.json || { cat $TMP/dynmemd.log; ls -la /var/lib/dynmem; exit 1; }"

# ---- remove, then purge ----
t0=$(date +%s)
apt-get remove -y -qq -o DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT dynmem dynmem-guest \
        >"$TMP/remove.log" 2>&1
check "apt-get remove: the programs go, the conffile stays" sh -c \
        "! test -e /usr/sbin/dynmemd && ! test -e /usr/bin/dynmem && ! test -e /usr/sbin/dynmem-guest &&
         test -f /etc/dynmem/dynmem.conf"
apt-get purge -y -qq -o DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT dynmem dynmem-guest \
        >"$TMP/purge.log" 2>&1
rc=$?
installed=0
comment "apt-get remove and purge took $(($(date +%s) - t0)) s"
check "apt-get purge: both packages gone from dpkg's database" sh -c \
        "test $rc = 0 && ! dpkg-query -W -f '\${db:Status-Abbrev}\n' dynmem dynmem-guest 2>/dev/null |
                grep -qv '^un'"
# Shared directories (/usr/bin, /lib ...) stay; nothing else may: no file, no
# link, no directory of ours.
left=""
while read -r path; do
        if [ -d "$path" ]; then
                case $path in *dynmem*) ;; *) continue ;; esac
        fi
        if [ -e "$path" ] || [ -L "$path" ]; then left="$left $path"; fi
done <"$TMP/files"
for path in /etc/dynmem /var/lib/dynmem /run/dynmem /usr/lib/sysusers.d/dynmem.conf; do
        [ -e "$path" ] && left="$left $path"
done
if [ -z "$left" ]; then
        ok "apt-get purge: nothing of either package is left"
else
        not_ok "apt-get purge: nothing of either package is left"
        comment "left:$left"
fi
getent passwd dynmem >/dev/null &&
        comment "the system users dynmem and dynmem-qemu stay (Debian policy keeps system users and groups)"
check "dpkg is consistent afterwards" sh -c "dpkg --audit | grep -q . && exit 1 || exit 0"
exit $((failed > 0))
