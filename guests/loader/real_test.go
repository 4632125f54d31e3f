package loader

// Tests on real images: Debian's kernel (a bzImage) and the hypervisor's
// own TamaGo image (ELF64 with a PVH note and Multiboot headers). They are
// not in the repository; each test skips loudly, saying how to get the
// file, when it is absent.

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// realKernel returns the guest kernel named by TAMAVISOR_GUEST_KERNEL, or
// build/guest/vmlinuz, or skips.
func realKernel(t *testing.T) ([]byte, string) {
	t.Helper()
	path := os.Getenv("TAMAVISOR_GUEST_KERNEL")
	if path == "" {
		path = filepath.Join("..", "..", "build", "guest", "vmlinuz")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		skipLoudly(t, "no real guest kernel at %s (%v). Get Debian's: "+
			"`apt-cache search linux-image-6.1 | grep amd64-unsigned`, then in a scratch directory "+
			"`apt-get download linux-image-6.1.0-<N>-amd64-unsigned && dpkg -x linux-image-6.1.0-*-amd64-unsigned_*.deb x && "+
			"mkdir -p build/guest && cp x/boot/vmlinuz-* <repository>/build/guest/vmlinuz`, "+
			"or point TAMAVISOR_GUEST_KERNEL at a vmlinuz", path, err)
	}
	return b, path
}

func TestRealKernelHeader(t *testing.T) {
	k, path := realKernel(t)
	b, err := parseBzImage(k, path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	t.Logf("%s: protocol %d.%02d, %d setup bytes, %d kernel bytes, init_size %#x, pref_address %#x, alignment %#x, xloadflags %#x, cmdline_size %d, initrd_addr_max %#x",
		path, b.version>>8, b.version&0xff, b.setupSize, len(b.kernel), b.initSize, b.prefAddress, b.alignment, b.xloadflags, b.cmdlineSize, b.initrdMax)
	// Facts of every x86-64 Debian 6.1 kernel (CONFIG_RELOCATABLE,
	// CONFIG_PHYSICAL_START 0x1000000, CONFIG_PHYSICAL_ALIGN 0x200000).
	if b.version < 0x020f {
		t.Errorf("protocol %#x, want 2.15 or later", b.version)
	}
	if !b.relocatable || b.prefAddress != 0x1000000 || b.alignment != 0x200000 {
		t.Errorf("relocatable %v pref_address %#x kernel_alignment %#x, want relocatable at 16 MiB, 2 MiB aligned", b.relocatable, b.prefAddress, b.alignment)
	}
	if b.xloadflags&xlfKernel64 == 0 || b.xloadflags&(1<<1) == 0 {
		t.Errorf("xloadflags %#x lacks XLF_KERNEL_64 or XLF_CAN_BE_LOADED_ABOVE_4G", b.xloadflags)
	}
	if b.initSize <= uint64(len(b.kernel)) || b.initSize%4096 != 0 || b.initSize > 256<<20 {
		t.Errorf("init_size %#x: want page-aligned, more than the %d-byte compressed kernel, below 256 MiB", b.initSize, len(b.kernel))
	}
	// syssize covers the protected-mode code; a signed kernel has its
	// Authenticode signature after it.
	if b.setupSize+uint64(len(b.kernel)) > uint64(len(k)) || uint64(len(k))-(b.setupSize+uint64(len(b.kernel))) > 64<<10 {
		t.Errorf("setup %d + syssize %d against a file of %d bytes", b.setupSize, len(b.kernel), len(k))
	}
	if b.cmdlineSize < 255 || b.initrdMax < 0x37ffffff {
		t.Errorf("cmdline_size %d initrd_addr_max %#x", b.cmdlineSize, b.initrdMax)
	}
}

func TestRealKernelLoad(t *testing.T) {
	k, path := realKernel(t)
	g, mem := newGuest(t, 512*platform.MiB)
	initrd := realInitrd(t)
	cmdline := "console=ttyS0 earlyprintk=serial panic=-1"
	res, err := LoadLinux(g, k, Options{KernelName: filepath.Base(path), Cmdline: cmdline, Initrd: initrd, InitrdName: "initramfs.cpio"})
	if err != nil {
		t.Fatal(err)
	}
	setup := (int(k[0x1f1]) + 1) * 512
	le := binary.LittleEndian
	syssize := int(le.Uint32(k[0x1f4:])) * 16
	initSize := uint64(le.Uint32(k[0x260:]))
	if res.Kernel != (platform.Region{Start: 0x1000000, End: 0x1000000 + initSize}) {
		t.Errorf("kernel %v, want init_size from 16 MiB", res.Kernel)
	}
	if !bytes.Equal(mem.read(t, 0x1000000, syssize), k[setup:setup+syssize]) {
		t.Error("the protected-mode kernel in memory differs from the file's")
	}
	checkLongModeState(t, g, mem, res.State, 0x1000200)
	if res.State.GPR[vcpu.RSI] != res.Info {
		t.Errorf("RSI %#x, boot_params %#x", res.State.GPR[vcpu.RSI], res.Info)
	}
	// The decompressor's whole working area is identity-mapped.
	if pa, ok := translate(t, mem, res.State.Control.CR3, res.Kernel.End-1); !ok || pa != res.Kernel.End-1 {
		t.Errorf("the end of init_size %#x maps to %#x", res.Kernel.End-1, pa)
	}
	if 512*platform.MiB-res.Initrd.End >= 4096 || res.Initrd.Start%4096 != 0 || !bytes.Equal(mem.read(t, res.Initrd.Start, len(initrd)), initrd) {
		t.Errorf("initrd at %v, want it at the top of RAM", res.Initrd)
	}
	if res.Initrd.Overlaps(res.Kernel) {
		t.Error("the initrd overlaps the kernel's init_size")
	}
	zp := mem.read(t, res.Info, 4096)
	for off := 0x1f1; off < 0x202+int(k[0x201]); off++ {
		switch {
		case off == 0x1fa || off == 0x1fb || off >= 0x210 && off < 0x212 || off >= 0x214 && off < 0x220 ||
			off >= 0x224 && off < 0x226 || off >= 0x228 && off < 0x22c || off >= 0x23c && off < 0x240 || off >= 0x250 && off < 0x258:
			continue // written by the loader
		}
		if zp[off] != k[off] {
			t.Errorf("boot_params %#x = %#x, the kernel's header has %#x", off, zp[off], k[off])
		}
	}
	if zp[0x210] != 0xff || zp[0x211] != 0x81 || le.Uint32(zp[0x218:]) != uint32(res.Initrd.Start) || le.Uint32(zp[0x21c:]) != uint32(len(initrd)) {
		t.Errorf("type_of_loader %#x loadflags %#x ramdisk %#x+%#x", zp[0x210], zp[0x211], le.Uint32(zp[0x218:]), le.Uint32(zp[0x21c:]))
	}
	if mem.cstring(t, uint64(le.Uint32(zp[0x228:]))) != cmdline || le.Uint64(zp[0x70:]) != platform.RSDPAddress {
		t.Error("command line or acpi_rsdp_addr wrong")
	}
}

// realInitrd returns the initramfs named by TAMAVISOR_GUEST_INITRD, or
// build/guest/initramfs.cpio, or a synthetic one of 5 MiB.
func realInitrd(t *testing.T) []byte {
	path := os.Getenv("TAMAVISOR_GUEST_INITRD")
	if path == "" {
		path = filepath.Join("..", "..", "build", "guest", "initramfs.cpio")
	}
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		t.Logf("initrd: %s, %d bytes", path, len(b))
		return b
	}
	t.Logf("initrd: no %s, a synthetic one", path)
	return pattern(5<<20+17, 11)
}

// tamagoImage returns the hypervisor's own image, build/tamavisor.elf (or
// TAMAVISOR_IMAGE), or skips.
func tamagoImage(t *testing.T) ([]byte, string) {
	t.Helper()
	path := os.Getenv("TAMAVISOR_IMAGE")
	if path == "" {
		path = filepath.Join("..", "..", "build", "tamavisor.elf")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		skipLoudly(t, "no TamaGo image at %s (%v): run `make image` in the repository, or point TAMAVISOR_IMAGE at one", path, err)
	}
	return b, path
}

// The hypervisor's image loads by each of the protocols it speaks, its
// segments where debug/elf says they go.
func TestRealTamaGoImage(t *testing.T) {
	img, path := tamagoImage(t)
	ef, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var pvhEntry uint64
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(data, []byte("Xen\x00")); i >= 12 && binary.LittleEndian.Uint32(data[i-4:]) == 18 {
			pvhEntry = uint64(binary.LittleEndian.Uint32(data[i+4:]))
		}
	}
	if pvhEntry == 0 {
		t.Fatalf("%s has no PVH note that debug/elf sees", path)
	}
	if Detect(img) != FormatPVH {
		t.Errorf("Detect = %v, want PVH first", Detect(img))
	}
	check := func(t *testing.T, mem *sparseRAM, res *Result) {
		for _, p := range ef.Progs {
			if p.Type != elf.PT_LOAD {
				continue
			}
			want := make([]byte, p.Filesz)
			if _, err := p.ReadAt(want, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mem.read(t, p.Paddr, len(want)), want) {
				t.Errorf("segment at %#x differs from debug/elf's", p.Paddr)
			}
			if p.Memsz > p.Filesz && !allZero(mem.read(t, p.Paddr+p.Filesz, int(min(p.Memsz-p.Filesz, 1<<20)))) {
				t.Errorf("bss of the segment at %#x is not zero", p.Paddr)
			}
		}
	}
	for _, c := range []struct {
		name  string
		load  func(Guest, []byte, Options) (*Result, error)
		entry uint64
		magic uint64
	}{
		{"PVH", LoadPVH, pvhEntry, 0},
		{"multiboot", LoadMultiboot, ef.Entry, 0x2badb002},
		{"multiboot2", LoadMultiboot2, ef.Entry, 0x36d76289},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "multiboot" {
				if _, err := findMultiboot1(img); err != nil {
					skipLoudly(t, "%s has no Multiboot header: %v", path, err)
				}
			}
			if c.name == "multiboot2" {
				if _, err := findMultiboot2(img); err != nil {
					skipLoudly(t, "%s has no Multiboot2 header: %v", path, err)
				}
			}
			g, mem := newGuest(t, 512*platform.MiB)
			res, err := c.load(g, img, Options{KernelName: "tamavisor.elf", Cmdline: "tamavisor.test=1", Modules: []Module{{Name: "cfg", Data: []byte("guest config"), Cmdline: "cfg"}}})
			if err != nil {
				t.Fatal(err)
			}
			checkProtectedState(t, g, mem, res.State, c.entry)
			if res.State.GPR[vcpu.RAX] != c.magic || res.State.GPR[vcpu.RBX] != res.Info {
				t.Errorf("EAX %#x EBX %#x", res.State.GPR[vcpu.RAX], res.State.GPR[vcpu.RBX])
			}
			check(t, mem, res)
		})
	}
}
