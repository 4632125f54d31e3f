package pci

import (
	"fmt"

	"tamavisor/drivers/hw"
)

// ECAM address layout (PCI Express Base Specification 5.0, 7.2.2, Table
// 7-1): bus in bits 27:20, device 19:15, function 14:12, register 11:0.
const (
	ecamBusShift = 20
	ecamDevShift = 15
	ecamFnShift  = 12
	// ecamBusWindow is the configuration space of one bus.
	ecamBusWindow = 1 << ecamBusShift
)

// ECAM is the memory-mapped enhanced configuration mechanism of one segment
// group, as an ACPI MCFG entry describes it.
//
// The MCFG base address is the address of bus 0's configuration space even
// when the entry's start bus is not 0: bus b is at base + b<<20, and only
// start..end is decoded. The PCI Firmware Specification leaves this
// ambiguous; Linux (arch/x86/pci/mmconfig_64.c maps from base +
// start<<20) and FreeBSD (commit 61e2161367bb, "the actual base address for
// an MCFG bus range is the address from the table plus the starting bus
// number times 1 MB") both read it this way, so firmware is written for it.
type ECAM struct {
	mmio     hw.MMIO
	base     uint64
	segment  uint16
	startBus uint8
	endBus   uint8
}

// NewECAM returns the ECAM window for one MCFG entry: base address, PCI
// segment group, start and end bus numbers, all as the table gives them.
func NewECAM(mmio hw.MMIO, base uint64, segment uint16, startBus, endBus uint8) (*ECAM, error) {
	if endBus < startBus {
		return nil, fmt.Errorf("pci: MCFG entry for segment %d has end bus %d below start bus %d", segment, endBus, startBus)
	}
	if base%ecamBusWindow != 0 {
		return nil, fmt.Errorf("pci: ECAM base %#x of segment %d is not 1 MiB aligned", base, segment)
	}
	last := base + uint64(endBus)<<ecamBusShift + ecamBusWindow - 1
	if last < base {
		return nil, fmt.Errorf("pci: ECAM window at %#x for buses %d-%d wraps the address space", base, startBus, endBus)
	}
	return &ECAM{mmio: mmio, base: base, segment: segment, startBus: startBus, endBus: endBus}, nil
}

// Segment returns the PCI segment group number.
func (e *ECAM) Segment() uint16 { return e.segment }

// BusRange implements BusRanger.
func (e *ECAM) BusRange() (start, end uint8) { return e.startBus, e.endBus }

// HasExtendedSpace implements ExtendedSpace.
func (e *ECAM) HasExtendedSpace() bool { return true }

// Window returns the physical range the decoded buses occupy (for mapping
// it uncached).
func (e *ECAM) Window() (start, size uint64) {
	return e.base + uint64(e.startBus)<<ecamBusShift, uint64(int(e.endBus)-int(e.startBus)+1) << ecamBusShift
}

// Address returns the physical address of a register, and false for a
// bus outside the window or a device, function or offset out of range.
func (e *ECAM) Address(bus, dev, fn uint8, off uint16) (uint64, bool) {
	if bus < e.startBus || bus > e.endBus || dev > MaxDevice || fn > MaxFunction || off >= ExtendedConfigSize {
		return 0, false
	}
	return e.base + (uint64(bus)<<ecamBusShift | uint64(dev)<<ecamDevShift | uint64(fn)<<ecamFnShift | uint64(off)), true
}

// Read32 implements ConfigSpace.
func (e *ECAM) Read32(bus, dev, fn uint8, off uint16) uint32 {
	a, ok := e.Address(bus, dev, fn, off&^3)
	if !ok {
		return 0xFFFF_FFFF
	}
	return e.mmio.Read32(a)
}

// Write32 implements ConfigSpace.
func (e *ECAM) Write32(bus, dev, fn uint8, off uint16, v uint32) {
	a, ok := e.Address(bus, dev, fn, off&^3)
	if !ok {
		return
	}
	e.mmio.Write32(a, v)
}

// Read16 reads a 16-bit register with one 16-bit access (off even).
func (e *ECAM) Read16(bus, dev, fn uint8, off uint16) uint16 {
	if off&1 != 0 {
		return Read16(struct{ ConfigSpace }{e}, bus, dev, fn, off)
	}
	a, ok := e.Address(bus, dev, fn, off)
	if !ok {
		return 0xFFFF
	}
	return e.mmio.Read16(a)
}

// Read8 reads one byte with an 8-bit access.
func (e *ECAM) Read8(bus, dev, fn uint8, off uint16) uint8 {
	a, ok := e.Address(bus, dev, fn, off)
	if !ok {
		return 0xFF
	}
	return e.mmio.Read8(a)
}
