// Package guests is what a guest is to tamavisor: a VM (memory, buses,
// device models, CPUID and MSR policy) and the run loop of each of its
// virtual CPUs, which enters the guest through a vendor engine (package svm
// or vmx, behind the vcpu.VCPU contract), dispatches each exit once on its
// vendor-neutral reason, and emulates what the guest asked for.
//
// A guest's fault (triple fault, refused entry, garbage instructions, an
// access no device claims as code) stops that guest with a diagnostic dump;
// the hypervisor and other guests go on. Nothing on the exit path allocates.
//
// # Several vCPUs
//
// Each vCPU runs its loop (VCPU.Run) in a goroutine of its own, and the
// vCPUs of one VM run at once on different physical CPUs. What they share
// is safe for that: the buses are read-only once built, every device model
// locks its own state, the CPUID policy is read-only, the MSR policy and
// the statistics are locked or atomic. What is per vCPU stays with its
// goroutine: the exit record, the local APIC's page routing, the
// instruction emulator (VCPU.Emulator), the injector.
//
// An application processor (a vCPU with a Startup device that is not the
// BSP) starts in wait-for-SIPI: its goroutine blocks on a channel, using no
// host CPU, until its local APIC takes a start-up IPI, and then enters the
// guest in real mode at the SIPI vector (SIPIState). An INIT, taken before
// every entry and ending a halt, puts a vCPU back into the INIT state
// (INITState) and, for an AP, into wait-for-SIPI; for the BSP it is a reset
// of the platform and stops the VM, since there is no firmware at the reset
// vector to run.
//
// # Waking and kicking
//
// Whoever delivers an interrupt, NMI, INIT or SIPI to a vCPU (a device
// model, another vCPU's IPI) calls its Wake afterwards. Wake ends a halt or
// a wait for SIPI, and calls the vCPU's Kick hook when the vCPU is in the
// guest, which on the image sends a host IPI to the physical CPU running
// it: the guest exits, and the event is taken before the next entry.
//
// The vCPU marks itself as in the guest (an atomic flag) before the
// injector's last look at its local APIC, and clears the mark after the
// exit. The sender sets the APIC's state first and reads the mark after,
// both through the APIC's lock, so either the injector sees the event or
// the sender sees the mark and kicks: one kick is enough, and a vCPU in the
// hypervisor is never kicked for nothing. What remains is the engine's
// window between that look and the world switch: a host IPI arriving there,
// while the host still takes interrupts, ends in the host's handler rather
// than in an exit, and the event then waits for the guest's next exit. Once
// host interrupts are held (SVM's CLGI, VMX's interrupts off), a host IPI
// stays pending and forces an exit right after entry; to close the rest of
// the window, Kick should also set a flag in the engine's vCPU that its
// world switch checks with interrupts held, returning an external-interrupt
// exit at once instead of entering (as KVM's vcpu->mode and requests do).
//
// The trade-off, without a Kick or where the window is hit: an IPI to a
// vCPU busy in the guest is seen at its next exit, which comes at the
// latest with the host timer armed for its own LAPIC timer or scheduler
// slice (a Linux guest's tick: 1 to 4 ms), and never for a guest spinning
// with interrupts off and no timer. A kick costs a host IPI and an exit
// (a few microseconds) but bounds the latency to that. Halted vCPUs need
// no kick: they sleep on a channel that Wake signals.
//
// # Scheduling
//
// The loop has a hook for a scheduler (Scheduler; package guests/sched):
// BeforeEntry before every entry may block the goroutine and returns the
// time slice's end, for which the host timer is armed; AfterExit charges
// the time spent in the guest and says when the vCPU gives its CPU up to
// block in HLT or wait-for-SIPI. Without one, every vCPU goroutine enters
// the guest whenever Go schedules it.
package guests
