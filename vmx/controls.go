package vmx

import (
	"fmt"
	"math/bits"
	"strings"
)

// ControlCaps is what a VMX control capability MSR allows for one 32-bit
// VMCS control word (SDM Vol. 3D, Appendix A.3-A.5): the low dword of the
// MSR holds the allowed 0-settings (a 1 there means the control must be 1),
// the high dword the allowed 1-settings (a 0 there means the control must
// be 0). VM entry fails if a control word violates either.
type ControlCaps struct{ Allowed0, Allowed1 uint32 }

// ControlCapsFromMSR splits a raw control capability MSR value.
func ControlCapsFromMSR(v uint64) ControlCaps {
	return ControlCaps{Allowed0: uint32(v), Allowed1: uint32(v >> 32)}
}

// Allows reports whether every control in mask may be 1.
func (c ControlCaps) Allows(mask uint32) bool { return c.Allowed1&mask == mask }

// Forces reports whether every control in mask must be 1.
func (c ControlCaps) Forces(mask uint32) bool { return c.Allowed0&mask == mask }

// Adjust computes a legal control word: the controls that must be 1, the
// required ones, and the optional ones the processor allows. It fails,
// naming the bits, if a required control cannot be 1, or if the MSR itself
// is self-contradictory (a control that must be 1 but may not be).
//
// This is the SDM's algorithm for known controls ("Algorithms for
// Determining VMX Capabilities", Vol. 3C); reserved controls in the
// default1 class end up 1 only when the MSR forces them, which is legal by
// construction. Passing the *Default1Reserved masks as optional reproduces
// the SDM's advice to leave unknown default1 controls at 1.
func (c ControlCaps) Adjust(required, optional uint32) (uint32, error) {
	if bad := c.Allowed0 &^ c.Allowed1; bad != 0 {
		return 0, &ControlError{Inconsistent: bad, Caps: c}
	}
	if missing := required &^ c.Allowed1; missing != 0 {
		return 0, &ControlError{Missing: missing, Caps: c}
	}
	return c.Allowed0 | required | optional&c.Allowed1, nil
}

// ControlError reports why ControlCaps.Adjust could not build a control
// word. The engine wraps it with the name of the control word.
type ControlError struct {
	// Missing holds required controls the processor does not allow.
	Missing uint32
	// Inconsistent holds controls the MSR reports as both must-be-1 and
	// not-allowed-1: a broken capability MSR.
	Inconsistent uint32
	Caps         ControlCaps
}

func (e *ControlError) Error() string {
	if e.Inconsistent != 0 {
		return fmt.Sprintf("vmx: capability MSR is self-contradictory: %s must be 1 but may not be 1 (allowed-0 %#08x, allowed-1 %#08x)",
			bitList(uint64(e.Inconsistent)), e.Caps.Allowed0, e.Caps.Allowed1)
	}
	return fmt.Sprintf("vmx: required controls not supported by this processor: %s (mask %#x; allowed-1 settings %#08x)",
		bitList(uint64(e.Missing)), e.Missing, e.Caps.Allowed1)
}

// bitList names the set bits of m: "bit 3", "bits 1, 7".
func bitList(m uint64) string {
	var sb strings.Builder
	n := bits.OnesCount64(m)
	if n == 1 {
		sb.WriteString("bit ")
	} else {
		sb.WriteString("bits ")
	}
	first := true
	for m != 0 {
		b := bits.TrailingZeros64(m)
		m &^= 1 << b
		if !first {
			sb.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&sb, "%d", b)
	}
	return sb.String()
}

// Pin-based VM-execution controls (SDM Vol. 3C, Table "Definitions of
// Pin-Based VM-Execution Controls").
const (
	PinExternalInterruptExiting uint32 = 1 << 0
	PinNMIExiting               uint32 = 1 << 3
	PinVirtualNMIs              uint32 = 1 << 5
	PinPreemptionTimer          uint32 = 1 << 6
	PinPostedInterrupts         uint32 = 1 << 7

	// PinDefault1Reserved are the reserved pin-based controls of the
	// default1 class (Appendix A.2).
	PinDefault1Reserved uint32 = 1<<1 | 1<<2 | 1<<4
)

// Primary processor-based VM-execution controls (SDM Vol. 3C, Table
// "Definitions of Primary Processor-Based VM-Execution Controls").
const (
	ProcInterruptWindowExiting uint32 = 1 << 2
	ProcUseTSCOffsetting       uint32 = 1 << 3
	ProcHLTExiting             uint32 = 1 << 7
	ProcINVLPGExiting          uint32 = 1 << 9
	ProcMWAITExiting           uint32 = 1 << 10
	ProcRDPMCExiting           uint32 = 1 << 11
	ProcRDTSCExiting           uint32 = 1 << 12
	ProcCR3LoadExiting         uint32 = 1 << 15
	ProcCR3StoreExiting        uint32 = 1 << 16
	ProcActivateTertiary       uint32 = 1 << 17
	ProcCR8LoadExiting         uint32 = 1 << 19
	ProcCR8StoreExiting        uint32 = 1 << 20
	ProcUseTPRShadow           uint32 = 1 << 21
	ProcNMIWindowExiting       uint32 = 1 << 22
	ProcMOVDRExiting           uint32 = 1 << 23
	ProcUnconditionalIOExiting uint32 = 1 << 24
	ProcUseIOBitmaps           uint32 = 1 << 25
	ProcMonitorTrapFlag        uint32 = 1 << 27
	ProcUseMSRBitmaps          uint32 = 1 << 28
	ProcMONITORExiting         uint32 = 1 << 29
	ProcPAUSEExiting           uint32 = 1 << 30
	ProcActivateSecondary      uint32 = 1 << 31

	// ProcDefault1Reserved are the reserved primary processor-based
	// controls of the default1 class (Appendix A.2; bits 15 and 16, also
	// default1, are the CR3 exiting controls above).
	ProcDefault1Reserved uint32 = 1<<1 | 1<<4 | 1<<5 | 1<<6 | 1<<8 | 1<<13 | 1<<14 | 1<<26
)

// Secondary processor-based VM-execution controls (SDM Vol. 3C, Table
// "Definitions of Secondary Processor-Based VM-Execution Controls").
const (
	Proc2VirtualizeAPICAccesses     uint32 = 1 << 0
	Proc2EnableEPT                  uint32 = 1 << 1
	Proc2DescriptorTableExiting     uint32 = 1 << 2
	Proc2EnableRDTSCP               uint32 = 1 << 3
	Proc2VirtualizeX2APIC           uint32 = 1 << 4
	Proc2EnableVPID                 uint32 = 1 << 5
	Proc2WBINVDExiting              uint32 = 1 << 6
	Proc2UnrestrictedGuest          uint32 = 1 << 7
	Proc2APICRegisterVirtualization uint32 = 1 << 8
	Proc2VirtualInterruptDelivery   uint32 = 1 << 9
	Proc2PAUSELoopExiting           uint32 = 1 << 10
	Proc2RDRANDExiting              uint32 = 1 << 11
	Proc2EnableINVPCID              uint32 = 1 << 12
	Proc2EnableVMFunctions          uint32 = 1 << 13
	Proc2VMCSShadowing              uint32 = 1 << 14
	Proc2ENCLSExiting               uint32 = 1 << 15
	Proc2RDSEEDExiting              uint32 = 1 << 16
	Proc2EnablePML                  uint32 = 1 << 17
	Proc2EPTViolationVE             uint32 = 1 << 18
	Proc2EnableXSAVES               uint32 = 1 << 20
	Proc2ModeBasedEPTExecute        uint32 = 1 << 22
	Proc2UseTSCScaling              uint32 = 1 << 25
)

// Primary VM-exit controls (SDM Vol. 3C, Table "Definitions of Primary
// VM-Exit Controls").
const (
	ExitSaveDebugControls         uint32 = 1 << 2
	ExitHostAddressSpaceSize      uint32 = 1 << 9
	ExitLoadPerfGlobalCtrl        uint32 = 1 << 12
	ExitAcknowledgeInterrupt      uint32 = 1 << 15
	ExitSavePAT                   uint32 = 1 << 18
	ExitLoadPAT                   uint32 = 1 << 19
	ExitSaveEFER                  uint32 = 1 << 20
	ExitLoadEFER                  uint32 = 1 << 21
	ExitSavePreemptionTimer       uint32 = 1 << 22
	ExitActivateSecondaryControls uint32 = 1 << 31

	// ExitDefault1Reserved are the reserved VM-exit controls of the
	// default1 class (Appendix A.2; bit 2 is "save debug controls").
	ExitDefault1Reserved uint32 = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 |
		1<<10 | 1<<11 | 1<<13 | 1<<14 | 1<<16 | 1<<17
)

// VM-entry controls (SDM Vol. 3C, Table "Definitions of VM-Entry Controls").
const (
	EntryLoadDebugControls  uint32 = 1 << 2
	EntryIA32eModeGuest     uint32 = 1 << 9
	EntryToSMM              uint32 = 1 << 10
	EntryDeactivateDualMon  uint32 = 1 << 11
	EntryLoadPerfGlobalCtrl uint32 = 1 << 13
	EntryLoadPAT            uint32 = 1 << 14
	EntryLoadEFER           uint32 = 1 << 15

	// EntryDefault1Reserved are the reserved VM-entry controls of the
	// default1 class (Appendix A.2; bit 2 is "load debug controls").
	EntryDefault1Reserved uint32 = 1<<0 | 1<<1 | 1<<3 | 1<<4 | 1<<5 | 1<<6 | 1<<7 | 1<<8 | 1<<12
)
