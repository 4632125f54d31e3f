package vmx

import (
	"fmt"

	"tamavisor/guests/vcpu"
)

// ExitReason is a basic exit reason, bits 15:0 of the exit-reason field
// (SDM Vol. 3D, Appendix C "VMX Basic Exit Reasons").
type ExitReason uint16

const (
	ExitExceptionOrNMI      ExitReason = 0
	ExitExternalInterrupt   ExitReason = 1
	ExitTripleFault         ExitReason = 2
	ExitINIT                ExitReason = 3
	ExitSIPI                ExitReason = 4
	ExitIOSMI               ExitReason = 5
	ExitOtherSMI            ExitReason = 6
	ExitInterruptWindow     ExitReason = 7
	ExitNMIWindow           ExitReason = 8
	ExitTaskSwitch          ExitReason = 9
	ExitCPUID               ExitReason = 10
	ExitGETSEC              ExitReason = 11
	ExitHLT                 ExitReason = 12
	ExitINVD                ExitReason = 13
	ExitINVLPG              ExitReason = 14
	ExitRDPMC               ExitReason = 15
	ExitRDTSC               ExitReason = 16
	ExitRSM                 ExitReason = 17
	ExitVMCALL              ExitReason = 18
	ExitVMCLEAR             ExitReason = 19
	ExitVMLAUNCH            ExitReason = 20
	ExitVMPTRLD             ExitReason = 21
	ExitVMPTRST             ExitReason = 22
	ExitVMREAD              ExitReason = 23
	ExitVMRESUME            ExitReason = 24
	ExitVMWRITE             ExitReason = 25
	ExitVMXOFF              ExitReason = 26
	ExitVMXON               ExitReason = 27
	ExitCRAccess            ExitReason = 28
	ExitMOVDR               ExitReason = 29
	ExitIOInstruction       ExitReason = 30
	ExitRDMSR               ExitReason = 31
	ExitWRMSR               ExitReason = 32
	ExitInvalidGuestState   ExitReason = 33 // VM-entry failure
	ExitMSRLoading          ExitReason = 34 // VM-entry failure
	ExitMWAIT               ExitReason = 36
	ExitMonitorTrapFlag     ExitReason = 37
	ExitMONITOR             ExitReason = 39
	ExitPAUSE               ExitReason = 40
	ExitMachineCheckAtEntry ExitReason = 41 // VM-entry failure
	ExitTPRBelowThreshold   ExitReason = 43
	ExitAPICAccess          ExitReason = 44
	ExitVirtualizedEOI      ExitReason = 45
	ExitGDTRIDTRAccess      ExitReason = 46
	ExitLDTRTRAccess        ExitReason = 47
	ExitEPTViolation        ExitReason = 48
	ExitEPTMisconfig        ExitReason = 49
	ExitINVEPT              ExitReason = 50
	ExitRDTSCP              ExitReason = 51
	ExitPreemptionTimer     ExitReason = 52
	ExitINVVPID             ExitReason = 53
	ExitWBINVD              ExitReason = 54
	ExitXSETBV              ExitReason = 55
	ExitAPICWrite           ExitReason = 56
	ExitRDRAND              ExitReason = 57
	ExitINVPCID             ExitReason = 58
	ExitVMFUNC              ExitReason = 59
	ExitENCLS               ExitReason = 60
	ExitRDSEED              ExitReason = 61
	ExitPMLFull             ExitReason = 62
	ExitXSAVES              ExitReason = 63
	ExitXRSTORS             ExitReason = 64
	ExitPCONFIG             ExitReason = 65
	ExitSPPEvent            ExitReason = 66
	ExitUMWAIT              ExitReason = 67
	ExitTPAUSE              ExitReason = 68
	ExitLOADIWKEY           ExitReason = 69
	ExitENCLV               ExitReason = 70
	ExitENQCMDPASIDFailure  ExitReason = 72
	ExitENQCMDSPASIDFailure ExitReason = 73
	ExitBusLock             ExitReason = 74
	ExitInstructionTimeout  ExitReason = 75
	ExitSEAMCALL            ExitReason = 76
	ExitTDCALL              ExitReason = 77
	ExitRDMSRLIST           ExitReason = 78
	ExitWRMSRLIST           ExitReason = 79
	numExitReasons          ExitReason = 80
)

var exitReasonNames = [numExitReasons]string{
	ExitExceptionOrNMI: "exception or NMI", ExitExternalInterrupt: "external interrupt",
	ExitTripleFault: "triple fault", ExitINIT: "INIT signal", ExitSIPI: "start-up IPI",
	ExitIOSMI: "I/O SMI", ExitOtherSMI: "other SMI", ExitInterruptWindow: "interrupt window",
	ExitNMIWindow: "NMI window", ExitTaskSwitch: "task switch", ExitCPUID: "CPUID",
	ExitGETSEC: "GETSEC", ExitHLT: "HLT", ExitINVD: "INVD", ExitINVLPG: "INVLPG",
	ExitRDPMC: "RDPMC", ExitRDTSC: "RDTSC", ExitRSM: "RSM", ExitVMCALL: "VMCALL",
	ExitVMCLEAR: "VMCLEAR", ExitVMLAUNCH: "VMLAUNCH", ExitVMPTRLD: "VMPTRLD",
	ExitVMPTRST: "VMPTRST", ExitVMREAD: "VMREAD", ExitVMRESUME: "VMRESUME",
	ExitVMWRITE: "VMWRITE", ExitVMXOFF: "VMXOFF", ExitVMXON: "VMXON",
	ExitCRAccess: "control-register access", ExitMOVDR: "MOV DR",
	ExitIOInstruction: "I/O instruction", ExitRDMSR: "RDMSR", ExitWRMSR: "WRMSR",
	ExitInvalidGuestState: "VM-entry failure due to invalid guest state",
	ExitMSRLoading:        "VM-entry failure due to MSR loading",
	ExitMWAIT:             "MWAIT", ExitMonitorTrapFlag: "monitor trap flag", ExitMONITOR: "MONITOR",
	ExitPAUSE: "PAUSE", ExitMachineCheckAtEntry: "VM-entry failure due to machine-check event",
	ExitTPRBelowThreshold: "TPR below threshold", ExitAPICAccess: "APIC access",
	ExitVirtualizedEOI: "virtualized EOI", ExitGDTRIDTRAccess: "access to GDTR or IDTR",
	ExitLDTRTRAccess: "access to LDTR or TR", ExitEPTViolation: "EPT violation",
	ExitEPTMisconfig: "EPT misconfiguration", ExitINVEPT: "INVEPT", ExitRDTSCP: "RDTSCP",
	ExitPreemptionTimer: "VMX-preemption timer expired", ExitINVVPID: "INVVPID",
	ExitWBINVD: "WBINVD or WBNOINVD", ExitXSETBV: "XSETBV", ExitAPICWrite: "APIC write",
	ExitRDRAND: "RDRAND", ExitINVPCID: "INVPCID", ExitVMFUNC: "VMFUNC", ExitENCLS: "ENCLS",
	ExitRDSEED: "RDSEED", ExitPMLFull: "page-modification log full", ExitXSAVES: "XSAVES",
	ExitXRSTORS: "XRSTORS", ExitPCONFIG: "PCONFIG", ExitSPPEvent: "SPP-related event",
	ExitUMWAIT: "UMWAIT", ExitTPAUSE: "TPAUSE", ExitLOADIWKEY: "LOADIWKEY", ExitENCLV: "ENCLV",
	ExitENQCMDPASIDFailure:  "ENQCMD PASID translation failure",
	ExitENQCMDSPASIDFailure: "ENQCMDS PASID translation failure", ExitBusLock: "bus lock",
	ExitInstructionTimeout: "instruction timeout", ExitSEAMCALL: "SEAMCALL", ExitTDCALL: "TDCALL",
	ExitRDMSRLIST: "RDMSRLIST", ExitWRMSRLIST: "WRMSRLIST",
}

func (r ExitReason) String() string {
	if r < numExitReasons && exitReasonNames[r] != "" {
		return exitReasonNames[r]
	}
	return fmt.Sprintf("exit reason %d", uint16(r))
}

// Exit-reason field bits above the basic reason (SDM Vol. 3C, 25.9.1
// "Basic VM-Exit Information", Table "Format of Exit Reason").
const (
	ExitReasonEnclaveMode uint32 = 1 << 27
	ExitReasonPendingMTF  uint32 = 1 << 28
	ExitReasonFromRoot    uint32 = 1 << 29
	ExitReasonEntryFailed uint32 = 1 << 31
)

// Interruption-information fields: VM-entry (25.8.3, Table "Format of the
// VM-Entry Interruption-Information Field"), VM-exit (25.9.2) and
// IDT-vectoring (25.9.3) share this layout.
const (
	IntrVectorMask    uint32 = 0xff
	IntrTypeShift            = 8
	IntrTypeMask      uint32 = 7 << IntrTypeShift
	IntrErrorCodeBit  uint32 = 1 << 11 // deliver / has an error code
	IntrNMIUnblocking uint32 = 1 << 12 // VM-exit and IDT-vectoring only: NMI unblocking due to IRET
	IntrValid         uint32 = 1 << 31
)

// Interruption types, bits 10:8.
const (
	IntrTypeExternal      = 0
	IntrTypeNMI           = 2
	IntrTypeHardwareExc   = 3
	IntrTypeSoftwareInt   = 4
	IntrTypePrivilegedExc = 5 // INT1 (ICEBP)
	IntrTypeSoftwareExc   = 6 // INT3, INTO
	IntrTypeOther         = 7
)

// IntrType extracts the interruption type.
func IntrType(info uint32) uint32 { return (info & IntrTypeMask) >> IntrTypeShift }

// Interruptibility state bits (25.4.2, Table "Format of Interruptibility
// State").
const (
	BlockingBySTI   uint64 = 1 << 0
	BlockingByMovSS uint64 = 1 << 1
	BlockingBySMI   uint64 = 1 << 2
	BlockingByNMI   uint64 = 1 << 3
)

// ExitFields are the read-only VM-exit information fields (25.9) that
// DecodeExit needs, as VMREAD returned them.
type ExitFields struct {
	Reason            uint32 // VM_EXIT_REASON
	Qualification     uint64 // EXIT_QUALIFICATION
	GuestPhysical     uint64 // GUEST_PHYSICAL_ADDRESS
	GuestLinear       uint64 // GUEST_LINEAR_ADDRESS
	InterruptionInfo  uint32 // VM_EXIT_INTR_INFO
	InterruptionError uint32 // VM_EXIT_INTR_ERROR_CODE
	IDTVectoringInfo  uint32
	IDTVectoringError uint32
	InstructionLength uint32 // VM_EXIT_INSTRUCTION_LEN
	InstructionInfo   uint32 // VMX_INSTRUCTION_INFO
}

// Basic is the basic exit reason.
func (f *ExitFields) Basic() ExitReason { return ExitReason(f.Reason) }

// EntryFailed reports a VM-entry failure during or after loading guest
// state (exit reason bit 31; SDM Vol. 3C, 27.8).
func (f *ExitFields) EntryFailed() bool { return f.Reason&ExitReasonEntryFailed != 0 }

// IOQualification is the exit qualification of an I/O-instruction exit
// (SDM Vol. 3C, 28.2.1, Table "Exit Qualification for I/O Instructions").
type IOQualification uint64

// Size is the access size in bytes (bits 2:0: 0, 1 or 3 for 1, 2 or 4
// bytes), 0 for the encoding 2 no processor reports.
func (q IOQualification) Size() uint8 {
	switch q & 7 {
	case 0:
		return 1
	case 1:
		return 2
	case 3:
		return 4
	}
	return 0
}

func (q IOQualification) In() bool        { return q&(1<<3) != 0 }
func (q IOQualification) IsString() bool  { return q&(1<<4) != 0 }
func (q IOQualification) Rep() bool       { return q&(1<<5) != 0 }
func (q IOQualification) Immediate() bool { return q&(1<<6) != 0 } // port in the instruction, not DX
func (q IOQualification) Port() uint16    { return uint16(q >> 16) }

// EPT-violation exit qualification bits (SDM Vol. 3C, 28.2.1, Table "Exit
// Qualification for EPT Violations").
const (
	EPTViolationRead             uint64 = 1 << 0 // the access was a data read
	EPTViolationWrite            uint64 = 1 << 1 // a data write
	EPTViolationFetch            uint64 = 1 << 2 // an instruction fetch
	EPTViolationReadable         uint64 = 1 << 3 // the translation allowed reads
	EPTViolationWritable         uint64 = 1 << 4 // ... writes
	EPTViolationExecutable       uint64 = 1 << 5 // ... supervisor fetches
	EPTViolationLinearValid      uint64 = 1 << 7 // GUEST_LINEAR_ADDRESS is valid
	EPTViolationLinearTranslated uint64 = 1 << 8 // the access was to the linear address's translation (not a paging-structure walk)
	EPTViolationNMIUnblocking    uint64 = 1 << 12
)

// CRAccess is the decoded exit qualification of a control-register access
// (SDM Vol. 3C, 28.2.1, Table "Exit Qualification for Control-Register
// Accesses").
type CRAccess struct {
	CR   uint8 // bits 3:0: 0, 3, 4 or 8
	Kind CRAccessKind
	// GPR is the register operand of MOV to/from CR (bits 11:8).
	GPR vcpu.GPR
	// LMSWMemory: LMSW's operand was in memory (bit 6); LMSWSource is its
	// value (bits 31:16).
	LMSWMemory bool
	LMSWSource uint16
}

// CRAccessKind is bits 5:4.
type CRAccessKind uint8

const (
	CRMovTo   CRAccessKind = 0
	CRMovFrom CRAccessKind = 1
	CRCLTS    CRAccessKind = 2
	CRLMSW    CRAccessKind = 3
)

// DecodeCRAccess decodes a control-register-access exit qualification.
func DecodeCRAccess(q uint64) CRAccess {
	return CRAccess{
		CR:         uint8(q & 0xf),
		Kind:       CRAccessKind(q>>4) & 3,
		LMSWMemory: q&(1<<6) != 0,
		GPR:        vcpu.GPR(q>>8) & 0xf,
		LMSWSource: uint16(q >> 16),
	}
}

// vectorHasErrorCode lists the exceptions that push an error code (Intel
// SDM Vol. 3A, Table 6-1): #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14,
// #AC 17, #CP 21, #VC 29, #SX 30.
const vectorHasErrorCode = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17 | 1<<21 | 1<<29 | 1<<30

// instructionExits are the exits caused by an instruction whose length
// VM_EXIT_INSTRUCTION_LEN reports (SDM Vol. 3C, 28.2.5 "Information for VM
// Exits Due to Instruction Execution").
var instructionExits = func() (m [numExitReasons]bool) {
	for _, r := range []ExitReason{ExitCPUID, ExitGETSEC, ExitHLT, ExitINVD, ExitINVLPG,
		ExitRDPMC, ExitRDTSC, ExitRSM, ExitVMCALL, ExitVMCLEAR, ExitVMLAUNCH, ExitVMPTRLD,
		ExitVMPTRST, ExitVMREAD, ExitVMRESUME, ExitVMWRITE, ExitVMXOFF, ExitVMXON,
		ExitCRAccess, ExitMOVDR, ExitIOInstruction, ExitRDMSR, ExitWRMSR, ExitMWAIT,
		ExitMONITOR, ExitPAUSE, ExitGDTRIDTRAccess, ExitLDTRTRAccess, ExitINVEPT, ExitRDTSCP,
		ExitINVVPID, ExitWBINVD, ExitXSETBV, ExitRDRAND, ExitINVPCID, ExitVMFUNC, ExitENCLS,
		ExitRDSEED, ExitXSAVES, ExitXRSTORS, ExitPCONFIG, ExitUMWAIT, ExitTPAUSE} {
		m[r] = true
	}
	return m
}()

// DecodeExit turns the VM-exit information into the vendor-neutral record,
// as svm.DecodeExit does for a VMCB, so that the guest core sees the same
// exits on both vendors. The MSR number of RDMSR/WRMSR exits is in the
// guest's RCX, which the engine fills in. Control-register accesses are
// ReasonUnhandled here: the engine emulates them itself (CR0/CR4 bits it
// owns, CR8).
func DecodeExit(f *ExitFields, e *vcpu.Exit) {
	*e = vcpu.Exit{VendorCode: uint64(f.Reason), Qualification: f.Qualification, Info2: f.GuestPhysical}
	if f.EntryFailed() {
		e.Reason = vcpu.ReasonInvalidState
		e.Detail = EntryFailure(f.Reason, f.Qualification)
		return
	}
	basic := f.Basic()
	if basic < numExitReasons && instructionExits[basic] && f.InstructionLength >= 1 && f.InstructionLength <= 15 {
		e.InstructionLength = uint8(f.InstructionLength)
	}
	switch basic {
	case ExitCPUID:
		e.Reason = vcpu.ReasonCPUID
	case ExitHLT:
		e.Reason = vcpu.ReasonHLT
	case ExitIOInstruction:
		q := IOQualification(f.Qualification)
		if q.Size() == 0 {
			e.Reason = vcpu.ReasonUnhandled
			break
		}
		e.Reason = vcpu.ReasonIO
		e.IO = vcpu.IOExit{Port: q.Port(), Size: q.Size(), In: q.In(), String: q.IsString(), Rep: q.Rep()}
	case ExitRDMSR:
		e.Reason = vcpu.ReasonMSRRead
	case ExitWRMSR:
		e.Reason = vcpu.ReasonMSRWrite
	case ExitEPTViolation:
		q := f.Qualification
		e.Reason = vcpu.ReasonNestedPageFault
		e.NPF = vcpu.NPFExit{
			GPA:     f.GuestPhysical,
			Write:   q&EPTViolationWrite != 0,
			Execute: q&EPTViolationFetch != 0,
			Present: q&(EPTViolationReadable|EPTViolationWritable|EPTViolationExecutable) != 0,
		}
		// One access kind, as on AMD: a read-modify-write is a write.
		e.NPF.Read = !e.NPF.Write && !e.NPF.Execute
		if q&EPTViolationLinearValid != 0 {
			e.NPF.GuestLinear, e.NPF.GuestLinearValid = f.GuestLinear, true
		}
	case ExitExternalInterrupt:
		e.Reason = vcpu.ReasonExternalInterrupt
	case ExitInterruptWindow, ExitNMIWindow:
		// AMD has one virtual-interrupt window for both; the core asks
		// again for whichever it still needs.
		e.Reason = vcpu.ReasonInterruptWindow
	case ExitPreemptionTimer:
		e.Reason = vcpu.ReasonPreemption
	case ExitTripleFault:
		e.Reason = vcpu.ReasonShutdown
	case ExitINIT:
		e.Reason = vcpu.ReasonINIT
	case ExitSIPI:
		e.Reason = vcpu.ReasonSIPI
	case ExitVMCALL:
		e.Reason = vcpu.ReasonHypercall
	case ExitPAUSE:
		e.Reason = vcpu.ReasonPause
	case ExitXSETBV:
		e.Reason = vcpu.ReasonXSETBV
	case ExitEPTMisconfig:
		e.Reason = vcpu.ReasonInvalidState
		e.Detail = "EPT misconfiguration: an EPT entry on the walk to GUEST_PHYSICAL_ADDRESS is malformed (SDM Vol. 3C, 29.3.3.1), a hypervisor bug"
	case ExitExceptionOrNMI:
		info := f.InterruptionInfo
		switch {
		case info&IntrValid == 0:
			e.Reason = vcpu.ReasonUnhandled
		case IntrType(info) == IntrTypeNMI:
			e.Reason = vcpu.ReasonNMI
		default:
			e.Reason = vcpu.ReasonException
			e.Vector = uint8(info & IntrVectorMask)
			if info&IntrErrorCodeBit != 0 {
				e.ErrorCode, e.HasErrorCode = f.InterruptionError, true
			}
			if t := IntrType(info); t == IntrTypeSoftwareExc || t == IntrTypePrivilegedExc {
				if f.InstructionLength >= 1 && f.InstructionLength <= 15 {
					e.InstructionLength = uint8(f.InstructionLength)
				}
			}
		}
	default:
		e.Reason = vcpu.ReasonUnhandled
	}
}
