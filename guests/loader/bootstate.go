package loader

import (
	"fmt"
	"strings"

	"tamavisor/guests/vcpu"
)

// Mode is the processor mode a guest starts in.
type Mode uint8

const (
	// ModeReal: 16-bit real mode, the reset state (a boot sector,
	// LoadBootSector; an AP after INIT and SIPI).
	ModeReal Mode = iota
	// ModeProtected: 32-bit protected mode, flat 4 GiB segments, paging
	// off (Multiboot, PVH).
	ModeProtected
	// ModeLong: 64-bit long mode with the loader's identity page tables
	// (the Linux 64-bit boot protocol).
	ModeLong
)

func (m Mode) String() string {
	switch m {
	case ModeReal:
		return "real"
	case ModeProtected:
		return "protected"
	case ModeLong:
		return "long"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// DescriptorTable is a GDTR or IDTR value.
type DescriptorTable struct {
	Base  uint64
	Limit uint16
}

// BootState is the boot vCPU's architectural state at the kernel's entry,
// vendor-neutral: the VMX engine writes it to the VMCS guest-state area,
// the SVM engine to the VMCB save area. Segment attributes are in the
// VMCB's packed 12-bit form (vcpu.Segment); a segment whose P bit (7) is
// clear is unusable (VMX's "unusable" bit). The A20 gate is open: guest
// addresses are never wrapped at 1 MiB.
type BootState struct {
	Mode   Mode
	RIP    uint64
	RFLAGS uint64
	// GPR holds every general-purpose register, indexed by vcpu.GPR
	// (RAX, RBX, RSI, RSP, ...); those a protocol does not define are 0.
	GPR      [vcpu.NumGPRs]uint64
	Segments [vcpu.NumSegments]vcpu.Segment // ES, CS, SS, DS, FS, GS
	TR, LDTR vcpu.Segment
	GDTR     DescriptorTable
	IDTR     DescriptorTable
	// Control holds CR0, CR3, CR4 and EFER (CR2 is 0).
	Control vcpu.ControlRegisters
}

// Boot GDT selectors. Linux's boot protocol names __BOOT_CS 0x10 and
// __BOOT_DS 0x18 (boot.rst, "64-bit Boot Protocol"); Multiboot and PVH only
// ask for flat segments, and get the same ones.
const (
	SelectorCode = 0x10
	SelectorData = 0x18
	SelectorTSS  = 0x20 // a 16-byte system descriptor in long mode
	gdtEntries   = 6    // null, unused, code, data, TSS (two slots)
	gdtLimit     = gdtEntries*8 - 1
)

// Segment attributes, VMCB form (AMD APM Vol. 2, 15.5.1; Intel SDM Vol.
// 3A, 3.4.5 for the descriptor bits): type 3:0, S 4, DPL 6:5, P 7, AVL 8,
// L 9, D/B 10, G 11.
const (
	attrCode64 = 0xa9b // execute/read, accessed; S, P, L, G
	attrCode32 = 0xc9b // execute/read, accessed; S, P, D, G
	attrData   = 0xc93 // read/write, accessed; S, P, D/B, G
	attrTSS    = 0x08b // busy 32/64-bit TSS, P (SDM Vol. 3A, 3.5 Table 3-2)
	tssLimit   = 0x67  // the 104-byte TSS
)

// Control register bits (Intel SDM Vol. 3A, 2.5; AMD APM Vol. 2, 3.1).
const (
	cr0PE       = 1 << 0
	cr0ET       = 1 << 4
	cr0NE       = 1 << 5
	cr0PG       = 1 << 31
	cr4PAE      = 1 << 5
	eferLME     = 1 << 8
	eferLMA     = 1 << 10
	rflagsFixed = 1 << 1 // bit 1 always reads 1; IF, TF, VM clear
)

// descriptor encodes a segment descriptor (Intel SDM Vol. 3A, 3.4.5) from
// a base, a 20-bit limit and the VMCB-form attributes.
func descriptor(base uint32, limit uint32, attr uint16) uint64 {
	d := uint64(limit & 0xffff)
	d |= uint64(base&0xffffff) << 16
	d |= uint64(attr&0xff) << 40
	d |= uint64((limit>>16)&0xf) << 48
	d |= uint64((attr>>8)&0xf) << 52
	d |= uint64(base>>24) << 56
	return d
}

// gdt returns the boot GDT's bytes for a long- or protected-mode entry.
func gdt(long bool) []byte {
	code := uint16(attrCode32)
	if long {
		code = attrCode64
	}
	b := make([]byte, gdtEntries*8)
	le.PutUint64(b[SelectorCode:], descriptor(0, 0xfffff, code))
	le.PutUint64(b[SelectorData:], descriptor(0, 0xfffff, attrData))
	le.PutUint64(b[SelectorTSS:], descriptor(0, tssLimit, attrTSS))
	// The TSS descriptor's upper half (base 63:32, in long mode) is 0.
	return b
}

// identityMap returns the page tables that map guest-physical 0-4 GiB to
// itself with 2 MiB pages (Intel SDM Vol. 3A, 4.5): PML4[0] -> PDPT, and
// PDPT[0..3] -> four page directories, at base + areaPML4 and onward. The
// 32-bit PCI hole is mapped too; its memory types come from the MTRRs/PAT.
func identityMap(base uint64) []byte {
	const (
		present  = 1 << 0
		writable = 1 << 1
		pageSize = 1 << 7 // PS: the PDE maps a 2 MiB page
	)
	b := make([]byte, areaPD+numPDs*0x1000)
	le.PutUint64(b[areaPML4:], (base+areaPDPT)|present|writable)
	for i := uint64(0); i < numPDs; i++ {
		le.PutUint64(b[areaPDPT+i*8:], (base+areaPD+i*0x1000)|present|writable)
		for j := uint64(0); j < 512; j++ {
			phys := i<<30 | j<<21
			le.PutUint64(b[areaPD+i*0x1000+j*8:], phys|present|writable|pageSize)
		}
	}
	return b
}

// flat returns a flat 4 GiB segment with the given selector and attributes.
func flat(sel uint16, attr uint16) vcpu.Segment {
	return vcpu.Segment{Selector: sel, Base: 0, Limit: 0xffffffff, Attributes: attr}
}

// entryState writes the boot GDT (and, for long mode, the page tables) into
// the loader area and returns the matching state: flat CS/DS/ES/SS/FS/GS,
// interrupts off, a boot stack, paging per mode.
func (s *session) entryState(mode Mode, rip uint64, file string) (BootState, error) {
	area := s.g.Layout.LoaderArea.Start
	long := mode == ModeLong
	if err := s.write(area+areaGDT, gdt(long), "the boot GDT", file); err != nil {
		return BootState{}, err
	}
	st := BootState{
		Mode:   mode,
		RIP:    rip,
		RFLAGS: rflagsFixed,
		GDTR:   DescriptorTable{Base: area + areaGDT, Limit: gdtLimit},
		IDTR:   DescriptorTable{Base: 0, Limit: 0},
		TR:     vcpu.Segment{Selector: SelectorTSS, Base: 0, Limit: tssLimit, Attributes: attrTSS},
		LDTR:   vcpu.Segment{}, // unusable
	}
	st.GPR[vcpu.RSP] = area + stackTop
	code := uint16(attrCode32)
	if long {
		code = attrCode64
	}
	for _, r := range []vcpu.SegmentRegister{vcpu.ES, vcpu.SS, vcpu.DS, vcpu.FS, vcpu.GS} {
		st.Segments[r] = flat(SelectorData, attrData)
	}
	st.Segments[vcpu.CS] = flat(SelectorCode, code)
	st.Control.CR0 = cr0PE | cr0ET | cr0NE
	if long {
		if err := s.write(area, identityMap(area), "the identity page tables", file); err != nil {
			return BootState{}, err
		}
		st.Control.CR0 |= cr0PG
		st.Control.CR3 = area + areaPML4
		st.Control.CR4 = cr4PAE
		st.Control.EFER = eferLME | eferLMA
	}
	return st, nil
}

// String is a one-screen dump of the state, for boot logs and failures.
func (st BootState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mode %v rip %#x rflags %#x\n", st.Mode, st.RIP, st.RFLAGS)
	names := [...]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
	for i, n := range names {
		fmt.Fprintf(&b, "%s %#x", n, st.GPR[i])
		if i%4 == 3 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	segs := [...]string{"es", "cs", "ss", "ds", "fs", "gs"}
	for i, n := range segs {
		sg := st.Segments[i]
		fmt.Fprintf(&b, "%s %#x base %#x limit %#x attr %#x\n", n, sg.Selector, sg.Base, sg.Limit, sg.Attributes)
	}
	fmt.Fprintf(&b, "tr %#x attr %#x gdtr %#x/%#x idtr %#x/%#x\n", st.TR.Selector, st.TR.Attributes, st.GDTR.Base, st.GDTR.Limit, st.IDTR.Base, st.IDTR.Limit)
	fmt.Fprintf(&b, "cr0 %#x cr3 %#x cr4 %#x efer %#x", st.Control.CR0, st.Control.CR3, st.Control.CR4, st.Control.EFER)
	return b.String()
}
