package x86emu

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests/vcpu"
)

// FuzzStep runs random instruction bytes against random register state in
// each CPU mode. Step must not panic, must leave RIP alone, and on success
// must return the decoded length, or 0 for an unfinished REP string
// instruction; InstructionLength must agree with the decoder.
func FuzzStep(f *testing.F) {
	seeds := [][]byte{
		{0x89, 0x07}, {0x48, 0x8b, 0x07}, {0x88, 0x27}, {0x66, 0xc7, 0x07, 0x34, 0x12},
		{0x83, 0x27, 0xfe}, {0x0f, 0xb6, 0x07}, {0x48, 0x63, 0x07}, {0xf3, 0xa5},
		{0xf3, 0x48, 0xab}, {0xac}, {0x0f, 0xa3, 0x07}, {0x87, 0x07}, {0x67, 0x8b, 0x07},
		{0x64, 0x8b, 0x04, 0x25, 0x00, 0x03, 0x00, 0x00}, {0x8b, 0x05, 0xfa, 0xc2, 0x5f, 0x7e},
		{0x0f, 0x01, 0xd9}, {0xf0, 0x09, 0x07}, {0x0f, 0x10, 0x07},
	}
	for i, s := range seeds {
		f.Add(s, uint8(i%3), uint64(i), uint16(0x300), i%2 == 0, uint64(0x2))
	}
	var envs [3]*env
	f.Fuzz(func(t *testing.T, code []byte, mode uint8, seed uint64, off uint16, write bool, rflags uint64) {
		m := int(mode % 3)
		if envs[m] == nil {
			switch m {
			case 0:
				envs[m] = newEnv64(t)
			case 1:
				envs[m] = newEnv32(t)
			default:
				envs[m] = newEnv16(t)
			}
			envs[m].mem.journal = true
			envs[m].e.MaxRepeat = 16
		}
		v := envs[m]
		defer v.mem.rollback()
		v.t = t
		cpu0 := *v.cpu
		defer func() { *v.cpu = cpu0 }()

		// Registers: half of them at the faulting device address, so
		// that many inputs reach the emulation and not only the fault
		// check.
		var devLin, devGPA uint64
		switch m {
		case 0:
			devLin, devGPA = A, G
		case 1:
			devLin, devGPA = ioapicGPA, ioapicGPA
		default:
			devLin, devGPA = 0xb800, 0xb8000 // offsets from DS = 0
		}
		rng := rand.New(rand.NewPCG(seed, uint64(len(code))))
		for r := range v.cpu.gpr {
			if rng.IntN(2) == 0 {
				v.cpu.gpr[r] = devLin + uint64(off&0xfff)
			} else {
				v.cpu.gpr[r] = rng.Uint64()
			}
		}
		v.cpu.rflags = rflags&(FlagsArith|FlagDF|FlagAC) | 0x2
		v.dev.log = v.dev.log[:0]
		v.dev.readVal = func(gpa uint64, size uint8) uint64 { return gpa * 0x9e37_79b9_7f4a_7c15 }

		var buf [maxInstLen]byte
		copy(buf[:], code)
		v.load(buf[:])
		if rng.IntN(8) == 0 {
			v.cpu.cpl = 3
		}
		rip := v.cpu.rip
		fault := vcpu.NPFExit{GPA: devGPA + uint64(off&0xfff), Write: write, Read: !write}
		n, err := v.e.Step(v.cpu, v.mem, v.dev, fault)
		if v.cpu.rip != rip {
			t.Fatalf("Step moved RIP")
		}
		if err == nil {
			inst, derr := x86asm.Decode(buf[:], []int{64, 32, 16}[m])
			if derr != nil {
				t.Fatalf("Step emulated % x, which does not decode: %v", buf, derr)
			}
			if n != 0 && n != inst.Len {
				t.Fatalf("Step(% x) = %d, decoded length %d", buf, n, inst.Len)
			}
			if n == 0 && !hasRep(&inst) {
				t.Fatalf("Step(% x) returned 0 for a non-REP instruction", buf)
			}
		} else {
			var u *UnsupportedError
			var pf *PageFault
			var me *GuestMemoryError
			if !errors.As(err, &u) && !errors.As(err, &pf) && !errors.As(err, &me) &&
				!errors.Is(err, ErrFaultMismatch) && !errors.Is(err, ErrNonCanonical) && !fault.Execute {
				t.Fatalf("Step(% x): untyped error %v", buf, err)
			}
		}
		v.mem.rollback()
		v.load(buf[:])
		if l, lerr := v.e.InstructionLength(v.cpu, v.mem); lerr == nil {
			if inst, derr := x86asm.Decode(buf[:], []int{64, 32, 16}[m]); derr == nil && inst.Op != 0 && inst.Len != l {
				t.Fatalf("InstructionLength(% x) = %d, decoder says %d", buf, l, inst.Len)
			}
			if l < 1 || l > maxInstLen {
				t.Fatalf("InstructionLength(% x) = %d", buf, l)
			}
		}
	})
}

// FuzzWalk walks random paging structures in every paging mode. It must
// not panic; a successful translation keeps the page offset and repeats
// (the Accessed/Dirty updates of the first walk do not change the result).
func FuzzWalk(f *testing.F) {
	f.Add([]byte{0x03, 0x10, 0, 0, 0, 0, 0, 0}, uint8(3), uint64(0x1000), uint64(0x1234), uint8(0), uint8(0))
	f.Add([]byte{0x83, 0, 0, 0x40, 0, 0, 0, 0}, uint8(2), uint64(0), uint64(0xffff_ffff_ffff_f000), uint8(1), uint8(3))
	f.Add([]byte{0xe7, 0x20, 0, 0}, uint8(0), uint64(0x2000), uint64(0xc000_0000), uint8(2), uint8(0))
	const ram = 64 << 10
	mem := newFakeMem(ram)
	f.Fuzz(func(t *testing.T, tables []byte, mode uint8, cr3, lin uint64, acc uint8, cpl uint8) {
		if len(tables) == 0 {
			return
		}
		// Fill RAM with the fuzzer's bytes, with entry addresses folded
		// into RAM so that walks go deep.
		for i := 0; i+8 <= ram; i += 8 {
			var w [8]byte
			for j := range w {
				w[j] = tables[(i+j)%len(tables)]
			}
			e := binary.LittleEndian.Uint64(w[:])
			if tables[0]&1 != 0 {
				e = e&^0x000f_ffff_ffff_f000 | (e>>12&0xf)<<12
			}
			binary.LittleEndian.PutUint64(mem.ram[i:], e)
		}
		cpu := &fakeCPU{cpl: cpl % 4, rflags: 0x2}
		cpu.cr.CR0 = cr0PE | cr0PG
		if mode&8 != 0 {
			cpu.cr.CR0 |= cr0WP
		}
		cpu.cr.CR3 = cr3 % ram
		switch mode % 5 {
		case 0:
			cpu.cr.CR4 = cr4PSE
		case 1:
			cpu.cr.CR4 = cr4PAE
		case 2:
			cpu.cr.CR4, cpu.cr.EFER = cr4PAE, eferLMA
		case 3:
			cpu.cr.CR4, cpu.cr.EFER = cr4PAE|cr4LA57, eferLMA
		default:
			cpu.cr.CR0 = cr0PE // no paging
		}
		if mode&16 != 0 {
			cpu.cr.EFER |= eferNXE
		}
		if mode&32 != 0 {
			cpu.cr.CR4 |= cr4SMEP | cr4SMAP
		}
		var e Emulator
		e.MaxPhysAddrBits = (mode >> 6) * 12 // 0, 12, 24, 36: degenerate ones included
		a := access(acc % 3)
		e.begin(cpu, mem)
		gpa, err := e.translate(lin, a)
		gpa2, err2 := e.translate(lin, a)
		e.end()
		// The first walk's Accessed/Dirty updates only change bits 5
		// and 6, never an address: the second walk takes the same path
		// and agrees, except where the guest's tables alias a PAE PDPTE
		// (bit 5 reserved) with a lower-level entry.
		var pf *PageFault
		switch {
		case err != nil && err2 == nil:
			t.Fatalf("a failed walk changed the tables: %v, then %#x", err, gpa2)
		case err == nil && err2 == nil && gpa != gpa2:
			t.Fatalf("walk not repeatable: %#x, then %#x", gpa, gpa2)
		case err == nil && err2 != nil:
			if !errors.As(err2, &pf) || pf.ErrorCode&PFReserved == 0 || mode%5 != 1 {
				t.Fatalf("walk not repeatable: %#x, then %v", gpa, err2)
			}
		}
		if err == nil && gpa&pageMask != lin&pageMask {
			t.Fatalf("translate(%#x) = %#x: page offset changed", lin, gpa)
		}
	})
}
