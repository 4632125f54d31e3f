package pit

import "testing"

var fuzzSizes = [...]uint8{1, 1, 1, 2, 4, 0, 3, 8}

// FuzzPIT drives the PIT with arbitrary port accesses, clock steps and
// ticks, checking that it never panics, that a deadline reported after a
// Tick lies in the future, that BCD counters read valid BCD, and that the
// IRQ line only ever changes level. Each step is 4 bytes: op, port, value,
// clock step.
func FuzzPIT(f *testing.F) {
	f.Add([]byte{1, 3, 0x34, 0, 1, 0, 0xA9, 0, 1, 0, 0x04, 0, 2, 0, 0, 200, 0, 0, 0, 3})
	f.Add([]byte{1, 4, 0x01, 0, 1, 3, 0xB1, 0, 1, 2, 0x00, 0, 1, 2, 0x10, 0, 0, 2, 0, 9})
	f.Add([]byte{1, 3, 0x14, 0, 1, 0, 0x01, 0, 2, 0, 0, 255, 1, 3, 0xC2, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 3, 0x36, 0, 1, 0, 0x02, 0, 1, 0, 0x00, 0, 3, 0, 0, 1, 2, 0, 0, 255})
	ports := [...]uint16{Channel0Port, Channel1Port, Channel2Port, ControlPort, PortB, 0x44, 0x60, 0x3F}
	f.Fuzz(func(t *testing.T, prog []byte) {
		clk := &manualClock{ns: 1}
		irq := &irqRecorder{}
		p, err := New(Config{Clock: clk, Lines: irq})
		if err != nil {
			t.Fatal(err)
		}
		for len(prog) >= 4 {
			op, port, v, step := prog[0], ports[prog[1]%8], prog[2], prog[3]
			prog = prog[4:]
			clk.ns += int64(step) * int64(step) * 997
			switch op % 5 {
			case 0:
				p.ReadPort(port, fuzzSizes[v%8])
			case 1:
				p.WritePort(port, 1, uint32(v))
			case 2:
				p.Tick(clk.ns)
				if d := p.NextDeadline(); d <= clk.ns {
					t.Fatalf("deadline %d not after tick at %d", d, clk.ns)
				}
			case 3:
				// Jump to the deadline exactly: an edge must come.
				d := p.NextDeadline()
				if d == NoDeadline || d < clk.ns || d-clk.ns > 1e12 {
					continue
				}
				n := len(irq.levels)
				clk.ns = d
				p.Tick(d)
				if len(irq.levels) == n || !irq.levels[len(irq.levels)-1] {
					t.Fatalf("no rising edge at the deadline %d", d)
				}
			case 4:
				p.SetState(p.State())
			}
			s := p.State()
			for i := range s.Channels {
				c := &s.Channels[i]
				if c.Mode > 5 || c.Access < 1 || c.Access > 3 {
					t.Fatalf("channel %d: mode %d access %d", i, c.Mode, c.Access)
				}
				if c.BCD {
					v := c.displayed(clk.ns)
					for s := 0; s < 16; s += 4 {
						if v>>s&0xF > 9 {
							t.Fatalf("channel %d BCD value %#x", i, v)
						}
					}
				}
			}
		}
		for i := 1; i < len(irq.levels); i++ {
			if irq.levels[i] == irq.levels[i-1] {
				t.Fatalf("IRQ0 driven to the same level twice: %v", irq.levels)
			}
		}
	})
}
