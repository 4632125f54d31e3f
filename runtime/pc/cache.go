//go:build tamago

package pc

// cacheLine is the CLFLUSH line size every x86-64 processor reports in
// CPUID leaf 1 EBX[15:8] (8 x 8 = 64 bytes on all of them to date); a
// smaller stride would only flush lines twice.
const cacheLine = 64

// FlushCache writes the cache lines covering [addr, addr+size) back to
// memory, for a device whose reads do not snoop the processor caches (a
// VT-d unit with ECAP_REG.C = 0 walking its tables: VT-d spec 6.2.7).
// Intel SDM Vol. 2A, CLFLUSH: ordered by MFENCE.
func FlushCache(addr, size uint64) {
	if size == 0 {
		return
	}
	for line := addr &^ (cacheLine - 1); line < addr+size; line += cacheLine {
		clflush(line)
	}
	mfence()
}

// func clflush(addr uint64)
func clflush(addr uint64)

// func mfence()
func mfence()
