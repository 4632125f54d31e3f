package bootinfo

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw/hwfake"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

func u32p(v uint32) *uint32 { return &v }
func u64p(v uint64) *uint64 { return &v }

func reg(start, size uint64, k memmap.Kind) memmap.Region {
	return memmap.Region{Start: start, Size: size, Kind: k}
}

func checkMemory(t *testing.T, got memmap.Map, want ...memmap.Region) {
	t.Helper()
	if !reflect.DeepEqual([]memmap.Region(got), want) {
		t.Errorf("memory map:\n%v\nwant:\n%v", got, memmap.Map(want))
	}
}

// wantError checks that err is non-nil and its message contains every part.
func wantError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestProtocolString(t *testing.T) {
	for p, want := range map[Protocol]string{PVH: "PVH", Multiboot1: "Multiboot", Multiboot2: "Multiboot2", UEFI: "UEFI", 0: "Protocol(0)", 9: "Protocol(9)"} {
		if got := p.String(); got != want {
			t.Errorf("Protocol(%d).String() = %q, want %q", uint8(p), got, want)
		}
	}
}

func TestE820Kinds(t *testing.T) {
	want := map[uint32]memmap.Kind{
		0: memmap.Reserved, 1: memmap.Usable, 2: memmap.Reserved, 3: memmap.ACPIReclaimable,
		4: memmap.ACPINVS, 5: memmap.Unusable, 6: memmap.Unusable, 7: memmap.Persistent,
		8: memmap.Reserved, 12: memmap.Reserved, 0xf0000001: memmap.Reserved,
	}
	for typ, k := range want {
		if got := e820Kind(typ); got != k {
			t.Errorf("e820Kind(%d) = %v, want %v", typ, got, k)
		}
	}
}

// qemuE820 is shaped like the map QEMU gives a q35 guest with 512 MiB (the
// captured one is in capture_test.go).
var qemuE820 = []e820{
	{0, 0x9fc00, 1},
	{0x9fc00, 0x400, 2},
	{0xf0000, 0x10000, 2},
	{0x100000, 0x1fee0000, 1},
	{0x1ffe0000, 0x20000, 2},
	{0xfffc0000, 0x40000, 2},
}

var qemuMemory = []memmap.Region{
	reg(0, 0x9f000, memmap.Usable),
	reg(0x9fc00, 0x400, memmap.Reserved),
	reg(0xf0000, 0x10000, memmap.Reserved),
	reg(0x100000, 0x1fee0000, memmap.Usable),
	reg(0x1ffe0000, 0x20000, memmap.Reserved),
	reg(0xfffc0000, 0x40000, memmap.Reserved),
}

// ---- PVH ----

func TestPVH(t *testing.T) {
	mem := hwfake.NewMemory()
	img := pvhImage{
		magic: 0x336ec578, version: 1,
		cmdline: "console=ttyS0 tamavisor.debug",
		rsdp:    0xf5a40,
		modules: []Module{
			{Start: 0x1fd00000, Size: 0x123456, CmdLine: "initrd"},
			{Start: 0x1f000000, Size: 0x1000},
		},
		memmap: qemuE820,
	}
	img.load(mem, 0x6000)
	info, err := ParsePVH(mem, 0x6000)
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol != PVH || info.CmdLine != img.cmdline || info.RSDP != 0xf5a40 || info.Loader != "" || info.RSDPCopy != nil || info.EFISystemTable != 0 {
		t.Errorf("info = %+v", info)
	}
	if !reflect.DeepEqual(info.Modules, img.modules) {
		t.Errorf("modules = %+v, want %+v", info.Modules, img.modules)
	}
	checkMemory(t, info.Memory,
		reg(0, 0x9f000, memmap.Usable),
		reg(0x9fc00, 0x400, memmap.Reserved),
		reg(0xf0000, 0x10000, memmap.Reserved),
		reg(0x100000, 0x1f000000-0x100000, memmap.Usable),
		reg(0x1f000000, 0x1000, memmap.Loader),
		reg(0x1f001000, 0x1fd00000-0x1f001000, memmap.Usable),
		reg(0x1fd00000, 0x123456, memmap.Loader),
		reg(0x1fe24000, 0x1ffe0000-0x1fe24000, memmap.Usable), // trimmed up from 0x1fe23456
		reg(0x1ffe0000, 0x20000, memmap.Reserved),
		reg(0xfffc0000, 0x40000, memmap.Reserved),
	)
	if !strings.Contains(info.String(), `boot: PVH, command line "console=ttyS0 tamavisor.debug", 2 modules, ACPI RSDP at 0xf5a40`) {
		t.Errorf("String() =\n%s", info)
	}
}

func TestPVHLaterVersionAndNoOptionalParts(t *testing.T) {
	mem := hwfake.NewMemory()
	pvhImage{magic: 0x336ec578, version: 2, memmap: qemuE820}.load(mem, 0x10000)
	info, err := ParsePVH(mem, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	if info.CmdLine != "" || len(info.Modules) != 0 || info.RSDP != 0 {
		t.Errorf("info = %+v", info)
	}
	checkMemory(t, info.Memory, qemuMemory...)
}

func TestPVHErrors(t *testing.T) {
	long := strings.Repeat("x", MaxString)
	tests := []struct {
		name  string
		img   pvhImage
		limit uint64
		parts []string
	}{
		{"bad magic", pvhImage{magic: 0x2badb002, version: 1, memmap: qemuE820}, 0,
			[]string{"pvh: hvm_start_info at 0x6000 has magic 0x2badb002, want 0x336ec578"}},
		{"version 0", pvhImage{magic: 0x336ec578, version: 0, memmap: qemuE820}, 0,
			[]string{"version 0", "no memory map"}},
		{"no memory map", pvhImage{magic: 0x336ec578, version: 1}, 0,
			[]string{"memmap_entries is 0"}},
		{"too many memory map entries", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, memmapEntries: u32p(MaxMemoryEntries + 1)}, 0,
			[]string{"memmap_entries is 4097, more than 4096"}},
		{"memory map at 0", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, memmapPaddr: u64p(0)}, 0,
			[]string{"memmap_paddr is 0"}},
		{"memory map wraps", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, memmapPaddr: u64p(0xffff_ffff_ffff_ffa0)}, 0,
			[]string{"hvm_memmap_table at 0xffffffffffffffa0 with 6 entries of 24 bytes runs past the top"}},
		{"no usable memory", pvhImage{magic: 0x336ec578, version: 1, memmap: []e820{{0, 0x9fc00, 2}, {0x100000, 0x800, 1}}}, 0,
			[]string{"pvh: memory map has no usable RAM"}},
		{"memory entry wraps", pvhImage{magic: 0x336ec578, version: 1, memmap: []e820{{0xffff_ffff_0000_0000, 0x1_0000_0000, 1}}}, 0,
			[]string{"hvm_memmap_table entry 0 at 0xffffffff00000000 of size 0x100000000 runs past the top"}},
		{"too many modules", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, nrModules: u32p(257)}, 0,
			[]string{"nr_modules is 257, more than 256"}},
		{"modules at 0", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, nrModules: u32p(1)}, 0,
			[]string{"nr_modules is 1 but modlist_paddr is 0"}},
		{"module wraps", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, modules: []Module{{Start: 0xffff_ffff_ffff_f000, Size: 0x2000}}}, 0,
			[]string{"module 0 at 0xfffffffffffff000 of size 0x2000 runs past the top"}},
		{"command line without NUL", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, cmdline: long}, 0,
			[]string{"cmdline_paddr string at 0x46000 has no NUL within 4096 bytes"}},
		{"start info unreadable", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820}, 0x6020,
			[]string{"pvh: reading hvm_start_info at 0x6000", "outside memory"}},
		{"memory map unreadable", pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, memmapPaddr: u64p(0x7fff_fff0)}, 0x8000_0000,
			[]string{"reading hvm_memmap_table_entry at 0x7ffffff0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := hwfake.NewMemory()
			tt.img.load(mem, 0x6000)
			mem.Limit = tt.limit
			info, err := ParsePVH(mem, 0x6000)
			wantError(t, err, tt.parts...)
			if info != nil {
				t.Errorf("info %+v returned with the error", info)
			}
		})
	}
}

func TestPVHLongestCommandLine(t *testing.T) {
	mem := hwfake.NewMemory()
	cmdline := strings.Repeat("y", MaxString-1) // the NUL makes MaxString
	pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820, cmdline: cmdline}.load(mem, 0x6000)
	info, err := ParsePVH(mem, 0x6000)
	if err != nil {
		t.Fatal(err)
	}
	if info.CmdLine != cmdline {
		t.Errorf("command line of %d bytes read as %d bytes", len(cmdline), len(info.CmdLine))
	}
}

// A string ending right before the end of readable memory is read; reads do
// not run past the page holding the NUL.
func TestStringAtEndOfMemory(t *testing.T) {
	mem := hwfake.NewMemory()
	mem.Load(0x1ff8, cstr("abcdefg"))
	mem.Limit = 0x2000
	s, err := reader{mem, "test"}.cString(0x1ff8, "string")
	if err != nil || s != "abcdefg" {
		t.Errorf("cString = %q, %v", s, err)
	}
	mem.Load(0x1ff8, []byte("abcdefgh"))
	_, err = reader{mem, "test"}.cString(0x1ff8, "string")
	wantError(t, err, "test: reading string at 0x2000")
}

// ---- Multiboot ----

const mb1AllFlags = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<6 | 1<<9

func TestMultiboot1(t *testing.T) {
	mem := hwfake.NewMemory()
	img := mb1Image{
		flags:    mb1AllFlags,
		memLower: 639, memUpper: 523136,
		cmdline:    "/boot/tamavisor serial=ttyS0",
		loaderName: "GRUB 2.06-13+deb12u1",
		modules: []Module{
			{Start: 0x1ff000, Size: 0x800000, CmdLine: "/boot/guest-kernel console=ttyS0"},
			{Start: 0x9ff000, Size: 0x1234, CmdLine: "/boot/initrd"},
		},
		mmap: qemuE820,
	}
	img.load(mem, 0x10000)
	info, err := ParseMultiboot1(mem, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol != Multiboot1 || info.CmdLine != img.cmdline || info.Loader != img.loaderName || info.RSDP != 0 || info.RSDPCopy != nil {
		t.Errorf("info = %+v", info)
	}
	if !reflect.DeepEqual(info.Modules, img.modules) {
		t.Errorf("modules = %+v, want %+v", info.Modules, img.modules)
	}
	checkMemory(t, info.Memory,
		reg(0, 0x9f000, memmap.Usable),
		reg(0x9fc00, 0x400, memmap.Reserved),
		reg(0xf0000, 0x10000, memmap.Reserved),
		reg(0x100000, 0xff000, memmap.Usable),
		reg(0x1ff000, 0x801234, memmap.Loader), // the two modules touch
		reg(0xa01000, 0x1ffe0000-0xa01000, memmap.Usable),
		reg(0x1ffe0000, 0x20000, memmap.Reserved),
		reg(0xfffc0000, 0x40000, memmap.Reserved),
	)
}

func TestMultiboot1FieldsOnlyWhenFlagged(t *testing.T) {
	mem := hwfake.NewMemory()
	// Only the memory map is flagged: the other fields hold strings and
	// modules that must be ignored.
	mb1Image{flags: 1 << 6, cmdline: "ignored", loaderName: "ignored", modules: []Module{{Start: 0x200000, Size: 0x1000}}, mmap: qemuE820}.load(mem, 0x10000)
	info, err := ParseMultiboot1(mem, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	if info.CmdLine != "" || info.Loader != "" || info.Modules != nil {
		t.Errorf("unflagged fields read: %+v", info)
	}
	checkMemory(t, info.Memory, qemuMemory...)
}

func TestMultiboot1LargerMmapEntries(t *testing.T) {
	mem := hwfake.NewMemory()
	// Entries with a size of 24: a later version's extra field must be
	// stepped over, not read as the next entry.
	mb1Image{flags: 1 << 6, mmap: qemuE820, mmapEntrySize: 24}.load(mem, 0x10000)
	info, err := ParseMultiboot1(mem, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, info.Memory, qemuMemory...)
}

func TestMultiboot1BasicMemory(t *testing.T) {
	mem := hwfake.NewMemory()
	mb1Image{flags: 1 << 0, memLower: 639, memUpper: 31 * 1024}.load(mem, 0x10000)
	info, err := ParseMultiboot1(mem, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	// 639 KiB ends mid-page: the last partial page is not usable.
	checkMemory(t, info.Memory, reg(0, 636*KiB, memmap.Usable), reg(MiB, 31*MiB, memmap.Usable))
}

func TestMultiboot1Errors(t *testing.T) {
	tests := []struct {
		name  string
		img   mb1Image
		limit uint64
		parts []string
	}{
		{"no memory information", mb1Image{flags: 1 << 2, cmdline: "x"}, 0,
			[]string{"multiboot: information structure at 0x10000 has flags 0x4", "no memory information"}},
		{"mem_lower too large", mb1Image{flags: 1, memLower: 641}, 0,
			[]string{"mem_lower is 641 KiB"}},
		{"empty memory map", mb1Image{flags: 1 << 6}, 0,
			[]string{"mmap_length is 0"}},
		{"entry size too small", mb1Image{flags: 1 << 6, mmap: qemuE820, mmapEntrySize: 16}, 0,
			[]string{"memory map entry 0 at 0x12000 has size 16, smaller than 20"}},
		{"entry past mmap_length", mb1Image{flags: 1 << 6, mmap: qemuE820, mmapEntrySize: 28, mmapLengthAdjust: -4}, 0,
			[]string{"memory map entry 5 at 0x120a0 of size 28 runs past mmap_length 188"}},
		{"partial entry", mb1Image{flags: 1 << 6, mmap: qemuE820, mmapLengthAdjust: 3}, 0,
			[]string{"memory map entry 6 at 0x12090 does not fit in mmap_length 147"}},
		{"entry wraps", mb1Image{flags: 1 << 6, mmap: []e820{{0xffff_ffff_ffff_f000, 0x1000, 1}}}, 0,
			[]string{"memory map entry 0 at 0xfffffffffffff000 of size 0x1000 runs past the top"}},
		{"too many modules", mb1Image{flags: 1<<3 | 1<<6, mmap: qemuE820, modsCount: u32p(1000)}, 0,
			[]string{"mods_count is 1000, more than 256"}},
		{"module ends before it starts", mb1Image{flags: 1<<3 | 1<<6, mmap: qemuE820, modules: []Module{{Start: 0x300000, Size: 0xffff0000}}}, 0,
			[]string{"module 0 at 0x11000 has mod_end 0x2f0000 below mod_start 0x300000"}},
		{"loader name unreadable", mb1Image{flags: 1<<9 | 1<<6, mmap: qemuE820, loaderName: "GRUB"}, 0x50004,
			[]string{"reading boot_loader_name string at 0x50004"}},
		{"information unreadable", mb1Image{flags: 1 << 6, mmap: qemuE820}, 0x10010,
			[]string{"multiboot: reading information structure at 0x10000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := hwfake.NewMemory()
			tt.img.load(mem, 0x10000)
			mem.Limit = tt.limit
			info, err := ParseMultiboot1(mem, 0x10000)
			wantError(t, err, tt.parts...)
			if info != nil {
				t.Errorf("info %+v returned with the error", info)
			}
		})
	}
}

func TestMultiboot1TooManyMmapEntries(t *testing.T) {
	mem := hwfake.NewMemory()
	entries := make([]e820, MaxMemoryEntries+1)
	for i := range entries {
		entries[i] = e820{uint64(i) * MiB, MiB, 1}
	}
	mb1Image{flags: 1 << 6, mmap: entries}.load(mem, 0x10000)
	_, err := ParseMultiboot1(mem, 0x10000)
	wantError(t, err, "memory map at 0x12000 has more than 4096 entries")

	mem = hwfake.NewMemory()
	mb1Image{flags: 1 << 6, mmap: entries[:MaxMemoryEntries]}.load(mem, 0x10000)
	info, err := ParseMultiboot1(mem, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, info.Memory, reg(0, MaxMemoryEntries*MiB, memmap.Usable))
}

// ---- Multiboot2 ----

func TestMultiboot2BIOS(t *testing.T) {
	mem := hwfake.NewMemory()
	var b mb2Info
	b.str(1, "console=ttyS0 tamavisor.vms=2").
		str(2, "GRUB 2.06-13+deb12u1").
		module(0x200000, 0xa00000, "/boot/guest-kernel quiet").
		module(0xa00000, 0xb23456, "/boot/initrd").
		basicMeminfo(639, 523136).
		tag(5, []byte{0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}). // boot device: skipped
		mmap(qemuE820...).
		tag(8, make([]byte, 24)). // framebuffer: skipped
		tag(14, rsdp(0, "BOCHS ", 0x1ffe1f0f, 0)).
		tag(15, rsdp(2, "BOCHS ", 0x1ffe1f0f, 0x1ffe2000))
	mem.Load(0x9000, b.bytes())
	info, err := ParseMultiboot2(mem, 0x9000)
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol != Multiboot2 || info.CmdLine != "console=ttyS0 tamavisor.vms=2" || info.Loader != "GRUB 2.06-13+deb12u1" || info.RSDP != 0 || info.EFISystemTable != 0 {
		t.Errorf("info = %+v", info)
	}
	if want := rsdp(2, "BOCHS ", 0x1ffe1f0f, 0x1ffe2000); !bytes.Equal(info.RSDPCopy, want) {
		t.Errorf("RSDPCopy = % x, want the ACPI 2.0 one % x", info.RSDPCopy, want)
	}
	wantMods := []Module{{0x200000, 0x800000, "/boot/guest-kernel quiet"}, {0xa00000, 0x123456, "/boot/initrd"}}
	if !reflect.DeepEqual(info.Modules, wantMods) {
		t.Errorf("modules = %+v, want %+v", info.Modules, wantMods)
	}
	checkMemory(t, info.Memory,
		reg(0, 0x9f000, memmap.Usable),
		reg(0x9fc00, 0x400, memmap.Reserved),
		reg(0xf0000, 0x10000, memmap.Reserved),
		reg(0x100000, 0x100000, memmap.Usable),
		reg(0x200000, 0x923456, memmap.Loader),
		reg(0xb24000, 0x1ffe0000-0xb24000, memmap.Usable),
		reg(0x1ffe0000, 0x20000, memmap.Reserved),
		reg(0xfffc0000, 0x40000, memmap.Reserved),
	)
	if !strings.Contains(info.String(), `boot: Multiboot2 from "GRUB 2.06-13+deb12u1", command line "console=ttyS0 tamavisor.vms=2", 2 modules, ACPI RSDP copy (36 bytes)`) {
		t.Errorf("String() =\n%s", info)
	}
}

func TestMultiboot2OldRSDPAndBasicMemory(t *testing.T) {
	mem := hwfake.NewMemory()
	var b mb2Info
	b.basicMeminfo(640, 127*1024).tag(14, rsdp(0, "BOCHS ", 0xe0000, 0))
	mem.Load(0x9000, b.bytes())
	info, err := ParseMultiboot2(mem, 0x9000)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(info.RSDPCopy, rsdp(0, "BOCHS ", 0xe0000, 0)) {
		t.Errorf("RSDPCopy = % x", info.RSDPCopy)
	}
	checkMemory(t, info.Memory, reg(0, 640*KiB, memmap.Usable), reg(MiB, 127*MiB, memmap.Usable))
}

// ovmfDescs is the shape of an OVMF memory map at ExitBootServices: boot
// services and loader memory, runtime services code and data, ACPI tables
// and NVS, the flash behind MMIO kept for runtime variable services.
func ovmfDescs(stride int) []byte {
	return efiDescs(stride,
		efiDesc{3, 0, 1, 0xf},                          // BootServicesCode
		efiDesc{7, 0x1000, 0x9f, 0xf},                  // Conventional
		efiDesc{7, 0x100000, 0x700, 0xf},               // Conventional
		efiDesc{10, 0x800000, 8, 0xf},                  // ACPIMemoryNVS
		efiDesc{7, 0x808000, 0x7f8, 0xf},               // Conventional
		efiDesc{1, 0x1000000, 0x100, 0xf},              // LoaderCode: the image
		efiDesc{2, 0x1100000, 0x20, 0xf},               // LoaderData
		efiDesc{4, 0x1120000, 0x1eaa0, 0xf},            // BootServicesData
		efiDesc{9, 0x1fbc0000, 0x10, 0xf},              // ACPIReclaimMemory
		efiDesc{6, 0x1fbd0000, 0x30, 0xf | efiRuntime}, // RuntimeServicesData
		efiDesc{5, 0x1fc00000, 0x20, 0xf | efiRuntime}, // RuntimeServicesCode
		efiDesc{0, 0x1fc20000, 0x3e0, 0xf},             // Reserved
		efiDesc{11, 0xffc00000, 0x400, 1 | efiRuntime}, // MMIO flash, runtime
		efiDesc{11, 0xfeb00000, 0x10, 1},               // MMIO, not runtime
		efiDesc{8, 0x20000000, 1, 0xf},                 // Unusable
		efiDesc{14, 0x100000000, 0x40000, 0xf},         // PersistentMemory
		efiDesc{15, 0x140000000, 0x10, 0xf},            // Unaccepted
		efiDesc{0x80000001, 0x20001000, 1, 0xf},        // OS-defined type
	)
}

var ovmfMemory = []memmap.Region{
	reg(0, 0xa0000, memmap.Usable), // boot services code + conventional
	reg(0x100000, 0x700000, memmap.Usable),
	reg(0x800000, 0x8000, memmap.ACPINVS),
	reg(0x808000, 0x1fbc0000-0x808000, memmap.Usable),
	reg(0x1fbc0000, 0x10000, memmap.ACPIReclaimable),
	reg(0x1fbd0000, 0x50000, memmap.FirmwareRuntime),
	reg(0x1fc20000, 0x3e0000, memmap.Reserved),
	reg(0x20000000, 0x1000, memmap.Unusable),
	reg(0x20001000, 0x1000, memmap.Reserved),
	reg(0xfeb00000, 0x10000, memmap.Reserved),
	reg(0xffc00000, 0x400000, memmap.FirmwareRuntime),
	reg(0x100000000, 0x40000000, memmap.Persistent),
	reg(0x140000000, 0x10000, memmap.Reserved),
}

func TestMultiboot2EFI(t *testing.T) {
	mem := hwfake.NewMemory()
	var b mb2Info
	b.str(2, "GRUB 2.06").
		efi64(0x1f9ee018).
		mmap(e820{0, 0x20000000, 1}). // GRUB's e820 view: ignored for the EFI one
		efiMmap(48, 1, ovmfDescs(48)).
		tag(20, le.AppendUint64(nil, 0x1e4f7a98)) // EFI 64-bit image handle: skipped
	mem.Load(0x1ff000, b.bytes())
	info, err := ParseMultiboot2(mem, 0x1ff000)
	if err != nil {
		t.Fatal(err)
	}
	if info.EFISystemTable != 0x1f9ee018 || info.RSDPCopy != nil {
		t.Errorf("info = %+v", info)
	}
	checkMemory(t, info.Memory, ovmfMemory...)
}

func TestMultiboot2Errors(t *testing.T) {
	good := func() *mb2Info { var b mb2Info; return b.mmap(qemuE820...) }
	withTotal := func(raw []byte, total uint32) []byte { le.PutUint32(raw[0:], total); return raw }
	long := strings.Repeat("z", MaxString)
	tests := []struct {
		name  string
		info  []byte
		at    uint64
		limit uint64
		parts []string
	}{
		{"tag smaller than its header", func() []byte { b := good(); b.tags = append(b.tags, 1, 0, 0, 0, 4, 0, 0, 0); return b.bytes() }(), 0x9000, 0,
			[]string{"multiboot2: tag at 0x90a8 has size 4, smaller than its header"}},
		{"unaligned", good().bytes(), 0x9004, 0,
			[]string{"boot information at 0x9004 is not 8-byte aligned"}},
		{"total_size too small", withTotal(good().bytes(), 8), 0x9000, 0,
			[]string{"total_size 8, want 16 to 1048576"}},
		{"total_size too large", withTotal(good().bytes(), 2<<20), 0x9000, 0,
			[]string{"total_size 2097152"}},
		{"no end tag", good().raw(), 0x9000, 0,
			[]string{"no end tag within total_size 168"}},
		{"tag past total_size", withTotal(good().bytes(), 100), 0x9000, 0,
			[]string{"tag at 0x9008 (type 6) has size 160, running past total_size 100"}},
		{"command line not terminated", (&mb2Info{}).tag(1, []byte("abc")).mmap(qemuE820...).bytes(), 0x9000, 0,
			[]string{"command line in tag at 0x9008 is not NUL-terminated"}},
		{"command line too long", (&mb2Info{}).str(1, long).mmap(qemuE820...).bytes(), 0x9000, 0,
			[]string{"command line in tag at 0x9008 is 4097 bytes, more than 4096"}},
		{"module ends before it starts", good().module(0x300000, 0x200000, "m").bytes(), 0x9000, 0,
			[]string{"module tag at 0x90a8 has mod_end 0x200000 below mod_start 0x300000"}},
		{"module tag too small", good().tag(3, []byte{1, 2, 3, 4}).bytes(), 0x9000, 0,
			[]string{"module tag at 0x90a8 has size 12"}},
		{"module without string", good().tag(3, make([]byte, 8)).bytes(), 0x9000, 0,
			[]string{"module string in tag at 0x90a8 is not NUL-terminated"}},
		{"bad mmap entry size", (&mb2Info{}).tag(6, []byte{20, 0, 0, 0, 0, 0, 0, 0}).bytes(), 0x9000, 0,
			[]string{"memory map tag at 0x9008 has entry_size 20"}},
		{"partial mmap entry", (&mb2Info{}).tag(6, append([]byte{24, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 30)...)).bytes(), 0x9000, 0,
			[]string{"holds 30 bytes of entries, not a multiple of entry_size 24"}},
		{"empty mmap", (&mb2Info{}).tag(6, []byte{24, 0, 0, 0, 0, 0, 0, 0}).bytes(), 0x9000, 0,
			[]string{"memory map tag at 0x9008 has no entries"}},
		{"mmap entry wraps", (&mb2Info{}).mmap(e820{1 << 63, 1 << 63, 1}).bytes(), 0x9000, 0,
			[]string{"memory map entry 0 at 0x8000000000000000 of size 0x8000000000000000 runs past the top"}},
		{"RSDP without signature", good().tag(15, make([]byte, 36)).bytes(), 0x9000, 0,
			[]string{"ACPI RSDP tag at 0x90a8 holds no RSDP"}},
		{"RSDP v2 too short", good().tag(15, rsdp(0, "X", 0, 0)).bytes(), 0x9000, 0,
			[]string{"ACPI RSDP tag at 0x90a8 holds 20 bytes, want 36 to 256"}},
		{"boot services running", good().tag(18, nil).bytes(), 0x9000, 0,
			[]string{"tag at 0x90a8 says EFI boot services were not exited"}},
		{"no memory information", (&mb2Info{}).str(1, "x").bytes(), 0x9000, 0,
			[]string{"no memory map, EFI memory map or basic memory information tag"}},
		{"EFI map with bad version", (&mb2Info{}).efiMmap(48, 2, ovmfDescs(48)).bytes(), 0x9000, 0,
			[]string{"multiboot2: EFI memory map tag: memory descriptor version is 2, want 1"}},
		{"information unreadable", good().bytes(), 0x9000, 0x9010,
			[]string{"multiboot2: reading memory map tag entry_size at 0x9010"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := hwfake.NewMemory()
			mem.Load(tt.at, tt.info)
			mem.Limit = tt.limit
			info, err := ParseMultiboot2(mem, tt.at)
			wantError(t, err, tt.parts...)
			if info != nil {
				t.Errorf("info %+v returned with the error", info)
			}
		})
	}
}

func TestMultiboot2TooManyModules(t *testing.T) {
	var b mb2Info
	b.mmap(qemuE820...)
	for i := 0; i <= MaxModules; i++ {
		b.module(uint32(i)<<12, uint32(i+1)<<12, "")
	}
	mem := hwfake.NewMemory()
	mem.Load(0x9000, b.bytes())
	_, err := ParseMultiboot2(mem, 0x9000)
	wantError(t, err, "more than 256 module tags")
}

// ---- UEFI ----

func TestUEFI(t *testing.T) {
	for _, stride := range []int{40, 48, 56} {
		mem := hwfake.NewMemory()
		descs := ovmfDescs(stride)
		mem.Load(0x1e000000, descs)
		loadSystemTable(mem, 0x1f9ee018, "EDK II", []efiConfigEntry{
			{guidDXE, 0x1f9ef000},
			{guidACPI10, 0x1fbfe014},
			{guidSMBIOS3, 0x1f9a1000},
			{guidACPI20, 0x1fbfe000}, // listed after 1.0, still preferred
		})
		info, err := ParseUEFI(mem, 0x1e000000, uint64(len(descs)), uint64(stride), 1, 0x1f9ee018)
		if err != nil {
			t.Fatalf("stride %d: %v", stride, err)
		}
		if info.Protocol != UEFI || info.Loader != "EDK II" || info.RSDP != 0x1fbfe000 || info.EFISystemTable != 0x1f9ee018 || info.CmdLine != "" {
			t.Errorf("stride %d: info = %+v", stride, info)
		}
		checkMemory(t, info.Memory, ovmfMemory...)
	}
}

func TestUEFIRSDPChoice(t *testing.T) {
	tests := []struct {
		name   string
		config []efiConfigEntry
		want   uint64
	}{
		{"ACPI 1.0 only", []efiConfigEntry{{guidSMBIOS3, 1}, {guidACPI10, 0xe0000}}, 0xe0000},
		{"ACPI 2.0 first", []efiConfigEntry{{guidACPI20, 0x7f000}, {guidACPI10, 0xe0000}}, 0x7f000},
		{"neither", []efiConfigEntry{{guidSMBIOS3, 1}, {guidDXE, 2}}, 0},
		// A GUID with the right bytes in the wrong order (the registry
		// string read as plain bytes) is not the ACPI table.
		{"byte-swapped GUID", []efiConfigEntry{{[]byte{0x88, 0x68, 0xe8, 0x71, 0xe4, 0xf1, 0x11, 0xd3, 0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81}, 0x7f000}}, 0},
		{"no table", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := hwfake.NewMemory()
			descs := efiDescs(48, efiDesc{7, 0, 0x100, 0})
			mem.Load(0x100000, descs)
			loadSystemTable(mem, 0x200000, "Vendor \u00e9", tt.config)
			info, err := ParseUEFI(mem, 0x100000, uint64(len(descs)), 48, 1, 0x200000)
			if err != nil {
				t.Fatal(err)
			}
			if info.RSDP != tt.want || info.Loader != "Vendor \u00e9" {
				t.Errorf("RSDP %#x, loader %q; want %#x", info.RSDP, info.Loader, tt.want)
			}
		})
	}
}

func TestUEFIGUIDByteOrder(t *testing.T) {
	if !bytes.Equal(efiACPI20TableGUID[:], guidACPI20) || !bytes.Equal(efiACPI10TableGUID[:], guidACPI10) {
		t.Errorf("GUID constants % x / % x differ from the registry encoding % x / % x",
			efiACPI20TableGUID, efiACPI10TableGUID, guidACPI20, guidACPI10)
	}
}

func TestUEFIWithoutSystemTable(t *testing.T) {
	mem := hwfake.NewMemory()
	descs := efiDescs(48, efiDesc{7, 0, 0x100, 0})
	mem.Load(0x100000, descs)
	info, err := ParseUEFI(mem, 0x100000, uint64(len(descs)), 48, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Loader != "" || info.RSDP != 0 {
		t.Errorf("info = %+v", info)
	}
	checkMemory(t, info.Memory, reg(0, MiB, memmap.Usable))
}

func TestUEFIErrors(t *testing.T) {
	descs := ovmfDescs(48)
	tests := []struct {
		name              string
		descs             []byte
		mapSize, descSize uint64
		version           uint32
		vendor            string
		config            []efiConfigEntry
		breakTable        func(mem *hwfake.Memory)
		limit             uint64
		parts             []string
	}{
		{name: "version", descs: descs, version: 2, parts: []string{"uefi: memory descriptor version is 2, want 1"}},
		{name: "descriptor too small", descs: descs, descSize: 32, parts: []string{"memory descriptor size is 32, want 40 to 4096"}},
		{name: "size not a multiple", descs: descs, mapSize: uint64(len(descs)) - 8, parts: []string{"memory map size 856 is not a multiple of the descriptor size 48"}},
		{name: "empty", descs: descs, mapSize: 0, parts: []string{"memory map is empty"}},
		{name: "too many", descs: descs, mapSize: 48 * (MaxMemoryEntries + 1), parts: []string{"memory map has 4097 descriptors, more than 4096"}},
		{name: "unaligned start", descs: efiDescs(48, efiDesc{7, 0x1800, 1, 0}), parts: []string{"memory descriptor 0 at 0x100000 has PhysicalStart 0x1800, not 4 KiB aligned"}},
		{name: "pages wrap", descs: efiDescs(48, efiDesc{7, 0, 0x10, 0}, efiDesc{7, 0xffff_ffff_fff0_0000, 0x100, 0}),
			parts: []string{"memory descriptor 1 at 0x100030: 256 pages from 0xfffffffffff00000 run past the top"}},
		{name: "pages overflow", descs: efiDescs(48, efiDesc{7, 0x1000, 1 << 60, 0}), parts: []string{"run past the top"}},
		{name: "map unreadable", descs: descs, limit: 0x100100, parts: []string{"uefi: reading memory descriptor at 0x1000f0"}},
		{name: "system table signature", descs: descs, breakTable: func(mem *hwfake.Memory) { mem.Load(0x200000, []byte("IBI SYSX")) },
			parts: []string{"EFI system table at 0x200000 has signature"}},
		{name: "too many config entries", descs: descs, breakTable: func(mem *hwfake.Memory) { mem.Write64(0x200000+104, 5000) },
			parts: []string{"NumberOfTableEntries is 5000, more than 1024"}},
		{name: "config table at 0", descs: descs, breakTable: func(mem *hwfake.Memory) { mem.Write64(0x200000+112, 0) },
			config: []efiConfigEntry{{guidACPI20, 1}}, parts: []string{"NumberOfTableEntries is 1 but ConfigurationTable is 0"}},
		{name: "config table wraps", descs: descs, breakTable: func(mem *hwfake.Memory) { mem.Write64(0x200000+112, 0xffff_ffff_ffff_fff0) },
			config: []efiConfigEntry{{guidACPI20, 1}}, parts: []string{"EFI configuration table at 0xfffffffffffffff0"}},
		{name: "vendor without NUL", descs: descs, vendor: strings.Repeat("v", 3000), parts: []string{"FirmwareVendor string at 0x200200 has no NUL within 4096 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := hwfake.NewMemory()
			mem.Load(0x100000, tt.descs)
			loadSystemTable(mem, 0x200000, tt.vendor, tt.config)
			if tt.breakTable != nil {
				tt.breakTable(mem)
			}
			mapSize, descSize, version := uint64(len(tt.descs)), uint64(48), uint32(1)
			if tt.mapSize != 0 || tt.name == "empty" {
				mapSize = tt.mapSize
			}
			if tt.descSize != 0 {
				descSize = tt.descSize
			}
			if tt.version != 0 {
				version = tt.version
			}
			mem.Limit = tt.limit
			info, err := ParseUEFI(mem, 0x100000, mapSize, descSize, version, 0x200000)
			wantError(t, err, tt.parts...)
			if info != nil {
				t.Errorf("info %+v returned with the error", info)
			}
		})
	}
}

// ---- dispatch ----

func TestFromRegisters(t *testing.T) {
	mem := hwfake.NewMemory()
	pvhImage{magic: 0x336ec578, version: 1, memmap: qemuE820}.load(mem, 0x6000)
	mb1Image{flags: 1 << 6, mmap: qemuE820}.load(mem, 0x10000)
	mem.Load(0x20000, (&mb2Info{}).mmap(qemuE820...).bytes())
	for _, tt := range []struct {
		eax, ebx uint32
		want     Protocol
	}{{0x336ec578, 0x6000, PVH}, {0x2badb002, 0x10000, Multiboot1}, {0x36d76289, 0x20000, Multiboot2}} {
		info, err := FromRegisters(mem, tt.eax, tt.ebx)
		if err != nil {
			t.Fatalf("EAX %#x: %v", tt.eax, err)
		}
		if info.Protocol != tt.want {
			t.Errorf("EAX %#x parsed as %v, want %v", tt.eax, info.Protocol, tt.want)
		}
		checkMemory(t, info.Memory, qemuMemory...)
	}
	// PVH is recognized by the start info, whatever EAX holds.
	if info, err := FromRegisters(mem, 0, 0x6000); err != nil || info.Protocol != PVH {
		t.Errorf("EAX 0, EBX at a PVH start info: %v", err)
	}
	// A Multiboot magic with the wrong structure fails in that parser.
	_, err := FromRegisters(mem, 0x36d76289, 0x10000)
	wantError(t, err, "multiboot2: tag at 0x10008 (type 0) has size 2147549183, running past total_size 64")
	_, err = FromRegisters(mem, 0x12345678, 0x10000)
	wantError(t, err, "bootinfo: EAX 0x12345678 is no Multiboot magic value", "EBX 0x10000 points to 0x40, not the PVH start info magic 0x336ec578")
	mem.Limit = 0x100000
	_, err = FromRegisters(mem, 0, 0xfffffffe)
	wantError(t, err, "EBX 0xfffffffe cannot be read")
}
