package loader

import (
	"encoding/binary"
	"strings"
	"testing"
)

// elfSeg is one segment of a synthetic ELF.
type elfSeg struct {
	typ          uint32 // 0 means PT_LOAD
	paddr, vaddr uint64 // vaddr 0 means paddr
	data         []byte
	memsz        uint64 // 0 means len(data)
}

// makeELF builds an ELF executable of the class (32 or 64) with the
// segments in order, each segment's bytes 16-aligned in the file after the
// program headers.
func makeELF(class int, entry uint64, segs []elfSeg) []byte {
	le := binary.LittleEndian
	hsize, psize := 52, 32
	if class == 64 {
		hsize, psize = 64, 56
	}
	off := hsize + psize*len(segs)
	offs := make([]int, len(segs))
	for i, s := range segs {
		off = (off + 15) &^ 15
		offs[i] = off
		off += len(s.data)
	}
	f := make([]byte, off)
	copy(f, "\x7fELF")
	f[5], f[6] = 1, 1
	le.PutUint16(f[16:], 2)
	if class == 64 {
		f[4] = 2
		le.PutUint16(f[18:], 62)
		le.PutUint32(f[20:], 1)
		le.PutUint64(f[24:], entry)
		le.PutUint64(f[32:], uint64(hsize))
		le.PutUint16(f[52:], uint16(hsize))
		le.PutUint16(f[54:], uint16(psize))
		le.PutUint16(f[56:], uint16(len(segs)))
	} else {
		f[4] = 1
		le.PutUint16(f[18:], 3)
		le.PutUint32(f[20:], 1)
		le.PutUint32(f[24:], uint32(entry))
		le.PutUint32(f[28:], uint32(hsize))
		le.PutUint16(f[40:], uint16(hsize))
		le.PutUint16(f[42:], uint16(psize))
		le.PutUint16(f[44:], uint16(len(segs)))
	}
	for i, s := range segs {
		typ := s.typ
		if typ == 0 {
			typ = ptLoad
		}
		vaddr := s.vaddr
		if vaddr == 0 {
			vaddr = s.paddr
		}
		memsz := s.memsz
		if memsz == 0 {
			memsz = uint64(len(s.data))
		}
		h := f[hsize+i*psize:]
		le.PutUint32(h[0:], typ)
		if class == 64 {
			le.PutUint32(h[4:], 7)
			le.PutUint64(h[8:], uint64(offs[i]))
			le.PutUint64(h[16:], vaddr)
			le.PutUint64(h[24:], s.paddr)
			le.PutUint64(h[32:], uint64(len(s.data)))
			le.PutUint64(h[40:], memsz)
			le.PutUint64(h[48:], 0x1000)
		} else {
			le.PutUint32(h[4:], uint32(offs[i]))
			le.PutUint32(h[8:], uint32(vaddr))
			le.PutUint32(h[12:], uint32(s.paddr))
			le.PutUint32(h[16:], uint32(len(s.data)))
			le.PutUint32(h[20:], uint32(memsz))
			le.PutUint32(h[24:], 7)
			le.PutUint32(h[28:], 0x1000)
		}
		copy(f[offs[i]:], s.data)
	}
	return f
}

// elfNoteBytes encodes one ELF note.
func elfNoteBytes(name string, typ uint32, desc []byte) []byte {
	le := binary.LittleEndian
	n := append([]byte(name), 0)
	b := le.AppendUint32(nil, uint32(len(n)))
	b = le.AppendUint32(b, uint32(len(desc)))
	b = le.AppendUint32(b, typ)
	b = append(b, n...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseELFRefuses(t *testing.T) {
	good := makeELF(64, 0x100000, []elfSeg{{paddr: 0x100000, data: pattern(0x100, 1)}})
	if _, err := parseELF(good); err != nil {
		t.Fatalf("the good ELF: %v", err)
	}
	le := binary.LittleEndian
	mod := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	for name, c := range map[string]struct {
		f    []byte
		want string
	}{
		"not ELF":     {[]byte("hello world, not an ELF file at all, but long enough to read a header from........"), "no \\x7fELF"},
		"class":       {mod(func(b []byte) { b[4] = 3 }), "class 3"},
		"big endian":  {mod(func(b []byte) { b[5] = 2 }), "little-endian"},
		"type":        {mod(func(b []byte) { le.PutUint16(b[16:], 3) }), "ELF type 3"},
		"machine":     {mod(func(b []byte) { le.PutUint16(b[18:], 40) }), "machine 40"},
		"phentsize":   {mod(func(b []byte) { le.PutUint16(b[54:], 32) }), "e_phentsize 32"},
		"phnum 0":     {mod(func(b []byte) { le.PutUint16(b[56:], 0) }), "e_phnum 0"},
		"phnum many":  {mod(func(b []byte) { le.PutUint16(b[56:], 500) }), "e_phnum 500"},
		"phoff":       {mod(func(b []byte) { le.PutUint64(b[32:], 1<<62) }), "past the end"},
		"seg offset":  {mod(func(b []byte) { le.PutUint64(b[64+8:], 1<<40) }), "p_offset 0x10000000000"},
		"seg filesz":  {mod(func(b []byte) { le.PutUint64(b[64+32:], 1<<20) }), "runs past the end"},
		"memsz small": {mod(func(b []byte) { le.PutUint64(b[64+40:], 0x10) }), "p_memsz 0x10 is smaller"},
		"wraps":       {mod(func(b []byte) { le.PutUint64(b[64+24:], ^uint64(0)-0x10) }), "wraps"},
		"empty":       {mod(func(b []byte) { le.PutUint64(b[64+32:], 0); le.PutUint64(b[64+40:], 0) }), "no PT_LOAD"},
		"truncated":   {good[:60], "shorter than an ELF64 header"},
	} {
		_, err := parseELF(c.f)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	overlap := makeELF(32, 0x100000, []elfSeg{
		{paddr: 0x100000, data: pattern(0x100, 1), memsz: 0x2000},
		{paddr: 0x101000, data: pattern(0x100, 2)},
	})
	if _, err := parseELF(overlap); err == nil || !strings.Contains(err.Error(), "program headers 0 (0x100000-0x101fff) and 1 (0x101000-0x1010ff) overlap") {
		t.Errorf("overlapping segments: %v", err)
	}
}

func TestPVHNote(t *testing.T) {
	for _, c := range []struct {
		desc  []byte
		entry uint64
		ok    bool
		err   string
	}{
		{[]byte{0x00, 0x10, 0x10, 0x00}, 0x101000, true, ""},
		{[]byte{0x80, 0xbd, 0x0e, 0x10, 0, 0, 0, 0}, 0x100ebd80, true, ""},
		{[]byte{1, 2}, 0, false, "2-byte description"},
		{[]byte{0, 0, 0, 0, 1, 0, 0, 0}, 0, false, "above 4 GiB"},
	} {
		notes := append(elfNoteBytes("GNU", 3, pattern(20, 1)), elfNoteBytes("Xen", 18, c.desc)...)
		f := makeELF(64, 0x100000, []elfSeg{{paddr: 0x100000, data: pattern(0x2000, 1)}, {typ: ptNote, data: notes}})
		e, err := parseELF(f)
		if err != nil {
			t.Fatal(err)
		}
		entry, ok, err := e.pvhEntry()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("desc % x: %v, want %q", c.desc, err, c.err)
			}
			continue
		}
		if err != nil || !ok || entry != c.entry {
			t.Errorf("desc % x: entry %#x ok %v err %v, want %#x", c.desc, entry, ok, err, c.entry)
		}
	}
	// A note whose sizes run past its segment is an error, not a read
	// out of bounds; a Xen note of another type is not the entry.
	broken := binary.LittleEndian.AppendUint32(nil, 4)
	broken = binary.LittleEndian.AppendUint32(broken, 1<<20)
	broken = binary.LittleEndian.AppendUint32(broken, 18)
	broken = append(broken, "Xen\x00"...)
	f := makeELF(32, 0x100000, []elfSeg{{paddr: 0x100000, data: pattern(64, 1)}, {typ: ptNote, data: broken}})
	e, _ := parseELF(f)
	if _, _, err := e.pvhEntry(); err == nil || !strings.Contains(err.Error(), "run past its PT_NOTE segment") {
		t.Errorf("broken note: %v", err)
	}
	f = makeELF(32, 0x100000, []elfSeg{{paddr: 0x100000, data: pattern(64, 1)}, {typ: ptNote, data: elfNoteBytes("Xen", 17, []byte{1, 2, 3, 4})}})
	e, _ = parseELF(f)
	if _, ok, err := e.pvhEntry(); ok || err != nil {
		t.Errorf("a Xen note of type 17 was taken for the entry (%v, %v)", ok, err)
	}
}

func TestPhysEntry(t *testing.T) {
	// A kernel linked high, loaded low: the entry moves with its segment.
	f := makeELF(64, 0xffffffff81000100, []elfSeg{{paddr: 0x1000000, vaddr: 0xffffffff81000000, data: pattern(0x1000, 1)}})
	e, err := parseELF(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.physEntry(); got != 0x1000100 {
		t.Errorf("physEntry %#x, want 0x1000100", got)
	}
}
