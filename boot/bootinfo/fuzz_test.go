package bootinfo

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw/hwfake"
)

// Fuzz targets place the fuzzed bytes at the information address in a fake
// memory that ends at 4 GiB, so pointers inside the input reach the input,
// other low pointers read zeros and high ones fail. Whatever the bytes, a
// parser returns either an error or an Info that keeps its promises.

const fuzzBase = 0x10000

// snapshot returns the bytes an encoder wrote at [base, base+n).
func snapshot(mem *hwfake.Memory, base uint64, n int) []byte {
	b := make([]byte, n)
	if err := mem.ReadPhys(base, b); err != nil {
		panic(err)
	}
	return b
}

// addCapture seeds a fuzz target with a captured structure.
func addCapture(f *testing.F, name string) {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func fuzzMemory(at uint64, data []byte) *hwfake.Memory {
	mem := hwfake.NewMemory()
	mem.Load(at, data)
	mem.Limit = 1 << 32
	return mem
}

func checkParsed(t *testing.T, prefix string, info *Info, err error) {
	t.Helper()
	if err != nil {
		if info != nil {
			t.Fatalf("Info returned with error %v", err)
		}
		if !strings.HasPrefix(err.Error(), prefix+": ") {
			t.Fatalf("error %q does not name the protocol %q", err, prefix)
		}
		return
	}
	m := info.Memory
	if m.Total(memmap.Usable) == 0 {
		t.Fatalf("no usable memory accepted:\n%v", m)
	}
	for i, r := range m {
		if r.Size == 0 || !r.Kind.Valid() || r.End() < r.Start || i > 0 && m[i-1].End() > r.Start {
			t.Fatalf("memory map not normalized at %d:\n%v", i, m)
		}
	}
	if len(info.Modules) > MaxModules {
		t.Fatalf("%d modules", len(info.Modules))
	}
	for _, mod := range info.Modules {
		if mod.Start+mod.Size < mod.Start || len(mod.CmdLine) >= MaxString {
			t.Fatalf("module %+v accepted", mod)
		}
		// A module's memory is never left Usable.
		if k, ok := m.KindAt(mod.Start); mod.Size != 0 && ok && k == memmap.Usable {
			t.Fatalf("module %+v is in usable memory:\n%v", mod, m)
		}
	}
	if len(info.CmdLine) >= MaxString || len(info.Loader) >= MaxString {
		t.Fatalf("string of %d/%d bytes accepted", len(info.CmdLine), len(info.Loader))
	}
	if info.RSDPCopy != nil && !bytes.HasPrefix(info.RSDPCopy, []byte("RSD PTR ")) {
		t.Fatalf("RSDP copy % x accepted", info.RSDPCopy)
	}
	_ = info.String()
}

func FuzzParsePVH(f *testing.F) {
	mem := hwfake.NewMemory()
	pvhImage{magic: 0x336ec578, version: 1, cmdline: "console=ttyS0", rsdp: 0xf5a40, lay: compact,
		modules: []Module{{Start: 0x1fd00000, Size: 0x123456, CmdLine: "initrd"}, {Start: 0x1f000000, Size: 0x1000}},
		memmap:  qemuE820}.load(mem, fuzzBase)
	f.Add(snapshot(mem, fuzzBase, 0x180))
	mem = hwfake.NewMemory()
	pvhImage{magic: 0x336ec578, version: 1, lay: compact, memmap: qemuE820[:2]}.load(mem, fuzzBase)
	f.Add(snapshot(mem, fuzzBase, 0x100))
	f.Add([]byte{0x78, 0xc5, 0x6e, 0x33, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParsePVH(fuzzMemory(fuzzBase, data), fuzzBase)
		checkParsed(t, "pvh", info, err)
	})
}

func FuzzParseMultiboot1(f *testing.F) {
	mem := hwfake.NewMemory()
	mb1Image{flags: mb1AllFlags, memLower: 639, memUpper: 523136, cmdline: "/boot/tamavisor", loaderName: "GRUB 2.06", lay: compact,
		modules: []Module{{Start: 0x1ff000, Size: 0x800000, CmdLine: "/boot/kernel"}, {Start: 0x9ff000, Size: 0x1234, CmdLine: "/boot/initrd"}},
		mmap:    qemuE820}.load(mem, fuzzBase)
	f.Add(snapshot(mem, fuzzBase, 0x1a0))
	mem = hwfake.NewMemory()
	mb1Image{flags: 1, memLower: 639, memUpper: 1024, lay: compact}.load(mem, fuzzBase)
	f.Add(snapshot(mem, fuzzBase, 0x60))
	// GRUB's own, captured at this very address.
	addCapture(f, "grub-2.06-bios-multiboot-0x10000.bin")

	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseMultiboot1(fuzzMemory(fuzzBase, data), fuzzBase)
		checkParsed(t, "multiboot", info, err)
	})
}

func FuzzParseMultiboot2(f *testing.F) {
	var b mb2Info
	b.str(1, "console=ttyS0").str(2, "GRUB 2.06").module(0x200000, 0xa00000, "/boot/kernel").
		basicMeminfo(639, 523136).mmap(qemuE820...).
		tag(14, rsdp(0, "BOCHS ", 0x1ffe1f0f, 0)).tag(15, rsdp(2, "BOCHS ", 0x1ffe1f0f, 0x1ffe2000))
	f.Add(b.bytes())
	var e mb2Info
	e.efi64(0x1f9ee018).efiMmap(48, 1, ovmfDescs(48))
	f.Add(e.bytes())
	f.Add((&mb2Info{}).basicMeminfo(640, 1024).bytes())
	addCapture(f, "grub-2.06-bios-multiboot2-0x100008.bin")
	addCapture(f, "grub-2.06-ovmf-multiboot2-0x3000.bin")

	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseMultiboot2(fuzzMemory(fuzzBase, data), fuzzBase)
		checkParsed(t, "multiboot2", info, err)
	})
}

func FuzzParseUEFI(f *testing.F) {
	mem := hwfake.NewMemory()
	loadSystemTableAt(mem, fuzzBase, 0x80, 0xa0, "EDK II", []efiConfigEntry{
		{guidDXE, 0x1f9ef000}, {guidACPI10, 0x1fbfe014}, {guidACPI20, 0x1fbfe000}})
	st := snapshot(mem, fuzzBase, 0xa0+3*24)
	f.Add(ovmfDescs(48), uint16(48), uint8(1), st)
	f.Add(ovmfDescs(40), uint16(40), uint8(1), st[:120])
	f.Add(efiDescs(56, efiDesc{7, 0, 0x100, 0}), uint16(56), uint8(1), []byte{})

	const mapAt = 0x100000
	f.Fuzz(func(t *testing.T, descs []byte, descSize uint16, version uint8, systemTable []byte) {
		mem := fuzzMemory(mapAt, descs)
		var stAddr uint64
		if len(systemTable) > 0 {
			stAddr = fuzzBase
			mem.Load(stAddr, systemTable)
		}
		info, err := ParseUEFI(mem, mapAt, uint64(len(descs)), uint64(descSize), uint32(version), stAddr)
		checkParsed(t, "uefi", info, err)
	})
}
