package guests

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"tamavisor/guests/bus"
	"tamavisor/guests/vcpu"
)

// Timer is a device model with a deadline (PIT, LAPIC timer, RTC): the run
// loop ticks it and sleeps a halted vCPU until the nearest deadline.
type Timer interface {
	// NextDeadline is the clock time (ns) of the next event, or 0 or
	// math.MaxInt64 when none is armed.
	NextDeadline() int64
	Tick(now int64)
}

// MSRDevice is a device model reached through MSRs (the virtual LAPIC:
// IA32_APIC_BASE, the x2APIC range, IA32_TSC_DEADLINE).
type MSRDevice interface {
	HandlesMSR(msr uint32) bool
	ReadMSR(msr uint32) (uint64, error)
	WriteMSR(msr uint32, v uint64) error
}

// Injector decides, before each entry, which interrupt the vCPU takes.
type Injector interface {
	BeforeEntry()
	// Pending reports an interrupt (or NMI, INIT) waiting for the vCPU,
	// which ends a halt.
	Pending() bool
}

// LocalMMIO is a device only its own vCPU reaches at its address: the
// local APIC's page, at the same guest-physical address on every vCPU.
type LocalMMIO interface {
	Contains(addr uint64) bool
	ReadMMIO(addr uint64, size uint8) uint64
	WriteMMIO(addr uint64, size uint8, v uint64)
}

// Emulator executes a guest instruction against an MMIO device (package
// x86emu) and decodes instruction lengths where the hardware gives none.
type Emulator interface {
	Step(cpu vcpu.VCPU, mem vcpu.Memory, mmio MMIOHandler, fault vcpu.NPFExit) (length int, err error)
	InstructionLength(cpu vcpu.VCPU, mem vcpu.Memory) (int, error)
}

// MMIOHandler is the MMIO side the emulator talks to (bus.MMIO).
type MMIOHandler interface {
	ReadMMIO(gpa uint64, size uint8) uint64
	WriteMMIO(gpa uint64, size uint8, v uint64)
}

// State of a VM.
type State int32

const (
	Created State = iota
	Running
	Stopped
)

func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Running:
		return "running"
	case Stopped:
		return "stopped"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Stats counts a VM's exits, for the operator and the benchmarks.
type Stats struct {
	Exits [vcpu.NumReasons]atomic.Uint64
	// HandlerCycles is the TSC time spent between an exit and the next
	// entry; GuestCycles the time spent inside Run (in the guest, plus
	// the world switch).
	HandlerCycles atomic.Uint64
	GuestCycles   atomic.Uint64
}

// TotalExits sums Exits.
func (s *Stats) TotalExits() uint64 {
	var n uint64
	for i := range s.Exits {
		n += s.Exits[i].Load()
	}
	return n
}

// VM is one guest machine.
type VM struct {
	Name   string
	Memory vcpu.Memory
	Ports  bus.Ports
	MMIO   bus.MMIO
	Clock  bus.Clock
	// Cycles reads the host TSC, for exit accounting.
	Cycles func() uint64
	Timers []Timer
	// Emulator serves the vCPUs that have none of their own
	// (VCPU.Emulator): only safe for a VM with one vCPU.
	Emulator Emulator
	CPUID    *CPUIDPolicy
	MSRs     *MSRPolicy
	// Console receives the hypervisor's messages about this VM.
	Console io.Writer
	// Idle, when set, runs when a vCPU halts with nothing to do: the
	// guest console flushes a prompt that ends without a newline.
	Idle func()

	Stats Stats

	state    atomic.Int32
	mu       sync.Mutex
	stopWhy  string
	exitCode int64
	hasCode  bool
	vcpus    []*VCPU
}

// NewVM returns a VM with empty buses.
func NewVM(name string, mem vcpu.Memory, clock bus.Clock, console io.Writer) *VM {
	return &VM{Name: name, Memory: mem, Clock: clock, Console: console,
		CPUID: NewCPUIDPolicy(nil, 1), MSRs: NewMSRPolicy()}
}

// State returns the VM's state.
func (vm *VM) State() State { return State(vm.state.Load()) }

// Stop ends the VM: its vCPUs leave their run loops at the next exit. The
// first reason given is kept.
func (vm *VM) Stop(reason string) {
	vm.mu.Lock()
	if vm.State() != Stopped {
		vm.stopWhy = reason
		vm.state.Store(int32(Stopped))
	}
	vm.mu.Unlock()
	vm.Wake()
}

// ExitWithCode stops the VM with an exit code (the isa-debug-exit port).
func (vm *VM) ExitWithCode(code uint32) {
	vm.mu.Lock()
	if vm.State() != Stopped {
		vm.exitCode, vm.hasCode = int64(code), true
	}
	vm.mu.Unlock()
	vm.Stop(fmt.Sprintf("exit code %d", code))
}

// StopReason says why the VM stopped, and its exit code if it gave one.
func (vm *VM) StopReason() (reason string, code int64, hasCode bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.stopWhy, vm.exitCode, vm.hasCode
}

// Wake wakes every vCPU of the VM (VCPU.Wake): a stop request, or an
// event whose target is not known. An interrupt for one vCPU wakes only
// that one. It never blocks.
func (vm *VM) Wake() {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, v := range vm.vcpus {
		v.Wake()
	}
}

func (vm *VM) logf(format string, args ...any) {
	if vm.Console != nil {
		fmt.Fprintf(vm.Console, "tamavisor: vm %s: "+format+"\n", append([]any{vm.Name}, args...)...)
	}
}

// ReasonName names exit reason i (an index of Stats.Exits).
func ReasonName(i int) string { return vcpu.Reason(i).String() }
