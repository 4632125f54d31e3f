package i8042

import "testing"

var fuzzSizes = [...]uint8{1, 1, 1, 2, 4, 0, 3, 8}

// FuzzController writes arbitrary commands and data and checks that the
// input buffer never reads busy (a guest would spin), that the interrupt
// lines follow the output buffer and the command byte, and that only the
// documented writes reset the machine. Each step is 3 bytes: op, value,
// size.
func FuzzController(f *testing.F) {
	f.Add([]byte{1, 0xAA, 0, 0, 0, 0, 1, 0x60, 0, 2, 0x47, 0, 2, 0xF2, 0})
	f.Add([]byte{1, 0xD3, 0, 2, 0x5A, 0, 0, 0, 0, 1, 0xD1, 0, 2, 0x00, 0})
	f.Add([]byte{3, 0x01, 0, 3, 0x00, 0, 3, 0x03, 0, 1, 0xFE, 0, 1, 0xD4, 0, 2, 0xFF, 0})
	ports := [...]uint16{DataPort, CommandPort, PortA, 0x61}
	f.Fuzz(func(t *testing.T, prog []byte) {
		h := newController()
		for len(prog) >= 3 {
			op, v, size := prog[0], prog[1], fuzzSizes[prog[2]%8]
			prog = prog[3:]
			before := h.c.State()
			resets := h.resets
			switch op % 5 {
			case 0:
				h.c.ReadPort(ports[v%4], size)
			case 1:
				h.c.WritePort(CommandPort, size, uint32(v))
			case 2:
				h.c.WritePort(DataPort, size, uint32(v))
			case 3:
				h.c.WritePort(PortA, size, uint32(v))
			case 4:
				h.c.SetState(h.c.State())
			}
			if h.resets != resets && size != 0 {
				ok := op%5 == 1 && v >= 0xF0 && v&1 == 0 ||
					op%5 == 2 && before.Pending == CmdWriteOutput && v&1 == 0 ||
					op%5 == 3 && before.PortA&1 == 0 && v&1 != 0
				if !ok {
					t.Fatalf("reset by op %d value %#x (pending %#x)", op%5, v, before.Pending)
				}
			}
			s := h.c.State()
			if s.Status&StatusInputFull != 0 {
				t.Fatal("IBF set")
			}
			full := s.Status&StatusOutputFull != 0
			aux := s.Status&StatusAuxData != 0
			if s.KbdIRQLevel != (full && !aux && s.CommandByte&CmdByteKbdInt != 0) ||
				s.AuxIRQLevel != (full && aux && s.CommandByte&CmdByteAuxInt != 0) {
				t.Fatalf("IRQ levels %v/%v with status %#x command byte %#x", s.KbdIRQLevel, s.AuxIRQLevel, s.Status, s.CommandByte)
			}
			if h.irq.level[KeyboardIRQ] != s.KbdIRQLevel || h.irq.level[AuxIRQ] != s.AuxIRQLevel {
				t.Fatal("IRQ sink out of step")
			}
		}
	})
}
