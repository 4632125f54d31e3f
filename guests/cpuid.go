package guests

import "tamavisor/drivers/hw"

// HypervisorSignature is what CPUID leaf 0x40000000 returns in EBX, ECX,
// EDX (the leaf range reserved for hypervisors, Intel SDM Vol. 2A, CPUID:
// "leaves 40000000H-4FFFFFFFH").
const HypervisorSignature = "TamavisorVMM"

// CPU feature bits the policy touches (Intel SDM Vol. 2A, CPUID, Tables
// 3-10/3-11; AMD APM Vol. 3, Appendix E).
const (
	leaf1ECXMonitor    = 1 << 3
	leaf1ECXDSCPL      = 1 << 4
	leaf1ECXVMX        = 1 << 5
	leaf1ECXSMX        = 1 << 6
	leaf1ECXEST        = 1 << 7
	leaf1ECXTM2        = 1 << 8
	leaf1ECXPDCM       = 1 << 15
	leaf1ECXPCID       = 1 << 17
	leaf1ECXX2APIC     = 1 << 21
	leaf1ECXTSCDdl     = 1 << 24
	leaf1ECXXSAVE      = 1 << 26
	leaf1ECXOSXSAVE    = 1 << 27
	leaf1ECXAVX        = 1 << 28
	leaf1ECXHypervisor = 1 << 31

	leaf1EDXDS   = 1 << 21
	leaf1EDXACPI = 1 << 22
	leaf1EDXHTT  = 1 << 28
	leaf1EDXTM   = 1 << 29
	leaf1EDXPBE  = 1 << 31

	// Leaf 7 EBX features a guest may keep: FSGSBASE 0, BMI1 3, SMEP 7,
	// BMI2 8, ERMS 9, RDSEED 18, ADX 19, SMAP 20, CLFLUSHOPT 23, SHA 29.
	leaf7EBXAllowed = 1<<0 | 1<<3 | 1<<7 | 1<<8 | 1<<9 | 1<<18 | 1<<19 | 1<<20 | 1<<23 | 1<<29

	ext1ECXSVM = 1 << 2
)

// CPUIDPolicy computes what the guest sees for each CPUID leaf: the host's
// values with virtualization hidden (no VMX/SVM: no nested guests), the
// hypervisor bit and leaf 0x40000000 advertised, no XSAVE/AVX state
// (the world switch carries x87/SSE state only), no performance monitoring,
// thermal or power management, and the vCPU's own APIC ID and count.
type CPUIDPolicy struct {
	host  hw.CPUID
	vcpus int
}

// NewCPUIDPolicy bases the policy on the host's CPUID.
func NewCPUIDPolicy(host hw.CPUID, vcpus int) *CPUIDPolicy {
	return &CPUIDPolicy{host: host, vcpus: vcpus}
}

// Leaf returns the guest's CPUID for leaf/subleaf on vCPU apicID.
func (p *CPUIDPolicy) Leaf(leaf, subleaf, apicID uint32) (eax, ebx, ecx, edx uint32) {
	if leaf >= 0x40000000 && leaf < 0x50000000 {
		if leaf == 0x40000000 {
			s := HypervisorSignature
			return 0x40000001, le32(s[0:4]), le32(s[4:8]), le32(s[8:12])
		}
		return 0, 0, 0, 0
	}
	if p.host == nil {
		return 0, 0, 0, 0
	}
	eax, ebx, ecx, edx = p.host.CPUID(leaf, subleaf)
	switch leaf {
	case 1:
		ecx &^= leaf1ECXMonitor | leaf1ECXDSCPL | leaf1ECXVMX | leaf1ECXSMX | leaf1ECXEST | leaf1ECXTM2 |
			leaf1ECXPDCM | leaf1ECXPCID | leaf1ECXXSAVE | leaf1ECXOSXSAVE | leaf1ECXAVX | 1<<29 | 1<<12
		ecx |= leaf1ECXHypervisor | leaf1ECXX2APIC | leaf1ECXTSCDdl
		edx &^= leaf1EDXDS | leaf1EDXACPI | leaf1EDXTM | leaf1EDXPBE | leaf1EDXHTT
		ebx &= 0x0000ffff // brand index, CLFLUSH size
		ebx |= apicID << 24
		if p.vcpus > 1 {
			edx |= leaf1EDXHTT
			ebx |= uint32(p.vcpus&0xff) << 16
		}
	case 5, 6, 0xa, 0xd, 0xf, 0x10, 0x12, 0x14, 0x1b:
		// MONITOR, thermal/power, PMU, XSAVE, RDT, SGX, PT, PCONFIG.
		return 0, 0, 0, 0
	case 7:
		if subleaf != 0 {
			return 0, 0, 0, 0
		}
		return 0, ebx & leaf7EBXAllowed, 0, 0
	case 0xb, 0x1f:
		// x2APIC topology: one thread per core, one core per package
		// level reported; EDX is the x2APIC ID.
		if subleaf == 0 {
			return 0, 1, 1 << 8, apicID
		}
		return 0, 0, subleaf & 0xff, apicID
	case 0x80000001:
		ecx &^= ext1ECXSVM | 1<<22 /* TOPOEXT */ | 1<<23 /* PERFCTR_CORE */
	case 0x8000000a:
		return 0, 0, 0, 0 // SVM features: no nested virtualization
	case 0x8000001e:
		return apicID, 0, 0, 0
	}
	return eax, ebx, ecx, edx
}

func le32(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}
