package vmx

import (
	"strings"
	"testing"

	"tamavisor/guests/vcpu"
	"tamavisor/svm"
)

func TestDecodeExit(t *testing.T) {
	tests := []struct {
		name  string
		f     ExitFields
		check func(e *vcpu.Exit) bool
	}{
		{"cpuid", ExitFields{Reason: 10, InstructionLength: 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonCPUID && e.InstructionLength == 2 }},
		{"hlt", ExitFields{Reason: 12, InstructionLength: 1},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonHLT && e.InstructionLength == 1 }},
		// OUT DX, AL to 0x3F8: size 0 (1 byte), OUT, DX operand.
		{"out dx,al", ExitFields{Reason: 30, Qualification: 0x3f8 << 16, InstructionLength: 1},
			func(e *vcpu.Exit) bool {
				return e.Reason == vcpu.ReasonIO && e.IO == vcpu.IOExit{Port: 0x3f8, Size: 1} && e.InstructionLength == 1
			}},
		// IN EAX, 0x71: size 3 (4 bytes), IN, immediate operand.
		{"in eax,imm", ExitFields{Reason: 30, Qualification: 0x71<<16 | 1<<6 | 1<<3 | 3, InstructionLength: 2},
			func(e *vcpu.Exit) bool {
				return e.IO == vcpu.IOExit{Port: 0x71, Size: 4, In: true} && e.InstructionLength == 2
			}},
		// REP OUTSW to 0x1F0: size 1, string, REP.
		{"rep outsw", ExitFields{Reason: 30, Qualification: 0x1f0<<16 | 1<<5 | 1<<4 | 1, InstructionLength: 3},
			func(e *vcpu.Exit) bool {
				return e.IO == vcpu.IOExit{Port: 0x1f0, Size: 2, String: true, Rep: true}
			}},
		{"io size encoding 2", ExitFields{Reason: 30, Qualification: 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonUnhandled }},
		{"rdmsr", ExitFields{Reason: 31, InstructionLength: 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonMSRRead && e.InstructionLength == 2 }},
		{"wrmsr", ExitFields{Reason: 32, InstructionLength: 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonMSRWrite }},
		// EPT violation: a write to an unmapped page, linear address valid.
		{"ept write", ExitFields{Reason: 48, Qualification: EPTViolationWrite | EPTViolationLinearValid | EPTViolationLinearTranslated,
			GuestPhysical: 0xfee00300, GuestLinear: 0xfee00300, InstructionLength: 7},
			func(e *vcpu.Exit) bool {
				return e.Reason == vcpu.ReasonNestedPageFault && e.InstructionLength == 0 &&
					e.NPF == vcpu.NPFExit{GPA: 0xfee00300, Write: true, GuestLinear: 0xfee00300, GuestLinearValid: true} &&
					e.Info2 == 0xfee00300
			}},
		// A read through a read-only translation: present.
		{"ept read present", ExitFields{Reason: 48, Qualification: EPTViolationRead | EPTViolationReadable, GuestPhysical: 0x1000},
			func(e *vcpu.Exit) bool {
				return e.NPF == vcpu.NPFExit{GPA: 0x1000, Read: true, Present: true}
			}},
		{"ept fetch", ExitFields{Reason: 48, Qualification: EPTViolationFetch, GuestPhysical: 0xdead000},
			func(e *vcpu.Exit) bool {
				return e.NPF.Execute && !e.NPF.Read && !e.NPF.Write && !e.NPF.GuestLinearValid
			}},
		{"external interrupt", ExitFields{Reason: 1, InterruptionInfo: IntrValid | 0xee},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonExternalInterrupt }},
		{"interrupt window", ExitFields{Reason: 7},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonInterruptWindow }},
		{"nmi window", ExitFields{Reason: 8},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonInterruptWindow }},
		{"triple fault", ExitFields{Reason: 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonShutdown && e.VendorCode == 2 }},
		{"init", ExitFields{Reason: 3}, func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonINIT }},
		{"sipi", ExitFields{Reason: 4}, func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonSIPI }},
		{"vmcall", ExitFields{Reason: 18, InstructionLength: 3},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonHypercall && e.InstructionLength == 3 }},
		{"xsetbv", ExitFields{Reason: 55, InstructionLength: 3},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonXSETBV }},
		{"pause", ExitFields{Reason: 40, InstructionLength: 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonPause }},
		{"preemption timer", ExitFields{Reason: 52},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonPreemption }},
		{"nmi", ExitFields{Reason: 0, InterruptionInfo: IntrValid | IntrTypeNMI<<IntrTypeShift | 2},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonNMI }},
		{"#GP with error code", ExitFields{Reason: 0,
			InterruptionInfo: IntrValid | IntrTypeHardwareExc<<IntrTypeShift | IntrErrorCodeBit | 13, InterruptionError: 0x18},
			func(e *vcpu.Exit) bool {
				return e.Reason == vcpu.ReasonException && e.Vector == 13 && e.HasErrorCode && e.ErrorCode == 0x18
			}},
		{"#MC", ExitFields{Reason: 0, InterruptionInfo: IntrValid | IntrTypeHardwareExc<<IntrTypeShift | 18},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonException && e.Vector == 18 && !e.HasErrorCode }},
		{"int3", ExitFields{Reason: 0, InterruptionInfo: IntrValid | IntrTypeSoftwareExc<<IntrTypeShift | 3, InstructionLength: 1},
			func(e *vcpu.Exit) bool { return e.Vector == 3 && e.InstructionLength == 1 }},
		{"invalid guest state", ExitFields{Reason: ExitReasonEntryFailed | 33},
			func(e *vcpu.Exit) bool {
				return e.Reason == vcpu.ReasonInvalidState && strings.Contains(e.Detail, "27.3.1") &&
					e.VendorCode == uint64(ExitReasonEntryFailed|33)
			}},
		{"msr loading", ExitFields{Reason: ExitReasonEntryFailed | 34, Qualification: 2},
			func(e *vcpu.Exit) bool {
				return e.Reason == vcpu.ReasonInvalidState && strings.Contains(e.Detail, "MSR-load list")
			}},
		{"ept misconfiguration", ExitFields{Reason: 49, GuestPhysical: 0x5000},
			func(e *vcpu.Exit) bool {
				return e.Reason == vcpu.ReasonInvalidState && strings.Contains(e.Detail, "EPT misconfiguration")
			}},
		{"vmlaunch in guest", ExitFields{Reason: 20, InstructionLength: 3},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonUnhandled && e.VendorCode == 20 }},
		{"cr access", ExitFields{Reason: 28},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonUnhandled }},
		{"length out of range", ExitFields{Reason: 10, InstructionLength: 16},
			func(e *vcpu.Exit) bool { return e.Reason == vcpu.ReasonCPUID && e.InstructionLength == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := vcpu.Exit{Reason: vcpu.ReasonHLT, Detail: "stale", MSR: 99}
			DecodeExit(&tt.f, &e)
			if !tt.check(&e) {
				t.Errorf("decoded as %+v", e)
			}
			if e.MSR != 0 || (e.Reason != vcpu.ReasonInvalidState && e.Detail != "") {
				t.Errorf("fields of the previous exit survived: %+v", e)
			}
			if e.VendorCode != uint64(tt.f.Reason) || e.Qualification != tt.f.Qualification {
				t.Errorf("raw fields not kept: %+v", e)
			}
		})
	}
}

// TestDecodeExitMatchesSVM: the same guest event reaches the guest core as
// the same vcpu.Exit on both vendors (vendor fields aside).
func TestDecodeExitMatchesSVM(t *testing.T) {
	neutral := func(e vcpu.Exit) vcpu.Exit {
		e.VendorCode, e.Qualification, e.Info2 = 0, 0, 0
		e.NPF.GuestLinear, e.NPF.GuestLinearValid = 0, false
		return e
	}
	v := new(svm.VMCB)
	v.Save.RIP = 0x100000
	cases := []struct {
		name string
		amd  svm.ControlArea
		vmx  ExitFields
	}{
		{"out dx,al", svm.ControlArea{ExitCode: uint64(svm.ExitIOIO), ExitInfo1: 0x3f8<<16 | 1<<4, ExitInfo2: 0x100001},
			ExitFields{Reason: 30, Qualification: 0x3f8 << 16, InstructionLength: 1}},
		{"rep insw", svm.ControlArea{ExitCode: uint64(svm.ExitIOIO), ExitInfo1: 0x1f0<<16 | 1<<5 | 1<<3 | 1<<2 | 1, ExitInfo2: 0x100002},
			ExitFields{Reason: 30, Qualification: 0x1f0<<16 | 1<<5 | 1<<4 | 1<<3 | 1, InstructionLength: 2}},
		{"in eax", svm.ControlArea{ExitCode: uint64(svm.ExitIOIO), ExitInfo1: 0xcfc<<16 | 1<<6 | 1, ExitInfo2: 0x100001},
			ExitFields{Reason: 30, Qualification: 0xcfc<<16 | 1<<3 | 3, InstructionLength: 1}},
		{"npf write", svm.ControlArea{ExitCode: uint64(svm.ExitNPF), ExitInfo1: 1<<32 | 2, ExitInfo2: 0xfee00300},
			ExitFields{Reason: 48, Qualification: EPTViolationWrite, GuestPhysical: 0xfee00300}},
		{"npf read", svm.ControlArea{ExitCode: uint64(svm.ExitNPF), ExitInfo1: 1 << 32, ExitInfo2: 0xfed00000},
			ExitFields{Reason: 48, Qualification: EPTViolationRead, GuestPhysical: 0xfed00000}},
		{"npf fetch", svm.ControlArea{ExitCode: uint64(svm.ExitNPF), ExitInfo1: 1<<32 | 1<<4, ExitInfo2: 0x9000000},
			ExitFields{Reason: 48, Qualification: EPTViolationFetch, GuestPhysical: 0x9000000}},
		{"hlt", svm.ControlArea{ExitCode: uint64(svm.ExitHLT), NextRIP: 0x100001},
			ExitFields{Reason: 12, InstructionLength: 1}},
		{"shutdown", svm.ControlArea{ExitCode: uint64(svm.ExitShutdown)}, ExitFields{Reason: 2}},
		{"#GP", svm.ControlArea{ExitCode: uint64(svm.ExitException0 + 13), ExitInfo1: 0x10},
			ExitFields{Reason: 0, InterruptionInfo: IntrValid | 3<<8 | IntrErrorCodeBit | 13, InterruptionError: 0x10}},
	}
	for _, c := range cases {
		v.Control = c.amd
		var a, x vcpu.Exit
		svm.DecodeExit(v, true, &a)
		DecodeExit(&c.vmx, &x)
		if neutral(a) != neutral(x) {
			t.Errorf("%s: AMD %+v, Intel %+v", c.name, a, x)
		}
	}
}

func TestDecodeExitDoesNotAllocate(t *testing.T) {
	f := ExitFields{Reason: 30, Qualification: 0x3f8 << 16, InstructionLength: 1}
	var e vcpu.Exit
	if n := testing.AllocsPerRun(100, func() { DecodeExit(&f, &e) }); n != 0 {
		t.Errorf("DecodeExit allocates %v times", n)
	}
}

func TestDecodeCRAccess(t *testing.T) {
	// MOV CR0, RBX (type 0, register 3).
	if q := DecodeCRAccess(0 | 0<<4 | 3<<8); q != (CRAccess{CR: 0, Kind: CRMovTo, GPR: vcpu.RBX}) {
		t.Errorf("MOV CR0, RBX: %+v", q)
	}
	// MOV R12, CR8.
	if q := DecodeCRAccess(8 | 1<<4 | 12<<8); q != (CRAccess{CR: 8, Kind: CRMovFrom, GPR: vcpu.R12}) {
		t.Errorf("MOV R12, CR8: %+v", q)
	}
	// CLTS.
	if q := DecodeCRAccess(2 << 4); q.Kind != CRCLTS || q.CR != 0 {
		t.Errorf("CLTS: %+v", q)
	}
	// LMSW from memory with source 0x0011.
	if q := DecodeCRAccess(3<<4 | 1<<6 | 0x11<<16); q.Kind != CRLMSW || !q.LMSWMemory || q.LMSWSource != 0x11 {
		t.Errorf("LMSW: %+v", q)
	}
}

func TestExitReasonNames(t *testing.T) {
	for r := ExitReason(0); r < numExitReasons; r++ {
		switch r {
		case 35, 38, 42, 71:
			if exitReasonNames[r] != "" {
				t.Errorf("reserved exit reason %d has a name", r)
			}
		default:
			if exitReasonNames[r] == "" {
				t.Errorf("exit reason %d (Appendix C) has no name", r)
			}
		}
	}
	if ExitEPTViolation.String() != "EPT violation" || ExitReason(200).String() != "exit reason 200" {
		t.Error("String")
	}
}

func TestInstructionErrors(t *testing.T) {
	for n, want := range map[InstructionError]string{
		7:  "VM-instruction error 7: VM entry with invalid control field(s)",
		8:  "VM-instruction error 8: VM entry with invalid host-state field(s)",
		12: "VM-instruction error 12: VMREAD/VMWRITE from/to unsupported VMCS component",
		26: "VM-instruction error 26: VM entry with events blocked by MOV SS",
		14: "VM-instruction error 14 (not listed in SDM Vol. 3C, 31.4)",
	} {
		if got := n.String(); got != want {
			t.Errorf("%d: %q, want %q", n, got, want)
		}
	}
	if !strings.Contains(InstructionError(7).Hint(), "27.2.1") || InstructionError(4).Hint() != "" {
		t.Error("Hint")
	}
	for _, c := range []struct {
		reason uint32
		qual   uint64
		want   string
	}{
		{ExitReasonEntryFailed | 33, 0, "27.3.1"},
		{ExitReasonEntryFailed | 33, 2, "PDPTE"},
		{ExitReasonEntryFailed | 33, 4, "link pointer"},
		{ExitReasonEntryFailed | 34, 3, "MSR-load list"},
		{ExitReasonEntryFailed | 41, 0, "machine-check"},
		{ExitReasonEntryFailed | 5, 0, "undocumented"},
	} {
		if got := EntryFailure(c.reason, c.qual); !strings.Contains(got, c.want) {
			t.Errorf("EntryFailure(%#x, %d) = %q, want it to name %q", c.reason, c.qual, got, c.want)
		}
	}
}

// FuzzDecodeExit: any exit information decodes without panicking into a
// record the guest core can act on.
func FuzzDecodeExit(f *testing.F) {
	f.Add(uint32(30), uint64(0x3f8<<16), uint64(0), uint32(0), uint32(1))
	f.Add(uint32(48), uint64(0x182), uint64(0xfee00300), uint32(0), uint32(0))
	f.Add(uint32(0), uint64(0), uint64(0), uint32(0x80000b0d), uint32(3))
	f.Add(uint32(0x80000021), uint64(0), uint64(0), uint32(0), uint32(0))
	f.Add(uint32(28), uint64(0x304), uint64(0), uint32(0), uint32(3))
	f.Fuzz(func(t *testing.T, reason uint32, qual, gpa uint64, info, length uint32) {
		x := ExitFields{Reason: reason, Qualification: qual, GuestPhysical: gpa, InterruptionInfo: info, InstructionLength: length}
		var e vcpu.Exit
		DecodeExit(&x, &e)
		if e.InstructionLength > 15 {
			t.Errorf("instruction length %d", e.InstructionLength)
		}
		if e.Reason == vcpu.ReasonIO && e.IO.Size != 1 && e.IO.Size != 2 && e.IO.Size != 4 {
			t.Errorf("I/O size %d", e.IO.Size)
		}
		if reason&ExitReasonEntryFailed != 0 && (e.Reason != vcpu.ReasonInvalidState || e.Detail == "") {
			t.Errorf("entry failure %#x decoded as %v", reason, e.Reason)
		}
		if e.Reason == vcpu.ReasonNone || int(e.Reason) >= vcpu.NumReasons {
			t.Errorf("reason %v", e.Reason)
		}
		q := DecodeCRAccess(qual)
		if q.GPR >= vcpu.NumGPRs || q.Kind > CRLMSW {
			t.Errorf("CR access %+v", q)
		}
	})
}
