// Package qemutest boots the tamavisor image under QEMU and Bochs and checks
// what it reports about the machine it found.
//
// The image prints, on its serial console, `tamavisor: booted via X`, then
// the inventory that package tamavisor/boot/inventory renders, then
// `tamavisor: ready`; the tests read it back with inventory.Parse, the same
// package that defines the format. The boot tests (boot_test.go) need QEMU,
// OVMF, Bochs, GRUB and xorriso (`make deps`); `go test -short` skips them.
package qemutest
