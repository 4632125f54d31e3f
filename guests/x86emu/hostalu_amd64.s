//go:build !tamago

#include "textflag.h"

// Host reference for the differential tests of alu (hostalu_amd64.go):
// each helper loads the status flags into RFLAGS, executes one instruction
// with dst in AX and src in BX, and returns AX and the resulting RFLAGS.

#define ALU(name, INSN) \
	TEXT name(SB), NOSPLIT, $0-40; \
	MOVQ dst+0(FP), AX; \
	MOVQ src+8(FP), BX; \
	MOVQ flags+16(FP), CX; \
	PUSHQ CX; \
	POPFQ; \
	INSN BX, AX; \
	PUSHFQ; \
	POPQ CX; \
	MOVQ AX, res+24(FP); \
	MOVQ CX, out+32(FP); \
	RET

// Go's assembler keeps Intel's operand order for CMP: CMPQ AX, BX sets the
// flags of AX - BX.
#define CMPOP(name, INSN) \
	TEXT name(SB), NOSPLIT, $0-40; \
	MOVQ dst+0(FP), AX; \
	MOVQ src+8(FP), BX; \
	MOVQ flags+16(FP), CX; \
	PUSHQ CX; \
	POPFQ; \
	INSN AX, BX; \
	PUSHFQ; \
	POPQ CX; \
	MOVQ AX, res+24(FP); \
	MOVQ CX, out+32(FP); \
	RET

ALU(·hostADD8, ADDB)
ALU(·hostADD16, ADDW)
ALU(·hostADD32, ADDL)
ALU(·hostADD64, ADDQ)
ALU(·hostADC8, ADCB)
ALU(·hostADC16, ADCW)
ALU(·hostADC32, ADCL)
ALU(·hostADC64, ADCQ)
ALU(·hostSUB8, SUBB)
ALU(·hostSUB16, SUBW)
ALU(·hostSUB32, SUBL)
ALU(·hostSUB64, SUBQ)
ALU(·hostSBB8, SBBB)
ALU(·hostSBB16, SBBW)
ALU(·hostSBB32, SBBL)
ALU(·hostSBB64, SBBQ)
CMPOP(·hostCMP8, CMPB)
CMPOP(·hostCMP16, CMPW)
CMPOP(·hostCMP32, CMPL)
CMPOP(·hostCMP64, CMPQ)
ALU(·hostAND8, ANDB)
ALU(·hostAND16, ANDW)
ALU(·hostAND32, ANDL)
ALU(·hostAND64, ANDQ)
ALU(·hostOR8, ORB)
ALU(·hostOR16, ORW)
ALU(·hostOR32, ORL)
ALU(·hostOR64, ORQ)
ALU(·hostXOR8, XORB)
ALU(·hostXOR16, XORW)
ALU(·hostXOR32, XORL)
ALU(·hostXOR64, XORQ)
ALU(·hostTEST8, TESTB)
ALU(·hostTEST16, TESTW)
ALU(·hostTEST32, TESTL)
ALU(·hostTEST64, TESTQ)
ALU(·hostBT16, BTW)
ALU(·hostBT32, BTL)
ALU(·hostBT64, BTQ)
