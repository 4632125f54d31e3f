// Package machine assembles a guest PC: memory layout and ACPI tables
// (package platform), the device models on their standard ports and
// addresses, the interrupt routing between them, the kernel loaded by its
// boot protocol (package loader), and each vCPU's run-loop wiring. It is
// engine-neutral: the caller brings the vCPUs (package svm or vmx) and the
// nested page tables mapping the layout's RAM.
//
// # Several vCPUs
//
// A machine has Layout.VCPUs vCPUs, added in order with AddVCPU before any
// of them runs: vCPU 0 is the bootstrap processor and starts from the
// loader's boot state, the others are application processors that wait
// for INIT and a start-up IPI from the guest (the MADT lists them all,
// APIC IDs 0 to VCPUs-1). The caller then runs each vCPU's loop
// (guests.VCPU.Run) in a goroutine of its own; they share the devices,
// which lock their own state. An interrupt, IPI, INIT or SIPI for a vCPU
// wakes that vCPU (guests.VCPU.Wake), which calls its Kick hook when the
// vCPU is in the guest.
package machine

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"tamavisor/drivers/hw"
	"tamavisor/guests"
	"tamavisor/guests/bus"
	"tamavisor/guests/devices/debugexit"
	"tamavisor/guests/devices/i8042"
	"tamavisor/guests/devices/ioapic"
	"tamavisor/guests/devices/lapic"
	"tamavisor/guests/devices/pcihost"
	"tamavisor/guests/devices/pic"
	"tamavisor/guests/devices/pit"
	"tamavisor/guests/devices/pmtimer"
	"tamavisor/guests/devices/rtc"
	"tamavisor/guests/devices/uart"
	"tamavisor/guests/irq"
	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
	"tamavisor/guests/x86emu"
)

// ISA interrupt lines of the legacy devices (as on every PC).
const (
	irqPIT  = 0
	irqKbd  = 1
	irqCOM1 = 4
	irqRTC  = 8
	irqAux  = 12
)

// Config is what the host provides for a guest machine.
type Config struct {
	Name   string
	RAM    *guests.RAM
	Layout *platform.Layout
	// Clock is the host's monotonic clock (ns), Now its wall clock (for
	// the guest's RTC), Cycles its TSC, TSCHz the TSC frequency.
	Clock  bus.Clock
	Now    func() time.Time
	Cycles func() uint64
	TSCHz  uint64
	// HostCPUID is the processor the CPUID policy starts from.
	HostCPUID hw.CPUID
	// Console is where the hypervisor prints: the guest's serial output
	// goes there line by line, prefixed with its name, unless Serial is
	// set.
	Console io.Writer
	// Serial, when set, receives the guest's serial output byte for byte
	// (the operator shell's port for this VM, which an operator can
	// attach to); Flush runs when the guest idles, so a prompt without a
	// newline shows.
	Serial SerialPort
}

// SerialPort is a raw byte sink for the guest's COM1.
type SerialPort interface {
	io.Writer
	Flush()
}

// Machine is an assembled guest PC.
type Machine struct {
	VM      *guests.VM
	Layout  *platform.Layout
	Console *guests.Console
	UART    *uart.UART
	PIC     *pic.PIC
	IOAPIC  *ioapic.IOAPIC
	PIT     *pit.PIT
	Router  *irq.Router
	APICs   lapic.Group
	// PM is the ACPI power-management block (the power button).
	PM *pmtimer.PM
	// PCI is the host bridge and configuration space of the guest's
	// PCI root bus (00:00.0 and the functions AddPCIFunction adds).
	PCI *pcihost.Host
	// PoweredOff is set when the guest powered off through ACPI, before
	// the VM stops: read it once VM.State() is Stopped.
	PoweredOff bool
	// ResetRequested is set when the guest asked for a reset (i8042,
	// port CF9, INIT to the boot vCPU), before the VM stops.
	ResetRequested atomic.Bool

	cfg   Config
	vcpus []*guests.VCPU // by index = APIC ID = position in APICs.APICs
}

// consoleSink adapts the UART's byte output to the guest console.
type consoleSink struct{ c io.Writer }

func (s consoleSink) WriteByte(b byte) error {
	var one [1]byte
	one[0] = b
	s.c.Write(one[:])
	return nil
}

// PowerButton presses the guest's ACPI power button: a guest with ACPI
// shuts down cleanly and powers off.
func (m *Machine) PowerButton() {
	m.PM.PowerButton()
	m.VM.Wake()
}

// New builds the machine's devices and ACPI tables in guest memory.
func New(cfg Config) (*Machine, error) {
	if err := cfg.Layout.Validate(); err != nil {
		return nil, err
	}
	vm := guests.NewVM(cfg.Name, cfg.RAM, cfg.Clock, cfg.Console)
	vm.Cycles = cfg.Cycles
	vm.CPUID = guests.NewCPUIDPolicy(cfg.HostCPUID, cfg.Layout.VCPUs)
	m := &Machine{VM: vm, Layout: cfg.Layout, cfg: cfg, Console: guests.NewConsole(cfg.Name, cfg.Console),
		vcpus: make([]*guests.VCPU, 0, cfg.Layout.VCPUs)}
	m.APICs.Kick = m.wake
	vm.Idle = m.Console.FlushIdle
	var serialOut io.Writer = m.Console
	if cfg.Serial != nil {
		serialOut, vm.Idle = cfg.Serial, cfg.Serial.Flush
	}

	m.IOAPIC = ioapic.New(ioapic.DefaultBase, 0, &m.APICs)
	// The PIC's INTR reaches the BSP only (its LINT0, see AddVCPU).
	m.PIC = pic.New(pic.Config{Notify: func(bool) { m.wake(0) }})
	m.Router = irq.NewRouter(m.PIC, m.IOAPIC)

	var err error
	if m.UART, err = uart.New(uart.Config{Base: uart.COM1Base, IRQ: irqCOM1, Lines: m.Router, Output: consoleSink{serialOut}}); err != nil {
		return nil, err
	}
	if m.PIT, err = pit.New(pit.Config{Clock: cfg.Clock, Lines: m.Router, IRQ: irqPIT}); err != nil {
		return nil, err
	}
	clock, err := rtc.New(rtc.Config{Now: cfg.Now, Lines: m.Router, IRQ: irqRTC})
	if err != nil {
		return nil, err
	}
	pm, err := pmtimer.New(pmtimer.Config{
		Clock: cfg.Clock, EventBlock: platform.PM1aEventPort, ControlBlock: platform.PM1aControlPort,
		TimerPort: platform.PMTimerPort, Timer32: platform.PMTimer32Bit, S5SleepType: platform.SleepTypeS5,
		PowerOff: func() { m.PoweredOff = true; vm.Stop("powered off (ACPI S5)") },
		Lines:    m.Router, SCI: platform.SCIInterrupt,
	})
	if err != nil {
		return nil, err
	}
	m.PM = pm
	reset := func() { m.ResetRequested.Store(true); vm.Stop("reset requested by the guest") }
	kbd := i8042.New(i8042.Config{Reset: reset, Lines: m.Router, KbdIRQ: irqKbd, AuxIRQ: irqAux})
	exit, err := debugexit.New(vm.ExitWithCode)
	if err != nil {
		return nil, err
	}
	host, err := pcihost.New(pcihost.Config{ECAMBase: cfg.Layout.ECAM.Start, ECAMStartBus: 0,
		ECAMEndBus: uint8((cfg.Layout.ECAM.End-cfg.Layout.ECAM.Start)>>20 - 1), Reset: reset})
	if err != nil {
		return nil, err
	}
	m.PCI = host

	ports := []struct {
		name  string
		first uint16
		count int
		dev   bus.PortDevice
	}{
		{"pic-master", pic.MasterCommand, 2, m.PIC},
		{"pic-slave", pic.SlaveCommand, 2, m.PIC},
		{"pic-elcr", pic.ELCRMaster, 2, m.PIC},
		{"pit", pit.Channel0Port, 4, m.PIT},
		{"pit-port-b", pit.PortB, 1, m.PIT},
		{"i8042-data", i8042.DataPort, 1, kbd},
		{"i8042-command", i8042.CommandPort, 1, kbd},
		{"port-a", i8042.PortA, 1, kbd},
		{"rtc", rtc.IndexPort, 2, clock},
		{"com1", uart.COM1Base, 8, m.UART},
		{"debug-exit", debugexit.DefaultPort, 4, exit},
		{"pci-config", 0xcf8, 8, host},
		{"acpi-pm1a-event", platform.PM1aEventPort, platform.PM1EventLength, pm},
		{"acpi-pm1a-control", platform.PM1aControlPort, platform.PM1ControlLength, pm},
		{"acpi-pm-timer", platform.PMTimerPort, platform.PMTimerLength, pm},
	}
	for _, p := range ports {
		if err := vm.Ports.Register(p.name, p.first, p.count, p.dev); err != nil {
			return nil, err
		}
	}
	if err := vm.MMIO.Register("ioapic", ioapic.DefaultBase, ioapic.Size, m.IOAPIC); err != nil {
		return nil, err
	}
	if err := vm.MMIO.Register("pci-ecam", cfg.Layout.ECAM.Start, cfg.Layout.ECAM.End-cfg.Layout.ECAM.Start, host); err != nil {
		return nil, err
	}
	vm.Timers = []guests.Timer{m.PIT}

	if _, err := platform.Build(cfg.RAM, cfg.Layout); err != nil {
		return nil, fmt.Errorf("machine %s: ACPI tables: %w", cfg.Name, err)
	}
	return m, nil
}

// AddPCIFunction puts f at 00:dev.fn, on the guest's root bus, where the
// OS finds it by scanning (ECAM or configuration mechanism #1). Functions
// are added before the VM runs; 00:00.0 is the host bridge.
func (m *Machine) AddPCIFunction(dev, fn uint8, f pcihost.Function) error {
	if m.VM.State() != guests.Created {
		return fmt.Errorf("machine %s: PCI function 00:%02x.%x added after the VM started", m.cfg.Name, dev, fn)
	}
	if err := m.PCI.AddFunction(0, dev, fn, f); err != nil {
		return fmt.Errorf("machine %s: %w", m.cfg.Name, err)
	}
	return nil
}

// RegisterPCIWindow makes dev serve the guest's accesses to its 32-bit
// PCI MMIO window (Layout.PCIMMIO, the range the DSDT's _CRS gives the
// root bridge for BARs) that exit: those the nested page tables do not
// map. A passthrough.Window is such a device; there is one per machine.
func (m *Machine) RegisterPCIWindow(dev bus.MMIODevice) error {
	if m.VM.State() != guests.Created {
		return fmt.Errorf("machine %s: PCI MMIO window registered after the VM started", m.cfg.Name)
	}
	w := m.Layout.PCIMMIO
	if err := m.VM.MMIO.Register("pci-mmio", w.Start, w.Size(), dev); err != nil {
		return fmt.Errorf("machine %s: %w", m.cfg.Name, err)
	}
	return nil
}

// Input delivers operator keystrokes to the guest's serial port and wakes
// the guest; it returns how many bytes the port's buffer took.
func (m *Machine) Input(b []byte) int {
	n := m.UART.Input(b)
	m.VM.Wake()
	return n
}

// Load loads a kernel (bzImage, Multiboot ELF or PVH ELF, by its format)
// with the machine's ACPI tables handed over.
func (m *Machine) Load(kernel []byte, opts loader.Options) (*loader.Result, error) {
	return loader.Load(loader.Guest{Memory: m.cfg.RAM, Layout: m.Layout, RSDP: platform.RSDPAddress}, kernel, opts)
}

// AddVCPU attaches vCPU index (its APIC ID) with its local APIC, timer,
// interrupt injector and instruction emulator. vCPUs are added in index
// order, 0 to Layout.VCPUs-1, before any runs. The boot vCPU (index 0)
// starts from bs and also receives the PIC's interrupts; the others are
// APs: they start in the INIT state, waiting for the guest's INIT and SIPI
// (bs must be nil), and their goroutines block until then.
func (m *Machine) AddVCPU(cpu vcpu.VCPU, index int, bs *loader.BootState) (*guests.VCPU, error) {
	switch {
	case index != len(m.vcpus):
		return nil, fmt.Errorf("machine %s: vCPU %d added out of order: %d vCPUs so far, the next is %d", m.cfg.Name, index, len(m.vcpus), len(m.vcpus))
	case index >= m.Layout.VCPUs:
		return nil, fmt.Errorf("machine %s: vCPU %d is beyond the %d vCPUs of the layout (and of the guest's MADT)", m.cfg.Name, index, m.Layout.VCPUs)
	case m.VM.State() != guests.Created:
		return nil, fmt.Errorf("machine %s: vCPU %d added after the VM started: add every vCPU first", m.cfg.Name, index)
	case index > 0 && bs != nil:
		return nil, fmt.Errorf("machine %s: vCPU %d is an AP: it starts from the guest's INIT and SIPI, not from a boot state", m.cfg.Name, index)
	}
	apic, err := lapic.New(lapic.Config{
		ID: uint32(index), BSP: index == 0, Clock: m.cfg.Clock,
		GuestTSC: m.cfg.Cycles, TSCHz: m.cfg.TSCHz,
		IPI: &m.APICs, EOI: m.IOAPIC.EOI,
	})
	if err != nil {
		return nil, err
	}
	v := m.VM.AddVCPU(cpu, uint32(index))
	v.LAPIC = apic
	v.LAPICMMIO = apic
	v.Startup = apic
	v.Timers = []guests.Timer{apic}
	v.Emulator = &emulator{}
	var p irq.PIC
	if index == 0 {
		p = m.PIC
	}
	v.Injector = irq.NewInjector(cpu, apic, p)
	switch {
	case bs != nil:
		guests.ApplyBootState(cpu, bs)
	case index > 0:
		// What an AP holds after power-on, until its SIPI replaces it.
		signature, _, _, _ := m.VM.CPUID.Leaf(1, 0, uint32(index))
		st := guests.INITState(signature)
		guests.ApplyBootState(cpu, &st)
	}
	m.APICs.APICs = append(m.APICs.APICs, apic)
	m.vcpus = append(m.vcpus, v)
	return v, nil
}

// VCPUs returns the vCPUs added so far, by index.
func (m *Machine) VCPUs() []*guests.VCPU { return m.vcpus }

// wake wakes vCPU index (the position of its APIC in APICs), for an
// interrupt its local APIC took.
func (m *Machine) wake(index int) {
	if index >= 0 && index < len(m.vcpus) {
		m.vcpus[index].Wake()
	}
}

// emulator adapts package x86emu to the run loop: one per vCPU, since an
// x86emu.Emulator keeps the decode state of its vCPU's instructions.
type emulator struct{ e x86emu.Emulator }

func (e *emulator) Step(cpu vcpu.VCPU, mem vcpu.Memory, mmio guests.MMIOHandler, fault vcpu.NPFExit) (int, error) {
	return e.e.Step(cpu, mem, mmio, fault)
}

func (e *emulator) InstructionLength(cpu vcpu.VCPU, mem vcpu.Memory) (int, error) {
	return e.e.InstructionLength(cpu, mem)
}
