package acpi

import (
	"encoding/binary"
	"fmt"
)

// MCFG is the PCI Express memory-mapped configuration space table (PCI
// Firmware Specification 3.3, 4.1.2).
type MCFG struct {
	Allocations []MCFGAllocation
}

// MCFGAllocation is one ECAM region: configuration space of buses
// StartBus..EndBus of PCI segment group Segment. Base is the address
// that bus 0 of the segment would have, so bus n's space starts at
// Base + n<<20 even when StartBus is not 0 (the ECAM formula of PCI
// Firmware 3.3, 4.1.2, and how Linux's pci_mmcfg code reads the table).
type MCFGAllocation struct {
	Base     uint64
	Segment  uint16
	StartBus uint8
	EndBus   uint8
}

// MCFG layout (PCI Firmware 3.3, Tables 4-2 and 4-3).
const (
	mcfgAllocationsOffset = 44 // after the header and 8 reserved bytes
	mcfgAllocationLength  = 16
)

// ParseMCFG decodes an MCFG (the whole table, header included).
func ParseMCFG(raw []byte) (*MCFG, error) {
	b, err := checkHeader(raw, SigMCFG, mcfgAllocationsOffset)
	if err != nil {
		return nil, err
	}
	m := &MCFG{}
	body := b[mcfgAllocationsOffset:]
	for off := 0; off+mcfgAllocationLength <= len(body); off += mcfgAllocationLength {
		e := body[off:]
		a := MCFGAllocation{
			Base:     binary.LittleEndian.Uint64(e[0:]),
			Segment:  binary.LittleEndian.Uint16(e[8:]),
			StartBus: e[10],
			EndBus:   e[11],
		}
		if a.EndBus < a.StartBus {
			return m, fmt.Errorf("%w: allocation at offset %#x: end bus %d below start bus %d", ErrMalformed, mcfgAllocationsOffset+off, a.EndBus, a.StartBus)
		}
		m.Allocations = append(m.Allocations, a)
	}
	if rem := len(body) % mcfgAllocationLength; rem != 0 {
		return m, fmt.Errorf("%w: %d bytes after the last allocation", ErrMalformed, rem)
	}
	return m, nil
}

// ConfigAddress is the physical address of the configuration space of
// bus:dev.fn at register offset reg (PCIe Base 6.0, 7.2.2, ECAM), and
// whether this allocation covers that bus.
func (a MCFGAllocation) ConfigAddress(bus, dev, fn uint8, reg uint16) (uint64, bool) {
	if bus < a.StartBus || bus > a.EndBus || dev > 31 || fn > 7 || reg > 0xfff {
		return 0, false
	}
	return a.Base + uint64(bus)<<20 + uint64(dev)<<15 + uint64(fn)<<12 + uint64(reg), true
}
