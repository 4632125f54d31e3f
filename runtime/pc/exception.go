//go:build tamago

package pc

import (
	"fmt"
	"unsafe"
)

// faultFrame is the state of the code a CPU exception interrupted, recorded
// by faultCommon (exception_amd64.s reads the field offsets from go_asm.h).
type faultFrame struct {
	RAX, RBX, RCX, RDX, RSI, RDI, RBP    uint64
	R8, R9, R10, R11, R12, R13, R14, R15 uint64
	Vector, ErrorCode                    uint64
	RIP, CS, RFLAGS, RSP, SS, CR2        uint64
}

// fault holds the last exception. One record for all CPUs: an exception in
// the hypervisor is a broken invariant that ends with a panic, and faulting
// (set atomically by faultCommon) parks any CPU that faults while a report is
// being printed.
var (
	fault    faultFrame
	faulting uint32
)

// Defined in exception_amd64.s.
var faultStubs [32]uintptr

func sidt() (base uint64)

// exceptionNames, Intel SDM Vol. 3A, Table 6-1.
var exceptionNames = [32]string{
	0: "#DE divide error", 1: "#DB debug", 2: "NMI", 3: "#BP breakpoint",
	4: "#OF overflow", 5: "#BR bound range", 6: "#UD invalid opcode",
	7: "#NM device not available", 8: "#DF double fault",
	10: "#TS invalid TSS", 11: "#NP segment not present",
	12: "#SS stack fault", 13: "#GP general protection", 14: "#PF page fault",
	16: "#MF x87 floating point", 17: "#AC alignment check",
	18: "#MC machine check", 19: "#XM SIMD floating point",
	20: "#VE virtualization", 21: "#CP control protection",
	28: "#HV hypervisor injection", 29: "#VC VMM communication",
	30: "#SX security",
}

// installExceptionHandlers points the exception gates of the IDT that the
// CPU has loaded (TamaGo's, shared by every CPU it starts) at our stubs.
// Vector 2 stays with TamaGo: it wakes application processors with NMIs.
func installExceptionHandlers() {
	idt := sidt()
	for v := 0; v < 32; v++ {
		if v == 2 {
			continue
		}
		writeInterruptGate(idt, v, faultStubs[v])
	}
}

// writeInterruptGate writes a 64-bit interrupt gate (Intel SDM Vol. 3A,
// 6.14.1, Figure 6-8): present, DPL 0, type 0xE, kernel code selector 0x08.
func writeInterruptGate(idt uint64, vector int, handler uintptr) {
	gate := (*[2]uint64)(unsafe.Pointer(uintptr(idt) + uintptr(vector)*16))
	h := uint64(handler)
	gate[0] = h&0xffff | 0x08<<16 | 0x8e<<40 | (h>>16&0xffff)<<48
	gate[1] = h >> 32
}

// faultPanic runs in the context of the faulting code, as if called by the
// faulting instruction: it prints the machine state and panics, so the
// runtime adds a stack trace of the code that faulted.
func faultPanic() {
	f := fault
	name := "reserved"
	if f.Vector < 32 && exceptionNames[f.Vector] != "" {
		name = exceptionNames[f.Vector]
	}
	print(fmt.Sprintf("\ntamavisor: CPU exception %d (%s), error code %#x\n"+
		"  RIP %#016x  CS %#x  RFLAGS %#x\n"+
		"  RSP %#016x  SS %#x  CR2 %#016x\n"+
		"  RAX %#016x  RBX %#016x  RCX %#016x  RDX %#016x\n"+
		"  RSI %#016x  RDI %#016x  RBP %#016x\n"+
		"  R8  %#016x  R9  %#016x  R10 %#016x  R11 %#016x\n"+
		"  R12 %#016x  R13 %#016x  R14 %#016x  R15 %#016x\n",
		f.Vector, name, f.ErrorCode, f.RIP, f.CS, f.RFLAGS, f.RSP, f.SS, f.CR2,
		f.RAX, f.RBX, f.RCX, f.RDX, f.RSI, f.RDI, f.RBP,
		f.R8, f.R9, f.R10, f.R11, f.R12, f.R13, f.R14, f.R15))
	panic(fmt.Sprintf("CPU exception %d (%s) at RIP %#x", f.Vector, name, f.RIP))
}
