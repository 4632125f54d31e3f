//go:build tamago

#include "textflag.h"
#include "vmx_amd64.h"

// Guest general-purpose registers in vcpu.GPR order (x86 encoding):
// RAX 0, RCX 8, RDX 16, RBX 24, RSP 32 (unused: RSP is in the VMCS),
// RBP 40, RSI 48, RDI 56, R8-R15 64-120.

// HOSTWRITE writes AX to the host-state field f of the current VMCS.
#define HOSTWRITE(f)	MOVQ $f, DX; VMWRITE_AX_DX; JBE vmwriteFailed

// RDMSR64 reads MSR m into AX (RDMSR clears the upper halves of RAX and
// RDX in 64-bit mode).
#define RDMSR64(m)	MOVL $m, CX; RDMSR; SHLQ $32, DX; ORQ DX, AX

// func vmxOn(apicID, region, cr0Fixed0, cr0Fixed1, cr4Fixed0, cr4Fixed1 uint64) (status uint64)
//
// Enters VMX root operation on this CPU (Intel SDM Vol. 3C, 24.7
// "Enabling and Entering VMX Operation"), if it is the CPU apicID names:
// IA32_FEATURE_CONTROL is locked with "VMXON outside SMX" set if firmware
// left it unlocked, CR0 and CR4 get the bits IA32_VMX_CR0/CR4_FIXED0 require
// (CR4.VMXE among them), and VMXON takes the VMXON region at physical
// address region. Status: 0 done, 1 another CPU, 2 IA32_FEATURE_CONTROL is
// locked with VMX off, 3 CR0 or 4 CR4 holds a bit FIXED1 forbids (nothing
// changed), 5 VMXON failed with CF (VMfailInvalid: bad region or
// revision), 6 VMXON failed with ZF (VMfailValid).
TEXT ·vmxOn(SB),NOSPLIT,$0-56
	MOVQ	$LAPIC_ID_REGISTER, AX
	MOVL	(AX), AX
	SHRL	$24, AX
	CMPQ	AX, apicID+0(FP)
	JNE	wrong

	MOVQ	CR0, AX
	ORQ	cr0Fixed0+16(FP), AX
	MOVQ	cr0Fixed1+24(FP), BX
	NOTQ	BX
	TESTQ	BX, AX
	JNE	badCR0
	MOVQ	CR4, AX
	ORQ	cr4Fixed0+32(FP), AX
	MOVQ	cr4Fixed1+40(FP), BX
	NOTQ	BX
	TESTQ	BX, AX
	JNE	badCR4

	MOVL	$MSR_FEATURE_CONTROL, CX
	RDMSR
	TESTL	$1, AX
	JNE	locked
	ORL	$5, AX			// lock, VMX outside SMX
	WRMSR
	JMP	enable
locked:
	TESTL	$4, AX
	JEQ	disabled
enable:
	MOVQ	CR0, AX
	ORQ	cr0Fixed0+16(FP), AX
	MOVQ	AX, CR0
	MOVQ	CR4, AX
	ORQ	cr4Fixed0+32(FP), AX
	MOVQ	AX, CR4
	LEAQ	region+8(FP), AX	// VMXON's operand is the address of the 64-bit pointer
	VMXON_AX
	JCS	failInvalid
	JEQ	failValid
	MOVQ	$0, status+48(FP)
	RET
wrong:
	MOVQ	$1, status+48(FP)
	RET
disabled:
	MOVQ	$2, status+48(FP)
	RET
badCR0:
	MOVQ	$3, status+48(FP)
	RET
badCR4:
	MOVQ	$4, status+48(FP)
	RET
failInvalid:
	MOVQ	$5, status+48(FP)
	RET
failValid:
	MOVQ	$6, status+48(FP)
	RET

// func vmxRun(ws *worldSwitch) (status uint64)
//
// One guest run on this CPU, from VMPTRLD to VMCLEAR, with interrupts
// disabled throughout (an interrupt that arrives stays pending and makes
// the guest exit at once: external-interrupt exiting), so that nothing
// moves the goroutine between the steps. The VMCS is made current, the
// changed fields (ws.Writes) and this CPU's host state are written, the
// x87/SSE state is swapped (FXSAVE/FXRSTOR: the Go runtime uses SSE, and
// guests get no XSAVE state), the guest's registers are loaded and
// VMLAUNCH enters the guest. The VM exit resumes at vmxExitPoint with the
// stack as pushed here.
//
// VMLAUNCH, not VMRESUME: the VMCS is cleared at the end of every run
// (the next run may be on another CPU, and a VMCS may be active on one
// CPU only), which makes its launch state "clear" again. The cost is a
// VMCLEAR and a VMPTRLD per run, and the fields re-read after each exit;
// keeping the VMCS current while the goroutine stays on one CPU would save
// both.
TEXT ·vmxRun(SB),NOSPLIT|NOFRAME,$0-16
	MOVQ	ws+0(FP), DI
	PUSHFQ
	PUSHQ	BP
	PUSHQ	R14
	PUSHQ	R15
	PUSHQ	DI
	// 0(SP) ws, 8(SP) R15, 16(SP) R14, 24(SP) BP, 32(SP) RFLAGS,
	// 40(SP) return address, 48(SP) ws argument, 56(SP) status.
	// HOST_RSP is this SP.
	CLI

	MOVQ	$LAPIC_ID_REGISTER, AX
	MOVL	(AX), AX
	SHRL	$24, AX
	CMPQ	AX, WS_APICID(DI)
	JNE	wrongCPU

	// A new VMCS is cleared once before its first VMPTRLD, which
	// initializes it with its launch state clear (SDM Vol. 3C, 25.11.3
	// "Initializing a VMCS").
	CMPQ	WS_INIT(DI), $0
	JEQ	load
	LEAQ	WS_VMCS(DI), AX
	VMCLEAR_AX
	JBE	vmptrldFailed
	MOVQ	$0, WS_INIT(DI)
load:
	LEAQ	WS_VMCS(DI), AX
	VMPTRLD_AX
	JBE	vmptrldFailed

	MOVQ	WS_WRITES(DI), SI
	MOVQ	WS_NWRITES(DI), CX
writes:
	TESTQ	CX, CX
	JEQ	host
	MOVQ	0(SI), DX
	MOVQ	8(SI), AX
	VMWRITE_AX_DX
	JBE	vmwriteFailed
	ADDQ	$16, SI
	DECQ	CX
	JMP	writes

host:
	// This CPU's host state (SDM Vol. 3C, 25.5 "Host-State Area"); the
	// selectors are in ws.Writes, written once per VMCS.
	MOVQ	CR0, AX
	HOSTWRITE(F_HOST_CR0)
	MOVQ	CR3, AX
	HOSTWRITE(F_HOST_CR3)
	MOVQ	CR4, AX
	HOSTWRITE(F_HOST_CR4)
	RDMSR64(MSR_FS_BASE)		// the Go runtime's TLS on this CPU
	HOSTWRITE(F_HOST_FS_BASE)
	RDMSR64(MSR_GS_BASE)
	HOSTWRITE(F_HOST_GS_BASE)
	MOVQ	WS_HOSTTRBASE(DI), AX
	HOSTWRITE(F_HOST_TR_BASE)
	LEAQ	WS_SCRATCH(DI), AX
	SGDT_AX
	MOVQ	WS_SCRATCH+2(DI), AX
	HOSTWRITE(F_HOST_GDTR_BASE)
	LEAQ	WS_SCRATCH(DI), AX
	SIDT_AX
	MOVQ	WS_SCRATCH+2(DI), AX
	HOSTWRITE(F_HOST_IDTR_BASE)
	RDMSR64(MSR_SYSENTER_CS)
	HOSTWRITE(F_HOST_SYSENTER_CS)
	RDMSR64(MSR_SYSENTER_ESP)
	HOSTWRITE(F_HOST_SYSENTER_ESP)
	RDMSR64(MSR_SYSENTER_EIP)
	HOSTWRITE(F_HOST_SYSENTER_EIP)
	RDMSR64(MSR_EFER)
	HOSTWRITE(F_HOST_EFER)
	RDMSR64(MSR_PAT)
	HOSTWRITE(F_HOST_PAT)
	MOVQ	SP, AX
	HOSTWRITE(F_HOST_RSP)
	LEAQ	·vmxExitPoint<>(SB), AX
	HOSTWRITE(F_HOST_RIP)

	CMPQ	WS_FLUSH(DI), $0
	JEQ	enter
	MOVQ	WS_INVEPTTYPE(DI), AX
	TESTQ	AX, AX
	JEQ	vpid
	LEAQ	WS_INVEPTDESC(DI), CX
	INVEPT_AX_CX
	JBE	invalidationFailed
vpid:
	MOVQ	WS_INVVPIDTYPE(DI), AX
	TESTQ	AX, AX
	JEQ	enter
	LEAQ	WS_INVVPIDDESC(DI), CX
	INVVPID_AX_CX
	JBE	invalidationFailed

enter:
	MOVQ	WS_CR2(DI), AX
	MOVQ	AX, CR2
	MOVQ	WS_HOSTFPU(DI), AX
	FXSAVE64	(AX)
	MOVQ	WS_GUESTFPU(DI), AX
	FXRSTOR64	(AX)

	MOVQ	WS_REGS(DI), AX
	MOVQ	8(AX), CX
	MOVQ	16(AX), DX
	MOVQ	24(AX), BX
	MOVQ	40(AX), BP
	MOVQ	48(AX), SI
	MOVQ	56(AX), DI
	MOVQ	64(AX), R8
	MOVQ	72(AX), R9
	MOVQ	80(AX), R10
	MOVQ	88(AX), R11
	MOVQ	96(AX), R12
	MOVQ	104(AX), R13
	MOVQ	112(AX), R14
	MOVQ	120(AX), R15
	MOVQ	0(AX), AX

	VMLAUNCH

	// Only a failed VMLAUNCH gets here (the flags say how), with this
	// stack and the guest's other registers.
	MOVQ	0(SP), DI
	MOVQ	8(SP), R15
	MOVQ	16(SP), R14
	MOVQ	24(SP), BP
	JCS	launchFailInvalid
	MOVQ	$0, WS_FAILINVALID(DI)
	JMP	launchFailed
launchFailInvalid:
	MOVQ	$1, WS_FAILINVALID(DI)
launchFailed:
	MOVQ	WS_GUESTFPU(DI), AX
	FXSAVE64	(AX)
	MOVQ	WS_HOSTFPU(DI), AX
	FXRSTOR64	(AX)
	MOVQ	$F_INSTRUCTION_ERROR, DX
	VMREAD_DX_AX
	MOVQ	AX, WS_INSTRUCTIONERROR(DI)
	MOVQ	$WS_VMLAUNCH, BX
	JMP	clear

wrongCPU:
	MOVQ	$WS_WRONGCPU, BX
	JMP	out
vmptrldFailed:
	MOVQ	$WS_VMPTRLD, BX
	JMP	out
vmwriteFailed:
	MOVQ	DX, WS_FAILEDFIELD(DI)
	MOVQ	$F_INSTRUCTION_ERROR, DX
	VMREAD_DX_AX
	MOVQ	AX, WS_INSTRUCTIONERROR(DI)
	MOVQ	$WS_VMWRITE, BX
	JMP	clear
invalidationFailed:
	MOVQ	$F_INSTRUCTION_ERROR, DX
	VMREAD_DX_AX
	MOVQ	AX, WS_INSTRUCTIONERROR(DI)
	MOVQ	$WS_INVALIDATION, BX
clear:
	LEAQ	WS_VMCS(DI), AX
	VMCLEAR_AX
out:
	POPQ	DI
	POPQ	R15
	POPQ	R14
	POPQ	BP
	POPFQ
	MOVQ	BX, status+8(FP)
	RET

// vmxExitPoint is HOST_RIP. At a VM exit the processor loads the host
// state from the VMCS (SDM Vol. 3C, 28.5 "Loading Host State"): RSP is
// HOST_RSP (0(SP) = ws, the stack vmxRun pushed), RFLAGS is 0x2
// (interrupts off), GDTR and IDTR limits are 0xFFFF; every other
// general-purpose register still holds the guest's value.
TEXT ·vmxExitPoint<>(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	DI
	MOVQ	8(SP), DI
	MOVQ	WS_REGS(DI), DI
	MOVQ	AX, 0(DI)
	MOVQ	CX, 8(DI)
	MOVQ	DX, 16(DI)
	MOVQ	BX, 24(DI)
	MOVQ	BP, 40(DI)
	MOVQ	SI, 48(DI)
	MOVQ	R8, 64(DI)
	MOVQ	R9, 72(DI)
	MOVQ	R10, 80(DI)
	MOVQ	R11, 88(DI)
	MOVQ	R12, 96(DI)
	MOVQ	R13, 104(DI)
	MOVQ	R14, 112(DI)
	MOVQ	R15, 120(DI)
	POPQ	AX
	MOVQ	AX, 56(DI)

	MOVQ	0(SP), DI
	MOVQ	8(SP), R15
	MOVQ	16(SP), R14
	MOVQ	24(SP), BP
	MOVQ	CR2, AX
	MOVQ	AX, WS_CR2(DI)
	MOVQ	WS_GUESTFPU(DI), AX
	FXSAVE64	(AX)
	MOVQ	WS_HOSTFPU(DI), AX
	FXRSTOR64	(AX)

	// The host interrupt that ended the run was acknowledged by the exit
	// ("acknowledge interrupt on exit": the vector is in the exit
	// interruption information, SDM Vol. 3C, 28.2.2) and is no longer
	// pending: deliver it to the host's handler through the host IDT, with
	// the frame the CPU would have pushed (SS, RSP, RFLAGS, CS, then RIP
	// by the CALL; RSP aligned to 16 bytes as in 64-bit mode, Intel SDM
	// Vol. 3A, 6.14.2); the handler's IRETQ returns here. This is how the
	// AMD engine's INTR exit ends too: the interrupt is taken by the host
	// handler, which counts it and signals EOI.
	MOVQ	$F_EXIT_REASON, DX
	VMREAD_DX_AX
	JBE	readFailed
	CMPL	AX, $1
	JEQ	external
	// With NMI exiting, a host NMI that arrived while the guest ran ended
	// the run and was consumed by the exit (exit reason 0, interruption
	// type NMI; SDM Vol. 3C, 25.6.1 "Pin-Based VM-Execution Controls"):
	// give it to the host's NMI handler (TamaGo's, which wakes CPUs with
	// NMIs), as the CPU would have; on AMD it stays pending until STGI.
	ANDL	$0x8000ffff, AX
	JNE	reads
	MOVQ	$F_EXIT_INTR_INFO, DX
	VMREAD_DX_AX
	JBE	readFailed
	ANDL	$0x80000700, AX
	CMPL	AX, $0x80000200
	JNE	reads
	INT_NMI
	JMP	reads
external:
	MOVQ	$F_EXIT_INTR_INFO, DX
	VMREAD_DX_AX
	JBE	readFailed
	TESTL	$0x80000000, AX
	JEQ	reads
	ANDQ	$0xff, AX
	SHLQ	$4, AX
	MOVQ	AX, R9			// the gate's offset in the IDT
	LEAQ	WS_SCRATCH(DI), AX
	SIDT_AX
	ADDQ	WS_SCRATCH+2(DI), R9	// the 16-byte interrupt gate (Intel SDM Vol. 3A, Figure 6-8)
	MOVQ	0(R9), R10
	MOVQ	R10, R11
	ANDQ	$0xffff, R10		// offset 15:0
	SHRQ	$32, R11
	ANDQ	$0xffff0000, R11	// offset 31:16
	ORQ	R11, R10
	MOVL	8(R9), R11		// offset 63:32
	SHLQ	$32, R11
	ORQ	R11, R10		// the handler
	PUSHFQ
	POPQ	AX			// RFLAGS as the exit left them: interrupts off
	MOVQ	SP, R11
	ANDQ	$~15, SP
	SUBQ	$32, SP
	MOVQ	$HOST_CS, 0(SP)
	MOVQ	AX, 8(SP)
	MOVQ	R11, 16(SP)
	MOVQ	$HOST_SS, 24(SP)
	CALL	R10

reads:
	MOVQ	WS_READFIELDS(DI), SI
	MOVQ	WS_READVALUES(DI), R8
	MOVQ	WS_NREADS(DI), CX
readLoop:
	TESTQ	CX, CX
	JEQ	readsDone
	MOVQ	0(SI), DX
	VMREAD_DX_AX
	JBE	readFailed
	MOVQ	AX, 0(R8)
	ADDQ	$8, SI
	ADDQ	$8, R8
	DECQ	CX
	JMP	readLoop
readsDone:
	MOVQ	$WS_EXITED, BX
	LEAQ	WS_VMCS(DI), AX
	VMCLEAR_AX
	JBE	clearFailed
done:
	// The caller's RFLAGS (its interrupt flag), then drop ws, R15, R14,
	// BP (restored above) and RFLAGS.
	MOVQ	32(SP), AX
	PUSHQ	AX
	POPFQ
	ADDQ	$40, SP
	MOVQ	BX, 16(SP)	// status (0(SP) is the return address, 8(SP) ws)
	RET
readFailed:
	MOVQ	DX, WS_FAILEDFIELD(DI)
	MOVQ	$F_INSTRUCTION_ERROR, DX
	VMREAD_DX_AX
	MOVQ	AX, WS_INSTRUCTIONERROR(DI)
	MOVQ	$WS_VMREAD, BX
	LEAQ	WS_VMCS(DI), AX
	VMCLEAR_AX
	JMP	done
clearFailed:
	MOVQ	$WS_VMCLEAR, BX
	JMP	done
