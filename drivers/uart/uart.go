// Package uart drives a National Semiconductor PC16550D-compatible UART
// (the "16550A" of every PC: COM1 at port 0x3F8, COM2 at 0x2F8) in polled
// mode, as the hypervisor's console.
//
// Register layout and bit meanings follow the PC16550D datasheet (National
// Semiconductor, June 1995), section 8 "Registers" and its register summary
// table; the datasheet section named after each register is cited below.
// Everything here is polled with interrupts off: the console must
// work before any interrupt controller is set up and while one is broken.
//
// A console that nobody listens to must never stop the hypervisor: transmit
// waits for the holding register with a bounded spin and drops the byte when
// the line never drains (a UART with flow control wedged, a disconnected
// BMC serial-over-LAN, or no UART at all). After one such timeout the driver
// stops spinning until the transmitter shows signs of life again, so a dead
// console costs one port read per byte, not a full timeout per byte.
//
// A UART is shared state: callers that write from several CPUs serialize the
// calls themselves (the driver takes no lock so that a panic path can always
// print).
package uart

import (
	"errors"
	"fmt"

	"tamavisor/drivers/hw"
)

// COM1 and COM2 are the conventional PC base ports (IBM PC/AT Technical
// Reference; also the ACPI SPCR defaults).
const (
	COM1 uint16 = 0x3F8
	COM2 uint16 = 0x2F8
)

// Register offsets from the base port (PC16550D datasheet, "Registers"). Several
// share an offset and are told apart by direction or by LCR.DLAB (datasheet
// register-address table: DLAB, A2-A0).
type Register uint16

const (
	RegRBR Register = 0 // receiver buffer (read, DLAB=0)
	RegTHR Register = 0 // transmitter holding (write, DLAB=0)
	RegDLL Register = 0 // divisor latch LSB (DLAB=1)
	RegIER Register = 1 // interrupt enable (DLAB=0)
	RegDLM Register = 1 // divisor latch MSB (DLAB=1)
	RegIIR Register = 2 // interrupt identification (read)
	RegFCR Register = 2 // FIFO control (write)
	RegLCR Register = 3 // line control
	RegMCR Register = 4 // modem control
	RegLSR Register = 5 // line status
	RegMSR Register = 6 // modem status
	RegSCR Register = 7 // scratch
)

// Line control register bits (datasheet "Line Control Register").
const (
	LCRWordLength8 uint8 = 0x03 // WLS1:WLS0 = 11: 8 data bits
	LCRStopBits2   uint8 = 0x04 // STB: 0 = one stop bit
	LCRParityOn    uint8 = 0x08 // PEN: 0 = no parity
	LCRDLAB        uint8 = 0x80 // divisor latch access bit
	// LCR8N1 is 8 data bits, no parity, one stop bit, DLAB clear.
	LCR8N1 = LCRWordLength8
)

// FIFO control register bits (datasheet "FIFO Control Register").
const (
	FCREnable      uint8 = 0x01 // enable both FIFOs
	FCRClearRx     uint8 = 0x02 // reset the receiver FIFO (self-clearing)
	FCRClearTx     uint8 = 0x04 // reset the transmitter FIFO (self-clearing)
	FCRTrigger14   uint8 = 0xC0 // receiver trigger level 14 bytes
	fcrInitialized       = FCREnable | FCRClearRx | FCRClearTx | FCRTrigger14
)

// IIRFIFOsEnabled: IIR bits 7:6 read 11 when the FIFOs are enabled (datasheet
// "Interrupt Identification Register"). A 16450 or an 8250 reads 00 there: it has no FIFO.
const IIRFIFOsEnabled uint8 = 0xC0

// Modem control register bits (datasheet "Modem Control Register").
const (
	MCRDTR      uint8 = 0x01
	MCRRTS      uint8 = 0x02
	MCROut1     uint8 = 0x04
	MCROut2     uint8 = 0x08 // gates the interrupt line to the PIC on PCs
	MCRLoopback uint8 = 0x10
)

// Line status register bits (datasheet "Line Status Register").
const (
	LSRDataReady    uint8 = 0x01 // DR: a byte waits in RBR / the Rx FIFO
	LSROverrun      uint8 = 0x02 // OE
	LSRParityError  uint8 = 0x04 // PE
	LSRFramingError uint8 = 0x08 // FE
	LSRBreak        uint8 = 0x10 // BI
	LSRTHREmpty     uint8 = 0x20 // THRE: THR (FIFO mode: the Tx FIFO) is empty
	LSRTxEmpty      uint8 = 0x40 // TEMT: THR and the shift register are empty
	LSRFIFOError    uint8 = 0x80 // error in the Rx FIFO
)

// ClockHz is the PC's UART input clock, 1.8432 MHz; the baud rate generator
// divides it by 16 and by the divisor latch (datasheet "Programmable Baud
// Generator", whose table lists divisors for this crystal).
const ClockHz = 1843200

// MaxBaud is the rate with divisor 1.
const MaxBaud = ClockHz / 16

// fifoDepth is the 16550A's transmitter FIFO size (datasheet "Features").
const fifoDepth = 16

// TxSpinLimit bounds the LSR reads Tx spends waiting for THRE. One port read
// takes about 1 us on real hardware (longer under emulation), so this is about
// 100 ms: enough to drain a full 16-byte FIFO at 9600 baud (17 ms) with a wide
// margin, short enough that a dead console is noticed quickly.
const TxSpinLimit = 100000

// UART is one 16550-compatible serial port.
type UART struct {
	io   hw.PortIO
	base uint16

	// txCredit is how many more bytes fit in the transmitter without
	// looking at LSR again: after THRE the whole FIFO is free.
	txCredit int
	// fifo is the transmitter depth to credit after THRE: 16 once Init
	// has seen the FIFOs enabled, else 1.
	fifo int
	// stalled is set after a Tx timed out; Tx then polls LSR once per
	// byte instead of spinning, until THRE is seen again.
	stalled bool
	dropped uint64
}

// New returns a driver for the UART at base (COM1, COM2, or a PCI UART's I/O
// BAR). It touches no hardware: call Present and Init.
func New(io hw.PortIO, base uint16) *UART {
	return &UART{io: io, base: base, fifo: 1}
}

// Base returns the base port.
func (u *UART) Base() uint16 { return u.base }

func (u *UART) in(r Register) uint8     { return u.io.In8(u.base + uint16(r)) }
func (u *UART) out(r Register, v uint8) { u.io.Out8(u.base+uint16(r), v) }

// Present reports whether a UART answers at the base port, by writing two
// patterns to the scratch register and reading them back (the classic probe:
// an unclaimed ISA port floats to 0xFF). The scratch value is restored. An
// 8250 has no scratch register and is reported absent; nobody ships one.
func (u *UART) Present() bool {
	saved := u.in(RegSCR)
	ok := true
	for _, pattern := range [...]uint8{0x55, 0xAA} {
		u.out(RegSCR, pattern)
		if u.in(RegSCR) != pattern {
			ok = false
			break
		}
	}
	u.out(RegSCR, saved)
	return ok
}

// ErrBaud reports a baud rate the divisor latch cannot produce.
var ErrBaud = errors.New("uart: unsupported baud rate")

// Divisor returns the divisor latch value for baud: the nearest integer
// divisor, rejected when it misses the rate by more than 2% (beyond that the
// far end sees framing errors; the usual rates 115200/57600/38400/19200/9600
// are exact).
func Divisor(baud uint32) (uint16, error) {
	if baud == 0 || baud > MaxBaud {
		return 0, fmt.Errorf("%w %d: must be 1..%d", ErrBaud, baud, MaxBaud)
	}
	d := (MaxBaud + baud/2) / baud
	if d == 0 || d > 0xFFFF {
		return 0, fmt.Errorf("%w %d: divisor %d out of range", ErrBaud, baud, d)
	}
	actual := MaxBaud / d
	diff := actual - baud
	if actual < baud {
		diff = baud - actual
	}
	if uint64(diff)*50 > uint64(baud) {
		return 0, fmt.Errorf("%w %d: nearest rate is %d", ErrBaud, baud, actual)
	}
	return uint16(d), nil
}

// Init programs the UART for baud, 8N1, with interrupts off, both FIFOs
// enabled and cleared, and DTR and RTS asserted (OUT2 stays low: it would
// connect the UART's interrupt to the PIC, and the driver polls).
func (u *UART) Init(baud uint32) error {
	div, err := Divisor(baud)
	if err != nil {
		return err
	}
	u.out(RegLCR, LCR8N1) // DLAB off, so that offset 1 is IER
	u.out(RegIER, 0)
	u.out(RegLCR, LCR8N1|LCRDLAB)
	u.out(RegDLL, uint8(div))
	u.out(RegDLM, uint8(div>>8))
	u.out(RegLCR, LCR8N1) // DLAB off again
	u.out(RegFCR, fcrInitialized)
	u.out(RegMCR, MCRDTR|MCRRTS)

	u.fifo = 1
	if u.in(RegIIR)&IIRFIFOsEnabled == IIRFIFOsEnabled {
		u.fifo = fifoDepth
	}
	u.txCredit = 0
	u.stalled = false
	return nil
}

// Tx sends one byte. It reports false, and counts the byte as dropped, when
// the transmitter did not become ready within TxSpinLimit reads of LSR (or,
// once the line has stalled, on the first read).
func (u *UART) Tx(b uint8) bool {
	if u.txCredit == 0 && !u.waitTHRE() {
		u.dropped++
		return false
	}
	u.out(RegTHR, b)
	u.txCredit--
	return true
}

func (u *UART) waitTHRE() bool {
	limit := TxSpinLimit
	if u.stalled {
		limit = 1
	}
	for i := 0; i < limit; i++ {
		if u.in(RegLSR)&LSRTHREmpty != 0 {
			u.stalled = false
			u.txCredit = u.fifo
			return true
		}
	}
	u.stalled = true
	return false
}

// Write sends p, translating each "\n" to "\r\n" for terminals. It implements
// io.Writer for a console: it always reports the whole of p written, because
// a console that drops bytes must not make its callers fail; Dropped counts
// what was lost.
func (u *UART) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			u.Tx('\r')
		}
		u.Tx(b)
	}
	return len(p), nil
}

// Dropped returns how many bytes Tx has discarded because the transmitter
// never became ready.
func (u *UART) Dropped() uint64 { return u.dropped }

// Rx returns a received byte if one is waiting; it never blocks. A line
// status of 0xFF is an absent UART (a floating bus), not data.
func (u *UART) Rx() (uint8, bool) {
	lsr := u.in(RegLSR)
	if lsr == 0xFF || lsr&LSRDataReady == 0 {
		return 0, false
	}
	return u.in(RegRBR), true
}
