package bootinfo

import (
	"encoding/binary"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw"
)

// EFI_MEMORY_TYPE values (UEFI 2.10, 7.2 "EFI_BOOT_SERVICES.AllocatePages",
// and Table 7.10 "Memory Type Usage after ExitBootServices()").
const (
	efiReservedMemoryType      = 0
	efiLoaderCode              = 1
	efiLoaderData              = 2
	efiBootServicesCode        = 3
	efiBootServicesData        = 4
	efiRuntimeServicesCode     = 5
	efiRuntimeServicesData     = 6
	efiConventionalMemory      = 7
	efiUnusableMemory          = 8
	efiACPIReclaimMemory       = 9
	efiACPIMemoryNVS           = 10
	efiMemoryMappedIO          = 11
	efiMemoryMappedIOPortSpace = 12
	efiPalCode                 = 13
	efiPersistentMemory        = 14
	efiUnacceptedMemoryType    = 15
)

// EFI_MEMORY_DESCRIPTOR (UEFI 2.10, 7.2 "EFI_BOOT_SERVICES.GetMemoryMap"):
// u32 Type, 4 bytes padding, u64 PhysicalStart, VirtualStart,
// NumberOfPages, Attribute. Firmware may return a larger DescriptorSize;
// the descriptors are then that far apart.
const (
	efiDescTypeOff       = 0
	efiDescPhysStartOff  = 8
	efiDescNumPagesOff   = 24
	efiDescAttributeOff  = 32
	efiDescSize          = 40
	efiDescVersion       = 1 // EFI_MEMORY_DESCRIPTOR_VERSION
	efiMaxDescSize       = 4096
	efiPageSize          = 4096
	efiMemoryRuntimeAttr = 1 << 63 // EFI_MEMORY_RUNTIME
)

// EFI_SYSTEM_TABLE for x64 (UEFI 2.10, 4.3): the 24-byte EFI_TABLE_HEADER
// (4.2) then pointers and UINTNs, 8 bytes each.
const (
	efiSystemTableSignature = 0x5453595320494249 // "IBI SYST"
	efiSTFirmwareVendorOff  = 24
	efiSTNumTablesOff       = 104
	efiSTConfigTableOff     = 112
	efiSystemTableSize      = 120
	efiConfigTableEntrySize = 24 // EFI_CONFIGURATION_TABLE: EFI_GUID, VOID*
)

// GUIDs of the ACPI RSDP in the configuration table (UEFI 2.10, 4.6.1.1), in
// memory order: EFI_GUID's first three fields are little-endian integers,
// the last eight bytes are stored as written.
var (
	// EFI_ACPI_20_TABLE_GUID 8868e871-e4f1-11d3-bc22-0080c73c8881
	efiACPI20TableGUID = [16]byte{0x71, 0xe8, 0x68, 0x88, 0xf1, 0xe4, 0xd3, 0x11, 0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81}
	// ACPI_TABLE_GUID eb9d2d30-2d88-11d3-9a16-0090273fc14d
	efiACPI10TableGUID = [16]byte{0x30, 0x2d, 0x9d, 0xeb, 0x88, 0x2d, 0xd3, 0x11, 0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}
)

// efiKind maps a descriptor to a Kind for use after ExitBootServices.
// Anything with EFI_MEMORY_RUNTIME must stay mapped for runtime services,
// whatever its type (flash behind MMIO, for one).
func efiKind(typ uint32, attr uint64) memmap.Kind {
	if attr&efiMemoryRuntimeAttr != 0 {
		return memmap.FirmwareRuntime
	}
	switch typ {
	case efiLoaderCode, efiLoaderData, efiBootServicesCode, efiBootServicesData, efiConventionalMemory:
		return memmap.Usable
	case efiRuntimeServicesCode, efiRuntimeServicesData:
		return memmap.FirmwareRuntime
	case efiUnusableMemory:
		return memmap.Unusable
	case efiACPIReclaimMemory:
		return memmap.ACPIReclaimable
	case efiACPIMemoryNVS:
		return memmap.ACPINVS
	case efiPersistentMemory:
		return memmap.Persistent
	}
	// Reserved, MMIO, MMIO port space, PAL code, unaccepted memory (which
	// must be accepted through the TDX or SEV-SNP firmware before use), and
	// OEM or OS-loader types.
	return memmap.Reserved
}

// efiMemoryMap decodes mapSize bytes of descriptors at mapAddr.
func efiMemoryMap(r reader, mapAddr, mapSize, descSize uint64, descVersion uint32) ([]memmap.Region, error) {
	switch {
	case descVersion != efiDescVersion:
		return nil, r.errorf("memory descriptor version is %d, want %d", descVersion, efiDescVersion)
	case descSize < efiDescSize || descSize > efiMaxDescSize:
		return nil, r.errorf("memory descriptor size is %d, want %d to %d", descSize, efiDescSize, efiMaxDescSize)
	case mapSize == 0:
		return nil, r.errorf("memory map is empty")
	case mapSize%descSize != 0:
		return nil, r.errorf("memory map size %d is not a multiple of the descriptor size %d", mapSize, descSize)
	case mapSize/descSize > MaxMemoryEntries:
		return nil, r.errorf("memory map has %d descriptors, more than %d", mapSize/descSize, MaxMemoryEntries)
	}
	count := mapSize / descSize
	if err := r.checkTable("memory map", mapAddr, count, descSize); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	raw := make([]memmap.Region, 0, count)
	for i := uint64(0); i < count; i++ {
		var d [efiDescSize]byte
		at := mapAddr + i*descSize
		if err := r.read(at, d[:], "memory descriptor"); err != nil {
			return nil, err
		}
		start, pages := le.Uint64(d[efiDescPhysStartOff:]), le.Uint64(d[efiDescNumPagesOff:])
		if start%efiPageSize != 0 {
			return nil, r.errorf("memory descriptor %d at %#x has PhysicalStart %#x, not 4 KiB aligned", i, at, start)
		}
		if pages > (^start)/efiPageSize { // the range would reach 2^64
			return nil, r.errorf("memory descriptor %d at %#x: %d pages from %#x run past the top of the address space", i, at, pages, start)
		}
		reg, err := r.rangeEntry("memory map", int(i), start, pages*efiPageSize,
			efiKind(le.Uint32(d[efiDescTypeOff:]), le.Uint64(d[efiDescAttributeOff:])))
		if err != nil {
			return nil, err
		}
		raw = append(raw, reg)
	}
	return raw, nil
}

// ParseUEFI reads what the UEFI entry kept before ExitBootServices: the
// memory map buffer GetMemoryMap filled (mapSize bytes at mapAddr, with the
// descriptor size and version it returned) and the EFI system table, where
// the ACPI RSDP and the firmware vendor are found. A systemTableAddr of 0
// skips that part.
func ParseUEFI(mem hw.PhysMem, mapAddr, mapSize, descSize uint64, descVersion uint32, systemTableAddr uint64) (*Info, error) {
	r := reader{mem, "uefi"}
	raw, err := efiMemoryMap(r, mapAddr, mapSize, descSize, descVersion)
	if err != nil {
		return nil, err
	}
	info := &Info{Protocol: UEFI, EFISystemTable: systemTableAddr}
	if systemTableAddr != 0 {
		if info.Loader, info.RSDP, err = efiSystemTable(r, systemTableAddr); err != nil {
			return nil, err
		}
	}
	return r.finish(info, raw)
}

// efiSystemTable returns the firmware vendor and the RSDP address from the
// configuration table, preferring the ACPI 2.0 entry (XSDT) to the 1.0 one.
// The header CRC is not checked: ExitBootServices rewrites fields of the
// table, and not all firmware recomputes it.
func efiSystemTable(r reader, addr uint64) (vendor string, rsdp uint64, err error) {
	var st [efiSystemTableSize]byte
	if err := r.read(addr, st[:], "EFI system table"); err != nil {
		return "", 0, err
	}
	le := binary.LittleEndian
	if sig := le.Uint64(st[0:]); sig != efiSystemTableSignature {
		return "", 0, r.errorf("EFI system table at %#x has signature %#x, want %#x (\"IBI SYST\")", addr, sig, uint64(efiSystemTableSignature))
	}
	if vendor, err = r.ucs2String(le.Uint64(st[efiSTFirmwareVendorOff:]), "EFI system table FirmwareVendor string"); err != nil {
		return "", 0, err
	}
	n, tables := le.Uint64(st[efiSTNumTablesOff:]), le.Uint64(st[efiSTConfigTableOff:])
	if n > MaxConfigTables {
		return "", 0, r.errorf("EFI system table NumberOfTableEntries is %d, more than %d", n, MaxConfigTables)
	}
	if n > 0 && tables == 0 {
		return "", 0, r.errorf("EFI system table NumberOfTableEntries is %d but ConfigurationTable is 0", n)
	}
	if err := r.checkTable("EFI configuration table", tables, n, efiConfigTableEntrySize); err != nil {
		return "", 0, err
	}
	var acpi10 uint64
	for i := uint64(0); i < n; i++ {
		var e [efiConfigTableEntrySize]byte
		if err := r.read(tables+i*efiConfigTableEntrySize, e[:], "EFI configuration table entry"); err != nil {
			return "", 0, err
		}
		switch [16]byte(e[:16]) {
		case efiACPI20TableGUID:
			return vendor, le.Uint64(e[16:]), nil
		case efiACPI10TableGUID:
			acpi10 = le.Uint64(e[16:])
		}
	}
	return vendor, acpi10, nil
}
