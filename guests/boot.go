package guests

import (
	"tamavisor/guests/loader"
	"tamavisor/guests/vcpu"
)

// ApplyBootState puts a loader's entry state into a vCPU, whatever its
// engine.
func ApplyBootState(v vcpu.VCPU, bs *loader.BootState) {
	for r := vcpu.GPR(0); r < vcpu.NumGPRs; r++ {
		v.SetGPR(r, bs.GPR[r])
	}
	for s := vcpu.SegmentRegister(0); s < vcpu.NumSegments; s++ {
		v.SetSegment(s, bs.Segments[s])
	}
	v.SetControl(bs.Control)
	v.SetDescriptorTables(bs.GDTR.Base, bs.GDTR.Limit, bs.IDTR.Base, bs.IDTR.Limit)
	v.SetRFLAGS(bs.RFLAGS)
	v.SetRIP(bs.RIP)
}
