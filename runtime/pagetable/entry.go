package pagetable

import (
	"fmt"

	"tamavisor/drivers/hw"
	"tamavisor/ept"
)

// Page-table geometry (Intel SDM Vol. 3A 4.5.4, Figure 4-8): the tables
// themselves are built by tamavisor/ept with its Host format.
const (
	TableSize = ept.TableSize
	// LinearLimit is the end of the lower canonical half of the 48-bit
	// linear address space, the most an identity map can cover with
	// 4-level paging (Intel SDM Vol. 3A 3.3.7.1).
	LinearLimit = uint64(1) << 47
	// defaultPhysAddrBits is MAXPHYADDR when CPUID leaf 80000008h is
	// absent (Intel SDM Vol. 3A 4.1.4).
	defaultPhysAddrBits = 36
	maxPhysAddrBits     = 52
	linearAddrBits      = 47
)

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

// perm is what a leaf with attributes a grants, in the engine's terms. A
// page is always readable. Without Config.NoExecute the Host format ignores
// a missing Execute, as bit 63 would be reserved.
func (a Attr) perm() ept.Perm {
	p := ept.Read
	if a.Writable {
		p |= ept.Write
	}
	if !a.NoExecute {
		p |= ept.Execute
	}
	if a.Global {
		p |= ept.Global
	}
	return p
}

// memTypes maps each CacheType to the engine's MemType; the Host format
// encodes them as the same PCD and PWT bits.
var memTypes = [numCacheTypes]ept.MemType{
	WriteBack:     ept.WB,
	WriteThrough:  ept.WT,
	UncachedMinus: ept.UCMinus,
	Uncacheable:   ept.UC,
}

func cacheType(m ept.MemType) CacheType {
	for c, mt := range memTypes {
		if mt == m {
			return CacheType(c)
		}
	}
	return Uncacheable // not written by this package
}

// attrOf is the inverse of perm and memTypes.
func attrOf(m ept.Mapping) Attr {
	return Attr{
		Writable:  m.Perm&ept.Write != 0,
		NoExecute: m.Perm&ept.Execute == 0,
		Cache:     cacheType(m.Mem),
		Global:    m.Perm&ept.Global != 0,
	}
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

// addrBits is the width of the identity map: MAXPHYADDR, at most the 47
// bits of the lower canonical half.
func (c *Config) addrBits() (uint, error) {
	bits := c.PhysAddrBits
	if bits == 0 {
		bits = defaultPhysAddrBits
	}
	if bits < 32 || bits > maxPhysAddrBits {
		return 0, fmt.Errorf("pagetable: physical address width of %d bits is outside 32..%d", bits, maxPhysAddrBits)
	}
	return min(bits, linearAddrBits), nil
}

// pageSizes are the sizes a mapping may use given the processor and the
// caller's choice.
func (c *Config) pageSizes(sizes PageSizes) ept.PageSizes {
	s := ept.Pages4K
	if sizes&Pages2M != 0 {
		s |= ept.Pages2M
	}
	if sizes&Pages1G != 0 && c.Pages1G {
		s |= ept.Pages1G
	}
	return s
}
