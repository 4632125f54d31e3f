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
// thermal or power management, and the VM's own topology: its vCPUs are
// the cores of one package, one thread per core, with APIC IDs 0 to
// vcpus-1 as the MADT lists them; each vCPU reads its own APIC ID.
//
// A policy is read-only once made: the vCPUs of a VM use it concurrently.
type CPUIDPolicy struct {
	host  hw.CPUID
	vcpus uint32
	// coreBits is the width of the core ID field in the APIC ID: the
	// vCPU count rounded up to a power of two, as a shift (SDM Vol. 3A
	// 10.9.1 "Hierarchical Mapping of Shared Resources").
	coreBits uint32
	// amd: the host is AMD or Hygon, whose 8000_0008h ECX carries the
	// core count (Intel's is reserved).
	amd bool
}

// NewCPUIDPolicy bases the policy on the host's CPUID, for a VM of vcpus
// virtual CPUs (at least 1).
func NewCPUIDPolicy(host hw.CPUID, vcpus int) *CPUIDPolicy {
	if vcpus < 1 {
		vcpus = 1
	}
	p := &CPUIDPolicy{host: host, vcpus: uint32(vcpus)}
	for 1<<p.coreBits < p.vcpus {
		p.coreBits++
	}
	if host != nil {
		_, b, c, d := host.CPUID(0, 0)
		switch vendor := [3]uint32{b, d, c}; vendor {
		case vendorAMD, vendorHygon:
			p.amd = true
		}
	}
	return p
}

// CPU vendor strings, CPUID leaf 0 EBX, EDX, ECX as little-endian words.
var (
	vendorAMD   = [3]uint32{le32("Auth"), le32("enti"), le32("cAMD")}
	vendorHygon = [3]uint32{le32("Hygo"), le32("nGen"), le32("uine")}
)

// Topology leaves and fields (Intel SDM Vol. 2A, CPUID leaves 04H, 0BH and
// 1FH; AMD APM Vol. 3, E.4.7 for 8000_0008h ECX).
const (
	// Leaf 0BH/1FH ECX[15:8] level types.
	topologyLevelSMT  = 1
	topologyLevelCore = 2
	// Leaf 04H EAX: cache type 4:0 (0 = no more caches), cache level
	// 7:5, logical processors sharing the cache minus one 25:14,
	// addressable core IDs in the package minus one 31:26.
	leaf4TypeMask    = 0x1f
	leaf4SharingMask = 0xfff << 14
	leaf4CoresShift  = 26
	leaf4CoresMask   = 0x3f << leaf4CoresShift
	// 8000_0008h ECX: NC (cores minus one) 7:0, ApicIdSize 15:12.
	ext8NCMask       = 0xff
	ext8APICIDShift  = 12
	ext8APICIDMask   = 0xf << ext8APICIDShift
	ext8TopologyMask = ext8NCMask | ext8APICIDMask
)

// Leaf returns the guest's CPUID for leaf/subleaf as executed on the vCPU
// with APIC ID apicID.
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
			// EBX[23:16]: logical processors in the package, valid
			// with HTT (which says "more than one", not
			// hyper-threading).
			edx |= leaf1EDXHTT
			ebx |= p.vcpus & 0xff << 16
		}
	case 4:
		// Cache parameters: the cache's sharing and the core count
		// are the VM's, not the host's. L1 and L2 belong to one
		// core (one thread each); the L3 is the package's.
		if eax&leaf4TypeMask == 0 {
			return 0, 0, 0, 0
		}
		sharing := uint32(0)
		if eax>>5&7 >= 3 {
			sharing = 1<<p.coreBits - 1
		}
		cores := min(uint32(1)<<p.coreBits-1, leaf4CoresMask>>leaf4CoresShift)
		eax = eax&^(leaf4SharingMask|leaf4CoresMask) | sharing&0xfff<<14 | cores<<leaf4CoresShift
	case 5, 6, 0xa, 0xd, 0xf, 0x10, 0x12, 0x14, 0x1b:
		// MONITOR, thermal/power, PMU, XSAVE, RDT, SGX, PT, PCONFIG.
		return 0, 0, 0, 0
	case 7:
		if subleaf != 0 {
			return 0, 0, 0, 0
		}
		return 0, ebx & leaf7EBXAllowed, 0, 0
	case 0xb, 0x1f:
		// x2APIC topology: level 0 the thread (one per core, no APIC
		// ID bits), level 1 the core (coreBits bits, vcpus cores),
		// then the end of the list (level type 0). EAX is the shift
		// to the next level's ID, EBX the logical processors at this
		// level, ECX the level number and type, EDX the x2APIC ID of
		// the vCPU that executes CPUID.
		switch subleaf {
		case 0:
			return 0, 1, topologyLevelSMT<<8 | 0, apicID
		case 1:
			return p.coreBits, p.vcpus, topologyLevelCore<<8 | 1, apicID
		}
		return 0, 0, subleaf & 0xff, apicID
	case 0x80000001:
		ecx &^= ext1ECXSVM | 1<<22 /* TOPOEXT */ | 1<<23 /* PERFCTR_CORE */
	case 0x80000008:
		// AMD's core count and APIC ID width (the legacy method,
		// used while TOPOEXT is hidden); Intel's ECX is reserved.
		if p.amd {
			ecx = ecx&^ext8TopologyMask | (p.vcpus-1)&ext8NCMask | p.coreBits<<ext8APICIDShift
		}
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
