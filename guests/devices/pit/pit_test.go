package pit

import (
	"math/rand"
	"testing"
)

type manualClock struct{ ns int64 }

func (c *manualClock) Now() int64 { return c.ns }

type irqRecorder struct{ levels []bool }

func (r *irqRecorder) SetIRQ(gsi uint32, level bool) {
	if gsi != ISAIRQ {
		panic("wrong line")
	}
	r.levels = append(r.levels, level)
}

func newPIT(t testing.TB) (*PIT, *manualClock, *irqRecorder) {
	t.Helper()
	clk := &manualClock{}
	irq := &irqRecorder{}
	p, err := New(Config{Clock: clk, Lines: irq, IRQ: ISAIRQ})
	if err != nil {
		t.Fatal(err)
	}
	return p, clk, irq
}

func (p *PIT) out(port uint16, v uint8) { p.WritePort(port, 1, uint32(v)) }
func (p *PIT) in(port uint16) uint8     { return uint8(p.ReadPort(port, 1)) }

func (p *PIT) read16(port uint16) uint16 {
	lo := p.in(port)
	return uint16(lo) | uint16(p.in(port))<<8
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewNeedsClock(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("PIT without a clock accepted")
	}
}

// TestMode2PeriodAndReadback programs counter 0 as Linux's PIT clockevent
// does in periodic mode (control word 0x34, count LATCH = 1193 for
// HZ=1000) and checks the IRQ0 edges and the counter values read back.
func TestMode2PeriodAndReadback(t *testing.T) {
	p, clk, irq := newPIT(t)
	p.out(ControlPort, 0x34)
	p.out(Channel0Port, 1193&0xFF)
	p.out(Channel0Port, 1193>>8)
	if !equal(irq.levels, []bool{true}) {
		t.Fatalf("IRQ0 after programming mode 2: %v, want OUT high", irq.levels)
	}
	if d := p.NextDeadline(); d != 999848 {
		t.Fatalf("first deadline %d ns, want 999848 (1193 ticks)", d)
	}
	p.Tick(999847)
	if len(irq.levels) != 1 {
		t.Fatalf("edge delivered 1 ns early: %v", irq.levels)
	}
	p.Tick(999848)
	if !equal(irq.levels, []bool{true, false, true}) {
		t.Fatalf("IRQ0 after one period: %v, want a low-high edge", irq.levels)
	}
	if d := p.NextDeadline(); d != 1999695 {
		t.Fatalf("second deadline %d, want 1999695 (2386 ticks)", d)
	}

	// Counter values: N - (ticks mod N).
	for _, c := range []struct {
		ns   int64
		want uint16
	}{
		{250000, 1193 - 298},  // 298 ticks
		{500000, 1193 - 596},  // 596 ticks
		{1000000, 1193},       // 1193 ticks: just reloaded
		{1500000, 1193 - 596}, // 1789 ticks = 1193 + 596
		{2000000, 1193},       // 2386 ticks: reloaded again
	} {
		clk.ns = c.ns
		p.out(ControlPort, 0x00) // latch counter 0
		if got := p.read16(Channel0Port); got != c.want {
			t.Errorf("counter at %d ns = %d, want %d", c.ns, got, c.want)
		}
	}
}

func TestLatchHoldsValue(t *testing.T) {
	p, clk, _ := newPIT(t)
	p.out(ControlPort, 0x34)
	p.out(Channel0Port, 0)
	p.out(Channel0Port, 0) // 65536
	clk.ns = 500000        // 596 ticks
	p.out(ControlPort, 0x00)
	clk.ns = 700000
	lo := p.in(Channel0Port)
	p.out(ControlPort, 0x00) // ignored: already latched
	clk.ns = 900000
	hi := p.in(Channel0Port)
	if got := uint16(lo) | uint16(hi)<<8; got != 65536-596 {
		t.Fatalf("latched value %d, want %d", got, 65536-596)
	}
	// Unlatched reads follow the clock again.
	clk.ns = 1000000 // 1193 ticks
	if got := p.read16(Channel0Port); got != 65536-1193 {
		t.Fatalf("live value %d, want %d", got, 65536-1193)
	}
}

func TestReadBack(t *testing.T) {
	p, clk, _ := newPIT(t)
	p.out(ControlPort, 0x34)
	p.out(ControlPort, 0xE2) // status of counter 0 before a count
	if st := p.in(Channel0Port); st != 0x80|statusNullCount|0x34 {
		t.Fatalf("status before count = %#x", st)
	}
	p.out(Channel0Port, 1000&0xFF)
	p.out(Channel0Port, 1000>>8)
	clk.ns = 83810           // 100 ticks
	p.out(ControlPort, 0xC2) // latch count and status of counter 0
	if st := p.in(Channel0Port); st != 0x80|0x34 {
		t.Fatalf("status = %#x, want OUT high, count loaded, mode 2, LSB/MSB", st)
	}
	if got := p.read16(Channel0Port); got != 900 {
		t.Fatalf("read-back count = %d, want 900", got)
	}
	// Status only (bit 5 set: no count), counter 2 in mode 0 before count.
	p.out(ControlPort, 0xB0)
	p.out(ControlPort, 0xE8)
	if st := p.in(Channel2Port); st != statusNullCount|0x30 {
		t.Fatalf("counter 2 status = %#x, want OUT low, null count, mode 0", st)
	}
}

// TestChannel2Calibration replays Linux's pit_calibrate_tsc and
// quick_pit_calibrate use of counter 2 and port 0x61.
func TestChannel2Calibration(t *testing.T) {
	p, clk, irq := newPIT(t)
	clk.ns = 1_000_000_000
	start := clk.ns
	p.out(PortB, (p.in(PortB)&^PortBSpeaker)|PortBGate2)
	p.out(ControlPort, 0xB0)
	p.out(Channel2Port, 0xFF)
	p.out(Channel2Port, 0xFF)
	if p.in(PortB)&PortBOut2 != 0 {
		t.Fatal("OUT2 high right after loading mode 0")
	}
	// MSB steps down every 256 ticks (pit_expect_msb).
	clk.ns = start + 214553 // 256 ticks
	p.in(Channel2Port)
	if msb := p.in(Channel2Port); msb != 0xFE {
		t.Fatalf("MSB after 256 ticks = %#x, want 0xfe", msb)
	}
	clk.ns = start + 54924564 - 1
	if p.in(PortB)&PortBOut2 != 0 {
		t.Fatal("OUT2 high before terminal count")
	}
	clk.ns = start + 54924564 // 65535 ticks
	if p.in(PortB)&PortBOut2 == 0 {
		t.Fatal("OUT2 low at terminal count")
	}
	// Counter wraps and keeps counting; OUT2 stays high.
	clk.ns = start + 54925402 + 83810 // 65536 + 100 ticks
	if got := p.read16(Channel2Port); got != 0xFFFF-100 {
		t.Fatalf("counter after wrap = %#x", got)
	}
	if p.in(PortB)&PortBOut2 == 0 {
		t.Fatal("OUT2 fell after terminal count")
	}
	if len(irq.levels) != 0 {
		t.Fatalf("counter 2 drove IRQ0: %v", irq.levels)
	}
}

func TestGateSuspendsMode0(t *testing.T) {
	p, clk, _ := newPIT(t)
	p.out(ControlPort, 0xB0)
	p.out(Channel2Port, 200)
	p.out(Channel2Port, 0)
	// Gate low: no counting.
	clk.ns = 1_000_000
	if got := p.read16(Channel2Port); got != 200 {
		t.Fatalf("counted with gate low: %d", got)
	}
	p.out(PortB, PortBGate2)
	clk.ns += 83810 // 100 ticks
	p.out(PortB, 0)
	clk.ns += 10_000_000
	if got := p.read16(Channel2Port); got != 100 {
		t.Fatalf("after 100 ticks with the gate up: %d, want 100", got)
	}
	p.out(PortB, PortBGate2)
	clk.ns += 83810
	if got := p.read16(Channel2Port); got != 0 {
		t.Fatalf("after 200 ticks: %d, want 0", got)
	}
	if p.in(PortB)&PortBOut2 == 0 {
		t.Fatal("OUT2 low at terminal count")
	}
}

func TestMode0OneShotIRQ(t *testing.T) {
	p, clk, irq := newPIT(t)
	p.out(ControlPort, 0x30)
	p.out(Channel0Port, 100)
	p.out(Channel0Port, 0)
	if len(irq.levels) != 0 {
		t.Fatalf("IRQ0 driven high in mode 0: %v", irq.levels)
	}
	if d := p.NextDeadline(); d != 83810 {
		t.Fatalf("deadline %d, want 83810", d)
	}
	clk.ns = 83810
	p.Tick(clk.ns)
	if !equal(irq.levels, []bool{true}) {
		t.Fatalf("IRQ0 %v, want one rise at terminal count", irq.levels)
	}
	if d := p.NextDeadline(); d != NoDeadline {
		t.Fatalf("one-shot re-armed: %d", d)
	}
	// Rewriting the count drops OUT and arms again.
	p.out(Channel0Port, 50)
	p.out(Channel0Port, 0)
	if !equal(irq.levels, []bool{true, false}) {
		t.Fatalf("IRQ0 %v, want low after a new count", irq.levels)
	}
	if d := p.NextDeadline(); d <= clk.ns || d == NoDeadline {
		t.Fatalf("deadline %d after re-arming at %d", d, clk.ns)
	}
}

func TestMode3SquareWave(t *testing.T) {
	p, clk, irq := newPIT(t)
	p.out(ControlPort, 0x36)
	p.out(Channel0Port, 1000&0xFF)
	p.out(Channel0Port, 1000>>8)
	clk.ns = 83810 // 100 ticks into the high half
	if got := p.read16(Channel0Port); got != 800 {
		t.Fatalf("mode 3 counter = %d, want 1000-2*100", got)
	}
	p.out(ControlPort, 0xE2)
	if st := p.in(Channel0Port); st&statusOut == 0 {
		t.Fatal("OUT low in the first half")
	}
	clk.ns = 502864 // 600 ticks: second half
	p.out(ControlPort, 0xE2)
	if st := p.in(Channel0Port); st&statusOut != 0 {
		t.Fatal("OUT high in the second half")
	}
	if d := p.NextDeadline(); d != 838096 { // 1000 ticks
		t.Fatalf("deadline %d", d)
	}
	p.Tick(838096)
	if !equal(irq.levels, []bool{true, false, true}) {
		t.Fatalf("IRQ0 %v", irq.levels)
	}
}

func TestLateTickCoalesces(t *testing.T) {
	p, clk, irq := newPIT(t)
	p.out(ControlPort, 0x34)
	p.out(Channel0Port, 1193&0xFF)
	p.out(Channel0Port, 1193>>8)
	p.Tick(4999238 + 10) // 5 periods late
	if len(irq.levels) != 3 {
		t.Fatalf("IRQ0 %v, want a single edge", irq.levels)
	}
	if d := p.NextDeadline(); d != 5999085 {
		t.Fatalf("next deadline %d, want the 6th period 5999085", d)
	}
	// A port access catches up an overdue edge too.
	clk.ns = 6_000_000
	p.in(PortB)
	if len(irq.levels) != 5 {
		t.Fatalf("port access did not deliver the overdue edge: %v", irq.levels)
	}
}

func TestMinimumPeriod(t *testing.T) {
	p, _, _ := newPIT(t)
	p.out(ControlPort, 0x34)
	p.out(Channel0Port, 2)
	p.out(Channel0Port, 0)
	if d := p.NextDeadline(); d != 100572 { // MinPeriodTicks
		t.Fatalf("deadline %d with count 2, want the floor of %d ticks", d, MinPeriodTicks)
	}
	p.Tick(100572)
	if d := p.NextDeadline(); d != 201143 {
		t.Fatalf("second deadline %d", d)
	}
}

func TestAccessModesAndBCD(t *testing.T) {
	p, clk, _ := newPIT(t)
	p.out(ControlPort, 0x10|0x04) // counter 0, LSB only, mode 2
	p.out(Channel0Port, 200)
	clk.ns = 83810 // 100 ticks
	if got := p.in(Channel0Port); got != 100 {
		t.Fatalf("LSB-only read %d", got)
	}
	if got := p.in(Channel0Port); got != 100 {
		t.Fatalf("LSB-only reads do not toggle: %d", got)
	}
	p.out(ControlPort, 0x60) // counter 1, MSB only, mode 0
	p.out(Channel1Port, 0x02)
	if got := p.in(Channel1Port); got != 0x02 {
		t.Fatalf("MSB-only read %#x", got)
	}
	p.out(ControlPort, 0xB1) // counter 2, LSB/MSB, mode 0, BCD
	p.out(PortB, PortBGate2)
	p.out(Channel2Port, 0x00)
	p.out(Channel2Port, 0x10) // 1000 decimal
	clk.ns += 839             // 1 tick
	if got := p.read16(Channel2Port); got != 0x0999 {
		t.Fatalf("BCD counter after one tick = %#x, want 0x0999", got)
	}
	p.out(ControlPort, 0xE8)
	if st := p.in(Channel2Port); st&1 == 0 {
		t.Fatalf("status %#x lacks BCD", st)
	}
}

func TestPortB(t *testing.T) {
	p, clk, _ := newPIT(t)
	p.out(PortB, 0xFF)
	clk.ns = 0
	if got := p.in(PortB); got&0x0F != 0x0F || got&0xC0 != 0 {
		t.Fatalf("port B = %#x", got)
	}
	r1 := p.in(PortB) & PortBRefresh
	clk.ns = refreshPeriodNs
	if r2 := p.in(PortB) & PortBRefresh; r1 == r2 {
		t.Fatal("refresh bit does not toggle")
	}
	if got := p.in(ControlPort); got != 0xFF {
		t.Fatalf("control port read %#x", got)
	}
}

func TestTickConversions(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 10000; i++ {
		tk := uint64(r.Int63n(1 << 40))
		ns := ticksToNs(tk)
		if nsToTicks(ns) != tk || (tk > 0 && nsToTicks(ns-1) != tk-1) {
			t.Fatalf("ticks %d -> %d ns -> %d ticks (%d at -1 ns)", tk, ns, nsToTicks(ns), nsToTicks(ns-1))
		}
	}
	if got := nsToTicks(9_000_000_000_000_000_000); got == 0 {
		t.Fatal("large durations overflow")
	}
	if ticksToNs(1<<62) != NoDeadline {
		t.Fatal("huge tick counts do not saturate")
	}
}

func TestSetStateSanitizes(t *testing.T) {
	p, _, _ := newPIT(t)
	s := p.State()
	s.Channels[0].Mode = 9
	s.Channels[0].Access = 0
	s.Channels[1].Reload = 0
	s.Channels[1].Loaded = true
	s.Channels[0].Gate = false
	p.SetState(s)
	got := p.State()
	if got.Channels[0].Mode > 5 || got.Channels[0].Access == 0 || got.Channels[1].Reload == 0 || !got.Channels[0].Gate {
		t.Fatalf("SetState kept nonsense: %+v", got.Channels)
	}
	p.in(Channel1Port) // must not divide by zero
}

type countingIRQ struct{ n int }

func (c *countingIRQ) SetIRQ(uint32, bool) { c.n++ }

func TestAccessesDoNotAllocate(t *testing.T) {
	clk := &manualClock{}
	p, err := New(Config{Clock: clk, Lines: &countingIRQ{}})
	if err != nil {
		t.Fatal(err)
	}
	p.out(ControlPort, 0x34)
	p.out(Channel0Port, 0xA9)
	p.out(Channel0Port, 0x04)
	allocs := testing.AllocsPerRun(1000, func() {
		clk.ns += 1_000_000
		p.Tick(clk.ns)
		p.NextDeadline()
		p.WritePort(ControlPort, 1, 0xC2)
		p.ReadPort(Channel0Port, 1)
		p.ReadPort(Channel0Port, 2)
		p.WritePort(PortB, 1, 1)
		p.ReadPort(PortB, 1)
		p.WritePort(ControlPort, 1, 0xB0)
		p.WritePort(Channel2Port, 2, 0xFFFF)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}
