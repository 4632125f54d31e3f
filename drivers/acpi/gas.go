package acpi

import (
	"encoding/binary"
	"fmt"
)

// AddressSpace is a Generic Address Structure's Address Space ID (ACPI
// 6.5, 5.2.3.2).
type AddressSpace uint8

const (
	SpaceSystemMemory      AddressSpace = 0x00
	SpaceSystemIO          AddressSpace = 0x01
	SpacePCIConfig         AddressSpace = 0x02
	SpaceEmbeddedControl   AddressSpace = 0x03
	SpaceSMBus             AddressSpace = 0x04
	SpaceSystemCMOS        AddressSpace = 0x05
	SpacePCIBarTarget      AddressSpace = 0x06
	SpaceIPMI              AddressSpace = 0x07
	SpaceGPIO              AddressSpace = 0x08
	SpaceGenericSerialBus  AddressSpace = 0x09
	SpacePCC               AddressSpace = 0x0a
	SpacePRM               AddressSpace = 0x0b
	SpaceFunctionalFixedHW AddressSpace = 0x7f
	// 0x0C-0x7E are reserved; 0x80-0xFF are OEM defined.
)

var spaceNames = map[AddressSpace]string{
	SpaceSystemMemory:      "SystemMemory",
	SpaceSystemIO:          "SystemIO",
	SpacePCIConfig:         "PCIConfig",
	SpaceEmbeddedControl:   "EmbeddedControl",
	SpaceSMBus:             "SMBus",
	SpaceSystemCMOS:        "SystemCMOS",
	SpacePCIBarTarget:      "PCIBarTarget",
	SpaceIPMI:              "IPMI",
	SpaceGPIO:              "GPIO",
	SpaceGenericSerialBus:  "GenericSerialBus",
	SpacePCC:               "PCC",
	SpacePRM:               "PRM",
	SpaceFunctionalFixedHW: "FunctionalFixedHW",
}

func (s AddressSpace) String() string {
	if n, ok := spaceNames[s]; ok {
		return n
	}
	if s >= 0x80 {
		return fmt.Sprintf("OEM(%#x)", uint8(s))
	}
	return fmt.Sprintf("Reserved(%#x)", uint8(s))
}

// AccessSize is a Generic Address Structure's access size (ACPI 6.5,
// 5.2.3.2).
type AccessSize uint8

const (
	AccessUndefined AccessSize = 0 // legacy: use the register's bit width
	AccessByte      AccessSize = 1
	AccessWord      AccessSize = 2
	AccessDword     AccessSize = 3
	AccessQword     AccessSize = 4
)

// Bytes is the access width in bytes, or 0 when undefined.
func (a AccessSize) Bytes() int {
	if a >= AccessByte && a <= AccessQword {
		return 1 << (a - 1)
	}
	return 0
}

// GASLength is the size of a Generic Address Structure.
const GASLength = 12

// GenericAddress is the Generic Address Structure (ACPI 6.5, 5.2.3.2,
// Table 5.1): where a register lives, in which address space.
type GenericAddress struct {
	Space      AddressSpace
	BitWidth   uint8
	BitOffset  uint8
	AccessSize AccessSize
	Address    uint64
}

// decodeGAS reads a GAS from b, which must hold at least GASLength bytes.
func decodeGAS(b []byte) GenericAddress {
	return GenericAddress{
		Space:      AddressSpace(b[0]),
		BitWidth:   b[1],
		BitOffset:  b[2],
		AccessSize: AccessSize(b[3]),
		Address:    binary.LittleEndian.Uint64(b[4:12]),
	}
}

// Present reports whether the structure names a register: ACPI uses an
// all-zero address for "not supported".
func (g GenericAddress) Present() bool { return g.Address != 0 }

func (g GenericAddress) String() string {
	if !g.Present() {
		return "none"
	}
	s := fmt.Sprintf("%v %#x", g.Space, g.Address)
	if g.BitWidth != 0 {
		s += fmt.Sprintf(" bits %d", g.BitWidth)
		if g.BitOffset != 0 {
			s += fmt.Sprintf("@%d", g.BitOffset)
		}
	}
	if n := g.AccessSize.Bytes(); n != 0 {
		s += fmt.Sprintf(" access %d", n)
	}
	return s
}
