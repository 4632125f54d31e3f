package pci

import (
	"sync"

	"tamavisor/drivers/hw"
)

// Configuration Mechanism #1 ports and address layout (PCI Local Bus
// Specification 3.0, 3.2.2.3.2, Figure 3-2).
const (
	ConfigAddressPort uint16 = 0xCF8
	ConfigDataPort    uint16 = 0xCFC

	configEnable   uint32 = 1 << 31
	configBusShift        = 16
	configDevShift        = 11
	configFnShift         = 8
	configRegMask  uint32 = 0xFC
)

// PortConfig is Configuration Mechanism #1 over I/O ports. It reaches
// offsets 0-0xFF of every function of segment 0. The address/data pair is a
// shared cursor, so each access is made under a lock.
type PortConfig struct {
	mu sync.Mutex
	io hw.PortIO
}

// NewPortConfig returns the port mechanism over io.
func NewPortConfig(io hw.PortIO) *PortConfig { return &PortConfig{io: io} }

// Address returns the CONFIG_ADDRESS value for a register, and false for a
// device, function or offset the mechanism cannot address.
func (p *PortConfig) Address(bus, dev, fn uint8, off uint16) (uint32, bool) {
	if dev > MaxDevice || fn > MaxFunction || off >= LegacyConfigSize {
		return 0, false
	}
	return configEnable | uint32(bus)<<configBusShift | uint32(dev)<<configDevShift |
		uint32(fn)<<configFnShift | uint32(off)&configRegMask, true
}

// Present reports whether the chipset implements mechanism #1: a dword
// written to CONFIG_ADDRESS with the enable bit reads back unchanged
// (the probe Linux and the PCI 2.0 text use). CONFIG_ADDRESS is restored.
func (p *PortConfig) Present() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	saved := p.io.In32(ConfigAddressPort)
	p.io.Out32(ConfigAddressPort, configEnable)
	ok := p.io.In32(ConfigAddressPort) == configEnable
	p.io.Out32(ConfigAddressPort, saved)
	return ok
}

// Read32 implements ConfigSpace.
func (p *PortConfig) Read32(bus, dev, fn uint8, off uint16) uint32 {
	a, ok := p.Address(bus, dev, fn, off)
	if !ok {
		return 0xFFFF_FFFF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.io.Out32(ConfigAddressPort, a)
	return p.io.In32(ConfigDataPort)
}

// Write32 implements ConfigSpace.
func (p *PortConfig) Write32(bus, dev, fn uint8, off uint16, v uint32) {
	a, ok := p.Address(bus, dev, fn, off)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.io.Out32(ConfigAddressPort, a)
	p.io.Out32(ConfigDataPort, v)
}

// Read16 reads a 16-bit register with a 16-bit access to CONFIG_DATA at
// 0xCFC + (off & 2), the way the mechanism defines narrow accesses. off
// must be even; an odd offset is assembled by the package-level Read16.
func (p *PortConfig) Read16(bus, dev, fn uint8, off uint16) uint16 {
	if off&1 != 0 {
		return Read16(struct{ ConfigSpace }{p}, bus, dev, fn, off)
	}
	a, ok := p.Address(bus, dev, fn, off)
	if !ok {
		return 0xFFFF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.io.Out32(ConfigAddressPort, a)
	return p.io.In16(ConfigDataPort + off&2)
}

// Read8 reads one byte with an 8-bit access to CONFIG_DATA at 0xCFC + (off & 3).
func (p *PortConfig) Read8(bus, dev, fn uint8, off uint16) uint8 {
	a, ok := p.Address(bus, dev, fn, off)
	if !ok {
		return 0xFF
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.io.Out32(ConfigAddressPort, a)
	return p.io.In8(ConfigDataPort + off&3)
}
