package ept

import (
	"errors"
	"fmt"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

const (
	kib = uint64(1) << 10
	mib = uint64(1) << 20
	gib = uint64(1) << 30
)

// Table pages come from 60 GiB up in the fake memory, below every output
// limit the tests use and away from what they map.
const tableArea = 0xf_0000_0000

var errExhausted = errors.New("bump allocator exhausted")

// pool is a bump allocator that reuses freed pages (last freed first), and
// checks that the Tables free only pages it gave them, once, and (when
// tables are in use) only after an invalidation.
type pool struct {
	next     uint64
	max      int // pages handed out from the bump area at most
	bumped   int
	free     []uint64
	live     map[uint64]bool
	onFree   func(p uint64) // extra check, if set
	failures []string
}

func newPool(max int) *pool {
	return &pool{next: tableArea, max: max, live: map[uint64]bool{}}
}

func (p *pool) AllocTable() (uint64, error) {
	var pg uint64
	if n := len(p.free); n > 0 {
		pg, p.free = p.free[n-1], p.free[:n-1]
	} else {
		if p.bumped >= p.max {
			return 0, errExhausted
		}
		pg = p.next
		p.next += 4096
		p.bumped++
	}
	p.live[pg] = true
	return pg, nil
}

func (p *pool) FreeTable(pg uint64) {
	if !p.live[pg] {
		p.failures = append(p.failures, fmt.Sprintf("FreeTable(%#x): not an allocated page", pg))
		return
	}
	if p.onFree != nil {
		p.onFree(pg)
	}
	delete(p.live, pg)
	p.free = append(p.free, pg)
}

func (p *pool) check(t testing.TB) {
	t.Helper()
	for _, f := range p.failures {
		t.Error(f)
	}
	p.failures = nil
}

// invalidations records OnInvalidate calls.
type invalidations struct {
	calls []span
}

type span struct{ start, size uint64 }

func (s span) String() string { return fmt.Sprintf("[%#x, %#x)", s.start, s.start+s.size) }

func (iv *invalidations) hook(gpa, size uint64) { iv.calls = append(iv.calls, span{gpa, size}) }

func (iv *invalidations) take() []span {
	c := iv.calls
	iv.calls = nil
	return c
}

// covers reports whether some recorded call covers [a, a+size).
func covers(calls []span, a, size uint64) bool {
	for _, c := range calls {
		if a >= c.start && a+size <= c.start+c.size {
			return true
		}
	}
	return false
}

type fixture struct {
	tb   *Tables
	mem  *hwfake.Memory
	pool *pool
	inv  *invalidations
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	fx := &fixture{mem: hwfake.NewMemory(), pool: newPool(1 << 16), inv: &invalidations{}}
	if cfg.OnInvalidate == nil {
		cfg.OnInvalidate = fx.inv.hook
	}
	tb, err := New(fx.mem, fx.pool, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	fx.tb = tb
	return fx
}

func (fx *fixture) mustMap(t testing.TB, gpa, hpa, size uint64, perm Perm, mem MemType) {
	t.Helper()
	if err := fx.tb.Map(gpa, hpa, size, perm, mem); err != nil {
		t.Fatalf("Map(%#x -> %#x, %#x, %v, %v): %v", gpa, hpa, size, perm, mem, err)
	}
}

// specAddr selects bits 51:12, where every format keeps the address of the
// next table (Intel SDM Vol. 3C Tables 29-1 to 29-6; AMD APM Vol. 2 Figures
// 5-18 to 5-25; VT-d 9.8; AMD IOMMU 2.2.3).
const specAddr = 0x000f_ffff_ffff_f000

// entryAt reads the raw entry at level for addr, following table addresses
// without asking the format.
func entryAt(mem *hwfake.Memory, root, addr uint64, level int) uint64 {
	table := root
	for l := Levels; ; l-- {
		e := mem.Read64(table + 8*((addr>>(12+9*uint(l-1)))&511))
		if l == level {
			return e
		}
		table = e & specAddr
	}
}

type lookupWant struct {
	gpa, hpa uint64 // hpa 0 with ok false: not mapped
	perm     Perm
	mem      MemType
	size     uint64
}

func checkLookups(t *testing.T, tb *Tables, wants []lookupWant) {
	t.Helper()
	for _, w := range wants {
		hpa, m, ok := tb.Lookup(w.gpa)
		wantOK := w.size != 0
		if ok != wantOK {
			t.Errorf("Lookup(%#x) ok = %v, want %v", w.gpa, ok, wantOK)
			continue
		}
		if !ok {
			continue
		}
		if hpa != w.hpa || m.Perm != w.perm || m.Mem != w.mem || m.Size != w.size {
			t.Errorf("Lookup(%#x) = %#x %v %v size %#x, want %#x %v %v size %#x",
				w.gpa, hpa, m.Perm, m.Mem, m.Size, w.hpa, w.perm, w.mem, w.size)
		}
		if m.GPA != w.gpa&^(m.Size-1) || m.HPA != hpa&^(m.Size-1) {
			t.Errorf("Lookup(%#x): page %#x -> %#x is not the aligned page holding it", w.gpa, m.GPA, m.HPA)
		}
	}
}

// treePages walks the tree without the engine's help beyond the format, and
// fails on a page referenced twice or an empty table other than the root.
func treePages(t testing.TB, tb *Tables, mem interface{ Read64(uint64) uint64 }) map[uint64]bool {
	t.Helper()
	seen := map[uint64]bool{}
	var walk func(table uint64, level int)
	walk = func(table uint64, level int) {
		if seen[table] {
			t.Fatalf("table page %#x is referenced twice", table)
		}
		seen[table] = true
		present := 0
		for i := uint64(0); i < 512; i++ {
			e := mem.Read64(table + 8*i)
			if !tb.f.Present(e) {
				if e != tb.f.Empty() {
					t.Fatalf("not-present entry %#x in table %#x is not %#x", e, table, tb.f.Empty())
				}
				continue
			}
			present++
			if !tb.f.IsLeaf(e, level) {
				walk(e&specAddr, level-1)
			}
		}
		if present == 0 && table != tb.root {
			t.Fatalf("table %#x at level %d is empty but still linked", table, level)
		}
	}
	walk(tb.root, Levels)
	if len(seen) != tb.TablePages() {
		t.Fatalf("tree has %d table pages, TablePages says %d", len(seen), tb.TablePages())
	}
	return seen
}

// checkNoLeak asserts that the allocator's live pages are exactly the tree.
func checkNoLeak(t testing.TB, tb *Tables, mem interface{ Read64(uint64) uint64 }, p *pool) {
	t.Helper()
	tree := treePages(t, tb, mem)
	for pg := range p.live {
		if !tree[pg] {
			t.Fatalf("page %#x is allocated but not in the tree: leaked", pg)
		}
	}
	for pg := range tree {
		if !p.live[pg] {
			t.Fatalf("tree page %#x is not allocated (freed while in use?)", pg)
		}
	}
}
