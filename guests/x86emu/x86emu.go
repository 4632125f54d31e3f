// Package x86emu emulates the one guest instruction that touched a device's
// memory-mapped registers, and finds the length of an exiting instruction
// where the hardware does not report it.
//
// A guest's MMIO ranges (virtual LAPIC, IOAPIC, PCI BARs of emulated
// devices) are left out of its nested page tables, so every access to them
// stops the guest with a nested page fault (AMD APM Vol. 2, 15.25.6; Intel
// SDM Vol. 3C, 28.3.3.2). The fault names the guest-physical address but
// not the value or the register involved: Step fetches the instruction at
// CS:RIP through the guest's own page tables, decodes it with
// golang.org/x/arch/x86/x86asm in the guest's current mode, performs the
// access through an MMIOHandler and updates registers and RFLAGS as the CPU
// would have.
//
// The address of the device access is the faulting guest-physical address
// from the exit, not a fresh walk of the guest's page tables: another vCPU
// may have changed those since the access, and the hardware's translation
// is the one the guest made. The emulator recomputes the operand's linear
// address only to check that the decoded instruction is the one that
// faulted (ErrFaultMismatch otherwise). The second operand of a string
// instruction (MOVS) and the later elements of a REP string instruction
// are translated through the guest's page tables, and reach guest RAM or,
// where RAM refuses the address, the MMIOHandler.
//
// Supported: MOV, MOVNTI, MOVZX, MOVSX, MOVSXD, MOVS, STOS, LODS (with
// REP), ADD, ADC, SUB, SBB, CMP, AND, OR, XOR, TEST, XCHG, BT, BTS, BTR,
// BTC, with every operand size and addressing form in 16-bit, 32-bit and
// 64-bit code. Anything else is an *UnsupportedError; the emulator never
// panics on guest input.
//
// Not modelled: segment limit and type checks (the hardware made them for
// the access that faulted), protection keys (the vCPU interface has no
// PKRU), and alignment checks. The guest's PAE PDPTEs are read from memory
// rather than from the copies the CPU loaded at the last CR3 write.
//
// An Emulator belongs to one vCPU. Its own work does not allocate; x86asm's
// Decode allocates once per memory operand and once per immediate outside
// [0, 255] (it boxes them in interface values), which tests measure.
package x86emu

import (
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"

	"tamavisor/guests/vcpu"
)

// MMIOHandler performs the device side of an emulated access: the bus's
// dispatch to the device model claiming gpa. size is 1, 2, 4 or 8 and the
// value is in the low size bytes. *bus.MMIO and any bus.MMIODevice satisfy
// it.
type MMIOHandler interface {
	ReadMMIO(gpa uint64, size uint8) uint64
	WriteMMIO(gpa uint64, size uint8, v uint64)
}

// AtomicMemory is optionally implemented by a vcpu.Memory that can update
// guest memory with a compare-and-swap. The page walker uses it to set the
// Accessed and Dirty bits of the guest's paging entries (Intel SDM Vol. 3A,
// 4.8; AMD APM Vol. 2, 5.4.2) as the CPU does, with a locked operation.
// Without it the walker re-reads the entry and writes only its low byte,
// which leaves a window of a few instructions in which another vCPU's
// change to that byte can be lost.
type AtomicMemory interface {
	// CompareAndSwapGuest replaces the size-byte (4 or 8) little-endian
	// value at gpa with new if it equals old.
	CompareAndSwapGuest(gpa uint64, size uint8, old, new uint64) (swapped bool, err error)
}

// DefaultMaxRepeat is the number of iterations of a REP string instruction
// one Step performs when Emulator.MaxRepeat is zero.
const DefaultMaxRepeat = 4096

// Emulator emulates guest instructions for one vCPU. The zero value is
// ready to use; it must not be shared between goroutines.
type Emulator struct {
	// MaxPhysAddrBits is the guest's MAXPHYADDR (CPUID 8000_0008h
	// EAX[7:0]); paging-entry address bits at and above it are reserved
	// and fault with PFReserved. Zero means 52, the architectural limit.
	MaxPhysAddrBits uint8
	// MaxRepeat bounds the iterations of one REP string instruction in
	// one Step, so that a guest's huge count can not hold the physical
	// CPU: Step returns length 0 with RCX, RSI and RDI advanced, and the
	// guest re-executes the instruction for the rest. Zero means
	// DefaultMaxRepeat.
	MaxRepeat int

	m       machine
	inst    x86asm.Inst
	decoded decodeCache
	code    [maxInstLen]byte
	codeLen int
	scratch [8]byte
	walkBuf [8]byte
}

// machine is the guest state one Step works on, read once at its start.
type machine struct {
	cpu     vcpu.VCPU
	mem     vcpu.Memory
	cr      vcpu.ControlRegisters
	rflags  uint64
	rip     uint64
	cpl     uint8
	mode    int // code size: 16, 32 or 64
	paging  pagingMode
	maxPhys uint8
}

const maxInstLen = 15 // Intel SDM Vol. 2A, 2.3.11; AMD APM Vol. 3, 1.1

// Control register, EFER, RFLAGS and segment attribute bits
// (Intel SDM Vol. 3A, 2.5 and 2.2.1; AMD APM Vol. 2, 3.1; the vcpu package
// documents the packed attribute layout).
const (
	cr0PE = 1 << 0
	cr0WP = 1 << 16
	cr0PG = 1 << 31

	cr4PSE  = 1 << 4
	cr4PAE  = 1 << 5
	cr4LA57 = 1 << 12
	cr4SMEP = 1 << 20
	cr4SMAP = 1 << 21

	eferLMA = 1 << 10
	eferNXE = 1 << 11

	segAttrL  = 1 << 9
	segAttrDB = 1 << 10
)

// RFLAGS bits (Intel SDM Vol. 1, 3.4.3).
const (
	FlagCF = 1 << 0
	FlagPF = 1 << 2
	FlagAF = 1 << 4
	FlagZF = 1 << 6
	FlagSF = 1 << 7
	FlagDF = 1 << 10
	FlagOF = 1 << 11
	FlagAC = 1 << 18
	FlagVM = 1 << 17

	// FlagsArith are the status flags arithmetic instructions write.
	FlagsArith = FlagCF | FlagPF | FlagAF | FlagZF | FlagSF | FlagOF
)

// Page-fault error code bits (Intel SDM Vol. 3A, 4.7; AMD APM Vol. 2,
// 8.4.2).
const (
	PFPresent  = 1 << 0 // the page was present: a protection or reserved-bit fault
	PFWrite    = 1 << 1
	PFUser     = 1 << 2 // the access was made at CPL 3
	PFReserved = 1 << 3 // a paging entry had a reserved bit set
	PFFetch    = 1 << 4 // instruction fetch (with NX enabled or SMEP)
)

// ErrUnsupported is matched by errors.Is for every *UnsupportedError.
var ErrUnsupported = errors.New("unsupported instruction")

// ErrFaultMismatch: the instruction at RIP does not access the faulting
// address the way the exit reported it. Another vCPU may have rewritten the
// code or the guest's page tables since the fault; re-entering the guest
// without advancing RIP retries the access. The caller bounds such retries:
// a persistent mismatch is a guest (or emulator) bug, not a race.
var ErrFaultMismatch = errors.New("instruction does not match the nested page fault")

// ErrNonCanonical: a computed 64-bit linear address is not canonical
// (Intel SDM Vol. 1, 3.3.7.1); the CPU would raise #GP (#SS for stack
// references).
var ErrNonCanonical = errors.New("non-canonical linear address")

// UnsupportedError names an instruction the emulator can not perform, for
// the dump printed when the guest is stopped.
type UnsupportedError struct {
	Mnemonic string // x86asm's opcode name; empty when undecodable
	Text     string // Intel-syntax disassembly; empty when undecodable
	Bytes    [maxInstLen]byte
	Len      int // valid bytes in Bytes
	Mode     int // code size the bytes were decoded in
	Reason   string
}

func (e *UnsupportedError) Error() string {
	what := e.Text
	if what == "" {
		what = "undecodable instruction"
	}
	return fmt.Sprintf("x86emu: unsupported instruction %q (% x, %d-bit code): %s", what, e.Bytes[:e.Len], e.Mode, e.Reason)
}

// Is makes errors.Is(err, ErrUnsupported) true.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// PageFault is a #PF the guest's own paging raised while the emulator
// fetched the instruction or accessed an operand: the caller may inject it
// (vector 14, CR2 = Linear) or stop the guest.
type PageFault struct {
	Linear    uint64
	ErrorCode uint32 // PF* bits
}

func (f *PageFault) Error() string {
	kind := "not present"
	switch {
	case f.ErrorCode&PFReserved != 0:
		kind = "reserved bit set"
	case f.ErrorCode&PFPresent != 0:
		kind = "protection violation"
	}
	return fmt.Sprintf("x86emu: guest page fault at linear %#x, error code %#x (%s)", f.Linear, f.ErrorCode, kind)
}

// GuestMemoryError is an access to guest-physical memory that the guest's
// RAM refused: a paging structure or the instruction itself outside RAM.
type GuestMemoryError struct {
	GPA  uint64
	What string // "paging entry", "instruction fetch", "string operand"
	Err  error
}

func (e *GuestMemoryError) Error() string {
	return fmt.Sprintf("x86emu: %s at guest-physical %#x: %v", e.What, e.GPA, e.Err)
}

func (e *GuestMemoryError) Unwrap() error { return e.Err }

// begin reads the guest state one Step or InstructionLength works on.
func (e *Emulator) begin(cpu vcpu.VCPU, mem vcpu.Memory) {
	m := &e.m
	m.cpu, m.mem = cpu, mem
	m.cr = cpu.Control()
	m.rflags = cpu.RFLAGS()
	m.rip = cpu.RIP()
	m.cpl = cpu.CPL()
	m.mode = codeMode(m.cr, m.rflags, cpu.Segment(vcpu.CS))
	m.paging = pagingModeOf(m.cr)
	m.maxPhys = e.MaxPhysAddrBits
	if m.maxPhys == 0 || m.maxPhys > 52 {
		m.maxPhys = 52
	}
}

// end drops the references to the guest so that an idle Emulator does not
// keep it reachable.
func (e *Emulator) end() {
	e.m.cpu, e.m.mem = nil, nil
}

// codeMode is the default operand and address size of the code being run
// (Intel SDM Vol. 1, 3.6; Vol. 3A, 5.2.1; AMD APM Vol. 2, 4.8.1): real and
// virtual-8086 mode are 16-bit, a long-mode code segment with L set is
// 64-bit, otherwise CS.D chooses.
func codeMode(cr vcpu.ControlRegisters, rflags uint64, cs vcpu.Segment) int {
	switch {
	case cr.CR0&cr0PE == 0, rflags&FlagVM != 0:
		return 16
	case cr.EFER&eferLMA != 0 && cs.Attributes&segAttrL != 0:
		return 64
	case cs.Attributes&segAttrDB != 0:
		return 32
	}
	return 16
}

// fetchAndDecode reads up to 15 bytes at CS:RIP and decodes them in the
// current mode into e.inst.
func (e *Emulator) fetchAndDecode() error {
	m := &e.m
	var lin uint64
	switch m.mode {
	case 64:
		lin = m.rip
	case 32:
		lin = (m.cpu.Segment(vcpu.CS).Base + m.rip&0xffffffff) & 0xffffffff
	default:
		lin = (m.cpu.Segment(vcpu.CS).Base + m.rip&0xffff) & 0xffffffff
	}
	e.codeLen = 0
	// The instruction may end before a page boundary beyond which nothing
	// is mapped: fetch page by page and only report a fault if the bytes
	// before it do not hold a whole instruction.
	var pending error
	for e.codeLen < maxInstLen {
		at := lin + uint64(e.codeLen)
		if m.mode != 64 {
			at &= 0xffffffff
		}
		n := min(maxInstLen-e.codeLen, int(pageSize-at&pageMask))
		gpa, err := e.translate(at, accessFetch)
		if err == nil {
			if rerr := m.mem.ReadGuest(gpa, e.code[e.codeLen:e.codeLen+n]); rerr != nil {
				err = &GuestMemoryError{GPA: gpa, What: "instruction fetch", Err: rerr}
			}
		}
		if err != nil {
			pending = err
			break
		}
		e.codeLen += n
	}
	if e.codeLen == 0 {
		return pending
	}
	in := &e.inst
	err := e.decoded.decode(in, e.code[:e.codeLen], m.mode)
	if err != nil || in.Op == 0 || in.Len > e.codeLen {
		// x86asm reports a truncated instruction as a lone prefix.
		if pending != nil {
			return pending
		}
		return e.unsupported(nil, "undecodable")
	}
	for _, p := range in.Prefix {
		if p == 0 {
			break
		}
		if p&x86asm.PrefixInvalid != 0 {
			return e.unsupported(in, "invalid prefix (the CPU raises #UD)")
		}
	}
	return nil
}

// decodeCache remembers recent decodes. x86asm boxes operands in interface
// values, so a decode allocates; a guest's MMIO accesses come from a few
// instructions in its drivers (the LAPIC EOI write, a timer read), and
// serving them from here keeps the exit path free of heap allocations.
// An entry matches when the mode and the decoded instruction's bytes are
// the same: x86 decoding depends on nothing else. The decoded operands are
// immutable values, so handing out a cached Inst is safe.
type decodeCache struct {
	slots [64]decodeSlot
	// Hits and Misses count lookups, for the benchmarks.
	Hits, Misses uint64
}

type decodeSlot struct {
	mode int
	n    int // instruction length; 0: empty
	code [maxInstLen]byte
	inst x86asm.Inst
}

func (c *decodeCache) decode(in *x86asm.Inst, b []byte, mode int) error {
	h := uint32(2166136261) ^ uint32(mode) // FNV-1a over the mode and the first bytes
	for i := 0; i < len(b) && i < 4; i++ {
		h = (h ^ uint32(b[i])) * 16777619
	}
	s := &c.slots[(h^h>>16)%uint32(len(c.slots))]
	if s.n > 0 && s.mode == mode && s.n <= len(b) && string(s.code[:s.n]) == string(b[:s.n]) {
		*in = s.inst
		c.Hits++
		return nil
	}
	c.Misses++
	if err := decodeInto(in, b, mode); err != nil || in.Op == 0 || in.Len > len(b) {
		return err
	}
	s.mode, s.n, s.inst = mode, in.Len, *in
	copy(s.code[:], b[:in.Len])
	return nil
}

// decodeInto is x86asm.Decode, fenced so that a decoder bug on hostile
// bytes stops one guest instead of the hypervisor.
func decodeInto(in *x86asm.Inst, b []byte, mode int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			*in = x86asm.Inst{}
			err = fmt.Errorf("x86asm: %v", r)
		}
	}()
	*in, err = x86asm.Decode(b, mode)
	return err
}

func (e *Emulator) unsupported(inst *x86asm.Inst, reason string) error {
	u := &UnsupportedError{Len: e.codeLen, Mode: e.m.mode, Reason: reason}
	copy(u.Bytes[:], e.code[:e.codeLen])
	if inst != nil && inst.Op != 0 {
		u.Mnemonic = inst.Op.String()
		u.Text = x86asm.IntelSyntax(*inst, e.m.rip, nil)
		u.Len = inst.Len
	}
	return u
}

// InstructionLength decodes the instruction at the guest's CS:RIP and
// returns its length in bytes, for exits whose hardware does not report it
// (AMD without NRIPS). It changes no guest state except the Accessed bits
// of the paging entries it walks.
func (e *Emulator) InstructionLength(cpu vcpu.VCPU, mem vcpu.Memory) (int, error) {
	e.begin(cpu, mem)
	defer e.end()
	err := e.fetchAndDecode()
	if err == nil {
		return e.inst.Len, nil
	}
	if n, ok := systemInstructionLength(e.code[:e.codeLen], e.m.mode); ok {
		return n, nil
	}
	return 0, err
}

// InstructionLength is Emulator.InstructionLength with a temporary
// Emulator; the exit path keeps one per vCPU instead, which does not
// allocate.
func InstructionLength(cpu vcpu.VCPU, mem vcpu.Memory) (int, error) {
	var e Emulator
	return e.InstructionLength(cpu, mem)
}

// systemInstructionLength covers the exiting instructions x86asm does not
// know: the register forms of opcode group 7 (0F 01 C0-FF: VMCALL,
// VMMCALL, VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA, CLAC, STAC,
// MONITORX, MWAITX, CLZERO, RDPKRU, WRPKRU...) and of group 9 (0F C7 /7:
// RDSEED, RDPID). Each is its prefixes, two opcode bytes and a ModR/M byte
// with no displacement or immediate (Intel SDM Vol. 2D, Table A-6; AMD APM
// Vol. 3, Appendix A).
func systemInstructionLength(b []byte, mode int) (int, bool) {
	i := 0
	for i < len(b) && i < maxInstLen && isLegacyPrefix(b[i]) {
		i++
	}
	for mode == 64 && i < len(b) && b[i]&0xf0 == 0x40 {
		i++
	}
	if i+3 > len(b) || i+3 > maxInstLen || b[i] != 0x0f || b[i+2] < 0xc0 {
		return 0, false
	}
	switch {
	case b[i+1] == 0x01:
		return i + 3, true
	case b[i+1] == 0xc7 && b[i+2]>>3&7 == 7:
		return i + 3, true
	}
	return 0, false
}

// isLegacyPrefix reports the prefix bytes of groups 1-4 (Intel SDM
// Vol. 2A, 2.1.1).
func isLegacyPrefix(b byte) bool {
	switch b {
	case 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67:
		return true
	}
	return false
}
