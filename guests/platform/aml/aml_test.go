package aml

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// decodePkgLength reads a PkgLength back (ACPI 6.5, 20.2.4), independently
// of the encoder: the test of the encoder is that this inverts it.
func decodePkgLength(b []byte) (total, size int) {
	lead := b[0]
	follow := int(lead >> 6)
	if follow == 0 {
		return int(lead & 0x3f), 1
	}
	total = int(lead & 0x0f)
	for i := 0; i < follow; i++ {
		total |= int(b[1+i]) << (4 + 8*i)
	}
	return total, 1 + follow
}

func TestPkgLengthVectors(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x01}},
		{5, []byte{0x06}},
		{62, []byte{0x3f}},                                 // the largest one-byte length, 63
		{63, []byte{0x41, 0x04}},                           // 65 = 0x41: nibble 1, then 0x04
		{65, []byte{0x43, 0x04}},                           // iasl's 32-element package above
		{4093, []byte{0x4f, 0xff}},                         // 4095, the largest two-byte length
		{4094, []byte{0x81, 0x00, 0x01}},                   // 4097
		{1<<20 - 4, []byte{0x8f, 0xff, 0xff}},              // 2^20-1, the largest three-byte length
		{1<<20 - 3, []byte{0xc1, 0x00, 0x00, 0x01}},        // 2^20+1: nibble 1, bits 27:20 = 1
		{MaxPkgLength - 4, []byte{0xcf, 0xff, 0xff, 0xff}}, // 2^28-1
	} {
		got, err := PkgLength(c.n)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("PkgLength(%d) = % x, %v; want % x", c.n, got, err, c.want)
		}
	}
	if _, err := PkgLength(MaxPkgLength - 3); err == nil {
		t.Error("PkgLength past 2^28-1 accepted")
	}
	if _, err := PkgLength(-1); err == nil {
		t.Error("negative PkgLength accepted")
	}
}

// Every length round-trips through an independent decoder and counts its
// own bytes, in the smallest encoding.
func TestPkgLengthRoundTrip(t *testing.T) {
	lengths := []int{}
	for n := 0; n < 5000; n++ {
		lengths = append(lengths, n)
	}
	for _, edge := range []int{1 << 12, 1 << 20, 1 << 27} {
		for d := -8; d <= 8; d++ {
			lengths = append(lengths, edge+d)
		}
	}
	for _, n := range lengths {
		b, err := PkgLength(n)
		if err != nil {
			t.Fatalf("PkgLength(%d): %v", n, err)
		}
		total, size := decodePkgLength(b)
		if size != len(b) || total != n+len(b) {
			t.Fatalf("PkgLength(%d) = % x decodes to %d in %d bytes", n, b, total, size)
		}
		if len(b) > 1 && b[0]&0x30 != 0 {
			t.Fatalf("PkgLength(%d) = % x sets the reserved bits 5:4", n, b)
		}
		want := 1
		if n+1 > 0x3f {
			for want = 2; n+want >= 1<<(4+8*(want-1)); want++ {
			}
		}
		if len(b) != want {
			t.Fatalf("PkgLength(%d) uses %d bytes, the smallest encoding is %d", n, len(b), want)
		}
	}
}

func TestNameString(t *testing.T) {
	for _, c := range []struct {
		path string
		want string // hex
	}{
		{"_S5", "5f53355f"},
		{"PCI0", "50434930"},
		{`\_SB`, "5c5f53425f"},
		{`\`, "5c00"},
		{"^XYZ", "5e58595a5f"},
		{"^^A", "5e5e415f5f5f"},
		{"_SB.PCI0", "2e5f53425f50434930"},
		{`\_SB.DEV0.ABC`, "5c2f035f53425f444556304142435f"},
		{`\_SB.DEV0.A1.B2`, "5c2f045f53425f4445563041315f5f42325f5f"},
	} {
		got, err := NameString(c.path)
		if err != nil || hex.EncodeToString(got) != c.want {
			t.Errorf("NameString(%q) = %x, %v; want %s", c.path, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "TOOLONG", "1ABC", "a", "AB.", ".AB", "A..B", `\^A`, "A-B", `^\A`} {
		if got, err := NameString(bad); err == nil {
			t.Errorf("NameString(%q) = %x, want an error", bad, got)
		}
	}
	long := strings.Repeat("A.", 255) + "A"
	if _, err := NameString(long); err == nil {
		t.Error("a 256-segment name was accepted")
	}
}

func TestIntegerAndString(t *testing.T) {
	for v, want := range map[uint64]string{
		0: "00", 1: "01", 2: "0a02", 0xff: "0aff", 0x100: "0b0001", 0xffff: "0bffff",
		0x10000: "0c00000100", 0x12345678: "0c78563412", 0x100000000: "0e0000000001000000",
		0x123456789abcdef0: "0ef0debc9a78563412", ^uint64(0): "0effffffffffffffff",
	} {
		if got := hex.EncodeToString(Integer(v)); got != want {
			t.Errorf("Integer(%#x) = %s, want %s", v, got, want)
		}
	}
	var b Builder
	if got := b.String("Hello"); hex.EncodeToString(got) != "0d48656c6c6f00" {
		t.Errorf("String(Hello) = %x", got)
	}
	if got := b.String(""); !bytes.Equal(got, []byte{0x0d, 0x00}) {
		t.Errorf("String(\"\") = %x", got)
	}
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	b.String("nul\x00inside")
	if b.Err() == nil {
		t.Error("a string with a NUL was accepted")
	}
}

func TestEISAID(t *testing.T) {
	// Values as iasl's EisaId() compiles them (and as they appear in
	// every PC DSDT).
	for id, want := range map[string]uint32{
		"PNP0A03": 0x030ad041, "PNP0A08": 0x080ad041, "PNP0C09": 0x090cd041,
		"PNP0501": 0x0105d041, "PNP0B00": 0x000bd041, "AAA0000": 0x00002104,
	} {
		got, err := EISAID(id)
		if err != nil || got != want {
			t.Errorf("EISAID(%q) = %#x, %v; want %#x", id, got, err, want)
		}
	}
	for _, bad := range []string{"PNP0A0", "PNP0A033", "pnp0A03", "PN10A03", "PNP0a03", "PNP0G03", ""} {
		if _, err := EISAID(bad); err == nil {
			t.Errorf("EISAID(%q) accepted", bad)
		}
	}
}

// ssdtVector is the AML body (after the header) iasl 20200925 compiles,
// with -oa, from:
//
//	Scope (\_SB) {
//	    Device (DEV0) { Name (_ADR, Zero) }
//	    Scope (DEV0) {
//	        Name (INT0, Zero)  Name (INT1, One)  Name (INTF, 0x0F)
//	        Name (INTB, 0xFF)  Name (INTW, 0x0100)  Name (INTD, 0x12345678)
//	        Name (INTQ, 0x123456789ABCDEF0)  Name (STR0, "Hello")
//	        Name (\_SB.DEV0.ABC, 0x2A)  Name (^XYZ, 0x07)  Name (^DEV0.DUA, 0x0100)
//	    }
//	    Device (\_SB.DEV0.A1) { Name (_ADR, Zero) }
//	    Name (\_SB.DEV0.A1.B2, One)
//	}
//	Name (BIG0, Package (0x20) { 0x10, 0x11, ..., 0x2F })
const ssdtVector = "10460b5c5f53425f5b820b44455630085f414452001044074445563008494e54300008494e54310108494e54460a0f08494e54420aff08494e54570b000108494e54440c7856341208494e54510ef0debc9a7856341208535452300d48656c6c6f00085c2f035f53425f444556304142435f0a2a085e58595a5f0a07085e2e444556304455415f0b00015b82165c2f035f53425f4445563041315f5f085f41445200085c2f045f53425f4445563041315f5f42325f5f010842494730124304200a100a110a120a130a140a150a160a170a180a190a1a0a1b0a1c0a1d0a1e0a1f0a200a210a220a230a240a250a260a270a280a290a2a0a2b0a2c0a2d0a2e0a2f"

func TestSSDTVector(t *testing.T) {
	var b Builder
	var big [][]byte
	for v := uint64(0x10); v <= 0x2f; v++ {
		big = append(big, Integer(v))
	}
	got := b.DefinitionBlock(
		b.Scope(`\_SB`,
			b.Device("DEV0", b.Name("_ADR", Integer(0))),
			b.Scope("DEV0",
				b.Name("INT0", Integer(0)),
				b.Name("INT1", Integer(1)),
				b.Name("INTF", Integer(0x0f)),
				b.Name("INTB", Integer(0xff)),
				b.Name("INTW", Integer(0x100)),
				b.Name("INTD", Integer(0x12345678)),
				b.Name("INTQ", Integer(0x123456789abcdef0)),
				b.Name("STR0", b.String("Hello")),
				b.Name(`\_SB.DEV0.ABC`, Integer(0x2a)),
				b.Name("^XYZ", Integer(7)),
				b.Name("^DEV0.DUA", Integer(0x100)),
			),
			b.Device(`\_SB.DEV0.A1`, b.Name("_ADR", Integer(0))),
			b.Name(`\_SB.DEV0.A1.B2`, Integer(1)),
		),
		b.Name("BIG0", b.Package(big...)),
	)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(got); h != ssdtVector {
		t.Errorf("SSDT body\n got %s\nwant %s", h, ssdtVector)
	}
}

// resourceVector is iasl's encoding of
//
//	ResourceTemplate () {
//	    WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100)
//	    IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
//	    WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0, 0x0CF7, 0, 0x0CF8)
//	    WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0x0D00, 0xFFFF, 0, 0xF300)
//	    DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,
//	                 0, 0xC0000000, 0xDFFFFFFF, 0, 0x20000000)
//	}
const resourceVector = "1148050a54880d00020c0000000000ff00000000014701f80cf80c0108880d00010c0300000000f70c0000f80c880d00010c030000000dffff000000f3871700000c0100000000000000c0ffffffdf00000000000000207900"

func TestResourceTemplateVector(t *testing.T) {
	var b Builder
	fixed := uint8(MinFixed | MaxFixed)
	got := b.ResourceTemplate(
		b.WordAddress(AddressRange{Type: BusRange, GeneralFlags: fixed, Min: 0, Max: 0xff, Length: 0x100}),
		b.IOPort(0xcf8, 0xcf8, 1, 8),
		b.WordAddress(AddressRange{Type: IORange, GeneralFlags: fixed, TypeFlags: IOEntireRange, Max: 0xcf7, Length: 0xcf8}),
		b.WordAddress(AddressRange{Type: IORange, GeneralFlags: fixed, TypeFlags: IOEntireRange, Min: 0xd00, Max: 0xffff, Length: 0xf300}),
		b.DWordAddress(AddressRange{Type: MemoryRange, GeneralFlags: fixed, TypeFlags: MemoryReadWrite, Min: 0xc0000000, Max: 0xdfffffff, Length: 0x20000000}),
	)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(got); h != resourceVector {
		t.Errorf("resource template\n got %s\nwant %s", h, resourceVector)
	}
}

func TestResourceErrors(t *testing.T) {
	fixed := uint8(MinFixed | MaxFixed)
	for name, f := range map[string]func(b *Builder){
		"word value too big":  func(b *Builder) { b.WordAddress(AddressRange{Min: 0, Max: 0x10000, Length: 0x10001}) },
		"max below min":       func(b *Builder) { b.WordAddress(AddressRange{Min: 0x10, Max: 0x5}) },
		"fixed length wrong":  func(b *Builder) { b.DWordAddress(AddressRange{GeneralFlags: fixed, Min: 0, Max: 0xff, Length: 0x200}) },
		"dword value too big": func(b *Builder) { b.DWordAddress(AddressRange{Max: 1 << 32}) },
		"io max below min":    func(b *Builder) { b.IOPort(0x100, 0xff, 1, 1) },
		"bad EISA ID":         func(b *Builder) { b.Name("_HID", b.EISAIDTerm("PNP0A0")) },
		"bad name":            func(b *Builder) { b.Device("pci0") },
		"bad scope":           func(b *Builder) { b.Scope("") },
		"256 elements":        func(b *Builder) { b.Package(make([][]byte, 256)...) },
	} {
		var b Builder
		f(&b)
		if b.Err() == nil {
			t.Errorf("%s: no error", name)
		}
		// The error sticks, and later terms come back empty.
		if got := b.Device("OK00"); got != nil || b.Err() == nil {
			t.Errorf("%s: builder went on after the error", name)
		}
	}
}
