package vtd

// Legacy-mode root and context entries (VT-d spec 9.1 "Root Entry", 9.3
// "Context Entry"): 128 bits each, low quadword first.
const (
	rootPresent = 1 << 0 // root entry bit 0: P; bits 63:12 CTP, the context table

	contextEntrySize = 16
	contextPresent   = 1 << 0 // bit 0: P
	contextFPD       = 1 << 1 // bit 1: fault processing disable (left 0: faults are recorded)
	contextTTShift   = 2      // bits 3:2: TT, 00b = untranslated requests through second-level tables
	contextTTMask    = 3 << contextTTShift
	// Bits 63:12 of the low quadword: SLPTPTR, the second-level table.
	contextAWMask   = 7 // high bits 66:64 (2:0 of the high quadword): AW
	contextDIDShift = 8 // high bits 87:72 (23:8 of the high quadword): DID
)

// contextEntry is a present context entry for a device translated through
// the 4-level tables at root, tagged with domain-id did.
func contextEntry(root uint64, did uint16) (lo, hi uint64) {
	return root&^(pageSize-1) | contextPresent, contextAW48 | uint64(did)<<contextDIDShift
}

// contextDomain is the domain-id of a context entry's high quadword.
func contextDomain(hi uint64) uint16 { return uint16(hi >> contextDIDShift) }
