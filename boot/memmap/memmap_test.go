package memmap

import (
	"reflect"
	"strings"
	"testing"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

func r(start, size uint64, k Kind) Region { return Region{start, size, k} }

// span builds a Region from an inclusive-exclusive pair, which reads closer
// to the firmware tables the tests copy.
func span(start, end uint64, k Kind) Region { return Region{start, end - start, k} }

func checkMap(t *testing.T, got Map, want ...Region) {
	t.Helper()
	if len(want) == 0 {
		want = nil
	}
	if len(got) == 0 {
		got = nil
	}
	if !reflect.DeepEqual(got, Map(want)) {
		t.Errorf("got map:\n%v\nwant:\n%v", got, Map(want))
	}
}

func TestKindOrderIsRestrictiveness(t *testing.T) {
	order := []Kind{Usable, Loader, ACPIReclaimable, Persistent, Unusable, Reserved, ACPINVS, FirmwareRuntime}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("%v must rank below %v", order[i-1], order[i])
		}
	}
	if Kind(0).Valid() || Kind(numKinds).Valid() {
		t.Error("the zero Kind and numKinds must be invalid")
	}
	for _, k := range order {
		if !k.Valid() || strings.HasPrefix(k.String(), "Kind(") {
			t.Errorf("%d has no name", k)
		}
	}
	if got := Kind(200).String(); got != "Kind(200)" {
		t.Errorf("Kind(200).String() = %q", got)
	}
}

// TestQEMUE820 has the shape of the E820 map QEMU's q35 machine gives a
// 6 GiB guest, shuffled: the sub-page tail of low memory is trimmed and the
// PCI hole below 4 GiB stays a hole.
func TestQEMUE820(t *testing.T) {
	in := []Region{
		span(0x100000000, 0x200000000, Usable),
		span(0xfeffc000, 0xff000000, Reserved),
		span(0, 0x9fc00, Usable),
		span(0xf0000, 0x100000, Reserved),
		span(0x9fc00, 0xa0000, Reserved),
		span(0x100000, 0x80000000, Usable),
		span(0xb0000000, 0xc0000000, Reserved),
	}
	m := Normalize(in)
	checkMap(t, m,
		span(0, 0x9f000, Usable),
		span(0x9fc00, 0xa0000, Reserved),
		span(0xf0000, 0x100000, Reserved),
		span(0x100000, 0x80000000, Usable),
		span(0xb0000000, 0xc0000000, Reserved),
		span(0xfeffc000, 0xff000000, Reserved),
		span(0x100000000, 0x200000000, Usable),
	)
	if got, want := m.Total(Usable), uint64(0x9f000+0x7ff00000+4*GiB); got != want {
		t.Errorf("Total(Usable) = %#x, want %#x", got, want)
	}
	if got := m.MaxAddress(); got != 0x200000000 {
		t.Errorf("MaxAddress = %#x", got)
	}
	if k, ok := m.KindAt(0x9f800); ok {
		t.Errorf("the trimmed sub-page at 0x9f000 reads as %v, want a hole", k)
	}
	if k, ok := m.KindAt(0xfeffcfff); !ok || k != Reserved {
		t.Errorf("KindAt(0xfeffcfff) = %v, %v", k, ok)
	}
	if _, ok := m.KindAt(0xd0000000); ok {
		t.Error("the PCI hole is described")
	}
}

func TestOverlapsMostRestrictiveWins(t *testing.T) {
	tests := []struct {
		name string
		in   []Region
		want []Region
	}{
		{"reserved inside usable",
			[]Region{r(0, 16*MiB, Usable), r(1*MiB, 1*MiB, Reserved)},
			[]Region{r(0, 1*MiB, Usable), r(1*MiB, 1*MiB, Reserved), r(2*MiB, 14*MiB, Usable)}},
		{"usable inside reserved loses",
			[]Region{r(1*MiB, 1*MiB, Usable), r(0, 16*MiB, Reserved)},
			[]Region{r(0, 16*MiB, Reserved)}},
		{"NVS beats reserved, reserved beats ACPI tables",
			[]Region{r(0x1000, 0x3000, ACPIReclaimable), r(0x2000, 0x3000, Reserved), r(0x3000, 0x1000, ACPINVS)},
			[]Region{r(0x1000, 0x1000, ACPIReclaimable), r(0x2000, 0x1000, Reserved), r(0x3000, 0x1000, ACPINVS), r(0x4000, 0x1000, Reserved)}},
		{"runtime services beat everything",
			[]Region{r(0, 0x4000, Unusable), r(0x1000, 0x1000, FirmwareRuntime), r(0, 0x4000, Reserved)},
			[]Region{r(0, 0x1000, Reserved), r(0x1000, 0x1000, FirmwareRuntime), r(0x2000, 0x2000, Reserved)}},
		{"partial overlap at both ends",
			[]Region{r(0x10000, 0x10000, Usable), r(0x8000, 0x10000, ACPIReclaimable), r(0x1c000, 0x8000, Unusable)},
			[]Region{r(0x8000, 0x10000, ACPIReclaimable), r(0x18000, 0x4000, Usable), r(0x1c000, 0x8000, Unusable)}},
		{"duplicates collapse",
			[]Region{r(0, 8*MiB, Usable), r(0, 8*MiB, Usable), r(0, 8*MiB, Usable)},
			[]Region{r(0, 8*MiB, Usable)}},
		{"duplicates with different kinds",
			[]Region{r(0, 8*MiB, Usable), r(0, 8*MiB, Persistent), r(0, 8*MiB, Loader)},
			[]Region{r(0, 8*MiB, Persistent)}},
		{"invalid kind counts as reserved",
			[]Region{r(0, 8*MiB, Usable), r(4*MiB, 4*KiB, Kind(0)), r(5*MiB, 4*KiB, Kind(99))},
			[]Region{r(0, 4*MiB, Usable), r(4*MiB, 4*KiB, Reserved), r(4*MiB+4*KiB, MiB-4*KiB, Usable), r(5*MiB, 4*KiB, Reserved), r(5*MiB+4*KiB, 3*MiB-4*KiB, Usable)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMap(t, Normalize(tt.in), tt.want...)
		})
	}
}

func TestMergeDropAndTrim(t *testing.T) {
	tests := []struct {
		name string
		in   []Region
		want []Region
	}{
		{"adjacent same kind merge, unsorted",
			[]Region{r(2*MiB, MiB, Usable), r(0, MiB, Usable), r(MiB, MiB, Usable)},
			[]Region{r(0, 3*MiB, Usable)}},
		{"adjacent different kinds stay apart",
			[]Region{r(0, MiB, Reserved), r(MiB, MiB, ACPINVS)},
			[]Region{r(0, MiB, Reserved), r(MiB, MiB, ACPINVS)}},
		{"zero size dropped",
			[]Region{r(0x5000, 0, Reserved), r(0, 0x10000, Usable)},
			[]Region{r(0, 0x10000, Usable)}},
		{"wrapping dropped",
			[]Region{r(0xffff_ffff_ffff_0000, 0x20000, Reserved), r(0, 0x10000, Usable)},
			[]Region{r(0, 0x10000, Usable)}},
		{"ending exactly at 2^64 wraps",
			[]Region{r(0xffff_ffff_ffff_f000, 0x1000, Reserved)},
			nil},
		{"last byte of the address space",
			[]Region{r(0xffff_ffff_ffff_f000, 0xfff, Reserved)},
			[]Region{r(0xffff_ffff_ffff_f000, 0xfff, Reserved)}},
		{"usable trimmed inward",
			[]Region{r(0x1234, 0x5678-0x1234, Usable)},
			[]Region{r(0x2000, 0x3000, Usable)}},
		{"usable smaller than a page vanishes",
			[]Region{r(0x100, 0x700, Usable), r(0x1800, 0x1000, Usable)},
			nil},
		{"merged before trimmed",
			[]Region{r(0x800, 0x1000, Usable), r(0x1800, 0x1000, Usable)},
			[]Region{r(0x1000, 0x1000, Usable)}},
		{"other kinds are not trimmed",
			[]Region{r(0x9fc00, 0x400, Reserved), r(0xe0000, 0x123, ACPIReclaimable)},
			[]Region{r(0x9fc00, 0x400, Reserved), r(0xe0000, 0x123, ACPIReclaimable)}},
		{"usable near the top cannot round up past it",
			[]Region{r(0xffff_ffff_ffff_f001, 0xffe, Usable)},
			nil},
		{"region crossing 4 GiB with a hole punched below",
			[]Region{span(0xc0000000, 0x140000000, Usable), span(0xfec00000, 0xfec01000, Reserved)},
			[]Region{span(0xc0000000, 0xfec00000, Usable), span(0xfec00000, 0xfec01000, Reserved), span(0xfec01000, 0x140000000, Usable)}},
		{"regions above 4 GiB",
			[]Region{r(0x10_0000_0000, 64*GiB, Usable), r(0x20_0000_0000, MiB, Persistent), r(0x8_0000_0000, GiB, Usable)},
			[]Region{r(0x8_0000_0000, GiB, Usable), r(0x10_0000_0000, 64*GiB, Usable), r(0x20_0000_0000, MiB, Persistent)}},
		{"empty input", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMap(t, Normalize(tt.in), tt.want...)
		})
	}
}

func TestNormalizeDoesNotModifyInput(t *testing.T) {
	in := []Region{r(0x2000, 0x1000, Usable), r(0x800, 0x1000, Usable)}
	saved := append([]Region(nil), in...)
	Normalize(in)
	if !reflect.DeepEqual(in, saved) {
		t.Errorf("input changed to %v", in)
	}
}

func TestContains(t *testing.T) {
	m := Normalize([]Region{
		r(0, 0x9f000, Usable),
		r(0xe0000, 0x20000, Reserved),
		r(MiB, 127*MiB, Usable),
		r(128*MiB, 0x10000, ACPIReclaimable),
	})
	tests := []struct {
		q    Region
		want bool
	}{
		{r(MiB, 127*MiB, Usable), true},
		{r(MiB, 127*MiB+1, Usable), false}, // runs into ACPI tables
		{r(2*MiB, 4096, Usable), true},
		{r(2*MiB, 4096, Reserved), false},
		{r(0x9e000, 0x2000, Usable), false}, // runs into the hole
		{r(0x9f000, 1, Usable), false},      // in the hole
		{r(0xe0000, 0x20000, Reserved), true},
		{r(128*MiB+0x100, 0x24, ACPIReclaimable), true},
		{r(MiB, 0, Usable), false},
		{r(0xffff_ffff_ffff_f000, 0x2000, Usable), false},
	}
	for _, tt := range tests {
		if got := m.Contains(tt.q); got != tt.want {
			t.Errorf("Contains(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestQueriesOnEmptyMap(t *testing.T) {
	var m Map
	if m.MaxAddress() != 0 || m.Total(Usable) != 0 || m.Contains(r(0, 1, Usable)) {
		t.Error("empty map reports memory")
	}
	if _, ok := m.KindAt(0); ok {
		t.Error("empty map describes address 0")
	}
	if got := m.Free(r(0, MiB, 0)); len(got) != 0 {
		t.Errorf("Free on an empty map = %v", got)
	}
	if got := m.Summary(); got != "memory: 0 B usable in 0 regions" {
		t.Errorf("Summary = %q", got)
	}
}

func TestFree(t *testing.T) {
	m := Normalize([]Region{
		r(0, 0x9f000, Usable),
		r(0xf0000, 0x10000, Reserved),
		r(MiB, 255*MiB, Usable),
		r(4*GiB, 4*GiB, Usable),
	})
	tests := []struct {
		name     string
		reserved []Region
		want     []Region
	}{
		{"nothing reserved", nil,
			[]Region{r(0, 0x9f000, Usable), r(MiB, 255*MiB, Usable), r(4*GiB, 4*GiB, Usable)}},
		{"image, heap and a module, unsorted, widened to pages",
			[]Region{
				r(0x10000000, 32*MiB, Reserved), // outside RAM: no effect but harmless
				r(16*MiB, 16*MiB, 0),            // image
				r(0x7000+0x10, 0x20, Loader),    // a few bytes: the whole page goes
				r(200*MiB-1, 2, Loader),         // straddles a page boundary
			},
			[]Region{
				r(0, 0x7000, Usable), r(0x8000, 0x97000, Usable),
				r(MiB, 15*MiB, Usable), r(32*MiB, 200*MiB-4096-32*MiB, Usable),
				r(200*MiB+4096, 56*MiB-4096, Usable),
				r(4*GiB, 4*GiB, Usable)}},
		{"overlapping reservations",
			[]Region{r(2*MiB, 4*MiB, 0), r(3*MiB, MiB, 0), r(5*MiB, 2*MiB, 0)},
			[]Region{r(0, 0x9f000, Usable), r(MiB, MiB, Usable), r(7*MiB, 249*MiB, Usable), r(4*GiB, 4*GiB, Usable)}},
		{"reservation covering a whole region and beyond",
			[]Region{r(0, 512*MiB, 0)},
			[]Region{r(4*GiB, 4*GiB, Usable)}},
		{"reservation to the top of the address space",
			[]Region{r(5*GiB, 0xffff_ffff_ffff_ffff-5*GiB, 0)},
			[]Region{r(0, 0x9f000, Usable), r(MiB, 255*MiB, Usable), r(4*GiB, GiB, Usable)}},
		{"wrapping reservation takes everything above its start",
			[]Region{r(6*GiB, 0xffff_ffff_ffff_ffff, 0)},
			[]Region{r(0, 0x9f000, Usable), r(MiB, 255*MiB, Usable), r(4*GiB, 2*GiB, Usable)}},
		{"empty reservation ignored",
			[]Region{r(2*MiB, 0, 0)},
			[]Region{r(0, 0x9f000, Usable), r(MiB, 255*MiB, Usable), r(4*GiB, 4*GiB, Usable)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkMap(t, m.Free(tt.reserved...), tt.want...)
		})
	}
}

func TestFreeSkipsNonUsable(t *testing.T) {
	m := Normalize([]Region{r(0, MiB, Loader), r(MiB, MiB, ACPIReclaimable), r(2*MiB, MiB, Usable)})
	checkMap(t, m.Free(), r(2*MiB, MiB, Usable))
}

func TestStringAndSummary(t *testing.T) {
	m := Normalize([]Region{
		span(0, 0x9fc00, Usable),
		span(0x9fc00, 0xa0000, Reserved),
		span(0xf0000, 0x100000, Reserved),
		span(0x100000, 0x7ffe0000, Usable),
		span(0x7ffe0000, 0x80000000, ACPIReclaimable),
		span(0x100000000, 0x180000000, Usable),
	})
	want := "" +
		"  0x0000000000000000-0x000000000009efff    636 KiB  usable\n" +
		"  0x000000000009fc00-0x000000000009ffff      1 KiB  reserved\n" +
		"  0x00000000000f0000-0x00000000000fffff     64 KiB  reserved\n" +
		"  0x0000000000100000-0x000000007ffdffff   2046 MiB  usable\n" +
		"  0x000000007ffe0000-0x000000007fffffff    128 KiB  ACPI tables\n" +
		"  0x0000000100000000-0x000000017fffffff      2 GiB  usable\n" +
		"memory: 4095 MiB usable in 3 regions, 128 KiB ACPI tables, 65 KiB reserved"
	if got := m.String(); got != want {
		t.Errorf("String() =\n%s\nwant\n%s", got, want)
	}
	one := Normalize([]Region{r(0, GiB, Usable), r(GiB, MiB, Reserved), r(2*GiB, 128*KiB, ACPINVS)})
	if got, want := one.Summary(), "memory: 1 GiB usable in 1 region, 1 MiB reserved, 128 KiB ACPI NVS"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{1536, "1536 B"},
		{0x9fc00, "639 KiB"},
		{MiB, "1 MiB"},
		{MiB + KiB, "1025 KiB"},
		{2047 * MiB, "2047 MiB"},
		{2047*MiB + 512*KiB, "2047 MiB"},
		{4 * GiB, "4 GiB"},
		{100*GiB + 1, "100 GiB"},
		{3 << 40, "3 TiB"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.n); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
