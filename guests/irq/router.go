// Package irq ties a VM's interrupt sources to its vCPUs: Router carries
// device interrupt lines to the virtual 8259 PIC and IOAPIC, and Injector
// turns what the local APIC and the PIC have pending into event
// injections (or interrupt-window requests) before each VM entry.
//
// # Interrupt lines
//
// Devices drive lines through bus.IRQ. Lines 0-15 are the ISA IRQs: each
// goes to the PIC input of the same number and to an IOAPIC input. The
// IOAPIC input is the line's GSI, equal to the IRQ except for the timer:
// the PIT's IRQ0 is wired to IOAPIC input 2, as on PCs, and the guest's
// MADT declares it with an interrupt source override (ACPI 6.5 5.2.12.5:
// bus 0, source 0, GSI 2, flags 0 = conforming, i.e. edge, active high).
// IRQ2 is the PIC's cascade input, which no device drives, so line 2 is
// refused. Lines 16 and up are GSIs beyond the ISA range (PCI INTx,
// routed by the DSDT) and go to the IOAPIC only.
//
// # Delivery to the vCPU
//
// The PIC's INTR output reaches a vCPU through its local APIC's LINT0 in
// ExtINT mode, or directly when the local APIC is globally disabled
// (lapic.LAPIC.PICRouted); the vector then comes from the PIC's interrupt
// acknowledge. Everything else arrives in the local APIC's IRR.
package irq

import "sync/atomic"

// PIC is what the router and the injector need from the virtual 8259 pair
// (package guests/devices/pic).
type PIC interface {
	// SetIRQ drives ISA IRQ line irq (0-15).
	SetIRQ(irq uint32, level bool)
	// PendingVector reports the vector the PIC's INTR would deliver.
	PendingVector() (uint8, bool)
	// Acknowledge performs the interrupt acknowledge cycle and returns
	// the vector (the spurious vector when nothing is pending anymore).
	Acknowledge() uint8
}

// IOAPIC is what the router needs from the virtual IOAPIC.
type IOAPIC interface {
	SetIRQ(pin uint32, level bool)
}

// ISA line numbers with special wiring.
const (
	NumISAIRQs = 16
	// TimerIRQ is the PIT's ISA IRQ and TimerGSI the IOAPIC input it is
	// wired to; the MADT must carry the matching override.
	TimerIRQ uint32 = 0
	TimerGSI uint32 = 2
	// CascadeIRQ is the master PIC input the slave PIC drives.
	CascadeIRQ uint32 = 2
)

// GSI returns the IOAPIC input (GSI) of an interrupt line: lines 0-15 are
// ISA IRQs, identity-mapped but for IRQ0 -> GSI 2.
func GSI(line uint32) uint32 {
	if line == TimerIRQ {
		return TimerGSI
	}
	return line
}

// Router implements bus.IRQ for a VM.
type Router struct {
	pic    PIC
	ioapic IOAPIC
	// Refused counts SetIRQ calls on line 2 (the cascade).
	Refused atomic.Uint64
}

// NewRouter returns a router to pic and ioapic; either may be nil when the
// VM has no such device.
func NewRouter(pic PIC, ioapic IOAPIC) *Router {
	return &Router{pic: pic, ioapic: ioapic}
}

// SetIRQ raises or lowers interrupt line (see the package comment for the
// numbering).
func (r *Router) SetIRQ(line uint32, level bool) {
	if line == CascadeIRQ {
		r.Refused.Add(1)
		return
	}
	if line < NumISAIRQs && r.pic != nil {
		r.pic.SetIRQ(line, level)
	}
	if r.ioapic != nil {
		r.ioapic.SetIRQ(GSI(line), level)
	}
}
