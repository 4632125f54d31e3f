package crashkernel

import (
	"bytes"
	"debug/elf"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests"
	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
)

func TestKernelsLoadAsMultiboot(t *testing.T) {
	for _, kind := range []string{TripleFault, Garbage, WildJump} { // RealMode and LongMode: below
		image := Build(kind)
		f, err := elf.NewFile(bytes.NewReader(image))
		if err != nil {
			t.Fatalf("%s: not an ELF: %v", kind, err)
		}
		if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 || f.Entry != loadAddress+codeOffset {
			t.Errorf("%s: class %v machine %v entry %#x", kind, f.Class, f.Machine, f.Entry)
		}
		layout, _ := platform.NewLayout(16<<20, 1)
		ram := guests.NewRAM(make([]byte, 16<<20), 0)
		res, err := loader.Load(loader.Guest{Memory: ram, Layout: layout}, image, loader.Options{KernelName: kind})
		if err != nil {
			t.Fatalf("%s: loader refused it: %v", kind, err)
		}
		if res.Format != loader.FormatMultiboot || res.State.RIP != loadAddress+codeOffset {
			t.Errorf("%s: loaded as %v entering at %#x", kind, res.Format, res.State.RIP)
		}
	}
	if Build("nonsense") != nil {
		t.Error("unknown kind built")
	}
}

// TestRealModeSector decodes the real-mode guest as 16-bit code and checks
// its control flow and operands: the far jump lands on the next
// instruction through segment 07C0h, the string pointer is the message,
// both branches land on instruction boundaries, and the exit writes
// RealModeExitValue + CR0.PE to port 0xF4.
func TestRealModeSector(t *testing.T) {
	b := Build(RealMode)
	if len(b) != 512 || b[510] != 0x55 || b[511] != 0xaa {
		t.Fatalf("%d bytes, signature % x: not a boot sector", len(b), b[510:])
	}
	if f := loader.Detect(b); f != loader.FormatBootSector {
		t.Fatalf("detected as %v", f)
	}
	starts := map[int]x86asm.Inst{}
	var order []int
	pc := 0
	for {
		in, err := x86asm.Decode(b[pc:], 16)
		if err != nil {
			t.Fatalf("offset %d: %v", pc, err)
		}
		starts[pc] = in
		order = append(order, pc)
		pc += in.Len
		if in.Op == x86asm.JMP && in.Args[0] == x86asm.Rel(-3) {
			break // the final HLT loop
		}
		if pc > 64 {
			t.Fatal("no final HLT loop in the first 64 bytes")
		}
	}
	msg := pc
	if got := string(b[msg : msg+len(RealModeMessage)+2]); got != RealModeMessage+"\n\x00" {
		t.Errorf("after the code: %q, want the message, a newline and NUL", got)
	}
	at := func(off int) x86asm.Inst {
		in, ok := starts[off]
		if !ok {
			t.Fatalf("no instruction starts at %d", off)
		}
		return in
	}
	far := at(1)
	if far.Op != x86asm.LJMP || far.Args[0] != x86asm.Imm(0x07c0) {
		t.Fatalf("second instruction %v, want JMP FAR 07C0:xxxx", far)
	}
	target := int(far.Args[1].(x86asm.Imm))
	if in := at(target); in.Op != x86asm.MOV || in.Args[1] != x86asm.CS {
		t.Errorf("the far jump lands on %v at %d, want MOV AX, CS", in, target)
	}
	var sawSI, sawExit bool
	for _, off := range order {
		in := starts[off]
		switch {
		case in.Op == x86asm.MOV && in.Args[0] == x86asm.SI:
			sawSI = in.Args[1] == x86asm.Imm(msg)
		case in.Op == x86asm.JE || in.Op == x86asm.JMP && off > 1:
			dest := off + in.Len + int(in.Args[0].(x86asm.Rel))
			at(dest)
		case in.Op == x86asm.ADD && in.Args[0] == x86asm.AL:
			sawExit = in.Args[1] == x86asm.Imm(RealModeExitValue)
		}
	}
	if !sawSI || !sawExit {
		t.Errorf("MOV SI, msg (%d) found %v; ADD AL, %#x found %v", msg, sawSI, RealModeExitValue, sawExit)
	}
}

// TestLongModeImage: the bzImage loads through package loader in long mode
// at 1 MiB + 0x200, and its 64-bit code points RSI at the message, loops
// on instruction boundaries and writes LongModeExitValue to port 0xF4.
func TestLongModeImage(t *testing.T) {
	image := Build(LongMode)
	if f := loader.Detect(image); f != loader.FormatBzImage {
		t.Fatalf("detected as %v, want a bzImage", f)
	}
	layout, _ := platform.NewLayout(16<<20, 1)
	mem := make([]byte, 16<<20)
	ram := guests.NewRAM(mem, 0)
	res, err := loader.Load(loader.Guest{Memory: ram, Layout: layout}, image, loader.Options{KernelName: LongMode})
	if err != nil {
		t.Fatalf("loader refused it: %v", err)
	}
	entry := res.State.RIP
	if res.State.Mode != loader.ModeLong || entry != bzLoadAddress+bzEntryOffset {
		t.Fatalf("loaded in %v mode entering at %#x", res.State.Mode, entry)
	}
	code := mem[entry:]
	offsets := map[int]bool{}
	var msg int
	var sawExit bool
	var branches [][2]int
	for pc := 0; ; {
		in, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			t.Fatalf("entry+%d: %v", pc, err)
		}
		offsets[pc] = true
		next := pc + in.Len
		switch {
		case in.Op == x86asm.LEA && in.Args[0] == x86asm.RSI:
			m := in.Args[1].(x86asm.Mem)
			if m.Base != x86asm.RIP {
				t.Fatalf("LEA RSI is not RIP-relative: %v", in)
			}
			msg = next + int(m.Disp)
		case in.Op == x86asm.JE || in.Op == x86asm.JMP:
			branches = append(branches, [2]int{pc, next + int(in.Args[0].(x86asm.Rel))})
		case in.Op == x86asm.MOV && in.Args[0] == x86asm.AL:
			sawExit = in.Args[1] == x86asm.Imm(LongModeExitValue)
		}
		pc = next
		if in.Op == x86asm.JMP && in.Args[0] == x86asm.Rel(-3) {
			break
		}
		if pc > 64 {
			t.Fatal("no final HLT loop")
		}
	}
	for _, b := range branches {
		if !offsets[b[1]] {
			t.Errorf("the branch at entry+%d lands at %d, inside an instruction", b[0], b[1])
		}
	}
	if got := string(code[msg : msg+len(LongModeMessage)+2]); got != LongModeMessage+"\n\x00" {
		t.Errorf("RSI points at %q", got)
	}
	if !sawExit {
		t.Errorf("no MOV AL, %#x", LongModeExitValue)
	}
}
