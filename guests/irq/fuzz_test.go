package irq

import (
	"testing"

	"tamavisor/guests/devices/ioapic"
	"tamavisor/guests/devices/lapic"
)

// FuzzInjector wires a PIC, an IOAPIC and one local APIC to a fake vCPU
// and runs random device lines, register writes, EOIs and entries. The
// fake vCPU panics if an interrupt is injected while it is not
// interruptible; the checks below hold after every entry: nothing is
// injected without something pending, a window is requested exactly when
// an interrupt is pending that could not be injected, and every vector the
// local APIC has in service was injected.
func FuzzInjector(f *testing.F) {
	f.Add([]byte{0, 4, 1, 3, 5, 1, 3, 2, 0})
	f.Add([]byte{1, 0x14, 0x71, 2, 20, 1, 5, 1, 3, 4, 0, 3})
	f.Add([]byte{6, 0, 0, 0, 4, 1, 5, 1, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		cpu := &fakeCPU{}
		pic := &fakePIC{}
		g := &lapic.Group{}
		var io *ioapic.IOAPIC
		l, err := lapic.New(lapic.Config{ID: 0, BSP: true, Clock: &clock{}, IPI: g, EOI: func(v uint8) { io.EOI(v) }})
		if err != nil {
			t.Fatal(err)
		}
		g.APICs = []*lapic.LAPIC{l}
		io = ioapic.New(ioapic.DefaultBase, 0, g)
		r := NewRouter(pic, io)
		in := NewInjector(cpu, l, pic)
		var injected [256]bool
		for len(data) >= 3 {
			op, a, b := data[0], data[1], data[2]
			data = data[3:]
			switch op % 7 {
			case 0:
				r.SetIRQ(uint32(a%28), b&1 != 0)
			case 1: // redirection entry low dword: vector a, flags from b
				io.WriteMMIO(ioapic.DefaultBase, 4, uint64(ioapic.RegRedirFirst+2*(b%ioapic.NumPins)))
				io.WriteMMIO(ioapic.DefaultBase+0x10, 4, uint64(a)|uint64(b&0xE0)<<8)
			case 2: // local APIC register write
				l.WriteMMIO(lapic.DefaultBase+uint64(a&0x3F)<<4, 4, uint64(b)|uint64(b&0xF0)<<4)
			case 3:
				l.EOI()
			case 4:
				cpu.interruptible = a&1 != 0
			case 5:
				before := len(cpu.injected)
				pending := in.interruptPending()
				wasInterruptible := cpu.interruptible
				in.BeforeEntry()
				if len(cpu.injected) > before {
					if !pending || !wasInterruptible {
						t.Fatalf("injected %#x with pending=%v interruptible=%v", cpu.injected[before:], pending, wasInterruptible)
					}
					injected[cpu.injected[before]] = true
				} else if pending && !cpu.window {
					t.Fatal("interrupt pending, nothing injected, no window requested")
				}
				if len(cpu.injected) == before && !pending && cpu.window {
					t.Fatal("window requested with nothing pending")
				}
			case 6:
				l.WriteMSR(lapic.MSRAPICBase, lapic.DefaultBase|uint64(a&1)<<11)
			}
			for v := 0; v < 256 && l.Mode() == lapic.ModeXAPIC; v++ {
				isr := l.ReadMMIO(lapic.DefaultBase+uint64(lapic.RegISR)+uint64(v/32)<<4, 4)
				if isr&(1<<(v%32)) != 0 && !injected[v] {
					t.Fatalf("vector %#x in service but never injected", v)
				}
			}
		}
	})
}
