package pagetable

import (
	"fmt"

	"tamavisor/drivers/hw"
)

// Paging-structure entry bits, 4-level paging (Intel SDM Vol. 3A 4.5,
// Tables 4-15 to 4-20; AMD APM Vol. 2 5.3.3 and 5.4.1, Figures 5-18 to
// 5-25). The same bit positions hold at every level, except that bit 7 is PS
// in a PDPTE or PDE but PAT in a PTE, and a PDPTE or PDE that maps a page has
// PAT in bit 12.
const (
	bitPresent  uint64 = 1 << 0  // P
	bitWritable uint64 = 1 << 1  // R/W
	bitUser     uint64 = 1 << 2  // U/S: always 0 here, the map is the supervisor's
	bitPWT      uint64 = 1 << 3  // page-level write-through
	bitPCD      uint64 = 1 << 4  // page-level cache disable
	bitAccessed uint64 = 1 << 5  // A
	bitDirty    uint64 = 1 << 6  // D, in entries that map a page
	bitPageSize uint64 = 1 << 7  // PS, in a PDPTE (1 GiB) or PDE (2 MiB)
	bitGlobal   uint64 = 1 << 8  // G, in entries that map a page (CR4.PGE)
	bitPATLarge uint64 = 1 << 12 // PAT, in a PDPTE or PDE that maps a page
	bitNX       uint64 = 1 << 63 // XD/NX: reserved unless IA32_EFER.NXE = 1

	// addrMask selects bits 51:12, the physical address of a table or of
	// a 4 KiB page; large pages use the upper part of it (leafAddrMask).
	addrMask uint64 = 0x000f_ffff_ffff_f000

	// tableFlags is what an entry that references a table holds besides
	// the address. Access rights are the intersection over the levels
	// (Intel SDM Vol. 3A 4.6), so these grant all and the leaf decides;
	// the table itself is cached write-back (PCD = PWT = 0). A is preset
	// so the processor has no entry to update on a first walk.
	tableFlags = bitPresent | bitWritable | bitAccessed
)

// Page-table geometry: 512 eight-byte entries per 4 KiB table, 9 address bits
// per level (Intel SDM Vol. 3A 4.5.4, Figure 4-8).
const (
	TableSize     = 4096
	entriesPerTab = 512
	levels        = 4
	// LinearLimit is the end of the lower canonical half of the 48-bit
	// linear address space, the most an identity map can cover with
	// 4-level paging (Intel SDM Vol. 3A 3.3.7.1).
	LinearLimit = uint64(1) << 47
	// defaultPhysAddrBits is MAXPHYADDR when CPUID leaf 80000008h is
	// absent (Intel SDM Vol. 3A 4.1.4).
	defaultPhysAddrBits = 36
	maxPhysAddrBits     = 52
)

// levelShift is the number of address bits below the index of a level
// (1: PT, 2: PD, 3: PDPT, 4: PML4).
func levelShift(level int) uint { return 12 + 9*uint(level-1) }

func levelSpan(level int) uint64 { return 1 << levelShift(level) }

func index(addr uint64, level int) uint64 {
	return (addr >> levelShift(level)) & (entriesPerTab - 1)
}

// isLeaf reports whether a present entry at level maps a page.
func isLeaf(e uint64, level int) bool {
	return level == 1 || ((level == 2 || level == 3) && e&bitPageSize != 0)
}

// leafAddrMask selects the page address of a leaf entry at level.
func leafAddrMask(level int) uint64 { return addrMask &^ (levelSpan(level) - 1) }

// PageSize is the size of the page a leaf entry maps.
type PageSize uint64

// The page sizes of 4-level paging.
const (
	Page4K PageSize = 1 << 12
	Page2M PageSize = 1 << 21
	Page1G PageSize = 1 << 30
)

func (s PageSize) String() string {
	switch s {
	case Page4K:
		return "4 KiB"
	case Page2M:
		return "2 MiB"
	case Page1G:
		return "1 GiB"
	}
	return fmt.Sprintf("PageSize(%#x)", uint64(s))
}

// PageSizes is the set of page sizes a mapping may use; 4 KiB pages are
// always allowed, as every aligned range can be mapped with them.
type PageSizes uint8

const (
	Pages4K PageSizes = 1 << iota
	Pages2M
	// Pages1G is honoured only when Config.Pages1G says the processor
	// supports 1 GiB pages.
	Pages1G
	AllPageSizes = Pages4K | Pages2M | Pages1G
)

// CacheType is the memory type a mapping selects through its PWT and PCD
// bits, as the default PAT (IA32_PAT = 0007040600070406h after reset) maps
// them: PAT entry = 4*PAT + 2*PCD + PWT, PA0 = WB, PA1 = WT, PA2 = UC-,
// PA3 = UC (Intel SDM Vol. 3A "Memory Cache Control", "PAT Indexing" and
// table "Selection of PAT Entries with PAT, PCD, and PWT Flags"; AMD APM Vol.
// 2 7.8.2). The PAT bit is never set here. The effective type also depends on
// the MTRRs; UC in the page tables wins over any MTRR type, UC- can be
// turned into WC by an MTRR.
type CacheType uint8

const (
	WriteBack     CacheType = iota // PCD=0 PWT=0: PA0, write-back
	WriteThrough                   // PCD=0 PWT=1: PA1, write-through
	UncachedMinus                  // PCD=1 PWT=0: PA2, UC-
	Uncacheable                    // PCD=1 PWT=1: PA3, strong UC: for MMIO
	numCacheTypes
)

func (c CacheType) String() string {
	switch c {
	case WriteBack:
		return "WB"
	case WriteThrough:
		return "WT"
	case UncachedMinus:
		return "UC-"
	case Uncacheable:
		return "UC"
	}
	return fmt.Sprintf("CacheType(%d)", uint8(c))
}

// Attr is what a mapping allows and how it is cached. The zero Attr is a
// read-only, executable, write-back, non-global page.
type Attr struct {
	Writable bool
	// NoExecute takes effect only with Config.NoExecute (IA32_EFER.NXE);
	// otherwise it is dropped, as bit 63 would be a reserved bit.
	NoExecute bool
	Cache     CacheType
	// Global keeps the translation across CR3 loads when CR4.PGE = 1,
	// which suits an identity map every CPU shares.
	Global bool
}

// leafFlags encodes a into the flag bits of a leaf entry (without PS). A and
// D are preset: nothing here reads them, and presetting them spares the
// processor a locked update of the entry on first access.
func (c *Config) leafFlags(a Attr) uint64 {
	f := bitPresent | bitAccessed | bitDirty
	if a.Writable {
		f |= bitWritable
	}
	if a.NoExecute && c.NoExecute {
		f |= bitNX
	}
	if a.Cache&1 != 0 {
		f |= bitPWT
	}
	if a.Cache&2 != 0 {
		f |= bitPCD
	}
	if a.Global {
		f |= bitGlobal
	}
	return f
}

// decodeAttr is the inverse of leafFlags.
func decodeAttr(e uint64) Attr {
	var a Attr
	a.Writable = e&bitWritable != 0
	a.NoExecute = e&bitNX != 0
	if e&bitPWT != 0 {
		a.Cache |= 1
	}
	if e&bitPCD != 0 {
		a.Cache |= 2
	}
	a.Global = e&bitGlobal != 0
	return a
}

// Config describes what the processor supports and how it will be set up
// when these tables are loaded.
type Config struct {
	// Pages1G: the processor supports 1 GiB pages (CPUID 80000001h
	// EDX[26], "Page1GB"). QEMU's qemu64 model does not.
	Pages1G bool
	// NoExecute: IA32_EFER.NXE (bit 11) is set before these tables are
	// used (CPUID 80000001h EDX[20] says the processor has it). Without it
	// bit 63 of an entry is reserved and faults, so Attr.NoExecute is
	// dropped.
	NoExecute bool
	// PhysAddrBits is MAXPHYADDR (CPUID 80000008h EAX[7:0]); 0 means 36,
	// the value when that leaf is absent. Addresses at or above 2^MAXPHYADDR
	// cannot be mapped: their entries would have reserved bits set.
	PhysAddrBits uint
}

// ConfigFromCPUID reads Pages1G, NoExecute and PhysAddrBits from CPUID
// (Intel SDM Vol. 2A "CPUID" leaves 80000001h and 80000008h; AMD APM Vol. 3
// Appendix E.4.2 and E.4.7). NoExecute reports support only: the caller must
// set IA32_EFER.NXE before loading tables built with it.
func ConfigFromCPUID(cpu hw.CPUID) Config {
	var c Config
	if cpu == nil {
		return c
	}
	maxExt, _, _, _ := cpu.CPUID(0x8000_0000, 0)
	if maxExt >= 0x8000_0001 {
		_, _, _, edx := cpu.CPUID(0x8000_0001, 0)
		c.Pages1G = edx&(1<<26) != 0
		c.NoExecute = edx&(1<<20) != 0
	}
	if maxExt >= 0x8000_0008 {
		eax, _, _, _ := cpu.CPUID(0x8000_0008, 0)
		c.PhysAddrBits = uint(eax & 0xff)
	}
	return c
}

// limit is the first physical address the identity map cannot cover.
func (c *Config) limit() (uint64, error) {
	bits := c.PhysAddrBits
	if bits == 0 {
		bits = defaultPhysAddrBits
	}
	if bits < 32 || bits > maxPhysAddrBits {
		return 0, fmt.Errorf("pagetable: physical address width of %d bits is outside 32..%d", bits, maxPhysAddrBits)
	}
	l := uint64(1) << bits
	if l > LinearLimit {
		l = LinearLimit
	}
	return l, nil
}
