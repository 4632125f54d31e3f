package lapic

import (
	"math"
	"math/bits"
)

// timerState is the APIC timer (SDM Vol. 3A 11.5.4). In one-shot and
// periodic mode the current count is not stored: it is computed from the
// time the count last had a known value (epoch, epochCount), so a guest
// reading it costs nothing and no host timer ticks per count.
type timerState struct {
	initial    uint32 // initial-count register
	divide     uint32 // divide-configuration register, bits 0, 1 and 3
	running    bool   // a one-shot or periodic count is in progress
	epoch      int64  // clock time at which the count was epochCount
	epochCount uint64
	expiry     int64  // clock time of the next interrupt, or NoDeadline
	deadline   uint64 // IA32_TSC_DEADLINE; 0 is disarmed
}

const (
	nsPerSecond = 1_000_000_000
	// maxTimerNs bounds every computed duration, far beyond any real
	// count (2^32 counts * 128 at 1 kHz is about 5.5e14 ns), so that
	// sums with clock times cannot overflow.
	maxTimerNs                  = int64(1) << 62
	divideWritable              = 0xB
	timerModeReserved TimerMode = 3
)

// mulDiv returns a*b/c rounded down or, with ceil, up, saturating where
// the quotient does not fit 64 bits instead of faulting as bits.Div64 does.
func mulDiv(a, b, c uint64, ceil bool) uint64 {
	hi, lo := bits.Mul64(a, b)
	if c == 0 || hi >= c {
		return math.MaxUint64
	}
	q, r := bits.Div64(hi, lo, c)
	if ceil && r != 0 && q != math.MaxUint64 {
		q++
	}
	return q
}

func clampNs(v uint64) int64 {
	if v > uint64(maxTimerNs) {
		return maxTimerNs
	}
	return int64(v)
}

// addTime adds a duration to a clock time, saturating below NoDeadline.
func addTime(t, d int64) int64 {
	if t > NoDeadline-1-d {
		return NoDeadline - 1
	}
	return t + d
}

// divisor decodes the divide-configuration register (SDM 11.5.4, Figure
// 11-10): bits 3,1,0 = 000 divide by 2, 001 by 4, ... 110 by 128, 111 by 1.
func (t *timerState) divisor() uint64 {
	code := t.divide&3 | (t.divide&8)>>1
	return uint64(1) << ((code + 1) & 7)
}

// nsForTicks is how long the timer takes to count n times: rounded up,
// so that at the end the count has surely reached zero.
func (l *LAPIC) nsForTicks(n uint64) int64 {
	return clampNs(mulDiv(n*l.timer.divisor(), nsPerSecond, l.timerHz, true))
}

// ticksIn is how many counts pass in ns nanoseconds, rounded down.
func (l *LAPIC) ticksIn(ns int64) uint64 {
	if ns <= 0 {
		return 0
	}
	return mulDiv(uint64(ns), l.timerHz, nsPerSecond*l.timer.divisor(), false)
}

func (l *LAPIC) timerModeLocked() TimerMode {
	return TimerMode((l.lvt[lvtTimer] & LVTTimerModeMask) >> LVTTimerModeShift)
}

// currentCountLocked is the current-count register at time now.
func (l *LAPIC) currentCountLocked(now int64) uint32 {
	t := &l.timer
	if !t.running {
		return 0
	}
	n := l.ticksIn(now - t.epoch)
	if n < t.epochCount {
		return uint32(t.epochCount - n)
	}
	if l.timerModeLocked() != TimerPeriodic || t.initial == 0 {
		return 0
	}
	// Periodic: the count reloads from the initial count as it reaches
	// zero, so it never reads 0.
	return t.initial - uint32((n-t.epochCount)%uint64(t.initial))
}

// startCountLocked starts counting down from count at time now.
func (l *LAPIC) startCountLocked(now int64, count uint64) {
	t := &l.timer
	if count == 0 {
		t.running = false
		t.expiry = NoDeadline
		return
	}
	t.running = true
	t.epoch = now
	t.epochCount = count
	t.expiry = addTime(now, l.nsForTicks(count))
	if l.timerModeLocked() == TimerPeriodic && t.expiry-now < l.minPeriod {
		t.expiry = addTime(now, l.minPeriod)
	}
}

func (l *LAPIC) disarmTimerLocked() {
	t := &l.timer
	t.initial = 0
	t.running = false
	t.deadline = 0
	t.expiry = NoDeadline
}

// fireTimerLocked raises the LVT timer interrupt unless it is masked; the
// timer keeps counting either way (SDM 11.5.4).
func (l *LAPIC) fireTimerLocked() {
	e := l.lvt[lvtTimer]
	if e&LVTMasked == 0 {
		l.acceptLocked(uint8(e&LVTVectorMask), false)
	}
}

// tickLocked fires the timer if its expiry has come.
func (l *LAPIC) tickLocked(now int64) {
	t := &l.timer
	switch l.timerModeLocked() {
	case TimerTSCDeadline:
		l.armDeadlineLocked(now)
	case TimerOneShot:
		if t.running && now >= t.expiry {
			l.fireTimerLocked()
			t.running = false
			t.expiry = NoDeadline
		}
	case TimerPeriodic:
		if !t.running || now < t.expiry || t.initial == 0 {
			return
		}
		l.fireTimerLocked()
		// Periods missed while the vCPU did not run coalesce into
		// this one interrupt, as a late host timer would make them.
		// The count reloaded at the last multiple of the period
		// after the expiry.
		period := l.nsForTicks(uint64(t.initial))
		if period < 1 {
			period = 1
		}
		wrap := t.expiry
		if now > t.expiry {
			wrap += (now - t.expiry) / period * period
		}
		t.epoch = wrap
		t.epochCount = uint64(t.initial)
		t.expiry = addTime(wrap, period)
		if period < l.minPeriod && t.expiry-now < l.minPeriod {
			t.expiry = addTime(now, l.minPeriod)
		}
	}
}

// armDeadlineLocked fires a TSC deadline that has passed, or computes the
// clock time at which it will: the deadline is in guest TSC counts.
func (l *LAPIC) armDeadlineLocked(now int64) {
	t := &l.timer
	if t.deadline == 0 || l.guestTSC == nil {
		t.expiry = NoDeadline
		return
	}
	tsc := l.guestTSC()
	if tsc >= t.deadline {
		l.fireTimerLocked()
		t.deadline = 0
		t.expiry = NoDeadline
		return
	}
	t.expiry = addTime(now, clampNs(mulDiv(t.deadline-tsc, nsPerSecond, l.tscHz, true)))
}

// NextDeadline returns the clock time at which the timer next needs Tick,
// or NoDeadline: the scheduler arms a host timer for it instead of
// polling. It changes with every timer register write.
func (l *LAPIC) NextDeadline() int64 {
	l.mu.Lock()
	d := l.timer.expiry
	l.mu.Unlock()
	return d
}

// Tick fires the timer if it has expired by now (a clock time). Calling
// it early or more than once is harmless.
func (l *LAPIC) Tick(now int64) {
	l.mu.Lock()
	l.tickLocked(now)
	l.mu.Unlock()
}

// TickIfDue is Tick at the clock's current time, reading the clock only
// when a timer is armed: the injector calls it before every VM entry, so
// the run loop only has to make sure an exit happens at NextDeadline (a
// host timer, or the VMX preemption timer).
func (l *LAPIC) TickIfDue() {
	l.mu.Lock()
	if l.timer.expiry != NoDeadline {
		if now := l.clock.Now(); now >= l.timer.expiry {
			l.tickLocked(now)
		}
	}
	l.mu.Unlock()
}

// writeLVTTimerLocked stores the LVT timer entry. Changing the timer mode
// disarms the timer (SDM 11.5.4.1 for TSC-deadline; KVM does the same
// for one-shot <-> periodic, which the SDM leaves undefined).
func (l *LAPIC) writeLVTTimerLocked(now int64, v uint32) {
	l.tickLocked(now)
	old := l.timerModeLocked()
	l.lvt[lvtTimer] = v
	if l.timerModeLocked() != old {
		l.disarmTimerLocked()
	}
}

// writeInitialCountLocked starts (or, with 0, stops) a one-shot or
// periodic count. In TSC-deadline mode the register is ignored (SDM
// 11.5.4.1).
func (l *LAPIC) writeInitialCountLocked(now int64, v uint32) {
	switch l.timerModeLocked() {
	case TimerOneShot, TimerPeriodic:
		l.timer.initial = v
		l.startCountLocked(now, uint64(v))
	}
}

// writeDivideLocked changes the divider; a count in progress continues
// from its current value at the new rate.
func (l *LAPIC) writeDivideLocked(now int64, v uint32) {
	l.tickLocked(now)
	count := l.currentCountLocked(now)
	l.timer.divide = v & divideWritable
	if l.timer.running && count != 0 {
		l.startCountLocked(now, uint64(count))
	}
}

// TSCDeadline returns IA32_TSC_DEADLINE: the armed deadline in
// TSC-deadline mode, 0 otherwise (SDM 11.5.4.1).
func (l *LAPIC) tscDeadlineLocked() uint64 {
	if l.timerModeLocked() != TimerTSCDeadline {
		return 0
	}
	return l.timer.deadline
}

// writeTSCDeadlineLocked arms (or with 0 disarms) the deadline; outside
// TSC-deadline mode the write is ignored (SDM 11.5.4.1). A deadline
// already passed fires at once.
func (l *LAPIC) writeTSCDeadlineLocked(now int64, v uint64) {
	if l.timerModeLocked() != TimerTSCDeadline {
		return
	}
	l.timer.deadline = v
	l.armDeadlineLocked(now)
}
