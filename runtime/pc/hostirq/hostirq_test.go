package hostirq

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// fire does what the interrupt stub does for vector v: LOCK BTS.
func fire(p *Bitmap, v uint8) { atomic.OrUint64(&p[v/64], 1<<(v%64)) }

func TestNewRejectsBadRanges(t *testing.T) {
	var p Bitmap
	for _, c := range []struct {
		first, last uint8
		pending     *Bitmap
	}{{0x10, 0x30, &p}, {0x50, 0x40, &p}, {0x40, 0x50, nil}} {
		if _, err := New(c.first, c.last, c.pending); err == nil {
			t.Errorf("New(%#x, %#x, %v) accepted", c.first, c.last, c.pending != nil)
		}
	}
}

func TestHandlerRunsOncePerDispatchAfterItsInterrupt(t *testing.T) {
	var p Bitmap
	tab, err := New(0x40, 0xdf, &p)
	if err != nil {
		t.Fatal(err)
	}
	var a, b int
	va, err := tab.Allocate(func() { a++ })
	if err != nil {
		t.Fatal(err)
	}
	vb, err := tab.Allocate(func() { b++ })
	if err != nil {
		t.Fatal(err)
	}
	if va == vb || va < 0x40 || va > 0xdf || vb < 0x40 || vb > 0xdf {
		t.Fatalf("vectors %#x and %#x: want two distinct vectors in 0x40-0xdf", va, vb)
	}
	if n := tab.Dispatch(); n != 0 || a != 0 || b != 0 {
		t.Fatalf("dispatch with nothing pending ran %d handlers (a=%d b=%d)", n, a, b)
	}
	fire(&p, va)
	fire(&p, va) // coalesced, as in the APIC's IRR
	if n := tab.Dispatch(); n != 1 || a != 1 || b != 0 {
		t.Fatalf("after two interrupts on %#x: %d handlers ran, a=%d b=%d; want a's once", va, n, a, b)
	}
	if n := tab.Dispatch(); n != 0 || a != 1 {
		t.Fatalf("the pending bit was not cleared: a second dispatch ran %d (a=%d)", n, a)
	}
	fire(&p, va)
	fire(&p, vb)
	if n := tab.Dispatch(); n != 2 || a != 2 || b != 1 {
		t.Fatalf("both fired: %d ran, a=%d b=%d", n, a, b)
	}
}

func TestVectorsWithoutHandlerKeepTheirBits(t *testing.T) {
	var p Bitmap
	tab, _ := New(0x40, 0x4f, &p)
	const kick = 0xee // the kick timer's vector: outside the range
	fire(&p, kick)
	fire(&p, 0x41) // in the range, not allocated
	if n := tab.Dispatch(); n != 0 {
		t.Fatalf("%d handlers ran for vectors nobody allocated", n)
	}
	if p[kick/64]&(1<<(kick%64)) == 0 || p[1]&(1<<1) == 0 {
		t.Errorf("dispatch cleared bits of vectors it has no handler for: %#x", p)
	}
}

func TestExhaustionFreeAndStaleBits(t *testing.T) {
	var p Bitmap
	tab, _ := New(0x40, 0x43, &p)
	var got []uint8
	for i := 0; i < 4; i++ {
		v, err := tab.Allocate(func() {})
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		got = append(got, v)
	}
	if _, err := tab.Allocate(func() {}); !errors.Is(err, ErrNoVector) {
		t.Fatalf("a fifth vector out of four: err %v", err)
	}
	if tab.InUse() != 4 {
		t.Fatalf("InUse %d, want 4", tab.InUse())
	}
	// The old owner's interrupt arrives after it freed the vector: the
	// new owner must not see it.
	fire(&p, got[2])
	tab.Free(got[2])
	tab.Free(got[2]) // twice is harmless
	ran := false
	v, err := tab.Allocate(func() { ran = true })
	if err != nil || v != got[2] {
		t.Fatalf("after freeing %#x: got %#x, %v", got[2], v, err)
	}
	if tab.Dispatch(); ran {
		t.Error("the new owner's handler ran for the old owner's interrupt")
	}
	fire(&p, v)
	if tab.Dispatch(); !ran {
		t.Error("the new owner's handler did not run for its own interrupt")
	}
	if tab.InUse() != 4 {
		t.Errorf("InUse %d after free and reallocate, want 4", tab.InUse())
	}
	tab.Free(0x30) // outside the range: ignored
	if _, err := tab.Allocate(nil); err == nil {
		t.Error("a nil handler was accepted")
	}
}

func TestFreedVectorIsNotDispatched(t *testing.T) {
	var p Bitmap
	tab, _ := New(0x40, 0x4f, &p)
	ran := 0
	v, _ := tab.Allocate(func() { ran++ })
	tab.Free(v)
	fire(&p, v)
	if tab.Dispatch(); ran != 0 {
		t.Errorf("a freed vector's handler ran %d times", ran)
	}
}

func TestPanickingHandlerIsFreedNotFatal(t *testing.T) {
	var p Bitmap
	tab, _ := New(0x40, 0x4f, &p)
	var reported uint8
	tab.OnPanic = func(v uint8, _ any) { reported = v }
	v, _ := tab.Allocate(func() { panic("device model bug") })
	ok := 0
	w, _ := tab.Allocate(func() { ok++ })
	fire(&p, v)
	fire(&p, w)
	tab.Dispatch()
	if reported != v || tab.Panics() != 1 {
		t.Errorf("panic on %#x reported as %#x, %d panics", v, reported, tab.Panics())
	}
	if ok != 1 {
		t.Errorf("the other vector's handler ran %d times, want 1 despite the panic", ok)
	}
	if tab.InUse() != 1 {
		t.Errorf("the panicking vector was not freed: InUse %d", tab.InUse())
	}
}

// Interrupts racing two dispatchers (a vCPU after its exit and the
// poller): every interrupt is handled, none twice per pending bit.
func TestConcurrentDispatchersLoseNothing(t *testing.T) {
	var p Bitmap
	tab, _ := New(0x40, 0x4f, &p)
	var handled atomic.Int64
	v, _ := tab.Allocate(func() { handled.Add(1) })
	const fires = 20000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var dispatched atomic.Int64
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					dispatched.Add(int64(tab.Dispatch()))
				}
			}
		}()
	}
	// Each interrupt waits until its bit was taken, so none coalesce
	// and each must be handled exactly once.
	for i := 0; i < fires; i++ {
		fire(&p, v)
		for atomic.LoadUint64(&p[v/64])&(1<<(v%64)) != 0 {
		}
	}
	for handled.Load() < fires && dispatched.Load() < fires {
	}
	close(stop)
	wg.Wait()
	if handled.Load() != fires || dispatched.Load() != fires {
		t.Errorf("%d interrupts: handled %d times, dispatch counted %d", fires, handled.Load(), dispatched.Load())
	}
}

func TestDispatchAllocatesNothing(t *testing.T) {
	var p Bitmap
	tab, _ := New(0x40, 0x4f, &p)
	v, _ := tab.Allocate(func() {})
	allocs := testing.AllocsPerRun(100, func() {
		fire(&p, v)
		tab.Dispatch()
		tab.Dispatch()
	})
	if allocs != 0 {
		t.Errorf("Dispatch allocates %.1f times per run", allocs)
	}
}
