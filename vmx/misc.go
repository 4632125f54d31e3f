package vmx

// Misc is IA32_VMX_MISC decoded (SDM Vol. 3D, Appendix A.6).
type Misc struct {
	// PreemptionTimerRate X (bits 4:0): the VMX-preemption timer counts
	// down by 1 every time bit X of the TSC changes, i.e. once every 2^X
	// TSC ticks.
	PreemptionTimerRate uint8
	// StoresLMA (bit 5): VM exits store EFER.LMA into the "IA-32e mode
	// guest" VM-entry control; reported 1 on processors that support
	// unrestricted guests.
	StoresLMA bool
	// Activity states that VM entry may establish besides active
	// (bits 6, 7, 8).
	ActivityHLT         bool
	ActivityShutdown    bool
	ActivityWaitForSIPI bool
	// ProcessorTraceInVMX (bit 14): Intel PT can be used in VMX operation.
	ProcessorTraceInVMX bool
	// SMBaseReadInSMM (bit 15): RDMSR in SMM can read IA32_SMBASE.
	SMBaseReadInSMM bool
	// CR3TargetCount (bits 24:16): number of CR3-target values, 0 to 256.
	CR3TargetCount uint16
	// MaxMSRListEntries is the recommended maximum number of entries in
	// each VM-exit/VM-entry MSR list: 512 * (N + 1) for N in bits 27:25.
	MaxMSRListEntries uint32
	// SMMMonitorCtlBit2 (bit 28): bit 2 of IA32_SMM_MONITOR_CTL can be set.
	SMMMonitorCtlBit2 bool
	// VMWRITEAnyField (bit 29): VMWRITE may write the VM-exit
	// information fields.
	VMWRITEAnyField bool
	// ZeroLengthInjection (bit 30): VM entry may inject a software
	// interrupt or exception with an instruction length of 0.
	ZeroLengthInjection bool
	// MSEGRevision (bits 63:32) is the MSEG revision identifier.
	MSEGRevision uint32
}

// DecodeMisc decodes a raw IA32_VMX_MISC value.
func DecodeMisc(v uint64) Misc {
	return Misc{
		PreemptionTimerRate: uint8(v & 0x1f),
		StoresLMA:           v&(1<<5) != 0,
		ActivityHLT:         v&(1<<6) != 0,
		ActivityShutdown:    v&(1<<7) != 0,
		ActivityWaitForSIPI: v&(1<<8) != 0,
		ProcessorTraceInVMX: v&(1<<14) != 0,
		SMBaseReadInSMM:     v&(1<<15) != 0,
		CR3TargetCount:      uint16(v>>16) & 0x1ff,
		MaxMSRListEntries:   512 * (uint32(v>>25)&7 + 1),
		SMMMonitorCtlBit2:   v&(1<<28) != 0,
		VMWRITEAnyField:     v&(1<<29) != 0,
		ZeroLengthInjection: v&(1<<30) != 0,
		MSEGRevision:        uint32(v >> 32),
	}
}
