package guests

import "sync"

// MSR numbers the core emulates (Intel SDM Vol. 4; AMD APM Vol. 2,
// Appendix A).
const (
	msrTSC             = 0x10
	msrPlatformID      = 0x17
	msrFeatureControl  = 0x3a
	msrBIOSSignID      = 0x8b
	msrMTRRCap         = 0xfe
	msrMCGCap          = 0x179
	msrMCGStatus       = 0x17a
	msrMiscEnable      = 0x1a0
	msrMTRRVarFirst    = 0x200
	msrMTRRVarLast     = 0x21f
	msrMTRRFix64K      = 0x250
	msrMTRRFix16KFirst = 0x258
	msrMTRRFix16KLast  = 0x259
	msrMTRRFix4KFirst  = 0x268
	msrMTRRFix4KLast   = 0x26f
	msrMTRRDefType     = 0x2ff
	msrAMDHWCR         = 0xc0010015
	msrAMDNBCfg        = 0xc001001f
	msrAMDDECfg        = 0xc0011029

	featureControlLocked = 1 << 0 // locked with VMX off: the guest sees no VMX
)

// MSRPolicy is the VM's model of the MSRs that are neither the engine's
// (EngineMSR) nor a device's (the LAPIC): harmless configuration registers
// a guest kernel reads and writes at boot. Anything else raises #GP, as on
// hardware that lacks the MSR; Unknown counts those, for the operator.
type MSRPolicy struct {
	mu      sync.Mutex
	stored  map[uint32]uint64
	Unknown uint64
}

// NewMSRPolicy returns the policy with every storable MSR present, so that
// guest writes never grow the map (no allocation on the exit path).
func NewMSRPolicy() *MSRPolicy {
	p := &MSRPolicy{stored: map[uint32]uint64{}}
	for _, r := range [][2]uint32{
		{msrMTRRVarFirst, msrMTRRVarLast}, {msrMTRRFix64K, msrMTRRFix64K},
		{msrMTRRFix16KFirst, msrMTRRFix16KLast}, {msrMTRRFix4KFirst, msrMTRRFix4KLast},
		{msrMTRRDefType, msrMTRRDefType}, {msrAMDHWCR, msrAMDHWCR}, {msrAMDNBCfg, msrAMDNBCfg},
		{msrAMDDECfg, msrAMDDECfg}, {msrMiscEnable, msrMiscEnable},
	} {
		for m := r[0]; m <= r[1]; m++ {
			p.stored[m] = 0
		}
	}
	p.stored[msrMTRRDefType] = 0xc06 // MTRRs enabled, default type write-back
	return p
}

// storable reports MSRs whose writes are kept and read back.
func storable(msr uint32) bool {
	switch {
	case msr >= msrMTRRVarFirst && msr <= msrMTRRVarLast,
		msr == msrMTRRFix64K,
		msr >= msrMTRRFix16KFirst && msr <= msrMTRRFix16KLast,
		msr >= msrMTRRFix4KFirst && msr <= msrMTRRFix4KLast,
		msr == msrMTRRDefType, msr == msrAMDDECfg, msr == msrAMDNBCfg, msr == msrAMDHWCR,
		msr == msrMiscEnable:
		return true
	}
	return false
}

// Read returns a guest RDMSR result, or ok false for #GP.
func (p *MSRPolicy) Read(msr uint32) (v uint64, ok bool) {
	switch msr {
	case msrFeatureControl:
		return featureControlLocked, true
	case msrPlatformID, msrBIOSSignID, msrMCGCap, msrMCGStatus:
		return 0, true
	case msrMTRRCap:
		// No variable ranges, no fixed ranges, no WC: the guest's
		// memory types come from the nested page tables.
		return 0, true
	}
	if storable(msr) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.stored[msr], true
	}
	p.mu.Lock()
	p.Unknown++
	p.mu.Unlock()
	return 0, false
}

// Write performs a guest WRMSR, or returns false for #GP.
func (p *MSRPolicy) Write(msr uint32, v uint64) bool {
	switch msr {
	case msrBIOSSignID, msrMCGStatus:
		return true
	}
	if storable(msr) {
		p.mu.Lock()
		p.stored[msr] = v
		p.mu.Unlock()
		return true
	}
	p.mu.Lock()
	p.Unknown++
	p.mu.Unlock()
	return false
}
