//go:build tamago

#include "textflag.h"

// func clflush(addr uint64)
TEXT ·clflush(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	CLFLUSH	(AX)
	RET

// func mfence()
TEXT ·mfence(SB),NOSPLIT,$0-0
	MFENCE
	RET
