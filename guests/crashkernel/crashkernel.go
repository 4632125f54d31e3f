// Package crashkernel builds tiny guest kernels for tests: Multiboot
// kernels that misbehave on purpose, to prove that a guest's fault stops
// that guest with a diagnostic and never the hypervisor (one triple-faults,
// one executes garbage, one jumps into memory that is not RAM), a boot
// sector that runs in real mode, to prove that an engine runs a guest with
// protection off (VT-x's unrestricted guest) or refuses it by name, and a
// minimal bzImage that runs in long mode, which every engine runs.
// They are generated rather than assembled so that the image and the tests
// share them without a toolchain.
package crashkernel

import "encoding/binary"

// Kinds of guest.
const (
	TripleFault = "triplefault" // empty IDT, then INT3: #GP, #DF, shutdown
	Garbage     = "garbage"     // 0xFF bytes: #UD with no usable IDT, then shutdown
	WildJump    = "wildjump"    // jump to an address no RAM or device backs
	// RealMode is a boot sector entered in real mode (package loader):
	// it far-jumps to 07C0:0006 (its own code, through a segment whose
	// base is 07C0h << 4), prints RealModeMessage on COM1 through DS =
	// CS, and writes RealModeExitValue plus CR0.PE to the debug-exit port
	// 0xF4. It does not misbehave.
	RealMode = "realmode"
	// LongMode is the smallest bzImage package loader accepts, entered
	// at its 64-bit entry point in long mode with paging on, as Linux is:
	// it prints LongModeMessage on COM1 and writes LongModeExitValue to
	// the debug-exit port. It needs no unrestricted guest, so a VT-x
	// processor without that control runs it after refusing RealMode.
	LongMode = "longmode"
)

// Kinds lists every kind Build accepts.
var Kinds = []string{TripleFault, Garbage, WildJump, RealMode, LongMode}

// What the real-mode guest says and the value it exits with: RealModeExitValue
// when it ran with CR0.PE clear, one more if PE was set.
const (
	RealModeMessage   = "hello from real mode at 07C0:0006 (CS base = segment << 4)"
	RealModeExitValue = 0x2a
	// Ports (PC/AT COM1; the isa-debug-exit device of QEMU's PCs, which
	// the hypervisor's debugexit model copies).
	com1Port      = 0x3f8
	debugExitPort = 0xf4
)

// What the long-mode guest says and writes to the debug-exit port.
const (
	LongModeMessage   = "hello from long mode"
	LongModeExitValue = 0x2b
)

// The long-mode guest's bzImage (Linux Documentation/arch/x86/boot.rst,
// "The Real-Mode Kernel Header"): a boot sector and one setup sector
// holding the header, then the protected-mode kernel, loaded at 1 MiB
// (pref_address, not relocatable) and entered 0x200 bytes into it.
const (
	bzSetupSects   = 1
	bzSetupSize    = (bzSetupSects + 1) * 512
	bzLoadAddress  = 0x100000
	bzEntryOffset  = 0x200
	bzInitSize     = 0x1000
	bzCmdlineSize  = 255
	bzProtocol     = 0x020c // 2.12: the first with xloadflags
	bzHeaderEnd    = 0x264  // through init_size
	bzLoadedHigh   = 1 << 0 // loadflags
	bzXLFKernel64  = 1 << 0 // xloadflags: a 64-bit entry point at +0x200
	bzJumpOff      = 0x200
	bzParagraph    = 16
	bzBootFlagOff  = 0x1fe
	bzBootFlag     = 0xaa55
	bzSetupSectOff = 0x1f1
	bzSyssizeOff   = 0x1f4
	bzMagicOff     = 0x202
	bzVersionOff   = 0x206
	bzLoadflagsOff = 0x211
	bzAlignOff     = 0x230
	bzXLoadOff     = 0x236
	bzCmdSizeOff   = 0x238
	bzPrefAddrOff  = 0x258
	bzInitSizeOff  = 0x260
)

// longModeImage assembles the LongMode bzImage; its 64-bit code (offsets
// from the entry point) is tested by decoding.
func longModeImage() []byte {
	const msgAt = 30
	code := []byte{
		0xfa,                                 // 0: CLI
		0x48, 0x8d, 0x35, msgAt - 8, 0, 0, 0, // 1: LEA RSI, [RIP+msg]
		0x66, 0xba, com1Port & 0xff, com1Port >> 8, // 8: MOV DX, 3F8h
		0xac,       // 12: LODSB
		0x84, 0xc0, // 13: TEST AL, AL
		0x74, 0x03, // 15: JZ 20
		0xee,       // 17: OUT DX, AL
		0xeb, 0xf8, // 18: JMP 12
		0xb0, LongModeExitValue, // 20: MOV AL, 2Bh
		0x66, 0xba, debugExitPort, 0, // 22: MOV DX, 0F4h
		0xee,       // 26: OUT DX, AL
		0xf4,       // 27: HLT
		0xeb, 0xfd, // 28: JMP 27
	}
	kernel := make([]byte, bzEntryOffset+msgAt+len(LongModeMessage)+2)
	for i := 0; i < bzEntryOffset; i++ {
		kernel[i] = 0xf4 // HLT: nothing enters here
	}
	copy(kernel[bzEntryOffset:], code)
	copy(kernel[bzEntryOffset+msgAt:], LongModeMessage+"\n\x00")
	for len(kernel)%bzParagraph != 0 {
		kernel = append(kernel, 0)
	}
	b := make([]byte, bzSetupSize, bzSetupSize+len(kernel))
	le := binary.LittleEndian
	b[bzSetupSectOff] = bzSetupSects
	le.PutUint32(b[bzSyssizeOff:], uint32(len(kernel)/bzParagraph))
	le.PutUint16(b[bzBootFlagOff:], bzBootFlag)
	b[bzJumpOff], b[bzJumpOff+1] = 0xeb, bzHeaderEnd-(bzJumpOff+2) // JMP over the header
	copy(b[bzMagicOff:], "HdrS")
	le.PutUint16(b[bzVersionOff:], bzProtocol)
	b[bzLoadflagsOff] = bzLoadedHigh
	le.PutUint32(b[bzAlignOff:], 0x200000)
	le.PutUint16(b[bzXLoadOff:], bzXLFKernel64)
	le.PutUint32(b[bzCmdSizeOff:], bzCmdlineSize)
	le.PutUint64(b[bzPrefAddrOff:], bzLoadAddress)
	le.PutUint32(b[bzInitSizeOff:], bzInitSize)
	return append(b, kernel...)
}

// realModeSector assembles the RealMode boot sector (16-bit code, Intel
// SDM Vol. 2 encodings; offsets are from the sector's start, 7C00h).
func realModeSector() []byte {
	const start, msgAt = 6, 39
	code := []byte{
		0xfa,                       // 0: CLI
		0xea, start, 0, 0xc0, 0x07, // 1: JMP FAR 07C0:0006
		0x8c, 0xc8, // 6: MOV AX, CS
		0x8e, 0xd8, // 8: MOV DS, AX
		0xbe, msgAt, 0, // 10: MOV SI, msg
		0xba, com1Port & 0xff, com1Port >> 8, // 13: MOV DX, 3F8h
		0xfc,       // 16: CLD
		0xac,       // 17: LODSB
		0x84, 0xc0, // 18: TEST AL, AL
		0x74, 0x03, // 20: JZ 25
		0xee,       // 22: OUT DX, AL
		0xeb, 0xf8, // 23: JMP 17
		0x0f, 0x20, 0xc0, // 25: MOV EAX, CR0
		0x24, 0x01, // 28: AND AL, 1 (PE)
		0x04, RealModeExitValue, // 30: ADD AL, 2Ah
		0xba, debugExitPort, 0, // 32: MOV DX, 0F4h
		0xee,       // 35: OUT DX, AL
		0xf4,       // 36: HLT
		0xeb, 0xfd, // 37: JMP 36
	}
	b := make([]byte, 512) // the code is msgAt bytes long (tested)
	copy(b, code)
	copy(b[msgAt:], RealModeMessage+"\n\x00")
	b[510], b[511] = 0x55, 0xaa // the boot signature
	return b
}

const (
	loadAddress = 0x100000
	ehdrSize    = 52
	phdrSize    = 32
	mbOffset    = ehdrSize + phdrSize // Multiboot header, 4-byte aligned, in the first 8 KiB
	codeOffset  = mbOffset + 12
	// WildAddress is where WildJump jumps: below the IOAPIC, inside the
	// 32-bit PCI hole where no device of the guest is.
	WildAddress = 0xfeb00000
)

// Build returns the image of the given kind (an ELF32 Multiboot kernel; for
// RealMode a 512-byte boot sector, for LongMode a bzImage), or nil for an
// unknown kind.
func Build(kind string) []byte {
	var code []byte
	switch kind {
	case RealMode:
		return realModeSector()
	case LongMode:
		return longModeImage()
	case TripleFault:
		idtr := uint32(loadAddress + codeOffset + 16)
		code = []byte{0xfa, 0x0f, 0x01, 0x1d, 0, 0, 0, 0, 0xcc, 0xf4, 0xeb, 0xfd, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(code[4:], idtr) // CLI; LIDT [idtr]; INT3; HLT; JMP $-1
		code = append(code, 0, 0, 0, 0, 0, 0)         // idtr: limit 0, base 0
	case Garbage:
		code = []byte{0xfa}
		for i := 0; i < 64; i++ {
			code = append(code, 0xff)
		}
	case WildJump:
		code = []byte{0xfa, 0xb8, 0, 0, 0, 0, 0xff, 0xe0} // CLI; MOV EAX, imm32; JMP EAX
		binary.LittleEndian.PutUint32(code[2:], WildAddress)
	default:
		return nil
	}
	size := codeOffset + len(code)
	b := make([]byte, size)
	le := binary.LittleEndian
	// ELF32 header (System V ABI, i386 supplement).
	copy(b, []byte{0x7f, 'E', 'L', 'F', 1, 1, 1})
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], 3) // EM_386
	le.PutUint32(b[20:], 1)
	le.PutUint32(b[24:], loadAddress+codeOffset) // entry
	le.PutUint32(b[28:], ehdrSize)               // program headers
	le.PutUint16(b[40:], ehdrSize)
	le.PutUint16(b[42:], phdrSize)
	le.PutUint16(b[44:], 1)
	// One PT_LOAD covering the whole file at 1 MiB.
	p := b[ehdrSize:]
	le.PutUint32(p[0:], 1)
	le.PutUint32(p[8:], loadAddress)
	le.PutUint32(p[12:], loadAddress)
	le.PutUint32(p[16:], uint32(size))
	le.PutUint32(p[20:], uint32(size))
	le.PutUint32(p[24:], 5) // R+X
	le.PutUint32(p[28:], 0x1000)
	// Multiboot 0.6.96 header: magic, flags (none), checksum.
	le.PutUint32(b[mbOffset:], 0x1badb002)
	magic := uint32(0x1badb002)
	le.PutUint32(b[mbOffset+8:], -magic)
	copy(b[codeOffset:], code)
	return b
}
