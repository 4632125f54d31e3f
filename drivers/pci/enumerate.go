package pci

import (
	"errors"
	"fmt"
	"sort"
)

// BAR is one decoded base address register.
type BAR struct {
	// Index is the BAR's number (0-5); a 64-bit BAR also uses Index+1.
	Index        int
	IO           bool // I/O space; else memory space
	Is64         bool // 64-bit memory BAR
	Prefetchable bool
	Address      uint64
	// Size in bytes, set only when enumerating with SizeBARs; 0 otherwise.
	Size uint64
}

// Capability is one entry of the capability list in the first 256 bytes.
type Capability struct {
	ID     uint8
	Offset uint16
}

// ExtendedCapability is one PCI Express extended capability (offset 0x100
// onwards, PCIe 5.0 7.6.2 header).
type ExtendedCapability struct {
	ID      uint16
	Version uint8
	Offset  uint16
}

// Device is one function found by Enumerate.
type Device struct {
	Segment    uint16
	Bus        uint8
	Dev        uint8
	Fn         uint8
	VendorID   uint16
	DeviceID   uint16
	Class      uint8
	Subclass   uint8
	ProgIF     uint8
	Revision   uint8
	HeaderType uint8 // including the multi-function bit
	IRQLine    uint8
	IRQPin     uint8 // 0 none, 1-4 INTA#-INTD#
	// SecondaryBus and SubordinateBus are a bridge's bus numbers as
	// firmware left them (0 for other functions).
	SecondaryBus   uint8
	SubordinateBus uint8
	BARs           []BAR
	Capabilities   []Capability
	// ExtendedCapabilities is filled only through a mechanism that
	// reaches extended space (ECAM) and for PCI Express functions.
	ExtendedCapabilities []ExtendedCapability
}

// Layout returns the header layout (HeaderTypeNormal, HeaderTypeBridge or
// HeaderTypeCardBus).
func (d *Device) Layout() uint8 { return d.HeaderType & HeaderTypeMask }

// IsBridge reports a PCI-to-PCI or CardBus bridge header.
func (d *Device) IsBridge() bool {
	return d.Layout() == HeaderTypeBridge || d.Layout() == HeaderTypeCardBus
}

// IsMultiFunction reports the header type's multi-function bit.
func (d *Device) IsMultiFunction() bool { return d.HeaderType&HeaderTypeMultiFunction != 0 }

// Capability returns the offset of the first capability with id.
func (d *Device) Capability(id uint8) (uint16, bool) {
	for _, c := range d.Capabilities {
		if c.ID == id {
			return c.Offset, true
		}
	}
	return 0, false
}

// Address returns the function's address as SSSS:BB:DD.F.
func (d *Device) Address() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", d.Segment, d.Bus, d.Dev, d.Fn)
}

// String formats the function the way lspci -nn summarizes it, e.g.
// "0000:00:1f.2 8086:2922 SATA controller (AHCI) [class 01.06.01]".
func (d *Device) String() string {
	return fmt.Sprintf("%s %04x:%04x %s [class %02x.%02x.%02x]",
		d.Address(), d.VendorID, d.DeviceID, d.ClassName(), d.Class, d.Subclass, d.ProgIF)
}

// Options tunes Enumerate.
type Options struct {
	// SizeBARs sizes every BAR by writing all ones and reading back, with
	// I/O and memory decoding off in the command register meanwhile; the
	// BAR and command register are restored afterwards. Do it only while
	// no one else is using the devices: while a bridge's decoding is off,
	// nothing behind it (a PCI serial console included) is reachable.
	SizeBARs bool
	// RootBuses are the buses to start from: the _BBN of each host bridge
	// in ACPI. Empty means the lowest bus the mechanism reaches (0 for the
	// port mechanism, MCFG's start bus for ECAM).
	RootBuses []uint8
}

// maxProblems bounds the anomalies Enumerate reports.
const maxProblems = 16

// Enumerate finds every function reachable through cs: each root bus, then
// every bus behind a bridge, at the secondary bus number firmware assigned
// (nothing is renumbered). Each bus is scanned at most once, so a bridge
// pointing back at a scanned bus, or at a bus no higher than its own, cannot
// make the walk loop; such bridges and those whose bus numbers the mechanism
// cannot reach are reported in the error.
//
// The returned devices, sorted by bus, device and function, are valid even
// when the error is not nil: the error describes what was skipped.
func Enumerate(cs ConfigSpace, segment uint16, opts ...Options) ([]Device, error) {
	if cs == nil {
		return nil, errors.New("pci: no configuration space")
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	lo, hi := uint8(0), uint8(255)
	if r, ok := cs.(BusRanger); ok {
		lo, hi = r.BusRange()
	}
	extended := false
	if x, ok := cs.(ExtendedSpace); ok {
		extended = x.HasExtendedSpace()
	}
	e := enumerator{cs: cs, segment: segment, opts: o, lo: lo, hi: hi, extended: extended}

	roots := o.RootBuses
	if len(roots) == 0 {
		roots = []uint8{lo}
	}
	for _, root := range roots {
		if root < lo || root > hi {
			e.problem(fmt.Errorf("root bus %#x is outside the reachable buses %#x-%#x", root, lo, hi))
			continue
		}
		if e.visited[root] {
			continue
		}
		e.visited[root] = true
		e.queue = append(e.queue, root)
	}
	for len(e.queue) > 0 {
		bus := e.queue[0]
		e.queue = e.queue[1:]
		e.scanBus(bus)
	}
	sort.Slice(e.devices, func(i, j int) bool {
		a, b := &e.devices[i], &e.devices[j]
		if a.Bus != b.Bus {
			return a.Bus < b.Bus
		}
		if a.Dev != b.Dev {
			return a.Dev < b.Dev
		}
		return a.Fn < b.Fn
	})
	var err error
	if len(e.problems) > 0 {
		err = fmt.Errorf("pci: segment %04x: %w", segment, errors.Join(e.problems...))
	}
	return e.devices, err
}

type enumerator struct {
	cs       ConfigSpace
	segment  uint16
	opts     Options
	lo, hi   uint8
	extended bool
	visited  [256]bool
	queue    []uint8
	devices  []Device
	problems []error
	dropped  int
}

func (e *enumerator) problem(err error) {
	if len(e.problems) < maxProblems {
		e.problems = append(e.problems, err)
		return
	}
	e.dropped++
	if e.dropped == 1 {
		e.problems[maxProblems-1] = errors.New("more problems not shown")
	}
}

// absent reports a vendor/device dword that means "no function": all ones
// (master abort), all zeros, or either half all ones (Linux treats the last
// three the same, drivers/pci/probe.c).
func absent(id uint32) bool {
	return id == 0xFFFF_FFFF || id == 0 || id&0xFFFF == 0xFFFF || id>>16 == 0xFFFF
}

func (e *enumerator) scanBus(bus uint8) {
	for dev := uint8(0); dev <= MaxDevice; dev++ {
		if absent(e.cs.Read32(bus, dev, 0, OffVendorID)) {
			continue
		}
		ht := Read8(e.cs, bus, dev, 0, OffHeaderType)
		last := uint8(0)
		if ht&HeaderTypeMultiFunction != 0 {
			last = MaxFunction
		}
		for fn := uint8(0); fn <= last; fn++ {
			id := e.cs.Read32(bus, dev, fn, OffVendorID)
			if absent(id) {
				continue // functions of a multi-function device may have holes
			}
			e.addFunction(bus, dev, fn, id)
		}
	}
}

func (e *enumerator) addFunction(bus, dev, fn uint8, id uint32) {
	cs := e.cs
	classReg := cs.Read32(bus, dev, fn, OffRevision)
	irq := cs.Read32(bus, dev, fn, OffIRQLine)
	d := Device{
		Segment:    e.segment,
		Bus:        bus,
		Dev:        dev,
		Fn:         fn,
		VendorID:   uint16(id),
		DeviceID:   uint16(id >> 16),
		Revision:   uint8(classReg),
		ProgIF:     uint8(classReg >> 8),
		Subclass:   uint8(classReg >> 16),
		Class:      uint8(classReg >> 24),
		HeaderType: Read8(cs, bus, dev, fn, OffHeaderType),
		IRQLine:    uint8(irq),
		IRQPin:     uint8(irq >> 8),
	}
	var bars int
	capPtr := OffCapPtr
	switch d.Layout() {
	case HeaderTypeNormal:
		bars = 6
	case HeaderTypeBridge:
		bars = 2
	case HeaderTypeCardBus:
		bars = 1
		capPtr = OffCardBusCapPtr
	default:
		// Unknown layout: identify it, read nothing else.
		e.devices = append(e.devices, d)
		return
	}
	d.BARs = e.readBARs(bus, dev, fn, bars)
	if Read16(cs, bus, dev, fn, OffStatus)&StatusCapList != 0 {
		d.Capabilities = walkCapabilities(cs, bus, dev, fn, capPtr)
	}
	if e.extended {
		if _, ok := d.Capability(CapIDPCIExpress); ok {
			d.ExtendedCapabilities = walkExtendedCapabilities(cs, bus, dev, fn)
		}
	}
	if d.IsBridge() {
		d.SecondaryBus = Read8(cs, bus, dev, fn, OffSecondaryBus)
		d.SubordinateBus = Read8(cs, bus, dev, fn, OffSubordinateBus)
		e.followBridge(&d)
	}
	e.devices = append(e.devices, d)
}

func (e *enumerator) followBridge(d *Device) {
	sec, sub := d.SecondaryBus, d.SubordinateBus
	switch {
	case sec == 0 && sub == 0:
		// Firmware did not configure this bridge (nothing behind it,
		// or a hot-plug slot left for the OS): nothing to scan.
	case sec <= d.Bus:
		e.problem(fmt.Errorf("bridge %s: secondary bus %#x is not above its own bus %#x", d.Address(), sec, d.Bus))
	case sub < sec:
		e.problem(fmt.Errorf("bridge %s: subordinate bus %#x is below secondary bus %#x", d.Address(), sub, sec))
	case sec < e.lo || sec > e.hi:
		e.problem(fmt.Errorf("bridge %s: secondary bus %#x is outside the reachable buses %#x-%#x", d.Address(), sec, e.lo, e.hi))
	case e.visited[sec]:
		e.problem(fmt.Errorf("bridge %s: secondary bus %#x was already scanned (bus numbers overlap)", d.Address(), sec))
	default:
		e.visited[sec] = true
		e.queue = append(e.queue, sec)
	}
}

// readBARs decodes n BAR registers, sizing them if asked.
func (e *enumerator) readBARs(bus, dev, fn uint8, n int) []BAR {
	cs := e.cs
	var raw, mask [6]uint32
	for i := 0; i < n; i++ {
		raw[i] = cs.Read32(bus, dev, fn, OffBAR0+uint16(4*i))
	}
	if e.opts.SizeBARs {
		cmd := Read16(cs, bus, dev, fn, OffCommand)
		if cmd&(CommandIO|CommandMemory) != 0 {
			writeCommand(cs, bus, dev, fn, cmd&^(CommandIO|CommandMemory))
		}
		for i := 0; i < n; i++ {
			off := OffBAR0 + uint16(4*i)
			cs.Write32(bus, dev, fn, off, 0xFFFF_FFFF)
			mask[i] = cs.Read32(bus, dev, fn, off)
			cs.Write32(bus, dev, fn, off, raw[i])
		}
		if cmd&(CommandIO|CommandMemory) != 0 {
			writeCommand(cs, bus, dev, fn, cmd)
		}
	}
	var bars []BAR
	for i := 0; i < n; i++ {
		b := BAR{Index: i}
		v := raw[i]
		sized := e.opts.SizeBARs
		switch {
		case v&BARIO != 0:
			b.IO = true
			b.Address = uint64(v & BARIOAddrMask)
			if sized {
				m := mask[i] & BARIOAddrMask
				if m != 0 && m&0xFFFF_0000 == 0 {
					m |= 0xFFFF_0000 // 16-bit I/O decoder: upper half hardwired 0
				}
				b.Size = uint64(m & -m)
			}
		case v&BARMemTypeMask == BARMemType64 && i+1 < n:
			b.Is64 = true
			b.Prefetchable = v&BARPrefetchable != 0
			b.Address = uint64(raw[i+1])<<32 | uint64(v&BARMemAddrMask)
			if sized {
				m := uint64(mask[i+1])<<32 | uint64(mask[i]&BARMemAddrMask)
				b.Size = m & -m
			}
			i++ // the upper half is not a BAR of its own
		default:
			// 32-bit memory, the legacy below-1M type, or a 64-bit
			// BAR in the last slot (malformed): decode the low dword.
			b.Prefetchable = v&BARPrefetchable != 0
			b.Address = uint64(v & BARMemAddrMask)
			if sized {
				m := mask[i] & BARMemAddrMask
				b.Size = uint64(m & -m)
			}
		}
		if (sized && b.Size != 0) || (!sized && v != 0) {
			bars = append(bars, b)
		}
	}
	return bars
}

// walkCapabilities follows the capability list from the pointer at ptrOff,
// stopping at a null pointer, a pointer into the header, a repeat, or after
// MaxCapabilities entries.
func walkCapabilities(cs ConfigSpace, bus, dev, fn uint8, ptrOff uint16) []Capability {
	var caps []Capability
	var seen [LegacyConfigSize / 4]bool
	ptr := uint16(Read8(cs, bus, dev, fn, ptrOff)) &^ 3
	for len(caps) < MaxCapabilities && ptr >= CapListStart && !seen[ptr/4] {
		seen[ptr/4] = true
		hdr := Read16(cs, bus, dev, fn, ptr)
		if uint8(hdr) == 0xFF {
			break // reads as all ones: the function went away
		}
		caps = append(caps, Capability{ID: uint8(hdr), Offset: ptr})
		ptr = uint16(hdr>>8) &^ 3
	}
	return caps
}

// walkExtendedCapabilities follows the extended capability list from 0x100
// with the same guards.
func walkExtendedCapabilities(cs ConfigSpace, bus, dev, fn uint8) []ExtendedCapability {
	var caps []ExtendedCapability
	var seen [ExtendedConfigSize / 4]bool
	off := ExtCapStart
	for len(caps) < MaxExtCapabilities && off >= ExtCapStart && off < ExtendedConfigSize && !seen[off/4] {
		seen[off/4] = true
		hdr := cs.Read32(bus, dev, fn, off)
		if hdr == 0 || hdr == 0xFFFF_FFFF {
			break // no extended capabilities (PCIe 5.0 7.6.2), or none reachable
		}
		caps = append(caps, ExtendedCapability{
			ID:      uint16(hdr & extCapIDMask),
			Version: uint8(hdr>>extCapVersionShift) & 0xF,
			Offset:  off,
		})
		off = uint16(hdr>>extCapNextShift) &^ 3
	}
	return caps
}
