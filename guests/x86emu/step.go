package x86emu

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests/vcpu"
)

// Step emulates the instruction at the guest's CS:RIP, whose access to
// fault.GPA stopped the guest with a nested page fault, and returns its
// length for the caller's VCPU.AdvanceRIP. Step never moves RIP itself.
// The caller calls it only for faults on device addresses (not guest RAM
// the nested page tables merely protect): every access to fault.GPA's page
// goes to mmio.
//
// A REP string instruction runs at most MaxRepeat iterations per Step. When
// its count is not exhausted Step returns length 0 with RCX, RSI and RDI
// advanced past the iterations done: the caller re-enters the guest at the
// same RIP, the CPU resumes the instruction and the next device access
// faults again, which also gives pending interrupts their chance.
//
// Errors: *PageFault for a #PF the guest's paging raised (registers reflect
// the iterations of a REP instruction completed before it, as on the CPU),
// *UnsupportedError for instructions outside the supported set,
// ErrFaultMismatch when the decoded instruction does not touch fault.GPA,
// ErrNonCanonical and *GuestMemoryError for addresses the guest can not
// use. On an error no register has changed except for completed REP
// iterations.
func (e *Emulator) Step(cpu vcpu.VCPU, mem vcpu.Memory, mmio MMIOHandler, fault vcpu.NPFExit) (length int, err error) {
	e.begin(cpu, mem)
	defer e.end()
	if fault.Execute {
		return 0, fmt.Errorf("x86emu: guest fetched instructions from device memory at gpa %#x", fault.GPA)
	}
	if err := e.fetchAndDecode(); err != nil {
		return 0, err
	}
	in := &e.inst
	switch in.Op {
	case x86asm.MOV, x86asm.MOVNTI:
		err = e.mov(mmio, &fault)
	case x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
		err = e.movExtend(mmio, &fault)
	case x86asm.ADD:
		err = e.arith(aluADD, mmio, &fault)
	case x86asm.ADC:
		err = e.arith(aluADC, mmio, &fault)
	case x86asm.SUB:
		err = e.arith(aluSUB, mmio, &fault)
	case x86asm.SBB:
		err = e.arith(aluSBB, mmio, &fault)
	case x86asm.CMP:
		err = e.arith(aluCMP, mmio, &fault)
	case x86asm.AND:
		err = e.arith(aluAND, mmio, &fault)
	case x86asm.OR:
		err = e.arith(aluOR, mmio, &fault)
	case x86asm.XOR:
		err = e.arith(aluXOR, mmio, &fault)
	case x86asm.TEST:
		err = e.arith(aluTEST, mmio, &fault)
	case x86asm.XCHG:
		err = e.xchg(mmio, &fault)
	case x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC:
		err = e.bitTest(mmio, &fault)
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ,
		x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ:
		var done bool
		done, err = e.stringOp(mmio, &fault)
		if err == nil && !done {
			return 0, nil
		}
	default:
		err = e.unsupported(in, "not an emulated MMIO instruction")
	}
	if err != nil {
		return 0, err
	}
	return in.Len, nil
}

// deviceOperand locates the instruction's memory operand and returns the
// guest-physical address of its access of size bytes, offset by adjust
// bytes (BT with a register bit offset).
func (e *Emulator) deviceOperand(size uint8, adjust int64, write bool, f *vcpu.NPFExit) (uint64, error) {
	mem, _, ok := e.memArg()
	if !ok {
		return 0, e.mismatch(0, f, "no memory operand")
	}
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return 0, e.unsupported(&e.inst, fmt.Sprintf("%d-byte memory operand", size))
	}
	ea, err := e.effectiveAddress(mem)
	if err != nil {
		return 0, err
	}
	ea = (ea + uint64(adjust)) & addrMask(e.inst.AddrSize)
	lin := e.linear(segmentOf(mem), ea)
	return e.faultAddress(lin, size, write, f)
}

// mov: MOV r/m, r; MOV r, r/m; MOV r/m, imm; MOV moffs forms; MOVNTI.
func (e *Emulator) mov(mmio MMIOHandler, f *vcpu.NPFExit) error {
	in := &e.inst
	size := uint8(in.MemBytes)
	if _, isMem := in.Args[0].(x86asm.Mem); isMem {
		v, err := e.operandValue(in.Args[1], size)
		if err != nil {
			return err
		}
		gpa, err := e.deviceOperand(size, 0, true, f)
		if err != nil {
			return err
		}
		mmio.WriteMMIO(gpa, size, v)
		return nil
	}
	dst, ok := in.Args[0].(x86asm.Reg)
	if !ok {
		return e.unsupported(in, "unexpected destination operand")
	}
	if _, _, _, ok := gprOf(dst); !ok {
		return e.unsupported(in, "destination is not a general-purpose register")
	}
	gpa, err := e.deviceOperand(size, 0, false, f)
	if err != nil {
		return err
	}
	return e.writeReg(dst, mmio.ReadMMIO(gpa, size)&sizeMask(size))
}

// movExtend: MOVZX, MOVSX, MOVSXD loading from the device.
func (e *Emulator) movExtend(mmio MMIOHandler, f *vcpu.NPFExit) error {
	in := &e.inst
	dst, ok := in.Args[0].(x86asm.Reg)
	if !ok {
		return e.unsupported(in, "unexpected destination operand")
	}
	if _, _, _, ok := gprOf(dst); !ok {
		return e.unsupported(in, "destination is not a general-purpose register")
	}
	size := uint8(in.MemBytes)
	gpa, err := e.deviceOperand(size, 0, false, f)
	if err != nil {
		return err
	}
	v := mmio.ReadMMIO(gpa, size) & sizeMask(size)
	if in.Op != x86asm.MOVZX {
		v = signExtend(v, size)
	}
	return e.writeReg(dst, v)
}

func signExtend(v uint64, size uint8) uint64 {
	shift := 64 - 8*uint(size)
	return uint64(int64(v<<shift) >> shift)
}

// arith: the two-operand ALU instructions with the device as destination
// (op r/m, r and op r/m, imm) or source (op r, r/m).
func (e *Emulator) arith(op aluOp, mmio MMIOHandler, f *vcpu.NPFExit) error {
	in := &e.inst
	size := uint8(in.MemBytes)
	rflags := e.m.rflags
	if _, isMem := in.Args[0].(x86asm.Mem); isMem {
		src, err := e.operandValue(in.Args[1], size)
		if err != nil {
			return err
		}
		gpa, err := e.deviceOperand(size, 0, op.writesResult(), f)
		if err != nil {
			return err
		}
		dst := mmio.ReadMMIO(gpa, size) & sizeMask(size)
		res, flags := alu(op, size, dst, src, rflags)
		if op.writesResult() {
			mmio.WriteMMIO(gpa, size, res)
		}
		e.m.cpu.SetRFLAGS(flags)
		return nil
	}
	dstReg, ok := in.Args[0].(x86asm.Reg)
	if !ok {
		return e.unsupported(in, "unexpected destination operand")
	}
	dst, _, err := e.readReg(dstReg)
	if err != nil {
		return err
	}
	gpa, err := e.deviceOperand(size, 0, false, f)
	if err != nil {
		return err
	}
	src := mmio.ReadMMIO(gpa, size) & sizeMask(size)
	res, flags := alu(op, size, dst, src, rflags)
	if op.writesResult() {
		if err := e.writeReg(dstReg, res); err != nil {
			return err
		}
	}
	e.m.cpu.SetRFLAGS(flags)
	return nil
}

// xchg swaps a register with the device register; flags are unchanged.
func (e *Emulator) xchg(mmio MMIOHandler, f *vcpu.NPFExit) error {
	in := &e.inst
	var reg x86asm.Reg
	for _, a := range in.Args[:2] {
		if r, ok := a.(x86asm.Reg); ok {
			reg = r
		}
	}
	v, _, err := e.readReg(reg)
	if err != nil {
		return err
	}
	size := uint8(in.MemBytes)
	gpa, err := e.deviceOperand(size, 0, true, f)
	if err != nil {
		return err
	}
	old := mmio.ReadMMIO(gpa, size) & sizeMask(size)
	mmio.WriteMMIO(gpa, size, v)
	return e.writeReg(reg, old)
}

// bitTest: BT, BTS, BTR, BTC on the device register. CF receives the bit;
// OF, SF, AF and PF are undefined and ZF unaffected (Intel SDM Vol. 2A,
// BT): all but CF are kept. A register bit offset is a signed offset into
// a bit string that may lie beyond the addressed operand; the CPU then
// accesses the operand-sized word holding the bit.
func (e *Emulator) bitTest(mmio MMIOHandler, f *vcpu.NPFExit) error {
	in := &e.inst
	size := uint8(in.MemBytes)
	if size < 2 || size > 8 {
		return e.unsupported(in, "unexpected operand size")
	}
	width := uint64(size) * 8
	var bit uint64
	var adjust int64
	switch src := in.Args[1].(type) {
	case x86asm.Imm:
		bit = uint64(src) & (width - 1)
	case x86asm.Reg:
		v, _, err := e.readReg(src)
		if err != nil {
			return err
		}
		off := int64(signExtend(v&sizeMask(size), size))
		bit = uint64(off) & (width - 1)
		adjust = (off >> bitsLog2(width)) * int64(size)
	default:
		return e.unsupported(in, "unexpected bit offset operand")
	}
	write := in.Op != x86asm.BT
	gpa, err := e.deviceOperand(size, adjust, write, f)
	if err != nil {
		return err
	}
	old := mmio.ReadMMIO(gpa, size) & sizeMask(size)
	switch in.Op {
	case x86asm.BTS:
		mmio.WriteMMIO(gpa, size, old|1<<bit)
	case x86asm.BTR:
		mmio.WriteMMIO(gpa, size, old&^(1<<bit))
	case x86asm.BTC:
		mmio.WriteMMIO(gpa, size, old^1<<bit)
	}
	flags := e.m.rflags &^ FlagCF
	if old>>bit&1 != 0 {
		flags |= FlagCF
	}
	e.m.cpu.SetRFLAGS(flags)
	return nil
}

func bitsLog2(width uint64) uint {
	switch width {
	case 16:
		return 4
	case 32:
		return 5
	}
	return 6
}
