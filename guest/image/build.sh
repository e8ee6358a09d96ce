#!/bin/sh
# build.sh: build dynmem's tiny test guest: OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
# usage: guest/image/build.sh OUTDIR [STATIC_BIN...]
#
# The kernel is Debian's cloud kernel (the package linux-image-cloud-amd64
# depends on; KERNEL_PKG=... overrides it), fetched with apt-get download and
# cached in OUTDIR/cache. The initrd holds busybox-static, this directory's
# init, the virtio modules listed below (and zram with its allocator and
# compressor, for dynmem-guest's burst absorber) with their dependencies (from
# modules.dep), and the static programs given, installed as /bin/<name>.
# OUTDIR/cmdline holds the kernel command line the image expects.
#
# Nothing is rebuilt when the inputs (this script, init, kernel package and
# version, busybox, the programs) hash as in OUTDIR/image.hash.
# Needs root (device nodes), apt lists (apt-get update), and the packages
# busybox-static and cpio. Exit status: 0 built or up to date, 1 failure.
set -eu

MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
virtio_balloon virtio_mem virtio_console zsmalloc zram lzo_rle"
CMDLINE="console=ttyS0 memhp_default_state=online_movable swiotlb=512 panic=-1 quiet"
META_PKG=linux-image-cloud-amd64
BUSYBOX=/bin/busybox

HERE=$(cd "$(dirname "$0")" && pwd)

say() { echo "build.sh: $*"; }
die() { echo "build.sh: error: $*" >&2; exit 1; }

# Little-endian unsigned integer of $3 bytes at offset $2 of file $1.
le_uint() { od -An -t "u$3" -j "$2" -N "$3" "$1" | tr -d ' '; }

# Succeeds if $1 is an x86-64 ELF executable without a program interpreter.
elf_is_static() {
	[ "$(od -An -c -N 4 "$1" | tr -d ' ')" = '177ELF' ] || return 1
	[ "$(le_uint "$1" 18 2)" = 62 ] || return 1
	phoff=$(le_uint "$1" 32 8) phentsize=$(le_uint "$1" 54 2) phnum=$(le_uint "$1" 56 2)
	i=0
	while [ "$i" -lt "$phnum" ]; do
		[ "$(le_uint "$1" $((phoff + i * phentsize)) 4)" = 3 ] && return 1 # PT_INTERP
		i=$((i + 1))
	done
	return 0
}

check_host() {
	[ "$(id -u)" = 0 ] || die "run as root (the initrd needs device nodes)"
	for t in apt-get apt-cache dpkg-deb cpio gzip sha256sum flock od; do
		command -v "$t" >/dev/null || die "$t is missing (apt-get install -y cpio busybox-static)"
	done
	if ! [ -x "$BUSYBOX" ] || ! elf_is_static "$BUSYBOX"; then
		die "$BUSYBOX is not a static busybox (apt-get install -y busybox-static)"
	fi
	for b in "$@"; do
		{ [ -f "$b" ] && [ -x "$b" ]; } || die "$b: not an executable file"
		elf_is_static "$b" || die "$b: not a static x86-64 executable"
	done
}

# Sets KPKG and KVERSION: the kernel package and its candidate version.
resolve_kernel() {
	KPKG=${KERNEL_PKG:-$(apt-cache depends "$META_PKG" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)}
	[ -n "$KPKG" ] || die "cannot resolve $META_PKG (run apt-get update)"
	KVERSION=$(apt-cache policy "$KPKG" 2>/dev/null | sed -n 's/^ *Candidate: //p')
	case $KVERSION in '' | '(none)') die "no candidate version for $KPKG (apt-get update?)" ;; esac
}

inputs_hash() {
	{
		echo "build.sh $(sha256sum <"$HERE/build.sh")"
		echo "init $(sha256sum <"$HERE/init")"
		echo "kernel $KPKG $KVERSION"
		echo "busybox $(sha256sum <"$BUSYBOX")"
		for b in "$@"; do echo "bin $(basename "$b") $(sha256sum <"$b")"; done
	} | sha256sum | cut -d' ' -f1
}

# Sets DEB: the cached kernel package, downloading it if needed.
fetch_kernel() {
	deb_version=$(echo "$KVERSION" | sed 's/:/%3a/')
	DEB="$OUT/cache/${KPKG}_${deb_version}_amd64.deb"
	if [ -f "$DEB" ]; then
		say "kernel: $KPKG $KVERSION (cached)"
		return
	fi
	say "kernel: downloading $KPKG $KVERSION"
	(cd "$OUT/cache" && apt-get download -q -o APT::Sandbox::User=root "$KPKG=$KVERSION" \
		>/dev/null) || die "apt-get download $KPKG=$KVERSION failed"
	[ -f "$DEB" ] || die "apt-get download did not produce $DEB"
	for old in "$OUT/cache/${KPKG}"_*.deb; do [ "$old" = "$DEB" ] || rm -f "$old"; done
}

# Prints the modules.dep paths of $MODULES and their dependencies, in load order.
module_order() {
	awk -v want="$MODULES" '
	function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
	function visit(p,   n, d, i) {
		if (p in seen) return
		seen[p] = 1
		n = split(deps[p], d, " ")
		for (i = n; i >= 1; i--) visit(d[i])
		print p
	}
	{ p = $1; sub(/:$/, "", p); $1 = ""; deps[p] = $0; path[base(p)] = p }
	END {
		n = split(want, w, /[ \n]+/)
		for (i = 1; i <= n; i++) {
			if (!(w[i] in path)) { print "missing " w[i] > "/dev/stderr"; exit 1 }
			visit(path[w[i]])
		}
	}' "$1"
}

# Copy module $2 (a modules.dep path under $1), decompressed, to rootfs $3
# and append it to the load order, /etc/dynmem-modules.
copy_module() {
	dst="$3/lib/modules/$KREL/$(echo "$2" | sed 's/\.ko\..*$/.ko/')"
	mkdir -p "$(dirname "$dst")"
	case $2 in
	*.ko) cp "$1/$2" "$dst" ;;
	*.ko.xz) "$BUSYBOX" xz -dc "$1/$2" >"$dst" ;;
	*.ko.gz) gzip -dc "$1/$2" >"$dst" ;;
	*.ko.zst) zstd -qdc "$1/$2" >"$dst" || die "cannot decompress $2 (apt-get install zstd)" ;;
	*) die "unknown module format: $2" ;;
	esac
	echo "${dst#"$3"/lib/modules/}" >>"$3/etc/dynmem-modules"
}

# Extract the kernel to $WORK/kernel; sets KREL and copies vmlinuz to $WORK.
extract_kernel() {
	say "extract: dpkg-deb -x $(basename "$DEB")"
	dpkg-deb -x "$DEB" "$WORK/kernel"
	KREL=$(find "$WORK/kernel/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -n 1)
	[ -f "$WORK/kernel/boot/vmlinuz-$KREL" ] || die "no kernel in $DEB"
	cp "$WORK/kernel/boot/vmlinuz-$KREL" "$WORK/vmlinuz"
	say "modules: busybox depmod $KREL"
	"$BUSYBOX" depmod -b "$WORK/kernel" "$KREL"
}

make_rootfs() {
	root="$WORK/root" moddir="$WORK/kernel/lib/modules/$KREL"
	mkdir -p "$root/bin" "$root/dev" "$root/etc" "$root/proc" "$root/sys" "$root/tmp" \
		"$root/run" "$root/root"
	ln -s bin "$root/sbin"
	cp "$BUSYBOX" "$root/bin/busybox"
	for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
	cp "$HERE/init" "$root/init"
	chmod 755 "$root/init"
	mknod -m 600 "$root/dev/console" c 5 1
	mknod -m 666 "$root/dev/null" c 1 3
	order=$(module_order "$moddir/modules.dep") || die "modules missing from $KREL"
	for m in $order; do copy_module "$moddir" "$m" "$root"; done
	say "modules: $(echo "$order" | sed 's|.*/||; s|\.ko.*||' | tr '\n' ' ' | sed 's/ $//')"
	for b in "$@"; do
		cp "$b" "$root/bin/$(basename "$b")"
		chmod 755 "$root/bin/$(basename "$b")"
		say "program: /bin/$(basename "$b")"
	done
}

main() {
	[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [STATIC_BIN...]" >&2; exit 1; }
	OUT=$1
	shift
	check_host "$@"
	mkdir -p "$OUT/cache"
	exec 9>"$OUT/.lock"
	flock 9
	resolve_kernel
	hash=$(inputs_hash "$@")
	if [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ] &&
		[ "$(cat "$OUT/image.hash" 2>/dev/null)" = "$hash" ]; then
		say "up to date: $OUT (hash ${hash%"${hash#????????????}"})"
		exit 0
	fi
	fetch_kernel
	WORK="$OUT/.work"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	trap 'rm -rf "$WORK"' EXIT
	extract_kernel
	make_rootfs "$@"
	say "initrd: cpio | gzip"
	(cd "$WORK/root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
		gzip -9n >"$WORK/initrd.img"
	rm -f "$OUT/image.hash"
	mv "$WORK/vmlinuz" "$OUT/vmlinuz"
	mv "$WORK/initrd.img" "$OUT/initrd.img"
	echo "$CMDLINE" >"$OUT/cmdline"
	echo "$hash" >"$OUT/image.hash"
	say "done: $OUT/vmlinuz ($KREL), $OUT/initrd.img ($(du -k "$OUT/initrd.img" | cut -f1) KiB)"
}

main "$@"
