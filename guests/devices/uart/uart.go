// Package uart models a National Semiconductor PC16550D UART (the "16550A"
// PC operating systems detect) as a guest's serial port, usually COM1 at
// port 0x3F8 with ISA IRQ 4.
//
// Register layout and behaviour follow the PC16550D datasheet (National
// Semiconductor, June 1995), section 8 "Registers" and its Table II
// (register summary); Table IV gives the interrupt priorities modelled in
// pendingInterrupt.
//
// Transmission is immediate: a byte written to THR goes to the output sink
// at once, so LSR.THRE and LSR.TEMT always read 1 and the THRE interrupt
// re-arms as soon as a byte is written. Input comes from the host through
// Input into a bounded ring that stands for the receive FIFO (it is larger
// than the chip's 16 bytes, so that a pasted line is not lost while the
// guest is slow to drain it).
//
// What Linux's 8250 driver relies on, and is modelled here: the scratch
// register and IER write/read-back in autoconfig, loopback mode (MCR bit 4)
// wiring MCR's outputs to MSR's inputs, IIR bits 7:6 reporting enabled FIFOs
// (16550A) with bit 5 clear (no 64-byte 16750 FIFO), IER bits 7:4 reading 0
// (no XScale UUE bit), the THRE interrupt being cleared by an IIR read that
// reports it and re-armed by IER.ETBEI going from 0 to 1 (startup's THRE
// test), and MCR.OUT2 gating the interrupt onto the ISA bus as on every PC
// (8250_port.c raises OUT2 before it expects interrupts).
//
// Concurrency: every method takes the device lock. The interrupt sink is
// called with the lock held and must not call back into this UART; the
// output sink is called after the lock is released.
package uart

import (
	"fmt"
	"sync"

	"tamavisor/guests/bus"
)

// COM1 and COM2 are the conventional PC base ports and ISA IRQs (IBM PC/AT
// Technical Reference).
const (
	COM1Base uint16 = 0x3F8
	COM1IRQ  uint32 = 4
	COM2Base uint16 = 0x2F8
	COM2IRQ  uint32 = 3
)

// Ports is the number of I/O ports a 16550 decodes (A2-A0).
const Ports = 8

// RXBufferSize is the capacity of the receive ring the host fills.
const RXBufferSize = 1024

// Register offsets (datasheet Table II; several share an offset and are
// told apart by direction or by LCR.DLAB).
const (
	RegData = 0 // RBR (read), THR (write); DLL when DLAB=1
	RegIER  = 1 // DLM when DLAB=1
	RegIIR  = 2 // IIR (read), FCR (write)
	RegLCR  = 3
	RegMCR  = 4
	RegLSR  = 5
	RegMSR  = 6
	RegSCR  = 7
)

// IER bits (datasheet 8.5 "Interrupt Enable Register").
const (
	IERRxData     uint8 = 0x01 // ERBFI: received data available
	IERTxEmpty    uint8 = 0x02 // ETBEI: transmitter holding register empty
	IERLineStatus uint8 = 0x04 // ELSI: receiver line status
	IERModem      uint8 = 0x08 // EDSSI: modem status
	ierMask       uint8 = 0x0F // bits 7:4 are always 0 on a 16550A
)

// IIR values (datasheet Table IV "Interrupt Control Functions"); bit 0 set
// means nothing is pending.
const (
	IIRNone       uint8 = 0x01
	IIRLineStatus uint8 = 0x06
	IIRRxData     uint8 = 0x04
	IIRRxTimeout  uint8 = 0x0C
	IIRTxEmpty    uint8 = 0x02
	IIRModem      uint8 = 0x00
	IIRFIFOs      uint8 = 0xC0 // bits 7:6: FIFOs enabled (FCR0 = 1)
)

// FCR bits (datasheet 8.7 "FIFO Control Register").
const (
	FCREnable    uint8 = 0x01
	FCRClearRx   uint8 = 0x02
	FCRClearTx   uint8 = 0x04
	FCRDMAMode   uint8 = 0x08
	fcrTrigShift       = 6
)

// LCR bits (datasheet 8.1 "Line Control Register").
const LCRDLAB uint8 = 0x80

// MCR bits (datasheet 8.8 "Modem Control Register").
const (
	MCRDTR  uint8 = 0x01
	MCRRTS  uint8 = 0x02
	MCROUT1 uint8 = 0x04
	MCROUT2 uint8 = 0x08 // on a PC: enables the IRQ driver onto the ISA bus
	MCRLoop uint8 = 0x10
	mcrMask uint8 = 0x1F
)

// LSR bits (datasheet 8.4 "Line Status Register").
const (
	LSRDataReady uint8 = 0x01
	LSROverrun   uint8 = 0x02
	LSRParity    uint8 = 0x04
	LSRFraming   uint8 = 0x08
	LSRBreak     uint8 = 0x10
	LSRTHRE      uint8 = 0x20
	LSRTEMT      uint8 = 0x40
	lsrErrors    uint8 = LSROverrun | LSRParity | LSRFraming | LSRBreak
)

// MSR bits (datasheet 8.9 "Modem Status Register").
const (
	MSRDeltaCTS uint8 = 0x01
	MSRDeltaDSR uint8 = 0x02
	MSRTrailRI  uint8 = 0x04
	MSRDeltaDCD uint8 = 0x08
	MSRCTS      uint8 = 0x10
	MSRDSR      uint8 = 0x20
	MSRRI       uint8 = 0x40
	MSRDCD      uint8 = 0x80
	// idleModemInputs: with no real line behind the port, the modem says
	// carrier, data set ready and clear to send, so software that waits
	// for them (flow control) proceeds.
	idleModemInputs = MSRDCD | MSRDSR | MSRCTS
)

// rxTriggerLevels maps FCR bits 7:6 to the receive FIFO trigger level
// (datasheet 8.7).
var rxTriggerLevels = [4]uint16{1, 4, 8, 14}

// ByteSink receives transmitted bytes (io.ByteWriter fits: bufio.Writer,
// bytes.Buffer, or the hypervisor's per-guest console prefixer).
type ByteSink interface {
	WriteByte(c byte) error
}

// Config wires a UART into a VM.
type Config struct {
	// Base is the first of the eight ports (COM1Base on a PC).
	Base uint16
	// IRQ is the interrupt line raised through Lines (COM1IRQ on a PC).
	IRQ uint32
	// Lines receives the interrupt output; nil leaves it unconnected.
	Lines bus.IRQ
	// Output receives transmitted bytes; nil discards them.
	Output ByteSink
}

// State is everything a snapshot needs to recreate the UART.
type State struct {
	IER, LCR, MCR, SCR uint8
	FCR                uint8 // FIFO enable, DMA mode, trigger bits as written
	DLL, DLM           uint8
	LSRErrors          uint8 // sticky LSR error bits, cleared by an LSR read
	MSRDeltas          uint8 // MSR bits 3:0, cleared by an MSR read
	ModemInputs        uint8 // MSR bits 7:4 as last seen, to detect deltas
	RBR                uint8 // last byte delivered: RBR keeps it when empty
	THRPending         bool  // THRE interrupt armed (datasheet Table IV)
	IRQLevel           bool  // level last driven on the interrupt line
	RX                 [RXBufferSize]byte
	RXHead, RXCount    uint16
}

// UART is one 16550A.
type UART struct {
	mu  sync.Mutex
	cfg Config
	s   State
}

// New returns a UART in its power-on state.
func New(cfg Config) (*UART, error) {
	if int(cfg.Base)+Ports-1 > 0xFFFF {
		return nil, fmt.Errorf("uart: base port %#x leaves no room for %d registers", cfg.Base, Ports)
	}
	u := &UART{cfg: cfg}
	u.s = powerOnState()
	return u, nil
}

// powerOnState is the datasheet's reset state (Table III "UART Reset
// Configuration"): everything 0 except LSR.THRE/TEMT, which are computed.
// The divisor is set to 12 (9600 baud) where the chip leaves it undefined.
func powerOnState() State {
	return State{DLL: 12, ModemInputs: idleModemInputs}
}

// Reset returns the UART to its power-on state (a guest reboot), dropping
// pending input and lowering the interrupt line.
func (u *UART) Reset() {
	u.mu.Lock()
	level := u.s.IRQLevel
	u.s = powerOnState()
	u.s.IRQLevel = level
	u.updateIRQ()
	u.mu.Unlock()
}

// ReadPort implements bus.PortDevice. Wider accesses read consecutive
// registers, as an ISA bus splits them; ports past the UART read 0xFF.
func (u *UART) ReadPort(port uint16, size uint8) uint32 {
	u.mu.Lock()
	var v uint32
	for i := uint8(0); i < size && i < 4; i++ {
		v |= uint32(u.readReg(port-u.cfg.Base+uint16(i))) << (8 * i)
	}
	u.updateIRQ()
	u.mu.Unlock()
	return v
}

// WritePort implements bus.PortDevice.
func (u *UART) WritePort(port uint16, size uint8, v uint32) {
	var out [4]byte
	n := 0
	u.mu.Lock()
	for i := uint8(0); i < size && i < 4; i++ {
		if u.writeReg(port-u.cfg.Base+uint16(i), uint8(v>>(8*i))) {
			out[n] = uint8(v >> (8 * i))
			n++
		}
	}
	u.updateIRQ()
	u.mu.Unlock()
	if u.cfg.Output != nil {
		for _, b := range out[:n] {
			u.cfg.Output.WriteByte(b)
		}
	}
}

// Input queues bytes from the host for the guest to receive and returns
// how many fit; the caller keeps the rest for later.
func (u *UART) Input(b []byte) int {
	u.mu.Lock()
	n := 0
	for _, c := range b {
		if !u.push(c) {
			break
		}
		n++
	}
	u.updateIRQ()
	u.mu.Unlock()
	return n
}

// RXFree is the room left in the receive ring.
func (u *UART) RXFree() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return RXBufferSize - int(u.s.RXCount)
}

// State returns a copy of the device state.
func (u *UART) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.s
}

// SetState restores a snapshot, bringing out-of-range fields back into
// range, and drives the interrupt line to match it.
func (u *UART) SetState(s State) {
	u.mu.Lock()
	level := u.s.IRQLevel
	s.IER &= ierMask
	s.MCR &= mcrMask
	s.LSRErrors &= lsrErrors
	s.MSRDeltas &= 0x0F
	s.ModemInputs &= 0xF0
	s.RXHead %= RXBufferSize
	if s.RXCount > RXBufferSize {
		s.RXCount = RXBufferSize
	}
	u.s = s
	u.s.IRQLevel = level
	u.updateIRQ()
	u.mu.Unlock()
}

func (u *UART) fifoEnabled() bool { return u.s.FCR&FCREnable != 0 }

func (u *UART) readReg(off uint16) uint8 {
	s := &u.s
	dlab := s.LCR&LCRDLAB != 0
	switch off {
	case RegData:
		if dlab {
			return s.DLL
		}
		if c, ok := u.pop(); ok {
			s.RBR = c
		}
		return s.RBR
	case RegIER:
		if dlab {
			return s.DLM
		}
		return s.IER
	case RegIIR:
		id := u.pendingInterrupt()
		if id == IIRTxEmpty {
			// Reading IIR while it reports THRE clears that
			// interrupt (datasheet Table IV, "Reset Control").
			s.THRPending = false
		}
		if u.fifoEnabled() {
			id |= IIRFIFOs
		}
		return id
	case RegLCR:
		return s.LCR
	case RegMCR:
		return s.MCR
	case RegLSR:
		v := LSRTHRE | LSRTEMT | s.LSRErrors
		if s.RXCount > 0 {
			v |= LSRDataReady
		}
		s.LSRErrors = 0
		return v
	case RegMSR:
		u.sampleModemInputs()
		v := s.ModemInputs | s.MSRDeltas
		s.MSRDeltas = 0
		return v
	case RegSCR:
		return s.SCR
	}
	return 0xFF
}

// writeReg applies one byte write and reports whether the byte is to be
// transmitted to the output sink.
func (u *UART) writeReg(off uint16, v uint8) (transmit bool) {
	s := &u.s
	dlab := s.LCR&LCRDLAB != 0
	switch off {
	case RegData:
		if dlab {
			s.DLL = v
			return false
		}
		if s.MCR&MCRLoop != 0 {
			// Loopback: the serial output is wired back to the
			// receiver (datasheet 8.8, MCR bit 4).
			if !u.push(v) {
				s.LSRErrors |= LSROverrun
			}
		} else {
			transmit = true
		}
		// The byte left at once, so THR is empty again and the THRE
		// interrupt is due again if enabled.
		s.THRPending = s.IER&IERTxEmpty != 0
		return transmit
	case RegIER:
		if dlab {
			s.DLM = v
			return false
		}
		old := s.IER
		s.IER = v & ierMask
		if rose, fell := s.IER&^old, old&^s.IER; rose&IERTxEmpty != 0 {
			// Enabling ETBEI with THR empty raises THRE at once, even
			// if an IIR read had cleared it; Linux's startup test
			// and Windows both toggle IER to check this.
			s.THRPending = true
		} else if fell&IERTxEmpty != 0 {
			s.THRPending = false
		}
	case RegIIR: // FCR
		u.writeFCR(v)
	case RegLCR:
		s.LCR = v
	case RegMCR:
		s.MCR = v & mcrMask
		u.sampleModemInputs()
	case RegLSR:
		// Factory test register on the real chip; writes are ignored.
	case RegMSR:
		// Read-only.
	case RegSCR:
		s.SCR = v
	}
	return false
}

func (u *UART) writeFCR(v uint8) {
	s := &u.s
	if (v^s.FCR)&FCREnable != 0 {
		// Changing FIFO mode clears both FIFOs (datasheet 8.7, FCR0).
		u.clearRX()
	}
	if v&FCREnable == 0 {
		// Other FCR bits are programmed only with FCR0 set.
		s.FCR = 0
		return
	}
	if v&FCRClearRx != 0 {
		u.clearRX()
	}
	// FCRClearTx: the transmit FIFO is always empty.
	s.FCR = v &^ (FCRClearRx | FCRClearTx)
}

// sampleModemInputs recomputes MSR bits 7:4 and latches their changes in
// the delta bits 3:0 (datasheet 8.9).
func (u *UART) sampleModemInputs() {
	s := &u.s
	in := idleModemInputs
	if s.MCR&MCRLoop != 0 {
		// Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (8.8).
		in = 0
		if s.MCR&MCRDTR != 0 {
			in |= MSRDSR
		}
		if s.MCR&MCRRTS != 0 {
			in |= MSRCTS
		}
		if s.MCR&MCROUT1 != 0 {
			in |= MSRRI
		}
		if s.MCR&MCROUT2 != 0 {
			in |= MSRDCD
		}
	}
	changed := in ^ s.ModemInputs
	if changed&MSRCTS != 0 {
		s.MSRDeltas |= MSRDeltaCTS
	}
	if changed&MSRDSR != 0 {
		s.MSRDeltas |= MSRDeltaDSR
	}
	if changed&MSRRI != 0 && in&MSRRI == 0 {
		s.MSRDeltas |= MSRTrailRI // trailing edge only
	}
	if changed&MSRDCD != 0 {
		s.MSRDeltas |= MSRDeltaDCD
	}
	s.ModemInputs = in
}

// pendingInterrupt returns the IIR bits 3:0 of the highest-priority enabled
// interrupt (datasheet Table IV).
func (u *UART) pendingInterrupt() uint8 {
	s := &u.s
	switch {
	case s.IER&IERLineStatus != 0 && s.LSRErrors != 0:
		return IIRLineStatus
	case s.IER&IERRxData != 0 && s.RXCount > 0:
		if u.fifoEnabled() && s.RXCount < rxTriggerLevels[s.FCR>>fcrTrigShift] {
			// Below the trigger level the chip reports a character
			// timeout once the line has been idle for four
			// characters; host input arrives in bursts, so the
			// line is idle now.
			return IIRRxTimeout
		}
		return IIRRxData
	case s.IER&IERTxEmpty != 0 && s.THRPending:
		return IIRTxEmpty
	case s.IER&IERModem != 0 && s.MSRDeltas != 0:
		return IIRModem
	}
	return IIRNone
}

// updateIRQ drives the interrupt line: pending, and let through by OUT2
// (in loopback OUT2 is disconnected from its pin, so the PC's IRQ driver
// is off).
func (u *UART) updateIRQ() {
	s := &u.s
	level := u.pendingInterrupt() != IIRNone && s.MCR&MCROUT2 != 0 && s.MCR&MCRLoop == 0
	if level == s.IRQLevel {
		return
	}
	s.IRQLevel = level
	if u.cfg.Lines != nil {
		u.cfg.Lines.SetIRQ(u.cfg.IRQ, level)
	}
}

func (u *UART) push(c byte) bool {
	s := &u.s
	if s.RXCount >= RXBufferSize {
		return false
	}
	s.RX[(s.RXHead+s.RXCount)%RXBufferSize] = c
	s.RXCount++
	return true
}

func (u *UART) pop() (byte, bool) {
	s := &u.s
	if s.RXCount == 0 {
		return 0, false
	}
	c := s.RX[s.RXHead%RXBufferSize]
	s.RXHead = (s.RXHead + 1) % RXBufferSize
	s.RXCount--
	return c, true
}

func (u *UART) clearRX() {
	u.s.RXHead, u.s.RXCount = 0, 0
}
