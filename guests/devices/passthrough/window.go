package passthrough

import (
	"errors"
	"fmt"
	"sync"
)

// Window is a guest's PCI MMIO window (platform.Layout.PCIMMIO, the range
// the DSDT's _CRS gives the root bridge): New places the functions' BARs
// in it, and as an MMIO device (bus.MMIODevice) registered over the whole
// window it serves the guest's accesses that trap there: the MSI-X table
// and PBA pages and BARs smaller than a page. Mapped BAR pages never
// exit; anything else in the window reads all ones and ignores writes.
type Window struct {
	base, end uint64 // [base, end); fixed at NewWindow

	mu   sync.Mutex
	next uint64
	fns  []*Function
	// Unclaimed counts accesses no function claimed.
	unclaimed uint64
}

// NewWindow returns the window [base, base+size), page aligned.
func NewWindow(base, size uint64) (*Window, error) {
	switch {
	case size == 0 || base%PageSize != 0 || size%PageSize != 0:
		return nil, fmt.Errorf("passthrough: window %#x+%#x is empty or not page aligned", base, size)
	case base+size < base:
		return nil, fmt.Errorf("passthrough: window %#x+%#x wraps", base, size)
	}
	return &Window{base: base, end: base + size, next: base}, nil
}

// Base and Size give the window for registering it on the VM's MMIO bus.
func (w *Window) Base() uint64 { return w.base }
func (w *Window) Size() uint64 { return w.end - w.base }

// New takes over the host function cfg describes for the guest: it stops
// the device's DMA, sizes its BARs (decoding off meanwhile), places them
// in the window, reads its capabilities, takes host vectors for its MSI and
// MSI-X and programs them (disabled, masked), and turns the device's
// memory decode on. The guest's command register starts at 0 (decode and
// bus master off), so nothing is mapped until the guest enables memory
// decode. Register the result on the guest's host bridge
// (pcihost.Host.AddFunction).
//
// The caller has removed the device from the hypervisor's own use and
// attached it to an IOMMU domain that mirrors the guest's nested page
// tables before the guest runs.
func (w *Window) New(cfg Config) (*Function, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, err := newFunction(cfg, w)
	if err != nil {
		return nil, err
	}
	w.fns = append(w.fns, f)
	return f, nil
}

// alloc reserves size bytes (a power of two), naturally aligned; the
// caller holds w.mu.
func (w *Window) alloc(size uint64) (uint64, error) {
	a := alignUp(w.next, size)
	if a < w.next || a > w.end || size > w.end-a {
		return 0, errors.New("no room left in the guest's PCI MMIO window")
	}
	w.next = a + size
	return a, nil
}

// contains reports whether [addr, addr+size) lies in the window.
func (w *Window) contains(addr, size uint64) bool {
	return addr >= w.base && addr < w.end && size <= w.end-addr
}

// Unclaimed returns how many accesses no function claimed.
func (w *Window) Unclaimed() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unclaimed
}

// ReadMMIO implements bus.MMIODevice.
func (w *Window) ReadMMIO(addr uint64, size uint8) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fns {
		if v, ok := f.readMMIO(addr, size); ok {
			return v
		}
	}
	w.unclaimed++
	return ^uint64(0) >> (64 - 8*uint64(size&15))
}

// WriteMMIO implements bus.MMIODevice.
func (w *Window) WriteMMIO(addr uint64, size uint8, v uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fns {
		if f.writeMMIO(addr, size, v) {
			return
		}
	}
	w.unclaimed++
}
