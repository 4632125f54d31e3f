package pic

import (
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// writes returns the writes to the 8259 ports, without the delay writes.
func writes(p *hwfake.Ports) []hwfake.PortAccess {
	var w []hwfake.PortAccess
	for _, a := range p.Accesses {
		if a.Write && a.Port != DelayPort {
			w = append(w, a)
		}
	}
	return w
}

func TestRemapSequence(t *testing.T) {
	p := hwfake.NewPorts()
	if err := New(p).Remap(0x20, 0x28); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		port uint16
		v    uint32
	}{
		{MasterData, 0xFF}, {SlaveData, 0xFF}, // mask during the sequence
		{MasterCommand, 0x11}, {SlaveCommand, 0x11}, // ICW1: init, ICW4 needed
		{MasterData, 0x20}, {SlaveData, 0x28}, // ICW2: vector bases
		{MasterData, 0x04}, {SlaveData, 0x02}, // ICW3: slave on IR2, identity 2
		{MasterData, 0x01}, {SlaveData, 0x01}, // ICW4: 8086 mode
		{MasterData, 0xFF}, {SlaveData, 0xFF}, // OCW1: all masked
	}
	got := writes(p)
	if len(got) != len(want) {
		t.Fatalf("got %d writes, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Port != w.port || got[i].Value != w.v || got[i].Width != 1 {
			t.Errorf("write %d = port %#x value %#x width %d, want port %#x value %#x width 1",
				i, got[i].Port, got[i].Value, got[i].Width, w.port, w.v)
		}
	}
	// Every command word is followed by a delay write.
	delays := 0
	for _, a := range p.Accesses {
		if a.Write && a.Port == DelayPort {
			delays++
		}
	}
	if delays != len(want) {
		t.Errorf("%d delay writes, want %d", delays, len(want))
	}
}

func TestRemapRejectsBadBases(t *testing.T) {
	for _, c := range [][2]uint8{{0x08, 0x70}, {0x21, 0x28}, {0x20, 0x2C}, {0x30, 0x30}, {0x00, 0x08}} {
		p := hwfake.NewPorts()
		if err := New(p).Remap(c[0], c[1]); err == nil {
			t.Errorf("Remap(%#x, %#x) succeeded", c[0], c[1])
		}
		if len(p.Accesses) != 0 {
			t.Errorf("Remap(%#x, %#x) touched the hardware before failing", c[0], c[1])
		}
	}
}

func TestMaskAll(t *testing.T) {
	p := hwfake.NewPorts()
	p.Values[MasterData] = 0xB8 // what SeaBIOS leaves
	p.Values[SlaveData] = 0x8E
	pic := New(p)
	pic.MaskAll()
	if got := pic.Mask(); got != 0xFFFF {
		t.Errorf("Mask() after MaskAll = %#x, want 0xffff", got)
	}
	pic.SetMask(0xFFFE)
	if p.Values[MasterData] != 0xFE || p.Values[SlaveData] != 0xFF {
		t.Errorf("SetMask(0xfffe) wrote master %#x slave %#x", p.Values[MasterData], p.Values[SlaveData])
	}
}

func TestEOI(t *testing.T) {
	p := hwfake.NewPorts()
	pic := New(p)
	if err := pic.EOI(3); err != nil {
		t.Fatal(err)
	}
	if w := writes(p); len(w) != 1 || w[0].Port != MasterCommand || w[0].Value != 0x20 {
		t.Errorf("EOI(3) writes %+v, want one 0x20 to the master", w)
	}
	p.Accesses = nil
	if err := pic.EOI(12); err != nil {
		t.Fatal(err)
	}
	if w := writes(p); len(w) != 2 || w[0].Port != SlaveCommand || w[1].Port != MasterCommand {
		t.Errorf("EOI(12) writes %+v, want slave then master", w)
	}
	p.Accesses = nil
	if err := pic.EOI(16); err == nil || len(p.Accesses) != 0 {
		t.Errorf("EOI(16) = %v with %d accesses, want an error and none", err, len(p.Accesses))
	}
}

func TestInServiceUsesOCW3(t *testing.T) {
	p := hwfake.NewPorts()
	var masterSel, slaveSel uint8
	p.OnWrite[MasterCommand] = func(_ int, v uint32) { masterSel = uint8(v) }
	p.OnWrite[SlaveCommand] = func(_ int, v uint32) { slaveSel = uint8(v) }
	p.OnRead[MasterCommand] = func(int) uint32 {
		if masterSel == OCW3ReadISR {
			return 0x80
		}
		return 0x01
	}
	p.OnRead[SlaveCommand] = func(int) uint32 {
		if slaveSel == OCW3ReadISR {
			return 0x40
		}
		return 0x02
	}
	pic := New(p)
	if got := pic.InService(); got != 0x4080 {
		t.Errorf("InService = %#x, want 0x4080", got)
	}
	if got := pic.Requested(); got != 0x0201 {
		t.Errorf("Requested = %#x, want 0x0201", got)
	}
}
