//go:build !tamago

package x86emu

import (
	"math/rand/v2"
	"testing"

	"tamavisor/guests/vcpu"
)

var sizes = [4]uint8{1, 2, 4, 8}

// undefinedFlags are the status flags the SDM leaves undefined after op.
func undefinedFlags(op aluOp) uint64 {
	switch op {
	case aluAND, aluOR, aluXOR, aluTEST:
		return FlagAF
	}
	return 0
}

// operands yields edge values for a size, then random ones of varied
// shape: full-width, small, near the sign boundary.
func operands(rng *rand.Rand, size uint8, n int) []uint64 {
	mask := sizeMask(size)
	sign := uint64(1) << (8*uint(size) - 1)
	vals := []uint64{0, 1, 2, 0x0f, 0x10, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff,
		0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1<<63 - 1, 1 << 63, ^uint64(0),
		sign - 1, sign, sign + 1, mask - 1, mask}
	for range n {
		var v uint64
		switch rng.IntN(4) {
		case 0:
			v = rng.Uint64()
		case 1:
			v = rng.Uint64N(32)
		case 2:
			v = sign + rng.Uint64N(32) - 16
		default:
			v = mask - rng.Uint64N(32)
		}
		vals = append(vals, v)
	}
	for i := range vals {
		vals[i] &= mask
	}
	return vals
}

// TestALUMatchesHost compares alu's result and six status flags with the
// host CPU executing the same instruction, bit for bit, for every
// operation, operand size and carry-in.
func TestALUMatchesHost(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logicAF := 0
	for op := range numALUOps {
		for si, size := range sizes {
			host := hostALU[op][si]
			vals := operands(rng, size, 150)
			failures := 0
			for _, a := range vals {
				for _, b := range vals {
					in := 0x2 | rng.Uint64()&FlagsArith
					if rng.IntN(2) == 0 {
						in |= FlagCF
					}
					hres, hflags := host(a, b, in)
					res, flags := alu(op, size, a, b, in)
					mask := FlagsArith &^ undefinedFlags(op)
					if op == aluAND || op == aluOR || op == aluXOR || op == aluTEST {
						if hflags&FlagAF != 0 {
							logicAF++
						}
					}
					bad := flags&mask != hflags&mask || flags&^FlagsArith != in&^FlagsArith
					if op.writesResult() && res != hres&sizeMask(size) {
						bad = true
					}
					if bad && failures < 5 {
						failures++
						t.Errorf("%v/%d %#x, %#x flags-in %#x: emulator %#x flags %#x, host %#x flags %#x (compared %#x)",
							op, 8*size, a, b, in, res, flags, hres&sizeMask(size), hflags&FlagsArith, mask)
					}
				}
			}
		}
	}
	t.Logf("logic operations leaving AF set on this host: %d", logicAF)
}

// TestStepALUMatchesHost runs every ALU instruction through Step in both
// directions (op [mem], reg and op reg, [mem]) at every operand size, and
// checks the device write, the register and RFLAGS against the host CPU.
func TestStepALUMatchesHost(t *testing.T) {
	opcodes := [numALUOps]byte{aluADD: 0x00, aluADC: 0x10, aluSUB: 0x28, aluSBB: 0x18, aluCMP: 0x38,
		aluAND: 0x20, aluOR: 0x08, aluXOR: 0x30, aluTEST: 0x84}
	rng := rand.New(rand.NewPCG(3, 4))
	v := newEnv64(t)
	for op := range numALUOps {
		for si, size := range sizes {
			for _, memIsDst := range []bool{true, false} {
				if op == aluTEST && !memIsDst {
					continue // TEST has only the r/m, r form
				}
				var code []byte
				switch size {
				case 2:
					code = append(code, 0x66)
				case 8:
					code = append(code, 0x48)
				}
				opc := opcodes[op]
				if size > 1 {
					opc++
				}
				if !memIsDst {
					opc += 2
				}
				code = append(code, opc, 0x0f) // reg ECX, r/m [RDI]
				v.load(code)
				for range 300 {
					memVal := rng.Uint64() & sizeMask(size)
					if rng.IntN(3) == 0 {
						memVal = sizeMask(size) - rng.Uint64N(4)
					}
					regFull := rng.Uint64()
					regVal := regFull & sizeMask(size)
					in := 0x2 | rng.Uint64()&FlagsArith
					v.cpu.gpr[rdi] = A + 0x300
					v.cpu.gpr[rcx] = regFull
					v.cpu.rflags = in
					v.dev.log = v.dev.log[:0]
					v.dev.readVal = func(uint64, uint8) uint64 { return memVal }
					dst, src := memVal, regVal
					if !memIsDst {
						dst, src = regVal, memVal
					}
					hres, hflags := hostALU[op][si](dst, src, in)
					hres &= sizeMask(size)
					writes := memIsDst && op.writesResult()
					n, err := v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: G + 0x300, Write: writes})
					if err != nil || n != len(code) {
						t.Fatalf("% x: %d, %v", code, n, err)
					}
					mask := FlagsArith &^ undefinedFlags(op)
					if v.cpu.rflags&mask != hflags&mask || v.cpu.rflags&^FlagsArith != in&^FlagsArith {
						t.Fatalf("% x dst %#x src %#x: RFLAGS %#x, host %#x", code, dst, src, v.cpu.rflags, hflags)
					}
					wantRCX := regFull
					if !memIsDst && op.writesResult() {
						switch size {
						case 4:
							wantRCX = hres
						case 8:
							wantRCX = hres
						default:
							wantRCX = regFull&^sizeMask(size) | hres
						}
					}
					if v.cpu.gpr[rcx] != wantRCX {
						t.Fatalf("% x dst %#x src %#x: RCX %#x, want %#x", code, dst, src, v.cpu.gpr[rcx], wantRCX)
					}
					wantLog := []devAccess{R(G+0x300, size)}
					if writes {
						wantLog = append(wantLog, W(G+0x300, size, hres))
					}
					if len(v.dev.log) != len(wantLog) || v.dev.log[0] != wantLog[0] || (writes && v.dev.log[1] != wantLog[1]) {
						t.Fatalf("% x dst %#x src %#x: device saw %v, want %v", code, dst, src, v.dev.log, wantLog)
					}
				}
			}
		}
	}
}

// TestStepBTMatchesHost checks BT's CF (and untouched ZF) against the host
// for every operand size with a register bit offset inside the operand.
func TestStepBTMatchesHost(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	v := newEnv64(t)
	for si, size := range sizes[1:] {
		var code []byte
		switch size {
		case 2:
			code = append(code, 0x66)
		case 8:
			code = append(code, 0x48)
		}
		code = append(code, 0x0f, 0xa3, 0x0f) // BT [RDI], ECX
		v.load(code)
		for range 500 {
			memVal := rng.Uint64() & sizeMask(size)
			bit := rng.Uint64N(8 * uint64(size))
			in := 0x2 | rng.Uint64()&FlagsArith
			v.cpu.gpr[rdi], v.cpu.gpr[rcx], v.cpu.rflags = A+0x300, bit, in
			v.dev.readVal = func(uint64, uint8) uint64 { return memVal }
			_, hflags := hostBT[si](memVal, bit, in)
			if _, err := v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: G + 0x300}); err != nil {
				t.Fatal(err)
			}
			const defined = FlagCF | FlagZF
			if v.cpu.rflags&defined != hflags&defined || v.cpu.rflags&^FlagCF != in&^FlagCF {
				t.Fatalf("bt %#x, %d: RFLAGS %#x, host %#x, in %#x", memVal, bit, v.cpu.rflags, hflags, in)
			}
		}
	}
}
