package x86emu

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests/vcpu"
)

type stringKind uint8

const (
	kindMOVS stringKind = iota
	kindSTOS
	kindLODS
)

// stringShape returns what a string instruction does and its element size.
func stringShape(op x86asm.Op) (stringKind, uint8) {
	switch op {
	case x86asm.MOVSB:
		return kindMOVS, 1
	case x86asm.MOVSW:
		return kindMOVS, 2
	case x86asm.MOVSD:
		return kindMOVS, 4
	case x86asm.MOVSQ:
		return kindMOVS, 8
	case x86asm.STOSB:
		return kindSTOS, 1
	case x86asm.STOSW:
		return kindSTOS, 2
	case x86asm.STOSD:
		return kindSTOS, 4
	case x86asm.STOSQ:
		return kindSTOS, 8
	case x86asm.LODSB:
		return kindLODS, 1
	case x86asm.LODSW:
		return kindLODS, 2
	case x86asm.LODSD:
		return kindLODS, 4
	}
	return kindLODS, 8
}

// hasRep reports a REP prefix. F2 (REPNE) repeats MOVS, STOS and LODS
// like F3 does: only CMPS and SCAS test ZF (Intel SDM Vol. 2B, REP).
func hasRep(in *x86asm.Inst) bool {
	for _, p := range in.Prefix {
		if p == 0 {
			break
		}
		if b := p & 0xff; b == 0xf3 || b == 0xf2 {
			return true
		}
	}
	return false
}

// stringCursor caches the translation of the page one operand of a string
// instruction is in, so that a REP instruction walks the guest's page
// tables once per page rather than once per element.
type stringCursor struct {
	acc     access
	valid   bool
	linPage uint64
	gpaPage uint64
	device  bool
}

// elemLoc is where one element goes: guest-physical gpa for n1 bytes and,
// for an element crossing a page boundary in RAM, gpa2 for the rest.
type elemLoc struct {
	gpa, gpa2 uint64
	n1        uint8
	device    bool
}

// page translates the page holding lin and decides whether it is device
// memory: the faulting page is, and so is any address guest RAM refuses,
// which reaches the MMIO bus as it would on a PC.
func (e *Emulator) page(c *stringCursor, lin uint64, f *vcpu.NPFExit) (gpaPage uint64, device bool, err error) {
	linPage := lin &^ pageMask
	if c.valid && c.linPage == linPage {
		return c.gpaPage, c.device, nil
	}
	gpa, err := e.translate(lin, c.acc)
	if err != nil {
		return 0, false, err
	}
	c.valid, c.linPage, c.gpaPage = true, linPage, gpa&^pageMask
	c.device = c.gpaPage == f.GPA&^pageMask ||
		e.m.mem.ReadGuest(c.gpaPage, e.scratch[:1]) != nil
	return c.gpaPage, c.device, nil
}

func (e *Emulator) locate(c *stringCursor, lin uint64, size uint8, f *vcpu.NPFExit) (elemLoc, error) {
	pg, dev, err := e.page(c, lin, f)
	if err != nil {
		return elemLoc{}, err
	}
	off := lin & pageMask
	loc := elemLoc{gpa: pg | off, n1: size, device: dev}
	if off+uint64(size) <= pageSize {
		return loc, nil
	}
	loc.n1 = uint8(pageSize - off)
	lin2 := lin + uint64(loc.n1)
	if e.m.mode != 64 {
		lin2 &= 0xffff_ffff
	}
	pg2, dev2, err := e.page(c, lin2, f)
	if err != nil {
		return elemLoc{}, err
	}
	if dev || dev2 {
		return elemLoc{}, e.unsupported(&e.inst, fmt.Sprintf("string element at linear %#x crosses a page boundary into device memory", lin))
	}
	loc.gpa2 = pg2
	return loc, nil
}

func (l *elemLoc) covers(gpa uint64, size uint8) bool {
	return l.device && gpa-l.gpa < uint64(size)
}

func (e *Emulator) readElem(l *elemLoc, size uint8, mmio MMIOHandler) (uint64, error) {
	if l.device {
		return mmio.ReadMMIO(l.gpa, size) & sizeMask(size), nil
	}
	b := e.scratch[:8]
	clear(b)
	if err := e.m.mem.ReadGuest(l.gpa, b[:l.n1]); err != nil {
		return 0, &GuestMemoryError{GPA: l.gpa, What: "string operand", Err: err}
	}
	if l.n1 < size {
		if err := e.m.mem.ReadGuest(l.gpa2, b[l.n1:size]); err != nil {
			return 0, &GuestMemoryError{GPA: l.gpa2, What: "string operand", Err: err}
		}
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (e *Emulator) writeElem(l *elemLoc, size uint8, v uint64, mmio MMIOHandler) error {
	if l.device {
		mmio.WriteMMIO(l.gpa, size, v&sizeMask(size))
		return nil
	}
	b := e.scratch[:8]
	binary.LittleEndian.PutUint64(b, v)
	if err := e.m.mem.WriteGuest(l.gpa, b[:l.n1]); err != nil {
		return &GuestMemoryError{GPA: l.gpa, What: "string operand", Err: err}
	}
	if l.n1 < size {
		if err := e.m.mem.WriteGuest(l.gpa2, b[l.n1:size]); err != nil {
			return &GuestMemoryError{GPA: l.gpa2, What: "string operand", Err: err}
		}
	}
	return nil
}

// stringOp emulates MOVS, STOS and LODS, with or without REP (Intel SDM
// Vol. 2B, MOVS/STOS/LODS and REP). Both addresses of every element are
// translated before the element is accessed, so that a page fault stops the
// instruction before a device read with side effects. done is false when
// the REP count is not exhausted after MaxRepeat iterations.
func (e *Emulator) stringOp(mmio MMIOHandler, f *vcpu.NPFExit) (done bool, err error) {
	in := &e.inst
	cpu := e.m.cpu
	kind, size := stringShape(in.Op)
	rep := hasRep(in)
	aw := uint8(in.AddrSize / 8)
	amask := addrMask(in.AddrSize)

	count := uint64(1)
	if rep {
		count = cpu.GPR(vcpu.RCX) & amask
		if count == 0 {
			return true, nil
		}
	}
	limit := uint64(e.MaxRepeat)
	if limit == 0 {
		limit = DefaultMaxRepeat
	}
	n := min(count, limit)
	stride := uint64(size)
	if e.m.rflags&FlagDF != 0 {
		stride = -stride
	}

	srcSeg := vcpu.DS
	if kind != kindSTOS {
		if m, ok := in.Args[1].(x86asm.Mem); ok {
			srcSeg = segmentOf(m)
		}
	}
	si := cpu.GPR(vcpu.RSI) & amask
	di := cpu.GPR(vcpu.RDI) & amask
	src := stringCursor{acc: accessRead}
	dst := stringCursor{acc: accessWrite}

	var i uint64
	for i = 0; i < n; i++ {
		var sl, dl elemLoc
		if kind != kindSTOS {
			if sl, err = e.locate(&src, e.linear(srcSeg, si), size, f); err != nil {
				break
			}
		}
		if kind != kindLODS {
			if dl, err = e.locate(&dst, e.linear(vcpu.ES, di), size, f); err != nil {
				break
			}
		}
		if i == 0 {
			hit := (kind != kindSTOS && !f.Write && sl.covers(f.GPA, size)) ||
				(kind != kindLODS && dl.covers(f.GPA, size))
			if !hit {
				return false, e.mismatch(0, f, "no element of the first iteration is at the faulting address")
			}
		}
		var v uint64
		if kind == kindSTOS {
			v = cpu.GPR(vcpu.RAX) & sizeMask(size)
		} else if v, err = e.readElem(&sl, size, mmio); err != nil {
			break
		}
		if kind == kindLODS {
			e.setGPR(vcpu.RAX, size, false, v)
		} else if err = e.writeElem(&dl, size, v, mmio); err != nil {
			break
		}
		si = (si + stride) & amask
		di = (di + stride) & amask
	}

	// Registers record the completed iterations, on success and on a
	// fault alike, as the CPU leaves them (Intel SDM Vol. 2B, REP).
	if i > 0 {
		if kind != kindSTOS {
			e.setGPRWidth(vcpu.RSI, aw, si)
		}
		if kind != kindLODS {
			e.setGPRWidth(vcpu.RDI, aw, di)
		}
		if rep {
			e.setGPRWidth(vcpu.RCX, aw, count-i)
		}
	}
	if err != nil {
		return false, err
	}
	return i == count, nil
}
