//go:build tamago

package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/iommu"
	"tamavisor/drivers/iommu/amdvi"
	"tamavisor/drivers/iommu/vtd"
	"tamavisor/drivers/pci"
	"tamavisor/ept"
	"tamavisor/runtime/pc"
)

// dmaGuard is the hypervisor's DMA protection: every IOMMU the firmware
// lists, enabled at boot with every device it covers blocked, and the
// domains the hypervisor gives devices afterwards.
type dmaGuard struct {
	m     *hw.Machine
	pages hostPages
	units iommu.Units
	log   *iommu.FaultLog
	// Uncovered names the PCI functions no unit translates: their DMA is
	// unchecked, which the console says at boot.
	uncovered []string

	// devs and spaces are the host's PCI functions and configuration
	// spaces (by segment), as enumerated at boot: what passthrough can
	// give guests.
	devs   []pci.Device
	spaces map[uint16]pci.ConfigSpace

	// mu serializes the units' methods (iommu.Unit is not safe for
	// concurrent use: the fault reporter drains while guests start and
	// stop), domain IDs and the claims.
	mu     sync.Mutex
	nextID uint16
	// claimed maps each PCI function given to a guest to that guest's
	// name, from the guest's start until its devices are quiesced.
	claimed map[iommu.Source]string
}

// platformDMA is the guard protectDMA built at boot: passthrough asks it
// for the host's PCI functions and for DMA domains. Nil when the IOMMUs
// were left off (tamavisor.iommu=off), and then no device is passed
// through.
var platformDMA *dmaGuard

// iommuDisabled reports `tamavisor.iommu=off`: boot without DMA
// protection. Only the DMA attack test uses it, to prove the attack it
// makes would land.
func iommuDisabled(cmdline string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == "tamavisor.iommu=off" {
			return true
		}
	}
	return false
}

// protectDMA brings up every IOMMU unit the DMAR or IVRS describes, each
// with all the devices it covers blocked. A unit that fails is reported
// and left off; the hypervisor goes on (its devices' DMA is then
// unchecked, and the console says so).
func protectDMA(m *hw.Machine, t *acpi.Tables, pages hostPages, devs []pci.Device, cs map[uint16]pci.ConfigSpace) *dmaGuard {
	g := &dmaGuard{m: m, pages: pages, nextID: 1, devs: devs, spaces: cs, claimed: map[iommu.Source]string{},
		log: &iommu.FaultLog{Out: os.Stdout, Burst: 8, Interval: int64(time.Second), Now: pc.Now}}
	platformDMA = g
	if t == nil {
		return g
	}
	if t.DMAR != nil {
		for _, d := range t.DMAR.DRHDs {
			u, err := vtd.New(m, m, pages, d, vtd.Options{
				HostAddressWidth: t.DMAR.HostAddressWidth,
				FlushCache:       pc.FlushCache,
				BridgeBuses:      bridgeBuses(cs),
			})
			g.add(u, err, fmt.Sprintf("vt-d unit at %#x", d.RegisterBase))
		}
	}
	if t.IVRS != nil {
		// A unit may be described by several IVHD blocks (types 10h,
		// 11h, 40h) at one register base: the last one listed is the
		// richest type (#48882 5.2.2.1 orders them by type).
		blocks := map[uint64]*acpi.IVHD{}
		var order []uint64
		for i := range t.IVRS.IVHDs {
			h := &t.IVRS.IVHDs[i]
			if blocks[h.BaseAddress] == nil {
				order = append(order, h.BaseAddress)
			}
			if b := blocks[h.BaseAddress]; b == nil || h.Type > b.Type {
				blocks[h.BaseAddress] = h
			}
		}
		for _, base := range order {
			h := blocks[base]
			var capHeader uint32
			if c := cs[h.Segment]; c != nil {
				bus, dev, fn := uint8(h.DeviceID>>8), uint8(h.DeviceID>>3)&0x1f, uint8(h.DeviceID)&7
				capHeader = c.Read32(bus, dev, fn, h.CapabilityOffset)
			}
			u, err := amdvi.New(m, m, pages, h, amdvi.Options{Info: t.IVRS.Info, CapabilityHeader: capHeader})
			g.add(u, err, fmt.Sprintf("amd-vi unit at %#x", base))
		}
	}
	for _, d := range devs {
		src := iommu.Source{Segment: d.Segment, Bus: d.Bus, Device: d.Dev, Function: d.Fn}
		if len(g.units) > 0 && g.units.For(src) == nil {
			g.uncovered = append(g.uncovered, src.String())
		}
	}
	if len(g.uncovered) > 0 {
		fmt.Printf("tamavisor: warning: no IOMMU covers %s: their DMA is unchecked\n", strings.Join(g.uncovered, " "))
	}
	if len(g.units) > 0 {
		go g.reportFaults()
	}
	return g
}

// add enables a unit the driver built.
func (g *dmaGuard) add(u iommu.Unit, err error, what string) {
	if err == nil {
		err = u.Enable()
	}
	if err != nil {
		fmt.Printf("tamavisor: warning: %s not enabled: %v; DMA of the devices behind it is unchecked\n", what, err)
		return
	}
	g.units = append(g.units, u)
	fmt.Printf("tamavisor: iommu: %s enabled, every device it covers blocked\n", u)
}

// reportFaults drains the units' fault records for ever, printing them
// rate-limited: a faulting device never stops the hypervisor.
func (g *dmaGuard) reportFaults() {
	for {
		g.mu.Lock()
		for _, u := range g.units {
			if _, err := u.DrainFaults(g.log.Report); err != nil {
				fmt.Printf("tamavisor: iommu: %s: reading fault records: %v\n", u, err)
			}
		}
		g.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// attachNew builds an empty DMA domain in the format of the unit src sits
// behind, and attaches src to it.
func (g *dmaGuard) attachNew(src iommu.Source) (*iommu.Domain, iommu.Unit, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, u, err := g.newDomain(src)
	if err != nil {
		return nil, nil, err
	}
	if err := u.Attach(src, d); err != nil {
		return nil, nil, err
	}
	return d, u, nil
}

// newDomain builds an empty domain in the format of the unit src sits
// behind; the caller holds g.mu. Its tables' invalidations go straight to
// the unit: edit them with g.mu held.
func (g *dmaGuard) newDomain(src iommu.Source) (*iommu.Domain, iommu.Unit, error) {
	u := g.units.For(src)
	if u == nil {
		return nil, nil, fmt.Errorf("no IOMMU covers %s", src)
	}
	d := &iommu.Domain{ID: g.nextID}
	// 0 is the blocking state's ID in both drivers; after 65535 domains
	// the IDs wrap, and each unit flushes a domain's cached
	// translations on every attach anyway.
	if g.nextID++; g.nextID == 0 {
		g.nextID = 1
	}
	cfg := u.TableConfig()
	cfg.OnInvalidate = func(start, end uint64) {
		if err := u.Invalidate(d); err != nil {
			fmt.Printf("tamavisor: iommu: %s: invalidating domain %d: %v\n", u, d.ID, err)
		}
	}
	var mem ept.Memory = g.m
	if tm, ok := u.(interface{ TableMemory(ept.Memory) ept.Memory }); ok {
		mem = tm.TableMemory(mem)
	}
	tables, err := ept.New(mem, g.pages, cfg)
	if err != nil {
		return nil, nil, err
	}
	d.Tables = tables
	return d, u, nil
}

// hostFunction finds src among the host's PCI functions.
func (g *dmaGuard) hostFunction(src iommu.Source) (pci.Device, bool) {
	for _, d := range g.devs {
		if d.Segment == src.Segment && d.Bus == src.Bus && d.Dev == src.Device && d.Fn == src.Function {
			return d, true
		}
	}
	return pci.Device{}, false
}

// claim gives src to the guest vm; a function belongs to one running
// guest at a time.
func (g *dmaGuard) claim(src iommu.Source, vm string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if owner, ok := g.claimed[src]; ok {
		return fmt.Errorf("PCI function %s is already given to the running VM %q", src, owner)
	}
	g.claimed[src] = vm
	return nil
}

// unclaim ends vm's claim on src.
func (g *dmaGuard) unclaim(src iommu.Source, vm string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.claimed[src] == vm {
		delete(g.claimed, src)
	}
}

// dmaRange is one piece of a guest's memory for its device's DMA:
// I/O virtual address (the guest-physical address) to host-physical.
type dmaRange struct{ iova, hpa, size uint64 }

// guestDMA is a passed-through device's DMA domain.
type guestDMA struct {
	g      *dmaGuard
	src    iommu.Source
	unit   iommu.Unit
	domain *iommu.Domain
	ranges []dmaRange
}

// attachGuest builds a domain that maps ranges — a guest's RAM, as its
// nested page tables do, so that the device's DMA to a guest-physical
// address reaches the guest's memory and nothing else — and attaches src
// to it. On error src stays blocked and nothing is kept.
func (g *dmaGuard) attachGuest(src iommu.Source, ranges []dmaRange) (*guestDMA, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, u, err := g.newDomain(src)
	if err != nil {
		return nil, err
	}
	gd := &guestDMA{g: g, src: src, unit: u, domain: d, ranges: ranges}
	for _, r := range ranges {
		if err := d.Tables.Map(r.iova, r.hpa, r.size, ept.Read|ept.Write, ept.WB); err != nil {
			gd.freeTables()
			return nil, fmt.Errorf("%s: DMA domain %d: mapping %#x-%#x: %w", u, d.ID, r.iova, r.iova+r.size-1, err)
		}
	}
	if err := u.Attach(src, d); err != nil {
		// A failed attach may have left the entry half-written: block.
		if derr := u.Detach(src); derr != nil {
			fmt.Printf("tamavisor: iommu: %s: blocking %s after a failed attach: %v\n", u, src, derr)
		}
		gd.freeTables()
		return nil, fmt.Errorf("%s: attaching %s to DMA domain %d: %w", u, src, d.ID, err)
	}
	return gd, nil
}

// close puts the device back in the blocking state and frees the
// domain's tables. The device must be quiesced first (no DMA in flight
// that the guest's RAM, freed next, would receive).
func (gd *guestDMA) close() error {
	gd.g.mu.Lock()
	defer gd.g.mu.Unlock()
	err := gd.unit.Detach(gd.src)
	if err != nil {
		// The entry may still point at the tables: keep them rather
		// than let the unit walk freed pages.
		return fmt.Errorf("%s: detaching %s: %w; its DMA domain %d is kept", gd.unit, gd.src, err, gd.domain.ID)
	}
	gd.freeTables()
	return nil
}

// freeTables unmaps everything (which frees the intermediate tables) and
// frees the root; the caller holds g.mu and the domain is attached to
// nothing.
func (gd *guestDMA) freeTables() {
	t := gd.domain.Tables
	for _, r := range gd.ranges {
		if err := t.Unmap(r.iova, r.size); err != nil {
			fmt.Printf("tamavisor: iommu: DMA domain %d: unmapping %#x: %v\n", gd.domain.ID, r.iova, err)
		}
	}
	gd.g.pages.FreeTable(t.Root())
	gd.domain.Tables = nil
}

// bridgeBuses reads a PCI-to-PCI bridge's secondary and subordinate bus
// numbers, for VT-d device scopes that name paths through bridges.
func bridgeBuses(cs map[uint16]pci.ConfigSpace) func(segment uint16, bus, dev, fn uint8) (uint8, uint8, error) {
	return func(segment uint16, bus, dev, fn uint8) (uint8, uint8, error) {
		c := cs[segment]
		if c == nil {
			return 0, 0, fmt.Errorf("no configuration access to PCI segment %d", segment)
		}
		v := c.Read32(bus, dev, fn, 0x18) // primary, secondary, subordinate bus (PCI-PCI bridge spec 3.2.5.2-4)
		if v == 0xffffffff {
			return 0, 0, fmt.Errorf("no bridge at %02x:%02x.%d", bus, dev, fn)
		}
		return uint8(v >> 8), uint8(v >> 16), nil
	}
}
