// Package svm is the AMD-V (SVM) engine of the hypervisor. This part is its
// capability layer: it reads the SVM revision and feature flags from CPUID
// Fn8000_000A and the firmware's SVM enable state from VM_CR (AMD64
// Architecture Programmer's Manual, "APM", Vol. 2, Chapter 15 "Secure
// Virtual Machine"; Vol. 3, Appendix E "Obtaining Processor Information Via
// the CPUID Instruction"), so that the boot inventory can print them and
// the engine can feature-gate what it uses (for example an instruction
// length decoder where NRIPS is missing).
package svm

import (
	"fmt"
	"strconv"

	"tamavisor/drivers/hw"
	"tamavisor/vmx/cpuvendor"
)

// CPUID functions and flags (APM Vol. 3, Appendix E).
const (
	// LeafExtendedMax: EAX is the highest extended function
	// ("Function 8000_0000h").
	LeafExtendedMax = 0x80000000
	// LeafExtendedFeatures: ECX bit 2 is SVM ("Function 8000_0001h").
	LeafExtendedFeatures = 0x80000001
	// LeafSVM: EAX[7:0] SVM revision, EBX number of ASIDs, EDX feature
	// flags ("Function 8000_000Ah—SVM Revision and Feature
	// Identification").
	LeafSVM = 0x8000000A

	CPUIDExtECXSVM = 1 << 2

	cpuid1ECXHypervisor = 1 << 31 // CPUID Fn0000_0001_ECX[31], set by hypervisors
)

// MSRs used to enable SVM (APM Vol. 2, Section 15.30 "SVM Related MSRs",
// and Section 3.1.7 for EFER).
const (
	// MSREFER holds SVME (bit 12), which enables the SVM instructions.
	MSREFER = 0xC0000080
	// MSRTSCRatio is the guest TSC ratio, when FeatureTscRateMsr
	// (Section 15.30.5).
	MSRTSCRatio = 0xC0000104
	// MSRVMCR is VM_CR (Section 15.30.1).
	MSRVMCR = 0xC0010114
	// MSRVMHsavePA is VM_HSAVE_PA: the physical address of the host
	// save area that VMRUN uses (Section 15.30.4).
	MSRVMHsavePA = 0xC0010117
	// MSRSVMKey is SVM_KEY, which can clear VM_CR.LOCK when firmware set
	// a key (Section 15.31 "SVM-Lock").
	MSRSVMKey = 0xC0010118

	EFERSVME = 1 << 12
)

// VM_CR bits (APM Vol. 2, Section 15.30.1).
const (
	VMCRDisableDebugPort = 1 << 0 // DPD
	VMCRInterceptINIT    = 1 << 1 // R_INIT
	VMCRDisableA20M      = 1 << 2 // DIS_A20M
	// VMCRLock: when set, writes to LOCK and SVMDIS are ignored; only
	// SVM_KEY can clear it.
	VMCRLock = 1 << 3
	// VMCRSVMDisable: when set, EFER.SVME is must-be-zero.
	VMCRSVMDisable = 1 << 4
)

// Features is CPUID Fn8000_000A_EDX (APM Vol. 3, Appendix E, "Function
// 8000_000Ah"; bit names as in the APM, cross-checked with the AMD CPUID
// Specification #25481 and Linux's cpufeatures.h).
type Features uint32

const (
	FeatureNP                   Features = 1 << 0  // nested paging
	FeatureLbrVirt              Features = 1 << 1  // LBR virtualization
	FeatureSVML                 Features = 1 << 2  // SVM lock (SVM_KEY)
	FeatureNRIPS                Features = 1 << 3  // next RIP saved on #VMEXIT
	FeatureTscRateMsr           Features = 1 << 4  // TSC ratio MSR
	FeatureVmcbClean            Features = 1 << 5  // VMCB clean bits
	FeatureFlushByAsid          Features = 1 << 6  // TLB flush by ASID
	FeatureDecodeAssists        Features = 1 << 7  // decode assists
	FeaturePauseFilter          Features = 1 << 10 // PAUSE intercept filter
	FeaturePauseFilterThreshold Features = 1 << 12 // PAUSE filter cycle threshold
	FeatureAVIC                 Features = 1 << 13 // AMD virtual interrupt controller
	FeatureVMSAVEvirt           Features = 1 << 15 // virtualized VMSAVE/VMLOAD
	FeatureVGIF                 Features = 1 << 16 // virtualized global interrupt flag
	FeatureGMET                 Features = 1 << 17 // guest mode execute trap
	FeatureX2AVIC               Features = 1 << 18 // AVIC for x2APIC mode
	FeatureSSSCheck             Features = 1 << 19 // supervisor shadow stack restrictions
	FeatureSpecCtrl             Features = 1 << 20 // SPEC_CTRL virtualization
	FeatureVNMI                 Features = 1 << 25 // virtual NMI
	FeatureIbsVirt              Features = 1 << 26 // IBS virtualization
	FeatureExtLvtAvicAccessChg  Features = 1 << 27 // extended LVT AVIC access changes
	FeatureVmcbAddrChk          Features = 1 << 28 // VMRUN checks the VMCB address
	FeatureBusLockThreshold     Features = 1 << 29 // bus lock threshold
	FeatureIdleHltIntercept     Features = 1 << 30 // idle HLT intercept
)

// Has reports whether every feature in f is present.
func (s Features) Has(f Features) bool { return s&f == f }

// VMCR is VM_CR as far as enabling SVM is concerned.
type VMCR struct {
	Raw         uint64
	Locked      bool // VM_CR.LOCK
	SVMDisabled bool // VM_CR.SVMDIS
}

// DecodeVMCR decodes a raw VM_CR value.
func DecodeVMCR(v uint64) VMCR {
	return VMCR{Raw: v, Locked: v&VMCRLock != 0, SVMDisabled: v&VMCRSVMDisable != 0}
}

// NeedsEnable reports that firmware set SVMDIS but left VM_CR unlocked: the
// engine must clear VM_CR.SVMDIS with WRMSR (allowed while LOCK is clear)
// before it sets EFER.SVME, which SVMDIS makes must-be-zero (APM Vol. 2,
// Sections 15.4 and 15.30.1).
func (v VMCR) NeedsEnable() bool { return v.SVMDisabled && !v.Locked }

// Reason and UnavailableError are shared by both engines (package
// cpuvendor); Probe's errors carry Engine "svm".
type (
	Reason           = cpuvendor.Reason
	UnavailableError = cpuvendor.UnavailableError
)

const (
	NotReported        = cpuvendor.NotReported
	DisabledByFirmware = cpuvendor.DisabledByFirmware
	Inconsistent       = cpuvendor.Inconsistent
)

// Capabilities is what the processor supports of SVM.
type Capabilities struct {
	// MaxExtendedLeaf is CPUID Fn8000_0000_EAX.
	MaxExtendedLeaf uint32
	// Hypervisor reports CPUID Fn0000_0001_ECX[31]: this "hardware" is
	// itself a VM.
	Hypervisor bool
	// Revision is the SVM revision (Fn8000_000A_EAX[7:0]).
	Revision uint8
	// ASIDs is the number of address space identifiers (Fn8000_000A_EBX);
	// ASID 0 is the host's, so guests get 1 to ASIDs-1.
	ASIDs uint32
	// Features is Fn8000_000A_EDX.
	Features Features
	// VMCR is VM_CR at probe time; VMCR.NeedsEnable tells the engine to
	// clear SVMDIS first.
	VMCR VMCR
}

// MaxGuestASID is the highest ASID a guest may use.
func (c *Capabilities) MaxGuestASID() uint32 { return c.ASIDs - 1 }

// Probe reads CPUID and VM_CR. It checks that CPUID reports SVM, that the
// SVM leaf exists, and that firmware has not locked SVM off, and returns an
// *UnavailableError otherwise. VM_CR is read only once CPUID reports SVM,
// since it is part of SVM (APM Vol. 2, Section 15.30.1).
func Probe(cpu hw.CPUID, msr hw.MSRs) (*Capabilities, error) {
	c := &Capabilities{}
	if maxBasic, _, _, _ := cpu.CPUID(0, 0); maxBasic >= 1 {
		_, _, ecx, _ := cpu.CPUID(1, 0)
		c.Hypervisor = ecx&cpuid1ECXHypervisor != 0
	}
	c.MaxExtendedLeaf, _, _, _ = cpu.CPUID(LeafExtendedMax, 0)
	// A processor without extended leaves may answer with anything (Intel
	// returns its highest basic leaf): only a value in the extended range
	// counts.
	hasExt := c.MaxExtendedLeaf&0xffff0000 == 0x80000000
	var ecx uint32
	if hasExt && c.MaxExtendedLeaf >= LeafExtendedFeatures {
		_, _, ecx, _ = cpu.CPUID(LeafExtendedFeatures, 0)
	}
	if ecx&CPUIDExtECXSVM == 0 {
		return nil, &UnavailableError{Engine: "svm", Reason: NotReported,
			Detail: "this CPU does not report SVM (CPUID Fn8000_0001_ECX.SVM[bit 2] = 0); under a hypervisor, enable nested virtualization"}
	}
	if c.MaxExtendedLeaf < LeafSVM {
		return nil, &UnavailableError{Engine: "svm", Reason: Inconsistent,
			Detail: fmt.Sprintf("CPUID reports SVM but its highest extended function is %#x, so Fn8000_000A (SVM revision and features) is missing; refusing to guess the SVM features", c.MaxExtendedLeaf)}
	}
	eax, ebx, _, edx := cpu.CPUID(LeafSVM, 0)
	c.Revision = uint8(eax)
	c.ASIDs = ebx
	c.Features = Features(edx)

	c.VMCR = DecodeVMCR(msr.ReadMSR(MSRVMCR))
	if c.VMCR.SVMDisabled && c.VMCR.Locked {
		d := fmt.Sprintf("SVM is disabled by firmware: VM_CR.SVMDIS = 1 and VM_CR.LOCK = 1 (VM_CR = %#x); enable SVM (AMD-V, often called \"SVM Mode\") in the firmware setup", c.VMCR.Raw)
		if c.Features.Has(FeatureSVML) {
			d += "; the lock could also be opened with the platform's SVM key (SVM_KEY MSR, APM Vol. 2, Section 15.31), which this hypervisor does not do"
		}
		return nil, &UnavailableError{Engine: "svm", Reason: DisabledByFirmware, Detail: d}
	}
	if c.ASIDs < 2 {
		return nil, &UnavailableError{Engine: "svm", Reason: Inconsistent,
			Detail: fmt.Sprintf("CPUID Fn8000_000A_EBX reports %d ASIDs; at least 2 are needed, ASID 0 being the host's", c.ASIDs)}
	}
	return c, nil
}

// Summary is one line for the boot inventory: "svm:" then space-separated
// key=value pairs, values yes/no or numbers, in a fixed order.
func (c *Capabilities) Summary() string {
	line := cpuvendor.NewSummary("svm")
	kv, yn := line.KV, line.YesNo
	f := c.Features
	kv("revision", strconv.Itoa(int(c.Revision)))
	kv("asids", strconv.FormatUint(uint64(c.ASIDs), 10))
	yn("npt", f.Has(FeatureNP))
	yn("nrips", f.Has(FeatureNRIPS))
	yn("decode-assists", f.Has(FeatureDecodeAssists))
	yn("flush-by-asid", f.Has(FeatureFlushByAsid))
	yn("vmcb-clean", f.Has(FeatureVmcbClean))
	yn("pause-filter", f.Has(FeaturePauseFilter))
	yn("avic", f.Has(FeatureAVIC))
	yn("x2avic", f.Has(FeatureX2AVIC))
	yn("tsc-scaling", f.Has(FeatureTscRateMsr))
	yn("lbr-virt", f.Has(FeatureLbrVirt))
	yn("pause-filter-threshold", f.Has(FeaturePauseFilterThreshold))
	yn("vmsave-virt", f.Has(FeatureVMSAVEvirt))
	yn("vgif", f.Has(FeatureVGIF))
	yn("vnmi", f.Has(FeatureVNMI))
	yn("svm-lock", f.Has(FeatureSVML))
	yn("vm-cr-locked", c.VMCR.Locked)
	yn("svmdis", c.VMCR.SVMDisabled)
	return line.String()
}
