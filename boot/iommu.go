//go:build tamago

package main

import (
	"fmt"
	"os"
	"strings"
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
	m      *hw.Machine
	pages  hostPages
	units  iommu.Units
	log    *iommu.FaultLog
	nextID uint16
	// Uncovered names the PCI functions no unit translates: their DMA is
	// unchecked, which the console says at boot.
	uncovered []string
}

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
	g := &dmaGuard{m: m, pages: pages, nextID: 1,
		log: &iommu.FaultLog{Out: os.Stdout, Burst: 8, Interval: int64(time.Second), Now: pc.Now}}
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
		for _, u := range g.units {
			if _, err := u.DrainFaults(g.log.Report); err != nil {
				fmt.Printf("tamavisor: iommu: %s: reading fault records: %v\n", u, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// domainFor builds an empty DMA domain in the format of the unit src sits
// behind, and attaches src to it.
func (g *dmaGuard) attachNew(src iommu.Source) (*iommu.Domain, iommu.Unit, error) {
	u := g.units.For(src)
	if u == nil {
		return nil, nil, fmt.Errorf("no IOMMU covers %s", src)
	}
	d := &iommu.Domain{ID: g.nextID}
	g.nextID++
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
	if err := u.Attach(src, d); err != nil {
		return nil, nil, err
	}
	return d, u, nil
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
