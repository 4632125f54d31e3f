package irq

import (
	"tamavisor/guests/devices/lapic"
	"tamavisor/guests/vcpu"
)

// Injector decides, before each VM entry of one vCPU, which interrupt to
// inject. It is used from that vCPU's goroutine only.
type Injector struct {
	cpu  vcpu.VCPU
	apic *lapic.LAPIC
	pic  PIC

	// Injected counts external interrupts injected, NMIs the NMIs
	// injected. An NMI is its own event type (VMX interruption type 2,
	// Intel SDM Vol. 3C 26.6.1.1; SVM EVENTINJ type 2, AMD APM Vol. 2
	// 15.20), injected through the vCPU contract's NMI methods.
	Injected uint64
	NMIs     uint64
}

// NewInjector returns the injector of one vCPU. pic is the PIC whose INTR
// the vCPU may receive through LINT0 (usually only the BSP's injector has
// it; nil for the others, so that one PIC is not acknowledged by two
// vCPUs).
func NewInjector(cpu vcpu.VCPU, apic *lapic.LAPIC, pic PIC) *Injector {
	return &Injector{cpu: cpu, apic: apic, pic: pic}
}

// picPending reports whether the PIC has an interrupt for this vCPU.
func (in *Injector) picPending() bool {
	if in.pic == nil || !in.apic.PICRouted() {
		return false
	}
	_, ok := in.pic.PendingVector()
	return ok
}

// interruptPending reports whether an external interrupt waits for the
// guest: ExtINT from the PIC, or a local APIC vector above the processor
// priority.
func (in *Injector) interruptPending() bool {
	if in.picPending() {
		return true
	}
	_, ok := in.apic.PendingVector()
	return ok
}

// Pending reports whether an NMI or an external interrupt waits: the run
// loop's test for leaving HLT (with RFLAGS.IF set, for the latter).
func (in *Injector) Pending() bool {
	return in.apic.NMIPending() || in.interruptPending()
}

// takeInterrupt acknowledges the interrupt to inject. ExtINT comes first:
// it bypasses the local APIC's priority scheme (SDM Vol. 3A 11.5.1), and
// its vector comes from the PIC's acknowledge cycle.
func (in *Injector) takeInterrupt() (uint8, bool) {
	if in.picPending() {
		v := in.pic.Acknowledge()
		in.apic.ClearExtINT()
		return v, true
	}
	return in.apic.AckPending()
}

// BeforeEntry sets up event injection for the next VM entry:
//
//  1. A pending NMI is injected if the vCPU can take it; otherwise an
//     NMI window is requested.
//  2. If an external interrupt is pending and the vCPU is interruptible,
//     it is acknowledged (PIC or local APIC) and injected; if it is not
//     interruptible, an interrupt window is requested.
//  3. After an injection the window is requested only if another
//     interrupt is still deliverable; with nothing pending it is turned
//     off.
//
// It first fires the local APIC timer if its deadline has passed; the run
// loop only has to make sure an exit happens by the APIC's NextDeadline.
func (in *Injector) BeforeEntry() {
	in.apic.TickIfDue()
	if in.apic.NMIPending() {
		switch {
		case in.cpu.NMIAllowed():
			in.apic.TakeNMI()
			in.cpu.InjectNMI()
			in.cpu.RequestNMIWindow(false)
			in.NMIs++
			// The NMI occupies this entry's event slot.
			in.cpu.RequestInterruptWindow(in.interruptPending())
			return
		default:
			in.cpu.RequestNMIWindow(true)
		}
	} else {
		in.cpu.RequestNMIWindow(false)
	}

	if !in.cpu.Interruptible() {
		in.cpu.RequestInterruptWindow(in.interruptPending())
		return
	}
	if v, ok := in.takeInterrupt(); ok {
		in.cpu.InjectInterrupt(v)
		in.Injected++
		in.cpu.RequestInterruptWindow(in.interruptPending())
		return
	}
	in.cpu.RequestInterruptWindow(false)
}
