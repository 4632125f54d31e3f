package loader

import (
	"errors"
	"fmt"

	"tamavisor/drivers/acpi"
	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// LoaderName is the boot loader name the Multiboot information gives.
const LoaderName = "tamavisor"

// Multiboot 0.6.96, 3.1 "OS image format" and 3.3 "Boot information format".
const (
	mb1Magic         = 0x1badb002
	mb1BootMagic     = 0x2badb002 // in EAX at entry (3.2)
	mb1SearchLimit   = 8192
	mb1HeaderAlign   = 4
	mb1HeaderMin     = 12      // magic, flags, checksum
	mb1HeaderAout    = 32      // through entry_addr
	mb1FlagPageAlign = 1 << 0  // modules on 4 KiB boundaries
	mb1FlagMemInfo   = 1 << 1  // mem_* and mmap_* wanted
	mb1FlagVideo     = 1 << 2  // a video mode table wanted
	mb1FlagAout      = 1 << 16 // the address fields are valid
	mb1Required      = 0xffff  // bits 0-15 must be understood (3.1.2)
	mb1Known         = mb1FlagPageAlign | mb1FlagMemInfo | mb1FlagVideo

	// Boot information flags (3.3).
	mbiMem           = 1 << 0
	mbiCmdline       = 1 << 2
	mbiMods          = 1 << 3
	mbiMmap          = 1 << 6
	mbiLoaderName    = 1 << 9
	mbiSize          = 116 // through the framebuffer fields
	mbiOffMemLower   = 4
	mbiOffMemUpper   = 8
	mbiOffCmdline    = 16
	mbiOffModsCount  = 20
	mbiOffModsAddr   = 24
	mbiOffMmapLength = 44
	mbiOffMmapAddr   = 48
	mbiOffLoaderName = 64
	mb1ModSize       = 16 // mod_start, mod_end, string, reserved
	mb1MmapEntry     = 24 // size (20), base_addr, length, type
)

// Multiboot2 1.0, 3.1 "OS image format" and 3.6 "Boot information format".
const (
	mb2Magic       = 0xe85250d6
	mb2BootMagic   = 0x36d76289 // in EAX at entry (3.3)
	mb2SearchLimit = 32768
	mb2HeaderAlign = 8
	mb2ArchI386    = 0
	mb2HeaderMin   = 16
	mb2TagOptional = 1 // header tag flags bit 0

	// Header tag types (3.1.3-3.1.12).
	mb2TagEnd          = 0
	mb2TagInfoRequest  = 1
	mb2TagAddress      = 2
	mb2TagEntry        = 3
	mb2TagConsole      = 4
	mb2TagFramebuffer  = 5
	mb2TagModuleAlign  = 6
	mb2TagEFIBS        = 7
	mb2TagEntryEFI32   = 8
	mb2TagEntryEFI64   = 9
	mb2TagRelocatable  = 10
	mb2ConsoleRequired = 1 << 0

	// Boot information tag types (3.6).
	mbi2End        = 0
	mbi2Cmdline    = 1
	mbi2LoaderName = 2
	mbi2Module     = 3
	mbi2BasicMem   = 4
	mbi2Mmap       = 6
	mbi2ACPIOld    = 14
	mbi2ACPINew    = 15
	mbi2MmapEntry  = 24
	rsdpV1Length   = 20
	rsdpV2Length   = 36
)

// mb2InfoProvided are the information tags this loader can give.
var mb2InfoProvided = map[uint32]bool{
	mbi2Cmdline: true, mbi2LoaderName: true, mbi2Module: true, mbi2BasicMem: true, mbi2Mmap: true,
	mbi2ACPIOld: true, mbi2ACPINew: true,
}

// aoutKludge is the a.out kludge: where to load a flat image (Multiboot
// 3.1.3 flag 16; Multiboot2 3.1.5 and 3.1.6).
type aoutKludge struct {
	headerAddr, loadAddr, loadEndAddr, bssEndAddr uint64
	loadFromStart                                 bool // Multiboot2 load_addr -1
}

// mbImage is what a Multiboot or Multiboot2 header says.
type mbImage struct {
	headerOff int
	aout      *aoutKludge
	entry     uint64
	hasEntry  bool
	wantInfo  []uint32 // Multiboot2 information requests, required ones
	needACPI  bool
}

// headerError is a problem with a Multiboot header, of a kind (ErrMalformed
// or ErrUnsupported) that LoadMultiboot* turn into an *Error.
type headerError struct {
	kind error
	msg  string
}

func (e *headerError) Error() string { return e.msg }
func (e *headerError) Unwrap() error { return e.kind }

func hdrErr(kind error, format string, args ...any) error {
	return &headerError{kind, fmt.Sprintf(format, args...)}
}

// findMultiboot1 finds and checks a Multiboot header: 4-byte aligned in
// the first 8192 bytes, with magic, flags and checksum summing to 0.
func findMultiboot1(f []byte) (*mbImage, error) {
	limit := min(len(f), mb1SearchLimit)
	for off := 0; off+mb1HeaderMin <= limit; off += mb1HeaderAlign {
		if u32(f, off) != mb1Magic {
			continue
		}
		flags := u32(f, off+4)
		if mb1Magic+flags+u32(f, off+8) != 0 {
			continue
		}
		img := &mbImage{headerOff: off}
		if unknown := flags & mb1Required &^ mb1Known; unknown != 0 {
			return nil, hdrErr(ErrUnsupported, "Multiboot header at %#x: flags %#x ask for features %#x this loader does not know (bits 0-15 are requirements)", off, flags, unknown)
		}
		if flags&mb1FlagVideo != 0 {
			return nil, hdrErr(ErrUnsupported, "Multiboot header at %#x: flags %#x ask for a video mode (bit 2), and the guest has no display", off, flags)
		}
		if flags&mb1FlagAout != 0 {
			if off+mb1HeaderAout > len(f) {
				return nil, hdrErr(ErrMalformed, "Multiboot header at %#x sets flag 16 but the file ends before its address fields", off)
			}
			img.aout = &aoutKludge{
				headerAddr: uint64(u32(f, off+12)), loadAddr: uint64(u32(f, off+16)),
				loadEndAddr: uint64(u32(f, off+20)), bssEndAddr: uint64(u32(f, off+24)),
			}
			img.entry, img.hasEntry = uint64(u32(f, off+28)), true
		}
		return img, nil
	}
	return nil, hdrErr(ErrMalformed, "no Multiboot header (magic %#x with a valid checksum, 4-byte aligned) in the first %d bytes", uint32(mb1Magic), limit)
}

// findMultiboot2 finds and checks a Multiboot2 header: 8-byte aligned in
// the first 32768 bytes, architecture i386, checksum, and well-formed tags
// this loader can honour.
func findMultiboot2(f []byte) (*mbImage, error) {
	limit := min(len(f), mb2SearchLimit)
	for off := 0; off+mb2HeaderMin <= limit; off += mb2HeaderAlign {
		if u32(f, off) != mb2Magic {
			continue
		}
		arch, length := u32(f, off+4), u32(f, off+8)
		if mb2Magic+arch+length+u32(f, off+12) != 0 {
			continue
		}
		if arch != mb2ArchI386 {
			return nil, hdrErr(ErrUnsupported, "Multiboot2 header at %#x: architecture %d is not i386 (0)", off, arch)
		}
		if length < mb2HeaderMin+8 || uint64(off)+uint64(length) > uint64(len(f)) {
			return nil, hdrErr(ErrMalformed, "Multiboot2 header at %#x: header_length %d is shorter than a header with an end tag or runs past the end of the %d-byte file", off, length, len(f))
		}
		return parseMB2Tags(f[off:off+int(length)], off)
	}
	return nil, hdrErr(ErrMalformed, "no Multiboot2 header (magic %#x with a valid checksum, 8-byte aligned) in the first %d bytes", uint32(mb2Magic), limit)
}

func parseMB2Tags(h []byte, off int) (*mbImage, error) {
	img := &mbImage{headerOff: off}
	bad := func(kind error, format string, args ...any) (*mbImage, error) {
		return nil, hdrErr(kind, "Multiboot2 header at %#x: %s", off, fmt.Sprintf(format, args...))
	}
	// Each tag is at least 8 bytes, so the walk ends within len(h)/8
	// steps.
	for t := mb2HeaderMin; ; {
		if t+8 > len(h) {
			return bad(ErrMalformed, "the tags run past header_length %d without an end tag", len(h))
		}
		typ, flags, size := u16(h, t), u16(h, t+2), int(u32(h, t+4))
		optional := flags&mb2TagOptional != 0
		if size < 8 || size > len(h)-t {
			return bad(ErrMalformed, "tag type %d at header offset %#x has size %d (%d bytes left)", typ, t, size, len(h)-t)
		}
		body := h[t+8 : t+size]
		switch typ {
		case mb2TagEnd:
			if size != 8 {
				return bad(ErrMalformed, "the end tag has size %d, not 8", size)
			}
			return img, nil
		case mb2TagInfoRequest:
			if len(body)%4 != 0 {
				return bad(ErrMalformed, "information request tag of size %d is not a whole number of 4-byte types", size)
			}
			for i := 0; i+4 <= len(body); i += 4 {
				req := u32(body, i)
				if req == mbi2ACPIOld || req == mbi2ACPINew {
					img.needACPI = img.needACPI || !optional
				}
				if !mb2InfoProvided[req] && !optional {
					return bad(ErrUnsupported, "the image requires boot information tag type %d, which this loader cannot give (it gives %s)", req, providedList())
				}
			}
		case mb2TagAddress:
			if len(body) < 16 {
				return bad(ErrMalformed, "address tag of size %d is shorter than 24", size)
			}
			a := &aoutKludge{
				headerAddr: uint64(u32(body, 0)), loadAddr: uint64(u32(body, 4)),
				loadEndAddr: uint64(u32(body, 8)), bssEndAddr: uint64(u32(body, 12)),
			}
			if a.loadAddr == 0xffffffff {
				a.loadFromStart = true
			}
			img.aout = a
		case mb2TagEntry:
			if len(body) < 4 {
				return bad(ErrMalformed, "entry address tag of size %d is shorter than 12", size)
			}
			img.entry, img.hasEntry = uint64(u32(body, 0)), true
		case mb2TagConsole:
			if len(body) >= 4 && u32(body, 0)&mb2ConsoleRequired != 0 && !optional {
				return bad(ErrUnsupported, "the console flags tag requires a console the boot information can describe, and the guest has only a serial port")
			}
		case mb2TagModuleAlign, mb2TagRelocatable:
			// Modules are always page-aligned; a relocatable image is
			// loaded at its preferred address.
		case mb2TagEFIBS, mb2TagEntryEFI32, mb2TagEntryEFI64:
			// Only for images started by EFI firmware (3.1.11-3.1.13).
		default:
			if !optional {
				what := "unknown"
				if typ == mb2TagFramebuffer {
					what = "framebuffer; the guest has no display"
				}
				return bad(ErrUnsupported, "required header tag type %d (%s) is not supported", typ, what)
			}
		}
		next, _ := alignUp(uint64(t+size), 8)
		t = int(next)
	}
}

func providedList() string {
	return "1 command line, 2 loader name, 3 modules, 4 basic memory, 6 memory map, 14 and 15 ACPI RSDP"
}

// loadImage loads a Multiboot image: by the a.out kludge when the header
// has one, else as an ELF by its program headers. It returns the entry
// point and the loaded span.
func (s *session) loadImage(f []byte, img *mbImage, file string) (entry uint64, span platform.Region, segs []platform.Region, err error) {
	if img.aout != nil {
		return s.loadAout(f, img, file)
	}
	e, perr := parseELF(f)
	if perr != nil {
		return 0, span, nil, &Error{File: file, Kind: ErrMalformed, Msg: fmt.Sprintf("the Multiboot header has no load addresses, and the image is not a loadable ELF: %v", perr)}
	}
	if segs, span, err = s.loadSegments(e, 1<<32, file); err != nil {
		return 0, span, nil, err
	}
	entry = e.physEntry()
	if img.hasEntry {
		entry = img.entry
	}
	return entry, span, segs, nil
}

// loadAout loads a flat image by the header's addresses (Multiboot 3.1.3,
// Multiboot2 3.1.5): the file from the offset of the header less
// (header_addr - load_addr), to load_end_addr (the file's end when 0), then
// zeros to bss_end_addr (none when 0).
func (s *session) loadAout(f []byte, img *mbImage, file string) (uint64, platform.Region, []platform.Region, error) {
	a := img.aout
	bad := func(format string, args ...any) (uint64, platform.Region, []platform.Region, error) {
		return 0, platform.Region{}, nil, &Error{File: file, Kind: ErrMalformed, Msg: fmt.Sprintf(format, args...)}
	}
	if !img.hasEntry {
		return bad("the Multiboot2 header has an address tag but no entry address tag")
	}
	var fileOff uint64
	if a.loadFromStart {
		if a.headerAddr < uint64(img.headerOff) {
			return bad("header_addr %#x is below the header's file offset %#x, with load_addr -1", a.headerAddr, img.headerOff)
		}
		a.loadAddr = a.headerAddr - uint64(img.headerOff)
	} else {
		if a.loadAddr > a.headerAddr {
			return bad("load_addr %#x is above header_addr %#x", a.loadAddr, a.headerAddr)
		}
		if a.headerAddr-a.loadAddr > uint64(img.headerOff) {
			return bad("header_addr %#x - load_addr %#x = %#x reaches before the start of the file (header at offset %#x)",
				a.headerAddr, a.loadAddr, a.headerAddr-a.loadAddr, img.headerOff)
		}
		fileOff = uint64(img.headerOff) - (a.headerAddr - a.loadAddr)
	}
	loadLen := uint64(len(f)) - fileOff
	if a.loadEndAddr != 0 {
		if a.loadEndAddr < a.loadAddr {
			return bad("load_end_addr %#x is below load_addr %#x", a.loadEndAddr, a.loadAddr)
		}
		if a.loadEndAddr-a.loadAddr > loadLen {
			return bad("load_end_addr %#x - load_addr %#x = %d bytes, more than the %d the file has from offset %#x",
				a.loadEndAddr, a.loadAddr, a.loadEndAddr-a.loadAddr, loadLen, fileOff)
		}
		loadLen = a.loadEndAddr - a.loadAddr
	}
	end := a.loadAddr + loadLen
	if a.bssEndAddr != 0 {
		if a.bssEndAddr < end {
			return bad("bss_end_addr %#x is below the end of the loaded image %#x", a.bssEndAddr, end)
		}
		end = a.bssEndAddr
	}
	if end > 1<<32 || end < a.loadAddr {
		return 0, platform.Region{}, nil, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("the image at %#x-%#x reaches above 4 GiB", a.loadAddr, end)}
	}
	r := platform.Region{Start: a.loadAddr, End: end}
	if r.Empty() {
		return bad("the header's addresses load nothing (load_addr %#x, load_end_addr %#x)", a.loadAddr, a.loadEndAddr)
	}
	if err := s.claim(r, "the image", file); err != nil {
		return 0, r, nil, err
	}
	if err := s.write(a.loadAddr, f[fileOff:fileOff+loadLen], "the image", file); err != nil {
		return 0, r, nil, err
	}
	if err := s.zero(a.loadAddr+loadLen, end-(a.loadAddr+loadLen), "the image's bss", file); err != nil {
		return 0, r, nil, err
	}
	if img.entry < r.Start || img.entry >= r.End {
		return 0, r, nil, &Error{File: file, Kind: ErrMalformed, Msg: fmt.Sprintf("entry_addr %#x is outside the loaded image %v", img.entry, r)}
	}
	return img.entry, r, []platform.Region{r}, nil
}

// checkEntry refuses an entry point outside what was loaded: jumping
// there would run whatever the guest's memory holds.
func checkEntry(entry uint64, segs []platform.Region, file string) error {
	for _, r := range segs {
		if entry >= r.Start && entry < r.End {
			return nil
		}
	}
	return &Error{File: file, Kind: ErrMalformed, Msg: fmt.Sprintf("entry point %#x is outside every loaded segment", entry)}
}

// memInfo is mem_lower and mem_upper (Multiboot 3.3): KiB of usable RAM
// from 0, and from 1 MiB, each up to the first hole.
func (s *session) memInfo() (lower, upper uint32) {
	for _, u := range s.usable {
		if u.Start == 0 {
			lower = uint32(min(u.End, platform.LegacyHoleStart) / 1024)
		}
		if u.Start == platform.HighMemoryStart {
			upper = uint32(min(u.Size()/1024, 0xffffffff))
		}
	}
	return lower, upper
}

func (s *session) prepareMultiboot(image []byte, opts Options, file string, find func([]byte) (*mbImage, error), format Format) (*Result, *mbImage, error) {
	img, err := find(image)
	if err != nil {
		kind := ErrMalformed
		if errors.Is(err, ErrUnsupported) {
			kind = ErrUnsupported
		}
		return nil, nil, &Error{File: file, Kind: kind, Msg: err.Error()}
	}
	if err := checkString(opts.Cmdline, "the command line", file); err != nil {
		return nil, nil, err
	}
	res := &Result{Format: format}
	entry, span, segs, err := s.loadImage(image, img, file)
	if err != nil {
		return nil, nil, err
	}
	if err := checkEntry(entry, segs, file); err != nil {
		return nil, nil, err
	}
	res.Kernel, res.Segments = span, segs
	if res.Modules, err = s.placeModules(modulesOf(opts), span.End, file); err != nil {
		return nil, nil, err
	}
	res.State.RIP = entry
	return res, img, nil
}

// LoadMultiboot loads a Multiboot (0.6.96) image and builds its boot
// information: memory sizes, command line, modules with their strings, the
// memory map and the loader name. The state is 32-bit protected mode with
// flat segments and paging off, EAX = 0x2BADB002, EBX = the information.
func LoadMultiboot(g Guest, image []byte, opts Options) (*Result, error) {
	file := fileName("multiboot", opts.KernelName)
	s, err := newSession(g, file)
	if err != nil {
		return nil, err
	}
	res, _, err := s.prepareMultiboot(image, opts, file, findMultiboot1, FormatMultiboot)
	if err != nil {
		return nil, err
	}
	mods := modulesOf(opts)

	info, err := s.alloc(mbiSize, 8, "the Multiboot information", file)
	if err != nil {
		return nil, err
	}
	mbi := make([]byte, mbiSize)
	flags := uint32(mbiMem | mbiCmdline | mbiMmap | mbiLoaderName)
	lower, upper := s.memInfo()
	le.PutUint32(mbi[mbiOffMemLower:], lower)
	le.PutUint32(mbi[mbiOffMemUpper:], upper)

	if res.Cmdline, err = s.putString(opts.Cmdline, "the command line", file); err != nil {
		return nil, err
	}
	le.PutUint32(mbi[mbiOffCmdline:], uint32(res.Cmdline))
	name, err := s.putString(LoaderName, "the loader name", file)
	if err != nil {
		return nil, err
	}
	le.PutUint32(mbi[mbiOffLoaderName:], uint32(name))

	if len(mods) > 0 {
		flags |= mbiMods
		list, err := s.alloc(uint64(len(mods))*mb1ModSize, 8, "the module list", file)
		if err != nil {
			return nil, err
		}
		lb := make([]byte, len(mods)*mb1ModSize)
		for i, m := range mods {
			str, err := s.putString(m.Cmdline, fmt.Sprintf("module %d's string", i), file)
			if err != nil {
				return nil, err
			}
			e := lb[i*mb1ModSize:]
			le.PutUint32(e[0:], uint32(res.Modules[i].Start))
			le.PutUint32(e[4:], uint32(res.Modules[i].End))
			le.PutUint32(e[8:], uint32(str))
		}
		if err := s.write(list, lb, "the module list", file); err != nil {
			return nil, err
		}
		le.PutUint32(mbi[mbiOffModsCount:], uint32(len(mods)))
		le.PutUint32(mbi[mbiOffModsAddr:], uint32(list))
	}

	mm := make([]byte, len(s.mem)*mb1MmapEntry)
	for i, r := range s.mem {
		e := mm[i*mb1MmapEntry:]
		le.PutUint32(e[0:], mb1MmapEntry-4) // size excludes itself
		le.PutUint64(e[4:], r.Start)
		le.PutUint64(e[12:], r.Size())
		le.PutUint32(e[20:], uint32(r.Type))
	}
	mmap, err := s.alloc(uint64(len(mm)), 8, "the memory map", file)
	if err != nil {
		return nil, err
	}
	if err := s.write(mmap, mm, "the memory map", file); err != nil {
		return nil, err
	}
	le.PutUint32(mbi[mbiOffMmapLength:], uint32(len(mm)))
	le.PutUint32(mbi[mbiOffMmapAddr:], uint32(mmap))
	le.PutUint32(mbi[0:], flags)
	if err := s.write(info, mbi, "the Multiboot information", file); err != nil {
		return nil, err
	}
	res.Info = info
	return s.finishProtected(res, mb1BootMagic, file)
}

// finishProtected sets the 32-bit entry state: EAX = magic, EBX = info.
func (s *session) finishProtected(res *Result, magic uint32, file string) (*Result, error) {
	st, err := s.entryState(ModeProtected, res.State.RIP, file)
	if err != nil {
		return nil, err
	}
	st.GPR[vcpu.RAX] = uint64(magic)
	st.GPR[vcpu.RBX] = res.Info
	res.State = st
	return res, nil
}

// rsdpCopy reads the guest's RSDP back from its memory and checks it, for
// the Multiboot2 ACPI tags, which carry copies.
func (s *session) rsdpCopy(file string) ([]byte, error) {
	buf := make([]byte, rsdpV2Length)
	if err := s.g.Memory.ReadGuest(s.g.RSDP, buf); err != nil {
		return nil, &Error{File: file, Kind: ErrGuestMemory, Msg: fmt.Sprintf("reading the RSDP at %#x: %v", s.g.RSDP, err)}
	}
	r, err := acpi.DecodeRSDP(buf)
	if err != nil {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("the guest's RSDP at %#x: %v (build the ACPI tables first)", s.g.RSDP, err)}
	}
	if r.Revision < 2 {
		return buf[:rsdpV1Length], nil
	}
	return buf, nil
}

// mb2Builder appends Multiboot2 information tags, each 8-byte aligned.
type mb2Builder struct{ b []byte }

func (m *mb2Builder) tag(typ uint32, payload ...[]byte) {
	n := 8
	for _, p := range payload {
		n += len(p)
	}
	start := len(m.b)
	m.b = le.AppendUint32(m.b, typ)
	m.b = le.AppendUint32(m.b, uint32(n))
	for _, p := range payload {
		m.b = append(m.b, p...)
	}
	for (len(m.b)-start)%8 != 0 {
		m.b = append(m.b, 0)
	}
}

func cstring(s string) []byte { return append([]byte(s), 0) }

func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = le.AppendUint32(b, v)
	}
	return b
}

// LoadMultiboot2 loads a Multiboot2 (1.0) image and builds its boot
// information: command line, loader name "tamavisor", modules, basic memory
// information, the memory map, and copies of the RSDP (old and new ACPI
// tags) when the guest has ACPI tables. The state is 32-bit protected mode
// with flat segments and paging off, EAX = 0x36D76289, EBX = the
// information.
func LoadMultiboot2(g Guest, image []byte, opts Options) (*Result, error) {
	file := fileName("multiboot2", opts.KernelName)
	s, err := newSession(g, file)
	if err != nil {
		return nil, err
	}
	res, img, err := s.prepareMultiboot(image, opts, file, findMultiboot2, FormatMultiboot2)
	if err != nil {
		return nil, err
	}
	if img.needACPI && s.g.RSDP == 0 {
		return nil, &Error{File: file, Kind: ErrUnsupported, Msg: "the image requires the ACPI RSDP tag, and the guest has no ACPI tables"}
	}
	mods := modulesOf(opts)
	for i, m := range mods {
		if err := checkString(m.Cmdline, fmt.Sprintf("module %d's string", i), file); err != nil {
			return nil, err
		}
	}

	var m mb2Builder
	m.b = make([]byte, 8, 1024) // total_size, reserved
	m.tag(mbi2Cmdline, cstring(opts.Cmdline))
	m.tag(mbi2LoaderName, cstring(LoaderName))
	for i, mod := range mods {
		m.tag(mbi2Module, u32s(uint32(res.Modules[i].Start), uint32(res.Modules[i].End)), cstring(mod.Cmdline))
	}
	lower, upper := s.memInfo()
	m.tag(mbi2BasicMem, u32s(lower, upper))
	mm := u32s(mbi2MmapEntry, 0) // entry_size, entry_version
	for _, r := range s.mem {
		mm = le.AppendUint64(mm, r.Start)
		mm = le.AppendUint64(mm, r.Size())
		mm = le.AppendUint32(mm, uint32(r.Type))
		mm = le.AppendUint32(mm, 0)
	}
	m.tag(mbi2Mmap, mm)
	if s.g.RSDP != 0 {
		rsdp, err := s.rsdpCopy(file)
		if err != nil {
			return nil, err
		}
		m.tag(mbi2ACPIOld, rsdp[:rsdpV1Length])
		if len(rsdp) == rsdpV2Length {
			m.tag(mbi2ACPINew, rsdp)
		}
	}
	m.tag(mbi2End)
	le.PutUint32(m.b[0:], uint32(len(m.b)))

	info, err := s.alloc(uint64(len(m.b)), 8, "the Multiboot2 information", file)
	if err != nil {
		return nil, err
	}
	if err := s.write(info, m.b, "the Multiboot2 information", file); err != nil {
		return nil, err
	}
	res.Info = info
	// The command line is the first tag's string.
	res.Cmdline = info + 8 + 8
	return s.finishProtected(res, mb2BootMagic, file)
}
