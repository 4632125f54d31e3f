// Package sched multiplexes virtual CPUs over the physical CPUs.
//
// # Model
//
// The physical CPUs given to guests are Config.CPUs interchangeable slots.
// Every vCPU is an Entity; the vCPUs of one VM form a Group. A vCPU's
// goroutine calls Entity.Acquire before each guest entry: the call returns
// at once while the vCPU holds a slot and its time slice lasts, and
// otherwise blocks until the scheduler grants it a slot. Acquire returns
// the end of the slice (clock time, ns); the run loop arms its host
// preemption timer (LAPIC one-shot, or the VMX preemption timer) for the
// earlier of that and the nearest device deadline, so a guest spinning with
// interrupts disabled still exits when its slice is over: the host timer
// interrupt exits the guest whatever the guest's RFLAGS.IF (AMD APM vol. 2
// §15.13.1 INTR intercept; Intel SDM vol. 3C §25.6.1 "external-interrupt
// exiting", §26.5.1 VMX-preemption timer). A vCPU that halts calls
// Entity.Release: halted vCPUs hold no slot, and the next Acquire makes
// them runnable again.
//
// The scheduler decides which runnable vCPU holds a slot, never which
// physical CPU runs it: the Go runtime (TamaGo, one thread per CPU) does,
// and a vCPU's goroutine may resume on another CPU between two entries. The
// engines make that move correct (package vmx clears its VMCS after every
// run and reloads it with VMPTRLD; package svm prepares the new CPU's
// VM_HSAVE_PA, EFER.SVME and ASID before VMRUN). At most Config.CPUs vCPUs
// are inside Acquire..Release at once.
//
// # Policy
//
// Weighted fair queuing on virtual runtime, at two levels, as in Linux's
// CFS group scheduling:
//
//   - A Group (VM) has a weight, DefaultWeight (100) unless configured,
//     MinWeight..MaxWeight. Its virtual runtime advances by
//     ran × DefaultWeight / weight for every nanosecond one of its vCPUs
//     holds a slot. The VM's weight is shared by its runnable vCPUs: a VM's
//     CPU time does not grow with its vCPU count, only with its weight.
//   - Inside a group the vCPUs are equal; an Entity's virtual runtime
//     advances by the time it ran.
//   - A free slot goes to the runnable vCPU of the group with the least
//     virtual runtime, and within it to the vCPU with the least (ties: the
//     one that has waited longest).
//   - When a vCPU's slice ends (Config.Slice, default 5 ms) and another
//     vCPU waits, the slot passes to the best waiter if it has no more
//     virtual runtime (group level when the two are in different VMs, vCPU level
//     inside one VM); otherwise the vCPU gets a new slice. With nobody
//     waiting the slice is renewed, so the only cost of the scheduler to a
//     lone guest is one timer exit per slice.
//   - A group or vCPU that becomes runnable after sleeping (halted, or new)
//     has its virtual runtime raised to at least the least virtual runtime
//     of the runnable ones minus one slice (Config.SleeperCredit): a sleeper
//     gets at most one slice of credit, never a monopoly for the time it
//     slept. Virtual runtimes are compared modulo 2^64 (as CFS does), so
//     they may wrap.
//
// Consequences: with every vCPU runnable, each VM's CPU time converges on
// weight/Σweights of the slots (tested within ±10%); a VM gets no more
// physical CPUs than it has runnable vCPUs, and what it cannot use goes to
// the others (work-conserving); a runnable vCPU waits at most about one
// slice per slot-holder ahead of it, and a woken vCPU, favoured by its
// credit, usually gets the first slot whose slice ends, within one slice.
// There is no wake-up preemption: nothing interrupts another CPU's slice
// early.
//
// # Accounting
//
// The time a vCPU holds a slot (guest time, exit handling, and any time the
// Go runtime spends elsewhere on that CPU meanwhile) is its CPU time;
// the time it is runnable but waits for a slot is its wait (steal) time.
// Both are kept per Entity and per Group. WaitTime reads without a lock;
// CPUTime takes the scheduler's lock briefly to add the running slice's
// time so far.
//
// # Use from a vCPU's run loop
//
//	defer e.Close()    // the vCPU goes away with its run
//	defer e.Release()  // never leave the loop holding a slot
//	for vm running {
//		sliceEnd, err := e.Acquire()    // before every entry
//		if err != nil { return }        // ErrClosed: the VM is stopping
//		armTimer(min(deviceDeadline, sliceEnd))
//		enter the guest; handle the exit
//		on HLT with nothing pending: e.Release(); sleep until woken
//	}
//
// Nothing here starts a goroutine; nothing on Acquire's or Release's path
// allocates once the entities exist.
package sched

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Weights of a group (a VM), in the same units as cgroup v2 cpu.weight.
const (
	DefaultWeight = 100
	MinWeight     = 1
	MaxWeight     = 10000
)

// DefaultSlice is the time a vCPU runs before the scheduler considers
// giving its slot to a waiter.
const DefaultSlice = 5 * time.Millisecond

// MinSlice bounds Config.Slice from below: every slice costs a timer exit
// and, on a hand-over, a VMCS/VMCB migration.
const MinSlice = 100 * time.Microsecond

// ErrClosed is returned by Acquire once the entity, its group or the
// scheduler is closed (the VM stops).
var ErrClosed = errors.New("sched: the vCPU was removed from the scheduler (its VM is stopping)")

// Config sets up a Scheduler.
type Config struct {
	// CPUs is the number of physical CPUs that run guests (slots), at
	// least 1.
	CPUs int
	// Slice is the time slice (DefaultSlice when zero, at least MinSlice).
	Slice time.Duration
	// SleeperCredit bounds the virtual runtime a waking sleeper may be
	// behind the least-served runnable one (Slice when zero).
	SleeperCredit time.Duration
	// Clock reads the host's monotonic clock in ns (required; tests pass
	// a fake one).
	Clock func() int64
}

// Scheduler hands the physical CPUs' slots to vCPUs.
type Scheduler struct {
	clock  func() int64
	slice  int64
	credit uint64

	mu      sync.Mutex
	cpus    int
	busy    int
	waiting int
	groups  []*Group
	// floor is the groups' least virtual runtime seen among runnable ones,
	// never decreasing (CFS's min_vruntime).
	floor  uint64
	seq    uint64
	closed bool
}

// New returns a scheduler.
func New(cfg Config) (*Scheduler, error) {
	if cfg.CPUs < 1 {
		return nil, fmt.Errorf("sched: %d CPUs: at least one physical CPU must run guests", cfg.CPUs)
	}
	if cfg.Clock == nil {
		return nil, errors.New("sched: no clock given")
	}
	slice := cfg.Slice
	if slice == 0 {
		slice = DefaultSlice
	}
	if slice < MinSlice {
		return nil, fmt.Errorf("sched: slice %v is shorter than the minimum %v", slice, MinSlice)
	}
	credit := cfg.SleeperCredit
	if credit == 0 {
		credit = slice
	}
	if credit < 0 {
		return nil, fmt.Errorf("sched: negative sleeper credit %v", credit)
	}
	return &Scheduler{clock: cfg.Clock, slice: int64(slice), credit: uint64(credit), cpus: cfg.CPUs}, nil
}

// CPUs is the number of slots.
func (s *Scheduler) CPUs() int { return s.cpus }

// Slice is the time slice.
func (s *Scheduler) Slice() time.Duration { return time.Duration(s.slice) }

// Busy is the number of slots held now.
func (s *Scheduler) Busy() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy
}

// Close removes every group: blocked Acquire calls return ErrClosed, and
// vCPUs holding a slot get ErrClosed from their next Acquire.
func (s *Scheduler) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	// Backwards: closing a group may swap the last group into its place,
	// and that one is already closed.
	for i := len(s.groups) - 1; i >= 0; i-- {
		if i < len(s.groups) {
			s.groups[i].closeLocked()
		}
	}
}

// Group is the vCPUs of one VM, sharing the VM's weight.
type Group struct {
	s    *Scheduler
	name string

	// Under s.mu.
	weight   int64
	vruntime uint64
	rem      int64 // remainder of the weighted division, so no time is lost
	floor    uint64
	active   int // entities waiting or running
	waiting  int
	entities []*Entity
	closed   bool
	listed   bool

	cpuTime  atomic.Int64
	waitTime atomic.Int64
	closedF  atomic.Bool
}

// NewGroup adds a VM with a weight (0: DefaultWeight).
func (s *Scheduler) NewGroup(name string, weight int) (*Group, error) {
	if weight == 0 {
		weight = DefaultWeight
	}
	if weight < MinWeight || weight > MaxWeight {
		return nil, fmt.Errorf("sched: vm %s: weight %d is outside %d..%d", name, weight, MinWeight, MaxWeight)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	g := &Group{s: s, name: name, weight: int64(weight), vruntime: s.floor, listed: true}
	s.groups = append(s.groups, g)
	return g, nil
}

// Name is the group's (VM's) name.
func (g *Group) Name() string { return g.name }

// Weight is the group's weight.
func (g *Group) Weight() int {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	return int(g.weight)
}

// SetWeight changes the group's weight from now on.
func (g *Group) SetWeight(weight int) error {
	if weight < MinWeight || weight > MaxWeight {
		return fmt.Errorf("sched: vm %s: weight %d is outside %d..%d", g.name, weight, MinWeight, MaxWeight)
	}
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	g.weight = int64(weight)
	g.rem = 0
	return nil
}

// CPUTime is the time the group's vCPUs have held a slot, the running
// slices included.
func (g *Group) CPUTime() time.Duration {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t := g.cpuTime.Load()
	now := s.clock()
	for _, e := range g.entities {
		if e.state == running {
			if d := now - e.lastCharge; d > 0 {
				t += d
			}
		}
	}
	return time.Duration(t)
}

// WaitTime is the time the group's vCPUs have been runnable without a
// slot (completed waits).
func (g *Group) WaitTime() time.Duration { return time.Duration(g.waitTime.Load()) }

// Close removes the group's vCPUs (the VM stopped): waiters get ErrClosed
// at once, slot holders from their next Acquire (at the latest when their
// slice ends). The group's accounting stays readable.
func (g *Group) Close() {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	g.closeLocked()
}

func (g *Group) closeLocked() {
	g.closed = true
	g.closedF.Store(true)
	for i := len(g.entities) - 1; i >= 0; i-- {
		g.entities[i].closeLocked()
	}
	g.unlistIfDone()
}

// unlistIfDone drops a closed group without entities from the scheduler.
func (g *Group) unlistIfDone() {
	if !g.closed || len(g.entities) > 0 || !g.listed {
		return
	}
	s := g.s
	for i, x := range s.groups {
		if x == g {
			last := len(s.groups) - 1
			s.groups[i] = s.groups[last]
			s.groups[last] = nil
			s.groups = s.groups[:last]
			break
		}
	}
	g.listed = false
}

type entityState uint8

const (
	idle entityState = iota // halted, or not started: wants no slot
	waitingState
	running
	closedState
)

// Entity is one vCPU. Acquire and Release are called by the vCPU's own
// goroutine only; everything else from anywhere.
type Entity struct {
	g    *Group
	name string

	// Under s.mu.
	state      entityState
	vruntime   uint64
	seq        uint64
	waitSince  int64
	lastCharge int64
	// sliceEnd is written under s.mu while the entity waits (by whoever
	// grants it) or by its owner; the owner reads it without the lock
	// while it holds the slot.
	sliceEnd int64

	// holding is owned by the vCPU's goroutine.
	holding bool
	// token carries one grant (or the close of a waiter) per wait.
	token chan struct{}

	closedF  atomic.Bool
	cpuTime  atomic.Int64
	waitTime atomic.Int64
	switches atomic.Int64
}

// NewEntity adds a vCPU to the group. It wants no slot until its first
// Acquire.
func (g *Group) NewEntity(name string) (*Entity, error) {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	e := &Entity{g: g, name: name, token: make(chan struct{}, 1), vruntime: g.floor}
	g.entities = append(g.entities, e)
	return e, nil
}

// Name is the entity's (vCPU's) name.
func (e *Entity) Name() string { return e.name }

// Group is the entity's VM.
func (e *Entity) Group() *Group { return e.g }

// CPUTime is the time this vCPU has held a slot, its running slice
// included.
func (e *Entity) CPUTime() time.Duration {
	s := e.g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t := e.cpuTime.Load()
	if e.state == running {
		if d := s.clock() - e.lastCharge; d > 0 {
			t += d
		}
	}
	return time.Duration(t)
}

// WaitTime is the time this vCPU has been runnable without a slot.
func (e *Entity) WaitTime() time.Duration { return time.Duration(e.waitTime.Load()) }

// Switches counts the slots this vCPU has been granted after waiting.
func (e *Entity) Switches() int64 { return e.switches.Load() }

// Acquire is called before each guest entry. It returns at once while the
// vCPU holds a slot and its slice lasts; otherwise it charges the vCPU's
// time, and either renews its slice or gives the slot to a better waiter
// and blocks until the vCPU gets a slot again (as it does after Release).
// It returns the end of the slice (clock ns): the run loop must make the
// guest exit by then. ErrClosed: the vCPU must stop running the guest; it
// then holds no slot.
func (e *Entity) Acquire() (sliceEnd int64, err error) {
	if e.fast() {
		return e.sliceEnd, nil
	}
	end, wait, err := e.begin()
	if !wait {
		return end, err
	}
	<-e.token
	return e.finish()
}

// fast says whether the vCPU holds its slot and its slice lasts: the path
// of nearly every entry, without the lock.
func (e *Entity) fast() bool {
	return e.holding && !e.closedF.Load() && e.g.s.clock() < e.sliceEnd
}

// begin does Acquire's work under the lock. wait: the entity is queued and
// its token will come (it may already have).
func (e *Entity) begin() (sliceEnd int64, wait bool, err error) {
	s := e.g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	switch e.state {
	case running:
		s.charge(e, now)
		if e.closedF.Load() {
			e.holding = false
			e.leaveLocked(now, closedState)
			return 0, false, ErrClosed
		}
		if now < e.sliceEnd {
			return e.sliceEnd, false, nil
		}
		if w := s.best(); w != nil && preferred(w, e) {
			// Hand over: the slot goes to the best waiter, which
			// dispatch picks, and this vCPU queues behind it.
			e.holding = false
			s.busy--
			e.g.active--
			s.enqueue(e, now, false)
			s.dispatch(now)
			return 0, true, nil
		}
		e.sliceEnd = now + s.slice
		return e.sliceEnd, false, nil
	case idle:
		s.enqueue(e, now, true)
		s.dispatch(now)
		return 0, true, nil
	case closedState:
		e.holding = false
		return 0, false, ErrClosed
	default:
		return 0, false, fmt.Errorf("sched: vCPU %s/%s called Acquire while already waiting (from two goroutines?)", e.g.name, e.name)
	}
}

// finish completes Acquire once the token arrived. The granter wrote
// state and sliceEnd before sending it; while the entity runs nobody else
// changes them.
func (e *Entity) finish() (int64, error) {
	if e.state != running {
		return 0, ErrClosed
	}
	e.holding = true
	return e.sliceEnd, nil
}

// Release gives the vCPU's slot back (it halted, or leaves the guest). Its
// time is charged. Without a slot it does nothing.
func (e *Entity) Release() {
	e.holding = false
	s := e.g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.state != running {
		return
	}
	now := s.clock()
	s.charge(e, now)
	next := idle
	if e.closedF.Load() {
		next = closedState
	}
	e.leaveLocked(now, next)
}

// leaveLocked frees the running entity's slot.
func (e *Entity) leaveLocked(now int64, next entityState) {
	s := e.g.s
	e.state = next
	s.busy--
	e.g.active--
	if next == closedState {
		e.unlist()
	}
	s.updateFloors()
	s.dispatch(now)
}

// Close removes this vCPU (it is unplugged, or its VM stops).
func (e *Entity) Close() {
	e.g.s.mu.Lock()
	defer e.g.s.mu.Unlock()
	e.closeLocked()
	e.g.unlistIfDone()
}

func (e *Entity) closeLocked() {
	e.closedF.Store(true)
	switch e.state {
	case idle:
		e.state = closedState
		e.unlist()
	case waitingState:
		s := e.g.s
		e.state = closedState
		e.g.waiting--
		e.g.active--
		s.waiting--
		e.unlist()
		select {
		case e.token <- struct{}{}:
		default:
		}
	}
	// A running entity leaves at its owner's next Acquire or Release.
}

func (e *Entity) unlist() {
	g := e.g
	for i, x := range g.entities {
		if x == e {
			last := len(g.entities) - 1
			g.entities[i] = g.entities[last]
			g.entities[last] = nil
			g.entities = g.entities[:last]
			break
		}
	}
	g.unlistIfDone()
}

// before compares virtual runtimes modulo 2^64.
func before(a, b uint64) bool { return int64(a-b) < 0 }

func maxV(a, b uint64) uint64 {
	if before(a, b) {
		return b
	}
	return a
}

// preferred says whether waiter w should take running entity e's slot,
// whose slice ended: w has no more virtual runtime (on a tie the waiter
// goes first, as it has waited).
func preferred(w, e *Entity) bool {
	if w.g == e.g {
		return !before(e.vruntime, w.vruntime)
	}
	return !before(e.g.vruntime, w.g.vruntime)
}

// enqueue makes e runnable; waking: it slept, so its credit is bounded.
func (s *Scheduler) enqueue(e *Entity, now int64, waking bool) {
	g := e.g
	if waking {
		s.updateFloors()
		if g.active == 0 {
			g.vruntime = maxV(g.vruntime, s.floor-s.credit)
		}
		e.vruntime = maxV(e.vruntime, g.floor-s.credit)
	}
	e.state = waitingState
	e.waitSince = now
	e.seq = s.seq
	s.seq++
	g.waiting++
	g.active++
	s.waiting++
}

// dispatch grants free slots to the best waiters.
func (s *Scheduler) dispatch(now int64) {
	for s.busy < s.cpus && s.waiting > 0 {
		w := s.best()
		if w == nil {
			return
		}
		g := w.g
		w.state = running
		w.sliceEnd = now + s.slice
		w.lastCharge = now
		g.waiting--
		s.waiting--
		s.busy++
		if d := now - w.waitSince; d > 0 {
			w.waitTime.Add(d)
			g.waitTime.Add(d)
		}
		w.switches.Add(1)
		select {
		case w.token <- struct{}{}: // one token per wait: always room
		default:
		}
	}
}

// best is the waiter a free slot goes to, or nil.
func (s *Scheduler) best() *Entity {
	var best *Entity
	for _, g := range s.groups {
		if g.waiting == 0 {
			continue
		}
		var cand *Entity
		for _, e := range g.entities {
			if e.state != waitingState {
				continue
			}
			if cand == nil || before(e.vruntime, cand.vruntime) || (e.vruntime == cand.vruntime && e.seq < cand.seq) {
				cand = e
			}
		}
		if cand == nil {
			continue
		}
		if best == nil || before(g.vruntime, best.g.vruntime) ||
			(g.vruntime == best.g.vruntime && cand.seq < best.seq) {
			best = cand
		}
	}
	return best
}

// charge accounts the time e held its slot since the last charge.
func (s *Scheduler) charge(e *Entity, now int64) {
	ran := now - e.lastCharge
	e.lastCharge = now
	if ran <= 0 {
		return // a clock that stood still or went back charges nothing
	}
	g := e.g
	e.cpuTime.Add(ran)
	g.cpuTime.Add(ran)
	e.vruntime += uint64(ran)
	num := ran*DefaultWeight + g.rem
	g.vruntime += uint64(num / g.weight)
	g.rem = num % g.weight
	s.updateFloors()
}

// updateFloors raises the scheduler's and the groups' least virtual
// runtimes to those of the runnable ones.
func (s *Scheduler) updateFloors() {
	var least uint64
	found := false
	for _, g := range s.groups {
		if g.active == 0 {
			continue
		}
		if !found || before(g.vruntime, least) {
			least, found = g.vruntime, true
		}
		var el uint64
		efound := false
		for _, e := range g.entities {
			if e.state == waitingState || e.state == running {
				if !efound || before(e.vruntime, el) {
					el, efound = e.vruntime, true
				}
			}
		}
		if efound {
			g.floor = maxV(g.floor, el)
		}
	}
	if found {
		s.floor = maxV(s.floor, least)
	}
}
