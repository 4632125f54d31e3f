//go:build tamago

package pc

import (
	"fmt"
	"unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/runtime/pagetable"
)

// defined in paging_amd64.s
func writeCR3(root uint64)

// tablePages hands out zeroed, 4 KiB-aligned pages from the Go heap for the
// host page tables. Host tables are never freed, and the Go heap never moves
// objects, so keeping every chunk referenced here is all it takes for the
// physical address (identity map) to stay valid.
type tablePages struct {
	chunks [][]byte
	free   []uint64
}

const tableChunkPages = 64

func (a *tablePages) AllocTable() (uint64, error) {
	if len(a.free) == 0 {
		chunk := make([]byte, (tableChunkPages+1)*4096)
		a.chunks = append(a.chunks, chunk)
		base := (uint64(uintptr(unsafe.Pointer(&chunk[0]))) + 4095) &^ 4095
		for i := uint64(0); i < tableChunkPages; i++ {
			a.free = append(a.free, base+i*4096)
		}
	}
	p := a.free[0]
	a.free = a.free[1:]
	return p, nil
}

var (
	hostTables     *pagetable.Tables
	hostTablePages tablePages
)

// InstallHostPageTables replaces the boot-time identity map (entry_amd64.s,
// or the UEFI firmware's) with one built from the machine's memory map:
// RAM write-back, everything else uncacheable and not executable, page 0
// unmapped so nil dereferences fault. The root is then copied to the fixed
// page hostPML4, where the AP start-up trampoline finds it.
func InstallHostPageTables(regions []pagetable.Region, minReach uint64) (pagetable.Stats, error) {
	cfg := pagetable.ConfigFromCPUID(&machine)
	// No NX bits: application processors come up through TamaGo's
	// trampoline, which does not set EFER.NXE, and an NX bit in a table
	// they walk would be a reserved-bit fault. Our own trampoline, setting
	// NXE before loading CR3, is what lifts this.
	cfg.NoExecute = false
	t, err := pagetable.New(&machine, &hostTablePages, cfg)
	if err != nil {
		return pagetable.Stats{}, err
	}
	stats, err := pagetable.BuildHostMap(t, regions, pagetable.HostMapOptions{MinReach: minReach})
	if err != nil {
		return stats, err
	}
	if _, _, _, ok := t.Lookup(hostPML4); !ok {
		return stats, fmt.Errorf("paging: page %#x (AP start-up root) is not RAM in the memory map", hostPML4)
	}
	writeCR3(t.Root())
	copy(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(hostPML4))), 4096),
		unsafe.Slice((*byte)(unsafe.Pointer(uintptr(t.Root()))), 4096))
	writeCR3(hostPML4)
	hostTables = t
	machine.MappedBase, machine.MappedLimit = 0x1000, t.Limit()
	return stats, nil
}

// Machine returns the platform's hardware access (port I/O, MMIO, MSRs,
// CPUID, physical memory) for drivers.
func Machine() *hw.Machine { return &machine }
