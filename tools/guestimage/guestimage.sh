#!/usr/bin/env bash
# Builds the Linux guest tamavisor boots: Debian's unmodified distribution
# kernel and a u-root initramfs, from Debian's package archive and the Go
# module proxy only. Used by `make guest`.
#
#   guestimage.sh kernel-package
#       prints the kernel package to use: the linux-image-6.1.0-N-amd64 that
#       Debian's linux-image-amd64 meta-package depends on now, else the
#       highest N apt knows.
#   guestimage.sh kernel PACKAGE CACHE OUT
#       OUT/vmlinuz (and OUT/kernel.version): PACKAGE's vmlinuz, fetched with
#       apt-get download (apt checks the .deb against the signed archive
#       index) and unpacked with dpkg-deb under CACHE/kernel/PACKAGE_VERSION/.
#   guestimage.sh initramfs CACHE OUT BUILD
#       OUT/initramfs.cpio: u-root's init, gosh and a few core commands,
#       built by BUILD/u-root at the versions go.mod and go.sum pin, cached
#       under CACHE/initramfs/KEY/, KEY hashing every input.
#
# The cache is kept out of build/ so that `make clean` never forces a new
# download; `make distclean` removes it.
#
# The shell is u-root's gosh built with the goshsmall tag. Without that tag,
# gosh on a terminal runs the bubbline line editor, which redraws its line
# with terminal escape sequences; with it, gosh reads lines as they come,
# prints a plain "$ " prompt, and the kernel's tty echoes what is typed, so
# a test reads the console as plain text. (u-root v0.16.0 has no other shell
# in cmds/core; cmds/exp/rush is plain too but has no sh syntax.)
set -euo pipefail

# The Go commands in the initramfs. guests/images/tools.go imports the same
# list, which keeps them in go.mod and go.sum.
GUEST_COMMANDS=(init gosh ls cat uname shutdown poweroff dmesg echo mount)
UROOT_FLAGS=(-tags goshsmall -defaultsh gosh -initcmd init)

die() { echo "guestimage: $*" >&2; exit 1; }

# Half-made cache entries are built in a temporary directory beside their
# final place and removed on any exit; a finished one is moved in whole.
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

kernel_package() {
	local pkg
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n1)
	if [ -z "$pkg" ]; then
		pkg=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
			grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' | sort -t- -k5,5n | tail -n1)
	fi
	[ -n "$pkg" ] || die "apt knows no linux-image-6.1.0-*-amd64 package: run apt-get update, or set GUEST_KERNEL_PKG"
	echo "$pkg"
}

candidate_version() {
	apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '^(none)$' || true
}

kernel() {
	local pkg=$1 cache=$2 out=$3
	[ -n "$pkg" ] || die "no kernel package named: apt knows no linux-image-6.1.0-*-amd64 here (run apt-get update) or set GUEST_KERNEL_PKG"
	[[ $pkg =~ ^linux-image-[0-9][A-Za-z0-9.+-]*$ ]] || die "kernel package name $pkg is not a linux-image-* package"
	local version dir
	version=$(candidate_version "$pkg")
	if [ -n "$version" ]; then
		dir=$cache/kernel/${pkg}_${version}
	else
		# apt does not know the package (no lists, or offline): reuse
		# whatever version of it the cache holds.
		dir=$(ls -d "$cache/kernel/${pkg}_"* 2>/dev/null | sort -V | tail -n1 || true)
		[ -n "$dir" ] || die "apt has no candidate for $pkg and the cache has none: run apt-get update"
		version=${dir##*/"${pkg}"_}
	fi
	if [ ! -s "$dir/vmlinuz" ]; then
		echo "guestimage: fetching $pkg $version into $dir"
		mkdir -p "$cache/kernel"
		tmp=$(mktemp -d "$cache/kernel/.fetch.XXXXXX")
		# apt-get download writes into the working directory.
		(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version") >&2 ||
			die "apt-get download $pkg=$version failed"
		local deb
		deb=$(ls "$tmp"/*.deb)
		# Only /boot is needed: the kernel, its config and System.map
		# (the modules would add some 400 MB unpacked).
		mkdir -p "$tmp/root"
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/root" --wildcards './boot/*'
		local image
		image=$(ls "$tmp"/root/boot/vmlinuz-* 2>/dev/null | head -n1)
		[ -n "$image" ] || die "$deb holds no /boot/vmlinuz-*"
		mkdir -p "$tmp/entry"
		cp "$image" "$tmp/entry/vmlinuz"
		cp "$tmp"/root/boot/config-* "$tmp/entry/config" 2>/dev/null || true
		cp "$tmp"/root/boot/System.map-* "$tmp/entry/System.map" 2>/dev/null || true
		mv "$deb" "$tmp/entry/"
		basename "$image" | sed 's/^vmlinuz-//' >"$tmp/entry/release"
		rm -rf "$dir"
		mv "$tmp/entry" "$dir" # atomic: a cache entry is whole or absent
	fi
	mkdir -p "$out"
	cp "$dir/vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	printf '%s %s %s\n' "$pkg" "$version" "$(cat "$dir/release")" >"$out/kernel.version"
	echo "guestimage: $out/vmlinuz is $pkg $version (release $(cat "$dir/release"))"
}

initramfs() {
	local cache=$1 out=$2 build=$3
	local pkgs=()
	for c in "${GUEST_COMMANDS[@]}"; do
		pkgs+=("github.com/u-root/u-root/cmds/core/$c")
	done
	mkdir -p "$build"
	# go build is incremental: a no-op when u-root is up to date.
	go build -o "$build/u-root" github.com/u-root/u-root
	# The key covers everything the archive is made from: the Go toolchain,
	# every module the commands and u-root itself compile from, the
	# commands and the flags.
	local key
	key=$( {
		go version
		GOOS=linux GOARCH=amd64 go list -deps -f '{{with .Module}}{{.Path}}@{{.Version}} {{.Sum}}{{end}}' \
			github.com/u-root/u-root "${pkgs[@]}" | sort -u
		echo "${GUEST_COMMANDS[*]}"
		echo "${UROOT_FLAGS[*]}"
	} | sha256sum | cut -c1-16)
	local dir=$cache/initramfs/$key
	if [ ! -s "$dir/initramfs.cpio" ]; then
		echo "guestimage: building the u-root initramfs ($key)"
		local start
		mkdir -p "$cache/initramfs"
		tmp=$(mktemp -d "$cache/initramfs/.build.XXXXXX")
		start=$(date +%s%N)
		GOOS=linux GOARCH=amd64 CGO_ENABLED=0 "$build/u-root" -o "$tmp/initramfs.cpio" \
			"${UROOT_FLAGS[@]}" "${pkgs[@]}" >&2
		echo "guestimage: u-root built the initramfs in $((($(date +%s%N) - start) / 1000000)) ms"
		rm -rf "$dir"
		mv "$tmp" "$dir"
	fi
	mkdir -p "$out"
	cp "$dir/initramfs.cpio" "$out/initramfs.cpio.tmp" && mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
	echo "guestimage: $out/initramfs.cpio ($(stat -c %s "$out/initramfs.cpio") bytes, key $key)"
}

case "${1:-}" in
kernel-package) kernel_package ;;
kernel)
	[ $# -eq 4 ] || die "usage: $0 kernel PACKAGE CACHE OUT"
	kernel "$2" "$3" "$4"
	;;
initramfs)
	[ $# -eq 4 ] || die "usage: $0 initramfs CACHE OUT BUILD"
	initramfs "$2" "$3" "$4"
	;;
*) die "usage: $0 kernel-package | kernel PACKAGE CACHE OUT | initramfs CACHE OUT BUILD" ;;
esac
