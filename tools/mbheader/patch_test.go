package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var le = binary.LittleEndian

// synthSection is a section of a synthetic image.
type synthSection struct {
	name      string
	typ       elf.SectionType
	off, size uint64
	fill      byte
}

// synth describes a small ELF64 laid out like a TamaGo image: ELF header,
// program headers, section headers, zero padding, a Xen PVH note at 0xf60,
// code from 0x1000; one PT_LOAD from file offset 0.
type synth struct {
	class, data          byte
	machine              elf.Machine
	typ                  elf.Type
	entry, pvhEntry      uint64
	loadOff, loadFilesz  uint64
	loadPaddr, loadMemsz uint64
	shoff                uint64
	sections             []synthSection
	size                 uint64
	// edit changes the bytes after layout, before the headers are
	// written, to make broken images.
	edit func(b []byte)
}

func defaultSynth() synth {
	return synth{
		class: byte(elf.ELFCLASS64), data: byte(elf.ELFDATA2LSB), machine: elf.EM_X86_64, typ: elf.ET_EXEC,
		entry: 0x10081a60, pvhEntry: 0x10081a60,
		loadOff: 0, loadFilesz: 0x3000, loadPaddr: 0x1000f000, loadMemsz: 0x3000,
		shoff: 0xb0, // right after the program headers, as the Go linker does
		sections: []synthSection{
			{".note.go.pvh", elf.SHT_NOTE, 0xf60, 0x18, 0},
			{".note.go.buildid", elf.SHT_NOTE, 0xf78, 0x88, 0x11}, // notes fill the page
			{".text", elf.SHT_PROGBITS, 0x1000, 0x2000, 0xcc},
			{".bss", elf.SHT_NOBITS, 0x3000, 0x8000, 0},
		},
		size: 0x3000,
	}
}

func (s synth) build() []byte {
	b := make([]byte, s.size)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION] = s.class, s.data, byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(s.typ))
	le.PutUint16(b[18:], uint16(s.machine))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[24:], s.entry)
	le.PutUint64(b[32:], 0x40) // e_phoff
	le.PutUint64(b[40:], s.shoff)
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[54:], 56) // e_phentsize
	le.PutUint16(b[56:], 2)  // e_phnum
	le.PutUint16(b[58:], 64) // e_shentsize
	le.PutUint16(b[60:], uint16(len(s.sections)+1))
	le.PutUint16(b[62:], 0) // e_shstrndx: no names needed

	phdr := func(at uint64, typ elf.ProgType, flags elf.ProgFlag, off, vaddr, filesz, memsz, align uint64) {
		le.PutUint32(b[at:], uint32(typ))
		le.PutUint32(b[at+4:], uint32(flags))
		le.PutUint64(b[at+8:], off)
		le.PutUint64(b[at+16:], vaddr)
		le.PutUint64(b[at+24:], vaddr)
		le.PutUint64(b[at+32:], filesz)
		le.PutUint64(b[at+40:], memsz)
		le.PutUint64(b[at+48:], align)
	}
	phdr(0x40, elf.PT_LOAD, elf.PF_R|elf.PF_X, s.loadOff, s.loadPaddr, s.loadFilesz, s.loadMemsz, 0x1000)
	phdr(0x40+56, elf.PT_NOTE, elf.PF_R, 0xf60, s.loadPaddr+0xf60, 0x18, 0x18, 4)

	for i, sec := range s.sections {
		at := s.shoff + uint64(i+1)*64
		le.PutUint32(b[at+4:], uint32(sec.typ))
		le.PutUint64(b[at+16:], s.loadPaddr+sec.off) // sh_addr
		le.PutUint64(b[at+24:], sec.off)
		le.PutUint64(b[at+32:], sec.size)
		if sec.typ != elf.SHT_NOBITS && sec.fill != 0 {
			for j := sec.off; j < sec.off+sec.size && j < s.size; j++ {
				b[j] = sec.fill
			}
		}
	}
	// The PVH note: namesz 4, descsz 8, type XEN_ELFNOTE_PHYS32_ENTRY.
	le.PutUint32(b[0xf60:], 4)
	le.PutUint32(b[0xf64:], 8)
	le.PutUint32(b[0xf68:], 18)
	copy(b[0xf6c:], "Xen\x00")
	le.PutUint64(b[0xf70:], s.pvhEntry)
	if s.edit != nil {
		s.edit(b)
	}
	return b
}

func TestSyntheticImageParses(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(defaultSynth().build()))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Progs) != 2 || len(f.Sections) != 5 || f.Entry != 0x10081a60 {
		t.Fatalf("synthetic ELF reads back as %d progs, %d sections, entry %#x", len(f.Progs), len(f.Sections), f.Entry)
	}
}

// checkMB1 checks a Multiboot header at off (Multiboot 0.6.96, 3.1.1).
func checkMB1(t *testing.T, b []byte, off int) {
	t.Helper()
	if off%4 != 0 || off+12 > 8192 {
		t.Errorf("Multiboot header at %#x: not 4-aligned within 8 KiB", off)
	}
	magic, flags, sum := le.Uint32(b[off:]), le.Uint32(b[off+4:]), le.Uint32(b[off+8:])
	if magic != 0x1BADB002 || flags != 3 || magic+flags+sum != 0 {
		t.Errorf("Multiboot header at %#x: magic %#x flags %#x checksum %#x", off, magic, flags, sum)
	}
}

// mb2Tag is a decoded Multiboot2 header tag.
type mb2Tag struct {
	typ, flags uint16
	payload    []uint32
}

// checkMB2 checks a Multiboot2 header at off (Multiboot2 1.0, 3.1) and
// returns its tags.
func checkMB2(t *testing.T, b []byte, off int) []mb2Tag {
	t.Helper()
	if off%8 != 0 || off+16 > 32768 {
		t.Errorf("Multiboot2 header at %#x: not 8-aligned within 32 KiB", off)
	}
	magic, arch, length, sum := le.Uint32(b[off:]), le.Uint32(b[off+4:]), le.Uint32(b[off+8:]), le.Uint32(b[off+12:])
	if magic != 0xE85250D6 || arch != 0 || magic+arch+length+sum != 0 {
		t.Fatalf("Multiboot2 header at %#x: magic %#x arch %d length %d checksum %#x", off, magic, arch, length, sum)
	}
	var tags []mb2Tag
	for at := off + 16; at < off+int(length); {
		typ, flags, size := le.Uint16(b[at:]), le.Uint16(b[at+2:]), le.Uint32(b[at+4:])
		if size < 8 || at+int(size) > off+int(length) {
			t.Fatalf("tag at %#x has size %d", at, size)
		}
		tag := mb2Tag{typ: typ, flags: flags}
		for p := at + 8; p+4 <= at+int(size); p += 4 {
			tag.payload = append(tag.payload, le.Uint32(b[p:]))
		}
		tags = append(tags, tag)
		at += (int(size) + 7) &^ 7
		if typ == 0 {
			if at != off+int(length) {
				t.Errorf("end tag ends at %#x, header_length says %#x", at, off+int(length))
			}
			break
		}
	}
	return tags
}

func TestHeaderContents(t *testing.T) {
	b := mb1Header()
	if len(b) != 12 {
		t.Fatalf("Multiboot header is %d bytes", len(b))
	}
	checkMB1(t, b, 0)

	h := mb2Header()
	if len(h)%8 != 0 || int(le.Uint32(h[8:])) != len(h) {
		t.Fatalf("Multiboot2 header of %d bytes says header_length %d", len(h), le.Uint32(h[8:]))
	}
	got := checkMB2(t, h, 0)
	want := []mb2Tag{
		{1, 0, []uint32{6}},               // required: memory map
		{1, 1, []uint32{1, 2, 3, 15, 14}}, // optional: cmdline, loader name, modules, ACPI new and old
		{6, 0, nil},                       // modules page-aligned
		{0, 0, nil},                       // end
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Multiboot2 tags = %+v, want %+v", got, want)
	}
}

// changedRanges lists the offsets where a and b differ.
func changed(a, b []byte) []int {
	var d []int
	for i := range a {
		if a[i] != b[i] {
			d = append(d, i)
		}
	}
	return d
}

func onlyWithin(t *testing.T, diff []int, spans ...[2]int) {
	t.Helper()
	for _, i := range diff {
		ok := false
		for _, s := range spans {
			ok = ok || i >= s[0] && i < s[1]
		}
		if !ok {
			t.Errorf("byte at %#x changed outside the headers %x", i, spans)
		}
	}
}

func TestPatchSynthetic(t *testing.T) {
	orig := defaultSynth().build()
	saved := append([]byte(nil), orig...)

	both, err := Patch(orig, Multiboot1|Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, saved) {
		t.Fatal("Patch modified its input")
	}
	// Section headers end at 0xb0 + 5*64 = 0x1f0: the first free bytes.
	mb1, mb2 := findMultiboot1(both), findMultiboot2(both)
	if mb1 != 0x1f0 || mb2 != 0x200 {
		t.Errorf("headers at %#x and %#x, want 0x1f0 and 0x200", mb1, mb2)
	}
	checkMB1(t, both, mb1)
	checkMB2(t, both, mb2)
	onlyWithin(t, changed(orig, both), [2]int{mb1, mb1 + 12}, [2]int{mb2, mb2 + len(mb2Header())})

	// The ELF reads back the same.
	f0, _ := elf.NewFile(bytes.NewReader(orig))
	f1, err := elf.NewFile(bytes.NewReader(both))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f0.Progs[0].ProgHeader, f1.Progs[0].ProgHeader) || f0.Entry != f1.Entry || len(f0.Sections) != len(f1.Sections) {
		t.Error("program headers, entry or sections changed")
	}

	// Idempotent.
	again, err := Patch(both, Multiboot1|Multiboot2)
	if !errors.Is(err, ErrPresent) || !bytes.Equal(again, both) {
		t.Errorf("second run: err %v, unchanged %v", err, bytes.Equal(again, both))
	}
	if _, err := Patch(both, Multiboot2); !errors.Is(err, ErrPresent) {
		t.Errorf("Multiboot2 asked for on an image with both: %v", err)
	}
}

func TestPatchMultiboot2ThenMultiboot1(t *testing.T) {
	orig := defaultSynth().build()
	mb2only, err := Patch(orig, Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	if findMultiboot1(mb2only) != -1 || findMultiboot2(mb2only) != 0x1f0 {
		t.Fatalf("Multiboot2 only: headers at %d and %#x", findMultiboot1(mb2only), findMultiboot2(mb2only))
	}
	onlyWithin(t, changed(orig, mb2only), [2]int{0x1f0, 0x1f0 + len(mb2Header())})

	both, err := Patch(mb2only, Multiboot1|Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	// The Multiboot2 header stays; the new one goes after it.
	if findMultiboot2(both) != 0x1f0 || findMultiboot1(both) != 0x1f0+len(mb2Header()) {
		t.Errorf("headers at %#x and %#x", findMultiboot1(both), findMultiboot2(both))
	}
	onlyWithin(t, changed(mb2only, both), [2]int{0x240, 0x24c})
}

func TestPatchRefuses(t *testing.T) {
	fill := func(from, to int, c byte) func([]byte) {
		return func(b []byte) {
			for i := from; i < to; i++ {
				b[i] = c
			}
		}
	}
	tests := []struct {
		name  string
		mod   func(s *synth)
		raw   []byte
		want  Headers
		parts []string
	}{
		{name: "not ELF", raw: []byte("#!/bin/sh\necho hello\n" + strings.Repeat(" ", 64)), parts: []string{"not an ELF file"}},
		{name: "truncated", raw: []byte("\x7fELF\x02\x01\x01"), parts: []string{"not an ELF file"}},
		{name: "ELF32", mod: func(s *synth) { s.class = byte(elf.ELFCLASS32) }, parts: []string{"not a little-endian ELF64 file", "ELFCLASS32"}},
		{name: "big-endian", mod: func(s *synth) { s.data = byte(elf.ELFDATA2MSB) }, parts: []string{"ELFDATA2MSB"}},
		{name: "arm64", mod: func(s *synth) { s.machine = elf.EM_AARCH64 }, parts: []string{"ELF machine is EM_AARCH64, not x86-64"}},
		{name: "shared object", mod: func(s *synth) { s.typ = elf.ET_DYN }, parts: []string{"ELF type is ET_DYN, not an executable"}},
		{name: "entry above 4 GiB", mod: func(s *synth) { s.entry, s.pvhEntry = 0x1_0000_1000, 0x1_0000_1000 }, parts: []string{"ELF entry 0x100001000 is above 4 GiB"}},
		{name: "entry differs from PVH entry", mod: func(s *synth) { s.pvhEntry = 0x10081000 }, parts: []string{"ELF entry 0x10081a60 differs from the PVH entry 0x10081000"}},
		{name: "segment above 4 GiB", mod: func(s *synth) { s.loadMemsz = 0xf000_0000 }, parts: []string{"PT_LOAD segment at physical 0x1000f000 of 0xf0000000 bytes reaches above 4 GiB"}},
		{name: "no zero run", mod: func(s *synth) { s.edit = fill(0x1f0, 0xf60, 0xff) }, parts: []string{"no run of 12 zero bytes, 4-byte aligned, in the first 8192 bytes", "Multiboot header"}},
		{name: "no zero run for Multiboot2", mod: func(s *synth) { s.edit = fill(0x1f0, 0xf60, 0xff) }, want: Multiboot2,
			parts: []string{"no run of 80 zero bytes, 8-byte aligned, in the first 12288 bytes"}},
		{name: "zero run in a section", mod: func(s *synth) {
			s.sections = append(s.sections, synthSection{".zeros", elf.SHT_PROGBITS, 0x1f0, 0xf60 - 0x1f0, 0})
		}, want: Multiboot2, parts: []string{"no run of 80 zero bytes"}},
		{name: "zero run not loaded", mod: func(s *synth) { s.loadOff, s.loadFilesz, s.loadPaddr = 0x1000, 0x2000, 0x10010000 },
			parts: []string{"the 12 zero bytes at file offset 0x1f0, where the Multiboot header (12 bytes) would fit, are not inside any PT_LOAD segment"}},
		{name: "nothing asked for", want: Headers(4), parts: []string{"no header asked for"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.raw
			if b == nil {
				s := defaultSynth()
				if tt.mod != nil {
					tt.mod(&s)
				}
				b = s.build()
			}
			want := tt.want
			if want == 0 {
				want = Multiboot1 | Multiboot2
			}
			out, err := Patch(b, want)
			if err == nil || errors.Is(err, ErrPresent) {
				t.Fatalf("Patch accepted the image (err %v)", err)
			}
			for _, p := range tt.parts {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not contain %q", err, p)
				}
			}
			if out != nil {
				t.Error("bytes returned with the error")
			}
		})
	}
}

// Zeros only past the Multiboot window: Multiboot2 fits, Multiboot cannot.
func TestPatchWindows(t *testing.T) {
	s := defaultSynth()
	s.size, s.loadFilesz = 0x4000, 0x4000
	s.sections[2].size = 0x1100 // .text 0x1000-0x2100, zeros after it
	s.edit = func(b []byte) {
		for i := 0x1f0; i < 0xf60; i++ {
			b[i] = 0xff
		}
	}
	img := s.build()
	out, err := Patch(img, Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	if got := findMultiboot2(out); got != 0x2100 {
		t.Errorf("Multiboot2 header at %#x, want 0x2100", got)
	}
	_, err = Patch(img, Multiboot1|Multiboot2)
	if err == nil || !strings.Contains(err.Error(), "in the first 8192 bytes") {
		t.Errorf("Multiboot placed past 8 KiB: %v", err)
	}
}
