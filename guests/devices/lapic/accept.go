package lapic

import "math/bits"

// vectorSet is a 256-bit register as IRR, ISR and TMR are: bit v of the
// set is bit v%32 of the 32-bit register at offset base + 0x10*(v/32)
// (SDM Vol. 3A 11.8.4, Figure 11-20).
type vectorSet [8]uint32

func (s *vectorSet) set(v uint8)      { s[v>>5] |= 1 << (v & 31) }
func (s *vectorSet) clear(v uint8)    { s[v>>5] &^= 1 << (v & 31) }
func (s *vectorSet) has(v uint8) bool { return s[v>>5]&(1<<(v&31)) != 0 }

// highest returns the highest vector in the set: the one with the highest
// priority, since priority is the vector number (SDM 11.8.3).
func (s *vectorSet) highest() (uint8, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if w := s[i]; w != 0 {
			return uint8(i*32 + 31 - bits.LeadingZeros32(w)), true
		}
	}
	return 0, false
}

// firstLegalVector is the lowest vector a fixed interrupt may use: 0-15
// are reserved for exceptions and an APIC refuses them (SDM 11.5.2).
const firstLegalVector = 16

// DeliveryMode is the delivery mode field of ICR, LVT, IOAPIC redirection
// entries and MSIs (SDM Vol. 3A 11.6.1 Figure 11-12; 82093AA 3.2.4).
type DeliveryMode uint8

const (
	DeliveryFixed          DeliveryMode = 0
	DeliveryLowestPriority DeliveryMode = 1
	DeliverySMI            DeliveryMode = 2
	DeliveryNMI            DeliveryMode = 4
	DeliveryINIT           DeliveryMode = 5
	DeliveryStartUp        DeliveryMode = 6
	DeliveryExtINT         DeliveryMode = 7
)

// pprLocked computes the processor priority (SDM Vol. 3A 11.8.3.1): the
// TPR when its class (bits 7:4) is at least that of the highest in-service
// vector, else that vector's class with sub-class 0.
func (l *LAPIC) pprLocked() uint32 {
	isrv, _ := l.isr.highest()
	if l.tpr>>4 >= uint32(isrv)>>4 {
		return l.tpr & 0xFF
	}
	return uint32(isrv) & 0xF0
}

// acceptLocked puts a fixed interrupt in the IRR and records its trigger
// mode in the TMR (SDM 11.8.4). An APIC that is globally or software
// disabled refuses fixed interrupts (SDM 11.4.7.2); an illegal vector is
// refused and reported in the ESR (SDM 11.5.3).
func (l *LAPIC) acceptLocked(vector uint8, level bool) bool {
	if !l.hwEnabled() {
		return false
	}
	if vector < firstLegalVector {
		l.errorLocked(ESRReceiveIllegalVector)
		return false
	}
	if !l.swEnabled() {
		return false
	}
	l.irr.set(vector)
	if level {
		l.tmr.set(vector)
	} else {
		l.tmr.clear(vector)
	}
	return true
}

// errorLocked records an APIC error and raises the LVT error interrupt
// when it is unmasked (SDM 11.5.3). An illegal vector in the error LVT
// itself is recorded but raises nothing, so errors cannot recurse.
func (l *LAPIC) errorLocked(bit uint32) {
	l.esrPending |= bit
	e := l.lvt[lvtError]
	if e&LVTMasked != 0 || !l.swEnabled() {
		return
	}
	v := uint8(e & LVTVectorMask)
	if v < firstLegalVector {
		l.esrPending |= ESRReceiveIllegalVector
		return
	}
	l.irr.set(v)
	l.tmr.clear(v)
}

// Accept offers a fixed interrupt to the APIC, as the IOAPIC, an MSI or
// another vCPU's IPI delivers it; level is its trigger mode. It reports
// whether the APIC took it into the IRR. The caller kicks the vCPU.
func (l *LAPIC) Accept(vector uint8, level bool) bool {
	l.mu.Lock()
	ok := l.acceptLocked(vector, level)
	l.mu.Unlock()
	return ok
}

// pendingLocked returns the highest IRR vector whose priority class is
// above the processor priority's class (SDM 11.8.3.1): the one the APIC
// would present to the CPU now.
func (l *LAPIC) pendingLocked() (uint8, bool) {
	if !l.hwEnabled() {
		return 0, false
	}
	v, ok := l.irr.highest()
	if !ok || uint32(v)>>4 <= l.pprLocked()>>4 {
		return 0, false
	}
	return v, true
}

// PendingVector returns the vector the APIC would deliver to the vCPU now,
// if any.
func (l *LAPIC) PendingVector() (uint8, bool) {
	l.mu.Lock()
	v, ok := l.pendingLocked()
	l.mu.Unlock()
	return v, ok
}

// Ack moves vector from the IRR to the ISR, as the CPU's interrupt
// acknowledge does (SDM 11.8.4): the injector calls it when it injects
// the vector. It reports false, changing nothing, when vector was not
// requested.
func (l *LAPIC) Ack(vector uint8) bool {
	l.mu.Lock()
	ok := l.irr.has(vector)
	if ok {
		l.irr.clear(vector)
		l.isr.set(vector)
	}
	l.mu.Unlock()
	return ok
}

// AckPending acknowledges the vector PendingVector would return, in one
// step, so that an interrupt arriving from another vCPU in between cannot
// change which vector is taken.
func (l *LAPIC) AckPending() (uint8, bool) {
	l.mu.Lock()
	v, ok := l.pendingLocked()
	if ok {
		l.irr.clear(v)
		l.isr.set(v)
	}
	l.mu.Unlock()
	return v, ok
}

// eoiLocked retires the highest in-service vector (SDM 11.8.5) and
// returns it when it was level-triggered, for the EOI broadcast to the
// IOAPIC that the caller makes once the lock is released.
func (l *LAPIC) eoiLocked() (uint8, bool) {
	v, ok := l.isr.highest()
	if !ok {
		return 0, false
	}
	l.isr.clear(v)
	return v, l.tmr.has(v)
}

func (l *LAPIC) broadcastEOI(vector uint8) {
	if l.eoiBroadcast != nil {
		l.eoiBroadcast(vector)
	}
}

// EOI performs the guest's write to the EOI register.
func (l *LAPIC) EOI() {
	l.mu.Lock()
	v, level := l.eoiLocked()
	l.mu.Unlock()
	if level {
		l.broadcastEOI(v)
	}
}

// DeliverNMI makes an NMI pending, as an NMI IPI, an IOAPIC entry in NMI
// mode or LINT1 in NMI mode do. NMIs reach a software-disabled APIC too
// (SDM 11.4.7.2), but not a globally disabled one.
func (l *LAPIC) DeliverNMI() bool {
	l.mu.Lock()
	ok := l.hwEnabled()
	if ok {
		l.nmiPending = true
	}
	l.mu.Unlock()
	return ok
}

// NMIPending reports whether an NMI waits for injection.
func (l *LAPIC) NMIPending() bool {
	l.mu.Lock()
	p := l.nmiPending
	l.mu.Unlock()
	return p
}

// TakeNMI consumes a pending NMI: the injector calls it when it injects
// one. Several NMIs arriving before the injection are one NMI, as on
// hardware.
func (l *LAPIC) TakeNMI() bool {
	l.mu.Lock()
	p := l.nmiPending
	l.nmiPending = false
	l.mu.Unlock()
	return p
}

// DeliverExtINT records an interrupt in ExtINT mode (from the IOAPIC or
// LINT0): the vector comes from the 8259 PIC, which the injector asks.
func (l *LAPIC) DeliverExtINT() bool {
	l.mu.Lock()
	ok := l.hwEnabled()
	if ok {
		l.extINTPending = true
	}
	l.mu.Unlock()
	return ok
}

// PICRouted reports whether the 8259 PIC's INTR output reaches this vCPU
// now: when the APIC is globally disabled its LINT0 pin is INTR itself
// (SDM 11.4.3); otherwise when LVT LINT0 is unmasked in ExtINT mode (the
// virtual wire, SDM 11.5.1) or an ExtINT delivery is outstanding.
func (l *LAPIC) PICRouted() bool {
	l.mu.Lock()
	r := !l.hwEnabled() || l.extINTPending ||
		l.lvt[lvtLINT0]&(LVTMasked|LVTDeliveryMask) == uint32(DeliveryExtINT)<<LVTDeliveryShift
	l.mu.Unlock()
	return r
}

// ClearExtINT ends an outstanding ExtINT delivery once the injector has
// taken the PIC's vector.
func (l *LAPIC) ClearExtINT() {
	l.mu.Lock()
	l.extINTPending = false
	l.mu.Unlock()
}

// RaiseLINT signals an edge on local interrupt pin 0 or 1 and delivers it
// as the pin's LVT entry says (SDM 11.5.1): fixed, NMI or ExtINT; masked
// or other modes do nothing. With the APIC globally disabled, LINT1 is
// the processor's NMI pin and LINT0 its INTR pin (SDM 11.4.3).
func (l *LAPIC) RaiseLINT(pin int) bool {
	if pin != 0 && pin != 1 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.hwEnabled() {
		if pin == 1 {
			l.nmiPending = true
			return true
		}
		return false // INTR: the PIC path (PICRouted) carries it
	}
	e := l.lvt[lvtLINT0+pin]
	if e&LVTMasked != 0 {
		return false
	}
	switch DeliveryMode((e & LVTDeliveryMask) >> LVTDeliveryShift) {
	case DeliveryFixed:
		return l.acceptLocked(uint8(e&LVTVectorMask), e&LVTTriggerLevel != 0)
	case DeliveryNMI:
		l.nmiPending = true
		return true
	case DeliveryExtINT:
		l.extINTPending = true
		return true
	}
	return false
}

// DeliverINIT makes an INIT pending (SDM 11.6.1; 8.4.4 for the MP start-up
// sequence). It cancels a SIPI not yet taken.
func (l *LAPIC) DeliverINIT() bool {
	l.mu.Lock()
	ok := l.hwEnabled()
	if ok {
		l.initPending = true
		l.sipiPending = false
	}
	l.mu.Unlock()
	return ok
}

// DeliverSIPI delivers a start-up IPI. It counts only while the vCPU waits
// for one (after INIT); otherwise it is ignored, as the second SIPI of the
// INIT-SIPI-SIPI sequence is when the first one started the AP (SDM 8.4.4.1).
// The BSP never waits for one (see TakeInitSIPI).
func (l *LAPIC) DeliverSIPI(vector uint8) bool {
	l.mu.Lock()
	ok := l.hwEnabled() && (l.waitForSIPI || l.initPending && !l.bsp) && !l.sipiPending
	if ok {
		l.sipiPending = true
		l.sipiVector = vector
	}
	l.mu.Unlock()
	return ok
}

// TakeInitSIPI hands the vCPU run loop its start-up events, one per call,
// INIT before SIPI; the loop calls it until ok is false:
//
//   - init true: an INIT arrived. The local APIC has already done its INIT
//     reset (SDM 11.4.7.3: all registers but the ID and IA32_APIC_BASE
//     back to their reset values, pending NMIs dropped); the run loop
//     resets the vCPU's architectural state (SDM 9.1.1 Table 9-1). An AP
//     then waits for a SIPI; the BSP does not: after INIT "each logical
//     processor examines its BSP flag" and the BSP runs the firmware at
//     the reset vector (SDM 9.1), so for the BSP the INIT is a
//     platform reset.
//   - init false: a SIPI with sipiVector arrived while waiting; the vCPU
//     starts in real mode at CS = sipiVector<<8, IP = 0 (SDM 8.4.4.1).
//
// The BSP starts running; the APs start waiting for INIT and SIPI.
func (l *LAPIC) TakeInitSIPI() (init bool, sipiVector uint8, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.initPending:
		l.initPending = false
		l.resetRegistersLocked()
		l.nmiPending, l.extINTPending = false, false
		l.waitForSIPI = !l.bsp
		return true, 0, true
	case l.sipiPending:
		l.sipiPending = false
		l.waitForSIPI = false
		return false, l.sipiVector, true
	}
	return false, 0, false
}

// WaitingForSIPI reports whether the vCPU is stopped until a SIPI.
func (l *LAPIC) WaitingForSIPI() bool {
	l.mu.Lock()
	w := l.waitForSIPI
	l.mu.Unlock()
	return w
}

// StartupPending reports an INIT or SIPI that TakeInitSIPI has not yet
// taken: the run loop's test for ending a halt, and for not entering the
// guest with an INIT outstanding.
func (l *LAPIC) StartupPending() bool {
	l.mu.Lock()
	p := l.initPending || l.sipiPending
	l.mu.Unlock()
	return p
}

// Deliver hands the APIC one interrupt message from the IOAPIC, an MSI or
// an IPI, whose destination selected this APIC: fixed and lowest-priority
// go to the IRR with their trigger mode, NMI, INIT, start-up and ExtINT to
// their own paths; SMI is not modelled and dropped. It reports whether the
// APIC took the message.
func (l *LAPIC) Deliver(mode DeliveryMode, vector uint8, level bool) bool {
	switch mode {
	case DeliveryFixed, DeliveryLowestPriority:
		return l.Accept(vector, level)
	case DeliveryNMI:
		return l.DeliverNMI()
	case DeliveryINIT:
		return l.DeliverINIT()
	case DeliveryStartUp:
		return l.DeliverSIPI(vector)
	case DeliveryExtINT:
		return l.DeliverExtINT()
	}
	return false
}
