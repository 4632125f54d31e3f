package x86emu

import "math/bits"

// aluOp is a two-operand integer instruction.
type aluOp uint8

const (
	aluADD aluOp = iota
	aluADC
	aluSUB
	aluSBB
	aluCMP
	aluAND
	aluOR
	aluXOR
	aluTEST
	numALUOps
)

var aluNames = [numALUOps]string{"ADD", "ADC", "SUB", "SBB", "CMP", "AND", "OR", "XOR", "TEST"}

func (op aluOp) String() string {
	if op < numALUOps {
		return aluNames[op]
	}
	return "aluOp(?)"
}

// writesResult is false for the comparisons, which only set flags.
func (op aluOp) writesResult() bool { return op != aluCMP && op != aluTEST }

// alu computes dst op src on size-byte operands (both already truncated)
// and returns the result and RFLAGS with the six status flags replaced as
// the instruction defines them (Intel SDM Vol. 2, the instructions' "Flags
// Affected"; Vol. 1, Appendix A). AF, undefined after AND, OR, XOR and
// TEST, is cleared, as the Intel host of the differential tests
// (alu_amd64_test.go) does.
func alu(op aluOp, size uint8, dst, src, rflags uint64) (res, flags uint64) {
	mask := sizeMask(size)
	sign := uint64(1) << (8*uint(size) - 1)
	var cf, of, af bool
	switch op {
	case aluADD, aluADC:
		carryIn := uint64(0)
		if op == aluADC && rflags&FlagCF != 0 {
			carryIn = 1
		}
		if size == 8 {
			var c uint64
			res, c = bits.Add64(dst, src, carryIn)
			cf = c != 0
		} else {
			full := dst + src + carryIn
			res = full & mask
			cf = full > mask
		}
		of = (dst^res)&(src^res)&sign != 0
		af = (dst^src^res)&0x10 != 0
	case aluSUB, aluSBB, aluCMP:
		borrowIn := uint64(0)
		if op == aluSBB && rflags&FlagCF != 0 {
			borrowIn = 1
		}
		var b uint64
		res, b = bits.Sub64(dst, src, borrowIn)
		res &= mask
		if size == 8 {
			cf = b != 0
		} else {
			cf = dst < src+borrowIn
		}
		of = (dst^src)&(dst^res)&sign != 0
		af = (dst^src^res)&0x10 != 0
	case aluAND, aluTEST:
		res = dst & src
	case aluOR:
		res = dst | src
	case aluXOR:
		res = dst ^ src
	}
	flags = rflags &^ FlagsArith
	if cf {
		flags |= FlagCF
	}
	if of {
		flags |= FlagOF
	}
	if af {
		flags |= FlagAF
	}
	flags |= resultFlags(res, sign)
	return res, flags
}

// resultFlags are ZF, SF and PF of a result; PF is the even parity of its
// low byte.
func resultFlags(res, sign uint64) uint64 {
	var f uint64
	if res == 0 {
		f |= FlagZF
	}
	if res&sign != 0 {
		f |= FlagSF
	}
	if bits.OnesCount8(uint8(res))&1 == 0 {
		f |= FlagPF
	}
	return f
}
