// Package ioapic drives an I/O APIC of the Intel 82093AA kind, the
// interrupt router between device lines (global system interrupts, GSIs) and
// the processors' local APICs.
//
// The register interface is indirect: a 32-bit write of a register index to
// IOREGSEL (base+0x00) selects the register, which is then read or written
// through IOWIN (base+0x10). Registers and the redirection-table entry layout
// follow the 82093AA datasheet (Intel, order number 290566), 3.0 "Register
// Description", 3.2.4 "I/O Redirection Table Registers". The MMIO base and
// GSI base of each IOAPIC come from the ACPI MADT (ACPI 6.5, 5.2.12.3 "I/O
// APIC Structure").
//
// The entry format here is the compatibility format. With VT-d or AMD-Vi
// interrupt remapping enabled an entry is in remappable format instead (VT-d
// spec 5.1.5.1); that is the IOMMU driver's business.
//
// IOREGSEL/IOWIN is one shared cursor, so every access pair is made under the
// IOAPIC's lock.
package ioapic

import (
	"errors"
	"fmt"
	"sync"

	"tamavisor/drivers/hw"
)

// MMIO register offsets (82093AA datasheet, Table 1 "Memory Mapped
// Registers").
const (
	IOREGSEL uint64 = 0x00
	IOWIN    uint64 = 0x10
)

// Indirect register indices (82093AA datasheet, Table 2 "IOAPIC
// Registers").
const (
	RegID          uint8 = 0x00
	RegVersion     uint8 = 0x01
	RegArbitration uint8 = 0x02
	// RegRedirBase is the low dword of redirection entry 0; entry n is
	// at RegRedirBase+2n (low) and RegRedirBase+2n+1 (high).
	RegRedirBase uint8 = 0x10
)

// Version register fields (datasheet 3.2.2 "IOAPICVER").
const (
	versionMask        = 0xFF
	versionMaxRedShift = 16
)

// MaxEntries is the most redirection entries the index space can address:
// RegRedirBase + 2*n must fit in the 8-bit IOREGSEL.
const MaxEntries = (256 - int(RegRedirBase)) / 2

// DeliveryMode is a redirection entry's delivery mode (datasheet 3.2.4,
// bits 10:8).
type DeliveryMode uint8

const (
	DeliveryFixed          DeliveryMode = 0
	DeliveryLowestPriority DeliveryMode = 1
	DeliverySMI            DeliveryMode = 2
	DeliveryNMI            DeliveryMode = 4
	DeliveryINIT           DeliveryMode = 5
	DeliveryExtINT         DeliveryMode = 7
)

// Redirection entry bits (datasheet 3.2.4).
const (
	entryVectorMask    uint64 = 0xFF
	entryDeliveryShift        = 8
	entryDeliveryMask  uint64 = 7 << entryDeliveryShift
	EntryDestLogical   uint64 = 1 << 11
	EntryPending       uint64 = 1 << 12 // delivery status, read-only
	EntryActiveLow     uint64 = 1 << 13 // polarity
	EntryRemoteIRR     uint64 = 1 << 14 // read-only
	EntryLevel         uint64 = 1 << 15 // trigger mode
	EntryMasked        uint64 = 1 << 16
	entryDestShift            = 56
	// entryWritable is every bit software may set.
	entryWritable = entryVectorMask | entryDeliveryMask | EntryDestLogical |
		EntryActiveLow | EntryLevel | EntryMasked | 0xFF<<entryDestShift
)

// Entry is one decoded redirection-table entry.
type Entry struct {
	Vector       uint8
	DeliveryMode DeliveryMode
	LogicalDest  bool
	Pending      bool // read-only: an interrupt waits for delivery
	ActiveLow    bool
	RemoteIRR    bool // read-only: a level interrupt awaits its EOI
	Level        bool // level-triggered (else edge)
	Masked       bool
	// Destination is an APIC ID (physical mode) or a set of processors
	// (logical mode); 8 bits in compatibility format.
	Destination uint8
}

// Encode returns the 64-bit register value. The read-only bits are never
// set in it.
func (e Entry) Encode() uint64 {
	v := uint64(e.Vector) | uint64(e.DeliveryMode&7)<<entryDeliveryShift | uint64(e.Destination)<<entryDestShift
	if e.LogicalDest {
		v |= EntryDestLogical
	}
	if e.ActiveLow {
		v |= EntryActiveLow
	}
	if e.Level {
		v |= EntryLevel
	}
	if e.Masked {
		v |= EntryMasked
	}
	return v
}

// DecodeEntry decodes a 64-bit redirection register value.
func DecodeEntry(v uint64) Entry {
	return Entry{
		Vector:       uint8(v & entryVectorMask),
		DeliveryMode: DeliveryMode((v & entryDeliveryMask) >> entryDeliveryShift),
		LogicalDest:  v&EntryDestLogical != 0,
		Pending:      v&EntryPending != 0,
		ActiveLow:    v&EntryActiveLow != 0,
		RemoteIRR:    v&EntryRemoteIRR != 0,
		Level:        v&EntryLevel != 0,
		Masked:       v&EntryMasked != 0,
		Destination:  uint8(v >> entryDestShift),
	}
}

// Errors.
var (
	ErrAbsent     = errors.New("ioapic: no IOAPIC answers at this address (version register reads all ones)")
	ErrRange      = errors.New("ioapic: GSI not handled by this IOAPIC")
	ErrBadVector  = errors.New("ioapic: vector out of range")
	ErrBadDest    = errors.New("ioapic: destination APIC ID above 255 needs interrupt remapping")
	ErrBadDeliver = errors.New("ioapic: reserved delivery mode")
)

// IOAPIC is one I/O APIC.
type IOAPIC struct {
	mu      sync.Mutex
	mmio    hw.MMIO
	base    uint64
	gsiBase uint32
	entries int
	version uint8
}

// New returns the IOAPIC at physical address base whose first input is GSI
// gsiBase (both from its MADT entry). It reads the version register to learn
// how many inputs it has.
func New(mmio hw.MMIO, base uint64, gsiBase uint32) (*IOAPIC, error) {
	if base&0x3 != 0 {
		return nil, fmt.Errorf("ioapic: base %#x is not 32-bit aligned", base)
	}
	a := &IOAPIC{mmio: mmio, base: base, gsiBase: gsiBase}
	v := a.read(RegVersion)
	if v == 0xFFFFFFFF {
		return nil, fmt.Errorf("%w: base %#x", ErrAbsent, base)
	}
	a.version = uint8(v & versionMask)
	a.entries = int(uint8(v>>versionMaxRedShift)) + 1
	if a.entries > MaxEntries {
		return nil, fmt.Errorf("ioapic: version register %#x claims %d entries, more than the %d the index space holds", v, a.entries, MaxEntries)
	}
	if uint64(gsiBase)+uint64(a.entries) > 1<<32 {
		return nil, fmt.Errorf("ioapic: GSI base %d plus %d entries overflows", gsiBase, a.entries)
	}
	return a, nil
}

func (a *IOAPIC) read(reg uint8) uint32 {
	a.mmio.Write32(a.base+IOREGSEL, uint32(reg))
	return a.mmio.Read32(a.base + IOWIN)
}

func (a *IOAPIC) write(reg uint8, v uint32) {
	a.mmio.Write32(a.base+IOREGSEL, uint32(reg))
	a.mmio.Write32(a.base+IOWIN, v)
}

// ID returns the IOAPIC ID, bits 27:24 of IOAPICID on the 82093AA (bits
// 31:28 read as zero there; some chipsets use all of 31:24).
func (a *IOAPIC) ID() uint8 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return uint8(a.read(RegID) >> 24)
}

// Version returns the version field (0x11 on the 82093AA, 0x20 on PCHs).
func (a *IOAPIC) Version() uint8 { return a.version }

// MaxRedirectionEntry returns the index of the last redirection entry.
func (a *IOAPIC) MaxRedirectionEntry() int { return a.entries - 1 }

// GSIBase returns the first GSI this IOAPIC handles.
func (a *IOAPIC) GSIBase() uint32 { return a.gsiBase }

// Handles reports whether gsi is one of this IOAPIC's inputs.
func (a *IOAPIC) Handles(gsi uint32) bool {
	return gsi >= a.gsiBase && uint64(gsi) < uint64(a.gsiBase)+uint64(a.entries)
}

func (a *IOAPIC) index(gsi uint32) (uint8, error) {
	if !a.Handles(gsi) {
		return 0, fmt.Errorf("%w: GSI %d, this IOAPIC has GSIs %d-%d", ErrRange, gsi, a.gsiBase, a.gsiBase+uint32(a.entries)-1)
	}
	return uint8(gsi - a.gsiBase), nil
}

func (a *IOAPIC) readEntry(i uint8) uint64 {
	lo := a.read(RegRedirBase + 2*i)
	hi := a.read(RegRedirBase + 2*i + 1)
	return uint64(hi)<<32 | uint64(lo)
}

// writeEntry writes an entry so that it is never live half-written: the low
// dword goes in masked first, then the high dword (destination), then the
// low dword as wanted.
func (a *IOAPIC) writeEntry(i uint8, v uint64) {
	lo := uint32(v)
	a.write(RegRedirBase+2*i, lo|uint32(EntryMasked))
	a.write(RegRedirBase+2*i+1, uint32(v>>32))
	if lo&uint32(EntryMasked) == 0 {
		a.write(RegRedirBase+2*i, lo)
	}
}

// Entry returns the redirection entry of gsi.
func (a *IOAPIC) Entry(gsi uint32) (Entry, error) {
	i, err := a.index(gsi)
	if err != nil {
		return Entry{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return DecodeEntry(a.readEntry(i)), nil
}

func checkEntry(e Entry) error {
	switch e.DeliveryMode {
	case DeliveryFixed, DeliveryLowestPriority:
		// The 82093AA accepts vectors 0x10-0xFE (datasheet 3.2.4); 0x10-0x1F
		// would alias exceptions.
		if e.Vector < 0x20 || e.Vector == 0xFF {
			return fmt.Errorf("%w: %#x (must be 0x20-0xfe)", ErrBadVector, e.Vector)
		}
	case DeliverySMI, DeliveryNMI, DeliveryINIT, DeliveryExtINT:
	default:
		return fmt.Errorf("%w: %d", ErrBadDeliver, e.DeliveryMode)
	}
	return nil
}

// SetEntry writes the redirection entry of gsi. The read-only fields of e
// are ignored.
func (a *IOAPIC) SetEntry(gsi uint32, e Entry) error {
	i, err := a.index(gsi)
	if err != nil {
		return err
	}
	if err := checkEntry(e); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.writeEntry(i, e.Encode()&entryWritable)
	return nil
}

// Route sends gsi to the processor with local APIC ID apicID as vector
// (fixed delivery, physical destination) with the given polarity and
// trigger mode, and unmasks it. ISA IRQs are active-high edge unless the
// MADT's interrupt source overrides say otherwise; PCI INTx lines are
// active-low level.
func (a *IOAPIC) Route(gsi uint32, vector uint8, apicID uint32, activeLow, levelTriggered bool) error {
	if apicID > 0xFF {
		return fmt.Errorf("%w: %#x", ErrBadDest, apicID)
	}
	return a.SetEntry(gsi, Entry{
		Vector:       vector,
		DeliveryMode: DeliveryFixed,
		ActiveLow:    activeLow,
		Level:        levelTriggered,
		Destination:  uint8(apicID),
	})
}

// SetMasked masks or unmasks gsi, leaving the rest of its entry.
func (a *IOAPIC) SetMasked(gsi uint32, masked bool) error {
	i, err := a.index(gsi)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	reg := RegRedirBase + 2*i
	lo := a.read(reg)
	if masked {
		lo |= uint32(EntryMasked)
	} else {
		lo &^= uint32(EntryMasked)
	}
	a.write(reg, lo)
	return nil
}

// MaskAll masks every input, leaving the rest of each entry as it was.
func (a *IOAPIC) MaskAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 0; i < a.entries; i++ {
		reg := RegRedirBase + 2*uint8(i)
		a.write(reg, a.read(reg)|uint32(EntryMasked))
	}
}
