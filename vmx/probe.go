package vmx

import (
	"fmt"

	"tamavisor/drivers/hw"
	"tamavisor/vmx/cpuvendor"
)

// CPUID.1:ECX feature flags used here (SDM Vol. 2A, CPUID, Table "Feature
// Information Returned in the ECX Register").
const (
	cpuid1ECXVMX        = 1 << 5
	cpuid1ECXHypervisor = 1 << 31 // set by hypervisors, reserved 0 on hardware
)

// Reason and UnavailableError are shared by both engines (package
// cpuvendor); Probe's errors carry Engine "vmx".
type (
	Reason           = cpuvendor.Reason
	UnavailableError = cpuvendor.UnavailableError
)

const (
	NotReported        = cpuvendor.NotReported
	DisabledByFirmware = cpuvendor.DisabledByFirmware
	Inconsistent       = cpuvendor.Inconsistent
)

// Capabilities is what the processor supports of VMX, decoded from CPUID
// and the capability MSRs.
type Capabilities struct {
	// FeatureControl is IA32_FEATURE_CONTROL at probe time. When it is
	// unlocked (FeatureControl.NeedsEnable) the engine must set
	// FeatureControlVMXOutsideSMX|FeatureControlLock before VMXON.
	FeatureControl FeatureControl
	// Hypervisor reports CPUID.1:ECX[31]: this "hardware" is itself a VM.
	Hypervisor bool

	Basic Basic

	// Pin, Proc, Exit and Entry are the effective capabilities of the
	// pin-based, primary processor-based, primary VM-exit and VM-entry
	// controls: the IA32_VMX_TRUE_* MSRs when Basic.TrueControls says
	// they exist (they also let default1 controls be 0), else the legacy
	// MSRs (SDM Vol. 3D, Appendix A.2). Compute control words from these.
	Pin, Proc, Exit, Entry ControlCaps
	// LegacyPin, LegacyProc, LegacyExit and LegacyEntry are the legacy
	// MSRs as read; the SDM states MSR existence in their terms.
	LegacyPin, LegacyProc, LegacyExit, LegacyEntry ControlCaps

	// HasSecondary: IA32_VMX_PROCBASED_CTLS2 exists, and Proc2 holds it.
	HasSecondary bool
	Proc2        ControlCaps
	// HasTertiary: IA32_VMX_PROCBASED_CTLS3 exists; Proc3 is its
	// allowed-1 mask (every tertiary control may be 0; Appendix A.3.4).
	HasTertiary bool
	Proc3       uint64
	// HasSecondaryExit: IA32_VMX_EXIT_CTLS2 exists; Exit2 is its
	// allowed-1 mask (Appendix A.4.2).
	HasSecondaryExit bool
	Exit2            uint64

	Misc Misc
	// CR0 and CR4 are the VMX fixed bits of the host's control registers;
	// see GuestCR0 for the guest's CR0.
	CR0, CR4 FixedBits
	// MaxVMCSIndex is the highest index value of any VMCS field encoding
	// (IA32_VMX_VMCS_ENUM bits 9:1, Appendix A.9).
	MaxVMCSIndex uint16

	// EPTVPID is IA32_VMX_EPT_VPID_CAP, zero if the MSR does not exist.
	EPTVPID EPTVPIDCap
	// VMFunc is IA32_VMX_VMFUNC (allowed-1 VM functions; bit 0 is EPTP
	// switching), zero if the MSR does not exist.
	VMFunc uint64
}

// Probe reads CPUID and the VMX capability MSRs. It checks, in order, that
// CPUID reports VMX and that firmware has not locked VMX off, and returns an
// *UnavailableError otherwise. It reads no MSR the processor does not
// implement (see the package comment).
func Probe(cpu hw.CPUID, msr hw.MSRs) (*Capabilities, error) {
	maxLeaf, _, _, _ := cpu.CPUID(0, 0)
	var ecx uint32
	if maxLeaf >= 1 {
		_, _, ecx, _ = cpu.CPUID(1, 0)
	}
	if ecx&cpuid1ECXVMX == 0 {
		return nil, &UnavailableError{Engine: "vmx", Reason: NotReported,
			Detail: "this CPU does not report VMX (CPUID.1:ECX.VMX[bit 5] = 0); under a hypervisor, enable nested virtualization"}
	}

	c := &Capabilities{Hypervisor: ecx&cpuid1ECXHypervisor != 0}
	read := func(m MSR) uint64 { return msr.ReadMSR(uint32(m)) }

	// IA32_FEATURE_CONTROL exists because CPUID reports VMX (SDM Vol. 4,
	// Table 2-2).
	c.FeatureControl = DecodeFeatureControl(read(IA32FeatureControl))
	if !c.FeatureControl.VMXONAllowed() {
		d := "VMX is disabled by firmware: IA32_FEATURE_CONTROL is locked with VMXON outside SMX disabled; enable Intel VT-x in the firmware setup"
		if c.FeatureControl.VMXInsideSMX {
			d += " (firmware enabled VMX only inside SMX, for Intel TXT launches)"
		}
		return nil, &UnavailableError{Engine: "vmx", Reason: DisabledByFirmware,
			Detail: fmt.Sprintf("%s; IA32_FEATURE_CONTROL = %#x", d, c.FeatureControl.Raw)}
	}

	// These exist on every processor that reports VMX (Appendix A).
	basic := read(IA32VMXBasic)
	if err := validateBasic(basic); err != nil {
		return nil, inconsistent(err)
	}
	c.Basic = DecodeBasic(basic)
	c.LegacyPin = ControlCapsFromMSR(read(IA32VMXPinbasedCtls))
	c.LegacyProc = ControlCapsFromMSR(read(IA32VMXProcbasedCtls))
	c.LegacyExit = ControlCapsFromMSR(read(IA32VMXExitCtls))
	c.LegacyEntry = ControlCapsFromMSR(read(IA32VMXEntryCtls))
	c.Misc = DecodeMisc(read(IA32VMXMisc))
	c.CR0 = FixedBits{Register: "CR0", Fixed0: read(IA32VMXCR0Fixed0), Fixed1: read(IA32VMXCR0Fixed1)}
	c.CR4 = FixedBits{Register: "CR4", Fixed0: read(IA32VMXCR4Fixed0), Fixed1: read(IA32VMXCR4Fixed1)}
	c.MaxVMCSIndex = uint16(read(IA32VMXVMCSEnum)>>1) & 0x1ff

	c.Pin, c.Proc, c.Exit, c.Entry = c.LegacyPin, c.LegacyProc, c.LegacyExit, c.LegacyEntry
	if c.Basic.TrueControls { // Appendix A.2: bit 55 announces the TRUE MSRs.
		c.Pin = ControlCapsFromMSR(read(IA32VMXTruePinbasedCtls))
		c.Proc = ControlCapsFromMSR(read(IA32VMXTrueProcbasedCtls))
		c.Exit = ControlCapsFromMSR(read(IA32VMXTrueExitCtls))
		c.Entry = ControlCapsFromMSR(read(IA32VMXTrueEntryCtls))
	}

	// Appendix A.3.3: only if bit 63 of IA32_VMX_PROCBASED_CTLS is 1.
	if c.LegacyProc.Allows(ProcActivateSecondary) {
		c.HasSecondary = true
		c.Proc2 = ControlCapsFromMSR(read(IA32VMXProcbasedCtls2))
	}
	// Appendix A.3.4: only if bit 49 of IA32_VMX_PROCBASED_CTLS is 1.
	if c.LegacyProc.Allows(ProcActivateTertiary) {
		c.HasTertiary = true
		c.Proc3 = read(IA32VMXProcbasedCtls3)
	}
	// Appendix A.4.2: only if bit 63 of IA32_VMX_EXIT_CTLS is 1.
	if c.LegacyExit.Allows(ExitActivateSecondaryControls) {
		c.HasSecondaryExit = true
		c.Exit2 = read(IA32VMXExitCtls2)
	}
	if c.HasSecondary {
		// Appendix A.10: only if "enable EPT" or "enable VPID" may be 1.
		if c.Proc2.Allowed1&(Proc2EnableEPT|Proc2EnableVPID) != 0 {
			c.EPTVPID = EPTVPIDCap(read(IA32VMXEPTVPIDCap))
		}
		// Appendix A.11: only if "enable VM functions" may be 1.
		if c.Proc2.Allows(Proc2EnableVMFunctions) {
			c.VMFunc = read(IA32VMXVMFunc)
		}
	}

	if err := c.validate(); err != nil {
		return nil, inconsistent(err)
	}
	return c, nil
}

func inconsistent(err error) error {
	return &UnavailableError{Engine: "vmx", Reason: Inconsistent,
		Detail: err.Error() + "; refusing to use VMX with capability values the SDM rules out (under a hypervisor, its nested VMX is broken)"}
}

// validate rejects capability values that no processor reports and that
// would make every control computation wrong.
func (c *Capabilities) validate() error {
	words := []struct {
		msr  MSR
		caps ControlCaps
	}{
		{IA32VMXPinbasedCtls, c.LegacyPin}, {IA32VMXProcbasedCtls, c.LegacyProc},
		{IA32VMXExitCtls, c.LegacyExit}, {IA32VMXEntryCtls, c.LegacyEntry},
		{IA32VMXTruePinbasedCtls, c.Pin}, {IA32VMXTrueProcbasedCtls, c.Proc},
		{IA32VMXTrueExitCtls, c.Exit}, {IA32VMXTrueEntryCtls, c.Entry},
		{IA32VMXProcbasedCtls2, c.Proc2},
	}
	for _, w := range words {
		if bad := w.caps.Allowed0 &^ w.caps.Allowed1; bad != 0 {
			return fmt.Errorf("%v = %#x reports %s as both must-be-1 and not-allowed-1",
				w.msr, uint64(w.caps.Allowed1)<<32|uint64(w.caps.Allowed0), bitList(uint64(bad)))
		}
	}
	if err := validateFixed(c.CR0); err != nil {
		return err
	}
	return validateFixed(c.CR4)
}

// Feature accessors: each says whether the engine may use the feature,
// which for a control means its 1-setting is allowed.

// EPT reports that "enable EPT" may be 1.
func (c *Capabilities) EPT() bool { return c.HasSecondary && c.Proc2.Allows(Proc2EnableEPT) }

// VPID reports that "enable VPID" may be 1.
func (c *Capabilities) VPID() bool { return c.HasSecondary && c.Proc2.Allows(Proc2EnableVPID) }

// UnrestrictedGuest reports that "unrestricted guest" may be 1, letting
// guests run in real mode and unpaged protected mode under EPT.
func (c *Capabilities) UnrestrictedGuest() bool {
	return c.HasSecondary && c.Proc2.Allows(Proc2UnrestrictedGuest)
}

// PreemptionTimer reports that "activate VMX-preemption timer" may be 1; it
// counts down once every 2^Misc.PreemptionTimerRate TSC ticks.
func (c *Capabilities) PreemptionTimer() bool { return c.Pin.Allows(PinPreemptionTimer) }

// Secondary reports whether the secondary control bits in mask may be 1.
func (c *Capabilities) Secondary(mask uint32) bool { return c.HasSecondary && c.Proc2.Allows(mask) }
