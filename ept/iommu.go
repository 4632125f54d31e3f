package ept

import "fmt"

// VT-d second-stage paging-entry bits (Intel VT-d spec 3.x 9.8
// "Second-Stage Paging Entries"). Bits 5:3 (EMT) and 6 (IPAT) matter only
// in scalable mode with an extended memory type enabled, and are left 0.
const (
	vtdRead     uint64 = 1 << 0  // R
	vtdWrite    uint64 = 1 << 1  // W
	vtdPageSize uint64 = 1 << 7  // PS, in an SS-PDPE (1 GiB) or SS-PDE (2 MiB)
	vtdAccessed uint64 = 1 << 8  // A, when second-stage A/D is enabled (scalable mode)
	vtdDirty    uint64 = 1 << 9  // D, in leaves, likewise
	vtdSnoop    uint64 = 1 << 11 // SNP, in leaves: force snooped DMA
)

// VTdFormat is Intel VT-d second-stage translation for DMA remapping (VT-d
// spec 3.x 3.7, 9.8). Table entries grant R|W; a leaf grants Read and/or
// Write (write-only is allowed for DMA). The memory type of DMA follows the
// device's snoop attribute, not the entry, so only WB is accepted; use Snoop
// to force coherence. The root goes in the context entry (legacy mode) or
// PASID-table entry (scalable mode) with AW = 010b (48-bit, 4-level).
type VTdFormat struct {
	// Snoop sets SNP in leaves so that DMA snoops the processor caches
	// even when the device asks not to; needs ECAP_REG.SC (VT-d spec
	// 11.4.3).
	Snoop bool
}

func (f VTdFormat) String() string { return "VT-d" }

func (f VTdFormat) Check(perm Perm, mem MemType) error {
	return checkIOMMU("VT-d format", "DMA remapping has only R and W",
		"second-stage entries select none (DMA coherence follows snooping)", perm, mem)
}

// checkIOMMU is the rule both IOMMU formats share: read/write permissions
// only, and no memory type in the entry.
func checkIOMMU(format, permRule, memRule string, perm Perm, mem MemType) error {
	if perm&^RW != 0 {
		return fmt.Errorf("%s: permission %v: %s", format, perm, permRule)
	}
	if mem != WB {
		return fmt.Errorf("%s: memory type %v: %s, use WB", format, mem, memRule)
	}
	return nil
}

func (f VTdFormat) Empty() uint64 { return 0 }

func (f VTdFormat) Table(table uint64, level int) uint64 {
	return table | vtdRead | vtdWrite
}

func (f VTdFormat) Leaf(page uint64, level int, perm Perm, mem MemType) uint64 {
	e := page
	if perm&Read != 0 {
		e |= vtdRead
	}
	if perm&Write != 0 {
		e |= vtdWrite
	}
	if f.Snoop {
		e |= vtdSnoop
	}
	if level > 1 {
		e |= vtdPageSize
	}
	return e
}

// Present reports whether R or W is set: a second-stage entry with neither
// is not present (VT-d 9.8).
func (f VTdFormat) Present(e uint64) bool { return e&(vtdRead|vtdWrite) != 0 }

func (f VTdFormat) IsLeaf(e uint64, level int) bool {
	return level == 1 || ((level == 2 || level == 3) && e&vtdPageSize != 0)
}

func (f VTdFormat) Addr(e uint64, level int) uint64 {
	if f.IsLeaf(e, level) {
		return e & addrMask &^ (LevelSpan(level) - 1)
	}
	return e & addrMask
}

func (f VTdFormat) Perm(e uint64) Perm {
	var p Perm
	if e&vtdRead != 0 {
		p |= Read
	}
	if e&vtdWrite != 0 {
		p |= Write
	}
	return p
}

func (f VTdFormat) MemType(e uint64) MemType        { return WB }
func (f VTdFormat) AccessedDirty() (uint64, uint64) { return vtdAccessed, vtdDirty }

// AMD-Vi I/O page-table entry bits (AMD IOMMU spec 2.2.3 "I/O Page Tables
// for Host Translations", PDE and PTE figures).
const (
	amdviPresent        uint64 = 1 << 0 // PR
	amdviAccessed       uint64 = 1 << 5 // A, when the DTE's HAD field enables it
	amdviDirty          uint64 = 1 << 6 // D, in leaves, likewise
	amdviNextLevelShift        = 9      // bits 11:9: level of the next table
	amdviNextLevelMask  uint64 = 7 << amdviNextLevelShift
	// amdviNextLevelSized marks a leaf whose page size is encoded in the
	// low address bits. This package writes default-size leaves (next
	// level 0: the page is as large as the entry's span) and reads the
	// sized encoding only as a leaf.
	amdviNextLevelSized        = 7
	amdviForceCoherent  uint64 = 1 << 60 // FC: force coherent (snooped) DMA
	amdviRead           uint64 = 1 << 61 // IR
	amdviWrite          uint64 = 1 << 62 // IW
)

// AMDViFormat is the AMD IOMMU's host-translation page tables (AMD IOMMU
// spec 2.2.3), used with the device table entry's Mode = 4 (4 levels). The
// format can skip levels; this package always uses all four. Table entries
// grant IR|IW and name the next table's level; leaves have next level 0.
// Only WB is accepted, as with VT-d.
type AMDViFormat struct {
	// ForceCoherent sets FC in leaves, the counterpart of VT-d's SNP.
	ForceCoherent bool
}

func (f AMDViFormat) String() string { return "AMD-Vi" }

func (f AMDViFormat) Check(perm Perm, mem MemType) error {
	return checkIOMMU("AMD-Vi format", "I/O page tables have only IR and IW",
		"I/O page tables select none (DMA coherence follows FC)", perm, mem)
}

func (f AMDViFormat) Empty() uint64 { return 0 }

func (f AMDViFormat) Table(table uint64, level int) uint64 {
	return table | amdviPresent | uint64(level-1)<<amdviNextLevelShift | amdviRead | amdviWrite
}

func (f AMDViFormat) Leaf(page uint64, level int, perm Perm, mem MemType) uint64 {
	e := page | amdviPresent
	if perm&Read != 0 {
		e |= amdviRead
	}
	if perm&Write != 0 {
		e |= amdviWrite
	}
	if f.ForceCoherent {
		e |= amdviForceCoherent
	}
	return e
}

func (f AMDViFormat) Present(e uint64) bool { return e&amdviPresent != 0 }

func (f AMDViFormat) IsLeaf(e uint64, level int) bool {
	next := (e & amdviNextLevelMask) >> amdviNextLevelShift
	return level == 1 || next == 0 || next == amdviNextLevelSized
}

func (f AMDViFormat) Addr(e uint64, level int) uint64 {
	if f.IsLeaf(e, level) {
		return e & addrMask &^ (LevelSpan(level) - 1)
	}
	return e & addrMask
}

func (f AMDViFormat) Perm(e uint64) Perm {
	var p Perm
	if e&amdviRead != 0 {
		p |= Read
	}
	if e&amdviWrite != 0 {
		p |= Write
	}
	return p
}

func (f AMDViFormat) MemType(e uint64) MemType        { return WB }
func (f AMDViFormat) AccessedDirty() (uint64, uint64) { return amdviAccessed, amdviDirty }
