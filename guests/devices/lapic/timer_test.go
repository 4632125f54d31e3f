package lapic

import (
	"errors"
	"testing"
)

func (r *rig) at(dt int64) { r.clk.t = 1_000_000 + dt }

func (r *rig) pending(t *testing.T) (uint8, bool) {
	t.Helper()
	return r.l.PendingVector()
}

func TestTimerOneShot(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.wr(RegTimerDivide, 0x1) // divide by 4: 4 ns per count at 1 GHz
	r.wr(RegLVTTimer, 0x30)
	r.wr(RegTimerInitial, 1000)
	if got := r.l.NextDeadline(); got != 1_000_000+4000 {
		t.Fatalf("NextDeadline = %d, want start+4000", got)
	}
	r.at(400)
	if got := r.rd(RegTimerCurrent); got != 900 {
		t.Errorf("current count after 400 ns = %d, want 900", got)
	}
	r.at(3999)
	r.l.Tick(r.clk.t)
	if _, ok := r.pending(t); ok {
		t.Fatal("fired before its deadline")
	}
	if got := r.rd(RegTimerCurrent); got != 1 {
		t.Errorf("current count 1 ns before expiry = %d", got)
	}
	r.at(4000)
	r.l.Tick(r.clk.t)
	if v, ok := r.pending(t); !ok || v != 0x30 {
		t.Fatalf("after expiry: pending %#x %v", v, ok)
	}
	if got := r.rd(RegTimerCurrent); got != 0 {
		t.Errorf("current count after expiry = %d", got)
	}
	if got := r.l.NextDeadline(); got != NoDeadline {
		t.Errorf("one-shot still armed: %d", got)
	}
	if got := r.rd(RegTimerInitial); got != 1000 {
		t.Errorf("initial count = %d", got)
	}
}

func TestTimerOneShotSlowClock(t *testing.T) {
	// 100 MHz input, divide by 2: 20 ns per count.
	r := newRig(t, func(c *Config) { c.TimerHz = 100_000_000 })
	r.enable()
	r.wr(RegTimerDivide, 0x0)
	r.wr(RegLVTTimer, 0x31)
	r.wr(RegTimerInitial, 50)
	if got := r.l.NextDeadline() - r.clk.t; got != 1000 {
		t.Errorf("deadline in %d ns, want 1000", got)
	}
	r.at(210)
	if got := r.rd(RegTimerCurrent); got != 40 { // 210/20 = 10 counts
		t.Errorf("current = %d, want 40", got)
	}
	// Divide values: 0xB is divide by 1, 0xA by 128.
	for _, c := range []struct {
		div  uint32
		want int64
	}{{0xB, 500}, {0xA, 500 * 128}, {0x8, 500 * 32}, {0x3, 500 * 16}} {
		r.at(0)
		r.wr(RegTimerDivide, c.div)
		r.wr(RegTimerInitial, 50)
		if got := r.l.NextDeadline() - r.clk.t; got != c.want {
			t.Errorf("divide config %#x: deadline in %d ns, want %d", c.div, got, c.want)
		}
	}
}

func TestTimerPeriodic(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MinTimerPeriod = 10 })
	r.enable()
	r.wr(RegTimerDivide, 0xB) // divide by 1
	r.wr(RegLVTTimer, uint32(TimerPeriodic)<<17|0x40)
	r.wr(RegTimerInitial, 100)
	if got := r.l.NextDeadline(); got != 1_000_100 {
		t.Fatalf("first deadline %d", got)
	}
	r.at(100)
	r.l.Tick(r.clk.t)
	if v, ok := r.l.AckPending(); !ok || v != 0x40 {
		t.Fatalf("first period: %#x %v", v, ok)
	}
	r.wr(RegEOI, 0)
	if got := r.l.NextDeadline(); got != 1_000_200 {
		t.Errorf("second deadline %d, want start+200", got)
	}
	r.at(150)
	if got := r.rd(RegTimerCurrent); got != 50 {
		t.Errorf("current mid-period = %d, want 50", got)
	}
	r.at(200)
	if got := r.rd(RegTimerCurrent); got != 100 {
		t.Errorf("current at reload = %d, want 100 (never 0 in periodic mode)", got)
	}
	// A late tick coalesces missed periods into one interrupt and
	// keeps the phase.
	r.at(1050)
	r.l.Tick(r.clk.t)
	if v, ok := r.l.AckPending(); !ok || v != 0x40 {
		t.Fatalf("late tick: %#x %v", v, ok)
	}
	if _, ok := r.l.PendingVector(); ok {
		t.Error("more than one interrupt pending after coalescing")
	}
	if got := r.l.NextDeadline(); got != 1_001_100 {
		t.Errorf("deadline after a late tick %d, want start+1100", got)
	}
	if got := r.rd(RegTimerCurrent); got != 50 {
		t.Errorf("current after a late tick = %d, want 50", got)
	}
	// Masked: no interrupt, but the timer keeps its period.
	r.wr(RegEOI, 0)
	r.wr(RegLVTTimer, uint32(TimerPeriodic)<<17|LVTMasked|0x40)
	r.at(1100)
	r.l.Tick(r.clk.t)
	if _, ok := r.l.PendingVector(); ok {
		t.Error("masked timer interrupted")
	}
	if got := r.l.NextDeadline(); got != 1_001_200 {
		t.Errorf("masked timer deadline %d", got)
	}
	// Initial count 0 stops it.
	r.wr(RegTimerInitial, 0)
	if r.l.NextDeadline() != NoDeadline || r.rd(RegTimerCurrent) != 0 {
		t.Error("initial count 0 did not stop the timer")
	}
}

func TestTimerPeriodicFloor(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MinTimerPeriod = 1000 })
	r.enable()
	r.wr(RegTimerDivide, 0xB)
	r.wr(RegLVTTimer, uint32(TimerPeriodic)<<17|0x40)
	r.wr(RegTimerInitial, 10)
	if got := r.l.NextDeadline() - r.clk.t; got != 1000 {
		t.Errorf("10 ns period armed in %d ns, want the 1000 ns floor", got)
	}
	r.at(1000)
	r.l.Tick(r.clk.t)
	if got := r.l.NextDeadline() - r.clk.t; got != 1000 {
		t.Errorf("re-armed in %d ns, want 1000", got)
	}
}

func TestTimerDivideChangeMidCount(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.wr(RegTimerDivide, 0xB)
	r.wr(RegLVTTimer, 0x30)
	r.wr(RegTimerInitial, 1000)
	r.at(500)
	r.wr(RegTimerDivide, 0x0) // divide by 2 from count 500
	if got := r.l.NextDeadline(); got != 1_000_000+500+1000 {
		t.Errorf("deadline %d, want start+1500", got)
	}
	r.at(1000)
	if got := r.rd(RegTimerCurrent); got != 250 {
		t.Errorf("current = %d, want 250", got)
	}
}

func TestTimerModeChangeDisarms(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.wr(RegLVTTimer, 0x30)
	r.wr(RegTimerInitial, 1000)
	r.wr(RegLVTTimer, uint32(TimerPeriodic)<<17|0x30)
	if r.l.NextDeadline() != NoDeadline || r.rd(RegTimerInitial) != 0 {
		t.Error("mode change left the timer armed")
	}
	// Same mode, other vector: keeps counting.
	r.wr(RegTimerInitial, 1000)
	r.wr(RegLVTTimer, uint32(TimerPeriodic)<<17|0x31)
	if r.l.NextDeadline() == NoDeadline {
		t.Error("vector change disarmed the timer")
	}
}

func TestTSCDeadline(t *testing.T) {
	r := newRig(t, nil) // guest TSC at 2 GHz
	r.enable()
	r.tsc = 10_000
	// Outside TSC-deadline mode, the MSR reads 0 and writes are ignored.
	if err := r.l.WriteMSR(MSRTSCDeadline, 12_000); err != nil {
		t.Fatal(err)
	}
	if got := r.msr(t, MSRTSCDeadline); got != 0 || r.l.NextDeadline() != NoDeadline {
		t.Errorf("one-shot mode: deadline %d, next %d", got, r.l.NextDeadline())
	}
	r.wr(RegLVTTimer, uint32(TimerTSCDeadline)<<17|0x31)
	if err := r.l.WriteMSR(MSRTSCDeadline, 12_000); err != nil {
		t.Fatal(err)
	}
	if got := r.msr(t, MSRTSCDeadline); got != 12_000 {
		t.Errorf("deadline reads %d", got)
	}
	if got := r.l.NextDeadline() - r.clk.t; got != 1000 {
		t.Errorf("2000 TSC counts at 2 GHz armed in %d ns, want 1000", got)
	}
	// The initial count is ignored in this mode.
	r.wr(RegTimerInitial, 5)
	if r.rd(RegTimerInitial) != 0 {
		t.Error("initial count written in TSC-deadline mode")
	}
	r.at(500)
	r.tsc = 11_000
	r.l.Tick(r.clk.t)
	if _, ok := r.pending(t); ok {
		t.Fatal("fired before the deadline")
	}
	if got := r.l.NextDeadline() - r.clk.t; got != 500 {
		t.Errorf("re-armed in %d ns, want 500", got)
	}
	r.at(1000)
	r.tsc = 12_000
	r.l.Tick(r.clk.t)
	if v, ok := r.pending(t); !ok || v != 0x31 {
		t.Fatalf("at the deadline: %#x %v", v, ok)
	}
	if got := r.msr(t, MSRTSCDeadline); got != 0 || r.l.NextDeadline() != NoDeadline {
		t.Errorf("after firing: deadline %d next %d", got, r.l.NextDeadline())
	}
	r.l.AckPending()
	r.wr(RegEOI, 0)
	// A deadline in the past fires at once.
	if err := r.l.WriteMSR(MSRTSCDeadline, 5); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.pending(t); !ok {
		t.Error("past deadline did not fire")
	}
	// Leaving the mode disarms.
	if err := r.l.WriteMSR(MSRTSCDeadline, 1<<40); err != nil {
		t.Fatal(err)
	}
	r.wr(RegLVTTimer, 0x31)
	if r.l.NextDeadline() != NoDeadline || r.msr(t, MSRTSCDeadline) != 0 {
		t.Error("leaving TSC-deadline mode left it armed")
	}
	// Writing 0 disarms.
	r.wr(RegLVTTimer, uint32(TimerTSCDeadline)<<17|0x31)
	r.l.WriteMSR(MSRTSCDeadline, 1<<40)
	r.l.WriteMSR(MSRTSCDeadline, 0)
	if r.l.NextDeadline() != NoDeadline {
		t.Error("deadline 0 did not disarm")
	}
}

func TestNoTSCDeadline(t *testing.T) {
	r := newRig(t, func(c *Config) { c.GuestTSC = nil; c.TSCHz = 0 })
	if _, err := r.l.ReadMSR(MSRTSCDeadline); !errors.Is(err, ErrNoTSCDeadline) {
		t.Errorf("RDMSR IA32_TSC_DEADLINE: %v", err)
	}
	if err := r.l.WriteMSR(MSRTSCDeadline, 1); !errors.Is(err, ErrNoTSCDeadline) {
		t.Errorf("WRMSR IA32_TSC_DEADLINE: %v", err)
	}
	r.enable()
	r.wr(RegLVTTimer, uint32(TimerTSCDeadline)<<17|0x31)
	if got := r.rd(RegLVTTimer); got != 0x31 {
		t.Errorf("LVT timer = %#x: TSC-deadline mode stored without support", got)
	}
	if _, err := New(Config{Clock: r.clk, TSCHz: 1}); err == nil {
		t.Error("TSCHz without GuestTSC accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("nil clock accepted")
	}
}
