package vmx

import (
	"errors"
	"fmt"
)

// Controls are the VMCS control words and rules the engine uses for every
// guest, computed once from the capability MSRs (NewControls). The
// interrupt- and NMI-window controls and the IA-32e-mode-guest entry
// control change per entry and are added by the vCPU.
type Controls struct {
	Pin, Proc, Proc2, Exit, Entry uint32
	// GuestCR0 and GuestCR4 are the fixed-bit rules VM entry applies to
	// the guest's control registers (with unrestricted guest, CR0.PE and
	// PG are free; without, they must be 1).
	GuestCR0, GuestCR4 FixedBits
	// INVEPTType and INVVPIDType are the invalidation types the engine
	// uses when a vCPU moves to another CPU (1 single-context, 2
	// all-context), 0 where the processor has neither.
	INVEPTType, INVVPIDType uint64
	// AnyErrorCode: IA32_VMX_BASIC bit 56, VM entry may deliver a hardware
	// exception with or without an error code whatever its vector.
	AnyErrorCode bool
	// Revision is the VMCS revision identifier for VMXON regions and
	// VMCSs.
	Revision uint32
}

// ControlOptions are the guest-visible features the engine must enable
// because the guest's CPUID says they exist.
type ControlOptions struct {
	// RDTSCP: the guest's CPUID reports RDTSCP (80000001h EDX[27]);
	// without "enable RDTSCP" it would raise #UD.
	RDTSCP bool
	// INVPCID: CPUID.7.0:EBX[10] is shown to the guest.
	INVPCID bool
	// XSAVES: the guest's CPUID shows XSAVES (CPUID.(EAX=0DH,ECX=1):EAX[3]);
	// the guest CPUID policy hides XSAVE, so this is false today.
	XSAVES bool
}

// ErrNoSecondaryControls is wrapped by NewControls when the processor has
// no secondary processor-based controls, hence no EPT.
var ErrNoSecondaryControls = errors.New("vmx: the processor has no secondary VM-execution controls (IA32_VMX_PROCBASED_CTLS bit 63 is 0), hence no EPT")

// NewControls computes every control word with ControlCaps.Adjust (SDM
// Vol. 3C, 25.6-25.8; the "TRUE" capability MSRs where they exist) for the
// engine's design:
//
//   - pin-based: external-interrupt exiting (a host interrupt always ends
//     the guest's run, as AMD's INTR intercept does), NMI exiting and
//     virtual NMIs (for the NMI window and NMI blocking of injected NMIs);
//   - primary: HLT exiting, unconditional I/O exiting, no MSR bitmaps (so
//     every RDMSR/WRMSR exits, as the AMD engine's all-ones MSR map does),
//     CR8 load/store exiting (without a TPR shadow a guest's MOV to CR8
//     would write the host's task priority), MONITOR/MWAIT exiting (the
//     guest CPUID hides them), TSC offsetting, and the secondary controls;
//     CR3 load/store exiting is off (EPT);
//   - secondary: EPT (required), unrestricted guest and VPID when
//     available, and RDTSCP/INVPCID/XSAVES as opts say the guest sees them.
//     Without unrestricted guest the guest's CR0 keeps PE and PG (the
//     host's fixed bits), so only guests that start and stay in paged
//     protected or long mode can run (a Linux bzImage entered at its
//     64-bit entry point): the vCPU refuses the others (Guest.Refusal);
//   - VM exit: 64-bit host, save/load IA32_EFER and IA32_PAT, save debug
//     controls, and acknowledge interrupt on exit: the world switch hands
//     the interrupt that ended the run to the host's IDT handler at once
//     (it counts it and signals EOI), as the AMD engine's INTR exit does
//     at STGI. (Leaving it pending for the host to take once interrupts
//     are enabled, the simpler design, does not work under Bochs 2.7,
//     which never delivers it: every entry then exits at once.)
//   - VM entry: load IA32_EFER and IA32_PAT, load debug controls, and
//     IA-32e mode guest available (set per entry from the guest's
//     EFER.LMA).
//
// Reserved default1 controls are passed as optional, which keeps them at
// their default setting as the SDM recommends.
func NewControls(c *Capabilities, opts ControlOptions) (*Controls, error) {
	if !c.HasSecondary {
		return nil, ErrNoSecondaryControls
	}
	if !c.EPT() {
		return nil, errors.New("vmx: the processor lacks EPT (secondary control bit 1)")
	}
	if !c.EPTVPID.Has(EPTPageWalk4) || !c.EPTVPID.Has(EPTMemoryTypeWB) {
		return nil, fmt.Errorf("vmx: EPT needs a 4-level walk and write-back paging structures (IA32_VMX_EPT_VPID_CAP bits 6 and 14), the processor reports %#x", uint64(c.EPTVPID))
	}
	word := func(name string, caps ControlCaps, required, optional uint32) (uint32, error) {
		w, err := caps.Adjust(required, optional)
		if err != nil {
			return 0, fmt.Errorf("%s controls: %w", name, err)
		}
		return w, nil
	}
	unrestricted := c.UnrestrictedGuest()
	ctl := &Controls{
		GuestCR0:     c.GuestCR0(unrestricted),
		GuestCR4:     c.CR4,
		AnyErrorCode: c.Basic.NoErrorCodeRequired,
		Revision:     c.Basic.Revision,
	}
	var err error
	if ctl.Pin, err = word("pin-based", c.Pin,
		PinExternalInterruptExiting|PinNMIExiting|PinVirtualNMIs, PinDefault1Reserved); err != nil {
		return nil, err
	}
	// CR3 load/store exiting are default1 controls: left out of both
	// masks, they are 0 wherever the TRUE MSR allows it.
	if ctl.Proc, err = word("primary processor-based", c.Proc,
		ProcHLTExiting|ProcUnconditionalIOExiting|ProcCR8LoadExiting|ProcCR8StoreExiting|
			ProcUseTSCOffsetting|ProcActivateSecondary,
		ProcDefault1Reserved|ProcMWAITExiting|ProcMONITORExiting); err != nil {
		return nil, err
	}
	required2, optional2 := Proc2EnableEPT, Proc2EnableVPID
	if unrestricted {
		required2 |= Proc2UnrestrictedGuest
	}
	for _, o := range []struct {
		on   bool
		ctl  uint32
		name string
	}{{opts.RDTSCP, Proc2EnableRDTSCP, "enable RDTSCP"}, {opts.INVPCID, Proc2EnableINVPCID, "enable INVPCID"},
		{opts.XSAVES, Proc2EnableXSAVES, "enable XSAVES/XRSTORS"}} {
		if o.on {
			if !c.Proc2.Allows(o.ctl) {
				return nil, fmt.Errorf("vmx: the guest's CPUID shows a feature whose control %q the processor does not allow: hide it from the guest", o.name)
			}
			required2 |= o.ctl
		}
	}
	if ctl.Proc2, err = word("secondary processor-based", c.Proc2, required2, optional2); err != nil {
		return nil, err
	}
	if ctl.Exit, err = word("VM-exit", c.Exit,
		ExitHostAddressSpaceSize|ExitAcknowledgeInterrupt|ExitSaveEFER|ExitLoadEFER|ExitSavePAT|ExitLoadPAT|
			ExitSaveDebugControls,
		ExitDefault1Reserved); err != nil {
		return nil, err
	}
	if ctl.Entry, err = word("VM-entry", c.Entry, EntryLoadEFER|EntryLoadPAT|EntryLoadDebugControls,
		EntryDefault1Reserved); err != nil {
		return nil, err
	}
	if !c.Entry.Allows(EntryIA32eModeGuest) {
		return nil, errors.New("vmx: the processor does not allow the \"IA-32e mode guest\" VM-entry control (bit 9): 64-bit guests cannot run")
	}
	// Never let a "must be 1" setting slip in that the engine does not
	// handle: IA-32e mode guest is set per entry; SMM entry and
	// dual-monitor deactivation must be 0 (SDM Vol. 3C, 27.2.1.3).
	ctl.Entry &^= EntryIA32eModeGuest
	if ctl.Entry&(EntryToSMM|EntryDeactivateDualMon) != 0 {
		return nil, fmt.Errorf("vmx: IA32_VMX_ENTRY_CTLS forces entry to SMM or deactivation of the dual-monitor treatment (entry controls %#x)", ctl.Entry)
	}
	switch {
	case c.EPTVPID.Has(EPTINVEPT | EPTINVEPTSingleContext):
		ctl.INVEPTType = 1
	case c.EPTVPID.Has(EPTINVEPT | EPTINVEPTAllContext):
		ctl.INVEPTType = 2
	}
	if ctl.Proc2&Proc2EnableVPID != 0 {
		switch {
		case c.EPTVPID.Has(VPIDINVVPID | VPIDSingleContext):
			ctl.INVVPIDType = 1
		case c.EPTVPID.Has(VPIDINVVPID | VPIDAllContext):
			ctl.INVVPIDType = 2
		default:
			// Without INVVPID, stale translations tagged with a VPID
			// could survive a move between CPUs: do without VPIDs, so
			// that every VM entry and exit flushes them (SDM Vol. 3C,
			// 29.4.3 "Invalidating Cached Translation Information").
			ctl.Proc2 &^= Proc2EnableVPID
		}
	}
	return ctl, nil
}

// VPID reports whether vCPUs get a virtual-processor identifier.
func (c *Controls) VPID() bool { return c.Proc2&Proc2EnableVPID != 0 }
