package ioapic

import (
	"encoding/binary"
	"testing"
)

type message struct {
	dest    uint32
	logical bool
	mode    uint8
	vector  uint8
	level   bool
}

// recorder is a Delivery that logs messages and takes them unless refuse.
type recorder struct {
	msgs   []message
	refuse bool
}

func (r *recorder) Deliver(dest uint32, logical bool, mode uint8, vector uint8, level bool) bool {
	r.msgs = append(r.msgs, message{dest, logical, mode, vector, level})
	return !r.refuse
}

func newTest() (*IOAPIC, *recorder) {
	r := &recorder{}
	return New(DefaultBase, 1, r), r
}

func (a *IOAPIC) write(index uint8, v uint32) {
	a.WriteMMIO(DefaultBase+offRegSel, 4, uint64(index))
	a.WriteMMIO(DefaultBase+offWindow, 4, uint64(v))
}

func (a *IOAPIC) read(index uint8) uint32 {
	a.WriteMMIO(DefaultBase+offRegSel, 4, uint64(index))
	return uint32(a.ReadMMIO(DefaultBase+offWindow, 4))
}

// route programs pin's redirection entry.
func (a *IOAPIC) route(pin uint8, low uint32, dest uint8) {
	a.write(RegRedirFirst+2*pin+1, uint32(dest)<<24)
	a.write(RegRedirFirst+2*pin, low)
}

func TestRegisters(t *testing.T) {
	a, _ := newTest()
	if got := a.read(RegID); got != 1<<24 {
		t.Errorf("ID = %#x", got)
	}
	if got := a.read(RegVersion); got != 0x00170011 {
		t.Errorf("version = %#x, want 0x00170011", got)
	}
	a.write(RegID, 0xFFFFFFFF)
	if got := a.read(RegID); got != 0x0F000000 {
		t.Errorf("ID after writing ones = %#x", got)
	}
	if got := a.read(RegArbitration); got != 0x0F000000 {
		t.Errorf("arbitration = %#x, want the ID", got)
	}
	a.write(RegVersion, 0)
	if got := a.read(RegVersion); got != VersionValue {
		t.Error("version writable")
	}
	for pin := uint8(0); pin < NumPins; pin++ {
		if got := a.read(RegRedirFirst + 2*pin); got != uint32(RedirMasked) {
			t.Errorf("pin %d after reset = %#x, want masked", pin, got)
		}
	}
	// All writable bits, read-only ones dropped.
	a.write(RegRedirFirst+6, 0xFFFFFFFF)
	a.write(RegRedirFirst+7, 0xFFFFFFFF)
	want := redirWritable
	if got := uint64(a.read(RegRedirFirst+7))<<32 | uint64(a.read(RegRedirFirst+6)); got != want {
		t.Errorf("entry 3 = %#x, want %#x", got, want)
	}
	if got := a.read(RegRedirFirst + 2*NumPins); got != 0 {
		t.Errorf("register past the table = %#x", got)
	}
	// IOREGSEL reads back; byte access to IOWIN.
	a.WriteMMIO(DefaultBase, 1, 0x10)
	if got := a.ReadMMIO(DefaultBase, 4); got != 0x10 {
		t.Errorf("IOREGSEL = %#x", got)
	}
	a.WriteMMIO(DefaultBase+offWindow+1, 1, 0x05) // delivery mode byte
	if got := a.ReadMMIO(DefaultBase+offWindow, 2); got != 0x0500 {
		t.Errorf("pin 0 low after a byte write = %#x, want 0x0500 (still masked: bit 16)", got)
	}
	if got := a.Redirection(0); got != RedirMasked|5<<8 {
		t.Errorf("pin 0 = %#x", got)
	}
	if got := a.ReadMMIO(DefaultBase+0x40, 4); got != 0 {
		t.Errorf("offset 0x40 = %#x", got)
	}
}

func TestEdge(t *testing.T) {
	a, r := newTest()
	a.SetIRQ(4, true) // masked: lost
	a.SetIRQ(4, false)
	a.route(4, 0x34, 2)
	a.SetIRQ(4, true)
	a.SetIRQ(4, true) // no new edge
	a.SetIRQ(4, false)
	a.SetIRQ(4, true)
	want := message{dest: 2, vector: 0x34}
	if len(r.msgs) != 2 || r.msgs[0] != want || r.msgs[1] != want {
		t.Fatalf("messages %+v, want two of %+v", r.msgs, want)
	}
	if a.Redirection(4)&RedirRemoteIRR != 0 {
		t.Error("edge entry has remote IRR set")
	}
	// Unmasking with the line high sends nothing (the edge was before).
	a.route(4, 0x34|uint32(RedirMasked), 2)
	a.SetIRQ(4, false)
	a.SetIRQ(4, true)
	a.route(4, 0x34, 2)
	if len(r.msgs) != 2 {
		t.Errorf("masked edge or unmask sent: %+v", r.msgs)
	}
}

func TestLevelRemoteIRR(t *testing.T) {
	a, r := newTest()
	a.route(10, 0x5A|uint32(RedirLevel|RedirLogical|RedirPolarityLow), 0x03)
	a.SetIRQ(10, true)
	want := message{dest: 3, logical: true, vector: 0x5A, level: true}
	if len(r.msgs) != 1 || r.msgs[0] != want {
		t.Fatalf("messages %+v, want [%+v]", r.msgs, want)
	}
	if a.Redirection(10)&RedirRemoteIRR == 0 {
		t.Fatal("remote IRR not set after a level delivery")
	}
	// Still asserted, in service: nothing more, even re-asserted.
	a.SetIRQ(10, true)
	if len(r.msgs) != 1 {
		t.Fatalf("sent while remote IRR set: %+v", r.msgs)
	}
	// EOI for another vector: no change.
	a.EOI(0x5B)
	if a.Redirection(10)&RedirRemoteIRR == 0 {
		t.Fatal("EOI of another vector cleared remote IRR")
	}
	// EOI while the line is still asserted: sent again.
	a.EOI(0x5A)
	if len(r.msgs) != 2 || a.Redirection(10)&RedirRemoteIRR == 0 {
		t.Fatalf("EOI with the line asserted: messages %d, entry %#x", len(r.msgs), a.Redirection(10))
	}
	// Device deasserts, then EOI: remote IRR clears and nothing is sent.
	a.SetIRQ(10, false)
	a.EOI(0x5A)
	if len(r.msgs) != 2 || a.Redirection(10)&RedirRemoteIRR != 0 {
		t.Fatalf("EOI after deassert: messages %d, entry %#x", len(r.msgs), a.Redirection(10))
	}
	// Masked while asserted: held; unmasking sends it.
	a.route(10, 0x5A|uint32(RedirLevel|RedirMasked), 0x03)
	a.SetIRQ(10, true)
	if len(r.msgs) != 2 {
		t.Fatal("masked level entry sent")
	}
	a.route(10, 0x5A|uint32(RedirLevel), 0x03)
	if len(r.msgs) != 3 || a.Redirection(10)&RedirRemoteIRR == 0 {
		t.Fatalf("unmask with the line asserted: messages %d", len(r.msgs))
	}
	// Turning the entry to edge clears remote IRR.
	a.route(10, 0x5A, 0x03)
	if a.Redirection(10)&RedirRemoteIRR != 0 {
		t.Error("edge entry kept remote IRR")
	}
}

func TestLevelNotAccepted(t *testing.T) {
	a, r := newTest()
	r.refuse = true
	a.route(11, 0x60|uint32(RedirLevel), 0)
	a.SetIRQ(11, true)
	if a.Redirection(11)&RedirRemoteIRR != 0 {
		t.Fatal("remote IRR set though no APIC took the message")
	}
	r.refuse = false
	a.SetIRQ(11, true) // still asserted: tried again
	if len(r.msgs) != 2 || a.Redirection(11)&RedirRemoteIRR == 0 {
		t.Fatalf("retry: messages %d entry %#x", len(r.msgs), a.Redirection(11))
	}
}

func TestDeliveryModes(t *testing.T) {
	a, r := newTest()
	// NMI with the level bit: NMI is always edge, no remote IRR.
	a.route(1, uint32(ModeNMI)<<8|uint32(RedirLevel), 0xFF)
	a.SetIRQ(1, true)
	if len(r.msgs) != 1 || r.msgs[0].mode != ModeNMI || r.msgs[0].level || r.msgs[0].dest != 0xFF {
		t.Fatalf("NMI message %+v", r.msgs)
	}
	if a.Redirection(1)&RedirRemoteIRR != 0 {
		t.Error("NMI entry set remote IRR")
	}
	a.route(0, uint32(ModeExtINT)<<8, 0)
	a.SetIRQ(0, true)
	a.route(5, uint32(ModeLowestPriority)<<8|0x45|uint32(RedirLogical), 0x0F)
	a.SetIRQ(5, true)
	a.route(6, 3<<8|0x46, 0) // reserved mode: nothing
	a.SetIRQ(6, true)
	if len(r.msgs) != 3 || r.msgs[1].mode != ModeExtINT || r.msgs[2] != (message{dest: 0x0F, logical: true, mode: ModeLowestPriority, vector: 0x45}) {
		t.Fatalf("messages %+v", r.msgs)
	}
	a.SetIRQ(24, true)
	a.SetIRQ(1<<31, true)
	if a.Ignored.Load() != 2 {
		t.Errorf("Ignored = %d", a.Ignored.Load())
	}
}

type countDelivery struct{ n int }

func (c *countDelivery) Deliver(uint32, bool, uint8, uint8, bool) bool { c.n++; return true }

func TestAllocations(t *testing.T) {
	d := &countDelivery{}
	a := New(DefaultBase, 0, d)
	a.route(9, 0x39|uint32(RedirLevel), 0)
	a.route(4, 0x34, 0)
	n := testing.AllocsPerRun(100, func() {
		a.SetIRQ(9, true)
		a.EOI(0x39)
		a.SetIRQ(9, false)
		a.EOI(0x39)
		a.SetIRQ(4, true)
		a.SetIRQ(4, false)
		a.WriteMMIO(DefaultBase, 4, 0x10)
		a.ReadMMIO(DefaultBase+offWindow, 4)
		a.WriteMMIO(DefaultBase+offWindow, 4, 0x34)
	})
	if n != 0 {
		t.Errorf("%v allocations per run", n)
	}
	if d.n == 0 {
		t.Error("nothing delivered")
	}
}

// FuzzIOAPIC runs random register writes, line changes and EOIs, and
// checks that remote IRR is only ever set on level-triggered fixed or
// lowest-priority entries after a delivery was taken, and that nothing is
// delivered from a masked entry.
func FuzzIOAPIC(f *testing.F) {
	f.Add([]byte{0, 0x10, 0x5A, 0x80, 0, 0, 1, 0, 1, 2, 0x5A})
	f.Add([]byte{0, 0x12, 0x00, 0x04, 0, 0, 1, 1, 1})
	f.Add([]byte{3, 0x11, 1, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &checkDelivery{t: t}
		a := New(DefaultBase, 2, d)
		d.a = a
		for len(data) >= 4 {
			op, x, y, z := data[0], data[1], data[2], data[3]
			data = data[4:]
			switch op % 5 {
			case 0: // redirection or other register write
				v := uint32(y) | uint32(z)<<8
				if len(data) >= 2 {
					v |= uint32(binary.LittleEndian.Uint16(data)) << 16
					data = data[2:]
				}
				a.write(x, v)
			case 1:
				a.SetIRQ(uint32(x%32), y&1 != 0)
			case 2:
				a.EOI(y)
			case 3: // raw access of any size and offset
				size := []uint8{1, 2, 4, 8, 0, 3}[y%6]
				addr := DefaultBase + uint64(x&0x1F)
				if z&1 != 0 {
					a.WriteMMIO(addr, size, uint64(z)*0x01010101)
				} else {
					a.ReadMMIO(addr, size)
				}
			case 4:
				a.read(x)
			}
			for pin := uint32(0); pin < NumPins; pin++ {
				e := a.Redirection(pin)
				if e&RedirRemoteIRR != 0 && !isLevel(e) {
					t.Fatalf("pin %d: remote IRR on a non-level entry %#x", pin, e)
				}
				if e&^(redirWritable|RedirRemoteIRR) != 0 {
					t.Fatalf("pin %d: undefined bits set: %#x", pin, e)
				}
			}
		}
	})
}

// checkDelivery fails the test if the IOAPIC delivers from a masked
// entry; it runs under the IOAPIC's lock, so it inspects a.redir directly.
type checkDelivery struct {
	t *testing.T
	a *IOAPIC
}

func (c *checkDelivery) Deliver(dest uint32, logical bool, mode uint8, vector uint8, level bool) bool {
	found := false
	for _, e := range c.a.redir {
		if uint8(e) == vector && e&RedirMasked == 0 && uint8(e>>RedirDeliveryShift&7) == mode {
			found = true
		}
	}
	if !found {
		c.t.Fatalf("delivered vector %#x mode %d from no unmasked entry", vector, mode)
	}
	return vector&1 == 0 // refuse some, to exercise the retry path
}
