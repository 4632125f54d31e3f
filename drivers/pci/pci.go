// Package pci reads PCI and PCI Express configuration space and enumerates
// the functions of one PCI segment group.
//
// Configuration space is reached through ConfigSpace, with two
// implementations: the legacy I/O-port Configuration Mechanism #1 (ports
// 0xCF8/0xCFC, PCI Local Bus Specification 3.0, 3.2.2.3.2; first 256 bytes
// of each function only) and the PCI Express Enhanced Configuration Access
// Mechanism (ECAM, PCI Express Base Specification 5.0, 7.2.2; 4 KiB per
// function, located by the ACPI MCFG table, PCI Firmware Specification 3.2,
// 4.1.2).
//
// Header layouts follow the PCI Local Bus Specification 3.0, 6.1 "Configuration
// Space Organization" and 6.2.5 "Base Addresses"; bridge headers the PCI-to-PCI
// Bridge Architecture Specification 1.2, 3.2; capability lists PCI 3.0 6.7
// and PCIe 5.0 7.6 "PCI Express Extended Capabilities".
//
// Enumeration reads only, except when BAR sizing is asked for: that writes
// each BAR (with decoding turned off in the command register meanwhile) and
// puts everything back.
package pci

// ConfigSpace reads and writes 32-bit configuration registers of one PCI
// segment group. off is a byte offset and must be a multiple of 4 (the low
// two bits are ignored). A read of a function, offset or bus the mechanism
// cannot reach returns all ones, as a read of an absent function does; such
// a write is dropped.
type ConfigSpace interface {
	Read32(bus, dev, fn uint8, off uint16) uint32
	Write32(bus, dev, fn uint8, off uint16, v uint32)
}

// ExtendedSpace is implemented by mechanisms that reach offsets 0x100-0xFFF
// (PCIe extended configuration space).
type ExtendedSpace interface {
	HasExtendedSpace() bool
}

// BusRanger is implemented by mechanisms that reach only some buses (an
// ECAM window covers MCFG's start to end bus).
type BusRanger interface {
	BusRange() (start, end uint8)
}

// Limits of a configuration address (PCI 3.0, 3.2.2.3.2).
const (
	MaxDevice          = 31
	MaxFunction        = 7
	LegacyConfigSize   = 256
	ExtendedConfigSize = 4096
)

// Type 0/1 common header offsets (PCI 3.0, 6.1, Figure 6-1).
const (
	OffVendorID      uint16 = 0x00
	OffDeviceID      uint16 = 0x02
	OffCommand       uint16 = 0x04
	OffStatus        uint16 = 0x06
	OffRevision      uint16 = 0x08
	OffProgIF        uint16 = 0x09
	OffSubclass      uint16 = 0x0A
	OffClass         uint16 = 0x0B
	OffHeaderType    uint16 = 0x0E
	OffBAR0          uint16 = 0x10
	OffCapPtr        uint16 = 0x34 // type 0 and type 1
	OffCardBusCapPtr uint16 = 0x14 // type 2
	OffIRQLine       uint16 = 0x3C
	OffIRQPin        uint16 = 0x3D
)

// Type 1 (PCI-to-PCI bridge) and type 2 (CardBus bridge) bus numbers
// (PCI-to-PCI Bridge Architecture Specification 1.2, 3.2.5.2-3.2.5.4; the
// CardBus header puts them at the same offsets).
const (
	OffPrimaryBus     uint16 = 0x18
	OffSecondaryBus   uint16 = 0x19
	OffSubordinateBus uint16 = 0x1A
)

// Header type field (PCI 3.0, 6.2.1).
const (
	HeaderTypeMask          uint8 = 0x7F
	HeaderTypeMultiFunction uint8 = 0x80
	HeaderTypeNormal        uint8 = 0
	HeaderTypeBridge        uint8 = 1
	HeaderTypeCardBus       uint8 = 2
)

// Command register bits (PCI 3.0, 6.2.2, Figure 6-2).
const (
	CommandIO     uint16 = 1 << 0
	CommandMemory uint16 = 1 << 1
	CommandMaster uint16 = 1 << 2
)

// StatusCapList: the function has a capability list (PCI 3.0, 6.2.3).
const StatusCapList uint16 = 1 << 4

// BAR bits (PCI 3.0, 6.2.5.1).
const (
	BARIO           uint32 = 1 << 0
	BARMemTypeMask  uint32 = 3 << 1
	BARMemType64    uint32 = 2 << 1
	BARPrefetchable uint32 = 1 << 3
	BARIOAddrMask   uint32 = 0xFFFF_FFFC
	BARMemAddrMask  uint32 = 0xFFFF_FFF0
)

// Capability list limits. Capabilities live in 0x40-0xFF, dword aligned,
// so a list longer than 48 entries must loop (PCI 3.0, 6.7).
const (
	CapListStart       uint16 = 0x40
	MaxCapabilities           = (LegacyConfigSize - int(CapListStart)) / 4
	ExtCapStart        uint16 = 0x100
	MaxExtCapabilities        = (ExtendedConfigSize - int(ExtCapStart)) / 4
	CapIDPCIExpress    uint8  = 0x10 // PCI Express Capability (PCIe 5.0, 7.5.3)
	extCapIDMask              = 0xFFFF
	extCapVersionShift        = 16
	extCapNextShift           = 20
)

// VendorNone is what an absent function's vendor ID reads.
const VendorNone uint16 = 0xFFFF

// Read8 reads one byte of configuration space, natively if cs supports
// narrow accesses, else from the dword that holds it.
func Read8(cs ConfigSpace, bus, dev, fn uint8, off uint16) uint8 {
	if n, ok := cs.(narrowReader); ok {
		return n.Read8(bus, dev, fn, off)
	}
	return uint8(cs.Read32(bus, dev, fn, off&^3) >> (8 * (off & 3)))
}

// Read16 reads a 16-bit register. An odd offset that straddles two dwords
// is assembled from two byte reads.
func Read16(cs ConfigSpace, bus, dev, fn uint8, off uint16) uint16 {
	if off&3 == 3 {
		return uint16(Read8(cs, bus, dev, fn, off)) | uint16(Read8(cs, bus, dev, fn, off+1))<<8
	}
	if n, ok := cs.(narrowReader); ok {
		return n.Read16(bus, dev, fn, off)
	}
	return uint16(cs.Read32(bus, dev, fn, off&^3) >> (8 * (off & 3)))
}

type narrowReader interface {
	Read8(bus, dev, fn uint8, off uint16) uint8
	Read16(bus, dev, fn uint8, off uint16) uint16
}

// writeCommand writes the command register without touching the status
// register beside it: status bits are read-only or write-one-to-clear, so a
// 32-bit write with zeros in the upper half leaves them alone.
func writeCommand(cs ConfigSpace, bus, dev, fn uint8, cmd uint16) {
	cs.Write32(bus, dev, fn, OffCommand, uint32(cmd))
}
