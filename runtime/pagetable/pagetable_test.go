package pagetable

import (
	"errors"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

const (
	kib = uint64(1) << 10
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

// bump hands out consecutive pages from next, up to max pages.
type bump struct {
	next  uint64
	max   int
	n     int
	pages map[uint64]bool
}

func newBump(next uint64, max int) *bump {
	return &bump{next: next, max: max, pages: map[uint64]bool{}}
}

var errExhausted = errors.New("bump allocator exhausted")

func (b *bump) AllocTable() (uint64, error) {
	if b.n >= b.max {
		return 0, errExhausted
	}
	p := b.next
	b.next += 4096
	b.n++
	b.pages[p] = true
	return p, nil
}

// Table pages live at 60 GiB in the fake memory, below the default
// MAXPHYADDR (36 bits) and above what the tests map.
const tableArea = 0xf_0000_0000

func newTestTables(t testing.TB, cfg Config) (*Tables, *hwfake.Memory, *bump) {
	t.Helper()
	mem := hwfake.NewMemory()
	alloc := newBump(tableArea, 4096)
	tb, err := New(mem, alloc, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb, mem, alloc
}

// entryAt returns the raw entry at level for addr, walking through present
// non-leaf entries, and the level where the walk stopped.
func entryAt(mem *hwfake.Memory, root, addr uint64, level int) uint64 {
	table := root
	for l := levels; ; l-- {
		e := mem.Read64(table + 8*index(addr, l))
		if l == level {
			return e
		}
		table = e & addrMask
	}
}

func mustMap(t testing.TB, tb *Tables, start, size uint64, a Attr, s PageSizes) {
	t.Helper()
	if err := tb.MapIdentity(start, size, a, s); err != nil {
		t.Fatalf("MapIdentity(%#x, %#x): %v", start, size, err)
	}
}

type lookupWant struct {
	addr uint64
	ok   bool
	attr Attr
	size PageSize
}

func checkLookups(t *testing.T, tb *Tables, wants []lookupWant) {
	t.Helper()
	for _, w := range wants {
		phys, attr, size, ok := tb.Lookup(w.addr)
		if ok != w.ok {
			t.Errorf("Lookup(%#x) ok = %v, want %v", w.addr, ok, w.ok)
			continue
		}
		if !ok {
			continue
		}
		if phys != w.addr {
			t.Errorf("Lookup(%#x) phys = %#x, not an identity map", w.addr, phys)
		}
		if attr != w.attr || size != w.size {
			t.Errorf("Lookup(%#x) = %+v %v, want %+v %v", w.addr, attr, size, w.attr, w.size)
		}
	}
}

var (
	rwWB = Attr{Writable: true, Cache: WriteBack}
	rwUC = Attr{Writable: true, NoExecute: true, Cache: Uncacheable}
)

// The entries are checked bit by bit against the layouts of Intel SDM Vol.
// 3A Tables 4-15 to 4-20.
func TestEntryBits(t *testing.T) {
	tb, mem, _ := newTestTables(t, Config{NoExecute: true, PhysAddrBits: 46})
	mustMap(t, tb, 0x20_0000, 2*mib, Attr{Writable: true, NoExecute: true, Cache: Uncacheable, Global: true}, AllPageSizes)
	mustMap(t, tb, 0x1000, 4*kib, Attr{}, AllPageSizes)
	mustMap(t, tb, 0x2000, 4*kib, Attr{Cache: WriteThrough}, AllPageSizes)
	mustMap(t, tb, 0x3000, 4*kib, Attr{Cache: UncachedMinus}, AllPageSizes)

	pml4e := mem.Read64(tb.Root())
	pdpte := mem.Read64(pml4e & addrMask)
	pde0 := mem.Read64(pdpte&addrMask + 0)
	for name, e := range map[string]uint64{"PML4E": pml4e, "PDPTE": pdpte, "PDE0": pde0} {
		// P=1, R/W=1, U/S=0, PWT=0, PCD=0, A=1, PS=0, NX=0; address of a
		// table in the table area.
		if got := e &^ addrMask; got != 0x23 {
			t.Errorf("%s flags = %#x, want %#x (P|RW|A)", name, got, 0x23)
		}
		if a := e & addrMask; a < tableArea || a >= tableArea+4096*4096 {
			t.Errorf("%s address %#x is not an allocated table", name, a)
		}
	}

	// 2 MiB page: P RW PWT PCD A D PS G, NX, address 0x200000.
	want := uint64(0x20_0000) | 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<63
	if got := entryAt(mem, tb.Root(), 0x20_0000, 2); got != want {
		t.Errorf("PDE for 0x200000 = %#x, want %#x", got, want)
	}
	// 4 KiB pages: read-only, executable, not global: P A D and the cache
	// bits only; bit 7 (PAT in a PTE) clear.
	for _, c := range []struct {
		addr, want uint64
	}{
		{0x1000, 0x1000 | 1<<0 | 1<<5 | 1<<6},
		{0x2000, 0x2000 | 1<<0 | 1<<3 | 1<<5 | 1<<6},
		{0x3000, 0x3000 | 1<<0 | 1<<4 | 1<<5 | 1<<6},
	} {
		if got := entryAt(mem, tb.Root(), c.addr, 1); got != c.want {
			t.Errorf("PTE for %#x = %#x, want %#x", c.addr, got, c.want)
		}
	}
	if got := entryAt(mem, tb.Root(), 0, 1); got != 0 {
		t.Errorf("PTE for page 0 = %#x, want not present", got)
	}
	checkLookups(t, tb, []lookupWant{
		{0x20_0000 + 0x1234, true, Attr{Writable: true, NoExecute: true, Cache: Uncacheable, Global: true}, Page2M},
		{0x1fff, true, Attr{}, Page4K},
		{0x2000, true, Attr{Cache: WriteThrough}, Page4K},
		{0x3008, true, Attr{Cache: UncachedMinus}, Page4K},
		{0x0, false, Attr{}, 0},
		{0x4000, false, Attr{}, 0},
		{0x40_0000, false, Attr{}, 0},
	})
}

func TestNoExecuteDroppedWithoutNXE(t *testing.T) {
	tb, mem, _ := newTestTables(t, Config{})
	mustMap(t, tb, 0, 2*mib, rwUC, AllPageSizes)
	if e := entryAt(mem, tb.Root(), 0, 2); e&bitNX != 0 {
		t.Errorf("entry %#x has bit 63 set without IA32_EFER.NXE (reserved bit)", e)
	}
	if _, a, _, _ := tb.Lookup(0); a.NoExecute {
		t.Error("Lookup reports NoExecute without NXE")
	}
}

func TestOneGiBPagesOnlyWhenEnabled(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		cfg                      Config
		sizes                    PageSizes
		want1G, want2M, wantTabs int
	}{
		{"cpu with 1G pages", Config{Pages1G: true}, AllPageSizes, 4, 0, 2},
		{"qemu64: no 1G pages", Config{}, AllPageSizes, 0, 2048, 6},
		{"1G pages not asked for", Config{Pages1G: true}, Pages4K | Pages2M, 0, 2048, 6},
		{"4K only", Config{}, Pages4K, 0, 0, 1 + 1 + 4 + 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, _, _ := newTestTables(t, tc.cfg)
			mustMap(t, tb, 0, 4*gib, rwWB, tc.sizes)
			s := tb.Stats()
			want4K := 0
			if tc.sizes == Pages4K {
				want4K = 4 * 262144
			}
			if s.Pages1G != tc.want1G || s.Pages2M != tc.want2M || s.Pages4K != want4K || s.Tables != tc.wantTabs {
				t.Errorf("stats %+v, want %d x 1G, %d x 2M, %d x 4K, %d tables", s, tc.want1G, tc.want2M, want4K, tc.wantTabs)
			}
			if s.Bytes[WriteBack] != 4*gib {
				t.Errorf("mapped %#x bytes WB, want 4 GiB", s.Bytes[WriteBack])
			}
		})
	}
}

func TestUnalignedEdgesUseSmallPages(t *testing.T) {
	tb, _, _ := newTestTables(t, Config{Pages1G: true})
	// 4 KiB below 2 MiB, 2 MiB pages up to 1 GiB, a 1 GiB page, 2 MiB
	// pages, and 4 KiB pages past the last 2 MiB boundary.
	start, end := 0x1f_f000, 2*gib+4*mib+0x3000
	mustMap(t, tb, uint64(start), end-uint64(start), rwWB, AllPageSizes)
	checkLookups(t, tb, []lookupWant{
		{0x1f_e000, false, Attr{}, 0},
		{0x1f_f000, true, rwWB, Page4K},
		{0x20_0000, true, rwWB, Page2M},
		{gib - 1, true, rwWB, Page2M},
		{gib, true, rwWB, Page1G},
		{2*gib - 1, true, rwWB, Page1G},
		{2 * gib, true, rwWB, Page2M},
		{2*gib + 4*mib - 1, true, rwWB, Page2M},
		{2*gib + 4*mib, true, rwWB, Page4K},
		{2*gib + 4*mib + 0x2fff, true, rwWB, Page4K},
		{end, false, Attr{}, 0},
	})
	s := tb.Stats()
	if s.Pages4K != 1+3 || s.Pages2M != 511+2 || s.Pages1G != 1 {
		t.Errorf("stats %+v, want 4 x 4K, 513 x 2M, 1 x 1G", s)
	}
}

func TestSplitPreservesNeighbours(t *testing.T) {
	// Every attribute of the split page must survive in its pieces.
	big := Attr{Writable: true, NoExecute: true, Cache: WriteThrough, Global: true}
	tb, _, alloc := newTestTables(t, Config{Pages1G: true, NoExecute: true})
	mustMap(t, tb, 0, gib, big, AllPageSizes)
	if s := tb.Stats(); s.Pages1G != 1 || s.Tables != 2 {
		t.Fatalf("before split: %+v", s)
	}
	// A UC page inside the 1 GiB page splits it into 2 MiB pages and the
	// first 2 MiB page into 4 KiB pages.
	mustMap(t, tb, 0x5000, 0x1000, rwUC, AllPageSizes)
	checkLookups(t, tb, []lookupWant{
		{0x0, true, big, Page4K},
		{0x4fff, true, big, Page4K},
		{0x5000, true, rwUC, Page4K},
		{0x6000, true, big, Page4K},
		{0x1f_f000, true, big, Page4K},
		{0x20_0000, true, big, Page2M},
		{gib - 1, true, big, Page2M},
		{gib, false, Attr{}, 0},
	})
	s := tb.Stats()
	if s.Pages1G != 0 || s.Pages2M != 511 || s.Pages4K != 512 || s.Tables != 4 {
		t.Errorf("after split: %+v, want 511 x 2M, 512 x 4K, 4 tables", s)
	}
	// Mapping a page the same way again changes nothing.
	n := alloc.n
	mustMap(t, tb, 0x30_0000, 0x1000, big, AllPageSizes)
	if alloc.n != n || tb.Stats().Pages2M != 511 {
		t.Error("re-mapping a page with unchanged attributes split its large page")
	}

	// Mapping the whole GiB again merges back into one page; the PD and
	// PT are kept and reused by the next call, not taken from the
	// allocator.
	mustMap(t, tb, 0, gib, big, AllPageSizes)
	s = tb.Stats()
	if s.Pages1G != 1 || s.Tables != 2 || s.Spare != 2 || s.Tables+s.Spare != s.Allocated {
		t.Errorf("after merge: %+v, want 1 x 1G, 2 tables, 2 spare", s)
	}
	n = alloc.n
	mustMap(t, tb, 0x5000, 0x1000, rwUC, AllPageSizes)
	if alloc.n != n {
		t.Errorf("split after merge took %d new pages, want the 2 spare ones", alloc.n-n)
	}
	if s = tb.Stats(); s.Spare != 0 || s.Tables != 4 {
		t.Errorf("after re-split: %+v", s)
	}
}

func TestUnmap(t *testing.T) {
	tb, _, _ := newTestTables(t, Config{Pages1G: true})
	mustMap(t, tb, 0, 4*gib, rwWB, AllPageSizes)
	if err := tb.Unmap(0, 0x1000); err != nil {
		t.Fatal(err)
	}
	if err := tb.Unmap(gib, gib); err != nil {
		t.Fatal(err)
	}
	if err := tb.Unmap(3*gib+2*mib, 2*mib); err != nil {
		t.Fatal(err)
	}
	checkLookups(t, tb, []lookupWant{
		{0x0, false, Attr{}, 0},
		{0xfff, false, Attr{}, 0},
		{0x1000, true, rwWB, Page4K},
		{0x20_0000, true, rwWB, Page2M},
		{gib - 1, true, rwWB, Page2M},
		{gib, false, Attr{}, 0},
		{2 * gib, true, rwWB, Page1G},
		{3 * gib, true, rwWB, Page2M},
		{3*gib + 2*mib, false, Attr{}, 0},
		{3*gib + 4*mib, true, rwWB, Page2M},
	})
	// Unmapping what is not mapped is harmless and allocates nothing.
	s := tb.Stats()
	if err := tb.Unmap(40*gib, 5*gib); err != nil {
		t.Fatal(err)
	}
	if s2 := tb.Stats(); s2 != s {
		t.Errorf("unmapping an unmapped range changed the tables: %+v -> %+v", s, s2)
	}
}

func TestHighMemory(t *testing.T) {
	tb, mem, _ := newTestTables(t, Config{PhysAddrBits: 46})
	mustMap(t, tb, 4*gib, 4*gib, rwWB, AllPageSizes)         // above TamaGo's 6 GiB
	mustMap(t, tb, 512*gib-2*mib, 4*mib, rwWB, AllPageSizes) // across the first PML4 entry's end
	mustMap(t, tb, 64<<40-4096, 4096, rwUC, AllPageSizes)    // 64 TiB - 4 KiB: PML4 entry 127
	checkLookups(t, tb, []lookupWant{
		{6*gib + 0x1234, true, rwWB, Page2M},
		{8*gib - 1, true, rwWB, Page2M},
		{8 * gib, false, Attr{}, 0},
		{512*gib - 1, true, rwWB, Page2M},
		{512*gib + 0x1234, true, rwWB, Page2M},
		{512*gib + 2*mib, false, Attr{}, 0},
		{64<<40 - 1, true, Attr{Writable: true, Cache: Uncacheable}, Page4K},
	})
	for i, want := range map[int]bool{0: true, 1: true, 2: false, 127: true} {
		if got := mem.Read64(tb.Root()+uint64(8*i))&bitPresent != 0; got != want {
			t.Errorf("PML4 entry %d present = %v, want %v", i, got, want)
		}
	}
}

func TestErrors(t *testing.T) {
	tb, _, _ := newTestTables(t, Config{})
	for _, c := range []struct {
		start, size uint64
		attr        Attr
		want        string
	}{
		{0x1001, 0x1000, rwWB, "not 4 KiB aligned"},
		{0x1000, 0x1001, rwWB, "not 4 KiB aligned"},
		{^uint64(0) - 0xfff, 0x2000, rwWB, "wraps around"},
		{64 * gib, 4096, rwWB, "beyond the mappable limit"}, // MAXPHYADDR 36 by default
		{0, 4096, Attr{Cache: 7}, "unknown cache type"},
	} {
		err := tb.MapIdentity(c.start, c.size, c.attr, AllPageSizes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MapIdentity(%#x, %#x, %+v) = %v, want %q", c.start, c.size, c.attr, err, c.want)
		}
	}
	if err := tb.Unmap(3, 4096); err == nil {
		t.Error("unaligned Unmap accepted")
	}
	if s := tb.Stats(); s.Tables != 1 || s.Pages4K+s.Pages2M+s.Pages1G != 0 {
		t.Errorf("rejected calls changed the tables: %+v", s)
	}

	mem := hwfake.NewMemory()
	if _, err := New(mem, newBump(tableArea, 4096), Config{PhysAddrBits: 60}); err == nil {
		t.Error("MAXPHYADDR 60 accepted")
	}
	if _, err := New(nil, newBump(tableArea, 4096), Config{}); err == nil {
		t.Error("nil Memory accepted")
	}
	if _, err := NewAt(mem, newBump(tableArea, 4096), 0x9001, Config{}); err == nil {
		t.Error("unaligned root accepted")
	}
	if _, err := NewAt(mem, newBump(tableArea, 4096), 0, Config{}); err == nil {
		t.Error("root at page 0 accepted")
	}
	if _, err := New(mem, &badAlloc{0x1234}, Config{}); err == nil || !strings.Contains(err.Error(), "not 4 KiB aligned") {
		t.Errorf("unaligned page from the allocator: err = %v", err)
	}

	// Running out of table pages is an error, and the tables stay valid.
	tb2, err := New(mem, newBump(tableArea, 3), Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = tb2.MapIdentity(0, 4*mib, rwWB, Pages4K)
	if !errors.Is(err, errExhausted) {
		t.Fatalf("MapIdentity with 3 table pages: err = %v, want the allocator's", err)
	}
	if _, _, _, ok := tb2.Lookup(0x1000); ok {
		t.Error("a page was mapped through a table that could not be allocated")
	}
}

type badAlloc struct{ p uint64 }

func (b *badAlloc) AllocTable() (uint64, error) { return b.p, nil }

func TestNewAtClearsRoot(t *testing.T) {
	mem := hwfake.NewMemory()
	for i := uint64(0); i < 512; i++ {
		mem.Write64(0x9000+8*i, 0xdead_beef_0000_0003) // stale entries
	}
	tb, err := NewAt(mem, newBump(tableArea, 4096), 0x9000, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Root() != 0x9000 {
		t.Errorf("Root = %#x, want 0x9000", tb.Root())
	}
	if _, _, _, ok := tb.Lookup(0x1000); ok {
		t.Error("stale root entry still translates")
	}
	mustMap(t, tb, 0, 2*mib, rwWB, AllPageSizes)
	if s := tb.Stats(); s.Allocated != 2 || s.Tables != 3 {
		t.Errorf("stats %+v, want 2 allocated, 3 tables (given root)", s)
	}
}

func TestConfigFromCPUID(t *testing.T) {
	cpu := hwfake.CPUID{
		{Leaf: 0x8000_0000}: {EAX: 0x8000_0008},
		{Leaf: 0x8000_0001}: {EDX: 1<<26 | 1<<20},
		{Leaf: 0x8000_0008}: {EAX: 0x3027}, // 48-bit linear, 39-bit physical
	}
	if c := ConfigFromCPUID(cpu); c != (Config{Pages1G: true, NoExecute: true, PhysAddrBits: 39}) {
		t.Errorf("ConfigFromCPUID = %+v", c)
	}
	qemu64 := hwfake.CPUID{
		{Leaf: 0x8000_0000}: {EAX: 0x8000_0008},
		{Leaf: 0x8000_0001}: {EDX: 1 << 20},
		{Leaf: 0x8000_0008}: {EAX: 0x3028},
	}
	if c := ConfigFromCPUID(qemu64); c.Pages1G || !c.NoExecute || c.PhysAddrBits != 40 {
		t.Errorf("qemu64: %+v", c)
	}
	old := hwfake.CPUID{
		{Leaf: 0x8000_0000}: {EAX: 0x8000_0001},
		{Leaf: 0x8000_0008}: {EAX: 0x3028},
	}
	if c := ConfigFromCPUID(old); c != (Config{}) {
		t.Errorf("leaf 80000008h above the maximum was read: %+v", c)
	}
}
