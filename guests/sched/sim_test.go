package sched

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
	"time"
)

// The simulation drives the real Scheduler from one goroutine with a
// virtual clock: each simulated vCPU does what the run loop does (Acquire
// before an entry, Release when it halts), except that where Acquire would
// block the simulation notes the vCPU as waiting and later receives its
// grant token without blocking. Everything Acquire does besides that
// receive (fast path, begin, finish) is the production code.

const ms = int64(time.Millisecond)

// behaviour is what a simulated guest does.
type behaviour struct {
	// exitEvery: the guest exits on its own this often while running
	// (port I/O, its timer). 0: it spins with interrupts disabled and
	// exits only when the host's preemption timer fires at the slice end.
	exitEvery int64
	// runFor, sleepFor: the guest halts after running runFor ns of CPU
	// time and sleeps sleepFor ns of wall time (0: it never halts).
	runFor, sleepFor int64
	// startAt: the vCPU first becomes runnable then.
	startAt int64
}

type simState int

const (
	simNotStarted simState = iota
	simWaiting
	simRunning
	simHalted
	simGone
)

type simVCPU struct {
	e     *Entity
	b     behaviour
	st    simState
	slice int64 // end of the granted slice
	exit  int64 // when the preemption timer's exit comes: slice + lateness
	since int64 // running since, or waiting since
	burst int64 // CPU time in the current burst (runFor)
	next  int64 // next own exit
	wake  int64

	ran         int64 // the simulation's own measure of slot time
	ranInWindow int64
	maxWait     int64
	firstWait   int64
	grants      int
}

type sim struct {
	t      *testing.T
	now    int64
	s      *Scheduler
	vcpus  []*simVCPU
	groups []*Group
	// window, when set, collects ranInWindow for [winFrom, winTo).
	winFrom, winTo int64
	busySum        int64 // slot-ns held, over the run
	// rng, when set, makes exits irregular: own exits come at random
	// intervals around exitEvery, the preemption timer's exit up to late
	// ns after the slice end (interrupt latency, a long world switch).
	rng  *rand.Rand
	late int64
}

func (sm *sim) setSlice(v *simVCPU, end int64) {
	v.slice, v.exit = end, end
	if sm.rng != nil && sm.late > 0 {
		v.exit += sm.rng.Int63n(sm.late + 1)
	}
}

func (sm *sim) nextOwnExit(v *simVCPU) int64 {
	if sm.rng != nil {
		return sm.now + 1 + sm.rng.Int63n(2*v.b.exitEvery)
	}
	return sm.now + v.b.exitEvery
}

func newSim(t *testing.T, cpus int, slice time.Duration) *sim {
	t.Helper()
	sm := &sim{t: t}
	s, err := New(Config{CPUs: cpus, Slice: slice, Clock: func() int64 { return sm.now }})
	if err != nil {
		t.Fatal(err)
	}
	sm.s = s
	return sm
}

// vm adds a group with n vCPUs behaving alike.
func (sm *sim) vm(name string, weight, n int, b behaviour) *Group {
	sm.t.Helper()
	g, err := sm.s.NewGroup(name, weight)
	if err != nil {
		sm.t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e, err := g.NewEntity(fmt.Sprintf("%s/%d", name, i))
		if err != nil {
			sm.t.Fatal(err)
		}
		sm.vcpus = append(sm.vcpus, &simVCPU{e: e, b: b})
	}
	sm.groups = append(sm.groups, g)
	return g
}

func (sm *sim) running() int {
	n := 0
	for _, v := range sm.vcpus {
		if v.st == simRunning {
			n++
		}
	}
	return n
}

// nextEvent is the time of v's next action.
func (v *simVCPU) nextEvent() int64 {
	switch v.st {
	case simNotStarted:
		return v.b.startAt
	case simHalted:
		return v.wake
	case simRunning:
		t := v.exit
		if v.b.exitEvery > 0 && v.next < t {
			t = v.next
		}
		if v.b.runFor > 0 {
			if end := v.since + (v.b.runFor - v.burst); end < t {
				t = end
			}
		}
		return t
	}
	return math.MaxInt64
}

// stopRunning accounts a running vCPU's time up to now.
func (sm *sim) stopRunning(v *simVCPU) {
	d := sm.now - v.since
	v.ran += d
	v.burst += d
	sm.busySum += d
	lo, hi := max(v.since, sm.winFrom), min(sm.now, sm.winTo)
	if hi > lo {
		v.ranInWindow += hi - lo
	}
	v.since = sm.now
}

// acquire is Acquire without the blocking receive.
func (sm *sim) acquire(v *simVCPU) {
	if v.e.fast() {
		return
	}
	if v.st == simRunning {
		sm.stopRunning(v)
	}
	end, wait, err := v.e.begin()
	switch {
	case err != nil:
		v.st = simGone
	case wait:
		v.st, v.since = simWaiting, sm.now
	default:
		if v.st != simRunning {
			v.since = sm.now
		}
		v.st = simRunning
		sm.setSlice(v, end)
	}
}

// poll delivers grant tokens, as the blocked goroutines would take them.
func (sm *sim) poll() {
	for _, v := range sm.vcpus {
		if v.st != simWaiting {
			continue
		}
		select {
		case <-v.e.token:
		default:
			continue
		}
		end, err := v.e.finish()
		if err != nil {
			v.st = simGone
			continue
		}
		w := sm.now - v.since
		v.maxWait = max(v.maxWait, w)
		if v.grants == 0 {
			v.firstWait = w
		}
		v.st, v.since, v.grants = simRunning, sm.now, v.grants+1
		sm.setSlice(v, end)
		if v.b.exitEvery > 0 {
			v.next = sm.nextOwnExit(v)
		}
	}
}

// check asserts the invariants after every step: no more holders than
// slots, the scheduler agrees, and no slot idles while a vCPU waits.
func (sm *sim) check() {
	r := sm.running()
	if r > sm.s.cpus {
		sm.t.Fatalf("t=%d: %d vCPUs hold a slot, only %d slots", sm.now, r, sm.s.cpus)
	}
	if b := sm.s.Busy(); b != r {
		sm.t.Fatalf("t=%d: the scheduler counts %d busy slots, the simulation %d", sm.now, b, r)
	}
	for _, v := range sm.vcpus {
		if v.st == simWaiting && r < sm.s.cpus {
			sm.t.Fatalf("t=%d: %s waits while %d of %d slots are free", sm.now, v.e.name, sm.s.cpus-r, sm.s.cpus)
		}
		if v.st == simRunning && v.exit <= sm.now {
			sm.t.Fatalf("t=%d: %s runs past its preemption exit %d", sm.now, v.e.name, v.exit)
		}
	}
}

func (sm *sim) run(until int64) {
	for {
		t := int64(math.MaxInt64)
		for _, v := range sm.vcpus {
			t = min(t, v.nextEvent())
		}
		if t > until {
			t = until
		}
		if t < sm.now {
			sm.t.Fatalf("time went back: %d < %d", t, sm.now)
		}
		sm.now = t
		if t == until {
			for _, v := range sm.vcpus {
				if v.st == simRunning {
					sm.stopRunning(v)
				}
			}
			return
		}
		for _, v := range sm.vcpus {
			if v.nextEvent() != t {
				continue
			}
			switch v.st {
			case simNotStarted, simHalted:
				v.burst = 0
				sm.acquire(v)
			case simRunning:
				if v.b.runFor > 0 && v.since+(v.b.runFor-v.burst) == t {
					sm.stopRunning(v)
					v.e.Release()
					v.st, v.wake = simHalted, t+v.b.sleepFor
					continue
				}
				if v.b.exitEvery > 0 && v.next <= t {
					v.next = sm.nextOwnExit(v)
				}
				sm.acquire(v)
			}
		}
		sm.poll()
		sm.check()
	}
}

// groupRan sums the simulation's own measure per group, and checks that
// the scheduler's accounting agrees with it.
func (sm *sim) groupRan(g *Group) int64 {
	var n int64
	for _, v := range sm.vcpus {
		if v.e.g == g {
			n += v.ran
		}
	}
	if acct := int64(g.CPUTime()); acct != n {
		sm.t.Errorf("vm %s: the scheduler accounts %d ns of CPU time, the simulation measured %d", g.name, acct, n)
	}
	return n
}

// waterfill is each group's expected share of the slots (in CPUs): weight
// proportional, capped at its vCPU count, the surplus redistributed.
func waterfill(cpus float64, weights []float64, caps []float64) []float64 {
	share := make([]float64, len(weights))
	capped := make([]bool, len(weights))
	for {
		left, wsum := cpus, 0.0
		for i := range weights {
			if capped[i] {
				left -= caps[i]
			} else {
				wsum += weights[i]
			}
		}
		changed := false
		for i := range weights {
			if capped[i] {
				share[i] = caps[i]
				continue
			}
			share[i] = left * weights[i] / wsum
			if share[i] > caps[i] {
				capped[i], changed = true, true
			}
		}
		if !changed {
			return share
		}
	}
}

// assertShares checks each group's CPU time over duration against its
// expected share, within ±10%, and returns the worst relative deviation.
func (sm *sim) assertShares(duration int64, expected []float64) float64 {
	worst := 0.0
	for i, g := range sm.groups {
		got := float64(sm.groupRan(g)) / float64(duration)
		dev := got/expected[i] - 1
		sm.t.Logf("vm %-4s weight %5d: %.4f CPUs, expected %.4f (%+.2f%%)", g.name, g.weight, got, expected[i], 100*dev)
		if math.Abs(dev) > 0.10 {
			sm.t.Errorf("vm %s got %.4f CPUs, expected %.4f ±10%%", g.name, got, expected[i])
		}
		worst = max(worst, math.Abs(dev))
	}
	return worst
}

const simDuration = 10 * 1000 * ms // 10 s of virtual time

func TestFairnessEqualWeights(t *testing.T) {
	sm := newSim(t, 2, 0)
	for _, n := range []string{"a", "b", "c", "d"} {
		sm.vm(n, 100, 1, behaviour{})
	}
	sm.run(simDuration)
	worst := sm.assertShares(simDuration, []float64{0.5, 0.5, 0.5, 0.5})
	t.Logf("worst deviation %.3f%%", 100*worst)
	for _, v := range sm.vcpus {
		// Four spinners on two slots: a waiter is next or second in
		// line, so it waits at most about two slices.
		if v.maxWait > 2*sm.s.slice+1 {
			t.Errorf("%s waited %v at once; at most two slices expected", v.e.name, time.Duration(v.maxWait))
		}
	}
}

func TestFairnessWeights1234(t *testing.T) {
	sm := newSim(t, 4, 0)
	weights := []int{100, 200, 300, 400}
	for i, w := range weights {
		sm.vm(fmt.Sprintf("w%d", w), w, 4, behaviour{exitEvery: int64(i+1) * 300 * int64(time.Microsecond)})
	}
	sm.run(simDuration)
	worst := sm.assertShares(simDuration, []float64{0.4, 0.8, 1.2, 1.6})
	t.Logf("worst deviation %.3f%%", 100*worst)
}

func TestFairnessWeights12OneCPU(t *testing.T) {
	sm := newSim(t, 1, 0)
	sm.vm("one", 100, 1, behaviour{})
	sm.vm("two", 200, 1, behaviour{})
	sm.run(simDuration)
	worst := sm.assertShares(simDuration, []float64{1.0 / 3, 2.0 / 3})
	t.Logf("worst deviation %.3f%%", 100*worst)
}

// The weight belongs to the VM: a VM with three vCPUs gets no more than
// one with one, and a guest spinning with interrupts off (it never exits
// on its own) gets no more than guests exiting all the time.
func TestFairnessPerVMAndSpinner(t *testing.T) {
	sm := newSim(t, 3, 0)
	sm.vm("spin", 100, 1, behaviour{})
	sm.vm("io1", 100, 2, behaviour{exitEvery: 50 * int64(time.Microsecond)})
	sm.vm("io2", 100, 3, behaviour{exitEvery: 20 * int64(time.Microsecond)})
	sm.vm("mix", 100, 1, behaviour{exitEvery: 7 * ms})
	sm.vm("big", 100, 2, behaviour{})
	sm.run(simDuration)
	worst := sm.assertShares(simDuration, []float64{0.6, 0.6, 0.6, 0.6, 0.6})
	t.Logf("worst deviation %.3f%%", 100*worst)
}

// A VM cannot use more CPUs than it has vCPUs however heavy its weight:
// what it cannot use goes to the others, in their weights' ratio.
func TestFairnessCappedByVCPUs(t *testing.T) {
	sm := newSim(t, 2, 0)
	sm.vm("heavy", 1000, 1, behaviour{})
	sm.vm("wide", 100, 4, behaviour{})
	sm.vm("small", 100, 1, behaviour{})
	sm.run(simDuration)
	exp := waterfill(2, []float64{1000, 100, 100}, []float64{1, 4, 1})
	worst := sm.assertShares(simDuration, exp)
	t.Logf("worst deviation %.3f%%", 100*worst)
}

// Halted vCPUs hold no slot: the spinners use everything the halting VM
// leaves, nothing idles while someone waits (checked at every step), and
// the two spinners split the rest evenly.
func TestHaltedUsesNoSlot(t *testing.T) {
	sm := newSim(t, 2, 0)
	halter := sm.vm("halt", 100, 2, behaviour{runFor: 1 * ms, sleepFor: 3 * ms})
	s1 := sm.vm("s1", 100, 1, behaviour{})
	s2 := sm.vm("s2", 100, 1, behaviour{})
	sm.run(simDuration)
	h, a, b := sm.groupRan(halter), sm.groupRan(s1), sm.groupRan(s2)
	if total := h + a + b; total != 2*simDuration {
		t.Errorf("slots were used %d ns of %d: a slot idled although spinners were runnable", total, 2*simDuration)
	}
	// The halter wants at most 2 × 1/4 CPU; it gets less as it waits for
	// a slice end on each wake-up, but not nothing.
	hs := float64(h) / float64(simDuration)
	if hs > 0.5 || hs < 0.2 {
		t.Errorf("the halting VM got %.3f CPUs; it asks for at most 0.5 and waits at most a slice per wake-up", hs)
	}
	if d := math.Abs(float64(a)/float64(b) - 1); d > 0.10 {
		t.Errorf("spinners got %d and %d ns: %.1f%% apart", a, b, 100*d)
	}
	t.Logf("halter %.3f CPUs, spinners %.3f and %.3f", hs, float64(a)/float64(simDuration), float64(b)/float64(simDuration))
	for _, v := range sm.vcpus[:2] {
		if v.maxWait > sm.s.slice+1 {
			t.Errorf("%s waited %v after waking; a sleeper gets the first slot whose slice ends", v.e.name, time.Duration(v.maxWait))
		}
	}
}

// A vCPU that slept for long, then spins, gets one slice of credit at
// most: it does not take the CPU for the time it slept.
func TestWokenSleeperDoesNotMonopolize(t *testing.T) {
	sm := newSim(t, 1, 0)
	wakeAt := 5 * 1000 * ms
	window := 200 * ms
	sm.winFrom, sm.winTo = wakeAt, wakeAt+window
	for _, n := range []string{"a", "b", "c"} {
		sm.vm(n, 100, 1, behaviour{})
	}
	sleeper := sm.vm("z", 100, 1, behaviour{startAt: wakeAt})
	sm.run(wakeAt + window)
	z := sm.vcpus[3]
	fair := window / 4
	slice := sm.s.slice
	if z.ranInWindow > fair+2*slice {
		t.Errorf("the woken sleeper ran %v of the %v after waking; a fair share is %v (plus at most two slices)",
			time.Duration(z.ranInWindow), time.Duration(window), time.Duration(fair))
	}
	if z.ranInWindow < fair-2*slice {
		t.Errorf("the woken sleeper ran only %v of %v; a fair share is %v", time.Duration(z.ranInWindow), time.Duration(window), time.Duration(fair))
	}
	for _, v := range sm.vcpus[:3] {
		if v.ranInWindow < fair-2*slice {
			t.Errorf("%s ran %v in the %v after the sleeper woke; its fair share is %v", v.e.name, time.Duration(v.ranInWindow), time.Duration(window), time.Duration(fair))
		}
	}
	if z.firstWait > slice {
		t.Errorf("the sleeper waited %v for its first slot; at most one slice expected", time.Duration(z.firstWait))
	}
	if n := sleeper.Name(); n != "z" {
		t.Errorf("group name %q", n)
	}
}

// A guest spinning with interrupts disabled on the only CPU cannot starve
// an interactive one: the interactive vCPU gets a slot within one slice of
// waking, every time.
func TestSpinnerCannotStarve(t *testing.T) {
	sm := newSim(t, 1, 0)
	sm.vm("spin", 10000, 1, behaviour{}) // the heaviest weight there is
	sm.vm("shell", 100, 1, behaviour{runFor: 100 * int64(time.Microsecond), sleepFor: 10 * ms, exitEvery: 10 * int64(time.Microsecond)})
	sm.run(simDuration)
	sh := sm.vcpus[1]
	if sh.maxWait > sm.s.slice {
		t.Errorf("the interactive vCPU waited %v at once; one slice (%v) at most", time.Duration(sh.maxWait), time.Duration(sm.s.slice))
	}
	// It sleeps 10 ms, waits at most a slice, runs 100 µs.
	if want := int(simDuration / (10*ms + sm.s.slice + 100*int64(time.Microsecond))); sh.grants < want {
		t.Errorf("the interactive vCPU ran %d times in %v; at least %d expected", sh.grants, time.Duration(simDuration), want)
	}
}

func TestSetWeightTakesEffect(t *testing.T) {
	sm := newSim(t, 1, 0)
	a := sm.vm("a", 100, 1, behaviour{})
	sm.vm("b", 100, 1, behaviour{})
	sm.run(1000 * ms)
	if err := a.SetWeight(300); err != nil {
		t.Fatal(err)
	}
	before := [2]int64{sm.vcpus[0].ran, sm.vcpus[1].ran}
	sm.run(5000 * ms)
	ga, gb := sm.vcpus[0].ran-before[0], sm.vcpus[1].ran-before[1]
	if r := float64(ga) / float64(gb); math.Abs(r/3-1) > 0.10 {
		t.Errorf("after SetWeight(300) vs 100 the ratio is %.3f, want 3 ±10%%", r)
	}
	if err := a.SetWeight(0); err == nil {
		t.Error("SetWeight(0) was accepted")
	}
}

// Closing a group while its vCPUs wait or run: waiters leave at once, the
// runner at its next Acquire; the slot goes to the others.
func TestSimCloseFreesSlots(t *testing.T) {
	sm := newSim(t, 1, 0)
	a := sm.vm("a", 100, 2, behaviour{})
	sm.vm("b", 100, 1, behaviour{})
	sm.run(100 * ms)
	a.Close()
	sm.poll()
	before := sm.vcpus[2].ran
	sm.run(200 * ms)
	for _, v := range sm.vcpus[:2] {
		if v.st != simGone {
			t.Errorf("%s: state %d after its group closed, want gone", v.e.name, v.st)
		}
	}
	if got := sm.vcpus[2].ran - before; got < 100*ms-sm.s.slice {
		t.Errorf("b ran %v of the 100 ms after a closed; the freed slot should be its", time.Duration(got))
	}
	if n := len(sm.s.groups); n != 1 {
		t.Errorf("%d groups listed after one closed, want 1", n)
	}
}

// Irregular guests: random vCPU counts, weights and behaviours, exits at
// random times, the preemption exit late by up to 200 µs. Every VM
// spins (is always runnable), so the expected shares are the weights',
// capped by vCPU counts.
func TestFairnessRandomized(t *testing.T) {
	worstAll := 0.0
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			cpus := 1 + rng.Intn(8)
			sm := newSim(t, cpus, time.Duration(1+rng.Intn(10))*time.Millisecond)
			sm.rng, sm.late = rng, 200*int64(time.Microsecond)
			nvm := 2 + rng.Intn(6)
			var weights, caps []float64
			for i := 0; i < nvm; i++ {
				w := []int{25, 50, 100, 100, 200, 300, 400, 800}[rng.Intn(8)]
				n := 1 + rng.Intn(4)
				var b behaviour
				if rng.Intn(3) > 0 {
					b.exitEvery = int64(1+rng.Intn(3000)) * int64(time.Microsecond)
				}
				sm.vm(fmt.Sprintf("v%d", i), w, n, b)
				weights, caps = append(weights, float64(w)), append(caps, float64(n))
			}
			sm.run(simDuration)
			worst := sm.assertShares(simDuration, waterfill(float64(cpus), weights, caps))
			t.Logf("%d CPUs, %d VMs, slice %v: worst deviation %.3f%%", cpus, nvm, sm.s.Slice(), 100*worst)
			worstAll = max(worstAll, worst)
		})
	}
	t.Logf("worst deviation over all seeds %.3f%%", 100*worstAll)
}
