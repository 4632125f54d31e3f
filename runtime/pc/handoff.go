//go:build tamago

package pc

// Set by entry_amd64.s before the Go runtime starts. They live in the
// image's data, never in firmware memory, so they survive whatever the
// runtime does with low memory.
var (
	entryMagic uint32
	entryInfo  uint64

	efiImageHandle  uint64
	efiSystemTable  uint64
	efiMapSize      uint64
	efiMapKey       uint64
	efiDescSize     uint64
	efiDescVersion  uint32
	efiGetMapStatus uint64
	efiExitStatus   uint64
	efiMap          [efiMapBufferSize]byte
)

const efiMapBufferSize = 64 * 1024 // EFI_MAP_BUFFER_SIZE in entry_amd64.s

// Entry magics in EAX, plus the value efi_main stores for the UEFI path.
const (
	MagicPVH        = 0x336ec578
	MagicMultiboot1 = 0x2badb002
	MagicMultiboot2 = 0x36d76289
	MagicUEFI       = 0x45464920 // "EFI ", not a firmware value
)

// Handoff is what the firmware or boot loader passed to the image.
type Handoff struct {
	// Magic tells the boot protocol (one of the Magic constants).
	Magic uint32
	// Info is the physical address of the protocol's boot information
	// (hvm_start_info, Multiboot information) or, for UEFI, of the
	// memory map buffer.
	Info uint64

	// UEFI only.
	EFISystemTable  uint64
	EFIMapSize      uint64
	EFIDescSize     uint64
	EFIDescVersion  uint32
	EFIGetMapStatus uint64
	EFIExitStatus   uint64
}

// BootHandoff returns the entry state recorded by the entry code.
func BootHandoff() Handoff {
	return Handoff{
		Magic:           entryMagic,
		Info:            entryInfo,
		EFISystemTable:  efiSystemTable,
		EFIMapSize:      efiMapSize,
		EFIDescSize:     efiDescSize,
		EFIDescVersion:  efiDescVersion,
		EFIGetMapStatus: efiGetMapStatus,
		EFIExitStatus:   efiExitStatus,
	}
}
