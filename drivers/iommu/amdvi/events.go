package amdvi

import (
	"fmt"

	"tamavisor/drivers/iommu"
)

// The event log is a ring of 16-byte records (#48882 2.5): the unit
// writes at the tail and moves the Tail Pointer register; software reads
// from the head and moves the Head Pointer. When the ring is full the
// unit sets EventOverflow, stops logging (EventLogRun = 0) and drops what
// follows.

// emptyRecordRetries bounds the re-reads of a record whose event code is
// still 0: a unit can move the tail before the record's write is visible
// (Linux retries too), and the driver zeroes every record it consumes.
const emptyRecordRetries = 1000

// OverflowCode is the Fault.Code of the record that stands for the
// events the unit dropped when its log was full; no event has code 0.
const OverflowCode = 0

const overflowReason = "event log overflowed: fault records were lost"

// DrainFaults hands each event in the log to report, oldest first, clears
// it and moves the Head Pointer past it. After an overflow it restarts
// the log and reports one more Fault, with Code OverflowCode, for the
// records that were lost. It returns how many Faults it reported.
func (u *Unit) DrainFaults(report func(iommu.Fault)) (int, error) {
	if !u.logSet {
		return 0, nil
	}
	head := u.r64(regEventLogHead) & ringPtrMask
	tail := u.r64(regEventLogTail) & ringPtrMask
	if head >= ringBytes || tail >= ringBytes {
		return 0, fmt.Errorf("amdvi: %s: event log head %#x or tail %#x is beyond the %d-byte log", u.name, head, tail, ringBytes)
	}
	n := 0
	for i := 0; head != tail && i < ringEntries; i++ {
		e := u.eventLog + head
		lo, hi := u.mem.Read64(e), u.mem.Read64(e+8)
		for r := 0; lo>>evCodeShift == 0 && r < emptyRecordRetries; r++ {
			lo, hi = u.mem.Read64(e), u.mem.Read64(e+8)
		}
		if report != nil {
			report(decodeEvent(u.name, u.segment, lo, hi))
		}
		n++
		u.mem.Write64(e, 0)
		u.mem.Write64(e+8, 0)
		head = (head + ringEntry) % ringBytes
	}
	u.w64(regEventLogHead, head)

	if u.r64(regStatus)&statusEventOverflow == 0 {
		return n, nil
	}
	if report != nil {
		report(iommu.Fault{Unit: u.name, Source: iommu.Source{Segment: u.segment}, Reason: overflowReason, Code: OverflowCode})
	}
	n++
	return n, u.restartEventLog()
}

// restartEventLog turns logging off, waits for it to stop, clears
// EventOverflow and turns it back on (#48882 2.5, event log restart; the
// Status register's EventOverflow is write-1-to-clear). No pointer moves:
// records the unit wrote after the drain read the tail stay for the next
// drain.
func (u *Unit) restartEventLog() error {
	ctrl := u.r64(regControl)
	u.w64(regControl, ctrl&^ctrlEventLogEn)
	if err := u.waitStatusClear(statusEventLogRun, "the event log to stop before restarting it after an overflow"); err != nil {
		return err
	}
	u.w64(regStatus, statusEventOverflow)
	u.w64(regControl, ctrl|ctrlEventLogEn)
	return nil
}

// decodeEvent turns one event record into a Fault. The Address is the
// record's second quadword: the DMA address of a page fault, the physical
// address of the device table entry, page-table entry or command of a
// hardware or command error. Reasons are constants: decoding allocates
// nothing.
func decodeEvent(unit string, segment uint16, lo, hi uint64) iommu.Fault {
	code := uint32(lo >> evCodeShift)
	f := iommu.Fault{
		Unit:    unit,
		Source:  iommu.SourceFromRequesterID(segment, uint16(lo)),
		Address: hi,
		Code:    code,
	}
	// RW means a write only for memory requests (I = 0, TR = 0).
	write := lo&evRW != 0 && lo&(evI|evTR) == 0
	switch code {
	case evIllegalDevTableEntry:
		f.Write = write
		f.Reason = "illegal device table entry (reserved bits set or an invalid mode)"
	case evIOPageFault:
		f.Write = write
		if qemuPageFault(lo, hi) {
			f.Write = lo&evQEMUPermWrite != 0
		}
		f.Reason = pageFaultReason(lo, hi)
	case evDevTabHardwareError:
		f.Write = write
		f.Reason = devTabErrors[lo>>evTypeShift&3]
	case evPageTabHardwareError:
		f.Write = write
		f.Reason = pageTabErrors[lo>>evTypeShift&3]
	case evIllegalCommand:
		f.Source = iommu.Source{Segment: segment}
		f.Reason = "illegal command in the command buffer (address is the command's)"
	case evCommandHardwareError:
		f.Source = iommu.Source{Segment: segment}
		f.Reason = commandErrors[lo>>evTypeShift&3]
	case evIOTLBInvTimeout:
		f.Reason = "device IOTLB invalidation timed out (address is the command's)"
	case evInvalidDeviceRequest:
		f.Reason = "invalid device request (a request its device table entry does not allow, e.g. ATS or PASID use)"
	case evInvalidPPRRequest:
		f.Reason = "invalid peripheral page request"
	case 0:
		f.Reason = "empty event record (the unit moved the tail past a record it had not written)"
	default:
		f.Reason = "unknown event"
	}
	return f
}

// qemuPageFault tells QEMU's IO_PAGE_FAULT records from the
// architectural ones. QEMU (hw/i386/amd_iommu.c, amdvi_page_walk and
// amdvi_page_fault) sets I on every page fault it logs and puts the
// access's permission (AMDVI_PERM_READ 1, AMDVI_PERM_WRITE 2) in bits
// 49:48 instead of setting RW; a unit sets I only for interrupt requests,
// whose addresses lie in the interrupt range (#48882 2.2.5). The rest of
// such a record is as QEMU wrote it: its amdvi_setevent_bits shifts by 64
// to place the address (a gcc build of 7.2 with logging fixed recorded
// 0), and 7.2 puts the device's devfn alone in DeviceID (bus 0).
func qemuPageFault(lo, addr uint64) bool {
	return lo&evI != 0 && lo&evTR == 0 && (addr < interruptRangeFirst || addr > interruptRangeLast)
}

func pageFaultReason(lo, addr uint64) string {
	switch {
	case lo&evTR != 0:
		return "I/O page fault on an ATS translation request"
	case lo&evI != 0 && !qemuPageFault(lo, addr):
		return "I/O page fault on an interrupt request"
	case lo&evRZ != 0:
		return "I/O page fault: reserved bit or bad next level in an I/O page-table entry"
	case lo&evPR == 0:
		return "I/O page fault: page not present"
	case lo&evPE != 0:
		return "I/O page fault: access not permitted"
	}
	return "I/O page fault"
}

// Hardware-error reasons by the Type field, bits 58:57 (00b is reserved).
var (
	devTabErrors  = [4]string{"device table read failed", "device table read failed: master abort", "device table read failed: target abort", "device table read failed: data error"}
	pageTabErrors = [4]string{"I/O page table read failed", "I/O page table read failed: master abort", "I/O page table read failed: target abort", "I/O page table read failed: data error"}
	commandErrors = [4]string{"command buffer read failed", "command buffer read failed: master abort", "command buffer read failed: target abort", "command buffer read failed: data error"}
)
