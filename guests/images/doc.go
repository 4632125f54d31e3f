// Package images runs the Linux guest that `make guest` builds — Debian's
// unmodified distribution kernel (build/guest/vmlinuz) and a u-root
// initramfs (build/guest/initramfs.cpio) — directly under QEMU, and talks to
// its shell on the serial console.
//
// It is host code. Booting the guest straight under QEMU TCG, without the
// hypervisor, is the baseline tools/bench compares tamavisor's guests
// against (BootDirect), and the test in this package proves the images work
// before any hypervisor is involved.
//
// The images themselves are made by tools/guestimage/guestimage.sh, which
// `make guest` runs; tools.go pins the u-root commands it builds in go.mod.
// The initramfs's shell is u-root's gosh built with the goshsmall tag: it
// prints a plain "$ " prompt and lets the kernel's tty echo what is typed,
// without the line editor that would redraw the line with escape sequences,
// so the console reads as the plain text this package parses.
//
// The initramfs also carries the kernel package's e1000e module, which
// init loads at boot, and u-root's network commands: CheckNetwork has a
// guest with QEMU's e1000e on user networking take an address by DHCP and
// fetch a page from a HostServer on the host, through the same shell
// commands with or without the hypervisor.
package images
