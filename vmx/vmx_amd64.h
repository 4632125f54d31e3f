// VMX instructions the Go assembler lacks (Intel SDM Vol. 3C, 31.3 "VMX
// Instructions"; Vol. 2 for the ModRM forms), with fixed operands:
// memory operands at (AX), INVEPT/INVVPID descriptors at (CX),
// VMREAD/VMWRITE with the field encoding in DX and the value in AX. In
// 64-bit mode VMREAD and VMWRITE use 64-bit operands without REX.W.
#define VMXON_AX	BYTE $0xf3; BYTE $0x0f; BYTE $0xc7; BYTE $0x30	// VMXON m64 [RAX]
#define VMCLEAR_AX	BYTE $0x66; BYTE $0x0f; BYTE $0xc7; BYTE $0x30	// VMCLEAR m64 [RAX]
#define VMPTRLD_AX	BYTE $0x0f; BYTE $0xc7; BYTE $0x30		// VMPTRLD m64 [RAX]
#define VMPTRST_AX	BYTE $0x0f; BYTE $0xc7; BYTE $0x38		// VMPTRST m64 [RAX]
#define VMREAD_DX_AX	BYTE $0x0f; BYTE $0x78; BYTE $0xd0		// VMREAD RAX <- field RDX
#define VMWRITE_AX_DX	BYTE $0x0f; BYTE $0x79; BYTE $0xd0		// VMWRITE field RDX <- RAX
#define VMLAUNCH	BYTE $0x0f; BYTE $0x01; BYTE $0xc2
#define VMRESUME	BYTE $0x0f; BYTE $0x01; BYTE $0xc3
#define VMXOFF		BYTE $0x0f; BYTE $0x01; BYTE $0xc4
#define INVEPT_AX_CX	BYTE $0x66; BYTE $0x0f; BYTE $0x38; BYTE $0x80; BYTE $0x01	// INVEPT type RAX, m128 [RCX]
#define INVVPID_AX_CX	BYTE $0x66; BYTE $0x0f; BYTE $0x38; BYTE $0x81; BYTE $0x01	// INVVPID type RAX, m128 [RCX]
#define SGDT_AX		BYTE $0x0f; BYTE $0x01; BYTE $0x00		// SGDT m [RAX]
#define SIDT_AX		BYTE $0x0f; BYTE $0x01; BYTE $0x08		// SIDT m [RAX]
#define INT_NMI		BYTE $0xcd; BYTE $0x02				// INT 2: the host's NMI handler

// Offsets in worldSwitch (worldswitch.go; worldswitch_test.go checks them).
#define WS_APICID		0
#define WS_VMCS			8
#define WS_WRITES		16
#define WS_NWRITES		24
#define WS_READFIELDS		32
#define WS_READVALUES		40
#define WS_NREADS		48
#define WS_REGS			56
#define WS_GUESTFPU		64
#define WS_HOSTFPU		72
#define WS_HOSTTRBASE		80
#define WS_CR2			88
#define WS_FLUSH		96
#define WS_INVEPTTYPE		104
#define WS_INVEPTDESC		112
#define WS_INVVPIDTYPE		128
#define WS_INVVPIDDESC		136
#define WS_FAILEDFIELD		152
#define WS_INSTRUCTIONERROR	160
#define WS_FAILINVALID		168
#define WS_SCRATCH		176
#define WS_INIT			192

// World-switch status codes (worldswitch.go).
#define WS_EXITED	0
#define WS_WRONGCPU	1
#define WS_VMPTRLD	2
#define WS_VMWRITE	3
#define WS_VMLAUNCH	4
#define WS_VMREAD	5
#define WS_INVALIDATION	6
#define WS_VMCLEAR	7

// VMCS encodings the world switch writes or reads itself (vmcs.go).
#define F_HOST_CR0		0x6c00
#define F_HOST_CR3		0x6c02
#define F_HOST_CR4		0x6c04
#define F_HOST_FS_BASE		0x6c06
#define F_HOST_GS_BASE		0x6c08
#define F_HOST_TR_BASE		0x6c0a
#define F_HOST_GDTR_BASE	0x6c0c
#define F_HOST_IDTR_BASE	0x6c0e
#define F_HOST_SYSENTER_ESP	0x6c10
#define F_HOST_SYSENTER_EIP	0x6c12
#define F_HOST_RSP		0x6c14
#define F_HOST_RIP		0x6c16
#define F_HOST_SYSENTER_CS	0x4c00
#define F_HOST_PAT		0x2c00
#define F_HOST_EFER		0x2c02
#define F_INSTRUCTION_ERROR	0x4400
#define F_EXIT_REASON		0x4402
#define F_EXIT_INTR_INFO	0x4404

// MSRs (Intel SDM Vol. 4, Table 2-2).
#define MSR_FEATURE_CONTROL	0x3a
#define MSR_SYSENTER_CS		0x174
#define MSR_SYSENTER_ESP	0x175
#define MSR_SYSENTER_EIP	0x176
#define MSR_PAT			0x277
#define MSR_EFER		0xc0000080
#define MSR_FS_BASE		0xc0000100
#define MSR_GS_BASE		0xc0000101

// The host's code and stack selectors (runtime/pc/entry_amd64.s GDT;
// hostCodeSelector and hostDataSelector in guest.go).
#define HOST_CS		0x08
#define HOST_SS		0x10

// The local APIC ID register (xAPIC mode, Intel SDM Vol. 3A, 11.4.6).
#define LAPIC_ID_REGISTER	0xfee00020
