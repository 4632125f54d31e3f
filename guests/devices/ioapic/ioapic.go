// Package ioapic models an Intel 82093AA I/O APIC: 24 interrupt input pins,
// each with a redirection table entry that turns the pin's signal into an
// interrupt message to the local APICs.
//
// References are to the "82093AA I/O Advanced Programmable Interrupt
// Controller (IOAPIC)" datasheet (Intel order no. 290566-001, May 1996):
// 3.0 for the indirect register access through IOREGSEL (offset 0x00) and
// IOWIN (offset 0x10), 3.1 for the ID, version and arbitration registers,
// 3.2.4 for the redirection table entries. This version (0x11) has no EOI
// register: a level-triggered entry's remote IRR is cleared by the EOI
// message the local APIC broadcasts (Intel SDM Vol. 3A 11.8.5), which the
// VM passes to EOI.
//
// Input lines carry the asserted state of the interrupt as the device
// model sees it (bus.IRQ semantics); the polarity bit is kept for the
// guest to read back but does not invert anything, since no wire exists.
//
// SetIRQ and EOI deliver to the local APICs while holding the IOAPIC's
// lock, so the Delivery must not call back into this IOAPIC (the local
// APIC's EOI broadcast runs with no lock held, so an EOI that re-delivers
// a still-asserted line is fine). Nothing allocates or panics on guest
// input.
package ioapic

import (
	"sync"
	"sync/atomic"
)

// Addresses and sizes (82093AA 3.0; ACPI MADT I/O APIC structure).
const (
	DefaultBase uint64 = 0xFEC00000
	// Size is the MMIO window the VM registers: the 82093AA decodes
	// only IOREGSEL and IOWIN, the rest of the 4 KiB page reads zero.
	Size      uint64 = 0x1000
	offRegSel        = 0x00
	offWindow        = 0x10
	NumPins          = 24
)

// Register indices selected through IOREGSEL (82093AA 3.1, Table 2).
const (
	RegID          uint8 = 0x00
	RegVersion     uint8 = 0x01
	RegArbitration uint8 = 0x02
	RegRedirFirst  uint8 = 0x10 // entry n: low dword at 0x10+2n, high at 0x11+2n
)

// VersionValue is the version register: version 0x11 with the maximum
// redirection entry index (23) in bits 23:16 (82093AA 3.1.2).
const VersionValue uint32 = 0x11 | (NumPins-1)<<16

// ID register: the 4-bit IOAPIC ID in bits 27:24 (82093AA 3.1.1).
const idMask uint32 = 0x0F000000

// Redirection table entry fields (82093AA 3.2.4).
const (
	RedirVectorMask     uint64 = 0xFF
	RedirDeliveryShift         = 8
	RedirDeliveryMask   uint64 = 7 << RedirDeliveryShift
	RedirLogical        uint64 = 1 << 11
	RedirDeliveryStatus uint64 = 1 << 12 // read-only
	RedirPolarityLow    uint64 = 1 << 13
	RedirRemoteIRR      uint64 = 1 << 14 // read-only
	RedirLevel          uint64 = 1 << 15
	RedirMasked         uint64 = 1 << 16
	RedirDestShift             = 56
	RedirDestMask       uint64 = 0xFF << RedirDestShift
	redirWritable              = RedirVectorMask | RedirDeliveryMask | RedirLogical |
		RedirPolarityLow | RedirLevel | RedirMasked | RedirDestMask
)

// Delivery modes of a redirection entry (82093AA 3.2.4; the same
// encoding as the local APIC's, SDM Vol. 3A 11.6.1).
const (
	ModeFixed          uint8 = 0
	ModeLowestPriority uint8 = 1
	ModeSMI            uint8 = 2
	ModeNMI            uint8 = 4
	ModeINIT           uint8 = 5
	ModeExtINT         uint8 = 7
)

// Delivery carries interrupt messages to the local APICs; lapic.Group
// implements it. dest is the 8-bit destination field, level the trigger
// mode (so that the local APIC sets its TMR bit and broadcasts the EOI).
// It reports whether any local APIC took the message: only then is a
// level-triggered entry's remote IRR set (82093AA 3.2.4: "set when the
// local APIC(s) accept the level interrupt").
type Delivery interface {
	Deliver(dest uint32, logical bool, mode uint8, vector uint8, level bool) bool
}

// IOAPIC is one virtual 82093AA.
type IOAPIC struct {
	mu      sync.Mutex
	base    uint64
	deliver Delivery

	regSel uint8
	id     uint32 // ID register value, bits 27:24
	redir  [NumPins]uint64
	lines  uint32 // asserted input lines, one bit per pin

	// Ignored counts SetIRQ calls for pins that do not exist.
	Ignored atomic.Uint64
}

// New returns an IOAPIC whose window is at base (the MADT's I/O APIC
// address), with the given ID, delivering through d, in its reset state:
// every entry masked.
func New(base uint64, id uint8, d Delivery) *IOAPIC {
	a := &IOAPIC{base: base, deliver: d}
	a.id = uint32(id) << 24 & idMask
	a.Reset()
	return a
}

// Reset masks every redirection entry and forgets the line states; the ID
// is kept, as the VM configured it.
func (a *IOAPIC) Reset() {
	a.mu.Lock()
	a.regSel = 0
	for i := range a.redir {
		a.redir[i] = RedirMasked
	}
	a.lines = 0
	a.mu.Unlock()
}

// Redirection returns the redirection entry of pin (0 for no such pin).
func (a *IOAPIC) Redirection(pin uint32) uint64 {
	if pin >= NumPins {
		return 0
	}
	a.mu.Lock()
	e := a.redir[pin]
	a.mu.Unlock()
	return e
}

func isLevel(e uint64) bool {
	// Only fixed and lowest-priority messages may be level-triggered;
	// the datasheet requires edge for NMI, SMI, INIT and ExtINT
	// (82093AA 3.2.4), so those never wait for an EOI.
	mode := uint8((e & RedirDeliveryMask) >> RedirDeliveryShift)
	return e&RedirLevel != 0 && (mode == ModeFixed || mode == ModeLowestPriority)
}

// deliverLocked sends pin's interrupt message if the entry allows it, and
// marks a level-triggered one in service until its EOI.
func (a *IOAPIC) deliverLocked(pin int) {
	e := a.redir[pin]
	if e&RedirMasked != 0 || e&RedirRemoteIRR != 0 || a.deliver == nil {
		return
	}
	mode := uint8((e & RedirDeliveryMask) >> RedirDeliveryShift)
	switch mode {
	case ModeFixed, ModeLowestPriority, ModeSMI, ModeNMI, ModeINIT, ModeExtINT:
	default:
		return // 3 and 6 are reserved
	}
	level := isLevel(e)
	ok := a.deliver.Deliver(uint32(e>>RedirDestShift), e&RedirLogical != 0, mode, uint8(e&RedirVectorMask), level)
	if ok && level {
		a.redir[pin] |= RedirRemoteIRR
	}
}

// SetIRQ drives input pin to level (asserted or not), implementing
// bus.IRQ for the IOAPIC's own numbering (GSI = pin for the first
// IOAPIC). An edge-triggered entry sends one message per rising edge
// while unmasked; edges while masked are lost, as on the 82093AA. A
// level-triggered entry sends while the line is asserted, unmasked and
// its remote IRR is clear.
func (a *IOAPIC) SetIRQ(pin uint32, level bool) {
	if pin >= NumPins {
		a.Ignored.Add(1)
		return
	}
	bit := uint32(1) << pin
	a.mu.Lock()
	was := a.lines&bit != 0
	if level {
		a.lines |= bit
	} else {
		a.lines &^= bit
	}
	if level && (!was || isLevel(a.redir[pin])) {
		a.deliverLocked(int(pin))
	}
	a.mu.Unlock()
}

// EOI receives a local APIC's EOI broadcast for vector: every
// level-triggered entry with that vector in service leaves it, and one
// whose line is still asserted sends again (SDM Vol. 3A 11.8.5).
func (a *IOAPIC) EOI(vector uint8) {
	a.mu.Lock()
	for pin := range a.redir {
		e := a.redir[pin]
		if e&RedirRemoteIRR == 0 || uint8(e&RedirVectorMask) != vector {
			continue
		}
		a.redir[pin] = e &^ RedirRemoteIRR
		if a.lines&(1<<pin) != 0 && isLevel(e) {
			a.deliverLocked(pin)
		}
	}
	a.mu.Unlock()
}

func (a *IOAPIC) readRegLocked(index uint8) uint32 {
	switch {
	case index == RegID:
		return a.id
	case index == RegVersion:
		return VersionValue
	case index == RegArbitration:
		// The arbitration ID is loaded from the APIC ID (82093AA 3.1.3).
		return a.id
	case index >= RegRedirFirst && index < RegRedirFirst+2*NumPins:
		e := a.redir[(index-RegRedirFirst)/2]
		if index&1 != 0 {
			return uint32(e >> 32)
		}
		return uint32(e)
	}
	return 0
}

func (a *IOAPIC) writeRegLocked(index uint8, v uint32) {
	switch {
	case index == RegID:
		a.id = v & idMask
	case index >= RegRedirFirst && index < RegRedirFirst+2*NumPins:
		pin := int(index-RegRedirFirst) / 2
		old := a.redir[pin]
		var e uint64
		if index&1 != 0 {
			e = old&0xFFFFFFFF | uint64(v)<<32
		} else {
			e = old&^0xFFFFFFFF | uint64(v)
		}
		e = e&redirWritable | old&RedirRemoteIRR
		if !isLevel(e) {
			// An edge-triggered entry has nothing in service
			// (KVM and QEMU clear it the same way).
			e &^= RedirRemoteIRR
		}
		a.redir[pin] = e
		// Unmasking a level-triggered entry whose line is asserted
		// sends it now.
		if isLevel(e) && a.lines&(1<<pin) != 0 {
			a.deliverLocked(pin)
		}
	}
	// Version, arbitration and unimplemented registers are read-only.
}

func sizeMask(size uint8) uint64 {
	switch size {
	case 1:
		return 0xFF
	case 2:
		return 0xFFFF
	case 4:
		return 0xFFFF_FFFF
	}
	return ^uint64(0)
}

// ReadMMIO implements bus.MMIODevice. IOREGSEL and IOWIN are 32-bit
// registers; narrower reads see their bytes; everything else reads 0.
func (a *IOAPIC) ReadMMIO(addr uint64, size uint8) uint64 {
	off := addr - a.base
	var v uint64
	a.mu.Lock()
	switch {
	case off < offRegSel+4:
		v = uint64(a.regSel) >> (8 * off)
	case off >= offWindow && off < offWindow+4:
		v = uint64(a.readRegLocked(a.regSel)) >> (8 * (off - offWindow))
	}
	a.mu.Unlock()
	return v & sizeMask(size)
}

// WriteMMIO implements bus.MMIODevice. A store at IOREGSEL selects a
// register (bits 7:0); a store into IOWIN updates the bytes it covers of
// the selected register.
func (a *IOAPIC) WriteMMIO(addr uint64, size uint8, v uint64) {
	off := addr - a.base
	a.mu.Lock()
	switch {
	case off == offRegSel:
		a.regSel = uint8(v)
	case off >= offWindow && off < offWindow+4:
		shift := 8 * (off - offWindow)
		mask := sizeMask(size) << shift & 0xFFFFFFFF
		cur := uint64(a.readRegLocked(a.regSel))
		a.writeRegLocked(a.regSel, uint32(cur&^mask|v<<shift&mask))
	}
	a.mu.Unlock()
}
