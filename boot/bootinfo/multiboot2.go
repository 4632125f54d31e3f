package bootinfo

import (
	"bytes"
	"encoding/binary"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw"
)

// Multiboot2 1.0, 3.6 "Boot information format": u32 total_size, u32
// reserved, then tags, each u32 type, u32 size (header included, padding to
// the next 8-byte boundary not), ending with a tag of type 0.
const (
	mb2HeaderSize = 8
	mb2TagHeader  = 8
	mb2TagAlign   = 8

	mb2TagEnd                = 0
	mb2TagCmdline            = 1  // 3.6.3, string
	mb2TagLoaderName         = 2  // 3.6.4, string
	mb2TagModule             = 3  // 3.6.5, u32 mod_start, mod_end, string
	mb2TagBasicMeminfo       = 4  // 3.6.6, u32 mem_lower, mem_upper (KiB)
	mb2TagMmap               = 6  // 3.6.8, u32 entry_size, entry_version, entries
	mb2TagEFI64              = 12 // 3.6.12, u64 EFI system table pointer
	mb2TagACPIOld            = 14 // 3.6.13, copy of RSDP version 1
	mb2TagACPINew            = 15 // 3.6.14, copy of RSDP version 2
	mb2TagEFIMmap            = 17 // 3.6.16, u32 descriptor_size, descriptor_version, descriptors
	mb2TagEFIBootServicesRun = 18 // 3.6.17, boot services were not exited

	// Memory map entry: u64 base_addr, length; u32 type, reserved.
	mb2MmapEntryMin = 24

	// RSDP sizes (ACPI 6.5, 5.2.5.3): 20 bytes for revision 0, 36 after.
	rsdpV1Size = 20
	rsdpV2Size = 36
	// A tag holding more than this is not an RSDP copy.
	rsdpMaxCopy = 256
)

var rsdpSignature = []byte("RSD PTR ")

// ParseMultiboot2 reads the Multiboot2 boot information at infoAddr (EBX at
// the entry point). The memory map comes from the EFI memory map tag when
// present (it alone tells runtime services memory apart), else from the
// memory map tag, else from basic memory information. The ACPI RSDP comes as
// a copy (RSDPCopy), the ACPI 2.0 one preferred.
func ParseMultiboot2(mem hw.PhysMem, infoAddr uint64) (*Info, error) {
	r := reader{mem, "multiboot2"}
	if infoAddr%mb2TagAlign != 0 {
		return nil, r.errorf("boot information at %#x is not 8-byte aligned", infoAddr)
	}
	totalSize, err := r.u32(infoAddr, "boot information total_size")
	if err != nil {
		return nil, err
	}
	if totalSize < mb2HeaderSize+mb2TagHeader || totalSize > MaxMultiboot2 {
		return nil, r.errorf("boot information at %#x has total_size %d, want %d to %d", infoAddr, totalSize, mb2HeaderSize+mb2TagHeader, MaxMultiboot2)
	}
	if err := r.checkTable("boot information", infoAddr, 1, uint64(totalSize)); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	info := &Info{Protocol: Multiboot2}
	var (
		mmap, efiMmap, basic []memmap.Region
		rsdpOld, rsdpNew     []byte
		sawEnd               bool
	)
	// Each tag is at least 8 bytes, so this visits at most totalSize/8 tags.
	for off := uint64(mb2HeaderSize); off+mb2TagHeader <= uint64(totalSize); off = (off + mb2TagAlign - 1) &^ (mb2TagAlign - 1) {
		at := infoAddr + off
		var h [mb2TagHeader]byte
		if err := r.read(at, h[:], "tag header"); err != nil {
			return nil, err
		}
		typ, size := le.Uint32(h[0:]), le.Uint32(h[4:])
		if size < mb2TagHeader {
			return nil, r.errorf("tag at %#x has size %d, smaller than its header", at, size)
		}
		if off+uint64(size) > uint64(totalSize) {
			return nil, r.errorf("tag at %#x (type %d) has size %d, running past total_size %d", at, typ, size, totalSize)
		}
		payload, payloadSize := at+mb2TagHeader, uint64(size)-mb2TagHeader
		off += uint64(size)

		switch typ {
		case mb2TagEnd:
			sawEnd = true
		case mb2TagCmdline:
			if info.CmdLine, err = mb2String(r, at, payload, payloadSize, "command line"); err != nil {
				return nil, err
			}
		case mb2TagLoaderName:
			if info.Loader, err = mb2String(r, at, payload, payloadSize, "boot loader name"); err != nil {
				return nil, err
			}
		case mb2TagModule:
			if len(info.Modules) == MaxModules {
				return nil, r.errorf("more than %d module tags", MaxModules)
			}
			if payloadSize < 8 {
				return nil, r.errorf("module tag at %#x has size %d, too small for mod_start and mod_end", at, size)
			}
			var m [8]byte
			if err := r.read(payload, m[:], "module tag"); err != nil {
				return nil, err
			}
			start, end := le.Uint32(m[0:]), le.Uint32(m[4:])
			if end < start {
				return nil, r.errorf("module tag at %#x has mod_end %#x below mod_start %#x", at, end, start)
			}
			cmdline, err := mb2String(r, at, payload+8, payloadSize-8, "module string")
			if err != nil {
				return nil, err
			}
			info.Modules = append(info.Modules, Module{uint64(start), uint64(end - start), cmdline})
		case mb2TagBasicMeminfo:
			if payloadSize < 8 {
				return nil, r.errorf("basic memory information tag at %#x has size %d, want 16", at, size)
			}
			var m [8]byte
			if err := r.read(payload, m[:], "basic memory information tag"); err != nil {
				return nil, err
			}
			lower, upper := le.Uint32(m[0:]), le.Uint32(m[4:])
			if lower > mb1MaxMemLower {
				return nil, r.errorf("basic memory information tag at %#x has mem_lower %d KiB, more than %d", at, lower, mb1MaxMemLower)
			}
			basic = []memmap.Region{
				{Start: 0, Size: uint64(lower) << 10, Kind: memmap.Usable},
				{Start: 1 << 20, Size: uint64(upper) << 10, Kind: memmap.Usable},
			}
		case mb2TagMmap:
			if mmap, err = mb2Mmap(r, at, payload, payloadSize); err != nil {
				return nil, err
			}
		case mb2TagEFI64:
			if payloadSize < 8 {
				return nil, r.errorf("EFI 64-bit system table tag at %#x has size %d, want 16", at, size)
			}
			var p [8]byte
			if err := r.read(payload, p[:], "EFI 64-bit system table tag"); err != nil {
				return nil, err
			}
			info.EFISystemTable = le.Uint64(p[:])
		case mb2TagACPIOld:
			if rsdpOld, err = mb2RSDP(r, at, payload, payloadSize, rsdpV1Size); err != nil {
				return nil, err
			}
		case mb2TagACPINew:
			if rsdpNew, err = mb2RSDP(r, at, payload, payloadSize, rsdpV2Size); err != nil {
				return nil, err
			}
		case mb2TagEFIMmap:
			if payloadSize < 8 {
				return nil, r.errorf("EFI memory map tag at %#x has size %d, too small for its descriptor size and version", at, size)
			}
			var d [8]byte
			if err := r.read(payload, d[:], "EFI memory map tag"); err != nil {
				return nil, err
			}
			sub := reader{r.mem, r.prefix + ": EFI memory map tag"}
			if efiMmap, err = efiMemoryMap(sub, payload+8, payloadSize-8, uint64(le.Uint32(d[0:])), le.Uint32(d[4:])); err != nil {
				return nil, err
			}
		case mb2TagEFIBootServicesRun:
			// Only a header asking for it (header tag 7) makes a loader
			// leave boot services running; the image never does, and it
			// cannot share the machine with the firmware.
			return nil, r.errorf("tag at %#x says EFI boot services were not exited", at)
		}
		if sawEnd {
			break
		}
	}
	if !sawEnd {
		return nil, r.errorf("boot information at %#x has no end tag within total_size %d", infoAddr, totalSize)
	}

	switch {
	case rsdpNew != nil:
		info.RSDPCopy = rsdpNew
	case rsdpOld != nil:
		info.RSDPCopy = rsdpOld
	}
	var raw []memmap.Region
	switch {
	case efiMmap != nil:
		raw = efiMmap
	case mmap != nil:
		raw = mmap
	case basic != nil:
		raw = basic
	default:
		return nil, r.errorf("boot information at %#x has no memory map, EFI memory map or basic memory information tag", infoAddr)
	}
	return r.finish(info, raw)
}

// mb2String reads a NUL-terminated string that fills the rest of a tag.
func mb2String(r reader, tag, addr, size uint64, what string) (string, error) {
	if size > MaxString {
		return "", r.errorf("%s in tag at %#x is %d bytes, more than %d", what, tag, size, MaxString)
	}
	buf := make([]byte, size)
	if err := r.read(addr, buf, what); err != nil {
		return "", err
	}
	n := bytes.IndexByte(buf, 0)
	if n < 0 {
		return "", r.errorf("%s in tag at %#x is not NUL-terminated within the tag", what, tag)
	}
	return string(buf[:n]), nil
}

func mb2Mmap(r reader, tag, payload, size uint64) ([]memmap.Region, error) {
	if size < 8 {
		return nil, r.errorf("memory map tag at %#x has size %d, too small for entry_size and entry_version", tag, size+mb2TagHeader)
	}
	entrySize, err := r.u32(payload, "memory map tag entry_size")
	if err != nil {
		return nil, err
	}
	// entry_version may grow, but later versions only append fields
	// (3.6.8), so entry_size is what matters.
	if entrySize < mb2MmapEntryMin || entrySize%8 != 0 {
		return nil, r.errorf("memory map tag at %#x has entry_size %d, want a multiple of 8 of at least %d", tag, entrySize, mb2MmapEntryMin)
	}
	size -= 8
	if size%uint64(entrySize) != 0 {
		return nil, r.errorf("memory map tag at %#x holds %d bytes of entries, not a multiple of entry_size %d", tag, size, entrySize)
	}
	count := size / uint64(entrySize)
	if count == 0 {
		return nil, r.errorf("memory map tag at %#x has no entries", tag)
	}
	if count > MaxMemoryEntries {
		return nil, r.errorf("memory map tag at %#x has %d entries, more than %d", tag, count, MaxMemoryEntries)
	}
	le := binary.LittleEndian
	raw := make([]memmap.Region, 0, count)
	for i := uint64(0); i < count; i++ {
		var e [mb2MmapEntryMin]byte
		if err := r.read(payload+8+i*uint64(entrySize), e[:], "memory map entry"); err != nil {
			return nil, err
		}
		reg, err := r.rangeEntry("memory map", int(i), le.Uint64(e[0:]), le.Uint64(e[8:]), e820Kind(le.Uint32(e[16:])))
		if err != nil {
			return nil, err
		}
		raw = append(raw, reg)
	}
	return raw, nil
}

// mb2RSDP copies the RSDP out of an ACPI tag after checking its size and
// signature.
func mb2RSDP(r reader, tag, payload, size, want uint64) ([]byte, error) {
	if size < want || size > rsdpMaxCopy {
		return nil, r.errorf("ACPI RSDP tag at %#x holds %d bytes, want %d to %d", tag, size, want, rsdpMaxCopy)
	}
	buf := make([]byte, size)
	if err := r.read(payload, buf, "ACPI RSDP tag"); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(buf, rsdpSignature) {
		return nil, r.errorf("ACPI RSDP tag at %#x holds no RSDP: signature %q, want %q", tag, buf[:8], rsdpSignature)
	}
	return buf, nil
}
