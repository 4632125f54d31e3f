//go:build tamago

#include "textflag.h"

// func halt()
TEXT ·halt(SB),NOSPLIT,$0
	CLI
	HLT
	RET

// func waitForInterrupt()
//
// Halts until an interrupt, which the host stubs EOI and return from, then
// restores the caller's interrupt flag. STI's one-instruction shadow makes
// STI; HLT atomic: an interrupt already pending wakes the HLT at once.
TEXT ·waitForInterrupt(SB),NOSPLIT,$0
	PUSHFQ
	STI
	HLT
	POPFQ
	RET
