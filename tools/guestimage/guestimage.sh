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
#       index) and unpacked with dpkg-deb under CACHE/kernel/PACKAGE_VERSION/;
#       and OUT/modules/: the GUEST_MODULES of the same package with what
#       they depend on, as a tree to add to the initramfs's root.
#   guestimage.sh initramfs CACHE OUT BUILD
#       OUT/initramfs.cpio: u-root's init, gosh, a few core and network
#       commands, built by BUILD/u-root at the versions go.mod and go.sum pin, with
#       OUT/modules/ (run the kernel step first), cached under
#       CACHE/initramfs/KEY/, KEY hashing every input.
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
# list, which keeps them in go.mod and go.sum. dhclient, ip, wget and ping
# are for the guest's network (guests/images/network.go); wget, with Go's
# HTTP and TLS stacks, is most of their size.
GUEST_COMMANDS=(init gosh ls cat uname shutdown poweroff dmesg echo mount dhclient ip wget ping)
# -skip-ldd: the files added besides the commands are kernel modules and
# text, with no shared libraries for u-root to look for.
UROOT_FLAGS=(-tags goshsmall -defaultsh gosh -initcmd init -skip-ldd)

# The kernel modules the initramfs carries, taken from the kernel package
# itself (a module loads only into the kernel it was built with), with the
# modules they depend on. u-root's init loads each module named in
# /lib/modules-load.d/*.conf before it starts the shell, resolving
# dependencies through /lib/modules/RELEASE/modules.dep
# (pkg/libinit.InstallAllModules); the .deb has no modules.dep (Debian's
# postinst runs depmod), so this script writes one for the modules it takes.
#   e1000e: QEMU's e1000e (Intel 82574L), the NIC the PCI passthrough test
#   gives the guest. Its DMA goes through QEMU's emulated IOMMU, as a real
#   device's would; virtio-net bypasses it unless iommu_platform=on.
# A module with no device to drive only registers its PCI driver: loading
# costs nothing much when the NIC is absent.
GUEST_MODULES=(e1000e)
# Part of the modules' cache key: bump it when extract_modules changes.
MODULES_LAYOUT=1

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
	local release modkey mdir
	release=$(cat "$dir/release")
	modkey=$(printf '%s\n' "$MODULES_LAYOUT" "${GUEST_MODULES[@]}" | sha256sum | cut -c1-16)
	mdir=$dir/modules-$modkey
	if [ ! -d "$mdir" ]; then
		local deb
		deb=$(ls "$dir"/*.deb 2>/dev/null | head -n1 || true)
		[ -n "$deb" ] || die "$dir keeps no .deb to take modules from: remove that directory and run again"
		echo "guestimage: taking modules ${GUEST_MODULES[*]} and their dependencies from $(basename "$deb")"
		[ -z "$tmp" ] || rm -rf "$tmp" # the download's leftovers
		tmp=$(mktemp -d "$dir/.modules.XXXXXX")
		extract_modules "$deb" "$release" "$tmp"
		mv "$tmp" "$mdir" # atomic, as the kernel's entry
		tmp=""
	fi
	mkdir -p "$out"
	cp "$dir/vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
	rm -rf "$out/modules.tmp"
	cp -R "$mdir" "$out/modules.tmp" && rm -rf "$out/modules" && mv "$out/modules.tmp" "$out/modules"
	printf '%s %s %s\n' "$pkg" "$version" "$release" >"$out/kernel.version"
	echo "guestimage: $out/vmlinuz is $pkg $version (release $release), modules: $(cd "$out/modules" && find lib -name '*.ko' | sed 's|.*/||' | sort | tr '\n' ' ')"
}

# modinfo_field KO FIELD prints FIELD's value from the module's .modinfo
# section (NUL-separated key=value strings, include/linux/moduleparam.h).
modinfo_field() {
	objcopy -O binary --only-section=.modinfo "$1" /dev/stdout | tr '\0' '\n' |
		sed -n "s/^$2=//p" | head -n1
}

# extract_modules DEB RELEASE DEST writes, for GUEST_MODULES and every
# module they depend on (transitively, by their .modinfo depends=):
#   DEST/lib/modules/RELEASE/kernel/...ko   as the package lays them out
#   DEST/lib/modules/RELEASE/modules.dep    depmod's format, for these only
#   DEST/lib/modules-load.d/tamavisor.conf  GUEST_MODULES, loaded at boot
# It unpacks only those files from the package, never the whole tree.
extract_modules() {
	local deb=$1 release=$2 dest=$3
	local prefix=./lib/modules/$release/
	# Module names use _ where file names may use - (kmod normalizes both).
	local -A path_of=() deps_of=()
	local f name
	while IFS= read -r f; do
		name=${f##*/}
		name=${name%.ko}
		path_of[${name//-/_}]=${f#"$prefix"}
	done < <(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -E "^${prefix//./\\.}kernel/.*\.ko\$" || true)
	[ ${#path_of[@]} -gt 0 ] || die "$deb holds no uncompressed modules under ${prefix#.}"
	local pending=("${GUEST_MODULES[@]}") batch m p ko vermagic deps
	while [ ${#pending[@]} -gt 0 ]; do
		batch=()
		for m in "${pending[@]}"; do
			m=${m//-/_}
			[ -z "${deps_of[$m]+set}" ] || continue
			p=${path_of[$m]:-}
			[ -n "$p" ] || die "$deb has no module $m.ko under ${prefix#.}kernel/"
			deps_of[$m]=""
			batch+=("$m")
		done
		pending=()
		[ ${#batch[@]} -gt 0 ] || break
		local files=()
		for m in "${batch[@]}"; do files+=("$prefix${path_of[$m]}"); done
		dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest" "${files[@]}"
		for m in "${batch[@]}"; do
			ko=$dest/lib/modules/$release/${path_of[$m]}
			# The kernel refuses a module built for another release;
			# fail here rather than at boot.
			vermagic=$(modinfo_field "$ko" vermagic)
			[ "${vermagic%% *}" = "$release" ] || die "$ko is built for \"$vermagic\", not $release"
			deps=$(modinfo_field "$ko" depends)
			deps_of[$m]=${deps//,/ }
			# shellcheck disable=SC2206 # splitting the list is the point
			pending+=(${deps//,/ })
		done
	done
	# modules.dep: "path: dep-path..." with every module each needs,
	# transitively, as depmod writes it (modprobe reads no further).
	local -A seen
	all_deps() {
		local d
		for d in ${deps_of[$1]}; do
			d=${d//-/_}
			[ -z "${seen[$d]+set}" ] || continue
			seen[$d]=1
			echo "${path_of[$d]}"
			all_deps "$d"
		done
	}
	for m in $(printf '%s\n' "${!deps_of[@]}" | sort); do
		seen=()
		echo "${path_of[$m]}: $(all_deps "$m" | tr '\n' ' ' | sed 's/ $//')" | sed 's/: $/:/'
	done >"$dest/lib/modules/$release/modules.dep"
	mkdir -p "$dest/lib/modules-load.d"
	{
		echo "# Loaded by u-root's init at boot (tools/guestimage/guestimage.sh)."
		printf '%s\n' "${GUEST_MODULES[@]}"
	} >"$dest/lib/modules-load.d/tamavisor.conf"
}

initramfs() {
	local cache=$1 out=$2 build=$3
	local mods=$out/modules
	[ -d "$mods/lib/modules" ] || die "no kernel modules in $mods: run \"$0 kernel\" first (make guest-kernel)"
	local pkgs=()
	for c in "${GUEST_COMMANDS[@]}"; do
		pkgs+=("github.com/u-root/u-root/cmds/core/$c")
	done
	mkdir -p "$build"
	# go build is incremental: a no-op when u-root is up to date.
	go build -o "$build/u-root" github.com/u-root/u-root
	# The key covers everything the archive is made from: the Go toolchain,
	# every module the commands and u-root itself compile from, the
	# commands, the flags and the kernel modules with their paths.
	local modules
	modules=$(GOOS=linux GOARCH=amd64 go list -deps -f '{{with .Module}}{{.Path}}@{{.Version}} {{.Sum}}{{end}}' \
		github.com/u-root/u-root "${pkgs[@]}") ||
		die "go cannot resolve the guest commands (${GUEST_COMMANDS[*]}) from go.mod and go.sum: guests/images/tools.go must import each, and go.sum hold their modules (go get github.com/u-root/u-root/cmds/core/COMMAND)"
	local key
	key=$( {
		go version
		sort -u <<<"$modules"
		echo "${GUEST_COMMANDS[*]}"
		echo "${UROOT_FLAGS[*]}"
		(cd "$mods" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -c1-16)
	local dir=$cache/initramfs/$key
	if [ ! -s "$dir/initramfs.cpio" ]; then
		echo "guestimage: building the u-root initramfs ($key)"
		local start
		mkdir -p "$cache/initramfs"
		tmp=$(mktemp -d "$cache/initramfs/.build.XXXXXX")
		start=$(date +%s%N)
		GOOS=linux GOARCH=amd64 CGO_ENABLED=0 "$build/u-root" -o "$tmp/initramfs.cpio" \
			"${UROOT_FLAGS[@]}" -files "$mods/lib:lib" "${pkgs[@]}" >&2
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
