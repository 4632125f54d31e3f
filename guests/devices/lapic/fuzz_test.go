package lapic

import (
	"encoding/binary"
	"testing"
)

type nopSink struct{ n int }

func (s *nopSink) SendIPI(src uint32, ipi IPI) { s.n++ }

// fuzzOps drives two APICs in one Group from a byte string, checking the
// invariants after every step.
type fuzzState struct {
	t       *testing.T
	clk     *manualClock
	tsc     uint64
	g       *Group
	everAck [2][256]bool
}

func (s *fuzzState) check(step int) {
	t := s.t
	for i, l := range s.g.APICs {
		l.mu.Lock()
		isr, irr := l.isr, l.irr
		tpr := l.tpr
		ppr := l.pprLocked()
		expiry := l.timer.expiry
		count := l.currentCountLocked(s.clk.t)
		initial := l.timer.initial
		mode := l.timerModeLocked()
		l.mu.Unlock()
		for v := 0; v < 256; v++ {
			if isr.has(uint8(v)) && !s.everAck[i][v] {
				t.Fatalf("step %d: APIC %d has %#x in service, never acknowledged", step, i, v)
			}
			if v < firstLegalVector && irr.has(uint8(v)) {
				t.Fatalf("step %d: APIC %d requests illegal vector %#x", step, i, v)
			}
		}
		isrv, _ := isr.highest()
		want := tpr
		if tpr>>4 < uint32(isrv)>>4 {
			want = uint32(isrv) & 0xF0
		}
		if ppr != want {
			t.Fatalf("step %d: PPR %#x, want %#x (TPR %#x ISRV %#x)", step, ppr, want, tpr, isrv)
		}
		if v, ok := l.PendingVector(); ok && (!irr.has(v) || uint32(v)>>4 <= ppr>>4) {
			t.Fatalf("step %d: pending %#x not deliverable (PPR %#x)", step, v, ppr)
		}
		if mode != TimerTSCDeadline && count > initial {
			t.Fatalf("step %d: current count %d above initial %d", step, count, initial)
		}
		if expiry != NoDeadline && expiry < 0 {
			t.Fatalf("step %d: negative deadline %d", step, expiry)
		}
	}
}

func (s *fuzzState) ack(i int, v uint8, ok bool) {
	if ok {
		s.everAck[i][v] = true
	}
}

func FuzzLAPIC(f *testing.F) {
	seeds := [][]byte{
		// enable (SVR), accept, ack, EOI
		{0, 0xF0, 0, 0xFF, 1, 0, 0, 5, 0x40, 0, 6, 0, 7, 0},
		// to x2APIC, self IPI, ack
		{4, 2, 2, 0x3F, 0x55, 0, 0, 0, 0, 0, 0, 0, 6, 0},
		// periodic timer
		{0, 0xF0, 0, 0xFF, 1, 0, 0, 0x20, 0x03, 0x40, 0, 2, 0, 0, 0x80, 0x03, 0x10, 0, 0, 0, 8, 0xFF, 8, 0xFF},
		// TSC deadline
		{0, 0xF0, 0, 0xFF, 1, 0, 0, 0x20, 0x03, 0x41, 0, 4, 0, 9, 0x10, 0, 0, 0, 0, 0, 0, 0, 8, 0x80},
		// ICR IPIs: INIT, SIPI
		{0, 0x00, 0x03, 0x00, 0x45, 0, 0, 0, 0x03, 0x9A, 0x06, 0x0C, 0, 10, 0},
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &fuzzState{t: t, clk: &manualClock{t: 1000}, tsc: 1 << 20}
		s.g = &Group{}
		for id := uint32(0); id < 2; id++ {
			l, err := New(Config{
				ID: id, BSP: id == 0, Clock: s.clk,
				GuestTSC: func() uint64 { return s.tsc }, TSCHz: 1_000_000_000,
				MinTimerPeriod: 50, IPI: s.g,
			})
			if err != nil {
				t.Fatal(err)
			}
			s.g.APICs = append(s.g.APICs, l)
		}
		take := func(n int) []byte {
			if len(data) < n {
				b := make([]byte, n)
				copy(b, data)
				data = nil
				return b
			}
			b := data[:n]
			data = data[n:]
			return b
		}
		for step := 0; len(data) > 0 && step < 2000; step++ {
			op := take(1)[0]
			i := int(op>>7) & 1
			l := s.g.APICs[i]
			switch op & 0xF {
			case 0: // 32-bit register write
				b := take(6)
				off := binary.LittleEndian.Uint16(b) & 0x3F0
				l.WriteMMIO(l.Base()+uint64(off), 4, uint64(binary.LittleEndian.Uint32(b[2:])))
			case 1: // odd-sized or misaligned access anywhere near the page
				b := take(11)
				addr := DefaultBase - 8 + uint64(binary.LittleEndian.Uint16(b)&0x1FFF)
				size := []uint8{1, 2, 4, 8, 0, 3, 16}[b[2]%7]
				if b[2]&0x80 != 0 {
					l.WriteMMIO(addr, size, binary.LittleEndian.Uint64(b[3:]))
				} else {
					l.ReadMMIO(addr, size)
				}
			case 2: // x2APIC MSR write
				b := take(9)
				l.WriteMSR(MSRX2APICFirst+uint32(b[0]), binary.LittleEndian.Uint64(b[1:]))
			case 3: // x2APIC MSR read
				l.ReadMSR(MSRX2APICFirst + uint32(take(1)[0]))
			case 4: // IA32_APIC_BASE
				b := take(1)[0]
				v := DefaultBase | uint64(b&3)<<10
				if b&4 != 0 {
					v ^= 1 << (b >> 3) // sometimes a reserved bit
				}
				l.WriteMSR(MSRAPICBase, v)
			case 5: // interrupt message
				b := take(2)
				l.Deliver(DeliveryMode(b[1]&7), b[0], b[1]&8 != 0)
			case 6: // the injector's acknowledge
				v, ok := l.AckPending()
				s.ack(i, v, ok)
			case 7: // Ack of an arbitrary vector, EOI
				v := take(1)[0]
				s.ack(i, v, l.Ack(v))
				l.EOI()
			case 8: // time passes
				s.clk.t += int64(take(1)[0]) * 7
				s.tsc += uint64(take(1)[0]) * 11
				l.Tick(s.clk.t)
				if d := l.NextDeadline(); d <= s.clk.t {
					t.Fatalf("step %d: NextDeadline %d not after Tick(%d)", step, d, s.clk.t)
				}
			case 9: // TSC deadline
				l.WriteMSR(MSRTSCDeadline, binary.LittleEndian.Uint64(take(8)))
			case 10: // start-up and NMI consumers
				l.TakeInitSIPI()
				l.TakeNMI()
				l.RaiseLINT(int(take(1)[0] % 3))
			case 11:
				l.SetCR8(uint64(take(1)[0] & 0x1F))
			case 12:
				b := take(4)
				s.g.Deliver(uint32(b[0]), b[1]&1 != 0, b[2], b[3], b[1]&2 != 0)
			}
			s.check(step)
		}
	})
}

func TestAllocations(t *testing.T) {
	clk := &manualClock{t: 1000}
	var tsc uint64 = 1 << 20
	g := &Group{}
	for id := uint32(0); id < 2; id++ {
		l, err := New(Config{ID: id, BSP: id == 0, Clock: clk, IPI: g,
			GuestTSC: func() uint64 { return tsc }, TSCHz: 1e9, EOI: func(uint8) {}})
		if err != nil {
			t.Fatal(err)
		}
		l.WriteMMIO(DefaultBase+uint64(RegSVR), 4, uint64(SVREnable|0xFF))
		l.WriteMMIO(DefaultBase+uint64(RegLVTTimer), 4, uint64(TimerPeriodic)<<17|0x30)
		g.APICs = append(g.APICs, l)
	}
	x := g.APICs[1]
	if err := x.WriteMSR(MSRAPICBase, DefaultBase|APICBaseEnable|APICBaseX2APIC); err != nil {
		t.Fatal(err)
	}
	l := g.APICs[0]
	l.WriteMMIO(DefaultBase+uint64(RegTimerInitial), 4, 100000)
	paths := map[string]func(){
		"accept/ack/EOI (xAPIC)": func() {
			l.Accept(0x50, true)
			l.AckPending()
			l.WriteMMIO(DefaultBase+uint64(RegEOI), 4, 0)
		},
		"register reads": func() {
			l.ReadMMIO(DefaultBase+uint64(RegPPR), 4)
			l.ReadMMIO(DefaultBase+uint64(RegTimerCurrent), 4)
			l.ReadMMIO(DefaultBase+uint64(RegIRR)+0x10, 1)
		},
		"IPI through the group": func() {
			l.WriteMMIO(DefaultBase+uint64(RegICRHigh), 4, 1<<24)
			l.WriteMMIO(DefaultBase+uint64(RegICRLow), 4, 0x60|1<<14)
			x.AckPending()
			x.WriteMSR(0x80B, 0)
		},
		"x2APIC MSRs": func() {
			x.ReadMSR(0x80A)
			x.WriteMSR(0x808, 0x10)
			x.WriteMSR(0x83F, 0x70)
			x.AckPending()
			x.WriteMSR(0x80B, 0)
		},
		"x2APIC #GP": func() {
			x.WriteMSR(0x802, 1)
			x.ReadMSR(0x80B)
			x.WriteMSR(0x808, 1<<9)
		},
		"timer tick": func() {
			clk.t += 50000
			l.Tick(clk.t)
			clk.t += 100000
			l.TickIfDue()
			l.NextDeadline()
			l.AckPending()
			l.EOI()
		},
		"TSC deadline": func() {
			x.WriteMSR(0x832, uint64(TimerTSCDeadline)<<17|0x31)
			x.WriteMSR(MSRTSCDeadline, tsc+1000)
			tsc += 2000
			x.Tick(clk.t)
		},
		"IOAPIC-style delivery": func() {
			g.Deliver(0, false, uint8(DeliveryFixed), 0x41, true)
			l.AckPending()
			l.EOI()
		},
	}
	for name, fn := range paths {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}
