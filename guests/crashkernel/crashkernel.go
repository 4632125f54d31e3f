// Package crashkernel builds tiny Multiboot kernels that misbehave on
// purpose, to prove that a guest's fault stops that guest with a
// diagnostic and never the hypervisor: one triple-faults, one executes
// garbage, one jumps into memory that is not RAM. They are generated
// rather than assembled so that the image and the tests share them
// without a toolchain.
package crashkernel

import "encoding/binary"

// Kinds of misbehaviour.
const (
	TripleFault = "triplefault" // empty IDT, then INT3: #GP, #DF, shutdown
	Garbage     = "garbage"     // 0xFF bytes: #UD with no usable IDT, then shutdown
	WildJump    = "wildjump"    // jump to an address no RAM or device backs
)

// Kinds lists every kind Build accepts.
var Kinds = []string{TripleFault, Garbage, WildJump}

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

// Build returns the ELF32 Multiboot kernel of the given kind, or nil for an
// unknown kind.
func Build(kind string) []byte {
	var code []byte
	switch kind {
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
