package x86emu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests/bus"
	"tamavisor/guests/vcpu"
)

// The guest's MMIO bus, and any single device model, can serve as the
// emulator's MMIO handler.
var (
	_ MMIOHandler = (*bus.MMIO)(nil)
	_ MMIOHandler = bus.MMIODevice(nil)
)

// base is the register file every case starts from: distinct bytes
// everywhere, so that a write of the wrong width or to the wrong register
// shows.
func base(r vcpu.GPR) uint64 {
	i := uint64(r)
	return 0xf0f0_0000_8765_0000 | i<<32 | (i+1)<<8 | (0x10 + i)
}

func lo32(v uint64) uint64 { return v & 0xffff_ffff }

func W(gpa uint64, size uint8, v uint64) devAccess { return devAccess{true, gpa, size, v} }
func R(gpa uint64, size uint8) devAccess           { return devAccess{false, gpa, size, 0} }

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

type stepCase struct {
	name      string
	code      []byte
	regs      map[vcpu.GPR]uint64
	flags     uint64 // initial status flags (RFLAGS bit 1 is always set)
	setup     func(c *fakeCPU)
	devVal    uint64 // what device reads return (unmasked)
	gpa       uint64 // the faulting guest-physical address
	want      []devAccess
	wantRegs  map[vcpu.GPR]uint64
	wantFlags uint64 // expected RFLAGS; zero: unchanged
}

func runCases(t *testing.T, newEnv func(testing.TB) *env, cases []stepCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newEnv(t)
			for r := range v.cpu.gpr {
				v.cpu.gpr[r] = base(vcpu.GPR(r))
			}
			for r, val := range c.regs {
				v.cpu.gpr[r] = val
			}
			v.cpu.rflags = 0x2 | c.flags
			if c.setup != nil {
				c.setup(v.cpu)
			}
			wantRegs := v.cpu.gpr
			for r, val := range c.wantRegs {
				wantRegs[r] = val
			}
			flagsBefore, ripBefore := v.cpu.rflags, v.cpu.rip
			v.dev.readVal = func(uint64, uint8) uint64 { return c.devVal }
			write := len(c.want) > 0 && c.want[0].write

			n, err := v.step(c.code, c.gpa, write)
			if err != nil {
				t.Fatalf("Step(% x): %v", c.code, err)
			}
			if n != len(c.code) {
				t.Errorf("length %d, want %d", n, len(c.code))
			}
			if !slices.Equal(v.dev.log, c.want) {
				t.Errorf("device saw %v, want %v", v.dev.log, c.want)
			}
			for r := range wantRegs {
				if v.cpu.gpr[r] != wantRegs[r] {
					t.Errorf("GPR %d = %#x, want %#x", r, v.cpu.gpr[r], wantRegs[r])
				}
			}
			wantFlags := c.wantFlags
			if wantFlags == 0 {
				wantFlags = flagsBefore
			}
			if v.cpu.rflags != wantFlags {
				t.Errorf("RFLAGS %#x, want %#x", v.cpu.rflags, wantFlags)
			}
			if v.cpu.rip != ripBefore || v.cpu.advanced != 0 {
				t.Errorf("Step moved RIP")
			}
		})
	}
}

const (
	A = apicLin64 // linear address of the LAPIC page in the 64-bit guest
	G = apicGPA
)

const (
	rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi = vcpu.RAX, vcpu.RCX, vcpu.RDX, vcpu.RBX, vcpu.RSP, vcpu.RBP, vcpu.RSI, vcpu.RDI
	r8, r9, r10, r11, r12, r13             = vcpu.R8, vcpu.R9, vcpu.R10, vcpu.R11, vcpu.R12, vcpu.R13
)

type regs = map[vcpu.GPR]uint64

func TestStep64Moves(t *testing.T) {
	ripRel := int32(uint64(A+0x300) - uint64(codeLin64+6))
	runCases(t, newEnv64, []stepCase{
		{name: "mov m32,r32", code: []byte{0x89, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "mov m64,r64 REX.W", code: []byte{0x48, 0x89, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 8, base(rax))}},
		{name: "mov m16,r16 0x66", code: []byte{0x66, 0x89, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 2, base(rax)&0xffff)}},
		{name: "mov m8,ah", code: []byte{0x88, 0x27}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 1, base(rax)>>8&0xff)}},
		{name: "mov m8,spl REX", code: []byte{0x40, 0x88, 0x27}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 1, base(rsp)&0xff)}},
		{name: "mov m8,r8b REX.R", code: []byte{0x44, 0x88, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 1, base(r8)&0xff)}},
		{name: "mov [rdi+disp8],r8d", code: []byte{0x44, 0x89, 0x47, 0x10}, regs: regs{rdi: A + 0x2f0}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(r8)))}},
		{name: "mov [r9+disp32],eax REX.B", code: []byte{0x41, 0x89, 0x81, 0x00, 0x01, 0x00, 0x00}, regs: regs{r9: A + 0x200}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "mov [rbp+rcx*4+0x10],eax SIB", code: []byte{0x89, 0x44, 0x8d, 0x10}, regs: regs{rbp: A, rcx: 0xbc}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "mov [rsp],eax SIB no index", code: []byte{0x89, 0x04, 0x24}, regs: regs{rsp: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "mov [r12+r13*8-8],rax REX.WXB", code: []byte{0x4b, 0x89, 0x44, 0xec, 0xf8}, regs: regs{r12: A + 0x100, r13: 0x41}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 8, base(rax))}},
		{name: "mov [rip+disp32],eax", code: cat([]byte{0x89, 0x05}, le32(uint32(ripRel))), gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "mov eax,[rdi] zero-extends", code: []byte{0x8b, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1122_3344_5566_7788, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 0x5566_7788}},
		{name: "mov ax,[rdi] keeps the rest", code: []byte{0x66, 0x8b, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1122_3344_5566_7788, want: []devAccess{R(G+0x300, 2)}, wantRegs: regs{rax: base(rax)&^0xffff | 0x7788}},
		{name: "mov ah,[rdi]", code: []byte{0x8a, 0x27}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1122_3344_5566_7788, want: []devAccess{R(G+0x300, 1)}, wantRegs: regs{rax: base(rax)&^0xff00 | 0x8800}},
		{name: "mov rax,[rdi]", code: []byte{0x48, 0x8b, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1122_3344_5566_7788, want: []devAccess{R(G+0x300, 8)}, wantRegs: regs{rax: 0x1122_3344_5566_7788}},
		{name: "mov r10b,[rdi]", code: []byte{0x44, 0x8a, 0x17}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1122_3344_5566_7788, want: []devAccess{R(G+0x300, 1)}, wantRegs: regs{r10: base(r10)&^0xff | 0x88}},
		{name: "mov dword [rdi+8],imm32", code: []byte{0xc7, 0x47, 0x08, 0x78, 0x56, 0x34, 0x12}, regs: regs{rdi: A + 0x2f8}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, 0x1234_5678)}},
		{name: "mov qword [rdi],imm32 sign-extended", code: []byte{0x48, 0xc7, 0x07, 0x00, 0x00, 0x00, 0x80}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 8, 0xffff_ffff_8000_0000)}},
		{name: "mov byte [rdi],imm8", code: []byte{0xc6, 0x07, 0xab}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 1, 0xab)}},
		{name: "mov word [rdi],imm16", code: []byte{0x66, 0xc7, 0x07, 0x34, 0x12}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 2, 0x1234)}},
		{name: "mov eax,moffs64", code: cat([]byte{0xa1}, le64(A+0x300)), gpa: G + 0x300,
			devVal: 0xaabb_ccdd_eeff_0011, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 0xeeff_0011}},
		{name: "mov moffs64,rax", code: cat([]byte{0x48, 0xa3}, le64(A+0x300)), gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 8, base(rax))}},
		{name: "mov eax,[edi] 0x67 truncates", code: []byte{0x67, 0x8b, 0x07}, regs: regs{rdi: 0xdead_beef_0000_0000 | G + 0x300}, gpa: G + 0x300,
			devVal: 7, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 7}},
		{name: "fs: mov eax,[disp32] uses FS base", code: []byte{0x64, 0x8b, 0x04, 0x25, 0x00, 0x03, 0x00, 0x00}, gpa: G + 0x300,
			setup:  func(c *fakeCPU) { c.seg[vcpu.FS].Base = A },
			devVal: 9, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 9}},
		{name: "gs: mov [rax],ecx uses GS base", code: []byte{0x65, 0x89, 0x08}, regs: regs{rax: 0x300}, gpa: G + 0x300,
			setup: func(c *fakeCPU) { c.seg[vcpu.GS].Base = A },
			want:  []devAccess{W(G+0x300, 4, lo32(base(rcx)))}},
		{name: "cs: override ignored", code: []byte{0x2e, 0x89, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "es: override ignored", code: []byte{0x26, 0x89, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "movnti", code: []byte{0x0f, 0xc3, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "rep prefix on mov is ignored", code: []byte{0xf3, 0x89, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			want: []devAccess{W(G+0x300, 4, lo32(base(rax)))}},
		{name: "movzx eax,byte", code: []byte{0x0f, 0xb6, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1f0, want: []devAccess{R(G+0x300, 1)}, wantRegs: regs{rax: 0xf0}},
		{name: "movzx ax,byte", code: []byte{0x66, 0x0f, 0xb6, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1f0, want: []devAccess{R(G+0x300, 1)}, wantRegs: regs{rax: base(rax)&^0xffff | 0xf0}},
		{name: "movzx rax,word", code: []byte{0x48, 0x0f, 0xb7, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1_8001, want: []devAccess{R(G+0x300, 2)}, wantRegs: regs{rax: 0x8001}},
		{name: "movsx eax,byte", code: []byte{0x0f, 0xbe, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0xf0, want: []devAccess{R(G+0x300, 1)}, wantRegs: regs{rax: 0xffff_fff0}},
		{name: "movsx rax,word", code: []byte{0x48, 0x0f, 0xbf, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x8001, want: []devAccess{R(G+0x300, 2)}, wantRegs: regs{rax: 0xffff_ffff_ffff_8001}},
		{name: "movsx r11w,byte", code: []byte{0x66, 0x44, 0x0f, 0xbe, 0x1f}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x80, want: []devAccess{R(G+0x300, 1)}, wantRegs: regs{r11: base(r11)&^0xffff | 0xff80}},
		{name: "movsxd rax,dword", code: []byte{0x48, 0x63, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x8000_0000, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 0xffff_ffff_8000_0000}},
		{name: "movsxd eax,dword without REX.W", code: []byte{0x63, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x8000_0000, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 0x8000_0000}},
		{name: "xchg [rdi],eax", code: []byte{0x87, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0xcafe, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, lo32(base(rax)))}, wantRegs: regs{rax: 0xcafe}},
		{name: "xchg [rdi],bh", code: []byte{0x86, 0x3f}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x1ee, want: []devAccess{R(G+0x300, 1), W(G+0x300, 1, base(rbx)>>8&0xff)}, wantRegs: regs{rbx: base(rbx)&^0xff00 | 0xee00}},
	})
}

func TestStep64Arithmetic(t *testing.T) {
	const allArith = FlagCF | FlagPF | FlagAF | FlagZF | FlagSF | FlagOF
	runCases(t, newEnv64, []stepCase{
		{name: "or [rdi],eax", code: []byte{0x09, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300, flags: FlagCF | FlagOF | FlagZF,
			devVal: 1, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, lo32(base(rax))|1)}, wantFlags: 0x2 | FlagPF | FlagSF},
		{name: "and dword [rdi],-2", code: []byte{0x83, 0x27, 0xfe}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300, flags: allArith,
			devVal: 3, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, 2)}, wantFlags: 0x2},
		{name: "add [rdi],eax carries out", code: []byte{0x01, 0x07}, regs: regs{rdi: A + 0x300, rax: 1}, gpa: G + 0x300,
			devVal: 0xffff_ffff, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, 0)}, wantFlags: 0x2 | FlagCF | FlagZF | FlagPF | FlagAF},
		{name: "add eax,[rdi] overflows", code: []byte{0x03, 0x07}, regs: regs{rdi: A + 0x300, rax: 0xffff_ffff_7fff_ffff}, gpa: G + 0x300,
			devVal: 1, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 0x8000_0000}, wantFlags: 0x2 | FlagOF | FlagSF | FlagAF | FlagPF},
		{name: "sub ecx,[rdi] borrows", code: []byte{0x2b, 0x0f}, regs: regs{rdi: A + 0x300, rcx: 5}, gpa: G + 0x300,
			devVal: 7, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rcx: 0xffff_fffe}, wantFlags: 0x2 | FlagCF | FlagSF | FlagAF},
		{name: "cmp dword [rdi],5 writes nothing", code: []byte{0x83, 0x3f, 0x05}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 5, want: []devAccess{R(G+0x300, 4)}, wantFlags: 0x2 | FlagZF | FlagPF},
		{name: "cmp eax,[rdi] keeps eax", code: []byte{0x3b, 0x07}, regs: regs{rdi: A + 0x300, rax: 3}, gpa: G + 0x300,
			devVal: 5, want: []devAccess{R(G+0x300, 4)}, wantFlags: 0x2 | FlagCF | FlagSF | FlagAF},
		{name: "cmp [rdi],eax operand order", code: []byte{0x39, 0x07}, regs: regs{rdi: A + 0x300, rax: 3}, gpa: G + 0x300,
			devVal: 5, want: []devAccess{R(G+0x300, 4)}, wantFlags: 0x2},
		{name: "test [rdi],eax", code: []byte{0x85, 0x07}, regs: regs{rdi: A + 0x300, rax: 0x80}, gpa: G + 0x300, flags: FlagCF,
			devVal: 0x80, want: []devAccess{R(G+0x300, 4)}, wantFlags: 0x2},
		{name: "test byte [rdi],0x80", code: []byte{0xf6, 0x07, 0x80}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x80, want: []devAccess{R(G+0x300, 1)}, wantFlags: 0x2 | FlagSF},
		{name: "adc [rdi],eax uses CF", code: []byte{0x11, 0x07}, regs: regs{rdi: A + 0x300, rax: 1}, gpa: G + 0x300, flags: FlagCF,
			devVal: 1, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, 3)}, wantFlags: 0x2 | FlagPF},
		{name: "sbb eax,[rdi] uses CF", code: []byte{0x1b, 0x07}, regs: regs{rdi: A + 0x300, rax: 5}, gpa: G + 0x300, flags: FlagCF,
			devVal: 2, want: []devAccess{R(G+0x300, 4)}, wantRegs: regs{rax: 2}, wantFlags: 0x2},
		{name: "xor [rdi],al", code: []byte{0x30, 0x07}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x10, want: []devAccess{R(G+0x300, 1), W(G+0x300, 1, 0)}, wantFlags: 0x2 | FlagZF | FlagPF},
		{name: "lock or [rdi],eax", code: []byte{0xf0, 0x09, 0x07}, regs: regs{rdi: A + 0x300, rax: 0x100}, gpa: G + 0x300,
			devVal: 0x1, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, 0x101)}, wantFlags: 0x2},
		{name: "add qword [rdi],imm32", code: []byte{0x48, 0x81, 0x07, 0xff, 0xff, 0xff, 0x7f}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 1, want: []devAccess{R(G+0x300, 8), W(G+0x300, 8, 0x8000_0000)}, wantFlags: 0x2 | FlagAF | FlagPF},
		{name: "sub word [rdi],imm8", code: []byte{0x66, 0x83, 0x2f, 0x01}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0x8000, want: []devAccess{R(G+0x300, 2), W(G+0x300, 2, 0x7fff)}, wantFlags: 0x2 | FlagOF | FlagAF | FlagPF},
		{name: "or byte [rdi],1", code: []byte{0x80, 0x0f, 0x01}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300,
			devVal: 0xfe, want: []devAccess{R(G+0x300, 1), W(G+0x300, 1, 0xff)}, wantFlags: 0x2 | FlagSF | FlagPF},
		{name: "bt [rdi],eax reaches the next dword", code: []byte{0x0f, 0xa3, 0x07}, regs: regs{rdi: A + 0x300, rax: 35}, gpa: G + 0x304, flags: FlagZF,
			devVal: 0x8, want: []devAccess{R(G+0x304, 4)}, wantFlags: 0x2 | FlagZF | FlagCF},
		{name: "bt [rdi],eax negative offset", code: []byte{0x0f, 0xa3, 0x07}, regs: regs{rdi: A + 0x300, rax: 0xffff_ffff}, gpa: G + 0x2fc,
			devVal: 0x7fff_ffff, want: []devAccess{R(G+0x2fc, 4)}, wantFlags: 0x2},
		{name: "bt word [rdi],ax", code: []byte{0x66, 0x0f, 0xa3, 0x07}, regs: regs{rdi: A + 0x300, rax: 17}, gpa: G + 0x302,
			devVal: 0x2, want: []devAccess{R(G+0x302, 2)}, wantFlags: 0x2 | FlagCF},
		{name: "bts [rdi],3", code: []byte{0x0f, 0xba, 0x2f, 0x03}, regs: regs{rdi: A + 0x300}, gpa: G + 0x300, flags: FlagCF,
			devVal: 0, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, 8)}, wantFlags: 0x2},
		{name: "btr [rdi],eax", code: []byte{0x0f, 0xb3, 0x07}, regs: regs{rdi: A + 0x300, rax: 1}, gpa: G + 0x300,
			devVal: 3, want: []devAccess{R(G+0x300, 4), W(G+0x300, 4, 1)}, wantFlags: 0x2 | FlagCF},
		{name: "btc qword [rdi],rax", code: []byte{0x48, 0x0f, 0xbb, 0x07}, regs: regs{rdi: A + 0x300, rax: 63}, gpa: G + 0x300,
			devVal: 1, want: []devAccess{R(G+0x300, 8), W(G+0x300, 8, 1|1<<63)}, wantFlags: 0x2},
	})
}

func TestStep32(t *testing.T) {
	const dev = ioapicGPA
	runCases(t, newEnv32, []stepCase{
		{name: "mov [edi],eax", code: []byte{0x89, 0x07}, regs: regs{rdi: dev + 0x10}, gpa: dev + 0x10,
			want: []devAccess{W(dev+0x10, 4, lo32(base(rax)))}},
		{name: "mov [edi],ax", code: []byte{0x66, 0x89, 0x07}, regs: regs{rdi: dev + 0x10}, gpa: dev + 0x10,
			want: []devAccess{W(dev+0x10, 2, base(rax)&0xffff)}},
		{name: "mov [edi],bh", code: []byte{0x88, 0x3f}, regs: regs{rdi: dev + 0x10}, gpa: dev + 0x10,
			want: []devAccess{W(dev+0x10, 1, base(rbx)>>8&0xff)}},
		{name: "mov eax,[edi] ignores the upper half of RDI", code: []byte{0x8b, 0x07}, regs: regs{rdi: 0x1234_5678_0000_0000 | dev + 0x10}, gpa: dev + 0x10,
			devVal: 0xffff_ffff_0bad_f00d, want: []devAccess{R(dev+0x10, 4)}, wantRegs: regs{rax: 0x0bad_f00d}},
		{name: "mov eax,moffs32", code: cat([]byte{0xa1}, le32(dev+0x20)), gpa: dev + 0x20,
			devVal: 5, want: []devAccess{R(dev+0x20, 4)}, wantRegs: regs{rax: 5}},
		{name: "mov [ds-based],eax", code: []byte{0x89, 0x07}, regs: regs{rdi: 0x10}, gpa: dev + 0x10,
			setup: func(c *fakeCPU) { c.seg[vcpu.DS].Base = dev },
			want:  []devAccess{W(dev+0x10, 4, lo32(base(rax)))}},
		{name: "mov eax,[ebp+8] uses SS", code: []byte{0x8b, 0x45, 0x08}, regs: regs{rbp: 0x8}, gpa: dev + 0x10,
			setup:  func(c *fakeCPU) { c.seg[vcpu.SS].Base = dev; c.seg[vcpu.DS].Base = 0x4000_0000 },
			devVal: 1, want: []devAccess{R(dev+0x10, 4)}, wantRegs: regs{rax: 1}},
		{name: "fs: mov [eax],ecx", code: []byte{0x64, 0x89, 0x08}, regs: regs{rax: 0x10}, gpa: dev + 0x10,
			setup: func(c *fakeCPU) { c.seg[vcpu.FS].Base = dev },
			want:  []devAccess{W(dev+0x10, 4, lo32(base(rcx)))}},
		{name: "linear wraps at 4 GiB", code: []byte{0x89, 0x07}, regs: regs{rdi: dev + 0x10 + 0x1000}, gpa: dev + 0x10,
			setup: func(c *fakeCPU) { c.seg[vcpu.DS].Base = 0xffff_f000 },
			want:  []devAccess{W(dev+0x10, 4, lo32(base(rax)))}},
		{name: "mov [bx],eax 0x67 16-bit addressing", code: []byte{0x67, 0x89, 0x07}, regs: regs{rbx: 0x10}, gpa: dev + 0x10,
			setup: func(c *fakeCPU) { c.seg[vcpu.DS].Base = dev },
			want:  []devAccess{W(dev+0x10, 4, lo32(base(rax)))}},
		{name: "movzx eax,word [edi]", code: []byte{0x0f, 0xb7, 0x07}, regs: regs{rdi: dev}, gpa: dev,
			devVal: 0xffff_8001, want: []devAccess{R(dev, 2)}, wantRegs: regs{rax: 0x8001}},
		{name: "movsx eax,byte [edi]", code: []byte{0x0f, 0xbe, 0x07}, regs: regs{rdi: dev}, gpa: dev,
			devVal: 0x80, want: []devAccess{R(dev, 1)}, wantRegs: regs{rax: 0xffff_ff80}},
		{name: "and [edi],imm32", code: []byte{0x81, 0x27, 0xff, 0x00, 0xff, 0x00}, regs: regs{rdi: dev}, gpa: dev,
			devVal: 0x1234_5678, want: []devAccess{R(dev, 4), W(dev, 4, 0x0034_0078)}, wantFlags: 0x2 | FlagPF},
		{name: "test [edi],imm32", code: []byte{0xf7, 0x07, 0x00, 0x00, 0x00, 0x80}, regs: regs{rdi: dev}, gpa: dev,
			devVal: 0x8000_0000, want: []devAccess{R(dev, 4)}, wantFlags: 0x2 | FlagSF | FlagPF},
	})
}

func TestStep16(t *testing.T) {
	withDS := func(c *fakeCPU) {
		c.seg[vcpu.DS] = vcpu.Segment{Selector: 0xb800, Base: 0xb8000, Limit: 0xffff, Attributes: 0x93}
	}
	const dev = 0xb8000
	runCases(t, newEnv16, []stepCase{
		{name: "mov [bx],ax", code: []byte{0x89, 0x07}, regs: regs{rbx: 0x10}, gpa: dev + 0x10, setup: withDS,
			want: []devAccess{W(dev+0x10, 2, base(rax)&0xffff)}},
		{name: "mov [bx],eax 0x66", code: []byte{0x66, 0x89, 0x07}, regs: regs{rbx: 0x10}, gpa: dev + 0x10, setup: withDS,
			want: []devAccess{W(dev+0x10, 4, lo32(base(rax)))}},
		{name: "mov [bx] ignores the upper half of EBX", code: []byte{0x89, 0x07}, regs: regs{rbx: 0x7777_0010}, gpa: dev + 0x10, setup: withDS,
			want: []devAccess{W(dev+0x10, 2, base(rax)&0xffff)}},
		{name: "mov ax,[bp+si+0x10] uses SS", code: []byte{0x8b, 0x42, 0x10}, regs: regs{rbp: 0x20, rsi: 0x3}, gpa: dev + 0x33,
			setup:  func(c *fakeCPU) { c.seg[vcpu.SS] = vcpu.Segment{Selector: 0xb800, Base: 0xb8000, Limit: 0xffff} },
			devVal: 0xabcd, want: []devAccess{R(dev+0x33, 2)}, wantRegs: regs{rax: base(rax)&^0xffff | 0xabcd}},
		{name: "mov byte [0x1234],imm8", code: []byte{0xc6, 0x06, 0x34, 0x12, 0xab}, gpa: dev + 0x1234, setup: withDS,
			want: []devAccess{W(dev+0x1234, 1, 0xab)}},
		{name: "es: mov [bx],al", code: []byte{0x26, 0x88, 0x07}, regs: regs{rbx: 0x10}, gpa: dev + 0x10,
			setup: func(c *fakeCPU) { c.seg[vcpu.ES] = vcpu.Segment{Selector: 0xb800, Base: 0xb8000} },
			want:  []devAccess{W(dev+0x10, 1, base(rax)&0xff)}},
		{name: "effective address wraps at 64 KiB", code: []byte{0x89, 0x47, 0x20}, regs: regs{rbx: 0xfff0}, gpa: dev + 0x10, setup: withDS,
			want: []devAccess{W(dev+0x10, 2, base(rax)&0xffff)}},
		{name: "mov [edi],ax 0x67 32-bit addressing", code: []byte{0x67, 0x89, 0x07}, regs: regs{rdi: 0x1_0010}, gpa: dev + 0x1_0010, setup: withDS,
			want: []devAccess{W(dev+0x1_0010, 2, base(rax)&0xffff)}},
		{name: "or [bx],ax flags", code: []byte{0x09, 0x07}, regs: regs{rbx: 0x10, rax: 0x8000}, gpa: dev + 0x10, setup: withDS, flags: FlagCF,
			devVal: 1, want: []devAccess{R(dev+0x10, 2), W(dev+0x10, 2, 0x8001)}, wantFlags: 0x2 | FlagSF},
		{name: "movzx ax,byte [bx]", code: []byte{0x0f, 0xb6, 0x07}, regs: regs{rbx: 0x10}, gpa: dev + 0x10, setup: withDS,
			devVal: 0xfe, want: []devAccess{R(dev+0x10, 1)}, wantRegs: regs{rax: base(rax)&^0xffff | 0xfe}},
	})
}

func TestStep16ProtectedMode(t *testing.T) {
	// A 16-bit code segment in protected mode: CS.D clear.
	runCases(t, func(tb testing.TB) *env {
		v := newEnv32(tb)
		v.cpu.seg[vcpu.CS].Attributes &^= segAttrDB
		v.cpu.seg[vcpu.CS].Base, v.cpu.rip = codePhys, 0x100
		return v
	}, []stepCase{
		{name: "mov [bx],ax", code: []byte{0x89, 0x07}, regs: regs{rbx: 0x10}, gpa: ioapicGPA + 0x10,
			setup: func(c *fakeCPU) { c.seg[vcpu.DS].Base = ioapicGPA },
			want:  []devAccess{W(ioapicGPA+0x10, 2, base(rax)&0xffff)}},
	})
}

// stringEnv is a 64-bit guest with a RAM buffer at directMap+bufPhys.
func stringEnv(t *testing.T) *env {
	v := newEnv64(t)
	for r := range v.cpu.gpr {
		v.cpu.gpr[r] = base(vcpu.GPR(r))
	}
	for i := range 64 {
		v.mem.ram[bufPhys+uint64(i)] = byte(0xa0 + i)
	}
	return v
}

func TestStringRepMovsToDevice(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rsi] = directMap + bufPhys
	v.cpu.gpr[rdi] = A + 0x100
	v.cpu.gpr[rcx] = 4
	n, err := v.step([]byte{0xf3, 0xa5}, G+0x100, true)
	if err != nil || n != 2 {
		t.Fatalf("rep movsd: %d, %v", n, err)
	}
	var want []devAccess
	for i := range uint64(4) {
		want = append(want, W(G+0x100+4*i, 4, uint64(binary.LittleEndian.Uint32(v.mem.ram[bufPhys+4*i:]))))
	}
	if !slices.Equal(v.dev.log, want) {
		t.Errorf("device saw %v, want %v", v.dev.log, want)
	}
	if v.cpu.gpr[rsi] != directMap+bufPhys+16 || v.cpu.gpr[rdi] != A+0x110 || v.cpu.gpr[rcx] != 0 {
		t.Errorf("rsi %#x rdi %#x rcx %#x after rep movsd", v.cpu.gpr[rsi], v.cpu.gpr[rdi], v.cpu.gpr[rcx])
	}
}

func TestStringMovsFromDevice(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rsi] = A + 0x20
	v.cpu.gpr[rdi] = directMap + bufPhys + 5
	v.dev.readVal = func(uint64, uint8) uint64 { return 0x5a }
	n, err := v.step([]byte{0xa4}, G+0x20, false)
	if err != nil || n != 1 {
		t.Fatalf("movsb: %d, %v", n, err)
	}
	if got := v.mem.ram[bufPhys+5]; got != 0x5a {
		t.Errorf("RAM byte = %#x, want 0x5a", got)
	}
	if !slices.Equal(v.dev.log, []devAccess{R(G+0x20, 1)}) {
		t.Errorf("device saw %v", v.dev.log)
	}
	if v.cpu.gpr[rsi] != A+0x21 || v.cpu.gpr[rdi] != directMap+bufPhys+6 || v.cpu.gpr[rcx] != base(rcx) {
		t.Errorf("rsi %#x rdi %#x rcx %#x", v.cpu.gpr[rsi], v.cpu.gpr[rdi], v.cpu.gpr[rcx])
	}
}

func TestStringRepStosBackwards(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rdi] = A + 0x200
	v.cpu.gpr[rcx] = 3
	v.cpu.rflags |= FlagDF
	n, err := v.step([]byte{0xf3, 0x48, 0xab}, G+0x200, true)
	if err != nil || n != 3 {
		t.Fatalf("rep stosq: %d, %v", n, err)
	}
	want := []devAccess{W(G+0x200, 8, base(rax)), W(G+0x1f8, 8, base(rax)), W(G+0x1f0, 8, base(rax))}
	if !slices.Equal(v.dev.log, want) {
		t.Errorf("device saw %v, want %v", v.dev.log, want)
	}
	if v.cpu.gpr[rdi] != A+0x200-24 || v.cpu.gpr[rcx] != 0 || v.cpu.gpr[rsi] != base(rsi) {
		t.Errorf("rdi %#x rcx %#x rsi %#x", v.cpu.gpr[rdi], v.cpu.gpr[rcx], v.cpu.gpr[rsi])
	}
}

func TestStringLods(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rsi] = A + 0x30
	v.dev.readVal = func(uint64, uint8) uint64 { return 0x1_2345_6789 }
	n, err := v.step([]byte{0xad}, G+0x30, false)
	if err != nil || n != 1 {
		t.Fatalf("lodsd: %d, %v", n, err)
	}
	if v.cpu.gpr[rax] != 0x2345_6789 || v.cpu.gpr[rsi] != A+0x34 {
		t.Errorf("rax %#x rsi %#x", v.cpu.gpr[rax], v.cpu.gpr[rsi])
	}
}

func TestStringDeviceToDevice(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rsi] = A + 0x10
	v.cpu.gpr[rdi] = ioapicGPA + 0x40 // identity-mapped, not RAM
	v.dev.readVal = func(uint64, uint8) uint64 { return 0x0102_0304_0506_0708 }
	n, err := v.step([]byte{0x48, 0xa5}, G+0x10, false)
	if err != nil || n != 2 {
		t.Fatalf("movsq: %d, %v", n, err)
	}
	want := []devAccess{R(G+0x10, 8), W(ioapicGPA+0x40, 8, 0x0102_0304_0506_0708)}
	if !slices.Equal(v.dev.log, want) {
		t.Errorf("device saw %v, want %v", v.dev.log, want)
	}
}

func TestStringRepBoundedPerStep(t *testing.T) {
	v := stringEnv(t)
	v.e.MaxRepeat = 4096
	const total = 10000
	v.cpu.gpr[rsi] = directMap + bufPhys
	v.cpu.gpr[rdi] = ioapicGPA
	v.cpu.gpr[rcx] = total
	v.dev.noLog = true
	writes := 0
	counting := &countingDev{n: &writes}
	code := []byte{0xf3, 0xa4}
	v.load(code)
	var lengths []int
	for step := 0; step < 5; step++ {
		gpa := ioapicGPA + (total - v.cpu.gpr[rcx])
		n, err := v.e.Step(v.cpu, v.mem, counting, vcpu.NPFExit{GPA: gpa, Write: true})
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		lengths = append(lengths, n)
		if n != 0 {
			break
		}
	}
	if !slices.Equal(lengths, []int{0, 0, 2}) {
		t.Errorf("lengths %v, want [0 0 2]: 4096 iterations per Step", lengths)
	}
	if writes != total || v.cpu.gpr[rcx] != 0 || v.cpu.gpr[rdi] != ioapicGPA+total || v.cpu.gpr[rsi] != directMap+bufPhys+total {
		t.Errorf("writes %d rcx %#x rdi %#x rsi %#x", writes, v.cpu.gpr[rcx], v.cpu.gpr[rdi], v.cpu.gpr[rsi])
	}
}

type countingDev struct{ n *int }

func (d *countingDev) ReadMMIO(uint64, uint8) uint64 { return 0 }
func (d *countingDev) WriteMMIO(uint64, uint8, uint64) {
	*d.n++
}

func TestStringAddressSize32In64(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rsi] = 0xffff_0000_0000_0000 | bufPhys // identity? no: RAM is at directMap
	v.cpu.gpr[rdi] = 0xdead_0000_0000_0000 | G + 0x80
	v.cpu.gpr[rcx] = 0x5555_0000_0000_0002
	// ESI must reach RAM through a 32-bit linear address: map it.
	v.pt.mapPage(bufPhys, bufPhys, 12, pteP|pteRW)
	n, err := v.step([]byte{0x67, 0xf3, 0xa4}, G+0x80, true)
	if err != nil || n != 3 {
		t.Fatalf("addr32 rep movsb: %d, %v", n, err)
	}
	want := []devAccess{W(G+0x80, 1, 0xa0), W(G+0x81, 1, 0xa1)}
	if !slices.Equal(v.dev.log, want) {
		t.Errorf("device saw %v, want %v", v.dev.log, want)
	}
	// 32-bit register updates zero-extend, as KVM and the CPU do.
	if v.cpu.gpr[rsi] != bufPhys+2 || v.cpu.gpr[rdi] != G+0x82 || v.cpu.gpr[rcx] != 0 {
		t.Errorf("rsi %#x rdi %#x rcx %#x", v.cpu.gpr[rsi], v.cpu.gpr[rdi], v.cpu.gpr[rcx])
	}
}

func TestStringRealMode(t *testing.T) {
	v := newEnv16(t)
	for r := range v.cpu.gpr {
		v.cpu.gpr[r] = base(vcpu.GPR(r))
	}
	v.setSeg(vcpu.DS, 0x2000)
	v.setSeg(vcpu.ES, 0xb800)
	copy(v.mem.ram[0x20000+0x10:], []byte{1, 2, 3})
	v.cpu.gpr[rsi] = 0xabcd_0010
	v.cpu.gpr[rdi] = 0x1234_0100
	v.cpu.gpr[rcx] = 0x9999_0003
	n, err := v.step([]byte{0xf3, 0xa4}, 0xb8100, true)
	if err != nil || n != 2 {
		t.Fatalf("rep movsb: %d, %v", n, err)
	}
	want := []devAccess{W(0xb8100, 1, 1), W(0xb8101, 1, 2), W(0xb8102, 1, 3)}
	if !slices.Equal(v.dev.log, want) {
		t.Errorf("device saw %v, want %v", v.dev.log, want)
	}
	// 16-bit updates keep the upper bits.
	if v.cpu.gpr[rsi] != 0xabcd_0013 || v.cpu.gpr[rdi] != 0x1234_0103 || v.cpu.gpr[rcx] != 0x9999_0000 {
		t.Errorf("rsi %#x rdi %#x rcx %#x", v.cpu.gpr[rsi], v.cpu.gpr[rdi], v.cpu.gpr[rcx])
	}
}

func TestStringPageFaultMidRep(t *testing.T) {
	v := stringEnv(t)
	const lin = 0x40_0000_0000
	v.pt.mapPage(lin, bufPhys, 12, pteP|pteRW) // lin+4096 stays unmapped
	v.cpu.gpr[rsi] = lin + pageSize - 8
	v.cpu.gpr[rdi] = A + 0x100
	v.cpu.gpr[rcx] = 5
	n, err := v.step([]byte{0xf3, 0xa5}, G+0x100, true)
	var pf *PageFault
	if !errors.As(err, &pf) || n != 0 {
		t.Fatalf("got %d, %v; want a page fault", n, err)
	}
	if pf.Linear != lin+pageSize || pf.ErrorCode != 0 {
		t.Errorf("fault %+v, want linear %#x error code 0 (read, supervisor, not present)", *pf, uint64(lin+pageSize))
	}
	if len(v.dev.log) != 2 {
		t.Errorf("device saw %v, want the 2 elements before the fault", v.dev.log)
	}
	if v.cpu.gpr[rcx] != 3 || v.cpu.gpr[rsi] != lin+pageSize || v.cpu.gpr[rdi] != A+0x108 {
		t.Errorf("rcx %#x rsi %#x rdi %#x: registers must record the 2 completed iterations", v.cpu.gpr[rcx], v.cpu.gpr[rsi], v.cpu.gpr[rdi])
	}
}

func TestStringElementCrossingPagesInRAM(t *testing.T) {
	v := stringEnv(t)
	const lin = 0x50_0000_0000
	v.pt.mapPage(lin, bufPhys, 12, pteP|pteRW)
	v.pt.mapPage(lin+pageSize, bufPhys+0x5000, 12, pteP|pteRW) // not adjacent
	copy(v.mem.ram[bufPhys+pageSize-2:], []byte{0x11, 0x22})
	copy(v.mem.ram[bufPhys+0x5000:], []byte{0x33, 0x44})
	v.cpu.gpr[rsi] = lin + pageSize - 2
	v.cpu.gpr[rdi] = A + 0x40
	n, err := v.step([]byte{0xa5}, G+0x40, true)
	if err != nil || n != 1 {
		t.Fatalf("movsd: %d, %v", n, err)
	}
	if !slices.Equal(v.dev.log, []devAccess{W(G+0x40, 4, 0x4433_2211)}) {
		t.Errorf("device saw %v", v.dev.log)
	}
}

func TestStringZeroCount(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rdi] = A
	v.cpu.gpr[rcx] = 0xffff_ffff_0000_0000 // ECX = 0 with a 32-bit address size
	n, err := v.step([]byte{0x67, 0xf3, 0xab}, G, true)
	if err != nil || n != 3 || len(v.dev.log) != 0 || v.cpu.gpr[rcx] != 0xffff_ffff_0000_0000 {
		t.Errorf("rep stosd with ECX=0: %d, %v, %v, rcx %#x", n, err, v.dev.log, v.cpu.gpr[rcx])
	}
}

func TestStringMismatch(t *testing.T) {
	v := stringEnv(t)
	v.cpu.gpr[rdi] = A + 0x100
	v.cpu.gpr[rcx] = 2
	before := v.cpu.gpr
	_, err := v.step([]byte{0xf3, 0xab}, G+0x800, true)
	if !errors.Is(err, ErrFaultMismatch) {
		t.Fatalf("rep stosd at another address: %v, want ErrFaultMismatch", err)
	}
	if v.cpu.gpr != before || len(v.dev.log) != 0 {
		t.Errorf("a mismatch changed state: %v", v.dev.log)
	}
	// LODS reads: a write fault can not be its access.
	v.cpu.gpr[rsi] = A + 0x100
	if _, err := v.step([]byte{0xad}, G+0x100, true); !errors.Is(err, ErrFaultMismatch) {
		t.Errorf("lodsd against a write fault: %v, want ErrFaultMismatch", err)
	}
}

func TestStepErrors(t *testing.T) {
	cases := []struct {
		name  string
		code  []byte
		gpa   uint64
		write bool
		is    error
	}{
		{"movups is not emulated", []byte{0x0f, 0x10, 0x07}, G + 0x300, false, ErrUnsupported},
		{"inc [rdi] is not emulated", []byte{0xff, 0x07}, G + 0x300, true, ErrUnsupported},
		{"undecodable", []byte{0x0f, 0x0f, 0xff, 0xff}, G + 0x300, false, ErrUnsupported},
		{"lock mov is #UD", []byte{0xf0, 0x89, 0x07}, G + 0x300, true, ErrUnsupported},
		{"mov to a segment register", []byte{0x8e, 0x1f}, G + 0x300, false, ErrUnsupported},
		{"other address", []byte{0x89, 0x07}, G + 0x400, true, ErrFaultMismatch},
		{"register-only instruction", []byte{0x89, 0xc0}, G + 0x300, true, ErrFaultMismatch},
		{"load against a write fault", []byte{0x8b, 0x07}, G + 0x300, true, ErrFaultMismatch},
		{"cmp against a write fault", []byte{0x39, 0x07}, G + 0x300, true, ErrFaultMismatch},
		{"device access crossing a page", []byte{0x89, 0x07}, G + 0x1000, true, ErrUnsupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newEnv64(t)
			v.cpu.gpr[rdi] = A + 0x300
			if c.name == "device access crossing a page" {
				v.cpu.gpr[rdi] = G + 0xffe
			}
			before := *v.cpu
			_, err := v.step(c.code, c.gpa, c.write)
			if !errors.Is(err, c.is) {
				t.Fatalf("Step(% x) = %v, want %v", c.code, err, c.is)
			}
			if v.cpu.gpr != before.gpr || v.cpu.rflags != before.rflags || len(v.dev.log) != 0 {
				t.Errorf("failed Step changed state or touched the device: %v", v.dev.log)
			}
			t.Log(err)
		})
	}
}

func TestUnsupportedErrorNamesTheInstruction(t *testing.T) {
	v := newEnv64(t)
	v.cpu.gpr[rdi] = A + 0x300
	_, err := v.step([]byte{0x0f, 0x10, 0x07}, G+0x300, false)
	var u *UnsupportedError
	if !errors.As(err, &u) {
		t.Fatalf("%v is not an *UnsupportedError", err)
	}
	if u.Mnemonic != "MOVUPS" || u.Len != 3 || !slices.Equal(u.Bytes[:u.Len], []byte{0x0f, 0x10, 0x07}) || u.Mode != 64 {
		t.Errorf("UnsupportedError %+v", *u)
	}
}

func TestStepExecuteFault(t *testing.T) {
	v := newEnv64(t)
	v.load([]byte{0x90})
	_, err := v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: G, Execute: true})
	if err == nil {
		t.Fatal("an instruction fetch from MMIO was accepted")
	}
}

// TestStepNegativeDisplacement64: Linux reads its local APIC through the
// fixmap as MOV EAX, [RDI+disp32] with a negative disp32 and the register
// offset in RDI; the decoder's zero-extended displacement must be
// sign-extended, or the linear address misses the one the exit reports
// (Intel gives it exactly) by 4 GiB.
func TestStepNegativeDisplacement64(t *testing.T) {
	disp := uint32(A & 0xffff_ffff) // A is within 2 GiB of the top: a negative disp32
	for _, linearValid := range []bool{false, true} {
		v := newEnv64(t)
		v.cpu.gpr[rdi] = 0x20
		v.dev.readVal = func(uint64, uint8) uint64 { return 0x1234_5678 }
		v.load(cat([]byte{0x8b, 0x87}, le32(disp)))
		f := vcpu.NPFExit{GPA: G + 0x20, Read: true, GuestLinear: A + 0x20, GuestLinearValid: linearValid}
		if n, err := v.e.Step(v.cpu, v.mem, v.dev, f); err != nil || n != 6 {
			t.Fatalf("linear address reported %v: %d, %v", linearValid, n, err)
		}
		if want := []devAccess{R(G+0x20, 4)}; !slices.Equal(v.dev.log, want) {
			t.Errorf("linear address reported %v: device saw %v, want %v", linearValid, v.dev.log, want)
		}
		if v.cpu.gpr[rax] != 0x1234_5678 {
			t.Errorf("RAX %#x after the read", v.cpu.gpr[rax])
		}
	}
	// A moffs address is 64 bits wide and not sign-extended: MOV EAX,
	// [0xfee00020] reads the identity-mapped APIC page.
	v := newEnv64(t)
	v.load(cat([]byte{0xa1}, le64(G+0x20)))
	f := vcpu.NPFExit{GPA: G + 0x20, Read: true, GuestLinear: G + 0x20, GuestLinearValid: true}
	if n, err := v.e.Step(v.cpu, v.mem, v.dev, f); err != nil || n != 9 {
		t.Fatalf("moffs: %d, %v", n, err)
	}
}

func TestStepGuestLinearCheck(t *testing.T) {
	// Intel reports the guest linear address: it must match the operand.
	v := newEnv64(t)
	v.cpu.gpr[rdi] = A + 0x300
	v.load([]byte{0x89, 0x07})
	f := vcpu.NPFExit{GPA: G + 0x300, Write: true, GuestLinear: A + 0x300, GuestLinearValid: true}
	if n, err := v.e.Step(v.cpu, v.mem, v.dev, f); err != nil || n != 2 {
		t.Fatalf("matching linear address: %d, %v", n, err)
	}
	f.GuestLinear = A + 0x800
	if _, err := v.e.Step(v.cpu, v.mem, v.dev, f); !errors.Is(err, ErrFaultMismatch) {
		t.Errorf("other linear address: %v, want ErrFaultMismatch", err)
	}
}

func TestFetchAcrossPages(t *testing.T) {
	v := newEnv64(t)
	const lin = 0x60_0000_0000
	v.pt.mapPage(lin, codePhys+0x10_0000, 12, pteP|pteRW)
	v.cpu.gpr[rdi] = A + 0x300
	// The instruction ends exactly at the page end; nothing is mapped
	// after it.
	v.cpu.rip = lin + pageSize - 2
	copy(v.mem.ram[codePhys+0x10_0000+pageSize-2:], []byte{0x89, 0x07})
	if n, err := v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: G + 0x300, Write: true}); err != nil || n != 2 {
		t.Fatalf("instruction before an unmapped page: %d, %v", n, err)
	}
	// One byte further it crosses into the unmapped page: #PF on the
	// fetch of its second byte.
	v.cpu.rip = lin + pageSize - 1
	v.mem.ram[codePhys+0x10_0000+pageSize-1] = 0x89
	_, err := v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: G + 0x300, Write: true})
	var pf *PageFault
	if !errors.As(err, &pf) || pf.Linear != lin+pageSize || pf.ErrorCode != PFFetch {
		t.Fatalf("instruction crossing into an unmapped page: %v, want #PF at %#x with I/D", err, uint64(lin+pageSize))
	}
	// Across two mapped pages with discontiguous frames.
	v.pt.mapPage(lin+pageSize, codePhys+0x20_0000, 12, pteP|pteRW)
	v.mem.ram[codePhys+0x20_0000] = 0x07
	if n, err := v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: G + 0x300, Write: true}); err != nil || n != 2 {
		t.Fatalf("instruction across two pages: %d, %v", n, err)
	}
}

func TestInstructionLength(t *testing.T) {
	cases := []struct {
		mode int
		code []byte
		want int
	}{
		{64, []byte{0x0f, 0xa2}, 2},                          // CPUID
		{64, []byte{0x0f, 0x32}, 2},                          // RDMSR
		{64, []byte{0x0f, 0x30}, 2},                          // WRMSR
		{64, []byte{0xf4}, 1},                                // HLT
		{64, []byte{0xf3, 0x90}, 2},                          // PAUSE
		{64, []byte{0xe6, 0x80}, 2},                          // OUT imm8, AL
		{64, []byte{0x66, 0xef}, 2},                          // OUT DX, AX
		{64, []byte{0xf3, 0x6d}, 2},                          // REP INSD
		{64, []byte{0x0f, 0x01, 0xd9}, 3},                    // VMMCALL
		{64, []byte{0x0f, 0x01, 0xc1}, 3},                    // VMCALL
		{64, []byte{0x0f, 0x01, 0xd8}, 3},                    // VMRUN
		{64, []byte{0x0f, 0x01, 0xd1}, 3},                    // XSETBV
		{64, []byte{0x0f, 0x01, 0xf9}, 3},                    // RDTSCP
		{64, []byte{0x0f, 0x01, 0xca}, 3},                    // CLAC
		{64, []byte{0x0f, 0xc7, 0xf8}, 3},                    // RDSEED EAX
		{64, []byte{0xf3, 0x0f, 0xc7, 0xf8}, 4},              // RDPID
		{64, []byte{0x48, 0x0f, 0xc7, 0xf8}, 4},              // RDSEED RAX
		{64, []byte{0x0f, 0x22, 0xd8}, 3},                    // MOV CR3, RAX
		{64, []byte{0x0f, 0x01, 0x38}, 3},                    // INVLPG [RAX]
		{64, []byte{0x0f, 0x01, 0xbc, 0x24, 1, 2, 3, 4}, 8},  // INVLPG [RSP+disp32]
		{64, []byte{0xc7, 0x05, 1, 2, 3, 4, 5, 6, 7, 8}, 10}, // MOV [RIP+d], imm32
		{32, []byte{0x0f, 0xa2}, 2},
		{32, []byte{0x66, 0xe5, 0x40}, 3}, // IN AX, 0x40
		{32, []byte{0x0f, 0x01, 0xd9}, 3},
		{16, []byte{0xee}, 1},
		{16, []byte{0x66, 0x0f, 0x30}, 3},
		{16, []byte{0xc7, 0x06, 0x34, 0x12, 0x78, 0x56}, 6}, // MOV word [0x1234], imm16
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d/% x", c.mode, c.code), func(t *testing.T) {
			var v *env
			switch c.mode {
			case 64:
				v = newEnv64(t)
			case 32:
				v = newEnv32(t)
			default:
				v = newEnv16(t)
			}
			v.load(c.code)
			n, err := InstructionLength(v.cpu, v.mem)
			if err != nil || n != c.want {
				t.Errorf("InstructionLength = %d, %v; want %d", n, err, c.want)
			}
		})
	}
	v := newEnv64(t)
	v.load([]byte{0x0f, 0x0f, 0xff, 0xff})
	if _, err := InstructionLength(v.cpu, v.mem); !errors.Is(err, ErrUnsupported) {
		t.Errorf("undecodable instruction: %v, want ErrUnsupported", err)
	}
	v.cpu.rip = 0x1234_5000 // not mapped
	var pf *PageFault
	if _, err := InstructionLength(v.cpu, v.mem); !errors.As(err, &pf) || pf.ErrorCode != PFFetch {
		t.Errorf("unmapped RIP: %v, want a fetch #PF", err)
	}
	v.cpu.rip = 0x8000_0000_0000_0000
	if _, err := InstructionLength(v.cpu, v.mem); !errors.Is(err, ErrNonCanonical) {
		t.Errorf("non-canonical RIP: %v, want ErrNonCanonical", err)
	}
}

// TestStepAllocations checks that Step allocates nothing beyond what
// x86asm's Decode allocates for the same bytes.
func TestStepAllocations(t *testing.T) {
	cases := []struct {
		name string
		code []byte
	}{
		{"mov [rdi],eax", []byte{0x89, 0x07}},
		{"mov dword [rdi],imm32", []byte{0xc7, 0x07, 0x78, 0x56, 0x34, 0x12}},
		{"or [rdi],eax", []byte{0x09, 0x07}},
		{"rep stosd", []byte{0xf3, 0xab}},
	}
	for _, c := range cases {
		v := newEnv64(t)
		v.dev.noLog = true
		v.load(c.code)
		f := vcpu.NPFExit{GPA: G + 0x300, Write: true}
		step := func() {
			v.cpu.gpr[rdi] = A + 0x300
			v.cpu.gpr[rcx] = 16
			if _, err := v.e.Step(v.cpu, v.mem, v.dev, f); err != nil {
				t.Fatal(err)
			}
		}
		// The first Step decodes (x86asm allocates for its operands);
		// repeats of the same instruction come from the decode cache.
		step()
		got := testing.AllocsPerRun(200, step)
		t.Logf("%s: Step %.0f allocs/op once decoded", c.name, got)
		if got != 0 {
			t.Errorf("%s: a repeated Step allocates %.0f times: the exit path must not allocate", c.name, got)
		}
	}
}

func BenchmarkStepMOVStore(b *testing.B) {
	v := newEnv64(b)
	v.dev.noLog = true
	v.cpu.gpr[rdi] = A + 0x300
	v.load([]byte{0x89, 0x07})
	f := vcpu.NPFExit{GPA: G + 0x300, Write: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.e.Step(v.cpu, v.mem, v.dev, f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInstructionLength(b *testing.B) {
	v := newEnv64(b)
	v.load([]byte{0x0f, 0xa2})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.e.InstructionLength(v.cpu, v.mem); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeCacheDistinguishesInstructions checks that the cache never
// serves one instruction for another with the same leading bytes or in
// another mode.
func TestDecodeCacheDistinguishesInstructions(t *testing.T) {
	var c decodeCache
	var in x86asm.Inst
	seqs := []struct {
		code []byte
		mode int
		op   x86asm.Op
		n    int
	}{
		{[]byte{0x89, 0x07, 0x90}, 64, x86asm.MOV, 2}, // mov [rdi], eax
		{[]byte{0x89, 0x47, 0x10}, 64, x86asm.MOV, 3}, // mov [rdi+0x10], eax
		{[]byte{0x48, 0x89, 0x07}, 64, x86asm.MOV, 3}, // mov [rdi], rax
		{[]byte{0x48, 0x89, 0x07}, 32, x86asm.DEC, 1}, // dec eax (REX is DEC in 32-bit mode)
		{[]byte{0x89, 0x07, 0x90}, 64, x86asm.MOV, 2}, // cached again
		{[]byte{0x09, 0x07}, 64, x86asm.OR, 2},        // or [rdi], eax
	}
	for i, s := range seqs {
		if err := c.decode(&in, s.code, s.mode); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if in.Op != s.op || in.Len != s.n {
			t.Errorf("%d: % x in %d-bit mode decoded as %v (%d bytes), want %v (%d)", i, s.code, s.mode, in.Op, in.Len, s.op, s.n)
		}
	}
	var fresh decodeCache
	fresh.decode(&in, []byte{0xc7, 0x07, 1, 2, 3, 4}, 64)
	fresh.decode(&in, []byte{0xc7, 0x07, 1, 2, 3, 4}, 64)
	if fresh.Hits != 1 || in.Op != x86asm.MOV || in.Len != 6 {
		t.Errorf("a repeated instruction: %d hits, decoded %v (%d bytes)", fresh.Hits, in.Op, in.Len)
	}
}
