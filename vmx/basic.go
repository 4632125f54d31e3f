package vmx

import "fmt"

// Memory types reported in IA32_VMX_BASIC bits 53:50 for the VMCS and the
// structures it points to (SDM Vol. 3D, Appendix A.1; the encodings are
// those of the SDM Vol. 3A, "Memory Types" / PAT encodings). Processors report
// only UC or WB.
const (
	MemoryTypeUC = 0
	MemoryTypeWB = 6
)

// Basic is IA32_VMX_BASIC decoded (SDM Vol. 3D, Appendix A.1).
type Basic struct {
	// Revision is the VMCS revision identifier (bits 30:0) that software
	// writes at the start of the VMXON region and of every VMCS.
	Revision uint32
	// RegionSize is the number of bytes to allocate for the VMXON region
	// and each VMCS (bits 44:32), between 1 and 4096.
	RegionSize uint32
	// PhysAddr32 (bit 48) limits VMXON/VMCS and VMCS-referenced addresses
	// to 32 bits; always 0 on processors with Intel 64.
	PhysAddr32 bool
	// DualMonitor (bit 49): dual-monitor treatment of SMI and SMM.
	DualMonitor bool
	// MemoryType (bits 53:50) is the memory type the processor uses to
	// access the VMCS and referenced structures (MemoryTypeUC/WB).
	MemoryType uint8
	// InsOutsInfo (bit 54): VM exits for INS/OUTS report the
	// VM-exit instruction-information field.
	InsOutsInfo bool
	// TrueControls (bit 55): the IA32_VMX_TRUE_*_CTLS MSRs exist and
	// report which default1 controls may be 0 (Appendix A.2).
	TrueControls bool
	// NoErrorCodeRequired (bit 56): VM entry may deliver a hardware
	// exception with or without an error code regardless of vector.
	NoErrorCodeRequired bool
}

// DecodeBasic decodes a raw IA32_VMX_BASIC value. Bit 31 (always 0) and the
// reserved bits are ignored here; Validate reports values no processor
// produces.
func DecodeBasic(v uint64) Basic {
	return Basic{
		Revision:            uint32(v) & 0x7fffffff,
		RegionSize:          uint32(v>>32) & 0x1fff,
		PhysAddr32:          v&(1<<48) != 0,
		DualMonitor:         v&(1<<49) != 0,
		MemoryType:          uint8(v>>50) & 0xf,
		InsOutsInfo:         v&(1<<54) != 0,
		TrueControls:        v&(1<<55) != 0,
		NoErrorCodeRequired: v&(1<<56) != 0,
	}
}

// validateBasic rejects IA32_VMX_BASIC values that contradict Appendix A.1:
// such a value comes from a broken (nested) hypervisor, and building a VMCS
// from it would fail in ways far harder to diagnose.
func validateBasic(v uint64) error {
	b := DecodeBasic(v)
	switch {
	case v&(1<<31) != 0:
		return fmt.Errorf("IA32_VMX_BASIC = %#x has bit 31 set, which the SDM (Appendix A.1) defines as always 0", v)
	case b.RegionSize == 0 || b.RegionSize > 4096:
		return fmt.Errorf("IA32_VMX_BASIC = %#x reports a VMCS region size of %d bytes; the SDM (Appendix A.1) allows 1 to 4096", v, b.RegionSize)
	}
	return nil
}
