package loader

import (
	"bytes"
	"encoding/binary"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

func mb1Header(flags uint32, aout ...uint32) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, 0x1badb002)
	b = le.AppendUint32(b, flags)
	b = le.AppendUint32(b, -(0x1badb002 + flags))
	for _, v := range aout {
		b = le.AppendUint32(b, v)
	}
	return b
}

// mb2Tag encodes a Multiboot2 header tag, padded to 8 bytes.
func mb2Tag(typ, flags uint16, payload ...uint32) []byte {
	le := binary.LittleEndian
	b := le.AppendUint16(nil, typ)
	b = le.AppendUint16(b, flags)
	b = le.AppendUint32(b, uint32(8+4*len(payload)))
	for _, p := range payload {
		b = le.AppendUint32(b, p)
	}
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func mb2Header(tags ...[]byte) []byte {
	le := binary.LittleEndian
	var body []byte
	for _, t := range tags {
		body = append(body, t...)
	}
	body = append(body, mb2Tag(0, 0)...)
	length := uint32(16 + len(body))
	b := le.AppendUint32(nil, 0xe85250d6)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, length)
	b = le.AppendUint32(b, -(0xe85250d6 + length))
	return append(b, body...)
}

// mbKernel is a two-segment ELF kernel with hdr at the start of its text:
// text at 1 MiB, data with a bss at 2 MiB.
func mbKernel(class int, hdr []byte) ([]byte, []byte, []byte) {
	text := append(append([]byte(nil), hdr...), pattern(0x3000, 4)...)
	data := pattern(0x1234, 5)
	f := makeELF(class, 0x100000+uint64(len(hdr)), []elfSeg{
		{paddr: 0x100000, data: text},
		{paddr: 0x200000, data: data, memsz: 0x10000},
	})
	return f, text, data
}

// checkProtectedState checks the Multiboot/PVH machine state (Multiboot
// 3.2, Multiboot2 3.3, pvh.pandoc): 32-bit protected mode, flat segments,
// paging off, interrupts off.
func checkProtectedState(t *testing.T, g Guest, mem *sparseRAM, st BootState, rip uint64) {
	t.Helper()
	if st.Mode != ModeProtected || st.RIP != rip {
		t.Errorf("mode %v RIP %#x, want protected at %#x", st.Mode, st.RIP, rip)
	}
	if st.RFLAGS != 2 {
		t.Errorf("RFLAGS %#x, want 2 (IF, VM clear)", st.RFLAGS)
	}
	if st.Control.CR0&1 == 0 || st.Control.CR0&(1<<31) != 0 || st.Control.CR4 != 0 || st.Control.EFER != 0 || st.Control.CR3 != 0 {
		t.Errorf("control %+v, want PE set, paging off, CR4/EFER 0", st.Control)
	}
	if st.Segments[vcpu.CS] != (vcpu.Segment{Selector: 0x10, Limit: 0xffffffff, Attributes: 0xc9b}) {
		t.Errorf("CS %+v, want flat 32-bit code", st.Segments[vcpu.CS])
	}
	for _, r := range []vcpu.SegmentRegister{vcpu.DS, vcpu.ES, vcpu.SS, vcpu.FS, vcpu.GS} {
		if st.Segments[r] != (vcpu.Segment{Selector: 0x18, Limit: 0xffffffff, Attributes: 0xc93}) {
			t.Errorf("segment %d %+v, want flat data", r, st.Segments[r])
		}
	}
	gdt := mem.read(t, st.GDTR.Base, int(st.GDTR.Limit)+1)
	if d := binary.LittleEndian.Uint64(gdt[0x10:]); d != 0x00cf9b000000ffff {
		t.Errorf("GDT 0x10 = %#016x, want flat 32-bit code", d)
	}
	if d := binary.LittleEndian.Uint64(gdt[0x20:]); d != 0x00008b0000000067 {
		t.Errorf("GDT 0x20 = %#016x, want a busy TSS, base 0 limit 0x67", d)
	}
	if st.TR != (vcpu.Segment{Selector: 0x20, Limit: 0x67, Attributes: 0x8b}) {
		t.Errorf("TR %+v, want the 32-bit TSS of pvh.pandoc", st.TR)
	}
}

func TestLoadMultiboot(t *testing.T) {
	for _, class := range []int{32, 64} {
		g, mem := newGuest(t, 128*platform.MiB)
		f, text, data := mbKernel(class, mb1Header(0x3))
		// Dirty the bss first: the loader must zero it.
		mem.fill(t, platform.Region{Start: 0x201234, End: 0x210000}, 0xee)
		mods := []Module{{Name: "a", Data: pattern(5000, 8), Cmdline: "first arg"}, {Name: "b", Data: pattern(10, 9), Cmdline: "second"}}
		res, err := LoadMultiboot(g, f, Options{Cmdline: "kernel cmdline", Modules: mods})
		if err != nil {
			t.Fatalf("ELF%d: %v", class, err)
		}
		if !bytes.Equal(mem.read(t, 0x100000, len(text)), text) || !bytes.Equal(mem.read(t, 0x200000, len(data)), data) {
			t.Errorf("ELF%d: segments not loaded at their physical addresses", class)
		}
		if !allZero(mem.read(t, 0x201234, 0x10000-0x1234)) {
			t.Errorf("ELF%d: bss not zeroed", class)
		}
		checkProtectedState(t, g, mem, res.State, 0x100000+12)
		st := res.State
		if st.GPR[vcpu.RAX] != 0x2badb002 || st.GPR[vcpu.RBX] != res.Info {
			t.Errorf("EAX %#x EBX %#x, want the magic and %#x", st.GPR[vcpu.RAX], st.GPR[vcpu.RBX], res.Info)
		}

		info := mem.read(t, res.Info, 116)
		le := binary.LittleEndian
		flags := le.Uint32(info)
		if flags != 1|1<<2|1<<3|1<<6|1<<9 {
			t.Errorf("flags %#x, want mem, cmdline, mods, mmap, loader name", flags)
		}
		if lo, hi := le.Uint32(info[4:]), le.Uint32(info[8:]); lo != 512 || hi != (128<<10)-1024 {
			t.Errorf("mem_lower %d mem_upper %d, want 512 and %d", lo, hi, (128<<10)-1024)
		}
		if s := mem.cstring(t, uint64(le.Uint32(info[16:]))); s != "kernel cmdline" {
			t.Errorf("cmdline %q", s)
		}
		if s := mem.cstring(t, uint64(le.Uint32(info[64:]))); s != "tamavisor" {
			t.Errorf("loader name %q", s)
		}
		if n := le.Uint32(info[20:]); n != 2 {
			t.Fatalf("mods_count %d", n)
		}
		modsAddr := uint64(le.Uint32(info[24:]))
		prevEnd := uint64(0x210000) // the kernel's end, bss included
		for i, m := range mods {
			e := mem.read(t, modsAddr+uint64(16*i), 16)
			start, end := uint64(le.Uint32(e)), uint64(le.Uint32(e[4:]))
			if start%4096 != 0 || end-start != uint64(len(m.Data)) || start < prevEnd {
				t.Errorf("module %d at %#x-%#x, want page-aligned, %d bytes, above %#x", i, start, end, len(m.Data), prevEnd)
			}
			if !bytes.Equal(mem.read(t, start, len(m.Data)), m.Data) {
				t.Errorf("module %d contents differ", i)
			}
			if s := mem.cstring(t, uint64(le.Uint32(e[8:]))); s != m.Cmdline {
				t.Errorf("module %d string %q", i, s)
			}
			if res.Modules[i] != (platform.Region{Start: start, End: end}) {
				t.Errorf("Result.Modules[%d] = %v", i, res.Modules[i])
			}
			prevEnd = end
		}
		// The memory map: size 20 entries matching the layout.
		mm := g.Layout.MemoryMap()
		if n := le.Uint32(info[44:]); n != uint32(24*len(mm)) {
			t.Errorf("mmap_length %d, want %d", n, 24*len(mm))
		}
		mmAddr := uint64(le.Uint32(info[48:]))
		for i, r := range mm {
			e := mem.read(t, mmAddr+uint64(24*i), 24)
			if le.Uint32(e) != 20 || le.Uint64(e[4:]) != r.Start || le.Uint64(e[12:]) != r.Size() || le.Uint32(e[20:]) != uint32(r.Type) {
				t.Errorf("mmap entry %d % x, want %v", i, e, r)
			}
		}
		// The structures live in the loader area, which the map reserves.
		for _, a := range []uint64{res.Info, modsAddr, mmAddr} {
			if !g.Layout.LoaderArea.Contains(platform.Region{Start: a, End: a + 1}) {
				t.Errorf("boot information at %#x is outside the loader area", a)
			}
		}
	}
}

func TestLoadMultibootAout(t *testing.T) {
	g, mem := newGuest(t, 64*platform.MiB)
	// A flat image: 0x40 bytes of code, the header at file offset 0x40,
	// loaded at 0x300000 so the header is at 0x300040; 0x1000 bytes of
	// file, then bss to 0x302000.
	f := pattern(0x1000, 3)
	hdr := mb1Header(1<<16|1, 0x300040, 0x300000, 0x301000, 0x302000, 0x300010)
	copy(f[0x40:], hdr)
	mem.fill(t, platform.Region{Start: 0x301000, End: 0x302000}, 0xee)
	res, err := LoadMultiboot(g, f, Options{KernelName: "flat.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem.read(t, 0x300000, len(f)), f) || !allZero(mem.read(t, 0x301000, 0x1000)) {
		t.Error("a.out image or its bss wrong in memory")
	}
	if res.State.RIP != 0x300010 || res.Kernel != (platform.Region{Start: 0x300000, End: 0x302000}) {
		t.Errorf("entry %#x kernel %v", res.State.RIP, res.Kernel)
	}

	bad := func(name string, hdr []byte, frags ...string) {
		t.Helper()
		f := pattern(0x1000, 3)
		copy(f[0x40:], hdr)
		g, _ := newGuest(t, 64*platform.MiB)
		_, err := LoadMultiboot(g, f, Options{KernelName: "flat.bin"})
		t.Run(name, func(t *testing.T) { wantErr(t, err, nil, append([]string{`multiboot "flat.bin"`}, frags...)...) })
	}
	bad("load above header", mb1Header(1<<16, 0x300040, 0x300080, 0, 0, 0x300080), "load_addr 0x300080 is above header_addr 0x300040")
	bad("before file", mb1Header(1<<16, 0x300040, 0x200000, 0, 0, 0x300080), "reaches before the start of the file")
	bad("load end past file", mb1Header(1<<16, 0x300040, 0x300000, 0x400000, 0, 0x300010), "more than the 4096 the file has")
	bad("bss below end", mb1Header(1<<16, 0x300040, 0x300000, 0x301000, 0x300800, 0x300010), "bss_end_addr 0x300800 is below")
	bad("entry outside", mb1Header(1<<16, 0x300040, 0x300000, 0, 0, 0x500000), "entry_addr 0x500000 is outside")
	bad("over loader area", mb1Header(1<<16, 0x80040, 0x80000, 0, 0, 0x80010), "the loader area at 0x80000-0x9ffff")
	bad("over ACPI", mb1Header(1<<16, 0xe0040, 0xe0000, 0, 0, 0xe0010), "the ACPI tables")
	bad("past RAM", mb1Header(1<<16, 0x4000040, 0x4000000, 0, 0, 0x4000010), "no RAM")
	bad("video", mb1Header(1<<2|1<<16, 0x300040, 0x300000, 0, 0, 0x300010), "video mode")
	bad("unknown requirement", mb1Header(1<<5), "features 0x20")

	// The header's address fields would lie past the end of the file.
	short := append(pattern(0x44, 1), mb1Header(1<<16)...)
	_, err = LoadMultiboot(g, short, Options{})
	wantErr(t, err, ErrMalformed, "file ends before its address fields")
}

func TestLoadMultibootRefuses(t *testing.T) {
	f, _, _ := mbKernel(32, mb1Header(0))
	g, _ := newGuest(t, 64*platform.MiB)
	_, err := LoadMultiboot(g, []byte("plain text, no header"), Options{})
	wantErr(t, err, ErrMalformed, "no Multiboot header")
	_, err = LoadMultiboot(g, f, Options{Modules: make([]Module, MaxModules+1)})
	wantErr(t, err, ErrBadOption, "65 modules")
	g, _ = newGuest(t, 64*platform.MiB)
	_, err = LoadMultiboot(g, f, Options{Modules: []Module{{Name: "huge", Data: make([]byte, 70<<20)}}})
	wantErr(t, err, ErrNoRoom, `module 0 "huge"`, "70 MiB")
	g, _ = newGuest(t, 64*platform.MiB)
	_, err = LoadMultiboot(g, f, Options{Modules: []Module{{Name: "x", Cmdline: "a\x00"}}})
	wantErr(t, err, ErrBadOption, "NUL byte")

	// The header is there but the ELF is not loadable.
	broken := append([]byte(nil), f...)
	binary.LittleEndian.PutUint16(broken[16:], 1) // ET_REL
	g, _ = newGuest(t, 64*platform.MiB)
	_, err = LoadMultiboot(g, broken, Options{})
	wantErr(t, err, ErrMalformed, "not a loadable ELF", "ELF type 1")

	// An entry point outside the segments.
	e := makeELF(32, 0x900000, []elfSeg{{paddr: 0x100000, data: append(mb1Header(0), pattern(64, 1)...)}})
	g, _ = newGuest(t, 64*platform.MiB)
	_, err = LoadMultiboot(g, e, Options{})
	wantErr(t, err, ErrMalformed, "entry point 0x900000 is outside every loaded segment")

	// A segment over the loader area.
	e = makeELF(32, 0x90000, []elfSeg{{paddr: 0x90000, data: append(mb1Header(0), pattern(64, 1)...)}})
	_, err = LoadMultiboot(g, e, Options{})
	wantErr(t, err, ErrNoRoom, "program header 0 at 0x90000-0x9004b does not fit", "the loader area")
}

// mb2Info walks Multiboot2 boot information (Multiboot2 3.6), independently
// of the builder, and returns each tag's payload by type.
func mb2Info(t *testing.T, b []byte) map[uint32][][]byte {
	t.Helper()
	le := binary.LittleEndian
	total := int(le.Uint32(b))
	if total > len(b) || total%8 != 0 {
		t.Fatalf("total_size %d", total)
	}
	tags := map[uint32][][]byte{}
	for off := 8; off < total; {
		typ, size := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if size < 8 || off+size > total {
			t.Fatalf("tag %d at %d has size %d", typ, off, size)
		}
		tags[typ] = append(tags[typ], b[off+8:off+size])
		if typ == 0 {
			if off+size != total {
				t.Errorf("end tag at %d, total %d", off, total)
			}
			return tags
		}
		off += (size + 7) &^ 7
	}
	t.Fatal("no end tag")
	return nil
}

func TestLoadMultiboot2(t *testing.T) {
	hdr := mb2Header(mb2Tag(1, 0, 6, 1, 15), mb2Tag(1, 1, 14, 21), mb2Tag(6, 0), mb2Tag(5, 1, 1024, 768, 32))
	for _, class := range []int{32, 64} {
		g, mem := newGuest(t, 96*platform.MiB)
		f, _, _ := mbKernel(class, hdr)
		res, err := LoadMultiboot2(g, f, Options{Cmdline: "root=/dev/ram0", Initrd: pattern(9000, 1), InitrdName: "initrd.cpio",
			Modules: []Module{{Name: "m", Data: pattern(100, 2), Cmdline: "mod arg"}}})
		if err != nil {
			t.Fatalf("ELF%d: %v", class, err)
		}
		checkProtectedState(t, g, mem, res.State, 0x100000+uint64(len(hdr)))
		if res.State.GPR[vcpu.RAX] != 0x36d76289 || res.State.GPR[vcpu.RBX] != res.Info || res.Info%8 != 0 {
			t.Errorf("EAX %#x EBX %#x info %#x", res.State.GPR[vcpu.RAX], res.State.GPR[vcpu.RBX], res.Info)
		}
		total := mem.u32(t, res.Info)
		tags := mb2Info(t, mem.read(t, res.Info, int(total)))
		le := binary.LittleEndian
		str := func(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }
		if s := str(tags[1][0]); s != "root=/dev/ram0" || mem.cstring(t, res.Cmdline) != s {
			t.Errorf("cmdline tag %q", s)
		}
		if s := str(tags[2][0]); s != "tamavisor" {
			t.Errorf("loader name %q", s)
		}
		if len(tags[3]) != 2 {
			t.Fatalf("%d module tags", len(tags[3]))
		}
		for i, want := range []struct {
			data []byte
			str  string
		}{{pattern(9000, 1), "initrd.cpio"}, {pattern(100, 2), "mod arg"}} {
			m := tags[3][i]
			start, end := uint64(le.Uint32(m)), uint64(le.Uint32(m[4:]))
			if start%4096 != 0 || end-start != uint64(len(want.data)) || !bytes.Equal(mem.read(t, start, len(want.data)), want.data) || str(m[8:]) != want.str {
				t.Errorf("module tag %d: %#x-%#x %q", i, start, end, str(m[8:]))
			}
		}
		if bm := tags[4][0]; le.Uint32(bm) != 512 || le.Uint32(bm[4:]) != 95*1024 {
			t.Errorf("basic meminfo % x", bm)
		}
		mm := tags[6][0]
		if le.Uint32(mm) != 24 || le.Uint32(mm[4:]) != 0 {
			t.Errorf("mmap entry_size %d version %d", le.Uint32(mm), le.Uint32(mm[4:]))
		}
		want := g.Layout.MemoryMap()
		if (len(mm)-8)/24 != len(want) {
			t.Fatalf("%d mmap entries, want %d", (len(mm)-8)/24, len(want))
		}
		for i, r := range want {
			e := mm[8+24*i:]
			if le.Uint64(e) != r.Start || le.Uint64(e[8:]) != r.Size() || le.Uint32(e[16:]) != uint32(r.Type) {
				t.Errorf("mmap entry %d % x, want %v", i, e[:24], r)
			}
		}
		// The RSDP copies are the guest's RSDP, which validates.
		rsdp := mem.read(t, platform.RSDPAddress, 36)
		if !bytes.Equal(tags[15][0][:36], rsdp) || !bytes.Equal(tags[14][0][:20], rsdp[:20]) {
			t.Error("ACPI tags are not copies of the guest's RSDP")
		}
		if r, err := acpi.DecodeRSDP(tags[15][0]); err != nil || r.XSDT == 0 {
			t.Errorf("the new RSDP copy does not decode: %v", err)
		}
	}
}

func TestLoadMultiboot2Aout(t *testing.T) {
	g, mem := newGuest(t, 64*platform.MiB)
	f := pattern(0x2000, 6)
	hdr := mb2Header(mb2Tag(2, 0, 0x400100, 0x400000, 0x401800, 0x403000), mb2Tag(3, 0, 0x400400))
	copy(f[0x100:], hdr)
	res, err := LoadMultiboot2(g, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.State.RIP != 0x400400 || res.Kernel != (platform.Region{Start: 0x400000, End: 0x403000}) || !bytes.Equal(mem.read(t, 0x400000, 0x1800), f[:0x1800]) {
		t.Errorf("a.out: RIP %#x kernel %v", res.State.RIP, res.Kernel)
	}
	// load_addr -1: from the file's start.
	g, mem = newGuest(t, 64*platform.MiB)
	hdr = mb2Header(mb2Tag(2, 0, 0x400100, 0xffffffff, 0, 0), mb2Tag(3, 0, 0x400400))
	copy(f[0x100:], hdr)
	if res, err = LoadMultiboot2(g, f, Options{}); err != nil || res.Kernel != (platform.Region{Start: 0x400000, End: 0x402000}) || !bytes.Equal(mem.read(t, 0x400000, len(f)), f) {
		t.Errorf("load_addr -1: %v %v", res, err)
	}
	// No entry tag.
	copy(f[0x100:], mb2Header(mb2Tag(2, 0, 0x400100, 0x400000, 0, 0)))
	g, _ = newGuest(t, 64*platform.MiB)
	_, err = LoadMultiboot2(g, f, Options{})
	wantErr(t, err, ErrMalformed, "no entry address tag")
}

func TestLoadMultiboot2Refuses(t *testing.T) {
	try := func(name string, hdr []byte, kind error, frags ...string) {
		t.Helper()
		f, _, _ := mbKernel(64, hdr)
		g, _ := newGuest(t, 64*platform.MiB)
		_, err := LoadMultiboot2(g, f, Options{KernelName: "k"})
		t.Run(name, func(t *testing.T) { wantErr(t, err, kind, append([]string{`multiboot2 "k"`}, frags...)...) })
	}
	try("required info", mb2Header(mb2Tag(1, 0, 6, 8)), ErrUnsupported, "requires boot information tag type 8")
	try("framebuffer", mb2Header(mb2Tag(5, 0, 1024, 768, 32)), ErrUnsupported, "tag type 5 (framebuffer")
	try("unknown tag", mb2Header(mb2Tag(42, 0)), ErrUnsupported, "tag type 42 (unknown)")
	try("console", mb2Header(mb2Tag(4, 0, 1)), ErrUnsupported, "console")
	hdr := mb2Header(mb2Tag(1, 0, 6))
	binary.LittleEndian.PutUint32(hdr[16+4:], 0x100) // past header_length
	try("tag size", hdr, ErrMalformed, "has size 256")
	hdr = mb2Header(mb2Tag(6, 0))
	binary.LittleEndian.PutUint32(hdr[16+4:], 3) // module align tag of size 3
	try("tiny tag", hdr, ErrMalformed, "has size 3")
	hdr = mb2Header()
	binary.LittleEndian.PutUint32(hdr[4:], 4) // MIPS
	binary.LittleEndian.PutUint32(hdr[12:], -(0xe85250d6 + 4 + binary.LittleEndian.Uint32(hdr[8:])))
	try("arch", hdr, ErrUnsupported, "architecture 4")
	hdr = mb2Header(mb2Tag(6, 0))
	hdr = hdr[:len(hdr)-8] // no end tag
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(hdr)))
	binary.LittleEndian.PutUint32(hdr[12:], -(0xe85250d6 + uint32(len(hdr))))
	try("no end", hdr, ErrMalformed, "without an end tag")

	// The image requires the RSDP, and the guest has no ACPI.
	f, _, _ := mbKernel(64, mb2Header(mb2Tag(1, 0, 15)))
	g, _ := newGuest(t, 64*platform.MiB)
	g.RSDP = 0
	_, err := LoadMultiboot2(g, f, Options{})
	wantErr(t, err, ErrUnsupported, "ACPI")
	// The RSDP address given holds no RSDP.
	l, _ := platform.NewLayout(64*platform.MiB, 1)
	g = Guest{Memory: newSparseRAM(l), Layout: l, RSDP: platform.RSDPAddress}
	_, err = LoadMultiboot2(g, f, Options{})
	wantErr(t, err, ErrBadOption, "RSDP", "build the ACPI tables first")
}

func TestLoadPVH(t *testing.T) {
	for _, class := range []int{32, 64} {
		desc := []byte{0x40, 0x00, 0x10, 0x00} // entry 0x100040
		if class == 64 {
			desc = append(desc, 0, 0, 0, 0)
		}
		text := pattern(0x5000, 1)
		f := makeELF(class, 0xdead, []elfSeg{
			{paddr: 0x100000, data: text},
			{typ: ptNote, data: elfNoteBytes("Xen", 18, desc)},
		})
		if Detect(f) != FormatPVH {
			t.Errorf("ELF%d with a PVH note detected as %v", class, Detect(f))
		}
		g, mem := newGuest(t, 64*platform.MiB)
		res, err := Load(g, f, Options{Cmdline: "console=hvc0", Initrd: pattern(4000, 2), InitrdName: "rd",
			Modules: []Module{{Name: "two", Data: pattern(3, 3)}}})
		if err != nil {
			t.Fatalf("ELF%d: %v", class, err)
		}
		checkProtectedState(t, g, mem, res.State, 0x100040)
		if res.Format != FormatPVH || res.State.GPR[vcpu.RBX] != res.Info || res.State.GPR[vcpu.RAX] != 0 {
			t.Errorf("format %v EBX %#x info %#x", res.Format, res.State.GPR[vcpu.RBX], res.Info)
		}
		si := mem.read(t, res.Info, 56)
		le := binary.LittleEndian
		if le.Uint32(si) != 0x336ec578 || le.Uint32(si[4:]) != 1 || le.Uint32(si[8:]) != 0 {
			t.Errorf("start info magic/version/flags % x", si[:12])
		}
		if le.Uint64(si[32:]) != platform.RSDPAddress {
			t.Errorf("rsdp_paddr %#x", le.Uint64(si[32:]))
		}
		if s := mem.cstring(t, le.Uint64(si[24:])); s != "console=hvc0" {
			t.Errorf("cmdline %q", s)
		}
		if n := le.Uint32(si[12:]); n != 2 {
			t.Fatalf("nr_modules %d", n)
		}
		list := le.Uint64(si[16:])
		for i, want := range []struct {
			data []byte
			cmd  string
		}{{pattern(4000, 2), "rd"}, {pattern(3, 3), ""}} {
			e := mem.read(t, list+uint64(32*i), 32)
			paddr, size, cmd := le.Uint64(e), le.Uint64(e[8:]), le.Uint64(e[16:])
			if size != uint64(len(want.data)) || !bytes.Equal(mem.read(t, paddr, int(size)), want.data) || paddr < 0x105000 {
				t.Errorf("module %d at %#x size %d", i, paddr, size)
			}
			if want.cmd == "" && cmd != 0 || want.cmd != "" && mem.cstring(t, cmd) != want.cmd {
				t.Errorf("module %d cmdline at %#x", i, cmd)
			}
		}
		mm := g.Layout.MemoryMap()
		if n := le.Uint32(si[48:]); n != uint32(len(mm)) {
			t.Fatalf("memmap_entries %d", n)
		}
		mmAddr := le.Uint64(si[40:])
		for i, r := range mm {
			e := mem.read(t, mmAddr+uint64(24*i), 24)
			if le.Uint64(e) != r.Start || le.Uint64(e[8:]) != r.Size() || le.Uint32(e[16:]) != uint32(r.Type) || le.Uint32(e[20:]) != 0 {
				t.Errorf("memmap entry %d % x, want %v", i, e, r)
			}
		}
	}

	// Refusals.
	g, _ := newGuest(t, 64*platform.MiB)
	noNote := makeELF(64, 0x100000, []elfSeg{{paddr: 0x100000, data: pattern(64, 1)}})
	_, err := LoadPVH(g, noNote, Options{KernelName: "vmlinux"})
	wantErr(t, err, ErrUnsupported, `PVH "vmlinux"`, "no Xen PHYS32_ENTRY note")
	outside := makeELF(64, 0x100000, []elfSeg{{paddr: 0x100000, data: pattern(64, 1)}, {typ: ptNote, data: elfNoteBytes("Xen", 18, []byte{0, 0, 0x20, 0})}})
	_, err = LoadPVH(g, outside, Options{})
	wantErr(t, err, ErrMalformed, "entry point 0x200000 is outside")
	_, err = LoadPVH(g, []byte("nope"), Options{})
	wantErr(t, err, ErrMalformed, "not an ELF")
	high := makeELF(64, 0x100000, []elfSeg{{paddr: 0x1_0000_0000, data: pattern(64, 1)}, {typ: ptNote, data: elfNoteBytes("Xen", 18, []byte{0, 0, 0x10, 0})}})
	g, _ = newGuest(t, 5*platform.GiB)
	_, err = LoadPVH(g, high, Options{})
	wantErr(t, err, ErrNoRoom, "above 0x100000000")
}

func TestDetectAndLoad(t *testing.T) {
	mb1, _, _ := mbKernel(32, mb1Header(0))
	mb2, _, _ := mbKernel(64, mb2Header())
	for _, c := range []struct {
		f    []byte
		want Format
	}{
		{makeBzImage(bzSpec{relocatable: 1}), FormatBzImage},
		{mb1, FormatMultiboot},
		{mb2, FormatMultiboot2},
		{[]byte("nothing"), FormatUnknown},
		{nil, FormatUnknown},
	} {
		if got := Detect(c.f); got != c.want {
			t.Errorf("Detect = %v, want %v", got, c.want)
		}
		g, _ := newGuest(t, 64*platform.MiB)
		res, err := Load(g, c.f, Options{KernelName: "img"})
		if c.want == FormatUnknown {
			wantErr(t, err, ErrUnsupported, `kernel "img"`, "not a bzImage")
			continue
		}
		if err != nil || res.Format != c.want {
			t.Errorf("Load %v: %v, %v", c.want, res, err)
		}
	}
}
