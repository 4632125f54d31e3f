//go:build tamago

#include "textflag.h"

// func writeCR3(root uint64)
TEXT ·writeCR3(SB),NOSPLIT,$0-8
	MOVQ	root+0(FP), AX
	MOVQ	AX, CR3
	RET
