package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Headers selects which boot headers Patch writes.
type Headers uint8

const (
	Multiboot1 Headers = 1 << iota
	Multiboot2
)

func (h Headers) String() string {
	switch h {
	case Multiboot1:
		return "Multiboot"
	case Multiboot2:
		return "Multiboot2"
	case Multiboot1 | Multiboot2:
		return "Multiboot and Multiboot2"
	}
	return "no"
}

// Multiboot 0.6.96, 3.1 "OS image format": the header is 32-bit aligned and
// lies wholly within the first 8192 bytes of the file.
const (
	mb1Magic  = 0x1BADB002
	mb1Search = 8192
	mb1Align  = 4
	// Flags: bit 0 asks for modules aligned on 4 KiB pages, bit 1 for the
	// memory information. Bit 16 (addresses in the header) stays clear:
	// the loader takes the layout from the ELF program headers.
	mb1Flags = 1<<0 | 1<<1
	mb1Size  = 12
)

// Multiboot2 1.0, 3.1: the header is 64-bit aligned within the first 32768
// bytes, its tags 8-byte aligned.
const (
	mb2Magic    = 0xE85250D6
	mb2Search   = 32768
	mb2Align    = 8
	mb2ArchI386 = 0 // 32-bit protected mode

	mb2TagEnd         = 0
	mb2TagInfoRequest = 1 // 3.1.4
	mb2TagModuleAlign = 6 // 3.1.10
	mb2TagOptional    = 1 // flags bit 0

	// Boot information tag types asked for (3.6).
	mb2InfoCmdline    = 1
	mb2InfoLoaderName = 2
	mb2InfoModule     = 3
	mb2InfoMmap       = 6
	mb2InfoACPIOld    = 14
	mb2InfoACPINew    = 15
)

// mb1Header returns the Multiboot header: magic, flags, checksum.
func mb1Header() []byte {
	b := make([]byte, 0, mb1Size)
	b = binary.LittleEndian.AppendUint32(b, mb1Magic)
	b = binary.LittleEndian.AppendUint32(b, mb1Flags)
	sum := uint32(mb1Magic + mb1Flags)
	return binary.LittleEndian.AppendUint32(b, -sum)
}

// mb2Header returns the Multiboot2 header. The memory map is requested as
// required: a loader that cannot give one must refuse to boot rather than
// start the image blind. The rest is optional, so that a loader without, say,
// the ACPI 1.0 tag still boots it.
func mb2Header() []byte {
	le := binary.LittleEndian
	var tags []byte
	tag := func(typ, flags uint16, payload ...uint32) {
		tags = le.AppendUint16(tags, typ)
		tags = le.AppendUint16(tags, flags)
		tags = le.AppendUint32(tags, uint32(8+4*len(payload)))
		for _, p := range payload {
			tags = le.AppendUint32(tags, p)
		}
		for len(tags)%8 != 0 {
			tags = append(tags, 0)
		}
	}
	tag(mb2TagInfoRequest, 0, mb2InfoMmap)
	tag(mb2TagInfoRequest, mb2TagOptional, mb2InfoCmdline, mb2InfoLoaderName, mb2InfoModule, mb2InfoACPINew, mb2InfoACPIOld)
	tag(mb2TagModuleAlign, 0)
	tag(mb2TagEnd, 0)

	length := uint32(16 + len(tags))
	b := make([]byte, 0, length)
	b = le.AppendUint32(b, mb2Magic)
	b = le.AppendUint32(b, mb2ArchI386)
	b = le.AppendUint32(b, length)
	b = le.AppendUint32(b, -(mb2Magic + mb2ArchI386 + length))
	return append(b, tags...)
}

// ErrPresent is returned, with the image unchanged, when every header asked
// for is already there.
var ErrPresent = errors.New("the boot headers are already present")

// span is a byte range [off, end) of the file.
type span struct {
	off, end uint64
	what     string
}

// image is what Patch needs to know of an ELF file.
type image struct {
	data     []byte
	used     []span // bytes that belong to a header, table or section
	loaded   []span // file ranges of PT_LOAD segments
	entry    uint64
	pvhEntry uint64 // 0 without a PVH note
}

// Patch returns a copy of the TamaGo ELF image with the headers asked for
// written into zero padding that a PT_LOAD segment maps (in images from the
// TamaGo linker: the first segment, between the section headers and the
// notes). It
// refuses an image that is not ELF64 x86-64, that a Multiboot loader could
// not load, or that has no suitable padding. When every header asked for is
// already present it returns the image unchanged and ErrPresent.
func Patch(data []byte, want Headers) ([]byte, error) {
	if want&(Multiboot1|Multiboot2) == 0 {
		return nil, errors.New("no header asked for")
	}
	img, err := parseImage(data)
	if err != nil {
		return nil, err
	}
	mb1At, mb2At := findMultiboot1(data), findMultiboot2(data)
	missing := Headers(0)
	if want&Multiboot1 != 0 && mb1At < 0 {
		missing |= Multiboot1
	}
	if want&Multiboot2 != 0 && mb2At < 0 {
		missing |= Multiboot2
	}
	if missing == 0 {
		return data, ErrPresent
	}
	if mb1At >= 0 {
		img.used = append(img.used, span{uint64(mb1At), uint64(mb1At + mb1Size), "Multiboot header"})
	}
	if mb2At >= 0 {
		img.used = append(img.used, span{uint64(mb2At), uint64(mb2At) + uint64(binary.LittleEndian.Uint32(data[mb2At+8:])), "Multiboot2 header"})
	}

	out := append([]byte(nil), data...)
	img.data = out
	// Multiboot first: its window is the narrower.
	if missing&Multiboot1 != 0 {
		if err := img.place(mb1Header(), mb1Align, mb1Search, "Multiboot"); err != nil {
			return nil, err
		}
	}
	if missing&Multiboot2 != 0 {
		if err := img.place(mb2Header(), mb2Align, mb2Search, "Multiboot2"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// place writes hdr at the lowest offset that is aligned, ends within the
// first limit bytes, holds only zero bytes, belongs to no header, table or
// section, and lies inside a PT_LOAD segment's file range.
func (img *image) place(hdr []byte, align, limit uint64, name string) error {
	size := uint64(len(hdr))
	limit = min(limit, uint64(len(img.data)))
	firstUnloaded := int64(-1)
	for off := uint64(0); off+size <= limit; off += align {
		if !img.zero(off, size) || img.overlapsUsed(off, off+size) {
			continue
		}
		if !img.inLoaded(off, off+size) {
			if firstUnloaded < 0 {
				firstUnloaded = int64(off)
			}
			continue
		}
		copy(img.data[off:], hdr)
		img.used = append(img.used, span{off, off + size, name + " header"})
		return nil
	}
	if firstUnloaded >= 0 {
		return fmt.Errorf("the %d zero bytes at file offset %#x, where the %s header (%d bytes) would fit, are not inside any PT_LOAD segment: the header must be loaded with the image",
			size, firstUnloaded, name, size)
	}
	return fmt.Errorf("no run of %d zero bytes, %d-byte aligned, in the first %d bytes of the file outside the ELF headers and sections: nowhere to put the %s header",
		size, align, limit, name)
}

func (img *image) zero(off, size uint64) bool {
	for _, c := range img.data[off : off+size] {
		if c != 0 {
			return false
		}
	}
	return true
}

func (img *image) overlapsUsed(off, end uint64) bool {
	for _, u := range img.used {
		if off < u.end && u.off < end {
			return true
		}
	}
	return false
}

func (img *image) inLoaded(off, end uint64) bool {
	for _, l := range img.loaded {
		if l.off <= off && end <= l.end {
			return true
		}
	}
	return false
}

// ELF64 header fields debug/elf does not expose (System V ABI, ELF-64
// Object File Format 1.5, "ELF Header").
const (
	elfPhoff     = 32
	elfShoff     = 40
	elfEhsize    = 52
	elfPhentsize = 54
	elfPhnum     = 56
	elfShentsize = 58
	elfShnum     = 60
	elf64EhSize  = 64
)

// Xen's PVH entry note (xen/include/public/elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY).
const xenElfnotePhys32Entry = 18

func parseImage(data []byte) (*image, error) {
	if len(data) < elf64EhSize || string(data[:4]) != elf.ELFMAG {
		return nil, errors.New("not an ELF file")
	}
	if elf.Class(data[elf.EI_CLASS]) != elf.ELFCLASS64 || elf.Data(data[elf.EI_DATA]) != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("not a little-endian ELF64 file (class %v, data %v)", elf.Class(data[elf.EI_CLASS]), elf.Data(data[elf.EI_DATA]))
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading ELF: %w", err)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("ELF machine is %v, not x86-64", f.Machine)
	}
	if f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("ELF type is %v, not an executable", f.Type)
	}
	le := binary.LittleEndian
	img := &image{data: data, entry: f.Entry}
	phoff, shoff := le.Uint64(data[elfPhoff:]), le.Uint64(data[elfShoff:])
	phsize := uint64(le.Uint16(data[elfPhentsize:])) * uint64(le.Uint16(data[elfPhnum:]))
	shsize := uint64(le.Uint16(data[elfShentsize:])) * uint64(le.Uint16(data[elfShnum:]))
	img.used = append(img.used,
		span{0, uint64(le.Uint16(data[elfEhsize:])), "ELF header"},
		span{phoff, phoff + phsize, "program headers"},
		span{shoff, shoff + shsize, "section headers"})
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS && s.Type != elf.SHT_NULL && s.Size > 0 {
			img.used = append(img.used, span{s.Offset, s.Offset + s.Size, "section " + s.Name})
		}
	}

	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			// Multiboot loaders place segments below 4 GiB only, at
			// their physical addresses.
			if p.Paddr+p.Memsz > 1<<32 || p.Paddr+p.Memsz < p.Paddr {
				return nil, fmt.Errorf("PT_LOAD segment at physical %#x of %#x bytes reaches above 4 GiB: a Multiboot loader cannot place it", p.Paddr, p.Memsz)
			}
			if p.Filesz > 0 {
				img.loaded = append(img.loaded, span{p.Off, p.Off + p.Filesz, "PT_LOAD"})
			}
		case elf.PT_NOTE:
			img.used = append(img.used, span{p.Off, p.Off + p.Filesz, "notes"})
			if e, ok := pvhEntry(data, p.Off, p.Filesz); ok {
				img.pvhEntry = e
			}
		}
	}
	if len(img.loaded) == 0 {
		return nil, errors.New("the ELF file has no PT_LOAD segment with file contents")
	}
	sort.Slice(img.loaded, func(i, j int) bool { return img.loaded[i].off < img.loaded[j].off })

	// A Multiboot loader jumps to e_entry in 32-bit protected mode, as a
	// PVH loader jumps to the note's entry: they must be the same code.
	if img.entry >= 1<<32 {
		return nil, fmt.Errorf("ELF entry %#x is above 4 GiB: a Multiboot loader enters in 32-bit mode", img.entry)
	}
	if img.pvhEntry != 0 && img.pvhEntry != img.entry {
		return nil, fmt.Errorf("ELF entry %#x differs from the PVH entry %#x: a Multiboot loader would start the image elsewhere than PVH does", img.entry, img.pvhEntry)
	}
	return img, nil
}

// pvhEntry finds XEN_ELFNOTE_PHYS32_ENTRY in a note segment (ELF-64 format,
// "Note Sections": namesz, descsz, type, then name and desc, each padded to
// 4 bytes).
func pvhEntry(data []byte, off, size uint64) (uint64, bool) {
	le := binary.LittleEndian
	end := off + size
	if end > uint64(len(data)) || end < off {
		return 0, false
	}
	pad := func(n uint64) uint64 { return (n + 3) &^ 3 }
	for off+12 <= end {
		namesz, descsz, typ := uint64(le.Uint32(data[off:])), uint64(le.Uint32(data[off+4:])), le.Uint32(data[off+8:])
		name := off + 12
		desc := name + pad(namesz)
		next := desc + pad(descsz)
		if next > end || next < off {
			return 0, false
		}
		if typ == xenElfnotePhys32Entry && namesz == 4 && string(data[name:name+4]) == "Xen\x00" {
			switch descsz {
			case 4:
				return uint64(le.Uint32(data[desc:])), true
			case 8:
				return le.Uint64(data[desc:]), true
			}
		}
		off = next
	}
	return 0, false
}

// findMultiboot1 returns the offset of a valid Multiboot header, or -1.
func findMultiboot1(data []byte) int {
	le := binary.LittleEndian
	for off := 0; off+mb1Size <= min(len(data), mb1Search); off += mb1Align {
		if le.Uint32(data[off:]) == mb1Magic && le.Uint32(data[off:])+le.Uint32(data[off+4:])+le.Uint32(data[off+8:]) == 0 {
			return off
		}
	}
	return -1
}

// findMultiboot2 returns the offset of a valid Multiboot2 header, or -1.
func findMultiboot2(data []byte) int {
	le := binary.LittleEndian
	for off := 0; off+16 <= min(len(data), mb2Search); off += mb2Align {
		magic, arch, length, sum := le.Uint32(data[off:]), le.Uint32(data[off+4:]), le.Uint32(data[off+8:]), le.Uint32(data[off+12:])
		if magic == mb2Magic && magic+arch+length+sum == 0 && length >= 16 && uint64(off)+uint64(length) <= uint64(len(data)) {
			return off
		}
	}
	return -1
}
