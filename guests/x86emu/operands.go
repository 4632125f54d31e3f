package x86emu

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests/vcpu"
)

// sizeMask is the value mask of a size-byte operand.
func sizeMask(size uint8) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint64(size)) - 1
}

// gprOf maps an x86asm register to the GPR holding it, its width in bytes
// and whether it is a legacy high-byte register (AH, CH, DH, BH: bits 15:8
// of RAX..RBX, encodable only without REX; Intel SDM Vol. 1, 3.4.1.1).
func gprOf(r x86asm.Reg) (g vcpu.GPR, size uint8, high, ok bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return vcpu.GPR(r - x86asm.AL), 1, false, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return vcpu.GPR(r - x86asm.AH), 1, true, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return vcpu.GPR(r-x86asm.SPB) + vcpu.RSP, 1, false, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return vcpu.GPR(r - x86asm.AX), 2, false, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return vcpu.GPR(r - x86asm.EAX), 4, false, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return vcpu.GPR(r - x86asm.RAX), 8, false, true
	}
	return 0, 0, false, false
}

// readReg returns the value of a general-purpose register operand.
func (e *Emulator) readReg(r x86asm.Reg) (v uint64, size uint8, err error) {
	g, size, high, ok := gprOf(r)
	if !ok {
		return 0, 0, e.unsupported(&e.inst, fmt.Sprintf("operand %v is not a general-purpose register", r))
	}
	v = e.m.cpu.GPR(g)
	if high {
		return v >> 8 & 0xff, 1, nil
	}
	return v & sizeMask(size), size, nil
}

// writeReg stores v in a general-purpose register operand with the CPU's
// rules (Intel SDM Vol. 1, 3.4.1.1): a 32-bit write zero-extends into the
// 64-bit register, 8- and 16-bit writes keep the other bits.
func (e *Emulator) writeReg(r x86asm.Reg, v uint64) error {
	g, size, high, ok := gprOf(r)
	if !ok {
		return e.unsupported(&e.inst, fmt.Sprintf("operand %v is not a general-purpose register", r))
	}
	e.setGPR(g, size, high, v)
	return nil
}

func (e *Emulator) setGPR(g vcpu.GPR, size uint8, high bool, v uint64) {
	cpu := e.m.cpu
	switch {
	case high:
		cpu.SetGPR(g, cpu.GPR(g)&^0xff00|(v&0xff)<<8)
	case size == 8:
		cpu.SetGPR(g, v)
	case size == 4:
		cpu.SetGPR(g, v&0xffff_ffff)
	default:
		m := sizeMask(size)
		cpu.SetGPR(g, cpu.GPR(g)&^m|v&m)
	}
}

// setGPRWidth writes the low width bytes of a counter or index register as
// string instructions update them: like a register write of that width.
func (e *Emulator) setGPRWidth(g vcpu.GPR, width uint8, v uint64) {
	e.setGPR(g, width, false, v)
}

// operandValue is the value of a register or immediate source operand,
// truncated to size bytes; x86asm sign-extends immediates as the CPU does.
func (e *Emulator) operandValue(a x86asm.Arg, size uint8) (uint64, error) {
	switch a := a.(type) {
	case x86asm.Reg:
		v, _, err := e.readReg(a)
		return v & sizeMask(size), err
	case x86asm.Imm:
		return uint64(a) & sizeMask(size), nil
	}
	return 0, e.unsupported(&e.inst, "unexpected source operand form")
}

// addrMask is the wrap-around of effective addresses for an address size.
func addrMask(addrSize int) uint64 {
	switch addrSize {
	case 16:
		return 0xffff
	case 32:
		return 0xffff_ffff
	}
	return ^uint64(0)
}

// effectiveAddress computes base + index*scale + displacement modulo the
// address size (Intel SDM Vol. 1, 3.7.5); a RIP-relative base is the
// address of the next instruction.
func (e *Emulator) effectiveAddress(mem x86asm.Mem) (uint64, error) {
	var ea uint64
	switch mem.Base {
	case 0:
	case x86asm.RIP, x86asm.EIP:
		ea = e.m.rip + uint64(e.inst.Len)
	default:
		v, _, err := e.readReg(mem.Base)
		if err != nil {
			return 0, err
		}
		ea = v
	}
	if mem.Index != 0 {
		v, _, err := e.readReg(mem.Index)
		if err != nil {
			return 0, err
		}
		ea += v * uint64(mem.Scale)
	}
	ea += e.displacement(mem)
	return ea & addrMask(e.inst.AddrSize), nil
}

// displacement is a memory operand's displacement as the address
// computation adds it. x/arch's decoder keeps a 32-bit displacement
// zero-extended, but with 64-bit addressing it is sign-extended (Intel SDM
// Vol. 2A, 2.2.1.3): Linux reads its local APIC as [reg-0xa03000]. The
// moffs forms of MOV (opcodes A0-A3) carry a full 64-bit address instead
// (Vol. 2B, MOV), which must stay as decoded.
func (e *Emulator) displacement(mem x86asm.Mem) uint64 {
	if op := e.inst.Opcode >> 24; e.inst.AddrSize == 64 && (op < 0xa0 || op > 0xa3) {
		return uint64(int64(int32(mem.Disp)))
	}
	return uint64(mem.Disp)
}

// segmentOf is the segment a memory operand uses: its override, else SS
// for stack-based addressing (base SP or BP) and DS for the rest (Intel
// SDM Vol. 1, 3.7.4, Table 3-5).
func segmentOf(mem x86asm.Mem) vcpu.SegmentRegister {
	switch mem.Segment {
	case x86asm.ES:
		return vcpu.ES
	case x86asm.CS:
		return vcpu.CS
	case x86asm.SS:
		return vcpu.SS
	case x86asm.DS:
		return vcpu.DS
	case x86asm.FS:
		return vcpu.FS
	case x86asm.GS:
		return vcpu.GS
	}
	switch mem.Base {
	case x86asm.SP, x86asm.BP, x86asm.ESP, x86asm.EBP, x86asm.RSP, x86asm.RBP:
		return vcpu.SS
	}
	return vcpu.DS
}

// linear turns an offset in segment seg into a linear address. In 64-bit
// mode only FS and GS have a base (Intel SDM Vol. 3A, 3.2.4); elsewhere
// linear addresses wrap at 4 GiB.
func (e *Emulator) linear(seg vcpu.SegmentRegister, offset uint64) uint64 {
	if e.m.mode == 64 {
		if seg == vcpu.FS || seg == vcpu.GS {
			return e.m.cpu.Segment(seg).Base + offset
		}
		return offset
	}
	return (e.m.cpu.Segment(seg).Base + offset) & 0xffff_ffff
}

// memArg returns the instruction's single memory operand.
func (e *Emulator) memArg() (x86asm.Mem, int, bool) {
	for i, a := range e.inst.Args {
		if a == nil {
			break
		}
		if m, ok := a.(x86asm.Mem); ok {
			return m, i, true
		}
	}
	return x86asm.Mem{}, -1, false
}

// faultAddress checks that the access of size bytes at linear address lin
// is the one the nested page fault reported and returns its guest-physical
// address. Paging keeps the offset within a 4 KiB page, so the check holds
// whether or not the guest pages; the exit's guest linear address, where
// the hardware gives it (Intel), pins the access exactly.
func (e *Emulator) faultAddress(lin uint64, size uint8, write bool, f *vcpu.NPFExit) (uint64, error) {
	if f.Write && !write {
		return 0, e.mismatch(lin, f, "the exit reports a write, the instruction only reads")
	}
	var off uint64
	switch {
	case f.GuestLinearValid:
		off = f.GuestLinear - lin
	case e.m.paging == pagingNone:
		off = f.GPA - lin
	default:
		off = (f.GPA - lin) & pageMask
	}
	if off >= uint64(size) {
		return 0, e.mismatch(lin, f, fmt.Sprintf("a %d-byte operand at linear %#x does not cover it", size, lin))
	}
	gpa := f.GPA - off
	if gpa&pageMask+uint64(size) > pageSize {
		return 0, e.unsupported(&e.inst, fmt.Sprintf("MMIO access at %#x crosses a page boundary", gpa))
	}
	return gpa, nil
}

func (e *Emulator) mismatch(lin uint64, f *vcpu.NPFExit, why string) error {
	return fmt.Errorf("x86emu: %w: %s at gpa %#x (%s)", ErrFaultMismatch,
		x86asm.IntelSyntax(e.inst, e.m.rip, nil), f.GPA, why)
}
