package tsc

import "tamavisor/drivers/hw"

// CPUID leaves that describe the TSC (Intel SDM Vol. 2A, "CPUID", tables for
// leaves 15H "Time Stamp Counter and Nominal Core Crystal Clock Information"
// and 16H "Processor Frequency Information").
const (
	leafMaxBasic     = 0x00
	leafTSCCrystal   = 0x15
	leafProcessorMHz = 0x16
)

// CPUIDClaim returns the TSC frequency the processor claims through CPUID, or
// ok == false when it claims none. It is a claim, to compare with Calibrate's
// measurement, never to use in its place without saying so: emulators and
// some firmware report values unrelated to the actual TSC rate.
//
// Leaf 15h gives TSC = crystal Hz (ECX) * numerator (EBX) / denominator
// (EAX); EBX = 0 means the ratio is not enumerated. When the crystal is not
// enumerated (ECX = 0) the ratio is useless alone and, as Linux does, the
// processor base frequency from leaf 16h EAX[15:0] (MHz) is taken instead: on
// parts with an invariant TSC it runs at the base frequency. Either leaf is
// used only when leaf 0 reports it.
func CPUIDClaim(cpu hw.CPUID) (hz uint64, ok bool) {
	if cpu == nil {
		return 0, false
	}
	maxLeaf, _, _, _ := cpu.CPUID(leafMaxBasic, 0)
	if maxLeaf >= leafTSCCrystal {
		den, num, crystal, _ := cpu.CPUID(leafTSCCrystal, 0)
		if den != 0 && num != 0 && crystal != 0 {
			return uint64(crystal) * uint64(num) / uint64(den), true
		}
	}
	if maxLeaf >= leafProcessorMHz {
		eax, _, _, _ := cpu.CPUID(leafProcessorMHz, 0)
		if mhz := uint64(eax & 0xffff); mhz != 0 {
			return mhz * 1_000_000, true
		}
	}
	return 0, false
}
