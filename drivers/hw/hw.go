// Package hw names the privileged operations that drivers and platform code
// need: port I/O, memory-mapped I/O, model-specific registers and CPUID.
//
// Everything above this package is written against these small interfaces so
// that it builds and is tested with stock `go test` on the host, where the
// fakes in package hwfake stand in for the machine. The real implementations
// (hw_tamago.go, hw_amd64.s) are compiled only for the bare-metal image
// (GOOS=tamago); they reach the hardware through IN/OUT, RDMSR/WRMSR, CPUID and
// plain loads and stores on the identity-mapped physical address space.
package hw

// PortIO is the x86 I/O address space (Intel SDM Vol. 1, 18.2 "I/O Port
// Addressing").
type PortIO interface {
	In8(port uint16) uint8
	In16(port uint16) uint16
	In32(port uint16) uint32
	Out8(port uint16, v uint8)
	Out16(port uint16, v uint16)
	Out32(port uint16, v uint32)
}

// MMIO is physical memory-mapped register space. Accesses are made with the
// exact width named: device registers care.
type MMIO interface {
	Read8(addr uint64) uint8
	Read16(addr uint64) uint16
	Read32(addr uint64) uint32
	Read64(addr uint64) uint64
	Write8(addr uint64, v uint8)
	Write16(addr uint64, v uint16)
	Write32(addr uint64, v uint32)
	Write64(addr uint64, v uint64)
}

// MSRs reads and writes model-specific registers (Intel SDM Vol. 4; AMD APM
// Vol. 2, Appendix A). Reading an MSR the processor does not implement raises
// #GP on hardware: callers check CPUID first.
type MSRs interface {
	ReadMSR(msr uint32) uint64
	WriteMSR(msr uint32, v uint64)
}

// CPUID executes the CPUID instruction for a leaf and sub-leaf (Intel SDM
// Vol. 2A, "CPUID"; AMD APM Vol. 3, Appendix E).
type CPUID interface {
	CPUID(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
}

// PhysMem gives byte access to physical memory (firmware tables, boot
// information). On the image physical memory is identity-mapped; a read that
// falls outside what the implementation can reach returns an error rather
// than faulting, so a corrupt pointer in a firmware table is reported, not
// fatal.
type PhysMem interface {
	ReadPhys(addr uint64, buf []byte) error
}
