package bootinfo

import (
	"encoding/binary"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/hw"
)

// Layout of struct hvm_start_info and its tables, from Xen's
// xen/include/public/arch-x86/hvm/start_info.h. Version 0 ends after
// rsdp_paddr; version 1 adds the memory map.
const (
	pvhMagicOff         = 0  // u32 magic
	pvhVersionOff       = 4  // u32 version
	pvhFlagsOff         = 8  // u32 flags
	pvhNrModulesOff     = 12 // u32 nr_modules
	pvhModlistOff       = 16 // u64 modlist_paddr
	pvhCmdlineOff       = 24 // u64 cmdline_paddr
	pvhRSDPOff          = 32 // u64 rsdp_paddr
	pvhStartInfoV0Size  = 40
	pvhMemmapOff        = 40 // u64 memmap_paddr
	pvhMemmapEntriesOff = 48 // u32 memmap_entries
	pvhStartInfoV1Size  = 56 // u32 reserved ends it

	// struct hvm_modlist_entry: u64 paddr, size, cmdline_paddr, reserved.
	pvhModEntrySize = 32
	// struct hvm_memmap_table_entry: u64 addr, size; u32 type, reserved.
	pvhMemmapEntrySize = 24
)

// ParsePVH reads the hvm_start_info at startInfoAddr (EBX at the PVH entry
// point). Version 1 or later is required: version 0 carries no memory map,
// and a PVH loader that gives none (Xen expects a hypercall instead) cannot
// start this image.
func ParsePVH(mem hw.PhysMem, startInfoAddr uint64) (*Info, error) {
	r := reader{mem, "pvh"}
	var si [pvhStartInfoV1Size]byte
	if err := r.read(startInfoAddr, si[:pvhStartInfoV0Size], "hvm_start_info"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if m := le.Uint32(si[pvhMagicOff:]); m != PVHMagic {
		return nil, r.errorf("hvm_start_info at %#x has magic %#x, want %#x", startInfoAddr, m, uint32(PVHMagic))
	}
	version := le.Uint32(si[pvhVersionOff:])
	if version < 1 {
		return nil, r.errorf("hvm_start_info at %#x is version 0, which has no memory map (version 1 or later needed)", startInfoAddr)
	}
	if err := r.read(startInfoAddr+pvhStartInfoV0Size, si[pvhStartInfoV0Size:], "hvm_start_info version 1 fields"); err != nil {
		return nil, err
	}

	info := &Info{Protocol: PVH, RSDP: le.Uint64(si[pvhRSDPOff:])}
	var err error
	if info.CmdLine, err = r.cString(le.Uint64(si[pvhCmdlineOff:]), "hvm_start_info.cmdline_paddr string"); err != nil {
		return nil, err
	}

	nrModules := le.Uint32(si[pvhNrModulesOff:])
	modlist := le.Uint64(si[pvhModlistOff:])
	if nrModules > MaxModules {
		return nil, r.errorf("hvm_start_info.nr_modules is %d, more than %d", nrModules, MaxModules)
	}
	if nrModules > 0 && modlist == 0 {
		return nil, r.errorf("hvm_start_info.nr_modules is %d but modlist_paddr is 0", nrModules)
	}
	if err := r.checkTable("hvm_modlist", modlist, uint64(nrModules), pvhModEntrySize); err != nil {
		return nil, err
	}
	for i := 0; i < int(nrModules); i++ {
		var e [pvhModEntrySize]byte
		at := modlist + uint64(i)*pvhModEntrySize
		if err := r.read(at, e[:], "hvm_modlist_entry"); err != nil {
			return nil, err
		}
		start, size := le.Uint64(e[0:]), le.Uint64(e[8:])
		if err := r.checkModule(i, start, size); err != nil {
			return nil, err
		}
		cmdline, err := r.cString(le.Uint64(e[16:]), "hvm_modlist_entry.cmdline_paddr string")
		if err != nil {
			return nil, err
		}
		info.Modules = append(info.Modules, Module{start, size, cmdline})
	}

	entries := le.Uint32(si[pvhMemmapEntriesOff:])
	memmapAddr := le.Uint64(si[pvhMemmapOff:])
	switch {
	case entries == 0:
		return nil, r.errorf("hvm_start_info.memmap_entries is 0: no memory map")
	case entries > MaxMemoryEntries:
		return nil, r.errorf("hvm_start_info.memmap_entries is %d, more than %d", entries, MaxMemoryEntries)
	case memmapAddr == 0:
		return nil, r.errorf("hvm_start_info.memmap_entries is %d but memmap_paddr is 0", entries)
	}
	if err := r.checkTable("hvm_memmap_table", memmapAddr, uint64(entries), pvhMemmapEntrySize); err != nil {
		return nil, err
	}
	raw := make([]memmap.Region, 0, entries+nrModules)
	for i := 0; i < int(entries); i++ {
		var e [pvhMemmapEntrySize]byte
		if err := r.read(memmapAddr+uint64(i)*pvhMemmapEntrySize, e[:], "hvm_memmap_table_entry"); err != nil {
			return nil, err
		}
		reg, err := r.rangeEntry("hvm_memmap_table", i, le.Uint64(e[0:]), le.Uint64(e[8:]), e820Kind(le.Uint32(e[16:])))
		if err != nil {
			return nil, err
		}
		raw = append(raw, reg)
	}
	return r.finish(info, raw)
}
