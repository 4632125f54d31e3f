//go:build tamago

// Command boot is the tamavisor image: the hypervisor's main package.
//
// It finds the machine (boot protocol hand-off, memory map, ACPI), replaces
// the boot-time page tables, calibrates the TSC, starts every processor the
// firmware lists, probes hardware virtualization and the IOMMUs, enumerates
// PCI, and prints the inventory on the serial console.
package main

import (
	"fmt"
	"strings"

	"tamavisor/boot/bootinfo"
	"tamavisor/boot/inventory"
	"tamavisor/boot/memmap"
	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/lapic"
	"tamavisor/drivers/pci"
	"tamavisor/runtime/pc"
	"tamavisor/runtime/physmem"
	"tamavisor/svm"
	"tamavisor/vmx"
	"tamavisor/vmx/cpuvendor"
)

// Physical memory the hypervisor itself occupies: the AP start-up area
// below 64 KiB and the Go runtime's RAM window (runtime/pc).
const (
	goRAMStart = 0x10000000
	goRAMEnd   = 0x30000000
)

func main() {
	fmt.Println("tamavisor: starting")
	m := pc.Machine()
	m.MappedLimit = 4 << 30 // the boot-time identity map covers 4 GiB
	r := &inventory.Report{Entropy: pc.EntropySource()}

	info, err := handoff(m)
	if err != nil {
		fatal("boot information: %v", err)
	}
	r.Protocol, r.Loader, r.Memory = strings.ToLower(info.Protocol.String()), info.Loader, info.Memory
	fmt.Printf("tamavisor: booted via %s\n", r.Protocol)
	if !r.Memory.Contains(memmap.Region{Start: goRAMStart, Size: goRAMEnd - goRAMStart, Kind: memmap.Usable}) {
		fatal("the hypervisor's RAM window %#x-%#x is not free RAM in the firmware's memory map:\n%s", goRAMStart, goRAMEnd, r.Memory)
	}

	r.ACPI, r.ACPIError = findACPI(m, info)

	stats, err := pc.InstallHostPageTables(hostRegions(r.Memory, r.ACPI), 4<<30)
	if err != nil {
		fatal("host page tables: %v", err)
	}
	r.PageTables = stats.String()

	if res, err := pc.CalibrateTSC(r.ACPI); err != nil {
		fmt.Printf("tamavisor: warning: %v\n", err)
	} else {
		r.TSCHz, r.TSCSource, r.TSCNotes = res.Hz, res.Source, res.Notes
	}

	r.CPU = cpuInfo(m)
	bsp, err := lapic.New(m, m, m)
	if err != nil {
		fatal("local APIC: %v", err)
	}
	r.CPU.Listed = listedCPUs(r.ACPI, bsp.ID())
	r.CPU.Online, err = pc.StartAPs(bsp, r.CPU.Listed)
	if err != nil {
		fmt.Printf("tamavisor: warning: %v\n", err)
	}

	switch cpuvendor.Detect(m) {
	case cpuvendor.Intel:
		r.VMX, r.VirtError = vmx.Probe(m, m)
	case cpuvendor.AMD, cpuvendor.Hygon:
		r.SVM, r.VirtError = svm.Probe(m, m)
	default:
		r.VirtError = fmt.Errorf("CPU vendor %q has neither Intel VT-x nor AMD-V", cpuvendor.Signature(m))
	}
	r.IOMMUs = inventory.IOMMUsFromACPI(r.ACPI)
	var configSpaces map[uint16]pci.ConfigSpace
	r.PCI, configSpaces, r.PCIError = enumeratePCI(m, r.ACPI)

	// Guest memory, nested page tables, VMCBs and IOMMU tables come from
	// the RAM the hypervisor does not occupy: not the first MiB (AP
	// start-up, firmware leftovers) nor the Go runtime's window.
	phys := physmem.New(r.Memory.Free(
		memmap.Region{Start: 0, Size: 1 << 20, Kind: memmap.Reserved},
		memmap.Region{Start: goRAMStart, Size: goRAMEnd - goRAMStart, Kind: memmap.Reserved}))
	dma := &dmaGuard{m: m, pages: hostPages{phys}}
	if iommuDisabled(info.CmdLine) {
		fmt.Println("tamavisor: warning: tamavisor.iommu=off: the IOMMUs stay off, any device can DMA anywhere")
	} else {
		dma = protectDMA(m, r.ACPI, hostPages{phys}, r.PCI, configSpaces)
	}

	for _, line := range r.Lines() {
		fmt.Println(line)
	}
	if r.VirtError != nil {
		fmt.Printf("tamavisor: hardware virtualization is unavailable: %v\n", r.VirtError)
		fmt.Println("tamavisor: no guests can run on this machine; the console stays up")
	}
	fmt.Println("tamavisor: ready")
	selftest(info.CmdLine)
	if wantsSelftest(info.CmdLine, "dma") {
		go dmaAttack(m, dma, r.PCI, configSpaces)
	}

	var engine guestEngine
	switch {
	case r.SVM != nil:
		engine = svmEngine{svm.NewEngine(r.SVM, m, hostPages{phys})}
	case r.VMX != nil:
		e, err := vmx.NewEngine(r.VMX, m, hostPages{phys}, vmxControlOptions(m))
		if err != nil {
			fmt.Printf("tamavisor: the Intel VT-x engine cannot run guests on this CPU: %v; no guest started\n", err)
			break
		}
		engine = vmxEngine{e}
	}
	if engine != nil {
		if err := pc.CalibrateKickTimer(bsp); err != nil {
			fmt.Printf("tamavisor: warning: %v; guests that spin without exiting can not be preempted\n", err)
		}
		h := &vmHost{m: m, engine: engine, phys: phys, clock: newWallClock(m)}
		if !startGuests(h, info.CmdLine) {
			startVMs(h, info)
		}
	}
	select {}
}

func handoff(m hw.PhysMem) (*bootinfo.Info, error) {
	h := pc.BootHandoff()
	if h.Magic == pc.MagicUEFI {
		if h.EFIGetMapStatus != 0 {
			return nil, fmt.Errorf("UEFI GetMemoryMap failed with status %#x", h.EFIGetMapStatus)
		}
		if h.EFIExitStatus != 0 {
			return nil, fmt.Errorf("UEFI ExitBootServices failed with status %#x", h.EFIExitStatus)
		}
		return bootinfo.ParseUEFI(m, h.Info, h.EFIMapSize, h.EFIDescSize, h.EFIDescVersion, h.EFISystemTable)
	}
	return bootinfo.FromRegisters(m, h.Magic, uint32(h.Info))
}

func findACPI(m hw.PhysMem, info *bootinfo.Info) (*acpi.Tables, error) {
	switch {
	case info.RSDP != 0:
		return acpi.Parse(m, info.RSDP)
	case len(info.RSDPCopy) > 0:
		r, err := acpi.DecodeRSDP(info.RSDPCopy)
		if err != nil {
			return nil, err
		}
		return acpi.ParseFrom(m, r)
	}
	rsdp, err := acpi.FindRSDP(m)
	if err != nil {
		return nil, err
	}
	return acpi.Parse(m, rsdp)
}
