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
// The tables are built by tamavisor/ept, the tree's one radix-table engine,
// with its Host format; this package adds what the identity map needs: the
// configuration from CPUID, the attributes of host pages, reuse of detached
// table pages, and BuildHostMap. Tables are written through the small Memory
// interface and table pages come from an Allocator, so the same code runs on
// the machine (hw.MMIO on the identity map, pages from the runtime's reserved
// area) and in host tests (hwfake.Memory and a bump allocator).
//
// Editing tables that a processor is using: every table is filled before the
// entry that links it is written, so a walk never sees a half-built table;
// the caller must still flush the TLBs (reload CR3, or INVLPG, on every CPU
// that uses them) after each call that changes a mapping and before the next
// call, because a table page detached by one call (a range now covered by a
// larger page, or a table Unmap emptied) is reused from the next call on.
package pagetable

import (
	"errors"
	"fmt"

	"tamavisor/ept"
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
	tables *ept.Tables
	cfg    Config
	limit  uint64
	root   uint64
	spares
}

// spares stands between the engine and the caller's Allocator: it takes
// pages from the Allocator and keeps those the engine frees, chained through
// their first word (0 ends a chain: page 0 is never a table). Pages freed
// during a call are pending; at the start of the next call, after the caller
// has flushed the TLBs, they become free.
type spares struct {
	mem   Memory
	alloc Allocator
	limit uint64

	allocated           int // pages taken from alloc
	free, pending       uint64
	freeLen, pendingLen int
}

func (s *spares) take() (uint64, error) {
	if s.free != 0 {
		p := s.free
		s.free = s.mem.Read64(p)
		s.freeLen--
		return p, nil
	}
	p, err := s.alloc.AllocTable()
	if err != nil {
		return 0, err
	}
	s.allocated++
	if p >= s.limit {
		// The engine checks alignment; this map must also reach the
		// page through itself to edit it later.
		return 0, fmt.Errorf("page %#x is beyond the identity map's limit %#x", p, s.limit)
	}
	return p, nil
}

func (s *spares) give(p uint64) {
	s.mem.Write64(p, s.pending)
	s.pending = p
	s.pendingLen++
}

// engineAllocator is spares as the engine's Allocator; a separate type, so
// that Tables, which embeds spares, does not gain these methods.
type engineAllocator struct{ s *spares }

func (a engineAllocator) AllocTable() (uint64, error) { return a.s.take() }
func (a engineAllocator) FreeTable(p uint64)          { a.s.give(p) }

// releasePending makes the pages freed by earlier calls reusable.
func (s *spares) releasePending() {
	for s.pending != 0 {
		p := s.pending
		s.pending = s.mem.Read64(p)
		s.pendingLen--
		s.mem.Write64(p, s.free)
		s.free = p
		s.freeLen++
	}
}

// New allocates a root table and returns empty Tables.
func New(mem Memory, alloc Allocator, cfg Config) (*Tables, error) {
	t, ecfg, err := newTables(mem, alloc, cfg)
	if err != nil {
		return nil, err
	}
	if t.tables, err = ept.New(mem, engineAllocator{&t.spares}, ecfg); err != nil {
		return nil, err
	}
	t.root = t.tables.Root()
	return t, nil
}

// NewAt returns empty Tables whose root (PML4) is the page at root, which it
// clears: never pass the root of tables in use. The platform uses 0x9000,
// where the application processors' start-up code loads CR3 from.
func NewAt(mem Memory, alloc Allocator, root uint64, cfg Config) (*Tables, error) {
	t, ecfg, err := newTables(mem, alloc, cfg)
	if err != nil {
		return nil, err
	}
	if t.tables, err = ept.NewAt(mem, engineAllocator{&t.spares}, root, ecfg); err != nil {
		return nil, err
	}
	t.root = root
	return t, nil
}

func newTables(mem Memory, alloc Allocator, cfg Config) (*Tables, ept.Config, error) {
	if mem == nil || alloc == nil {
		return nil, ept.Config{}, errors.New("pagetable: nil Memory or Allocator")
	}
	bits, err := cfg.addrBits()
	if err != nil {
		return nil, ept.Config{}, err
	}
	limit := uint64(1) << bits
	t := &Tables{cfg: cfg, limit: limit, spares: spares{mem: mem, alloc: alloc, limit: limit}}
	// An identity map: input and output addresses share the limit. No
	// invalidation hook: the caller flushes between calls (see above).
	ecfg := ept.Config{
		Format:         ept.HostFormat{NoExecute: cfg.NoExecute},
		InputAddrBits:  bits,
		OutputAddrBits: bits,
		PageSizes:      cfg.pageSizes(AllPageSizes),
	}
	return t, ecfg, nil
}

// Root is the physical address of the PML4 table: the value for CR3 (with
// PCD = PWT = 0, so the root is fetched write-back).
func (t *Tables) Root() uint64 { return t.root }

// Limit is the first physical address these Tables cannot map:
// min(2^MAXPHYADDR, 2^47).
func (t *Tables) Limit() uint64 { return t.limit }

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
	return t.tables.MapWithSizes(start, start, size, attr.perm(), memTypes[attr.Cache], t.cfg.pageSizes(sizes))
}

// Unmap removes the mapping of [start, start+size), splitting larger pages
// that straddle its edges. start and size must be 4 KiB aligned.
func (t *Tables) Unmap(start, size uint64) error {
	if err := t.checkRange(start, size); err != nil {
		return err
	}
	t.releasePending()
	return t.tables.Unmap(start, size)
}

// Lookup walks the tables for addr and returns the physical address it maps
// to, the mapping's attributes and the size of the page that maps it; ok is
// false where addr is not mapped.
func (t *Tables) Lookup(addr uint64) (phys uint64, attr Attr, size PageSize, ok bool) {
	phys, m, ok := t.tables.Lookup(addr)
	if !ok {
		return 0, Attr{}, 0, false
	}
	return phys, attrOf(m), PageSize(m.Size), true
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
	s := Stats{Tables: t.tables.TablePages(), Allocated: t.allocated, Spare: t.freeLen + t.pendingLen}
	// The whole input range is valid, so Range cannot fail.
	_ = t.tables.Range(0, t.tables.InputLimit(), func(m ept.Mapping) bool {
		switch PageSize(m.Size) {
		case Page4K:
			s.Pages4K++
		case Page2M:
			s.Pages2M++
		case Page1G:
			s.Pages1G++
		}
		s.Bytes[cacheType(m.Mem)] += m.Size
		return true
	})
	return s
}

func (s Stats) String() string {
	return fmt.Sprintf("%d x 1 GiB, %d x 2 MiB, %d x 4 KiB pages; %d table pages (%d spare); %d MiB WB, %d MiB UC",
		s.Pages1G, s.Pages2M, s.Pages4K, s.Tables, s.Spare,
		s.Bytes[WriteBack]>>20, (s.Bytes[Uncacheable]+s.Bytes[UncachedMinus])>>20)
}
