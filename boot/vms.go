//go:build tamago

package main

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/drivers/iommu"
	"tamavisor/drivers/pci"
	"tamavisor/ept"
	"tamavisor/guests"
	"tamavisor/guests/config"
	"tamavisor/guests/devices/passthrough"
	"tamavisor/guests/lifecycle"
	"tamavisor/guests/loader"
	"tamavisor/guests/machine"
	"tamavisor/guests/platform"
	"tamavisor/guests/sched"
	"tamavisor/guests/vcpu"
	"tamavisor/runtime/pc"
	"tamavisor/runtime/physmem"
)

// vmHost is what building a guest needs of the hypervisor.
type vmHost struct {
	m      *hw.Machine
	engine guestEngine
	phys   *physmem.Allocator
	clock  wallClock
}

// guestConfig is one run of one guest.
type guestConfig struct {
	spec           guestSpec
	kernel, initrd []byte
	// console receives the hypervisor's messages about the guest, and
	// its serial output line by line unless serial is set (then the
	// output goes there raw: the operator shell's port).
	console io.Writer
	serial  machine.SerialPort
	// group is the VM's scheduling group (nil: no scheduler, the vCPU
	// goroutines enter whenever the Go scheduler runs them).
	group *sched.Group
	// passthrough are the host PCI functions given to the guest, in the
	// order the VM definition lists them.
	passthrough []config.PCIAddress
}

// guestRun is one assembled guest, ready to run once. It implements
// lifecycle.Instance.
type guestRun struct {
	h        *vmHost
	cfg      guestConfig
	mach     *machine.Machine
	vcpus    []*guests.VCPU
	release  []func()
	forced   bool
	forcedMu sync.Mutex
}

// newGuest allocates a guest's RAM and nested page tables, assembles its
// machine and vCPUs and loads its kernel. On error everything taken is
// given back.
func (h *vmHost) newGuest(cfg guestConfig) (g *guestRun, err error) {
	spec := cfg.spec
	vcpus := max(spec.vcpus, 1)
	g = &guestRun{h: h, cfg: cfg}
	defer func() {
		if err != nil {
			g.free()
		}
	}()
	layout, err := platform.NewLayout(spec.memory, vcpus)
	if err != nil {
		return nil, err
	}
	pages := hostPages{h.phys}
	hpa, err := pages.Alloc(spec.memory, 2<<20)
	if err != nil {
		return nil, fmt.Errorf("%d MiB of guest RAM: %w", spec.memory>>20, err)
	}
	g.release = append(g.release, func() { h.phys.Free(hpa, spec.memory) })
	registerGuestRAM(spec.name, hpa, spec.memory)
	g.release = append(g.release, func() { unregisterGuestRAM(spec.name) })
	ram := guests.NewRAM(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(hpa))), spec.memory), hpa)

	tcfg := h.engine.TableConfig()
	nested := &nestedTables{g: g}
	if len(cfg.passthrough) > 0 {
		// A BAR the guest moves changes the tables while its vCPUs run.
		tcfg.OnInvalidate = func(gpa, size uint64) { nested.invalidated() }
	}
	npt, err := ept.New(h.m, pages, tcfg)
	if err != nil {
		return nil, err
	}
	nested.t = npt
	top := layout.RAM()[len(layout.RAM())-1].End
	g.release = append(g.release, func() { npt.Unmap(0, top) })
	offset := uint64(0)
	var ramRanges []dmaRange
	for _, r := range layout.RAM() {
		if err := npt.Map(r.Start, hpa+offset, r.End-r.Start, ept.RWX, ept.WB); err != nil {
			return nil, fmt.Errorf("nested page tables: %w", err)
		}
		ramRanges = append(ramRanges, dmaRange{iova: r.Start, hpa: hpa + offset, size: r.End - r.Start})
		offset += r.End - r.Start
	}

	g.mach, err = machine.New(machine.Config{Name: spec.name, RAM: ram, Layout: layout, Clock: hostClock{},
		Now: h.clock.Now, Cycles: pc.Cycles, TSCHz: pc.TSCFrequency(), HostCPUID: h.m,
		Console: cfg.console, Serial: cfg.serial})
	if err != nil {
		return nil, err
	}
	if err := h.addPassthrough(g, layout, nested, ramRanges); err != nil {
		return nil, err
	}
	res, err := g.mach.Load(cfg.kernel, loader.Options{KernelName: spec.kernel, Cmdline: spec.cmdline, Initrd: cfg.initrd, InitrdName: spec.initrd})
	if err != nil {
		return nil, err
	}
	for i := 0; i < vcpus; i++ {
		vc, err := h.engine.NewVCPU(npt)
		if err != nil {
			return nil, err
		}
		g.release = append(g.release, vc.Release)
		if len(cfg.passthrough) > 0 {
			if vc, err = nested.flushing(vc); err != nil {
				return nil, err
			}
		}
		var bs *loader.BootState
		if i == 0 {
			bs = &res.State
		}
		v, err := g.mach.AddVCPU(vc, i, bs)
		if err != nil {
			return nil, err
		}
		dc := &dbgVCPU{engineVCPU: vc, m: h.m}
		v.CPU = dc
		dbgVCPUs = append(dbgVCPUs, dc)
		v.ArmTimer = func(d int64) { dc.armed.Store(h.m.Read32(0xfee00020)>>24 + 1); pc.ArmKick(d) }
		v.AfterExit = pc.TakePendingInterrupts
		if cfg.group != nil {
			e, err := cfg.group.NewEntity(fmt.Sprintf("%s/%d", spec.name, i))
			if err != nil {
				return nil, err
			}
			g.release = append(g.release, e.Close)
			v.Scheduler = &slot{e: e, vm: g.mach.VM}
		}
		g.vcpus = append(g.vcpus, v)
	}
	fmt.Fprintf(cfg.console, "tamavisor: vm %s: starting %s (%s, %d MiB, %d vCPU, %s)\n", spec.name, spec.kernel, res.Format, spec.memory>>20, vcpus, h.engine.Name())
	return g, nil
}

// free gives back what newGuest took, last first.
func (g *guestRun) free() {
	for i := len(g.release) - 1; i >= 0; i-- {
		g.release[i]()
	}
	g.release = nil
}

// Run runs every vCPU in its own goroutine until the VM stops, prints
// the run's statistics, and frees the guest.
func (g *guestRun) Run() lifecycle.Outcome {
	defer g.free()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start, startCycles := pc.Now(), pc.Cycles()
	errs := make([]error, len(g.vcpus))
	var wg sync.WaitGroup
	for i, v := range g.vcpus {
		wg.Add(1)
		// Not locked to a thread: on TamaGo there is one thread per CPU
		// and no spare, so a locked goroutine that sleeps (a halted
		// guest) would leave the scheduler asking for a thread that can
		// not exist. The engine instead notices when the goroutine
		// resumes on another CPU between two entries and prepares that
		// CPU (svm.VCPU.Run, vmx.VCPU.Run); a world switch itself is
		// never interrupted.
		go func() {
			defer wg.Done()
			errs[i] = v.Run()
		}()
	}
	dbgStop := make(chan struct{})
	go g.debugDump(dbgStop)
	wg.Wait()
	close(dbgStop)
	wallCycles := pc.Cycles() - startCycles
	runtime.ReadMemStats(&after)
	pc.ArmKick(0)
	g.mach.Console.Flush()
	if g.cfg.serial != nil {
		g.cfg.serial.Flush()
	}
	vm := g.mach.VM
	reason, code, hasCode := vm.StopReason()
	var failed error
	for _, err := range errs {
		if err != nil && failed == nil {
			failed = err
			reason = err.Error()
		}
	}
	out := g.cfg.console
	fmt.Fprintf(out, "tamavisor: vm %s stopped after %.3f s: %s\n", vm.Name, float64(pc.Now()-start)/1e9, reason)
	if hasCode {
		fmt.Fprintf(out, "tamavisor: vm %s exit code %d\n", vm.Name, code)
	}
	exits := vm.Stats.TotalExits()
	fmt.Fprintf(out, "tamavisor: vm %s exits %d:%s\n", vm.Name, exits, exitBreakdown(vm))
	// Heap allocations are the whole hypervisor's over the guest's run
	// (other guests and the console included), so the per-exit figure is
	// an upper bound for the exit path's own.
	allocs := after.Mallocs - before.Mallocs
	perExit, share := 0.0, 0.0
	if exits > 0 {
		perExit = float64(allocs) / float64(exits)
	}
	if wallCycles > 0 {
		share = 100 * float64(vm.Stats.HandlerCycles.Load()) / float64(wallCycles) / float64(len(g.vcpus))
	}
	fmt.Fprintf(out, "tamavisor: vm %s stats: exits=%d heap-allocs=%d heap-allocs-per-exit=%.4f handler-share-pct=%.2f wall-s=%.3f\n",
		vm.Name, exits, allocs, perExit, share, float64(pc.Now()-start)/1e9)
	fmt.Fprintln(out, "tamavisor: the hypervisor keeps running")

	g.forcedMu.Lock()
	forced := g.forced
	g.forcedMu.Unlock()
	switch {
	case failed != nil:
		return lifecycle.Outcome{End: lifecycle.EndFailed, Reason: reason}
	case forced:
		return lifecycle.Outcome{End: lifecycle.EndKilled, Reason: reason}
	case g.mach.PoweredOff || hasCode:
		return lifecycle.Outcome{End: lifecycle.EndPowerOff, Reason: reason}
	case g.mach.ResetRequested.Load() || strings.HasPrefix(reason, "reset requested"):
		return lifecycle.Outcome{End: lifecycle.EndReboot, Reason: reason}
	}
	return lifecycle.Outcome{End: lifecycle.EndCrash, Reason: reason}
}

// PowerButton presses the guest's ACPI power button.
func (g *guestRun) PowerButton() { g.mach.PowerButton() }

// ForceStop ends the VM at its vCPUs' next exits.
func (g *guestRun) ForceStop(reason string) {
	g.forcedMu.Lock()
	g.forced = true
	g.forcedMu.Unlock()
	g.mach.VM.Stop(reason)
}

// Input gives operator keystrokes to the guest's serial port.
func (g *guestRun) Input(p []byte) int { return g.mach.Input(p) }

// slot connects a vCPU's run loop to its scheduling entity: a vCPU enters
// the guest only while it holds one of the physical CPUs' slots, and
// gives its slot up when it halts.
type slot struct {
	e        *sched.Entity
	vm       *guests.VM
	sliceEnd int64
}

func (s *slot) BeforeEntry() int64 {
	end, err := s.e.Acquire()
	if err != nil {
		s.vm.Stop("the scheduler removed the vCPU")
		return 0
	}
	if end != s.sliceEnd {
		// A new slice: let the hypervisor's own goroutines (console,
		// shell, fault reporter) run on this CPU first.
		s.sliceEnd = end
		runtime.Gosched()
	}
	return end
}

func (s *slot) AfterExit(ran int64, idle bool) {
	if idle {
		s.e.Release()
	}
}

var _ lifecycle.Instance = (*guestRun)(nil)

// DEBUG (temporary)
func (g *guestRun) debugDump(stop chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(5 * time.Second):
		}
		m := g.mach
		if n == 3 || n == 8 {
			g.debugLog()
		}
		us := m.UART.State()
		fmt.Fprintf(g.cfg.console, "DBG %d exits:%s\n", n, exitBreakdown(m.VM))
		for i, d := range dbgVCPUs {
			fmt.Fprintf(g.cfg.console, "DBG vcpu%d runs=%d mismatches=%d last=%#x\n", i, d.runs.Load(), d.mism.Load(), d.lastMism.Load())
		}
		fmt.Fprintf(g.cfg.console, "DBG uart ier=%#x mcr=%#x thr=%v irq=%v lcr=%#x; ioapic pin4=%#x pin2=%#x\n", us.IER, us.MCR, us.THRPending, us.IRQLevel, us.LCR, m.IOAPIC.Redirection(4), m.IOAPIC.Redirection(2))
		for i, a := range m.APICs.APICs {
			b := a.Base()
			rd := func(off uint64) uint64 { return a.ReadMMIO(b+off, 4) }
			var irr, isr [8]uint32
			for k := uint64(0); k < 8; k++ {
				irr[k] = uint32(rd(0x200 + 0x10*k))
				isr[k] = uint32(rd(0x100 + 0x10*k))
			}
			c := m.VCPUs()[i].CPU
			fmt.Fprintf(g.cfg.console, "DBG cpu%d mode=%v rip=%#x rfl=%#x tpr=%#x ppr=%#x ldr=%#x dfr=%#x svr=%#x lint0=%#x tmr=%#x irr=%x isr=%x\n", i, a.Mode(), c.RIP(), c.RFLAGS(), rd(0x80), rd(0xa0), rd(0xd0), rd(0xe0), rd(0xf0), rd(0x350), rd(0x320), irr, isr)
		}
	}
}

// PCI passthrough: a host PCI function given to a guest (package
// guests/devices/passthrough), its DMA confined to the guest's RAM by an
// IOMMU domain, its BARs mapped into the guest's PCI window, its MSI and
// MSI-X messages taken on host vectors and delivered to the guest's
// local APICs.

// firstPassthroughSlot is the guest device number of the first
// passed-through function: the VM definition's functions sit at
// 00:01.0, 00:02.0, ... on the guest's root bus, in the order listed
// (00:00.0 is the host bridge).
const firstPassthroughSlot = 1

// pciClassBridge is the base class of host, ISA and PCI-to-PCI bridges
// (PCI Code and ID Assignment Specification 1.11, 1.7): chipset
// functions, never a guest's device.
const pciClassBridge = 0x06

// addPassthrough takes over the host functions the VM definition lists
// (cfg.passthrough) for guest g: each must exist in the host's PCI
// enumeration, be covered by an IOMMU and not be another running guest's.
// It attaches each to a DMA domain that maps ram (the guest's RAM, as its
// nested page tables do), builds the passthrough.Function on the guest's
// PCI window, and puts it on the guest's root bus. Everything is undone
// by g.free: the function quiesced, the device back to the blocking
// state, the domain freed, the claim ended.
func (h *vmHost) addPassthrough(g *guestRun, layout *platform.Layout, nested *nestedTables, ram []dmaRange) error {
	list := g.cfg.passthrough
	if len(list) == 0 {
		return nil
	}
	name := g.cfg.spec.name
	if _, ok := h.engine.(svmEngine); !ok {
		return fmt.Errorf("passthrough of %s: the %s engine does not yet invalidate the EPT translations of a BAR the guest moves; passthrough runs on AMD-V only", list[0], h.engine.Name())
	}
	dma := platformDMA
	if dma == nil {
		return fmt.Errorf("passthrough of %s: the IOMMUs are off (tamavisor.iommu=off), so the device's DMA could reach any memory", list[0])
	}
	if max := pci.MaxDevice + 1 - firstPassthroughSlot; len(list) > max {
		return fmt.Errorf("passthrough: %d functions listed, the guest's root bus has room for %d", len(list), max)
	}
	win, err := passthrough.NewWindow(layout.PCIMMIO.Start, layout.PCIMMIO.Size())
	if err != nil {
		return err
	}
	if err := g.mach.RegisterPCIWindow(win); err != nil {
		return err
	}
	for i, a := range list {
		src := iommu.Source{Segment: a.Segment, Bus: a.Bus, Device: a.Device, Function: a.Function}
		host, ok := dma.hostFunction(src)
		switch {
		case !ok:
			return fmt.Errorf("passthrough of %s: the host has no such PCI function (the console's pci: lines list them)", src)
		case host.Class == pciClassBridge:
			return fmt.Errorf("passthrough of %s: it is a bridge (%s), part of the host's chipset", src, host.ClassName())
		case dma.spaces[src.Segment] == nil:
			return fmt.Errorf("passthrough of %s: no configuration access to PCI segment %d", src, src.Segment)
		}
		if err := dma.claim(src, name); err != nil {
			return fmt.Errorf("passthrough: %w", err)
		}
		dev := &guestDevice{src: src, vm: name, guard: dma}
		g.release = append(g.release, dev.release)
		if dev.dma, err = dma.attachGuest(src, ram); err != nil {
			return fmt.Errorf("passthrough of %s: %w", src, err)
		}
		dev.fn, err = win.New(passthrough.Config{
			Host: dma.spaces[src.Segment], Segment: src.Segment, Bus: src.Bus, Dev: src.Device, Fn: src.Function,
			HostMMIO: h.m, Mapper: nested, Vectors: hostVectors{}, MSI: &g.mach.APICs, Sleep: time.Sleep,
		})
		if err != nil {
			return fmt.Errorf("passthrough of %s: %w", src, err)
		}
		slot := uint8(firstPassthroughSlot + i)
		if err := g.mach.AddPCIFunction(slot, 0, dev.fn); err != nil {
			return fmt.Errorf("passthrough of %s: %w", src, err)
		}
		fmt.Fprintf(g.cfg.console, "tamavisor: vm %s: PCI %s %04x:%04x (%s) passed through at 00:%02x.0, DMA domain %d on %s\n",
			name, src, host.VendorID, host.DeviceID, host.ClassName(), slot, dev.dma.domain.ID, dev.dma.unit)
	}
	return nil
}

// guestDevice is one passed-through function of a running guest.
type guestDevice struct {
	src   iommu.Source
	vm    string
	guard *dmaGuard
	dma   *guestDMA
	fn    *passthrough.Function
}

// release stops the device when its guest stops, in the order that keeps
// its DMA off freed memory: quiesce (bus master off, BARs unmapped, reset,
// vectors freed), back to the IOMMU's blocking state, the domain freed,
// the function free for another guest. A device the IOMMU could not
// block again stays claimed.
func (d *guestDevice) release() {
	if d.fn != nil {
		if err := d.fn.Quiesce(); err != nil {
			fmt.Printf("tamavisor: vm %s: passthrough %s: %v\n", d.vm, d.src, err)
		}
		if c := d.fn.Counters(); c.Delivered+c.Pending+c.Dropped+c.Refused > 0 {
			fmt.Printf("tamavisor: vm %s: passthrough %s: interrupts delivered=%d held=%d dropped=%d refused=%d\n",
				d.vm, d.src, c.Delivered, c.Pending, c.Dropped, c.Refused)
		}
	}
	if d.dma != nil {
		if err := d.dma.close(); err != nil {
			fmt.Printf("tamavisor: vm %s: passthrough %s: %v; it stays claimed\n", d.vm, d.src, err)
			return
		}
	}
	d.guard.unclaim(d.src, d.vm)
}

// hostVectors hands passed-through functions host interrupt vectors on
// the boot CPU (runtime/pc's dispatcher).
type hostVectors struct{}

func (hostVectors) Allocate(handler func()) (passthrough.HostVector, error) {
	v, apicID, err := pc.AllocateVector(handler)
	return passthrough.HostVector{Vector: v, APICID: apicID}, err
}

func (hostVectors) Free(v passthrough.HostVector) { pc.FreeVector(v.Vector) }

// nestedTables is a guest's nested page tables as the passthrough
// functions change them while its vCPUs run: BARs mapped and unmapped
// as the guest programs them. ept.Tables is not safe for concurrent use,
// so changes are serialized; and a change that removed or altered a
// translation (ept's OnInvalidate) bumps gen, which makes every vCPU
// flush its cached translations before its next entry (flushingVCPU),
// and wakes the vCPUs so that one in the guest exits (Wake kicks it).
type nestedTables struct {
	mu  sync.Mutex
	t   *ept.Tables
	g   *guestRun
	gen atomic.Uint64
}

// RemapBAR implements passthrough.Mapper: the BAR's pages at newGPA map
// the device's registers, uncached (MMIO), read-write, never executable.
// On failure neither range is left mapped, and the VM stops: a guest
// whose device registers cannot be mapped would only fail later.
func (n *nestedTables) RemapBAR(index int, oldGPA, newGPA, size, hostPA uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if oldGPA != passthrough.NoMapping {
		if err = n.t.Unmap(oldGPA, size); err != nil {
			err = fmt.Errorf("unmapping BAR%d at %#x: %w", index, oldGPA, err)
		}
	}
	if err == nil && newGPA != passthrough.NoMapping {
		if err = n.t.Map(newGPA, hostPA, size, ept.Read|ept.Write, ept.UC); err != nil {
			n.t.Unmap(newGPA, size)
			err = fmt.Errorf("mapping BAR%d (%#x bytes at host %#x) at %#x: %w", index, size, hostPA, newGPA, err)
		}
	}
	if err != nil {
		n.g.mach.VM.Stop("passthrough: " + err.Error())
	}
	return err
}

// invalidated runs after the tables lost or changed a translation.
func (n *nestedTables) invalidated() {
	n.gen.Add(1)
	for _, v := range n.g.vcpus {
		v.Wake()
	}
}

// flushing wraps an AMD-V vCPU of a guest with passed-through devices so
// that it flushes its TLB entries before the first entry after the nested
// tables changed (TLB_CONTROL through SetNestedCR3, AMD APM Vol. 2,
// 15.16.1: the tables' root is unchanged, only the flush matters).
func (n *nestedTables) flushing(vc engineVCPU) (engineVCPU, error) {
	s, ok := vc.(interface{ SetNestedCR3(root uint64) })
	if !ok {
		return nil, fmt.Errorf("passthrough: the %T vCPU cannot flush its nested translations", vc)
	}
	return &flushingVCPU{engineVCPU: vc, n: n, flush: func() { s.SetNestedCR3(n.t.Root()) }}, nil
}

// flushingVCPU is an engine vCPU that flushes its cached nested
// translations when its guest's nested tables changed since its last
// entry. The check is the last thing before the entry, after the run loop
// marked the vCPU as in the guest: a change made after it is followed by
// a Wake that kicks the vCPU out, so a stale translation lives at most
// until that exit.
type flushingVCPU struct {
	engineVCPU
	n     *nestedTables
	seen  uint64
	flush func()
}

func (v *flushingVCPU) Run(e *vcpu.Exit) error {
	if g := v.n.gen.Load(); g != v.seen {
		v.seen = g
		v.flush()
	}
	return v.engineVCPU.Run(e)
}

// ResetForINIT passes the run loop's INIT reset on to the engine's vCPU.
func (v *flushingVCPU) ResetForINIT() {
	if r, ok := v.engineVCPU.(guests.INITResetter); ok {
		r.ResetForINIT()
	}
}

func (g *guestRun) debugLog() {
	buf := g.mach.VM.Memory.(*guests.RAM).Bytes()
	i := bytes.Index(buf, []byte("Command line: console="))
	if i < 0 {
		fmt.Fprintf(g.cfg.console, "DBG no log\n")
		return
	}
	z := make([]byte, 64)
	e := bytes.Index(buf[i:], z)
	if e < 0 {
		return
	}
	e += i
	st := max(e-5000, i)
	fmt.Fprintf(g.cfg.console, "DBG log at %#x..%#x\n", i, e)
	run := []byte{}
	for _, c := range buf[st:e] {
		if c >= 0x20 && c < 0x7f {
			run = append(run, c)
			continue
		}
		if len(run) >= 4 {
			fmt.Fprintf(g.cfg.console, "DBGLOG %s\n", run)
		}
		run = run[:0]
	}
	if len(run) >= 4 {
		fmt.Fprintf(g.cfg.console, "DBGLOG %s\n", run)
	}
}

var dbgVCPUs []*dbgVCPU

type dbgVCPU struct {
	engineVCPU
	m     *hw.Machine
	armed atomic.Uint32
	runs, mism atomic.Uint64
	lastMism atomic.Uint64
}

func (v *dbgVCPU) Run(e *vcpu.Exit) error {
	id := v.m.Read32(0xfee00020)>>24 + 1
	v.runs.Add(1)
	if a := v.armed.Load(); a != id {
		v.mism.Add(1)
		v.lastMism.Store(uint64(a)<<8 | uint64(id))
	}
	return v.engineVCPU.Run(e)
}

func (v *dbgVCPU) ResetForINIT() {
	if r, ok := v.engineVCPU.(guests.INITResetter); ok {
		r.ResetForINIT()
	}
}
