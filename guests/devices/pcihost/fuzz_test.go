package pcihost

import (
	"encoding/binary"
	"testing"
)

var fuzzSizes = [...]uint8{1, 2, 4, 4, 8, 0, 3, 2}

// FuzzHost drives both configuration mechanisms with arbitrary accesses to
// the host bridge, a ConfigSpace function with BARs and capabilities, and
// absent functions, and checks that identity registers stay read-only,
// BARs stay aligned to their size with their type bits intact, absent
// functions read all ones, and CONFIG_ADDRESS keeps its reserved bits
// clear. Each step is 8 bytes: op, size, register, device, value (4).
func FuzzHost(f *testing.F) {
	f.Add([]byte{0, 2, 0x10, 2, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 0x10, 2, 0, 0, 0, 0})
	f.Add([]byte{2, 1, 0x04, 2, 0x07, 0, 0, 0, 3, 4, 0x18, 2, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{4, 0, 0xF9, 0, 0x06, 0, 0, 0, 0, 1, 0x06, 0, 0xFF, 0xFF, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		h, _ := newHost(t)
		dev := NewConfigSpace(Header{VendorID: 0x1AF4, DeviceID: 0x1000, Class: 0x020000, InterruptPin: 1})
		for i, b := range []BAR{{Size: 0x100, IO: true}, {Size: 0x1000}, {Size: 1 << 20, Bits64: true}} {
			if err := dev.SetBAR([]int{0, 1, 2}[i], b); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := dev.AddCapability(0x09, 12); err != nil {
			t.Fatal(err)
		}
		if err := h.AddFunction(0, 2, 0, dev); err != nil {
			t.Fatal(err)
		}
		for len(prog) >= 8 {
			op, size, reg, d := prog[0], fuzzSizes[prog[1]%8], uint16(prog[2]), prog[3]%4
			v := binary.LittleEndian.Uint32(prog[4:8])
			prog = prog[8:]
			addr := cf8(0, d, 0, uint8(reg))
			ecam := uint64(ecamBase) | uint64(d)<<15 | uint64(reg)<<4&0xFF0 | uint64(reg&0xF)
			switch op % 6 {
			case 0:
				h.WritePort(ConfigAddressPort, 4, addr)
				h.WritePort(ConfigDataPort+reg&3, size, v)
			case 1:
				h.WritePort(ConfigAddressPort, 4, addr)
				h.ReadPort(ConfigDataPort+reg&3, size)
			case 2:
				h.WriteMMIO(ecam, size, uint64(v)<<32|uint64(v))
			case 3:
				h.ReadMMIO(ecam, size)
			case 4:
				port := ConfigAddressPort + reg%8
				if reg&0x80 != 0 {
					h.ReadPort(port, size)
				} else {
					h.WritePort(port, size, v)
				}
			case 5:
				h.SetState(h.State())
			}
			if a := h.State().ConfigAddress; a&^addressWritable != 0 {
				t.Fatalf("CONFIG_ADDRESS %#x", a)
			}
			if got := h.ReadMMIO(ecamBase, 4); got != 0x29C08086 {
				t.Fatalf("host bridge IDs %#x", got)
			}
			if got := h.ReadMMIO(ecamBase|2<<15, 4); got != 0x10001AF4 {
				t.Fatalf("device IDs %#x", got)
			}
			if got := h.ReadMMIO(ecamBase|1<<15, 4); got != 0xFFFFFFFF {
				t.Fatalf("absent function %#x", got)
			}
			if c := dev.Get8(OffClassCode + 2); c != 0x02 {
				t.Fatalf("class changed to %#x", c)
			}
			for i, want := range []uint32{barIO, 0, barMem64} {
				low := dev.Get32(uint16(OffBAR0 + 4*i))
				mask := uint32(0xF)
				if i == 0 {
					mask = 3
				}
				if low&mask != want {
					t.Fatalf("BAR%d type bits %#x", i, low&mask)
				}
				if a, _ := dev.BARAddress(i); a%dev.BARSize(i) != 0 {
					t.Fatalf("BAR%d address %#x not aligned to %#x", i, a, dev.BARSize(i))
				}
			}
			if p := dev.Get8(OffCapabilities); p != 0x40 || dev.Get8(0x40) != 0x09 {
				t.Fatal("capability list changed")
			}
		}
	})
}
