package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// bzSpec describes a synthetic bzImage. The zero value of each field takes
// the value Debian's 6.1 kernels have.
type bzSpec struct {
	setupSects  uint8
	kernelLen   int
	version     uint16
	loadflags   uint8
	xloadflags  uint16
	relocatable uint8
	alignment   uint32
	pref        uint64
	initSize    uint32
	cmdlineSize uint32
	initrdMax   uint32
	noDefaults  bool
}

// makeBzImage builds a bzImage with a real setup header layout
// (boot.rst): boot sector and setup sectors, then a protected-mode "kernel"
// of a recognizable pattern.
func makeBzImage(s bzSpec) []byte {
	if !s.noDefaults {
		if s.setupSects == 0 {
			s.setupSects = 39
		}
		if s.kernelLen == 0 {
			s.kernelLen = 64 << 10
		}
		if s.version == 0 {
			s.version = 0x020f
		}
		if s.loadflags == 0 {
			s.loadflags = 0x01
		}
		if s.xloadflags == 0 {
			s.xloadflags = 0x7f
		}
		if s.alignment == 0 {
			s.alignment = 0x200000
		}
		if s.pref == 0 {
			s.pref = 0x1000000
		}
		if s.initSize == 0 {
			s.initSize = 8 << 20
		}
		if s.cmdlineSize == 0 {
			s.cmdlineSize = 0x7ff
		}
		if s.initrdMax == 0 {
			s.initrdMax = 0x7fffffff
		}
	}
	setup := (int(s.setupSects) + 1) * 512
	if s.setupSects == 0 {
		setup = 5 * 512
	}
	kernelLen := (s.kernelLen + 15) &^ 15
	f := make([]byte, setup+kernelLen)
	copy(f, pattern(setup, 1))
	copy(f[setup:], pattern(kernelLen, 2))
	le := binary.LittleEndian
	f[0x1f1] = s.setupSects
	le.PutUint32(f[0x1f4:], uint32(kernelLen/16))
	le.PutUint16(f[0x1fe:], 0xaa55)
	f[0x200], f[0x201] = 0xeb, 0x6a // jump over the 2.15 header, to 0x26c
	copy(f[0x202:], "HdrS")
	le.PutUint16(f[0x206:], s.version)
	f[0x210] = 0
	f[0x211] = s.loadflags
	le.PutUint32(f[0x214:], 0x100000)
	le.PutUint32(f[0x218:], 0)
	le.PutUint32(f[0x21c:], 0)
	le.PutUint32(f[0x228:], 0)
	le.PutUint32(f[0x22c:], s.initrdMax)
	le.PutUint32(f[0x230:], s.alignment)
	f[0x234] = s.relocatable
	f[0x235] = 21
	le.PutUint16(f[0x236:], s.xloadflags)
	le.PutUint32(f[0x238:], s.cmdlineSize)
	le.PutUint64(f[0x250:], 0)
	le.PutUint64(f[0x258:], s.pref)
	le.PutUint32(f[0x260:], s.initSize)
	return f
}

func TestLoadLinux(t *testing.T) {
	g, mem := newGuest(t, 256*platform.MiB)
	img := makeBzImage(bzSpec{relocatable: 1})
	initrd := pattern(3<<20+123, 7)
	opts := Options{KernelName: "vmlinuz", Cmdline: "console=ttyS0 earlyprintk=serial", Initrd: initrd}
	res, err := LoadLinux(g, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	setup := 40 * 512
	kernel := img[setup:]

	// The kernel at pref_address, byte for byte.
	if res.Kernel != (platform.Region{Start: 0x1000000, End: 0x1000000 + 8<<20}) {
		t.Errorf("kernel region %v", res.Kernel)
	}
	if got := mem.read(t, 0x1000000, len(kernel)); !bytes.Equal(got, kernel) {
		t.Error("the protected-mode kernel in memory differs from the file's")
	}

	// The initrd: 4 KiB aligned, as high as RAM allows, intact.
	ir := res.Initrd
	if ir.Start%4096 != 0 || ir.Size() != uint64(len(initrd)) || ir.End > 256*platform.MiB || 256*platform.MiB-ir.End >= 4096 {
		t.Errorf("initrd at %v, want it 4 KiB-aligned and ending in the last page of RAM", ir)
	}
	if got := mem.read(t, ir.Start, len(initrd)); !bytes.Equal(got, initrd) {
		t.Error("the initrd in memory differs")
	}

	// boot_params.
	bp := res.Info
	zp := mem.read(t, bp, 4096)
	le := binary.LittleEndian
	if !g.Layout.LoaderArea.Contains(platform.Region{Start: bp, End: bp + 4096}) || bp%4096 != 0 {
		t.Errorf("boot_params at %#x, want a page in the loader area %v", bp, g.Layout.LoaderArea)
	}
	// The setup header is the file's, but for the fields a loader writes.
	written := map[int]bool{}
	for _, f := range []struct{ off, n int }{{0x1fa, 2}, {0x210, 1}, {0x211, 1}, {0x214, 4}, {0x218, 4}, {0x21c, 4}, {0x224, 2}, {0x228, 4}, {0x23c, 4}, {0x250, 8}} {
		for i := 0; i < f.n; i++ {
			written[f.off+i] = true
		}
	}
	for off := 0x1f1; off < 0x26c; off++ {
		if !written[off] && zp[off] != img[off] {
			t.Errorf("boot_params byte %#x = %#x, the file's setup header has %#x", off, zp[off], img[off])
		}
	}
	for off := 0x26c; off < 0x290; off++ {
		if zp[off] != 0 {
			t.Errorf("boot_params byte %#x past the header = %#x, want 0", off, zp[off])
		}
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"type_of_loader", uint64(zp[0x210]), 0xff},
		{"loadflags", uint64(zp[0x211]), 0x81},
		{"code32_start", uint64(le.Uint32(zp[0x214:])), 0x1000000},
		{"ramdisk_image", uint64(le.Uint32(zp[0x218:])), ir.Start},
		{"ramdisk_size", uint64(le.Uint32(zp[0x21c:])), uint64(len(initrd))},
		{"ext_ramdisk_image", uint64(le.Uint32(zp[0x0c0:])), 0},
		{"ext_ramdisk_size", uint64(le.Uint32(zp[0x0c4:])), 0},
		{"cmd_line_ptr", uint64(le.Uint32(zp[0x228:])), res.Cmdline},
		{"ext_cmd_line_ptr", uint64(le.Uint32(zp[0x0c8:])), 0},
		{"acpi_rsdp_addr", le.Uint64(zp[0x070:]), platform.RSDPAddress},
		{"vid_mode", uint64(le.Uint16(zp[0x1fa:])), 0xffff},
		{"heap_end_ptr", uint64(le.Uint16(zp[0x224:])), 0xde00},
		{"sentinel", uint64(zp[0x1ef]), 0},
		{"xloadflags", uint64(le.Uint16(zp[0x236:])), 0x7f},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("boot_params %s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if got := mem.cstring(t, res.Cmdline); got != opts.Cmdline {
		t.Errorf("command line %q", got)
	}
	// The e820 table is the layout's memory map.
	m := g.Layout.MemoryMap()
	if int(zp[0x1e8]) != len(m) {
		t.Fatalf("e820_entries %d, want %d", zp[0x1e8], len(m))
	}
	for i, e := range m {
		off := 0x2d0 + 20*i
		if le.Uint64(zp[off:]) != e.Start || le.Uint64(zp[off+8:]) != e.Size() || le.Uint32(zp[off+16:]) != uint32(e.Type) {
			t.Errorf("e820 entry %d: % x, want %v", i, zp[off:off+20], e)
		}
	}
	// The RSDP the zero page names is the guest's.
	if _, err := acpi.Parse(mem, le.Uint64(zp[0x070:])); err != nil {
		t.Errorf("ACPI tables at acpi_rsdp_addr: %v", err)
	}

	checkLongModeState(t, g, mem, res.State, 0x1000200)
	if res.State.GPR[vcpu.RSI] != bp {
		t.Errorf("RSI %#x, want boot_params %#x", res.State.GPR[vcpu.RSI], bp)
	}
	for _, r := range []vcpu.GPR{vcpu.RAX, vcpu.RBX, vcpu.RCX, vcpu.RDX, vcpu.RDI, vcpu.RBP} {
		if res.State.GPR[r] != 0 {
			t.Errorf("GPR %d = %#x, want 0", r, res.State.GPR[r])
		}
	}
	// Nothing the loader placed overlaps anything else.
	placed := []platform.Region{res.Kernel, res.Initrd, {Start: bp, End: bp + 4096}, {Start: res.Cmdline, End: res.Cmdline + uint64(len(opts.Cmdline)) + 1}}
	for i := range placed {
		for j := i + 1; j < len(placed); j++ {
			if placed[i].Overlaps(placed[j]) {
				t.Errorf("%v overlaps %v", placed[i], placed[j])
			}
		}
	}
}

// checkLongModeState checks the 64-bit boot protocol's entry state
// (boot.rst, "64-bit Boot Protocol"), reading the GDT and page tables back
// from guest memory.
func checkLongModeState(t *testing.T, g Guest, mem *sparseRAM, st BootState, rip uint64) {
	t.Helper()
	if st.Mode != ModeLong || st.RIP != rip {
		t.Errorf("mode %v RIP %#x, want long mode at %#x", st.Mode, st.RIP, rip)
	}
	if st.RFLAGS&(1<<9) != 0 || st.RFLAGS != 2 {
		t.Errorf("RFLAGS %#x, want 0x2 (IF clear)", st.RFLAGS)
	}
	c := st.Control
	if c.CR0 != 0x80000031 || c.CR4&(1<<5) == 0 || c.EFER != 0x500 {
		t.Errorf("CR0 %#x CR4 %#x EFER %#x, want PE|ET|NE|PG, PAE, LME|LMA", c.CR0, c.CR4, c.EFER)
	}
	if !g.Layout.LoaderArea.Contains(platform.Region{Start: c.CR3, End: c.CR3 + 4096}) {
		t.Errorf("CR3 %#x is outside the loader area", c.CR3)
	}
	// Identity-mapped through 4 GiB: spot checks across the range.
	for _, va := range []uint64{0, 0x1234, 0x80000, 0x1000200, 0x3fffffff, 0x40000000, 0xbfffffff, 0xfee00000, 0xffffffff} {
		pa, ok := translate(t, mem, c.CR3, va)
		if !ok || pa != va {
			t.Errorf("page tables map %#x to %#x (present %v)", va, pa, ok)
		}
	}
	// The GDT: __BOOT_CS 0x10 64-bit code, __BOOT_DS 0x18 flat data.
	gdt := mem.read(t, st.GDTR.Base, int(st.GDTR.Limit)+1)
	if int(st.GDTR.Limit)+1 < 0x20 {
		t.Fatalf("GDT limit %#x does not reach 0x18", st.GDTR.Limit)
	}
	if d := binary.LittleEndian.Uint64(gdt[0x10:]); d != 0x00af9b000000ffff {
		t.Errorf("GDT 0x10 = %#016x, want a flat 64-bit code descriptor", d)
	}
	if d := binary.LittleEndian.Uint64(gdt[0x18:]); d != 0x00cf93000000ffff {
		t.Errorf("GDT 0x18 = %#016x, want a flat data descriptor", d)
	}
	if st.Segments[vcpu.CS] != (vcpu.Segment{Selector: 0x10, Limit: 0xffffffff, Attributes: 0xa9b}) {
		t.Errorf("CS %+v", st.Segments[vcpu.CS])
	}
	for _, r := range []vcpu.SegmentRegister{vcpu.DS, vcpu.ES, vcpu.SS} {
		if st.Segments[r] != (vcpu.Segment{Selector: 0x18, Limit: 0xffffffff, Attributes: 0xc93}) {
			t.Errorf("segment %d %+v", r, st.Segments[r])
		}
	}
	if st.TR.Attributes&0xf != 0xb || st.TR.Attributes&0x80 == 0 {
		t.Errorf("TR %+v, want a present busy TSS", st.TR)
	}
	if sp := st.GPR[vcpu.RSP]; !g.Layout.LoaderArea.Contains(platform.Region{Start: sp - 4096, End: sp}) {
		t.Errorf("RSP %#x is not the top of a stack page in the loader area", sp)
	}
}

// A relocatable kernel whose pref_address does not fit goes to the lowest
// 16 MiB-aligned address where init_size fits; a non-relocatable one is
// refused.
func TestLoadLinuxRelocates(t *testing.T) {
	g, mem := newGuest(t, 64*platform.MiB)
	img := makeBzImage(bzSpec{relocatable: 1, pref: 0x3000000, initSize: 20 << 20})
	res, err := LoadLinux(g, img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kernel.Start != 0x1000000 || res.State.RIP != 0x1000200 {
		t.Errorf("relocated kernel at %v, RIP %#x; want 16 MiB", res.Kernel, res.State.RIP)
	}
	if got := binary.LittleEndian.Uint32(mem.read(t, res.Info+0x214, 4)); got != 0x1000000 {
		t.Errorf("code32_start %#x after relocation", got)
	}

	g, _ = newGuest(t, 64*platform.MiB)
	img = makeBzImage(bzSpec{relocatable: 0, pref: 0x3000000, initSize: 20 << 20})
	_, err = LoadLinux(g, img, Options{KernelName: "fixed"})
	wantErr(t, err, ErrNoRoom, `bzImage "fixed"`, "not relocatable", "pref_address 0x3000000", "init_size 0x1400000")
}

func TestLoadLinuxRefuses(t *testing.T) {
	base := func() []byte { return makeBzImage(bzSpec{relocatable: 1}) }
	set := func(f func(b []byte)) []byte { b := base(); f(b); return b }
	le := binary.LittleEndian
	cases := []struct {
		name  string
		img   []byte
		kind  error
		frags []string
	}{
		{"short", base()[:0x200], ErrMalformed, []string{"shorter than"}},
		{"boot flag", set(func(b []byte) { le.PutUint16(b[0x1fe:], 0x1234) }), ErrMalformed, []string{"boot_flag", "0x1234"}},
		{"magic", set(func(b []byte) { copy(b[0x202:], "Hdrs") }), ErrMalformed, []string{`"Hdrs"`}},
		{"old protocol", set(func(b []byte) { le.PutUint16(b[0x206:], 0x020b) }), ErrUnsupported, []string{"2.11", "2.12"}},
		{"zImage", set(func(b []byte) { b[0x211] = 0 }), ErrUnsupported, []string{"LOADED_HIGH"}},
		{"32-bit only", set(func(b []byte) { le.PutUint16(b[0x236:], 0x7e) }), ErrUnsupported, []string{"XLF_KERNEL_64", "0x007e"}},
		{"setup past end", set(func(b []byte) { b[0x1f1] = 200 }), ErrMalformed, []string{"setup_sects 200 puts the kernel past the end of the", "file"}},
		{"syssize zero", set(func(b []byte) { le.PutUint32(b[0x1f4:], 0) }), ErrMalformed, []string{"syssize is 0"}},
		{"syssize past end", set(func(b []byte) { le.PutUint32(b[0x1f4:], 0x100000) }), ErrMalformed, []string{"syssize 0x100000", "runs past the end"}},
		{"init_size small", set(func(b []byte) { le.PutUint32(b[0x260:], 0x1000) }), ErrMalformed, []string{"init_size 0x1000 is smaller"}},
		{"alignment", set(func(b []byte) { le.PutUint32(b[0x230:], 0x3000) }), ErrMalformed, []string{"kernel_alignment 0x3000"}},
		{"jump", set(func(b []byte) { b[0x201] = 0x90 }), ErrMalformed, []string{"jump at 0x200"}},
		{"short header", set(func(b []byte) { b[0x201] = 0x20 }), ErrMalformed, []string{"setup header's end at 0x222"}},
		{"huge init_size", set(func(b []byte) { le.PutUint32(b[0x260:], 0xfffff000) }), ErrNoRoom, []string{"init_size 0xfffff000", "16 MiB-aligned"}},
	}
	for _, c := range cases {
		g, _ := newGuest(t, 64*platform.MiB)
		_, err := LoadLinux(g, c.img, Options{KernelName: "vmlinuz"})
		t.Run(c.name, func(t *testing.T) { wantErr(t, err, c.kind, append([]string{`bzImage "vmlinuz"`}, c.frags...)...) })
	}

	// Options and the guest.
	g, _ := newGuest(t, 64*platform.MiB)
	long := make([]byte, 0x800)
	for i := range long {
		long[i] = 'a'
	}
	_, err := LoadLinux(g, base(), Options{Cmdline: string(long)})
	wantErr(t, err, ErrBadOption, "2048 bytes, over the kernel's cmdline_size 2047")
	_, err = LoadLinux(g, base(), Options{Cmdline: "a\x00b"})
	wantErr(t, err, ErrBadOption, "NUL byte at offset 1")
	_, err = LoadLinux(g, base(), Options{Modules: []Module{{Name: "x"}}})
	wantErr(t, err, ErrBadOption, "only an initrd")
	_, err = LoadLinux(g, base(), Options{Initrd: make([]byte, 60<<20), InitrdName: "big.cpio"})
	wantErr(t, err, ErrNoRoom, `initrd "big.cpio"`, "60 MiB", "does not fit", "the kernel (init_size)")
	_, err = LoadLinux(g, base(), Options{Initrd: []byte{}})
	wantErr(t, err, ErrBadOption, "initrd is empty")

	small, _ := newGuest(t, 16*platform.MiB)
	_, err = LoadLinux(small, base(), Options{})
	wantErr(t, err, ErrNoRoom, "init_size 0x800000", "pref_address 0x1000000")

	bad := g
	bad.RSDP = 0x1000
	_, err = LoadLinux(bad, base(), Options{})
	wantErr(t, err, ErrBadOption, "RSDP address 0x1000")
	bad = g
	bad.Memory = nil
	_, err = LoadLinux(bad, base(), Options{})
	wantErr(t, err, ErrBadOption, "no guest memory")
	bad = g
	l := *g.Layout
	l.VCPUs = 0
	bad.Layout = &l
	_, err = LoadLinux(bad, base(), Options{})
	wantErr(t, err, ErrBadOption, "0 vCPUs")
	if !errors.Is(err, ErrBadOption) {
		t.Error("errors.Is does not see the kind")
	}
}

// An initrd is kept below initrd_addr_max even when RAM goes higher.
func TestInitrdAddrMax(t *testing.T) {
	g, _ := newGuest(t, 512*platform.MiB)
	img := makeBzImage(bzSpec{relocatable: 1, initrdMax: 0x0fffffff})
	res, err := LoadLinux(g, img, Options{Initrd: pattern(1<<20, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Initrd.End != 0x10000000 {
		t.Errorf("initrd at %v, want it to end at initrd_addr_max+1 = 0x10000000", res.Initrd)
	}
}

// Guest memory that refuses writes gives an error, not a panic.
type refusingMemory struct{ after int }

func (r *refusingMemory) ReadGuest(gpa uint64, b []byte) error { return nil }
func (r *refusingMemory) WriteGuest(gpa uint64, b []byte) error {
	if r.after == 0 {
		return errors.New("host memory gone")
	}
	r.after--
	return nil
}

func TestGuestMemoryFailure(t *testing.T) {
	g, _ := newGuest(t, 64*platform.MiB)
	img := makeBzImage(bzSpec{relocatable: 1})
	// Fail each write in turn: every path returns the error.
	for n := 0; n < 8; n++ {
		bad := g
		bad.Memory = &refusingMemory{after: n}
		_, err := LoadLinux(bad, img, Options{Initrd: []byte("x")})
		if n < 5 {
			wantErr(t, err, ErrGuestMemory, "host memory gone")
		}
	}
}
