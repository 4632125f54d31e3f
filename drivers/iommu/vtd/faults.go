package vtd

import (
	"fmt"

	"tamavisor/drivers/iommu"
)

// Primary fault recording register (FRCD_REG, VT-d spec 11.4; fault
// recording, 7.2), 128 bits. Low quadword: bits 63:12 FI, the page address
// of the faulting request (for interrupt-remapping faults, bits 63:48 hold
// the interrupt index instead). High quadword, bits numbered within it:
const (
	frcdFIMask       = ^uint64(0xfff)
	frcdIRIndexShift = 48
	frcdSIDMask      = 0xffff  // 15:0 (79:64): source-id of the request
	frcdT2           = 1 << 28 // 28 (92): type bit 2 (scalable mode requests)
	frcdPP           = 1 << 31 // 31 (95): PASID present
	frcdFRShift      = 32      // 39:32 (103:96): fault reason
	frcdFRMask       = 0xff    //
	frcdT1           = 1 << 62 // 62 (126): type: 0 = write, 1 = read (or AtomicOp)
	frcdF            = 1 << 63 // 63 (127): fault, RW1C
	frcdFClearDword  = 1 << 31 // F within the record's top 32 bits
	frcdTopDword     = 12      // offset of those bits in the record
	frcdHighQuadword = 8       //
	irFaultFirst     = 0x20    // interrupt-remapping reasons: 20h..2Fh
	irFaultLast      = 0x2f    //
	reasonUnknown    = "fault reason not decoded here (see VT-d spec Appendix A)"
)

// FaultOverflow is the Code of the Fault DrainFaults reports when the unit
// dropped faults for want of a free record (FSTS_REG.PFO). It is not a
// hardware reason code (those fit in 8 bits).
const FaultOverflow uint32 = 0x100

// overflowReason is that Fault's Reason.
const overflowReason = "fault recording registers overflowed: later faults were not recorded"

// FaultReason is the fault reason code in words (VT-d spec Appendix A,
// "Non-Recoverable Fault Reason Codes", legacy-mode DMA remapping and
// interrupt remapping). Second-level entries that are not present fault
// as a missing permission (5, 6), as the spec says.
func FaultReason(code uint8) string {
	switch code {
	case 0x1:
		return "root entry not present"
	case 0x2:
		return "context entry not present (device blocked)"
	case 0x3:
		return "context entry invalid (unsupported address width or translation type)"
	case 0x4:
		return "address beyond the guest address width"
	case 0x5:
		return "write to an unmapped or read-only page"
	case 0x6:
		return "read from an unmapped or write-only page"
	case 0x7:
		return "error reading a second-level paging entry"
	case 0x8:
		return "error reading the root entry"
	case 0x9:
		return "error reading the context entry"
	case 0xa:
		return "reserved bit set in a present root entry"
	case 0xb:
		return "reserved bit set in a present context entry"
	case 0xc:
		return "reserved bit set in a present second-level paging entry"
	case 0xd:
		return "request type blocked by the context entry's translation type"
	case 0xe:
		return "translated address in the interrupt address range"
	case 0x20:
		return "interrupt request with reserved fields set"
	case 0x21:
		return "interrupt index beyond the remapping table"
	case 0x22:
		return "interrupt remapping entry not present"
	case 0x23:
		return "error reading the interrupt remapping entry"
	case 0x24:
		return "reserved field set in a present interrupt remapping entry"
	case 0x25:
		return "compatibility-format interrupt blocked"
	case 0x26:
		return "interrupt blocked by source-id verification"
	}
	return reasonUnknown
}

// DecodeFaultRecord decodes one fault recording register (lo: bits 63:0,
// hi: bits 127:64) into a Fault on segment. It does not look at F.
// Interrupt-remapping faults (reasons 20h-2Fh) carry the interrupt index
// in Address; they are writes (interrupt requests are DMA writes).
func DecodeFaultRecord(segment uint16, lo, hi uint64) iommu.Fault {
	code := uint8(hi >> frcdFRShift & frcdFRMask)
	f := iommu.Fault{
		Source:  iommu.SourceFromRequesterID(segment, uint16(hi&frcdSIDMask)),
		Address: lo & frcdFIMask,
		Write:   hi&frcdT1 == 0,
		Reason:  FaultReason(code),
		Code:    uint32(code),
	}
	if code >= irFaultFirst && code <= irFaultLast {
		f.Address = lo >> frcdIRIndexShift
		f.Write = true
	}
	return f
}

// DrainFaults reports and clears every recorded fault, oldest first (from
// FSTS_REG.FRI round the records), then an overflow if the unit lost some.
// Faults recorded while it drains are picked up by a second pass.
func (u *Unit) DrainFaults(report func(iommu.Fault)) (int, error) {
	n := 0
	for pass := 0; pass < 2; pass++ {
		fsts := u.r32(regFSTS)
		if fsts == ^uint32(0) {
			return n, fmt.Errorf("%s: FSTS_REG reads all ones: unit gone", u.name)
		}
		if fsts&(fstsPPF|fstsPFO) == 0 {
			break
		}
		records := u.caps.FaultRecords
		first := int(fsts>>fstsFRIShift&fstsFRIMask) % records
		for i := 0; i < records; i++ {
			rec := u.caps.FaultRecordOffset + uint64((first+i)%records)*faultRecordSize
			hi := u.r64(rec + frcdHighQuadword)
			if hi&frcdF == 0 {
				continue
			}
			lo := u.r64(rec)
			u.w32(rec+frcdTopDword, frcdFClearDword)
			f := DecodeFaultRecord(u.segment, lo, hi)
			f.Unit = u.name
			n++
			if report != nil {
				report(f)
			}
		}
		if fsts&fstsPFO != 0 {
			// Cleared after the records, so that the unit records
			// again into the freed ones.
			u.w32(regFSTS, fstsPFO)
			n++
			if report != nil {
				report(iommu.Fault{Unit: u.name, Source: iommu.Source{Segment: u.segment}, Reason: overflowReason, Code: FaultOverflow})
			}
		}
	}
	return n, nil
}
