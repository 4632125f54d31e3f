package bootinfo

import (
	"encoding/binary"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw"
)

// Multiboot 0.6.96, 3.3 "Boot information format": which fields of the
// information structure are valid is given by bits of its flags word.
const (
	mb1FlagMem        = 1 << 0 // mem_lower, mem_upper
	mb1FlagCmdline    = 1 << 2 // cmdline
	mb1FlagMods       = 1 << 3 // mods_count, mods_addr
	mb1FlagMmap       = 1 << 6 // mmap_length, mmap_addr
	mb1FlagLoaderName = 1 << 9 // boot_loader_name

	mb1FlagsOff      = 0
	mb1MemLowerOff   = 4
	mb1MemUpperOff   = 8
	mb1CmdlineOff    = 16
	mb1ModsCountOff  = 20
	mb1ModsAddrOff   = 24
	mb1MmapLengthOff = 44
	mb1MmapAddrOff   = 48
	mb1LoaderNameOff = 64
	mb1InfoSize      = 68 // up to and including boot_loader_name

	// Module structure: u32 mod_start, mod_end, string, reserved.
	mb1ModSize = 16
	// Memory map entry: u32 size (not counting itself), then u64
	// base_addr, u64 length, u32 type: at least 20 bytes after size.
	mb1MmapEntryMin = 20

	// mem_lower cannot exceed the 640 KiB of conventional memory.
	mb1MaxMemLower = 640
)

// ParseMultiboot1 reads the Multiboot information structure at infoAddr (EBX
// at the entry point). The memory map comes from mmap_* when present, else
// from mem_lower and mem_upper. Multiboot gives no RSDP.
func ParseMultiboot1(mem hw.PhysMem, infoAddr uint64) (*Info, error) {
	r := reader{mem, "multiboot"}
	var mbi [mb1InfoSize]byte
	if err := r.read(infoAddr, mbi[:], "information structure"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	flags := le.Uint32(mbi[mb1FlagsOff:])
	info := &Info{Protocol: Multiboot1}
	var err error

	if flags&mb1FlagCmdline != 0 {
		if info.CmdLine, err = r.cString(uint64(le.Uint32(mbi[mb1CmdlineOff:])), "cmdline string"); err != nil {
			return nil, err
		}
	}
	if flags&mb1FlagLoaderName != 0 {
		if info.Loader, err = r.cString(uint64(le.Uint32(mbi[mb1LoaderNameOff:])), "boot_loader_name string"); err != nil {
			return nil, err
		}
	}
	if flags&mb1FlagMods != 0 {
		if info.Modules, err = mb1Modules(r, le.Uint32(mbi[mb1ModsCountOff:]), le.Uint32(mbi[mb1ModsAddrOff:])); err != nil {
			return nil, err
		}
	}

	var raw []memmap.Region
	switch {
	case flags&mb1FlagMmap != 0:
		if raw, err = mb1Mmap(r, le.Uint32(mbi[mb1MmapLengthOff:]), le.Uint32(mbi[mb1MmapAddrOff:])); err != nil {
			return nil, err
		}
	case flags&mb1FlagMem != 0:
		lower, upper := le.Uint32(mbi[mb1MemLowerOff:]), le.Uint32(mbi[mb1MemUpperOff:])
		if lower > mb1MaxMemLower {
			return nil, r.errorf("mem_lower is %d KiB, more than the %d KiB of conventional memory", lower, mb1MaxMemLower)
		}
		raw = []memmap.Region{
			{Start: 0, Size: uint64(lower) << 10, Kind: memmap.Usable},
			{Start: 1 << 20, Size: uint64(upper) << 10, Kind: memmap.Usable},
		}
	default:
		return nil, r.errorf("information structure at %#x has flags %#x: neither mmap (bit 6) nor mem (bit 0) is set, no memory information", infoAddr, flags)
	}
	return r.finish(info, raw)
}

func mb1Modules(r reader, count, addr uint32) ([]Module, error) {
	if count > MaxModules {
		return nil, r.errorf("mods_count is %d, more than %d", count, MaxModules)
	}
	if count > 0 && addr == 0 {
		return nil, r.errorf("mods_count is %d but mods_addr is 0", count)
	}
	le := binary.LittleEndian
	mods := make([]Module, 0, count)
	for i := 0; i < int(count); i++ {
		var e [mb1ModSize]byte
		at := uint64(addr) + uint64(i)*mb1ModSize
		if err := r.read(at, e[:], "module structure"); err != nil {
			return nil, err
		}
		start, end := le.Uint32(e[0:]), le.Uint32(e[4:])
		if end < start {
			return nil, r.errorf("module %d at %#x has mod_end %#x below mod_start %#x", i, at, end, start)
		}
		cmdline, err := r.cString(uint64(le.Uint32(e[8:])), "module string")
		if err != nil {
			return nil, err
		}
		mods = append(mods, Module{uint64(start), uint64(end - start), cmdline})
	}
	return mods, nil
}

func mb1Mmap(r reader, length, addr uint32) ([]memmap.Region, error) {
	if length == 0 {
		return nil, r.errorf("mmap_length is 0: empty memory map")
	}
	if addr == 0 {
		return nil, r.errorf("mmap_length is %d but mmap_addr is 0", length)
	}
	le := binary.LittleEndian
	var raw []memmap.Region
	// Each entry is preceded by its size, so entries may grow in later
	// versions; the next one starts size+4 bytes further on.
	for off := uint64(0); off < uint64(length); {
		if len(raw) == MaxMemoryEntries {
			return nil, r.errorf("memory map at %#x has more than %d entries", addr, MaxMemoryEntries)
		}
		at := uint64(addr) + off
		var e [4 + mb1MmapEntryMin]byte
		if off+uint64(len(e)) > uint64(length) {
			return nil, r.errorf("memory map entry %d at %#x does not fit in mmap_length %d", len(raw), at, length)
		}
		if err := r.read(at, e[:], "memory map entry"); err != nil {
			return nil, err
		}
		size := le.Uint32(e[0:])
		if size < mb1MmapEntryMin {
			return nil, r.errorf("memory map entry %d at %#x has size %d, smaller than %d", len(raw), at, size, mb1MmapEntryMin)
		}
		if off+4+uint64(size) > uint64(length) {
			return nil, r.errorf("memory map entry %d at %#x of size %d runs past mmap_length %d", len(raw), at, size, length)
		}
		reg, err := r.rangeEntry("memory map", len(raw), le.Uint64(e[4:]), le.Uint64(e[12:]), e820Kind(le.Uint32(e[20:])))
		if err != nil {
			return nil, err
		}
		raw = append(raw, reg)
		off += 4 + uint64(size)
	}
	return raw, nil
}
