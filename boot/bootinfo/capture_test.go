package bootinfo

// Tests on structures captured from real loaders (see testdata/README.md for
// how): QEMU 7.2's PVH loader, Debian's GRUB 2.06 on SeaBIOS and on OVMF.

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw/hwfake"
)

// loadCapture puts a captured file at the physical address it came from.
func loadCapture(t *testing.T, mem *hwfake.Memory, addr uint64, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	mem.Load(addr, b)
	return b
}

// The E820 map QEMU 7.2 gives q35 with -m 512M, through PVH and through
// SeaBIOS to GRUB alike.
var capturedE820 = []memmap.Region{
	reg(0, 0x9f000, memmap.Usable), // 0x9fc00 trimmed to a page
	reg(0x9fc00, 0x400, memmap.Reserved),
	reg(0xf0000, 0x10000, memmap.Reserved),
	reg(0x100000, 0x1fedf000, memmap.Usable),
	reg(0x1ffdf000, 0x21000, memmap.Reserved),
	reg(0xb0000000, 0x10000000, memmap.Reserved), // PCIe MMCONFIG
	reg(0xfed1c000, 0x4000, memmap.Reserved),     // ICH9 RCRB
	reg(0xfffc0000, 0x40000, memmap.Reserved),    // BIOS flash
	reg(0xfd00000000, 0x300000000, memmap.Reserved),
}

// withModule splits the Usable region holding [start, end) around it as a
// Loader region, trimming the rest of the Usable region to pages.
func withModule(m []memmap.Region, start, end uint64) []memmap.Region {
	var out []memmap.Region
	for _, r := range m {
		if r.Kind != memmap.Usable || end <= r.Start || r.End() <= start {
			out = append(out, r)
			continue
		}
		if lo := start &^ 0xfff; lo > r.Start {
			out = append(out, reg(r.Start, lo-r.Start, memmap.Usable))
		}
		out = append(out, reg(start, end-start, memmap.Loader))
		if hi := (end + 0xfff) &^ 0xfff; hi < r.End() {
			out = append(out, reg(hi, r.End()-hi, memmap.Usable))
		}
	}
	return out
}

func TestCapturedQEMUPVH(t *testing.T) {
	mem := hwfake.NewMemory()
	// qemu-system-x86_64 -M q35 -m 512M -kernel hlt.elf -initrd <300000 bytes>
	//   -append "console=ttyS0 tamavisor.capture=1": EBX was 0x21e0.
	loadCapture(t, mem, 0, "qemu-7.2-q35-pvh-0x0.bin")
	info, err := FromRegisters(mem, 0, 0x21e0) // QEMU leaves EAX 0 at the PVH entry
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol != PVH || info.CmdLine != "console=ttyS0 tamavisor.capture=1" || info.RSDP != 0xf59e0 || info.Loader != "" {
		t.Errorf("info = %+v", info)
	}
	if want := []Module{{0x1ff8e000, 300000, ""}}; !reflect.DeepEqual(info.Modules, want) {
		t.Errorf("modules = %+v, want %+v", info.Modules, want)
	}
	checkMemory(t, info.Memory, withModule(capturedE820, 0x1ff8e000, 0x1ff8e000+300000)...)
}

func TestCapturedGRUBMultiboot(t *testing.T) {
	mem := hwfake.NewMemory()
	// GRUB: multiboot /boot/hlt.elf console=ttyS0 tamavisor.capture=multiboot
	//       module /boot/mod.bin guest=linux quiet    (5000 bytes)
	loadCapture(t, mem, 0x10000, "grub-2.06-bios-multiboot-0x10000.bin")
	info, err := FromRegisters(mem, 0x2badb002, 0x10000)
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol != Multiboot1 || info.CmdLine != "console=ttyS0 tamavisor.capture=multiboot" || info.Loader != "GRUB 2.06-13+deb12u2" || info.RSDP != 0 {
		t.Errorf("info = %+v", info)
	}
	if want := []Module{{0x101000, 5000, "guest=linux quiet"}}; !reflect.DeepEqual(info.Modules, want) {
		t.Errorf("modules = %+v, want %+v", info.Modules, want)
	}
	checkMemory(t, info.Memory, withModule(capturedE820, 0x101000, 0x101000+5000)...)
}

func TestCapturedGRUBMultiboot2BIOS(t *testing.T) {
	mem := hwfake.NewMemory()
	// GRUB: multiboot2 /boot/hlt.elf console=ttyS0 tamavisor.capture=multiboot2
	//       module2 /boot/mod.bin guest=linux quiet
	// Tags 21, 1, 2, 10, 3, 6, 9, 4, 5, 8, 14, 0: SeaBIOS has an ACPI 1.0 RSDP only.
	loadCapture(t, mem, 0x100008, "grub-2.06-bios-multiboot2-0x100008.bin")
	info, err := FromRegisters(mem, 0x36d76289, 0x100008)
	if err != nil {
		t.Fatal(err)
	}
	if info.Protocol != Multiboot2 || info.CmdLine != "console=ttyS0 tamavisor.capture=multiboot2" || info.Loader != "GRUB 2.06-13+deb12u2" || info.EFISystemTable != 0 {
		t.Errorf("info = %+v", info)
	}
	if len(info.RSDPCopy) != 20 || !bytes.HasPrefix(info.RSDPCopy, []byte("RSD PTR ")) || string(info.RSDPCopy[9:15]) != "BOCHS " {
		t.Errorf("RSDPCopy = %q", info.RSDPCopy)
	}
	if want := []Module{{0x101000, 5000, "guest=linux quiet"}}; !reflect.DeepEqual(info.Modules, want) {
		t.Errorf("modules = %+v, want %+v", info.Modules, want)
	}
	checkMemory(t, info.Memory, withModule(capturedE820, 0x101000, 0x101000+5000)...)
}

// ovmfCaptured loads GRUB's Multiboot2 information on OVMF and the EFI system
// table with its vendor string.
func ovmfCaptured(t *testing.T) *hwfake.Memory {
	mem := hwfake.NewMemory()
	loadCapture(t, mem, 0x3000, "grub-2.06-ovmf-multiboot2-0x3000.bin")
	loadCapture(t, mem, 0x1f5ec000, "ovmf-system-table-0x1f5ec000.bin")
	loadCapture(t, mem, 0x1f51c800, "ovmf-vendor-0x1f51c800.bin")
	return mem
}

// checkOVMFMemory checks what is known of the OVMF map (122 descriptors,
// 48 bytes each) from a separate decoding of the capture.
func checkOVMFMemory(t *testing.T, m memmap.Map, usable uint64) {
	t.Helper()
	for _, c := range []struct {
		kind  memmap.Kind
		total uint64
	}{
		{memmap.Usable, usable},
		{memmap.FirmwareRuntime, 0x2e1000}, // runtime code and data, all with EFI_MEMORY_RUNTIME
		{memmap.ACPINVS, 0x201000},
		{memmap.ACPIReclaimable, 0x12000},
		{memmap.Reserved, 0x10080000}, // 0x1f6ed000 and the MMCONFIG window
	} {
		if got := m.Total(c.kind); got != c.total {
			t.Errorf("%v: %#x bytes, want %#x", c.kind, got, c.total)
		}
	}
	// Runtime services data and code are adjacent: one region.
	if !m.Contains(reg(0x1f4ed000, 0x200000, memmap.FirmwareRuntime)) {
		t.Errorf("runtime services at 0x1f4ed000 not one region:\n%v", m)
	}
	if !m.Contains(reg(0xb0000000, 0x10000000, memmap.Reserved)) {
		t.Error("MMCONFIG window not reserved")
	}
}

func TestCapturedGRUBMultiboot2OVMF(t *testing.T) {
	mem := ovmfCaptured(t)
	// Tags 21, 1, 2, 3, 6, 9, 4, 12, 14, 15, 17, 0.
	info, err := FromRegisters(mem, 0x36d76289, 0x3000)
	if err != nil {
		t.Fatal(err)
	}
	if info.CmdLine != "console=ttyS0 tamavisor.capture=efi" || info.EFISystemTable != 0x1f5ec018 {
		t.Errorf("info = %+v", info)
	}
	if len(info.RSDPCopy) != 36 || info.RSDPCopy[15] != 2 {
		t.Errorf("RSDPCopy = % x, want the ACPI 2.0 one", info.RSDPCopy)
	}
	if want := []Module{{0x1000, 5000, "guest=linux quiet"}}; !reflect.DeepEqual(info.Modules, want) {
		t.Errorf("modules = %+v, want %+v", info.Modules, want)
	}
	// The module's pages [0x1000, 0x3000) are not usable.
	checkOVMFMemory(t, info.Memory, 0x1fa2c000-0x2000)
	if k, _ := info.Memory.KindAt(0x1000); k != memmap.Loader {
		t.Errorf("module memory is %v", k)
	}
}

func TestCapturedOVMFUEFI(t *testing.T) {
	mem := ovmfCaptured(t)
	// The descriptors of the EFI memory map tag (at 0x32f0) are what
	// GetMemoryMap returned at ExitBootServices.
	info, err := ParseUEFI(mem, 0x32f0+16, 122*48, 48, 1, 0x1f5ec018)
	if err != nil {
		t.Fatal(err)
	}
	// ACPI_20 at 0x1f77e014 is listed after ACPI (1.0) at 0x1f77e000.
	if info.Protocol != UEFI || info.Loader != "EDK II" || info.RSDP != 0x1f77e014 || info.EFISystemTable != 0x1f5ec018 {
		t.Errorf("info = %+v", info)
	}
	checkOVMFMemory(t, info.Memory, 0x1fa2c000)
}
