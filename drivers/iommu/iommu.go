// Package iommu is the hypervisor's one view of the platform's DMA
// remapping hardware: Intel VT-d (package iommu/vtd) and AMD-Vi (package
// iommu/amdvi), both found through ACPI (DMAR, IVRS). The rest of the
// hypervisor speaks only this package's Unit interface:
//
//   - at boot every unit is enabled with every device it covers in the
//     blocking state (no translation: DMA faults instead of reaching
//     memory), then the devices the hypervisor drives itself are attached
//     to domains that map only their own buffers;
//   - a passed-through device is attached to a domain whose tables mirror
//     its guest's nested page tables (I/O virtual address = guest-physical
//     address), and detached (back to blocking) when the guest stops;
//   - faults are drained periodically and reported on the console, rate
//     limited; a fault never stops the hypervisor.
//
// A Domain's tables are built by package ept in the unit's own format
// (ept.VTdFormat, ept.AMDViFormat): Unit.TableConfig says which, with the
// address widths and page sizes the unit's capability registers allow.
package iommu

import (
	"fmt"

	"tamavisor/ept"
)

// Source is a DMA requester: a PCI function on a segment (PCI Express
// Base Specification 2.2.6.2, Requester ID = bus:device.function).
type Source struct {
	Segment  uint16
	Bus      uint8
	Device   uint8 // 0..31
	Function uint8 // 0..7
}

// RequesterID is the 16-bit ID the device puts on its DMA transactions,
// which both IOMMUs index their tables with.
func (s Source) RequesterID() uint16 {
	return uint16(s.Bus)<<8 | uint16(s.Device&0x1f)<<3 | uint16(s.Function&7)
}

// SourceFromRequesterID is the inverse of RequesterID on a segment.
func SourceFromRequesterID(segment, rid uint16) Source {
	return Source{Segment: segment, Bus: uint8(rid >> 8), Device: uint8(rid>>3) & 0x1f, Function: uint8(rid) & 7}
}

func (s Source) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%d", s.Segment, s.Bus, s.Device, s.Function)
}

// Domain is one DMA address space. Tables, built in the format of the
// units the domain's devices sit behind, translate I/O virtual addresses
// to host-physical ones; a nil Tables blocks every access.
type Domain struct {
	// ID tags the domain's translations in the units' caches (VT-d
	// domain-id, AMD-Vi DomainID). 0 is reserved by both drivers for
	// the blocking state.
	ID     uint16
	Tables *ept.Tables
}

// Fault is one decoded DMA fault record.
type Fault struct {
	Unit    string // which unit reported it (Unit.String)
	Source  Source
	Address uint64 // the I/O virtual address the device used
	Write   bool
	// Reason is the hardware's fault reason in words ("no context entry
	// present", "write to a read-only page", "I/O page fault: page not
	// present"...); Code the raw reason or event code, for the record.
	Reason string
	Code   uint32
}

func (f Fault) String() string {
	dir := "read"
	if f.Write {
		dir = "write"
	}
	return fmt.Sprintf("%s: DMA %s by %s at %#x blocked: %s (code %#x)", f.Unit, dir, f.Source, f.Address, f.Reason, f.Code)
}

// Unit is one IOMMU (a VT-d DRHD, an AMD-Vi IVHD). Methods are not safe
// for concurrent use: the hypervisor serializes them.
type Unit interface {
	// String names the unit for the console ("vt-d unit at 0xfed90000").
	String() string
	// TableConfig is the configuration of the I/O page tables this unit
	// walks: build a Domain's ept.Tables with it.
	TableConfig() ept.Config
	// Covers reports whether DMA from src goes through this unit.
	Covers(src Source) bool
	// Enable builds the unit's tables with every covered device in the
	// blocking state, starts fault reporting and turns translation on.
	// From its return, no DMA from a covered device reaches memory
	// unless the device is attached to a domain that maps it.
	Enable() error
	// Attach makes src translate through d (its tables must have been
	// built with TableConfig), invalidating what the unit cached for
	// src.
	Attach(src Source, d *Domain) error
	// Detach puts src back in the blocking state.
	Detach(src Source) error
	// Invalidate flushes the unit's cached translations of d after its
	// tables changed (ept.Config.OnInvalidate calls it).
	Invalidate(d *Domain) error
	// DrainFaults hands each pending fault record to report, clears it,
	// and returns how many there were. Records the hardware dropped
	// (overflow) are counted in the result as one Fault with Reason
	// saying so.
	DrainFaults(report func(Fault)) (int, error)
	// Disable turns translation off (DMA then reaches memory unchecked:
	// only the attack test's "without IOMMU" run uses it).
	Disable() error
}

// PageAllocator hands the drivers physically contiguous, zeroed memory for
// their tables and queues (root and context tables, device table, command
// buffer, event log), at addresses the units can be given.
type PageAllocator interface {
	Alloc(size, align uint64) (phys uint64, err error)
}
