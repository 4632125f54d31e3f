//go:build tamago

#include "textflag.h"
#include "svm_amd64.h"

// Guest general-purpose registers in vcpu.GPR order (x86 encoding):
// RAX 0, RCX 1, RDX 2, RBX 3, RSP 4, RBP 5, RSI 6, RDI 7, R8-R15 8-15.
// RAX and RSP live in the VMCB; the others are swapped here.

// func vmrun(guestVMCB, hostVMCB uint64, regs *[16]uint64, guestFPU, hostFPU *fxArea)
//
// One world switch (AMD APM Vol. 2, 15.5): with GIF clear, save the host's
// hidden state (FS/GS bases, among them the Go runtime's TLS, TR, syscall
// MSRs) with VMSAVE, load the guest's with VMLOAD, enter with VMRUN, and
// undo it all at #VMEXIT. VMRUN itself saves and restores the host's RAX,
// RSP, RIP, RFLAGS, control registers and descriptor tables. The x87/SSE
// state is swapped with FXSAVE/FXRSTOR (the Go runtime uses SSE registers,
// X15 as its zero register, and guests are offered no XSAVE state).
TEXT ·vmrun(SB),NOSPLIT,$80-40
	MOVQ	guestVMCB+0(FP), AX
	MOVQ	hostVMCB+8(FP), BX
	MOVQ	regs+16(FP), CX
	MOVQ	guestFPU+24(FP), DX
	MOVQ	hostFPU+32(FP), SI

	FXSAVE64	(SI)
	FXRSTOR64	(DX)

	// Locals survive the switch: VMRUN restores RSP at #VMEXIT. BP is
	// restored by the epilogue.
	MOVQ	AX, 0(SP)	// guest VMCB
	MOVQ	BX, 8(SP)	// host VMCB
	MOVQ	CX, 16(SP)	// guest registers
	MOVQ	SI, 24(SP)	// host FPU area
	MOVQ	DX, 32(SP)	// guest FPU area
	MOVQ	R14, 40(SP)	// g
	MOVQ	R15, 48(SP)

	// With V_INTR_MASKING the host's RFLAGS.IF at VMRUN decides whether
	// physical interrupts reach the guest as INTR exits (AMD APM Vol. 2,
	// 15.21.1): it must be set, or a guest spinning with its timer due
	// would never exit. GIF is clear, so no interrupt is taken here.
	PUSHFQ
	POPQ	64(SP)
	CLGI
	STI
	MOVQ	BX, AX
	VMSAVE
	MOVQ	0(SP), AX
	VMLOAD

	MOVQ	(8*3)(CX), BX
	MOVQ	(8*2)(CX), DX
	MOVQ	(8*5)(CX), BP
	MOVQ	(8*6)(CX), SI
	MOVQ	(8*7)(CX), DI
	MOVQ	(8*8)(CX), R8
	MOVQ	(8*9)(CX), R9
	MOVQ	(8*10)(CX), R10
	MOVQ	(8*11)(CX), R11
	MOVQ	(8*12)(CX), R12
	MOVQ	(8*13)(CX), R13
	MOVQ	(8*14)(CX), R14
	MOVQ	(8*15)(CX), R15
	MOVQ	(8*1)(CX), CX

	VMRUN

	// #VMEXIT: RAX = guest VMCB again, RSP restored; the other GPRs hold
	// the guest's values.
	MOVQ	CX, 56(SP)
	MOVQ	16(SP), CX
	MOVQ	BX, (8*3)(CX)
	MOVQ	DX, (8*2)(CX)
	MOVQ	BP, (8*5)(CX)
	MOVQ	SI, (8*6)(CX)
	MOVQ	DI, (8*7)(CX)
	MOVQ	R8, (8*8)(CX)
	MOVQ	R9, (8*9)(CX)
	MOVQ	R10, (8*10)(CX)
	MOVQ	R11, (8*11)(CX)
	MOVQ	R12, (8*12)(CX)
	MOVQ	R13, (8*13)(CX)
	MOVQ	R14, (8*14)(CX)
	MOVQ	R15, (8*15)(CX)
	MOVQ	56(SP), BX
	MOVQ	BX, (8*1)(CX)

	MOVQ	0(SP), AX
	VMSAVE
	MOVQ	8(SP), AX
	VMLOAD
	STGI		// the interrupt that ended the run, if any, is taken here
	PUSHQ	64(SP)
	POPFQ		// the caller's interrupt flag

	MOVQ	40(SP), R14
	MOVQ	48(SP), R15
	MOVQ	32(SP), DX
	MOVQ	24(SP), SI
	FXSAVE64	(DX)
	FXRSTOR64	(SI)
	RET
