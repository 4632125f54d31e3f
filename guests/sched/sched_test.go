package sched

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand, safe across goroutines.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64          { return c.t.Load() }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d)) }

func newTest(t *testing.T, cpus int) (*Scheduler, *fakeClock) {
	t.Helper()
	c := &fakeClock{}
	s, err := New(Config{CPUs: cpus, Clock: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func mustGroup(t *testing.T, s *Scheduler, name string, weight int) *Group {
	t.Helper()
	g, err := s.NewGroup(name, weight)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustEntity(t *testing.T, g *Group, name string) *Entity {
	t.Helper()
	e, err := g.NewEntity(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewRejectsBadConfig(t *testing.T) {
	clock := func() int64 { return 0 }
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{CPUs: 0, Clock: clock}, "at least one physical CPU"},
		{Config{CPUs: 1}, "no clock"},
		{Config{CPUs: 1, Clock: clock, Slice: time.Microsecond}, "shorter than the minimum"},
		{Config{CPUs: 1, Clock: clock, SleeperCredit: -1}, "negative sleeper credit"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	s, err := New(Config{CPUs: 2, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if s.Slice() != DefaultSlice || s.CPUs() != 2 {
		t.Errorf("defaults: slice %v, CPUs %d", s.Slice(), s.CPUs())
	}
	for _, w := range []int{-1, MaxWeight + 1} {
		if _, err := s.NewGroup("x", w); err == nil || !strings.Contains(err.Error(), "weight") {
			t.Errorf("NewGroup weight %d: %v, want a weight error", w, err)
		}
	}
	g, err := s.NewGroup("d", 0)
	if err != nil || g.Weight() != DefaultWeight {
		t.Errorf("NewGroup weight 0: %v, weight %d, want DefaultWeight", err, g.Weight())
	}
}

// The slice: Acquire returns at once with the same deadline until the
// clock reaches it; then, with nobody waiting, the slice is renewed and the
// time charged.
func TestAcquireSliceAndCharge(t *testing.T) {
	s, c := newTest(t, 1)
	e := mustEntity(t, mustGroup(t, s, "vm", 0), "0")
	end, err := e.Acquire()
	if err != nil || end != int64(DefaultSlice) {
		t.Fatalf("first Acquire = %d, %v; want slice end %d", end, err, DefaultSlice)
	}
	c.add(time.Millisecond)
	if end2, _ := e.Acquire(); end2 != end {
		t.Errorf("inside the slice Acquire returned %d, want %d", end2, end)
	}
	c.add(DefaultSlice)
	end3, err := e.Acquire()
	if err != nil || end3 != c.now()+int64(DefaultSlice) {
		t.Errorf("after the slice Acquire = %d, %v; want a new slice ending %d", end3, err, c.now()+int64(DefaultSlice))
	}
	if got := e.CPUTime(); got != time.Millisecond+DefaultSlice {
		t.Errorf("CPU time %v, want %v", got, time.Millisecond+DefaultSlice)
	}
	c.add(2 * time.Millisecond)
	if got := e.Group().CPUTime(); got != 3*time.Millisecond+DefaultSlice {
		t.Errorf("group CPU time with the running slice %v, want %v", got, 3*time.Millisecond+DefaultSlice)
	}
	e.Release()
	if s.Busy() != 0 {
		t.Errorf("%d slots busy after Release", s.Busy())
	}
	c.add(time.Second) // halted: not charged
	if got := e.CPUTime(); got != 3*time.Millisecond+DefaultSlice {
		t.Errorf("CPU time after a halt %v, want %v", got, 3*time.Millisecond+DefaultSlice)
	}
	e.Release() // without a slot: nothing
}

// waitUntil polls cond for up to 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 5000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

func (s *Scheduler) waiters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}

// A blocked Acquire returns when the holder's slice ends and it calls
// Acquire; then the holder blocks until the other's slice ends.
func TestBlockingHandOver(t *testing.T) {
	s, c := newTest(t, 1)
	a := mustEntity(t, mustGroup(t, s, "a", 0), "0")
	b := mustEntity(t, mustGroup(t, s, "b", 0), "0")
	if _, err := a.Acquire(); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := b.Acquire()
		got <- err
	}()
	waitUntil(t, "b waits", func() bool { return s.waiters() == 1 })
	select {
	case err := <-got:
		t.Fatalf("b got the only slot while a held it (%v)", err)
	default:
	}
	c.add(DefaultSlice)
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Acquire() // slice over: hands over, then waits
		aDone <- err
	}()
	if err := <-got; err != nil {
		t.Fatalf("b: %v", err)
	}
	waitUntil(t, "a waits", func() bool { return s.waiters() == 1 })
	c.add(DefaultSlice)
	// Both ran one slice: on the tie the waiter goes first.
	bDone := make(chan error, 1)
	go func() {
		_, err := b.Acquire()
		bDone <- err
	}()
	if err := <-aDone; err != nil {
		t.Fatalf("a: %v", err)
	}
	waitUntil(t, "b waits", func() bool { return s.waiters() == 1 })
	a.Group().Close()
	if _, err := a.Acquire(); !errors.Is(err, ErrClosed) {
		t.Fatalf("a after its group closed: %v", err)
	}
	if err := <-bDone; err != nil {
		t.Fatalf("b did not get the slot a left: %v", err)
	}
	if a.Switches() != 2 || b.Switches() != 2 {
		t.Errorf("switches a=%d b=%d, want 2 each", a.Switches(), b.Switches())
	}
	if a.WaitTime() != DefaultSlice || b.WaitTime() != DefaultSlice {
		t.Errorf("wait times a=%v b=%v, want one slice each", a.WaitTime(), b.WaitTime())
	}
}

// Closing a VM's group wakes its blocked vCPUs with ErrClosed, and a vCPU
// holding a slot gets ErrClosed from its next Acquire, freeing the slot.
func TestCloseUnblocksWaiters(t *testing.T) {
	s, _ := newTest(t, 1)
	ga, gb := mustGroup(t, s, "a", 0), mustGroup(t, s, "b", 0)
	a := mustEntity(t, ga, "0")
	b0, b1 := mustEntity(t, gb, "0"), mustEntity(t, gb, "1")
	if _, err := a.Acquire(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, e := range []*Entity{b0, b1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Acquire()
			errs <- err
		}()
	}
	waitUntil(t, "both of b's vCPUs wait", func() bool { return s.waiters() == 2 })
	gb.Close()
	wg.Wait()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Errorf("a closed group's waiter got %v, want ErrClosed", err)
		}
	}
	if _, err := b0.Acquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after close: %v, want ErrClosed", err)
	}
	if _, err := gb.NewEntity("2"); !errors.Is(err, ErrClosed) {
		t.Errorf("NewEntity on a closed group: %v", err)
	}

	// The holder: its slot is freed at its next Acquire.
	ga.Close()
	if s.Busy() != 1 {
		t.Fatalf("the running vCPU's slot was taken from it while it may be in the guest")
	}
	if _, err := a.Acquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("holder's Acquire after close: %v, want ErrClosed", err)
	}
	if s.Busy() != 0 {
		t.Errorf("%d slots busy after the holder left", s.Busy())
	}
	if n := len(s.groups); n != 0 {
		t.Errorf("%d groups listed after both closed", n)
	}
	a.Release() // harmless
}

func TestSchedulerCloseUnblocksAll(t *testing.T) {
	s, _ := newTest(t, 1)
	holder := mustEntity(t, mustGroup(t, s, "h", 0), "0")
	if _, err := holder.Acquire(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var closed atomic.Int32
	for i := 0; i < 4; i++ {
		e := mustEntity(t, mustGroup(t, s, "w", 0), "0")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.Acquire(); errors.Is(err, ErrClosed) {
				closed.Add(1)
			}
		}()
	}
	waitUntil(t, "four waiters", func() bool { return s.waiters() == 4 })
	s.Close()
	wg.Wait()
	if closed.Load() != 4 {
		t.Errorf("%d of 4 waiters got ErrClosed", closed.Load())
	}
	holder.Release()
	if s.Busy() != 0 || len(s.groups) != 0 {
		t.Errorf("after Close and Release: %d busy, %d groups", s.Busy(), len(s.groups))
	}
	if _, err := s.NewGroup("late", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("NewGroup after Close: %v", err)
	}
}

func TestEntityClose(t *testing.T) {
	s, _ := newTest(t, 1)
	g := mustGroup(t, s, "vm", 0)
	e0, e1 := mustEntity(t, g, "0"), mustEntity(t, g, "1")
	e1.Close()
	if _, err := e1.Acquire(); !errors.Is(err, ErrClosed) {
		t.Errorf("closed idle entity: %v", err)
	}
	if _, err := e0.Acquire(); err != nil {
		t.Errorf("the other vCPU of the group: %v", err)
	}
	if len(g.entities) != 1 {
		t.Errorf("%d entities listed, want 1", len(g.entities))
	}
}

// Real goroutines and the real clock: two slots, nine vCPUs in three VMs,
// some halting. Never more than two hold a slot; all progress; Close ends
// them all; no goroutine is left behind. Run with -race.
func TestConcurrentStress(t *testing.T) {
	before := runtime.NumGoroutine()
	start := time.Now()
	s, err := New(Config{CPUs: 2, Slice: MinSlice, Clock: func() int64 { return int64(time.Since(start)) }})
	if err != nil {
		t.Fatal(err)
	}
	var holders, maxHolders atomic.Int32
	var wg sync.WaitGroup
	var ents []*Entity
	for _, vm := range []string{"a", "b", "c"} {
		g := mustGroup(t, s, vm, map[string]int{"a": 100, "b": 200, "c": 50}[vm])
		for i := 0; i < 3; i++ {
			e := mustEntity(t, g, vm)
			ents = append(ents, e)
			halts := i == 2
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					_, err := e.Acquire()
					if err != nil {
						return
					}
					h := holders.Add(1)
					for {
						m := maxHolders.Load()
						if h <= m || maxHolders.CompareAndSwap(m, h) {
							break
						}
					}
					spin := time.Now()
					for time.Since(spin) < 20*time.Microsecond {
					}
					holders.Add(-1)
					if halts && n%10 == 0 {
						e.Release()
						time.Sleep(100 * time.Microsecond)
					}
				}
			}()
		}
	}
	// Every vCPU gets CPU time (however loaded the test machine is),
	// then the VMs stop.
	waitUntil(t, "every vCPU ran", func() bool {
		for _, e := range ents {
			if e.CPUTime() == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond)
	s.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("vCPU goroutines did not all end after Close")
	}
	if m := maxHolders.Load(); m > 2 {
		t.Errorf("%d vCPUs held a slot at once; two slots", m)
	}
	if s.Busy() != 0 {
		t.Errorf("%d slots busy after every vCPU left", s.Busy())
	}
	waitUntil(t, "goroutines end", func() bool { return runtime.NumGoroutine() <= before })
}

// Acquire and Release allocate nothing once the entities exist: the fast
// path, a renewed slice, a halt and wake, a hand-over.
func TestAcquireDoesNotAllocate(t *testing.T) {
	s, c := newTest(t, 1)
	a := mustEntity(t, mustGroup(t, s, "a", 0), "0")
	if _, err := a.Acquire(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, f func()) {
		t.Helper()
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %.1f allocations per call", what, n)
		}
	}
	check("fast path", func() { a.Acquire() })
	check("renewed slice", func() { c.add(DefaultSlice); a.Acquire() })
	check("halt and wake", func() { a.Release(); c.add(time.Millisecond); a.Acquire() })

	// A hand-over between two vCPUs, the blocked side driven as the
	// simulation does.
	b := mustEntity(t, mustGroup(t, s, "b", 0), "0")
	if _, wait, err := b.begin(); !wait || err != nil {
		t.Fatalf("b.begin: wait=%v err=%v", wait, err)
	}
	holder, waiter := a, b
	check("hand-over", func() {
		c.add(DefaultSlice)
		_, wait, err := holder.begin()
		if !wait || err != nil {
			t.Fatalf("the holder kept its slot (wait=%v err=%v)", wait, err)
		}
		<-waiter.token
		if _, err := waiter.finish(); err != nil {
			t.Fatal(err)
		}
		holder, waiter = waiter, holder
	})
}

func BenchmarkAcquireFastPath(b *testing.B) {
	s, _ := New(Config{CPUs: 1, Clock: func() int64 { return 0 }})
	g, _ := s.NewGroup("vm", 0)
	e, _ := g.NewEntity("0")
	e.Acquire()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Acquire()
	}
}

func BenchmarkAcquireRenew(b *testing.B) {
	var now int64
	s, _ := New(Config{CPUs: 4, Clock: func() int64 { return now }})
	for i := 0; i < 16; i++ {
		g, _ := s.NewGroup("idle", 0)
		g.NewEntity("0")
	}
	g, _ := s.NewGroup("vm", 0)
	e, _ := g.NewEntity("0")
	e.Acquire()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now += int64(DefaultSlice)
		e.Acquire()
	}
}
