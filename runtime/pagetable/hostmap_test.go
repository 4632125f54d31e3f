package pagetable

import (
	"strings"
	"testing"
)

// q35Regions is a QEMU q35-like machine with 8.5 GiB of RAM (2 GiB below
// the PCI hole, the rest from 4 GiB), its chipset MMIO, and a 64-bit PCI BAR
// window at 512 GiB.
var q35Regions = []Region{
	{Start: 0, Size: 0x9fc00, Cacheable: true},               // low RAM, ends mid-page
	{Start: 0x9fc00, Size: 0x400},                            // EBDA
	{Start: 0xf0000, Size: 0x10000},                          // BIOS
	{Start: 0x100000, Size: 0x7ff00000, Cacheable: true},     // RAM to 2 GiB
	{Start: 0x7ff00000, Size: 0x100000},                      // ACPI NVS overlapping the RAM entry
	{Start: 0xb0000000, Size: 0x10000000},                    // PCIe ECAM
	{Start: 0xfec00000, Size: 0x1000},                        // I/O APIC
	{Start: 0xfed00000, Size: 0x400},                         // HPET, 1 KiB
	{Start: 0xfee00000, Size: 0x1000},                        // local APIC
	{Start: 0xfffc0000, Size: 0x40000},                       // flash
	{Start: 4 << 30, Size: 6<<30 + 512<<20, Cacheable: true}, // RAM above 4 GiB
	{Start: 512 << 30, Size: 1 << 30},                        // PCI 64-bit window
}

func TestBuildHostMapQ35(t *testing.T) {
	ram := Attr{Writable: true, Cache: WriteBack, Global: true}
	dev := Attr{Writable: true, NoExecute: true, Cache: Uncacheable, Global: true}
	const top = 513 << 30
	wantWB := (0x9f000 - 0x1000) + (0x7ff00000 - 0x100000) + (6<<30 + 512<<20)

	for _, tc := range []struct {
		name       string
		pages1G    bool
		want1G     int
		wantTables int
	}{
		// 1 GiB pages: [2G,4G) UC, [4G,10G) WB, [11G,512G) and
		// [512G,513G) UC; [10G,10.5G) WB and [10.5G,11G) UC take 2 MiB
		// pages. Tables: PML4, 2 PDPTs, PDs for 0-1G, 1-2G and 10-11G, PTs
		// for 0-2M and 2046M-2048M.
		{"1 GiB pages", true, 2 + 6 + 501 + 1, 1 + 2 + 3 + 2},
		// 2 MiB pages: one PD per GiB up to 513 GiB, the same two PTs.
		{"2 MiB pages", false, 0, 1 + 2 + 513 + 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, _, _ := newTestTables(t, Config{Pages1G: tc.pages1G, NoExecute: true, PhysAddrBits: 46})
			s, err := BuildHostMap(tb, q35Regions, HostMapOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkLookups(t, tb, []lookupWant{
				{0x0, false, Attr{}, 0},
				{0xfff, false, Attr{}, 0},
				{0x1000, true, ram, Page4K},
				{0x9e000, true, ram, Page4K},
				{0x9f000, true, dev, Page4K}, // RAM ends mid-page: uncached
				{0xa0000, true, dev, Page4K}, // VGA hole: not in the map
				{0xf0000, true, dev, Page4K},
				{0x100000, true, ram, Page4K},
				{0x200000, true, ram, Page2M},
				{0x7fefffff, true, ram, Page4K},
				{0x7ff00000, true, dev, Page4K}, // overlap: uncached wins
				{0xb0000000, true, dev, pick(tc.pages1G, Page1G, Page2M)},
				{0xfed00000, true, dev, pick(tc.pages1G, Page1G, Page2M)},
				{0xfee00000, true, dev, pick(tc.pages1G, Page1G, Page2M)},
				{4 << 30, true, ram, pick(tc.pages1G, Page1G, Page2M)},
				{9<<30 + 12345, true, ram, pick(tc.pages1G, Page1G, Page2M)},
				{10<<30 + 512<<20 - 1, true, ram, Page2M},
				{10<<30 + 512<<20, true, dev, Page2M},
				{100 << 30, true, dev, pick(tc.pages1G, Page1G, Page2M)},
				{512<<30 + 0x1000, true, dev, pick(tc.pages1G, Page1G, Page2M)},
				{top - 1, true, dev, pick(tc.pages1G, Page1G, Page2M)},
				{top, false, Attr{}, 0},
			})
			if s.Bytes[WriteBack] != uint64(wantWB) {
				t.Errorf("WB bytes = %#x, want %#x (the RAM, whole pages only)", s.Bytes[WriteBack], wantWB)
			}
			if sum := s.Bytes[WriteBack] + s.Bytes[Uncacheable]; sum != top-0x1000 || s.Bytes[WriteThrough]+s.Bytes[UncachedMinus] != 0 {
				t.Errorf("mapped %#x bytes (%v), want everything but page 0 up to 513 GiB", sum, s.Bytes)
			}
			if s.Pages1G != tc.want1G || s.Tables != tc.wantTables {
				t.Errorf("stats %v, want %d x 1 GiB, %d tables", s, tc.want1G, tc.wantTables)
			}
			if s.Allocated != s.Tables || s.Spare != 0 {
				t.Errorf("stats %+v: building from scratch should split or waste no table", s)
			}
		})
	}
}

func pick(c bool, a, b PageSize) PageSize {
	if c {
		return a
	}
	return b
}

func TestBuildHostMapDefaults(t *testing.T) {
	// No regions at all: everything below 4 GiB is uncached, page 0 is not
	// mapped; NX is dropped without Config.NoExecute.
	tb, _, _ := newTestTables(t, Config{})
	s, err := BuildHostMap(tb, nil, HostMapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev := Attr{Writable: true, Cache: Uncacheable, Global: true}
	checkLookups(t, tb, []lookupWant{
		{0, false, Attr{}, 0},
		{0x1000, true, dev, Page4K},
		{4<<30 - 1, true, dev, Page2M},
		{4 << 30, false, Attr{}, 0},
	})
	if s.Bytes[Uncacheable] != 4<<30-0x1000 {
		t.Errorf("UC bytes %#x", s.Bytes[Uncacheable])
	}

	// MapPageZero and a larger MinReach.
	tb, _, _ = newTestTables(t, Config{})
	if _, err := BuildHostMap(tb, []Region{{Start: 0, Size: 1 << 30, Cacheable: true}}, HostMapOptions{MapPageZero: true, MinReach: 6 << 30}); err != nil {
		t.Fatal(err)
	}
	checkLookups(t, tb, []lookupWant{
		{0, true, Attr{Writable: true, Global: true}, Page2M},
		{6<<30 - 1, true, dev, Page2M},
		{6 << 30, false, Attr{}, 0},
	})
}

func TestBuildHostMapErrors(t *testing.T) {
	for _, c := range []struct {
		regions []Region
		opts    HostMapOptions
		want    string
	}{
		{[]Region{{Start: 512 << 30, Size: 1 << 30}}, HostMapOptions{}, "region 0 (0x8000000000-0x8040000000) extends beyond"},
		{[]Region{{Start: 0, Size: 1 << 20, Cacheable: true}, {Start: ^uint64(0) - 10, Size: 20}}, HostMapOptions{}, "region 1"},
		{nil, HostMapOptions{MinReach: 1 << 45}, "MinReach"},
	} {
		tb, _, _ := newTestTables(t, Config{PhysAddrBits: 39})
		_, err := BuildHostMap(tb, c.regions, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("BuildHostMap(%v) = %v, want %q", c.regions, err, c.want)
		}
	}
	if _, err := BuildHostMap(nil, nil, HostMapOptions{}); err == nil {
		t.Error("nil Tables accepted")
	}
}

func TestStatsString(t *testing.T) {
	tb, _, _ := newTestTables(t, Config{Pages1G: true})
	if _, err := BuildHostMap(tb, []Region{{Start: 1 << 20, Size: 1<<30 - 1<<20, Cacheable: true}}, HostMapOptions{}); err != nil {
		t.Fatal(err)
	}
	got := tb.Stats().String()
	want := "3 x 1 GiB, 511 x 2 MiB, 511 x 4 KiB pages; 4 table pages (0 spare); 1023 MiB WB, 3072 MiB UC"
	if got != want {
		t.Errorf("Stats.String() =\n%q, want\n%q", got, want)
	}
}
