//go:build tamago

package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"tamavisor/boot/bootinfo"
	"tamavisor/drivers/iommu"
	"tamavisor/guests/config"
	"tamavisor/guests/crashkernel"
	"tamavisor/guests/lifecycle"
	"tamavisor/guests/machine"
	"tamavisor/guests/sched"
	"tamavisor/guests/shell"
	"tamavisor/runtime/pc"
)

// guestOverhead is the host memory kept back from the guests' total for
// what each guest costs besides its RAM: nested page tables, VMCBs or
// VMCSs, and the hypervisor's own bookkeeping.
const guestOverhead = 64 << 20

// guestFiles are the files VM definitions can name: the images embedded
// at build time (boot/guestimages), the boot modules (named by the first
// word of their command line), and the crash kernels the hypervisor
// generates (triplefault, garbage, ...), for isolation tests.
type guestFiles struct{ modules map[string][]byte }

func newGuestFiles(info *bootinfo.Info) guestFiles {
	f := guestFiles{modules: map[string][]byte{}}
	for _, m := range info.Modules {
		if name, _, _ := strings.Cut(strings.TrimSpace(m.CmdLine), " "); name != "" {
			f.modules[name] = unsafe.Slice((*byte)(unsafe.Pointer(uintptr(m.Start))), m.Size)
		}
	}
	return f
}

func (f guestFiles) read(name string) ([]byte, error) {
	if b, ok := f.modules[name]; ok {
		return b, nil
	}
	if slices.Contains(crashkernel.Kinds, name) {
		return crashkernel.Build(name), nil
	}
	if strings.ContainsAny(name, "/\\") {
		return nil, fmt.Errorf("%s: not a file name", name)
	}
	return guestImages.ReadFile("guestimages/" + name)
}

func (f guestFiles) has(name string) bool {
	if _, ok := f.modules[name]; ok || slices.Contains(crashkernel.Kinds, name) {
		return true
	}
	if strings.ContainsAny(name, "/\\") {
		return false
	}
	_, err := fs.Stat(guestImages, "guestimages/"+name)
	return err == nil
}

// vmDefinitions finds the host's VM definitions: a boot module named
// vms.toml (or, from QEMU's -initrd, which names no module, the first
// module when the command line says tamavisor.vms=module), else the file
// built into the image (make image VMS=file), else the default.
func vmDefinitions(files guestFiles, info *bootinfo.Info) (name string, data []byte) {
	if b, ok := files.modules[config.FileName]; ok {
		return config.FileName + " (boot module)", b
	}
	if strings.Contains(" "+info.CmdLine+" ", " tamavisor.vms=module ") && len(info.Modules) > 0 {
		m := info.Modules[0]
		return config.FileName + " (boot module)", unsafe.Slice((*byte)(unsafe.Pointer(uintptr(m.Start))), m.Size)
	}
	if b, err := guestImages.ReadFile("guestimages/" + config.FileName); err == nil {
		return config.FileName, b
	}
	return config.DefaultFileName, config.DefaultTOML
}

// startVMs runs the host's VM definitions: each valid VM under the
// lifecycle manager (autostart, restart on crash, graceful stop), its
// vCPUs shared out by the scheduler, and the operator shell on the
// console. A malformed definition is reported and skipped; the valid
// ones start.
func startVMs(h *vmHost, info *bootinfo.Info) {
	files := newGuestFiles(info)
	file, data := vmDefinitions(files, info)
	free := h.phys.Available()
	env := config.Env{Files: files.has, HostMemory: free - min(free, guestOverhead), PCIFunction: hostHasPCIFunction}
	cfg, errs := config.Parse(file, data, env)
	for _, err := range errs {
		fmt.Printf("tamavisor: vm definitions: %v\n", err)
	}
	fmt.Printf("tamavisor: vm definitions: %s: %d VMs\n", file, len(cfg.VMs))

	s, err := sched.New(sched.Config{CPUs: runtime.GOMAXPROCS(0), Clock: pc.Now})
	if err != nil {
		fmt.Printf("tamavisor: scheduler: %v; no VM started\n", err)
		return
	}
	var sh atomic.Pointer[shell.Shell]
	mgr := lifecycle.New(lifecycle.Config{Scheduler: s, OnChange: func(c lifecycle.Change) {
		if p := sh.Load(); p != nil {
			p.Notify(c)
		}
	}})
	op, err := shell.New(shell.Config{Out: os.Stdout, VMs: mgr})
	if err != nil {
		fmt.Printf("tamavisor: operator shell: %v\n", err)
		return
	}
	sh.Store(op)
	for _, vm := range cfg.VMs {
		if err := mgr.Add(lifecycleSpec(h, files, op, vm)); err != nil {
			fmt.Fprintf(op.Log(), "tamavisor: vm %s: %v\n", vm.Name, err)
		}
	}
	op.Start()
	var autostart []string
	for _, vm := range cfg.VMs {
		if vm.Autostart {
			if err := mgr.Start(vm.Name); err != nil {
				fmt.Fprintf(op.Log(), "tamavisor: vm %s: %v\n", vm.Name, err)
				continue
			}
			autostart = append(autostart, vm.Name)
		}
	}
	// One guest with its console on the serial line: the operator most
	// likely wants to talk to it, as with a machine of its own.
	if len(autostart) == 1 && cfg.VMs[0].Console == config.ConsoleSerial {
		op.Input([]byte("attach " + autostart[0] + "\r"))
	}
	go consoleToShell(op)
}

// lifecycleSpec turns a VM definition into what the lifecycle manager
// runs.
func lifecycleSpec(h *vmHost, files guestFiles, op *shell.Shell, vm config.VM) lifecycle.Spec {
	onCrash := lifecycle.StopOnCrash
	if vm.OnCrash == config.ActionRestart {
		onCrash = lifecycle.RestartOnCrash
	}
	var console io.Writer = op.Log()
	var serial machine.SerialPort
	switch vm.Console {
	case config.ConsoleSerial:
		serial = op.Port(vm.Name)
	case config.ConsoleNone:
		serial = discardPort{}
	}
	spec := guestSpec{name: vm.Name, kernel: vm.Kernel, initrd: vm.Initrd, cmdline: vm.Cmdline, memory: vm.Memory, vcpus: vm.VCPUs}
	return lifecycle.Spec{Name: vm.Name, VCPUs: vm.VCPUs, Memory: vm.Memory, Weight: vm.Weight,
		OnCrash: onCrash, MaxRestarts: vm.MaxRestarts,
		Build: func(group *sched.Group) (lifecycle.Instance, error) {
			kernel, err := files.read(vm.Kernel)
			if err != nil {
				return nil, fmt.Errorf("kernel: %w", err)
			}
			var initrd []byte
			if vm.Initrd != "" {
				if initrd, err = files.read(vm.Initrd); err != nil {
					return nil, fmt.Errorf("initrd: %w", err)
				}
			}
			return h.newGuest(guestConfig{spec: spec, kernel: kernel, initrd: initrd, console: console, serial: serial, group: group,
				passthrough: vm.Passthrough})
		}}
}

// hostHasPCIFunction tells the VM definitions' checker whether the host
// enumerated a PCI function (passthrough = [...]). Without the boot-time
// DMA guard (tamavisor.iommu=off) every function is accepted here and the
// VM fails when it starts, with the reason.
func hostHasPCIFunction(a config.PCIAddress) bool {
	if platformDMA == nil {
		return true
	}
	_, ok := platformDMA.hostFunction(iommu.Source{Segment: a.Segment, Bus: a.Bus, Device: a.Device, Function: a.Function})
	return ok
}

// discardPort is the serial line of a VM whose console is "none".
type discardPort struct{}

func (discardPort) Write(b []byte) (int, error) { return len(b), nil }
func (discardPort) Flush()                      {}

// consoleToShell feeds the host console's keystrokes to the operator
// shell.
func consoleToShell(op *shell.Shell) {
	var buf [64]byte
	for {
		if n := readConsole(buf[:]); n > 0 {
			op.Input(buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readConsole takes what the host console has received, up to len(buf)
// bytes, without waiting.
func readConsole(buf []byte) int {
	n := 0
	for pc.Console != nil && n < len(buf) {
		b, ok := pc.Console.Rx()
		if !ok {
			break
		}
		buf[n] = b
		n++
	}
	return n
}
