package guests

import (
	"tamavisor/guests/loader"
	"tamavisor/guests/vcpu"
)

// StartupDevice is the source of a vCPU's INIT and start-up IPIs: its local
// APIC (*lapic.LAPIC). The run loop asks it before every entry; a vCPU
// without one (nil) runs from its boot state and never takes INIT or SIPI.
type StartupDevice interface {
	// TakeInitSIPI returns the next start-up event, INIT before SIPI:
	// init true for INIT, otherwise a SIPI with its vector; ok false
	// when none is left.
	TakeInitSIPI() (init bool, sipiVector uint8, ok bool)
	// WaitingForSIPI reports whether the vCPU is held until a SIPI (an AP
	// after power-on or INIT).
	WaitingForSIPI() bool
	// StartupPending reports an event TakeInitSIPI has not taken yet.
	StartupPending() bool
	// BSP reports the bootstrap processor, which INIT sends to the
	// firmware's reset vector instead of wait-for-SIPI (SDM Vol. 3A 9.1).
	BSP() bool
}

// INITResetter is implemented by an engine's vCPU that keeps state an INIT
// must reset beyond what the vcpu.VCPU setters reach: a queued event
// injection or one being re-injected after the exit (IDT vectoring), the
// interrupt shadow and NMI blocking, TR and LDTR, DR6 and DR7, the VMX
// activity state. The run loop calls ResetForINIT before it applies the
// INIT state (INITState); engines without it keep those as they were.
type INITResetter interface {
	ResetForINIT()
}

// The architectural state after INIT (Intel SDM Vol. 3A 9.1.1, Table 9-1,
// column "INIT"; AMD APM Vol. 2 14.1.3, Table 14-1), and after a start-up
// IPI (SDM Vol. 3A 8.4.4.1 and 11.6.1: real mode at vector<<8:0000).
const (
	// CR0: CD, NW and ET set, protection and paging off. (INIT leaves
	// CD/NW as they were on Intel; 0x60000010 is the power-up value,
	// and what KVM and the brief for this core use for both.)
	initCR0 = 0x60000010
	// RFLAGS: only the reserved bit 1.
	initRFLAGS = 0x2
	// CS:IP F000:FFF0 with base FFFF0000: the reset vector FFFFFFF0.
	initRIP    = 0xfff0
	initCSSel  = 0xf000
	initCSBase = 0xffff0000
	// Every segment's limit and the GDTR/IDTR limits.
	initLimit = 0xffff
	// Segment attributes, VMCB packed form (vcpu.Segment): CS an
	// accessed execute/read code segment (type 0xb), the data segments
	// accessed read/write (type 3), both S=1, P=1, DPL 0, 16-bit.
	initCodeAttr = 0x9b
	initDataAttr = 0x93
	// LDTR: an LDT (type 2), present; TR: a busy TSS (type 0xb),
	// present. The VM-entry checks accept both in real mode (SDM Vol.
	// 3C 27.3.1.2).
	initLDTRAttr = 0x82
	initTRAttr   = 0x8b
)

// INITState returns a vCPU's architectural state after INIT: real mode,
// CS:IP = F000:FFF0 with CS.base FFFF0000 (the reset vector FFFFFFF0),
// CR0 = 60000010H, CR2/CR3/CR4 and EFER 0, RFLAGS 2, data segments
// selector 0 base 0 limit FFFFH, GDTR/IDTR base 0 limit FFFFH, general
// registers 0 except EDX, which holds the processor signature (CPUID leaf
// 1 EAX; Table 9-1: "EDX = 000n06xxH"). EFER is 0 as after RESET: with
// paging off, LMA cannot stay set, and KVM clears it on INIT too.
func INITState(signature uint32) loader.BootState {
	st := loader.BootState{Mode: loader.ModeReal, RIP: initRIP, RFLAGS: initRFLAGS}
	st.GPR[vcpu.RDX] = uint64(signature)
	for s := range st.Segments {
		st.Segments[s] = vcpu.Segment{Limit: initLimit, Attributes: initDataAttr}
	}
	st.Segments[vcpu.CS] = vcpu.Segment{Selector: initCSSel, Base: initCSBase, Limit: initLimit, Attributes: initCodeAttr}
	st.LDTR = vcpu.Segment{Limit: initLimit, Attributes: initLDTRAttr}
	st.TR = vcpu.Segment{Limit: initLimit, Attributes: initTRAttr}
	st.GDTR = loader.DescriptorTable{Limit: initLimit}
	st.IDTR = loader.DescriptorTable{Limit: initLimit}
	st.Control = vcpu.ControlRegisters{CR0: initCR0}
	return st
}

// SIPIState returns the state an AP starts in when a start-up IPI with
// vector arrives while it waits after INIT: the INIT state with CS.selector
// = vector<<8, CS.base = vector<<12 and IP = 0, so that it runs the 4 KiB
// page at vector<<12 in real mode (SDM Vol. 3A 8.4.4.1, 11.6.1 "Start-Up").
func SIPIState(vector uint8, signature uint32) loader.BootState {
	st := INITState(signature)
	cs := &st.Segments[vcpu.CS]
	cs.Selector = uint16(vector) << 8
	cs.Base = uint64(vector) << 12
	st.RIP = 0
	return st
}

// maxStartupEvents bounds the INIT and SIPI events one turn of the run
// loop takes, so that a guest flooding a vCPU with them cannot keep it in
// the loop; the rest wait for the next turn.
const maxStartupEvents = 4

// bspINITReason is the stop reason when the boot vCPU receives INIT: a
// real BSP restarts the firmware at the reset vector (SDM Vol. 3A 9.1),
// which a directly booted guest does not have, so the INIT is a reset of
// the platform, as the i8042 and port 0xCF9 resets are.
const bspINITReason = "reset requested by the guest (INIT to the boot vCPU)"

// startup takes the vCPU's pending INIT and SIPI events, and reports
// whether it may enter the guest. A vCPU that waits for a SIPI blocks
// until it is woken (Wake: an event for it, or the VM stopping), without
// using the host CPU, and reports false; the run loop then asks again.
func (v *VCPU) startup() bool {
	for i := 0; i < maxStartupEvents; i++ {
		init, vector, ok := v.Startup.TakeInitSIPI()
		if !ok {
			break
		}
		switch {
		case init && v.Startup.BSP():
			v.VM.Stop(bspINITReason)
			return false
		case init:
			v.applyStartupState(false, 0)
		default:
			v.applyStartupState(true, vector)
		}
	}
	if !v.Startup.WaitingForSIPI() {
		return true
	}
	v.schedIdle()
	<-v.wake
	return false
}

// applyStartupState puts the INIT state, or with sipi the SIPI state, into
// the vCPU through the vcpu.VCPU setters.
func (v *VCPU) applyStartupState(sipi bool, vector uint8) {
	signature, _, _, _ := v.VM.CPUID.Leaf(1, 0, v.APICID)
	var st loader.BootState
	if sipi {
		st = SIPIState(vector, signature)
	} else {
		if r, ok := v.CPU.(INITResetter); ok {
			r.ResetForINIT()
		}
		st = INITState(signature)
	}
	ApplyBootState(v.CPU, &st)
}
