//go:build tamago

package main

import (
	"embed"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/drivers/rtc"
	"tamavisor/ept"
	"tamavisor/guests"
	"tamavisor/guests/crashkernel"
	"tamavisor/guests/machine"
	"tamavisor/guests/vcpu"
	"tamavisor/runtime/pc"
	"tamavisor/runtime/physmem"
	"tamavisor/svm"
	"tamavisor/vmx"
)

//go:embed guestimages
var guestImages embed.FS

// guestSpec is one guest to start.
type guestSpec struct {
	name    string
	kernel  string // file in guestimages
	initrd  string
	cmdline string
	memory  uint64
	vcpus   int
}

var defaultGuests = map[string]guestSpec{
	"testkernel": {name: "testkernel", kernel: "testkernel.elf", memory: 64 << 20},
	"linux": {name: "debian", kernel: "vmlinuz", initrd: "initramfs.cpio", memory: 512 << 20,
		cmdline: "console=ttyS0 quiet panic=-1"},
}

// hostPages hands physically contiguous, zeroed pages to the engines and
// nested page tables, out of the RAM the hypervisor does not use itself.
type hostPages struct{ a *physmem.Allocator }

// Sizes and alignments below a page are rounded up to one: the allocator
// deals in pages (the IOMMU drivers ask for 8-byte status words).
func (p hostPages) Alloc(size, align uint64) (uint64, error) {
	size = (size + 4095) &^ 4095
	align = max(align, 4096)
	pa, err := p.a.Alloc(size, align)
	if err != nil {
		return 0, err
	}
	clear(unsafe.Slice((*byte)(unsafe.Pointer(uintptr(pa))), size))
	return pa, nil
}

func (p hostPages) AllocTable() (uint64, error) { return p.Alloc(4096, 4096) }
func (p hostPages) FreeTable(pa uint64)         { p.a.Free(pa, 4096) }
func (p hostPages) Free(pa, size uint64)        { p.a.Free(pa, size) }

// guestEngine is what runGuest needs of a vendor engine: the nested page
// tables' format, and vCPUs that translate through them.
type guestEngine interface {
	// Name is the technology, for the console ("AMD-V", "Intel VT-x").
	Name() string
	// TableConfig is the nested page tables' configuration.
	TableConfig() ept.Config
	// NewVCPU makes a vCPU whose guest-physical accesses go through
	// tables.
	NewVCPU(tables *ept.Tables) (engineVCPU, error)
}

// engineVCPU is a vendor vCPU: the guest core's contract, and Release.
type engineVCPU interface {
	vcpu.VCPU
	Release()
}

// svmEngine runs guests with AMD-V and nested page tables (NPT).
type svmEngine struct{ e *svm.Engine }

func (svmEngine) Name() string { return "AMD-V" }

func (svmEngine) TableConfig() ept.Config {
	return ept.Config{Format: ept.NPTFormat{}, InputAddrBits: 39, PageSizes: ept.Pages4K | ept.Pages2M}
}

func (s svmEngine) NewVCPU(tables *ept.Tables) (engineVCPU, error) {
	v, err := s.e.NewVCPU()
	if err != nil {
		return nil, err
	}
	v.SetNestedCR3(tables.Root())
	return v, nil
}

// vmxEngine runs guests with Intel VT-x and EPT.
type vmxEngine struct{ e *vmx.Engine }

func (vmxEngine) Name() string { return "Intel VT-x" }

func (x vmxEngine) TableConfig() ept.Config {
	caps := x.e.Caps.EPTVPID
	sizes := ept.Pages4K
	if caps.Has(vmx.EPT2MBPages) {
		sizes |= ept.Pages2M
	}
	return ept.Config{Format: ept.EPTFormat{ExecuteOnly: caps.Has(vmx.EPTExecuteOnly)}, InputAddrBits: 39, PageSizes: sizes}
}

func (x vmxEngine) NewVCPU(tables *ept.Tables) (engineVCPU, error) {
	v, err := x.e.NewVCPU()
	if err != nil {
		return nil, err
	}
	v.SetEPTP(tables.EPTP(false))
	return v, nil
}

// vmxControlOptions are the VT-x controls the guest CPUID policy makes
// necessary: instructions the guest is told about must not raise #UD.
func vmxControlOptions(host hw.CPUID) vmx.ControlOptions {
	policy := guests.NewCPUIDPolicy(host, 1)
	_, _, _, extEDX := policy.Leaf(0x80000001, 0, 0)
	_, leaf7EBX, _, _ := policy.Leaf(7, 0, 0)
	xsaveEAX, _, _, _ := policy.Leaf(0xd, 1, 0)
	return vmx.ControlOptions{
		RDTSCP:  extEDX&(1<<27) != 0,
		INVPCID: leaf7EBX&(1<<10) != 0,
		XSAVES:  xsaveEAX&(1<<3) != 0,
	}
}

type hostClock struct{}

func (hostClock) Now() int64 { return pc.Now() }

// wallClock is the guest RTC's time: the host RTC read once at boot, then
// advanced by the TSC clock.
type wallClock struct {
	atBoot time.Time
	boot   int64
}

func newWallClock(m *hw.Machine) wallClock {
	w := wallClock{boot: pc.Now(), atBoot: time.Unix(0, 0)}
	if r, err := rtc.New(m, 0); err == nil {
		if t, err := r.Time(); err == nil {
			w.atBoot = t
		}
	}
	return w
}

func (w wallClock) Now() time.Time { return w.atBoot.Add(time.Duration(pc.Now() - w.boot)) }

// startGuests runs the guests tamavisor.guest=NAME[,NAME...] names on
// the kernel command line, one after the other (testkernel, linux, none,
// or a crash kernel: triplefault, garbage, wildjump), for the emulator
// tests; a guest that fails stops alone and the next one starts on the
// same hypervisor. Without that option the VM definitions run
// (startVMs). It reports whether it took over.
func startGuests(h *vmHost, cmdline string) bool {
	var names []string
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "tamavisor.guest="); ok {
			names = strings.Split(v, ",")
		}
	}
	if names == nil {
		return false
	}
	go func() {
		for _, name := range names {
			if name == "none" {
				continue
			}
			if err := runGuest(h, name); err != nil {
				fmt.Printf("tamavisor: guest %s not started: %v\n", name, err)
			}
		}
	}()
	return true
}

// guestKernel returns the kernel and initrd of a named guest.
func guestKernel(name string) (spec guestSpec, kernel, initrd []byte, err error) {
	if image := crashkernel.Build(name); image != nil {
		return guestSpec{name: name, kernel: name, memory: 16 << 20}, image, nil, nil
	}
	spec, ok := defaultGuests[name]
	if !ok {
		return spec, nil, nil, fmt.Errorf("no guest named %q (known: testkernel, linux, none, %s)", name, strings.Join(crashkernel.Kinds, ", "))
	}
	if kernel, err = guestImages.ReadFile("guestimages/" + spec.kernel); err != nil {
		return spec, nil, nil, fmt.Errorf("kernel %s is not embedded in this image (build with `make testkernel guest image`)", spec.kernel)
	}
	if spec.initrd != "" {
		if initrd, err = guestImages.ReadFile("guestimages/" + spec.initrd); err != nil {
			return spec, nil, nil, fmt.Errorf("initrd %s is not embedded in this image", spec.initrd)
		}
	}
	return spec, kernel, initrd, nil
}

// runGuest builds one guest from the embedded images, runs it until it
// stops and gives its memory back (the tamavisor.guest= test path).
func runGuest(h *vmHost, name string) error {
	spec, kernel, initrd, err := guestKernel(name)
	if err != nil {
		return err
	}
	g, err := h.newGuest(guestConfig{spec: spec, kernel: kernel, initrd: initrd, console: os.Stdout})
	if err != nil {
		return err
	}
	go forwardConsoleInput(g.mach)
	g.Run()
	return nil
}

// forwardConsoleInput gives the host console's keystrokes to the guest
// while it runs (the tamavisor.guest= path, where no operator shell
// runs).
func forwardConsoleInput(mach *machine.Machine) {
	var buf [64]byte
	for mach.VM.State() != guests.Stopped {
		n := readConsole(buf[:])
		for sent := 0; sent < n; {
			sent += mach.Input(buf[sent:n])
			if sent < n {
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exitBreakdown(vm *guests.VM) string {
	var b strings.Builder
	for i := range vm.Stats.Exits {
		if n := vm.Stats.Exits[i].Load(); n > 0 {
			fmt.Fprintf(&b, " %s=%d", guests.ReasonName(i), n)
		}
	}
	return b.String()
}
