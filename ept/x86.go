package ept

import "fmt"

// Long-mode paging-structure entry bits, shared by the host's own tables and
// AMD's nested tables (Intel SDM Vol. 3A 4.5, Tables 4-15 to 4-20; AMD APM
// Vol. 2 5.4.1, Figures 5-18 to 5-25). Bit 7 is PS in a PDPTE or PDE but PAT
// in a PTE; this package never sets PAT (bit 7 of a PTE, bit 12 of a large
// page), so the memory type is one of the first four PAT entries.
const (
	x86Present  uint64 = 1 << 0  // P
	x86Writable uint64 = 1 << 1  // R/W
	x86User     uint64 = 1 << 2  // U/S
	x86PWT      uint64 = 1 << 3  // page-level write-through
	x86PCD      uint64 = 1 << 4  // page-level cache disable
	x86Accessed uint64 = 1 << 5  // A
	x86Dirty    uint64 = 1 << 6  // D, in leaves
	x86PageSize uint64 = 1 << 7  // PS, in a PDPTE (1 GiB) or PDE (2 MiB)
	x86Global   uint64 = 1 << 8  // G, in leaves (CR4.PGE)
	x86NX       uint64 = 1 << 63 // XD/NX: reserved unless IA32_EFER.NXE = 1
)

// x86CacheBits encodes mem as PWT and PCD, which select PAT entries 0-3. With
// the power-on PAT (IA32_PAT = 0007040600070406h) those are WB, WT, UC-, UC
// (Intel SDM Vol. 3A "Memory Cache Control", "Selecting a Memory Type from
// the PAT" and Table "Selection of PAT Entries with PAT, PCD, and PWT
// Flags"; AMD APM Vol. 2 7.8.2). The hypervisor keeps that PAT.
func x86CacheBits(mem MemType) (uint64, bool) {
	switch mem {
	case WB:
		return 0, true
	case WT:
		return x86PWT, true
	case UCMinus:
		return x86PCD, true
	case UC:
		return x86PCD | x86PWT, true
	}
	return 0, false
}

func x86MemType(e uint64) MemType {
	switch e & (x86PCD | x86PWT) {
	case x86PWT:
		return WT
	case x86PCD:
		return UCMinus
	case x86PCD | x86PWT:
		return UC
	}
	return WB
}

func x86IsLeaf(e uint64, level int) bool {
	return level == 1 || ((level == 2 || level == 3) && e&x86PageSize != 0)
}

func x86LeafAddr(e uint64, level int) uint64 {
	if x86IsLeaf(e, level) {
		return e & addrMask &^ (LevelSpan(level) - 1)
	}
	return e & addrMask
}

// HostFormat is x86-64 4-level paging for the hypervisor's own address space
// (CR3). Table entries are P|R/W|A (A preset so the first walk need not
// write it); leaves preset A and D, as nothing reads them here and the
// processor is spared a locked update.
type HostFormat struct {
	// NoExecute: IA32_EFER.NXE is set, so bit 63 means NX. Without it bit
	// 63 is reserved, every leaf is executable, and a missing Execute in
	// a Perm is ignored (AMD APM Vol. 2 5.6; Intel SDM Vol. 3A 4.6).
	NoExecute bool
	// User sets U/S in table entries, so that leaves with Perm User are
	// reachable from CPL 3. Without it User is refused.
	User bool
}

func (f HostFormat) String() string { return "host" }

func (f HostFormat) Check(perm Perm, mem MemType) error {
	if perm&Read == 0 {
		return fmt.Errorf("host format: permission %v: a present page is always readable, Read is required", perm)
	}
	if perm&User != 0 && !f.User {
		return fmt.Errorf("host format: permission %v: User pages need HostFormat.User (U/S in table entries)", perm)
	}
	if perm&^(RWX|User|Global) != 0 {
		return fmt.Errorf("host format: unknown permission bits in %v", perm)
	}
	if _, ok := x86CacheBits(mem); !ok {
		return fmt.Errorf("host format: memory type %v is not one of WB, WT, UC-, UC (PAT entries 0-3)", mem)
	}
	return nil
}

func (f HostFormat) Empty() uint64 { return 0 }

func (f HostFormat) Table(table uint64, level int) uint64 {
	e := table | x86Present | x86Writable | x86Accessed
	if f.User {
		e |= x86User
	}
	return e
}

func (f HostFormat) Leaf(page uint64, level int, perm Perm, mem MemType) uint64 {
	cache, _ := x86CacheBits(mem)
	e := page | x86Present | x86Accessed | x86Dirty | cache
	if perm&Write != 0 {
		e |= x86Writable
	}
	if perm&User != 0 {
		e |= x86User
	}
	if perm&Global != 0 {
		e |= x86Global
	}
	if perm&Execute == 0 && f.NoExecute {
		e |= x86NX
	}
	if level > 1 {
		e |= x86PageSize
	}
	return e
}

func (f HostFormat) Present(e uint64) bool           { return e&x86Present != 0 }
func (f HostFormat) IsLeaf(e uint64, level int) bool { return x86IsLeaf(e, level) }
func (f HostFormat) Addr(e uint64, level int) uint64 { return x86LeafAddr(e, level) }
func (f HostFormat) MemType(e uint64) MemType        { return x86MemType(e) }
func (f HostFormat) AccessedDirty() (uint64, uint64) { return x86Accessed, x86Dirty }

func (f HostFormat) Perm(e uint64) Perm {
	p := Read
	if e&x86Writable != 0 {
		p |= Write
	}
	if e&x86NX == 0 {
		p |= Execute
	}
	if e&x86User != 0 {
		p |= User
	}
	if e&x86Global != 0 {
		p |= Global
	}
	return p
}

// NPTFormat is AMD's nested page tables: the long-mode format, walked with
// the host's PAT and EFER.NXE, translating guest-physical to host-physical
// addresses (AMD APM Vol. 2 15.25, 15.25.5 "Nested Table Walk"). Nested
// walks are user accesses, so every entry has U/S set (a leaf without it
// faults every guest access) and table entries have P|R/W|U/S. The root goes
// in the VMCB's N_CR3 field (APM Vol. 2 15.25, Appendix B). A and D are left
// to the processor, for dirty tracking.
type NPTFormat struct {
	// NoExecute: the host's IA32_EFER.NXE is set, so bit 63 means NX in
	// nested entries (APM Vol. 2 15.25.5). Without it every page is
	// executable and a missing Execute is ignored.
	NoExecute bool
}

func (f NPTFormat) String() string { return "NPT" }

func (f NPTFormat) Check(perm Perm, mem MemType) error {
	if perm&Read == 0 {
		return fmt.Errorf("NPT format: permission %v: nested pages are always readable, Read is required", perm)
	}
	if perm&^RWX != 0 {
		return fmt.Errorf("NPT format: permission %v: only R, W and X exist in nested tables", perm)
	}
	if _, ok := x86CacheBits(mem); !ok {
		return fmt.Errorf("NPT format: memory type %v is not one of WB, WT, UC-, UC (host PAT entries 0-3)", mem)
	}
	return nil
}

func (f NPTFormat) Empty() uint64 { return 0 }

func (f NPTFormat) Table(table uint64, level int) uint64 {
	return table | x86Present | x86Writable | x86User
}

func (f NPTFormat) Leaf(page uint64, level int, perm Perm, mem MemType) uint64 {
	cache, _ := x86CacheBits(mem)
	e := page | x86Present | x86User | cache
	if perm&Write != 0 {
		e |= x86Writable
	}
	if perm&Execute == 0 && f.NoExecute {
		e |= x86NX
	}
	if level > 1 {
		e |= x86PageSize
	}
	return e
}

func (f NPTFormat) Present(e uint64) bool           { return e&x86Present != 0 }
func (f NPTFormat) IsLeaf(e uint64, level int) bool { return x86IsLeaf(e, level) }
func (f NPTFormat) Addr(e uint64, level int) uint64 { return x86LeafAddr(e, level) }
func (f NPTFormat) MemType(e uint64) MemType        { return x86MemType(e) }
func (f NPTFormat) AccessedDirty() (uint64, uint64) { return x86Accessed, x86Dirty }

func (f NPTFormat) Perm(e uint64) Perm {
	p := Read
	if e&x86Writable != 0 {
		p |= Write
	}
	if e&x86NX == 0 {
		p |= Execute
	}
	return p
}
