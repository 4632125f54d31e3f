// Package ept is the hypervisor's one radix-table engine for address
// translation tables: second-level (guest-physical to host-physical)
// translation for guests, DMA remapping for devices, and the hypervisor's
// own page tables. One engine walks, splits and frees the 4-level tables;
// pluggable Formats encode the entries:
//
//   - EPTFormat: Intel extended page tables (SDM Vol. 3C 29.3), for the VMX
//     engine; Tables.EPTP gives the VMCS's EPT pointer.
//   - NPTFormat: AMD nested page tables (APM Vol. 2 15.25), for the SVM
//     engine; Tables.Root is the VMCB's N_CR3.
//   - VTdFormat: Intel VT-d second-stage tables (VT-d spec 3.x 9.8), and
//   - AMDViFormat: AMD IOMMU host-translation tables (AMD IOMMU spec
//     2.2.3), for the IOMMU driver, which protects the hypervisor and other
//     guests from a device's DMA.
//   - HostFormat: x86-64 4-level paging (Intel SDM Vol. 3A 4.5; AMD APM
//     Vol. 2 5.3), which runtime/pagetable uses for the hypervisor's own
//     identity map.
//
// Tables.Map maps a guest-physical range to a host-physical one with the
// largest pages the configuration allows where both addresses are aligned,
// 4 KiB pages at the edges, and splits a large page that a later change
// covers only in part. Unmap, Protect, Lookup, Range and the dirty-tracking
// TestAndClearDirty/TestAndClearAccessed complete the set.
//
// Tables are written through the small Memory interface and table pages come
// from an Allocator, so the same code runs on the machine (hw.MMIO on the
// identity map) and in host tests (hwfake.Memory and a bump allocator).
//
// Editing tables that processors or IOMMUs are using: a new or split table is
// filled before the entry that links it is written, so a walk never sees a
// half-built table. After each operation that changed or removed a present
// translation, Config.OnInvalidate is called once with the range that
// covers the changes (the caller runs INVEPT, flushes the ASID, or queues an
// IOTLB invalidation, on every CPU or unit that uses the tables); table pages
// the operation detached are handed back to the Allocator only after it
// returns, so no walker can still reach them. Entries are updated with plain
// 64-bit stores: an accessed or dirty bit that hardware sets between the
// engine's read and write of the same entry can be lost, except in
// TestAndClearDirty (see there).
//
// Map, Unmap, Protect, Lookup, Range and the dirty-tracking calls allocate
// nothing on the Go heap (beyond the errors they return), and nothing panics
// on bad input: errors name what is wrong. Tables are not safe for
// concurrent use.
package ept

import (
	"errors"
	"fmt"
)

// Memory reads and writes 64-bit words of physical memory; hw.MMIO and
// hwfake.Memory satisfy it.
type Memory interface {
	Read64(addr uint64) uint64
	Write64(addr uint64, v uint64)
}

// Allocator hands out 4 KiB-aligned physical pages for tables and takes back
// those the Tables no longer use. Pages need not be zeroed.
type Allocator interface {
	AllocTable() (phys uint64, err error)
	FreeTable(phys uint64)
}

// Config describes the tables and what the hardware supports.
type Config struct {
	Format Format
	// InputAddrBits is the width of the addresses translated (the
	// guest-physical address width; 0 means 48). Addresses at or above
	// 2^InputAddrBits are refused. 32..48.
	InputAddrBits uint
	// OutputAddrBits is MAXPHYADDR (or the IOMMU's host address width; 0
	// means 52): pages and tables at or above 2^OutputAddrBits are
	// refused, as their entries would set reserved bits. 32..52.
	OutputAddrBits uint
	// PageSizes are the page sizes the hardware supports and the tables
	// may use (4 KiB always): EPT, IA32_VMX_EPT_VPID_CAP bits 16 and 17
	// (SDM Vol. 3D A.10); NPT, 2 MiB always and 1 GiB with CPUID
	// 80000001h EDX[26]; VT-d, CAP_REG.SLLPS (VT-d spec 11.4.2); AMD-Vi,
	// all.
	PageSizes PageSizes
	// OnInvalidate, if set, is called at the end of an operation that
	// changed or removed present translations, with the range covering
	// them, and must return only when no processor or IOMMU can use the
	// old translations or the old tables any more. Without it the caller
	// must invalidate after each operation itself and its Allocator must
	// not reuse freed tables before that.
	OnInvalidate func(gpa, size uint64)
	// InvalidateNewMappings also reports ranges that went from not
	// present to present: VT-d units with CAP_REG.CM = 1 (caching mode,
	// VT-d spec 6.1, as emulated IOMMUs report) may cache not-present
	// entries.
	InvalidateNewMappings bool
}

// Tables is one 4-level translation-table tree.
type Tables struct {
	mem    Memory
	alloc  Allocator
	f      Format
	sizes  PageSizes
	root   uint64
	inLim  uint64 // 2^InputAddrBits
	outLim uint64 // 2^OutputAddrBits
	tables int    // table pages in the tree, the root included

	onInvalidate func(gpa, size uint64)
	invalNew     bool

	// Per operation: the range whose translations changed, and table
	// subtrees detached from the tree, to be freed after invalidation.
	invLo, invHi uint64
	detached     [maxDetached]detachedTable
	nDetached    int
}

// maxDetached bounds the subtrees an operation holds before it invalidates
// early and frees them: most operations detach one or two.
const maxDetached = 16

type detachedTable struct {
	page  uint64
	level int
}

// New allocates a root table and returns empty Tables.
func New(mem Memory, alloc Allocator, cfg Config) (*Tables, error) {
	t, err := newTables(mem, alloc, cfg)
	if err != nil {
		return nil, err
	}
	if t.root, err = t.newTable(); err != nil {
		return nil, err
	}
	return t, nil
}

// NewAt returns empty Tables whose root is the page at root, which it
// clears: never pass the root of tables in use. The root is never given to
// the Allocator.
func NewAt(mem Memory, alloc Allocator, root uint64, cfg Config) (*Tables, error) {
	t, err := newTables(mem, alloc, cfg)
	if err != nil {
		return nil, err
	}
	if err := t.checkTablePage(root); err != nil {
		return nil, fmt.Errorf("ept: root table: %w", err)
	}
	t.root = root
	t.clear(root)
	t.tables = 1
	return t, nil
}

func newTables(mem Memory, alloc Allocator, cfg Config) (*Tables, error) {
	if mem == nil || alloc == nil {
		return nil, errors.New("ept: nil Memory or Allocator")
	}
	if cfg.Format == nil {
		return nil, errors.New("ept: Config.Format is nil")
	}
	in, out := cfg.InputAddrBits, cfg.OutputAddrBits
	if in == 0 {
		in = MaxInputAddrBits
	}
	if out == 0 {
		out = MaxOutputAddrBits
	}
	if in < 32 || in > MaxInputAddrBits {
		return nil, fmt.Errorf("ept: input address width of %d bits is outside 32..%d (4 levels)", in, MaxInputAddrBits)
	}
	if out < 32 || out > MaxOutputAddrBits {
		return nil, fmt.Errorf("ept: output address width of %d bits is outside 32..%d", out, MaxOutputAddrBits)
	}
	return &Tables{
		mem: mem, alloc: alloc, f: cfg.Format,
		sizes:        cfg.PageSizes&AllPageSizes | Pages4K,
		inLim:        1 << in,
		outLim:       1 << out,
		onInvalidate: cfg.OnInvalidate,
		invalNew:     cfg.InvalidateNewMappings,
	}, nil
}

// Root is the physical address of the root table: CR3 for the Host format,
// N_CR3 for NPT (AMD APM Vol. 2 15.25, Appendix B), the second-stage pointer
// for the IOMMUs.
func (t *Tables) Root() uint64 { return t.root }

// EPTP is the VMCS EPT pointer for EPT-format tables (Intel SDM Vol. 3C
// 25.6.11): the root, paging structures read write-back (allowed when
// IA32_VMX_EPT_VPID_CAP bit 14 is set), a 4-level walk, and accessed and
// dirty flags when accessedDirty (which needs that MSR's bit 21). It is 0,
// which VM entry refuses, for tables of another format.
func (t *Tables) EPTP(accessedDirty bool) uint64 {
	if _, ok := t.f.(EPTFormat); !ok {
		return 0
	}
	p := t.root | eptpMemTypeWB | eptpWalkLength4
	if accessedDirty {
		p |= eptpAccessedDirty
	}
	return p
}

// Format is the entry format of the tables.
func (t *Tables) Format() Format { return t.f }

// InputLimit is the first address the tables cannot translate.
func (t *Tables) InputLimit() uint64 { return t.inLim }

// TablePages is the number of table pages in the tree, the root included.
func (t *Tables) TablePages() int { return t.tables }

func (t *Tables) checkTablePage(p uint64) error {
	switch {
	case p%TableSize != 0:
		return fmt.Errorf("page %#x is not 4 KiB aligned", p)
	case p == 0:
		return errors.New("page 0 cannot hold a table")
	case p >= t.outLim:
		return fmt.Errorf("page %#x is beyond the output address limit %#x", p, t.outLim)
	}
	return nil
}

func (t *Tables) clear(table uint64) {
	empty := t.f.Empty()
	for i := uint64(0); i < EntriesPerTable; i++ {
		t.mem.Write64(table+8*i, empty)
	}
}

// newTable returns a cleared table page from the Allocator.
func (t *Tables) newTable() (uint64, error) {
	p, err := t.alloc.AllocTable()
	if err != nil {
		return 0, fmt.Errorf("ept: allocating a table page: %w", err)
	}
	if err := t.checkTablePage(p); err != nil {
		return 0, fmt.Errorf("ept: allocator returned a bad table page: %w", err)
	}
	t.clear(p)
	t.tables++
	return p, nil
}

// changed records that the translations of [base, base+span) changed.
func (t *Tables) changed(base, span uint64) {
	if t.invLo == t.invHi {
		t.invLo, t.invHi = base, base+span
		return
	}
	t.invLo = min(t.invLo, base)
	t.invHi = max(t.invHi, base+span)
}

// detach queues the subtree rooted at table (a table at level) for freeing;
// the caller has already overwritten the entry that referenced it and
// recorded the change.
func (t *Tables) detach(table uint64, level int) {
	if t.nDetached == maxDetached {
		t.flush()
	}
	t.detached[t.nDetached] = detachedTable{table, level}
	t.nDetached++
}

// flush invalidates what the operation changed so far, then frees the
// detached subtrees, which no walker can reach any more.
func (t *Tables) flush() {
	if t.invLo != t.invHi && t.onInvalidate != nil {
		t.onInvalidate(t.invLo, t.invHi-t.invLo)
	}
	t.invLo, t.invHi = 0, 0
	for i := 0; i < t.nDetached; i++ {
		d := t.detached[i]
		t.free(d.page, d.level)
	}
	t.nDetached = 0
}

func (t *Tables) free(table uint64, level int) {
	if level > 1 {
		for i := uint64(0); i < EntriesPerTable; i++ {
			e := t.mem.Read64(table + 8*i)
			if t.f.Present(e) && !t.f.IsLeaf(e, level) {
				t.free(t.f.Addr(e, level), level-1)
			}
		}
	}
	t.alloc.FreeTable(table)
	t.tables--
}
