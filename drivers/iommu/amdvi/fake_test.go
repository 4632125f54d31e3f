package amdvi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// ram is flat fake physical memory at [base, base+len(b)). An access
// outside it panics: the driver touched memory it was never given.
type ram struct {
	base uint64
	b    []byte
}

func newRAM(base, size uint64) *ram { return &ram{base: base, b: make([]byte, size)} }

func (m *ram) off(a, n uint64) uint64 {
	if a < m.base || a-m.base+n > uint64(len(m.b)) {
		panic(fmt.Sprintf("physical access %#x+%d outside the fake RAM [%#x, %#x)", a, n, m.base, m.base+uint64(len(m.b))))
	}
	return a - m.base
}

func (m *ram) Read64(a uint64) uint64     { return binary.LittleEndian.Uint64(m.b[m.off(a, 8):]) }
func (m *ram) Write64(a uint64, v uint64) { binary.LittleEndian.PutUint64(m.b[m.off(a, 8):], v) }

// bump hands out zeroed RAM to the driver (iommu.PageAllocator) and to
// ept (ept.Allocator); nothing is reused.
type bump struct {
	m      *ram
	next   uint64
	fail   error  // returned by Alloc when set
	misfit uint64 // added to Alloc's result when set
	sizes  map[uint64]uint64
}

func (p *bump) Alloc(size, align uint64) (uint64, error) {
	if p.fail != nil {
		return 0, p.fail
	}
	a := (p.next + align - 1) &^ (align - 1)
	p.m.off(a, size)
	p.next = a + size
	if p.sizes == nil {
		p.sizes = map[uint64]uint64{}
	}
	p.sizes[a] = size
	return a + p.misfit, nil
}

func (p *bump) AllocTable() (uint64, error) { return p.Alloc(4096, 4096) }
func (p *bump) FreeTable(uint64)            {}

// fakeUnit is a reactive AMD-Vi register file (#48882 3.4) over fake RAM:
// writing the Command Buffer Tail runs the commands up to it (#48882 2.4),
// the unit logs events into the event log (#48882 2.5), and dma walks the
// device table and I/O page tables as the unit would (#48882 2.2), through
// a device-table cache and an IOTLB that only invalidation commands empty.
type fakeUnit struct {
	t    testing.TB
	base uint64
	ram  *ram
	regs map[uint64]uint64
	efr  uint64

	w1c        uint64 // Status bits set and not yet cleared
	cmdHalted  bool   // stopped on an illegal command
	evtStopped bool   // stopped on an overflow

	// Knobs.
	stall        bool   // never fetch commands
	stuckRun     bool   // Run bits stay set
	rejectOpcode uint64 // treat this opcode as illegal
	strictDTE    bool   // flag DTE bits beyond the ones the driver may set
	// qemuHead writes the Head Pointer before wrapping it, as QEMU's
	// amdvi_cmdbuf_run does: after the last slot it reads as the ring
	// size until the next command.
	qemuHead bool
	quiet    bool // record no commands
	// qemuEvtBase models QEMU since 10.1 (hw/i386/amd_iommu.c,
	// amdvi_handle_evtbase_write): an Event Log Base write is ignored
	// while Status.EventLogInt is set, and otherwise resets the head and
	// tail to 0.
	qemuEvtBase bool

	// Observations.
	cmds       []command
	cmdAddrs   []uint64
	violations []string
	dropped    int

	dteCache map[uint16][4]uint64
	iotlb    map[tlbKey]tlbEntry
}

type tlbKey struct {
	domain uint16
	page   uint64
}

type tlbEntry struct {
	page uint64
	r, w bool
}

// QEMU 7.2's Extended Feature Register (hw/i386/amd_iommu.h,
// AMDVI_EXT_FEATURES): PreFSup, PPRSup, GTSup, IASup, GASup, HESup,
// HATS = 10b, GATS = 10b.
const qemuEFR = 0x29d3

func newFakeUnit(t testing.TB, base uint64, m *ram, efr uint64) *fakeUnit {
	return &fakeUnit{t: t, base: base, ram: m, efr: efr, regs: map[uint64]uint64{}, strictDTE: true,
		dteCache: map[uint16][4]uint64{}, iotlb: map[tlbKey]tlbEntry{}}
}

func (f *fakeUnit) violate(format string, args ...any) {
	f.violations = append(f.violations, fmt.Sprintf(format, args...))
}

func (f *fakeUnit) reg(addr uint64, width int) (uint64, bool) {
	off := addr - f.base
	if addr < f.base || off >= mmioSize || width != 8 || off%8 != 0 {
		f.t.Errorf("fake AMD-Vi: %d-byte access at %#x (offset %#x): want aligned 64-bit accesses in the 16 KiB register space", width, addr, off)
		return 0, false
	}
	return off, true
}

func (f *fakeUnit) Read8(a uint64) uint8       { f.reg(a, 1); return 0 }
func (f *fakeUnit) Read16(a uint64) uint16     { f.reg(a, 2); return 0 }
func (f *fakeUnit) Read32(a uint64) uint32     { f.reg(a, 4); return 0 }
func (f *fakeUnit) Write8(a uint64, v uint8)   { f.reg(a, 1) }
func (f *fakeUnit) Write16(a uint64, v uint16) { f.reg(a, 2) }
func (f *fakeUnit) Write32(a uint64, v uint32) { f.reg(a, 4) }

func (f *fakeUnit) Read64(a uint64) uint64 {
	off, ok := f.reg(a, 8)
	if !ok {
		return 0
	}
	switch off {
	case regExtFeatures:
		return f.efr
	case regStatus:
		s := f.w1c
		if f.cmdRunning() || f.stuckRun {
			s |= statusCmdBufRun
		}
		if f.evtRunning() || f.stuckRun {
			s |= statusEventLogRun
		}
		return s
	}
	return f.regs[off]
}

func (f *fakeUnit) Write64(a uint64, v uint64) {
	off, ok := f.reg(a, 8)
	if !ok {
		return
	}
	ctrl := f.regs[regControl]
	switch off {
	case regExtFeatures:
		f.violate("wrote the read-only EFR")
	case regStatus:
		f.w1c &^= v & (statusEventOverflow | statusEventLogInt | statusComWaitInt)
	case regControl:
		f.regs[off] = v
		if ctrl&ctrlCmdBufEn == 0 && v&ctrlCmdBufEn != 0 {
			f.cmdHalted = false
		}
		if ctrl&ctrlEventLogEn == 0 && v&ctrlEventLogEn != 0 && f.w1c&statusEventOverflow == 0 {
			f.evtStopped = false
		}
		f.runCommands()
	case regDevTabBase:
		if ctrl&ctrlIommuEn != 0 {
			f.violate("wrote the device table base while IommuEn = 1")
		}
		f.regs[off] = v
	case regCmdBufBase, regCmdBufHead:
		if f.cmdRunning() {
			f.violate("wrote command buffer register %#x while it runs", off)
		}
		f.regs[off] = v
	case regEventLogBase, regEventLogTail:
		if f.evtRunning() {
			f.violate("wrote event log register %#x while it runs", off)
		}
		if off == regEventLogBase && f.qemuEvtBase {
			if f.w1c&statusEventLogInt != 0 {
				return
			}
			f.regs[regEventLogHead], f.regs[regEventLogTail] = 0, 0
		}
		f.regs[off] = v
	case regCmdBufTail:
		f.regs[off] = v
		f.runCommands()
	default:
		f.regs[off] = v
	}
}

func (f *fakeUnit) cmdRunning() bool {
	c := f.regs[regControl]
	return c&ctrlIommuEn != 0 && c&ctrlCmdBufEn != 0 && !f.cmdHalted
}

func (f *fakeUnit) evtRunning() bool {
	c := f.regs[regControl]
	return c&ctrlIommuEn != 0 && c&ctrlEventLogEn != 0 && !f.evtStopped
}

// ring decodes a Command Buffer or Event Log Base Address register.
func ring(reg uint64) (base, size uint64) {
	return reg & dteRootMask, ringEntry << (reg >> 56 & 0xf)
}

func (f *fakeUnit) runCommands() {
	if f.stall || !f.cmdRunning() {
		return
	}
	base, size := ring(f.regs[regCmdBufBase])
	for guard := 0; guard < 1<<20; guard++ {
		head, tail := f.regs[regCmdBufHead]&ringPtrMask, f.regs[regCmdBufTail]&ringPtrMask
		if f.qemuHead && head == size {
			head = 0
		}
		if head == tail {
			return
		}
		if head >= size || tail >= size {
			f.violate("command buffer head %#x / tail %#x beyond %d bytes", head, tail, size)
			f.cmdHalted = true
			return
		}
		at := base + head
		c := command{f.ram.Read64(at), f.ram.Read64(at + 8)}
		if !f.exec(c) {
			f.cmdHalted = true
			f.logEvent(evIllegalCommand<<evCodeShift, at)
			return
		}
		if !f.quiet {
			f.cmds = append(f.cmds, c)
			f.cmdAddrs = append(f.cmdAddrs, at)
		}
		f.regs[regCmdBufHead] = (head + ringEntry) % size
		if f.qemuHead && head+ringEntry == size {
			f.regs[regCmdBufHead] = size
		}
	}
	f.t.Fatal("fake AMD-Vi: command loop did not end")
}

// exec runs one command, checking its reserved bits as QEMU does
// (hw/i386/amd_iommu.c logs ILLEGAL_COMMAND_ERROR for them); false means
// illegal.
func (f *fakeUnit) exec(c command) bool {
	op := c[0] >> 60
	if op == f.rejectOpcode && op != 0 {
		return false
	}
	switch op {
	case cmdCompletionWait:
		if c[0]>>52&0xff != 0 || c[0]&(1<<1) != 0 { // reserved, or I without interrupts set up
			return false
		}
		if c[0]&1 != 0 {
			f.ram.Write64(c[0]&cwAddrMask, c[1])
		}
	case cmdInvalidateDevTab:
		if c[0]>>16&(1<<44-1) != 0 || c[1] != 0 {
			return false
		}
		delete(f.dteCache, uint16(c[0]))
	case cmdInvalidateIOMMUPage:
		if c[0]>>20&0xfff != 0 || c[0]>>48&0xfff != 0 || c[1]>>3&0x1ff != 0 || c[0]&0xfffff != 0 {
			return false
		}
		dom := uint16(c[0] >> 32)
		addr := c[1] &^ 0xfff
		size := uint64(4096)
		if c[1]&ipSize != 0 {
			bit := 12
			for bit < 64 && (addr|0xfff)>>bit&1 == 1 {
				bit++
			}
			if bit >= 51 {
				size = 0 // everything
			} else {
				size = 1 << (bit + 1)
			}
		}
		for k := range f.iotlb {
			if k.domain != dom {
				continue
			}
			if size == 0 || (k.page<<12 >= addr&^(size-1) && k.page<<12 < addr&^(size-1)+size) {
				delete(f.iotlb, k)
			}
		}
	case cmdInvalidateAll:
		if f.efr&efrIASup == 0 || c[0]&(1<<60-1) != 0 || c[1] != 0 {
			return false
		}
		clear(f.dteCache)
		clear(f.iotlb)
	default:
		return false
	}
	return true
}

// logEvent appends a record as the unit does, or sets EventOverflow and
// stops when the log is full.
func (f *fakeUnit) logEvent(lo, hi uint64) bool {
	if !f.evtRunning() {
		f.dropped++
		return false
	}
	base, size := ring(f.regs[regEventLogBase])
	head, tail := f.regs[regEventLogHead]&ringPtrMask, f.regs[regEventLogTail]&ringPtrMask
	next := (tail + ringEntry) % size
	if next == head {
		f.w1c |= statusEventOverflow
		f.evtStopped = true
		f.dropped++
		return false
	}
	f.ram.Write64(base+tail, lo)
	f.ram.Write64(base+tail+8, hi)
	f.regs[regEventLogTail] = next
	return true
}

func (f *fakeUnit) pageFault(id, dom uint16, iova uint64, write bool, flags uint64) {
	lo := uint64(id) | uint64(dom)<<32 | flags | evIOPageFault<<evCodeShift
	if write {
		lo |= evRW
	}
	f.logEvent(lo, iova)
}

var errBlocked = errors.New("blocked")

// dma is device id reading or writing iova: the host address it reaches,
// or errBlocked after logging the event the unit would.
func (f *fakeUnit) dma(id uint16, iova uint64, write bool) (uint64, error) {
	if f.regs[regControl]&ctrlIommuEn == 0 {
		return iova, nil
	}
	dte, ok := f.dte(id)
	if !ok {
		f.logEvent(uint64(id)|evIllegalDevTableEntry<<evCodeShift, iova)
		return 0, errBlocked
	}
	if ex := f.regs[regExclBase]; ex&1 != 0 && (ex&2 != 0 || dte[1]&(1<<39) != 0) &&
		iova >= ex&dteRootMask && iova <= f.regs[regExclLimit]&dteRootMask|0xfff {
		return iova, nil
	}
	w0 := dte[0]
	if w0&dteV == 0 {
		return iova, nil // V = 0: untranslated
	}
	dom := uint16(dte[1])
	if w0&dteTV == 0 {
		f.pageFault(id, dom, iova, write, 0)
		return 0, errBlocked
	}
	r, w := w0&dteIR != 0, w0&dteIW != 0
	allowed := func() bool { return (write && w) || (!write && r) }
	mode := int(w0 >> dteMode & 7)
	switch {
	case mode == 0: // translation disabled: IR and IW decide
		if allowed() {
			return iova, nil
		}
		f.pageFault(id, dom, iova, write, evPR|evPE)
		return 0, errBlocked
	case mode == 7:
		f.logEvent(uint64(id)|evIllegalDevTableEntry<<evCodeShift, iova)
		return 0, errBlocked
	}
	if e, hit := f.iotlb[tlbKey{dom, iova >> 12}]; hit {
		r, w = r && e.r, w && e.w
		if allowed() {
			return e.page | iova&0xfff, nil
		}
		f.pageFault(id, dom, iova, write, evPR|evPE)
		return 0, errBlocked
	}
	if mode < 6 && iova>>(12+9*mode) != 0 {
		f.pageFault(id, dom, iova, write, 0)
		return 0, errBlocked
	}
	table, level := w0&dteRootMask, mode
	for step := 0; step < 6; step++ {
		pte := f.ram.Read64(table + 8*(iova>>(12+9*(level-1))&511))
		if pte&1 == 0 {
			f.pageFault(id, dom, iova, write, 0)
			return 0, errBlocked
		}
		r, w = r && pte&dteIR != 0, w && pte&dteIW != 0
		next := int(pte >> 9 & 7)
		if next == 0 {
			span := uint64(1) << (12 + 9*(level-1))
			hpa := pte&dteRootMask&^(span-1) | iova&(span-1)
			if !allowed() {
				f.pageFault(id, dom, iova, write, evPR|evPE)
				return 0, errBlocked
			}
			f.iotlb[tlbKey{dom, iova >> 12}] = tlbEntry{page: hpa &^ 0xfff, r: r, w: w}
			return hpa, nil
		}
		// Next level 7 (sized pages) is never written by ept; a next
		// level not below this one is malformed.
		if next == 7 || next >= level {
			f.pageFault(id, dom, iova, write, evPR|evRZ)
			return 0, errBlocked
		}
		// Skipped levels translate only zero address bits.
		for l := next + 1; l < level; l++ {
			if iova>>(12+9*(l-1))&511 != 0 {
				f.pageFault(id, dom, iova, write, 0)
				return 0, errBlocked
			}
		}
		table, level = pte&dteRootMask, next
	}
	f.t.Fatal("fake AMD-Vi: page walk did not end")
	return 0, errBlocked
}

// dte reads device table entry id through the cache.
func (f *fakeUnit) dte(id uint16) ([4]uint64, bool) {
	if e, ok := f.dteCache[id]; ok {
		return e, true
	}
	reg := f.regs[regDevTabBase]
	entries := ((reg & 0x1ff) + 1) * 4096 / dteBytes
	if uint64(id) >= entries {
		return [4]uint64{}, false
	}
	a := reg&dteRootMask + uint64(id)*dteBytes
	e := [4]uint64{f.ram.Read64(a), f.ram.Read64(a + 8), f.ram.Read64(a + 16), f.ram.Read64(a + 24)}
	// QEMU's reserved DTE bits (hw/i386/amd_iommu.h): 6:2 and 63.
	if e[0]&(0x7c|1<<63) != 0 {
		return e, false
	}
	if f.strictDTE && (e[0]&^(dteV|dteTV|dteModeMask|dteRootMask|dteIR|dteIW) != 0 || e[1]&^dteDomainMask != 0 || e[2] != 0 || e[3] != 0) {
		f.violate("DTE %#04x = %#x: bits the driver never sets", id, e)
		return e, false
	}
	f.dteCache[id] = e
	return e, true
}

// inject logs an event record, as a test's stand-in for the hardware.
func (f *fakeUnit) inject(lo, hi uint64) bool { return f.logEvent(lo, hi) }

// commands returns the executed commands from index from on, by opcode.
func opcodes(cs []command) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c[0] >> 60
	}
	return out
}
