package passthrough

import (
	"encoding/binary"
	"testing"
)

var fuzzSizes = [...]uint8{1, 2, 4, 4, 8, 0, 3, 4}

// FuzzConfigWrites drives a passed-through function with arbitrary guest
// configuration and trapped-MMIO accesses and host interrupts, and checks
// after each step that nothing panicked, the device's BAR registers were
// never written, its MSI and MSI-X messages are still the host's, its I/O
// decode is off and memory decode on, only the command, MSI/MSI-X control
// and mask registers were written, and every mapping asked for lies in the
// window, page aligned, outside the MSI-X pages. Each step is 8 bytes: op,
// size, offset (2), value (4).
func FuzzConfigWrites(f *testing.F) {
	f.Add([]byte{0, 2, 0x04, 0, 0x02, 0, 0, 0, 0, 4, 0x10, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0, 2, 0xA2, 0, 0x00, 0x80, 0, 0, 2, 4, 0x0C, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 4, 0x50, 0, 0, 0, 1, 0, 0, 4, 0x54, 0, 0, 0x10, 0xE0, 0xFE, 4, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 4, 0x1C, 0, 0, 0, 0x20, 0xC0, 0, 4, 0x20, 0, 1, 0, 0, 0, 0, 1, 0x04, 0, 0x06, 0, 0, 0})
	f.Fuzz(runProgram)
}

func runProgram(t *testing.T, prog []byte) {
	{
		r := newRig(t, nil)
		d := r.dev
		bars := [5]uint32{}
		for i := range bars {
			bars[i] = d.get32(uint16(0x10 + 4*i))
		}
		checkedWrites, checkedCalls := r.initWrites, 0
		for len(prog) >= 8 {
			op, size := prog[0], fuzzSizes[prog[1]%8]
			off := binary.LittleEndian.Uint16(prog[2:4])
			v := binary.LittleEndian.Uint32(prog[4:8])
			prog = prog[8:]
			switch op % 6 {
			case 0, 1:
				r.f.WriteConfig(off%0x1000, size, v)
			case 2:
				r.f.ReadConfig(off%0x1000, size)
			case 3:
				r.win.WriteMMIO(gpa3+uint64(off%0x4000), size, uint64(v)<<32|uint64(v))
				r.win.WriteMMIO(gpa1+uint64(off%0x200), size, uint64(v))
			case 4:
				r.win.ReadMMIO(gpa3+uint64(off%0x4000), size)
				r.win.ReadMMIO(windowBase+uint64(v)%windowSize, size)
			case 5:
				if h, ok := r.vecs.handlers[uint8(0x40+off%8)]; ok {
					h()
				}
			}
			for _, w := range d.writes[checkedWrites:] {
				switch w.off {
				case 0x04, msiCtlReg, msiMaskReg, capMSIXOff:
				default:
					t.Fatalf("device register %#x written (%#x)", w.off, w.v)
				}
			}
			checkedWrites = len(d.writes)
			for i := range bars {
				if got := d.get32(uint16(0x10 + 4*i)); got != bars[i] {
					t.Fatalf("device BAR%d changed to %#x", i, got)
				}
			}
			if cmd := uint16(d.get32(0x04)); cmd&1 != 0 || cmd&2 == 0 || cmd&(1<<10) == 0 {
				t.Fatalf("device command %#x", cmd)
			}
			if d.get32(msiAddrReg) != hostMSIAddress || d.get32(msiHiReg) != 0 || d.get32(msiDataReg) != msiVector {
				t.Fatal("device MSI message changed")
			}
			if d.get32(msiCtlReg)>>16&(7<<4) != 0 {
				t.Fatal("device MSI multiple message enabled")
			}
			for i := 0; i < msixEntries; i++ {
				if r.mem.Read32(hostEntry(i)) != hostMSIAddress || r.mem.Read32(hostEntry(i)+4) != 0 ||
					r.mem.Read32(hostEntry(i)+8) != uint32(msixVector0+i) {
					t.Fatalf("device MSI-X entry %d changed", i)
				}
			}
			for _, c := range r.mapper.calls[checkedCalls:] {
				if c.newGPA == NoMapping {
					continue
				}
				if c.newGPA < windowBase || c.newGPA+c.size > windowBase+windowSize || c.newGPA%PageSize != 0 || c.size%PageSize != 0 {
					t.Fatalf("mapping %+v outside the window or unaligned", c)
				}
				if c.index == 3 && c.hostPA < bar3Host+0x3000 {
					t.Fatalf("MSI-X pages mapped: %+v", c)
				}
				if c.index != 0 && c.index != 3 {
					t.Fatalf("BAR%d mapped", c.index)
				}
			}
			checkedCalls = len(r.mapper.calls)
		}
		// Quiesce always leaves the device stopped.
		if err := r.f.Quiesce(); err != nil {
			t.Fatal(err)
		}
		if uint16(d.get32(0x04))&(1<<2) != 0 {
			t.Fatal("bus master on after Quiesce")
		}
	}
}
