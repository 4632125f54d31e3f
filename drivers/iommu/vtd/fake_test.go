package vtd

import (
	"fmt"
	"math/bits"
	"testing"

	"tamavisor/drivers/hw/hwfake"
	"tamavisor/drivers/iommu"
)

// Capability registers of QEMU 7.2's intel-iommu, read from a live
// `qemu-system-x86_64 -machine q35 -device intel-iommu,...` with the
// monitor's `xp` at 0xfed90008 / 0xfed90010 (VER_REG reads 0x10: 1.0).
const (
	qemuVer = 0x10
	// Defaults (aw-bits=39): SAGAW 39-bit only, MGAW 39.
	qemuCap39 = 0x00d2008c22260206
	// aw-bits=48: SAGAW 39 and 48, MGAW 48.
	qemuCap48 = 0x00d2008c222f0606
	// aw-bits=48,caching-mode=on: CM (bit 7) too.
	qemuCap48CM = 0x00d2008c222f0686
	// aw-bits=48,dma-drain=off,pt=off: no DRD/DWD.
	qemuCap48NoDrain = 0x0012008c222f0606
	// Defaults: QI, IR, PT, IRO 0xf (IOTLB registers at 0xf0), MHMV 0xf;
	// C = 0 (QEMU claims non-coherent walks).
	qemuECap = 0x0000000000f00f4a
	// intremap=off: no IR, no MHMV.
	qemuECapNoIR = 0x0000000000000f42
	// snoop-control=on,device-iotlb=on: SC and DT too.
	qemuECapSCDT = 0x0000000000f00fce
	// dma-drain=off,pt=off: no PT.
	qemuECapNoPT = 0x0000000000f00f0a

	qemuBase = 0xfed90000
)

// fakeUnit is a VT-d unit in software: its registers (an hw.MMIO at base),
// the GCMD/GSTS command protocol, the invalidation queue and the register
// invalidation interface, a context cache and an IOTLB, fault recording,
// and a DMA walker that translates a request through the tables in memory
// as VT-d spec chapter 3 and 9 say, recording faults as chapter 7 does.
// Protocol violations by the driver are collected in problems.
type fakeUnit struct {
	mem  *hwfake.Memory
	base uint64
	ver  uint32
	cap  uint64
	ecap uint64
	haw  uint

	gsts        uint32
	rtaddr      uint64
	root        uint64 // latched by SRTP
	irta        uint64
	irtLatched  uint64 // latched by SIRTP
	iqa         uint64
	iqh, iqt    uint64
	fsts        uint32 // PPF is computed from the records
	fectl       uint32
	ccmd        uint64
	iva, iotlbR uint64
	pmen        uint32
	ics         uint32
	records     [][2]uint64

	// Behaviour knobs.
	lag      int    // GSTS reads before a command completes
	stuck    uint32 // GCMD commands that never complete
	qiStuck  bool   // the queue is never processed
	regStuck bool   // CCMD_REG / IOTLB_REG never complete
	caigZero bool   // register invalidations report "not performed"
	badWait  bool   // wait descriptors are rejected (IQE)

	pendingLeft int // GSTS reads until pendingDone runs; -1: never
	pendingDone func()

	ctxCache map[uint16][2]uint64
	iotlb    map[iotlbKey]iotlbEntry

	gcmdWrites []uint32
	events     []string
	problems   []string
	quiet      bool
}

type iotlbKey struct {
	did  uint16
	page uint64
}

type iotlbEntry struct {
	hpa  uint64 // of the 4 KiB page
	perm uint64 // R = 1, W = 2
}

func newFakeUnit(mem *hwfake.Memory, base uint64, cap, ecap uint64, haw uint) *fakeUnit {
	f := &fakeUnit{
		mem: mem, base: base, ver: qemuVer, cap: cap, ecap: ecap, haw: haw,
		ctxCache: map[uint16][2]uint64{},
		iotlb:    map[iotlbKey]iotlbEntry{},
	}
	f.records = make([][2]uint64, int(cap>>capNFRShift&capNFRMask)+1)
	f.pmen = 0
	return f
}

func (f *fakeUnit) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

func (f *fakeUnit) event(format string, args ...any) {
	if !f.quiet {
		f.events = append(f.events, fmt.Sprintf(format, args...))
	}
}

func (f *fakeUnit) check(t testing.TB) {
	t.Helper()
	for _, p := range f.problems {
		t.Error("driver broke the VT-d protocol: " + p)
	}
	f.problems = nil
}

func (f *fakeUnit) fro() uint64 { return (f.cap >> capFROShift & capFROMask) * 16 }
func (f *fakeUnit) iro() uint64 { return (f.ecap >> ecapIROShift & ecapIROMask) * 16 }

// hw.MMIO: only the register window exists.

func (f *fakeUnit) Read8(a uint64) uint8   { f.problem("8-bit read at %#x", a); return 0xff }
func (f *fakeUnit) Read16(a uint64) uint16 { f.problem("16-bit read at %#x", a); return 0xffff }
func (f *fakeUnit) Write8(a uint64, v uint8) {
	f.problem("8-bit write at %#x", a)
}
func (f *fakeUnit) Write16(a uint64, v uint16) {
	f.problem("16-bit write at %#x", a)
}
func (f *fakeUnit) Read32(a uint64) uint32     { return uint32(f.read(a, 4)) }
func (f *fakeUnit) Read64(a uint64) uint64     { return f.read(a, 8) }
func (f *fakeUnit) Write32(a uint64, v uint32) { f.write(a, 4, uint64(v)) }
func (f *fakeUnit) Write64(a uint64, v uint64) { f.write(a, 8, v) }

func (f *fakeUnit) width(off uint64, got, want int) bool {
	if got != want {
		f.problem("%d-bit access to the %d-bit register at offset %#x", got*8, want*8, off)
		return false
	}
	return true
}

func (f *fakeUnit) recordIndex(off uint64) (int, uint64, bool) {
	fro := f.fro()
	if off < fro || off >= fro+uint64(len(f.records))*16 {
		return 0, 0, false
	}
	return int((off - fro) / 16), (off - fro) % 16, true
}

func (f *fakeUnit) read(a uint64, w int) uint64 {
	off := a - f.base
	if a < f.base || off >= 0x1000 {
		f.problem("MMIO read outside the register set at %#x", a)
		return ^uint64(0)
	}
	if i, sub, ok := f.recordIndex(off); ok {
		switch {
		case sub == 0 && w == 8:
			return f.records[i][0]
		case sub == 8 && w == 8:
			return f.records[i][1]
		case sub == 8 && w == 4:
			return uint64(uint32(f.records[i][1]))
		case sub == 12 && w == 4:
			return f.records[i][1] >> 32
		}
		f.problem("%d-bit read of fault record %d at +%d", w*8, i, sub)
		return 0
	}
	switch off {
	case regVER:
		f.width(off, w, 4)
		return uint64(f.ver)
	case regCAP:
		f.width(off, w, 8)
		return f.cap
	case regECAP:
		f.width(off, w, 8)
		return f.ecap
	case regGSTS:
		f.width(off, w, 4)
		f.tick()
		return uint64(f.gsts)
	case regRTADDR:
		f.width(off, w, 8)
		return f.rtaddr
	case regCCMD:
		f.width(off, w, 8)
		return f.ccmd
	case regFSTS:
		f.width(off, w, 4)
		v := f.fsts
		for _, r := range f.records {
			if r[1]&frcdF != 0 {
				v |= fstsPPF
			}
		}
		return uint64(v)
	case regFECTL:
		f.width(off, w, 4)
		return uint64(f.fectl)
	case regPMEN:
		f.width(off, w, 4)
		return uint64(f.pmen)
	case regIQH:
		f.width(off, w, 8)
		return f.iqh
	case regIQT:
		f.width(off, w, 8)
		return f.iqt
	case regIQA:
		f.width(off, w, 8)
		return f.iqa
	case regICS:
		f.width(off, w, 4)
		return uint64(f.ics)
	case regIRTA:
		f.width(off, w, 8)
		return f.irta
	case f.iro() + regIVAOffset:
		f.width(off, w, 8)
		return f.iva
	case f.iro() + regIOTLBOffset:
		f.width(off, w, 8)
		return f.iotlbR
	}
	f.problem("read of unknown register at offset %#x", off)
	return 0
}

func (f *fakeUnit) write(a uint64, w int, v uint64) {
	off := a - f.base
	if a < f.base || off >= 0x1000 {
		f.problem("MMIO write outside the register set at %#x", a)
		return
	}
	if i, sub, ok := f.recordIndex(off); ok {
		switch {
		case sub == 12 && w == 4:
			if v&^uint64(frcdFClearDword) != 0 {
				f.problem("fault record write %#x sets read-only bits", v)
			}
			if v&frcdFClearDword != 0 {
				f.records[i][1] &^= frcdF
			}
		case sub == 8 && w == 8:
			if v&^uint64(frcdF) != 0 {
				f.problem("fault record write %#x sets read-only bits", v)
			}
			if v&frcdF != 0 {
				f.records[i][1] &^= frcdF
			}
		default:
			f.problem("%d-bit write of fault record %d at +%d", w*8, i, sub)
		}
		return
	}
	switch off {
	case regGCMD:
		if f.width(off, w, 4) {
			f.writeGCMD(uint32(v))
		}
	case regRTADDR:
		f.width(off, w, 8)
		f.rtaddr = v
	case regCCMD:
		if f.width(off, w, 8) {
			f.writeCCMD(v)
		}
	case regFSTS:
		f.width(off, w, 4)
		f.fsts &^= uint32(v) & (fstsPFO | fstsAFO | fstsAPF | fstsIQE | fstsICE | fstsITE)
	case regFECTL:
		f.width(off, w, 4)
		f.fectl = uint32(v) & fectlIM
	case regPMEN:
		f.width(off, w, 4)
		f.pmen = uint32(v) & pmenEPM
		if f.pmen != 0 {
			f.pmen |= pmenPRS
		}
	case regIQT:
		if f.width(off, w, 8) {
			f.writeIQT(v)
		}
	case regIQA:
		f.width(off, w, 8)
		if f.gsts&gQIE != 0 {
			f.problem("IQA_REG written with queued invalidation on")
		}
		f.iqa = v
	case regICS:
		f.width(off, w, 4)
		f.ics &^= uint32(v) & icsIWC
	case regIRTA:
		f.width(off, w, 8)
		f.irta = v
	case f.iro() + regIVAOffset:
		f.width(off, w, 8)
		f.iva = v
	case f.iro() + regIOTLBOffset:
		if f.width(off, w, 8) {
			f.writeIOTLB(v)
		}
	default:
		f.problem("write of %#x to unknown or read-only register at offset %#x", v, off)
	}
}

// tick counts a GSTS read towards a pending command's completion.
func (f *fakeUnit) tick() {
	if f.pendingLeft > 0 {
		f.pendingLeft--
		if f.pendingLeft == 0 {
			done := f.pendingDone
			f.pendingDone = nil
			done()
		}
	}
}

const oneShotBits = gSRTP | gSFL | gWBF | gSIRTP

// writeGCMD models GCMD_REG: one command per write (11.4), completing
// after f.lag GSTS reads.
func (f *fakeUnit) writeGCMD(v uint32) {
	if !f.quiet {
		f.gcmdWrites = append(f.gcmdWrites, v)
	}
	if f.pendingLeft != 0 {
		f.problem("GCMD_REG written (%#x) while a command is in progress", v)
	}
	if v&0x7fffff != 0 {
		f.problem("GCMD_REG write %#x sets reserved bits", v)
	}
	persistent := f.gsts & gPersistent
	oneShot := v & oneShotBits
	changed := (v & gPersistent) ^ persistent
	if n := bits.OnesCount32(changed) + bits.OnesCount32(oneShot); n != 1 {
		f.problem("GCMD_REG write %#x with GSTS_REG %#x issues %d commands, not one", v, f.gsts, n)
	}
	cmd := changed | oneShot
	var done func()
	switch cmd {
	case gSRTP:
		f.gsts &^= gSRTP
		done = func() {
			f.root = f.rtaddr
			f.gsts |= gSRTP
		}
	case gSIRTP:
		f.gsts &^= gSIRTP
		done = func() {
			f.irtLatched = f.irta
			f.gsts |= gSIRTP
		}
	case gWBF:
		f.gsts |= gWBF
		done = func() {
			if !f.quiet {
				f.event("wbf")
			}
			f.gsts &^= gWBF
		}
	case gTE:
		on := v&gTE != 0
		if on && f.root == 0 {
			f.problem("translation enabled with no root table pointer set")
		}
		done = func() { f.setStatus(gTE, on) }
	case gQIE:
		on := v&gQIE != 0
		if !on && f.iqh != f.iqt {
			f.problem("queued invalidation disabled with descriptors pending")
		}
		done = func() {
			if on {
				f.iqh = 0
			}
			f.setStatus(gQIE, on)
		}
	case gIRE:
		on := v&gIRE != 0
		if on && f.irtLatched == 0 {
			f.problem("interrupt remapping enabled with no table pointer set")
		}
		done = func() { f.setStatus(gIRE, on) }
	case gCFI:
		on := v&gCFI != 0
		done = func() { f.setStatus(gCFI, on) }
	default:
		return
	}
	switch {
	case f.stuck&cmd != 0:
		f.pendingLeft = -1
	case f.lag == 0:
		done()
	default:
		f.pendingLeft, f.pendingDone = f.lag, done
	}
}

func (f *fakeUnit) setStatus(bit uint32, on bool) {
	if on {
		f.gsts |= bit
	} else {
		f.gsts &^= bit
	}
}

// Register-based invalidation (6.5.1).

func (f *fakeUnit) writeCCMD(v uint64) {
	if f.gsts&gQIE != 0 {
		f.problem("CCMD_REG used while queued invalidation is on")
	}
	f.ccmd = v
	if v&ccmdICC == 0 {
		return
	}
	gran := int(v >> ccmdCIRGShift & 3)
	f.invalidateContext(gran, uint16(v), uint16(v>>ccmdSIDShift), int(v>>ccmdFMShift&3))
	if f.regStuck {
		return
	}
	aig := uint64(gran)
	if f.caigZero {
		aig = 0
	}
	f.ccmd = v&^ccmdICC&^(3<<ccmdCAIGShift) | aig<<ccmdCAIGShift
}

func (f *fakeUnit) writeIOTLB(v uint64) {
	if f.gsts&gQIE != 0 {
		f.problem("IOTLB_REG used while queued invalidation is on")
	}
	f.iotlbR = v
	if v&iotlbIVT == 0 {
		return
	}
	gran := int(v >> iotlbIIRGShift & 3)
	f.invalidateIOTLB(gran, uint16(v>>iotlbDIDShift), f.iva, v&iotlbDR != 0, v&iotlbDW != 0)
	if f.regStuck {
		return
	}
	aig := uint64(gran)
	if f.caigZero {
		aig = 0
	}
	f.iotlbR = v&^iotlbIVT&^(3<<iotlbIAIGShift) | aig<<iotlbIAIGShift
}

func (f *fakeUnit) invalidateContext(gran int, did, sid uint16, fm int) {
	switch gran {
	case granGlobal:
		if !f.quiet {
			f.event("cc global")
		}
		clear(f.ctxCache)
	case granDomain:
		if !f.quiet {
			f.event("cc domain did=%d", did)
		}
		for k, e := range f.ctxCache {
			if contextDomain(e[1]) == did {
				delete(f.ctxCache, k)
			}
		}
	case granDevice:
		if fm != 0 {
			f.problem("context invalidation with function mask %d", fm)
		}
		if !f.quiet {
			f.event("cc device did=%d sid=%#04x", did, sid)
		}
		// Entries of sid tagged with did only: a caching-mode unit tags
		// not-present entries with domain-id 0 (6.1).
		if e, ok := f.ctxCache[sid]; ok && contextDomain(e[1]) == did {
			delete(f.ctxCache, sid)
		}
	default:
		f.problem("context invalidation with granularity 0")
	}
}

func (f *fakeUnit) invalidateIOTLB(gran int, did uint16, iva uint64, dr, dw bool) {
	drain := ""
	switch {
	case dr && dw:
		drain = " dr dw"
	case dr:
		drain = " dr"
	case dw:
		drain = " dw"
	}
	switch gran {
	case granGlobal:
		if !f.quiet {
			f.event("iotlb global%s", drain)
		}
		clear(f.iotlb)
	case granDomain:
		if !f.quiet {
			f.event("iotlb domain did=%d%s", did, drain)
		}
		for k := range f.iotlb {
			if k.did == did {
				delete(f.iotlb, k)
			}
		}
	case granDevice:
		if !f.quiet {
			f.event("iotlb page did=%d addr=%#x%s", did, iva&^0xfff, drain)
		}
		delete(f.iotlb, iotlbKey{did, iva >> 12})
	default:
		f.problem("IOTLB invalidation with granularity 0")
	}
}

// Queued invalidation (6.5.2).

func (f *fakeUnit) writeIQT(v uint64) {
	if v&^uint64(iqPtrMask) != 0 {
		f.problem("IQT_REG write %#x sets bits outside QT", v)
	}
	f.iqt = v & iqPtrMask
	if f.gsts&gQIE != 0 && !f.qiStuck {
		f.processQueue()
	}
}

func (f *fakeUnit) processQueue() {
	if f.iqa&(1<<11) != 0 {
		f.problem("256-bit descriptors selected")
	}
	size := uint64(4096) << (f.iqa & 7)
	base := f.iqa &^ 0xfff
	for n := 0; f.iqh != f.iqt && n < 1<<16; n++ {
		if f.fsts&fstsIQE != 0 {
			return
		}
		lo, hi := f.mem.Read64(base+f.iqh), f.mem.Read64(base+f.iqh+8)
		if !f.descriptor(lo, hi) {
			f.fsts |= fstsIQE
			return
		}
		f.iqh = (f.iqh + 16) % size
	}
}

// descriptor carries out one descriptor, checking its reserved fields as
// QEMU does; false is an invalid descriptor (IQE).
func (f *fakeUnit) descriptor(lo, hi uint64) bool {
	switch lo & 0xf {
	case descCC:
		if lo&0xfffc00000000ffc0 != 0 || hi != 0 {
			return false
		}
		g := int(lo >> 4 & 3)
		if g == 0 {
			return false
		}
		f.invalidateContext(g, uint16(lo>>16), uint16(lo>>32), int(lo>>48&3))
	case descIOTLB:
		if lo&0xffffffff0000ff00 != 0 || hi&0xf80 != 0 {
			return false
		}
		g := int(lo >> 4 & 3)
		if g == 0 {
			return false
		}
		f.invalidateIOTLB(g, uint16(lo>>16), hi, lo&descIOTLBDR != 0, lo&descIOTLBDW != 0)
	case descIEC:
		if lo&0xffff0000_07ffffe0 != 0 || hi != 0 {
			return false
		}
		if lo&descIECIndexSel != 0 {
			if !f.quiet {
				f.event("iec index=%d", lo>>32&0xffff)
			}
		} else {
			if !f.quiet {
				f.event("iec global")
			}
		}
	case descWait:
		if lo&0xffffff80 != 0 || hi&3 != 0 || f.badWait {
			return false
		}
		if lo&descWaitSW != 0 {
			if !f.quiet {
				f.event("wait")
			}
			f.mem.Write32(hi, uint32(lo>>32))
		}
		if lo&descWaitIF != 0 {
			f.ics |= icsIWC
		}
	default:
		return false
	}
	return true
}

// DMA (chapter 3, 9): translate a request from src, or fault.

func (f *fakeUnit) addrMask() uint64 { return (uint64(1)<<f.haw - 1) &^ 0xfff }

// dma returns the host address an access of iova by src reaches, or the
// fault reason it was blocked with (and recorded, as hardware does).
func (f *fakeUnit) dma(src iommu.Source, iova uint64, write bool) (uint64, uint8) {
	if f.gsts&gTE == 0 {
		return iova, 0
	}
	sid := src.RequesterID()
	hpa, code := f.translate(sid, iova, write)
	if code != 0 {
		f.recordFault(sid, iova, write, code)
	}
	return hpa, code
}

func (f *fakeUnit) translate(sid uint16, iova uint64, write bool) (uint64, uint8) {
	ce, ok := f.ctxCache[sid]
	if !ok {
		re := f.root&^0xfff + uint64(sid>>8)*16
		rlo, rhi := f.mem.Read64(re), f.mem.Read64(re+8)
		if rlo&rootPresent == 0 {
			return 0, 0x1
		}
		if rlo&0xffe != 0 || rhi != 0 || rlo&^f.addrMask()&^0xfff != 0 {
			return 0, 0xa
		}
		slot := rlo&f.addrMask() + uint64(sid&0xff)*16
		ce = [2]uint64{f.mem.Read64(slot), f.mem.Read64(slot + 8)}
		if ce[0]&contextPresent == 0 {
			if f.cap&capCM != 0 {
				f.ctxCache[sid] = [2]uint64{ce[0], 0} // cached under domain-id 0
			}
			return 0, 0x2
		}
		f.ctxCache[sid] = ce
	}
	lo, hi := ce[0], ce[1]
	if lo&contextPresent == 0 {
		return 0, 0x2
	}
	if lo&0xff0 != 0 || hi&0xffffffffff000080 != 0 || lo&^f.addrMask()&^0xfff != 0 {
		return 0, 0xb
	}
	aw := hi & contextAWMask
	sagaw := f.cap >> capSAGAWShift & capSAGAWMask
	if aw == 0 || aw > 3 || sagaw&(1<<aw) == 0 {
		return 0, 0x3
	}
	switch lo >> contextTTShift & 3 {
	case 0:
	case 2:
		if f.ecap&ecapPT != 0 {
			return iova, 0
		}
		return 0, 0x3
	default:
		return 0, 0x3
	}
	mgaw := uint(f.cap>>capMGAWShift&capMGAWMask) + 1
	limit := 30 + 9*uint(aw)
	if mgaw < limit {
		limit = mgaw
	}
	if iova>>limit != 0 {
		return 0, 0x4
	}
	did := contextDomain(hi)
	if e, ok := f.iotlb[iotlbKey{did, iova >> 12}]; ok {
		return f.access(e, iova, write)
	}
	table := lo & f.addrMask()
	perm := uint64(3)
	sllps := f.cap >> capSLLPSShift & 0xf
	for level := int(aw) + 2; level >= 1; level-- {
		e := f.mem.Read64(table + (iova>>(12+9*uint(level-1))&511)*8)
		if e&3 == 0 {
			if write {
				return 0, 0x5
			}
			return 0, 0x6
		}
		leaf := level == 1 || (level <= 3 && e&vtdPS != 0)
		if e&(uint64(1)<<62) != 0 || e&^f.addrMask()&0x000f_ffff_ffff_f000 != 0 ||
			(e&vtdSNP != 0 && (!leaf || f.ecap&ecapSC == 0)) || (level > 3 && e&vtdPS != 0) {
			return 0, 0xc
		}
		perm &= e & 3
		if !leaf {
			table = e & f.addrMask()
			continue
		}
		span := uint64(1) << (12 + 9*uint(level-1))
		if (level == 2 && sllps&1 == 0) || (level == 3 && sllps&2 == 0) || e&f.addrMask()&(span-1) != 0 {
			return 0, 0xc
		}
		page := e&f.addrMask()&^(span-1) + iova&(span-1)&^0xfff
		entry := iotlbEntry{hpa: page, perm: perm}
		f.iotlb[iotlbKey{did, iova >> 12}] = entry
		return f.access(entry, iova, write)
	}
	return 0, 0xc
}

const (
	vtdPS  = 1 << 7
	vtdSNP = 1 << 11
)

func (f *fakeUnit) access(e iotlbEntry, iova uint64, write bool) (uint64, uint8) {
	if write && e.perm&2 == 0 {
		return 0, 0x5
	}
	if !write && e.perm&1 == 0 {
		return 0, 0x6
	}
	return e.hpa | iova&0xfff, 0
}

// recordFault writes a primary fault record (7.2.1): at FSTS.FRI, or
// overflow when that record is still in use.
func (f *fakeUnit) recordFault(sid uint16, addr uint64, write bool, code uint8) {
	if f.fsts&fstsPFO != 0 {
		return
	}
	fri := int(f.fsts >> fstsFRIShift & fstsFRIMask)
	if f.records[fri][1]&frcdF != 0 {
		f.fsts |= fstsPFO
		return
	}
	hi := frcdF | uint64(code)<<frcdFRShift | uint64(sid)
	if !write {
		hi |= frcdT1
	}
	f.records[fri] = [2]uint64{addr &^ 0xfff, hi}
	f.fsts = f.fsts&^(fstsFRIMask<<fstsFRIShift) | uint32((fri+1)%len(f.records))<<fstsFRIShift
}

// interrupt models an MSI from src through interrupt remapping (5.1):
// compatibility format (address bit 4 clear) passes when IR is off or CFI
// is set (and EIME clear); remappable format is looked up in the table.
// It returns the fault reason, 0 if the interrupt was delivered.
func (f *fakeUnit) interrupt(src iommu.Source, addr uint64, data uint32) uint8 {
	if f.gsts&gIRE == 0 {
		return 0
	}
	sid := src.RequesterID()
	if addr&(1<<4) == 0 {
		if f.irtLatched&irtaEIME != 0 || f.gsts&gCFI == 0 {
			f.recordFault(sid, 0, true, 0x25)
			return 0x25
		}
		return 0
	}
	index := addr>>5&0x7fff | (addr>>2&1)<<15
	if addr&(1<<3) != 0 { // SHV: subhandle in the data
		index += uint64(data & 0xffff)
	}
	entries := uint64(2) << (f.irtLatched & 0xf)
	fail := func(code uint8) uint8 {
		f.recordFault(sid, index<<frcdIRIndexShift, true, code)
		return code
	}
	if index >= entries {
		return fail(0x21)
	}
	slot := f.irtLatched&^0xfff + index*16
	e, err := DecodeInterruptEntry(f.mem.Read64(slot), f.mem.Read64(slot+8), f.irtLatched&irtaEIME != 0)
	if !e.Present {
		return fail(0x22)
	}
	if err != nil {
		return fail(0x24)
	}
	if e.SourceValidation == 1 && e.SourceID != sid {
		return fail(0x26)
	}
	return 0
}
