// Package testkernel holds tamavisor's own test guest and reads its
// console.
//
// The guest, kernel/testkernel.s, is a small Multiboot (v1) ELF32 kernel
// in GNU assembler, built with as and ld only (make testkernel writes
// build/testkernel.elf; no C compiler). It sits in a directory without Go
// files because the go command takes a .s file beside Go files for Go
// assembly.
//
// It is the first guest the hypervisor's AMD-V and VT-x engines run. It
// exercises CPUID (leaf 0 and the hypervisor leaf 0x40000000), port I/O
// (COM1 and the 16550's scratch register), MMIO through the instruction
// emulator (the local APIC page with mov, movzx, and/or/xor/test/cmp on
// memory, movs and stos) and the LAPIC timer's interrupts, one-shot and
// periodic. Each step prints "testkernel: <step> ok" or
// "testkernel: <step> FAIL <detail>"; the kernel then writes its number of
// failed steps to the isa-debug-exit port 0xF4, so that QEMU (with
// DebugExitDevice) exits with status (failures << 1) | 1.
//
// The Go side is host code: Parse and Report.Check read the console of a
// run, under QEMU directly (the tests here) or under the hypervisor (its
// integration tests), and RunQEMU boots the kernel under plain QEMU TCG.
package testkernel
