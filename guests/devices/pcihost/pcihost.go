// Package pcihost models a guest's PCI host bridge: configuration
// mechanism #1 (CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF), the
// PCI Express enhanced configuration access mechanism (ECAM, "MMCONFIG")
// as an MMIO window, the host bridge function 00:00.0, and a registry of
// further functions (virtual device models, later passthrough functions).
//
// Configuration mechanism #1 follows the PCI Local Bus Specification 3.0,
// 3.2.2.3.2 "Software Generation of Configuration Transactions": only a
// 32-bit access to 0xCF8 is CONFIG_ADDRESS (bit 31 enable, bus 23:16,
// device 15:11, function 10:8, register 7:2); byte and word accesses to
// 0xCFC-0xCFF reach the matching bytes of the addressed DWORD. The byte at
// 0xCF9 is the chipset's reset control register (Intel ICH9 datasheet
// 13.7.5 "RST_CNT—Reset Control Register"): writing RST_CPU (bit 2) resets
// the machine through Config.Reset, which is what Linux's reboot=pci and a
// FADT RESET_REG pointing at 0xCF9 (QEMU q35's) use.
//
// ECAM follows the PCI Express Base Specification 5.0, 7.2.2 "PCI Express
// Enhanced Configuration Access Mechanism": bus in address bits 27:20,
// device 19:15, function 14:12, register 11:0. The guest learns the window
// from the MCFG table (PCI Firmware Specification 3.2, 4.1.2); the window
// must also be reserved in the e820 map or the ACPI motherboard resources,
// or Linux refuses it.
//
// The host bridge at 00:00.0 is vendor 0x8086 device 0x29C0, the ID QEMU's
// q35 machine gives its MCH (Intel 82G33/P35 DRAM controller), class 0x0600
// (host bridge), with no BARs. Every OS has seen it under QEMU; Linux binds
// no driver that matters (intel-agp probes it, finds no integrated
// graphics at 00:02.0 and lets go) and does not use it for MMCONFIG
// discovery, which comes from the MCFG table.
//
// Absent functions read all ones and ignore writes, which is how an OS
// tells they are absent (PCI 3.0, 6.1).
//
// Concurrency: every method takes the host lock, and Function methods are
// called with it held: a Function must not call back into the Host.
package pcihost

import (
	"fmt"
	"sync"
)

// Ports (PCI 3.0, 3.2.2.3.2; ICH9 datasheet 13.7.5).
const (
	ConfigAddressPort uint16 = 0xCF8
	ResetControlPort  uint16 = 0xCF9
	ConfigDataPort    uint16 = 0xCFC
	// Ports is the port range to register: 0xCF8-0xCFF.
	Ports = 8
)

// CONFIG_ADDRESS fields.
const (
	addressEnable   uint32 = 1 << 31
	addressWritable uint32 = addressEnable | 0x00FFFFFC
)

// RST_CNT bits (ICH9 datasheet 13.7.5).
const (
	ResetSystem uint8 = 0x02 // SYS_RST: hard rather than soft reset
	ResetCPU    uint8 = 0x04 // RST_CPU: do the reset
	ResetFull   uint8 = 0x08 // FULL_RST
)

// Host bridge identity.
const (
	HostBridgeVendorID uint16 = 0x8086
	HostBridgeDeviceID uint16 = 0x29C0
	HostBridgeClass    uint32 = 0x060000
)

// ECAM geometry (PCIe 5.0, 7.2.2).
const (
	ecamBusShift = 20
	ecamDevShift = 15
	ecamFnShift  = 12
	// ECAMBytesPerBus is the window size of one bus.
	ECAMBytesPerBus = 1 << ecamBusShift
	// ExtendedConfigSize is the configuration space of one function
	// through ECAM; mechanism #1 reaches the first 256 bytes.
	ExtendedConfigSize = 4096
)

// Function is one PCI function's configuration space. The host calls it
// with off aligned to size, size 1, 2 or 4, and off+size at most 4096
// (256 through mechanism #1).
type Function interface {
	ReadConfig(off uint16, size uint8) uint32
	WriteConfig(off uint16, size uint8, v uint32)
}

// Config wires the host bridge into a VM.
type Config struct {
	// ECAMBase is the guest-physical base of the ECAM window for bus
	// ECAMStartBus (the MCFG entry's base address is ECAMBase minus
	// ECAMStartBus MiB, as the MCFG describes bus 0's position).
	ECAMBase                 uint64
	ECAMStartBus, ECAMEndBus uint8
	// Reset is called when the guest writes RST_CPU to 0xCF9.
	Reset func()
}

// ECAMSize is the length of the ECAM window to register on the MMIO bus.
func (c *Config) ECAMSize() uint64 {
	return (uint64(c.ECAMEndBus) - uint64(c.ECAMStartBus) + 1) * ECAMBytesPerBus
}

type slot struct {
	bdf uint16 // bus<<8 | dev<<3 | fn
	fn  Function
}

// State is the host's own register state (functions keep theirs).
type State struct {
	ConfigAddress uint32
	ResetControl  uint8
	Bridge        ConfigSpace
}

// Host is the host bridge and the configuration space router.
type Host struct {
	mu    sync.Mutex
	cfg   Config
	s     State
	slots []slot // sorted by bdf; slots[0] is 00:00.0, the bridge
}

// New returns a host bridge with function 00:00.0 in place.
func New(cfg Config) (*Host, error) {
	if cfg.ECAMEndBus < cfg.ECAMStartBus {
		return nil, fmt.Errorf("pcihost: ECAM end bus %d below start bus %d", cfg.ECAMEndBus, cfg.ECAMStartBus)
	}
	if cfg.ECAMBase%ECAMBytesPerBus != 0 {
		return nil, fmt.Errorf("pcihost: ECAM base %#x not 1 MiB aligned", cfg.ECAMBase)
	}
	if cfg.ECAMBase+cfg.ECAMSize()-1 < cfg.ECAMBase {
		return nil, fmt.Errorf("pcihost: ECAM window at %#x wraps", cfg.ECAMBase)
	}
	h := &Host{cfg: cfg}
	h.s.Bridge.Init(Header{VendorID: HostBridgeVendorID, DeviceID: HostBridgeDeviceID, Class: HostBridgeClass})
	h.slots = []slot{{0, &h.s.Bridge}}
	return h, nil
}

// AddFunction makes f answer at bus:dev.fn. Functions other than 0 are
// only scanned by an OS when function 0 of the device exists and says it
// is multi-function (header type bit 7).
func (h *Host) AddFunction(bus, dev, fn uint8, f Function) error {
	if dev >= 32 || fn >= 8 {
		return fmt.Errorf("pcihost: %02x:%02x.%x is not a valid address", bus, dev, fn)
	}
	if f == nil {
		return fmt.Errorf("pcihost: %02x:%02x.%x: nil function", bus, dev, fn)
	}
	bdf := uint16(bus)<<8 | uint16(dev)<<3 | uint16(fn)
	h.mu.Lock()
	defer h.mu.Unlock()
	i := h.search(bdf)
	if i < len(h.slots) && h.slots[i].bdf == bdf {
		return fmt.Errorf("pcihost: %02x:%02x.%x is already taken", bus, dev, fn)
	}
	h.slots = append(h.slots, slot{})
	copy(h.slots[i+1:], h.slots[i:])
	h.slots[i] = slot{bdf, f}
	return nil
}

// State returns a copy of the host's state.
func (h *Host) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s
}

// SetState restores a snapshot of the host's own state.
func (h *Host) SetState(s State) {
	h.mu.Lock()
	s.ConfigAddress &= addressWritable
	s.ResetControl &= ResetSystem | ResetFull
	h.s = s
	h.mu.Unlock()
}

// search returns the index of the first slot with bdf >= want.
func (h *Host) search(want uint16) int {
	lo, hi := 0, len(h.slots)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if h.slots[mid].bdf < want {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (h *Host) lookup(bdf uint16) Function {
	if i := h.search(bdf); i < len(h.slots) && h.slots[i].bdf == bdf {
		return h.slots[i].fn
	}
	return nil
}

func allOnes(size uint8) uint32 {
	if size >= 4 {
		return ^uint32(0)
	}
	return ^uint32(0) >> (32 - 8*uint32(size))
}

func validAccess(off uint16, size uint8) bool {
	return (size == 1 || size == 2 || size == 4) && off%uint16(size) == 0
}

// ReadPort implements bus.PortDevice.
func (h *Host) ReadPort(port uint16, size uint8) uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case port == ConfigAddressPort && size == 4:
		return h.s.ConfigAddress
	case port >= ConfigDataPort && port < ConfigDataPort+4:
		off := uint16(h.s.ConfigAddress&0xFC) + port - ConfigDataPort
		f := h.addressed()
		if f == nil || !validAccess(off, size) {
			return allOnes(size)
		}
		return f.ReadConfig(off, size)
	case port == ResetControlPort && size == 1:
		return uint32(h.s.ResetControl)
	}
	return allOnes(size)
}

// WritePort implements bus.PortDevice.
func (h *Host) WritePort(port uint16, size uint8, v uint32) {
	h.mu.Lock()
	reset := false
	switch {
	case port == ConfigAddressPort && size == 4:
		h.s.ConfigAddress = v & addressWritable
	case port >= ConfigDataPort && port < ConfigDataPort+4:
		off := uint16(h.s.ConfigAddress&0xFC) + port - ConfigDataPort
		if f := h.addressed(); f != nil && validAccess(off, size) {
			f.WriteConfig(off, size, v&allOnes(size))
		}
	case port == ResetControlPort && size == 1:
		h.s.ResetControl = uint8(v) & (ResetSystem | ResetFull)
		reset = uint8(v)&ResetCPU != 0
	}
	h.mu.Unlock()
	if reset && h.cfg.Reset != nil {
		h.cfg.Reset()
	}
}

// addressed is the function CONFIG_ADDRESS selects, nil when the enable
// bit is clear or nothing is there.
func (h *Host) addressed() Function {
	a := h.s.ConfigAddress
	if a&addressEnable == 0 {
		return nil
	}
	return h.lookup(uint16(a >> 8))
}

// decodeECAM maps a guest-physical address in the window to a function
// and register offset.
func (h *Host) decodeECAM(addr uint64) (Function, uint16) {
	if addr < h.cfg.ECAMBase {
		return nil, 0
	}
	rel := addr - h.cfg.ECAMBase
	if rel >= h.cfg.ECAMSize() {
		return nil, 0
	}
	bus := uint64(h.cfg.ECAMStartBus) + rel>>ecamBusShift
	bdf := uint16(bus<<8 | (rel>>ecamDevShift&31)<<3 | rel>>ecamFnShift&7)
	return h.lookup(bdf), uint16(rel & (ExtendedConfigSize - 1))
}

// ReadMMIO implements bus.MMIODevice for the ECAM window. An aligned 8-byte
// access is two DWORD accesses; misaligned accesses read all ones.
func (h *Host) ReadMMIO(addr uint64, size uint8) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, off := h.decodeECAM(addr)
	switch {
	case size == 8 && off%8 == 0 && f != nil:
		return uint64(f.ReadConfig(off, 4)) | uint64(f.ReadConfig(off+4, 4))<<32
	case size == 8:
		return ^uint64(0)
	case f == nil || !validAccess(off, size):
		return uint64(allOnes(size))
	}
	return uint64(f.ReadConfig(off, size))
}

// WriteMMIO implements bus.MMIODevice for the ECAM window.
func (h *Host) WriteMMIO(addr uint64, size uint8, v uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, off := h.decodeECAM(addr)
	switch {
	case f == nil:
	case size == 8 && off%8 == 0:
		f.WriteConfig(off, 4, uint32(v))
		f.WriteConfig(off+4, 4, uint32(v>>32))
	case validAccess(off, size):
		f.WriteConfig(off, size, uint32(v)&allOnes(size))
	}
}
