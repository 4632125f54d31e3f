package pci

import "testing"

// fuzzSpace is a configuration space made of fuzz input: up to 16 functions,
// each given by a bus, a device, a function and 64 bytes that fill its
// whole configuration space, repeated (so capability pointers and
// extended headers land on fuzzed data). Writes go to the copy, so BAR
// sizing reads back whatever was written.
type fuzzSpace struct {
	fns    map[bdf][]byte
	reads  int
	ext    bool
	lo, hi uint8
}

func (f *fuzzSpace) Read32(bus, dev, fn uint8, off uint16) uint32 {
	f.reads++
	b, ok := f.fns[bdf{bus, dev, fn}]
	if !ok || off >= ExtendedConfigSize {
		return 0xFFFF_FFFF
	}
	i := int(off&^3) % len(b)
	return uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
}

func (f *fuzzSpace) Write32(bus, dev, fn uint8, off uint16, v uint32) {
	b, ok := f.fns[bdf{bus, dev, fn}]
	if !ok || off >= ExtendedConfigSize {
		return
	}
	i := int(off&^3) % len(b)
	b[i], b[i+1], b[i+2], b[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func (f *fuzzSpace) HasExtendedSpace() bool       { return f.ext }
func (f *fuzzSpace) BusRange() (start, end uint8) { return f.lo, f.hi }

func FuzzEnumerate(f *testing.F) {
	// Seeds: a host bridge, a bridge to bus 1 with a device behind it, and
	// a bridge whose secondary bus is its own.
	rec := func(bus, dev, fn uint8, hdr []byte) []byte {
		b := make([]byte, 67)
		b[0], b[1], b[2] = bus, dev, fn
		copy(b[3:], hdr)
		return b
	}
	host := []byte{0x86, 0x80, 0xC0, 0x29, 0, 0, 0x10, 0, 2, 0, 0, 6, 0, 0, 0x80, 0}
	bridge := []byte{0x36, 0x1B, 0x0C, 0, 7, 0, 0x10, 0, 0, 0, 4, 6, 0, 0, 1, 0,
		0, 0, 0, 0xFE, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0,
		0, 0, 0, 0, 0x10, 0x40, 0, 0}
	dev := []byte{0xF4, 0x1A, 0x41, 0x10, 6, 0, 0x10, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0x0C, 0, 0, 0, 0, 0, 0, 0}
	var seed1 []byte
	seed1 = append(seed1, 1, 0xFF)
	seed1 = append(seed1, rec(0, 0, 0, host)...)
	seed1 = append(seed1, rec(0, 0x1C, 0, bridge)...)
	seed1 = append(seed1, rec(1, 0, 0, dev)...)
	f.Add(seed1)
	loop := append([]byte(nil), bridge...)
	loop[0x19] = 0
	f.Add(append([]byte{0, 0xFF}, rec(0, 1, 0, loop)...))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		s := &fuzzSpace{fns: map[bdf][]byte{}, hi: 0xFF}
		if len(data) >= 2 {
			s.ext = data[0]&1 != 0
			s.lo, s.hi = data[0]>>1, data[1]
			data = data[2:]
		}
		for n := 0; n < 16 && len(data) >= 67; n++ {
			k := bdf{data[0], data[1] & 0x1F, data[2] & 7}
			s.fns[k] = append([]byte(nil), data[3:67]...)
			data = data[67:]
		}
		devs, _ := Enumerate(s, 0, Options{SizeBARs: len(data)%2 == 1})
		// Each bus is scanned at most once: 32 vendor reads plus a
		// bounded number per function found.
		if max := 256*32 + len(s.fns)*8*(64+MaxCapabilities*2+MaxExtCapabilities); s.reads > max {
			t.Fatalf("%d config reads for %d functions", s.reads, len(s.fns))
		}
		seen := map[bdf]bool{}
		for _, d := range devs {
			k := bdf{d.Bus, d.Dev, d.Fn}
			if seen[k] {
				t.Fatalf("%s listed twice", d.Address())
			}
			seen[k] = true
			if _, ok := s.fns[k]; !ok {
				t.Fatalf("%s reported but not present", d.Address())
			}
			if d.VendorID == VendorNone || len(d.Capabilities) > MaxCapabilities || len(d.ExtendedCapabilities) > MaxExtCapabilities || len(d.BARs) > 6 {
				t.Fatalf("implausible %+v", d)
			}
			if d.Bus < s.lo || d.Bus > s.hi {
				t.Fatalf("%s outside bus range %d-%d", d.Address(), s.lo, s.hi)
			}
			_ = d.String()
		}
	})
}
