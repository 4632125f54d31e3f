package vmx

import (
	"tamavisor/vmx/cpuvendor"

	"strconv"
)

// Summary is one line for the boot inventory: "vmx:" then space-separated
// key=value pairs, values yes/no or numbers, in a fixed order.
func (c *Capabilities) Summary() string {
	line := cpuvendor.NewSummary("vmx")
	kv, yn := line.KV, line.YesNo
	ept := c.EPT()
	kv("revision", "0x"+strconv.FormatUint(uint64(c.Basic.Revision), 16))
	kv("vmcs-size", strconv.FormatUint(uint64(c.Basic.RegionSize), 10))
	yn("true-controls", c.Basic.TrueControls)
	yn("secondary-controls", c.HasSecondary)
	yn("ept", ept)
	yn("ept-4level", ept && c.EPTVPID.Has(EPTPageWalk4))
	yn("ept-5level", ept && c.EPTVPID.Has(EPTPageWalk5))
	yn("ept-wb", ept && c.EPTVPID.Has(EPTMemoryTypeWB))
	yn("ept-2m", ept && c.EPTVPID.Has(EPT2MBPages))
	yn("ept-1g", ept && c.EPTVPID.Has(EPT1GBPages))
	yn("ept-ad", ept && c.EPTVPID.Has(EPTAccessedDirty))
	yn("invept", ept && c.EPTVPID.Has(EPTINVEPT))
	yn("vpid", c.VPID())
	yn("invvpid", c.VPID() && c.EPTVPID.Has(VPIDINVVPID))
	yn("unrestricted-guest", c.UnrestrictedGuest())
	yn("preemption-timer", c.PreemptionTimer())
	kv("preemption-rate", strconv.Itoa(int(c.Misc.PreemptionTimerRate)))
	yn("apic-virt", c.Secondary(Proc2VirtualizeAPICAccesses))
	yn("x2apic-virt", c.Secondary(Proc2VirtualizeX2APIC))
	yn("apic-register-virt", c.Secondary(Proc2APICRegisterVirtualization))
	yn("virtual-interrupt-delivery", c.Secondary(Proc2VirtualInterruptDelivery))
	yn("posted-interrupts", c.Pin.Allows(PinPostedInterrupts))
	yn("virtual-nmi", c.Pin.Allows(PinVirtualNMIs))
	yn("tpr-shadow", c.Proc.Allows(ProcUseTPRShadow))
	yn("msr-bitmaps", c.Proc.Allows(ProcUseMSRBitmaps))
	yn("io-bitmaps", c.Proc.Allows(ProcUseIOBitmaps))
	yn("monitor-trap-flag", c.Proc.Allows(ProcMonitorTrapFlag))
	yn("pause-loop-exiting", c.Secondary(Proc2PAUSELoopExiting))
	yn("vmcs-shadowing", c.Secondary(Proc2VMCSShadowing))
	yn("pml", c.Secondary(Proc2EnablePML))
	yn("ept-ve", c.Secondary(Proc2EPTViolationVE))
	yn("tsc-scaling", c.Secondary(Proc2UseTSCScaling))
	yn("vmfunc", c.Secondary(Proc2EnableVMFunctions))
	yn("load-efer", c.Entry.Allows(EntryLoadEFER) && c.Exit.Allows(ExitLoadEFER))
	yn("load-pat", c.Entry.Allows(EntryLoadPAT) && c.Exit.Allows(ExitLoadPAT))
	yn("feature-control-locked", c.FeatureControl.Locked)
	return line.String()
}
