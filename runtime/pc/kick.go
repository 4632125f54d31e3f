//go:build tamago

package pc

import (
	"fmt"
	"sync/atomic"
	"time"

	"tamavisor/drivers/lapic"
)

// The kick timer ends a guest's run when a device model's deadline comes
// (a guest's LAPIC timer, its PIT): each physical CPU's local APIC timer,
// one-shot, on KickVector. The interrupt makes the running guest exit
// (INTR intercept, external-interrupt exiting); the host stub only EOIs.

// lapicTimerHz is the host LAPIC timer's rate at divide-by-1, measured
// against the calibrated TSC (it is the bus or crystal clock on hardware;
// QEMU runs it at 1 GHz).
var lapicTimerHz uint64

// CalibrateKickTimer measures the LAPIC timer against the TSC clock. Call
// after CalibrateTSC, on the BSP, before guests run.
func CalibrateKickTimer(l *lapic.LAPIC) error {
	// Firmware may leave the BSP's local APIC software-disabled or with a
	// raised task priority; either would hold back the kick interrupt.
	if err := l.SoftwareEnable(0xff); err != nil {
		return err
	}
	l.SetTPR(0)
	if err := l.SetTimerDivide(1); err != nil {
		return err
	}
	if err := l.SetTimer(lapic.TimerOneShot, KickVector, true); err != nil {
		return err
	}
	const window = 10 * time.Millisecond
	l.SetTimerInitialCount(0xffffffff)
	start := nanotime()
	for nanotime()-start < int64(window) {
	}
	left := l.TimerCurrentCount()
	elapsed := nanotime() - start
	l.SetTimerInitialCount(0)
	if left == 0 || elapsed <= 0 {
		return fmt.Errorf("kick timer: the local APIC timer ran out or did not run during calibration")
	}
	lapicTimerHz = uint64(0xffffffff-left) * uint64(time.Second) / uint64(elapsed)
	kickReady[l.ID()&0xff].Store(true)
	if lapicTimerHz == 0 {
		return fmt.Errorf("kick timer: the local APIC timer does not count")
	}
	return nil
}

// LAPICTimerFrequency returns the measured host LAPIC timer rate (Hz).
func LAPICTimerFrequency() uint64 { return lapicTimerHz }

// ArmKick programs the calling CPU's kick timer to fire at clock time
// deadline (ns, nanotime's clock); 0 disarms it.
func ArmKick(deadline int64) {
	l := localAPIC
	if l == nil || lapicTimerHz == 0 {
		return
	}
	if deadline == 0 {
		l.SetTimerInitialCount(0)
		return
	}
	prepareKickTimerHere(l)
	d := deadline - nanotime()
	if d < 1000 {
		d = 1000 // already due: fire at once, after the entry
	}
	if d > 4e9 {
		d = 4e9 // the device model re-arms when its deadline is nearer
	}
	ticks := uint64(d) * lapicTimerHz / uint64(time.Second)
	if ticks > 0xffffffff {
		ticks = 0xffffffff
	}
	l.SetTimer(lapic.TimerOneShot, KickVector, false)
	l.SetTimerInitialCount(uint32(ticks))
}

// Now is the host clock in nanoseconds (the runtime's nanotime).
func Now() int64 { return nanotime() }

// Cycles reads the TSC.
func Cycles() uint64 { return rdtsc() }

// kickReady marks the CPUs (by APIC ID) whose local APIC is set up for
// the kick timer. CalibrateKickTimer sets up the boot CPU's; every other
// CPU's APIC comes out of INIT software-disabled (SDM Vol. 3A 11.4.7.2:
// LVT entries masked) and is set up the first time a vCPU arms the timer
// there: vCPU goroutines move between CPUs.
var kickReady [256]atomic.Bool

// prepareKickTimerHere enables this CPU's local APIC for the kick timer,
// once. A goroutine that moved to another CPU between reading the APIC ID
// and the setup leaves the mark unset, so the setup runs again there.
func prepareKickTimerHere(l *lapic.LAPIC) {
	id := l.ID() & 0xff
	if kickReady[id].Load() {
		return
	}
	if l.SoftwareEnable(0xff) != nil || l.SetTimerDivide(1) != nil {
		return
	}
	l.SetTPR(0)
	if l.ID()&0xff == id {
		kickReady[id].Store(true)
	}
}
