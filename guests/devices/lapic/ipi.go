package lapic

// Shorthand is the ICR destination shorthand, bits 19:18 (SDM Vol. 3A
// 11.6.1, Figure 11-12).
type Shorthand uint8

const (
	ShorthandNone        Shorthand = 0 // the destination field selects
	ShorthandSelf        Shorthand = 1
	ShorthandAll         Shorthand = 2 // all including self
	ShorthandAllButSelf  Shorthand = 3
	xapicBroadcast       uint32    = 0xFF
	x2apicBroadcast      uint32    = 0xFFFFFFFF
	dfrFlat              uint32    = 0xF // DFR model, bits 31:28 (SDM 11.6.2.2)
	icrVectorMask        uint32    = 0xFF
	icrDeliveryShift               = 8
	icrLogical           uint32    = 1 << 11
	icrDeliveryStatus    uint32    = 1 << 12 // xAPIC only, always idle here
	icrAssert            uint32    = 1 << 14
	icrTriggerLevel      uint32    = 1 << 15
	icrShorthandShift              = 18
	icrLowWritable       uint32    = icrVectorMask | 7<<icrDeliveryShift | icrLogical | icrAssert | icrTriggerLevel | 3<<icrShorthandShift
	icrHighXAPICWritable uint32    = 0xFF << 24
)

// IPI is an interprocessor interrupt as a local APIC's ICR sends it.
type IPI struct {
	Vector    uint8
	Mode      DeliveryMode
	Logical   bool // destination mode
	Level     bool // trigger mode: level (only INIT level de-assert uses it, and is never sent)
	Shorthand Shorthand
	// Dest is the destination field: 8 bits from an xAPIC ICR, 32 bits
	// from an x2APIC ICR (Wide set).
	Dest uint32
	Wide bool
}

// IPISink carries IPIs from a sending APIC to their targets; *Group is the
// VM's implementation. src is the sender's initial APIC ID.
type IPISink interface {
	SendIPI(src uint32, ipi IPI)
}

// Matches reports whether this APIC is a target of an interrupt message
// addressed to dest in physical or logical destination mode (SDM Vol. 3A
// 11.6.2). wide says dest is a 32-bit x2APIC destination (from an x2APIC
// ICR); otherwise it is 8 bits wide, as in an xAPIC ICR, an IOAPIC
// redirection entry or an MSI address.
//
//   - xAPIC physical: the 8-bit APIC ID, 0xFF broadcast.
//   - xAPIC logical, flat model (DFR 0xF): LDR[31:24] & dest != 0;
//     cluster model (DFR 0x0): cluster dest[7:4] == LDR[31:28] and
//     dest[3:0] & LDR[27:24] != 0; 0xFF broadcast in both.
//   - x2APIC physical: the 32-bit ID, 0xFFFFFFFF broadcast.
//   - x2APIC logical (SDM 11.12.10.2): cluster dest[31:16] == LDR[31:16]
//     and dest[15:0] & LDR[15:0] != 0, 0xFFFFFFFF broadcast.
//
// An 8-bit destination reaching an APIC in x2APIC mode (an IOAPIC or MSI
// without interrupt remapping) matches the x2APIC ID in physical mode and
// only the 0xFF broadcast in logical mode: Linux runs x2APIC without
// interrupt remapping only in physical mode with IDs below 256.
func (l *LAPIC) Matches(dest uint32, logical, wide bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.matchesLocked(dest, logical, wide)
}

func (l *LAPIC) matchesLocked(dest uint32, logical, wide bool) bool {
	switch l.mode {
	case ModeXAPIC:
		if wide {
			return dest == x2apicBroadcast || (!logical && dest == uint32(l.xapicID))
		}
		dest &= 0xFF
		if dest == xapicBroadcast {
			return true
		}
		if !logical {
			return dest == uint32(l.xapicID)
		}
		ldr := l.ldr >> 24
		if l.dfr>>28 == dfrFlat {
			return ldr&dest != 0
		}
		return ldr>>4 == dest>>4 && ldr&dest&0xF != 0
	case ModeX2APIC:
		if !wide {
			dest &= 0xFF
			if dest == xapicBroadcast {
				return true
			}
			return !logical && dest == l.initialID
		}
		if dest == x2apicBroadcast {
			return true
		}
		if !logical {
			return dest == l.initialID
		}
		return dest>>16 == l.ldr>>16 && dest&l.ldr&0xFFFF != 0
	}
	return false // globally disabled: the APIC takes no messages
}

// IsTarget reports whether an IPI sent by the APIC with initial ID src
// reaches this one, shorthand included.
func (l *LAPIC) IsTarget(src uint32, ipi IPI) bool {
	switch ipi.Shorthand {
	case ShorthandSelf:
		return src == l.initialID
	case ShorthandAll:
		return true
	case ShorthandAllButSelf:
		return src != l.initialID
	}
	return l.Matches(ipi.Dest, ipi.Logical, ipi.Wide)
}

// icrLocked decodes an ICR write into the IPI to send (SDM Vol. 3A 11.6.1).
// A self-directed fixed IPI is accepted here, under the lock, and needs no
// sending. Not sent: INIT level de-assert (a no-op on processors since the
// Pentium 4, SDM 11.6.1), SMI, the reserved mode 3, ExtINT, and fixed or
// lowest-priority IPIs with an illegal vector, which set "send illegal
// vector" in the ESR (SDM 11.5.3).
func (l *LAPIC) icrLocked(low uint32, dest uint32, wide bool) (IPI, bool) {
	ipi := IPI{
		Vector:    uint8(low & icrVectorMask),
		Mode:      DeliveryMode(low >> icrDeliveryShift & 7),
		Logical:   low&icrLogical != 0,
		Level:     low&icrTriggerLevel != 0,
		Shorthand: Shorthand(low >> icrShorthandShift & 3),
		Dest:      dest,
		Wide:      wide,
	}
	switch ipi.Mode {
	case DeliveryFixed, DeliveryLowestPriority:
		if ipi.Vector < firstLegalVector {
			l.errorLocked(ESRSendIllegalVector)
			return IPI{}, false
		}
	case DeliveryNMI, DeliveryStartUp:
	case DeliveryINIT:
		if ipi.Level && low&icrAssert == 0 {
			return IPI{}, false
		}
	default:
		return IPI{}, false
	}
	if ipi.Shorthand == ShorthandSelf {
		// Only fixed IPIs may be sent to self (SDM 11.6.1, Table 11-4).
		if ipi.Mode == DeliveryFixed {
			l.acceptLocked(ipi.Vector, false)
		}
		return IPI{}, false
	}
	return ipi, true
}

func (l *LAPIC) sendIPI(ipi IPI) {
	if l.ipiSink != nil {
		l.ipiSink.SendIPI(l.initialID, ipi)
	}
}

// Group is the set of local APICs of one VM: it routes IPIs between them
// (IPISink) and interrupt messages from the IOAPIC and MSIs to them
// (the ioapic package's Delivery interface).
type Group struct {
	APICs []*LAPIC
	// Kick, when set, is called with the index in APICs of every APIC
	// that took a message, so the VM can wake or interrupt that vCPU.
	Kick func(index int)
}

func (g *Group) kick(i int) {
	if g.Kick != nil {
		g.Kick(i)
	}
}

// SendIPI delivers ipi to every targeted APIC. Lowest-priority delivery
// goes to the first target that takes it only: with no priority
// arbitration to model, any single target is correct (SDM 11.6.2.4 leaves
// the choice to the hardware).
func (g *Group) SendIPI(src uint32, ipi IPI) {
	for i, l := range g.APICs {
		if !l.IsTarget(src, ipi) {
			continue
		}
		if l.Deliver(ipi.Mode, ipi.Vector, false) {
			g.kick(i)
			if ipi.Mode == DeliveryLowestPriority {
				return
			}
		}
	}
}

// Deliver routes an interrupt message with an 8-bit destination (IOAPIC
// redirection entry or MSI) to the APICs it selects, and reports whether
// any took it. mode is a DeliveryMode; level the trigger mode.
func (g *Group) Deliver(dest uint32, logical bool, mode uint8, vector uint8, level bool) bool {
	taken := false
	for i, l := range g.APICs {
		if !l.Matches(dest, logical, false) {
			continue
		}
		if l.Deliver(DeliveryMode(mode), vector, level) {
			taken = true
			g.kick(i)
			if DeliveryMode(mode) == DeliveryLowestPriority {
				break
			}
		}
	}
	return taken
}
