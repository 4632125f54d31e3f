package pagetable

// The x86-64 4-level paging layout, for the tests that check the tables bit
// by bit (Intel SDM Vol. 3A 4.5, Tables 4-15 to 4-20; 4.5.4, Figure 4-8).
// Written out from the manual here, not taken from tamavisor/ept, which
// builds the tables.
const (
	bitPresent  uint64 = 1 << 0
	bitUser     uint64 = 1 << 2
	bitPageSize uint64 = 1 << 7 // in a PDPTE or PDE
	bitNX       uint64 = 1 << 63
	addrMask    uint64 = 0x000f_ffff_ffff_f000 // bits 51:12

	levels        = 4
	entriesPerTab = 512
)

func index(addr uint64, level int) uint64 {
	return (addr >> (12 + 9*uint(level-1))) & (entriesPerTab - 1)
}

func isLeaf(e uint64, level int) bool {
	return level == 1 || ((level == 2 || level == 3) && e&bitPageSize != 0)
}
