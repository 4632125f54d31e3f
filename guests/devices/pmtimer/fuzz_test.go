package pmtimer

import "testing"

var fuzzSizes = [...]uint8{1, 1, 2, 2, 4, 0, 3, 8}

// FuzzPM writes arbitrary values to arbitrary ports around the blocks while
// the clock moves, and checks that the timer stays within its width, that
// SCI_EN always reads 1 and SLP_EN 0, that PowerOff runs at most once and
// only for S5, and that the SCI follows status and enable. Each step is 5
// bytes: op, port offset, size, value, clock step.
func FuzzPM(f *testing.F) {
	f.Add([]byte{1, 4, 2, 0x00, 0, 1, 5, 1, 0x34, 9, 0, 8, 4, 0, 200})
	f.Add([]byte{1, 2, 2, 0x21, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0, 255, 1, 1, 1, 0x01, 0})
	f.Add([]byte{1, 3, 4, 0xFF, 0, 3, 0, 0, 0, 0, 0, 6, 4, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		h := newPM(t, len(prog)%2 == 1)
		for len(prog) >= 5 {
			op, off, size, v, step := prog[0], uint16(prog[1]%16), fuzzSizes[prog[2]%8], prog[3], prog[4]
			prog = prog[5:]
			h.clk.ns += int64(step) * int64(step) * int64(step) * 1000
			powerOffs := h.powerOff
			cnt := h.pm.State().Control
			switch op % 4 {
			case 0:
				h.pm.ReadPort(base+off-2, size)
			case 1:
				h.pm.WritePort(base+off-2, size, uint32(v)*0x01010101)
			case 2:
				h.pm.PowerButton()
			case 3:
				h.pm.SetState(h.pm.State())
			}
			if h.powerOff > 1 {
				t.Fatalf("PowerOff called %d times", h.powerOff)
			}
			if h.powerOff != powerOffs && op%4 != 1 {
				t.Fatal("PowerOff without a write")
			}
			if h.powerOff != powerOffs {
				if typ := h.pm.State().Control & ControlSleepType >> 10; typ != 5 {
					t.Fatalf("PowerOff for sleep type %d (control was %#x)", typ, cnt)
				}
			}
			tmr := h.pm.ReadPort(base+8, 4)
			if !h.pm.cfg.Timer32 && tmr >= 1<<24 {
				t.Fatalf("24-bit timer read %#x", tmr)
			}
			c := h.pm.ReadPort(base+4, 2)
			if c&uint32(ControlSCIEnable) == 0 || c&uint32(ControlSleepEnable) != 0 {
				t.Fatalf("PM1a_CNT = %#x", c)
			}
			s := h.pm.State()
			if s.SCILevel != (s.Status&s.Enable&sciSources != 0) {
				t.Fatalf("SCI %v with status %#x enable %#x", s.SCILevel, s.Status, s.Enable)
			}
		}
	})
}
