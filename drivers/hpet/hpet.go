// Package hpet reads the High Precision Event Timer's main counter, the
// preferred reference for calibrating the TSC and the LAPIC timer.
//
// Layout and rules follow the IA-PC HPET (High Precision Event Timers)
// Specification, revision 1.0a (Intel, October 2004): 2.3.1 "Register
// Overview", 2.3.4 "General Capabilities and ID Register", 2.3.5 "General
// Configuration Register", 2.3.7 "Main Counter Value Register". The block's
// address comes from the ACPI HPET table (spec 3.2.4).
//
// Only the main counter is used; the comparators stay disabled, so the HPET
// never interrupts the hypervisor.
package hpet

import (
	"errors"
	"fmt"

	"tamavisor/drivers/hw"
)

// Register offsets from the block base (spec 2.3.1).
const (
	RegCapabilities uint64 = 0x000 // General Capabilities and ID, 64-bit, read-only
	RegConfig       uint64 = 0x010 // General Configuration
	RegIntStatus    uint64 = 0x020 // General Interrupt Status
	RegMainCounter  uint64 = 0x0F0 // Main Counter Value
	// Timer N's configuration and capability register is at
	// RegTimer0Config + N*TimerStride (spec 2.3.8).
	RegTimer0Config uint64 = 0x100
	TimerStride     uint64 = 0x20
)

// BlockSize is the size of the register block (spec 2.3.1).
const BlockSize = 1024

// General Capabilities and ID register fields (spec 2.3.4).
const (
	capRevMask        = 0xFF // REV_ID, bits 7:0, must not be 0
	capNumTimersShift = 8    // NUM_TIM_CAP, bits 12:8: index of the last timer
	capNumTimersMask  = 0x1F
	Cap64BitCounter   = 1 << 13 // COUNT_SIZE_CAP
	CapLegacyRoute    = 1 << 15 // LEG_RT_CAP
	capVendorShift    = 16      // VENDOR_ID, bits 31:16
	capPeriodShift    = 32      // COUNTER_CLK_PERIOD, bits 63:32, femtoseconds
	// MaxPeriodFs is the longest tick the spec allows: 100 ns (2.3.4,
	// COUNTER_CLK_PERIOD "less than or equal to 0x05F5E100").
	MaxPeriodFs = 0x05F5E100
)

// General Configuration register bits (spec 2.3.5).
const (
	ConfigEnable      uint64 = 1 << 0 // ENABLE_CNF: main counter runs
	ConfigLegacyRoute uint64 = 1 << 1 // LEG_RT_CNF
)

// Timer N configuration bits (spec 2.3.8).
const TimerIntEnable uint64 = 1 << 2 // Tn_INT_ENB_CNF

// femtosecondsPerSecond converts the period to a frequency.
const femtosecondsPerSecond = 1_000_000_000_000_000

// Capabilities is the decoded General Capabilities and ID register.
type Capabilities struct {
	Revision       uint8
	NumTimers      int // NUM_TIM_CAP + 1
	Counter64      bool
	LegacyRouteCap bool
	VendorID       uint16
	PeriodFs       uint32 // main counter tick in femtoseconds
}

// ErrUnusable reports a capabilities register no working HPET has.
var ErrUnusable = errors.New("hpet: not a usable HPET")

// ParseCapabilities decodes and validates the capabilities register. It
// rejects revision 0 (the spec forbids it; an unmapped block or a disabled
// HPET reads 0 or all ones) and a period of 0 or above 100 ns.
func ParseCapabilities(v uint64) (Capabilities, error) {
	c := Capabilities{
		Revision:       uint8(v & capRevMask),
		NumTimers:      int((v>>capNumTimersShift)&capNumTimersMask) + 1,
		Counter64:      v&Cap64BitCounter != 0,
		LegacyRouteCap: v&CapLegacyRoute != 0,
		VendorID:       uint16(v >> capVendorShift),
		PeriodFs:       uint32(v >> capPeriodShift),
	}
	if c.Revision == 0 {
		return Capabilities{}, fmt.Errorf("%w: capabilities %#x have revision 0", ErrUnusable, v)
	}
	if c.PeriodFs == 0 || c.PeriodFs > MaxPeriodFs {
		return Capabilities{}, fmt.Errorf("%w: counter period %d fs is not in 1-%d fs (capabilities %#x)", ErrUnusable, c.PeriodFs, MaxPeriodFs, v)
	}
	return c, nil
}

// FrequencyHz returns the main counter's rate, rounded to the nearest hertz.
func (c Capabilities) FrequencyHz() uint64 {
	if c.PeriodFs == 0 {
		return 0
	}
	return (femtosecondsPerSecond + uint64(c.PeriodFs)/2) / uint64(c.PeriodFs)
}

// HPET is one event timer block.
type HPET struct {
	mmio hw.MMIO
	base uint64
	caps Capabilities
}

// New reads and validates the capabilities of the HPET block at base.
func New(mmio hw.MMIO, base uint64) (*HPET, error) {
	if base%8 != 0 {
		return nil, fmt.Errorf("hpet: block base %#x is not 64-bit aligned", base)
	}
	caps, err := ParseCapabilities(mmio.Read64(base + RegCapabilities))
	if err != nil {
		return nil, fmt.Errorf("%w (block at %#x)", err, base)
	}
	return &HPET{mmio: mmio, base: base, caps: caps}, nil
}

// Capabilities returns the decoded capabilities register.
func (h *HPET) Capabilities() Capabilities { return h.caps }

// FrequencyHz returns the main counter's rate.
func (h *HPET) FrequencyHz() uint64 { return h.caps.FrequencyHz() }

// CounterMask is the value after which the main counter wraps to zero:
// 2^32-1 for a 32-bit counter (about 5 minutes at 14.3 MHz).
func (h *HPET) CounterMask() uint64 {
	if h.caps.Counter64 {
		return ^uint64(0)
	}
	return 0xFFFF_FFFF
}

// Enable starts the main counter, keeping the legacy-route setting.
func (h *HPET) Enable() {
	v := h.mmio.Read64(h.base + RegConfig)
	h.mmio.Write64(h.base+RegConfig, v|ConfigEnable)
}

// Disable halts the main counter.
func (h *HPET) Disable() {
	v := h.mmio.Read64(h.base + RegConfig)
	h.mmio.Write64(h.base+RegConfig, v&^ConfigEnable)
}

// Enabled reports whether the main counter runs.
func (h *HPET) Enabled() bool {
	return h.mmio.Read64(h.base+RegConfig)&ConfigEnable != 0
}

// DisableTimerInterrupts clears every comparator's interrupt enable, so that
// firmware's settings cannot make the HPET interrupt anyone.
func (h *HPET) DisableTimerInterrupts() {
	for n := 0; n < h.caps.NumTimers; n++ {
		reg := h.base + RegTimer0Config + uint64(n)*TimerStride
		v := h.mmio.Read64(reg)
		if v&TimerIntEnable != 0 {
			h.mmio.Write64(reg, v&^TimerIntEnable)
		}
	}
}

// Counter reads the main counter. A 64-bit counter is read with one 64-bit
// access, which is atomic on x86-64. A 32-bit counter is read with one
// 32-bit access so that nothing depends on what the upper half of the
// register holds or on a 64-bit access to a 32-bit implementation being a
// single bus cycle; the result always fits CounterMask.
func (h *HPET) Counter() uint64 {
	if h.caps.Counter64 {
		return h.mmio.Read64(h.base + RegMainCounter)
	}
	return uint64(h.mmio.Read32(h.base + RegMainCounter))
}

// Elapsed returns the ticks from start to end, two Counter values, allowing
// for one wrap of the counter.
func (h *HPET) Elapsed(start, end uint64) uint64 {
	return (end - start) & h.CounterMask()
}
