package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tamavisor/guests/sched"
)

// fakeInst is a run whose end the test decides.
type fakeInst struct {
	id      int
	end     chan Outcome // the guest's own end
	forced  chan string  // ForceStop's reason
	started chan struct{}
	// powerOff: the guest shuts down when its power button is pressed.
	powerOff bool
	panics   bool
	presses  atomic.Int32
	forces   atomic.Int32

	mu    sync.Mutex
	input []byte
	room  int // bytes Input takes per call (0: all)
}

func (f *fakeInst) Run() Outcome {
	close(f.started)
	if f.panics {
		panic("device model bug")
	}
	select {
	case out := <-f.end:
		return out
	case why := <-f.forced:
		return Outcome{End: EndKilled, Reason: why}
	}
}

func (f *fakeInst) PowerButton() {
	f.presses.Add(1)
	if f.powerOff {
		select {
		case f.end <- Outcome{End: EndPowerOff, Reason: "ACPI S5"}:
		default:
		}
	}
}

func (f *fakeInst) ForceStop(why string) {
	f.forces.Add(1)
	select {
	case f.forced <- why:
	default:
	}
}

func (f *fakeInst) Input(p []byte) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(p)
	if f.room > 0 && n > f.room {
		n = f.room
	}
	f.input = append(f.input, p[:n]...)
	return n
}

// fakeVM builds fakeInsts and hands each to the test.
type fakeVM struct {
	mu       sync.Mutex
	n        int
	built    chan *fakeInst
	failNext error
	// configure adjusts each new instance.
	configure func(*fakeInst)
	groups    []*sched.Group
}

func newFakeVM() *fakeVM { return &fakeVM{built: make(chan *fakeInst, 16)} }

func (v *fakeVM) build(g *sched.Group) (Instance, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.groups = append(v.groups, g)
	if err := v.failNext; err != nil {
		v.failNext = nil
		return nil, err
	}
	v.n++
	f := &fakeInst{id: v.n, end: make(chan Outcome, 1), forced: make(chan string, 1), started: make(chan struct{})}
	if v.configure != nil {
		v.configure(f)
	}
	v.built <- f
	return f, nil
}

// next is the next instance built, once it runs.
func (v *fakeVM) next(t *testing.T) *fakeInst {
	t.Helper()
	select {
	case f := <-v.built:
		select {
		case <-f.started:
		case <-time.After(5 * time.Second):
			t.Fatalf("instance %d was built but never run", f.id)
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no instance was built")
	}
	return nil
}

func (v *fakeVM) noneBuilt(t *testing.T) {
	t.Helper()
	select {
	case f := <-v.built:
		t.Fatalf("instance %d was built unexpectedly", f.id)
	case <-time.After(20 * time.Millisecond):
	}
}

// fakeTimers replaces time.AfterFunc: the test fires them.
type fakeTimers struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	d         time.Duration
	f         func()
	cancelled bool
	fired     bool
}

func (ft *fakeTimers) after(d time.Duration, f func()) func() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	t := &fakeTimer{d: d, f: f}
	ft.timers = append(ft.timers, t)
	return func() bool {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		was := !t.cancelled && !t.fired
		t.cancelled = true
		return was
	}
}

// fire runs the pending timers of duration d; it returns how many.
func (ft *fakeTimers) fire(d time.Duration) int {
	ft.mu.Lock()
	var run []func()
	for _, t := range ft.timers {
		if t.d == d && !t.cancelled && !t.fired {
			t.fired = true
			run = append(run, t.f)
		}
	}
	ft.mu.Unlock()
	for _, f := range run {
		f()
	}
	return len(run)
}

func (ft *fakeTimers) pending(d time.Duration) int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	n := 0
	for _, t := range ft.timers {
		if t.d == d && !t.cancelled && !t.fired {
			n++
		}
	}
	return n
}

type changeLog struct {
	mu  sync.Mutex
	all []Change
}

func (c *changeLog) add(ch Change) {
	c.mu.Lock()
	c.all = append(c.all, ch)
	c.mu.Unlock()
}

func (c *changeLog) states(name string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ch := range c.all {
		if ch.Name == name {
			out = append(out, ch.To.String())
		}
	}
	return out
}

type fixture struct {
	m      *Manager
	timers *fakeTimers
	log    *changeLog
}

func newFixture(t *testing.T, cfg Config) *fixture {
	fx := &fixture{timers: &fakeTimers{}, log: &changeLog{}}
	cfg.AfterFunc = fx.timers.after
	cfg.OnChange = fx.log.add
	fx.m = New(cfg)
	t.Cleanup(func() {
		if err := fx.m.Close(5 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return fx
}

func (fx *fixture) add(t *testing.T, name string, v *fakeVM, policy CrashPolicy, max int) {
	t.Helper()
	if err := fx.m.Add(Spec{Name: name, VCPUs: 2, Memory: 64 << 20, OnCrash: policy, MaxRestarts: max, Build: v.build}); err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) wait(t *testing.T, name string, states ...State) {
	t.Helper()
	if _, err := fx.m.Wait(name, 5*time.Second, states...); err != nil {
		t.Fatal(err)
	}
}

func (fx *fixture) info(t *testing.T, name string) Info {
	t.Helper()
	i, err := fx.m.Info(name)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestStartAndGuestPowerOff(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	fx.add(t, "a", v, StopOnCrash, 0)
	if i := fx.info(t, "a"); i.State != Stopped || i.Weight != sched.DefaultWeight || i.VCPUs != 2 {
		t.Errorf("a new VM: %+v", i)
	}
	if err := fx.m.Start("a"); err != nil {
		t.Fatal(err)
	}
	inst := v.next(t)
	fx.wait(t, "a", Running)
	inst.end <- Outcome{End: EndPowerOff, Reason: "ACPI S5"}
	fx.wait(t, "a", Stopped)
	i := fx.info(t, "a")
	if i.LastEnd != "powered off: ACPI S5" || i.Runs != 1 || i.Restarts != 0 {
		t.Errorf("after power-off: %+v", i)
	}
	if got, want := strings.Join(fx.log.states("a"), ","), "starting,running,stopped"; got != want {
		t.Errorf("state changes %s, want %s", got, want)
	}
}

func TestGracefulStop(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	v.configure = func(f *fakeInst) { f.powerOff = true }
	fx.add(t, "a", v, StopOnCrash, 0)
	fx.m.Start("a")
	inst := v.next(t)
	fx.wait(t, "a", Running)
	if err := fx.m.Stop("a"); err != nil {
		t.Fatal(err)
	}
	fx.wait(t, "a", Stopped)
	if inst.presses.Load() != 1 || inst.forces.Load() != 0 {
		t.Errorf("power button pressed %d times, forced %d: want 1 and 0", inst.presses.Load(), inst.forces.Load())
	}
	if fx.timers.pending(DefaultStopTimeout) != 0 {
		t.Error("the force-off timer is still armed after the guest powered off")
	}
	if got, want := strings.Join(fx.log.states("a"), ","), "starting,running,stopping,stopped"; got != want {
		t.Errorf("state changes %s, want %s", got, want)
	}
}

func TestStopForcedAfterTimeout(t *testing.T) {
	fx := newFixture(t, Config{StopTimeout: 7 * time.Second})
	v := newFakeVM() // ignores its power button
	fx.add(t, "a", v, RestartOnCrash, 3)
	fx.m.Start("a")
	inst := v.next(t)
	fx.wait(t, "a", Running)
	fx.m.Stop("a")
	if err := fx.m.Stop("a"); err == nil || !strings.Contains(err.Error(), "already stopping") {
		t.Errorf("second Stop: %v", err)
	}
	if st := fx.info(t, "a").State; st != Stopping {
		t.Fatalf("state %s right after Stop, want stopping", st)
	}
	if n := fx.timers.fire(7 * time.Second); n != 1 {
		t.Fatalf("%d force-off timers fired, want 1", n)
	}
	fx.wait(t, "a", Stopped)
	if inst.presses.Load() != 1 || inst.forces.Load() != 1 {
		t.Errorf("presses %d, forces %d: want 1 and 1", inst.presses.Load(), inst.forces.Load())
	}
	if le := fx.info(t, "a").LastEnd; !strings.Contains(le, "did not power off within 7s") {
		t.Errorf("last end %q", le)
	}
	v.noneBuilt(t) // a forced stop is no crash: no restart
}

func TestKill(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	fx.add(t, "a", v, RestartOnCrash, 3)
	fx.m.Start("a")
	inst := v.next(t)
	fx.wait(t, "a", Running)
	if err := fx.m.Kill("a"); err != nil {
		t.Fatal(err)
	}
	fx.wait(t, "a", Stopped)
	if inst.presses.Load() != 0 || inst.forces.Load() != 1 {
		t.Errorf("presses %d, forces %d: want 0 and 1", inst.presses.Load(), inst.forces.Load())
	}
	if le := fx.info(t, "a").LastEnd; le != "killed: killed by the operator" {
		t.Errorf("last end %q", le)
	}
	v.noneBuilt(t)
	if err := fx.m.Kill("a"); err == nil || !strings.Contains(err.Error(), "already stopped") {
		t.Errorf("Kill of a stopped VM: %v", err)
	}
}

func TestResetAndGuestReboot(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	fx.add(t, "a", v, StopOnCrash, 0)
	fx.m.Start("a")
	first := v.next(t)
	fx.wait(t, "a", Running)
	if err := fx.m.Reset("a"); err != nil {
		t.Fatal(err)
	}
	second := v.next(t)
	fx.wait(t, "a", Running)
	if first.forces.Load() != 1 || second.id != 2 {
		t.Errorf("reset: first forced %d times, second instance id %d", first.forces.Load(), second.id)
	}
	second.end <- Outcome{End: EndReboot, Reason: "i8042 reset"}
	third := v.next(t)
	fx.wait(t, "a", Running)
	i := fx.info(t, "a")
	if i.Runs != 3 || i.Restarts != 0 || third.id != 3 {
		t.Errorf("after a reset and a reboot: runs %d restarts %d (want 3, 0)", i.Runs, i.Restarts)
	}
	if got, want := strings.Join(fx.log.states("a"), ","), "starting,running,restarting,starting,running,restarting,starting,running"; got != want {
		t.Errorf("state changes %s\nwant %s", got, want)
	}
}

func TestCrashRestartLimit(t *testing.T) {
	fx := newFixture(t, Config{RestartDelay: 2 * time.Second})
	v := newFakeVM()
	fx.add(t, "a", v, RestartOnCrash, 2)
	fx.m.Start("a")
	for i := 1; i <= 2; i++ {
		inst := v.next(t)
		fx.wait(t, "a", Running)
		inst.end <- Outcome{End: EndCrash, Reason: "triple fault"}
		fx.wait(t, "a", Restarting)
		v.noneBuilt(t) // the delay holds it
		for fx.timers.fire(2*time.Second) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	inst := v.next(t)
	fx.wait(t, "a", Running)
	if r := fx.info(t, "a").Restarts; r != 2 {
		t.Errorf("restarts %d, want 2", r)
	}
	inst.end <- Outcome{End: EndFailed, Reason: "VMRUN failed"}
	fx.wait(t, "a", Crashed)
	v.noneBuilt(t)
	i := fx.info(t, "a")
	if !strings.Contains(i.LastEnd, "VMRUN failed") || i.Runs != 3 {
		t.Errorf("after the last crash: %+v", i)
	}
	// The operator's start gives it its restarts back.
	if err := fx.m.Start("a"); err != nil {
		t.Fatal(err)
	}
	v.next(t)
	fx.wait(t, "a", Running)
	if r := fx.info(t, "a").Restarts; r != 0 {
		t.Errorf("restarts %d after the operator's start, want 0", r)
	}
}

func TestCrashStopPolicy(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	fx.add(t, "a", v, StopOnCrash, 5)
	fx.m.Start("a")
	inst := v.next(t)
	fx.wait(t, "a", Running)
	inst.end <- Outcome{End: EndCrash, Reason: "triple fault"}
	fx.wait(t, "a", Crashed)
	v.noneBuilt(t)
	if le := fx.info(t, "a").LastEnd; le != "crashed: triple fault" {
		t.Errorf("last end %q", le)
	}
}

// One VM crashing (by a panic in its own code, even) leaves the other
// running, with its instance untouched.
func TestCrashIsolation(t *testing.T) {
	fx := newFixture(t, Config{})
	va, vb := newFakeVM(), newFakeVM()
	fx.add(t, "a", va, StopOnCrash, 0)
	fx.add(t, "b", vb, StopOnCrash, 0)
	fx.m.Start("b")
	b := vb.next(t)
	fx.wait(t, "b", Running)

	va.configure = func(f *fakeInst) { f.panics = true }
	fx.m.Start("a")
	va.next(t)
	fx.wait(t, "a", Crashed)
	if le := fx.info(t, "a").LastEnd; !strings.Contains(le, "panicked: device model bug") {
		t.Errorf("a's last end %q", le)
	}

	va.configure = nil
	va.failNext = errors.New("not enough memory for 64 MiB")
	fx.m.Start("a")
	fx.wait(t, "a", Crashed)
	if le := fx.info(t, "a").LastEnd; le != "not started: not enough memory for 64 MiB" {
		t.Errorf("a's last end %q", le)
	}

	if st := fx.info(t, "b").State; st != Running {
		t.Errorf("b is %s after a crashed, want running", st)
	}
	if b.forces.Load() != 0 || b.presses.Load() != 0 {
		t.Error("a's crash touched b's instance")
	}
	if n, err := fx.m.Input("b", []byte("ok")); err != nil || n != 2 {
		t.Errorf("b's console after a's crash: %d, %v", n, err)
	}
	for _, c := range fx.log.all {
		if c.Name == "b" && c.To != Starting && c.To != Running {
			t.Errorf("b changed to %s", c.To)
		}
	}
}

func TestStopDuringRestartDelay(t *testing.T) {
	fx := newFixture(t, Config{RestartDelay: time.Hour})
	v := newFakeVM()
	fx.add(t, "a", v, RestartOnCrash, 3)
	fx.m.Start("a")
	inst := v.next(t)
	fx.wait(t, "a", Running)
	inst.end <- Outcome{End: EndCrash, Reason: "oops"}
	fx.wait(t, "a", Restarting)
	if err := fx.m.Stop("a"); err != nil {
		t.Fatal(err)
	}
	fx.wait(t, "a", Stopped)
	v.noneBuilt(t)
}

func TestInputRouting(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	fx.add(t, "a", v, StopOnCrash, 0)
	if _, err := fx.m.Input("a", []byte("x")); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("input to a stopped VM: %v", err)
	}
	v.configure = func(f *fakeInst) { f.room = 3 }
	fx.m.Start("a")
	inst := v.next(t)
	fx.wait(t, "a", Running)
	n, err := fx.m.Input("a", []byte("hello"))
	if err != nil || n != 3 || string(inst.input) != "hel" {
		t.Errorf("Input = %d, %v; the guest got %q", n, err, inst.input)
	}
}

func TestErrors(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	fx.add(t, "web", v, StopOnCrash, 0)
	fx.add(t, "db", v, StopOnCrash, 0)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fx.m.Start("nope"), `no VM named "nope" (VMs: web, db)`},
		{fx.m.Stop("web"), "vm web is already stopped"},
		{fx.m.Reset("web"), "vm web is stopped: only a running VM can be reset"},
		{fx.m.Add(Spec{Name: "web", Build: v.build}), "already exists"},
		{fx.m.Add(Spec{Name: "two words", Build: v.build}), "without spaces"},
		{fx.m.Add(Spec{Name: "x"}), "no Build"},
		{fx.m.Add(Spec{Name: "x", Build: v.build, MaxRestarts: -1}), "negative"},
		{fx.m.SetWeight("web", 0), "outside"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", tc.err, tc.want)
		}
	}
	fx.m.Start("web")
	v.next(t)
	fx.wait(t, "web", Running)
	if err := fx.m.Start("web"); err == nil || err.Error() != "vm web is already running" {
		t.Errorf("Start of a running VM: %v", err)
	}
	empty := New(Config{})
	if err := empty.Start("x"); err == nil || !strings.Contains(err.Error(), "no VMs are configured") {
		t.Errorf("empty manager: %v", err)
	}
	if _, err := ParseCrashPolicy("reboot"); err == nil {
		t.Error("ParseCrashPolicy accepted reboot")
	}
	if p, err := ParseCrashPolicy("restart"); err != nil || p != RestartOnCrash || p.String() != "restart" {
		t.Errorf("ParseCrashPolicy(restart) = %v, %v", p, err)
	}
}

// CPU time comes from the VM's scheduling group, over all its runs.
func TestCPUTimeFromScheduler(t *testing.T) {
	var now atomic.Int64
	s, err := sched.New(sched.Config{CPUs: 1, Clock: now.Load})
	if err != nil {
		t.Fatal(err)
	}
	fx := newFixture(t, Config{Scheduler: s})
	v := newFakeVM()
	if err := fx.m.Add(Spec{Name: "a", Weight: 300, Build: v.build}); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		fx.m.Start("a")
		inst := v.next(t)
		fx.wait(t, "a", Running)
		g := v.groups[len(v.groups)-1]
		if g == nil || g.Name() != "a" || g.Weight() != 300 {
			t.Fatalf("Build got group %v", g)
		}
		e, err := g.NewEntity(fmt.Sprint(run))
		if err != nil {
			t.Fatal(err)
		}
		e.Acquire()
		now.Add(int64(3 * time.Millisecond))
		e.Release()
		e.Close()
		inst.end <- Outcome{End: EndPowerOff}
		fx.wait(t, "a", Stopped)
	}
	i := fx.info(t, "a")
	if i.CPUTime != 6*time.Millisecond || i.Weight != 300 {
		t.Errorf("CPU time %v weight %d, want 6ms over two runs and 300", i.CPUTime, i.Weight)
	}
	if err := fx.m.SetWeight("a", 50); err != nil || fx.info(t, "a").Weight != 50 {
		t.Errorf("SetWeight: %v, weight %d", err, fx.info(t, "a").Weight)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	m := New(Config{RestartDelay: time.Hour})
	var vs []*fakeVM
	for i := 0; i < 3; i++ {
		v := newFakeVM()
		vs = append(vs, v)
		m.Add(Spec{Name: fmt.Sprint("vm", i), Build: v.build, OnCrash: RestartOnCrash, MaxRestarts: 1})
		m.Start(fmt.Sprint("vm", i))
	}
	for _, v := range vs {
		v.next(t)
	}
	if err := m.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, i := range m.List() {
		if i.State != Stopped {
			t.Errorf("%s is %s after Close", i.Name, i.State)
		}
	}
	if err := m.Start("vm0"); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

// A VM whose run never ends, even when forced, is reported by Close.
func TestCloseReportsStuckVM(t *testing.T) {
	m := New(Config{})
	block := make(chan struct{})
	defer close(block)
	m.Add(Spec{Name: "stuck", Build: func(*sched.Group) (Instance, error) { return stuckInst{block}, nil }})
	m.Start("stuck")
	if _, err := m.Wait("stuck", 5*time.Second, Running); err != nil {
		t.Fatal(err)
	}
	err := m.Close(50 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Errorf("Close = %v, want it to name the stuck VM", err)
	}
}

type stuckInst struct{ block chan struct{} }

func (s stuckInst) Run() Outcome     { <-s.block; return Outcome{} }
func (stuckInst) PowerButton()       {}
func (stuckInst) ForceStop(string)   {}
func (stuckInst) Input(p []byte) int { return len(p) }

// Stopped while it is being built: the instance is forced off before its
// guest runs, and the VM ends stopped.
func TestStopWhileStarting(t *testing.T) {
	fx := newFixture(t, Config{})
	v := newFakeVM()
	gate := make(chan struct{})
	building := make(chan struct{})
	if err := fx.m.Add(Spec{Name: "a", Build: func(g *sched.Group) (Instance, error) {
		close(building)
		<-gate
		return v.build(g)
	}}); err != nil {
		t.Fatal(err)
	}
	fx.m.Start("a")
	<-building
	if err := fx.m.Stop("a"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	inst := v.next(t)
	fx.wait(t, "a", Stopped)
	if inst.forces.Load() != 1 || inst.presses.Load() != 0 {
		t.Errorf("forced %d, pressed %d: want 1 and 0", inst.forces.Load(), inst.presses.Load())
	}
	if got := strings.Join(fx.log.states("a"), ","); got != "starting,stopping,stopped" {
		t.Errorf("state changes %s", got)
	}
}
