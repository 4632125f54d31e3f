package pcihost

import "testing"

type access struct {
	write bool
	off   uint16
	size  uint8
	v     uint32
}

// recorder is a Function that logs accesses and answers reads with a
// value derived from the offset and size.
type recorder struct{ log []access }

func (r *recorder) ReadConfig(off uint16, size uint8) uint32 {
	r.log = append(r.log, access{false, off, size, 0})
	return 0xA5000000 | uint32(off)<<4 | uint32(size)
}

func (r *recorder) WriteConfig(off uint16, size uint8, v uint32) {
	r.log = append(r.log, access{true, off, size, v})
}

const ecamBase = 0xB000_0000

func newHost(t testing.TB) (*Host, *int) {
	t.Helper()
	resets := new(int)
	h, err := New(Config{ECAMBase: ecamBase, ECAMStartBus: 0, ECAMEndBus: 255, Reset: func() { *resets++ }})
	if err != nil {
		t.Fatal(err)
	}
	return h, resets
}

func cf8(bus, dev, fn uint8, reg uint8) uint32 {
	return 1<<31 | uint32(bus)<<16 | uint32(dev)<<11 | uint32(fn)<<8 | uint32(reg)&0xFC
}

func TestNewChecksECAM(t *testing.T) {
	if _, err := New(Config{ECAMStartBus: 5, ECAMEndBus: 4}); err == nil {
		t.Error("end bus below start accepted")
	}
	if _, err := New(Config{ECAMBase: 0x1000, ECAMEndBus: 0}); err == nil {
		t.Error("unaligned ECAM base accepted")
	}
	if _, err := New(Config{ECAMBase: 0xFFFF_FFFF_FFF0_0000, ECAMEndBus: 1}); err == nil {
		t.Error("wrapping ECAM window accepted")
	}
	c := Config{ECAMStartBus: 0, ECAMEndBus: 255}
	if c.ECAMSize() != 256<<20 {
		t.Errorf("ECAM size %#x", c.ECAMSize())
	}
}

func TestMechanism1HostBridge(t *testing.T) {
	h, _ := newHost(t)
	h.WritePort(ConfigAddressPort, 4, cf8(0, 0, 0, 0))
	if got := h.ReadPort(ConfigAddressPort, 4); got != cf8(0, 0, 0, 0) {
		t.Fatalf("CONFIG_ADDRESS reads %#x", got)
	}
	if got := h.ReadPort(ConfigDataPort, 4); got != 0x29C08086 {
		t.Fatalf("00:00.0 IDs %#x", got)
	}
	for i, want := range []uint32{0x86, 0x80, 0xC0, 0x29} {
		if got := h.ReadPort(ConfigDataPort+uint16(i), 1); got != want {
			t.Errorf("byte at %#x = %#x, want %#x", ConfigDataPort+uint16(i), got, want)
		}
	}
	if got := h.ReadPort(ConfigDataPort+2, 2); got != 0x29C0 {
		t.Errorf("word at 0xCFE = %#x", got)
	}
	h.WritePort(ConfigAddressPort, 4, cf8(0, 0, 0, OffRevisionID))
	if got := h.ReadPort(ConfigDataPort, 4) >> 8; got != HostBridgeClass {
		t.Errorf("class %#x", got)
	}
	// IDs are read-only.
	h.WritePort(ConfigAddressPort, 4, cf8(0, 0, 0, 0))
	h.WritePort(ConfigDataPort, 4, 0)
	if got := h.ReadPort(ConfigDataPort, 4); got != 0x29C08086 {
		t.Fatalf("IDs writable: %#x", got)
	}
}

// TestMechanism1ByteOffsets checks that accesses at 0xCFD-0xCFF reach
// register+1..3 with the right width, as Linux's pci_conf1_read does
// (port 0xCFC + (reg & 3)).
func TestMechanism1ByteOffsets(t *testing.T) {
	h, _ := newHost(t)
	r := &recorder{}
	if err := h.AddFunction(0, 3, 0, r); err != nil {
		t.Fatal(err)
	}
	h.WritePort(ConfigAddressPort, 4, cf8(0, 3, 0, 0x40))
	h.ReadPort(ConfigDataPort+1, 1)
	h.ReadPort(ConfigDataPort+2, 2)
	h.ReadPort(ConfigDataPort+2, 1)
	h.WritePort(ConfigDataPort+1, 1, 0x1234)
	h.WritePort(ConfigDataPort+2, 2, 0xABCD5678)
	h.ReadPort(ConfigDataPort+1, 2) // misaligned word: all ones, not passed on
	h.ReadPort(ConfigDataPort+3, 2) // crosses the DWORD: same
	want := []access{
		{false, 0x41, 1, 0}, {false, 0x42, 2, 0}, {false, 0x42, 1, 0},
		{true, 0x41, 1, 0x34}, {true, 0x42, 2, 0x5678},
	}
	if len(r.log) != len(want) {
		t.Fatalf("accesses %+v, want %+v", r.log, want)
	}
	for i := range want {
		if r.log[i] != want[i] {
			t.Fatalf("accesses %+v, want %+v", r.log, want)
		}
	}
	// The function's answer passes through unchanged.
	if got := h.ReadPort(ConfigDataPort+1, 1); got != 0xA5000000|0x41<<4|1 {
		t.Fatalf("byte read returned %#x", got)
	}
}

func TestConfigAddressRegister(t *testing.T) {
	h, _ := newHost(t)
	h.WritePort(ConfigAddressPort, 4, 0xFFFFFFFF)
	if got := h.ReadPort(ConfigAddressPort, 4); got != 0x80FFFFFC {
		t.Fatalf("CONFIG_ADDRESS keeps reserved bits: %#x", got)
	}
	// Byte/word accesses at 0xCF8-0xCFB are not CONFIG_ADDRESS
	// (pci_check_type1 writes 0x01 to 0xCFB).
	h.WritePort(ConfigAddressPort+3, 1, 0x01)
	h.WritePort(ConfigAddressPort, 2, 0)
	if got := h.ReadPort(ConfigAddressPort, 4); got != 0x80FFFFFC {
		t.Fatalf("narrow write changed CONFIG_ADDRESS: %#x", got)
	}
	if got := h.ReadPort(ConfigAddressPort, 1); got != 0xFF {
		t.Fatalf("byte read of 0xCF8 = %#x", got)
	}
	// Enable bit clear: nothing answers.
	h.WritePort(ConfigAddressPort, 4, 0)
	if got := h.ReadPort(ConfigDataPort, 4); got != 0xFFFFFFFF {
		t.Fatalf("data with enable clear = %#x", got)
	}
}

func TestAbsentFunctions(t *testing.T) {
	h, _ := newHost(t)
	for _, a := range []uint32{cf8(0, 1, 0, 0), cf8(0, 0, 1, 0), cf8(1, 0, 0, 0), cf8(255, 31, 7, 0xFC)} {
		h.WritePort(ConfigAddressPort, 4, a)
		h.WritePort(ConfigDataPort, 4, 0)
		if got := h.ReadPort(ConfigDataPort, 4); got != 0xFFFFFFFF {
			t.Errorf("absent function at %#x reads %#x", a, got)
		}
		if got := h.ReadPort(ConfigDataPort+2, 2); got != 0xFFFF {
			t.Errorf("absent function word read %#x", got)
		}
	}
}

func TestAddFunction(t *testing.T) {
	h, _ := newHost(t)
	r := &recorder{}
	if err := h.AddFunction(0, 0, 0, r); err == nil {
		t.Error("00:00.0 taken twice")
	}
	if err := h.AddFunction(0, 32, 0, r); err == nil {
		t.Error("device 32 accepted")
	}
	if err := h.AddFunction(0, 1, 8, r); err == nil {
		t.Error("function 8 accepted")
	}
	if err := h.AddFunction(0, 1, 0, nil); err == nil {
		t.Error("nil function accepted")
	}
	// Out-of-order registrations all stay reachable.
	fns := map[[3]uint8]*recorder{}
	for _, a := range [][3]uint8{{0, 5, 0}, {2, 0, 0}, {0, 1, 0}, {0, 5, 3}, {255, 31, 7}} {
		f := &recorder{}
		fns[a] = f
		if err := h.AddFunction(a[0], a[1], a[2], f); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.AddFunction(0, 5, 3, r); err == nil {
		t.Error("duplicate accepted")
	}
	for a, f := range fns {
		h.WritePort(ConfigAddressPort, 4, cf8(a[0], a[1], a[2], 0x10))
		h.ReadPort(ConfigDataPort, 4)
		if len(f.log) != 1 || f.log[0].off != 0x10 {
			t.Errorf("%v: accesses %+v", a, f.log)
		}
	}
}

func TestECAMDecoding(t *testing.T) {
	h, _ := newHost(t)
	r := &recorder{}
	if err := h.AddFunction(1, 3, 2, r); err != nil {
		t.Fatal(err)
	}
	addr := uint64(ecamBase) | 1<<20 | 3<<15 | 2<<12 | 0x104
	got := h.ReadMMIO(addr, 4)
	if got != 0xA5000000|0x104<<4|4 {
		t.Fatalf("ECAM read %#x", got)
	}
	h.WriteMMIO(addr+2, 2, 0xFFFF1234)
	h.WriteMMIO(addr, 8, 0x11111111_22222222) // aligned to 4 only: dropped
	h.WriteMMIO(addr-4, 8, 0x11111111_22222222)
	want := []access{{false, 0x104, 4, 0}, {true, 0x106, 2, 0x1234}, {true, 0x100, 4, 0x22222222}, {true, 0x104, 4, 0x11111111}}
	if len(r.log) != len(want) {
		t.Fatalf("accesses %+v, want %+v", r.log, want)
	}
	for i := range want {
		if r.log[i] != want[i] {
			t.Fatalf("accesses %+v, want %+v", r.log, want)
		}
	}
	// The host bridge through ECAM.
	if got := h.ReadMMIO(ecamBase, 4); got != 0x29C08086 {
		t.Fatalf("00:00.0 via ECAM %#x", got)
	}
	if got := h.ReadMMIO(ecamBase+0x100, 4); got != 0 {
		t.Fatalf("00:00.0 extended space %#x, want 0 (no capabilities)", got)
	}
	if got := h.ReadMMIO(ecamBase|1<<15, 2); got != 0xFFFF {
		t.Fatalf("absent 00:01.0 via ECAM %#x", got)
	}
	if got := h.ReadMMIO(ecamBase+256<<20, 4); got != 0xFFFFFFFF {
		t.Fatalf("past the window %#x", got)
	}
	if got := h.ReadMMIO(ecamBase+1, 2); got != 0xFFFF {
		t.Fatalf("misaligned ECAM read %#x", got)
	}
}

func TestECAMStartBus(t *testing.T) {
	h, err := New(Config{ECAMBase: ecamBase, ECAMStartBus: 0x10, ECAMEndBus: 0x11})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	if err := h.AddFunction(0x11, 0, 0, r); err != nil {
		t.Fatal(err)
	}
	h.ReadMMIO(ecamBase+1<<20, 4)
	if len(r.log) != 1 {
		t.Fatal("second bus of the window did not reach bus 0x11")
	}
	if got := h.ReadMMIO(ecamBase, 4); got != 0xFFFFFFFF {
		t.Fatalf("bus 0x10 read %#x, want absent", got)
	}
}

func TestResetControl(t *testing.T) {
	h, resets := newHost(t)
	h.WritePort(ResetControlPort, 1, uint32(ResetSystem))
	if *resets != 0 {
		t.Fatal("reset without RST_CPU")
	}
	if got := h.ReadPort(ResetControlPort, 1); got != uint32(ResetSystem) {
		t.Fatalf("RST_CNT = %#x", got)
	}
	h.WritePort(ResetControlPort, 1, uint32(ResetSystem|ResetCPU))
	if *resets != 1 {
		t.Fatalf("%d resets, want 1", *resets)
	}
}

type nopFunction struct{}

func (nopFunction) ReadConfig(uint16, uint8) uint32   { return 0 }
func (nopFunction) WriteConfig(uint16, uint8, uint32) {}

func TestAccessesDoNotAllocate(t *testing.T) {
	h, _ := newHost(t)
	cs := NewConfigSpace(Header{VendorID: 0x1AF4, DeviceID: 0x1041, Class: 0x020000})
	if err := cs.SetBAR(0, BAR{Size: 0x4000, Bits64: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.AddFunction(0, 2, 0, cs); err != nil {
		t.Fatal(err)
	}
	if err := h.AddFunction(0, 3, 0, nopFunction{}); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		h.WritePort(ConfigAddressPort, 4, cf8(0, 2, 0, 0x10))
		h.WritePort(ConfigDataPort, 4, 0xFFFFFFFF)
		h.ReadPort(ConfigDataPort, 4)
		h.ReadPort(ConfigDataPort+2, 2)
		h.ReadMMIO(ecamBase|2<<15|0x10, 4)
		h.WriteMMIO(ecamBase|3<<15|0x04, 2, 6)
		h.ReadMMIO(ecamBase|9<<15, 8)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}
