package rtc

import (
	"testing"
	"time"
)

var fuzzSizes = [...]uint8{1, 1, 1, 2, 4, 0, 3, 8}

// FuzzRTC writes arbitrary indexes and values (a guest setting nonsense
// times, formats and rates) while the host clock moves, and checks that
// register D stays valid, register C's unused bits stay clear, IRQ8
// follows IRQF, BCD time fields stay BCD, and NextEvent stays within a
// second. Each step is 4 bytes: op, index, value, clock step.
func FuzzRTC(f *testing.F) {
	f.Add([]byte{1, RegB, 0x86, 0, 1, RegYear, 0xFF, 0, 1, RegB, 0x02, 9, 0, RegSeconds, 0, 0})
	f.Add([]byte{1, RegA, 0x23, 0, 1, RegB, 0x72, 0, 2, 0, 0, 200, 0, RegC, 0, 0})
	f.Add([]byte{1, RegHours, 0x99, 0, 1, RegMonth, 0x00, 7, 0, RegDay, 0, 0, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		clk := &hostClock{leapDay}
		irq := &irqRecorder{}
		r, err := New(Config{Now: clk.now, Lines: irq, IRQ: ISAIRQ})
		if err != nil {
			t.Fatal(err)
		}
		for len(prog) >= 4 {
			op, idx, v, step := prog[0], prog[1], prog[2], prog[3]
			prog = prog[4:]
			clk.t = clk.t.Add(time.Duration(step) * time.Duration(step) * 61 * time.Microsecond)
			switch op % 5 {
			case 0:
				r.WritePort(IndexPort, 1, uint32(idx))
				r.ReadPort(DataPort, fuzzSizes[v%8])
			case 1:
				r.WritePort(IndexPort, 1, uint32(idx))
				r.WritePort(DataPort, fuzzSizes[step%8], uint32(v)*0x01010101)
			case 2:
				r.Tick()
			case 3:
				r.SetState(r.State())
			case 4:
				r.WritePort(IndexPort+uint16(idx%3), fuzzSizes[v%8], uint32(v))
			}
			if got := r.get(RegD); got != DVRT {
				t.Fatalf("register D = %#x", got)
			}
			s := r.State()
			if s.CMOS[RegC]&0x0F != 0 {
				t.Fatalf("register C = %#x", s.CMOS[RegC])
			}
			if s.IRQLevel != (s.CMOS[RegC]&CIRQF != 0) {
				t.Fatalf("IRQ8 %v with register C %#x", s.IRQLevel, s.CMOS[RegC])
			}
			if len(irq.levels) > 0 && irq.levels[len(irq.levels)-1] != s.IRQLevel {
				t.Fatal("IRQ8 sink out of step")
			}
			b := s.CMOS[RegB]
			if b&(BSet|BBinary) == 0 {
				for _, i := range [...]uint8{RegSeconds, RegMinutes, RegHours, RegWeekday, RegDay, RegMonth, RegYear, RegCentury} {
					v := r.get(i) &^ hourPM
					if v>>4 > 9 || v&0xF > 9 {
						t.Fatalf("register %#x = %#x is not BCD", i, v)
					}
				}
			}
			if d, ok := r.NextEvent(); ok && (d <= 0 || d > time.Second) {
				t.Fatalf("NextEvent %v", d)
			}
			r.WritePort(IndexPort, 1, uint32(s.Index))
		}
	})
}
