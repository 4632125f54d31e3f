# tamavisor's test kernel: the first guest the hypervisor runs.
#
# A Multiboot (v1) ELF32 kernel, loaded at 1 MiB, running in 32-bit
# protected mode without paging. Each step exercises one thing a
# hypervisor must get right and prints, on COM1, either
#     testkernel: <step> ok
# or  testkernel: <step> FAIL <detail>
# with lines "testkernel: <step>: ..." before it saying what it saw. It ends
# by writing the number of failed steps to the isa-debug-exit port 0xF4;
# QEMU, given `-device isa-debug-exit,iobase=0xf4,iosize=4`, exits with
# status (code << 1) | 1, so 1 means every step passed.
#
# Steps:
#   boot    the loader's Multiboot magic in EAX.
#   serial  port I/O: the 16550's scratch register keeps what is written,
#           and the transmitter always became ready (every character is
#           written only after LSR.THRE is seen, with a bounded poll).
#   cpuid   leaf 0 and, when CPUID.1:ECX[31] says a hypervisor is present,
#           its leaf 0x40000000; both vendor strings are printed.
#   lapic   MMIO to the local APIC page at 0xFEE00000, through the
#           instructions a hypervisor's emulator must decode: mov loads
#           of the ID and version, and/or/xor/test/cmp with memory
#           operands on the spurious-interrupt vector register (SVR),
#           movzx loads of the version and the SVR, movs and stos (plain
#           and rep) on the TPR and ICR high, which read back what was
#           written.
#   timer   an IDT, the LAPIC timer one-shot (waited for with interrupts
#           on, spinning) and then periodic (waited for with sti; hlt)
#           until TICKS_PERIODIC interrupts have come.
#
# Built with GNU as and ld only (make testkernel): no C compiler.
# References: Multiboot Specification 0.6.96 section 3; Intel SDM Vol. 3A
# chapter 6 (IDT) and chapter 11 (APIC, Table 11-1 for the register page);
# the 16550 (PC16550D) data sheet for COM1's registers.

	.set MB_HEADER_MAGIC, 0x1BADB002	# Multiboot 3.1.1
	.set MB_HEADER_FLAGS, 0x00000003	# bit 0: page-align modules, bit 1: memory info
	.set MB_BOOT_MAGIC, 0x2BADB002		# in EAX at entry (Multiboot 3.2)
	.set MB_INFO_MEM, 1 << 0		# info flags: mem_lower/mem_upper valid

	.set CODE_SEL, 0x08
	.set DATA_SEL, 0x10

	# COM1, a 16550 (PC16550D data sheet, Table 2).
	.set COM1, 0x3F8
	.set COM1_THR, COM1 + 0			# transmit holding (DLAB=0)
	.set COM1_DLL, COM1 + 0			# divisor latch low (DLAB=1)
	.set COM1_IER, COM1 + 1			# interrupt enable (DLAB=0)
	.set COM1_DLM, COM1 + 1			# divisor latch high (DLAB=1)
	.set COM1_FCR, COM1 + 2
	.set COM1_LCR, COM1 + 3
	.set COM1_MCR, COM1 + 4
	.set COM1_LSR, COM1 + 5
	.set COM1_SCR, COM1 + 7
	.set LCR_DLAB, 0x80
	.set LCR_8N1, 0x03
	.set LSR_THRE, 0x20
	.set PUTC_SPINS, 1000000		# LSR polls before giving up on a character

	.set EXIT_PORT, 0xF4			# QEMU's isa-debug-exit

	# 8259A interrupt mask registers: the BIOS left the PIT unmasked.
	.set PIC1_IMR, 0x21
	.set PIC2_IMR, 0xA1

	# Local APIC (SDM Vol. 3A 11.4.1, Table 11-1).
	.set MSR_APIC_BASE, 0x1B
	.set APIC_BASE_X2APIC, 1 << 10
	.set APIC_BASE_ENABLE, 1 << 11
	.set LAPIC, 0xFEE00000
	.set LAPIC_ID, LAPIC + 0x020
	.set LAPIC_VERSION, LAPIC + 0x030
	.set LAPIC_TPR, LAPIC + 0x080
	.set LAPIC_EOI, LAPIC + 0x0B0
	.set LAPIC_SVR, LAPIC + 0x0F0
	.set LAPIC_ICR_HIGH, LAPIC + 0x310
	.set LAPIC_LVT_TIMER, LAPIC + 0x320
	.set LAPIC_TIMER_INITIAL, LAPIC + 0x380
	.set LAPIC_TIMER_CURRENT, LAPIC + 0x390
	.set LAPIC_TIMER_DIVIDE, LAPIC + 0x3E0
	.set SVR_ENABLE, 0x100			# APIC software enable (11.9)
	.set SVR_VECTOR_MASK, 0xFF
	.set LVT_MASKED, 1 << 16		# 11.5.1
	.set LVT_PERIODIC, 1 << 17		# timer mode 01
	.set TIMER_DIVIDE_BY_16, 0x3		# 11.5.4, Figure 11-10

	.set TIMER_VECTOR, 0x40
	.set SPURIOUS_VECTOR, 0xFF
	# QEMU's APIC timer counts at 1 GHz: divided by 16, 62500 counts are 1 ms.
	.set TIMER_COUNT, 62500
	.set TICKS_PERIODIC, 10
	.set ONESHOT_SPINS, 200000000		# bound on the spin for the one-shot interrupt
	.set PERIODIC_WAKEUPS, 1000		# bound on hlt wake-ups for the periodic ticks

	.set IDT_ENTRIES, 256
	.set IDT_GATE_INTR32, 0x8E00		# present, DPL 0, 32-bit interrupt gate (6.11)
	.set STUB_SIZE, 16

# The Multiboot header: first in the image, within its first 8 KiB.
	.section .multiboot, "a"
	.balign 4
	.long MB_HEADER_MAGIC
	.long MB_HEADER_FLAGS
	.long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)

	.text
	.code32

# step NAME: the result line of a step, ok or FAIL with the detail string
# at \detail (a label).
.macro STEP_OK name
	movl $\name, %esi
	call step_ok
.endm
.macro STEP_FAIL name, detail
	movl $\name, %esi
	movl $\detail, %edi
	call step_fail
.endm
.macro PUTS label
	movl $\label, %esi
	call puts
.endm

	.globl _start
_start:
	cli
	cld
	# Multiboot gives no stack and no GDT of ours (3.2): set both before
	# any push or segment load.
	movl %eax, boot_magic
	movl %ebx, boot_info
	lgdt gdt_desc
	ljmp $CODE_SEL, $1f
1:	movw $DATA_SEL, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	# .bss holds the stack: clear it before the first push.
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	xorl %eax, %eax
	rep stosb
	movl $stack_top, %esp

	call idt_init
	call serial_init
	PUTS s_hello

	call step_boot
	call step_serial
	call step_cpuid
	call step_lapic
	call step_timer

	PUTS s_done
	movl failures, %eax
	call putdec
	PUTS s_done_tail
	movl failures, %eax
	jmp exit

# exit writes EAX to the debug-exit port and stops if nothing listens.
exit:
	movw $EXIT_PORT, %dx
	outl %eax, %dx
	cli
1:	hlt
	jmp 1b

# ---- steps ----

step_boot:
	cmpl $MB_BOOT_MAGIC, boot_magic
	jne 2f
	movl boot_info, %ebx
	testl $MB_INFO_MEM, (%ebx)
	jz 1f
	PUTS s_boot_mem
	movl 8(%ebx), %eax			# mem_upper, KiB above 1 MiB
	call putdec
	PUTS s_kib
1:	STEP_OK n_boot
	ret
2:	STEP_FAIL n_boot, d_boot_magic
	ret

step_serial:
	movw $COM1_SCR, %dx
	movb $0x5A, %al
	outb %al, %dx
	inb %dx, %al
	cmpb $0x5A, %al
	jne 1f
	movb $0xA5, %al
	outb %al, %dx
	inb %dx, %al
	cmpb $0xA5, %al
	jne 1f
	cmpl $0, thre_timeouts
	jne 2f
	STEP_OK n_serial
	ret
1:	STEP_FAIL n_serial, d_serial_scratch
	ret
2:	STEP_FAIL n_serial, d_serial_thre
	ret

step_cpuid:
	xorl %eax, %eax
	cpuid
	movl %eax, cpuid_max
	movl %ebx, vendor			# leaf 0: EBX, EDX, ECX
	movl %edx, vendor + 4
	movl %ecx, vendor + 8
	PUTS s_cpuid_vendor
	PUTS vendor
	PUTS s_cpuid_max
	movl cpuid_max, %eax
	call puthex
	call newline
	movl $vendor, %esi
	call printable12
	jc 3f
	cmpl $1, cpuid_max
	jb 4f
	movl $1, %eax
	cpuid
	movl %ecx, cpuid1_ecx
	movl %edx, cpuid1_edx
	testl $1 << 31, %ecx			# the hypervisor-present bit
	jnz 1f
	PUTS s_cpuid_nohv
	STEP_OK n_cpuid
	ret
1:	movl $0x40000000, %eax
	cpuid
	movl %eax, hv_max
	movl %ebx, hv_vendor			# leaf 0x40000000: EBX, ECX, EDX
	movl %ecx, hv_vendor + 4
	movl %edx, hv_vendor + 8
	PUTS s_cpuid_hv
	PUTS hv_vendor
	PUTS s_cpuid_max
	movl hv_max, %eax
	call puthex
	call newline
	movl $hv_vendor, %esi
	call printable12
	jc 5f
	movl hv_max, %eax
	subl $0x40000000, %eax
	cmpl $0xFF, %eax
	ja 6f
	STEP_OK n_cpuid
	ret
3:	STEP_FAIL n_cpuid, d_cpuid_vendor
	ret
4:	STEP_FAIL n_cpuid, d_cpuid_max
	ret
5:	STEP_FAIL n_cpuid, d_cpuid_hv_vendor
	ret
6:	STEP_FAIL n_cpuid, d_cpuid_hv_max
	ret

step_lapic:
	testl $1 << 9, cpuid1_edx		# CPUID.1:EDX[9]: an APIC
	jz 90f
	movl $MSR_APIC_BASE, %ecx
	rdmsr
	movl %eax, apic_base
	testl %edx, %edx
	jnz 91f
	movl %eax, %ebx
	andl $0xFFFFF000, %ebx
	cmpl $LAPIC, %ebx
	jne 91f
	testl $APIC_BASE_X2APIC, %eax
	jnz 92f
	testl $APIC_BASE_ENABLE, %eax
	jnz 1f
	orl $APIC_BASE_ENABLE, %eax
	wrmsr
1:
	# ID and version: mov loads.
	movl LAPIC_ID, %eax
	shrl $24, %eax
	movl %eax, apic_id
	movl LAPIC_VERSION, %eax
	movl %eax, apic_version
	PUTS s_lapic_id
	movl apic_id, %eax
	call puthex
	PUTS s_lapic_version
	movl apic_version, %eax
	call puthex
	call newline
	movzbl apic_version, %eax		# 0x10-0x15: an integrated APIC (11.4.8)
	subl $0x10, %eax
	cmpl $0x0F, %eax
	ja 94f

	# The spurious-interrupt vector register, read-modify-written in
	# place: and clears the vector and the enable bit, or sets them to
	# SPURIOUS_VECTOR and enabled, xor flips the vector's low nibble and
	# back; test and cmp check each result on the register itself.
	movl LAPIC_SVR, %eax
	movl %eax, svr_before
	andl $~(SVR_ENABLE | SVR_VECTOR_MASK), LAPIC_SVR
	testl $(SVR_ENABLE | SVR_VECTOR_MASK), LAPIC_SVR
	jnz 95f
	orl $(SVR_ENABLE | SPURIOUS_VECTOR), LAPIC_SVR
	movl svr_before, %eax
	andl $~(SVR_ENABLE | SVR_VECTOR_MASK), %eax
	orl $(SVR_ENABLE | SPURIOUS_VECTOR), %eax
	cmpl %eax, LAPIC_SVR
	jne 95f
	xorl $0x0F, LAPIC_SVR
	xorl $0x0F, %eax
	cmpl LAPIC_SVR, %eax
	jne 95f
	xorl $0x0F, LAPIC_SVR
	testl $SVR_ENABLE, LAPIC_SVR
	jz 95f
	movl LAPIC_SVR, %eax
	movl %eax, svr_after
	PUTS s_lapic_svr
	movl svr_before, %eax
	call puthex
	PUTS s_arrow
	movl svr_after, %eax
	call puthex
	call newline

	# movzx loads, 8 and 16 bits, of the version and the SVR (whose low
	# byte, 0xFF, tells zero- from sign-extension), into a register
	# holding garbage. Loads narrower than 32 bits are model-specific
	# (SDM Vol. 3A 11.4.1): QEMU's APIC answers them with 0. Either all
	# give the register's low bits, or all give 0.
	movl $0xDEADBEEF, %eax
	movzbl LAPIC_VERSION, %eax
	movzbl apic_version, %ebx
	movl %eax, movzx_results
	call narrow_check
	jc 93f
	movl $0xDEADBEEF, %eax
	movzwl LAPIC_VERSION, %eax
	movzwl apic_version, %ebx
	movl %eax, movzx_results + 4
	call narrow_check
	jc 93f
	movl $0xDEADBEEF, %eax
	movzbl LAPIC_SVR, %eax
	movzbl svr_after, %ebx
	movl %eax, movzx_results + 8
	call narrow_check
	jc 93f
	movl $0xDEADBEEF, %eax
	movzwl LAPIC_SVR, %eax
	movzwl svr_after, %ebx
	movl %eax, movzx_results + 12
	call narrow_check
	jc 93f
	PUTS s_lapic_movzx
	movl $movzx_results, %esi
	movl $4, %ecx
1:	lodsl
	call puthex
	movb $' ', %al
	call putc
	loop 1b
	cmpl $0, narrow_zero
	je 2f
	cmpl $0, narrow_exact
	jne 93f
	PUTS s_lapic_narrow_zero
	jmp 3f
2:	PUTS s_lapic_narrow_exact
3:
	# TPR and ICR high keep what is written: movs from memory to the
	# register and back, stos into it, rep stos and rep movs with a
	# count of one.
	movl $0x20, scratch
	movl $scratch, %esi
	movl $LAPIC_TPR, %edi
	movsl
	movl $LAPIC_TPR, %esi
	movl $readback, %edi
	movsl
	cmpl $0x20, readback
	jne 96f
	movl $0x30, %eax
	movl $LAPIC_TPR, %edi
	stosl
	cmpl $0x30, LAPIC_TPR
	jne 96f
	movl $0x0F000000, %eax			# destination field, bits 31:24
	movl $LAPIC_ICR_HIGH, %edi
	stosl
	movl $LAPIC_ICR_HIGH, %esi
	movl $1, %ecx
	movl $readback, %edi
	rep movsl
	cmpl $0x0F000000, readback
	jne 97f
	xorl %eax, %eax				# TPR 0: no interrupt class held off
	movl $LAPIC_TPR, %edi
	movl $1, %ecx
	rep stosl
	testl $0xFF, LAPIC_TPR
	jnz 96f
	PUTS s_lapic_tpr
	STEP_OK n_lapic
	ret
90:	STEP_FAIL n_lapic, d_lapic_none
	ret
91:	STEP_FAIL n_lapic, d_lapic_base
	movl apic_base, %eax
	call puthex
	call newline
	ret
92:	STEP_FAIL n_lapic, d_lapic_x2apic
	ret
93:	STEP_FAIL n_lapic, d_lapic_movzx
	movl $movzx_results, %esi
	movl $4, %ecx
1:	lodsl
	call puthex
	movb $' ', %al
	call putc
	loop 1b
	call newline
	ret
94:	STEP_FAIL n_lapic, d_lapic_version
	ret
95:	STEP_FAIL n_lapic, d_lapic_svr
	movl LAPIC_SVR, %eax
	call puthex
	call newline
	ret
96:	STEP_FAIL n_lapic, d_lapic_tpr
	movl LAPIC_TPR, %eax
	call puthex
	call newline
	ret
97:	STEP_FAIL n_lapic, d_lapic_icr
	movl readback, %eax
	call puthex
	call newline
	ret

step_timer:
	testl $SVR_ENABLE, LAPIC_SVR		# the lapic step enabled it
	jz 93f
	movb $0xFF, %al				# only the APIC timer may interrupt
	outb %al, $PIC2_IMR
	outb %al, $PIC1_IMR
	movl $TIMER_DIVIDE_BY_16, LAPIC_TIMER_DIVIDE

	# One-shot: one interrupt, then the current count stays 0 (11.5.4).
	movl $0, ticks
	movl $TIMER_VECTOR, LAPIC_LVT_TIMER
	movl $TIMER_COUNT, LAPIC_TIMER_INITIAL
	sti
	movl $ONESHOT_SPINS, %ecx
1:	cmpl $0, ticks
	jne 2f
	pause
	loop 1b
	cli
	jmp 90f
2:	cli
	cmpl $1, ticks
	jne 91f
	cmpl $0, LAPIC_TIMER_CURRENT
	jne 91f
	movl $1, oneshot_ticks

	# Periodic: halted between ticks; sti's one-instruction interrupt
	# shadow lets hlt start before the next tick is taken.
	movl $0, ticks
	rdtsc
	movl %eax, tsc_start
	movl %edx, tsc_start + 4
	movl $(TIMER_VECTOR | LVT_PERIODIC), LAPIC_LVT_TIMER
	movl $TIMER_COUNT, LAPIC_TIMER_INITIAL
	movl $PERIODIC_WAKEUPS, %ecx
3:	sti
	hlt
	cli
	cmpl $TICKS_PERIODIC, ticks
	jae 4f
	loop 3b
	jmp 92f
4:	rdtsc
	subl tsc_start, %eax
	sbbl tsc_start + 4, %edx
	movl $(TIMER_VECTOR | LVT_PERIODIC | LVT_MASKED), LAPIC_LVT_TIMER
	movl $0, LAPIC_TIMER_INITIAL		# stops the timer
	movl ticks, %ecx
	cmpl %ecx, %edx				# quotient fits in 32 bits
	jae 5f
	divl %ecx
	movl %eax, tsc_per_tick
5:	PUTS s_timer_counts
	movl oneshot_ticks, %eax
	call putdec
	PUTS s_timer_periodic
	movl ticks, %eax
	call putdec
	PUTS s_timer_tsc
	movl tsc_per_tick, %eax
	call putdec
	PUTS s_timer_spurious
	movl spurious, %eax
	call putdec
	call newline
	STEP_OK n_timer
	ret
90:	STEP_FAIL n_timer, d_timer_oneshot
	ret
91:	STEP_FAIL n_timer, d_timer_oneshot_count
	movl ticks, %eax
	call putdec
	call newline
	ret
92:	movl $LVT_MASKED, LAPIC_LVT_TIMER
	STEP_FAIL n_timer, d_timer_periodic
	movl ticks, %eax
	call putdec
	call newline
	ret
93:	STEP_FAIL n_timer, d_timer_disabled
	ret

# ---- interrupts ----

timer_isr:
	incl ticks
	movl $0, LAPIC_EOI
	iret

# A spurious interrupt needs no EOI (SDM Vol. 3A 11.9).
spurious_isr:
	incl spurious
	iret

# Every other vector: a stub pushing its number, then report and stop.
	.balign STUB_SIZE
isr_stubs:
	.set vector, 0
	.rept IDT_ENTRIES
	.balign STUB_SIZE
	pushl $vector
	jmp unexpected
	.set vector, vector + 1
	.endr

unexpected:
	cli
	movl %esp, %ebp
	PUTS s_unexpected
	movl (%ebp), %eax			# the vector
	call puthex
	# Exceptions 8, 10-14, 17, 21, 29 and 30 push an error code (SDM
	# Vol. 3A 6.13) between the vector and EIP.
	movl $4, %ebx
	cmpl $31, %eax
	ja 1f
	movl $0x60227D00, %ecx			# bit n set: vector n has an error code
	btl %eax, %ecx
	jnc 1f
	movl $8, %ebx
	PUTS s_unexpected_error
	movl 4(%ebp), %eax
	call puthex
1:	PUTS s_unexpected_eip
	movl (%ebp, %ebx), %eax
	call puthex
	call newline
	movl $0x7F, %eax
	jmp exit

# idt_init points every gate at its stub, then the timer and spurious
# vectors at their handlers, and loads the IDT.
idt_init:
	movl $idt, %edi
	movl $isr_stubs, %edx
	movl $IDT_ENTRIES, %ecx
1:	movl %edx, %eax
	call set_gate
	addl $8, %edi
	addl $STUB_SIZE, %edx
	loop 1b
	movl $idt + TIMER_VECTOR * 8, %edi
	movl $timer_isr, %eax
	call set_gate
	movl $idt + SPURIOUS_VECTOR * 8, %edi
	movl $spurious_isr, %eax
	call set_gate
	lidt idt_desc
	ret

# set_gate writes a 32-bit interrupt gate for handler EAX at EDI
# (SDM Vol. 3A 6.11, Figure 6-2).
set_gate:
	movw %ax, (%edi)
	movw $CODE_SEL, 2(%edi)
	movw $IDT_GATE_INTR32, 4(%edi)
	shrl $16, %eax
	movw %ax, 6(%edi)
	ret

# ---- results ----

# step_ok prints "testkernel: <ESI> ok".
step_ok:
	pushl %esi
	PUTS s_prefix
	popl %esi
	call puts
	PUTS s_ok
	ret

# step_fail prints "testkernel: <ESI> FAIL <EDI>" without the line end, so
# that a value may follow, and counts the failure.
step_fail:
	incl failures
	pushl %edi
	pushl %esi
	PUTS s_prefix
	popl %esi
	call puts
	PUTS s_fail
	popl %esi
	call puts
	ret

# narrow_check counts a narrow load's result EAX as exact (equal to EBX,
# the bits the 32-bit load gave) or as zero, and sets CF when it is
# neither.
narrow_check:
	cmpl %ebx, %eax
	jne 1f
	incl narrow_exact
	clc
	ret
1:	testl %eax, %eax
	jnz 2f
	incl narrow_zero
	clc
	ret
2:	stc
	ret

# printable12 sets CF unless the 12 bytes at ESI are printable ASCII,
# possibly padded with NULs after at least one character.
printable12:
	pushl %ecx
	movl $12, %ecx
	cmpb $0x20, (%esi)
	jb 3f
1:	movb (%esi), %al
	testb %al, %al
	jz 2f
	cmpb $0x20, %al
	jb 3f
	cmpb $0x7E, %al
	ja 3f
2:	incl %esi
	loop 1b
	popl %ecx
	clc
	ret
3:	popl %ecx
	stc
	ret

# ---- COM1 ----

serial_init:
	movw $COM1_IER, %dx			# no interrupts: polled
	xorb %al, %al
	outb %al, %dx
	movw $COM1_LCR, %dx
	movb $LCR_DLAB, %al
	outb %al, %dx
	movw $COM1_DLL, %dx			# divisor 1: 115200 baud
	movb $1, %al
	outb %al, %dx
	movw $COM1_DLM, %dx
	xorb %al, %al
	outb %al, %dx
	movw $COM1_LCR, %dx
	movb $LCR_8N1, %al
	outb %al, %dx
	movw $COM1_FCR, %dx			# FIFOs on and cleared
	movb $0xC7, %al
	outb %al, %dx
	movw $COM1_MCR, %dx			# DTR, RTS
	movb $0x03, %al
	outb %al, %dx
	ret

# putc writes AL once the transmitter holding register is empty, polling
# LSR at most PUTC_SPINS times (then it writes anyway and counts it).
putc:
	pushl %ecx
	pushl %edx
	movb %al, %ah
	movl $PUTC_SPINS, %ecx
	movw $COM1_LSR, %dx
1:	inb %dx, %al
	testb $LSR_THRE, %al
	jnz 2f
	pause
	loop 1b
	incl thre_timeouts
2:	movw $COM1_THR, %dx
	movb %ah, %al
	outb %al, %dx
	popl %edx
	popl %ecx
	ret

# puts writes the NUL-terminated string at ESI, "\n" as "\r\n". It leaves
# ESI past the string.
puts:
	pushl %eax
1:	lodsb
	testb %al, %al
	jz 2f
	cmpb $'\n', %al
	jne 3f
	movb $'\r', %al
	call putc
	movb $'\n', %al
3:	call putc
	jmp 1b
2:	popl %eax
	ret

newline:
	pushl %esi
	movl $s_newline, %esi
	call puts
	popl %esi
	ret

# puthex writes EAX as 0x and eight hex digits.
puthex:
	pushl %eax
	pushl %ebx
	pushl %ecx
	movl %eax, %ebx
	movb $'0', %al
	call putc
	movb $'x', %al
	call putc
	movl $8, %ecx
1:	roll $4, %ebx
	movl %ebx, %eax
	andl $0xF, %eax
	movb hexdigits(%eax), %al
	call putc
	loop 1b
	popl %ecx
	popl %ebx
	popl %eax
	ret

# putdec writes EAX in decimal.
putdec:
	pushl %eax
	pushl %ecx
	pushl %edx
	pushl %edi
	movl $decbuf_end, %edi
	movl $10, %ecx
1:	xorl %edx, %edx
	divl %ecx
	addb $'0', %dl
	decl %edi
	movb %dl, (%edi)
	testl %eax, %eax
	jnz 1b
2:	movb (%edi), %al
	call putc
	incl %edi
	cmpl $decbuf_end, %edi
	jb 2b
	popl %edi
	popl %edx
	popl %ecx
	popl %eax
	ret

# ---- data ----

	.section .rodata
hexdigits:	.ascii "0123456789abcdef"
n_boot:		.asciz "boot"
n_serial:	.asciz "serial"
n_cpuid:	.asciz "cpuid"
n_lapic:	.asciz "lapic"
n_timer:	.asciz "timer"
s_prefix:	.asciz "testkernel: "
s_ok:		.asciz " ok\n"
s_fail:		.asciz " FAIL "
s_newline:	.asciz "\n"
s_hello:	.asciz "testkernel: start\n"
s_done:		.asciz "testkernel: done, "
s_done_tail:	.asciz " failed\n"
s_boot_mem:	.asciz "testkernel: boot: multiboot, mem_upper "
s_kib:		.asciz " KiB\n"
s_cpuid_vendor:	.asciz "testkernel: cpuid: leaf 0x0 vendor \""
s_cpuid_hv:	.asciz "testkernel: cpuid: leaf 0x40000000 vendor \""
s_cpuid_max:	.asciz "\" max leaf "
s_cpuid_nohv:	.asciz "testkernel: cpuid: no hypervisor (CPUID.1:ECX[31] clear)\n"
s_lapic_id:	.asciz "testkernel: lapic: id "
s_lapic_version: .asciz " version "
s_lapic_movzx:	.asciz "testkernel: lapic: movzx byte/word of version, byte/word of svr: "
s_lapic_narrow_exact: .asciz "(narrow loads exact)\n"
s_lapic_narrow_zero: .asciz "(narrow loads answer 0, as QEMU's APIC)\n"
s_lapic_svr:	.asciz "testkernel: lapic: svr "
s_arrow:	.asciz " -> "
s_lapic_tpr:	.asciz "testkernel: lapic: tpr 0x20 by movs, 0x30 by stos, 0 by rep stos; icr-high 0x0f000000 by stos and rep movs\n"
s_timer_counts:	.asciz "testkernel: timer: one-shot ticks "
s_timer_periodic: .asciz ", periodic ticks "
s_timer_tsc:	.asciz ", TSC cycles per periodic tick "
s_timer_spurious: .asciz ", spurious interrupts "
s_unexpected:	.asciz "\ntestkernel: FAIL unexpected interrupt, vector "
s_unexpected_error: .asciz " error code "
s_unexpected_eip: .asciz " eip "
d_boot_magic:	.asciz "EAX at entry is not the Multiboot magic 0x2badb002\n"
d_serial_scratch: .asciz "the scratch register did not keep 0x5a and 0xa5\n"
d_serial_thre:	.asciz "LSR never showed THRE for some characters\n"
d_cpuid_vendor:	.asciz "leaf 0 vendor string is not printable ASCII\n"
d_cpuid_max:	.asciz "leaf 0 reports no leaf 1\n"
d_cpuid_hv_vendor: .asciz "hypervisor bit set but leaf 0x40000000 vendor is not printable ASCII\n"
d_cpuid_hv_max:	.asciz "hypervisor bit set but leaf 0x40000000 max leaf is outside 0x40000000-0x400000ff\n"
d_lapic_none:	.asciz "CPUID.1:EDX[9] says there is no APIC\n"
d_lapic_base:	.asciz "IA32_APIC_BASE does not put the xAPIC page at 0xfee00000: "
d_lapic_x2apic:	.asciz "the APIC is in x2APIC mode: no MMIO page\n"
d_lapic_movzx:	.asciz "movzx loads neither all match the 32-bit loads nor all read 0: "
d_lapic_version: .asciz "version is not an integrated APIC's (0x10-0x1f)\n"
d_lapic_svr:	.asciz "spurious-vector register read-modify-write gave "
d_lapic_tpr:	.asciz "TPR did not keep what movs/stos wrote: "
d_lapic_icr:	.asciz "ICR high did not keep 0x0f000000: "
d_timer_oneshot: .asciz "no one-shot timer interrupt\n"
d_timer_oneshot_count: .asciz "one-shot timer: current count not 0 or ticks not 1: ticks "
d_timer_periodic: .asciz "periodic timer stopped: ticks "
d_timer_disabled: .asciz "the APIC is software-disabled\n"

	.balign 8
gdt:
	.quad 0
	.quad 0x00CF9A000000FFFF		# CODE_SEL: base 0, 4 GiB, 32-bit, execute/read
	.quad 0x00CF92000000FFFF		# DATA_SEL: base 0, 4 GiB, read/write
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
idt_desc:
	.word IDT_ENTRIES * 8 - 1
	.long idt

	.data
boot_magic:	.long 0				# written before .bss is cleared
boot_info:	.long 0

	.bss
	.balign 16
__bss_start:
idt:		.space IDT_ENTRIES * 8
failures:	.long 0
thre_timeouts:	.long 0
cpuid_max:	.long 0
cpuid1_ecx:	.long 0
cpuid1_edx:	.long 0
hv_max:		.long 0
vendor:		.space 16			# 12 characters and NULs
hv_vendor:	.space 16
apic_base:	.long 0
apic_id:	.long 0
apic_version:	.long 0
movzx_results:	.space 16
narrow_exact:	.long 0
narrow_zero:	.long 0
svr_before:	.long 0
svr_after:	.long 0
scratch:	.long 0
readback:	.long 0
ticks:		.long 0
oneshot_ticks:	.long 0
spurious:	.long 0
tsc_start:	.quad 0
tsc_per_tick:	.long 0
decbuf:		.space 12
decbuf_end:
	.balign 16
stack:		.space 16384
stack_top:
__bss_end:
