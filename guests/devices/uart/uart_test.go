package uart

import (
	"bytes"
	"testing"
)

type irqEvent struct {
	gsi   uint32
	level bool
}

// irqRecorder records every SetIRQ call and tracks each line's level.
type irqRecorder struct {
	events []irqEvent
	level  map[uint32]bool
}

func (r *irqRecorder) SetIRQ(gsi uint32, level bool) {
	r.events = append(r.events, irqEvent{gsi, level})
	if r.level == nil {
		r.level = map[uint32]bool{}
	}
	r.level[gsi] = level
}

func newCOM1(t testing.TB) (*UART, *irqRecorder, *bytes.Buffer) {
	t.Helper()
	irq := &irqRecorder{}
	out := &bytes.Buffer{}
	u, err := New(Config{Base: COM1Base, IRQ: COM1IRQ, Lines: irq, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	return u, irq, out
}

func (u *UART) in(off uint16) uint8     { return uint8(u.ReadPort(COM1Base+off, 1)) }
func (u *UART) out(off uint16, v uint8) { u.WritePort(COM1Base+off, 1, uint32(v)) }

func TestNewRejectsBaseAtTopOfPortSpace(t *testing.T) {
	if _, err := New(Config{Base: 0xFFFA}); err == nil {
		t.Fatal("base 0xFFFA accepted")
	}
}

// TestLinuxAutoconfig replays the register sequence of Linux 6.1's
// autoconfig() and autoconfig_16550a() (drivers/tty/serial/8250/8250_port.c)
// and checks each answer leads to PORT_16550A.
func TestLinuxAutoconfig(t *testing.T) {
	u, _, _ := newCOM1(t)

	// Existence test: IER reads back 0 and then 0x0F.
	scratch := u.in(RegIER)
	u.out(RegIER, 0)
	if got := u.in(RegIER) & 0x0F; got != 0 {
		t.Fatalf("IER after writing 0 = %#x", got)
	}
	u.out(RegIER, 0x0F)
	if got := u.in(RegIER) & 0x0F; got != 0x0F {
		t.Fatalf("IER after writing 0x0F = %#x", got)
	}
	u.out(RegIER, scratch)

	// Loopback test: MCR = LOOP|OUT2|RTS must read MSR 7:4 = DCD|CTS.
	saveMCR := u.in(RegMCR)
	u.out(RegMCR, MCRLoop|0x0A)
	if got := u.in(RegMSR) & 0xF0; got != 0x90 {
		t.Fatalf("loopback MSR = %#x, want 0x90", got)
	}
	u.out(RegMCR, saveMCR)

	// EFR reset via LCR=0xBF, then FIFO detection.
	u.out(RegLCR, 0xBF)
	u.out(RegIIR, 0)
	u.out(RegLCR, 0)
	u.out(RegIIR, FCREnable)
	if got := u.in(RegIIR) >> 6; got != 3 {
		t.Fatalf("IIR>>6 = %d, want 3 (16550A)", got)
	}

	// No EFR behind LCR=0x80 or 0xBF: offset 2 must not read 0.
	u.out(RegLCR, 0x80)
	if u.in(RegIIR) == 0 {
		t.Fatal("offset 2 reads 0 with LCR=0x80: looks like an ST16C650 EFR")
	}
	u.out(RegLCR, 0xBF)
	if u.in(RegIIR) == 0 {
		t.Fatal("offset 2 reads 0 with LCR=0xBF: looks like an EFR")
	}

	// Not a 16750: IIR bit 5 stays 0 with FCR bit 5 set, DLAB on or off.
	u.out(RegLCR, 0)
	u.out(RegIIR, FCREnable|0x20)
	status1 := u.in(RegIIR) & 0xE0
	u.out(RegIIR, FCREnable)
	u.out(RegLCR, 0x80)
	u.out(RegIIR, FCREnable|0x20)
	status2 := u.in(RegIIR) & 0xE0
	u.out(RegIIR, FCREnable)
	u.out(RegLCR, 0)
	if status1 != 0xC0 || status2 != 0xC0 {
		t.Fatalf("16750 probe: status1 %#x status2 %#x, want 0xc0 0xc0", status1, status2)
	}

	// Not an XScale: IER bit 6 (UUE) does not stick.
	u.out(RegIER, 0x40)
	if got := u.in(RegIER); got&0x40 != 0 {
		t.Fatalf("IER bit 6 stuck: %#x", got)
	}

	// Scratch register (autoconfig_8250 on older parts, and a cheap check).
	for _, v := range []uint8{0xA5, 0x5A, 0x00} {
		u.out(RegSCR, v)
		if got := u.in(RegSCR); got != v {
			t.Fatalf("SCR = %#x after writing %#x", got, v)
		}
	}
}

// TestTHREReassertsOnIERWrite replays serial8250_do_startup's THRE test:
// with the transmitter idle, enabling ETBEI raises THRE; an IIR read clears
// it; toggling IER raises it again (else Linux flags UART_BUG_THRE).
func TestTHREReassertsOnIERWrite(t *testing.T) {
	u, irq, _ := newCOM1(t)
	u.out(RegMCR, MCROUT2|MCRDTR|MCRRTS)
	u.out(RegIIR, FCREnable)

	u.out(RegIER, IERTxEmpty)
	if !irq.level[COM1IRQ] {
		t.Fatal("IRQ4 not raised by enabling ETBEI")
	}
	if lsr := u.in(RegLSR); lsr&(LSRTHRE|LSRTEMT) != LSRTHRE|LSRTEMT {
		t.Fatalf("LSR = %#x, want THRE|TEMT", lsr)
	}
	if iir := u.in(RegIIR); iir != IIRFIFOs|IIRTxEmpty {
		t.Fatalf("IIR = %#x, want %#x", iir, IIRFIFOs|IIRTxEmpty)
	}
	if iir := u.in(RegIIR); iir != IIRFIFOs|IIRNone {
		t.Fatalf("second IIR read = %#x, want THRE cleared (%#x)", iir, IIRFIFOs|IIRNone)
	}
	if irq.level[COM1IRQ] {
		t.Fatal("IRQ4 still high after the IIR read cleared THRE")
	}
	u.out(RegIER, 0)
	u.out(RegIER, IERTxEmpty)
	if iir := u.in(RegIIR); iir != IIRFIFOs|IIRTxEmpty {
		t.Fatalf("IIR after IER toggle = %#x, want THRE again", iir)
	}
	// Rewriting IER with ETBEI already set does not re-arm.
	u.out(RegIER, IERTxEmpty)
	if iir := u.in(RegIIR); iir&0x0F != IIRNone {
		t.Fatalf("IIR = %#x after rewriting the same IER, want none", iir)
	}
	// A THR write re-arms THRE: the byte leaves at once.
	u.out(RegData, 'x')
	if iir := u.in(RegIIR); iir&0x0F != IIRTxEmpty {
		t.Fatalf("IIR = %#x after a THR write, want THRE", iir)
	}

	want := []irqEvent{{4, true}, {4, false}, {4, true}, {4, false}, {4, true}, {4, false}}
	if len(irq.events) != len(want) {
		t.Fatalf("IRQ events %v, want %v", irq.events, want)
	}
	for i := range want {
		if irq.events[i] != want[i] {
			t.Fatalf("IRQ events %v, want %v", irq.events, want)
		}
	}
}

func TestOUT2GatesInterrupt(t *testing.T) {
	u, irq, _ := newCOM1(t)
	u.out(RegIER, IERTxEmpty)
	if len(irq.events) != 0 {
		t.Fatalf("IRQ driven with OUT2 clear: %v", irq.events)
	}
	u.out(RegMCR, MCROUT2)
	if !irq.level[COM1IRQ] {
		t.Fatal("IRQ not raised when OUT2 set with THRE pending")
	}
	u.out(RegMCR, MCROUT2|MCRLoop)
	if irq.level[COM1IRQ] {
		t.Fatal("IRQ still driven in loopback mode")
	}
}

func TestTransmitAndLoopback(t *testing.T) {
	u, _, out := newCOM1(t)
	for _, c := range []byte("hi\n") {
		u.out(RegData, c)
	}
	if out.String() != "hi\n" {
		t.Fatalf("sink got %q", out.String())
	}
	u.out(RegMCR, MCRLoop)
	u.out(RegData, 'L')
	if out.String() != "hi\n" {
		t.Fatalf("loopback byte reached the sink: %q", out.String())
	}
	if lsr := u.in(RegLSR); lsr&LSRDataReady == 0 {
		t.Fatalf("LSR = %#x, want DR after a loopback byte", lsr)
	}
	if got := u.in(RegData); got != 'L' {
		t.Fatalf("RBR = %q, want 'L'", got)
	}
	if lsr := u.in(RegLSR); lsr&LSRDataReady != 0 {
		t.Fatalf("LSR = %#x, DR still set after draining", lsr)
	}
}

func TestDivisorLatch(t *testing.T) {
	u, _, out := newCOM1(t)
	u.out(RegLCR, LCRDLAB|0x03)
	u.out(RegData, 0x01) // DLL
	u.out(RegIER, 0x00)  // DLM
	if out.Len() != 0 {
		t.Fatal("a DLL write was transmitted")
	}
	if u.in(RegData) != 0x01 || u.in(RegIER) != 0x00 {
		t.Fatal("divisor latch does not read back")
	}
	u.out(RegLCR, 0x03)
	if got := u.in(RegIER); got != 0 {
		t.Fatalf("IER = %#x after DLM write, want untouched 0", got)
	}
	s := u.State()
	if s.DLL != 1 || s.DLM != 0 || s.LCR != 0x03 {
		t.Fatalf("state %+v", s)
	}
}

func TestReceive(t *testing.T) {
	u, irq, _ := newCOM1(t)
	u.out(RegMCR, MCROUT2)
	u.out(RegIIR, FCREnable|0x80) // trigger level 8
	u.out(RegIER, IERRxData)

	if n := u.Input([]byte("abc")); n != 3 {
		t.Fatalf("Input took %d", n)
	}
	if !irq.level[COM1IRQ] {
		t.Fatal("no RX interrupt")
	}
	if iir := u.in(RegIIR); iir != IIRFIFOs|IIRRxTimeout {
		t.Fatalf("IIR = %#x below the trigger level, want timeout %#x", iir, IIRFIFOs|IIRRxTimeout)
	}
	u.Input([]byte("defgh"))
	if iir := u.in(RegIIR); iir != IIRFIFOs|IIRRxData {
		t.Fatalf("IIR = %#x at the trigger level, want %#x", iir, IIRFIFOs|IIRRxData)
	}
	var got []byte
	for i := 0; i < 20 && u.in(RegLSR)&LSRDataReady != 0; i++ {
		got = append(got, u.in(RegData))
	}
	if string(got) != "abcdefgh" {
		t.Fatalf("received %q", got)
	}
	if irq.level[COM1IRQ] {
		t.Fatal("RX interrupt still high with the FIFO empty")
	}
	if got := u.in(RegData); got != 'h' {
		t.Fatalf("RBR when empty = %q, want the last byte", got)
	}
}

func TestInputIsBounded(t *testing.T) {
	u, _, _ := newCOM1(t)
	big := bytes.Repeat([]byte{'z'}, RXBufferSize+100)
	if n := u.Input(big); n != RXBufferSize {
		t.Fatalf("Input accepted %d, want %d", n, RXBufferSize)
	}
	if u.RXFree() != 0 {
		t.Fatal("ring not full")
	}
	if n := u.Input([]byte{'y'}); n != 0 {
		t.Fatalf("full ring accepted %d", n)
	}
	u.in(RegData)
	if n := u.Input([]byte("yy")); n != 1 {
		t.Fatalf("after one read the ring accepted %d, want 1", n)
	}
	// FCR clear-RX drops the lot.
	u.out(RegIIR, FCREnable|FCRClearRx)
	if u.RXFree() != RXBufferSize {
		t.Fatal("FCR clear did not empty the ring")
	}
}

func TestInterruptPriority(t *testing.T) {
	u, _, _ := newCOM1(t)
	u.out(RegMCR, MCRLoop|MCROUT2)
	u.out(RegIER, IERRxData|IERTxEmpty|IERLineStatus|IERModem)
	// Loopback: fill the ring then overflow to get an overrun (RLS).
	for i := 0; i < RXBufferSize; i++ {
		u.out(RegData, 'q')
	}
	u.out(RegData, 'q')
	// Raise DTR: in loopback that changes DSR, a modem status delta.
	u.out(RegMCR, MCRLoop|MCROUT2|MCRDTR)

	if iir := u.in(RegIIR) & 0x0F; iir != IIRLineStatus {
		t.Fatalf("IIR = %#x, want line status first", iir)
	}
	if lsr := u.in(RegLSR); lsr&LSROverrun == 0 {
		t.Fatalf("LSR = %#x, want OE", lsr)
	}
	if iir := u.in(RegIIR) & 0x0F; iir != IIRRxData {
		t.Fatalf("IIR = %#x, want RX data after LSR read", iir)
	}
	// Leave the data queued but stop it from interrupting.
	u.out(RegIER, IERTxEmpty|IERModem)
	// ETBEI stayed set, so THRE is still pending from the last THR write.
	if iir := u.in(RegIIR) & 0x0F; iir != IIRTxEmpty {
		t.Fatalf("IIR = %#x, want THRE", iir)
	}
	if iir := u.in(RegIIR) & 0x0F; iir != IIRModem {
		t.Fatalf("IIR = %#x, want modem status last", iir)
	}
	if msr := u.in(RegMSR); msr&MSRDeltaDSR == 0 || msr&MSRDSR == 0 {
		t.Fatalf("MSR = %#x, want DSR with its delta", msr)
	}
	if iir := u.in(RegIIR) & 0x0F; iir != IIRNone {
		t.Fatalf("IIR = %#x after MSR read, want none", iir)
	}
}

func TestWideAccessSplits(t *testing.T) {
	u, _, _ := newCOM1(t)
	u.out(RegSCR, 0x42)
	// A 16-bit read at LSR returns LSR then MSR.
	v := u.ReadPort(COM1Base+RegLSR, 2)
	if uint8(v) != LSRTHRE|LSRTEMT || uint8(v>>8)&0xF0 != idleModemInputs {
		t.Fatalf("16-bit read at LSR = %#x", v)
	}
	// A 32-bit read at SCR: SCR, then three ports past the UART (0xFF).
	if v := u.ReadPort(COM1Base+RegSCR, 4); v != 0xFFFFFF42 {
		t.Fatalf("32-bit read at SCR = %#x", v)
	}
	u.WritePort(COM1Base+RegLCR, 2, 0x1B03) // LCR=3, MCR=0x1B
	if u.in(RegLCR) != 0x03 || u.in(RegMCR) != 0x1B {
		t.Fatalf("16-bit write: LCR %#x MCR %#x", u.in(RegLCR), u.in(RegMCR))
	}
}

func TestResetAndState(t *testing.T) {
	u, irq, _ := newCOM1(t)
	u.out(RegMCR, MCROUT2)
	u.out(RegIER, IERTxEmpty)
	u.Input([]byte("x"))
	s := u.State()
	u.Reset()
	if irq.level[COM1IRQ] {
		t.Fatal("Reset left IRQ high")
	}
	if u.RXFree() != RXBufferSize || u.in(RegIER) != 0 {
		t.Fatal("Reset kept state")
	}
	s.RXCount = 60000 // corrupt snapshot: must be clamped
	s.RXHead = 5000
	u.SetState(s)
	if !irq.level[COM1IRQ] {
		t.Fatal("SetState did not drive the pending interrupt")
	}
	if got := u.State(); got.RXCount != RXBufferSize || got.RXHead >= RXBufferSize {
		t.Fatalf("SetState kept out-of-range ring indices: head %d count %d", got.RXHead, got.RXCount)
	}
}

type countingIRQ struct{ n int }

func (c *countingIRQ) SetIRQ(uint32, bool) { c.n++ }

type discard struct{}

func (discard) WriteByte(byte) error { return nil }

func TestAccessesDoNotAllocate(t *testing.T) {
	u, err := New(Config{Base: COM1Base, IRQ: 4, Lines: &countingIRQ{}, Output: discard{}})
	if err != nil {
		t.Fatal(err)
	}
	u.out(RegMCR, MCROUT2)
	u.out(RegIIR, FCREnable)
	in := []byte("k")
	allocs := testing.AllocsPerRun(1000, func() {
		u.WritePort(COM1Base+RegIER, 1, uint32(IERTxEmpty|IERRxData))
		u.WritePort(COM1Base, 1, 'a')
		u.WritePort(COM1Base, 4, 0x64636261)
		u.Input(in)
		u.ReadPort(COM1Base+RegIIR, 1)
		u.ReadPort(COM1Base+RegLSR, 2)
		u.ReadPort(COM1Base, 1)
		u.WritePort(COM1Base+RegIER, 1, 0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}

// TestConcurrentInputAndGuest has the host push input while a vCPU drains
// it; run with -race. Every byte must arrive once, in order.
func TestConcurrentInputAndGuest(t *testing.T) {
	u, _, _ := newCOM1(t)
	const n = 20000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; {
			i += u.Input([]byte{byte(i)})
		}
	}()
	for i := 0; i < n; {
		if u.in(RegLSR)&LSRDataReady == 0 {
			continue
		}
		if got := u.in(RegData); got != byte(i) {
			t.Fatalf("byte %d = %d", i, got)
		}
		i++
	}
	<-done
}
