//go:build tamago

package hw

import (
	"fmt"
	"unsafe"
)

// Machine is the real implementation of PortIO, MMIO, MSRs, CPUID and
// PhysMem on the bare-metal image. Physical memory is reached through the
// hypervisor's identity map; MappedLimit bounds what ReadPhys will touch so
// that a corrupt firmware pointer gives an error instead of a page fault.
type Machine struct {
	// MappedBase and MappedLimit bound the physical addresses covered by
	// the host page tables: [MappedBase, MappedLimit). The platform sets
	// them as it replaces the boot-time map (which maps page 0) with its
	// own (which leaves page 0 unmapped, to catch nil dereferences).
	MappedBase, MappedLimit uint64
}

// Defined in hw_amd64.s.
func inb(port uint16) uint8
func inw(port uint16) uint16
func inl(port uint16) uint32
func outb(port uint16, v uint8)
func outw(port uint16, v uint16)
func outl(port uint16, v uint32)
func rdmsr(msr uint32) uint64
func wrmsr(msr uint32, v uint64)
func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)

func (*Machine) In8(port uint16) uint8         { return inb(port) }
func (*Machine) In16(port uint16) uint16       { return inw(port) }
func (*Machine) In32(port uint16) uint32       { return inl(port) }
func (*Machine) Out8(port uint16, v uint8)     { outb(port, v) }
func (*Machine) Out16(port uint16, v uint16)   { outw(port, v) }
func (*Machine) Out32(port uint16, v uint32)   { outl(port, v) }
func (*Machine) ReadMSR(msr uint32) uint64     { return rdmsr(msr) }
func (*Machine) WriteMSR(msr uint32, v uint64) { wrmsr(msr, v) }

func (*Machine) CPUID(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32) {
	return cpuid(leaf, subleaf)
}

// Device registers must be accessed with a single load or store of the
// named width, which these volatile-by-construction pointer accesses are:
// the compiler neither merges nor splits them.

func (*Machine) Read8(a uint64) uint8       { return *(*uint8)(unsafe.Pointer(uintptr(a))) }
func (*Machine) Read16(a uint64) uint16     { return *(*uint16)(unsafe.Pointer(uintptr(a))) }
func (*Machine) Read32(a uint64) uint32     { return *(*uint32)(unsafe.Pointer(uintptr(a))) }
func (*Machine) Read64(a uint64) uint64     { return *(*uint64)(unsafe.Pointer(uintptr(a))) }
func (*Machine) Write8(a uint64, v uint8)   { *(*uint8)(unsafe.Pointer(uintptr(a))) = v }
func (*Machine) Write16(a uint64, v uint16) { *(*uint16)(unsafe.Pointer(uintptr(a))) = v }
func (*Machine) Write32(a uint64, v uint32) { *(*uint32)(unsafe.Pointer(uintptr(a))) = v }
func (*Machine) Write64(a uint64, v uint64) { *(*uint64)(unsafe.Pointer(uintptr(a))) = v }

// ReadPhys implements PhysMem over the identity map.
func (m *Machine) ReadPhys(addr uint64, buf []byte) error {
	end := addr + uint64(len(buf))
	if end < addr || end > m.MappedLimit || addr < m.MappedBase {
		return fmt.Errorf("physical range %#x-%#x is not mapped", addr, end)
	}
	copy(buf, unsafe.Slice((*byte)(unsafe.Pointer(uintptr(addr))), len(buf)))
	return nil
}
