// Package hwfake provides in-memory stand-ins for the interfaces of package
// hw, for host tests of drivers and platform code.
package hwfake

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// Ports is a fake I/O address space. Reads of a port with a handler call it;
// other reads return the last value written (or all ones, as an unclaimed
// port reads on a PC).
type Ports struct {
	Values   map[uint16]uint32
	OnRead   map[uint16]func(width int) uint32
	OnWrite  map[uint16]func(width int, v uint32)
	Accesses []PortAccess
}

// PortAccess records one access, for tests that check ordering.
type PortAccess struct {
	Write bool
	Port  uint16
	Width int
	Value uint32
}

// NewPorts returns an empty fake I/O space.
func NewPorts() *Ports {
	return &Ports{
		Values:  map[uint16]uint32{},
		OnRead:  map[uint16]func(int) uint32{},
		OnWrite: map[uint16]func(int, uint32){},
	}
}

func (p *Ports) read(port uint16, width int) uint32 {
	var v uint32
	if h, ok := p.OnRead[port]; ok {
		v = h(width)
	} else if x, ok := p.Values[port]; ok {
		v = x
	} else {
		v = 0xffffffff
	}
	p.Accesses = append(p.Accesses, PortAccess{false, port, width, v})
	return v
}

func (p *Ports) write(port uint16, width int, v uint32) {
	p.Accesses = append(p.Accesses, PortAccess{true, port, width, v})
	if h, ok := p.OnWrite[port]; ok {
		h(width, v)
		return
	}
	p.Values[port] = v
}

func (p *Ports) In8(port uint16) uint8       { return uint8(p.read(port, 1)) }
func (p *Ports) In16(port uint16) uint16     { return uint16(p.read(port, 2)) }
func (p *Ports) In32(port uint16) uint32     { return p.read(port, 4) }
func (p *Ports) Out8(port uint16, v uint8)   { p.write(port, 1, uint32(v)) }
func (p *Ports) Out16(port uint16, v uint16) { p.write(port, 2, uint32(v)) }
func (p *Ports) Out32(port uint16, v uint32) { p.write(port, 4, v) }

// Memory is a sparse fake physical address space: byte-addressed pages
// created on first write, zero elsewhere. It implements hw.MMIO and
// hw.PhysMem. Hooks let a test model a device register.
type Memory struct {
	pages   map[uint64]*[4096]byte
	OnRead  map[uint64]func(width int) uint64
	OnWrite map[uint64]func(width int, v uint64)
	// Limit, when non-zero, makes ReadPhys fail for addresses at or above
	// it, as the image does for addresses outside its mapping.
	Limit uint64
}

// NewMemory returns an empty fake physical memory.
func NewMemory() *Memory {
	return &Memory{
		pages:   map[uint64]*[4096]byte{},
		OnRead:  map[uint64]func(int) uint64{},
		OnWrite: map[uint64]func(int, uint64){},
	}
}

// Load copies b into memory at addr.
func (m *Memory) Load(addr uint64, b []byte) {
	for i, c := range b {
		a := addr + uint64(i)
		pg, ok := m.pages[a>>12]
		if !ok {
			pg = new([4096]byte)
			m.pages[a>>12] = pg
		}
		pg[a&0xfff] = c
	}
}

func (m *Memory) byteAt(a uint64) byte {
	if pg, ok := m.pages[a>>12]; ok {
		return pg[a&0xfff]
	}
	return 0
}

// ReadPhys implements hw.PhysMem.
func (m *Memory) ReadPhys(addr uint64, buf []byte) error {
	end := addr + uint64(len(buf))
	if end < addr || (m.Limit != 0 && end > m.Limit) {
		return fmt.Errorf("physical range %#x+%#x is outside memory", addr, len(buf))
	}
	for i := range buf {
		buf[i] = m.byteAt(addr + uint64(i))
	}
	return nil
}

func (m *Memory) read(addr uint64, width int) uint64 {
	if h, ok := m.OnRead[addr]; ok {
		return h(width)
	}
	var b [8]byte
	for i := 0; i < width; i++ {
		b[i] = m.byteAt(addr + uint64(i))
	}
	return binary.LittleEndian.Uint64(b[:])
}

func (m *Memory) write(addr uint64, width int, v uint64) {
	if h, ok := m.OnWrite[addr]; ok {
		h(width, v)
		return
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	m.Load(addr, b[:width])
}

func (m *Memory) Read8(a uint64) uint8       { return uint8(m.read(a, 1)) }
func (m *Memory) Read16(a uint64) uint16     { return uint16(m.read(a, 2)) }
func (m *Memory) Read32(a uint64) uint32     { return uint32(m.read(a, 4)) }
func (m *Memory) Read64(a uint64) uint64     { return m.read(a, 8) }
func (m *Memory) Write8(a uint64, v uint8)   { m.write(a, 1, uint64(v)) }
func (m *Memory) Write16(a uint64, v uint16) { m.write(a, 2, uint64(v)) }
func (m *Memory) Write32(a uint64, v uint32) { m.write(a, 4, uint64(v)) }
func (m *Memory) Write64(a uint64, v uint64) { m.write(a, 8, v) }

// MSRs is a fake MSR file. Reading an MSR that was never set panics, as the
// hardware would raise #GP: a test that does so has found a real bug.
type MSRs map[uint32]uint64

func (m MSRs) ReadMSR(msr uint32) uint64 {
	v, ok := m[msr]
	if !ok {
		panic(fmt.Sprintf("hwfake: read of unimplemented MSR %#x (#GP on hardware)", msr))
	}
	return v
}

func (m MSRs) WriteMSR(msr uint32, v uint64) { m[msr] = v }

// CPUIDLeaf is one CPUID result.
type CPUIDLeaf struct{ EAX, EBX, ECX, EDX uint32 }

// CPUIDKey selects a leaf and sub-leaf.
type CPUIDKey struct{ Leaf, Subleaf uint32 }

// CPUID is a fake CPUID table; unknown leaves return zeros, as leaves above
// the maximum do on AMD (Intel returns the highest basic leaf; nobody should
// rely on either).
type CPUID map[CPUIDKey]CPUIDLeaf

func (c CPUID) CPUID(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32) {
	l, ok := c[CPUIDKey{leaf, subleaf}]
	if !ok {
		l = c[CPUIDKey{leaf, 0}]
	}
	return l.EAX, l.EBX, l.ECX, l.EDX
}

// Keys returns the leaves present, sorted, for diagnostics.
func (c CPUID) Keys() []CPUIDKey {
	keys := make([]CPUIDKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Leaf != keys[j].Leaf {
			return keys[i].Leaf < keys[j].Leaf
		}
		return keys[i].Subleaf < keys[j].Subleaf
	})
	return keys
}
