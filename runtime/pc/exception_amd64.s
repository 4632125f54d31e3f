//go:build tamago

// CPU exception entry: one stub per vector 0-31 (Intel SDM Vol. 3A, 6.15
// "Exception and Interrupt Reference"), a common path that records the
// interrupted state in ·fault, and a redirect that makes the interrupted code
// appear to call faultPanic at the faulting instruction, so that the Go
// runtime prints a stack trace of the code that faulted (the technique the Go
// runtime uses for signals with sigpanic).

#include "go_asm.h"
#include "textflag.h"

TEXT ·fault0<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$0
	JMP	·faultCommon<>(SB)
TEXT ·fault1<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$1
	JMP	·faultCommon<>(SB)
TEXT ·fault2<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$2
	JMP	·faultCommon<>(SB)
TEXT ·fault3<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$3
	JMP	·faultCommon<>(SB)
TEXT ·fault4<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$4
	JMP	·faultCommon<>(SB)
TEXT ·fault5<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$5
	JMP	·faultCommon<>(SB)
TEXT ·fault6<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$6
	JMP	·faultCommon<>(SB)
TEXT ·fault7<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$7
	JMP	·faultCommon<>(SB)
TEXT ·fault8<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$8
	JMP	·faultCommon<>(SB)
TEXT ·fault9<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$9
	JMP	·faultCommon<>(SB)
TEXT ·fault10<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$10
	JMP	·faultCommon<>(SB)
TEXT ·fault11<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$11
	JMP	·faultCommon<>(SB)
TEXT ·fault12<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$12
	JMP	·faultCommon<>(SB)
TEXT ·fault13<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$13
	JMP	·faultCommon<>(SB)
TEXT ·fault14<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$14
	JMP	·faultCommon<>(SB)
TEXT ·fault15<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$15
	JMP	·faultCommon<>(SB)
TEXT ·fault16<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$16
	JMP	·faultCommon<>(SB)
TEXT ·fault17<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$17
	JMP	·faultCommon<>(SB)
TEXT ·fault18<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$18
	JMP	·faultCommon<>(SB)
TEXT ·fault19<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$19
	JMP	·faultCommon<>(SB)
TEXT ·fault20<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$20
	JMP	·faultCommon<>(SB)
TEXT ·fault21<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$21
	JMP	·faultCommon<>(SB)
TEXT ·fault22<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$22
	JMP	·faultCommon<>(SB)
TEXT ·fault23<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$23
	JMP	·faultCommon<>(SB)
TEXT ·fault24<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$24
	JMP	·faultCommon<>(SB)
TEXT ·fault25<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$25
	JMP	·faultCommon<>(SB)
TEXT ·fault26<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$26
	JMP	·faultCommon<>(SB)
TEXT ·fault27<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$27
	JMP	·faultCommon<>(SB)
TEXT ·fault28<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$28
	JMP	·faultCommon<>(SB)
TEXT ·fault29<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$29
	JMP	·faultCommon<>(SB)
TEXT ·fault30<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$30
	JMP	·faultCommon<>(SB)
TEXT ·fault31<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	$0		// no error code for this vector
	PUSHQ	$31
	JMP	·faultCommon<>(SB)

DATA ·faultStubs+0(SB)/8, $·fault0<>(SB)
DATA ·faultStubs+8(SB)/8, $·fault1<>(SB)
DATA ·faultStubs+16(SB)/8, $·fault2<>(SB)
DATA ·faultStubs+24(SB)/8, $·fault3<>(SB)
DATA ·faultStubs+32(SB)/8, $·fault4<>(SB)
DATA ·faultStubs+40(SB)/8, $·fault5<>(SB)
DATA ·faultStubs+48(SB)/8, $·fault6<>(SB)
DATA ·faultStubs+56(SB)/8, $·fault7<>(SB)
DATA ·faultStubs+64(SB)/8, $·fault8<>(SB)
DATA ·faultStubs+72(SB)/8, $·fault9<>(SB)
DATA ·faultStubs+80(SB)/8, $·fault10<>(SB)
DATA ·faultStubs+88(SB)/8, $·fault11<>(SB)
DATA ·faultStubs+96(SB)/8, $·fault12<>(SB)
DATA ·faultStubs+104(SB)/8, $·fault13<>(SB)
DATA ·faultStubs+112(SB)/8, $·fault14<>(SB)
DATA ·faultStubs+120(SB)/8, $·fault15<>(SB)
DATA ·faultStubs+128(SB)/8, $·fault16<>(SB)
DATA ·faultStubs+136(SB)/8, $·fault17<>(SB)
DATA ·faultStubs+144(SB)/8, $·fault18<>(SB)
DATA ·faultStubs+152(SB)/8, $·fault19<>(SB)
DATA ·faultStubs+160(SB)/8, $·fault20<>(SB)
DATA ·faultStubs+168(SB)/8, $·fault21<>(SB)
DATA ·faultStubs+176(SB)/8, $·fault22<>(SB)
DATA ·faultStubs+184(SB)/8, $·fault23<>(SB)
DATA ·faultStubs+192(SB)/8, $·fault24<>(SB)
DATA ·faultStubs+200(SB)/8, $·fault25<>(SB)
DATA ·faultStubs+208(SB)/8, $·fault26<>(SB)
DATA ·faultStubs+216(SB)/8, $·fault27<>(SB)
DATA ·faultStubs+224(SB)/8, $·fault28<>(SB)
DATA ·faultStubs+232(SB)/8, $·fault29<>(SB)
DATA ·faultStubs+240(SB)/8, $·fault30<>(SB)
DATA ·faultStubs+248(SB)/8, $·fault31<>(SB)
GLOBL ·faultStubs(SB), RODATA, $(32*8)

// Stack on entry: vector, error code, then the interrupt frame RIP, CS,
// RFLAGS, RSP, SS (AMD APM Vol. 2, 8.9.3; Intel SDM Vol. 3A, 6.14.2).
TEXT ·faultCommon<>(SB),NOSPLIT|NOFRAME,$0
	MOVQ	AX, ·fault+faultFrame_RAX(SB)
	MOVQ	BX, ·fault+faultFrame_RBX(SB)
	MOVQ	CX, ·fault+faultFrame_RCX(SB)
	MOVQ	DX, ·fault+faultFrame_RDX(SB)
	MOVQ	SI, ·fault+faultFrame_RSI(SB)
	MOVQ	DI, ·fault+faultFrame_RDI(SB)
	MOVQ	BP, ·fault+faultFrame_RBP(SB)
	MOVQ	R8, ·fault+faultFrame_R8(SB)
	MOVQ	R9, ·fault+faultFrame_R9(SB)
	MOVQ	R10, ·fault+faultFrame_R10(SB)
	MOVQ	R11, ·fault+faultFrame_R11(SB)
	MOVQ	R12, ·fault+faultFrame_R12(SB)
	MOVQ	R13, ·fault+faultFrame_R13(SB)
	MOVQ	R14, ·fault+faultFrame_R14(SB)
	MOVQ	R15, ·fault+faultFrame_R15(SB)
	MOVQ	0(SP), AX
	MOVQ	AX, ·fault+faultFrame_Vector(SB)
	MOVQ	8(SP), AX
	MOVQ	AX, ·fault+faultFrame_ErrorCode(SB)
	MOVQ	16(SP), AX
	MOVQ	AX, ·fault+faultFrame_RIP(SB)
	MOVQ	24(SP), AX
	MOVQ	AX, ·fault+faultFrame_CS(SB)
	MOVQ	32(SP), AX
	MOVQ	AX, ·fault+faultFrame_RFLAGS(SB)
	MOVQ	40(SP), AX
	MOVQ	AX, ·fault+faultFrame_RSP(SB)
	MOVQ	48(SP), AX
	MOVQ	AX, ·fault+faultFrame_SS(SB)
	MOVQ	CR2, AX
	MOVQ	AX, ·fault+faultFrame_CR2(SB)

	// A second fault while one is being reported: stop this CPU here.
	MOVL	$1, AX
	XCHGL	AX, ·faulting(SB)
	TESTL	AX, AX
	JNE	stop

	// Push RIP+1 as the return address, so that the unwinder, which looks
	// up return address - 1, lands on the faulting instruction itself.
	// That slot, just below the interrupted RSP, is this frame's SS slot
	// when the interrupted RSP was 16-byte aligned (the CPU aligns before
	// pushing, SDM Vol. 3A 6.14.2): read the frame first, then return
	// through a new frame built below this one.
	MOVQ	40(SP), AX	// interrupted RSP
	SUBQ	$8, AX
	MOVQ	16(SP), BX
	INCQ	BX
	MOVQ	48(SP), CX	// SS
	MOVQ	32(SP), DX	// RFLAGS
	MOVQ	24(SP), SI	// CS
	MOVQ	BX, (AX)
	MOVQ	$·faultPanic(SB), DI
	PUSHQ	CX
	PUSHQ	AX
	PUSHQ	DX
	PUSHQ	SI
	PUSHQ	DI

	MOVQ	·fault+faultFrame_RAX(SB), AX
	MOVQ	·fault+faultFrame_RBX(SB), BX
	MOVQ	·fault+faultFrame_RCX(SB), CX
	MOVQ	·fault+faultFrame_RDX(SB), DX
	MOVQ	·fault+faultFrame_RSI(SB), SI
	MOVQ	·fault+faultFrame_RDI(SB), DI
	IRETQ
stop:
	CLI
	HLT
	JMP	stop

// func sidt() (base uint64)
TEXT ·sidt(SB),NOSPLIT,$16-8
	MOVQ	SP, AX
	BYTE	$0x0f; BYTE $0x01; BYTE $0x08	// SIDT (AX)
	MOVQ	2(SP), AX
	MOVQ	AX, base+0(FP)
	RET
