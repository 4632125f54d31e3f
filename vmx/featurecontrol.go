package vmx

// IA32_FEATURE_CONTROL bits (SDM Vol. 4, Table 2-2; SDM Vol. 3C, "Enabling
// and Entering VMX Operation"). Once the lock bit is set, the MSR cannot be
// written until reset: VMXON then works only if the enable bit for the
// current mode (inside or outside SMX) was set by firmware.
const (
	FeatureControlLock          = 1 << 0
	FeatureControlVMXInsideSMX  = 1 << 1
	FeatureControlVMXOutsideSMX = 1 << 2
)

// FeatureControl is IA32_FEATURE_CONTROL as far as VMX is concerned.
type FeatureControl struct {
	Raw           uint64
	Locked        bool
	VMXInsideSMX  bool
	VMXOutsideSMX bool
}

// DecodeFeatureControl decodes a raw IA32_FEATURE_CONTROL value.
func DecodeFeatureControl(v uint64) FeatureControl {
	return FeatureControl{
		Raw:           v,
		Locked:        v&FeatureControlLock != 0,
		VMXInsideSMX:  v&FeatureControlVMXInsideSMX != 0,
		VMXOutsideSMX: v&FeatureControlVMXOutsideSMX != 0,
	}
}

// NeedsEnable reports that firmware left the MSR unlocked: before VMXON the
// engine must write it with FeatureControlVMXOutsideSMX|FeatureControlLock
// (keeping the other bits), or VMXON raises #GP.
func (f FeatureControl) NeedsEnable() bool { return !f.Locked }

// VMXONAllowed reports whether VMXON outside SMX can succeed, now or after
// the engine enables and locks the MSR.
func (f FeatureControl) VMXONAllowed() bool { return !f.Locked || f.VMXOutsideSMX }
