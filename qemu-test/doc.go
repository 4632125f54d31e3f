// Package qemutest boots the tamavisor image under QEMU and Bochs and checks
// what it reports about the machine it found.
//
// The image prints, on its serial console, `tamavisor: booted via X`, then
// the inventory that package tamavisor/boot/inventory renders, then
// `tamavisor: ready`; the tests read it back with inventory.Parse, the same
// package that defines the format. The boot tests (boot_test.go) need QEMU,
// OVMF, Bochs, GRUB and xorriso (`make deps`); `go test -short` skips them.
//
// The guest tests (guests_test.go) start guests embedded in the image with
// tamavisor.guest= on its command line — the test kernel, the crash
// kernels, Debian's kernel with its u-root shell, which they type commands
// into over the serial console — and read the hypervisor's report of each
// run with package vmlog. The image must embed the guests: make test-boot
// builds `testkernel` and `guest` before `image`. The long tests
// (long_test.go, make test-long) run only with TAMAVISOR_LONG=1.
package qemutest
