package vtd

import "fmt"

// Interrupt remapping table entry for remapped interrupts (VT-d spec 9.10,
// IRTE with IM = 0), 128 bits. Low quadword:
const (
	irtePresent    = 1 << 0  // P
	irteFPD        = 1 << 1  // fault processing disable
	irteDM         = 1 << 2  // destination mode: 1 = logical
	irteRH         = 1 << 3  // redirection hint
	irteTM         = 1 << 4  // trigger mode: 1 = level
	irteDLMShift   = 5       // 7:5 delivery mode
	irteDLMMask    = 7       //
	irteIM         = 1 << 15 // IRTE mode: 1 = posted (not used here)
	irteVShift     = 16      // 23:16 vector
	irteDstShift   = 32      // 63:32 destination
	irteXAPICShift = 40      // xAPIC mode: the APIC ID in bits 47:40
	// Reserved in remapped format: 14:12 and 31:24; with xAPIC
	// destinations also 39:32 and 63:48. Bits 11:8 are available to
	// software.
	irteReservedLo    = 0x7<<12 | 0xff<<24
	irteReservedXAPIC = 0xff<<32 | 0xffff<<48
	// High quadword: 15:0 SID, 17:16 SQ, 19:18 SVT, 63:20 reserved.
	irteSQShift     = 16
	irteSVTShift    = 18
	irteReservedHi  = ^uint64(0xfffff)
	svtReserved     = 3
	dlmReserved3    = 3 // delivery modes 011b and 110b are reserved
	dlmReserved6    = 6
	maxXAPICDest    = 0xff
	sourceQualifier = 3
)

// InterruptEntry is one interrupt remapping table entry in remapped
// format (VT-d spec 9.10).
type InterruptEntry struct {
	Present      bool
	FaultDisable bool  // FPD: faults for this entry are not recorded
	Logical      bool  // DM: logical destination mode
	Redirection  bool  // RH: redirection hint (lowest priority among the destinations)
	Level        bool  // TM: level-triggered
	DeliveryMode uint8 // DLM: 000b fixed, 001b lowest priority, 010b SMI, 100b NMI, 101b INIT, 111b ExtINT
	Vector       uint8
	// Destination is the APIC ID (physical) or logical destination: 8
	// bits with xAPIC destinations (IRTA_REG.EIME = 0), 32 with x2APIC.
	Destination uint32
	// Source-id verification (SVT): 0 none, 1 the requester must match
	// SourceID under the SQ mask, 2 the requester's bus must lie in the
	// range SourceID gives (bits 15:8 first, 7:0 last bus).
	SourceValidation uint8
	SourceQualifier  uint8 // SQ: which SID bits to ignore (function bits)
	SourceID         uint16
}

// Encode lays the entry out; x2APIC selects 32-bit destinations.
func (e InterruptEntry) Encode(x2APIC bool) (lo, hi uint64, err error) {
	switch {
	case e.DeliveryMode > irteDLMMask || e.DeliveryMode == dlmReserved3 || e.DeliveryMode == dlmReserved6:
		return 0, 0, fmt.Errorf("vtd: interrupt entry delivery mode %#b is reserved", e.DeliveryMode)
	case e.SourceValidation >= svtReserved:
		return 0, 0, fmt.Errorf("vtd: interrupt entry source validation type %d is reserved", e.SourceValidation)
	case e.SourceQualifier > sourceQualifier:
		return 0, 0, fmt.Errorf("vtd: interrupt entry source qualifier %d is beyond 2 bits", e.SourceQualifier)
	case !x2APIC && e.Destination > maxXAPICDest:
		return 0, 0, fmt.Errorf("vtd: interrupt destination %#x needs x2APIC (extended interrupt mode)", e.Destination)
	}
	lo = uint64(e.DeliveryMode)<<irteDLMShift | uint64(e.Vector)<<irteVShift
	if x2APIC {
		lo |= uint64(e.Destination) << irteDstShift
	} else {
		lo |= uint64(e.Destination) << irteXAPICShift
	}
	for _, b := range [...]struct {
		on  bool
		bit uint64
	}{{e.Present, irtePresent}, {e.FaultDisable, irteFPD}, {e.Logical, irteDM}, {e.Redirection, irteRH}, {e.Level, irteTM}} {
		if b.on {
			lo |= b.bit
		}
	}
	hi = uint64(e.SourceID) | uint64(e.SourceQualifier)<<irteSQShift | uint64(e.SourceValidation)<<irteSVTShift
	return lo, hi, nil
}

// DecodeInterruptEntry reads an entry back; it reports reserved bits set,
// which make a present entry fault (reason 24h).
func DecodeInterruptEntry(lo, hi uint64, x2APIC bool) (InterruptEntry, error) {
	e := InterruptEntry{
		Present:          lo&irtePresent != 0,
		FaultDisable:     lo&irteFPD != 0,
		Logical:          lo&irteDM != 0,
		Redirection:      lo&irteRH != 0,
		Level:            lo&irteTM != 0,
		DeliveryMode:     uint8(lo>>irteDLMShift) & irteDLMMask,
		Vector:           uint8(lo >> irteVShift),
		SourceID:         uint16(hi),
		SourceQualifier:  uint8(hi>>irteSQShift) & 3,
		SourceValidation: uint8(hi>>irteSVTShift) & 3,
	}
	reserved := lo&(irteReservedLo|irteIM) != 0 || hi&irteReservedHi != 0
	if x2APIC {
		e.Destination = uint32(lo >> irteDstShift)
	} else {
		e.Destination = uint32(lo>>irteXAPICShift) & maxXAPICDest
		reserved = reserved || lo&irteReservedXAPIC != 0
	}
	if reserved {
		return e, fmt.Errorf("vtd: interrupt entry %#x %#x has reserved bits set", lo, hi)
	}
	return e, nil
}

// enableInterruptRemapping installs an empty remapping table (every entry
// not present) with xAPIC destinations, lets compatibility-format
// interrupts through (CFI, set before IRE so that none is blocked in
// between) and turns remapping on (5.1, GCMD_REG).
func (u *Unit) enableInterruptRemapping() error {
	u.clearPage(u.irt)
	u.w64(regIRTA, u.irt|irtSizeField<<irtaSizeShift) // EIME = 0
	if err := u.oneShot(gSIRTP, true, "setting the interrupt remapping table pointer"); err != nil {
		return err
	}
	// The interrupt entry cache may hold entries of a previous table.
	if err := u.invalidateInterruptEntry(-1); err != nil {
		return err
	}
	if err := u.sync(); err != nil {
		return err
	}
	if err := u.setCommand(gCFI, true, "passing compatibility-format interrupts"); err != nil {
		return err
	}
	if err := u.setCommand(gIRE, true, "enabling interrupt remapping"); err != nil {
		return err
	}
	u.irOn = true
	return nil
}

// SetInterruptEntry writes entry index of the remapping table and
// invalidates the unit's cached copy. Interrupt remapping must be on.
func (u *Unit) SetInterruptEntry(index int, e InterruptEntry) error {
	if !u.irOn {
		return fmt.Errorf("%s: interrupt remapping is off", u.name)
	}
	if index < 0 || index >= irtEntries {
		return fmt.Errorf("%s: interrupt index %d is outside the %d-entry table", u.name, index, irtEntries)
	}
	lo, hi, err := e.Encode(false)
	if err != nil {
		return err
	}
	slot := u.irt + uint64(index)*irteSize
	// The unit may read the entry at any time: P goes last when it comes
	// on, first when it goes off.
	if e.Present {
		u.mem.Write64(slot, u.mem.Read64(slot)&^irtePresent)
		u.mem.Write64(slot+8, hi)
		u.mem.Write64(slot, lo)
	} else {
		u.mem.Write64(slot, lo)
		u.mem.Write64(slot+8, hi)
	}
	u.flushed(slot, irteSize)
	if err := u.invalidateInterruptEntry(index); err != nil {
		return err
	}
	return u.sync()
}
