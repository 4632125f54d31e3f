package guests

// Scheduler shares the physical CPUs between vCPU goroutines (package
// guests/sched implements it). A vCPU with none (nil) enters the guest
// whenever its goroutine runs, as the Go scheduler decides.
//
// The run loop of one vCPU calls, from that vCPU's goroutine only:
//
//	BeforeEntry            before every entry into the guest
//	AfterExit(ran, idle)   after every exit, before the exit is handled
//
// BeforeEntry blocks until the vCPU may use a physical CPU and returns the
// clock time (bus.Clock ns) at which its time slice ends, or 0 for no end;
// the loop arms the host timer (VCPU.ArmTimer) for the earlier of that and
// the devices' next deadline, so the guest exits when its slice is over
// (ReasonPreemption or ReasonExternalInterrupt) and the next BeforeEntry
// can hand the CPU to another vCPU. BeforeEntry must return when the VM
// stops; the loop checks the VM's state after it.
//
// AfterExit charges ran, the clock time between BeforeEntry's return and
// the exit (the guest's run plus the world switch). idle true means the
// vCPU is about to block (HLT, wait-for-SIPI) and gives its CPU up until
// its next BeforeEntry; with idle false it goes on to BeforeEntry after a
// bounded amount of exit handling, so a scheduler may keep the CPU held
// across the exit or release it at every AfterExit. Every BeforeEntry is
// eventually followed by an AfterExit with idle true before the vCPU
// blocks or its Run returns: when an INIT puts a running AP back to
// wait-for-SIPI, or the VM stops, the loop calls AfterExit(0, true).
//
// Neither method may allocate on the steady path: they run on every exit.
type Scheduler interface {
	BeforeEntry() (sliceEnd int64)
	AfterExit(ran int64, idle bool)
}

// schedIdle gives the vCPU's physical CPU back to the scheduler before it
// blocks, if it holds one.
func (v *VCPU) schedIdle() {
	if v.Scheduler != nil && v.schedHeld {
		v.schedHeld = false
		v.Scheduler.AfterExit(0, true)
	}
}
