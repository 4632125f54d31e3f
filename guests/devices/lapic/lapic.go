// Package lapic models the local APIC of one virtual CPU: the interrupt
// controller a guest kernel programs through the xAPIC page (4 KiB of MMIO at
// the address in IA32_APIC_BASE, 0xFEE00000 after reset) or, in x2APIC mode,
// through MSRs 0x800-0x8FF.
//
// References are to the Intel SDM Vol. 3A, Chapter 11 "Advanced
// Programmable Interrupt Controller (APIC)" (chapter 10 in editions before
// 2023): 11.4.4 for IA32_APIC_BASE, Table 11-1 for the xAPIC register page,
// 11.5 for the local vector table and the timer, 11.6 for the ICR and IPIs,
// 11.8 for interrupt acceptance, priorities and EOI, 11.12 for x2APIC with
// Table 11-6 (its MSR map), 11.12.1.2 (reserved bits raise #GP) and 11.12.5
// (IA32_APIC_BASE state transitions).
//
// # How the VM uses it
//
// Each vCPU has one *LAPIC. The VM routes to it:
//   - guest MMIO to [Base(), Base()+4 KiB) of the vCPU that made the access
//     (every vCPU sees its own APIC at the same address, so the page cannot
//     sit on the VM-wide MMIO bus: check Contains first);
//   - RDMSR/WRMSR of IA32_APIC_BASE (0x1B), IA32_TSC_DEADLINE (0x6E0) and
//     0x800-0x8FF (HandlesMSR); an error from ReadMSR/WriteMSR means the
//     guest gets #GP(0);
//   - interrupts from the IOAPIC, MSIs and other vCPUs' IPIs through Group
//     (Deliver, SendIPI), which also kicks the target vCPUs.
//
// Before each VM entry the injector (package guests/irq) calls TickIfDue,
// then asks AckPending and TakeNMI; the run loop arms a host timer for
// NextDeadline so that an exit happens when the APIC timer expires, and
// consumes INIT and SIPI with TakeInitSIPI.
//
// # Concurrency
//
// A LAPIC is driven by its own vCPU's goroutine, but other vCPUs and device
// models deliver interrupts to it from theirs, so its state sits behind a
// mutex. The mutex is never held while calling out (IPISink, the EOI
// callback): an IPI to self or an IOAPIC that re-delivers a still-asserted
// level interrupt on EOI comes straight back into Accept.
//
// Nothing here allocates or panics on guest input: register accesses,
// acceptance, acknowledge, EOI and the timer are all on the VM-exit path.
package lapic

import (
	"errors"
	"math"
	"sync"

	"tamavisor/guests/bus"
)

// MSRs (SDM Vol. 4 Table 2-2; Vol. 3A 11.4.4, 11.5.4.1, 11.12.1.2).
const (
	MSRAPICBase    uint32 = 0x1B  // IA32_APIC_BASE
	MSRTSCDeadline uint32 = 0x6E0 // IA32_TSC_DEADLINE
	MSRX2APICFirst uint32 = 0x800 // x2APIC registers: 0x800 + (xAPIC offset >> 4)
	MSRX2APICLast  uint32 = 0x8FF
)

// IA32_APIC_BASE fields (SDM Vol. 3A 11.4.4, Figure 11-5).
const (
	APICBaseBSP      uint64 = 1 << 8  // bootstrap processor, read-only here
	APICBaseX2APIC   uint64 = 1 << 10 // EXTD
	APICBaseEnable   uint64 = 1 << 11 // EN: APIC globally enabled
	APICBaseAddrMask uint64 = 0x000F_FFFF_FFFF_F000

	// DefaultBase is the xAPIC page after reset; PageSize its length.
	DefaultBase uint64 = 0xFEE00000
	PageSize    uint64 = 0x1000
)

// xAPIC register offsets in the APIC page (SDM Vol. 3A Table 11-1). In
// x2APIC mode register R is MSR 0x800 + R>>4 (Table 11-6), except that the
// ICR is one 64-bit MSR (0x830), and APR, RRD, DFR and ICR high do not exist.
const (
	RegID           uint16 = 0x020
	RegVersion      uint16 = 0x030
	RegTPR          uint16 = 0x080
	RegAPR          uint16 = 0x090 // arbitration priority, xAPIC only
	RegPPR          uint16 = 0x0A0
	RegEOI          uint16 = 0x0B0
	RegRRD          uint16 = 0x0C0 // remote read, xAPIC only
	RegLDR          uint16 = 0x0D0
	RegDFR          uint16 = 0x0E0 // xAPIC only
	RegSVR          uint16 = 0x0F0
	RegISR          uint16 = 0x100 // 8 registers, 0x10 apart
	RegTMR          uint16 = 0x180
	RegIRR          uint16 = 0x200
	RegESR          uint16 = 0x280
	RegLVTCMCI      uint16 = 0x2F0 // not implemented: the version register says 6 LVT entries
	RegICRLow       uint16 = 0x300
	RegICRHigh      uint16 = 0x310 // xAPIC only
	RegLVTTimer     uint16 = 0x320
	RegLVTThermal   uint16 = 0x330
	RegLVTPerf      uint16 = 0x340
	RegLVTLINT0     uint16 = 0x350
	RegLVTLINT1     uint16 = 0x360
	RegLVTError     uint16 = 0x370
	RegTimerInitial uint16 = 0x380
	RegTimerCurrent uint16 = 0x390
	RegTimerDivide  uint16 = 0x3E0
	RegSelfIPI      uint16 = 0x3F0 // x2APIC only (MSR 0x83F)
)

// Version register (SDM Vol. 3A 11.4.8, Figure 11-7): an integrated APIC
// (0x14, as Intel and AMD parts report) with six LVT entries (timer,
// thermal, performance, LINT0, LINT1, error: max LVT entry 5) and without
// EOI-broadcast suppression (bit 24 clear, so "directed EOI" is off).
const (
	versionID     uint32 = 0x14
	numLVT               = 6
	VersionValue  uint32 = versionID | (numLVT-1)<<16
	svrVectorMask uint32 = 0xFF
	SVREnable     uint32 = 1 << 8 // APIC software enable (SDM 11.9, Figure 11-23)
	svrFocusOff   uint32 = 1 << 9 // focus processor checking disabled
	svrWritable          = svrVectorMask | SVREnable | svrFocusOff
	svrReset      uint32 = 0xFF
)

// LVT entry fields (SDM Vol. 3A 11.5.1, Figure 11-8).
const (
	LVTVectorMask     uint32 = 0xFF
	LVTDeliveryShift         = 8
	LVTDeliveryMask   uint32 = 7 << LVTDeliveryShift
	lvtDeliveryStatus uint32 = 1 << 12 // read-only, always idle here
	LVTPolarityLow    uint32 = 1 << 13 // LINT0/1
	lvtRemoteIRR      uint32 = 1 << 14 // LINT0/1, read-only
	LVTTriggerLevel   uint32 = 1 << 15 // LINT0/1
	LVTMasked         uint32 = 1 << 16
	LVTTimerModeShift        = 17
	LVTTimerModeMask  uint32 = 3 << LVTTimerModeShift
)

// LVT indices: the entries from 0x320 to 0x370 in register order.
const (
	lvtTimer = iota
	lvtThermal
	lvtPerf
	lvtLINT0
	lvtLINT1
	lvtError
)

// TimerMode is the LVT timer mode, bits 18:17 (SDM Vol. 3A 11.5.4).
type TimerMode uint8

const (
	TimerOneShot     TimerMode = 0
	TimerPeriodic    TimerMode = 1
	TimerTSCDeadline TimerMode = 2
)

// ESR bits (SDM Vol. 3A 11.5.3, Figure 11-9).
const (
	ESRSendIllegalVector    uint32 = 1 << 5
	ESRReceiveIllegalVector uint32 = 1 << 6
	ESRIllegalRegister      uint32 = 1 << 7
)

// Mode is the state of IA32_APIC_BASE EN and EXTD (SDM Vol. 3A 11.12.5).
type Mode uint8

const (
	ModeDisabled Mode = iota // EN=0 EXTD=0: the APIC is off, LINT0/LINT1 are INTR/NMI
	ModeXAPIC                // EN=1 EXTD=0
	ModeX2APIC               // EN=1 EXTD=1
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

// Errors returned by ReadMSR and WriteMSR: each means the guest's RDMSR or
// WRMSR raises #GP(0). They are fixed values so that returning them does
// not allocate; the caller adds the MSR number when it logs one.
var (
	ErrNotLAPICMSR      = errors.New("lapic: MSR is not a local APIC MSR")
	ErrNotX2APIC        = errors.New("lapic: x2APIC MSR accessed while the APIC is not in x2APIC mode (SDM 11.12.1.2)")
	ErrReservedRegister = errors.New("lapic: x2APIC MSR names no register (SDM Table 11-6)")
	ErrReadOnly         = errors.New("lapic: WRMSR to a read-only x2APIC register")
	ErrWriteOnly        = errors.New("lapic: RDMSR of a write-only x2APIC register (EOI or SELF IPI)")
	ErrReservedBits     = errors.New("lapic: WRMSR sets reserved bits of an x2APIC register (SDM 11.12.1.3)")
	ErrAPICBaseReserved = errors.New("lapic: WRMSR sets reserved bits of IA32_APIC_BASE")
	ErrAPICBaseMode     = errors.New("lapic: illegal IA32_APIC_BASE EN/EXTD transition (SDM 11.12.5)")
	ErrNoTSCDeadline    = errors.New("lapic: IA32_TSC_DEADLINE accessed but the TSC-deadline timer is not offered")
)

// NoDeadline is what NextDeadline returns when no timer is armed.
const NoDeadline int64 = math.MaxInt64

// DefaultTimerHz is the APIC timer's input clock (before the divider) when
// Config.TimerHz is zero: 1 GHz, as QEMU and KVM use, so one count is one
// nanosecond times the divide value.
const DefaultTimerHz = 1_000_000_000

// DefaultMinTimerPeriod bounds how often a periodic timer interrupts (ns):
// a guest programming a 1-count periodic timer would otherwise spend the
// host CPU on timer exits. KVM applies the same kind of floor.
const DefaultMinTimerPeriod = 100_000

// Config describes one virtual local APIC.
type Config struct {
	// ID is the initial APIC ID (the x2APIC ID; its low 8 bits are the
	// xAPIC ID). It must be unique in the VM and match the MADT.
	ID uint32
	// BSP marks the bootstrap processor: IA32_APIC_BASE.BSP is set, and
	// the APs start waiting for INIT/SIPI.
	BSP bool
	// Clock is the time base of the APIC timer (bus.Clock nanoseconds).
	Clock bus.Clock
	// TimerHz is the APIC timer input frequency; 0 means DefaultTimerHz.
	// Guests measure it, or read it from CPUID 15H where offered.
	TimerHz uint64
	// GuestTSC reads the guest's TSC (host TSC plus the vCPU's offset) and
	// TSCHz is its frequency. Both set enable the TSC-deadline mode and
	// IA32_TSC_DEADLINE; the VM's CPUID must then report CPUID.1:ECX[24].
	GuestTSC func() uint64
	TSCHz    uint64
	// MinTimerPeriod is the floor on the periodic timer's interrupt
	// spacing in ns; 0 means DefaultMinTimerPeriod.
	MinTimerPeriod int64
	// PhysAddrBits is the guest's MAXPHYADDR: IA32_APIC_BASE bits at and
	// above it are reserved. 0 means 52, the architectural maximum.
	PhysAddrBits uint8
	// IPI receives the IPIs this APIC's ICR sends to other APICs (usually
	// a *Group); nil drops them.
	IPI IPISink
	// EOI is told the vector of each level-triggered interrupt the guest
	// EOIs, for the IOAPIC's remote IRR (SDM 11.8.5); nil ignores it.
	EOI func(vector uint8)
}

// LAPIC is the virtual local APIC of one vCPU.
type LAPIC struct {
	mu sync.Mutex

	initialID      uint32
	bsp            bool
	clock          bus.Clock
	timerHz        uint64
	guestTSC       func() uint64
	tscHz          uint64
	minPeriod      int64
	baseReserved   uint64
	ipiSink        IPISink
	eoiBroadcast   func(vector uint8)
	timerModeWrite uint32 // writable timer-mode bits: one-shot/periodic, plus TSC-deadline where offered

	apicBase uint64
	mode     Mode

	xapicID    uint8 // ID register in xAPIC mode (writable there)
	tpr        uint32
	ldr        uint32
	dfr        uint32
	svr        uint32
	isr        vectorSet
	tmr        vectorSet
	irr        vectorSet
	esr        uint32 // value the guest reads
	esrPending uint32 // errors since the last ESR write
	icrLow     uint32
	icrHigh    uint32
	lvt        [numLVT]uint32

	timer timerState

	nmiPending    bool
	extINTPending bool
	initPending   bool
	sipiPending   bool
	waitForSIPI   bool
	sipiVector    uint8
}

// New returns a local APIC in its power-on state (SDM Vol. 3A 11.4.7.1):
// enabled in xAPIC mode at DefaultBase, software-disabled, LVT entries
// masked, except that the BSP's LINT0 is unmasked in ExtINT mode, the
// "virtual wire" that the MP specification (1.4, 3.6.2.2) has firmware set
// up: the guest's kernel is entered without firmware in front of it, and
// Linux checks whether LINT0 was left unmasked to decide whether the 8259's
// interrupts reach this CPU (as KVM does for the same reason).
func New(c Config) (*LAPIC, error) {
	if c.Clock == nil {
		return nil, errors.New("lapic: Config.Clock is nil")
	}
	l := &LAPIC{
		initialID:    c.ID,
		bsp:          c.BSP,
		clock:        c.Clock,
		timerHz:      c.TimerHz,
		guestTSC:     c.GuestTSC,
		tscHz:        c.TSCHz,
		minPeriod:    c.MinTimerPeriod,
		ipiSink:      c.IPI,
		eoiBroadcast: c.EOI,
	}
	if l.timerHz == 0 {
		l.timerHz = DefaultTimerHz
	}
	if l.timerHz < 1000 {
		return nil, errors.New("lapic: Config.TimerHz below 1 kHz")
	}
	if l.minPeriod <= 0 {
		l.minPeriod = DefaultMinTimerPeriod
	}
	if (c.GuestTSC == nil) != (c.TSCHz == 0) {
		return nil, errors.New("lapic: Config.GuestTSC and Config.TSCHz must be set together")
	}
	l.timerModeWrite = uint32(TimerPeriodic) << LVTTimerModeShift
	if l.HasTSCDeadline() {
		l.timerModeWrite = LVTTimerModeMask
	}
	bitsN := c.PhysAddrBits
	if bitsN == 0 || bitsN > 52 {
		bitsN = 52
	}
	if bitsN < 32 {
		return nil, errors.New("lapic: Config.PhysAddrBits below 32")
	}
	addr := APICBaseAddrMask & (uint64(1)<<bitsN - 1)
	l.baseReserved = ^(addr | APICBaseBSP | APICBaseX2APIC | APICBaseEnable)
	l.Reset()
	return l, nil
}

// HasTSCDeadline reports whether the TSC-deadline timer mode is offered.
func (l *LAPIC) HasTSCDeadline() bool { return l.guestTSC != nil && l.tscHz != 0 }

// ID returns the initial APIC ID: the identity IPIs name as their source.
func (l *LAPIC) ID() uint32 { return l.initialID }

// BSP reports whether this is the bootstrap processor's APIC
// (IA32_APIC_BASE.BSP, fixed by the VM's configuration).
func (l *LAPIC) BSP() bool { return l.bsp }

// Reset puts the APIC in its power-on state (see New) and drops pending
// NMI, INIT and SIPI events.
func (l *LAPIC) Reset() {
	l.mu.Lock()
	l.apicBase = DefaultBase | APICBaseEnable
	if l.bsp {
		l.apicBase |= APICBaseBSP
	}
	l.mode = ModeXAPIC
	l.resetRegistersLocked()
	l.xapicID = uint8(l.initialID)
	if l.bsp {
		l.lvt[lvtLINT0] = 7 << LVTDeliveryShift // ExtINT, unmasked
	}
	l.nmiPending, l.extINTPending = false, false
	l.initPending, l.sipiPending = false, false
	l.waitForSIPI = !l.bsp
	l.mu.Unlock()
}

// resetRegistersLocked sets every register but the ID and IA32_APIC_BASE
// to its reset value (SDM Vol. 3A 11.4.7.1 and 11.12.5.1), as RESET, INIT
// and disabling the APIC do.
func (l *LAPIC) resetRegistersLocked() {
	l.tpr = 0
	l.ldr = 0
	l.dfr = 0xFFFFFFFF
	l.svr = svrReset
	l.isr, l.tmr, l.irr = vectorSet{}, vectorSet{}, vectorSet{}
	l.esr, l.esrPending = 0, 0
	l.icrLow, l.icrHigh = 0, 0
	for i := range l.lvt {
		l.lvt[i] = LVTMasked
	}
	l.timer = timerState{}
	l.timer.expiry = NoDeadline
	if l.mode == ModeX2APIC {
		l.ldr = x2APICLogicalID(l.initialID)
	}
}

// x2APICLogicalID is the LDR the hardware derives from the x2APIC ID
// (SDM Vol. 3A 11.12.10.2): cluster ID[19:4] in bits 31:16, and one bit
// for ID[3:0] in bits 15:0.
func x2APICLogicalID(id uint32) uint32 {
	return (id>>4)<<16 | 1<<(id&0xF)
}

// Mode returns the APIC's IA32_APIC_BASE mode.
func (l *LAPIC) Mode() Mode {
	l.mu.Lock()
	m := l.mode
	l.mu.Unlock()
	return m
}

// Base returns the guest-physical address of the xAPIC page.
func (l *LAPIC) Base() uint64 {
	l.mu.Lock()
	b := l.apicBase & APICBaseAddrMask
	l.mu.Unlock()
	return b
}

// Contains reports whether a guest-physical access to addr reaches this
// APIC's register page: the APIC is in xAPIC mode and addr is inside the
// page. In x2APIC mode or disabled, the page is not decoded (SDM Vol. 3A
// 11.12.1.2: it behaves as with the APIC globally disabled) and the access
// belongs to the rest of the address space.
func (l *LAPIC) Contains(addr uint64) bool {
	l.mu.Lock()
	ok := l.mode == ModeXAPIC && addr-(l.apicBase&APICBaseAddrMask) < PageSize
	l.mu.Unlock()
	return ok
}

// HandlesMSR is the package function HandlesMSR as a method, so that a
// LAPIC serves as the run loop's MSR device.
func (l *LAPIC) HandlesMSR(msr uint32) bool { return HandlesMSR(msr) }

// HandlesMSR reports whether msr is one ReadMSR and WriteMSR implement.
func HandlesMSR(msr uint32) bool {
	return msr == MSRAPICBase || msr == MSRTSCDeadline || (msr >= MSRX2APICFirst && msr <= MSRX2APICLast)
}

// writeAPICBase applies a WRMSR to IA32_APIC_BASE. The legal EN/EXTD
// transitions (SDM Vol. 3A 11.12.5, Figure 11-27) are disabled <-> xAPIC,
// xAPIC -> x2APIC and x2APIC -> disabled; x2APIC -> xAPIC, disabled ->
// x2APIC and anything with EXTD=1, EN=0 raise #GP. The BSP flag is kept
// as the VM configured it.
func (l *LAPIC) writeAPICBaseLocked(v uint64) error {
	if v&l.baseReserved != 0 {
		return ErrAPICBaseReserved
	}
	var next Mode
	switch v & (APICBaseEnable | APICBaseX2APIC) {
	case 0:
		next = ModeDisabled
	case APICBaseEnable:
		next = ModeXAPIC
	case APICBaseEnable | APICBaseX2APIC:
		next = ModeX2APIC
	default:
		return ErrAPICBaseMode
	}
	prev := l.mode
	switch {
	case prev == ModeX2APIC && next == ModeXAPIC, prev == ModeDisabled && next == ModeX2APIC:
		return ErrAPICBaseMode
	}
	l.apicBase = v&^APICBaseBSP | l.apicBase&APICBaseBSP
	l.mode = next
	switch {
	case next == ModeDisabled && prev != ModeDisabled:
		// Globally disabling loses the APIC's state (SDM 11.4.3); it
		// comes back as after reset, keeping its ID.
		l.resetRegistersLocked()
		l.extINTPending = false
	case prev == ModeXAPIC && next == ModeX2APIC:
		// The x2APIC ID is the initial one and the LDR is derived
		// from it (SDM 11.12.5.1 "State Changes From xAPIC Mode to
		// x2APIC Mode"); the other registers keep their values.
		l.ldr = x2APICLogicalID(l.initialID)
	case prev == ModeDisabled && next == ModeXAPIC:
		l.xapicID = uint8(l.initialID)
	}
	return nil
}

// hwEnabled and swEnabled are IA32_APIC_BASE.EN and SVR bit 8.
func (l *LAPIC) hwEnabled() bool { return l.mode != ModeDisabled }
func (l *LAPIC) swEnabled() bool { return l.svr&SVREnable != 0 }
