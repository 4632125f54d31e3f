package loader

import (
	"encoding/binary"
	"fmt"
	"sort"

	"tamavisor/guests/platform"
)

// The loader area (platform.LoaderAreaStart..End, 128 KiB, reserved in the
// memory map) holds, at these offsets:
const (
	areaPML4   = 0x0000 // page-map level 4
	areaPDPT   = 0x1000 // page-directory-pointer table
	areaPD     = 0x2000 // four page directories, 2 MiB pages, 0-4 GiB
	numPDs     = 4
	areaGDT    = 0x6000 // the boot GDT
	areaStack  = 0x7000 // a boot stack page; RSP starts at its top
	stackTop   = 0x8000
	areaHeap   = 0x8000 // boot information, command lines, strings
	minAreaLen = areaHeap + 0x4000
	pageSize   = 0x1000
)

// le is the byte order of everything x86.
var le = binary.LittleEndian

func u16(b []byte, off int) uint16 {
	if off < 0 || off+2 > len(b) {
		return 0
	}
	return le.Uint16(b[off:])
}

func u32(b []byte, off int) uint32 {
	if off < 0 || off+4 > len(b) {
		return 0
	}
	return le.Uint32(b[off:])
}

func u64(b []byte, off int) uint64 {
	if off < 0 || off+8 > len(b) {
		return 0
	}
	return le.Uint64(b[off:])
}

func alignUp(v, a uint64) (uint64, bool) {
	r := (v + a - 1) &^ (a - 1)
	return r, r >= v
}

func alignDown(v, a uint64) uint64 { return v &^ (a - 1) }

// claim is a guest-physical range the loader has put something in.
type claim struct {
	platform.Region
	what string
}

// session is one load: the guest, what has been placed, and the loader
// area's allocation pointer.
type session struct {
	g       Guest
	mem     []platform.MemoryRange
	usable  []platform.Region
	claims  []claim
	heap    uint64 // next free byte of the loader area's heap
	heapEnd uint64
}

func newSession(g Guest, file string) (*session, error) {
	if g.Memory == nil {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: "no guest memory"}
	}
	if err := g.Layout.Validate(); err != nil {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: err.Error()}
	}
	area := g.Layout.LoaderArea
	if area.Size() < minAreaLen || area.End > 1<<32 {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("loader area %v is too small or above 4 GiB", area)}
	}
	if g.RSDP != 0 && !g.Layout.ACPIArea.Contains(platform.Region{Start: g.RSDP, End: g.RSDP + 36}) {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("RSDP address %#x is outside the ACPI area %v", g.RSDP, g.Layout.ACPIArea)}
	}
	s := &session{
		g:       g,
		mem:     g.Layout.MemoryMap(),
		usable:  g.Layout.Usable(),
		heap:    area.Start + areaHeap,
		heapEnd: area.End,
	}
	return s, nil
}

// describe names what a range collides with in the memory map, for
// errors: the reserved or missing part it touches.
func (s *session) describe(r platform.Region) string {
	l := s.g.Layout
	named := []struct {
		platform.Region
		name string
	}{
		{l.LoaderArea, "the loader area"},
		{l.ACPIArea, "the ACPI tables"},
		{platform.Region{Start: platform.LegacyHoleStart, End: platform.LegacyHoleEnd}, "the legacy VGA/BIOS hole"},
		{l.ECAM, "PCI ECAM"},
		{l.PCIMMIO, "the PCI MMIO window"},
	}
	for _, n := range named {
		if r.Overlaps(n.Region) {
			return fmt.Sprintf("%s at %v", n.name, n.Region)
		}
	}
	for _, m := range s.mem {
		if r.Overlaps(m.Region) && m.Type != platform.MemoryRAM {
			return fmt.Sprintf("%v", m)
		}
	}
	return fmt.Sprintf("addresses with no RAM (usable RAM: %s)", s.usableString())
}

func (s *session) usableString() string {
	out := ""
	for i, u := range s.usable {
		if i > 0 {
			out += ", "
		}
		out += u.String()
	}
	return out
}

func (s *session) claimsString() string {
	out := ""
	for i, c := range s.claims {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%s %v", c.what, c.Region)
	}
	if out == "" {
		return "nothing"
	}
	return out
}

// fits reports whether r lies wholly inside one usable RAM range and
// overlaps nothing claimed; if not, it says why.
func (s *session) fits(r platform.Region) (bool, string) {
	if r.End < r.Start {
		return false, "its end wraps around the address space"
	}
	inRAM := false
	for _, u := range s.usable {
		if u.Contains(r) {
			inRAM = true
			break
		}
	}
	if !inRAM {
		return false, "it would cover " + s.describe(r)
	}
	for _, c := range s.claims {
		if c.Overlaps(r) {
			return false, fmt.Sprintf("it overlaps %s at %v", c.what, c.Region)
		}
	}
	return true, ""
}

// claim records r as taken by what, after checking it fits.
func (s *session) claim(r platform.Region, what, file string) error {
	if r.Empty() {
		return nil
	}
	if ok, why := s.fits(r); !ok {
		return &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("%s at %v does not fit: %s", what, r, why)}
	}
	s.claims = append(s.claims, claim{r, what})
	return nil
}

// findFree returns an address aligned to align where size bytes fit in
// usable RAM, inside [lo, hi), overlapping nothing claimed: the lowest such
// address, or the highest when high is set.
func (s *session) findFree(size, align, lo, hi uint64, high bool) (uint64, bool) {
	if size == 0 || hi <= lo || size > hi-lo {
		return 0, false
	}
	// The free intervals: usable RAM within [lo, hi) less the claims.
	var free []platform.Region
	for _, u := range s.usable {
		r := platform.Region{Start: max(u.Start, lo), End: min(u.End, hi)}
		if r.Empty() {
			continue
		}
		pieces := []platform.Region{r}
		for _, c := range s.claims {
			var next []platform.Region
			for _, p := range pieces {
				if !p.Overlaps(c.Region) {
					next = append(next, p)
					continue
				}
				if c.Start > p.Start {
					next = append(next, platform.Region{Start: p.Start, End: c.Start})
				}
				if c.End < p.End {
					next = append(next, platform.Region{Start: c.End, End: p.End})
				}
			}
			pieces = next
		}
		free = append(free, pieces...)
	}
	sort.Slice(free, func(i, j int) bool { return free[i].Start < free[j].Start })
	if high {
		for i := len(free) - 1; i >= 0; i-- {
			f := free[i]
			if f.Size() < size {
				continue
			}
			at := alignDown(f.End-size, align)
			if at >= f.Start {
				return at, true
			}
		}
		return 0, false
	}
	for _, f := range free {
		at, ok := alignUp(f.Start, align)
		if ok && at < f.End && f.End-at >= size {
			return at, true
		}
	}
	return 0, false
}

// write copies b into guest memory at gpa.
func (s *session) write(gpa uint64, b []byte, what, file string) error {
	if len(b) == 0 {
		return nil
	}
	if err := s.g.Memory.WriteGuest(gpa, b); err != nil {
		return &Error{File: file, Kind: ErrGuestMemory, Msg: fmt.Sprintf("writing %s (%d bytes at %#x): %v", what, len(b), gpa, err)}
	}
	return nil
}

// zeroChunk is the source of zero fills; the loader never writes to it.
var zeroChunk [64 << 10]byte

// zero fills n bytes of guest memory at gpa with zeros, a chunk at a time.
func (s *session) zero(gpa, n uint64, what, file string) error {
	for n > 0 {
		c := min(n, uint64(len(zeroChunk)))
		if err := s.write(gpa, zeroChunk[:c], what, file); err != nil {
			return err
		}
		gpa += c
		n -= c
	}
	return nil
}

// alloc takes n bytes aligned to align from the loader area's heap.
func (s *session) alloc(n, align uint64, what, file string) (uint64, error) {
	at, ok := alignUp(s.heap, align)
	if !ok || at > s.heapEnd || n > s.heapEnd-at {
		return 0, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("%s (%d bytes) does not fit what is left of the loader area (%d of %d bytes used, area %v)",
			what, n, s.heap-(s.g.Layout.LoaderArea.Start+areaHeap), s.heapEnd-(s.g.Layout.LoaderArea.Start+areaHeap), s.g.Layout.LoaderArea)}
	}
	s.heap = at + n
	return at, nil
}

// putString writes a NUL-terminated string into the loader area and
// returns its address.
func (s *session) putString(str, what, file string) (uint64, error) {
	if err := checkString(str, what, file); err != nil {
		return 0, err
	}
	at, err := s.alloc(uint64(len(str))+1, 1, what, file)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, len(str)+1)
	copy(buf, str)
	return at, s.write(at, buf, what, file)
}

// checkString refuses strings a C kernel cannot take: an embedded NUL
// would silently cut them, and the length is bounded.
func checkString(str, what, file string) error {
	if len(str) > MaxCmdline {
		return &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("%s is %d bytes, over the %d-byte limit", what, len(str), MaxCmdline)}
	}
	for i := 0; i < len(str); i++ {
		if str[i] == 0 {
			return &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("%s has a NUL byte at offset %d", what, i)}
		}
	}
	return nil
}

// modules lists the modules to hand over: the initrd first, then
// opts.Modules.
func modulesOf(opts Options) []Module {
	var mods []Module
	if opts.Initrd != nil {
		name := opts.InitrdName
		if name == "" {
			name = "initrd"
		}
		mods = append(mods, Module{Name: name, Data: opts.Initrd, Cmdline: name})
	}
	return append(mods, opts.Modules...)
}

// placeModules loads each module, page-aligned, at the lowest free address
// above the kernel (the first free one above 1 MiB when none is), below 4
// GiB, where 32-bit boot information can name it.
func (s *session) placeModules(mods []Module, above uint64, file string) ([]platform.Region, error) {
	if len(mods) > MaxModules {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("%d modules, more than the %d the loader takes", len(mods), MaxModules)}
	}
	var out []platform.Region
	for i, m := range mods {
		mf := fileName(fmt.Sprintf("module %d", i), m.Name)
		size := uint64(len(m.Data))
		// An empty module still gets an address of its own, a page.
		want := max(size, 1)
		at, ok := s.findFree(want, pageSize, above, 1<<32, false)
		if !ok {
			at, ok = s.findFree(want, pageSize, platform.HighMemoryStart, 1<<32, false)
		}
		if !ok {
			return nil, &Error{File: mf, Kind: ErrNoRoom, Msg: fmt.Sprintf("%s (%d bytes) does not fit in the free usable RAM below 4 GiB (usable RAM: %s)",
				platform.SizeString(size), size, s.usableString())}
		}
		r := platform.Region{Start: at, End: at + size}
		if err := s.claim(platform.Region{Start: at, End: at + want}, fmt.Sprintf("module %d", i), mf); err != nil {
			return nil, err
		}
		if err := s.write(at, m.Data, "the module", mf); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
