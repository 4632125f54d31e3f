package platform

import "fmt"

// MemoryType is an address range type of the memory map (ACPI 6.5, 15.1,
// Table 15.1: the e820 types, which Multiboot, Multiboot2 and the PVH start
// info reuse).
type MemoryType uint32

const (
	MemoryRAM      MemoryType = 1 // AddressRangeMemory: usable
	MemoryReserved MemoryType = 2 // AddressRangeReserved
	MemoryACPI     MemoryType = 3 // AddressRangeACPI: reclaimable after the tables are read
	MemoryNVS      MemoryType = 4 // AddressRangeNVS
	MemoryUnusable MemoryType = 5 // AddressRangeUnusable
)

func (t MemoryType) String() string {
	switch t {
	case MemoryRAM:
		return "usable"
	case MemoryReserved:
		return "reserved"
	case MemoryACPI:
		return "ACPI"
	case MemoryNVS:
		return "ACPI NVS"
	case MemoryUnusable:
		return "unusable"
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// MemoryRange is one entry of the memory map.
type MemoryRange struct {
	Region
	Type MemoryType
}

func (m MemoryRange) String() string { return fmt.Sprintf("%v %v", m.Region, m.Type) }

// MemoryMap returns the guest's memory map in address order, as the e820
// (BIOS INT 15h, AX=E820h; ACPI 6.5, 15.1) would give it: usable RAM, the
// loader area and legacy hole as reserved, ECAM as reserved (Linux uses
// MMCONFIG only where the map reserves it), and RAM above 4 GiB.
func (l *Layout) MemoryMap() []MemoryRange {
	m := make([]MemoryRange, 0, 6)
	add := func(start, end uint64, t MemoryType) {
		if end > start {
			m = append(m, MemoryRange{Region{start, end}, t})
		}
	}
	low := l.LowRAM.End
	add(0, min(low, LoaderAreaStart), MemoryRAM)
	add(LoaderAreaStart, min(low, LoaderAreaEnd), MemoryReserved)
	add(LegacyHoleStart, min(low, LegacyHoleEnd), MemoryReserved)
	add(HighMemoryStart, low, MemoryRAM)
	add(l.ECAM.Start, l.ECAM.End, MemoryReserved)
	add(l.HighRAM.Start, l.HighRAM.End, MemoryRAM)
	return m
}

// Usable returns the usable RAM ranges of the memory map, in address
// order: where a loader may put a kernel, its modules and ramdisk.
func (l *Layout) Usable() []Region {
	var u []Region
	for _, r := range l.MemoryMap() {
		if r.Type == MemoryRAM {
			u = append(u, r.Region)
		}
	}
	return u
}
