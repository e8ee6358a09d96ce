#!/bin/sh
# build.sh: build dynmem's ordinary guest: a minimal Debian 12 system made with
# debootstrap from Debian's archive, with dynmem-guest installed as a service.
#
# usage: guest/debian/build.sh OUTDIR PROFILE AGENT
#
#   PROFILE  base: systemd as init, udev, D-Bus, Debian's cloud kernel and its
#                  initramfs, qemu-guest-agent, procps (what the tests need)
#            apps: base plus PostgreSQL 15 with a pgbench database (scale
#                  PGBENCH_SCALE, 40 = ~630 MiB) made at build time, Redis and
#                  redis-benchmark (what bench/apps needs)
#   AGENT    a dynmem-guest .deb (installed with dpkg, its unit enabled by the
#            package), or the static dynmem-guest binary (installed as
#            /usr/sbin/dynmem-guest with guest/agent/dynmem-guest.service in
#            /etc/systemd/system, enabled the way an administrator would)
#
# Writes OUTDIR/disk.raw (an ext4 root file system, label dynmem-root, no
# partition table), OUTDIR/vmlinuz and OUTDIR/initrd.img (the kernel and the
# initramfs Debian installed), OUTDIR/cmdline (the kernel command line the
# image expects: serial console and root; nothing about memory hotplug) and
# OUTDIR/packages.txt (every package and version).
#
# Two caches: the debootstrapped system (OUTDIR/cache/rootfs.tar, keyed by the
# hash of this script, the profile and the suite) and the image (keyed by that
# and the agent and its unit, OUTDIR/image.hash). A new agent costs an unpack
# and mkfs (~10-30 s), not a debootstrap (~70-150 s). The archive is not part
# of the key: remove OUTDIR/cache to take newer packages.
#
# The mirror is the Debian archive apt already uses (DEBIAN_MIRROR overrides
# it); the suite is bookworm (DEBIAN_SUITE). Needs root, debootstrap,
# e2fsprogs (mkfs.ext4 -d) and unshare: every mount the build makes lives in a
# private mount namespace and goes away with it, even when the build fails.
# Exit status: 0 built or up to date, 1 failure.
set -eu

SUITE=${DEBIAN_SUITE:-bookworm}
PGBENCH_SCALE=${PGBENCH_SCALE:-40}
BASE_PKGS="systemd-sysv,udev,dbus,linux-image-cloud-amd64,qemu-guest-agent,procps"
APPS_PKGS="postgresql,redis-server,redis-tools"
LABEL=dynmem-root
CMDLINE="console=ttyS0 root=LABEL=$LABEL rw quiet"
UNIT_SRC=$(cd "$(dirname "$0")/../agent" && pwd)/dynmem-guest.service

HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "build.sh: $*"; }
die() {
	echo "build.sh: error: $*" >&2
	exit 1
}

check_host() {
	[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, device nodes)"
	for t in debootstrap mkfs.ext4 unshare chroot tar sha256sum flock; do
		command -v "$t" >/dev/null || die "$t is missing (apt-get install -y debootstrap e2fsprogs)"
	done
	case $PROFILE in base | apps) ;; *) die "unknown profile $PROFILE (base or apps)" ;; esac
	[ -f "$AGENT" ] || die "$AGENT: no such file"
	case $AGENT in
	*.deb) dpkg-deb -f "$AGENT" Package | grep -qx dynmem-guest || die "$AGENT is not dynmem-guest" ;;
	*) [ -x "$AGENT" ] || die "$AGENT: not executable" ;;
	esac
	[ -f "$UNIT_SRC" ] || die "$UNIT_SRC is missing"
}

# The first Debian archive URL apt uses (deb822 .sources or one-line lists),
# skipping the security archive.
apt_mirror() {
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		case $f in
		*.sources) sed -n 's/^URIs: *//p' "$f" | tr ' ' '\n' ;;
		*) sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' "$f" ;;
		esac
	done | grep -v -e security -e '^$' | grep '/debian/\{0,1\}$' | head -n 1
}

packages() {
	if [ "$PROFILE" = apps ]; then echo "$BASE_PKGS,$APPS_PKGS"; else echo "$BASE_PKGS"; fi
}

rootfs_hash() {
	{
		echo "build.sh $(sha256sum <"$HERE/build.sh")"
		echo "profile $PROFILE $(packages) suite $SUITE pgbench $PGBENCH_SCALE"
	} | sha256sum | cut -d' ' -f1
}

image_hash() {
	{
		echo "rootfs $1"
		echo "agent $(basename "$AGENT") $(sha256sum <"$AGENT")"
		echo "unit $(sha256sum <"$UNIT_SRC")"
	} | sha256sum | cut -d' ' -f1
}

# Run "$@" in a private mount namespace with /proc, /sys, /dev, /dev/pts,
# /dev/shm and /run mounted in the tree $ROOT (chroot commands need them).
in_chroot_ns() {
	unshare --mount --propagation private sh -eu -c '
		r=$1; shift
		mount -t proc proc "$r/proc"
		mount -t sysfs sysfs "$r/sys"
		mount --bind /dev "$r/dev"
		mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
		mount -t tmpfs tmpfs "$r/dev/shm"
		mount -t tmpfs tmpfs "$r/run"
		"$@"' in_chroot_ns "$ROOT" "$@"
}

# A pgbench database "bench" of scale $PGBENCH_SCALE, made by the cluster
# Debian created, started and stopped here without a network listener.
make_pgbench_db() {
	cat >"$ROOT/tmp/pgbench-init" <<'EOF'
#!/bin/sh
# $1: pgbench scale. The cluster Debian created, without a network listener.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
ver=$(basename "$(dirname "$bin")")
data=/var/lib/postgresql/$ver/main
conf=/etc/postgresql/$ver/main/postgresql.conf
mkdir -p /run/postgresql
chown postgres:postgres /run/postgresql
pg() { su postgres -s /bin/sh -c "$1"; }
pg "$bin/pg_ctl -D $data -w -l /tmp/pg.log -o '-c config_file=$conf -c listen_addresses=' start"
pg "createdb bench && pgbench -i -q -s $1 bench"
pg "psql -At -d bench -c 'select pg_database_size(current_database())'" >/tmp/pgbench-size
pg "$bin/pg_ctl -D $data -m fast -w stop"
EOF
	chmod 755 "$ROOT/tmp/pgbench-init"
	say "pgbench: initialising scale $PGBENCH_SCALE"
	in_chroot_ns chroot "$ROOT" /tmp/pgbench-init "$PGBENCH_SCALE" >"$WORK/pgbench.log" 2>&1 ||
		die "pgbench -i failed; see $WORK/pgbench.log"
	say "pgbench: database of $(($(cat "$ROOT/tmp/pgbench-size") / 1048576)) MiB"
	rm -f "$ROOT/tmp/pgbench-init" "$ROOT/tmp/pgbench-size" "$ROOT/tmp/pg.log"
}

# What every guest of this image has, whatever the profile.
configure_system() {
	echo "LABEL=$LABEL / ext4 defaults 0 1" >"$ROOT/etc/fstab"
	echo dynmem-guest >"$ROOT/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tdynmem-guest\n' >"$ROOT/etc/hosts"
	# No network here: timers that only reach out or scrub stay off, so that they
	# do not wake a benchmark's guest (masking a missing unit is harmless).
	for t in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
		chroot "$ROOT" systemctl mask "$t" >/dev/null 2>&1 || true
	done
	if [ "$PROFILE" = apps ]; then
		# A cache, not a store: no RDB snapshots (each would fork the whole data set).
		sed -i 's/^save .*/# &/; $a save ""' "$ROOT/etc/redis/redis.conf"
		make_pgbench_db
	fi
	chroot "$ROOT" apt-get clean
	rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin
}

build_rootfs() {
	mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
	[ -n "$mirror" ] || die "no Debian archive in apt's sources (set DEBIAN_MIRROR)"
	say "debootstrap $SUITE from $mirror: $(packages)"
	rm -rf "$ROOT"
	mkdir -p "$ROOT"
	# debootstrap mounts /proc and /sys in the target itself: keep those private too.
	unshare --mount --propagation private debootstrap --variant=minbase \
		--include="$(packages)" "$SUITE" "$ROOT" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $WORK/debootstrap.log"
	configure_system
	say "rootfs: $(du -sm "$ROOT" | cut -f1) MiB; packing"
	tar --numeric-owner --xattrs -C "$ROOT" -cf "$OUT/cache/rootfs.tar.new" .
	mv "$OUT/cache/rootfs.tar.new" "$OUT/cache/rootfs.tar"
}

install_agent() {
	case $AGENT in
	*.deb)
		cp "$AGENT" "$ROOT/tmp/dynmem-guest.deb"
		in_chroot_ns chroot "$ROOT" dpkg -i /tmp/dynmem-guest.deb >"$WORK/agent.log" 2>&1 ||
			die "dpkg -i $(basename "$AGENT") failed; see $WORK/agent.log"
		rm -f "$ROOT/tmp/dynmem-guest.deb"
		chroot "$ROOT" systemctl enable dynmem-guest.service >/dev/null 2>&1 || true
		say "agent: $(basename "$AGENT") (dpkg)"
		;;
	*)
		install -m 755 "$AGENT" "$ROOT/usr/sbin/dynmem-guest"
		install -m 644 "$UNIT_SRC" "$ROOT/etc/systemd/system/dynmem-guest.service"
		chroot "$ROOT" systemctl enable dynmem-guest.service >/dev/null 2>&1
		say "agent: /usr/sbin/dynmem-guest and its unit, enabled"
		;;
	esac
	[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/dynmem-guest.service" ] ||
		die "dynmem-guest.service is not enabled in the image"
}

assemble() {
	say "unpacking the cached rootfs"
	rm -rf "$ROOT"
	mkdir -p "$ROOT"
	tar --numeric-owner --xattrs -C "$ROOT" -xf "$OUT/cache/rootfs.tar"
	install_agent
	kver=$(find "$ROOT/boot" -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
	[ -n "$kver" ] && [ -f "$ROOT/boot/initrd.img-$kver" ] || die "no kernel or initramfs in the rootfs"
	cp "$ROOT/boot/vmlinuz-$kver" "$WORK/vmlinuz"
	cp "$ROOT/boot/initrd.img-$kver" "$WORK/initrd.img"
	chroot "$ROOT" dpkg-query -W -f '${Package} ${Version}\n' >"$WORK/packages.txt"
	used=$(du -sm "$ROOT" | cut -f1)
	size=$((used + used / 4 + 512))
	say "mkfs.ext4 -d: $used MiB of files in a ${size} MiB file system"
	mkfs.ext4 -q -F -L "$LABEL" -d "$ROOT" "$WORK/disk.raw" "${size}M" ||
		die "mkfs.ext4 -d failed"
	rm -f "$OUT/image.hash"
	for f in disk.raw vmlinuz initrd.img packages.txt; do mv "$WORK/$f" "$OUT/$f"; done
	echo "$CMDLINE" >"$OUT/cmdline"
	say "done: $OUT/disk.raw ($PROFILE, kernel $kver)"
}

main() {
	[ $# -eq 3 ] || {
		echo "usage: $0 OUTDIR base|apps AGENT(.deb or static binary)" >&2
		exit 1
	}
	OUT=$1 PROFILE=$2 AGENT=$(realpath "$3")
	check_host
	mkdir -p "$OUT/cache"
	OUT=$(realpath "$OUT")
	exec 9>"$OUT/.lock"
	flock 9
	rhash=$(rootfs_hash)
	ihash=$(image_hash "$rhash")
	if [ -f "$OUT/disk.raw" ] && [ "$(cat "$OUT/image.hash" 2>/dev/null)" = "$ihash" ]; then
		say "up to date: $OUT ($PROFILE, hash $(echo "$ihash" | cut -c1-12))"
		exit 0
	fi
	WORK="$OUT/.work"
	ROOT="$WORK/root"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	trap 'rm -rf "$ROOT"' EXIT
	if [ ! -f "$OUT/cache/rootfs.tar" ] || [ "$(cat "$OUT/cache/rootfs.hash" 2>/dev/null)" != "$rhash" ]; then
		rm -f "$OUT/cache/rootfs.hash"
		build_rootfs
		echo "$rhash" >"$OUT/cache/rootfs.hash"
	else
		say "rootfs: cached ($PROFILE)"
	fi
	assemble
	echo "$ihash" >"$OUT/image.hash"
}

main "$@"
