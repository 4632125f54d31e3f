package ioapic

import (
	"errors"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

const testBase = 0xFEC00000

type regWrite struct {
	reg uint8
	v   uint32
}

// fakeIOAPIC models an 82093AA's indirect registers behind IOREGSEL/IOWIN,
// with read-only redirection bits that writes cannot change.
type fakeIOAPIC struct {
	sel    uint8
	regs   map[uint8]uint32
	writes []regWrite
}

func newFake(mem *hwfake.Memory, base uint64, entries int) *fakeIOAPIC {
	f := &fakeIOAPIC{regs: map[uint8]uint32{
		RegID:      0x0200_0000,
		RegVersion: uint32(entries-1)<<16 | 0x20,
	}}
	for i := 0; i < entries; i++ {
		f.regs[RegRedirBase+2*uint8(i)] = uint32(EntryMasked)
		f.regs[RegRedirBase+2*uint8(i)+1] = 0
	}
	mem.OnWrite[base+IOREGSEL] = func(w int, v uint64) { f.sel = uint8(v) }
	mem.OnRead[base+IOWIN] = func(w int) uint64 {
		v, ok := f.regs[f.sel]
		if !ok {
			return 0
		}
		return uint64(v)
	}
	mem.OnWrite[base+IOWIN] = func(w int, v uint64) {
		f.writes = append(f.writes, regWrite{f.sel, uint32(v)})
		if f.sel < RegRedirBase {
			return // ID/version/arbitration: not modelled as writable
		}
		old := f.regs[f.sel]
		nv := uint32(v)
		if (f.sel-RegRedirBase)%2 == 0 {
			ro := uint32(EntryPending | EntryRemoteIRR)
			nv = nv&^ro | old&ro
		}
		f.regs[f.sel] = nv
	}
	return f
}

func setup(t *testing.T, gsiBase uint32, entries int) (*IOAPIC, *fakeIOAPIC) {
	t.Helper()
	mem := hwfake.NewMemory()
	f := newFake(mem, testBase, entries)
	a, err := New(mem, testBase, gsiBase)
	if err != nil {
		t.Fatal(err)
	}
	return a, f
}

func TestEntryLayout(t *testing.T) {
	e := Entry{
		Vector: 0x30, DeliveryMode: DeliveryLowestPriority, LogicalDest: true,
		ActiveLow: true, Level: true, Masked: true, Destination: 0x0F,
	}
	const want = 0x0F00_0000_0001_A930
	if got := e.Encode(); got != want {
		t.Errorf("Encode = %#x, want %#x", got, want)
	}
	ro := DecodeEntry(want | EntryPending | EntryRemoteIRR)
	if !ro.Pending || !ro.RemoteIRR {
		t.Errorf("read-only bits not decoded: %+v", ro)
	}
	ro.Pending, ro.RemoteIRR = false, false
	if ro != e {
		t.Errorf("DecodeEntry = %+v, want %+v", ro, e)
	}
	if (Entry{Vector: 1, Pending: true, RemoteIRR: true}).Encode() != 1 {
		t.Error("Encode set read-only bits")
	}
}

func TestNew(t *testing.T) {
	a, _ := setup(t, 0, 24)
	if a.Version() != 0x20 || a.MaxRedirectionEntry() != 23 || a.ID() != 2 {
		t.Errorf("version %#x max entry %d id %d", a.Version(), a.MaxRedirectionEntry(), a.ID())
	}
	mem := hwfake.NewMemory()
	mem.OnRead[testBase+IOWIN] = func(int) uint64 { return 0xFFFFFFFF }
	if _, err := New(mem, testBase, 0); !errors.Is(err, ErrAbsent) {
		t.Errorf("all-ones version: %v, want ErrAbsent", err)
	}
	mem2 := hwfake.NewMemory()
	mem2.OnRead[testBase+IOWIN] = func(int) uint64 { return 0x00FF_0011 }
	if _, err := New(mem2, testBase, 0); err == nil {
		t.Error("256 entries accepted")
	}
	if _, err := New(hwfake.NewMemory(), testBase+2, 0); err == nil {
		t.Error("misaligned base accepted")
	}
	mem3 := hwfake.NewMemory()
	newFake(mem3, testBase, 24)
	if _, err := New(mem3, testBase, 0xFFFF_FFF0); err == nil {
		t.Error("GSI range overflowing 32 bits accepted")
	}
}

func TestRouteRegisterWrites(t *testing.T) {
	a, f := setup(t, 24, 24)
	if err := a.Route(26, 0x41, 3, true, true); err != nil {
		t.Fatal(err)
	}
	want := []regWrite{
		{0x14, 0x0001_A041}, // low dword masked first
		{0x15, 0x0300_0000}, // destination APIC 3
		{0x14, 0x0000_A041}, // vector 0x41, fixed, physical, active low, level, unmasked
	}
	if len(f.writes) != len(want) {
		t.Fatalf("writes %+v, want %+v", f.writes, want)
	}
	for i := range want {
		if f.writes[i] != want[i] {
			t.Errorf("write %d = %+v, want %+v", i, f.writes[i], want[i])
		}
	}
	e, err := a.Entry(26)
	if err != nil {
		t.Fatal(err)
	}
	if e != (Entry{Vector: 0x41, ActiveLow: true, Level: true, Destination: 3}) {
		t.Errorf("Entry(26) = %+v", e)
	}
}

func TestRouteRejects(t *testing.T) {
	a, f := setup(t, 24, 24)
	for _, c := range []struct {
		name string
		err  error
		call func() error
	}{
		{"GSI below base", ErrRange, func() error { return a.Route(23, 0x40, 0, false, false) }},
		{"GSI past end", ErrRange, func() error { return a.Route(48, 0x40, 0, false, false) }},
		{"APIC ID 256", ErrBadDest, func() error { return a.Route(24, 0x40, 256, false, false) }},
		{"vector 0x10", ErrBadVector, func() error { return a.Route(24, 0x10, 0, false, false) }},
		{"vector 0xff", ErrBadVector, func() error { return a.Route(24, 0xFF, 0, false, false) }},
		{"delivery mode 3", ErrBadDeliver, func() error { return a.SetEntry(24, Entry{Vector: 0x40, DeliveryMode: 3}) }},
	} {
		if err := c.call(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	if len(f.writes) != 0 {
		t.Errorf("rejected calls wrote %+v", f.writes)
	}
	// NMI delivery does not need a vector.
	if err := a.SetEntry(25, Entry{DeliveryMode: DeliveryNMI}); err != nil {
		t.Errorf("NMI entry: %v", err)
	}
}

func TestMaskAll(t *testing.T) {
	a, f := setup(t, 0, 24)
	for gsi := uint32(0); gsi < 24; gsi++ {
		if err := a.Route(gsi, 0x30+uint8(gsi), 0, false, false); err != nil {
			t.Fatal(err)
		}
	}
	f.regs[RegRedirBase+2*5] |= uint32(EntryRemoteIRR)
	a.MaskAll()
	for gsi := uint32(0); gsi < 24; gsi++ {
		e, _ := a.Entry(gsi)
		if !e.Masked || e.Vector != 0x30+uint8(gsi) {
			t.Errorf("GSI %d after MaskAll: %+v", gsi, e)
		}
	}
	if _, ok := f.regs[RegRedirBase+2*24]; ok {
		t.Error("model grew an entry 24")
	}
	for _, w := range f.writes {
		if w.reg >= RegRedirBase+2*24 {
			t.Errorf("MaskAll wrote register %#x past the last entry", w.reg)
		}
	}
	if err := a.SetMasked(7, false); err != nil {
		t.Fatal(err)
	}
	if e, _ := a.Entry(7); e.Masked {
		t.Error("SetMasked(7, false) left it masked")
	}
}

func FuzzEntryRoundTrip(f *testing.F) {
	f.Add(uint64(0x0F00_0000_0001_A930))
	f.Add(uint64(0xFFFF_FFFF_FFFF_FFFF))
	f.Add(uint64(0))
	f.Fuzz(func(t *testing.T, v uint64) {
		if got := DecodeEntry(v).Encode(); got != v&entryWritable {
			t.Fatalf("DecodeEntry(%#x).Encode() = %#x, want %#x", v, got, v&entryWritable)
		}
	})
}
