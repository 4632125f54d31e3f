package lapic

// Writable bits of the LVT entries (SDM Vol. 3A 11.5.1, Figure 11-8). The
// timer's mode bits depend on whether TSC-deadline mode is offered.
const (
	lvtDeliveryWritable = LVTVectorMask | LVTDeliveryMask | LVTMasked
	lvtLINTWritable     = lvtDeliveryWritable | LVTPolarityLow | LVTTriggerLevel
	lvtErrorWritable    = LVTVectorMask | LVTMasked
	tprWritable         = 0xFF
	ldrXAPICWritable    = 0xFF000000 // logical APIC ID, bits 31:24 (SDM 11.6.2.2)
	dfrModelMask        = 0xF0000000 // bits 27:0 read as ones (SDM 11.6.2.2)
)

// effects are what a register write asks for beyond the APIC's own state:
// done by the caller after it releases the lock (see the package comment).
type effects struct {
	ipi     IPI
	sendIPI bool
	eoi     uint8
	sendEOI bool
}

func (l *LAPIC) apply(e effects) {
	if e.sendEOI {
		l.broadcastEOI(e.eoi)
	}
	if e.sendIPI {
		l.sendIPI(e.ipi)
	}
}

func (l *LAPIC) lvtWritable(i int) uint32 {
	switch i {
	case lvtTimer:
		return LVTVectorMask | LVTMasked | l.timerModeWrite
	case lvtLINT0, lvtLINT1:
		return lvtLINTWritable
	case lvtError:
		return lvtErrorWritable
	}
	return lvtDeliveryWritable
}

// lvtReadOnly are the status bits an x2APIC WRMSR may carry without #GP:
// they are not reserved, merely not writable.
func lvtReadOnly(i int) uint32 {
	if i == lvtLINT0 || i == lvtLINT1 {
		return lvtDeliveryStatus | lvtRemoteIRR
	}
	return lvtDeliveryStatus
}

func lvtIndex(off uint16) (int, bool) {
	if off < RegLVTTimer || off > RegLVTError {
		return 0, false
	}
	return int(off-RegLVTTimer) >> 4, true
}

// writeLVTLocked stores an LVT entry. While the APIC is software-disabled
// the mask bits stay set (SDM 11.4.7.2).
func (l *LAPIC) writeLVTLocked(i int, v uint32, now int64) {
	v &= l.lvtWritable(i)
	if !l.swEnabled() {
		v |= LVTMasked
	}
	if i == lvtTimer {
		l.writeLVTTimerLocked(now, v)
		return
	}
	l.lvt[i] = v
}

// writeSVRLocked stores the spurious-interrupt vector register; clearing
// the software enable masks every LVT entry (SDM 11.4.7.2).
func (l *LAPIC) writeSVRLocked(v uint32) {
	l.svr = v & svrWritable
	if !l.swEnabled() {
		for i := range l.lvt {
			l.lvt[i] |= LVTMasked
		}
	}
}

// writeESRLocked latches the errors seen since the previous write into
// the readable ESR (SDM 11.5.3: software writes the ESR before reading it).
func (l *LAPIC) writeESRLocked() {
	l.esr = l.esrPending
	l.esrPending = 0
}

// readCommonLocked reads the registers that are the same in xAPIC and
// x2APIC mode.
func (l *LAPIC) readCommonLocked(off uint16, now int64) (uint32, bool) {
	switch {
	case off == RegVersion:
		return VersionValue, true
	case off == RegTPR:
		return l.tpr, true
	case off == RegPPR:
		return l.pprLocked(), true
	case off == RegSVR:
		return l.svr, true
	case off >= RegISR && off < RegISR+0x80:
		return l.isr[(off-RegISR)>>4], true
	case off >= RegTMR && off < RegTMR+0x80:
		return l.tmr[(off-RegTMR)>>4], true
	case off >= RegIRR && off < RegIRR+0x80:
		return l.irr[(off-RegIRR)>>4], true
	case off == RegESR:
		return l.esr, true
	case off == RegTimerInitial:
		return l.timer.initial, true
	case off == RegTimerCurrent:
		l.tickLocked(now)
		return l.currentCountLocked(now), true
	case off == RegTimerDivide:
		return l.timer.divide, true
	}
	if i, ok := lvtIndex(off); ok {
		return l.lvt[i], true
	}
	return 0, false
}

// readXAPICLocked reads the 32-bit register at offset off of the page.
func (l *LAPIC) readXAPICLocked(off uint16, now int64) uint32 {
	switch off {
	case RegID:
		return uint32(l.xapicID) << 24
	case RegLDR:
		return l.ldr
	case RegDFR:
		return l.dfr
	case RegICRLow:
		return l.icrLow // delivery status bit 12 always reads idle
	case RegICRHigh:
		return l.icrHigh
	case RegAPR, RegRRD, RegEOI:
		return 0
	}
	if v, ok := l.readCommonLocked(off, now); ok {
		return v
	}
	l.errorLocked(ESRIllegalRegister)
	return 0
}

// writeXAPICLocked writes the 32-bit register at offset off of the page.
// Writes to read-only registers are dropped; to unimplemented offsets
// they set "illegal register address" in the ESR (SDM 11.5.3).
func (l *LAPIC) writeXAPICLocked(off uint16, v uint32, now int64) (e effects) {
	switch off {
	case RegID:
		l.xapicID = uint8(v >> 24)
	case RegTPR:
		l.tpr = v & tprWritable
	case RegEOI:
		e.eoi, e.sendEOI = l.eoiLocked()
	case RegLDR:
		l.ldr = v & ldrXAPICWritable
	case RegDFR:
		l.dfr = v | ^uint32(dfrModelMask)
	case RegSVR:
		l.writeSVRLocked(v)
	case RegESR:
		l.writeESRLocked()
	case RegICRLow:
		l.icrLow = v & icrLowWritable
		e.ipi, e.sendIPI = l.icrLocked(l.icrLow, l.icrHigh>>24, false)
	case RegICRHigh:
		l.icrHigh = v & icrHighXAPICWritable
	case RegTimerInitial:
		l.writeInitialCountLocked(now, v)
	case RegTimerDivide:
		l.writeDivideLocked(now, v)
	case RegVersion, RegAPR, RegPPR, RegRRD, RegTimerCurrent:
	default:
		if i, ok := lvtIndex(off); ok {
			l.writeLVTLocked(i, v, now)
		} else if !(off >= RegISR && off < RegIRR+0x80) {
			l.errorLocked(ESRIllegalRegister)
		}
	}
	return e
}

func allOnes(size uint8) uint64 {
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

// ReadMMIO implements bus.MMIODevice for the xAPIC page. Registers are
// 32 bits wide on 16-byte boundaries (SDM 11.4.1); narrower reads see
// their bytes, bytes 4-15 of each slot read as zero. Outside xAPIC mode
// or the page, the access is not decoded and reads all ones.
func (l *LAPIC) ReadMMIO(addr uint64, size uint8) uint64 {
	now := l.clock.Now()
	l.mu.Lock()
	off := addr - l.apicBase&APICBaseAddrMask
	if l.mode != ModeXAPIC || off >= PageSize {
		l.mu.Unlock()
		return allOnes(size)
	}
	var v uint64
	if off&0xF < 4 {
		v = uint64(l.readXAPICLocked(uint16(off&^0xF), now)) >> (8 * (off & 0xF))
	}
	l.mu.Unlock()
	return v & allOnes(size)
}

// WriteMMIO implements bus.MMIODevice for the xAPIC page. Only aligned
// 32-bit stores (or 64-bit ones, whose low half is used) reach a
// register: the SDM (11.4.1) leaves other accesses undefined, and they
// are dropped.
func (l *LAPIC) WriteMMIO(addr uint64, size uint8, v uint64) {
	now := l.clock.Now()
	l.mu.Lock()
	off := addr - l.apicBase&APICBaseAddrMask
	if l.mode != ModeXAPIC || off >= PageSize || off&0xF != 0 || (size != 4 && size != 8) {
		l.mu.Unlock()
		return
	}
	e := l.writeXAPICLocked(uint16(off), uint32(v), now)
	l.mu.Unlock()
	l.apply(e)
}

// ReadMSR performs a guest RDMSR of IA32_APIC_BASE, IA32_TSC_DEADLINE or
// an x2APIC register. An error means #GP(0).
func (l *LAPIC) ReadMSR(msr uint32) (uint64, error) {
	switch {
	case msr == MSRAPICBase:
		l.mu.Lock()
		v := l.apicBase
		l.mu.Unlock()
		return v, nil
	case msr == MSRTSCDeadline:
		if !l.HasTSCDeadline() {
			return 0, ErrNoTSCDeadline
		}
		l.mu.Lock()
		v := l.tscDeadlineLocked()
		l.mu.Unlock()
		return v, nil
	case msr >= MSRX2APICFirst && msr <= MSRX2APICLast:
		now := l.clock.Now()
		l.mu.Lock()
		v, err := l.readX2APICLocked(msr, now)
		l.mu.Unlock()
		return v, err
	}
	return 0, ErrNotLAPICMSR
}

// readX2APICLocked reads an x2APIC MSR (SDM Vol. 3A Table 11-6).
func (l *LAPIC) readX2APICLocked(msr uint32, now int64) (uint64, error) {
	if l.mode != ModeX2APIC {
		return 0, ErrNotX2APIC
	}
	off := uint16(msr-MSRX2APICFirst) << 4
	switch off {
	case RegID:
		return uint64(l.initialID), nil
	case RegLDR:
		return uint64(l.ldr), nil
	case RegICRLow:
		return uint64(l.icrHigh)<<32 | uint64(l.icrLow), nil
	case RegEOI, RegSelfIPI:
		return 0, ErrWriteOnly
	}
	if v, ok := l.readCommonLocked(off, now); ok {
		return uint64(v), nil
	}
	return 0, ErrReservedRegister
}

// WriteMSR performs a guest WRMSR of IA32_APIC_BASE, IA32_TSC_DEADLINE
// or an x2APIC register. An error means #GP(0), and nothing changed.
func (l *LAPIC) WriteMSR(msr uint32, v uint64) error {
	var (
		e   effects
		err error
	)
	switch {
	case msr == MSRAPICBase:
		l.mu.Lock()
		err = l.writeAPICBaseLocked(v)
		l.mu.Unlock()
	case msr == MSRTSCDeadline:
		if !l.HasTSCDeadline() {
			return ErrNoTSCDeadline
		}
		now := l.clock.Now()
		l.mu.Lock()
		l.writeTSCDeadlineLocked(now, v)
		l.mu.Unlock()
	case msr >= MSRX2APICFirst && msr <= MSRX2APICLast:
		now := l.clock.Now()
		l.mu.Lock()
		e, err = l.writeX2APICLocked(msr, v, now)
		l.mu.Unlock()
	default:
		return ErrNotLAPICMSR
	}
	if err == nil {
		l.apply(e)
	}
	return err
}

// icrX2APICWritable are the x2APIC ICR's defined bits (SDM Vol. 3A
// 11.12.9, Figure 11-28): no delivery-status bit, destination in 63:32.
const icrX2APICWritable = uint64(icrLowWritable) | 0xFFFF_FFFF<<32

// writeX2APICLocked writes an x2APIC MSR (SDM Vol. 3A Table 11-6): #GP for
// read-only and nonexistent registers and for non-zero reserved bits,
// which include bits 63:32 of every register but the ICR (11.12.1.2).
func (l *LAPIC) writeX2APICLocked(msr uint32, v uint64, now int64) (e effects, err error) {
	if l.mode != ModeX2APIC {
		return e, ErrNotX2APIC
	}
	off := uint16(msr-MSRX2APICFirst) << 4
	switch {
	case off == RegID || off == RegVersion || off == RegPPR || off == RegLDR ||
		off == RegTimerCurrent || (off >= RegISR && off < RegIRR+0x80):
		return e, ErrReadOnly
	case off == RegTPR:
		if v&^tprWritable != 0 {
			return e, ErrReservedBits
		}
		l.tpr = uint32(v)
	case off == RegEOI:
		if v != 0 {
			return e, ErrReservedBits
		}
		e.eoi, e.sendEOI = l.eoiLocked()
	case off == RegSVR:
		if v&^uint64(svrWritable) != 0 {
			return e, ErrReservedBits
		}
		l.writeSVRLocked(uint32(v))
	case off == RegESR:
		if v != 0 {
			return e, ErrReservedBits
		}
		l.writeESRLocked()
	case off == RegICRLow:
		if v&^icrX2APICWritable != 0 {
			return e, ErrReservedBits
		}
		l.icrLow, l.icrHigh = uint32(v), uint32(v>>32)
		e.ipi, e.sendIPI = l.icrLocked(l.icrLow, l.icrHigh, true)
	case off == RegTimerInitial:
		if v>>32 != 0 {
			return e, ErrReservedBits
		}
		l.writeInitialCountLocked(now, uint32(v))
	case off == RegTimerDivide:
		if v&^divideWritable != 0 {
			return e, ErrReservedBits
		}
		l.writeDivideLocked(now, uint32(v))
	case off == RegSelfIPI:
		if v&^uint64(icrVectorMask) != 0 {
			return e, ErrReservedBits
		}
		// SELF IPI: a fixed, edge-triggered IPI to this APIC
		// (SDM 11.12.11).
		l.acceptLocked(uint8(v), false)
	default:
		i, ok := lvtIndex(off)
		if !ok {
			return e, ErrReservedRegister
		}
		if v&^uint64(l.lvtWritable(i)|lvtReadOnly(i)) != 0 ||
			(i == lvtTimer && TimerMode(v>>LVTTimerModeShift&3) == timerModeReserved) {
			return e, ErrReservedBits
		}
		l.writeLVTLocked(i, uint32(v), now)
	}
	return e, nil
}

// CR8 returns the guest's CR8, which is TPR[7:4] (SDM Vol. 3A 11.8.6.1).
func (l *LAPIC) CR8() uint64 {
	l.mu.Lock()
	v := uint64(l.tpr >> 4)
	l.mu.Unlock()
	return v
}

// SetCR8 performs MOV to CR8: TPR[7:4] = CR8[3:0], TPR[3:0] = 0. Bits
// 63:4 are reserved: an error means #GP(0).
func (l *LAPIC) SetCR8(v uint64) error {
	if v>>4 != 0 {
		return ErrReservedBits
	}
	l.mu.Lock()
	l.tpr = uint32(v) << 4
	l.mu.Unlock()
	return nil
}
