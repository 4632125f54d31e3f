package svm

import (
	"testing"

	"tamavisor/guests/vcpu"
)

func TestDecodeExit(t *testing.T) {
	v := new(VMCB)
	v.Save.RIP = 0x100000
	var e vcpu.Exit

	// OUT DX, AL to 0x3F8 (EXITINFO1: port 0x3f8<<16 | SZ8 | A32), next RIP in EXITINFO2.
	v.Control.ExitCode, v.Control.ExitInfo1, v.Control.ExitInfo2 = uint64(ExitIOIO), 0x3f8<<16|ioinfoSize8|1<<8, 0x100001
	DecodeExit(v, false, &e)
	if e.Reason != vcpu.ReasonIO || e.IO.Port != 0x3f8 || e.IO.Size != 1 || e.IO.In || e.InstructionLength != 1 {
		t.Errorf("OUT decoded as %+v", e)
	}
	// REP INSW from 0x1F0.
	v.Control.ExitInfo1, v.Control.ExitInfo2 = 0x1f0<<16|ioinfoSize16|ioinfoRep|ioinfoString|ioinfoIn, 0x100003
	DecodeExit(v, false, &e)
	if !e.IO.In || !e.IO.Rep || !e.IO.String || e.IO.Size != 2 || e.InstructionLength != 3 {
		t.Errorf("REP INSW decoded as %+v", e)
	}

	// CPUID without NRIPS leaves the length to the core; with NRIPS it is NextRIP-RIP.
	v.Control = ControlArea{ExitCode: uint64(ExitCPUID), NextRIP: 0x100002}
	DecodeExit(v, false, &e)
	if e.Reason != vcpu.ReasonCPUID || e.InstructionLength != 0 {
		t.Errorf("CPUID without NRIPS: %+v", e)
	}
	DecodeExit(v, true, &e)
	if e.InstructionLength != 2 {
		t.Errorf("CPUID with NRIPS: length %d, want 2", e.InstructionLength)
	}

	// #NPF: write to a not-present page at 0xFEE00300.
	v.Control = ControlArea{ExitCode: uint64(ExitNPF), ExitInfo1: 1<<32 | npfWrite, ExitInfo2: 0xfee00300}
	DecodeExit(v, false, &e)
	if e.Reason != vcpu.ReasonNestedPageFault || e.NPF.GPA != 0xfee00300 || !e.NPF.Write || e.NPF.Present || e.NPF.Read {
		t.Errorf("NPF decoded as %+v", e)
	}

	// VMEXIT_INVALID as QEMU writes it, and as hardware does.
	for _, code := range []uint64{0xffffffff, 0xffffffffffffffff} {
		v.Control = ControlArea{ExitCode: code}
		DecodeExit(v, false, &e)
		if e.Reason != vcpu.ReasonInvalidState || e.Detail == "" {
			t.Errorf("exit code %#x decoded as %v", code, e.Reason)
		}
	}

	// #PF intercept carries its error code; #UD has none.
	v.Control = ControlArea{ExitCode: uint64(ExitException0 + 14), ExitInfo1: 0x2}
	DecodeExit(v, false, &e)
	if e.Reason != vcpu.ReasonException || e.Vector != 14 || !e.HasErrorCode || e.ErrorCode != 2 {
		t.Errorf("#PF decoded as %+v", e)
	}
	v.Control = ControlArea{ExitCode: uint64(ExitException0 + 6)}
	DecodeExit(v, false, &e)
	if e.Vector != 6 || e.HasErrorCode {
		t.Errorf("#UD decoded as %+v", e)
	}

	v.Control = ControlArea{ExitCode: uint64(ExitShutdown)}
	DecodeExit(v, false, &e)
	if e.Reason != vcpu.ReasonShutdown {
		t.Errorf("SHUTDOWN decoded as %v", e.Reason)
	}
	v.Control = ControlArea{ExitCode: 0x8e} // RDPRU: no neutral meaning
	DecodeExit(v, false, &e)
	if e.Reason != vcpu.ReasonUnhandled || e.VendorCode != 0x8e {
		t.Errorf("RDPRU decoded as %v", e.Reason)
	}
}

func TestDecodeExitDoesNotAllocate(t *testing.T) {
	v := new(VMCB)
	v.Control.ExitCode = uint64(ExitIOIO)
	var e vcpu.Exit
	if n := testing.AllocsPerRun(1000, func() { DecodeExit(v, true, &e) }); n != 0 {
		t.Errorf("DecodeExit allocates %.1f times", n)
	}
}
