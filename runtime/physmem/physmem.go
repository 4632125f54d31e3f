// Package physmem hands out host-physical memory outside the hypervisor's
// own Go heap: guest RAM, nested page tables, VMCBs and VMCSs, DMA buffers.
// It starts from the free RAM of the firmware's memory map (memmap.Map.Free
// with the hypervisor's own ranges reserved) and keeps the free list sorted
// and merged.
package physmem

import (
	"fmt"
	"sort"
	"sync"

	"tamavisor/boot/memmap"
)

// Allocator is a first-fit allocator over free physical ranges. It is safe
// for concurrent use.
type Allocator struct {
	mu   sync.Mutex
	free []span
}

type span struct{ start, end uint64 } // [start, end)

// New takes the usable regions of free (other kinds are ignored).
func New(free memmap.Map) *Allocator {
	a := &Allocator{}
	for _, r := range free {
		if r.Kind == memmap.Usable && r.Size > 0 {
			a.free = append(a.free, span{r.Start, r.End()})
		}
	}
	sort.Slice(a.free, func(i, j int) bool { return a.free[i].start < a.free[j].start })
	return a
}

// Alloc returns size bytes at an address aligned to align (a power of two,
// at least 4096), preferring the lowest such address.
func (a *Allocator) Alloc(size, align uint64) (uint64, error) {
	if align < 4096 || align&(align-1) != 0 {
		return 0, fmt.Errorf("physmem: alignment %#x is not a power of two >= 4 KiB", align)
	}
	if size == 0 || size%4096 != 0 {
		return 0, fmt.Errorf("physmem: size %#x is not a positive multiple of 4 KiB", size)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, s := range a.free {
		start := (s.start + align - 1) &^ (align - 1)
		if start < s.start || start >= s.end || s.end-start < size {
			continue
		}
		end := start + size
		rest := []span{}
		if start > s.start {
			rest = append(rest, span{s.start, start})
		}
		if end < s.end {
			rest = append(rest, span{end, s.end})
		}
		a.free = append(a.free[:i], append(rest, a.free[i+1:]...)...)
		return start, nil
	}
	return 0, fmt.Errorf("physmem: no free range of %d MiB aligned to %#x (%d MiB free in %d ranges)",
		size>>20, align, a.availableLocked()>>20, len(a.free))
}

// Free returns [addr, addr+size) to the free list. Freeing memory that is
// already free is a hypervisor bug and panics.
func (a *Allocator) Free(addr, size uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := span{addr, addr + size}
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].start >= n.start })
	if (i > 0 && a.free[i-1].end > n.start) || (i < len(a.free) && a.free[i].start < n.end) {
		panic(fmt.Sprintf("physmem: double free of %#x+%#x", addr, size))
	}
	a.free = append(a.free, span{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = n
	// Merge with the neighbours.
	if i+1 < len(a.free) && a.free[i].end == a.free[i+1].start {
		a.free[i].end = a.free[i+1].end
		a.free = append(a.free[:i+1], a.free[i+2:]...)
	}
	if i > 0 && a.free[i-1].end == a.free[i].start {
		a.free[i-1].end = a.free[i].end
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
}

// Available returns the free bytes.
func (a *Allocator) Available() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.availableLocked()
}

func (a *Allocator) availableLocked() uint64 {
	var n uint64
	for _, s := range a.free {
		n += s.end - s.start
	}
	return n
}
