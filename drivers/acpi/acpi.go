// Package acpi reads the firmware's ACPI system description tables (ACPI
// 6.5, chapter 5.2) to discover the platform at boot: processors and
// interrupt controllers (MADT), power-management and reset registers (FADT),
// the HPET, PCI Express configuration space (MCFG) and the IOMMUs (Intel
// DMAR, AMD IVRS). Every other table is kept as raw bytes for code that
// needs it (DSDT, SSDT, WAET, ...).
//
// Firmware tables are input the hypervisor does not control. The parser
// never panics and never loops without a bound: only a broken RSDP, or a
// root table (XSDT/RSDT) that cannot be used at all, fails the parse. Any
// other table that is unreadable, fails its checksum, has an impossible
// length or does not decode is reported in Tables.Problems, each problem
// naming the table's signature and address, and the parse goes on without
// it (or with what decoded before the damage).
package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"tamavisor/drivers/hw"
)

// Limits that keep a corrupt or hostile table from making the parser read,
// allocate or loop without bound. Real firmware stays far below them: the
// largest tables (DSDTs of big servers) are around 1 MiB, and servers list a
// few dozen tables.
const (
	// MaxTableLength is the largest table length accepted.
	MaxTableLength = 16 << 20
	// MaxTables is the most root-table entries followed.
	MaxTables = 512
	// maxTotalBytes caps all table bytes read by one Parse.
	maxTotalBytes = 64 << 20
	// readChunk is the unit in which a table's body is read, so that a
	// length running past the end of memory costs at most one chunk
	// beyond what exists.
	readChunk = 64 << 10
)

// HeaderLength is the size of the common table header (ACPI 6.5,
// 5.2.6).
const HeaderLength = 36

// Errors classify problems; a Problem or returned error wraps one of these,
// so callers can test with errors.Is.
var (
	ErrChecksum   = errors.New("checksum mismatch")
	ErrTruncated  = errors.New("truncated")
	ErrTooLong    = errors.New("length too large")
	ErrUnreadable = errors.New("unreadable")
	ErrSignature  = errors.New("bad signature")
	ErrDuplicate  = errors.New("duplicate table")
	ErrMalformed  = errors.New("malformed")
	ErrNotFound   = errors.New("not found")
)

// TableError is one problem with one table: every entry of
// Tables.Problems is a *TableError, and so is the error Parse returns.
type TableError struct {
	// Signature is the table's four-character signature, or the one it
	// was expected to carry; empty when neither is known.
	Signature string
	// Address is the table's physical address.
	Address uint64
	// Source says where the table's address came from (e.g. "XSDT
	// entry 3", "FADT X_DSDT"), for tables whose signature is unknown.
	Source string
	Err    error
}

func (e *TableError) Error() string {
	name := e.Signature
	switch {
	case name != "" && !validSignature(name):
		name = fmt.Sprintf("%q", name)
		if e.Source != "" {
			name = e.Source + " " + name
		}
	case name == "" && e.Source != "":
		name = e.Source
	case name == "":
		name = "table"
	}
	return fmt.Sprintf("acpi: %s at %#x: %v", name, e.Address, e.Err)
}

func (e *TableError) Unwrap() error { return e.Err }

// Table is one system description table as found in memory.
type Table struct {
	Signature       string
	Address         uint64
	Length          uint32
	Revision        uint8
	OEMID           string
	OEMTableID      string
	OEMRevision     uint32
	CreatorID       string
	CreatorRevision uint32
	// Raw is the whole table, header included, Length bytes.
	Raw []byte
	// FromRoot is true for the tables listed by the XSDT/RSDT, false for
	// the root itself and the tables the FADT points to (DSDT, FACS).
	FromRoot bool
}

// Body is the table without its common header.
func (t *Table) Body() []byte {
	if len(t.Raw) < HeaderLength {
		return nil
	}
	return t.Raw[HeaderLength:]
}

// RSDP is the Root System Description Pointer (ACPI 6.5, 5.2.5.3).
type RSDP struct {
	Address  uint64
	OEMID    string
	Revision uint8 // 0 for ACPI 1.0; 2 for ACPI 2.0 and later
	RSDT     uint32
	// XSDT and Length are zero for revision 0.
	XSDT   uint64
	Length uint32
	Raw    []byte
}

// RSDP layout (ACPI 6.5, 5.2.5.3).
const (
	rsdpV1Length    = 20 // the part covered by the ACPI 1.0 checksum
	rsdpV2Length    = 36
	rsdpMaxLength   = 4096
	rsdpSignature   = "RSD PTR "
	rsdpOffRevision = 15
	rsdpOffRSDT     = 16
	rsdpOffLength   = 20
	rsdpOffXSDT     = 24
)

func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// ReadRSDP reads and validates the RSDP at addr: signature, the ACPI 1.0
// checksum over its first 20 bytes and, from revision 2, the extended
// checksum over its whole length.
func ReadRSDP(mem hw.PhysMem, addr uint64) (*RSDP, error) {
	fail := func(err error) (*RSDP, error) {
		return nil, &TableError{Signature: "RSDP", Address: addr, Err: err}
	}
	var v1 [rsdpV1Length]byte
	if err := mem.ReadPhys(addr, v1[:]); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrUnreadable, err))
	}
	if string(v1[:8]) != rsdpSignature {
		return fail(fmt.Errorf("%w: %q, want %q", ErrSignature, v1[:8], rsdpSignature))
	}
	if s := checksum(v1[:]); s != 0 {
		return fail(fmt.Errorf("%w (sum %#x over the first %d bytes)", ErrChecksum, s, rsdpV1Length))
	}
	r := &RSDP{
		Address:  addr,
		OEMID:    trim(v1[9:15]),
		Revision: v1[rsdpOffRevision],
		RSDT:     binary.LittleEndian.Uint32(v1[rsdpOffRSDT:]),
	}
	if r.Revision < 2 {
		r.Raw = v1[:]
		return r, nil
	}
	var v2 [rsdpV2Length]byte
	if err := mem.ReadPhys(addr, v2[:]); err != nil {
		return fail(fmt.Errorf("%w: %v", ErrUnreadable, err))
	}
	r.Length = binary.LittleEndian.Uint32(v2[rsdpOffLength:])
	if r.Length < rsdpV2Length || r.Length > rsdpMaxLength {
		return fail(fmt.Errorf("%w: revision %d length %d outside %d..%d", ErrTruncated, r.Revision, r.Length, rsdpV2Length, rsdpMaxLength))
	}
	raw := make([]byte, r.Length)
	if err := mem.ReadPhys(addr, raw); err != nil {
		return fail(fmt.Errorf("%w: length %d: %v", ErrUnreadable, r.Length, err))
	}
	if s := checksum(raw); s != 0 {
		return fail(fmt.Errorf("%w (extended checksum, sum %#x over %d bytes)", ErrChecksum, s, r.Length))
	}
	r.XSDT = binary.LittleEndian.Uint64(raw[rsdpOffXSDT:])
	r.Raw = raw
	return r, nil
}

// Legacy BIOS RSDP search areas (ACPI 6.5, 5.2.5.1).
const (
	bdaEBDASegment = 0x40e   // 16-bit real-mode segment of the EBDA
	ebdaSearchLen  = 1024    // first KiB of the EBDA
	ebdaLowest     = 0x500   // above the BIOS data area
	ebdaHighest    = 0xa0000 // the EBDA lies in conventional memory
	biosAreaStart  = 0xe0000
	biosAreaEnd    = 0x100000
	rsdpAlign      = 16
)

// FindRSDP finds the RSDP the way a legacy BIOS publishes it: on a 16-byte
// boundary in the first KiB of the Extended BIOS Data Area (whose segment
// is the word at 0x40E), then in 0xE0000-0xFFFFF. UEFI firmware publishes
// the RSDP in its configuration table instead; boot code that has it (or a
// multiboot copy) calls Parse with that address.
func FindRSDP(mem hw.PhysMem) (uint64, error) {
	var areas [][2]uint64
	var seg [2]byte
	if err := mem.ReadPhys(bdaEBDASegment, seg[:]); err == nil {
		base := uint64(binary.LittleEndian.Uint16(seg[:])) << 4
		if base >= ebdaLowest && base < ebdaHighest {
			areas = append(areas, [2]uint64{base, min(base+ebdaSearchLen, ebdaHighest)})
		}
	}
	areas = append(areas, [2]uint64{biosAreaStart, biosAreaEnd})

	var rejected []string
	var searched []string
	for _, a := range areas {
		searched = append(searched, fmt.Sprintf("%#x-%#x", a[0], a[1]-1))
		buf := make([]byte, a[1]-a[0])
		if err := mem.ReadPhys(a[0], buf); err != nil {
			rejected = append(rejected, fmt.Sprintf("%#x-%#x unreadable: %v", a[0], a[1]-1, err))
			continue
		}
		for off := 0; off+len(rsdpSignature) <= len(buf); off += rsdpAlign {
			if string(buf[off:off+len(rsdpSignature)]) != rsdpSignature {
				continue
			}
			addr := a[0] + uint64(off)
			if _, err := ReadRSDP(mem, addr); err != nil {
				if len(rejected) < 4 {
					rejected = append(rejected, err.Error())
				}
				continue
			}
			return addr, nil
		}
	}
	msg := "acpi: no valid RSDP in " + strings.Join(searched, " or ")
	if len(rejected) > 0 {
		msg += " (" + strings.Join(rejected, "; ") + ")"
	}
	return 0, fmt.Errorf("%s: %w", msg, ErrNotFound)
}

// Tables is what Parse found.
type Tables struct {
	RSDP RSDP
	// Root is the XSDT, or the RSDT when there is no usable XSDT.
	Root *Table
	// All lists every table read successfully: the root, the tables it
	// lists in its order, then the DSDT and FACS the FADT points to.
	All []*Table

	// Decoded tables; nil (empty) when absent or undecodable.
	FADT  *FADT
	MADT  *MADT
	HPETs []*HPET // one per HPET block
	MCFG  *MCFG
	DMAR  *DMAR
	IVRS  *IVRS

	// Problems lists, as *TableError, each table skipped or only partly
	// decoded, and why.
	Problems []error
}

// Find returns the first table with signature sig, or nil.
func (t *Tables) Find(sig string) *Table {
	for _, x := range t.All {
		if x.Signature == sig {
			return x
		}
	}
	return nil
}

// FindAll returns every table with signature sig (SSDTs come in numbers).
func (t *Tables) FindAll(sig string) []*Table {
	var out []*Table
	for _, x := range t.All {
		if x.Signature == sig {
			out = append(out, x)
		}
	}
	return out
}

// Summary is a one-line inventory for the boot log: the signatures the
// root table lists, in its order, e.g. "FACP APIC HPET MCFG WAET", followed
// by the number of problems if there were any.
func (t *Tables) Summary() string {
	var b strings.Builder
	for _, x := range t.All {
		if !x.FromRoot {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x.Signature)
	}
	if n := len(t.Problems); n > 0 {
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d problem", n)
		if n > 1 {
			b.WriteByte('s')
		}
	}
	return b.String()
}

// Parse reads the RSDP at rsdp, the root table it points to (the XSDT
// from revision 2, else the RSDT; the RSDT also when the XSDT is unusable),
// every table the root lists, and the DSDT and FACS the FADT points to.
// It returns an error only when the RSDP or every root table is unusable.
func Parse(mem hw.PhysMem, rsdp uint64) (*Tables, error) {
	r, err := ReadRSDP(mem, rsdp)
	if err != nil {
		return nil, err
	}
	return ParseFrom(mem, r)
}

// ParseFrom is Parse for an RSDP already read and validated, such as the
// copy a multiboot2 loader passes.
func ParseFrom(mem hw.PhysMem, r *RSDP) (*Tables, error) {
	p := &parser{mem: mem, t: &Tables{RSDP: *r}, seen: map[uint64]*Table{}}
	if err := p.root(); err != nil {
		return nil, err
	}
	p.entries()
	p.fadtTargets()
	return p.t, nil
}

type parser struct {
	mem       hw.PhysMem
	t         *Tables
	seen      map[uint64]*Table
	bytesRead int
	entrySize int // 8 for the XSDT, 4 for the RSDT
}

func (p *parser) problem(sig string, addr uint64, source string, err error) {
	p.t.Problems = append(p.t.Problems, &TableError{Signature: sig, Address: addr, Source: source, Err: err})
}

// root picks the XSDT or RSDT (ACPI 6.5, 5.2.7 and 5.2.8). An OS must use
// the XSDT when there is one; like Linux, this falls back to the RSDT when
// the XSDT is there but broken, and reports the XSDT as a problem.
func (p *parser) root() error {
	r := &p.t.RSDP
	var xerr *TableError
	if r.Revision >= 2 && r.XSDT != 0 {
		t, err := p.read(r.XSDT, "XSDT", "RSDP XsdtAddress", false)
		if err == nil {
			p.t.Root, p.entrySize = t, 8
			return nil
		}
		xerr = err
		if r.RSDT == 0 {
			return xerr
		}
	}
	if r.RSDT == 0 {
		return &TableError{Signature: "RSDT", Address: 0, Source: "RSDP", Err: fmt.Errorf("%w: RSDP revision %d gives no root table address", ErrNotFound, r.Revision)}
	}
	t, err := p.read(uint64(r.RSDT), "RSDT", "RSDP RsdtAddress", false)
	if err != nil {
		if xerr != nil {
			return fmt.Errorf("%w (and the fallback %v)", xerr, err)
		}
		return err
	}
	if xerr != nil {
		p.t.Problems = append(p.t.Problems, xerr)
	}
	p.t.Root, p.entrySize = t, 4
	return nil
}

func (p *parser) entries() {
	root := p.t.Root
	body := root.Body()
	n := len(body) / p.entrySize
	if rem := len(body) % p.entrySize; rem != 0 {
		p.problem(root.Signature, root.Address, "", fmt.Errorf("%w: %d bytes after the last %d-byte entry ignored", ErrMalformed, rem, p.entrySize))
	}
	if n > MaxTables {
		p.problem(root.Signature, root.Address, "", fmt.Errorf("%w: %d entries, only the first %d followed", ErrTooLong, n, MaxTables))
		n = MaxTables
	}
	for i := 0; i < n; i++ {
		var addr uint64
		if p.entrySize == 8 {
			addr = binary.LittleEndian.Uint64(body[i*8:])
		} else {
			addr = uint64(binary.LittleEndian.Uint32(body[i*4:]))
		}
		source := fmt.Sprintf("%s entry %d", root.Signature, i)
		if addr == 0 {
			p.problem("", 0, source, fmt.Errorf("%w: null address", ErrNotFound))
			continue
		}
		t, err := p.read(addr, "", source, false)
		if err != nil {
			p.t.Problems = append(p.t.Problems, err)
			continue
		}
		t.FromRoot = true
		p.decode(t)
	}
}

// decode hands a table to its decoder and files the result.
func (p *parser) decode(t *Table) {
	var err error
	dup := func(have bool) bool {
		if have {
			first := p.t.Find(t.Signature)
			p.problem(t.Signature, t.Address, "", fmt.Errorf("%w: the first at %#x is used", ErrDuplicate, first.Address))
		}
		return have
	}
	switch t.Signature {
	case SigFADT:
		if !dup(p.t.FADT != nil) {
			p.t.FADT, err = ParseFADT(t.Raw)
		}
	case SigMADT:
		if !dup(p.t.MADT != nil) {
			p.t.MADT, err = ParseMADT(t.Raw)
		}
	case SigHPET:
		var h *HPET
		if h, err = ParseHPET(t.Raw); h != nil {
			p.t.HPETs = append(p.t.HPETs, h)
		}
	case SigMCFG:
		if !dup(p.t.MCFG != nil) {
			p.t.MCFG, err = ParseMCFG(t.Raw)
		}
	case SigDMAR:
		if !dup(p.t.DMAR != nil) {
			p.t.DMAR, err = ParseDMAR(t.Raw)
		}
	case SigIVRS:
		if !dup(p.t.IVRS != nil) {
			p.t.IVRS, err = ParseIVRS(t.Raw)
		}
	}
	p.t.All = append(p.t.All, t)
	if err != nil {
		p.problem(t.Signature, t.Address, "", err)
	}
}

// fadtTargets reads the DSDT and FACS, which the FADT points to rather
// than the root table (ACPI 6.5, 5.2.9).
func (p *parser) fadtTargets() {
	f := p.t.FADT
	if f == nil {
		return
	}
	if a := f.DSDTAddress(); a != 0 {
		if t, err := p.read(a, SigDSDT, "FADT DSDT", false); err != nil {
			p.t.Problems = append(p.t.Problems, err)
		} else {
			p.t.All = append(p.t.All, t)
		}
	}
	if a := f.FACSAddress(); a != 0 {
		if t, err := p.read(a, SigFACS, "FADT FIRMWARE_CTRL", true); err != nil {
			p.t.Problems = append(p.t.Problems, err)
		} else {
			p.t.All = append(p.t.All, t)
		}
	}
}

// Common header layout (ACPI 6.5, 5.2.6).
const (
	hdrOffLength          = 4
	hdrOffRevision        = 8
	hdrOffOEMID           = 10
	hdrOffOEMTableID      = 16
	hdrOffOEMRevision     = 24
	hdrOffCreatorID       = 28
	hdrOffCreatorRevision = 32
)

// FACS layout (ACPI 6.5, 5.2.10): no common header and no
// checksum; 64 bytes at least; the version at 32.
const (
	facsMinLength  = 64
	facsOffVersion = 32
)

// read reads and validates the table at addr. want, when set, is the
// signature the table must carry. facs selects the FACS rules.
func (p *parser) read(addr uint64, want, source string, facs bool) (*Table, *TableError) {
	fail := func(sig string, err error) (*Table, *TableError) {
		if sig == "" || !validSignature(sig) && want != "" {
			sig = want
		}
		return nil, &TableError{Signature: sig, Address: addr, Source: source, Err: err}
	}
	if prev, ok := p.seen[addr]; ok {
		return fail(prev.Signature, fmt.Errorf("%w: listed again (%s)", ErrDuplicate, source))
	}
	minLen := uint32(HeaderLength)
	if facs {
		minLen = facsMinLength
	}
	var hdr [HeaderLength]byte
	if err := p.mem.ReadPhys(addr, hdr[:8]); err != nil {
		return fail("", fmt.Errorf("%w: cannot read the header: %v", ErrUnreadable, err))
	}
	sig := string(hdr[:4])
	if !validSignature(sig) {
		return fail(sig, fmt.Errorf("%w: %q is not a table signature", ErrSignature, sig))
	}
	if want != "" && sig != want {
		return fail(want, fmt.Errorf("%w: found %q, want %q", ErrSignature, sig, want))
	}
	length := binary.LittleEndian.Uint32(hdr[hdrOffLength:])
	if length < minLen {
		return fail(sig, fmt.Errorf("%w: length %d is shorter than the %d-byte header", ErrTruncated, length, minLen))
	}
	if length > MaxTableLength {
		return fail(sig, fmt.Errorf("%w: length %#x is over the %#x limit", ErrTooLong, length, MaxTableLength))
	}
	if addr+uint64(length) < addr {
		return fail(sig, fmt.Errorf("%w: length %#x wraps the address space", ErrUnreadable, length))
	}
	// Bytes read count against the budget whether or not the table
	// turns out good, so that many broken tables cannot add up to more.
	if p.bytesRead+int(length) > maxTotalBytes {
		return fail(sig, fmt.Errorf("%w: length %#x exceeds what is left of the %#x bytes all tables may take", ErrTooLong, length, maxTotalBytes))
	}
	raw := make([]byte, 0, min(int(length), readChunk))
	for off := 0; off < int(length); {
		n := min(readChunk, int(length)-off)
		raw = slices.Grow(raw, n)[:off+n]
		p.bytesRead += n
		if err := p.mem.ReadPhys(addr+uint64(off), raw[off:]); err != nil {
			return fail(sig, fmt.Errorf("%w: length %#x runs past readable memory at %#x: %v", ErrUnreadable, length, addr+uint64(off), err))
		}
		off += n
	}
	if !facs {
		if s := checksum(raw); s != 0 {
			return fail(sig, fmt.Errorf("%w (sum %#x)", ErrChecksum, s))
		}
	}
	t := &Table{Signature: sig, Address: addr, Length: length, Raw: raw}
	if facs {
		t.Revision = raw[facsOffVersion]
	} else {
		t.Revision = raw[hdrOffRevision]
		t.OEMID = trim(raw[hdrOffOEMID : hdrOffOEMID+6])
		t.OEMTableID = trim(raw[hdrOffOEMTableID : hdrOffOEMTableID+8])
		t.OEMRevision = binary.LittleEndian.Uint32(raw[hdrOffOEMRevision:])
		t.CreatorID = trim(raw[hdrOffCreatorID : hdrOffCreatorID+4])
		t.CreatorRevision = binary.LittleEndian.Uint32(raw[hdrOffCreatorRevision:])
	}
	p.seen[addr] = t
	return t, nil
}

// validSignature accepts the characters ACPI names are made of (ACPI 6.5,
// 5.2.6: "ASCII string representation of the table identifier"; in
// practice upper-case letters, digits and '_'); lower case is tolerated
// for OEM tables. Zeroed or random memory fails this test.
func validSignature(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// trim turns a fixed-width, space- or NUL-padded ID field into a string.
func trim(b []byte) string {
	return strings.TrimRight(string(b), " \x00")
}

// Table signatures (ACPI 6.5, 5.2.6, Tables 5.5 and 5.6).
const (
	SigRSDT = "RSDT"
	SigXSDT = "XSDT"
	SigFADT = "FACP"
	SigFACS = "FACS"
	SigDSDT = "DSDT"
	SigSSDT = "SSDT"
	SigMADT = "APIC"
	SigHPET = "HPET"
	SigMCFG = "MCFG"
	SigDMAR = "DMAR"
	SigIVRS = "IVRS"
)

// checkHeader validates what a decoder needs of a table it was handed
// directly: the common header, and a length field that fits the bytes
// given. It returns the table cut to its length.
func checkHeader(raw []byte, sig string, fixed int) ([]byte, error) {
	if len(raw) < HeaderLength {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrTruncated, len(raw), HeaderLength)
	}
	if got := string(raw[:4]); got != sig {
		return nil, fmt.Errorf("%w: %q, want %q", ErrSignature, got, sig)
	}
	length := binary.LittleEndian.Uint32(raw[hdrOffLength:])
	if uint64(length) > uint64(len(raw)) {
		return nil, fmt.Errorf("%w: length field %d, only %d bytes present", ErrTruncated, length, len(raw))
	}
	if int(length) < fixed {
		return nil, fmt.Errorf("%w: length %d is shorter than the %d-byte fixed part", ErrTruncated, length, fixed)
	}
	return raw[:length], nil
}

// DecodeRSDP validates an RSDP given as bytes rather than by address, as
// Multiboot2 loaders hand it over (Multiboot2 1.0, 3.6.14 and 3.6.15: the
// tags carry a copy of the RSDP). The result's Address is 0.
func DecodeRSDP(raw []byte) (*RSDP, error) {
	return ReadRSDP(rsdpBytes(raw), 0)
}

// rsdpBytes serves a byte slice as physical memory starting at address 0.
type rsdpBytes []byte

func (b rsdpBytes) ReadPhys(addr uint64, buf []byte) error {
	if addr > uint64(len(b)) || uint64(len(buf)) > uint64(len(b))-addr {
		return fmt.Errorf("%d bytes at %#x are past the %d-byte RSDP copy", len(buf), addr, len(b))
	}
	copy(buf, b[addr:])
	return nil
}
