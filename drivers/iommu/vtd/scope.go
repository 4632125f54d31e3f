package vtd

import (
	"errors"
	"fmt"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/iommu"
	"tamavisor/ept"
)

// claim is what one device scope (VT-d spec 8.3.1) puts behind a unit: a
// requester (bus, device and function), and for a bridge's sub-hierarchy
// also the buses below it.
type claim struct {
	bus, devfn  uint8
	first, last uint8 // bus range below a bridge
	subordinate bool  // first..last is claimed too
}

func (c claim) covers(bus, devfn uint8) bool {
	return (bus == c.bus && devfn == c.devfn) || (c.subordinate && bus >= c.first && bus <= c.last)
}

// maxScopePath bounds a scope's path walk: a PCI hierarchy is at most 256
// buses deep, and the DMAR parser gives at most (255-6)/2 hops anyway.
const maxScopePath = 256

// resolveScopes turns a DRHD's PCI device scopes into claims. IOAPIC and
// HPET scopes name interrupt sources, not DMA requesters, and are skipped.
// A path through bridges (more than one hop), and a sub-hierarchy scope,
// need the bridges' bus numbers from bridgeBuses.
func resolveScopes(drhd acpi.DRHD, bridgeBuses func(seg uint16, bus, dev, fn uint8) (uint8, uint8, error)) ([]claim, error) {
	var out []claim
	for i, sc := range drhd.Scopes {
		switch sc.Type {
		case acpi.ScopePCIEndpoint, acpi.ScopePCISubHierarchy, acpi.ScopeACPINamespace:
		default:
			continue
		}
		if len(sc.Path) == 0 || len(sc.Path) > maxScopePath {
			return nil, fmt.Errorf("device scope %d (%v): path of %d hops", i, sc.Type, len(sc.Path))
		}
		bus := sc.StartBus
		for h, hop := range sc.Path {
			if hop.Device > 31 || hop.Function > 7 {
				return nil, fmt.Errorf("device scope %d (%v): hop %d names device %d function %d", i, sc.Type, h, hop.Device, hop.Function)
			}
			if h == len(sc.Path)-1 {
				break
			}
			if bridgeBuses == nil {
				return nil, fmt.Errorf("device scope %d (%v) goes through the bridge at %02x:%02x.%d: Options.BridgeBuses is required", i, sc.Type, bus, hop.Device, hop.Function)
			}
			sec, _, err := bridgeBuses(drhd.Segment, bus, hop.Device, hop.Function)
			if err != nil {
				return nil, fmt.Errorf("device scope %d (%v): bridge at %02x:%02x.%d: %w", i, sc.Type, bus, hop.Device, hop.Function, err)
			}
			if sec <= bus {
				return nil, fmt.Errorf("device scope %d (%v): bridge at %02x:%02x.%d has secondary bus %#x, not below it", i, sc.Type, bus, hop.Device, hop.Function, sec)
			}
			bus = sec
		}
		last := sc.Path[len(sc.Path)-1]
		c := claim{bus: bus, devfn: last.Device<<3 | last.Function}
		if sc.Type == acpi.ScopePCISubHierarchy {
			if bridgeBuses == nil {
				return nil, fmt.Errorf("device scope %d (%v) at %02x:%02x.%d: Options.BridgeBuses is required for the buses below it", i, sc.Type, bus, last.Device, last.Function)
			}
			sec, sub, err := bridgeBuses(drhd.Segment, bus, last.Device, last.Function)
			if err != nil {
				return nil, fmt.Errorf("device scope %d (%v): bridge at %02x:%02x.%d: %w", i, sc.Type, bus, last.Device, last.Function, err)
			}
			if sec <= bus || sub < sec {
				return nil, fmt.Errorf("device scope %d (%v): bridge at %02x:%02x.%d has buses %#x..%#x", i, sc.Type, bus, last.Device, last.Function, sec, sub)
			}
			c.subordinate, c.first, c.last = true, sec, sub
		}
		out = append(out, c)
	}
	return out, nil
}

func (u *Unit) claimsBus(bus uint8) bool {
	for _, c := range u.claims {
		if c.bus == bus || (c.subordinate && bus >= c.first && bus <= c.last) {
			return true
		}
	}
	return false
}

// Covers reports whether DMA from src goes through this unit: src is named
// by one of the unit's device scopes, or the unit has INCLUDE_PCI_ALL and
// no other unit of the segment claims src. A unit built by New alone knows
// no other units: build all of them with NewAll.
func (u *Unit) Covers(src iommu.Source) bool {
	if src.Segment != u.segment || src.Device > 31 || src.Function > 7 {
		return false
	}
	devfn := uint8(src.RequesterID())
	for _, c := range u.claims {
		if c.covers(src.Bus, devfn) {
			return true
		}
	}
	if !u.includeAll {
		return false
	}
	for _, c := range u.excluded {
		if c.covers(src.Bus, devfn) {
			return false
		}
	}
	return true
}

// NewAll builds a Unit for every DRHD of dmar (Options.HostAddressWidth
// comes from the DMAR) and tells each INCLUDE_PCI_ALL unit what the other
// units of its segment claim, so that Covers is exact. A unit that fails
// is left out of the result and named in the error; its devices are still
// excluded from the catch-all unit, since the hardware sends their DMA to
// it, not to the catch-all one.
func NewAll(mmio hw.MMIO, mem ept.Memory, pages iommu.PageAllocator, dmar *acpi.DMAR, opts Options) ([]*Unit, error) {
	if dmar == nil {
		return nil, errors.New("vtd: nil DMAR")
	}
	opts.HostAddressWidth = dmar.HostAddressWidth
	claims := make([][]claim, len(dmar.DRHDs))
	resolved := make([]bool, len(dmar.DRHDs))
	var errs []error
	for i, d := range dmar.DRHDs {
		c, err := resolveScopes(d, opts.BridgeBuses)
		if err != nil {
			errs = append(errs, fmt.Errorf("vt-d unit at %#x: %w", d.RegisterBase, err))
			continue
		}
		claims[i], resolved[i] = c, true
	}
	var units []*Unit
	for i, d := range dmar.DRHDs {
		if !resolved[i] {
			continue
		}
		u, err := New(mmio, mem, pages, d, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if u.includeAll {
			for j, other := range dmar.DRHDs {
				if j != i && other.Segment == d.Segment {
					u.excluded = append(u.excluded, claims[j]...)
				}
			}
		}
		units = append(units, u)
	}
	return units, errors.Join(errs...)
}

// For is the unit among units that DMA from src goes through, or nil.
func For(units []*Unit, src iommu.Source) *Unit {
	for _, u := range units {
		if u.Covers(src) {
			return u
		}
	}
	return nil
}
