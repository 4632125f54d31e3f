package pci

import (
	"reflect"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// cf8Bridge is a chipset's mechanism #1 decoder in front of a fakeSpace:
// CONFIG_ADDRESS latches, CONFIG_DATA (with byte lanes 0xCFC-0xCFF)
// reads and writes the addressed dword.
type cf8Bridge struct {
	s        *fakeSpace
	addr     uint32
	accesses []hwfake.PortAccess
}

func (c *cf8Bridge) target() (uint8, uint8, uint8, uint16, bool) {
	if c.addr&configEnable == 0 {
		return 0, 0, 0, 0, false
	}
	return uint8(c.addr >> 16), uint8(c.addr>>11) & 0x1F, uint8(c.addr>>8) & 7, uint16(c.addr & 0xFC), true
}

func (c *cf8Bridge) in(port uint16, width int) uint32 {
	c.accesses = append(c.accesses, hwfake.PortAccess{Port: port, Width: width})
	if port == ConfigAddressPort && width == 4 {
		return c.addr
	}
	if port < ConfigDataPort || port > ConfigDataPort+3 {
		return 0xFFFF_FFFF
	}
	bus, dev, fn, off, ok := c.target()
	if !ok {
		return 0xFFFF_FFFF
	}
	v := c.s.Read32(bus, dev, fn, off) >> (8 * (port - ConfigDataPort))
	return v & (1<<(8*width) - 1)
}

func (c *cf8Bridge) out(port uint16, width int, v uint32) {
	c.accesses = append(c.accesses, hwfake.PortAccess{Write: true, Port: port, Width: width, Value: v})
	if port == ConfigAddressPort && width == 4 {
		c.addr = v
		return
	}
	if port == ConfigDataPort && width == 4 {
		if bus, dev, fn, off, ok := c.target(); ok {
			c.s.Write32(bus, dev, fn, off, v)
		}
	}
}

func (c *cf8Bridge) In8(p uint16) uint8       { return uint8(c.in(p, 1)) }
func (c *cf8Bridge) In16(p uint16) uint16     { return uint16(c.in(p, 2)) }
func (c *cf8Bridge) In32(p uint16) uint32     { return c.in(p, 4) }
func (c *cf8Bridge) Out8(p uint16, v uint8)   { c.out(p, 1, uint32(v)) }
func (c *cf8Bridge) Out16(p uint16, v uint16) { c.out(p, 2, uint32(v)) }
func (c *cf8Bridge) Out32(p uint16, v uint32) { c.out(p, 4, v) }

// ecamBridge decodes ECAM addresses the way a PCIe root complex does, in
// front of a fakeSpace, and records every address touched.
type ecamBridge struct {
	s       *fakeSpace
	base    uint64
	touched []uint64
}

func (e *ecamBridge) decode(a uint64) (uint8, uint8, uint8, uint16) {
	o := a - e.base
	return uint8(o >> 20), uint8(o>>15) & 0x1F, uint8(o>>12) & 7, uint16(o & 0xFFF)
}

func (e *ecamBridge) read(a uint64, width int) uint64 {
	e.touched = append(e.touched, a)
	bus, dev, fn, off := e.decode(a)
	v := e.s.Read32(bus, dev, fn, off&^3) >> (8 * (off & 3))
	return uint64(v) & (1<<(8*width) - 1)
}

func (e *ecamBridge) Read8(a uint64) uint8   { return uint8(e.read(a, 1)) }
func (e *ecamBridge) Read16(a uint64) uint16 { return uint16(e.read(a, 2)) }
func (e *ecamBridge) Read32(a uint64) uint32 { return uint32(e.read(a, 4)) }
func (e *ecamBridge) Read64(a uint64) uint64 { return e.read(a, 4) }
func (e *ecamBridge) Write8(a uint64, v uint8) {
	panic("narrow config write")
}
func (e *ecamBridge) Write16(a uint64, v uint16) { panic("narrow config write") }
func (e *ecamBridge) Write32(a uint64, v uint32) {
	e.touched = append(e.touched, a)
	bus, dev, fn, off := e.decode(a)
	e.s.Write32(bus, dev, fn, off, v)
}
func (e *ecamBridge) Write64(a uint64, v uint64) { panic("64-bit config write") }

func TestLegacyAddress(t *testing.T) {
	p := NewPortConfig(hwfake.NewPorts())
	for _, c := range []struct {
		bus, dev, fn uint8
		off          uint16
		want         uint32
		ok           bool
	}{
		{0, 0, 0, 0, 0x8000_0000, true},
		{1, 0x1F, 2, 0x40, 0x8001_FA40, true},
		{0xFF, 0x1F, 7, 0xFF, 0x80FF_FFFC, true},
		{0, 0, 0, 0x100, 0, false},
		{0, 32, 0, 0, 0, false},
		{0, 0, 8, 0, 0, false},
	} {
		got, ok := p.Address(c.bus, c.dev, c.fn, c.off)
		if got != c.want || ok != c.ok {
			t.Errorf("Address(%d,%d,%d,%#x) = %#x, %v; want %#x, %v", c.bus, c.dev, c.fn, c.off, got, ok, c.want, c.ok)
		}
	}
}

func TestLegacyAccesses(t *testing.T) {
	s := q35()
	br := &cf8Bridge{s: s}
	p := NewPortConfig(br)

	if got := p.Read32(0, 0x1F, 2, OffVendorID); got != 0x2922_8086 {
		t.Errorf("Read32 vendor = %#x", got)
	}
	want := []hwfake.PortAccess{
		{Write: true, Port: 0xCF8, Width: 4, Value: 0x8000_FA00},
		{Port: 0xCFC, Width: 4},
	}
	if !reflect.DeepEqual(br.accesses, want) {
		t.Errorf("Read32 accesses %+v, want %+v", br.accesses, want)
	}
	br.accesses = nil
	if got := p.Read16(0, 0x1F, 2, OffDeviceID); got != 0x2922 {
		t.Errorf("Read16 device = %#x", got)
	}
	if br.accesses[1] != (hwfake.PortAccess{Port: 0xCFE, Width: 2}) {
		t.Errorf("Read16 at 0x02 used %+v, want a 16-bit read of 0xCFE", br.accesses[1])
	}
	br.accesses = nil
	if got := p.Read8(0, 0x1F, 2, OffProgIF); got != 0x01 {
		t.Errorf("Read8 prog-if = %#x", got)
	}
	if br.accesses[1] != (hwfake.PortAccess{Port: 0xCFD, Width: 1}) {
		t.Errorf("Read8 at 0x09 used %+v, want an 8-bit read of 0xCFD", br.accesses[1])
	}
	// An odd 16-bit read inside a dword, and one straddling two.
	if got := p.Read16(0, 0x1F, 2, 0x09); got != 0x0601 {
		t.Errorf("Read16(0x09) = %#x, want 0x0601", got)
	}
	if got := Read16(p, 0, 0x1F, 2, 0x0B); got != 0x0001 {
		t.Errorf("Read16(0x0b) = %#x, want class 0x01 | cache line size 0 << 8", got)
	}
	br.accesses = nil
	if got := p.Read32(0, 0, 0, 0x100); got != 0xFFFF_FFFF || len(br.accesses) != 0 {
		t.Errorf("Read32 of extended space = %#x after %d accesses, want all ones and none", got, len(br.accesses))
	}
	p.Write32(0, 0, 0, 0x100, 1)
	if len(br.accesses) != 0 {
		t.Error("Write32 of extended space reached the ports")
	}

	// Enumeration over the port mechanism finds the same machine.
	devs, err := Enumerate(p, 0, Options{SizeBARs: true})
	if err != nil || len(devs) != 9 {
		t.Fatalf("Enumerate over CF8/CFC: %d devices, %v", len(devs), err)
	}
	if b := find(t, devs, 1, 0, 0).BARs[1]; b.Size != 16<<10 || b.Address != 0x80_0000_0000 {
		t.Errorf("64-bit BAR over CF8/CFC: %+v", b)
	}
}

func TestLegacyPresent(t *testing.T) {
	if !NewPortConfig(&cf8Bridge{s: newSpace()}).Present() {
		t.Error("mechanism #1 not detected")
	}
	p := hwfake.NewPorts()
	p.OnRead[ConfigAddressPort] = func(int) uint32 { return 0xFFFF_FFFF }
	if NewPortConfig(p).Present() {
		t.Error("floating CONFIG_ADDRESS detected as mechanism #1")
	}
}

func TestECAMAddress(t *testing.T) {
	e, err := NewECAM(hwfake.NewMemory(), 0xB000_0000, 0, 0, 0xFF)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bus, dev, fn uint8
		off          uint16
		want         uint64
	}{
		{0, 0, 0, 0, 0xB000_0000},
		{1, 0x1F, 2, 0x100, 0xB01F_A100},
		{0xFF, 0x1F, 7, 0xFFC, 0xBFFF_FFFC},
	} {
		got, ok := e.Address(c.bus, c.dev, c.fn, c.off)
		if !ok || got != c.want {
			t.Errorf("Address(%d,%d,%d,%#x) = %#x, %v; want %#x", c.bus, c.dev, c.fn, c.off, got, ok, c.want)
		}
	}

	// An MCFG entry for buses 0x10-0x1F: the base still addresses bus 0.
	e2, err := NewECAM(hwfake.NewMemory(), 0xE000_0000, 1, 0x10, 0x1F)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := e2.Address(0x10, 0, 0, 0); !ok || got != 0xE100_0000 {
		t.Errorf("bus 0x10 at %#x, %v; want 0xe1000000", got, ok)
	}
	if start, size := e2.Window(); start != 0xE100_0000 || size != 16<<20 {
		t.Errorf("Window = %#x+%#x", start, size)
	}
	for _, bus := range []uint8{0x0F, 0x20} {
		if _, ok := e2.Address(bus, 0, 0, 0); ok {
			t.Errorf("bus %#x outside 0x10-0x1f accepted", bus)
		}
	}
	if _, ok := e2.Address(0x10, 0, 0, 0x1000); ok {
		t.Error("offset 0x1000 accepted")
	}
	for _, c := range []struct {
		base       uint64
		start, end uint8
	}{{0xB000_0000, 5, 4}, {0xB008_0000, 0, 0}, {0xFFFF_FFFF_FFF0_0000, 0, 1}} {
		if _, err := NewECAM(hwfake.NewMemory(), c.base, 0, c.start, c.end); err == nil {
			t.Errorf("NewECAM(%#x, %d-%d) accepted", c.base, c.start, c.end)
		}
	}
}

func TestECAMEnumeration(t *testing.T) {
	s := q35()
	br := &ecamBridge{s: s, base: 0xB000_0000}
	e, err := NewECAM(br, 0xB000_0000, 0, 0, 0xFF)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := Enumerate(e, 0, Options{SizeBARs: true})
	if err != nil || len(devs) != 9 {
		t.Fatalf("Enumerate over ECAM: %d devices, %v", len(devs), err)
	}
	nic := find(t, devs, 0, 2, 0)
	if len(nic.ExtendedCapabilities) != 2 {
		t.Errorf("extended capabilities over ECAM: %+v", nic.ExtendedCapabilities)
	}
	if got := Read16(e, 0, 0x1F, 2, OffDeviceID); got != 0x2922 {
		t.Errorf("ECAM Read16 device = %#x", got)
	}
	br.touched = nil
	if got := e.Read32(0, 0x1F, 2, 0x43); got != s.fns[bdf{0, 0x1F, 2}].r32(0x40) || br.touched[0] != 0xB00F_A040 {
		t.Errorf("unaligned Read32 touched %#x", br.touched)
	}
	for _, a := range br.touched {
		if a < 0xB000_0000 || a >= 0xC000_0000 {
			t.Errorf("access outside the window: %#x", a)
		}
	}
}
