// Package lifecycle starts, stops, resets and restarts VMs, one supervisor
// goroutine per running VM, and keeps what the operator sees of them:
// state, restarts, why the last run ended, CPU time.
//
// # States
//
//	stopped, crashed → starting    start
//	starting → running             the instance was built
//	starting → crashed             the build failed
//	running → stopping             stop (the power button is pressed), kill
//	stopping → stopped             the run ended: the guest powered off, or
//	                               was forced off (kill, or StopTimeout after stop)
//	running → stopped              the guest powered off by itself
//	running → restarting           the guest rebooted; reset; a crash with
//	                               on_crash = restart and restarts left
//	restarting → starting          at once, or RestartDelay after a crash
//	running → crashed              a crash with on_crash = stop, or no
//	                               restarts left
//
// A VM is built afresh for every run (Spec.Build: memory, nested page
// tables, devices, vCPUs), so a restart never inherits a crashed guest's
// state. A guest's reboot request and the operator's reset start a new run
// without counting as a crash; a crash counts against Spec.MaxRestarts,
// and the count goes back to zero when the operator starts the VM. Between
// a crash and its restart the supervisor waits Config.RestartDelay, so a
// guest that crashes at once does not spin the CPU.
//
// Graceful stop presses the guest's ACPI power button (Instance.PowerButton:
// PWRBTN_STS in the PM1 status register, then an SCI; ACPI 6.4 §4.8.4.1.1,
// Table 4.11);
// a guest that has not powered off Config.StopTimeout later is stopped by
// force. Kill forces at once.
//
// # Isolation
//
// Each VM's run is its own goroutine; the manager's lock is never held
// while a guest runs or is built. A panic in one VM's build or run (a bug
// in a device model, say) is recovered and ends that run as a crash: the
// other VMs go on untouched.
package lifecycle

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"tamavisor/guests/sched"
)

// State of a VM.
type State int32

const (
	Stopped State = iota
	Starting
	Running
	Stopping
	Crashed
	Restarting
)

var stateNames = [...]string{"stopped", "starting", "running", "stopping", "crashed", "restarting"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Active says whether the VM has a run under way (it uses memory and may
// use CPU time).
func (s State) Active() bool { return s != Stopped && s != Crashed }

// CrashPolicy is what happens when a guest crashes (configuration key
// on_crash).
type CrashPolicy uint8

const (
	// StopOnCrash leaves the VM crashed, for the operator to look at.
	StopOnCrash CrashPolicy = iota
	// RestartOnCrash starts it again, up to Spec.MaxRestarts times.
	RestartOnCrash
)

func (p CrashPolicy) String() string {
	if p == RestartOnCrash {
		return "restart"
	}
	return "stop"
}

// ParseCrashPolicy reads "stop" or "restart".
func ParseCrashPolicy(s string) (CrashPolicy, error) {
	switch s {
	case "stop":
		return StopOnCrash, nil
	case "restart":
		return RestartOnCrash, nil
	}
	return 0, fmt.Errorf("on_crash %q: want \"stop\" or \"restart\"", s)
}

// End is how a run ended.
type End uint8

const (
	// EndPowerOff: the guest switched itself off (ACPI S5 sleep state,
	// the debug-exit port): a clean stop.
	EndPowerOff End = iota
	// EndReboot: the guest asked for a reset (ACPI reset register, i8042
	// reset pulse, port CF9h): it is booted again, not counted as a crash.
	EndReboot
	// EndKilled: the run ended because ForceStop was called.
	EndKilled
	// EndCrash: the guest faulted (triple fault, refused entry, an access
	// nothing emulates).
	EndCrash
	// EndFailed: the hypervisor could not go on running it (an engine
	// error). Treated as a crash.
	EndFailed
)

var endNames = [...]string{"powered off", "rebooted", "killed", "crashed", "failed"}

func (e End) String() string {
	if int(e) < len(endNames) {
		return endNames[e]
	}
	return fmt.Sprintf("end(%d)", e)
}

// Outcome is how and why a run ended.
type Outcome struct {
	End    End
	Reason string
}

// Instance is one run of a VM: the machine the lead builds (memory, nested
// page tables, devices, vCPUs joined to the VM's scheduling group).
type Instance interface {
	// Run runs the guest until it ends and releases what the run used
	// (vCPUs leave the scheduler: Entity.Release, Entity.Close). When
	// ForceStop was called before Run, Run returns at once with
	// EndKilled.
	Run() Outcome
	// PowerButton presses the guest's ACPI power button (PM1 status
	// PWRBTN_STS, then an SCI). It must not block.
	PowerButton()
	// ForceStop ends the run: every vCPU leaves the guest at its next
	// exit (at the latest its slice end) and Run returns EndKilled with
	// this reason. It must not block, and may be called more than once.
	ForceStop(reason string)
	// Input gives operator keystrokes to the guest's console and says how
	// many it took (a full UART FIFO takes fewer).
	Input(p []byte) int
}

// Spec is one VM as configured.
type Spec struct {
	Name   string
	VCPUs  int
	Memory uint64 // bytes
	// Weight is the VM's share of the CPUs (sched.DefaultWeight when 0).
	Weight      int
	OnCrash     CrashPolicy
	MaxRestarts int
	// Build makes a fresh instance for one run. group is the VM's
	// scheduling group (nil without a scheduler): each vCPU joins it with
	// group.NewEntity.
	Build func(group *sched.Group) (Instance, error)
}

// Defaults of Config.
const (
	DefaultStopTimeout  = 30 * time.Second
	DefaultRestartDelay = time.Second
)

// Config sets up a Manager.
type Config struct {
	// Scheduler, when set, gets a group per VM with the VM's weight; the
	// VM's CPU time comes from it.
	Scheduler *sched.Scheduler
	// StopTimeout is how long a stopping guest has to power off before it
	// is forced (DefaultStopTimeout when 0).
	StopTimeout time.Duration
	// RestartDelay is the pause between a crash and its restart
	// (DefaultRestartDelay when 0; negative: none).
	RestartDelay time.Duration
	// AfterFunc runs f after d and returns a function that cancels it
	// (time.AfterFunc when nil; tests pass a fake).
	AfterFunc func(d time.Duration, f func()) (cancel func() bool)
	// OnChange, when set, is told every state change, in order. It is
	// called with the manager's lock held: it must not call the Manager
	// and must not block for long (printing a line is fine).
	OnChange func(Change)
}

// Change is one state change of a VM.
type Change struct {
	Name     string
	From, To State
	// Reason says why (the end of a run, who stopped it); may be empty.
	Reason string
}

// Info is what the operator sees of a VM.
type Info struct {
	Name        string
	State       State
	VCPUs       int
	Memory      uint64
	Weight      int
	OnCrash     CrashPolicy
	MaxRestarts int
	// Restarts counts automatic restarts after crashes since the
	// operator's last start.
	Restarts int
	// Runs counts the runs since the VM was added.
	Runs uint64
	// CPUTime and WaitTime come from the scheduler (zero without one):
	// over all runs.
	CPUTime  time.Duration
	WaitTime time.Duration
	// LastEnd says how and why the last run ended ("" before any).
	LastEnd string
}

// Manager keeps the VMs.
type Manager struct {
	cfg Config

	mu      sync.Mutex
	vms     []*vm
	byName  map[string]*vm
	changed chan struct{} // closed and replaced at every change
	closed  bool
	wg      sync.WaitGroup
}

type vm struct {
	spec  Spec
	group *sched.Group

	state    State
	inst     Instance // the current run's, once built
	runs     uint64
	restarts int
	lastEnd  string
	// stopReq: the operator stopped it; no restart whatever the end.
	stopReq bool
	stopWhy string
	// resetReq: the run ends for a reset, and a new one starts.
	resetReq    bool
	supervising bool
	cancelTimer func() bool
	// kick ends a restart delay early (capacity 1).
	kick chan struct{}
}

// New returns a manager without VMs.
func New(cfg Config) *Manager {
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.RestartDelay == 0 {
		cfg.RestartDelay = DefaultRestartDelay
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	return &Manager{cfg: cfg, byName: map[string]*vm{}, changed: make(chan struct{})}
}

// ErrClosed is returned once the manager is closed.
var ErrClosed = errors.New("lifecycle: the VM manager is shut down")

// Add registers a VM, stopped.
func (m *Manager) Add(spec Spec) error {
	switch {
	case spec.Name == "" || strings.ContainsAny(spec.Name, " \t\r\n"):
		return fmt.Errorf("lifecycle: VM name %q: want a non-empty name without spaces", spec.Name)
	case spec.Build == nil:
		return fmt.Errorf("lifecycle: vm %s: no Build function", spec.Name)
	case spec.MaxRestarts < 0:
		return fmt.Errorf("lifecycle: vm %s: max restarts %d is negative", spec.Name, spec.MaxRestarts)
	case spec.VCPUs < 0:
		return fmt.Errorf("lifecycle: vm %s: %d vCPUs", spec.Name, spec.VCPUs)
	}
	if spec.Weight == 0 {
		spec.Weight = sched.DefaultWeight
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, dup := m.byName[spec.Name]; dup {
		return fmt.Errorf("lifecycle: a VM named %s already exists", spec.Name)
	}
	v := &vm{spec: spec, kick: make(chan struct{}, 1)}
	if m.cfg.Scheduler != nil {
		g, err := m.cfg.Scheduler.NewGroup(spec.Name, spec.Weight)
		if err != nil {
			return err
		}
		v.group = g
	}
	m.vms = append(m.vms, v)
	m.byName[spec.Name] = v
	return nil
}

// lookup finds a VM by name; under m.mu.
func (m *Manager) lookup(name string) (*vm, error) {
	if v, ok := m.byName[name]; ok {
		return v, nil
	}
	names := make([]string, 0, len(m.vms))
	for _, v := range m.vms {
		names = append(names, v.spec.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no VM named %q (no VMs are configured)", name)
	}
	return nil, fmt.Errorf("no VM named %q (VMs: %s)", name, strings.Join(names, ", "))
}

// setState records a change and tells OnChange; under m.mu.
func (m *Manager) setState(v *vm, to State, reason string) {
	from := v.state
	if from == to && reason == "" {
		return
	}
	v.state = to
	close(m.changed)
	m.changed = make(chan struct{})
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(Change{Name: v.spec.Name, From: from, To: to, Reason: reason})
	}
}

// Start boots a stopped or crashed VM.
func (m *Manager) Start(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	v, err := m.lookup(name)
	if err != nil {
		return err
	}
	if v.state.Active() || v.supervising {
		return fmt.Errorf("vm %s is already %s", name, v.state)
	}
	v.stopReq, v.stopWhy, v.resetReq, v.restarts = false, "", false, 0
	select {
	case <-v.kick:
	default:
	}
	v.supervising = true
	m.setState(v, Starting, "started by the operator")
	m.wg.Add(1)
	go m.supervise(v)
	return nil
}

// Stop presses the VM's power button, and forces it off if it has not
// powered off StopTimeout later. It does not wait.
func (m *Manager) Stop(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.lookup(name)
	if err != nil {
		return err
	}
	switch v.state {
	case Stopped, Crashed:
		return fmt.Errorf("vm %s is already %s", name, v.state)
	case Stopping:
		return fmt.Errorf("vm %s is already stopping (kill %s forces it off)", name, name)
	case Running:
		v.stopReq, v.stopWhy = true, "stopped by the operator"
		m.setState(v, Stopping, "power button pressed")
		if v.inst != nil {
			v.inst.PowerButton()
			run, timeout := v.runs, m.cfg.StopTimeout
			v.cancelTimer = m.cfg.AfterFunc(timeout, func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				if v.runs == run && v.inst != nil && v.state == Stopping {
					why := fmt.Sprintf("did not power off within %v of the power button: forced off", timeout)
					v.stopWhy = why
					v.inst.ForceStop(why)
				}
			})
		}
	default: // starting, restarting: it has no guest to ask yet
		m.stopNow(v, "stopped by the operator")
	}
	return nil
}

// Kill stops the VM at once.
func (m *Manager) Kill(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.lookup(name)
	if err != nil {
		return err
	}
	if !v.state.Active() {
		return fmt.Errorf("vm %s is already %s", name, v.state)
	}
	m.stopNow(v, "killed by the operator")
	return nil
}

// stopNow forces the VM off; under m.mu.
func (m *Manager) stopNow(v *vm, why string) {
	v.stopReq, v.stopWhy = true, why
	m.setState(v, Stopping, why)
	if v.inst != nil {
		v.inst.ForceStop(why)
	}
	select {
	case v.kick <- struct{}{}: // ends a restart delay
	default:
	}
}

// Reset ends the VM's run at once and boots it again (a hardware reset;
// not counted as a crash).
func (m *Manager) Reset(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.lookup(name)
	if err != nil {
		return err
	}
	if v.state != Running || v.inst == nil {
		return fmt.Errorf("vm %s is %s: only a running VM can be reset", name, v.state)
	}
	v.resetReq = true
	m.setState(v, Restarting, "reset by the operator")
	v.inst.ForceStop("reset by the operator")
	return nil
}

// Input gives keystrokes to a running VM's console; it returns how many
// the guest took.
func (m *Manager) Input(name string, p []byte) (int, error) {
	m.mu.Lock()
	v, err := m.lookup(name)
	var inst Instance
	if err == nil {
		if inst = v.inst; inst == nil || (v.state != Running && v.state != Stopping) {
			err = fmt.Errorf("vm %s is %s: its console takes no input", name, v.state)
		}
	}
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return inst.Input(p), nil
}

// Info describes one VM.
func (m *Manager) Info(name string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.lookup(name)
	if err != nil {
		return Info{}, err
	}
	return v.info(), nil
}

// List describes every VM, in the order they were added.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.vms))
	for _, v := range m.vms {
		out = append(out, v.info())
	}
	return out
}

func (v *vm) info() Info {
	i := Info{Name: v.spec.Name, State: v.state, VCPUs: v.spec.VCPUs, Memory: v.spec.Memory,
		Weight: v.spec.Weight, OnCrash: v.spec.OnCrash, MaxRestarts: v.spec.MaxRestarts,
		Restarts: v.restarts, Runs: v.runs, LastEnd: v.lastEnd}
	if v.group != nil {
		i.Weight = v.group.Weight()
		i.CPUTime = v.group.CPUTime()
		i.WaitTime = v.group.WaitTime()
	}
	return i
}

// SetWeight changes a VM's share of the CPUs, at once if it runs.
func (m *Manager) SetWeight(name string, weight int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.lookup(name)
	if err != nil {
		return err
	}
	if weight < sched.MinWeight || weight > sched.MaxWeight {
		return fmt.Errorf("vm %s: weight %d is outside %d..%d", name, weight, sched.MinWeight, sched.MaxWeight)
	}
	if v.group != nil {
		if err := v.group.SetWeight(weight); err != nil {
			return err
		}
	}
	v.spec.Weight = weight
	return nil
}

// Wait blocks until the VM is in one of the states, or timeout passes; it
// returns the state it saw last.
func (m *Manager) Wait(name string, timeout time.Duration, states ...State) (State, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		v, err := m.lookup(name)
		if err != nil {
			m.mu.Unlock()
			return 0, err
		}
		st, ch := v.state, m.changed
		m.mu.Unlock()
		for _, s := range states {
			if st == s {
				return st, nil
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			return st, fmt.Errorf("vm %s is still %s after %v", name, st, timeout)
		}
	}
}

// Close kills every VM, waits up to timeout for their runs to end, and
// closes their scheduling groups. No VM can be started afterwards.
func (m *Manager) Close(timeout time.Duration) error {
	m.mu.Lock()
	m.closed = true
	for _, v := range m.vms {
		if v.state.Active() {
			m.stopNow(v, "the hypervisor is shutting down")
		}
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		m.mu.Lock()
		defer m.mu.Unlock()
		var stuck []string
		for _, v := range m.vms {
			if v.supervising {
				stuck = append(stuck, v.spec.Name)
			}
		}
		sort.Strings(stuck)
		return fmt.Errorf("lifecycle: VMs still running %v after being killed: %s", timeout, strings.Join(stuck, ", "))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.vms {
		if v.group != nil {
			v.group.Close()
		}
	}
	return nil
}

// supervise runs a VM's runs until it stops or crashes for good.
func (m *Manager) supervise(v *vm) {
	defer m.wg.Done()
	for {
		m.mu.Lock()
		if v.stopReq {
			v.supervising = false
			m.setState(v, Stopped, v.stopWhy)
			m.mu.Unlock()
			return
		}
		m.setState(v, Starting, "")
		m.mu.Unlock()

		inst, err := build(v.spec, v.group)

		m.mu.Lock()
		if err != nil {
			v.supervising = false
			v.lastEnd = "not started: " + err.Error()
			if v.stopReq {
				m.setState(v, Stopped, v.stopWhy)
			} else {
				m.setState(v, Crashed, v.lastEnd)
			}
			m.mu.Unlock()
			return
		}
		v.inst = inst
		v.runs++
		if v.stopReq {
			// Stopped while it was being built: the guest never runs.
			inst.ForceStop(v.stopWhy)
		} else {
			m.setState(v, Running, "")
		}
		m.mu.Unlock()

		out := run(inst)

		m.mu.Lock()
		v.inst = nil
		if v.cancelTimer != nil {
			v.cancelTimer()
			v.cancelTimer = nil
		}
		v.lastEnd = out.End.String()
		if out.Reason != "" {
			v.lastEnd += ": " + out.Reason
		}
		switch {
		case v.stopReq:
			v.supervising = false
			m.setState(v, Stopped, v.lastEnd)
			m.mu.Unlock()
			return
		case v.resetReq:
			v.resetReq = false
			m.setState(v, Restarting, "") // Reset said so already
			m.mu.Unlock()
			continue
		case out.End == EndReboot:
			m.setState(v, Restarting, v.lastEnd)
			m.mu.Unlock()
			continue
		case out.End == EndPowerOff || out.End == EndKilled:
			v.supervising = false
			m.setState(v, Stopped, v.lastEnd)
			m.mu.Unlock()
			return
		}
		// A crash.
		if v.spec.OnCrash != RestartOnCrash || v.restarts >= v.spec.MaxRestarts {
			v.supervising = false
			why := v.lastEnd
			if v.spec.OnCrash == RestartOnCrash {
				why += fmt.Sprintf(" (not restarted: %d restarts used)", v.restarts)
			}
			m.setState(v, Crashed, why)
			m.mu.Unlock()
			return
		}
		v.restarts++
		m.setState(v, Restarting, fmt.Sprintf("%s (restart %d of %d)", v.lastEnd, v.restarts, v.spec.MaxRestarts))
		select { // a kick left from before must not shorten this delay
		case <-v.kick:
		default:
		}
		m.mu.Unlock()
		if d := m.cfg.RestartDelay; d > 0 {
			cancel := m.cfg.AfterFunc(d, func() {
				select {
				case v.kick <- struct{}{}:
				default:
				}
			})
			<-v.kick
			cancel()
		}
	}
}

// build calls Spec.Build, turning a panic into an error.
func build(spec Spec, g *sched.Group) (inst Instance, err error) {
	defer func() {
		if r := recover(); r != nil {
			inst, err = nil, fmt.Errorf("building the VM panicked: %v", r)
		}
	}()
	inst, err = spec.Build(g)
	if err == nil && inst == nil {
		err = errors.New("Build returned no instance")
	}
	return inst, err
}

// run calls Instance.Run, turning a panic into a crash.
func run(inst Instance) (out Outcome) {
	defer func() {
		if r := recover(); r != nil {
			out = Outcome{End: EndCrash, Reason: fmt.Sprintf("the VM's run panicked: %v", r)}
		}
	}()
	return inst.Run()
}
