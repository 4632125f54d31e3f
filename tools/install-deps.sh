#!/usr/bin/env bash
# Installs the system packages tamavisor's build and tests need, where they
# are missing (Debian/Ubuntu). Used by `make deps`, which `make test`,
# `make qemu` and `make bochs` run first, so a fresh machine needs nothing else.
set -euo pipefail

packages=(qemu-system-x86 ovmf bochs bochsbios vgabios grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools binutils git acpica-tools)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tamavisor: installing missing packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
