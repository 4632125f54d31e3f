package irq

import (
	"testing"

	"tamavisor/guests/devices/pic"
)

// The VM's 8259 model satisfies the interface the router and injector use.
var _ PIC = (*pic.PIC)(nil)

// TestRealPICVirtualWire programs the 8259 pair as Linux does (vector
// bases 0x30 and 0x38) and takes COM1's IRQ4 and the slave's IRQ12 through
// the BSP's LINT0 to injection.
func TestRealPICVirtualWire(t *testing.T) {
	p := pic.New(pic.Config{})
	for _, w := range []struct {
		port uint16
		v    uint32
	}{
		{pic.MasterCommand, 0x11}, {pic.MasterData, 0x30}, {pic.MasterData, 0x04}, {pic.MasterData, 0x01},
		{pic.SlaveCommand, 0x11}, {pic.SlaveData, 0x38}, {pic.SlaveData, 0x02}, {pic.SlaveData, 0x01},
		{pic.MasterData, 0x00}, {pic.SlaveData, 0x00},
	} {
		p.WritePort(w.port, 1, w.v)
	}
	cpu := &fakeCPU{interruptible: true}
	l := newAPIC(t, true)
	r := NewRouter(p, nil)
	in := NewInjector(cpu, l, p)
	r.SetIRQ(4, true)
	in.BeforeEntry()
	if len(cpu.injected) != 1 || cpu.injected[0] != 0x34 {
		t.Fatalf("IRQ4: injected %#x, want 0x34", cpu.injected)
	}
	r.SetIRQ(12, true)
	p.WritePort(pic.MasterCommand, 1, 0x20) // EOI IRQ4
	cpu.interruptible = true
	in.BeforeEntry()
	if len(cpu.injected) != 2 || cpu.injected[1] != 0x3C {
		t.Fatalf("IRQ12: injected %#x, want 0x3C", cpu.injected)
	}
}
