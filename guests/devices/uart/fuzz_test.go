package uart

import (
	"bytes"
	"testing"
)

// FuzzUART drives the UART with arbitrary accesses from a hostile guest
// and host input, and checks the invariants the rest of the VM relies on.
// Each step is 4 bytes: op, port offset, size, value.
func FuzzUART(f *testing.F) {
	f.Add([]byte{1, 4, 1, 0x08, 1, 1, 1, 0x0F, 0, 2, 1, 0, 2, 0, 1, 0x41})
	f.Add([]byte{1, 3, 1, 0x80, 1, 0, 4, 0xFF, 0, 0, 4, 0, 1, 4, 1, 0x1F, 1, 0, 1, 1})
	f.Add([]byte{1, 2, 1, 0xC7, 2, 0, 1, 'a', 0, 2, 1, 0, 0, 5, 1, 0, 0, 6, 1, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		irq := &irqRecorder{}
		out := &bytes.Buffer{}
		u, err := New(Config{Base: COM1Base, IRQ: COM1IRQ, Lines: irq, Output: out})
		if err != nil {
			t.Fatal(err)
		}
		for len(prog) >= 4 {
			op, off, size, v := prog[0], uint16(prog[1]%10), prog[2]%6, prog[3]
			prog = prog[4:]
			switch op % 4 {
			case 0:
				u.ReadPort(COM1Base+off, size)
			case 1:
				u.WritePort(COM1Base+off, size, uint32(v)*0x01010101)
			case 2:
				u.Input(bytes.Repeat([]byte{v}, int(size)*50))
			case 3:
				u.SetState(u.State())
			}
			s := u.State()
			if s.RXCount > RXBufferSize || s.RXHead >= RXBufferSize || s.IER&^ierMask != 0 || s.MCR&^mcrMask != 0 {
				t.Fatalf("state out of range: %+v", s)
			}
			u.mu.Lock()
			id := u.pendingInterrupt()
			u.mu.Unlock()
			switch id {
			case IIRNone, IIRLineStatus, IIRRxData, IIRRxTimeout, IIRTxEmpty, IIRModem:
			default:
				t.Fatalf("impossible interrupt id %#x", id)
			}
			want := id != IIRNone && s.MCR&MCROUT2 != 0 && s.MCR&MCRLoop == 0
			if irq.level[COM1IRQ] != want || s.IRQLevel != want {
				t.Fatalf("IRQ line %v (state %v), want %v (id %#x MCR %#x)", irq.level[COM1IRQ], s.IRQLevel, want, id, s.MCR)
			}
			if s.LSRErrors&^lsrErrors != 0 {
				t.Fatalf("LSR errors %#x", s.LSRErrors)
			}
		}
		for i := 1; i < len(irq.events); i++ {
			if irq.events[i].level == irq.events[i-1].level {
				t.Fatalf("line driven to the same level twice: %v", irq.events)
			}
		}
	})
}
