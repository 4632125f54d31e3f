// Package pagetable builds the hypervisor's own host page tables: an identity
// map of physical memory with x86-64 4-level paging (Intel SDM Vol. 3A 4.5;
// AMD APM Vol. 2 5.3), built from the machine's memory map.
//
// TamaGo's start-up tables map only the first few GiB, the top of them
// uncacheable, whatever the machine has: a server's RAM above that would be
// unreachable, and MMIO would be mapped cacheable. BuildHostMap maps RAM
// write-back and everything else, up to the highest address that must be
// reached, uncacheable and not executable, and leaves page 0 unmapped so a
// nil pointer dereference faults.
//
// Tables are written through the small Memory interface and table pages come
// from an Allocator, so the same code runs on the machine (hw.MMIO on the
// identity map, pages from the runtime's reserved area) and in host tests
// (hwfake.Memory and a bump allocator).
//
// Editing tables that a processor is using: every table is filled before the
// entry that links it is written, so a walk never sees a half-built table;
// the caller must still flush the TLBs (reload CR3, or INVLPG, on every CPU
// that uses them) after each call that changes a mapping and before the next
// call, because a table page detached by one call (a range now covered by a
// larger page) is reused from the next call on.
package pagetable

import (
	"errors"
	"fmt"
)

// Allocator hands out 4 KiB-aligned physical pages for tables. The pages need
// not be zeroed: Tables clears them. Tables never returns a page to the
// Allocator; pages it no longer needs it keeps for its own reuse.
type Allocator interface {
	AllocTable() (phys uint64, err error)
}

// Memory reads and writes 64-bit words of physical memory; hw.MMIO and
// hwfake.Memory satisfy it.
type Memory interface {
	Read64(addr uint64) uint64
	Write64(addr uint64, v uint64)
}

// Tables is one 4-level identity-mapping page-table tree.
type Tables struct {
	mem   Memory
	alloc Allocator
	cfg   Config
	limit uint64
	root  uint64

	allocated int // pages taken from the Allocator, root included if allocated
	// Detached table pages, chained through their first word (0 ends a
	// chain: page 0 is never a table). Pages detached during a call are
	// pending; at the start of the next call they become free.
	free, pending       uint64
	freeLen, pendingLen int
}

// New allocates a root table and returns empty Tables.
func New(mem Memory, alloc Allocator, cfg Config) (*Tables, error) {
	t, err := newTables(mem, alloc, cfg)
	if err != nil {
		return nil, err
	}
	root, err := t.newTable()
	if err != nil {
		return nil, err
	}
	t.root = root
	return t, nil
}

// NewAt returns empty Tables whose root (PML4) is the page at root, which it
// clears: never pass the root of tables in use. The platform uses 0x9000,
// where the application processors' start-up code loads CR3 from.
func NewAt(mem Memory, alloc Allocator, root uint64, cfg Config) (*Tables, error) {
	t, err := newTables(mem, alloc, cfg)
	if err != nil {
		return nil, err
	}
	if err := t.checkTablePage(root); err != nil {
		return nil, fmt.Errorf("pagetable: root table: %w", err)
	}
	t.root = root
	t.clear(root)
	return t, nil
}

func newTables(mem Memory, alloc Allocator, cfg Config) (*Tables, error) {
	if mem == nil || alloc == nil {
		return nil, errors.New("pagetable: nil Memory or Allocator")
	}
	limit, err := cfg.limit()
	if err != nil {
		return nil, err
	}
	return &Tables{mem: mem, alloc: alloc, cfg: cfg, limit: limit}, nil
}

// Root is the physical address of the PML4 table: the value for CR3 (with
// PCD = PWT = 0, so the root is fetched write-back).
func (t *Tables) Root() uint64 { return t.root }

// Limit is the first physical address these Tables cannot map:
// min(2^MAXPHYADDR, 2^47).
func (t *Tables) Limit() uint64 { return t.limit }

func (t *Tables) checkTablePage(p uint64) error {
	switch {
	case p%TableSize != 0:
		return fmt.Errorf("page %#x is not 4 KiB aligned", p)
	case p == 0:
		return errors.New("page 0 cannot hold a table")
	case p >= t.limit:
		return fmt.Errorf("page %#x is beyond the physical address limit %#x", p, t.limit)
	}
	return nil
}

func (t *Tables) clear(table uint64) {
	for i := uint64(0); i < entriesPerTab; i++ {
		t.mem.Write64(table+8*i, 0)
	}
}

// newTable returns a cleared table page, reusing a detached one if any.
func (t *Tables) newTable() (uint64, error) {
	var p uint64
	if t.free != 0 {
		p = t.free
		t.free = t.mem.Read64(p)
		t.freeLen--
	} else {
		var err error
		p, err = t.alloc.AllocTable()
		if err != nil {
			return 0, fmt.Errorf("pagetable: allocating a table: %w", err)
		}
		if err := t.checkTablePage(p); err != nil {
			return 0, fmt.Errorf("pagetable: allocator returned a bad table page: %w", err)
		}
		t.allocated++
	}
	t.clear(p)
	return p, nil
}

// detach unlinks the subtree rooted at table (at level) into the pending
// chain; the caller has already overwritten the entry that referenced it.
func (t *Tables) detach(table uint64, level int) {
	if level > 1 {
		for i := uint64(0); i < entriesPerTab; i++ {
			e := t.mem.Read64(table + 8*i)
			if e&bitPresent != 0 && !isLeaf(e, level) {
				t.detach(e&addrMask, level-1)
			}
		}
	}
	t.mem.Write64(table, t.pending)
	t.pending = table
	t.pendingLen++
}

// releasePending makes the pages detached by earlier calls reusable.
func (t *Tables) releasePending() {
	for t.pending != 0 {
		p := t.pending
		t.pending = t.mem.Read64(p)
		t.pendingLen--
		t.mem.Write64(p, t.free)
		t.free = p
		t.freeLen++
	}
}

// checkRange validates an identity range.
func (t *Tables) checkRange(start, size uint64) error {
	end := start + size
	switch {
	case start%uint64(Page4K) != 0 || size%uint64(Page4K) != 0:
		return fmt.Errorf("pagetable: range %#x+%#x is not 4 KiB aligned", start, size)
	case end < start:
		return fmt.Errorf("pagetable: range %#x+%#x wraps around", start, size)
	case end > t.limit:
		return fmt.Errorf("pagetable: range %#x-%#x extends beyond the mappable limit %#x (MAXPHYADDR or 2^47)", start, end, t.limit)
	}
	return nil
}

// edit is one MapIdentity or Unmap call.
type edit struct {
	unmap bool
	flags uint64 // leaf flags, without PS
	sizes PageSizes
}

// leafAllowed reports whether an entry at level may be written as a whole.
func (t *Tables) leafAllowed(level int, ed *edit) bool {
	if ed.unmap {
		return true // a not-present entry is valid at every level
	}
	switch level {
	case 1:
		return true
	case 2:
		return ed.sizes&Pages2M != 0
	case 3:
		return ed.sizes&Pages1G != 0 && t.cfg.Pages1G
	}
	return false
}

func leafEntry(base uint64, level int, flags uint64) uint64 {
	e := base | flags
	if level > 1 {
		e |= bitPageSize
	}
	return e
}

// MapIdentity maps [start, start+size) to the same physical addresses with
// attr, using the largest pages sizes allows that fit: 1 GiB where aligned
// (and Config.Pages1G), 2 MiB where aligned, 4 KiB at the edges. A larger
// page that the range covers only in part is split into smaller pages that
// keep its mapping outside the range. start and size must be 4 KiB aligned.
// On error (the allocator ran out) every entry is still valid but the range
// may be mapped only in part.
func (t *Tables) MapIdentity(start, size uint64, attr Attr, sizes PageSizes) error {
	if err := t.checkRange(start, size); err != nil {
		return err
	}
	if attr.Cache >= numCacheTypes {
		return fmt.Errorf("pagetable: unknown cache type %d", attr.Cache)
	}
	t.releasePending()
	ed := edit{flags: t.cfg.leafFlags(attr), sizes: sizes | Pages4K}
	return t.apply(t.root, levels, start, start+size, &ed)
}

// Unmap removes the mapping of [start, start+size), splitting larger pages
// that straddle its edges. start and size must be 4 KiB aligned.
func (t *Tables) Unmap(start, size uint64) error {
	if err := t.checkRange(start, size); err != nil {
		return err
	}
	t.releasePending()
	ed := edit{unmap: true}
	return t.apply(t.root, levels, start, start+size, &ed)
}

// apply carries out ed over [start, end) within table, a table at level.
func (t *Tables) apply(table uint64, level int, start, end uint64, ed *edit) error {
	span := levelSpan(level)
	for addr := start; addr < end; {
		base := addr &^ (span - 1)
		next := base + span
		segEnd := min(end, next)
		slot := table + 8*index(addr, level)
		old := t.mem.Read64(slot)
		present := old&bitPresent != 0

		if addr == base && segEnd == next && t.leafAllowed(level, ed) {
			var e uint64
			if !ed.unmap {
				e = leafEntry(base, level, ed.flags)
			}
			t.mem.Write64(slot, e)
			if present && !isLeaf(old, level) {
				t.detach(old&addrMask, level-1)
			}
			addr = segEnd
			continue
		}

		// The range covers this entry only in part (or may not use its
		// page size): descend, creating or splitting the table below.
		var sub uint64
		switch {
		case !present:
			if ed.unmap {
				addr = segEnd
				continue
			}
			var err error
			if sub, err = t.newTable(); err != nil {
				return err
			}
			t.mem.Write64(slot, sub|tableFlags)
		case isLeaf(old, level):
			if !ed.unmap && old == leafEntry(base, level, ed.flags) {
				addr = segEnd // already mapped so
				continue
			}
			var err error
			if sub, err = t.split(old, level); err != nil {
				return err
			}
			t.mem.Write64(slot, sub|tableFlags)
		default:
			sub = old & addrMask
		}
		if err := t.apply(sub, level-1, addr, segEnd, ed); err != nil {
			return err
		}
		addr = segEnd
	}
	return nil
}

// split builds a table of the next level down whose 512 entries map what the
// large leaf entry old (at level) maps, with the same attributes.
func (t *Tables) split(old uint64, level int) (uint64, error) {
	sub, err := t.newTable()
	if err != nil {
		return 0, err
	}
	base := old & leafAddrMask(level)
	flags := old &^ addrMask &^ bitPageSize
	if old&bitPATLarge != 0 {
		// Not written by this package; kept correct all the same: bit 12
		// of a large page is PAT, which is bit 7 of a PTE and bit 12 of a
		// 2 MiB PDE.
		if level-1 == 1 {
			flags |= bitPageSize
		} else {
			flags |= bitPATLarge
		}
	}
	childSpan := levelSpan(level - 1)
	for i := uint64(0); i < entriesPerTab; i++ {
		t.mem.Write64(sub+8*i, leafEntry(base+i*childSpan, level-1, flags))
	}
	return sub, nil
}

// Lookup walks the tables for addr and returns the physical address it maps
// to, the mapping's attributes and the size of the page that maps it; ok is
// false where addr is not mapped.
func (t *Tables) Lookup(addr uint64) (phys uint64, attr Attr, size PageSize, ok bool) {
	if addr >= LinearLimit {
		return 0, Attr{}, 0, false
	}
	table := t.root
	for level := levels; level >= 1; level-- {
		e := t.mem.Read64(table + 8*index(addr, level))
		if e&bitPresent == 0 {
			return 0, Attr{}, 0, false
		}
		if isLeaf(e, level) {
			span := levelSpan(level)
			return e&leafAddrMask(level) | addr&(span-1), decodeAttr(e), PageSize(span), true
		}
		table = e & addrMask
	}
	return 0, Attr{}, 0, false // not reached: level 1 entries are leaves
}

// Stats describes the tables, for the boot log.
type Stats struct {
	Pages4K, Pages2M, Pages1G int // leaf entries of each size
	// Tables is the number of table pages in the tree, the root included.
	Tables int
	// Allocated is the number of pages taken from the Allocator; Spare of
	// them are detached and kept for reuse, so Tables+Spare == Allocated
	// (+1 when the root was given to NewAt).
	Allocated, Spare int
	// Bytes is the size mapped with each cache type.
	Bytes [numCacheTypes]uint64
}

// Stats walks the tables and counts what they hold.
func (t *Tables) Stats() Stats {
	s := Stats{Allocated: t.allocated, Spare: t.freeLen + t.pendingLen}
	t.count(t.root, levels, &s)
	return s
}

func (t *Tables) count(table uint64, level int, s *Stats) {
	s.Tables++
	for i := uint64(0); i < entriesPerTab; i++ {
		e := t.mem.Read64(table + 8*i)
		switch {
		case e&bitPresent == 0:
		case isLeaf(e, level):
			switch level {
			case 1:
				s.Pages4K++
			case 2:
				s.Pages2M++
			case 3:
				s.Pages1G++
			}
			s.Bytes[decodeAttr(e).Cache] += levelSpan(level)
		default:
			t.count(e&addrMask, level-1, s)
		}
	}
}

func (s Stats) String() string {
	return fmt.Sprintf("%d x 1 GiB, %d x 2 MiB, %d x 4 KiB pages; %d table pages (%d spare); %d MiB WB, %d MiB UC",
		s.Pages1G, s.Pages2M, s.Pages4K, s.Tables, s.Spare,
		s.Bytes[WriteBack]>>20, (s.Bytes[Uncacheable]+s.Bytes[UncachedMinus])>>20)
}
