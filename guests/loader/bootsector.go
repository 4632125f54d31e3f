package loader

import (
	"fmt"

	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// A boot sector is what a PC BIOS starts a disk from: 512 bytes ending in
// the signature 55h AAh, loaded at 0000:7C00 and entered in real mode with
// DL naming the boot drive (the IBM PC convention every BIOS keeps; the
// BIOS Boot Specification 1.01, 6.5.1, and El Torito's "no emulation"
// boot inherit it). The loader enters one the same way, without a BIOS
// behind it: the interrupt vector table is empty, so the image must not
// call BIOS services. It is the loader's real-mode entry: CR0.PE clear,
// each segment's base its selector times 16.
const (
	BootSectorSize = 512
	// BootSectorAddress is where the sector is loaded and entered
	// (CS:IP = 0000:7C00).
	BootSectorAddress = 0x7c00
	bootSignatureOff  = 510
	// bootDrive is DL at entry: the first hard disk (BIOS drive 80h).
	bootDrive = 0x80
)

// isBootSector: exactly one sector with the boot signature. A bzImage also
// carries 55AA at offset 510 but is far longer than a sector.
func isBootSector(image []byte) bool {
	return len(image) == BootSectorSize && image[bootSignatureOff] == 0x55 && image[bootSignatureOff+1] == 0xaa
}

// Real-mode segment attributes, VMCB form (vcpu.Segment): present, S=1,
// DPL 0, 16-bit, byte granular; code execute/read accessed (type 0xb),
// data read/write accessed (type 3). What a processor holds after loading
// a selector in real mode (Intel SDM Vol. 3A, 21.1.1 "Address
// Translation in Real-Address Mode"; AMD APM Vol. 2, 4.3).
const (
	attrRealCode = 0x09b
	attrRealData = 0x093
	attrRealLDT  = 0x082 // LDT, present: accepted by VM entry in real mode
	realLimit    = 0xffff
	// ivtLimit covers the 256 four-byte vectors of the real-mode
	// interrupt vector table at address 0 (SDM Vol. 3A, 21.1.4).
	ivtLimit = 256*4 - 1
)

// RealModeState returns the state of a CPU entering real mode at cs:ip:
// CS.base = cs<<4, the other segments selector 0 base 0, every limit
// 64 KiB, CR0 with only ET set (protection and paging off), EFER 0,
// interrupts off, the IDTR on the interrupt vector table at 0. The stack
// pointer and general registers are 0; callers set what their protocol
// defines.
func RealModeState(cs, ip uint16) BootState {
	st := BootState{Mode: ModeReal, RIP: uint64(ip), RFLAGS: rflagsFixed}
	for r := range st.Segments {
		st.Segments[r] = vcpu.Segment{Limit: realLimit, Attributes: attrRealData}
	}
	st.Segments[vcpu.CS] = vcpu.Segment{Selector: cs, Base: uint64(cs) << 4, Limit: realLimit, Attributes: attrRealCode}
	st.TR = vcpu.Segment{Limit: realLimit, Attributes: attrTSS}
	st.LDTR = vcpu.Segment{Limit: realLimit, Attributes: attrRealLDT}
	st.GDTR = DescriptorTable{Limit: realLimit}
	st.IDTR = DescriptorTable{Limit: ivtLimit}
	st.Control = vcpu.ControlRegisters{CR0: cr0ET}
	return st
}

// LoadBootSector loads a 512-byte boot sector at 0000:7C00 and returns the
// real-mode state a BIOS would start it in: CS:IP = 0000:7C00, DS = ES =
// SS = 0, SP = 7C00h (the stack grows down below the sector), DL = 80h. A
// boot sector takes no command line, ramdisk or modules.
func LoadBootSector(g Guest, image []byte, opts Options) (*Result, error) {
	file := fileName("boot sector", opts.KernelName)
	if !isBootSector(image) {
		return nil, &Error{File: file, Kind: ErrMalformed,
			Msg: fmt.Sprintf("%d bytes; a boot sector is exactly %d bytes ending in 55h AAh", len(image), BootSectorSize)}
	}
	if opts.Cmdline != "" || len(opts.Initrd) > 0 || len(opts.Modules) > 0 {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: "a boot sector takes no command line, initrd or modules"}
	}
	s, err := newSession(g, file)
	if err != nil {
		return nil, err
	}
	at := platform.Region{Start: BootSectorAddress, End: BootSectorAddress + BootSectorSize}
	if err := s.claim(at, "the boot sector", file); err != nil {
		return nil, err
	}
	if err := s.write(at.Start, image, "the boot sector", file); err != nil {
		return nil, err
	}
	st := RealModeState(0, BootSectorAddress)
	st.GPR[vcpu.RSP] = BootSectorAddress
	st.GPR[vcpu.RDX] = bootDrive
	return &Result{Format: FormatBootSector, State: st, Kernel: at, Segments: []platform.Region{at}}, nil
}
