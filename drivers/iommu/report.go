package iommu

import (
	"fmt"
	"io"
	"sync/atomic"
)

// Units is the platform's IOMMUs, in the order the firmware lists them.
// A VT-d unit with INCLUDE_PCI_ALL is the last of its segment (VT-d spec
// 8.3: "the DRHD structure with INCLUDE_PCI_ALL flag set is listed last"),
// so the first unit that covers a source is the one its DMA goes through.
type Units []Unit

// For returns the unit DMA from src goes through, or nil when no unit
// covers it (its DMA is then unchecked: the console says so at boot).
func (us Units) For(src Source) Unit {
	for _, u := range us {
		if u.Covers(src) {
			return u
		}
	}
	return nil
}

// FaultLog reports DMA faults (from one goroutine) on the console without letting a device
// that faults in a loop flood it: at most Burst faults are printed per
// Interval, the rest are counted and summed up when printing resumes.
type FaultLog struct {
	Out      io.Writer
	Burst    int
	Interval int64 // ns
	// Now is the clock (ns).
	Now func() int64

	windowStart int64
	printed     int
	suppressed  uint64
	// Total counts every fault reported, printed or not; it may be read
	// while another goroutine reports.
	Total atomic.Uint64
}

// Report records one fault.
func (l *FaultLog) Report(f Fault) {
	l.Total.Add(1)
	now := l.Now()
	if now-l.windowStart >= l.Interval {
		if l.suppressed > 0 {
			fmt.Fprintf(l.Out, "tamavisor: iommu: %d more DMA faults not shown\n", l.suppressed)
		}
		l.windowStart, l.printed, l.suppressed = now, 0, 0
	}
	if l.printed >= l.Burst {
		l.suppressed++
		return
	}
	l.printed++
	fmt.Fprintf(l.Out, "tamavisor: iommu: %s\n", f)
}
