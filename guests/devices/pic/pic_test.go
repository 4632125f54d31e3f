package pic

import "testing"

type notifier struct{ levels []bool }

func (n *notifier) notify(level bool) { n.levels = append(n.levels, level) }

func (p *PIC) out(port uint16, v uint8) { p.WritePort(port, 1, uint32(v)) }
func (p *PIC) in(port uint16) uint8     { return uint8(p.ReadPort(port, 1)) }

// linuxInit programs the pair as Linux's init_8259A (arch/x86/kernel/i8259.c)
// does: vectors 0x30/0x38, cascade on IR2, 8086 mode, normal EOI.
func linuxInit(p *PIC, icw4 uint8) {
	p.out(MasterData, 0xFF)
	p.out(SlaveData, 0xFF)
	p.out(MasterCommand, 0x11)
	p.out(MasterData, 0x30)
	p.out(MasterData, 1<<CascadeIRQ)
	p.out(MasterData, icw4)
	p.out(SlaveCommand, 0x11)
	p.out(SlaveData, 0x38)
	p.out(SlaveData, CascadeIRQ)
	p.out(SlaveData, icw4)
	p.out(MasterData, 0x00)
	p.out(SlaveData, 0x00)
}

func newLinuxPIC(t *testing.T) (*PIC, *notifier) {
	t.Helper()
	n := &notifier{}
	p := New(Config{Notify: n.notify})
	linuxInit(p, 0x01)
	return p, n
}

func mustPending(t *testing.T, p *PIC, want uint8) {
	t.Helper()
	v, ok := p.PendingVector()
	if !ok || v != want {
		t.Fatalf("PendingVector = %#x, %v; want %#x", v, ok, want)
	}
	if got := p.Acknowledge(); got != want {
		t.Fatalf("Acknowledge = %#x, want %#x", got, want)
	}
}

func mustIdle(t *testing.T, p *PIC) {
	t.Helper()
	if v, ok := p.PendingVector(); ok {
		t.Fatalf("PendingVector = %#x, want nothing", v)
	}
}

func TestProbeReadsBackIMR(t *testing.T) {
	// probe_8259A writes ~(1<<2) to the master IMR and reads it back.
	p := New(Config{})
	p.out(SlaveData, 0xFF)
	p.out(MasterData, 0xFB)
	if got := p.in(MasterData); got != 0xFB {
		t.Fatalf("IMR = %#x", got)
	}
	if got := p.in(SlaveData); got != 0xFF {
		t.Fatalf("slave IMR = %#x", got)
	}
}

func TestInitThenPriorityAndEOI(t *testing.T) {
	p, n := newLinuxPIC(t)
	mustIdle(t, p)

	p.SetIRQ(3, true)
	p.SetIRQ(1, true)
	if len(n.levels) != 1 || !n.levels[0] {
		t.Fatalf("notify %v, want one rise", n.levels)
	}
	mustPending(t, p, 0x31) // IRQ1 beats IRQ3

	// IRQ3 is lower than the in-service IRQ1: held back.
	mustIdle(t, p)
	// IRQ0 is higher: it nests.
	p.SetIRQ(0, true)
	mustPending(t, p, 0x30)

	p.out(MasterCommand, 0x0B) // OCW3: read ISR
	if isr := p.in(MasterCommand); isr != 0x03 {
		t.Fatalf("ISR = %#x, want IRQ0|IRQ1", isr)
	}
	p.out(MasterCommand, 0x0A) // OCW3: read IRR
	if irr := p.in(MasterCommand); irr != 0x08 {
		t.Fatalf("IRR = %#x, want IRQ3 still requesting", irr)
	}

	p.out(MasterCommand, 0x20) // non-specific EOI ends IRQ0, the highest
	mustIdle(t, p)
	p.out(MasterCommand, 0x61) // specific EOI for IRQ1
	mustPending(t, p, 0x33)
	p.out(MasterCommand, 0x63)
	mustIdle(t, p)
	if last := n.levels[len(n.levels)-1]; last {
		t.Fatal("output still asserted with nothing pending")
	}
}

func TestEdgeTriggeredLatchesOnce(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.SetIRQ(4, true)
	p.SetIRQ(4, true) // still high: no new edge
	mustPending(t, p, 0x34)
	p.out(MasterCommand, 0x20)
	mustIdle(t, p)
	p.SetIRQ(4, false)
	p.SetIRQ(4, true)
	mustPending(t, p, 0x34)
}

func TestLevelTriggeredFollowsLine(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.out(ELCRSlave, 1<<(11-8))
	p.SetIRQ(11, true)
	mustPending(t, p, 0x3B)
	// Still high after EOI: requests again.
	p.out(SlaveCommand, 0x20)
	p.out(MasterCommand, 0x20)
	mustPending(t, p, 0x3B)
	// The handler quiets the device before its EOIs, as a driver for a
	// level-triggered line must.
	p.SetIRQ(11, false)
	p.out(SlaveCommand, 0x20)
	p.out(MasterCommand, 0x20)
	mustIdle(t, p)
}

func TestCascade(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.SetIRQ(12, true)
	mustPending(t, p, 0x3C)
	p.out(MasterCommand, 0x0B)
	p.out(SlaveCommand, 0x0B)
	if m, s := p.in(MasterCommand), p.in(SlaveCommand); m != 1<<CascadeIRQ || s != 1<<4 {
		t.Fatalf("ISR master %#x slave %#x", m, s)
	}
	// While the cascade is in service a lower-priority slave line waits,
	// and so does master IRQ3 (below IR2).
	p.SetIRQ(14, true)
	p.SetIRQ(3, true)
	mustIdle(t, p)
	p.out(SlaveCommand, 0x20)
	p.out(MasterCommand, 0x20)
	mustPending(t, p, 0x3E)
	p.out(SlaveCommand, 0x20)
	p.out(MasterCommand, 0x20)
	mustPending(t, p, 0x33)
}

func TestSpurious(t *testing.T) {
	p, _ := newLinuxPIC(t)
	if got := p.Acknowledge(); got != 0x37 {
		t.Fatalf("INTA with nothing pending = %#x, want 0x37", got)
	}
	p.out(MasterCommand, 0x0B)
	if isr := p.in(MasterCommand); isr != 0 {
		t.Fatalf("spurious INTA set ISR %#x", isr)
	}

	// A level-triggered slave input that drops before INTA: the master
	// latched the cascade edge, the slave has nothing, IRQ15's vector.
	p.out(ELCRSlave, 1<<(10-8))
	p.SetIRQ(10, true)
	p.SetIRQ(10, false)
	if v, ok := p.PendingVector(); !ok || v != 0x3F {
		t.Fatalf("PendingVector = %#x, %v; want slave spurious 0x3F", v, ok)
	}
	if got := p.Acknowledge(); got != 0x3F {
		t.Fatalf("INTA = %#x, want 0x3F", got)
	}
	p.out(SlaveCommand, 0x0B)
	if isr := p.in(SlaveCommand); isr != 0 {
		t.Fatalf("slave ISR = %#x after a spurious INTA", isr)
	}
}

func TestMask(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.out(MasterData, 1<<5)
	p.SetIRQ(5, true)
	mustIdle(t, p)
	p.out(MasterData, 0)
	mustPending(t, p, 0x35)
}

func TestAutoEOIAndRotation(t *testing.T) {
	n := &notifier{}
	p := New(Config{Notify: n.notify})
	linuxInit(p, 0x03) // AEOI
	p.SetIRQ(6, true)
	mustPending(t, p, 0x36)
	p.out(MasterCommand, 0x0B)
	if isr := p.in(MasterCommand); isr != 0 {
		t.Fatalf("AEOI left ISR %#x", isr)
	}
	// Set priority: IR3 lowest, so IR4 is highest and beats IR1.
	p.out(MasterCommand, 0xC3)
	p.SetIRQ(1, true)
	p.SetIRQ(4, true)
	mustPending(t, p, 0x34)
	mustPending(t, p, 0x31)

	// Rotate in AEOI mode: after servicing IR5 it becomes the lowest, so
	// IR7 (rank after 6) beats IR0.
	p.out(MasterCommand, 0x80)
	p.SetIRQ(5, true)
	mustPending(t, p, 0x35)
	p.SetIRQ(0, true)
	p.SetIRQ(7, true)
	mustPending(t, p, 0x37)
	mustPending(t, p, 0x30)
}

func TestRotateOnSpecificEOI(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.SetIRQ(0, true)
	mustPending(t, p, 0x30)
	p.out(MasterCommand, 0xE0) // rotate on specific EOI, level 0
	p.SetIRQ(0, false)
	p.SetIRQ(0, true)
	p.SetIRQ(1, true)
	mustPending(t, p, 0x31) // IR0 is now the lowest
}

func TestPollMode(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.out(MasterCommand, 0x0C)
	if got := p.in(MasterCommand); got != 0 {
		t.Fatalf("poll with nothing pending = %#x", got)
	}
	p.SetIRQ(5, true)
	p.out(MasterCommand, 0x0C)
	if got := p.in(MasterData); got != 0x85 {
		t.Fatalf("poll = %#x, want 0x85", got)
	}
	p.out(MasterCommand, 0x0B)
	if isr := p.in(MasterCommand); isr != 1<<5 {
		t.Fatalf("ISR after poll = %#x", isr)
	}
	// Poll is one-shot: the next read of the data port is the IMR.
	if got := p.in(MasterData); got != 0 {
		t.Fatalf("IMR after poll = %#x", got)
	}
}

func TestSpecialMaskMode(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.SetIRQ(1, true)
	mustPending(t, p, 0x31)
	p.SetIRQ(6, true)
	mustIdle(t, p)
	// Mask IR1 and enter special mask mode: lower levels are let through.
	p.out(MasterData, 1<<1)
	p.out(MasterCommand, 0x68)
	mustPending(t, p, 0x36)
}

func TestICW1ResetsEdgeSense(t *testing.T) {
	p, _ := newLinuxPIC(t)
	p.SetIRQ(3, true) // latched
	linuxInit(p, 0x01)
	mustIdle(t, p) // IRR cleared; the line is still high: no new edge
	p.SetIRQ(3, false)
	p.SetIRQ(3, true)
	mustPending(t, p, 0x33)
}

func TestELCRHardwiredBits(t *testing.T) {
	p := New(Config{})
	p.out(ELCRMaster, 0xFF)
	p.out(ELCRSlave, 0xFF)
	if m, s := p.in(ELCRMaster), p.in(ELCRSlave); m != 0xF8 || s != 0xDE {
		t.Fatalf("ELCR %#x %#x, want 0xf8 0xde", m, s)
	}
	// A 16-bit access covers both.
	p.WritePort(ELCRMaster, 2, 0)
	if v := p.ReadPort(ELCRMaster, 2); v != 0 {
		t.Fatalf("ELCR pair = %#x", v)
	}
}

func TestIgnoredLines(t *testing.T) {
	p, n := newLinuxPIC(t)
	p.SetIRQ(2, true)
	p.SetIRQ(16, true)
	p.SetIRQ(0xFFFFFFFF, true)
	mustIdle(t, p)
	if len(n.levels) != 0 {
		t.Fatalf("notify %v", n.levels)
	}
}

func TestResetAndState(t *testing.T) {
	p, n := newLinuxPIC(t)
	p.SetIRQ(9, true)
	s := p.State()
	p.Reset()
	// Requests are dropped; IRQ9's line is still high, so it needs a new
	// edge, after which the power-on vector base 0x70 applies.
	mustIdle(t, p)
	p.SetIRQ(9, false)
	p.SetIRQ(9, true)
	mustPending(t, p, 0x71)
	p.SetState(s)
	mustPending(t, p, 0x39)
	if !n.levels[0] {
		t.Fatal("notify")
	}
	bad := s
	bad.Master.InitStep = 200
	bad.Master.HighestPriority = 99
	p.SetState(bad)
	got := p.State()
	if got.Master.InitStep != initDone || got.Master.HighestPriority > 7 {
		t.Fatalf("SetState kept out-of-range fields: %+v", got.Master)
	}
}

func TestAccessesDoNotAllocate(t *testing.T) {
	p := New(Config{Notify: func(bool) {}})
	linuxInit(p, 0x01)
	allocs := testing.AllocsPerRun(1000, func() {
		p.SetIRQ(1, true)
		p.SetIRQ(12, true)
		p.PendingVector()
		p.Acknowledge()
		p.Acknowledge()
		p.WritePort(SlaveCommand, 1, 0x20)
		p.WritePort(MasterCommand, 1, 0x20)
		p.WritePort(MasterCommand, 1, 0x20)
		p.ReadPort(MasterData, 1)
		p.ReadPort(ELCRMaster, 2)
		p.SetIRQ(1, false)
		p.SetIRQ(12, false)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}
