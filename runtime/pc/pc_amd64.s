//go:build tamago

#include "textflag.h"

// func halt()
TEXT ·halt(SB),NOSPLIT,$0
	CLI
	HLT
	RET
