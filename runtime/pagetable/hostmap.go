package pagetable

import "fmt"

// Region is a physical address range of the machine, as the platform reads
// it from the firmware's memory map (E820, UEFI, multiboot) and the device
// tables (MADT, HPET, MCFG, PCI BARs).
type Region struct {
	Start, Size uint64
	// Cacheable marks RAM that is mapped write-back. Everything else
	// (MMIO, reserved ranges, firmware areas the caller wants uncached) is
	// mapped uncacheable.
	Cacheable bool
}

// HostMapOptions tune BuildHostMap.
type HostMapOptions struct {
	// MinReach is an address up to which everything is mapped even if no
	// region reaches it (default 4 GiB: the local APIC, I/O APIC, HPET and
	// firmware sit just below it on every PC).
	MinReach uint64
	// MapPageZero maps page 0 like any other page; by default it is left
	// unmapped so that a nil pointer dereference faults. Note that the BIOS
	// data area (the EBDA pointer at 40Eh used to find the ACPI RSDP) lies
	// in page 0: read it before switching to these tables.
	MapPageZero bool
}

const defaultMinReach = 4 << 30

// Attributes of the host map. RAM holds the hypervisor's code, so it stays
// executable; everything else is device or firmware memory.
var (
	ramAttr    = Attr{Writable: true, Cache: WriteBack, Global: true}
	deviceAttr = Attr{Writable: true, NoExecute: true, Cache: Uncacheable, Global: true}
)

type class uint8

const (
	classUnmapped class = iota
	classRAM
	classDevice
)

// hostLayout is BuildHostMap's view of the regions: each rounded to pages,
// RAM inwards (only whole pages of RAM are cached) and the rest outwards (a
// page holding any device register is uncached).
type hostLayout struct {
	regions []Region
	top     uint64 // end of the map
	zero    bool   // page 0 is left unmapped
}

func (l *hostLayout) bounds(r Region) (start, end uint64, ok bool) {
	const page = uint64(Page4K)
	if r.Size == 0 {
		return 0, 0, false
	}
	end = r.Start + r.Size
	if r.Cacheable {
		start = (r.Start + page - 1) &^ (page - 1)
		end &^= page - 1
	} else {
		start = r.Start &^ (page - 1)
		end = (end + page - 1) &^ (page - 1)
	}
	return start, end, start < end
}

// classify returns what the page at a (below top) is: device if any
// uncacheable region covers it (uncached wins over cached, as a cached alias
// of a device is the dangerous mistake), RAM if a RAM region covers it,
// device (uncached) for a hole.
func (l *hostLayout) classify(a uint64) class {
	if l.zero && a < uint64(Page4K) {
		return classUnmapped
	}
	ram := false
	for _, r := range l.regions {
		s, e, ok := l.bounds(r)
		if !ok || a < s || a >= e {
			continue
		}
		if !r.Cacheable {
			return classDevice
		}
		ram = true
	}
	if ram {
		return classRAM
	}
	return classDevice
}

// nextBoundary returns the first region edge above a (or top).
func (l *hostLayout) nextBoundary(a uint64) uint64 {
	b := l.top
	if l.zero && a < uint64(Page4K) {
		b = uint64(Page4K)
	}
	for _, r := range l.regions {
		s, e, ok := l.bounds(r)
		if !ok {
			continue
		}
		if s > a && s < b {
			b = s
		}
		if e > a && e < b {
			b = e
		}
	}
	return b
}

// BuildHostMap fills t with the host's identity map: RAM regions write-back
// and executable; everything else from 0 up to the highest address that must
// be reachable (the largest of the regions' ends and opts.MinReach, rounded
// up to 1 GiB and capped at t.Limit()) uncacheable and, with
// Config.NoExecute, not executable; page 0 unmapped unless asked. Where
// regions overlap, uncacheable wins. Each run of same-class pages is mapped
// once, with the largest pages that fit, so no table is split or wasted.
// It returns the tables' statistics for the boot log.
//
// It allocates nothing on the Go heap: the regions are scanned in place.
func BuildHostMap(t *Tables, regions []Region, opts HostMapOptions) (Stats, error) {
	if t == nil {
		return Stats{}, fmt.Errorf("pagetable: BuildHostMap: nil Tables")
	}
	reach := opts.MinReach
	if reach == 0 {
		reach = defaultMinReach
	}
	for i, r := range regions {
		end := r.Start + r.Size
		if end < r.Start {
			return Stats{}, fmt.Errorf("pagetable: region %d (%#x+%#x) wraps around", i, r.Start, r.Size)
		}
		if end > t.limit {
			return Stats{}, fmt.Errorf("pagetable: region %d (%#x-%#x) extends beyond the mappable limit %#x (MAXPHYADDR or 2^47)",
				i, r.Start, end, t.limit)
		}
		if r.Size != 0 && end > reach {
			reach = end
		}
	}
	const gib = uint64(Page1G)
	top := (reach + gib - 1) &^ (gib - 1)
	if top > t.limit || top < reach {
		top = t.limit
	}
	if reach > top {
		return Stats{}, fmt.Errorf("pagetable: MinReach %#x is beyond the mappable limit %#x", reach, t.limit)
	}

	l := hostLayout{regions: regions, top: top, zero: !opts.MapPageZero}
	for a := uint64(0); a < top; {
		c := l.classify(a)
		b := l.nextBoundary(a)
		for b < top && l.classify(b) == c {
			b = l.nextBoundary(b)
		}
		var err error
		switch c {
		case classRAM:
			err = t.MapIdentity(a, b-a, ramAttr, AllPageSizes)
		case classDevice:
			err = t.MapIdentity(a, b-a, deviceAttr, AllPageSizes)
		case classUnmapped:
			err = t.Unmap(a, b-a)
		}
		if err != nil {
			return t.Stats(), fmt.Errorf("pagetable: mapping %#x-%#x: %w", a, b, err)
		}
		a = b
	}
	return t.Stats(), nil
}
