package svm

import "tamavisor/guests/vcpu"

// ExitCode is the VMCB EXITCODE (APM Vol. 2, Appendix C, Table C-1).
type ExitCode uint64

const (
	ExitCR0Read    ExitCode = 0x000
	ExitCR0Write   ExitCode = 0x010
	ExitException0 ExitCode = 0x040 // + vector
	ExitINTR       ExitCode = 0x060
	ExitNMI        ExitCode = 0x061
	ExitSMI        ExitCode = 0x062
	ExitINIT       ExitCode = 0x063
	ExitVINTR      ExitCode = 0x064
	ExitRDTSC      ExitCode = 0x06E
	ExitCPUID      ExitCode = 0x072
	ExitIRET       ExitCode = 0x074
	ExitPAUSE      ExitCode = 0x077
	ExitHLT        ExitCode = 0x078
	ExitINVLPG     ExitCode = 0x079
	ExitIOIO       ExitCode = 0x07B
	ExitMSR        ExitCode = 0x07C
	ExitTaskSwitch ExitCode = 0x07D
	ExitShutdown   ExitCode = 0x07F
	ExitVMRUN      ExitCode = 0x080
	ExitVMMCALL    ExitCode = 0x081
	ExitVMLOAD     ExitCode = 0x082
	ExitVMSAVE     ExitCode = 0x083
	ExitSTGI       ExitCode = 0x084
	ExitCLGI       ExitCode = 0x085
	ExitSKINIT     ExitCode = 0x086
	ExitRDTSCP     ExitCode = 0x087
	ExitWBINVD     ExitCode = 0x089
	ExitMONITOR    ExitCode = 0x08A
	ExitMWAIT      ExitCode = 0x08B
	ExitXSETBV     ExitCode = 0x08D
	ExitNPF        ExitCode = 0x400
	// ExitInvalid: VMRUN found illegal guest state (15.5.1). QEMU writes
	// it as 0x00000000ffffffff, hardware as all ones: compare as int32.
	ExitInvalid ExitCode = 0xffffffffffffffff
)

// IsInvalid reports VMEXIT_INVALID however the 64-bit field was written.
func (c ExitCode) IsInvalid() bool { return int32(c) == -1 }

// IOIO EXITINFO1 bits (APM Vol. 2, 15.10.2, Figure 15-2).
const (
	ioinfoIn     = 1 << 0
	ioinfoString = 1 << 2
	ioinfoRep    = 1 << 3
	ioinfoSize8  = 1 << 4
	ioinfoSize16 = 1 << 5
	ioinfoSize32 = 1 << 6
)

// #NPF EXITINFO1 bits (APM Vol. 2, 15.25.6: a page-fault error code plus
// bits 32 and 33).
const (
	npfPresent = 1 << 0
	npfWrite   = 1 << 1
	npfFetch   = 1 << 4
)

// vectorHasErrorCode lists the exceptions that push an error code (Intel
// SDM Vol. 3A, Table 6-1; AMD APM Vol. 2, 8.2).
const vectorHasErrorCode = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17 | 1<<21 | 1<<29 | 1<<30

// DecodeExit turns the VMCB's exit fields into the vendor-neutral record.
// nrips says whether the CPU writes NextRIP (CPUID Fn8000_000A_EDX[3]);
// without it, the instruction length is left 0 for the core to decode,
// except for IOIO, whose EXITINFO2 always holds the next RIP.
func DecodeExit(v *VMCB, nrips bool, e *vcpu.Exit) {
	c := &v.Control
	code := ExitCode(c.ExitCode)
	*e = vcpu.Exit{VendorCode: c.ExitCode, Qualification: c.ExitInfo1, Info2: c.ExitInfo2}
	if nrips && c.NextRIP > v.Save.RIP && c.NextRIP-v.Save.RIP <= 15 {
		e.InstructionLength = uint8(c.NextRIP - v.Save.RIP)
	}
	switch {
	case code.IsInvalid():
		e.Reason = vcpu.ReasonInvalidState
		e.Detail = "VMRUN refused the guest state (VMEXIT_INVALID): see the consistency checks of AMD APM Vol. 2, 15.5.1"
	case code == ExitCPUID:
		e.Reason = vcpu.ReasonCPUID
	case code == ExitHLT:
		e.Reason = vcpu.ReasonHLT
	case code == ExitIOIO:
		e.Reason = vcpu.ReasonIO
		info := c.ExitInfo1
		e.IO = vcpu.IOExit{
			Port:   uint16(info >> 16),
			In:     info&ioinfoIn != 0,
			String: info&ioinfoString != 0,
			Rep:    info&ioinfoRep != 0,
		}
		switch {
		case info&ioinfoSize8 != 0:
			e.IO.Size = 1
		case info&ioinfoSize16 != 0:
			e.IO.Size = 2
		default:
			e.IO.Size = 4
		}
		if c.ExitInfo2 > v.Save.RIP && c.ExitInfo2-v.Save.RIP <= 15 {
			e.InstructionLength = uint8(c.ExitInfo2 - v.Save.RIP)
		}
	case code == ExitMSR:
		if c.ExitInfo1 == 1 {
			e.Reason = vcpu.ReasonMSRWrite
		} else {
			e.Reason = vcpu.ReasonMSRRead
		}
	case code == ExitNPF:
		e.Reason = vcpu.ReasonNestedPageFault
		e.NPF = vcpu.NPFExit{
			GPA:     c.ExitInfo2,
			Present: c.ExitInfo1&npfPresent != 0,
			Write:   c.ExitInfo1&npfWrite != 0,
			Execute: c.ExitInfo1&npfFetch != 0,
		}
		e.NPF.Read = !e.NPF.Write && !e.NPF.Execute
	case code == ExitINTR:
		e.Reason = vcpu.ReasonExternalInterrupt
	case code == ExitNMI:
		e.Reason = vcpu.ReasonNMI
	case code == ExitVINTR:
		e.Reason = vcpu.ReasonInterruptWindow
	case code == ExitShutdown:
		e.Reason = vcpu.ReasonShutdown
	case code == ExitINIT:
		e.Reason = vcpu.ReasonINIT
	case code == ExitVMMCALL:
		e.Reason = vcpu.ReasonHypercall
	case code == ExitPAUSE:
		e.Reason = vcpu.ReasonPause
	case code == ExitXSETBV:
		e.Reason = vcpu.ReasonXSETBV
	case code >= ExitException0 && code < ExitException0+32:
		e.Reason = vcpu.ReasonException
		e.Vector = uint8(code - ExitException0)
		if vectorHasErrorCode&(1<<e.Vector) != 0 {
			e.ErrorCode, e.HasErrorCode = uint32(c.ExitInfo1), true
		}
	default:
		e.Reason = vcpu.ReasonUnhandled
	}
}
