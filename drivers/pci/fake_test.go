package pci

import (
	"encoding/binary"
)

type bdf struct{ bus, dev, fn uint8 }

// fakeFn is one function's configuration space. BARs behave like real
// ones: only the address bits above the decoded size are writable, and
// the type bits are read-only. Status bits are write-one-to-clear.
type fakeFn struct {
	cfg         [ExtendedConfigSize]byte
	barWritable [6]uint32
	nbars       int
	// decodeOnAllOnes records the command register's decode bits each
	// time a BAR was written with all ones.
	decodeOnAllOnes []uint16
}

func (f *fakeFn) r32(off uint16) uint32    { return binary.LittleEndian.Uint32(f.cfg[off:]) }
func (f *fakeFn) w32(off uint16, v uint32) { binary.LittleEndian.PutUint32(f.cfg[off:], v) }
func (f *fakeFn) w16(off uint16, v uint16) { binary.LittleEndian.PutUint16(f.cfg[off:], v) }
func (f *fakeFn) r16(off uint16) uint16    { return binary.LittleEndian.Uint16(f.cfg[off:]) }

// bar sets BAR i to an implemented register of the given size; flags are
// the read-only low bits (BARIO, BARMemType64, BARPrefetchable).
func (f *fakeFn) bar(i int, flags uint32, addr, size uint64) {
	off := OffBAR0 + uint16(4*i)
	if flags&BARIO != 0 {
		f.barWritable[i] = ^uint32(size-1) & BARIOAddrMask & 0xFFFF // 16-bit I/O decode
		f.w32(off, uint32(addr)|flags)
		return
	}
	mask := ^(size - 1)
	f.barWritable[i] = uint32(mask) & BARMemAddrMask
	f.w32(off, uint32(addr)|flags)
	if flags&BARMemTypeMask == BARMemType64 {
		f.barWritable[i+1] = uint32(mask >> 32)
		f.w32(off+4, uint32(addr>>32))
	}
}

// caps chains capabilities (id, offset pairs) from the capability pointer
// and sets the status bit.
func (f *fakeFn) caps(ptrOff uint16, list ...[2]uint16) {
	f.w16(OffStatus, f.r16(OffStatus)|StatusCapList)
	f.cfg[ptrOff] = uint8(list[0][1])
	for i, c := range list {
		next := uint16(0)
		if i+1 < len(list) {
			next = list[i+1][1]
		}
		f.cfg[c[1]] = uint8(c[0])
		f.cfg[c[1]+1] = uint8(next)
	}
}

// extCaps chains extended capabilities (id, offset pairs) from 0x100.
func (f *fakeFn) extCaps(list ...[2]uint16) {
	for i, c := range list {
		next := uint32(0)
		if i+1 < len(list) {
			next = uint32(list[i+1][1])
		}
		f.w32(c[1], next<<20|1<<16|uint32(c[0]))
	}
}

func (f *fakeFn) write32(off uint16, v uint32) {
	switch {
	case off == OffCommand:
		// Command is plain read/write; status bits are RW1C.
		status := f.r16(OffStatus) &^ uint16(v>>16)
		f.w16(OffCommand, uint16(v))
		f.w16(OffStatus, status)
	case off >= OffBAR0 && off < OffBAR0+uint16(4*f.nbars):
		i := (off - OffBAR0) / 4
		if v == 0xFFFF_FFFF {
			f.decodeOnAllOnes = append(f.decodeOnAllOnes, f.r16(OffCommand)&(CommandIO|CommandMemory))
		}
		w := f.barWritable[i]
		f.w32(off, f.r32(off)&^w|v&w)
	default:
		f.w32(off, v)
	}
}

// fakeSpace is a configuration space of several functions. Devices listed
// in ignoreFn decode no function number, as some old single-function
// devices do, and answer on all eight.
type fakeSpace struct {
	fns      map[bdf]*fakeFn
	ignoreFn map[[2]uint8]bool
	reads    map[uint8]int // per bus
}

func newSpace() *fakeSpace {
	return &fakeSpace{fns: map[bdf]*fakeFn{}, ignoreFn: map[[2]uint8]bool{}, reads: map[uint8]int{}}
}

func (s *fakeSpace) lookup(bus, dev, fn uint8) *fakeFn {
	if s.ignoreFn[[2]uint8{bus, dev}] {
		fn = 0
	}
	return s.fns[bdf{bus, dev, fn}]
}

func (s *fakeSpace) add(bus, dev, fn uint8, vendor, device uint16, class, sub, progIF, headerType uint8) *fakeFn {
	f := &fakeFn{}
	f.w32(OffVendorID, uint32(device)<<16|uint32(vendor))
	f.w32(OffRevision, uint32(class)<<24|uint32(sub)<<16|uint32(progIF)<<8|0x02)
	f.cfg[OffHeaderType] = headerType
	switch headerType & HeaderTypeMask {
	case HeaderTypeNormal:
		f.nbars = 6
	case HeaderTypeBridge:
		f.nbars = 2
	}
	s.fns[bdf{bus, dev, fn}] = f
	return f
}

func (s *fakeSpace) Read32(bus, dev, fn uint8, off uint16) uint32 {
	s.reads[bus]++
	f := s.lookup(bus, dev, fn)
	if f == nil || off >= ExtendedConfigSize {
		return 0xFFFF_FFFF
	}
	return f.r32(off &^ 3)
}

func (s *fakeSpace) Write32(bus, dev, fn uint8, off uint16, v uint32) {
	if f := s.lookup(bus, dev, fn); f != nil && off < ExtendedConfigSize {
		f.write32(off&^3, v)
	}
}

// legacyOnly hides the extended space, as the port mechanism would.
type legacyOnly struct{ *fakeSpace }

func (l legacyOnly) Read32(bus, dev, fn uint8, off uint16) uint32 {
	if off >= LegacyConfigSize {
		return 0xFFFF_FFFF
	}
	return l.fakeSpace.Read32(bus, dev, fn, off)
}

// withExtended claims extended space, as ECAM does.
type withExtended struct{ *fakeSpace }

func (withExtended) HasExtendedSpace() bool { return true }

// q35 builds the functions QEMU's q35 machine shows with a std VGA, an
// e1000e, two PCIe root ports at 00:1c.0/1 (a multi-function device) and a
// virtio-net behind the first.
func q35() *fakeSpace {
	s := newSpace()
	s.add(0, 0, 0, 0x8086, 0x29C0, 0x06, 0x00, 0x00, 0x00) // host bridge

	vga := s.add(0, 1, 0, 0x1234, 0x1111, 0x03, 0x00, 0x00, 0x00)
	vga.bar(0, BARPrefetchable, 0xFD00_0000, 16<<20)
	vga.bar(2, 0, 0xFEBD_0000, 4<<10)
	vga.cfg[OffIRQPin] = 0
	s.ignoreFn[[2]uint8{0, 1}] = true // answers on every function number

	nic := s.add(0, 2, 0, 0x8086, 0x10D3, 0x02, 0x00, 0x00, 0x00)
	nic.bar(0, 0, 0xFEB8_0000, 128<<10)
	nic.bar(2, BARIO, 0xC000, 32)
	nic.bar(3, 0, 0xFEBD_4000, 16<<10)
	nic.cfg[OffIRQLine], nic.cfg[OffIRQPin] = 11, 1
	nic.caps(OffCapPtr, [2]uint16{0x01, 0xC8}, [2]uint16{0x05, 0xD0}, [2]uint16{0x10, 0xE0}, [2]uint16{0x11, 0xA0})
	nic.extCaps([2]uint16{0x0001, 0x100}, [2]uint16{0x0003, 0x140})

	for fn, sec := range []uint8{1, 2} {
		ht := HeaderTypeBridge
		if fn == 0 {
			ht |= HeaderTypeMultiFunction
		}
		rp := s.add(0, 0x1C, uint8(fn), 0x1B36, 0x000C, 0x06, 0x04, 0x00, ht)
		rp.bar(0, 0, 0xFEBD_5000+uint64(fn)<<12, 4<<10)
		rp.cfg[OffPrimaryBus], rp.cfg[OffSecondaryBus], rp.cfg[OffSubordinateBus] = 0, sec, sec
		rp.caps(OffCapPtr, [2]uint16{0x10, 0x54}, [2]uint16{0x05, 0x48}, [2]uint16{0x01, 0x40})
	}

	vnet := s.add(1, 0, 0, 0x1AF4, 0x1041, 0x02, 0x00, 0x00, 0x00)
	vnet.bar(1, 0, 0xFE80_0000, 4<<10)
	vnet.bar(4, BARMemType64|BARPrefetchable, 0x80_0000_0000, 16<<10)
	vnet.caps(OffCapPtr, [2]uint16{0x11, 0xDC}, [2]uint16{0x09, 0x84}, [2]uint16{0x10, 0x40})

	s.add(0, 0x1F, 0, 0x8086, 0x2918, 0x06, 0x01, 0x00, HeaderTypeMultiFunction)
	sata := s.add(0, 0x1F, 2, 0x8086, 0x2922, 0x01, 0x06, 0x01, 0x00)
	sata.bar(4, BARIO, 0xC040, 32)
	sata.bar(5, 0, 0xFEBD_1000, 4<<10)
	sata.caps(OffCapPtr, [2]uint16{0x05, 0x80}, [2]uint16{0x12, 0xA8})
	sata.w16(OffCommand, CommandIO|CommandMemory|CommandMaster)
	sata.w16(OffStatus, sata.r16(OffStatus)|0x4000) // signalled system error, RW1C
	smbus := s.add(0, 0x1F, 3, 0x8086, 0x2930, 0x0C, 0x05, 0x00, 0x00)
	smbus.bar(4, BARIO, 0x0700, 64)
	return s
}
