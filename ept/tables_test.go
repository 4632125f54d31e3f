package ept

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

func countPages(t *testing.T, tb *Tables) map[uint64]int {
	t.Helper()
	n := map[uint64]int{}
	if err := tb.Range(0, tb.InputLimit(), func(m Mapping) bool { n[m.Size]++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

// Large pages are used only where both addresses are aligned to them.
func TestMapChoosesPagesByBothAlignments(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{}, PageSizes: AllPageSizes})
	// gpa 1 GiB aligned, hpa only 2 MiB aligned: 2 MiB pages.
	fx.mustMap(t, 1*gib, 3*gib+2*mib, 1*gib, RWX, WB)
	// gpa 2 MiB aligned, hpa 4 KiB aligned: 4 KiB pages.
	fx.mustMap(t, 4*gib, 5*gib+4*kib, 2*mib, RW, WB)
	// Both 1 GiB aligned, with 4 KiB and 2 MiB edges.
	start := 8*gib - 2*mib - 4*kib
	fx.mustMap(t, start, start+16*gib, 1*gib+4*mib+8*kib, Read, UC)
	checkLookups(t, fx.tb, []lookupWant{
		{1 * gib, 3*gib + 2*mib, RWX, WB, Size2M},
		{2*gib - 1, 4*gib + 2*mib - 1, RWX, WB, Size2M},
		{4*gib + 0x10, 5*gib + 4*kib + 0x10, RW, WB, Size4K},
		{4*gib + 2*mib - 1, 5*gib + 2*mib + 4*kib - 1, RW, WB, Size4K},
		{start, start + 16*gib, Read, UC, Size4K},
		{8*gib - 2*mib, 24*gib - 2*mib, Read, UC, Size2M},
		{8 * gib, 24 * gib, Read, UC, Size1G},
		{9 * gib, 25 * gib, Read, UC, Size2M},
		{9*gib + 2*mib + 0xfff, 25*gib + 2*mib + 0xfff, Read, UC, Size4K},
		{9*gib + 2*mib + 4*kib, 0, 0, 0, 0},
		{start - 4*kib, 0, 0, 0, 0},
	})
	n := countPages(t, fx.tb)
	if n[Size1G] != 1 || n[Size2M] != 512+1+1 || n[Size4K] != 512+1+1 {
		t.Errorf("pages %v, want 1 x 1G, 514 x 2M, 514 x 4K", n)
	}
	if calls := fx.inv.take(); len(calls) != 0 {
		t.Errorf("mapping over nothing invalidated %v", calls)
	}

	// Page sizes the configuration lacks are not used.
	fx = newFixture(t, Config{Format: NPTFormat{}, PageSizes: Pages2M})
	fx.mustMap(t, 0, 0, 2*gib, RW, WB)
	if n := countPages(t, fx.tb); n[Size1G] != 0 || n[Size2M] != 1024 {
		t.Errorf("without 1 GiB pages: %v", n)
	}
	fx = newFixture(t, Config{Format: NPTFormat{}, PageSizes: AllPageSizes})
	if err := fx.tb.MapWithSizes(0, 0, 2*gib, RW, WB, Pages4K|Pages2M); err != nil {
		t.Fatal(err)
	}
	if n := countPages(t, fx.tb); n[Size1G] != 0 || n[Size2M] != 1024 {
		t.Errorf("MapWithSizes without 1 GiB pages: %v", n)
	}
}

// Splitting a large page keeps every piece outside the change as it was,
// down to the accessed and dirty bits, and invalidates only the change.
func TestSplitPreservesNeighbours(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0, 7*gib, 1*gib, RX, WT)
	// Hardware set A and D on the 1 GiB page.
	pdpte := entryAt(fx.mem, fx.tb.Root(), 0, 3)
	fx.mem.Write64(entryAt(fx.mem, fx.tb.Root(), 0, 4)&specAddr, pdpte|1<<8|1<<9)
	allocs := fx.pool.bumped

	fx.mustMap(t, 0x5000, 0x9_0000_0000, 4*kib, RW, UC)
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{0x5000, 4 * kib}}) {
		t.Errorf("invalidations %v, want exactly the changed page", calls)
	}
	if fx.pool.bumped != allocs+2 {
		t.Errorf("split took %d table pages, want 2 (a PD and a PT)", fx.pool.bumped-allocs)
	}
	checkLookups(t, fx.tb, []lookupWant{
		{0x0, 7 * gib, RX, WT, Size4K},
		{0x4fff, 7*gib + 0x4fff, RX, WT, Size4K},
		{0x5000, 0x9_0000_0000, RW, UC, Size4K},
		{0x6000, 7*gib + 0x6000, RX, WT, Size4K},
		{0x20_0000, 7*gib + 0x20_0000, RX, WT, Size2M},
		{gib - 1, 8*gib - 1, RX, WT, Size2M},
	})
	// The pieces inherit A and D (exact bits: R X, WT, PS, A, D).
	if got, want := entryAt(fx.mem, fx.tb.Root(), 0x20_0000, 2), 7*gib+0x20_0000|0x3a5; got != want {
		t.Errorf("2 MiB piece = %#x, want %#x", got, want)
	}
	if got, want := entryAt(fx.mem, fx.tb.Root(), 0x6000, 1), 7*gib+0x6000|0x325; got != want {
		t.Errorf("4 KiB piece = %#x, want %#x", got, want)
	}

	// Mapping a piece the way it already is maps changes nothing.
	allocs = fx.pool.bumped
	fx.mustMap(t, 0x40_1000, 7*gib+0x40_1000, 4*kib, RX, WT)
	if fx.pool.bumped != allocs || len(fx.inv.take()) != 0 {
		t.Error("re-mapping a page with the same translation split or invalidated")
	}
	checkNoLeak(t, fx.tb, fx.mem, fx.pool)

	// Mapping the whole GiB again merges it back into one page and frees
	// the PD and PT, after invalidating the whole GiB.
	fx.pool.onFree = func(uint64) {
		if !covers(fx.inv.calls, 0, gib) {
			t.Errorf("table freed before the GiB was invalidated (calls %v)", fx.inv.calls)
		}
	}
	fx.mustMap(t, 0, 7*gib, 1*gib, RX, WT)
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{0, gib}}) {
		t.Errorf("invalidations %v, want [0, 1 GiB)", calls)
	}
	if fx.tb.TablePages() != 2 || len(fx.pool.free) != 2 {
		t.Errorf("after merge: %d table pages, %d freed; want 2 and 2", fx.tb.TablePages(), len(fx.pool.free))
	}
	checkNoLeak(t, fx.tb, fx.mem, fx.pool)
	fx.pool.check(t)
}

func TestProtect(t *testing.T) {
	fx := newFixture(t, Config{Format: NPTFormat{NoExecute: true}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0, 0x10_0000_0000, 2*gib, RWX, WB) // two 1 GiB pages
	fx.mustMap(t, 3*gib, 3*gib, 4*mib, RW, UC)       // two 2 MiB pages, a hole before
	// Hardware dirtied the second 1 GiB page.
	pdpt := entryAt(fx.mem, fx.tb.Root(), 0, 4) & specAddr
	fx.mem.Write64(pdpt+8, fx.mem.Read64(pdpt+8)|1<<5|1<<6)
	fx.inv.take()

	// Write-protect [1 GiB - 4 KiB, 3 GiB + 2 MiB): the hole stays unmapped.
	if err := fx.tb.Protect(gib-4*kib, 2*gib+2*mib+4*kib, RX); err != nil {
		t.Fatal(err)
	}
	checkLookups(t, fx.tb, []lookupWant{
		{0, 0x10_0000_0000, RWX, WB, Size2M},
		{gib - 4*kib - 1, 0x10_0000_0000 + gib - 4*kib - 1, RWX, WB, Size4K},
		{gib - 4*kib, 0x10_0000_0000 + gib - 4*kib, RX, WB, Size4K},
		{gib, 0x10_4000_0000, RX, WB, Size1G},
		{2 * gib, 0, 0, 0, 0},
		{3 * gib, 3 * gib, RX, UC, Size2M},
		{3*gib + 2*mib, 3*gib + 2*mib, RW, UC, Size2M},
	})
	// Exact 1 GiB entry: P U/S PS A D, R/W cleared, executable.
	if got, want := fx.mem.Read64(pdpt+8), uint64(0x10_4000_0000|0xe5); got != want {
		t.Errorf("protected 1 GiB entry = %#x, want %#x", got, want)
	}
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{gib - 4*kib, 2*gib + 2*mib + 4*kib}}) {
		t.Errorf("invalidations %v, want one covering the changed pages", calls)
	}
	// Protecting again with the same permission changes nothing, even
	// where it covers a large page in part.
	allocs := fx.pool.bumped
	if err := fx.tb.Protect(gib+4*kib, 8*kib, RX); err != nil {
		t.Fatal(err)
	}
	if fx.pool.bumped != allocs || len(fx.inv.take()) != 0 {
		t.Error("a Protect that changes nothing split or invalidated")
	}
	if err := fx.tb.Protect(0, 4*kib, 0); err == nil {
		t.Error("Protect with no permission accepted")
	}
	checkNoLeak(t, fx.tb, fx.mem, fx.pool)
}

// Dirty tracking: hardware sets D; TestAndClearDirty reports and clears it
// and invalidates; a dirty large page that is split stays dirty in every
// piece.
func TestDirtyTracking(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0, 0x4000_0000, 4*mib, RW, WB) // two 2 MiB pages
	fx.mustMap(t, 4*mib, 4*mib, 16*kib, RW, WB)  // four 4 KiB pages
	setBits := func(gpa uint64, level int, bits uint64) {
		pd := entryAt(fx.mem, fx.tb.Root(), gpa, 3) & specAddr
		table := pd
		if level == 1 {
			table = fx.mem.Read64(pd+8*((gpa>>21)&511)) & specAddr
		}
		slot := table + 8*((gpa>>(12+9*uint(level-1)))&511)
		fx.mem.Write64(slot, fx.mem.Read64(slot)|bits)
	}
	setBits(2*mib, 2, 1<<8|1<<9) // second 2 MiB page written
	setBits(4*mib+4*kib, 1, 1<<8|1<<9)
	setBits(4*mib+8*kib, 1, 1<<8) // only read

	var got []span
	if err := fx.tb.TestAndClearDirty(0, 8*mib, func(gpa, size uint64) { got = append(got, span{gpa, size}) }); err != nil {
		t.Fatal(err)
	}
	want := []span{{2 * mib, 2 * mib}, {4*mib + 4*kib, 4 * kib}}
	if !slices.Equal(got, want) {
		t.Errorf("dirty pages %v, want %v", got, want)
	}
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{2 * mib, 2*mib + 8*kib}}) {
		t.Errorf("invalidations %v, want one covering the cleaned pages", calls)
	}
	// Exact 2 MiB entry: D cleared, A kept: R W, WB, IPAT, PS, A.
	if e := entryAt(fx.mem, fx.tb.Root(), 2*mib, 2); e != 0x4020_0000|0x1f3 {
		t.Errorf("cleaned entry = %#x, want %#x", e, 0x4020_0000|0x1f3)
	}
	got = nil
	if err := fx.tb.TestAndClearDirty(0, 8*mib, func(gpa, size uint64) { got = append(got, span{gpa, size}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || len(fx.inv.take()) != 0 {
		t.Errorf("second pass reported %v and invalidated: nothing was written since", got)
	}

	// Accessed bits the same way.
	got = nil
	if err := fx.tb.TestAndClearAccessed(0, 8*mib, func(gpa, size uint64) { got = append(got, span{gpa, size}) }); err != nil {
		t.Fatal(err)
	}
	want = []span{{2 * mib, 2 * mib}, {4*mib + 4*kib, 4 * kib}, {4*mib + 8*kib, 4 * kib}}
	if !slices.Equal(got, want) {
		t.Errorf("accessed pages %v, want %v", got, want)
	}

	// A dirty 2 MiB page split by a later change: its pieces are dirty.
	setBits(0, 2, 1<<9)
	fx.mustMap(t, 0x1000, 0x1000, 4*kib, Read, WB)
	got = nil
	if err := fx.tb.TestAndClearDirty(0, 2*mib, func(gpa, size uint64) { got = append(got, span{gpa, size}) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 511 || got[0] != (span{0, 4 * kib}) || got[1] != (span{0x2000, 4 * kib}) {
		t.Errorf("after splitting a dirty page: %d dirty pieces (first %v), want the 511 untouched ones", len(got), got[:min(2, len(got))])
	}
	// Mapping reports Dirty through Lookup too.
	setBits(0x3000, 1, 1<<9)
	if _, m, _ := fx.tb.Lookup(0x3000); !m.Dirty || m.Accessed {
		t.Errorf("Lookup: Dirty %v Accessed %v, want dirty, not accessed", m.Dirty, m.Accessed)
	}
}

// The invalidation hook: once per operation, covering every change of a
// present translation, never for new ones unless asked.
func TestInvalidationHook(t *testing.T) {
	fx := newFixture(t, Config{Format: NPTFormat{}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0, 0, 8*mib, RW, WB)
	fx.mustMap(t, 16*mib, 16*mib, 4*kib, RW, WB)
	if calls := fx.inv.take(); len(calls) != 0 {
		t.Errorf("new mappings invalidated %v", calls)
	}
	if err := fx.tb.Unmap(2*mib, 16*mib); err != nil { // three 2 MiB pages, and a 4 KiB page's table
		t.Fatal(err)
	}
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{2 * mib, 14*mib + 2*mib}}) {
		t.Errorf("Unmap invalidations %v, want one call for [2 MiB, 18 MiB)", calls)
	}
	fx.mustMap(t, 0, 0x100_0000_0000, 2*mib+4*kib, RW, WB) // one changed page, one new
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{0, 2 * mib}}) {
		t.Errorf("remap invalidations %v, want the changed 2 MiB page only", calls)
	}
	if err := fx.tb.Unmap(64*gib, 4*gib); err != nil {
		t.Fatal(err)
	}
	if calls := fx.inv.take(); len(calls) != 0 {
		t.Errorf("unmapping nothing invalidated %v", calls)
	}

	// Caching mode: new mappings are reported too.
	fx = newFixture(t, Config{Format: VTdFormat{}, PageSizes: AllPageSizes, InvalidateNewMappings: true})
	fx.mustMap(t, 2*mib, 2*mib, 2*mib+4*kib, RW, WB)
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{2 * mib, 2*mib + 4*kib}}) {
		t.Errorf("caching-mode invalidations %v, want the new range", calls)
	}
}

// Unmap frees the tables it empties, after invalidation, and Map reuses
// them; an operation that detaches many tables invalidates before freeing.
func TestUnmapFreesTables(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{}, PageSizes: AllPageSizes})
	fx.pool.onFree = func(pg uint64) {
		if len(fx.inv.calls) == 0 {
			t.Errorf("table %#x freed before any invalidation", pg)
		}
	}
	far := uint64(100)<<39 + 3*gib + 5*mib + 28*kib // its own PDPT, PD and PT
	fx.mustMap(t, far, far, 4*kib, RW, WB)
	if fx.tb.TablePages() != 4 {
		t.Fatalf("%d table pages, want 4", fx.tb.TablePages())
	}
	if err := fx.tb.Unmap(far, 4*kib); err != nil {
		t.Fatal(err)
	}
	if fx.tb.TablePages() != 1 || len(fx.pool.free) != 3 || len(fx.pool.live) != 1 {
		t.Errorf("after unmapping the only page: %d table pages, %d freed, %d live; want 1, 3, 1",
			fx.tb.TablePages(), len(fx.pool.free), len(fx.pool.live))
	}
	if calls := fx.inv.take(); !slices.Equal(calls, []span{{far &^ (512*gib - 1), 512 * gib}}) {
		t.Errorf("invalidations %v, want the root entry's span (its tables were freed)", calls)
	}
	bumped := fx.pool.bumped
	fx.mustMap(t, 5*gib, 5*gib, 4*kib, RW, WB)
	if fx.pool.bumped != bumped || len(fx.pool.free) != 0 {
		t.Errorf("Map took %d new pages with 3 freed ones available", fx.pool.bumped-bumped)
	}

	// 40 page tables under one PD, then 2 MiB pages over all of them:
	// more detached tables than one batch holds.
	fx.inv.take()
	for i := uint64(0); i < 40; i++ {
		fx.mustMap(t, 64*gib+i*2*mib+4*kib, 4*kib, 4*kib, Read, WB)
	}
	before := fx.tb.TablePages()
	fx.mustMap(t, 64*gib, 64*gib, 80*mib, RW, WB)
	calls := fx.inv.take()
	if len(calls) != 3 { // 16 + 16 + 8 tables
		t.Errorf("invalidations %v, want 3 batches", calls)
	}
	for i := uint64(0); i < 40; i++ {
		if !covers(calls, 64*gib+i*2*mib, 2*mib) {
			t.Errorf("2 MiB page %d was not invalidated", i)
		}
	}
	if fx.tb.TablePages() != before-40 {
		t.Errorf("%d table pages, want %d", fx.tb.TablePages(), before-40)
	}
	checkNoLeak(t, fx.tb, fx.mem, fx.pool)
	fx.pool.check(t)

	// Unmapping everything leaves only the root.
	if err := fx.tb.Unmap(0, fx.tb.InputLimit()); err != nil {
		t.Fatal(err)
	}
	if fx.tb.TablePages() != 1 || len(fx.pool.live) != 1 {
		t.Errorf("after unmapping everything: %d table pages, %d live", fx.tb.TablePages(), len(fx.pool.live))
	}
	checkNoLeak(t, fx.tb, fx.mem, fx.pool)
}

func TestRange(t *testing.T) {
	fx := newFixture(t, Config{Format: AMDViFormat{}, PageSizes: AllPageSizes})
	fx.mustMap(t, 2*mib-4*kib, 8*gib-4*kib, 2*mib+8*kib, RW, WB) // 4K, 2M, 4K
	fx.mustMap(t, 1*gib, 1*gib, 1*gib, Read, WB)
	var got []Mapping
	collect := func(m Mapping) bool { got = append(got, m); return true }
	if err := fx.tb.Range(0, 4*gib, collect); err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{GPA: 2*mib - 4*kib, HPA: 8*gib - 4*kib, Size: Size4K, Perm: RW},
		{GPA: 2 * mib, HPA: 8 * gib, Size: Size2M, Perm: RW},
		{GPA: 4 * mib, HPA: 8*gib + 2*mib, Size: Size4K, Perm: RW},
		{GPA: 1 * gib, HPA: 1 * gib, Size: Size1G, Perm: Read},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Range =\n%+v, want\n%+v", got, want)
	}
	// A range that starts inside a large page reports it whole; stopping.
	got = nil
	if err := fx.tb.Range(2*mib+8*kib, 1*gib, func(m Mapping) bool { got = append(got, m); return len(got) < 2 }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want[1:3]) {
		t.Errorf("partial Range = %+v, want %+v", got, want[1:3])
	}
	if err := fx.tb.Range(1, 4096, collect); err == nil {
		t.Error("unaligned Range accepted")
	}
}

func TestErrors(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{}, InputAddrBits: 39, OutputAddrBits: 40})
	for _, c := range []struct {
		gpa, hpa, size uint64
		perm           Perm
		mem            MemType
		want           string
	}{
		{0x1001, 0, 0x1000, RW, WB, "not 4 KiB aligned"},
		{0x1000, 0, 0x1001, RW, WB, "not 4 KiB aligned"},
		{0x1000, 0x10, 0x1000, RW, WB, "host address 0x10 is not 4 KiB aligned"},
		{^uint64(0) - 0xfff, 0, 0x2000, RW, WB, "wraps around"},
		{512 * gib, 0, 4096, RW, WB, "beyond the input address limit"},
		{0, 1<<40 - 4096, 8192, RW, WB, "beyond the output address limit"},
		{0, ^uint64(0) - 4095, 8192, RW, WB, "beyond the output address limit"},
		{0, 0, 4096, 0, WB, "empty permission"},
		{0, 0, 4096, Write, WB, "misconfiguration"},
		{0, 0, 4096, RW, UCMinus, "memory type UC-"},
	} {
		err := fx.tb.Map(c.gpa, c.hpa, c.size, c.perm, c.mem)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Map(%#x, %#x, %#x, %v, %v) = %v, want %q", c.gpa, c.hpa, c.size, c.perm, c.mem, err, c.want)
		}
	}
	if err := fx.tb.Unmap(3, 4096); err == nil {
		t.Error("unaligned Unmap accepted")
	}
	if err := fx.tb.Protect(0, 4096, Write); err == nil {
		t.Error("write-only Protect accepted for EPT")
	}
	if err := fx.tb.TestAndClearDirty(512*gib, 4096, nil); err == nil {
		t.Error("TestAndClearDirty beyond the limit accepted")
	}
	if fx.tb.TablePages() != 1 || len(fx.inv.take()) != 0 {
		t.Error("rejected calls changed the tables")
	}
	if _, _, ok := fx.tb.Lookup(^uint64(0)); ok {
		t.Error("Lookup beyond the input limit found a page")
	}

	mem := hwfake.NewMemory()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Format is nil"},
		{Config{Format: NPTFormat{}, InputAddrBits: 57}, "input address width of 57"},
		{Config{Format: NPTFormat{}, InputAddrBits: 20}, "input address width of 20"},
		{Config{Format: NPTFormat{}, OutputAddrBits: 60}, "output address width of 60"},
	} {
		if _, err := New(mem, newPool(8), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := New(nil, newPool(8), Config{Format: EPTFormat{}}); err == nil {
		t.Error("nil Memory accepted")
	}
	if _, err := NewAt(mem, newPool(8), 0x9001, Config{Format: EPTFormat{}}); err == nil {
		t.Error("unaligned root accepted")
	}
	if _, err := NewAt(mem, newPool(8), 0, Config{Format: EPTFormat{}}); err == nil {
		t.Error("root at page 0 accepted")
	}
	for _, p := range []uint64{0x1234, 0, 1 << 45} {
		_, err := New(mem, &fixedAlloc{p}, Config{Format: EPTFormat{}, OutputAddrBits: 44})
		if err == nil || !strings.Contains(err.Error(), "bad table page") {
			t.Errorf("allocator page %#x: err = %v", p, err)
		}
	}

	// Running out of table pages is an error, and the tables stay valid.
	p := newPool(3)
	tb, err := New(mem, p, Config{Format: NPTFormat{}})
	if err != nil {
		t.Fatal(err)
	}
	err = tb.Map(0, 0, 4*mib, RW, WB)
	if !errors.Is(err, errExhausted) {
		t.Fatalf("Map with 3 table pages: err = %v, want the allocator's", err)
	}
	if _, _, ok := tb.Lookup(0x1000); ok {
		t.Error("a page was mapped through a table that could not be allocated")
	}
	checkNoLeak(t, tb, mem, p)
}

type fixedAlloc struct{ p uint64 }

func (a *fixedAlloc) AllocTable() (uint64, error) { return a.p, nil }
func (a *fixedAlloc) FreeTable(uint64)            {}

func TestNewAtClearsRoot(t *testing.T) {
	mem := hwfake.NewMemory()
	for i := uint64(0); i < 512; i++ {
		mem.Write64(0x9000+8*i, 0xdead_beef_0000_0007) // stale entries
	}
	p := newPool(16)
	tb, err := NewAt(mem, p, 0x9000, Config{Format: EPTFormat{}})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Root() != 0x9000 || tb.TablePages() != 1 {
		t.Errorf("Root = %#x, TablePages = %d", tb.Root(), tb.TablePages())
	}
	if _, _, ok := tb.Lookup(0x1000); ok {
		t.Error("stale root entry still translates")
	}
	if err := tb.Map(0x1000, 0x1000, 4096, RW, WB); err != nil {
		t.Fatal(err)
	}
	if err := tb.Unmap(0, 1<<39); err != nil {
		t.Fatal(err)
	}
	if len(p.live) != 0 || tb.TablePages() != 1 {
		t.Errorf("the given root must never reach the Allocator: %d live, %d tables", len(p.live), tb.TablePages())
	}
}

// Lookup, and Map of an already-built range, allocate nothing on the Go
// heap: they run on the VM-exit path.
func TestNoHeapAllocations(t *testing.T) {
	mem := newSliceMemory(tableArea, 64)
	tb, err := New(mem, newPool(64), Config{Format: EPTFormat{}, PageSizes: AllPageSizes, OnInvalidate: func(uint64, uint64) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Map(0, 0, 4*mib, RW, WB); err != nil {
		t.Fatal(err)
	}
	i := uint64(0)
	if n := testing.AllocsPerRun(100, func() { tb.Lookup(i * 4096); i++ }); n != 0 {
		t.Errorf("Lookup: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		i++
		if err := tb.Map(i%1024*4096, i%1024*4096+i%2*8*mib, 4096, RW, WB); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Map: %v allocations", n)
	}
	if n := testing.AllocsPerRun(10, func() { tb.TestAndClearDirty(0, 4*mib, func(uint64, uint64) {}) }); n != 0 {
		t.Errorf("TestAndClearDirty: %v allocations", n)
	}
}

// sliceMemory is physical memory backed by a word slice over [base,
// base+pages*4 KiB): fast, for benchmarks and allocation counts.
type sliceMemory struct {
	base  uint64
	words []uint64
}

func newSliceMemory(base uint64, pages int) *sliceMemory {
	return &sliceMemory{base: base, words: make([]uint64, pages*512)}
}

func (m *sliceMemory) Read64(a uint64) uint64     { return m.words[(a-m.base)/8] }
func (m *sliceMemory) Write64(a uint64, v uint64) { m.words[(a-m.base)/8] = v }
