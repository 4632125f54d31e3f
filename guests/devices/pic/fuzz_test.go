package pic

import "testing"

var fuzzSizes = [...]uint8{1, 1, 1, 2, 4, 0, 3, 8}

var fuzzPorts = [...]uint16{MasterCommand, MasterData, SlaveCommand, SlaveData, ELCRMaster, ELCRSlave, 0x22, 0x4D2}

// FuzzPIC drives the pair with arbitrary port accesses, line changes and
// INTA cycles, and checks that PendingVector predicts Acknowledge, that
// Notify tracks the output, and that hard-wired bits stay hard-wired.
// Each step is 3 bytes: op, selector, value.
func FuzzPIC(f *testing.F) {
	f.Add([]byte{0, 0, 0x11, 0, 1, 0x30, 0, 1, 0x04, 0, 1, 0x01, 1, 3, 1, 2, 0, 0})
	f.Add([]byte{0, 0, 0x0C, 1, 12, 1, 3, 0, 0, 0, 2, 0x0B, 4, 0, 0, 2, 0, 0})
	f.Add([]byte{0, 4, 0xFF, 1, 5, 1, 1, 5, 0, 2, 0, 0, 0, 0, 0x68, 0, 0, 0xC4})
	f.Fuzz(func(t *testing.T, prog []byte) {
		var out []bool
		p := New(Config{Notify: func(l bool) { out = append(out, l) }})
		for len(prog) >= 3 {
			op, sel, v := prog[0], prog[1], prog[2]
			prog = prog[3:]
			switch op % 6 {
			case 0:
				p.WritePort(fuzzPorts[sel%8], fuzzSizes[v>>5], uint32(v))
			case 1:
				p.SetIRQ(uint32(sel%20), v&1 != 0)
			case 2, 3:
				want, ok := p.PendingVector()
				got := p.Acknowledge()
				if ok && got != want {
					t.Fatalf("PendingVector %#x but Acknowledge %#x", want, got)
				}
				s := p.State()
				if !ok && got != s.Master.VectorBase+7 {
					t.Fatalf("spurious INTA gave %#x, want %#x", got, s.Master.VectorBase+7)
				}
			case 4:
				p.ReadPort(fuzzPorts[sel%8], fuzzSizes[sel>>5])
			case 5:
				p.SetState(p.State())
			}
			s := p.State()
			_, ok := p.PendingVector()
			if ok != s.Output {
				t.Fatalf("output %v but PendingVector ok %v", s.Output, ok)
			}
			if len(out) > 0 && out[len(out)-1] != s.Output {
				t.Fatalf("last notify %v, output %v", out[len(out)-1], s.Output)
			}
			if len(out) == 0 && s.Output {
				t.Fatal("output asserted without a notify")
			}
			if s.Master.ELCR&^0xF8 != 0 || s.Slave.ELCR&^0xDE != 0 {
				t.Fatalf("ELCR hard-wired bits set: %#x %#x", s.Master.ELCR, s.Slave.ELCR)
			}
			if s.Master.VectorBase&7 != 0 || s.Slave.VectorBase&7 != 0 {
				t.Fatal("vector base low bits set")
			}
		}
	})
}
