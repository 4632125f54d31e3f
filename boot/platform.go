//go:build tamago

package main

import (
	"fmt"
	"os"
	"strings"

	"tamavisor/boot/inventory"
	"tamavisor/boot/memmap"
	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/pci"
	"tamavisor/runtime/pagetable"
)

// fatal reports a condition the hypervisor can not run under and stops
// here, with the console up: on a server, the operator must be able to
// read why.
func fatal(format string, args ...any) {
	fmt.Printf("tamavisor: fatal: "+format+"\n", args...)
	fmt.Println("tamavisor: halted")
	os.Exit(1)
}

// hostRegions turns the memory map into the page-table builder's input:
// RAM cacheable, firmware regions and known MMIO uncacheable.
func hostRegions(m memmap.Map, t *acpi.Tables) []pagetable.Region {
	var regions []pagetable.Region
	// Firmware-reserved ranges above 4 GiB (e.g. the HyperTransport hole
	// QEMU reports just below 1 TiB on AMD machines) hold nothing the
	// hypervisor touches: mapping them would cost page tables for nothing.
	// Known MMIO up there is added below.
	for _, r := range m {
		usable := r.Kind == memmap.Usable
		if usable || r.End() <= 4<<30 {
			regions = append(regions, pagetable.Region{Start: r.Start, Size: r.Size, Cacheable: usable})
		}
	}
	mmio := func(base, size uint64) {
		if base != 0 {
			regions = append(regions, pagetable.Region{Start: base, Size: size})
		}
	}
	mmio(0xfec00000, 0x1400000) // IOAPICs, HPET, LAPIC and the BIOS flash at the top of 4 GiB
	if t != nil {
		if t.MADT != nil {
			mmio(t.MADT.LocalAPICAddress, 0x1000)
			for _, io := range t.MADT.IOAPICs {
				mmio(uint64(io.Address), 0x1000)
			}
		}
		for _, h := range t.HPETs {
			mmio(h.Base.Address, 0x1000)
		}
		if t.MCFG != nil {
			for _, a := range t.MCFG.Allocations {
				mmio(a.Base+uint64(a.StartBus)<<20, uint64(a.EndBus-a.StartBus+1)<<20)
			}
		}
		for _, u := range inventory.IOMMUsFromACPI(t) {
			mmio(u.Base, 0x4000)
		}
	}
	return regions
}

// cpuInfo reads the boot processor's identity (CPUID leaves 0, 1 and
// 0x80000002-4: Intel SDM Vol. 2A, CPUID; AMD APM Vol. 3, Appendix E).
func cpuInfo(cpu hw.CPUID) inventory.CPU {
	var c inventory.CPU
	_, b, cx, d := cpu.CPUID(0, 0)
	c.Vendor = string(le32(b)) + string(le32(d)) + string(le32(cx))
	eax, _, _, _ := cpu.CPUID(1, 0)
	family, model := eax>>8&0xf, eax>>4&0xf
	if family == 0xf {
		family += eax >> 20 & 0xff
	}
	if family == 0x6 || family >= 0xf {
		model |= (eax >> 16 & 0xf) << 4
	}
	c.Family, c.Model, c.Stepping = family, model, eax&0xf
	if max, _, _, _ := cpu.CPUID(0x80000000, 0); max >= 0x80000004 {
		var name []byte
		for leaf := uint32(0x80000002); leaf <= 0x80000004; leaf++ {
			a, b, cx, d := cpu.CPUID(leaf, 0)
			for _, r := range []uint32{a, b, cx, d} {
				name = append(name, le32(r)...)
			}
		}
		c.Name = strings.TrimSpace(strings.TrimRight(string(name), "\x00"))
	}
	return c
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

// listedCPUs returns the APIC IDs of the processors the MADT lists as
// enabled; without a MADT, only the boot processor is known.
func listedCPUs(t *acpi.Tables, bsp uint32) []uint32 {
	if t == nil || t.MADT == nil {
		return []uint32{bsp}
	}
	var ids []uint32
	for _, l := range t.MADT.LocalAPICs {
		if l.Flags&acpi.LocalAPICEnabled != 0 {
			ids = append(ids, l.APICID)
		}
	}
	if len(ids) == 0 {
		return []uint32{bsp}
	}
	return ids
}

// enumeratePCI walks every PCI segment through ECAM where the MCFG gives
// it, and through the legacy CF8/CFC ports otherwise. It returns the
// configuration access of each segment with the functions found.
func enumeratePCI(m *hw.Machine, t *acpi.Tables) ([]pci.Device, map[uint16]pci.ConfigSpace, error) {
	spaces := map[uint16]pci.ConfigSpace{}
	if t != nil && t.MCFG != nil && len(t.MCFG.Allocations) > 0 {
		var all []pci.Device
		var errs []string
		for _, a := range t.MCFG.Allocations {
			cs, err := pci.NewECAM(m, a.Base, a.Segment, a.StartBus, a.EndBus)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			spaces[a.Segment] = cs
			devs, err := pci.Enumerate(cs, a.Segment)
			all = append(all, devs...)
			if err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			return all, spaces, fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return all, spaces, nil
	}
	port := pci.NewPortConfig(m)
	if !port.Present() {
		return nil, spaces, fmt.Errorf("no PCI configuration mechanism: no MCFG and no CF8/CFC")
	}
	spaces[0] = port
	devs, err := pci.Enumerate(port, 0)
	return devs, spaces, err
}

// wantsSelftest reports whether the kernel command line asks for a
// self-test (tamavisor.selftest=NAME[,NAME...]), for the emulator tests.
func wantsSelftest(cmdline, name string) bool {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "tamavisor.selftest="); ok {
			for _, n := range strings.Split(v, ",") {
				if n == name {
					return true
				}
			}
		}
	}
	return false
}

// selftest runs the self-tests that must run before guests start:
// `tamavisor.selftest=exception` faults on purpose to show the exception
// report.
func selftest(cmdline string) {
	if wantsSelftest(cmdline, "exception") {
		fmt.Println("tamavisor: selftest: dereferencing a nil pointer")
		var p *int
		fmt.Println(*p)
	}
}
