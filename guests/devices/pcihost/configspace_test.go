package pcihost

import "testing"

func newNIC(t *testing.T) *ConfigSpace {
	t.Helper()
	c := NewConfigSpace(Header{
		VendorID: 0x1AF4, DeviceID: 0x1041, RevisionID: 1, Class: 0x020000,
		SubsystemVendorID: 0x1AF4, SubsystemID: 0x1100, InterruptPin: 1,
	})
	for i, b := range []BAR{{Size: 0x1000}, {Size: 0x20, IO: true}, {Size: 1 << 33, Bits64: true, Prefetchable: true}} {
		if err := c.SetBAR(i, b); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestHeaderLayout(t *testing.T) {
	c := newNIC(t)
	for _, f := range []struct {
		off  uint16
		size uint8
		want uint32
	}{
		{OffVendorID, 2, 0x1AF4}, {OffDeviceID, 2, 0x1041}, {OffRevisionID, 1, 1},
		{OffClassCode, 1, 0x00}, {OffClassCode + 1, 1, 0x00}, {OffClassCode + 2, 1, 0x02},
		{OffHeaderType, 1, 0}, {OffSubsystemVID, 2, 0x1AF4}, {OffSubsystemID, 2, 0x1100},
		{OffInterruptPin, 1, 1}, {OffCapabilities, 1, 0}, {OffStatus, 2, 0},
	} {
		if got := c.ReadConfig(f.off, f.size); got != f.want {
			t.Errorf("offset %#x = %#x, want %#x", f.off, got, f.want)
		}
	}
	m := NewConfigSpace(Header{MultiFunction: true})
	if m.Get8(OffHeaderType) != HeaderTypeMultiFunction {
		t.Error("multi-function bit missing")
	}
}

func TestReadOnlyAndWritableFields(t *testing.T) {
	c := newNIC(t)
	c.WriteConfig(OffVendorID, 4, 0)
	c.WriteConfig(OffClassCode, 2, 0xFFFF)
	c.WriteConfig(OffInterruptPin, 1, 4)
	if c.Get32(OffVendorID) != 0x10411AF4 || c.Get8(OffClassCode+1) != 0 || c.Get8(OffInterruptPin) != 1 {
		t.Fatal("read-only field changed")
	}
	c.WriteConfig(OffCommand, 2, 0xFFFF)
	if got := c.Command(); got != commandWritable {
		t.Fatalf("command = %#x, want only the implemented bits %#x", got, commandWritable)
	}
	c.WriteConfig(OffInterruptLine, 1, 11)
	if c.Get8(OffInterruptLine) != 11 {
		t.Fatal("interrupt line not writable")
	}
}

func TestStatusWriteOneToClear(t *testing.T) {
	c := newNIC(t)
	c.Set16(OffStatus, 1<<13|1<<8|StatusInterrupt)
	c.WriteConfig(OffStatus, 2, 1<<13)
	if got := c.Get16(OffStatus); got != 1<<8|StatusInterrupt {
		t.Fatalf("status %#x after clearing bit 13", got)
	}
	c.WriteConfig(OffStatus, 2, 0xFFFF)
	if got := c.Get16(OffStatus); got != StatusInterrupt {
		t.Fatalf("status %#x: interrupt status must stay", got)
	}
	c.SetInterruptStatus(false)
	if c.Get16(OffStatus) != 0 {
		t.Fatal("SetInterruptStatus(false)")
	}
	// A dword write to the command register must not clear status bits
	// with zeros, nor set them with ones beyond the W1C rule.
	c.Set16(OffStatus, 1<<15)
	c.WriteConfig(OffCommand, 4, uint32(CommandMemory))
	if c.Get16(OffStatus) != 1<<15 || c.Command() != CommandMemory {
		t.Fatalf("dword command write: status %#x command %#x", c.Get16(OffStatus), c.Command())
	}
}

// TestBARSizing follows the sizing sequence of PCI 3.0 6.2.5.1 (and
// Linux's __pci_read_base): save, write all ones, read, restore.
func TestBARSizing(t *testing.T) {
	c := newNIC(t)
	cases := []struct {
		off  uint16
		want uint32
	}{
		{OffBAR0, 0xFFFFF000},     // 4 KiB, 32-bit memory
		{OffBAR0 + 4, 0x0000FFE1}, // 32 ports, I/O
		{OffBAR0 + 8, 0x0000000C}, // 8 GiB 64-bit prefetchable: low half
		{OffBAR0 + 12, 0xFFFFFFFE},
		{OffBAR0 + 16, 0}, // not implemented
		{OffBAR0 + 20, 0},
		{OffExpansionROM, 0},
	}
	for _, bc := range cases {
		saved := c.ReadConfig(bc.off, 4)
		c.WriteConfig(bc.off, 4, 0xFFFFFFFF)
		if got := c.ReadConfig(bc.off, 4); got != bc.want {
			t.Errorf("BAR at %#x sizes as %#x, want %#x", bc.off, got, bc.want)
		}
		c.WriteConfig(bc.off, 4, saved)
	}
	c.WriteConfig(OffBAR0, 4, 0xFEB00000)
	c.WriteConfig(OffBAR0+4, 4, 0xC040)
	c.WriteConfig(OffBAR0+8, 4, 0)
	c.WriteConfig(OffBAR0+12, 4, 0x4)
	for i, want := range []uint64{0xFEB00000, 0xC040, 0x4_0000_0000} {
		if got, ok := c.BARAddress(i); !ok || got != want {
			t.Errorf("BAR%d address %#x, %v; want %#x", i, got, ok, want)
		}
	}
	if _, ok := c.BARAddress(3); ok {
		t.Error("upper half of a 64-bit BAR reported as a BAR")
	}
	if c.BARSize(2) != 1<<33 || c.BARSize(4) != 0 {
		t.Error("BARSize")
	}
	// A byte write into a BAR changes only the address bits it covers
	// (15:12 here), never the bits below the size.
	c.WriteConfig(OffBAR0+1, 1, 0xFF)
	if got := c.Get32(OffBAR0); got != 0xFEB0F000 {
		t.Errorf("byte write into BAR0 low bits: %#x", got)
	}
}

func TestSetBARRejects(t *testing.T) {
	c := NewConfigSpace(Header{})
	for _, bc := range []struct {
		i int
		b BAR
	}{
		{6, BAR{Size: 16}}, {-1, BAR{Size: 16}}, {0, BAR{Size: 0}}, {0, BAR{Size: 0x1800}},
		{0, BAR{Size: 8}}, {0, BAR{Size: 512, IO: true}}, {0, BAR{Size: 2, IO: true}},
		{0, BAR{Size: 1 << 32}}, {5, BAR{Size: 16, Bits64: true}}, {0, BAR{Size: 16, IO: true, Bits64: true}},
	} {
		if err := c.SetBAR(bc.i, bc.b); err == nil {
			t.Errorf("SetBAR(%d, %+v) accepted", bc.i, bc.b)
		}
	}
	if err := c.SetBAR(1, BAR{Size: 16, Bits64: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetBAR(2, BAR{Size: 16}); err == nil {
		t.Error("BAR2 accepted inside a 64-bit BAR1")
	}
}

func TestCapabilityList(t *testing.T) {
	c := NewConfigSpace(Header{})
	first, err := c.AddCapability(0x09, 16) // vendor-specific
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.AddCapability(0x05, 14) // MSI, not a DWORD multiple
	if err != nil {
		t.Fatal(err)
	}
	if first != 0x40 || second != 0x50 {
		t.Fatalf("capabilities at %#x, %#x", first, second)
	}
	if c.Get16(OffStatus)&StatusCapabilities == 0 || c.Get8(OffCapabilities) != 0x40 {
		t.Fatal("capabilities pointer or status bit missing")
	}
	if c.Get8(0x40) != 0x09 || c.Get8(0x41) != 0x50 || c.Get8(0x50) != 0x05 || c.Get8(0x51) != 0 {
		t.Fatal("list not linked")
	}
	third, err := c.AddCapability(0x10, 2)
	if err != nil || third != 0x60 {
		t.Fatalf("third capability at %#x, %v (want DWORD-aligned 0x60)", third, err)
	}
	// Fill to the end, then expect a clean error.
	if _, err := c.AddCapability(0x09, 0xFF-0x64+1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddCapability(0x09, 4); err == nil {
		t.Fatal("capability accepted past the space")
	}
	if _, err := NewConfigSpace(Header{}).AddCapability(1, 1); err == nil {
		t.Fatal("1-byte capability accepted")
	}
}

func TestExtendedSpaceAndOddAccesses(t *testing.T) {
	c := newNIC(t)
	if got := c.ReadConfig(0x100, 4); got != 0 {
		t.Fatalf("extended space reads %#x", got)
	}
	c.WriteConfig(0xFFE, 2, 0xFFFF) // ignored, no panic
	if got := c.ReadConfig(0xFE, 4); got != 0 {
		t.Fatalf("read straddling the end %#x", got)
	}
	c.Set32(0xFE, 0xFFFFFFFF) // half past the end: no panic
}

func TestOffsetsNearTheTopDoNotWrap(t *testing.T) {
	c := newNIC(t)
	c.Set32(0xFFFE, 0)
	c.WriteConfig(0xFFFF, 4, 0)
	c.SetWritable(0xFFFD, 4, 0xFFFFFFFF)
	if got := c.Get32(OffVendorID); got != 0x10411AF4 {
		t.Fatalf("IDs overwritten through a wrapping offset: %#x", got)
	}
	if got := c.ReadConfig(0xFFFE, 4); got != 0 {
		t.Fatalf("read wrapping past 0xFFFF = %#x", got)
	}
}
