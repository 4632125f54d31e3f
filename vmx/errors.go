package vmx

import "fmt"

// InstructionError is the VM-instruction error field, valid after a VMX
// instruction fails with VMfailValid (ZF set) (SDM Vol. 3C, 31.4
// "VM Instruction Error Numbers").
type InstructionError uint32

var instructionErrors = map[InstructionError]string{
	1:  "VMCALL executed in VMX root operation",
	2:  "VMCLEAR with invalid physical address",
	3:  "VMCLEAR with VMXON pointer",
	4:  "VMLAUNCH with non-clear VMCS",
	5:  "VMRESUME with non-launched VMCS",
	6:  "VMRESUME after VMXOFF (VMXOFF and VMXON between VMLAUNCH and VMRESUME)",
	7:  "VM entry with invalid control field(s)",
	8:  "VM entry with invalid host-state field(s)",
	9:  "VMPTRLD with invalid physical address",
	10: "VMPTRLD with VMXON pointer",
	11: "VMPTRLD with incorrect VMCS revision identifier",
	12: "VMREAD/VMWRITE from/to unsupported VMCS component",
	13: "VMWRITE to read-only VMCS component",
	15: "VMXON executed in VMX root operation",
	16: "VM entry with invalid executive-VMCS pointer",
	17: "VM entry with non-launched executive VMCS",
	18: "VM entry with executive-VMCS pointer not VMXON pointer",
	19: "VMCALL with non-clear VMCS",
	20: "VMCALL with invalid VM-exit control fields",
	22: "VMCALL with incorrect MSEG revision identifier",
	23: "VMXOFF under dual-monitor treatment of SMIs and SMM",
	24: "VMCALL with invalid SMM-monitor features",
	25: "VM entry with invalid VM-execution control fields in executive VMCS",
	26: "VM entry with events blocked by MOV SS",
	28: "invalid operand to INVEPT/INVVPID",
}

// String names the error as SDM 31.4 does.
func (e InstructionError) String() string {
	if s, ok := instructionErrors[e]; ok {
		return fmt.Sprintf("VM-instruction error %d: %s", uint32(e), s)
	}
	return fmt.Sprintf("VM-instruction error %d (not listed in SDM Vol. 3C, 31.4)", uint32(e))
}

// Where to look when VMLAUNCH fails with errors 7 and 8: the checks of
// SDM Vol. 3C, 27.2 "Checks on VMX Controls and Host-State Area".
const (
	hintControls  = "; see SDM Vol. 3C, 27.2.1 \"Checks on VMX Controls\""
	hintHostState = "; see SDM Vol. 3C, 27.2.2-27.2.4 \"Checks on Host Control Registers, MSRs, Segment and Descriptor-Table Registers, Address-Space Size\""
)

// Hint returns where the SDM lists the checks behind errors 7 and 8.
func (e InstructionError) Hint() string {
	switch e {
	case 7:
		return hintControls
	case 8:
		return hintHostState
	}
	return ""
}

// EntryFailure explains a VM-entry failure reported as a VM exit (exit
// reason bit 31; SDM Vol. 3C, 27.8 "VM-Entry Failures During or After
// Loading Guest State"). The strings are static: this runs on the exit
// path.
func EntryFailure(reason uint32, qualification uint64) string {
	switch ExitReason(reason) {
	case ExitInvalidGuestState:
		switch qualification {
		case 2:
			return "VM entry failed: invalid guest state: the PAE page-directory-pointer-table entries (GUEST_PDPTE0-3) are invalid (exit qualification 2; SDM Vol. 3C, 27.3.1.6)"
		case 3:
			return "VM entry failed: invalid guest state: NMI injection while NMIs are blocked (exit qualification 3; SDM Vol. 3C, 27.3.1.5)"
		case 4:
			return "VM entry failed: invalid guest state: invalid VMCS link pointer (exit qualification 4; SDM Vol. 3C, 27.3.1.5)"
		}
		return "VM entry failed: invalid guest state (exit reason 33): a check of SDM Vol. 3C, 27.3.1 \"Checks on the Guest State Area\" failed; the dump names the checks the engine's own model finds violated"
	case ExitMSRLoading:
		return "VM entry failed: loading an MSR from the VM-entry MSR-load list (exit reason 34) failed; the exit qualification is the 1-based index of the entry (SDM Vol. 3C, 27.4 \"Loading MSRs\")"
	case ExitMachineCheckAtEntry:
		return "VM entry failed: a machine-check event occurred during VM entry (exit reason 41; SDM Vol. 3C, 27.9)"
	}
	return "VM entry failed (exit reason bit 31 set) with an undocumented basic exit reason"
}
