package bus

import "testing"

type reg struct{ last uint32 }

func (r *reg) ReadPort(port uint16, size uint8) uint32     { return uint32(port) + uint32(size) }
func (r *reg) WritePort(port uint16, size uint8, v uint32) { r.last = v }
func (r *reg) ReadMMIO(a uint64, size uint8) uint64        { return a + uint64(size) }
func (r *reg) WriteMMIO(a uint64, size uint8, v uint64)    { r.last = uint32(v) }

func TestPortsDispatchAndUnclaimed(t *testing.T) {
	var p Ports
	uart, pic := &reg{}, &reg{}
	if err := p.Register("uart", 0x3f8, 8, uart); err != nil {
		t.Fatal(err)
	}
	if err := p.Register("pic", 0x20, 2, pic); err != nil {
		t.Fatal(err)
	}
	if err := p.Register("overlap", 0x3ff, 2, &reg{}); err == nil {
		t.Fatal("overlapping registration accepted")
	}
	if got := p.Read(0x3fd, 1); got != 0x3fd+1 {
		t.Errorf("read 0x3fd = %#x", got)
	}
	p.Write(0x21, 1, 0xff)
	if pic.last != 0xff || uart.last != 0 {
		t.Errorf("write went to the wrong device: pic %#x uart %#x", pic.last, uart.last)
	}
	if got := p.Read(0x400, 2); got != 0xffff || p.Unclaimed.Load() != 1 {
		t.Errorf("unclaimed read = %#x (unclaimed %d), want 0xffff", got, p.Unclaimed.Load())
	}
	if got := p.Read(0x3f7, 4); got != 0xffffffff {
		t.Errorf("port just below a range = %#x, want all ones", got)
	}
}

func TestMMIODispatch(t *testing.T) {
	var m MMIO
	d := &reg{}
	if err := m.Register("lapic", 0xfee00000, 0x1000, d); err != nil {
		t.Fatal(err)
	}
	if err := m.Register("bad", 0xffffffffffffff00, 0x1000, d); err == nil {
		t.Fatal("wrapping range accepted")
	}
	if got := m.ReadMMIO(0xfee00020, 4); got != 0xfee00024 {
		t.Errorf("read = %#x", got)
	}
	if got := m.ReadMMIO(0xfee01000, 1); got != 0xff {
		t.Errorf("read past the range = %#x, want 0xff", got)
	}
}

func TestDispatchDoesNotAllocate(t *testing.T) {
	var p Ports
	var m MMIO
	d := &reg{}
	for i := uint16(0); i < 16; i++ {
		if err := p.Register("dev", 0x100+i*8, 8, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Register("dev", 0x1000, 0x1000, d); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		p.Write(0x140, 1, p.Read(0x138, 1))
		m.WriteMMIO(0x1004, 4, m.ReadMMIO(0x1008, 4))
	})
	if allocs != 0 {
		t.Errorf("dispatch allocates %.1f times per access", allocs)
	}
}
