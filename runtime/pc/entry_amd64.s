//go:build tamago

// Entry points of the tamavisor image (TamaGo's goos.CPUInit, supplied by
// the application under the linkcpuinit build tag).
//
//   cpuinit   ELF entry (linker -E cpuinit): PVH (QEMU -kernel) and
//             Multiboot v1/v2 (GRUB) enter here in 32-bit protected mode,
//             paging off, EAX = protocol magic, EBX = boot information.
//   efi_main  UEFI application entry (the PE entry point, set by objcopy
//             --set-start): 64-bit mode on the firmware's identity map,
//             Microsoft x64 ABI, RCX = ImageHandle, RDX = SystemTable.
//
// Both paths end in common64, which enters the Go runtime with interrupts
// disabled: no IDT exists until the runtime installs one, and firmware
// commonly leaves the 8259 PIC delivering the PIT's IRQ0 at vector 8, which
// would arrive as a bogus double fault (DESIGN.md, "Test beds measured
// here"). Both 8259s are masked first thing on every path.
//
// The 32-bit path is assembled by the amd64 assembler but executes in
// protected mode, so it uses only instructions that decode the same way in
// both modes (no REX prefixes, 32-bit operands). A symbol address can not be
// loaded directly there: the amd64 assembler emits RIP-relative LEAs, whose
// encoding means "absolute disp32" in 32-bit mode. ABS32 below recovers the
// absolute address from the current EIP, as TamaGo's own init.s does.

#include "textflag.h"

#define PVH_MAGIC	0x336ec578	// xen/arch-x86/hvm/start_info.h
#define MB1_MAGIC	0x2badb002	// Multiboot 0.6.96, 3.2 Machine state
#define MB2_MAGIC	0x36d76289	// Multiboot2 1.0, 3.3 I386 machine state

#define MSR_EFER	0xc0000080	// AMD APM Vol. 2, 3.1.7
#define EFER_LME	(1<<8)
#define CR0_PE		(1<<0)
#define CR0_PG		(1<<31)
#define CR4_PAE		(1<<5)

#define PTE_P		(1<<0)
#define PTE_RW		(1<<1)
#define PTE_PWT		(1<<3)
#define PTE_PCD		(1<<4)
#define PTE_PS		(1<<7)

#define PIC1_DATA	0x21		// 8259A master, OCW1 (interrupt mask)
#define PIC2_DATA	0xa1		// 8259A slave

// EARLY_STACK is a few hundred bytes of the image's own first page: the
// zero padding between the ELF section headers (ending near file offset
// 0x850) and the notes at 0xf60, loaded at 0x1000f000 by every loader
// because the first PT_LOAD starts at file offset 0 (link flags
// -T 0x10010000 -R 0x1000). It is the only memory the 32-bit path can use
// before it knows where it is, without risking the loader's boot
// information, which may lie anywhere in low memory. tools/mbheader checks
// at build time that this window is padding.
#define EARLY_STACK	0x1000ff00

// UEFI 2.10, 4.4 EFI_BOOT_SERVICES: offsets of the two services used.
#define EFI_SYSTEM_TABLE_BOOT_SERVICES	96
#define EFI_BOOT_GET_MEMORY_MAP		56
#define EFI_BOOT_EXIT_BOOT_SERVICES	232
#define EFI_MAP_BUFFER_SIZE		(64*1024)

// ABS32 leaves in AX the absolute address of sym; 32-bit mode only.
// getPC returns the address of the LEA that follows the call; the LEA
// (6 bytes) yields sym minus the address after itself.
#define ABS32(sym, reg) \
	CALL	·getPC<>(SB); \
	MOVL	$sym(SB), reg; \
	ADDL	$6, AX; \
	ADDL	reg, AX

// Early identity map built by the 32-bit path: PML4, PDPT and four page
// directories mapping 0-4 GiB with 2 MiB pages, plus one page of slack for
// 4 KiB alignment. The first GiB (image and Go heap) is write-back, the rest
// uncacheable, as it may hold MMIO. The platform replaces this map with one
// built from the firmware's memory map (runtime/pagetable) early in boot.
GLOBL ·earlyPageTables(SB), NOPTR, $(7*4096)

// Long-mode GDT: null, 64-bit code (selector 0x08), data (0x10).
DATA ·gdt<>+0x00(SB)/8, $0x0000000000000000
DATA ·gdt<>+0x08(SB)/8, $0x00209a0000000000
DATA ·gdt<>+0x10(SB)/8, $0x0000920000000000
GLOBL ·gdt<>(SB), RODATA, $24

// TamaGo's amd64 package loads the BSP's GDT on each AP through this symbol,
// which its own init.s defines unless linkcpuinit is set.
DATA github·com∕usbarmory∕tamago∕amd64·gdtptr+0x00(SB)/2, $(3*8-1)
DATA github·com∕usbarmory∕tamago∕amd64·gdtptr+0x02(SB)/8, $·gdt<>(SB)
GLOBL github·com∕usbarmory∕tamago∕amd64·gdtptr(SB), RODATA, $10

// On a CPU without RDRAND, common64 installs earlyIDT: gates for vectors
// 0-6 of which only #UD (6) is present, handled by udRDRAND, until the
// runtime installs its own IDT (hwinit1). earlyRandState is that
// handler's generator state.
GLOBL ·earlyIDT<>(SB), NOPTR, $112
GLOBL ·earlyIDTR<>(SB), NOPTR, $16
GLOBL ·earlyRandState<>(SB), NOPTR, $8

TEXT ·getPC<>(SB),NOSPLIT|NOFRAME,$0
	POPQ	AX
	JMP	AX

// cpuinit: 32-bit protected mode, paging off (PVH, Multiboot v1/v2).
TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	CLI
	CLD
	MOVL	AX, SI			// boot protocol magic, kept until long mode
	MOVL	BX, BP			// boot information pointer

	MOVL	$0xff, AX
	MOVL	$PIC1_DATA, DX
	OUTB
	MOVL	$PIC2_DATA, DX
	OUTB

	MOVL	$EARLY_STACK, SP

	// Intel SDM Vol. 3A, 4.5 (4-level paging); AMD APM Vol. 2, 5.3.
	ABS32(·earlyPageTables, BX)
	ADDL	$0xfff, AX
	ANDL	$~0xfff, AX
	MOVL	AX, BX			// BX = PML4, BX+4K = PDPT, BX+8K.. = PDs

	MOVL	BX, DI
	XORL	AX, AX
	MOVL	$(6*4096/4), CX
	REP;	STOSL

	LEAL	0x1000(BX), AX
	ORL	$(PTE_P|PTE_RW), AX
	MOVL	AX, 0(BX)		// PML4[0] = PDPT

	LEAL	0x2000(BX), AX
	ORL	$(PTE_P|PTE_RW), AX
	MOVL	AX, 0x1000(BX)		// PDPT[0..3] = PD0..PD3
	ADDL	$0x1000, AX
	MOVL	AX, 0x1008(BX)
	ADDL	$0x1000, AX
	MOVL	AX, 0x1010(BX)
	ADDL	$0x1000, AX
	MOVL	AX, 0x1018(BX)

	LEAL	0x2000(BX), DI
	XORL	AX, AX			// physical address of the 2 MiB page
fill_pd:
	MOVL	AX, DX
	ORL	$(PTE_P|PTE_RW|PTE_PS), DX
	CMPL	AX, $0x40000000
	JCS	cacheable
	ORL	$(PTE_PCD|PTE_PWT), DX
cacheable:
	MOVL	DX, (DI)
	ADDL	$8, DI
	ADDL	$0x200000, AX
	JNE	fill_pd			// 2048 entries: AX wraps to 0 at 4 GiB

	MOVL	BX, CR3
	MOVL	CR4, AX
	ORL	$CR4_PAE, AX
	MOVL	AX, CR4
	MOVL	$MSR_EFER, CX
	RDMSR
	ORL	$EFER_LME, AX
	WRMSR
	MOVL	CR0, AX
	ORL	$(CR0_PG|CR0_PE), AX
	MOVL	AX, CR0			// now in IA-32e compatibility mode

	ABS32(github·com∕usbarmory∕tamago∕amd64·gdtptr, DX)
	LGDT	(AX)
	ABS32(·start64<>, DX)
	PUSHQ	$0x08			// 32-bit push of the 64-bit code selector
	PUSHQ	AX
	RETFQ				// 0x48 is DEC EAX here, then a 32-bit far return

	// Never reached: this reference keeps efi_main in the image, whose
	// only other user is the PE header written after link (objcopy).
	JMP	efi_main(SB)

TEXT ·start64<>(SB),NOSPLIT|NOFRAME,$0
	MOVL	SI, ·entryMagic(SB)
	MOVL	BP, ·entryInfo(SB)
	JMP	·common64<>(SB)

// efi_main: UEFI application entry, 64-bit, Microsoft x64 ABI.
// It fetches the memory map and leaves boot services at once, before the Go
// runtime claims its heap, so firmware allocations can not land in memory the
// runtime is already using. The status of each call is recorded for the
// platform code to report; nothing is printed here because the firmware
// console is gone after ExitBootServices and the UART may not be set up.
TEXT efi_main(SB),NOSPLIT|NOFRAME,$0
	CLI
	CLD
	MOVQ	CX, ·efiImageHandle(SB)
	MOVQ	DX, ·efiSystemTable(SB)
	MOVL	$0xff, AX
	MOVL	$PIC1_DATA, DX
	OUTB
	MOVL	$PIC2_DATA, DX
	OUTB

	MOVQ	·efiSystemTable(SB), DX
	MOVQ	EFI_SYSTEM_TABLE_BOOT_SERVICES(DX), R12	// callee-saved in the MS ABI
	MOVQ	SP, R13
	ANDQ	$~15, SP
	MOVQ	$4, R14			// ExitBootServices retries (stale map key)

efi_get_map:
	MOVQ	$EFI_MAP_BUFFER_SIZE, AX
	MOVQ	AX, ·efiMapSize(SB)
	SUBQ	$48, SP			// 32 bytes shadow space, 5th argument, alignment
	LEAQ	·efiMapSize(SB), CX
	LEAQ	·efiMap(SB), DX
	LEAQ	·efiMapKey(SB), R8
	LEAQ	·efiDescSize(SB), R9
	LEAQ	·efiDescVersion(SB), AX
	MOVQ	AX, 32(SP)
	MOVQ	EFI_BOOT_GET_MEMORY_MAP(R12), AX
	CALL	AX
	ADDQ	$48, SP
	MOVQ	AX, ·efiGetMapStatus(SB)
	TESTQ	AX, AX
	JNE	efi_done

	SUBQ	$32, SP
	MOVQ	·efiImageHandle(SB), CX
	MOVQ	·efiMapKey(SB), DX
	MOVQ	EFI_BOOT_EXIT_BOOT_SERVICES(R12), AX
	CALL	AX
	ADDQ	$32, SP
	MOVQ	AX, ·efiExitStatus(SB)
	TESTQ	AX, AX
	JEQ	efi_done
	DECQ	R14
	JNE	efi_get_map

efi_done:
	CLI
	MOVQ	R13, SP
	MOVL	$0x45464920, ·entryMagic(SB)	// "EFI ", see handoff.go
	MOVQ	$·efiMap(SB), AX
	MOVQ	AX, ·entryInfo(SB)
	JMP	·common64<>(SB)

// common64: 64-bit mode on an identity map, interrupts off.
TEXT ·common64<>(SB),NOSPLIT|NOFRAME,$0
	// Our GDT on every path (UEFI's is firmware memory), reloading CS
	// through a far return and the data segments.
	MOVQ	$github·com∕usbarmory∕tamago∕amd64·gdtptr(SB), AX
	LGDT	(AX)
	MOVQ	$·reloadCS<>(SB), AX
	PUSHQ	$0x08
	PUSHQ	AX
	RETFQ

TEXT ·reloadCS<>(SB),NOSPLIT|NOFRAME,$0
	MOVL	$0x10, AX
	BYTE	$0x8e; BYTE $0xd8	// MOVW AX, DS
	BYTE	$0x8e; BYTE $0xc0	// MOVW AX, ES
	BYTE	$0x8e; BYTE $0xd0	// MOVW AX, SS
	XORL	AX, AX
	BYTE	$0x8e; BYTE $0xe0	// MOVW AX, FS (base set later by the runtime)
	BYTE	$0x8e; BYTE $0xe8	// MOVW AX, GS

	CALL	sse_enable(SB)

	// The Go runtime seeds its own generator (map hashes, scheduling)
	// before any package code runs, through TamaGo's RDRAND reader
	// (runtime/rand.go randinit; TamaGo amd64/rng.go, RDRAND EAX without a
	// CPUID check), and the linker keeps other packages away from the
	// runtime's alternative, startupRand. On a CPU without RDRAND
	// (CPUID.1:ECX[30]) that RDRAND is emulated: a #UD handler, present
	// until the runtime's exception handling replaces it in hwinit1,
	// answers RDRAND EAX with numbers from the TSC and the RTC's clock
	// mixed by SplitMix64, and CF set. This seed is no secret and needs
	// to be none; random data for the hypervisor's own use comes from
	// fillRandom (entropy.go), which warns on the console when it has no
	// hardware source.
	MOVL	$1, AX
	XORL	CX, CX
	CPUID
	BTL	$30, CX
	JCS	enter_runtime

	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, R8			// R8: the generator's state
	// MC146818 RTC: seconds, minutes, hours, day, month, year (CMOS
	// registers 0, 2, 4, 7, 8, 9; index port 70h, data port 71h).
	MOVQ	$0x090807040200, R9	// the register numbers, one per byte
	MOVL	$6, CX
rtc_next:
	MOVQ	R9, AX
	MOVL	$0x70, DX
	OUTB
	MOVL	$0x71, DX
	INB
	MOVBQZX	AL, AX
	SHLQ	$8, R8
	XORQ	AX, R8
	SHRQ	$8, R9
	LOOP	rtc_next
	MOVQ	R8, ·earlyRandState<>(SB)

	// The #UD gate (Intel SDM Vol. 3A, 6.14.1, 64-bit IDT gate
	// descriptors): offset 15:0, selector 0x08 (64-bit code), IST 0,
	// type 0x8E (present, DPL 0, interrupt gate), offset 31:16, 63:32.
	MOVQ	$·udRDRAND<>(SB), AX
	MOVQ	$·earlyIDT<>(SB), DI
	ADDQ	$(6*16), DI
	MOVW	AX, 0(DI)
	MOVW	$0x08, 2(DI)
	MOVW	$0x8e00, 4(DI)
	SHRQ	$16, AX
	MOVW	AX, 6(DI)
	SHRQ	$16, AX
	MOVL	AX, 8(DI)
	MOVL	$0, 12(DI)
	MOVQ	$·earlyIDTR<>(SB), DI
	MOVW	$(7*16-1), 0(DI)
	MOVQ	$·earlyIDT<>(SB), AX
	MOVQ	AX, 2(DI)
	LIDT	(DI)

enter_runtime:
	MOVQ	runtime∕goos·RamStart(SB), SP
	MOVQ	runtime∕goos·RamSize(SB), AX
	MOVQ	runtime∕goos·RamStackOffset(SB), BX
	ADDQ	AX, SP
	SUBQ	BX, SP
	JMP	_rt0_tamago_start(SB)

// udRDRAND handles #UD before the runtime's IDT exists, on a CPU without
// RDRAND (see common64): the one instruction it emulates is RDRAND EAX
// (0F C7 F0), which gets 32 bits of SplitMix64 output over the TSC, with
// CF set and OF, SF, ZF, AF, PF clear, as RDRAND returns valid data (Intel
// SDM Vol. 2B, RDRAND). Any other #UD halts, as it would have without an
// IDT (a triple fault).
TEXT ·udRDRAND<>(SB),NOSPLIT|NOFRAME,$0
	// The frame: RIP, CS, RFLAGS, RSP, SS (no error code for #UD).
	PUSHQ	DX
	PUSHQ	BX
	MOVQ	16(SP), BX		// the faulting RIP
	MOVL	(BX), DX
	ANDL	$0xffffff, DX
	CMPL	DX, $0xf0c70f		// RDRAND EAX
	JNE	ud_halt
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	·earlyRandState<>(SB), BX
	MOVQ	$0x9e3779b97f4a7c15, DX	// SplitMix64: state += golden ratio
	ADDQ	DX, BX
	XORQ	AX, BX			// and the TSC
	MOVQ	BX, ·earlyRandState<>(SB)
	MOVQ	BX, AX			// its finalizer
	MOVQ	AX, BX
	SHRQ	$30, BX
	XORQ	BX, AX
	MOVQ	$0xbf58476d1ce4e5b9, DX
	IMULQ	DX, AX
	MOVQ	AX, BX
	SHRQ	$27, BX
	XORQ	BX, AX
	MOVQ	$0x94d049bb133111eb, DX
	IMULQ	DX, AX
	MOVQ	AX, BX
	SHRQ	$31, BX
	XORQ	BX, AX
	MOVL	AX, AX			// RDRAND EAX zero-extends into RAX
	ADDQ	$3, 16(SP)		// past the instruction
	ANDQ	$~0x8d4, 32(SP)		// RFLAGS: OF, SF, ZF, AF, PF clear
	ORQ	$1, 32(SP)		// CF set: the data is valid
	POPQ	BX
	POPQ	DX
	IRETQ
ud_halt:
	CLI
	HLT
	JMP	ud_halt
