package bootinfo

// Encoders that lay out each protocol's structures in fake physical memory
// the way a loader would. Offsets are written out from the specifications
// here, independently of the parser's constants, so the tests also check
// the parser's idea of each layout.

import (
	"encoding/binary"
	"unicode/utf16"

	"tamavisor/drivers/hw/hwfake"
)

var le = binary.LittleEndian

// e820 is one entry of an E820-style memory map.
type e820 struct {
	addr, size uint64
	typ        uint32
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// layout places an encoder's tables and strings relative to the information
// structure: spacious for unit tests (room for the largest tables), compact
// for fuzz seeds, which must be one short run of bytes.
type layout struct{ table1, table2, strings uint64 }

var (
	spacious = layout{0x1000, 0x2000, 0x40000}
	compact  = layout{0x60, 0xa0, 0x140}
)

func (l layout) orDefault() layout {
	if l == (layout{}) {
		return spacious
	}
	return l
}

// ---- PVH (xen/include/public/arch-x86/hvm/start_info.h) ----

type pvhImage struct {
	magic, version uint32
	cmdline        string // "" writes cmdline_paddr 0
	rsdp           uint64
	modules        []Module
	memmap         []e820

	// Overrides for broken-structure tests; zero means "as laid out".
	nrModules, memmapEntries  *uint32
	modlistPaddr, memmapPaddr *uint64
	lay                       layout
}

// load writes the start info at base and its tables in the next pages.
func (p pvhImage) load(mem *hwfake.Memory, base uint64) {
	si := make([]byte, 56)
	le.PutUint32(si[0:], p.magic)
	le.PutUint32(si[4:], p.version)
	le.PutUint32(si[8:], 0) // flags
	lay := p.lay.orDefault()

	strings := base + lay.strings
	putString := func(s string) uint64 {
		if s == "" {
			return 0
		}
		at := strings
		mem.Load(at, cstr(s))
		strings += uint64(len(s)+1+7) &^ 7
		return at
	}

	modlist := base + lay.table1
	for i, m := range p.modules {
		e := make([]byte, 32)
		le.PutUint64(e[0:], m.Start)
		le.PutUint64(e[8:], m.Size)
		le.PutUint64(e[16:], putString(m.CmdLine))
		mem.Load(modlist+uint64(i)*32, e)
	}
	nr := uint32(len(p.modules))
	if p.nrModules != nil {
		nr = *p.nrModules
	}
	le.PutUint32(si[12:], nr)
	if len(p.modules) == 0 {
		modlist = 0
	}
	if p.modlistPaddr != nil {
		modlist = *p.modlistPaddr
	}
	le.PutUint64(si[16:], modlist)
	le.PutUint64(si[24:], putString(p.cmdline))
	le.PutUint64(si[32:], p.rsdp)

	memmap := base + lay.table2
	for i, e := range p.memmap {
		b := make([]byte, 24)
		le.PutUint64(b[0:], e.addr)
		le.PutUint64(b[8:], e.size)
		le.PutUint32(b[16:], e.typ)
		mem.Load(memmap+uint64(i)*24, b)
	}
	entries := uint32(len(p.memmap))
	if p.memmapEntries != nil {
		entries = *p.memmapEntries
	}
	if p.memmapPaddr != nil {
		memmap = *p.memmapPaddr
	}
	le.PutUint64(si[40:], memmap)
	le.PutUint32(si[48:], entries)
	if p.version == 0 {
		si = si[:40]
	}
	mem.Load(base, si)
}

// ---- Multiboot 0.6.96, 3.3 ----

type mb1Image struct {
	flags            uint32
	memLower         uint32
	memUpper         uint32
	cmdline          string
	loaderName       string
	modules          []Module
	mmap             []e820
	mmapEntrySize    uint32 // the size field; 20 when 0
	mmapLengthAdjust int    // added to mmap_length
	modsCount        *uint32
	lay              layout
}

func (m mb1Image) load(mem *hwfake.Memory, base uint64) {
	info := make([]byte, 88)
	le.PutUint32(info[0:], m.flags)
	le.PutUint32(info[4:], m.memLower)
	le.PutUint32(info[8:], m.memUpper)
	le.PutUint32(info[12:], 0x8000ffff) // boot_device: first BIOS disk, whole
	lay := m.lay.orDefault()

	strings := base + lay.strings
	putString := func(s string) uint32 {
		at := strings
		mem.Load(at, cstr(s))
		strings += uint64(len(s)+1+3) &^ 3
		return uint32(at)
	}
	le.PutUint32(info[16:], putString(m.cmdline))

	mods := base + lay.table1
	for i, mod := range m.modules {
		e := make([]byte, 16)
		le.PutUint32(e[0:], uint32(mod.Start))
		le.PutUint32(e[4:], uint32(mod.Start+mod.Size))
		le.PutUint32(e[8:], putString(mod.CmdLine))
		mem.Load(mods+uint64(i)*16, e)
	}
	count := uint32(len(m.modules))
	if m.modsCount != nil {
		count = *m.modsCount
	}
	le.PutUint32(info[20:], count)
	le.PutUint32(info[24:], uint32(mods))

	mmap := base + lay.table2
	size := m.mmapEntrySize
	if size == 0 {
		size = 20
	}
	off := uint64(0)
	for _, e := range m.mmap {
		b := make([]byte, max(4+size, 24))
		le.PutUint32(b[0:], size)
		le.PutUint64(b[4:], e.addr)
		le.PutUint64(b[12:], e.size)
		le.PutUint32(b[20:], e.typ)
		mem.Load(mmap+off, b)
		off += uint64(4 + size)
	}
	le.PutUint32(info[44:], uint32(int(off)+m.mmapLengthAdjust))
	le.PutUint32(info[48:], uint32(mmap))
	le.PutUint32(info[64:], putString(m.loaderName))
	mem.Load(base, info)
}

// ---- Multiboot2 1.0, 3.6 ----

// mb2Info builds boot information tag by tag.
type mb2Info struct {
	tags []byte
}

func (b *mb2Info) tag(typ uint32, payload []byte) *mb2Info {
	h := make([]byte, 8)
	le.PutUint32(h[0:], typ)
	le.PutUint32(h[4:], uint32(8+len(payload)))
	b.tags = append(b.tags, h...)
	b.tags = append(b.tags, payload...)
	for len(b.tags)%8 != 0 {
		b.tags = append(b.tags, 0)
	}
	return b
}

func (b *mb2Info) str(typ uint32, s string) *mb2Info { return b.tag(typ, cstr(s)) }

func (b *mb2Info) module(start, end uint32, s string) *mb2Info {
	p := make([]byte, 8)
	le.PutUint32(p[0:], start)
	le.PutUint32(p[4:], end)
	return b.tag(3, append(p, cstr(s)...))
}

func (b *mb2Info) basicMeminfo(lower, upper uint32) *mb2Info {
	p := make([]byte, 8)
	le.PutUint32(p[0:], lower)
	le.PutUint32(p[4:], upper)
	return b.tag(4, p)
}

func (b *mb2Info) mmap(entries ...e820) *mb2Info {
	p := make([]byte, 8, 8+24*len(entries))
	le.PutUint32(p[0:], 24) // entry_size
	le.PutUint32(p[4:], 0)  // entry_version
	for _, e := range entries {
		p = le.AppendUint64(p, e.addr)
		p = le.AppendUint64(p, e.size)
		p = le.AppendUint32(p, e.typ)
		p = le.AppendUint32(p, 0)
	}
	return b.tag(6, p)
}

func (b *mb2Info) efi64(systemTable uint64) *mb2Info {
	return b.tag(12, le.AppendUint64(nil, systemTable))
}

func (b *mb2Info) efiMmap(descSize, version uint32, descs []byte) *mb2Info {
	p := make([]byte, 8)
	le.PutUint32(p[0:], descSize)
	le.PutUint32(p[4:], version)
	return b.tag(17, append(p, descs...))
}

// bytes closes the information with an end tag and the fixed header.
func (b *mb2Info) bytes() []byte {
	b.tag(0, nil)
	return b.raw()
}

// raw returns the information without adding an end tag.
func (b *mb2Info) raw() []byte {
	h := make([]byte, 8)
	le.PutUint32(h[0:], uint32(8+len(b.tags)))
	return append(h, b.tags...)
}

// rsdp returns an RSDP of revision 0 (20 bytes) or 2 (36 bytes), as ACPI
// 6.5, 5.2.5.3 lays it out; checksums are not filled in, the parser does
// not look at them.
func rsdp(revision byte, oemID string, rsdt uint32, xsdt uint64) []byte {
	b := make([]byte, 20, 36)
	copy(b, "RSD PTR ")
	copy(b[9:15], oemID)
	b[15] = revision
	le.PutUint32(b[16:], rsdt)
	if revision >= 2 {
		b = le.AppendUint32(b, 36)
		b = le.AppendUint64(b, xsdt)
		b = append(b, 0, 0, 0, 0)
	}
	return b
}

// ---- UEFI 2.10 ----

type efiDesc struct {
	typ         uint32
	start       uint64
	pages, attr uint64
}

const efiRuntime = 1 << 63

// efiDescs lays out descriptors stride bytes apart (stride >= 40), with
// VirtualStart and the slack filled with a pattern to show they are ignored.
func efiDescs(stride int, descs ...efiDesc) []byte {
	out := make([]byte, 0, stride*len(descs))
	for _, d := range descs {
		b := make([]byte, stride)
		for i := range b {
			b[i] = 0xa5
		}
		le.PutUint32(b[0:], d.typ)
		le.PutUint32(b[4:], 0) // padding
		le.PutUint64(b[8:], d.start)
		le.PutUint64(b[16:], 0xdead_0000_0000+d.start) // VirtualStart
		le.PutUint64(b[24:], d.pages)
		le.PutUint64(b[32:], d.attr)
		out = append(out, b...)
	}
	return out
}

// guid encodes an EFI_GUID from its registry form: the first three fields
// little-endian, the last eight bytes in order (UEFI 2.10, Appendix A).
func guid(d1 uint32, d2, d3 uint16, d4 [8]byte) []byte {
	b := le.AppendUint32(nil, d1)
	b = le.AppendUint16(b, d2)
	b = le.AppendUint16(b, d3)
	return append(b, d4[:]...)
}

var (
	guidACPI20  = guid(0x8868e871, 0xe4f1, 0x11d3, [8]byte{0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81})
	guidACPI10  = guid(0xeb9d2d30, 0x2d88, 0x11d3, [8]byte{0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d})
	guidSMBIOS3 = guid(0xf2fd1544, 0x9794, 0x4a2c, [8]byte{0x99, 0x2e, 0xe5, 0xbb, 0xcf, 0x20, 0xe3, 0x94})
	guidDXE     = guid(0x05ad34ba, 0x6f02, 0x4214, [8]byte{0x95, 0x2e, 0x4d, 0xa0, 0x39, 0x8e, 0x2b, 0xb9})
)

type efiConfigEntry struct {
	guid  []byte
	table uint64
}

// loadSystemTable writes an x64 EFI_SYSTEM_TABLE at base, its vendor string
// 0x200 and its configuration table 0x400 bytes after it.
func loadSystemTable(mem *hwfake.Memory, base uint64, vendor string, config []efiConfigEntry) {
	loadSystemTableAt(mem, base, 0x200, 0x400, vendor, config)
}

func loadSystemTableAt(mem *hwfake.Memory, base, vendorOff, tablesOff uint64, vendor string, config []efiConfigEntry) {
	st := make([]byte, 120)
	le.PutUint64(st[0:], 0x5453595320494249) // "IBI SYST"
	le.PutUint32(st[8:], 2<<16|70)           // Revision 2.70
	le.PutUint32(st[12:], 120)               // HeaderSize
	vendorAt := base + vendorOff
	le.PutUint64(st[24:], vendorAt)
	le.PutUint32(st[32:], 0x10000) // FirmwareRevision
	le.PutUint64(st[88:], 0x7fbee000)
	le.PutUint64(st[104:], uint64(len(config)))
	tables := base + tablesOff
	le.PutUint64(st[112:], tables)
	mem.Load(base, st)
	mem.Load(vendorAt, ucs2(vendor))
	for i, c := range config {
		e := append(append([]byte(nil), c.guid...), le.AppendUint64(nil, c.table)...)
		mem.Load(tables+uint64(i)*24, e)
	}
}

func ucs2(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = le.AppendUint16(b, u)
	}
	return append(b, 0, 0)
}
