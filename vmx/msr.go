package vmx

import "fmt"

// MSR is the index of a model-specific register that the VMX capability
// layer reads. Indices are from the SDM Vol. 4, Table 2-2 "IA-32
// Architectural MSRs", and the SDM Vol. 3D, Appendix A.
type MSR uint32

const (
	// IA32FeatureControl holds the firmware's VMX enable and lock bits
	// (SDM Vol. 4, Table 2-2; Vol. 3C, "Enabling and Entering VMX
	// Operation"). It exists when CPUID.1:ECX reports VMX or SMX.
	IA32FeatureControl MSR = 0x3A

	// IA32VMXBasic: VMCS revision, region size, memory type (Appendix A.1).
	IA32VMXBasic MSR = 0x480
	// IA32VMXPinbasedCtls: pin-based VM-execution controls (Appendix A.3.1).
	IA32VMXPinbasedCtls MSR = 0x481
	// IA32VMXProcbasedCtls: primary processor-based VM-execution controls
	// (Appendix A.3.2).
	IA32VMXProcbasedCtls MSR = 0x482
	// IA32VMXExitCtls: primary VM-exit controls (Appendix A.4.1).
	IA32VMXExitCtls MSR = 0x483
	// IA32VMXEntryCtls: VM-entry controls (Appendix A.5).
	IA32VMXEntryCtls MSR = 0x484
	// IA32VMXMisc: miscellaneous data (Appendix A.6).
	IA32VMXMisc MSR = 0x485
	// IA32VMXCR0Fixed0 and IA32VMXCR0Fixed1: CR0 bits fixed in VMX
	// operation (Appendix A.7).
	IA32VMXCR0Fixed0 MSR = 0x486
	IA32VMXCR0Fixed1 MSR = 0x487
	// IA32VMXCR4Fixed0 and IA32VMXCR4Fixed1: CR4 bits fixed in VMX
	// operation (Appendix A.8).
	IA32VMXCR4Fixed0 MSR = 0x488
	IA32VMXCR4Fixed1 MSR = 0x489
	// IA32VMXVMCSEnum: highest VMCS field index (Appendix A.9).
	IA32VMXVMCSEnum MSR = 0x48A
	// IA32VMXProcbasedCtls2: secondary processor-based controls; exists
	// only if bit 63 of IA32_VMX_PROCBASED_CTLS is 1 (Appendix A.3.3).
	IA32VMXProcbasedCtls2 MSR = 0x48B
	// IA32VMXEPTVPIDCap: EPT and VPID capabilities; exists only if the
	// secondary controls exist and allow "enable EPT" or "enable VPID"
	// (Appendix A.10).
	IA32VMXEPTVPIDCap MSR = 0x48C
	// The TRUE_* MSRs exist only if IA32_VMX_BASIC bit 55 is 1; they also
	// report which default1 controls may be 0 (Appendix A.2).
	IA32VMXTruePinbasedCtls  MSR = 0x48D
	IA32VMXTrueProcbasedCtls MSR = 0x48E
	IA32VMXTrueExitCtls      MSR = 0x48F
	IA32VMXTrueEntryCtls     MSR = 0x490
	// IA32VMXVMFunc: VM-function controls; exists only if the secondary
	// controls allow "enable VM functions" (Appendix A.11).
	IA32VMXVMFunc MSR = 0x491
	// IA32VMXProcbasedCtls3: tertiary processor-based controls, a 64-bit
	// allowed-1 mask; exists only if bit 49 of IA32_VMX_PROCBASED_CTLS
	// ("activate tertiary controls" may be 1) is set (Appendix A.3.4).
	IA32VMXProcbasedCtls3 MSR = 0x492
	// IA32VMXExitCtls2: secondary VM-exit controls, a 64-bit allowed-1
	// mask; exists only if bit 63 of IA32_VMX_EXIT_CTLS is 1
	// (Appendix A.4.2).
	IA32VMXExitCtls2 MSR = 0x493
)

var msrNames = map[MSR]string{
	IA32FeatureControl:       "IA32_FEATURE_CONTROL",
	IA32VMXBasic:             "IA32_VMX_BASIC",
	IA32VMXPinbasedCtls:      "IA32_VMX_PINBASED_CTLS",
	IA32VMXProcbasedCtls:     "IA32_VMX_PROCBASED_CTLS",
	IA32VMXExitCtls:          "IA32_VMX_EXIT_CTLS",
	IA32VMXEntryCtls:         "IA32_VMX_ENTRY_CTLS",
	IA32VMXMisc:              "IA32_VMX_MISC",
	IA32VMXCR0Fixed0:         "IA32_VMX_CR0_FIXED0",
	IA32VMXCR0Fixed1:         "IA32_VMX_CR0_FIXED1",
	IA32VMXCR4Fixed0:         "IA32_VMX_CR4_FIXED0",
	IA32VMXCR4Fixed1:         "IA32_VMX_CR4_FIXED1",
	IA32VMXVMCSEnum:          "IA32_VMX_VMCS_ENUM",
	IA32VMXProcbasedCtls2:    "IA32_VMX_PROCBASED_CTLS2",
	IA32VMXEPTVPIDCap:        "IA32_VMX_EPT_VPID_CAP",
	IA32VMXTruePinbasedCtls:  "IA32_VMX_TRUE_PINBASED_CTLS",
	IA32VMXTrueProcbasedCtls: "IA32_VMX_TRUE_PROCBASED_CTLS",
	IA32VMXTrueExitCtls:      "IA32_VMX_TRUE_EXIT_CTLS",
	IA32VMXTrueEntryCtls:     "IA32_VMX_TRUE_ENTRY_CTLS",
	IA32VMXVMFunc:            "IA32_VMX_VMFUNC",
	IA32VMXProcbasedCtls3:    "IA32_VMX_PROCBASED_CTLS3",
	IA32VMXExitCtls2:         "IA32_VMX_EXIT_CTLS2",
}

// String returns the SDM name of the MSR, for error messages.
func (m MSR) String() string {
	if n, ok := msrNames[m]; ok {
		return n
	}
	return fmt.Sprintf("MSR %#x", uint32(m))
}
