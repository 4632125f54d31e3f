// Package hostirq hands out the host's interrupt vectors to device drivers
// (today: passed-through PCI functions, whose MSI and MSI-X messages the
// hypervisor programs with host vectors) and runs each vector's handler
// after its interrupts, in ordinary Go code.
//
// No Go code can run in interrupt context on the image: the interrupt stubs
// (runtime/pc/interrupts_amd64.s) only set the vector's bit in a pending
// bitmap, signal end of interrupt to the local APIC and return. Whoever
// calls Table.Dispatch afterwards — a vCPU's goroutine right after a VM
// exit, or the polling goroutine of package pc — takes the pending bits of
// the vectors that have a handler and runs those handlers. Several
// interrupts on one vector before a dispatch run its handler once, as a
// local APIC's IRR bit coalesces them; edge-triggered message interrupts
// (PCI 3.0, 6.8) mean "look at the device", so the handler's one look
// covers them all.
//
// The package is host code: the pending bitmap is an ordinary [4]uint64,
// written with atomic operations by both sides (the stub with LOCK BTS).
package hostirq

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Bitmap is one bit per vector, vector v at bit v%64 of word v/64, as LOCK
// BTS with the vector as bit offset writes it.
type Bitmap = [4]uint64

// Table is a range of host vectors, the handler of each one allocated, and
// the pending bitmap the interrupt stubs fill. Its methods are safe for
// concurrent use; Dispatch takes no lock, so an interrupt handler may
// allocate or free vectors.
type Table struct {
	first, last uint8
	pending     *Bitmap

	mu       sync.Mutex // serializes Allocate and Free
	next     int        // where the next search starts, for round robin
	inUse    int
	handlers [256]atomic.Pointer[func()]
	wanted   [4]atomic.Uint64 // vectors that have a handler

	// OnPanic, when set before use, is told about a handler that
	// panicked; the vector is freed so that it does not panic again.
	OnPanic func(vector uint8, p any)
	panics  atomic.Uint64
}

// ErrNoVector says that every vector of the table is taken.
var ErrNoVector = errors.New("hostirq: every vector of the range is taken")

// New returns a table of vectors [first, last] over the pending bitmap
// the interrupt stubs write. Vectors below 0x20 are the processor's
// exceptions (Intel SDM Vol. 3A, 6.2) and cannot be handed out.
func New(first, last uint8, pending *Bitmap) (*Table, error) {
	switch {
	case pending == nil:
		return nil, errors.New("hostirq: nil pending bitmap")
	case first < 0x20:
		return nil, fmt.Errorf("hostirq: vector %#x is an exception vector (below 0x20)", first)
	case last < first:
		return nil, fmt.Errorf("hostirq: empty range %#x-%#x", first, last)
	}
	return &Table{first: first, last: last, pending: pending, next: int(first)}, nil
}

// Range returns the table's first and last vectors.
func (t *Table) Range() (first, last uint8) { return t.first, t.last }

// Allocate takes a free vector and registers handler for it; the handler
// runs at the dispatch after each interrupt on the vector, on the
// dispatching goroutine, until Free. A stale pending bit from the
// vector's previous owner is cleared first, so the new owner's handler
// runs only for interrupts that arrive from now on.
func (t *Table) Allocate(handler func()) (uint8, error) {
	if handler == nil {
		return 0, errors.New("hostirq: nil handler")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := int(t.last) - int(t.first) + 1
	for i := 0; i < n; i++ {
		v := int(t.first) + (t.next-int(t.first)+i)%n
		if t.handlers[v].Load() != nil {
			continue
		}
		t.next = v + 1
		if t.next > int(t.last) {
			t.next = int(t.first)
		}
		bit := uint64(1) << (v % 64)
		atomic.AndUint64(&t.pending[v/64], ^bit)
		h := handler
		t.handlers[v].Store(&h)
		t.wanted[v/64].Or(bit)
		t.inUse++
		return uint8(v), nil
	}
	return 0, ErrNoVector
}

// Free releases vector v. A dispatch that already read the handler may
// still be running it when Free returns (Free cannot wait for it: the
// handler may need a lock Free's caller holds); handlers must tolerate
// that one late call.
func (t *Table) Free(v uint8) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if v < t.first || v > t.last || t.handlers[v].Load() == nil {
		return
	}
	t.wanted[v/64].And(^(uint64(1) << (v % 64)))
	t.handlers[v].Store(nil)
	t.inUse--
}

// InUse returns how many vectors are allocated.
func (t *Table) InUse() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inUse
}

// Panics counts handlers that panicked.
func (t *Table) Panics() uint64 { return t.panics.Load() }

// Dispatch takes the pending bits of the vectors that have a handler,
// clearing them (the bits of other vectors are left as the stubs set
// them), and runs those handlers. It returns how many ran. With nothing
// pending it costs eight atomic loads and allocates nothing, so it can
// run after every VM exit.
func (t *Table) Dispatch() int {
	ran := 0
	for w := range t.pending {
		take := atomic.LoadUint64(&t.pending[w]) & t.wanted[w].Load()
		if take == 0 {
			continue
		}
		// Two dispatchers may race for a bit: AndUint64 returns the
		// word before the clear, so exactly one of them sees it set.
		got := atomic.AndUint64(&t.pending[w], ^take) & take
		for got != 0 {
			b := bits.TrailingZeros64(got)
			got &^= 1 << b
			v := uint8(w*64 + b)
			if h := t.handlers[v].Load(); h != nil {
				t.run(v, *h)
				ran++
			}
		}
	}
	return ran
}

// run calls one handler; a panic frees its vector rather than ending the
// dispatching goroutine (a vCPU's or the poller), which would take the
// hypervisor down.
func (t *Table) run(v uint8, h func()) {
	defer func() {
		if p := recover(); p != nil {
			t.panics.Add(1)
			t.Free(v)
			if t.OnPanic != nil {
				t.OnPanic(v, p)
			}
		}
	}()
	h()
}

