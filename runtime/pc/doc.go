// Package pc is tamavisor's platform support for PC-compatible machines
// (QEMU q35/pc, Bochs, real servers): the TamaGo runtime/goos overlay that
// TamaGo's KVM-only board packages provide for microVMs.
//
// It supplies the image's entry points for PVH, Multiboot v1/v2 and UEFI
// (entry_amd64.s), the Go runtime's RAM layout, printk on the 16550 UART,
// nanotime from a TSC calibrated against real timers, RDRAND/RDSEED
// entropy (TSC jitter, with a console warning, on CPUs without them),
// exception reports with registers, and the host page tables built from
// the firmware's memory map. Everything here is compiled only for
// GOOS=tamago; the logic it relies on lives in host-testable packages
// (runtime/tsc, runtime/pagetable, runtime/pc/jitter, boot/bootinfo,
// drivers/...).
package pc
