package pcihost

import (
	"errors"
	"fmt"
)

// Type 0 configuration header offsets (PCI Local Bus Specification 3.0,
// 6.1 "Configuration Space Organization", Figure 6-1).
const (
	OffVendorID      = 0x00
	OffDeviceID      = 0x02
	OffCommand       = 0x04
	OffStatus        = 0x06
	OffRevisionID    = 0x08
	OffClassCode     = 0x09 // 3 bytes: programming interface, subclass, base class
	OffCacheLineSize = 0x0C
	OffLatencyTimer  = 0x0D
	OffHeaderType    = 0x0E
	OffBIST          = 0x0F
	OffBAR0          = 0x10
	OffSubsystemVID  = 0x2C
	OffSubsystemID   = 0x2E
	OffExpansionROM  = 0x30
	OffCapabilities  = 0x34
	OffInterruptLine = 0x3C
	OffInterruptPin  = 0x3D
	// capabilityStart is where the first capability may go: right after
	// the type 0 header (PCI 3.0, 6.7 "Capabilities List").
	capabilityStart = 0x40
)

// ConfigSpaceSize is the conventional configuration space a ConfigSpace
// holds; offsets from 256 to 4095 (PCI Express extended space) read 0, the
// "no extended capability" answer.
const ConfigSpaceSize = 256

// Command register bits (PCI 3.0, 6.2.2).
const (
	CommandIO           uint16 = 1 << 0
	CommandMemory       uint16 = 1 << 1
	CommandBusMaster    uint16 = 1 << 2
	CommandParity       uint16 = 1 << 6
	CommandSERR         uint16 = 1 << 8
	CommandINTxDisable  uint16 = 1 << 10
	commandWritable            = CommandIO | CommandMemory | CommandBusMaster | CommandParity | CommandSERR | CommandINTxDisable
	StatusInterrupt     uint16 = 1 << 3 // read-only, set by the device
	StatusCapabilities  uint16 = 1 << 4 // read-only
	statusWriteOneClear uint16 = 1<<8 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<15
)

// HeaderTypeMultiFunction is bit 7 of the header type: the device has
// functions beyond 0 (PCI 3.0, 6.2.1).
const HeaderTypeMultiFunction uint8 = 0x80

// BAR low bits (PCI 3.0, 6.2.5.1).
const (
	barIO           = 0x1
	barMem64        = 0x4
	barPrefetchable = 0x8
)

// Header is the identity of a simple type 0 function.
type Header struct {
	VendorID, DeviceID uint16
	RevisionID         uint8
	// Class is base class, subclass and programming interface as
	// 0xBBSSPP (e.g. 0x060000 host bridge, 0x010802 NVMe).
	Class             uint32
	SubsystemVendorID uint16
	SubsystemID       uint16
	InterruptPin      uint8 // 0 none, 1-4 INTA#-INTD#
	MultiFunction     bool
}

// BAR describes one base address register.
type BAR struct {
	// Size in bytes: a power of two, at least 16 for memory and 4 for
	// I/O, at most 256 for I/O and 2 GiB for a 32-bit memory BAR.
	Size uint64
	IO   bool
	// Bits64 makes a 64-bit memory BAR, using the next BAR slot for the
	// upper half.
	Bits64       bool
	Prefetchable bool
}

// ConfigSpace is a type 0 configuration space with write masks: read-only
// identity, the writable command bits, write-1-to-clear status bits, BARs
// whose address bits below their size are read-only (so writing all ones
// and reading back gives the size, PCI 3.0, 6.2.5.1), interrupt line, and
// a capability list device models append to. It implements Function and
// holds no pointers, so a snapshot is a copy.
//
// The device model behind it sets values with Set8/16/32 (not subject to
// the masks) and reads what the guest programmed with Get8/16/32,
// BARAddress and Command. It takes no lock: the host calls it under its
// own, and a device model touching it from elsewhere must serialize with
// the host (for example through the VM's device lock).
type ConfigSpace struct {
	data     [ConfigSpaceSize]byte
	writable [ConfigSpaceSize]byte
	clearOne [ConfigSpaceSize]byte
	barSize  [6]uint64
	lastCap  uint8
	nextCap  uint8
	usedBARs uint8
}

// NewConfigSpace returns a configuration space for h with no BARs.
func NewConfigSpace(h Header) *ConfigSpace {
	c := &ConfigSpace{}
	c.Init(h)
	return c
}

// Init (re)initializes c for h, dropping BARs and capabilities.
func (c *ConfigSpace) Init(h Header) {
	*c = ConfigSpace{nextCap: capabilityStart}
	c.Set16(OffVendorID, h.VendorID)
	c.Set16(OffDeviceID, h.DeviceID)
	c.Set8(OffRevisionID, h.RevisionID)
	c.Set8(OffClassCode, uint8(h.Class))
	c.Set8(OffClassCode+1, uint8(h.Class>>8))
	c.Set8(OffClassCode+2, uint8(h.Class>>16))
	if h.MultiFunction {
		c.Set8(OffHeaderType, HeaderTypeMultiFunction)
	}
	c.Set16(OffSubsystemVID, h.SubsystemVendorID)
	c.Set16(OffSubsystemID, h.SubsystemID)
	c.Set8(OffInterruptPin, h.InterruptPin)
	c.SetWritable(OffCommand, 2, uint32(commandWritable))
	c.setMask(&c.clearOne, OffStatus, 2, uint32(statusWriteOneClear))
	c.SetWritable(OffCacheLineSize, 1, 0xFF)
	c.SetWritable(OffInterruptLine, 1, 0xFF)
}

// SetBAR implements BAR i (0-5) as b. A 64-bit BAR also takes slot i+1.
func (c *ConfigSpace) SetBAR(i int, b BAR) error {
	if i < 0 || i > 5 {
		return fmt.Errorf("pcihost: BAR index %d out of 0-5", i)
	}
	if b.Size == 0 || b.Size&(b.Size-1) != 0 {
		return fmt.Errorf("pcihost: BAR%d size %#x is not a power of two", i, b.Size)
	}
	slots := uint8(1) << i
	if b.Bits64 {
		if i == 5 {
			return errors.New("pcihost: a 64-bit BAR cannot start at BAR5")
		}
		slots |= 1 << (i + 1)
	}
	if c.usedBARs&slots != 0 {
		return fmt.Errorf("pcihost: BAR%d overlaps a BAR already set", i)
	}
	off := uint16(OffBAR0 + 4*i)
	var low uint32
	switch {
	case b.IO:
		if b.Size < 4 || b.Size > 256 || b.Bits64 || b.Prefetchable {
			return fmt.Errorf("pcihost: I/O BAR%d: size %#x not in 4-256, or 64-bit/prefetchable", i, b.Size)
		}
		low = barIO
		// x86 ports are 16 bits: the upper half is hard-wired 0.
		c.SetWritable(off, 4, uint32(^(b.Size-1))&0xFFFC)
	default:
		if b.Size < 16 || (!b.Bits64 && b.Size > 1<<31) {
			return fmt.Errorf("pcihost: memory BAR%d size %#x out of range", i, b.Size)
		}
		if b.Bits64 {
			low |= barMem64
		}
		if b.Prefetchable {
			low |= barPrefetchable
		}
		mask := ^(b.Size - 1)
		c.SetWritable(off, 4, uint32(mask)&^0xF)
		if b.Bits64 {
			c.SetWritable(off+4, 4, uint32(mask>>32))
			c.Set32(off+4, 0)
		}
	}
	c.Set32(off, low)
	c.barSize[i] = b.Size
	c.usedBARs |= slots
	return nil
}

// BARAddress returns the address the guest programmed into BAR i and
// whether BAR i is implemented (the upper slot of a 64-bit BAR is not a
// BAR of its own). Whether decoding is on is up to Command.
func (c *ConfigSpace) BARAddress(i int) (uint64, bool) {
	if i < 0 || i > 5 || c.barSize[i] == 0 {
		return 0, false
	}
	off := uint16(OffBAR0 + 4*i)
	low := c.Get32(off)
	if low&barIO != 0 {
		return uint64(low &^ 3), true
	}
	addr := uint64(low &^ 0xF)
	if low&barMem64 != 0 {
		addr |= uint64(c.Get32(off+4)) << 32
	}
	return addr, true
}

// BARSize returns the size of BAR i, 0 if it is not implemented.
func (c *ConfigSpace) BARSize(i int) uint64 {
	if i < 0 || i > 5 {
		return 0
	}
	return c.barSize[i]
}

// Command returns the command register as the guest left it.
func (c *ConfigSpace) Command() uint16 { return c.Get16(OffCommand) }

// SetInterruptStatus sets or clears the status register's interrupt bit,
// which a device with INTx keeps in step with its interrupt line.
func (c *ConfigSpace) SetInterruptStatus(asserted bool) {
	st := c.Get16(OffStatus)
	if asserted {
		st |= StatusInterrupt
	} else {
		st &^= StatusInterrupt
	}
	c.Set16(OffStatus, st)
}

// AddCapability links a capability of the given ID and total length
// (including its 2-byte header) into the list and returns its offset; the
// caller fills the body and sets its writable bits.
func (c *ConfigSpace) AddCapability(id, length uint8) (uint8, error) {
	if length < 2 {
		return 0, fmt.Errorf("pcihost: capability %#x length %d is shorter than its header", id, length)
	}
	off := c.nextCap
	if int(off)+int(length) > ConfigSpaceSize {
		return 0, fmt.Errorf("pcihost: no room for capability %#x (%d bytes) at %#x", id, length, off)
	}
	c.Set8(uint16(off), id)
	c.Set8(uint16(off)+1, 0)
	if c.lastCap == 0 {
		c.Set8(OffCapabilities, off)
		c.Set16(OffStatus, c.Get16(OffStatus)|StatusCapabilities)
	} else {
		c.Set8(uint16(c.lastCap)+1, off)
	}
	c.lastCap = off
	// Capabilities are DWORD aligned (PCI 3.0, 6.7).
	c.nextCap = uint8((int(off) + int(length) + 3) &^ 3)
	if int(off)+int(length) > 252 {
		c.nextCap = 0xFF // full: the next AddCapability fails
	}
	return off, nil
}

// SetWritable makes the bits of mask guest-writable in the size-byte
// (1, 2 or 4) register at off, and the other bits read-only.
func (c *ConfigSpace) SetWritable(off uint16, size uint8, mask uint32) {
	c.setMask(&c.writable, off, size, mask)
}

// SetWriteOneToClear makes the bits of mask write-1-to-clear.
func (c *ConfigSpace) SetWriteOneToClear(off uint16, size uint8, mask uint32) {
	c.setMask(&c.clearOne, off, size, mask)
}

func (c *ConfigSpace) setMask(m *[ConfigSpaceSize]byte, off uint16, size uint8, mask uint32) {
	for i := 0; i < int(size) && i < 4 && int(off)+i < ConfigSpaceSize; i++ {
		m[int(off)+i] = uint8(mask >> (8 * i))
	}
}

// Set8, Set16 and Set32 store device-side values, ignoring write masks.
// Offsets past the space are ignored.
func (c *ConfigSpace) Set8(off uint16, v uint8)   { c.set(off, 1, uint32(v)) }
func (c *ConfigSpace) Set16(off uint16, v uint16) { c.set(off, 2, uint32(v)) }
func (c *ConfigSpace) Set32(off uint16, v uint32) { c.set(off, 4, v) }

// Get8, Get16 and Get32 read the space as the guest would.
func (c *ConfigSpace) Get8(off uint16) uint8   { return uint8(c.get(off, 1)) }
func (c *ConfigSpace) Get16(off uint16) uint16 { return uint16(c.get(off, 2)) }
func (c *ConfigSpace) Get32(off uint16) uint32 { return c.get(off, 4) }

// Offsets are summed as int so that an offset near 0xFFFF cannot wrap
// around to the identity registers.
func (c *ConfigSpace) set(off uint16, size uint8, v uint32) {
	for i := 0; i < int(size) && i < 4 && int(off)+i < ConfigSpaceSize; i++ {
		c.data[int(off)+i] = uint8(v >> (8 * i))
	}
}

func (c *ConfigSpace) get(off uint16, size uint8) uint32 {
	var v uint32
	for i := 0; i < int(size) && i < 4 && int(off)+i < ConfigSpaceSize; i++ {
		v |= uint32(c.data[int(off)+i]) << (8 * i)
	}
	return v
}

// ReadConfig implements Function.
func (c *ConfigSpace) ReadConfig(off uint16, size uint8) uint32 {
	return c.get(off, size)
}

// WriteConfig implements Function: writable bits take the new value,
// write-1-to-clear bits clear where v has ones, the rest stay.
func (c *ConfigSpace) WriteConfig(off uint16, size uint8, v uint32) {
	for i := 0; i < int(size) && i < 4 && int(off)+i < ConfigSpaceSize; i++ {
		o := int(off) + i
		b := uint8(v >> (8 * i))
		w := c.writable[o]
		c.data[o] = c.data[o]&^w | b&w
		c.data[o] &^= b & c.clearOne[o]
	}
}
