package uart

import (
	"bytes"
	"errors"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// fake16550 models the parts of a PC16550D the driver relies on: DLAB
// banking, the divisor latch, FCR/IIR FIFO reporting, the scratch register,
// a receive queue and a transmitter whose THRE can be held low forever.
type fake16550 struct {
	base          uint16
	ier, lcr, mcr uint8
	fcr           uint8
	scr           uint8
	dll, dlm      uint8
	fifoOn        bool
	noFIFO        bool // model a 16450: FCR ignored
	stuck         bool // THRE never sets (a wedged or disconnected line)
	txRoom        int  // bytes the Tx FIFO can take before THRE clears
	sent          bytes.Buffer
	rx            []byte
	lsrReads      int
	thrWrites     int
}

func newFake(base uint16) *fake16550 { return &fake16550{base: base, txRoom: 16} }

func (f *fake16550) dlab() bool { return f.lcr&LCRDLAB != 0 }

func (f *fake16550) In8(port uint16) uint8 {
	switch Register(port - f.base) {
	case 0:
		if f.dlab() {
			return f.dll
		}
		if len(f.rx) == 0 {
			return 0
		}
		b := f.rx[0]
		f.rx = f.rx[1:]
		return b
	case 1:
		if f.dlab() {
			return f.dlm
		}
		return f.ier
	case RegIIR:
		if f.fifoOn {
			return 0xC1
		}
		return 0x01
	case RegLCR:
		return f.lcr
	case RegMCR:
		return f.mcr
	case RegLSR:
		f.lsrReads++
		var v uint8
		if len(f.rx) > 0 {
			v |= LSRDataReady
		}
		if !f.stuck {
			// The model drains instantly once polled: THRE is set
			// whenever it is read, and the FIFO is empty again.
			f.txRoom = 16
			if !f.fifoOn {
				f.txRoom = 1
			}
			v |= LSRTHREmpty | LSRTxEmpty
		}
		return v
	case RegSCR:
		return f.scr
	}
	return 0xFF
}

func (f *fake16550) Out8(port uint16, v uint8) {
	switch Register(port - f.base) {
	case 0:
		if f.dlab() {
			f.dll = v
			return
		}
		f.thrWrites++
		if f.stuck || f.txRoom == 0 {
			return // overrun: the byte is lost, as on hardware
		}
		f.txRoom--
		f.sent.WriteByte(v)
	case 1:
		if f.dlab() {
			f.dlm = v
		} else {
			f.ier = v
		}
	case RegFCR:
		if !f.noFIFO {
			f.fcr = v
			f.fifoOn = v&FCREnable != 0
		}
	case RegLCR:
		f.lcr = v
	case RegMCR:
		f.mcr = v
	case RegSCR:
		f.scr = v
	}
}

func (f *fake16550) In16(uint16) uint16   { return 0xFFFF }
func (f *fake16550) In32(uint16) uint32   { return 0xFFFFFFFF }
func (f *fake16550) Out16(uint16, uint16) {}
func (f *fake16550) Out32(uint16, uint32) {}

func TestInitProgramsRegisters(t *testing.T) {
	for _, tc := range []struct {
		baud     uint32
		dll, dlm uint8
	}{{115200, 1, 0}, {9600, 12, 0}, {38400, 3, 0}, {50, 0x00, 0x09}} {
		f := newFake(COM1)
		f.lcr = LCRDLAB // firmware left DLAB set
		f.ier = 0x0F
		u := New(f, COM1)
		if err := u.Init(tc.baud); err != nil {
			t.Fatalf("Init(%d): %v", tc.baud, err)
		}
		if f.dll != tc.dll || f.dlm != tc.dlm {
			t.Errorf("baud %d: divisor = %#x:%#x, want %#x:%#x", tc.baud, f.dlm, f.dll, tc.dlm, tc.dll)
		}
		if f.lcr != 0x03 {
			t.Errorf("LCR = %#x, want 0x03 (8N1, DLAB clear)", f.lcr)
		}
		if f.ier != 0 {
			t.Errorf("IER = %#x, want 0 (interrupts off)", f.ier)
		}
		if f.fcr != 0xC7 {
			t.Errorf("FCR = %#x, want 0xC7 (enable, clear Rx and Tx, trigger 14)", f.fcr)
		}
		if f.mcr != MCRDTR|MCRRTS {
			t.Errorf("MCR = %#x, want DTR|RTS", f.mcr)
		}
	}
}

func TestDivisor(t *testing.T) {
	good := map[uint32]uint16{115200: 1, 57600: 2, 19200: 6, 9600: 12, 300: 384, 110: 1047}
	for baud, want := range good {
		d, err := Divisor(baud)
		if err != nil || d != want {
			t.Errorf("Divisor(%d) = %d, %v; want %d", baud, d, err, want)
		}
	}
	for _, baud := range []uint32{0, 115201, 1000000, 76800, 1} {
		if _, err := Divisor(baud); !errors.Is(err, ErrBaud) {
			t.Errorf("Divisor(%d) error = %v, want ErrBaud", baud, err)
		}
	}
}

func TestInitRejectsBadBaudWithoutTouchingHardware(t *testing.T) {
	p := hwfake.NewPorts()
	if err := New(p, COM1).Init(0); err == nil {
		t.Fatal("Init(0) succeeded")
	}
	if len(p.Accesses) != 0 {
		t.Errorf("Init(0) made %d port accesses", len(p.Accesses))
	}
}

func TestTxGivesUpWhenTHRENeverSets(t *testing.T) {
	f := newFake(COM1)
	u := New(f, COM1)
	if err := u.Init(115200); err != nil {
		t.Fatal(err)
	}
	f.stuck = true
	f.lsrReads = 0
	if u.Tx('x') {
		t.Fatal("Tx reported success on a line that never drains")
	}
	if f.lsrReads != TxSpinLimit {
		t.Errorf("first Tx read LSR %d times, want the bound %d", f.lsrReads, TxSpinLimit)
	}
	if f.thrWrites != 0 {
		t.Errorf("Tx wrote THR %d times without THRE", f.thrWrites)
	}
	// Stalled: further bytes cost a single LSR read each.
	f.lsrReads = 0
	u.Write([]byte("abc"))
	if f.lsrReads != 3 {
		t.Errorf("stalled Write of 3 bytes read LSR %d times, want 3", f.lsrReads)
	}
	if u.Dropped() != 4 {
		t.Errorf("Dropped = %d, want 4", u.Dropped())
	}
	// The line comes back: output resumes and full spins are allowed again.
	f.stuck = false
	if !u.Tx('y') {
		t.Fatal("Tx failed after the line recovered")
	}
	if got := f.sent.String(); got != "y" {
		t.Errorf("sent %q, want %q", got, "y")
	}
	f.stuck = true
	f.lsrReads = 0
	for i := 0; i < 16; i++ { // use up the FIFO credit from the last THRE
		u.Tx('z')
	}
	if f.lsrReads != TxSpinLimit {
		t.Errorf("after recovery a timeout spun %d reads, want %d", f.lsrReads, TxSpinLimit)
	}
}

func TestWriteTranslatesNewlines(t *testing.T) {
	f := newFake(COM1)
	u := New(f, COM1)
	if err := u.Init(115200); err != nil {
		t.Fatal(err)
	}
	n, err := u.Write([]byte("a\nb\n\n"))
	if n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got, want := f.sent.String(), "a\r\nb\r\n\r\n"; got != want {
		t.Errorf("sent %q, want %q", got, want)
	}
}

func TestTxUsesFIFODepth(t *testing.T) {
	f := newFake(COM1)
	u := New(f, COM1)
	if err := u.Init(115200); err != nil {
		t.Fatal(err)
	}
	f.lsrReads = 0
	u.Write(bytes.Repeat([]byte{'q'}, 32))
	if f.lsrReads != 2 {
		t.Errorf("32 bytes through a 16-byte FIFO took %d LSR reads, want 2", f.lsrReads)
	}
	if f.sent.Len() != 32 {
		t.Errorf("sent %d bytes, want 32", f.sent.Len())
	}

	// A 16450 (no FIFO) must be polled before every byte, or bytes are lost.
	g := newFake(COM1)
	g.noFIFO = true
	v := New(g, COM1)
	if err := v.Init(115200); err != nil {
		t.Fatal(err)
	}
	g.lsrReads = 0
	v.Write([]byte("hello"))
	if g.lsrReads != 5 || g.sent.String() != "hello" {
		t.Errorf("no-FIFO UART: %d LSR reads, sent %q; want 5, %q", g.lsrReads, g.sent.String(), "hello")
	}
}

func TestRx(t *testing.T) {
	f := newFake(COM1)
	u := New(f, COM1)
	if _, ok := u.Rx(); ok {
		t.Fatal("Rx returned data from an empty receiver")
	}
	f.rx = []byte("ok")
	for _, want := range []byte("ok") {
		b, ok := u.Rx()
		if !ok || b != want {
			t.Fatalf("Rx = %q, %v; want %q", b, ok, want)
		}
	}
	if _, ok := u.Rx(); ok {
		t.Fatal("Rx returned data after draining")
	}

	// Nothing at the port: LSR floats to 0xFF, which has DR set.
	p := hwfake.NewPorts()
	p.OnRead[COM2+uint16(RegLSR)] = func(int) uint32 { return 0xFF }
	if _, ok := New(p, COM2).Rx(); ok {
		t.Fatal("Rx returned data from a floating bus")
	}
}

func TestPresent(t *testing.T) {
	f := newFake(COM1)
	f.scr = 0x5A
	if !New(f, COM1).Present() {
		t.Fatal("Present = false for a UART")
	}
	if f.scr != 0x5A {
		t.Errorf("scratch register = %#x after probe, want it restored to 0x5a", f.scr)
	}

	// An unclaimed port reads all ones whatever is written.
	p := hwfake.NewPorts()
	p.OnRead[COM2+uint16(RegSCR)] = func(int) uint32 { return 0xFF }
	p.OnWrite[COM2+uint16(RegSCR)] = func(int, uint32) {}
	if New(p, COM2).Present() {
		t.Fatal("Present = true for a floating bus")
	}

	// A register that holds only some bits is not a scratch register.
	q := hwfake.NewPorts()
	var held uint8
	q.OnRead[COM2+uint16(RegSCR)] = func(int) uint32 { return uint32(held) }
	q.OnWrite[COM2+uint16(RegSCR)] = func(_ int, v uint32) { held = uint8(v) & 0x0F }
	if New(q, COM2).Present() {
		t.Fatal("Present = true for a register that drops bits")
	}
}

func TestNoAllocationsPerCharacter(t *testing.T) {
	f := newFake(COM1)
	u := New(f, COM1)
	if err := u.Init(115200); err != nil {
		t.Fatal(err)
	}
	msg := []byte("line\n")
	if n := testing.AllocsPerRun(100, func() {
		u.Write(msg)
		u.Tx('x')
		u.Rx()
	}); n != 0 {
		t.Errorf("Write/Tx/Rx allocate %v times per run", n)
	}
}
