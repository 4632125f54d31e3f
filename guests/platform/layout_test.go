package platform

import (
	"reflect"
	"strings"
	"testing"
)

func TestNewLayoutRefuses(t *testing.T) {
	for _, c := range []struct {
		ram   uint64
		vcpus int
		want  string
	}{
		{512 * MiB, 0, "0 vCPUs"},
		{512 * MiB, -3, "-3 vCPUs"},
		{512 * MiB, 256, "256 vCPUs: at most 255"},
		{0, 1, "RAM size 0x0 (0 bytes) is below the 2 MiB minimum"},
		{MinRAMSize - 4*KiB, 1, "is below the 2 MiB minimum"},
		{MaxRAMSize + 4*KiB, 1, "is above the 511 GiB maximum"},
		{^uint64(0), 1, "above the"},
		{512*MiB + 1, 1, "not a whole number of 4 KiB pages"},
	} {
		l, err := NewLayout(c.ram, c.vcpus)
		if err == nil {
			t.Errorf("NewLayout(%#x, %d) = %+v, want an error", c.ram, c.vcpus, l)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "platform: ") {
			t.Errorf("NewLayout(%#x, %d): %q, want it to mention %q", c.ram, c.vcpus, err, c.want)
		}
	}
}

func TestLayoutRegions(t *testing.T) {
	for _, c := range []struct {
		ram       uint64
		low, high Region
	}{
		{MinRAMSize, Region{0, 2 * MiB}, Region{4 * GiB, 4 * GiB}},
		{512 * MiB, Region{0, 512 * MiB}, Region{4 * GiB, 4 * GiB}},
		{3 * GiB, Region{0, 3 * GiB}, Region{4 * GiB, 4 * GiB}},
		{3*GiB + 4*KiB, Region{0, 3 * GiB}, Region{4 * GiB, 4*GiB + 4*KiB}},
		{8 * GiB, Region{0, 3 * GiB}, Region{4 * GiB, 9 * GiB}},
		{MaxRAMSize, Region{0, 3 * GiB}, Region{4 * GiB, MaxGuestPhysicalAddress}},
	} {
		l, err := NewLayout(c.ram, 2)
		if err != nil {
			t.Fatalf("NewLayout(%#x): %v", c.ram, err)
		}
		if l.LowRAM != c.low || l.HighRAM != c.high {
			t.Errorf("RAM %s: low %v high %v, want %v %v", SizeString(c.ram), l.LowRAM, l.HighRAM, c.low, c.high)
		}
		var total uint64
		for _, r := range l.RAM() {
			total += r.Size()
		}
		if total != c.ram {
			t.Errorf("RAM %s: RAM() ranges %v add up to %#x", SizeString(c.ram), l.RAM(), total)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("Validate of a fresh layout: %v", err)
		}
		// The fixed regions stay out of RAM and of each other, except the
		// loader and ACPI areas, which are RAM the guest is told is
		// reserved.
		for _, r := range l.RAM() {
			for _, f := range []Region{l.ECAM, l.PCIMMIO, {IOAPICAddress, IOAPICAddress + 4*KiB}, {LocalAPICAddress, LocalAPICAddress + 4*KiB}} {
				if r.Overlaps(f) {
					t.Errorf("RAM %v overlaps %v", r, f)
				}
			}
		}
		if !l.LowRAM.Contains(l.LoaderArea) || !l.LowRAM.Contains(l.ACPIArea) {
			t.Errorf("loader area %v or ACPI area %v not in low RAM %v", l.LoaderArea, l.ACPIArea, l.LowRAM)
		}
		if l.ECAM.Overlaps(l.PCIMMIO) {
			t.Errorf("ECAM %v overlaps the MMIO window %v", l.ECAM, l.PCIMMIO)
		}
	}
}

func TestValidateCatchesEditedLayout(t *testing.T) {
	l, err := NewLayout(1*GiB, 4)
	if err != nil {
		t.Fatal(err)
	}
	bad := *l
	bad.LowRAM.End += 4 * KiB
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a low RAM region larger than RAMSize")
	}
	bad = *l
	bad.ACPIArea = Region{0x1000, 0x2000}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted a moved ACPI area")
	}
	bad = *l
	bad.VCPUs = 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "0 vCPUs") {
		t.Errorf("Validate with 0 vCPUs: %v", err)
	}
	var none *Layout
	if err := none.Validate(); err == nil {
		t.Error("Validate accepted a nil layout")
	}
}

func TestMemoryMap(t *testing.T) {
	l, err := NewLayout(8*GiB, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []MemoryRange{
		{Region{0, 0x80000}, MemoryRAM},
		{Region{0x80000, 0xa0000}, MemoryReserved},
		{Region{0xa0000, 0x100000}, MemoryReserved},
		{Region{0x100000, 0xc0000000}, MemoryRAM},
		{Region{0xe0000000, 0xf0000000}, MemoryReserved},
		{Region{0x100000000, 0x240000000}, MemoryRAM},
	}
	if got := l.MemoryMap(); !reflect.DeepEqual(got, want) {
		t.Errorf("memory map of 8 GiB:\n got %v\nwant %v", got, want)
	}
	wantUsable := []Region{{0, 0x80000}, {0x100000, 0xc0000000}, {0x100000000, 0x240000000}}
	if got := l.Usable(); !reflect.DeepEqual(got, wantUsable) {
		t.Errorf("usable: got %v, want %v", got, wantUsable)
	}

	// Every usable byte is RAM, every RAM byte is in the map, the map is
	// sorted and without overlaps, for a range of sizes.
	for _, ram := range []uint64{MinRAMSize, 64 * MiB, 3 * GiB, 3*GiB + 2*MiB, 100 * GiB} {
		l, err := NewLayout(ram, 1)
		if err != nil {
			t.Fatal(err)
		}
		m := l.MemoryMap()
		var inMap uint64
		for i, r := range m {
			if r.Empty() {
				t.Errorf("%s: empty entry %v", SizeString(ram), r)
			}
			if i > 0 && r.Start < m[i-1].End {
				t.Errorf("%s: entry %v overlaps or precedes %v", SizeString(ram), r, m[i-1])
			}
			inRAM := false
			for _, x := range l.RAM() {
				if x.Contains(r.Region) {
					inRAM = true
					inMap += r.Size()
				}
			}
			if r.Type == MemoryRAM && !inRAM {
				t.Errorf("%s: usable %v is not backed by RAM %v", SizeString(ram), r, l.RAM())
			}
		}
		if inMap != ram {
			t.Errorf("%s: the map describes %#x bytes of RAM", SizeString(ram), inMap)
		}
	}
}

func TestSizeString(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 bytes", 3 * MiB: "3 MiB", 4 * KiB: "4 KiB", 2 * GiB: "2 GiB", 8221184: "8221184 bytes", 1536 * KiB: "1536 KiB",
	} {
		if got := SizeString(n); got != want {
			t.Errorf("SizeString(%d) = %q, want %q", n, got, want)
		}
	}
}
