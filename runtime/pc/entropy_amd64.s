//go:build tamago

#include "textflag.h"

// func rdrand64() (v uint64, ok bool)
TEXT ·rdrand64(SB),NOSPLIT,$0-9
	BYTE	$0x48; BYTE $0x0f; BYTE $0xc7; BYTE $0xf0	// RDRAND RAX
	SETCS	BX
	MOVQ	AX, v+0(FP)
	MOVB	BX, ok+8(FP)
	RET

// func rdseed64() (v uint64, ok bool)
TEXT ·rdseed64(SB),NOSPLIT,$0-9
	BYTE	$0x48; BYTE $0x0f; BYTE $0xc7; BYTE $0xf8	// RDSEED RAX
	SETCS	BX
	MOVQ	AX, v+0(FP)
	MOVB	BX, ok+8(FP)
	RET
