// Package platform describes the machine a guest finds itself in: where its
// RAM is, what the firmware would have reserved, the memory map it is told
// (e820), and the ACPI tables (ACPI 6.5) that name its processors, interrupt
// controllers, power-management registers and PCI host bridge.
//
// The guest-physical map is fixed, in the manner of a PC:
//
//	0x00000000-0x0007ffff  RAM
//	0x00080000-0x0009ffff  loader area (page tables, GDT, boot information), reserved
//	0x000a0000-0x000fffff  legacy VGA/BIOS hole, reserved; RAM-backed, the ACPI
//	                       tables live in its top 128 KiB (0xe0000-0xfffff), where
//	                       a BIOS puts the RSDP (ACPI 6.5, 5.2.5.1)
//	0x00100000-LowRAM.End  RAM
//	0xc0000000-0xdfffffff  32-bit PCI MMIO window (the hole starts at 0xc0000000)
//	0xe0000000-0xefffffff  PCI Express ECAM, buses 0-255, reserved
//	0xfec00000             I/O APIC
//	0xfee00000             local APICs
//	0x100000000-HighRAM.End  the RAM that does not fit below the hole
//
// RAM below the hole is backed from address 0 up to LowRAM.End with no gap:
// the 0xa0000-0xfffff hole is RAM the guest is told is reserved, as a PC's
// shadowed BIOS area is. Build writes the ACPI tables into it.
package platform

import (
	"fmt"
)

// Region is the guest-physical range [Start, End).
type Region struct {
	Start, End uint64
}

// Size is the number of bytes in the region.
func (r Region) Size() uint64 {
	if r.End < r.Start {
		return 0
	}
	return r.End - r.Start
}

// Empty reports a region with no bytes.
func (r Region) Empty() bool { return r.End <= r.Start }

// Overlaps reports whether the two regions share a byte.
func (r Region) Overlaps(o Region) bool {
	return !r.Empty() && !o.Empty() && r.Start < o.End && o.Start < r.End
}

// Contains reports whether o lies wholly inside r.
func (r Region) Contains(o Region) bool {
	return o.Start >= r.Start && o.End <= r.End && o.Start <= o.End
}

func (r Region) String() string {
	if r.Empty() {
		return "empty"
	}
	return fmt.Sprintf("%#x-%#x", r.Start, r.End-1)
}

// Size units.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// The fixed guest-physical map. Every address here is part of the guest's
// ABI: the loader, the ACPI tables and the device models agree on them.
const (
	// LoaderAreaStart and LoaderAreaEnd bound the loader's own area: the
	// identity page tables, the boot GDT, a boot stack and the boot
	// information (boot_params, multiboot information, PVH start info),
	// command lines and module strings. It sits at the top of conventional
	// memory, where a BIOS keeps its EBDA, so that the guest finds usable
	// RAM below it (Linux needs some below 1 MiB for its real-mode
	// trampoline) and never reuses what it may still read.
	LoaderAreaStart = 0x80000
	LoaderAreaEnd   = 0xa0000

	// LegacyHoleStart and LegacyHoleEnd bound the VGA frame buffer and
	// BIOS ROM area of a PC (0xa0000-0xfffff), reported as reserved.
	LegacyHoleStart = 0xa0000
	LegacyHoleEnd   = 0x100000

	// ACPIAreaStart and ACPIAreaEnd bound the ACPI tables: the top of the
	// legacy hole, the area an OS searches for the RSDP on a BIOS system
	// (ACPI 6.5, 5.2.5.1). RSDPAddress is where the RSDP goes: the
	// start of that area, 16-byte aligned as the search requires.
	ACPIAreaStart = 0xe0000
	ACPIAreaEnd   = 0x100000
	RSDPAddress   = ACPIAreaStart

	// HighMemoryStart is the first byte above the legacy hole (1 MiB).
	HighMemoryStart = 0x100000

	// PCIHoleStart is where RAM below 4 GiB ends at most: the 32-bit PCI
	// hole, 0xc0000000-0xffffffff, holds the PCI MMIO window, ECAM and the
	// interrupt controllers.
	PCIHoleStart = 0xc0000000

	// PCIMMIOStart and PCIMMIOEnd bound the 32-bit MMIO window the PCI
	// host bridge decodes for device BARs (the DSDT's _CRS).
	PCIMMIOStart = 0xc0000000
	PCIMMIOEnd   = 0xe0000000

	// ECAMBase is the PCI Express enhanced configuration space of segment
	// 0 (PCIe Base 6.0, 7.2.2), buses ECAMStartBus to ECAMEndBus, 1 MiB
	// each (the MCFG).
	ECAMBase     = 0xe0000000
	ECAMStartBus = 0
	ECAMEndBus   = 255
	ECAMSize     = (ECAMEndBus - ECAMStartBus + 1) << 20

	// IOAPICAddress is the I/O APIC's register window; its inputs start at
	// GSI IOAPICGSIBase. IOAPICID is its APIC ID (the MADT). ID 0 is shared
	// with the first processor's local APIC, as on QEMU's machines: only the
	// P6 APIC bus needed distinct IDs, and xAPIC IDs are 8 bits, all taken
	// with 255 vCPUs.
	IOAPICAddress = 0xfec00000
	IOAPICGSIBase = 0
	IOAPICID      = 0
	// IOAPICPins is the number of redirection entries the I/O APIC model
	// has (GSIs 0-23, as the 82093AA).
	IOAPICPins = 24

	// LocalAPICAddress is the local APICs' register window (Intel SDM
	// Vol. 3A, 11.4.1).
	LocalAPICAddress = 0xfee00000

	// HighRAMStart is where RAM that does not fit below the hole goes.
	HighRAMStart = 4 * GiB
)

// Limits of a layout.
const (
	// MinRAMSize is the smallest guest: RAM up to the end of the legacy
	// hole (the ACPI tables live in it) and 1 MiB above it.
	MinRAMSize = 2 * MiB
	// MaxGuestPhysicalAddress bounds guest RAM: 39 bits, the smallest
	// physical-address width of the x86-64 processors with EPT or NPT
	// (CPUID 80000008h EAX[7:0] on client Intel parts); a guest's RAM
	// must be addressable by the MAXPHYADDR it is shown.
	MaxGuestPhysicalAddress = 1 << 39
	// MaxRAMSize is the largest guest: RAM up to MaxGuestPhysicalAddress
	// less the 1 GiB PCI hole.
	MaxRAMSize = MaxGuestPhysicalAddress - (HighRAMStart - PCIHoleStart)
	// RAMGranule is the unit of RAM sizes: the page.
	RAMGranule = 4 * KiB
	// MaxVCPUs is the most virtual CPUs a guest can have: xAPIC IDs are 8
	// bits and 0xff is the broadcast ID, so APIC IDs 0-254.
	MaxVCPUs = 255
)

// Layout is a guest's physical memory layout. Make one with NewLayout; the
// fields derive from RAMSize and VCPUs, and Validate refuses a Layout whose
// fields disagree with them.
type Layout struct {
	// RAMSize is the guest's RAM in bytes; VCPUs its virtual CPUs, with
	// APIC IDs 0 to VCPUs-1.
	RAMSize uint64
	VCPUs   int

	// LowRAM is the RAM below the PCI hole, [0, min(RAMSize, PCIHoleStart));
	// it includes the loader area and the legacy hole, which the guest is
	// told are reserved. HighRAM is the rest, from 4 GiB; empty when all
	// RAM fits below the hole. Together they are the guest-physical ranges
	// backed by RAM (the nested page tables map exactly these).
	LowRAM, HighRAM Region

	// LoaderArea, ACPIArea, ECAM and PCIMMIO are the fixed regions above.
	LoaderArea Region
	ACPIArea   Region
	ECAM       Region
	PCIMMIO    Region
}

// NewLayout lays out a guest with ramSize bytes of RAM (a whole number of
// pages, MinRAMSize to MaxRAMSize) and vcpus virtual CPUs (1 to MaxVCPUs).
func NewLayout(ramSize uint64, vcpus int) (*Layout, error) {
	switch {
	case vcpus < 1:
		return nil, fmt.Errorf("platform: %d vCPUs: a guest needs at least one", vcpus)
	case vcpus > MaxVCPUs:
		return nil, fmt.Errorf("platform: %d vCPUs: at most %d fit the 8-bit xAPIC IDs (0xff is broadcast)", vcpus, MaxVCPUs)
	case ramSize < MinRAMSize:
		return nil, fmt.Errorf("platform: RAM size %#x (%s) is below the %s minimum (the legacy area and 1 MiB above it)", ramSize, SizeString(ramSize), SizeString(MinRAMSize))
	case ramSize > MaxRAMSize:
		return nil, fmt.Errorf("platform: RAM size %#x (%s) is above the %s maximum (RAM and the PCI hole within %d-bit guest-physical addresses)", ramSize, SizeString(ramSize), SizeString(MaxRAMSize), 39)
	case ramSize%RAMGranule != 0:
		return nil, fmt.Errorf("platform: RAM size %#x is not a whole number of %s pages", ramSize, SizeString(RAMGranule))
	}
	l := &Layout{
		RAMSize:    ramSize,
		VCPUs:      vcpus,
		LoaderArea: Region{LoaderAreaStart, LoaderAreaEnd},
		ACPIArea:   Region{ACPIAreaStart, ACPIAreaEnd},
		ECAM:       Region{ECAMBase, ECAMBase + ECAMSize},
		PCIMMIO:    Region{PCIMMIOStart, PCIMMIOEnd},
	}
	low := min(ramSize, PCIHoleStart)
	l.LowRAM = Region{0, low}
	l.HighRAM = Region{HighRAMStart, HighRAMStart + (ramSize - low)}
	return l, nil
}

// Validate checks that l is what NewLayout makes of its RAMSize and VCPUs,
// so that code handed a Layout can trust its regions.
func (l *Layout) Validate() error {
	if l == nil {
		return fmt.Errorf("platform: no layout")
	}
	want, err := NewLayout(l.RAMSize, l.VCPUs)
	if err != nil {
		return err
	}
	if *want != *l {
		return fmt.Errorf("platform: layout for %s and %d vCPUs has regions NewLayout does not give (low RAM %v, high RAM %v; want %v, %v)",
			SizeString(l.RAMSize), l.VCPUs, l.LowRAM, l.HighRAM, want.LowRAM, want.HighRAM)
	}
	return nil
}

// RAM returns the guest-physical ranges backed by RAM, in address order:
// what the nested page tables map and what guest memory holds.
func (l *Layout) RAM() []Region {
	if l.HighRAM.Empty() {
		return []Region{l.LowRAM}
	}
	return []Region{l.LowRAM, l.HighRAM}
}

// SizeString writes a byte count the way the memory map is read: "512
// MiB", "4 KiB", or "12345 bytes" when not a whole number of KiB.
func SizeString(n uint64) string {
	switch {
	case n == 0:
		return "0 bytes"
	case n%GiB == 0:
		return fmt.Sprintf("%d GiB", n/GiB)
	case n%MiB == 0:
		return fmt.Sprintf("%d MiB", n/MiB)
	case n%KiB == 0:
		return fmt.Sprintf("%d KiB", n/KiB)
	}
	return fmt.Sprintf("%d bytes", n)
}
