// Package lapic drives the processor's local APIC in either of its two
// register interfaces behind one type: xAPIC, whose registers are a 4 KiB
// MMIO page at the address in IA32_APIC_BASE (0xFEE00000 by default), and
// x2APIC, whose registers are MSRs 0x800-0x8FF.
//
// References are to the Intel SDM Vol. 3A, Chapter 11 "Advanced
// Programmable Interrupt Controller (APIC)" (Order No. 325384, 2023 and
// later editions; chapter 10 in older ones): 11.4.4 "Local APIC Status and
// Location" for IA32_APIC_BASE, Table 11-1 "Local APIC Register Address
// Map", 11.6.1 "Interrupt Command Register (ICR)", 11.5.4 "APIC Timer",
// 11.12 "Extended XAPIC (x2APIC)" with Table 11-6 "Local APIC Register
// Address Map Supported by x2APIC". AMD's APM Vol. 2, 16.3-16.4 describes
// the same registers.
//
// Every local APIC is per processor and sits at the same address (or the
// same MSRs) on every CPU: an *LAPIC value is used on the CPU it describes.
// Nothing here allocates, so EOI and the IPI senders are safe on interrupt
// and VM-exit paths.
package lapic

import (
	"errors"
	"fmt"

	"tamavisor/drivers/hw"
)

// MSRs and CPUID bits (SDM Vol. 3A 11.4.4 Figure 11-5, 11.12.1; Vol. 4
// Table 2-2; Vol. 2A CPUID Table 3-10 "Feature Information").
const (
	MSRAPICBase    uint32 = 0x1B  // IA32_APIC_BASE
	MSRTSCDeadline uint32 = 0x6E0 // IA32_TSC_DEADLINE
	MSRX2APICBase  uint32 = 0x800 // x2APIC register file: 0x800 + (xAPIC offset >> 4)

	APICBaseBSP      uint64 = 1 << 8  // BSP flag (read-only)
	APICBaseX2Enable uint64 = 1 << 10 // EXTD: x2APIC mode
	APICBaseEnable   uint64 = 1 << 11 // EN: APIC global enable
	// APICBaseAddrMask selects bits 12 to 51 (the architectural maximum
	// physical address width) of IA32_APIC_BASE.
	APICBaseAddrMask uint64 = 0x000F_FFFF_FFFF_F000

	// DefaultBase is the xAPIC page address after reset.
	DefaultBase uint64 = 0xFEE00000

	cpuidFeatureLeaf         = 1
	CPUID1EDXAPIC     uint32 = 1 << 9  // on-chip APIC
	CPUID1ECXX2APIC   uint32 = 1 << 21 // x2APIC
	CPUID1ECXDeadline uint32 = 1 << 24 // TSC-deadline timer mode
)

// Register is an xAPIC register offset in the APIC page (SDM Vol. 3A Table
// 11-1). In x2APIC mode the same register is MSR 0x800 + offset>>4 (Table
// 11-6), except ICR, which becomes one 64-bit MSR at 0x830, and DFR, which
// does not exist.
type Register uint16

const (
	RegID            Register = 0x020 // local APIC ID
	RegVersion       Register = 0x030
	RegTPR           Register = 0x080 // task priority
	RegPPR           Register = 0x0A0 // processor priority
	RegEOI           Register = 0x0B0
	RegLDR           Register = 0x0D0 // logical destination
	RegSVR           Register = 0x0F0 // spurious interrupt vector
	RegISR0          Register = 0x100 // in-service, 8 registers 0x10 apart
	RegTMR0          Register = 0x180 // trigger mode
	RegIRR0          Register = 0x200 // interrupt request
	RegESR           Register = 0x280 // error status
	RegLVTCMCI       Register = 0x2F0
	RegICRLow        Register = 0x300
	RegICRHigh       Register = 0x310 // xAPIC only
	RegLVTTimer      Register = 0x320
	RegLVTThermal    Register = 0x330
	RegLVTPerf       Register = 0x340
	RegLVTLINT0      Register = 0x350
	RegLVTLINT1      Register = 0x360
	RegLVTError      Register = 0x370
	RegTimerInitial  Register = 0x380
	RegTimerCurrent  Register = 0x390
	RegTimerDivide   Register = 0x3E0
	MSRX2APICICR     uint32   = 0x830 // Table 11-6: 64-bit ICR
	MSRX2APICSelfIPI uint32   = 0x83F
)

// MSR returns the x2APIC MSR for an xAPIC register offset (SDM 11.12.1.2).
func (r Register) MSR() uint32 { return MSRX2APICBase + uint32(r)>>4 }

// Spurious-interrupt vector register bits (SDM 11.9, Figure 11-23).
const (
	SVRVectorMask     uint32 = 0xFF
	SVRSoftwareEnable uint32 = 1 << 8
)

// Version register fields (SDM 11.4.8, Figure 11-7).
const (
	versionMask              = 0xFF
	versionMaxLVTShift       = 16
	versionEOISuppressionBit = 1 << 24
)

// ICR fields (SDM 11.6.1, Figure 11-12 for xAPIC, Figure 11-28 for x2APIC).
const (
	ICRVector          uint32 = 0xFF
	ICRDeliveryFixed   uint32 = 0 << 8
	ICRDeliveryNMI     uint32 = 4 << 8
	ICRDeliveryINIT    uint32 = 5 << 8
	ICRDeliveryStartup uint32 = 6 << 8
	ICRDestLogical     uint32 = 1 << 11
	ICRDeliveryPending uint32 = 1 << 12 // delivery status, xAPIC only
	ICRLevelAssert     uint32 = 1 << 14
	ICRTriggerLevel    uint32 = 1 << 15
	// xAPIC puts the destination in bits 63:56 of the ICR (ICR high 31:24);
	// x2APIC uses all of bits 63:32.
	icrXAPICDestShift  = 24
	icrX2APICDestShift = 32
)

// LVT fields (SDM 11.5.1, Figure 11-8).
const (
	LVTVectorMask      uint32 = 0xFF
	LVTDeliveryPending uint32 = 1 << 12
	LVTMasked          uint32 = 1 << 16
	LVTTimerModeShift         = 17
	LVTTimerModeMask   uint32 = 3 << LVTTimerModeShift
	LVTDeliveryNMI     uint32 = 4 << 8
	LVTDeliveryExtINT  uint32 = 7 << 8
)

// TimerMode is the LVT timer mode field, bits 18:17 of the LVT timer entry
// (SDM 11.5.1 Figure 11-8, 11.5.4).
type TimerMode uint32

const (
	TimerOneShot     TimerMode = 0
	TimerPeriodic    TimerMode = 1
	TimerTSCDeadline TimerMode = 2
)

func (m TimerMode) String() string {
	switch m {
	case TimerOneShot:
		return "one-shot"
	case TimerPeriodic:
		return "periodic"
	case TimerTSCDeadline:
		return "TSC-deadline"
	}
	return fmt.Sprintf("TimerMode(%d)", uint32(m))
}

// ICRPollLimit bounds the reads of the xAPIC ICR delivery-status bit before
// and after sending an IPI. Delivery normally completes within a bus
// transaction; a bit stuck at "send pending" means a broken APIC bus, and
// the sender returns an error instead of hanging.
const ICRPollLimit = 100000

// Mode is the register interface in use.
type Mode int

const (
	ModeXAPIC Mode = iota + 1
	ModeX2APIC
)

func (m Mode) String() string {
	switch m {
	case ModeXAPIC:
		return "xAPIC"
	case ModeX2APIC:
		return "x2APIC"
	}
	return "disabled"
}

// Errors.
var (
	ErrNoAPIC        = errors.New("lapic: CPUID reports no local APIC")
	ErrDisabled      = errors.New("lapic: IA32_APIC_BASE.EN is clear (local APIC globally disabled)")
	ErrNoX2APIC      = errors.New("lapic: CPUID reports no x2APIC support")
	ErrNoTSCDeadline = errors.New("lapic: CPUID reports no TSC-deadline timer")
	ErrIPIStuck      = errors.New("lapic: ICR delivery status stayed pending")
	ErrBadVector     = errors.New("lapic: vector out of range")
	ErrBadDest       = errors.New("lapic: destination APIC ID does not fit the ICR")
)

// LAPIC is the local APIC of the current processor.
type LAPIC struct {
	msrs        hw.MSRs
	mmio        hw.MMIO
	base        uint64
	mode        Mode
	bsp         bool
	hasX2APIC   bool
	hasDeadline bool
}

// New reads CPUID and IA32_APIC_BASE and returns the local APIC in whatever
// mode firmware left it. mmio may be nil only if the APIC is already in
// x2APIC mode and EnableX2APIC is never undone (it cannot be: leaving x2APIC
// mode needs a reset of the APIC).
func New(cpu hw.CPUID, msrs hw.MSRs, mmio hw.MMIO) (*LAPIC, error) {
	_, _, ecx, edx := cpu.CPUID(cpuidFeatureLeaf, 0)
	if edx&CPUID1EDXAPIC == 0 {
		return nil, ErrNoAPIC
	}
	l := &LAPIC{
		msrs:        msrs,
		mmio:        mmio,
		hasX2APIC:   ecx&CPUID1ECXX2APIC != 0,
		hasDeadline: ecx&CPUID1ECXDeadline != 0,
	}
	v := msrs.ReadMSR(MSRAPICBase)
	l.base = v & APICBaseAddrMask
	l.bsp = v&APICBaseBSP != 0
	switch {
	case v&APICBaseEnable == 0 && v&APICBaseX2Enable != 0:
		return nil, fmt.Errorf("lapic: IA32_APIC_BASE %#x has EXTD set with EN clear, an invalid state (SDM 11.12.1 Table 11-5)", v)
	case v&APICBaseEnable == 0:
		return nil, ErrDisabled
	case v&APICBaseX2Enable != 0:
		l.mode = ModeX2APIC
	default:
		if mmio == nil {
			return nil, errors.New("lapic: APIC is in xAPIC mode but no MMIO access was given")
		}
		l.mode = ModeXAPIC
	}
	return l, nil
}

// Mode returns the register interface in use.
func (l *LAPIC) Mode() Mode { return l.mode }

// Base returns the physical address of the xAPIC register page.
func (l *LAPIC) Base() uint64 { return l.base }

// IsBSP reports whether this processor is the bootstrap processor.
func (l *LAPIC) IsBSP() bool { return l.bsp }

// SupportsX2APIC reports CPUID.1:ECX[21].
func (l *LAPIC) SupportsX2APIC() bool { return l.hasX2APIC }

// SupportsTSCDeadline reports CPUID.1:ECX[24].
func (l *LAPIC) SupportsTSCDeadline() bool { return l.hasDeadline }

// EnableX2APIC switches this processor's APIC from xAPIC to x2APIC mode by
// setting IA32_APIC_BASE.EXTD with EN still set, the transition into x2APIC
// mode the SDM allows from xAPIC mode (11.12.5 "x2APIC State Transitions").
// It is idempotent. There is no way back short of disabling the APIC.
func (l *LAPIC) EnableX2APIC() error {
	if l.mode == ModeX2APIC {
		return nil
	}
	if !l.hasX2APIC {
		return ErrNoX2APIC
	}
	v := l.msrs.ReadMSR(MSRAPICBase)
	l.msrs.WriteMSR(MSRAPICBase, v|APICBaseEnable|APICBaseX2Enable)
	l.mode = ModeX2APIC
	return nil
}

// read returns a 32-bit register. The caller never names ICR high or DFR
// in x2APIC mode: those MSRs do not exist and would raise #GP.
func (l *LAPIC) read(r Register) uint32 {
	if l.mode == ModeX2APIC {
		return uint32(l.msrs.ReadMSR(r.MSR()))
	}
	return l.mmio.Read32(l.base + uint64(r))
}

// write sets a 32-bit register (same rule as read).
func (l *LAPIC) write(r Register, v uint32) {
	if l.mode == ModeX2APIC {
		l.msrs.WriteMSR(r.MSR(), uint64(v))
		return
	}
	l.mmio.Write32(l.base+uint64(r), v)
}

// ID returns the local APIC ID: bits 31:24 of the ID register in xAPIC mode
// (SDM 11.4.6, Figure 11-6), the whole 32-bit x2APIC ID otherwise (11.12 "Extended XAPIC").
func (l *LAPIC) ID() uint32 {
	v := l.read(RegID)
	if l.mode == ModeX2APIC {
		return v
	}
	return v >> 24
}

// Version is the decoded version register (SDM 11.4.8).
type Version struct {
	Version uint8
	// MaxLVT is the number of LVT entries minus one: 3 on the Pentium,
	// 4 once the performance-counter entry exists, 5 with the thermal
	// entry, 6 with CMCI.
	MaxLVT               uint8
	EOIBroadcastSuppress bool
}

// Version reads the version register.
func (l *LAPIC) Version() Version {
	v := l.read(RegVersion)
	return Version{
		Version:              uint8(v & versionMask),
		MaxLVT:               uint8(v >> versionMaxLVTShift),
		EOIBroadcastSuppress: v&versionEOISuppressionBit != 0,
	}
}

// EOI signals the end of the interrupt being serviced. In x2APIC mode the
// EOI MSR must be written with 0 (any other value raises #GP, SDM 11.12.1.2).
func (l *LAPIC) EOI() { l.write(RegEOI, 0) }

// checkVector rejects vectors 0-31: the APIC refuses 0-15 ("illegal vector",
// SDM 11.5.3) and 16-31 are the processor's exceptions.
func checkVector(v uint8) error {
	if v < 32 {
		return fmt.Errorf("%w: %#x is an exception vector (0-31)", ErrBadVector, v)
	}
	return nil
}

// SoftwareEnable sets the APIC software-enable bit in the spurious-interrupt
// vector register and names the spurious vector (SDM 11.9, 11.4.7.2).
func (l *LAPIC) SoftwareEnable(spurious uint8) error {
	if err := checkVector(spurious); err != nil {
		return err
	}
	v := l.read(RegSVR)
	l.write(RegSVR, v&^SVRVectorMask|uint32(spurious)|SVRSoftwareEnable)
	return nil
}

// SoftwareDisable clears the software-enable bit; the APIC then masks all
// LVT entries and accepts only INIT, SIPI and NMI IPIs (SDM 11.4.7.2).
func (l *LAPIC) SoftwareDisable() {
	l.write(RegSVR, l.read(RegSVR)&^SVRSoftwareEnable)
}

// TPR returns the task priority register (SDM 11.8.3.1).
func (l *LAPIC) TPR() uint8 { return uint8(l.read(RegTPR)) }

// SetTPR sets the task priority; interrupts with priority class (vector
// bits 7:4) at or below TPR bits 7:4 are held off.
func (l *LAPIC) SetTPR(v uint8) { l.write(RegTPR, uint32(v)) }

// ErrorStatus returns the error status register. The SDM requires a write
// before the read to latch the current errors (11.5.3); in x2APIC mode that
// write must be 0.
func (l *LAPIC) ErrorStatus() uint32 {
	l.write(RegESR, 0)
	return l.read(RegESR)
}

// MaskLVT masks every local vector table entry the APIC implements
// (according to the version register's max LVT entry), so nothing
// delivers through them until set up. SDM 11.5.1: CMCI exists if MaxLVT
// >= 6, thermal if >= 5, performance counters if >= 4.
func (l *LAPIC) MaskLVT() {
	max := l.Version().MaxLVT
	regs := [...]struct {
		r      Register
		minLVT uint8
	}{
		{RegLVTTimer, 0}, {RegLVTLINT0, 0}, {RegLVTLINT1, 0}, {RegLVTError, 0},
		{RegLVTPerf, 4}, {RegLVTThermal, 5}, {RegLVTCMCI, 6},
	}
	for _, e := range regs {
		if max >= e.minLVT {
			l.write(e.r, l.read(e.r)|LVTMasked)
		}
	}
}

// sendIPI writes the ICR. In xAPIC mode the write to ICR low is what sends,
// so ICR high goes first; the delivery-status bit is polled (bounded) before
// and after. In x2APIC mode one WRMSR to 0x830 sends, with no status bit.
func (l *LAPIC) sendIPI(dest uint32, low uint32) error {
	if l.mode == ModeX2APIC {
		l.msrs.WriteMSR(MSRX2APICICR, uint64(dest)<<icrX2APICDestShift|uint64(low))
		return nil
	}
	if dest > 0xFF {
		return fmt.Errorf("%w: %#x needs x2APIC mode (xAPIC destinations are 8 bits)", ErrBadDest, dest)
	}
	if !l.waitICRIdle() {
		return ErrIPIStuck
	}
	l.write(RegICRHigh, dest<<icrXAPICDestShift)
	l.write(RegICRLow, low)
	if !l.waitICRIdle() {
		return ErrIPIStuck
	}
	return nil
}

func (l *LAPIC) waitICRIdle() bool {
	for i := 0; i < ICRPollLimit; i++ {
		if l.read(RegICRLow)&ICRDeliveryPending == 0 {
			return true
		}
	}
	return false
}

// SendInit sends an INIT IPI (level assert, edge-triggered, physical
// destination), the first step of the INIT-SIPI-SIPI sequence that starts an
// application processor (ICR low 0x4500, as in the SDM's "Typical BSP
// Initialization Sequence", Vol. 3A Multiple-Processor Management chapter,
// which broadcasts it with a shorthand instead of naming a destination).
func (l *LAPIC) SendInit(apicID uint32) error {
	return l.sendIPI(apicID, ICRDeliveryINIT|ICRLevelAssert)
}

// SendStartup sends a start-up IPI: the target starts in real mode at
// physical address vectorPage<<12. SIPI vectors 0xA0-0xBF are reserved
// (SDM Vol. 3A, "Typical BSP Initialization Sequence").
func (l *LAPIC) SendStartup(apicID uint32, vectorPage uint8) error {
	if vectorPage >= 0xA0 && vectorPage <= 0xBF {
		return fmt.Errorf("%w: start-up vector %#x is reserved (0xa0-0xbf)", ErrBadVector, vectorPage)
	}
	return l.sendIPI(apicID, ICRDeliveryStartup|ICRLevelAssert|uint32(vectorPage))
}

// SendFixed sends a fixed interrupt with vector to one processor.
func (l *LAPIC) SendFixed(apicID uint32, vector uint8) error {
	if err := checkVector(vector); err != nil {
		return err
	}
	return l.sendIPI(apicID, ICRDeliveryFixed|ICRLevelAssert|uint32(vector))
}

// SendNMI sends a non-maskable interrupt (the vector field is ignored for
// NMI and is sent as 0).
func (l *LAPIC) SendNMI(apicID uint32) error {
	return l.sendIPI(apicID, ICRDeliveryNMI|ICRLevelAssert)
}

// divideEncoding maps a divisor to the divide configuration register value
// (SDM 11.5.4, Figure 11-10): bits 3,1:0 = 000 divides by 2 ... 110 by 128,
// 111 by 1.
func divideEncoding(div uint32) (uint32, bool) {
	var code uint32
	switch div {
	case 2:
		code = 0
	case 4:
		code = 1
	case 8:
		code = 2
	case 16:
		code = 3
	case 32:
		code = 4
	case 64:
		code = 5
	case 128:
		code = 6
	case 1:
		code = 7
	default:
		return 0, false
	}
	return code&3 | (code&4)<<1, true
}

// SetTimerDivide sets the timer's divider of the bus/core crystal clock: 1,
// 2, 4, ..., 128.
func (l *LAPIC) SetTimerDivide(div uint32) error {
	enc, ok := divideEncoding(div)
	if !ok {
		return fmt.Errorf("lapic: timer divisor %d is not a power of two from 1 to 128", div)
	}
	l.write(RegTimerDivide, enc)
	return nil
}

// SetTimer programs the LVT timer entry: mode, vector, and whether it is
// masked. TSC-deadline mode needs CPUID.1:ECX[24].
//
// In xAPIC mode the entry is read back after the write: SDM 11.5.4.1
// requires the memory-mapped write that selects TSC-deadline mode to be
// ordered before a following WRMSR to IA32_TSC_DEADLINE, and an uncached
// read cannot complete before an earlier uncached write to the same page
// has.
func (l *LAPIC) SetTimer(mode TimerMode, vector uint8, masked bool) error {
	if mode > TimerTSCDeadline {
		return fmt.Errorf("lapic: %v is not a timer mode", mode)
	}
	if mode == TimerTSCDeadline && !l.hasDeadline {
		return ErrNoTSCDeadline
	}
	if err := checkVector(vector); err != nil {
		return err
	}
	v := uint32(mode)<<LVTTimerModeShift | uint32(vector)
	if masked {
		v |= LVTMasked
	}
	l.write(RegLVTTimer, v)
	if l.mode == ModeXAPIC {
		l.read(RegLVTTimer)
	}
	return nil
}

// MaskTimer masks the LVT timer entry, leaving mode and vector.
func (l *LAPIC) MaskTimer() { l.write(RegLVTTimer, l.read(RegLVTTimer)|LVTMasked) }

// SetTimerInitialCount writes the initial count, which (re)starts a one-shot
// or periodic countdown; 0 stops the timer. It has no effect in TSC-deadline
// mode (SDM 11.5.4.1).
func (l *LAPIC) SetTimerInitialCount(count uint32) { l.write(RegTimerInitial, count) }

// TimerCurrentCount returns the timer's current count.
func (l *LAPIC) TimerCurrentCount() uint32 { return l.read(RegTimerCurrent) }

// SetTSCDeadline arms the TSC-deadline timer for the absolute TSC value
// deadline; 0 disarms it (SDM 11.5.4.1).
func (l *LAPIC) SetTSCDeadline(deadline uint64) error {
	if !l.hasDeadline {
		return ErrNoTSCDeadline
	}
	l.msrs.WriteMSR(MSRTSCDeadline, deadline)
	return nil
}
