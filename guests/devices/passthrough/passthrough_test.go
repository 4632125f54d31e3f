package passthrough

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tamavisor/drivers/hw/hwfake"
	"tamavisor/guests/devices/pcihost"
)

// Guest placement the rig's window gives (largest BAR first).
const (
	gpa0 = windowBase           // BAR0, 128 KiB
	gpa3 = windowBase + 0x20000 // BAR3, 16 KiB
	gpa1 = windowBase + 0x24000 // BAR1, 256 bytes
)

// noHostBARWrites fails when the device's BAR or ROM registers were
// written after New.
func noHostBARWrites(t *testing.T, r *rig) {
	t.Helper()
	for _, w := range r.hostWritesSince() {
		if (w.off >= 0x10 && w.off <= 0x24) || w.off == 0x30 {
			t.Fatalf("guest access wrote the device's register %#x (%#x)", w.off, w.v)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	base := func(r *rig) Config {
		return Config{Host: r.dev, Bus: hostBus, Dev: hostDev, Fn: hostFn, HostMMIO: r.mem,
			Mapper: r.mapper, Vectors: r.vecs, MSI: r.msis, Sleep: func(time.Duration) {}}
	}
	for _, c := range []struct {
		name string
		mod  func(*Config, *fakeDevice)
		want string
	}{
		{"nil host", func(c *Config, _ *fakeDevice) { c.Host = nil }, "Host is nil"},
		{"nil mmio", func(c *Config, _ *fakeDevice) { c.HostMMIO = nil }, "HostMMIO is nil"},
		{"nil mapper", func(c *Config, _ *fakeDevice) { c.Mapper = nil }, "Mapper is nil"},
		{"nil vectors", func(c *Config, _ *fakeDevice) { c.Vectors = nil }, "Vectors is nil"},
		{"nil msi", func(c *Config, _ *fakeDevice) { c.MSI = nil }, "MSI is nil"},
		{"nil sleep", func(c *Config, _ *fakeDevice) { c.Sleep = nil }, "Sleep is nil"},
		{"bad address", func(c *Config, _ *fakeDevice) { c.Dev = 32 }, "not a valid PCI address"},
		{"too many vectors", func(c *Config, _ *fakeDevice) { c.MaxMSIXVectors = 4096 }, "MaxMSIXVectors"},
		{"absent", func(c *Config, _ *fakeDevice) { c.Bus = 9 }, "no function there"},
		{"bridge", func(_ *Config, d *fakeDevice) { d.set32(0x0C, 0x00010000) }, "not an endpoint"},
		{"unassigned BAR", func(_ *Config, d *fakeDevice) { d.set32(0x10, 0) }, "not assigned"},
		{"64-bit BAR5", func(_ *Config, d *fakeDevice) { d.set32(0x24, 0x4) }, "BAR5"},
	} {
		r := &rig{dev: newFakeDevice(), mem: &hostMem{Memory: hwfake.NewMemory()}, mapper: &fakeMapper{},
			vecs: &fakeVectors{handlers: map[uint8]func(){}}, msis: &msiLog{}}
		w, err := NewWindow(windowBase, windowSize)
		if err != nil {
			t.Fatal(err)
		}
		cfg := base(r)
		c.mod(&cfg, r.dev)
		if _, err := w.New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
	// No room: a window smaller than BAR0.
	r := newRig(t, nil)
	small, _ := NewWindow(windowBase, 64<<10)
	if _, err := small.New(Config{Host: r.dev, Bus: hostBus, HostMMIO: r.mem, Mapper: r.mapper,
		Vectors: r.vecs, MSI: r.msis, Sleep: func(time.Duration) {}}); err == nil || !strings.Contains(err.Error(), "no room") {
		t.Errorf("BAR0 placed in a 64 KiB window: %v", err)
	}
	// Out of host vectors: the ones taken are given back.
	r2 := &rig{dev: newFakeDevice(), mem: &hostMem{Memory: hwfake.NewMemory()}, mapper: &fakeMapper{},
		vecs: &fakeVectors{handlers: map[uint8]func(){}, limit: 3}, msis: &msiLog{}}
	w, _ := NewWindow(windowBase, windowSize)
	if _, err := w.New(base(r2)); err == nil || !strings.Contains(err.Error(), "out of vectors") {
		t.Errorf("vector shortage: %v", err)
	}
	if len(r2.vecs.handlers) != 0 || len(r2.vecs.freed) != 3 {
		t.Errorf("after a failed New: %d vectors held, %d freed", len(r2.vecs.handlers), len(r2.vecs.freed))
	}
	if _, err := NewWindow(0x1000, 0); err == nil {
		t.Error("empty window accepted")
	}
	if _, err := NewWindow(0x1001, 0x1000); err == nil {
		t.Error("unaligned window accepted")
	}
}

func TestIdentityAndHeader(t *testing.T) {
	r := newRig(t, nil)
	for _, c := range []struct {
		off  uint16
		size uint8
		want uint32
	}{
		{0x00, 4, 0x10D38086}, {0x02, 2, 0x10D3}, {0x08, 4, 0x02000000}, {0x0B, 1, 0x02},
		{0x2C, 4, 0xA01F8086},
		{0x0E, 1, 0x00},   // header type 0, multi-function bit dropped
		{0x0F, 1, 0x00},   // BIST not capable
		{0x3D, 1, 0x00},   // no INTx pin
		{0x3E, 2, 0x1234}, // Min_Gnt/Max_Lat from the device
		{0x28, 4, 0}, {0x30, 4, 0}, {0x38, 4, 0},
		{0x34, 1, capPMOff},
		{0x06, 2, 0x0010}, // capability list
		{0x100, 4, 0},     // no extended capabilities
		{0xFFC, 4, 0},
	} {
		if got := r.rd(c.off, c.size); got != c.want {
			t.Errorf("config %#x/%d = %#x, want %#x", c.off, c.size, got, c.want)
		}
	}
	// The interrupt line and cache line size are the guest's own.
	r.wr(0x3C, 1, 5)
	r.wr(0x0C, 1, 0x10)
	if r.rd(0x3C, 1) != 5 || r.rd(0x0C, 1) != 0x10 || r.dev.get32(0x3C)&0xFF != 0x0B {
		t.Error("interrupt line / cache line size not private to the guest")
	}
	// Identity stays read-only.
	r.wr(0x00, 4, 0)
	r.wr(0x08, 4, 0)
	if r.rd(0x00, 4) != 0x10D38086 || r.rd(0x08, 4) != 0x02000000 {
		t.Error("identity registers writable")
	}
	// Writes past the header never reach the device.
	r.wr(0x100, 4, 0xFFFFFFFF)
	r.wr(0x28, 4, 0xFFFFFFFF)
	r.wr(0x41, 2, 0xFFFF) // misaligned
	if len(r.hostWritesSince()) != 0 {
		t.Errorf("writes reached the device: %+v", r.hostWritesSince())
	}
}

// TestGuestBARSizing sizes every BAR the way Linux's __pci_read_base does
// (save, write all ones, read, restore) and checks the answers hardware
// would give, the initial placement, and that the device's own BAR
// registers are never written.
func TestGuestBARSizing(t *testing.T) {
	r := newRig(t, nil)
	for _, c := range []struct {
		off        uint16
		addr, size uint32 // value before sizing, value read after all ones
	}{
		{0x10, gpa0, 0xFFFE0000},
		{0x14, gpa1, 0xFFFFFF00},
		{0x18, 0, 0}, // I/O BAR: hidden
		{0x1C, gpa3 | 0xC, 0xFFFFC00C},
		{0x20, 0, 0xFFFFFFFF}, // upper half of BAR3
		{0x24, 0, 0},
		{0x30, 0, 0}, // expansion ROM: none
	} {
		saved := r.rd(c.off, 4)
		if saved != c.addr {
			t.Errorf("BAR at %#x reads %#x before sizing, want %#x", c.off, saved, c.addr)
		}
		r.wr(c.off, 4, 0xFFFFFFFF)
		if got := r.rd(c.off, 4); got != c.size {
			t.Errorf("BAR at %#x sizes as %#x, want %#x", c.off, got, c.size)
		}
		r.wr(c.off, 4, saved)
		if got := r.rd(c.off, 4); got != saved {
			t.Errorf("BAR at %#x reads %#x after restoring %#x", c.off, got, saved)
		}
	}
	for i, want := range []struct {
		addr, size uint64
		ok         bool
	}{{gpa0, bar0Size, true}, {gpa1, bar1Size, true}, {0, 0, false}, {gpa3, bar3Size, true}, {0, 0, false}, {0, 0, false}} {
		a, s, ok := r.f.GuestBAR(i)
		if a != want.addr || s != want.size || ok != want.ok {
			t.Errorf("GuestBAR(%d) = %#x, %#x, %v; want %#x, %#x, %v", i, a, s, ok, want.addr, want.size, want.ok)
		}
		if ok && a%s != 0 {
			t.Errorf("BAR%d at %#x not aligned to its size %#x", i, a, s)
		}
	}
	// A byte write changes only address bits.
	r.wr(0x1D, 1, 0xFF)
	if got := r.rd(0x1C, 4); got != gpa3|0xC000|0xC {
		t.Errorf("byte write into BAR3: %#x", got)
	}
	noHostBARWrites(t, r)
	for i, want := range []uint32{bar0Host, bar1Host, bar2Port | 1, uint32(bar3Host&0xFFFFFFFF) | 0xC, uint32(bar3Host >> 32)} {
		if got := r.dev.get32(uint16(0x10 + 4*i)); got != want {
			t.Errorf("device BAR%d holds %#x, want %#x", i, got, want)
		}
	}
}

func TestRemapBAR(t *testing.T) {
	r := newRig(t, nil)
	m := r.mapper
	if len(m.calls) != 0 {
		t.Fatalf("mappings before the guest enabled decoding: %+v", m.calls)
	}
	expect := func(what string, want ...remapCall) {
		t.Helper()
		if len(m.calls) != len(want) {
			t.Fatalf("%s: RemapBAR calls %+v, want %+v", what, m.calls, want)
		}
		for i := range want {
			if m.calls[i] != want[i] {
				t.Fatalf("%s: RemapBAR calls %+v, want %+v", what, m.calls, want)
			}
		}
		m.calls = nil
	}
	r.wr(0x04, 2, uint32(pcihost.CommandMemory))
	// BAR3's first three pages (MSI-X table at 0, PBA at 0x2000) trap;
	// BAR1 (256 bytes) traps whole.
	expect("decode on",
		remapCall{0, NoMapping, gpa0, bar0Size, bar0Host},
		remapCall{3, NoMapping, gpa3 + 0x3000, 0x1000, bar3Host + 0x3000})

	const moved = windowBase + 0x100000
	r.wr(0x10, 4, moved)
	expect("move BAR0", remapCall{0, gpa0, moved, bar0Size, bar0Host})

	// Linux's 64-bit update with decoding off: nothing mapped meanwhile.
	r.wr(0x04, 2, 0)
	expect("decode off",
		remapCall{0, moved, NoMapping, bar0Size, bar0Host},
		remapCall{3, gpa3 + 0x3000, NoMapping, 0x1000, bar3Host + 0x3000})
	const moved3 = windowBase + 0x200000
	r.wr(0x1C, 4, moved3)
	r.wr(0x20, 4, 0)
	expect("move BAR3 with decode off")
	r.wr(0x04, 2, uint32(pcihost.CommandMemory))
	expect("decode on again",
		remapCall{0, NoMapping, moved, bar0Size, bar0Host},
		remapCall{3, NoMapping, moved3 + 0x3000, 0x1000, bar3Host + 0x3000})

	// Sizing with decoding on: the all-ones address is outside the
	// window, so the BAR is unmapped, then mapped back.
	r.wr(0x10, 4, 0xFFFFFFFF)
	r.wr(0x10, 4, moved)
	expect("sizing with decode on",
		remapCall{0, moved, NoMapping, bar0Size, bar0Host},
		remapCall{0, NoMapping, moved, bar0Size, bar0Host})

	// Outside the window (the ECAM, the IOAPIC, RAM, the top of the
	// address space) is never mapped.
	for _, a := range []uint32{0xE0000000, 0xFEC00000, 0x100000, 0xFFFE0000} {
		r.wr(0x10, 4, a)
		expect("BAR0 outside the window", remapCall{0, moved, NoMapping, bar0Size, bar0Host})
		r.wr(0x10, 4, moved)
		expect("BAR0 back", remapCall{0, NoMapping, moved, bar0Size, bar0Host})
	}
	r.wr(0x10, 4, 0xE0000000)
	expect("BAR0 over the ECAM", remapCall{0, moved, NoMapping, bar0Size, bar0Host})
	// The upper half of a 64-bit BAR moves it above 4 GiB: outside.
	r.wr(0x20, 4, 1)
	expect("BAR3 above 4 GiB", remapCall{3, moved3 + 0x3000, NoMapping, 0x1000, bar3Host + 0x3000})
	r.wr(0x20, 4, 0)
	expect("BAR3 back", remapCall{3, NoMapping, moved3 + 0x3000, 0x1000, bar3Host + 0x3000})
	noHostBARWrites(t, r)
	if r.f.Err() != nil {
		t.Fatal(r.f.Err())
	}

	// A failing mapper: the BAR counts as unmapped, no stale unmap later.
	m.fail = true
	r.wr(0x10, 4, moved)
	if r.f.Err() == nil {
		t.Fatal("mapper error not recorded")
	}
	m.calls = nil
	m.fail = false
	r.wr(0x04, 2, 0)
	expect("decode off after a failure", remapCall{3, moved3 + 0x3000, NoMapping, 0x1000, bar3Host + 0x3000})
}

func TestRemapFailureUndoesPieces(t *testing.T) {
	// A BAR whose trapped pages sit in its middle maps in two pieces;
	// when the second fails, the first must not stay mapped.
	r := newRig(t, nil)
	r.f.mu.Lock()
	b := &r.f.bars[3]
	b.trapStart, b.trapEnd = 0x1000, 0x2000
	r.f.cfg.Mapper = &failNth{inner: r.mapper, n: 3}
	r.f.mu.Unlock()
	r.wr(0x04, 2, uint32(pcihost.CommandMemory))
	want := []remapCall{
		{0, NoMapping, gpa0, bar0Size, bar0Host},
		{3, NoMapping, gpa3, 0x1000, bar3Host},
		{3, NoMapping, gpa3 + 0x2000, 0x2000, bar3Host + 0x2000}, // fails
		{3, gpa3, NoMapping, 0x1000, bar3Host},                   // undone
	}
	m := r.mapper
	if len(m.calls) != len(want) {
		t.Fatalf("calls %+v, want %+v", m.calls, want)
	}
	for i := range want {
		if m.calls[i] != want[i] {
			t.Fatalf("calls %+v, want %+v", m.calls, want)
		}
	}
	if err := r.f.Err(); err == nil || !strings.Contains(err.Error(), "BAR3") {
		t.Fatalf("error %v, want one naming BAR3", err)
	}
}

// failNth fails the nth RemapBAR call it sees.
type failNth struct {
	inner *fakeMapper
	seen  int
	n     int
}

func (s *failNth) RemapBAR(i int, o, n, size, h uint64) error {
	s.inner.RemapBAR(i, o, n, size, h)
	s.seen++
	if s.seen == s.n {
		return errors.New("out of table pages")
	}
	return nil
}

func TestCommandFilter(t *testing.T) {
	r := newRig(t, nil)
	hostCmd := func() uint16 { return uint16(r.dev.get32(0x04)) }
	if got := hostCmd(); got != pcihost.CommandMemory|pcihost.CommandINTxDisable {
		t.Fatalf("device command after New = %#x, want memory decode and INTx disable", got)
	}
	if r.rd(0x04, 2) != 0 {
		t.Fatalf("guest command starts at %#x", r.rd(0x04, 2))
	}
	r.wr(0x04, 2, 0xFFFF)
	want := pcihost.CommandMemory | pcihost.CommandBusMaster | pcihost.CommandParity | pcihost.CommandSERR | pcihost.CommandINTxDisable
	if got := uint16(r.rd(0x04, 2)); got != want {
		t.Errorf("guest command reads %#x, want %#x (no I/O decode: I/O BARs are hidden)", got, want)
	}
	if got := hostCmd(); got != pcihost.CommandMemory|pcihost.CommandBusMaster|pcihost.CommandINTxDisable {
		t.Errorf("device command %#x: only bus master may follow the guest", got)
	}
	r.wr(0x04, 2, 0)
	if got := hostCmd(); got != pcihost.CommandMemory|pcihost.CommandINTxDisable {
		t.Errorf("device command %#x after the guest cleared everything", got)
	}
	// INTx disable is the guest's to set and clear, the device's stays set.
	r.wr(0x05, 1, 0x00)
	if hostCmd()&pcihost.CommandINTxDisable == 0 {
		t.Error("guest turned the device's INTx on")
	}

	// Status: read through; write-one-to-clear reaches the device, the
	// command register beside it is not disturbed.
	r.dev.set32(0x04, r.dev.get32(0x04)|(1<<13|1<<3)<<16)
	if got := r.rd(0x06, 2); got != 1<<13|1<<4|1<<3 {
		t.Errorf("status %#x", got)
	}
	r.wr(0x04, 2, uint32(pcihost.CommandBusMaster))
	r.wr(0x04, 4, uint32(pcihost.CommandBusMaster)|(1<<13|1<<4)<<16)
	if got := r.dev.get32(0x04); got>>16 != 1<<4|1<<3 || uint16(got) != pcihost.CommandMemory|pcihost.CommandBusMaster|pcihost.CommandINTxDisable {
		t.Errorf("device command/status %#x after clearing bit 13", got)
	}
}

// linuxFindCapabilities walks the list as Linux's pci_find_capability
// does, through the host bridge's configuration mechanism #1: status
// bit 4, the pointer at 0x34, then ID and next of each entry, at most 48.
func linuxFindCapabilities(h *pcihost.Host, dev uint8) [][2]uint8 {
	rd := func(off uint8, size uint8) uint32 {
		h.WritePort(pcihost.ConfigAddressPort, 4, 1<<31|uint32(dev)<<11|uint32(off)&0xFC)
		return h.ReadPort(pcihost.ConfigDataPort+uint16(off&3), size)
	}
	var caps [][2]uint8
	if rd(0x06, 2)&(1<<4) == 0 {
		return nil
	}
	pos := uint8(rd(0x34, 1))
	for ttl := 48; ttl > 0 && pos >= 0x40; ttl-- {
		pos &^= 3
		ent := rd(pos, 2)
		id := uint8(ent)
		if id == 0xFF {
			break
		}
		caps = append(caps, [2]uint8{id, pos})
		pos = uint8(ent >> 8)
	}
	return caps
}

func TestCapabilityListFromTheGuest(t *testing.T) {
	r := newRig(t, nil)
	h, err := pcihost.New(pcihost.Config{ECAMBase: 0xE0000000, ECAMEndBus: 255})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddFunction(0, 3, 0, r.f); err != nil {
		t.Fatal(err)
	}
	got := linuxFindCapabilities(h, 3)
	want := [][2]uint8{{capIDPM, capPMOff}, {capIDMSI, capMSIOff}, {capIDVendor, capVendorOff}, {capIDMSIX, capMSIXOff}, {capIDPCIe, capPCIeOff}}
	if len(got) != len(want) {
		t.Fatalf("guest capability list %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("guest capability list %x, want %x", got, want)
		}
	}
	// The hidden VPD capability reads as nothing.
	for off := uint16(capVPDOff); off < capVendorOff; off += 4 {
		if v := r.rd(off, 4); v != 0 {
			t.Errorf("hidden capability byte %#x reads %#x", off, v)
		}
	}
	// Absent neighbours still read all ones.
	h.WritePort(pcihost.ConfigAddressPort, 4, 1<<31|4<<11)
	if v := h.ReadPort(pcihost.ConfigDataPort, 4); v != 0xFFFFFFFF {
		t.Errorf("absent 00:04.0 reads %#x", v)
	}
	// Extended space through ECAM: no extended capabilities.
	if v := h.ReadMMIO(0xE0000000|3<<15|0x100, 4); v != 0 {
		t.Errorf("extended capability header %#x", v)
	}

	// Power management: PME support hidden, PMCSR read through without
	// PME bits; power-state writes dropped.
	if v := r.rd(capPMOff+2, 2); v != 0x0003 {
		t.Errorf("PMC %#x, want version 3 with no PME support", v)
	}
	r.dev.set32(capPMOff+4, 0x8108)
	if v := r.rd(capPMOff+4, 2); v != 0x0008 {
		t.Errorf("PMCSR %#x, want D0 with No_Soft_Reset and no PME bits", v)
	}
	r.wr(capPMOff+4, 2, 3) // D3hot
	// PCI Express: endpoint shown as RCiEP, link registers 0, FLR hidden.
	if v := r.rd(capPCIeOff+2, 2); v != 0x0092 {
		t.Errorf("PCIe capabilities register %#x, want 0x92 (v2 RCiEP)", v)
	}
	if v := r.rd(capPCIeOff+4, 4); v != 0x1 {
		t.Errorf("DevCap %#x, want FLR capable cleared", v)
	}
	for _, off := range []uint16{0x0C, 0x10, 0x14, 0x18, 0x2C, 0x30} {
		if v := r.rd(capPCIeOff+off, 4); v != 0 {
			t.Errorf("PCIe register +%#x reads %#x", off, v)
		}
	}
	if r.rd(capPCIeOff+8, 2) != 0x2810 || r.rd(capPCIeOff+0x28, 2) != 0x400 || r.rd(capPCIeOff+0x24, 4) != 0x810 {
		t.Error("device control / capabilities 2 not read through")
	}
	r.wr(capPCIeOff+8, 2, 0x8000) // initiate FLR
	r.wr(capPCIeOff+8, 2, 0x0000)
	// Vendor-specific: read through with the guest's next pointer.
	if v := r.rd(capVendorOff, 4); v != capIDVendor|capMSIXOff<<8|0x10<<16|0xAB<<24 {
		t.Errorf("vendor capability header %#x", v)
	}
	if r.rd(capVendorOff+8, 4) != 0x55667788 {
		t.Error("vendor capability body not read through")
	}
	r.wr(capVendorOff+4, 4, 0)
	if len(r.hostWritesSince()) != 0 || r.dev.flrs != 0 {
		t.Errorf("writes to read-only capabilities reached the device: %+v", r.hostWritesSince())
	}
}

func TestCapabilityListGuards(t *testing.T) {
	// A list that loops, points into the header, or claims overlapping
	// capabilities ends or skips cleanly.
	d := newFakeDevice()
	d.set32(capPCIeOff, capIDPCIe|capMSIOff<<8|0x0002<<16) // loops back to MSI
	r := newRigWith(t, d)
	if r.f.ncaps != 5 {
		t.Errorf("%d capabilities visible from a looping list, want 5", r.f.ncaps)
	}
	// A vendor capability claiming 0x30 bytes runs over MSI-X at 0xA0:
	// the first one keeps the bytes, MSI-X is hidden.
	d2 := newFakeDevice()
	d2.set32(capVendorOff, capIDVendor|capMSIXOff<<8|0x30<<16)
	r2 := newRigWith(t, d2)
	if r2.f.msix.present || r2.f.ncaps != 4 {
		t.Errorf("overlapping MSI-X kept (%d capabilities)", r2.f.ncaps)
	}
	if got := linuxWalkDirect(r2.f); len(got) != 4 || got[3][0] != capIDPCIe {
		t.Errorf("guest list %x", got)
	}
	d3 := newFakeDevice()
	d3.set32(0x34, 0x20) // into the header
	r3 := newRigWith(t, d3)
	if r3.f.ncaps != 0 || r3.rd(0x06, 2)&(1<<4) != 0 || r3.rd(0x34, 1) != 0 {
		t.Error("a capability pointer into the header was followed")
	}
	// MSI-X whose table lies past its BAR is hidden, and BAR3 traps
	// nothing then.
	d4 := newFakeDevice()
	d4.set32(capMSIXOff+4, 0x3FC0|3)
	r4 := newRigWith(t, d4)
	if r4.f.msix.present {
		t.Error("MSI-X with its table outside BAR3 was kept")
	}
	if b := r4.f.bars[3]; b.trapStart != b.size || b.trapEnd != b.size {
		t.Errorf("BAR3 trap %#x-%#x without MSI-X", b.trapStart, b.trapEnd)
	}
	// A PCIe capability at 0xE0 (as on the 82574L) is clamped to the
	// space, not dropped.
	d5 := newFakeDevice()
	d5.set32(capMSIXOff, capIDMSIX|0xE0<<8|(msixEntries-1)<<16)
	copy(d5.data[0xE0:0x100], d5.data[capPCIeOff:capPCIeOff+0x20])
	for i := capPCIeOff; i < 0xE0; i++ {
		d5.data[i] = 0
	}
	r5 := newRigWith(t, d5)
	if r5.f.pcieOff != 0xE0 || r5.rd(0xE0, 1) != capIDPCIe {
		t.Errorf("PCIe capability at 0xE0 not visible (at %#x)", r5.f.pcieOff)
	}
}

// linuxWalkDirect walks the guest's capability list on the function
// itself.
func linuxWalkDirect(f *Function) [][2]uint8 {
	var caps [][2]uint8
	pos := uint8(f.ReadConfig(0x34, 1))
	for ttl := 48; ttl > 0 && pos >= 0x40; ttl-- {
		ent := f.ReadConfig(uint16(pos&^3), 2)
		caps = append(caps, [2]uint8{uint8(ent), pos})
		pos = uint8(ent >> 8)
	}
	return caps
}

func newRigWith(t *testing.T, d *fakeDevice) *rig {
	t.Helper()
	r := newRig(t, nil) // for the fakes
	r.dev = d
	w, _ := NewWindow(windowBase, windowSize)
	f, err := w.New(Config{Host: d, Bus: hostBus, HostMMIO: r.mem, Mapper: r.mapper, Vectors: r.vecs,
		MSI: r.msis, Sleep: func(time.Duration) {}})
	if err != nil {
		t.Fatal(err)
	}
	r.win, r.f = w, f
	r.initWrites = len(d.writes)
	return r
}
