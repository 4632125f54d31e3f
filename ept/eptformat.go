package ept

import "fmt"

// EPT paging-structure entry bits (Intel SDM Vol. 3C 29.3.2, Tables 29-1 to
// 29-6).
const (
	eptRead      uint64 = 1 << 0 // R
	eptWrite     uint64 = 1 << 1 // W
	eptExecute   uint64 = 1 << 2 // X (supervisor-mode execute with MBEC)
	eptMemShift         = 3      // bits 5:3: EPT memory type, in leaves
	eptMemMask   uint64 = 7 << eptMemShift
	eptIgnorePAT uint64 = 1 << 6 // IPAT, in leaves
	eptPageSize  uint64 = 1 << 7 // PS, in a PDPTE (1 GiB) or PDE (2 MiB)
	eptAccessed  uint64 = 1 << 8 // A, when EPTP bit 6 enables A/D (29.3.5)
	eptDirty     uint64 = 1 << 9 // D, in leaves, likewise
	// eptSuppressVE is bit 63: an EPT violation through an entry (a leaf,
	// or any not-present entry) with this bit clear becomes a #VE in the
	// guest when the "EPT-violation #VE" control is 1 (Intel SDM Vol. 3C
	// 26.5.7.1, "Convertible EPT Violations").
	eptSuppressVE uint64 = 1 << 63
)

// EPT memory types, bits 5:3 of a leaf (Intel SDM Vol. 3C 29.3.7 "EPT and
// Memory Typing"); the values are those of the MTRRs (Vol. 3A, "Memory
// Types That Can Be Encoded in MTRRs").
const (
	eptTypeUC = 0
	eptTypeWC = 1
	eptTypeWT = 4
	eptTypeWP = 5
	eptTypeWB = 6
)

// EPTP fields (Intel SDM Vol. 3C 25.6.11 "Extended-Page-Table Pointer
// (EPTP)").
const (
	eptpMemTypeWB     = eptTypeWB         // bits 2:0: memory type of EPT paging-structure accesses
	eptpWalkLength4   = (Levels - 1) << 3 // bits 5:3: page-walk length minus 1
	eptpAccessedDirty = 1 << 6            // bit 6: enable accessed and dirty flags
)

// EPTFormat is Intel's extended page tables, translating guest-physical to
// host-physical addresses (Intel SDM Vol. 3C 29.3). Table entries grant
// R|W|X; leaves carry the memory type, with ignore-PAT set for WB so that
// guest RAM stays write-back, as the host and snooped DMA see it, whatever
// the guest's PAT says; with the other types the guest's PAT combines with
// the EPT type (29.3.7.2). A and D are left to the processor, for dirty
// tracking.
type EPTFormat struct {
	// ExecuteOnly: IA32_VMX_EPT_VPID_CAP bit 0 (SDM Vol. 3D A.10), so a
	// leaf may grant X without R. Otherwise that is a misconfiguration
	// (29.3.3.1) and Check refuses it.
	ExecuteOnly bool
	// SuppressVE sets bit 63 in leaves and in not-present entries, so
	// that EPT violations stay VM exits when the "EPT-violation #VE"
	// control is 1.
	SuppressVE bool
}

func (f EPTFormat) String() string { return "EPT" }

func (f EPTFormat) Check(perm Perm, mem MemType) error {
	if perm&^RWX != 0 {
		return fmt.Errorf("EPT format: permission %v: only R, W and X exist in EPT", perm)
	}
	if perm&Write != 0 && perm&Read == 0 {
		return fmt.Errorf("EPT format: permission %v: write without read is an EPT misconfiguration (SDM Vol. 3C 29.3.3.1)", perm)
	}
	if perm == Execute && !f.ExecuteOnly {
		return fmt.Errorf("EPT format: permission %v: execute-only pages need IA32_VMX_EPT_VPID_CAP bit 0", perm)
	}
	if _, ok := eptMemType(mem); !ok {
		return fmt.Errorf("EPT format: memory type %v is not one of UC, WC, WT, WP, WB", mem)
	}
	return nil
}

func eptMemType(mem MemType) (uint64, bool) {
	switch mem {
	case UC:
		return eptTypeUC, true
	case WC:
		return eptTypeWC, true
	case WT:
		return eptTypeWT, true
	case WP:
		return eptTypeWP, true
	case WB:
		return eptTypeWB, true
	}
	return 0, false
}

func (f EPTFormat) Empty() uint64 {
	if f.SuppressVE {
		return eptSuppressVE
	}
	return 0
}

func (f EPTFormat) Table(table uint64, level int) uint64 {
	return table | eptRead | eptWrite | eptExecute
}

func (f EPTFormat) Leaf(page uint64, level int, perm Perm, mem MemType) uint64 {
	t, _ := eptMemType(mem)
	e := page | t<<eptMemShift
	if mem == WB {
		e |= eptIgnorePAT
	}
	if perm&Read != 0 {
		e |= eptRead
	}
	if perm&Write != 0 {
		e |= eptWrite
	}
	if perm&Execute != 0 {
		e |= eptExecute
	}
	if level > 1 {
		e |= eptPageSize
	}
	if f.SuppressVE {
		e |= eptSuppressVE
	}
	return e
}

// Present reports whether any of bits 2:0 is set, which makes an EPT entry
// present (29.3.2).
func (f EPTFormat) Present(e uint64) bool { return e&(eptRead|eptWrite|eptExecute) != 0 }

func (f EPTFormat) IsLeaf(e uint64, level int) bool {
	return level == 1 || ((level == 2 || level == 3) && e&eptPageSize != 0)
}

func (f EPTFormat) Addr(e uint64, level int) uint64 {
	if f.IsLeaf(e, level) {
		return e & addrMask &^ (LevelSpan(level) - 1)
	}
	return e & addrMask
}

func (f EPTFormat) Perm(e uint64) Perm {
	var p Perm
	if e&eptRead != 0 {
		p |= Read
	}
	if e&eptWrite != 0 {
		p |= Write
	}
	if e&eptExecute != 0 {
		p |= Execute
	}
	return p
}

func (f EPTFormat) MemType(e uint64) MemType {
	switch (e & eptMemMask) >> eptMemShift {
	case eptTypeWC:
		return WC
	case eptTypeWT:
		return WT
	case eptTypeWP:
		return WP
	case eptTypeWB:
		return WB
	}
	return UC // 0, and the reserved encodings 2, 3 and 7
}

func (f EPTFormat) AccessedDirty() (uint64, uint64) { return eptAccessed, eptDirty }
