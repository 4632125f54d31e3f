// Package bootinfo reads what the firmware or boot loader handed over at
// entry and turns it into one Info, whichever of the four ways the image was
// started: PVH (QEMU -kernel, Xen), Multiboot (GRUB `multiboot`), Multiboot2
// (GRUB `multiboot2`) or UEFI.
//
// Everything is read through hw.PhysMem and is untrusted: a loader with a bug
// or a corrupted structure gets an error naming the structure, the field and
// the address, never a panic or an unbounded loop. Counts and string lengths
// are capped (MaxMemoryEntries, MaxModules, MaxString) so that parsing costs
// a bounded amount of time and memory whatever the input.
package bootinfo

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf16"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw"
)

// Protocol is the way the image was entered.
type Protocol uint8

const (
	PVH        Protocol = iota + 1 // Xen/QEMU direct boot, hvm_start_info
	Multiboot1                     // Multiboot 0.6.96, GRUB `multiboot`
	Multiboot2                     // Multiboot2 1.0, GRUB `multiboot2`
	UEFI                           // UEFI application after ExitBootServices
)

func (p Protocol) String() string {
	switch p {
	case PVH:
		return "PVH"
	case Multiboot1:
		return "Multiboot"
	case Multiboot2:
		return "Multiboot2"
	case UEFI:
		return "UEFI"
	}
	return fmt.Sprintf("Protocol(%d)", uint8(p))
}

// Magic values that identify the protocol at the 32-bit entry point. The
// Multiboot ones are in EAX, with EBX holding the physical address of the
// information structure. The PVH ABI defines EBX only (Xen,
// docs/misc/pvh.pandoc: the other registers are undefined, and QEMU 7.2 leaves
// EAX 0): its magic is the first field of the start info EBX points to.
const (
	PVHMagic        = 0x336ec578 // xen/include/public/arch-x86/hvm/start_info.h, XEN_HVM_START_MAGIC_VALUE
	Multiboot1Magic = 0x2BADB002 // Multiboot 0.6.96, 3.2 "Machine state"
	Multiboot2Magic = 0x36d76289 // Multiboot2 1.0, 3.3 "I386 machine state"
)

// Limits on what a parser accepts. They are far above what real firmware
// produces and bound the work done on a corrupt structure.
const (
	MaxMemoryEntries = 4096    // memory map entries or EFI descriptors
	MaxModules       = 256     // boot modules
	MaxString        = 4096    // bytes of a string, its terminating NUL included
	MaxConfigTables  = 1024    // EFI configuration table entries
	MaxMultiboot2    = 1 << 20 // bytes of Multiboot2 boot information
)

// Module is a file the loader placed in memory for the image: a guest
// kernel, an initramfs, a configuration.
type Module struct {
	Start, Size uint64
	CmdLine     string
}

// Info is what the image learns at entry, normalized.
type Info struct {
	Protocol Protocol
	// Memory is the normalized memory map. Boot modules are marked
	// memmap.Loader in it, so that they are not handed out as free memory
	// before they are consumed.
	Memory memmap.Map
	// RSDP is the physical address of the ACPI RSDP, 0 when the loader
	// gave none (Multiboot never does: the caller then searches the BIOS
	// areas, ACPI 6.5, 5.2.5.1).
	RSDP uint64
	// RSDPCopy holds the bytes of the RSDP where the loader passed a copy
	// instead of its address (Multiboot2 tags 14 and 15). Its signature has
	// been checked; its checksum is the ACPI code's to check.
	RSDPCopy []byte
	CmdLine  string
	// Loader names the boot loader (Multiboot) or the firmware vendor
	// (UEFI), "" where none is given.
	Loader  string
	Modules []Module
	// EFISystemTable is the physical address of the EFI system table, 0
	// unless booted through UEFI (directly or by Multiboot2 on UEFI).
	EFISystemTable uint64
}

func (i *Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "boot: %v", i.Protocol)
	if i.Loader != "" {
		fmt.Fprintf(&b, " from %q", i.Loader)
	}
	fmt.Fprintf(&b, ", command line %q, %d modules", i.CmdLine, len(i.Modules))
	switch {
	case i.RSDP != 0:
		fmt.Fprintf(&b, ", ACPI RSDP at %#x", i.RSDP)
	case len(i.RSDPCopy) != 0:
		fmt.Fprintf(&b, ", ACPI RSDP copy (%d bytes)", len(i.RSDPCopy))
	default:
		b.WriteString(", no ACPI RSDP")
	}
	b.WriteString("\n")
	for n, m := range i.Modules {
		fmt.Fprintf(&b, "  module %d: %#x-%#x %q\n", n, m.Start, m.Start+m.Size, m.CmdLine)
	}
	b.WriteString(i.Memory.String())
	return b.String()
}

// FromRegisters parses what the 32-bit entry point was handed: Multiboot or
// Multiboot2 when EAX holds their magic, otherwise PVH when EBX points to a
// start info with the PVH magic. UEFI enters differently and uses ParseUEFI.
func FromRegisters(mem hw.PhysMem, eax, ebx uint32) (*Info, error) {
	switch eax {
	case Multiboot1Magic:
		return ParseMultiboot1(mem, uint64(ebx))
	case Multiboot2Magic:
		return ParseMultiboot2(mem, uint64(ebx))
	}
	var b [4]byte
	if err := mem.ReadPhys(uint64(ebx), b[:]); err != nil {
		return nil, fmt.Errorf("bootinfo: EAX %#x is no Multiboot magic value, and EBX %#x cannot be read for a PVH start info: %w", eax, ebx, err)
	}
	if m := binary.LittleEndian.Uint32(b[:]); m != PVHMagic {
		return nil, fmt.Errorf("bootinfo: EAX %#x is no Multiboot magic value (%#x, %#x), and EBX %#x points to %#x, not the PVH start info magic %#x",
			eax, Multiboot1Magic, Multiboot2Magic, ebx, m, PVHMagic)
	}
	return ParsePVH(mem, uint64(ebx))
}

// reader reads boot structures from physical memory, prefixing errors with
// the protocol's name.
type reader struct {
	mem    hw.PhysMem
	prefix string
}

func (r reader) errorf(format string, args ...any) error {
	return fmt.Errorf(r.prefix+": "+format, args...)
}

// read fills buf from addr; what names the structure for the error.
func (r reader) read(addr uint64, buf []byte, what string) error {
	if addr+uint64(len(buf)) < addr {
		return r.errorf("%s at %#x runs past the top of the address space", what, addr)
	}
	if err := r.mem.ReadPhys(addr, buf); err != nil {
		return r.errorf("reading %s at %#x: %w", what, addr, err)
	}
	return nil
}

func (r reader) u32(addr uint64, what string) (uint32, error) {
	var b [4]byte
	if err := r.read(addr, b[:], what); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// cString reads a NUL-terminated byte string of at most MaxString bytes,
// NUL included. Address 0 stands for no string: no loader puts one there.
func (r reader) cString(addr uint64, what string) (string, error) {
	if addr == 0 {
		return "", nil
	}
	var out []byte
	var chunk [256]byte
	for len(out) < MaxString {
		// Stop each read at a page boundary: what is readable ends at one.
		n := min(uint64(len(chunk)), uint64(MaxString-len(out)), 4096-(addr+uint64(len(out)))%4096)
		at := addr + uint64(len(out))
		if err := r.read(at, chunk[:n], what); err != nil {
			return "", err
		}
		for i, c := range chunk[:n] {
			if c == 0 {
				return string(append(out, chunk[:i]...)), nil
			}
		}
		out = append(out, chunk[:n]...)
	}
	return "", r.errorf("%s at %#x has no NUL within %d bytes", what, addr, MaxString)
}

// ucs2String reads a NUL-terminated UCS-2 string (UEFI CHAR16, UEFI 2.10,
// 2.3.1 "Data Types") of at most MaxString bytes, NUL included.
func (r reader) ucs2String(addr uint64, what string) (string, error) {
	if addr == 0 {
		return "", nil
	}
	var units []uint16
	var chunk [256]byte
	for read := uint64(0); read < MaxString; {
		n := min(uint64(len(chunk)), MaxString-read, 4096-(addr+read)%4096)
		n &^= 1
		if n == 0 { // addr is odd and a page ends mid-character
			n = 2
		}
		if err := r.read(addr+read, chunk[:n], what); err != nil {
			return "", err
		}
		for i := uint64(0); i+1 < n; i += 2 {
			u := binary.LittleEndian.Uint16(chunk[i:])
			if u == 0 {
				return string(utf16.Decode(units)), nil
			}
			units = append(units, u)
		}
		read += n
	}
	return "", r.errorf("%s at %#x has no NUL within %d bytes", what, addr, MaxString)
}

// e820Kind maps an E820 address range type (ACPI 6.5, 15.1, Table 15.1),
// which PVH, Multiboot and Multiboot2 memory maps all use, to a Kind. Types
// the table does not define are reserved, as ACPI requires.
func e820Kind(t uint32) memmap.Kind {
	switch t {
	case 1: // AddressRangeMemory
		return memmap.Usable
	case 3: // AddressRangeACPI
		return memmap.ACPIReclaimable
	case 4: // AddressRangeNVS
		return memmap.ACPINVS
	case 5, 6: // AddressRangeUnusable, AddressRangeDisabled
		return memmap.Unusable
	case 7: // AddressRangePersistentMemory
		return memmap.Persistent
	}
	return memmap.Reserved // 2 AddressRangeReserved, and anything unknown
}

// finish normalizes the raw map, marking the modules' memory as Loader. A
// map without a page of usable RAM is refused here rather than left for the
// page allocator to discover.
func (r reader) finish(info *Info, raw []memmap.Region) (*Info, error) {
	for _, m := range info.Modules {
		raw = append(raw, memmap.Region{Start: m.Start, Size: m.Size, Kind: memmap.Loader})
	}
	info.Memory = memmap.Normalize(raw)
	if info.Memory.Total(memmap.Usable) == 0 {
		return nil, r.errorf("memory map has no usable RAM (%d entries)", len(raw)-len(info.Modules))
	}
	return info, nil
}

// checkModule validates a module's range.
func (r reader) checkModule(i int, start, size uint64) error {
	if start+size < start {
		return r.errorf("module %d at %#x of size %#x runs past the top of the address space", i, start, size)
	}
	return nil
}

// checkTable refuses a table of count entries of size bytes at addr that
// would run past the top of the address space (count and size are bounded
// by the callers, so the product cannot overflow).
func (r reader) checkTable(what string, addr, count, size uint64) error {
	if addr+count*size < addr {
		return r.errorf("%s at %#x with %d entries of %d bytes runs past the top of the address space", what, addr, count, size)
	}
	return nil
}

// rangeEntry turns a memory map entry into a Region, refusing one that wraps:
// such a map is corrupt, and guessing which entries to trust is worse than
// stopping.
func (r reader) rangeEntry(what string, i int, start, size uint64, kind memmap.Kind) (memmap.Region, error) {
	if start+size < start {
		return memmap.Region{}, r.errorf("%s entry %d at %#x of size %#x runs past the top of the address space", what, i, start, size)
	}
	return memmap.Region{Start: start, Size: size, Kind: kind}, nil
}
