package passthrough

import (
	"fmt"

	"tamavisor/drivers/pci"
	"tamavisor/guests/devices/pcihost"
)

// memBARTypeReserved is the reserved memory BAR type 11b (PCI 3.0,
// 6.2.5.1): such a BAR is not given to the guest.
const memBARTypeReserved uint32 = 3 << 1

func (b *bar) isMem() bool { return b.kind == barMem32 || b.kind == barMem64 }

// sizeBARs reads and sizes the device's BARs (PCI 3.0, 6.2.5.1: write all
// ones, read the mask back, restore), with decoding off.
func (f *Function) sizeBARs() error {
	for i := range f.bars {
		f.bars[i].mapped = NoMapping
	}
	probe := func(off uint16) (raw, mask uint32) {
		raw = f.cfgRead(off)
		f.cfgWrite(off, 0xFFFFFFFF)
		mask = f.cfgRead(off)
		f.cfgWrite(off, raw)
		return raw, mask
	}
	for i := 0; i < 6; i++ {
		off := uint16(regBAR0 + 4*i)
		raw, mask := probe(off)
		b := &f.bars[i]
		b.hostRaw = raw
		switch {
		case raw&pci.BARIO != 0:
			m := mask & pci.BARIOAddrMask
			if m != 0 && m&0xFFFF0000 == 0 {
				m |= 0xFFFF0000 // 16-bit I/O decoder: upper half hardwired 0
			}
			if m != 0 {
				b.kind, b.size, b.hostPA = barIO, uint64(m&-m), uint64(raw&pci.BARIOAddrMask)
			}
			continue
		case raw&pci.BARMemTypeMask == memBARTypeReserved:
			continue
		case raw&pci.BARMemTypeMask == pci.BARMemType64:
			if i == 5 {
				return fmt.Errorf("passthrough: %s: BAR5 claims to be 64-bit, with no BAR6 for its upper half", f.name)
			}
			hiRaw, hiMask := probe(off + 4)
			f.bars[i+1].hostRaw = hiRaw
			m := uint64(hiMask)<<32 | uint64(mask&pci.BARMemAddrMask)
			if m != 0 {
				b.kind, b.size = barMem64, m&-m
				b.hostPA = uint64(hiRaw)<<32 | uint64(raw&pci.BARMemAddrMask)
			}
			i++
		default:
			m := mask & pci.BARMemAddrMask
			if m != 0 {
				b.kind, b.size, b.hostPA = barMem32, uint64(m&-m), uint64(raw&pci.BARMemAddrMask)
			}
		}
		if b.isMem() {
			b.prefetch = raw&pci.BARPrefetchable != 0
			if b.hostPA == 0 || b.hostPA%b.size != 0 {
				return fmt.Errorf("passthrough: %s: BAR%d (%#x bytes) is at %#x: not assigned by the host firmware, or misaligned", f.name, i, b.size, b.hostPA)
			}
		}
	}
	return nil
}

// placeBARs gives each memory BAR a guest-physical address in the window,
// largest first so that natural alignment wastes nothing, and sets up the
// emulated BAR registers.
func (f *Function) placeBARs() error {
	var order [6]int
	n := 0
	for i := range f.bars {
		if !f.bars[i].isMem() {
			continue
		}
		j := n
		for j > 0 && f.bars[order[j-1]].size < f.bars[i].size {
			order[j] = order[j-1]
			j--
		}
		order[j] = i
		n++
	}
	for _, i := range order[:n] {
		b := &f.bars[i]
		if err := f.shadow.SetBAR(i, pcihost.BAR{Size: b.size, Bits64: b.kind == barMem64, Prefetchable: b.prefetch}); err != nil {
			return fmt.Errorf("passthrough: %s: BAR%d: %v", f.name, i, err)
		}
		gpa, err := f.win.alloc(b.size)
		if err != nil {
			return fmt.Errorf("passthrough: %s: BAR%d (%#x bytes): %v", f.name, i, b.size, err)
		}
		off := uint16(regBAR0 + 4*i)
		f.shadow.Set32(off, f.shadow.Get32(off)|uint32(gpa))
		if b.kind == barMem64 {
			f.shadow.Set32(off+4, uint32(gpa>>32))
		}
	}
	return nil
}

func alignDown(v, a uint64) uint64 { return v &^ (a - 1) }
func alignUp(v, a uint64) uint64   { return (v + a - 1) &^ (a - 1) }

// computeTraps decides which part of each memory BAR traps instead of
// being mapped: all of a BAR smaller than a page, else the pages of the
// MSI-X table and PBA (one span covering both when they share a BAR).
func (f *Function) computeTraps() {
	for i := range f.bars {
		b := &f.bars[i]
		if !b.isMem() {
			continue
		}
		if b.size < PageSize {
			b.trapStart, b.trapEnd = 0, b.size
			continue
		}
		b.trapStart, b.trapEnd = b.size, b.size
		span := func(start, length uint64) {
			s, e := alignDown(start, PageSize), min(alignUp(start+length, PageSize), b.size)
			if b.trapStart == b.trapEnd {
				b.trapStart, b.trapEnd = s, e
				return
			}
			b.trapStart, b.trapEnd = min(b.trapStart, s), max(b.trapEnd, e)
		}
		if f.msix.present && f.msix.tableBAR == i {
			span(f.msix.tableOff, f.msix.tableLen())
		}
		if f.msix.present && f.msix.pbaBAR == i {
			span(f.msix.pbaOff, f.msix.pbaLen())
		}
	}
}

// updateMappings brings every memory BAR's guest mapping in line with the
// guest's BAR registers and memory decode bit.
func (f *Function) updateMappings() {
	decode := !f.stopped && f.shadow.Command()&pcihost.CommandMemory != 0
	for i := range f.bars {
		b := &f.bars[i]
		if !b.isMem() {
			continue
		}
		want := NoMapping
		if decode {
			if a, _ := f.shadow.BARAddress(i); f.win.contains(a, b.size) {
				want = a
			}
		}
		if want != b.mapped {
			f.remap(i, want)
		}
	}
}

// at offsets a guest address unless it stands for "not mapped".
func at(gpa, off uint64) uint64 {
	if gpa == NoMapping {
		return NoMapping
	}
	return gpa + off
}

// remap moves BAR i's mapping to want, piece by piece (the parts before
// and after its trapped span). A trapped BAR (smaller than a page) has no
// pieces: it is only claimed by the Window at its new address.
func (f *Function) remap(i int, want uint64) {
	b := &f.bars[i]
	old := b.mapped
	b.mapped = want
	if b.size < PageSize {
		return
	}
	pieces := [2]struct{ off, size uint64 }{{0, b.trapStart}, {b.trapEnd, b.size - b.trapEnd}}
	for k, p := range pieces {
		if p.size == 0 {
			continue
		}
		err := f.cfg.Mapper.RemapBAR(i, at(old, p.off), at(want, p.off), p.size, b.hostPA+p.off)
		if err == nil {
			continue
		}
		f.problem(fmt.Errorf("passthrough: %s: mapping BAR%d+%#x (%#x bytes) from %#x to %#x: %w", f.name, i, p.off, p.size, at(old, p.off), at(want, p.off), err))
		// Leave no piece of the BAR mapped anywhere.
		for j, q := range pieces {
			switch {
			case q.size == 0 || j == k:
			case j < k && want != NoMapping:
				f.cfg.Mapper.RemapBAR(i, want+q.off, NoMapping, q.size, b.hostPA+q.off)
			case j > k && old != NoMapping:
				f.cfg.Mapper.RemapBAR(i, old+q.off, NoMapping, q.size, b.hostPA+q.off)
			}
		}
		b.mapped = NoMapping
		return
	}
}

// claim finds the trapped BAR part that guest-physical addr falls in.
func (f *Function) claim(addr uint64) (int, uint64, bool) {
	if f.stopped {
		return 0, 0, false
	}
	for i := range f.bars {
		b := &f.bars[i]
		if b.mapped == NoMapping || addr < b.mapped {
			continue
		}
		if off := addr - b.mapped; off >= b.trapStart && off < b.trapEnd {
			return i, off, true
		}
	}
	return 0, 0, false
}

func (f *Function) hostRead(addr uint64, size uint8) uint64 {
	m := f.cfg.HostMMIO
	switch size {
	case 1:
		return uint64(m.Read8(addr))
	case 2:
		return uint64(m.Read16(addr))
	case 4:
		return uint64(m.Read32(addr))
	}
	return m.Read64(addr)
}

func (f *Function) hostWrite(addr uint64, size uint8, v uint64) {
	m := f.cfg.HostMMIO
	switch size {
	case 1:
		m.Write8(addr, uint8(v))
	case 2:
		m.Write16(addr, uint16(v))
	case 4:
		m.Write32(addr, uint32(v))
	default:
		m.Write64(addr, v)
	}
}

func validMMIOSize(size uint8) bool { return size == 1 || size == 2 || size == 4 || size == 8 }

// readMMIO serves a guest load from a trapped part of a BAR: the MSI-X
// table and PBA are emulated, anything else on those pages is the
// device's. It reports false when addr is not trapped by this function.
func (f *Function) readMMIO(addr uint64, size uint8) (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, off, ok := f.claim(addr)
	if !ok {
		return 0, false
	}
	b := &f.bars[i]
	if !validMMIOSize(size) || off%uint64(size) != 0 || off+uint64(size) > b.size {
		return ^uint64(0) >> (64 - 8*uint64(size&15)), true
	}
	m := &f.msix
	switch {
	case m.present && i == m.tableBAR && off >= m.tableOff && off < m.tableOff+m.tableLen():
		return f.tableRead(off-m.tableOff, size), true
	case m.present && i == m.pbaBAR && off >= m.pbaOff && off < m.pbaOff+m.pbaLen():
		return f.pbaRead(off-m.pbaOff, size), true
	}
	return f.hostRead(b.hostPA+off, size), true
}

// writeMMIO is readMMIO's store; writes to the PBA are dropped (it is
// read-only, PCI 3.0 6.8.2.10).
func (f *Function) writeMMIO(addr uint64, size uint8, v uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, off, ok := f.claim(addr)
	if !ok {
		return false
	}
	b := &f.bars[i]
	if !validMMIOSize(size) || off%uint64(size) != 0 || off+uint64(size) > b.size {
		return true
	}
	m := &f.msix
	switch {
	case m.present && i == m.tableBAR && off >= m.tableOff && off < m.tableOff+m.tableLen():
		f.tableWrite(off-m.tableOff, size, v)
	case m.present && i == m.pbaBAR && off >= m.pbaOff && off < m.pbaOff+m.pbaLen():
	default:
		f.hostWrite(b.hostPA+off, size, v)
	}
	return true
}
