// Package aml encodes the few ACPI Machine Language constructs a guest's
// DSDT needs (ACPI 6.5, chapter 20, "ACPI Machine Language (AML)
// Specification"): named objects, scopes, devices, packages, buffers,
// integers, strings, EISA IDs, and resource templates (chapter 6.4).
//
// It is an encoder, not a compiler: each function returns the bytes of one
// term, and callers nest them. Names and identifiers are checked; a Builder
// keeps the first error so that a whole table is built and checked once.
package aml

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Opcodes and prefixes (ACPI 6.5, 20.2.3 "Data Objects Encoding", 20.2.5
// "Term Objects Encoding", 20.3 "AML Byte Stream Byte Values").
const (
	ZeroOp          = 0x00
	OneOp           = 0x01
	NameOp          = 0x08
	BytePrefix      = 0x0a
	WordPrefix      = 0x0b
	DWordPrefix     = 0x0c
	StringPrefix    = 0x0d
	QWordPrefix     = 0x0e
	ScopeOp         = 0x10
	BufferOp        = 0x11
	PackageOp       = 0x12
	DualNamePrefix  = 0x2e
	MultiNamePrefix = 0x2f
	ExtOpPrefix     = 0x5b
	DeviceOp        = 0x82 // after ExtOpPrefix
	RootChar        = '\\'
	ParentPrefix    = '^'
	OnesOp          = 0xff
)

// MaxPkgLength is the largest PkgLength: 28 bits (ACPI 6.5, 20.2.4).
const MaxPkgLength = 1<<28 - 1

// Builder encodes terms and remembers the first error, so that the terms of
// a table nest without an error check at each step. After an error, the
// builder's methods return nil.
type Builder struct {
	err error
}

// Err is the first error met, or nil.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(err error) []byte {
	if b.err == nil {
		b.err = err
	}
	return nil
}

// PkgLength encodes the package length of a construct whose contents after
// the PkgLength are n bytes (ACPI 6.5, 20.2.4): the encoded length counts
// its own bytes. One byte holds lengths up to 63; otherwise bits 7:6 of the
// lead byte give the number (1-3) of bytes that follow, its bits 3:0 the
// least significant nibble, and each following byte the next 8 bits.
func PkgLength(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("aml: negative package length %d", n)
	}
	if n+1 <= 0x3f {
		return []byte{byte(n + 1)}, nil
	}
	for extra := 1; extra <= 3; extra++ {
		total := n + 1 + extra
		if total < 1<<(4+8*extra) {
			out := make([]byte, 1+extra)
			out[0] = byte(extra<<6) | byte(total&0x0f)
			for i := 1; i <= extra; i++ {
				out[i] = byte(total >> (4 + 8*(i-1)))
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("aml: package length %d is over the %d-byte limit", n, MaxPkgLength)
}

// nameSeg checks and pads one NameSeg (ACPI 6.5, 20.2.2): a lead character
// 'A'-'Z' or '_', then up to three of 'A'-'Z', '0'-'9', '_', padded with
// '_' to four.
func nameSeg(s string) ([4]byte, error) {
	var seg [4]byte
	if len(s) == 0 || len(s) > 4 {
		return seg, fmt.Errorf("aml: name segment %q is not 1 to 4 characters", s)
	}
	for i := 0; i < 4; i++ {
		if i >= len(s) {
			seg[i] = '_'
			continue
		}
		c := s[i]
		ok := c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return seg, fmt.Errorf("aml: name segment %q: character %q is not allowed at position %d", s, c, i)
		}
		seg[i] = c
	}
	return seg, nil
}

// NameString encodes an ACPI name path (ACPI 6.5, 20.2.2): an optional
// root prefix '\' or parent prefixes '^', then NameSegs separated by dots.
// "\_SB.PCI0" and "_S5" are examples. Zero segments after a prefix give a
// NullName.
func NameString(path string) ([]byte, error) {
	var out []byte
	i := 0
	if i < len(path) && path[i] == RootChar {
		out = append(out, RootChar)
		i++
	} else {
		for i < len(path) && path[i] == ParentPrefix {
			out = append(out, ParentPrefix)
			i++
		}
	}
	rest := path[i:]
	if rest == "" {
		if len(out) == 0 {
			return nil, errors.New("aml: empty name")
		}
		return append(out, 0x00), nil // NullName
	}
	var segs [][4]byte
	start := 0
	for j := 0; j <= len(rest); j++ {
		if j < len(rest) && rest[j] != '.' {
			continue
		}
		seg, err := nameSeg(rest[start:j])
		if err != nil {
			return nil, fmt.Errorf("%w (in %q)", err, path)
		}
		segs = append(segs, seg)
		start = j + 1
	}
	switch {
	case len(segs) == 1:
	case len(segs) == 2:
		out = append(out, DualNamePrefix)
	case len(segs) <= 255:
		out = append(out, MultiNamePrefix, byte(len(segs)))
	default:
		return nil, fmt.Errorf("aml: name %q has %d segments, more than 255", path, len(segs))
	}
	for _, s := range segs {
		out = append(out, s[:]...)
	}
	return out, nil
}

// Integer encodes a constant the way iasl does: ZeroOp, OneOp, or the
// smallest of ByteConst, WordConst, DWordConst and QWordConst (ACPI 6.5,
// 20.2.3).
func Integer(v uint64) []byte {
	switch {
	case v == 0:
		return []byte{ZeroOp}
	case v == 1:
		return []byte{OneOp}
	case v <= 0xff:
		return []byte{BytePrefix, byte(v)}
	case v <= 0xffff:
		return binary.LittleEndian.AppendUint16([]byte{WordPrefix}, uint16(v))
	case v <= 0xffffffff:
		return binary.LittleEndian.AppendUint32([]byte{DWordPrefix}, uint32(v))
	}
	return binary.LittleEndian.AppendUint64([]byte{QWordPrefix}, v)
}

// String encodes a string constant: StringPrefix, ASCII characters 0x01 to
// 0x7f, NullChar (ACPI 6.5, 20.2.3).
func (b *Builder) String(s string) []byte {
	out := make([]byte, 0, len(s)+2)
	out = append(out, StringPrefix)
	for i := 0; i < len(s); i++ {
		if s[i] == 0 || s[i] > 0x7f {
			return b.fail(fmt.Errorf("aml: string %q: byte %#x at %d is not an AML string character", s, s[i], i))
		}
		out = append(out, s[i])
	}
	return append(out, 0x00)
}

// EISAID compresses a PNP ID such as "PNP0A08" into the 32-bit EISA ID
// iasl's EisaId() gives (ACPI 6.5, 19.6.36): three letters 'A'-'Z' as
// 5-bit codes ('A' is 1) in the first 16 bits, big-endian, then the four
// hexadecimal digits as the next 16 bits, big-endian; stored as a DWord.
func EISAID(id string) (uint32, error) {
	if len(id) != 7 {
		return 0, fmt.Errorf("aml: EISA ID %q is not 7 characters (3 letters, 4 hex digits)", id)
	}
	var v uint32
	for i := 0; i < 3; i++ {
		c := id[i]
		if c < 'A' || c > 'Z' {
			return 0, fmt.Errorf("aml: EISA ID %q: %q is not an upper-case letter", id, c)
		}
		v = v<<5 | uint32(c-'A'+1)
	}
	for i := 3; i < 7; i++ {
		c := id[i]
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		case c >= 'A' && c <= 'F':
			d = uint32(c-'A') + 10
		default:
			return 0, fmt.Errorf("aml: EISA ID %q: %q is not an upper-case hex digit", id, c)
		}
		v = v<<4 | d
	}
	// v holds the 32 bits most significant first; AML stores them as
	// the bytes of that big-endian value.
	var be [4]byte
	binary.BigEndian.PutUint32(be[:], v)
	return binary.LittleEndian.Uint32(be[:]), nil
}

// EISAIDTerm encodes EisaId(id) as the DWordConst iasl emits.
func (b *Builder) EISAIDTerm(id string) []byte {
	v, err := EISAID(id)
	if err != nil {
		return b.fail(err)
	}
	return binary.LittleEndian.AppendUint32([]byte{DWordPrefix}, v)
}

// Name encodes Name(path, object): NameOp NameString DataRefObject
// (ACPI 6.5, 20.2.5.1).
func (b *Builder) Name(path string, object []byte) []byte {
	ns, err := NameString(path)
	if err != nil {
		return b.fail(err)
	}
	if b.err != nil {
		return nil
	}
	out := append([]byte{NameOp}, ns...)
	return append(out, object...)
}

// pkg encodes op PkgLength head body..., the shape of every construct
// with a package length.
func (b *Builder) pkg(op []byte, head []byte, body [][]byte) []byte {
	if b.err != nil {
		return nil
	}
	n := len(head)
	for _, t := range body {
		n += len(t)
	}
	pl, err := PkgLength(n)
	if err != nil {
		return b.fail(err)
	}
	out := make([]byte, 0, len(op)+len(pl)+n)
	out = append(out, op...)
	out = append(out, pl...)
	out = append(out, head...)
	for _, t := range body {
		out = append(out, t...)
	}
	return out
}

// Scope encodes Scope(path) { terms }: ScopeOp PkgLength NameString
// TermList (ACPI 6.5, 20.2.5.1).
func (b *Builder) Scope(path string, terms ...[]byte) []byte {
	ns, err := NameString(path)
	if err != nil {
		return b.fail(err)
	}
	return b.pkg([]byte{ScopeOp}, ns, terms)
}

// Device encodes Device(path) { terms }: ExtOpPrefix DeviceOp PkgLength
// NameString TermList (ACPI 6.5, 20.2.5.2).
func (b *Builder) Device(path string, terms ...[]byte) []byte {
	ns, err := NameString(path)
	if err != nil {
		return b.fail(err)
	}
	return b.pkg([]byte{ExtOpPrefix, DeviceOp}, ns, terms)
}

// Package encodes Package() { elements }: PackageOp PkgLength NumElements
// PackageElementList (ACPI 6.5, 20.2.5.4); at most 255 elements.
func (b *Builder) Package(elements ...[]byte) []byte {
	if len(elements) > 255 {
		return b.fail(fmt.Errorf("aml: package of %d elements, more than the 255 a Package holds", len(elements)))
	}
	return b.pkg([]byte{PackageOp}, []byte{byte(len(elements))}, elements)
}

// Buffer encodes Buffer() { data }: BufferOp PkgLength BufferSize ByteList
// (ACPI 6.5, 20.2.5.4), with the size as an Integer.
func (b *Builder) Buffer(data []byte) []byte {
	return b.pkg([]byte{BufferOp}, Integer(uint64(len(data))), [][]byte{data})
}

// DefinitionBlock returns the table body (the AML after the 36-byte
// header) of the given top-level terms.
func (b *Builder) DefinitionBlock(terms ...[]byte) []byte {
	if b.err != nil {
		return nil
	}
	var out []byte
	for _, t := range terms {
		out = append(out, t...)
	}
	return out
}
