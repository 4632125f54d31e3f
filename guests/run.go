package guests

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"tamavisor/guests/vcpu"
)

// Exceptions the core injects (Intel SDM Vol. 3A, Table 6-1).
const (
	vectorUD = 6
	vectorGP = 13
)

// maxHaltSleep bounds a halted vCPU's sleep, so that a stop request or a
// device without a deadline (console input) is noticed promptly.
const maxHaltSleep = 10 * time.Millisecond

// VCPU is one virtual CPU of a VM and what its run loop needs. Each vCPU
// runs its loop (Run) in its own goroutine; the vCPUs of one VM run
// concurrently and share the VM's buses and device models, which lock
// their own state. The fields are set up before Run starts and not
// changed while it runs.
type VCPU struct {
	VM     *VM
	CPU    vcpu.VCPU
	APICID uint32
	LAPIC  MSRDevice // may be nil for guests without one (tests)
	// LAPICMMIO is the vCPU's own local APIC page, looked up before the
	// VM's MMIO bus.
	LAPICMMIO LocalMMIO
	// Startup delivers the vCPU's INIT and SIPI events (its local APIC);
	// nil: the vCPU runs from its boot state and takes none.
	Startup  StartupDevice
	Timers   []Timer  // per-vCPU timers (the LAPIC timer)
	Injector Injector // may be nil
	// Emulator is this vCPU's instruction emulator: an emulator keeps
	// per-vCPU decode state, so vCPUs of one VM must not share one. Nil
	// falls back to VM.Emulator, which only a one-vCPU VM may use.
	Emulator Emulator
	// Scheduler, when set, decides when the vCPU may enter the guest
	// (see Scheduler); nil enters whenever the goroutine runs.
	Scheduler Scheduler

	// ArmTimer, when set, arms a host timer for the nearest device
	// deadline or slice end (0: none) before each entry, so that a guest
	// busy in a loop still exits when its timer is due (pc.ArmKick on
	// the image).
	ArmTimer func(deadline int64)
	// AfterExit, when set, runs right after each exit: on the image it
	// lets the CPU take the host interrupt that caused an INTR exit.
	AfterExit func()
	// Kick, when set, forces the vCPU out of the guest: Wake calls it,
	// from the goroutine of whoever delivered an interrupt, NMI, INIT or
	// SIPI to this vCPU, while the vCPU is in or entering the guest. On
	// the image it is a host IPI to the physical CPU running the vCPU,
	// which ends the guest's run with an external-interrupt exit, and
	// the run loop takes the event before the next entry. Without it an
	// event for a vCPU busy in the guest waits for its next exit: at the
	// latest the host timer armed for its own LAPIC timer or time slice
	// (a Linux guest's tick, 1-4 ms), or never for a guest spinning with
	// no timer armed. See the package comment for the ordering that
	// makes one kick enough.
	Kick func()

	exit  vcpu.Exit
	mmioR mmioRouter
	wake  chan struct{}
	timer *time.Timer // reused by halt: the exit path does not allocate
	// inGuest is set from just before the injector's last look at the
	// pending interrupts until the exit: Wake kicks the vCPU then.
	inGuest atomic.Bool
	// schedHeld: the vCPU holds a CPU from Scheduler.BeforeEntry.
	schedHeld bool
	// HostTSCFrequency converts cycle counts for the operator (Hz).
	HostTSCFrequency uint64
}

// AddVCPU attaches a virtual CPU to the VM. Every vCPU is added before any
// of them runs.
func (vm *VM) AddVCPU(c vcpu.VCPU, apicID uint32) *VCPU {
	v := &VCPU{VM: vm, CPU: c, APICID: apicID, wake: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
	v.timer.Stop()
	vm.mu.Lock()
	vm.vcpus = append(vm.vcpus, v)
	vm.mu.Unlock()
	return v
}

// Wake tells the vCPU that an event for it (interrupt, NMI, INIT, SIPI,
// the VM stopping) is pending: it ends a halt or a wait for SIPI, and
// calls Kick while the vCPU is in the guest. Any goroutine may call it
// after delivering the event; it never blocks and does not allocate.
func (v *VCPU) Wake() {
	// inGuest is read before the wake-up: a halted vCPU that the wake-up
	// sends back into the guest at once needs no kick.
	kick := v.Kick != nil && v.inGuest.Load()
	select {
	case v.wake <- struct{}{}:
	default:
	}
	if kick {
		v.Kick()
	}
}

// noCycles stands in for VM.Cycles when the VM has no TSC (tests).
func noCycles() uint64 { return 0 }

// Run is the vCPU's run loop: take INIT and SIPI, enter, dispatch the
// exit, repeat, until the VM stops. It runs in the vCPU's own goroutine.
// The returned error is the hypervisor's own failure; a guest's end is the
// VM's StopReason.
func (v *VCPU) Run() error {
	vm := v.VM
	vm.state.CompareAndSwap(int32(Created), int32(Running))
	defer v.schedIdle()
	for vm.State() == Running {
		if err := v.turn(); err != nil {
			return err
		}
	}
	return nil
}

// turn is one turn of the run loop: start-up events, at most one entry
// into the guest, and the dispatch of its exit.
func (v *VCPU) turn() error {
	vm := v.VM
	if v.Startup != nil && !v.startup() {
		return nil
	}
	var sliceEnd int64
	if v.Scheduler != nil {
		sliceEnd = v.Scheduler.BeforeEntry()
		v.schedHeld = true
		if vm.State() != Running {
			return nil
		}
	}
	// From here to the exit, an event delivered to this vCPU is seen by
	// the injector below or kicks the vCPU out of the guest (Wake).
	v.inGuest.Store(true)
	if v.Startup != nil && v.Startup.StartupPending() {
		// An INIT arrived while the scheduler held the vCPU back.
		v.inGuest.Store(false)
		return nil
	}
	v.tick()
	if v.Injector != nil {
		v.Injector.BeforeEntry()
	}
	if v.ArmTimer != nil {
		v.ArmTimer(earliest(v.nextDeadline(), sliceEnd))
	}
	cycles := vm.Cycles
	if cycles == nil {
		cycles = noCycles
	}
	var start int64
	if v.Scheduler != nil {
		start = vm.Clock.Now()
	}
	entry := cycles()
	err := v.CPU.Run(&v.exit)
	v.inGuest.Store(false)
	if v.AfterExit != nil {
		v.AfterExit()
	}
	if err != nil {
		vm.Stop(fmt.Sprintf("the engine failed: %v", err))
		return err
	}
	exit := cycles()
	vm.Stats.GuestCycles.Add(exit - entry)
	vm.Stats.Exits[v.exit.Reason%vcpu.Reason(vcpu.NumReasons)].Add(1)
	if v.Scheduler != nil {
		idle := v.exit.Reason == vcpu.ReasonHLT
		v.Scheduler.AfterExit(vm.Clock.Now()-start, idle)
		v.schedHeld = !idle
	}
	v.dispatch(&v.exit)
	vm.Stats.HandlerCycles.Add(cycles() - exit)
	return nil
}

// earliest returns the earlier of two deadlines, where 0 means none.
func earliest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func (v *VCPU) tick() {
	now := v.VM.Clock.Now()
	for _, t := range v.VM.Timers {
		t.Tick(now)
	}
	for _, t := range v.Timers {
		t.Tick(now)
	}
}

// dispatch is the one switch over exit reasons.
func (v *VCPU) dispatch(e *vcpu.Exit) {
	switch e.Reason {
	case vcpu.ReasonCPUID:
		v.cpuid(e)
	case vcpu.ReasonIO:
		v.portIO(e)
	case vcpu.ReasonMSRRead, vcpu.ReasonMSRWrite:
		v.msr(e)
	case vcpu.ReasonHLT:
		if v.advance(e) {
			v.halt()
		}
	case vcpu.ReasonNestedPageFault:
		v.mmio(e)
	case vcpu.ReasonExternalInterrupt, vcpu.ReasonNMI, vcpu.ReasonInterruptWindow,
		vcpu.ReasonPreemption, vcpu.ReasonPause:
		// Nothing for the guest: the host took its interrupt, or the
		// injector acts before the next entry.
	case vcpu.ReasonHypercall, vcpu.ReasonXSETBV:
		// No hypercalls are defined, and XSAVE is not offered: the
		// instruction is undefined for this guest, as on hardware.
		v.CPU.InjectException(vectorUD, 0, false)
	case vcpu.ReasonShutdown:
		v.fail("the guest shut down (triple fault)", e)
	case vcpu.ReasonInvalidState:
		v.fail("the CPU refused to enter the guest: "+e.Detail, e)
	case vcpu.ReasonException:
		v.fail(fmt.Sprintf("unexpected guest exception %d (error code %#x)", e.Vector, e.ErrorCode), e)
	default:
		v.fail(fmt.Sprintf("unhandled exit %s (vendor code %#x)", e.Reason, e.VendorCode), e)
	}
}

// fail stops the VM with a diagnostic dump: a guest's fault never takes
// the hypervisor down.
func (v *VCPU) fail(why string, e *vcpu.Exit) {
	vm := v.VM
	vm.logf("stopped: %s (vCPU %d, exit %s, qualification %#x, info %#x)\n%s", why, v.APICID, e.Reason, e.Qualification, e.Info2, v.CPU.Dump())
	vm.Stop(why)
}

// advance skips the exiting instruction, decoding its length when the
// hardware did not report it. It returns false when the VM was stopped.
func (v *VCPU) advance(e *vcpu.Exit) bool {
	n := int(e.InstructionLength)
	if n == 0 {
		emu := v.emulator()
		if emu == nil {
			v.fail("the exiting instruction's length is unknown and no decoder is configured", e)
			return false
		}
		var err error
		n, err = emu.InstructionLength(v.CPU, v.VM.Memory)
		if err != nil || n <= 0 || n > 15 {
			v.fail(fmt.Sprintf("cannot decode the exiting instruction: %v", err), e)
			return false
		}
	}
	v.CPU.AdvanceRIP(uint8(n))
	return true
}

func (v *VCPU) cpuid(e *vcpu.Exit) {
	leaf, sub := uint32(v.CPU.GPR(vcpu.RAX)), uint32(v.CPU.GPR(vcpu.RCX))
	a, b, c, d := v.VM.CPUID.Leaf(leaf, sub, v.APICID)
	v.CPU.SetGPR(vcpu.RAX, uint64(a))
	v.CPU.SetGPR(vcpu.RBX, uint64(b))
	v.CPU.SetGPR(vcpu.RCX, uint64(c))
	v.CPU.SetGPR(vcpu.RDX, uint64(d))
	v.advance(e)
}

func (v *VCPU) portIO(e *vcpu.Exit) {
	io := e.IO
	if io.String {
		v.fail(fmt.Sprintf("string port I/O (INS/OUTS) on port %#x is not emulated", io.Port), e)
		return
	}
	mask := uint64(1)<<(8*uint64(io.Size)) - 1
	if io.In {
		x := uint64(v.VM.Ports.Read(io.Port, io.Size)) & mask
		if io.Size == 4 {
			// A 32-bit register write zero-extends into RAX.
			v.CPU.SetGPR(vcpu.RAX, x)
		} else {
			v.CPU.SetGPR(vcpu.RAX, v.CPU.GPR(vcpu.RAX)&^mask|x)
		}
	} else {
		v.VM.Ports.Write(io.Port, io.Size, uint32(v.CPU.GPR(vcpu.RAX)&mask))
	}
	v.advance(e)
}

func (v *VCPU) msr(e *vcpu.Exit) {
	write := e.Reason == vcpu.ReasonMSRWrite
	value := v.CPU.GPR(vcpu.RDX)<<32 | v.CPU.GPR(vcpu.RAX)&0xffffffff
	result, ok := uint64(0), true
	switch r, status := v.CPU.EngineMSR(e.MSR, write, value); status {
	case vcpu.MSRDone:
		result = r
	case vcpu.MSRFault:
		ok = false
	default:
		switch {
		case v.LAPIC != nil && v.LAPIC.HandlesMSR(e.MSR):
			var err error
			if write {
				err = v.LAPIC.WriteMSR(e.MSR, value)
			} else {
				result, err = v.LAPIC.ReadMSR(e.MSR)
			}
			ok = err == nil
		case write:
			ok = v.VM.MSRs.Write(e.MSR, value)
		default:
			result, ok = v.VM.MSRs.Read(e.MSR)
		}
	}
	if !ok {
		v.CPU.InjectException(vectorGP, 0, true)
		return
	}
	if !write {
		v.CPU.SetGPR(vcpu.RAX, result&0xffffffff)
		v.CPU.SetGPR(vcpu.RDX, result>>32)
	}
	v.advance(e)
}

// mmio emulates the instruction that touched a device's guest-physical
// range. Code fetches from MMIO, and accesses nobody claims that the
// emulator cannot complete, stop the guest.
func (v *VCPU) mmio(e *vcpu.Exit) {
	if e.NPF.Execute {
		v.fail(fmt.Sprintf("instruction fetch from %#x, which is not guest RAM", e.NPF.GPA), e)
		return
	}
	emu := v.emulator()
	if emu == nil {
		v.fail(fmt.Sprintf("access to %#x needs the instruction emulator", e.NPF.GPA), e)
		return
	}
	v.mmioR = mmioRouter{local: v.LAPICMMIO, vm: &v.VM.MMIO}
	n, err := emu.Step(v.CPU, v.VM.Memory, &v.mmioR, e.NPF)
	if err != nil {
		v.fail(fmt.Sprintf("cannot emulate the access to %#x: %v", e.NPF.GPA, err), e)
		return
	}
	if n > 0 {
		v.CPU.AdvanceRIP(uint8(n))
	}
}

// halt waits until the vCPU has an interrupt, NMI, INIT or SIPI to take,
// sleeping until the nearest device deadline or a Wake.
func (v *VCPU) halt() {
	vm := v.VM
	if vm.Idle != nil {
		vm.Idle()
	}
	for vm.State() == Running {
		v.tick()
		if v.Injector == nil || v.Injector.Pending() ||
			(v.Startup != nil && v.Startup.StartupPending()) {
			return
		}
		sleep := maxHaltSleep
		if d := v.nextDeadline(); d != 0 {
			if until := time.Duration(d - vm.Clock.Now()); until < sleep {
				sleep = until
			}
		}
		if sleep <= 0 {
			continue
		}
		v.timer.Reset(sleep)
		select {
		case <-v.wake:
		case <-v.timer.C:
		}
		v.timer.Stop()
	}
}

// emulator is the vCPU's own emulator, or the VM's.
func (v *VCPU) emulator() Emulator {
	if v.Emulator != nil {
		return v.Emulator
	}
	return v.VM.Emulator
}

func (v *VCPU) nextDeadline() int64 {
	var next int64
	for _, list := range [][]Timer{v.VM.Timers, v.Timers} {
		for _, t := range list {
			if d := t.NextDeadline(); d != 0 && d != math.MaxInt64 && (next == 0 || d < next) {
				next = d
			}
		}
	}
	return next
}

// ErrStopped is returned by operations on a stopped VM.
var ErrStopped = errors.New("guests: the VM is stopped")

// mmioRouter sends an emulated access to the vCPU's own local APIC when it
// claims the address, and to the VM's bus otherwise.
type mmioRouter struct {
	local LocalMMIO
	vm    MMIOHandler
}

func (r *mmioRouter) ReadMMIO(addr uint64, size uint8) uint64 {
	if r.local != nil && r.local.Contains(addr) {
		return r.local.ReadMMIO(addr, size)
	}
	return r.vm.ReadMMIO(addr, size)
}

func (r *mmioRouter) WriteMMIO(addr uint64, size uint8, v uint64) {
	if r.local != nil && r.local.Contains(addr) {
		r.local.WriteMMIO(addr, size, v)
		return
	}
	r.vm.WriteMMIO(addr, size, v)
}
