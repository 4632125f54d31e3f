package irq

import (
	"testing"

	"tamavisor/guests/devices/ioapic"
	"tamavisor/guests/devices/lapic"
	"tamavisor/guests/vcpu"
)

// fakeCPU is a vCPU with the interrupt state the injector looks at. The
// embedded nil vcpu.VCPU makes any other method the injector should not
// call fail loudly, and keeps the fake compiling as the contract grows.
type fakeCPU struct {
	vcpu.VCPU
	interruptible bool
	injected      []uint8
	window        bool
	windowCalls   int
}

func (c *fakeCPU) InjectException(v uint8, ec uint32, has bool) {
	panic("exception injected by the interrupt injector")
}
func (c *fakeCPU) InjectInterrupt(v uint8) {
	if !c.interruptible {
		panic("interrupt injected while not interruptible")
	}
	c.injected = append(c.injected, v)
	c.interruptible = false // the event slot is taken until the next exit
}
func (c *fakeCPU) Interruptible() bool            { return c.interruptible }
func (c *fakeCPU) RequestInterruptWindow(on bool) { c.window = on; c.windowCalls++ }
func (c *fakeCPU) SetTSCOffset(offset int64)      {}
func (c *fakeCPU) Dump() string                   { return "" }

// The plain fake never allows an NMI; nmiCPU models NMI blocking.
func (c *fakeCPU) NMIAllowed() bool      { return false }
func (c *fakeCPU) InjectNMI()            { panic("NMI injected while not allowed") }
func (c *fakeCPU) RequestNMIWindow(bool) {}

// nmiCPU models NMI blocking.
type nmiCPU struct {
	fakeCPU
	nmiAllowed bool
	nmis       int
	nmiWindow  bool
}

func (c *nmiCPU) NMIAllowed() bool { return c.nmiAllowed }
func (c *nmiCPU) InjectNMI() {
	if !c.nmiAllowed {
		panic("NMI injected while blocked")
	}
	c.nmis++
	c.nmiAllowed = false
	c.interruptible = false
}
func (c *nmiCPU) RequestNMIWindow(on bool) { c.nmiWindow = on }

// fakePIC is an 8259 reduced to what the router and injector use: a
// request register and a fixed vector base.
type fakePIC struct {
	lines   [16]bool
	irr     uint16
	acks    int
	setIRQs []uint32
}

func (p *fakePIC) SetIRQ(irq uint32, level bool) {
	p.setIRQs = append(p.setIRQs, irq)
	if level && !p.lines[irq] {
		p.irr |= 1 << irq
	}
	p.lines[irq] = level
}

func (p *fakePIC) PendingVector() (uint8, bool) {
	for i := 0; i < 16; i++ {
		if p.irr&(1<<i) != 0 {
			return uint8(0x20 + i), true
		}
	}
	return 0, false
}

func (p *fakePIC) Acknowledge() uint8 {
	p.acks++
	v, ok := p.PendingVector()
	if !ok {
		return 0x27 // spurious IRQ7
	}
	p.irr &^= 1 << (v - 0x20)
	return v
}

type clock struct{ t int64 }

func (c *clock) Now() int64 { return c.t }

func newAPIC(t testing.TB, bsp bool) *lapic.LAPIC {
	t.Helper()
	l, err := lapic.New(lapic.Config{ID: 0, BSP: bsp, Clock: &clock{}})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func enableAPIC(l *lapic.LAPIC) {
	l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegSVR), 4, uint64(lapic.SVREnable|0xFF))
}

func TestInjectWhenInterruptible(t *testing.T) {
	cpu := &fakeCPU{}
	l := newAPIC(t, false)
	enableAPIC(l)
	in := NewInjector(cpu, l, nil)

	in.BeforeEntry()
	if cpu.window || len(cpu.injected) != 0 {
		t.Fatal("nothing pending, yet a window or injection")
	}
	l.Accept(0x41, false)
	in.BeforeEntry()
	if !cpu.window || len(cpu.injected) != 0 {
		t.Fatalf("not interruptible: window %v injected %v, want a window request only", cpu.window, cpu.injected)
	}
	if !in.Pending() {
		t.Error("Pending false with 0x41 requested")
	}
	cpu.interruptible = true
	in.BeforeEntry()
	if len(cpu.injected) != 1 || cpu.injected[0] != 0x41 {
		t.Fatalf("injected %#x, want [0x41]", cpu.injected)
	}
	if cpu.window {
		t.Error("window still requested with nothing else pending")
	}
	if l.Ack(0x41) {
		t.Error("0x41 still in the IRR after injection")
	}
	// Second interrupt of a higher class: injected after the window.
	l.Accept(0x42, false) // same class: held until EOI
	l.Accept(0x61, false)
	in.BeforeEntry() // not interruptible (the fake took the slot)
	if !cpu.window {
		t.Fatal("no window requested for 0x61")
	}
	cpu.interruptible = true
	in.BeforeEntry()
	if got := cpu.injected[len(cpu.injected)-1]; got != 0x61 {
		t.Fatalf("injected %#x, want 0x61", got)
	}
	// 0x42 waits for the EOIs: no window while it cannot be delivered.
	cpu.interruptible = true
	in.BeforeEntry()
	if len(cpu.injected) != 2 || cpu.window {
		t.Fatalf("0x42 delivered under 0x41 in service: %#x window %v", cpu.injected, cpu.window)
	}
	l.EOI() // 0x61
	l.EOI() // 0x41
	in.BeforeEntry()
	if got := cpu.injected[len(cpu.injected)-1]; got != 0x42 {
		t.Fatalf("after EOIs injected %#x, want 0x42", got)
	}
}

func TestPICThroughVirtualWire(t *testing.T) {
	cpu := &fakeCPU{interruptible: true}
	l := newAPIC(t, true) // BSP: LINT0 ExtINT unmasked after reset
	pic := &fakePIC{}
	in := NewInjector(cpu, l, pic)
	pic.SetIRQ(4, true)
	in.BeforeEntry()
	if len(cpu.injected) != 1 || cpu.injected[0] != 0x24 || pic.acks != 1 {
		t.Fatalf("virtual wire: injected %#x acks %d", cpu.injected, pic.acks)
	}
	// ExtINT wins over a local APIC vector.
	enableAPIC(l)
	l.Accept(0xF0, false)
	pic.SetIRQ(1, true)
	cpu.interruptible = true
	in.BeforeEntry()
	if cpu.injected[1] != 0x21 {
		t.Fatalf("injected %#x, want the PIC's 0x21 first", cpu.injected[1])
	}
	if !cpu.window {
		t.Error("no window for the APIC's 0xF0 still pending")
	}
	// LINT0 masked: the PIC no longer reaches the vCPU.
	l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegLVTLINT0), 4, uint64(lapic.LVTMasked|7<<8))
	pic.SetIRQ(3, true)
	cpu.interruptible = true
	in.BeforeEntry()
	if cpu.injected[2] != 0xF0 || pic.acks != 2 {
		t.Fatalf("LINT0 masked: injected %#x acks %d, want the APIC's 0xF0", cpu.injected[2], pic.acks)
	}
}

func TestPICWhileAPICDisabled(t *testing.T) {
	cpu := &fakeCPU{interruptible: true}
	l := newAPIC(t, false) // AP: LINT0 masked
	pic := &fakePIC{}
	in := NewInjector(cpu, l, pic)
	pic.SetIRQ(6, true)
	in.BeforeEntry()
	if len(cpu.injected) != 0 || cpu.window {
		t.Fatalf("PIC reached the vCPU through a masked LINT0: %#x", cpu.injected)
	}
	// Globally disabling the APIC makes LINT0 the INTR pin.
	if err := l.WriteMSR(lapic.MSRAPICBase, lapic.DefaultBase); err != nil {
		t.Fatal(err)
	}
	in.BeforeEntry()
	if len(cpu.injected) != 1 || cpu.injected[0] != 0x26 {
		t.Fatalf("APIC disabled: injected %#x, want the PIC's 0x26", cpu.injected)
	}
	pic.SetIRQ(7, true)
	in.BeforeEntry() // the fake is not interruptible after an injection
	if !cpu.window {
		t.Error("no window for the PIC's next interrupt")
	}
}

func TestExtINTFromIOAPIC(t *testing.T) {
	cpu := &fakeCPU{interruptible: true}
	l := newAPIC(t, false)
	enableAPIC(l)
	pic := &fakePIC{}
	g := &lapic.Group{APICs: []*lapic.LAPIC{l}}
	io := ioapic.New(ioapic.DefaultBase, 0, g)
	r := NewRouter(pic, io)
	in := NewInjector(cpu, l, pic)
	// IOAPIC pin 2 in ExtINT mode (virtual wire through the IOAPIC):
	// the timer's IRQ0 reaches it, the vector comes from the PIC.
	io.WriteMMIO(ioapic.DefaultBase, 4, uint64(ioapic.RegRedirFirst+4))
	io.WriteMMIO(ioapic.DefaultBase+0x10, 4, uint64(ioapic.ModeExtINT)<<8)
	r.SetIRQ(TimerIRQ, true)
	in.BeforeEntry()
	if len(cpu.injected) != 1 || cpu.injected[0] != 0x20 {
		t.Fatalf("ExtINT through the IOAPIC: injected %#x", cpu.injected)
	}
	if l.PICRouted() {
		t.Error("ExtINT still outstanding after the PIC acknowledge")
	}
}

func TestNMI(t *testing.T) {
	cpu := &nmiCPU{fakeCPU: fakeCPU{interruptible: true}}
	l := newAPIC(t, false)
	enableAPIC(l)
	in := NewInjector(cpu, l, nil)
	l.DeliverNMI()
	l.Accept(0x50, false)
	in.BeforeEntry()
	if cpu.nmis != 0 || !cpu.nmiWindow {
		t.Fatalf("blocked NMI: injected %d, window %v", cpu.nmis, cpu.nmiWindow)
	}
	if len(cpu.injected) != 1 {
		t.Fatalf("interrupt not injected while the NMI waits: %#x", cpu.injected)
	}
	cpu.nmiAllowed = true
	in.BeforeEntry()
	if cpu.nmis != 1 || cpu.nmiWindow || l.NMIPending() {
		t.Fatalf("NMI: injected %d window %v pending %v", cpu.nmis, cpu.nmiWindow, l.NMIPending())
	}
}

func TestRouter(t *testing.T) {
	pic := &fakePIC{}
	var msgs []uint8
	io := ioapic.New(ioapic.DefaultBase, 0, deliverFunc(func(d uint32, lg bool, m, v uint8, lv bool) bool {
		msgs = append(msgs, v)
		return true
	}))
	for pin := uint8(0); pin < ioapic.NumPins; pin++ {
		io.WriteMMIO(ioapic.DefaultBase, 4, uint64(ioapic.RegRedirFirst+2*pin))
		io.WriteMMIO(ioapic.DefaultBase+0x10, 4, uint64(0x30+pin))
	}
	r := NewRouter(pic, io)
	r.SetIRQ(0, true)  // PIT: PIC IRQ0, IOAPIC pin 2
	r.SetIRQ(4, true)  // COM1: PIC IRQ4, IOAPIC pin 4
	r.SetIRQ(2, true)  // cascade: refused
	r.SetIRQ(20, true) // PCI: IOAPIC only
	if want := []uint8{0x32, 0x34, 0x30 + 20}; len(msgs) != 3 || msgs[0] != want[0] || msgs[1] != want[1] || msgs[2] != want[2] {
		t.Errorf("IOAPIC vectors %#x, want %#x", msgs, want)
	}
	if len(pic.setIRQs) != 2 || pic.setIRQs[0] != 0 || pic.setIRQs[1] != 4 {
		t.Errorf("PIC lines %v, want [0 4]", pic.setIRQs)
	}
	if r.Refused.Load() != 1 {
		t.Errorf("Refused = %d", r.Refused.Load())
	}
	if GSI(0) != 2 || GSI(9) != 9 || GSI(2) != 2 {
		t.Error("GSI mapping")
	}
	// Either device may be absent.
	NewRouter(nil, nil).SetIRQ(5, true)
}

type deliverFunc func(dest uint32, logical bool, mode uint8, vector uint8, level bool) bool

func (f deliverFunc) Deliver(dest uint32, logical bool, mode uint8, vector uint8, level bool) bool {
	return f(dest, logical, mode, vector, level)
}

// quietCPU is a fakeCPU that does not allocate on injection.
type quietCPU struct {
	fakeCPU
	last uint8
}

func (c *quietCPU) InjectInterrupt(v uint8) { c.last = v }

func TestEndToEndLevelEOIAndAllocations(t *testing.T) {
	cpu := &quietCPU{fakeCPU: fakeCPU{interruptible: true}}
	g := &lapic.Group{}
	var io *ioapic.IOAPIC
	l, err := lapic.New(lapic.Config{ID: 0, Clock: &clock{}, IPI: g, EOI: func(v uint8) { io.EOI(v) }})
	if err != nil {
		t.Fatal(err)
	}
	g.APICs = []*lapic.LAPIC{l}
	enableAPIC(l)
	io = ioapic.New(ioapic.DefaultBase, 0, g)
	// GSI 20 level-triggered to APIC 0, vector 0x70.
	io.WriteMMIO(ioapic.DefaultBase, 4, uint64(ioapic.RegRedirFirst+40))
	io.WriteMMIO(ioapic.DefaultBase+0x10, 4, 0x70|uint64(ioapic.RedirLevel))
	r := NewRouter(&fakePIC{}, io)
	in := NewInjector(cpu, l, nil)
	eoi := func() { l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegEOI), 4, 0) }

	r.SetIRQ(20, true)
	in.BeforeEntry()
	if cpu.last != 0x70 {
		t.Fatalf("injected %#x", cpu.last)
	}
	// Guest EOIs with the device still asserting: delivered again.
	cpu.last = 0
	eoi()
	in.BeforeEntry()
	if cpu.last != 0x70 {
		t.Fatal("still-asserted level interrupt not re-delivered after EOI")
	}
	// Device quiet, EOI: nothing more.
	r.SetIRQ(20, false)
	eoi()
	cpu.last = 0
	in.BeforeEntry()
	if cpu.last != 0 || io.Redirection(20)&ioapic.RedirRemoteIRR != 0 {
		t.Fatalf("after deassert and EOI: injected %#x entry %#x", cpu.last, io.Redirection(20))
	}

	n := testing.AllocsPerRun(100, func() {
		r.SetIRQ(20, true)
		in.BeforeEntry()
		r.SetIRQ(20, false)
		eoi()
		in.BeforeEntry()
	})
	if n != 0 {
		t.Errorf("interrupt round trip: %v allocations", n)
	}
}

func TestTimerFiresBeforeEntry(t *testing.T) {
	clk := &clock{t: 5000}
	l, err := lapic.New(lapic.Config{ID: 0, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	enableAPIC(l)
	l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegTimerDivide), 4, 0xB)
	l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegLVTTimer), 4, 0xEC)
	l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegTimerInitial), 4, 1000)
	cpu := &fakeCPU{interruptible: true}
	in := NewInjector(cpu, l, nil)
	clk.t = 5999
	in.BeforeEntry()
	if len(cpu.injected) != 0 {
		t.Fatalf("timer injected early: %#x", cpu.injected)
	}
	clk.t = 6000
	in.BeforeEntry()
	if len(cpu.injected) != 1 || cpu.injected[0] != 0xEC {
		t.Fatalf("at the deadline: injected %#x, want 0xEC", cpu.injected)
	}
}
