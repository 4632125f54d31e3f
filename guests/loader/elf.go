package loader

import (
	"fmt"
	"sort"

	"tamavisor/guests/platform"
)

// ELF layout (System V ABI, "ELF Header" and "Program Header"; the x86-64
// supplement for ELFCLASS64). Only what a boot loader needs is read: the
// header, and the program headers' loadable segments and notes.
const (
	elfMagic        = "\x7fELF"
	elfClass32      = 1
	elfClass64      = 2
	elfDataLSB      = 1
	elfVersion      = 1
	elfTypeExec     = 2
	elfMachine386   = 3
	elfMachineAMD64 = 62

	elf32HeaderSize = 52
	elf64HeaderSize = 64
	elf32PhdrSize   = 32
	elf64PhdrSize   = 56
	pnXNum          = 0xffff // e_phnum's escape to section 0: not taken

	ptLoad = 1
	ptNote = 4
)

// elfSegment is one PT_LOAD program header.
type elfSegment struct {
	index          int
	offset, filesz uint64
	vaddr, paddr   uint64
	memsz          uint64
}

// elfNote is one PT_NOTE program header's file range.
type elfNote struct {
	offset, size uint64
}

// elfFile is a checked ELF executable.
type elfFile struct {
	data     []byte
	class    int
	machine  uint16
	entry    uint64
	segments []elfSegment
	notes    []elfNote
}

// parseELF checks an ELF executable's header and program headers: every
// PT_LOAD segment's bytes lie inside the file, memsz is at least filesz,
// physical ranges do not wrap and do not overlap each other.
func parseELF(f []byte) (*elfFile, error) {
	bad := func(format string, args ...any) (*elfFile, error) {
		return nil, fmt.Errorf(format, args...)
	}
	if len(f) < elf32HeaderSize || string(f[:4]) != elfMagic {
		return bad("not an ELF file (no \\x7fELF magic)")
	}
	e := &elfFile{data: f, class: int(f[4])}
	if f[5] != elfDataLSB || f[6] != elfVersion {
		return bad("ELF data encoding %d / version %d, want little-endian (1) version 1", f[5], f[6])
	}
	var phoff, phentsize, phnum uint64
	var want uint64
	switch e.class {
	case elfClass32:
		e.entry = uint64(u32(f, 24))
		phoff = uint64(u32(f, 28))
		phentsize = uint64(u16(f, 42))
		phnum = uint64(u16(f, 44))
		want = elf32PhdrSize
	case elfClass64:
		if len(f) < elf64HeaderSize {
			return bad("the %d-byte file is shorter than an ELF64 header", len(f))
		}
		e.entry = u64(f, 24)
		phoff = u64(f, 32)
		phentsize = uint64(u16(f, 54))
		phnum = uint64(u16(f, 56))
		want = elf64PhdrSize
	default:
		return bad("ELF class %d is neither ELFCLASS32 nor ELFCLASS64", e.class)
	}
	if t := u16(f, 16); t != elfTypeExec {
		return bad("ELF type %d is not ET_EXEC (2): only executables are loaded", t)
	}
	e.machine = u16(f, 18)
	if e.machine != elfMachine386 && e.machine != elfMachineAMD64 {
		return bad("ELF machine %d is neither EM_386 (3) nor EM_X86_64 (62)", e.machine)
	}
	if phentsize != want {
		return bad("e_phentsize %d, want %d for this class", phentsize, want)
	}
	if phnum == 0 || phnum == pnXNum || phnum > MaxSegments {
		return bad("e_phnum %d: want 1 to %d program headers", phnum, MaxSegments)
	}
	if phoff > uint64(len(f)) || phnum*phentsize > uint64(len(f))-phoff {
		return bad("the %d program headers at e_phoff %#x run past the end of the %d-byte file", phnum, phoff, len(f))
	}
	for i := uint64(0); i < phnum; i++ {
		h := f[phoff+i*phentsize:][:phentsize]
		var typ uint32
		var s elfSegment
		s.index = int(i)
		if e.class == elfClass32 {
			typ = u32(h, 0)
			s.offset, s.vaddr, s.paddr = uint64(u32(h, 4)), uint64(u32(h, 8)), uint64(u32(h, 12))
			s.filesz, s.memsz = uint64(u32(h, 16)), uint64(u32(h, 20))
		} else {
			typ = u32(h, 0)
			s.offset, s.vaddr, s.paddr = u64(h, 8), u64(h, 16), u64(h, 24)
			s.filesz, s.memsz = u64(h, 32), u64(h, 40)
		}
		if s.offset > uint64(len(f)) || s.filesz > uint64(len(f))-s.offset {
			return bad("program header %d: p_offset %#x + p_filesz %#x runs past the end of the %d-byte file", i, s.offset, s.filesz, len(f))
		}
		switch typ {
		case ptNote:
			e.notes = append(e.notes, elfNote{s.offset, s.filesz})
		case ptLoad:
			if s.memsz < s.filesz {
				return bad("program header %d: p_memsz %#x is smaller than p_filesz %#x", i, s.memsz, s.filesz)
			}
			if s.paddr+s.memsz < s.paddr {
				return bad("program header %d: p_paddr %#x + p_memsz %#x wraps around the address space", i, s.paddr, s.memsz)
			}
			if s.memsz > 0 {
				e.segments = append(e.segments, s)
			}
		}
	}
	if len(e.segments) == 0 {
		return bad("no PT_LOAD segment with any bytes")
	}
	sorted := append([]elfSegment(nil), e.segments...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].paddr < sorted[j].paddr })
	for i := 1; i < len(sorted); i++ {
		a, b := sorted[i-1], sorted[i]
		if b.paddr < a.paddr+a.memsz {
			return bad("program headers %d (%#x-%#x) and %d (%#x-%#x) overlap in physical memory",
				a.index, a.paddr, a.paddr+a.memsz-1, b.index, b.paddr, b.paddr+b.memsz-1)
		}
	}
	return e, nil
}

// physEntry translates the entry point to a physical address as GRUB does
// for Multiboot ELF images: e_entry is a virtual address; when it falls in
// a segment whose virtual and physical addresses differ, it moves with the
// segment.
func (e *elfFile) physEntry() uint64 {
	for _, s := range e.segments {
		if e.entry >= s.vaddr && e.entry-s.vaddr < s.memsz {
			return e.entry - s.vaddr + s.paddr
		}
	}
	return e.entry
}

// Xen ELF note giving the PVH 32-bit entry point (xen/include/public/
// elfnote.h, XEN_ELFNOTE_PHYS32_ENTRY): name "Xen", type 18, a 32-bit
// physical address (4 bytes, or 8 as Linux's _ASM_PTR writes it).
const (
	xenNoteName      = "Xen\x00"
	xenElfNotePhys32 = 18
	maxNotes         = 1024
)

// pvhEntry finds the PVH entry note. ok is false when there is none; err
// reports a note that is there but broken.
func (e *elfFile) pvhEntry() (entry uint64, ok bool, err error) {
	n := 0
	for _, seg := range e.notes {
		b := e.data[seg.offset : seg.offset+seg.size]
		// Each note is at least its 12-byte header, so the walk ends
		// within len(b)/12 steps; maxNotes bounds it besides.
		for off := uint64(0); off+12 <= uint64(len(b)) && n < maxNotes; n++ {
			namesz, descsz, typ := uint64(u32(b, int(off))), uint64(u32(b, int(off+4))), u32(b, int(off+8))
			nameEnd := off + 12 + namesz
			nameAligned, _ := alignUp(nameEnd, 4)
			descEnd := nameAligned + descsz
			if namesz > uint64(len(b)) || descsz > uint64(len(b)) || nameAligned > uint64(len(b)) || descEnd > uint64(len(b)) {
				return 0, false, fmt.Errorf("ELF note at file offset %#x: name size %d and description size %d run past its PT_NOTE segment (%d bytes)",
					seg.offset+off, namesz, descsz, len(b))
			}
			name := b[off+12 : nameEnd]
			if typ == xenElfNotePhys32 && string(name) == xenNoteName {
				desc := b[nameAligned:descEnd]
				switch len(desc) {
				case 4:
					entry = uint64(u32(desc, 0))
				case 8:
					entry = u64(desc, 0)
				default:
					return 0, false, fmt.Errorf("the Xen PHYS32_ENTRY note at file offset %#x has a %d-byte description, want 4 or 8", seg.offset+off, len(desc))
				}
				if entry >= 1<<32 {
					return 0, false, fmt.Errorf("the Xen PHYS32_ENTRY note gives entry %#x, above 4 GiB where 32-bit code cannot jump", entry)
				}
				return entry, true, nil
			}
			next, _ := alignUp(descEnd, 4)
			off = next
		}
	}
	return 0, false, nil
}

// loadSegments claims and writes every PT_LOAD segment at its physical
// address, zeroing the bytes between p_filesz and p_memsz. All segments
// must lie below limit (4 GiB for a 32-bit entry).
func (s *session) loadSegments(e *elfFile, limit uint64, file string) ([]platform.Region, platform.Region, error) {
	var out []platform.Region
	span := platform.Region{Start: ^uint64(0), End: 0}
	for _, seg := range e.segments {
		r := platform.Region{Start: seg.paddr, End: seg.paddr + seg.memsz}
		if r.End > limit {
			return nil, platform.Region{}, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("program header %d at physical %v reaches above %#x, out of reach of a 32-bit entry", seg.index, r, limit)}
		}
		if err := s.claim(r, fmt.Sprintf("program header %d", seg.index), file); err != nil {
			return nil, platform.Region{}, err
		}
		out = append(out, r)
		span.Start, span.End = min(span.Start, r.Start), max(span.End, r.End)
	}
	for _, seg := range e.segments {
		what := fmt.Sprintf("program header %d", seg.index)
		if err := s.write(seg.paddr, e.data[seg.offset:seg.offset+seg.filesz], what, file); err != nil {
			return nil, platform.Region{}, err
		}
		if err := s.zero(seg.paddr+seg.filesz, seg.memsz-seg.filesz, what+"'s zero fill", file); err != nil {
			return nil, platform.Region{}, err
		}
	}
	return out, span, nil
}
