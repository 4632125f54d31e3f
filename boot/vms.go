//go:build tamago

package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/ept"
	"tamavisor/guests"
	"tamavisor/guests/lifecycle"
	"tamavisor/guests/loader"
	"tamavisor/guests/machine"
	"tamavisor/guests/platform"
	"tamavisor/guests/sched"
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

	npt, err := ept.New(h.m, pages, h.engine.TableConfig())
	if err != nil {
		return nil, err
	}
	top := layout.RAM()[len(layout.RAM())-1].End
	g.release = append(g.release, func() { npt.Unmap(0, top) })
	offset := uint64(0)
	for _, r := range layout.RAM() {
		if err := npt.Map(r.Start, hpa+offset, r.End-r.Start, ept.RWX, ept.WB); err != nil {
			return nil, fmt.Errorf("nested page tables: %w", err)
		}
		offset += r.End - r.Start
	}

	g.mach, err = machine.New(machine.Config{Name: spec.name, RAM: ram, Layout: layout, Clock: hostClock{},
		Now: h.clock.Now, Cycles: pc.Cycles, TSCHz: pc.TSCFrequency(), HostCPUID: h.m,
		Console: cfg.console, Serial: cfg.serial})
	if err != nil {
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
		var bs *loader.BootState
		if i == 0 {
			bs = &res.State
		}
		v, err := g.mach.AddVCPU(vc, i, bs)
		if err != nil {
			return nil, err
		}
		v.ArmTimer = pc.ArmKick
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
	wg.Wait()
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
