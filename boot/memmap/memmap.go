// Package memmap is the one description of physical memory that the rest of
// the hypervisor uses, whatever the firmware said.
//
// PVH and Multiboot hand over E820-style tables, UEFI hands over
// EFI_MEMORY_DESCRIPTORs; all of them may be unsorted, overlapping, duplicated
// or carry zero-sized entries (ACPI 6.5, 15.1 "INT 15H, E820H": "the
// operating system must not assume that the ranges are in order"). The boot
// protocol parsers (package bootinfo) translate each entry into a Region and
// Normalize turns the lot into a sorted, non-overlapping Map in which every
// address has exactly one Kind: the most restrictive one any entry gave it.
package memmap

import (
	"fmt"
	"sort"
	"strings"
)

// PageSize is the granule of memory that can be handed out: Usable regions
// are trimmed to it because a partial page cannot be mapped to a guest.
const PageSize = 4096

// Kind says what physical memory may be used for. The constants are ordered
// by restrictiveness: where firmware entries overlap, the greater Kind wins.
// Each step up forbids more:
//
//	Usable           free RAM
//	Loader           RAM holding boot modules, free once they are consumed
//	ACPIReclaimable  RAM holding ACPI tables, free once they are copied
//	Persistent       non-volatile RAM: its contents outlive a reboot
//	Unusable         RAM reported bad: never touched
//	Reserved         never touched, may not be RAM at all (MMIO, firmware)
//	ACPINVS          never touched, and preserved across sleep states
//	FirmwareRuntime  never touched, and kept mapped for UEFI runtime services
//
// The zero value is not a valid Kind, so that a Region nobody classified is
// never taken for free RAM; Normalize treats any invalid Kind as Reserved.
type Kind uint8

const (
	Usable Kind = iota + 1
	Loader
	ACPIReclaimable
	Persistent
	Unusable
	Reserved
	ACPINVS
	FirmwareRuntime

	numKinds = iota + 1 // one past the last valid Kind
)

var kindNames = [numKinds]string{
	Usable:          "usable",
	Loader:          "boot modules",
	ACPIReclaimable: "ACPI tables",
	Persistent:      "persistent",
	Unusable:        "unusable",
	Reserved:        "reserved",
	ACPINVS:         "ACPI NVS",
	FirmwareRuntime: "firmware runtime",
}

// Valid reports whether k is one of the Kinds above.
func (k Kind) Valid() bool { return k >= Usable && k < numKinds }

func (k Kind) String() string {
	if !k.Valid() {
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
	return kindNames[k]
}

// Region is the physical range [Start, Start+Size) of one Kind.
type Region struct {
	Start, Size uint64
	Kind        Kind
}

// End is one past the last byte of r. It wraps to a value below Start for a
// Region that would extend past the top of the 64-bit address space; such
// Regions are never in a Map.
func (r Region) End() uint64 { return r.Start + r.Size }

func (r Region) wraps() bool { return r.Start+r.Size < r.Start }

func (r Region) String() string {
	if r.Size == 0 {
		return fmt.Sprintf("[%#x, empty) %v", r.Start, r.Kind)
	}
	return fmt.Sprintf("[%#x-%#x] %v", r.Start, r.End()-1, r.Kind)
}

// Map is a normalized memory map: sorted by Start, no two Regions overlap,
// no two touching Regions have the same Kind, no Region is empty, and every
// Usable Region starts and ends on a page boundary. Only Normalize and the
// methods below make Maps; a Map built by hand has none of these guarantees.
type Map []Region

// boundary is one end of a firmware entry, for the sweep in Normalize.
type boundary struct {
	addr  uint64
	kind  Kind
	start bool
}

// Normalize builds a Map from firmware entries in any order. Where entries
// overlap, the most restrictive Kind wins; entries that are empty or that
// wrap past the top of the address space are dropped; Usable memory is
// trimmed inward to whole pages after neighbouring Usable entries are merged.
func Normalize(entries []Region) Map {
	bounds := make([]boundary, 0, 2*len(entries))
	for _, e := range entries {
		if e.Size == 0 || e.wraps() {
			continue
		}
		k := e.Kind
		if !k.Valid() {
			k = Reserved
		}
		bounds = append(bounds, boundary{e.Start, k, true}, boundary{e.End(), k, false})
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i].addr < bounds[j].addr })

	// Sweep the sorted boundaries keeping, for each Kind, how many entries
	// cover the current address; between two boundaries the greatest Kind
	// with a non-zero count is the one in force.
	var active [numKinds]int
	var out Map
	for i := 0; i < len(bounds); {
		addr := bounds[i].addr
		for ; i < len(bounds) && bounds[i].addr == addr; i++ {
			if bounds[i].start {
				active[bounds[i].kind]++
			} else {
				active[bounds[i].kind]--
			}
		}
		if i == len(bounds) {
			break
		}
		var kind Kind
		for k := Kind(numKinds - 1); k >= Usable; k-- {
			if active[k] > 0 {
				kind = k
				break
			}
		}
		if kind == 0 {
			continue // a hole between entries
		}
		out = out.appendMerged(Region{addr, bounds[i].addr - addr, kind})
	}
	return out.trimUsable()
}

// appendMerged appends r, merging it into the last Region when they touch
// and have the same Kind.
func (m Map) appendMerged(r Region) Map {
	if n := len(m); n > 0 && m[n-1].Kind == r.Kind && m[n-1].End() == r.Start {
		m[n-1].Size += r.Size
		return m
	}
	return append(m, r)
}

// trimUsable shrinks each Usable Region to the whole pages inside it, in
// place, dropping those that hold none.
func (m Map) trimUsable() Map {
	out := m[:0]
	for _, r := range m {
		if r.Kind == Usable {
			start := alignUp(r.Start)
			end := r.End() &^ (PageSize - 1)
			if start == 0 && r.Start != 0 || end <= start {
				continue // no whole page, or rounding up wrapped
			}
			r = Region{start, end - start, Usable}
		}
		out = append(out, r)
	}
	return out
}

func alignUp(a uint64) uint64 { return (a + PageSize - 1) &^ (PageSize - 1) }

// find returns the index of the Region containing addr, or -1.
func (m Map) find(addr uint64) int {
	i := sort.Search(len(m), func(i int) bool { return m[i].End() > addr })
	if i < len(m) && m[i].Start <= addr {
		return i
	}
	return -1
}

// KindAt returns the Kind of the byte at addr; ok is false when no Region
// describes it (a hole: nothing may be assumed about it).
func (m Map) KindAt(addr uint64) (k Kind, ok bool) {
	if i := m.find(addr); i >= 0 {
		return m[i].Kind, true
	}
	return 0, false
}

// Contains reports whether every byte of r lies in Regions of r.Kind, with
// no hole between them (in a Map touching Regions of one Kind are merged, so
// that is one Region). An empty r is contained nowhere.
func (m Map) Contains(r Region) bool {
	if r.Size == 0 || r.wraps() {
		return false
	}
	i := m.find(r.Start)
	return i >= 0 && m[i].Kind == r.Kind && r.End() <= m[i].End()
}

// Total returns the number of bytes of Kind k.
func (m Map) Total(k Kind) uint64 {
	var n uint64
	for _, r := range m {
		if r.Kind == k {
			n += r.Size
		}
	}
	return n
}

// Count returns the number of Regions of Kind k.
func (m Map) Count(k Kind) int {
	n := 0
	for _, r := range m {
		if r.Kind == k {
			n++
		}
	}
	return n
}

// MaxAddress returns one past the highest byte any Region describes, of any
// Kind: what the hypervisor's own page tables must cover. It is 0 for an
// empty Map.
func (m Map) MaxAddress() uint64 {
	if len(m) == 0 {
		return 0
	}
	return m[len(m)-1].End()
}

// Free returns the Usable memory of m that none of reserved overlaps (their
// Kinds are ignored): what is left for the physical page allocator once the
// image, its heap, boot modules and page tables are taken out. Reserved
// ranges are widened to whole pages, so the result stays page-aligned.
func (m Map) Free(reserved ...Region) Map {
	holes := make([]Region, 0, len(reserved))
	for _, r := range reserved {
		if r.Size == 0 {
			continue
		}
		start := r.Start &^ (PageSize - 1)
		end := alignUp(r.End())
		if r.wraps() || end < r.Start {
			end = 0 // reaches the top of the address space
		}
		holes = append(holes, Region{Start: start, Size: end - start})
	}
	sort.Slice(holes, func(i, j int) bool { return holes[i].Start < holes[j].Start })

	var out Map
	for _, r := range m {
		if r.Kind != Usable {
			continue
		}
		start, end := r.Start, r.End()
		for _, h := range holes {
			hEnd := h.End() // 0 means the top of the address space
			if hEnd != 0 && hEnd <= start {
				continue
			}
			if h.Start >= end {
				break
			}
			if h.Start > start {
				out = append(out, Region{start, h.Start - start, Usable})
			}
			if hEnd == 0 || hEnd >= end {
				start = end
				break
			}
			start = hEnd
		}
		if start < end {
			out = append(out, Region{start, end - start, Usable})
		}
	}
	return out
}

// String prints the map as a table for the console, one Region a line,
// followed by the Summary line.
func (m Map) String() string {
	var b strings.Builder
	for _, r := range m {
		fmt.Fprintf(&b, "  0x%016x-0x%016x %10s  %v\n", r.Start, r.End()-1, FormatSize(r.Size), r.Kind)
	}
	b.WriteString(m.Summary())
	return b.String()
}

// Summary is a one-line account of the map, for example
// "memory: 2047 MiB usable in 3 regions, 1 MiB reserved, 128 KiB ACPI tables".
// Kinds with no bytes are left out.
func (m Map) Summary() string {
	var b strings.Builder
	n := m.Count(Usable)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(&b, "memory: %s usable in %d region%s", FormatSize(m.Total(Usable)), n, plural)
	for k := Usable + 1; k < numKinds; k++ {
		if t := m.Total(k); t != 0 {
			fmt.Fprintf(&b, ", %s %v", FormatSize(t), k)
		}
	}
	return b.String()
}

// FormatSize writes a byte count in the largest binary unit that states it
// exactly, or, failing that, in the largest unit that still shows at least
// 100 of it (rounded down): "2047 MiB", "636 KiB", "1 MiB", "4 GiB".
func FormatSize(n uint64) string {
	units := []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}
	for _, u := range units {
		v := n >> u.shift
		if v == 0 {
			continue
		}
		if n&(1<<u.shift-1) == 0 || v >= 100 {
			return fmt.Sprintf("%d %s", v, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
