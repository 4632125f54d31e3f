package ept

import (
	"fmt"
	"strings"
)

// Radix geometry shared by every format: 4 KiB tables of 512 eight-byte
// entries, 9 address bits per level, 4 levels (Intel SDM Vol. 3A 4.5.4 and
// Vol. 3C 29.3.2; AMD APM Vol. 2 5.3; VT-d spec 3.x 3.7; AMD IOMMU spec
// 2.2.3). Level 1 is the page table (4 KiB pages), 2 the page directory
// (2 MiB), 3 the page-directory-pointer table (1 GiB), 4 the root (PML4).
const (
	TableSize       = 4096
	EntriesPerTable = 512
	Levels          = 4
	// MaxInputAddrBits is the width 4 levels translate: 12 + 4*9.
	MaxInputAddrBits = 48
	// MaxOutputAddrBits is the architectural limit of MAXPHYADDR (Intel
	// SDM Vol. 3A 4.1.4; AMD APM Vol. 2 5.3): bits 51:12 of an entry.
	MaxOutputAddrBits = 52
)

// Page sizes a leaf entry maps at levels 1, 2 and 3.
const (
	Size4K uint64 = 1 << 12
	Size2M uint64 = 1 << 21
	Size1G uint64 = 1 << 30
)

// addrMask selects bits 51:12 of an entry: the address of a table or page in
// every format.
const addrMask uint64 = 0x000f_ffff_ffff_f000

// LevelSpan is the size of the address range one entry at level covers.
func LevelSpan(level int) uint64 { return 1 << (12 + 9*uint(level-1)) }

// Index is the entry that translates addr in a table at level.
func Index(addr uint64, level int) uint64 {
	return (addr >> (12 + 9*uint(level-1))) & (EntriesPerTable - 1)
}

// PageSizes is a set of page sizes. 4 KiB pages are always allowed: every
// aligned range can be mapped with them.
type PageSizes uint8

const (
	Pages4K PageSizes = 1 << iota
	Pages2M
	Pages1G
	AllPageSizes = Pages4K | Pages2M | Pages1G
)

// allows reports whether a leaf entry at level may be written.
func (s PageSizes) allows(level int) bool {
	switch level {
	case 1:
		return true
	case 2:
		return s&Pages2M != 0
	case 3:
		return s&Pages1G != 0
	}
	return false
}

// Perm is what a mapping allows. Read is implied by presence in the x86
// formats (Host, NPT), which cannot express write-only or execute-only
// pages; the IOMMU formats have no execute permission (DMA fetches no
// instructions). User and Global exist only in the Host format.
type Perm uint8

const (
	Read Perm = 1 << iota
	Write
	Execute
	// User grants CPL 3 access (U/S) in the Host format.
	User
	// Global keeps a Host-format translation across CR3 loads when
	// CR4.PGE = 1 (Intel SDM Vol. 3A 4.10.2.4). Not an access right, but
	// a property of the leaf like the others here.
	Global

	RW  = Read | Write
	RX  = Read | Execute
	RWX = Read | Write | Execute
)

func (p Perm) String() string {
	if p == 0 {
		return "none"
	}
	var b strings.Builder
	for i, name := range []string{"R", "W", "X", "U", "G"} {
		if p&(1<<i) != 0 {
			b.WriteString(name)
		}
	}
	if p >= 1<<5 {
		fmt.Fprintf(&b, "+%#x", uint8(p&^(1<<5-1)))
	}
	return b.String()
}

// MemType is the memory type a leaf selects. The zero value is write-back,
// what RAM uses; MMIO is UC. Which types a format expresses, and how, is
// the format's business (see each Format).
type MemType uint8

const (
	WB      MemType = iota // write-back
	UC                     // strong uncacheable
	WT                     // write-through
	WC                     // write-combining (EPT only)
	WP                     // write-protected (EPT only)
	UCMinus                // UC-, which an MTRR may turn into WC (Host, NPT only)
	numMemTypes
)

func (m MemType) String() string {
	switch m {
	case WB:
		return "WB"
	case UC:
		return "UC"
	case WT:
		return "WT"
	case WC:
		return "WC"
	case WP:
		return "WP"
	case UCMinus:
		return "UC-"
	}
	return fmt.Sprintf("MemType(%d)", uint8(m))
}

// Format is one layout of translation-table entries. All formats share the
// radix geometry above; they differ in how an entry says "present", "leaf",
// which permissions and memory type it grants, and where hardware records
// accesses. Levels are numbered as above (1 = 4 KiB leaves).
//
// The implementations are small values (HostFormat, NPTFormat, EPTFormat,
// VTdFormat, AMDViFormat) whose fields describe what the hardware supports.
type Format interface {
	String() string
	// Check reports whether a leaf can grant perm with memory type mem.
	// perm is not empty; the engine rejects an empty one itself.
	Check(perm Perm, mem MemType) error
	// Empty is the value of a not-present entry; fresh tables are filled
	// with it.
	Empty() uint64
	// Table is an entry at level that references the table at address
	// table (at level-1). It grants every permission: access rights are
	// the intersection over the levels, so the leaf decides.
	Table(table uint64, level int) uint64
	// Leaf is an entry at level mapping the page at address page, which
	// is aligned to LevelSpan(level). perm and mem passed Check. Accessed
	// and dirty bits are left as the format presets them.
	Leaf(page uint64, level int, perm Perm, mem MemType) uint64
	Present(e uint64) bool
	// IsLeaf reports whether present entry e at level maps a page.
	IsLeaf(e uint64, level int) bool
	// Addr is the table address of a table entry or the page address of
	// a leaf entry at level.
	Addr(e uint64, level int) uint64
	// Perm and MemType decode a leaf entry.
	Perm(e uint64) Perm
	MemType(e uint64) MemType
	// AccessedDirty gives the bits hardware sets in a leaf on access and
	// on write.
	AccessedDirty() (accessed, dirty uint64)
}
