// Package bus routes a guest's port I/O and MMIO accesses to the device
// models that claim them, and carries their interrupt lines and time base.
//
// Dispatch is on the VM-exit path: lookups are a binary search over ranges
// sorted at registration, and nothing allocates.
//
// Devices are registered while the VM is built, before any vCPU runs;
// afterwards the tables are only read, so the vCPUs of one VM dispatch
// concurrently without a lock. Each device model guards its own state.
package bus

import (
	"fmt"
	"sort"
	"sync/atomic"
)

// PortDevice is a device model reached through port I/O. size is 1, 2 or 4.
type PortDevice interface {
	ReadPort(port uint16, size uint8) uint32
	WritePort(port uint16, size uint8, v uint32)
}

// MMIODevice is a device model reached through guest-physical memory
// accesses. size is 1, 2, 4 or 8.
type MMIODevice interface {
	ReadMMIO(addr uint64, size uint8) uint64
	WriteMMIO(addr uint64, size uint8, v uint64)
}

// IRQ is an interrupt line set, as devices drive it: a GSI (global system
// interrupt, ACPI 6.5 5.2.13) raised or lowered. The VM's interrupt router
// delivers it to the virtual PIC and IOAPIC.
type IRQ interface {
	SetIRQ(gsi uint32, level bool)
}

// Clock is the time base of device models (PIT, RTC, PM timer, LAPIC
// timers), in nanoseconds; tests substitute a manual clock.
type Clock interface {
	Now() int64
}

type portRange struct {
	first, last uint16
	dev         PortDevice
	name        string
}

type mmioRange struct {
	first, last uint64
	dev         MMIODevice
	name        string
}

// Ports is a guest's I/O address space.
type Ports struct {
	ranges []portRange
	// Unclaimed counts accesses no device claimed (reads return all
	// ones, writes are dropped, as on a PC). It is atomic: the vCPUs of
	// one VM dispatch concurrently (Linux's port 0x80 delay writes
	// land here from every CPU).
	Unclaimed atomic.Uint64
}

// Register claims ports [first, first+count) for dev. Overlaps are a
// configuration bug and are refused.
func (p *Ports) Register(name string, first uint16, count int, dev PortDevice) error {
	if count <= 0 || int(first)+count-1 > 0xffff {
		return fmt.Errorf("bus: %s: bad port range %#x+%d", name, first, count)
	}
	r := portRange{first, first + uint16(count-1), dev, name}
	for _, o := range p.ranges {
		if r.first <= o.last && o.first <= r.last {
			return fmt.Errorf("bus: %s ports %#x-%#x overlap %s (%#x-%#x)", name, r.first, r.last, o.name, o.first, o.last)
		}
	}
	p.ranges = append(p.ranges, r)
	sort.Slice(p.ranges, func(i, j int) bool { return p.ranges[i].first < p.ranges[j].first })
	return nil
}

func (p *Ports) find(port uint16) PortDevice {
	i := sort.Search(len(p.ranges), func(i int) bool { return p.ranges[i].last >= port })
	if i < len(p.ranges) && p.ranges[i].first <= port {
		return p.ranges[i].dev
	}
	return nil
}

// Read performs a guest IN.
func (p *Ports) Read(port uint16, size uint8) uint32 {
	if d := p.find(port); d != nil {
		return d.ReadPort(port, size)
	}
	p.Unclaimed.Add(1)
	return ^uint32(0) >> (32 - 8*uint32(size))
}

// Write performs a guest OUT.
func (p *Ports) Write(port uint16, size uint8, v uint32) {
	if d := p.find(port); d != nil {
		d.WritePort(port, size, v)
		return
	}
	p.Unclaimed.Add(1)
}

// MMIO is a guest's memory-mapped device space.
type MMIO struct {
	ranges    []mmioRange
	Unclaimed atomic.Uint64
}

// Register claims guest-physical [base, base+size) for dev.
func (m *MMIO) Register(name string, base, size uint64, dev MMIODevice) error {
	if size == 0 || base+size-1 < base {
		return fmt.Errorf("bus: %s: bad MMIO range %#x+%#x", name, base, size)
	}
	r := mmioRange{base, base + size - 1, dev, name}
	for _, o := range m.ranges {
		if r.first <= o.last && o.first <= r.last {
			return fmt.Errorf("bus: %s MMIO %#x-%#x overlaps %s (%#x-%#x)", name, r.first, r.last, o.name, o.first, o.last)
		}
	}
	m.ranges = append(m.ranges, r)
	sort.Slice(m.ranges, func(i, j int) bool { return m.ranges[i].first < m.ranges[j].first })
	return nil
}

// Find returns the device claiming addr, if any.
func (m *MMIO) Find(addr uint64) (MMIODevice, bool) {
	i := sort.Search(len(m.ranges), func(i int) bool { return m.ranges[i].last >= addr })
	if i < len(m.ranges) && m.ranges[i].first <= addr {
		return m.ranges[i].dev, true
	}
	return nil, false
}

// ReadMMIO performs a guest MMIO load.
func (m *MMIO) ReadMMIO(addr uint64, size uint8) uint64 {
	if d, ok := m.Find(addr); ok {
		return d.ReadMMIO(addr, size)
	}
	m.Unclaimed.Add(1)
	return ^uint64(0) >> (64 - 8*uint64(size))
}

// WriteMMIO performs a guest MMIO store.
func (m *MMIO) WriteMMIO(addr uint64, size uint8, v uint64) {
	if d, ok := m.Find(addr); ok {
		d.WriteMMIO(addr, size, v)
		return
	}
	m.Unclaimed.Add(1)
}
