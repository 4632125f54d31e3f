// Package loader puts a guest kernel into a new VM's memory the way a boot
// loader would, and says in what state its boot vCPU starts (BootState),
// for the VMX and SVM engines to apply. It speaks five boot protocols:
//
//   - Linux bzImage, the x86 boot protocol 2.12 and later
//     (Documentation/arch/x86/boot.rst), entered at its 64-bit entry point
//     in long mode with the boot_params "zero page" in RSI;
//   - Multiboot 0.6.96 and Multiboot2 1.0, for ELF32, ELF64 and a.out-kludge
//     images, entered in 32-bit protected mode with the magic in EAX and the
//     boot information in EBX;
//   - PVH (Xen's HVM direct boot ABI): an ELF with a XEN_ELFNOTE_PHYS32_ENTRY
//     note, entered in 32-bit protected mode with hvm_start_info in EBX;
//   - a 512-byte boot sector, entered in real mode at 0000:7C00 as a BIOS
//     would (without BIOS services).
//
// The memory map, the loader's own area (page tables, GDT, boot information)
// and the ACPI RSDP come from the guest's platform.Layout. Kernel images,
// ramdisks and modules are untrusted input: any that is truncated, corrupt,
// overlaps itself, would land outside usable guest RAM or on the loader's
// areas, or asks for absurd sizes is refused with an error naming the file,
// the field and the value, and nothing panics.
package loader

import (
	"bytes"
	"errors"
	"fmt"

	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// Guest is the VM a kernel is loaded into.
type Guest struct {
	// Memory is the guest's physical memory; Layout says where its RAM
	// and the loader's area are.
	Memory vcpu.Memory
	Layout *platform.Layout
	// RSDP is the guest-physical address of the ACPI RSDP that
	// platform.Build wrote (platform.RSDPAddress), or 0 for a guest
	// without ACPI tables.
	RSDP uint64
}

// Module is a file handed to the kernel beside it: a Multiboot module or a
// PVH module.
type Module struct {
	// Name names the module in errors ("initrd.img").
	Name string
	Data []byte
	// Cmdline is the module's string (Multiboot) or command line (PVH).
	Cmdline string
}

// Options are what the user asked for besides the kernel.
type Options struct {
	// KernelName names the kernel file in errors ("vmlinuz").
	KernelName string
	Cmdline    string
	// Initrd is the initial ramdisk. A bzImage gets it through
	// boot_params; Multiboot and PVH kernels get it as their first
	// module, before Modules (as QEMU's -initrd does).
	Initrd     []byte
	InitrdName string
	Modules    []Module
}

// Format is a kernel image format.
type Format uint8

const (
	FormatUnknown Format = iota
	FormatBzImage
	FormatPVH
	FormatMultiboot2
	FormatMultiboot
	// FormatBootSector: a 512-byte boot sector, entered in real mode.
	FormatBootSector
)

func (f Format) String() string {
	switch f {
	case FormatBzImage:
		return "bzImage"
	case FormatPVH:
		return "PVH"
	case FormatMultiboot2:
		return "multiboot2"
	case FormatMultiboot:
		return "multiboot"
	case FormatBootSector:
		return "boot sector"
	}
	return "unknown"
}

// Result is where the loader put things, and the boot vCPU's state.
type Result struct {
	Format Format
	State  BootState
	// Kernel covers every byte the kernel occupies (for a bzImage, its
	// init_size from the load address); Segments lists the pieces
	// loaded, one per ELF segment.
	Kernel   platform.Region
	Segments []platform.Region
	// Initrd is the ramdisk given to a bzImage; Modules the Multiboot or
	// PVH modules, the initrd first when there is one.
	Initrd  platform.Region
	Modules []platform.Region
	// Info is the boot information handed over: boot_params, the
	// Multiboot information or the PVH start info.
	Info uint64
	// Cmdline is the command line's address.
	Cmdline uint64
}

// Limits on what a user or an image may ask for.
const (
	// MaxCmdline bounds a command line or module string, in bytes.
	MaxCmdline = 16 << 10
	// MaxModules bounds the modules handed to a Multiboot or PVH kernel.
	MaxModules = 64
	// MaxSegments bounds an ELF image's program headers.
	MaxSegments = 128
)

// Errors classify what went wrong; every error the loader returns is an
// *Error wrapping one of them.
var (
	// ErrMalformed: the file is truncated, corrupt, or not what it claims.
	ErrMalformed = errors.New("malformed")
	// ErrUnsupported: a valid file asks for something this loader does
	// not do (a 32-bit-only bzImage, a video mode, a.out without kludge).
	ErrUnsupported = errors.New("unsupported")
	// ErrNoRoom: the file does not fit the guest's usable RAM where it
	// must go.
	ErrNoRoom = errors.New("does not fit")
	// ErrBadOption: the command line or module list itself is bad.
	ErrBadOption = errors.New("bad option")
	// ErrGuestMemory: guest memory refused a write.
	ErrGuestMemory = errors.New("guest memory")
)

// Error is a loader error: which file and what about it.
type Error struct {
	// File names the file and its role: `bzImage "vmlinuz"`, `initrd`,
	// `module 2 "fs.img"`.
	File string
	Msg  string
	Kind error
}

func (e *Error) Error() string { return "loader: " + e.File + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

func fileName(role, name string) string {
	if name == "" {
		return role
	}
	return fmt.Sprintf("%s %q", role, name)
}

// Detect names the boot protocol an image speaks, in the order a loader
// should prefer them: a bzImage by its "HdrS" setup header; then an ELF
// with a PVH note; then a Multiboot2 header; then a Multiboot header; then
// a boot sector (exactly 512 bytes ending in 55h AAh).
func Detect(image []byte) Format {
	if len(image) >= setupHeaderMagicOff+4 && bytes.Equal(image[setupHeaderMagicOff:setupHeaderMagicOff+4], []byte(setupHeaderMagic)) &&
		u16(image, bootFlagOff) == bootFlagValue {
		return FormatBzImage
	}
	if f, err := parseELF(image); err == nil {
		if _, ok, err := f.pvhEntry(); ok && err == nil {
			return FormatPVH
		}
	}
	if _, err := findMultiboot2(image); err == nil {
		return FormatMultiboot2
	}
	if _, err := findMultiboot1(image); err == nil {
		return FormatMultiboot
	}
	if isBootSector(image) {
		return FormatBootSector
	}
	return FormatUnknown
}

// Load detects the image's format and loads it with LoadLinux, LoadPVH,
// LoadMultiboot2, LoadMultiboot or LoadBootSector.
func Load(g Guest, image []byte, opts Options) (*Result, error) {
	switch Detect(image) {
	case FormatBzImage:
		return LoadLinux(g, image, opts)
	case FormatPVH:
		return LoadPVH(g, image, opts)
	case FormatMultiboot2:
		return LoadMultiboot2(g, image, opts)
	case FormatMultiboot:
		return LoadMultiboot(g, image, opts)
	case FormatBootSector:
		return LoadBootSector(g, image, opts)
	}
	return nil, &Error{File: fileName("kernel", opts.KernelName), Kind: ErrUnsupported,
		Msg: fmt.Sprintf("not a bzImage (no \"HdrS\" at %#x), not an ELF with a PVH note, no Multiboot or Multiboot2 header in its first %d bytes, and not a %d-byte boot sector",
			setupHeaderMagicOff, mb2SearchLimit, BootSectorSize)}
}
