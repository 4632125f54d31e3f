// Package pit drives the PC's Intel 8254 programmable interval timer (ports
// 0x40-0x43) as a calibration reference.
//
// Channel 2 is the one whose gate and output software can reach without an
// interrupt: its GATE input is bit 0 and its OUT line reads back as bit 5 of
// the PC's system control port B at 0x61 (IBM PC/AT Technical Reference; the
// same bits in Intel's PCH datasheets, "NMI Status and Control Register").
// Programmed in mode 0 ("interrupt on terminal count") the output stays low
// while the count runs down and goes high when it reaches zero, so a countdown
// of N ticks measures N/1193182 s with no interrupt at all, which is what
// TSC calibration needs before any interrupt controller is set up.
//
// Command words and modes follow the 8254 datasheet (Intel, order number
// 231164), "Control Word Format" and "Mode 0".
package pit

import (
	"fmt"

	"tamavisor/drivers/hw"
)

// FrequencyHz is the 8254 input clock on a PC: 14.31818 MHz / 12
// (IBM PC/AT Technical Reference; the PCH datasheets give 1.193 MHz).
const FrequencyHz = 1193182

// Ports (8254 datasheet, "Read/Write Logic": A1:A0 = counter or control
// word; wired at 0x40 on a PC).
const (
	Channel0Port uint16 = 0x40
	Channel1Port uint16 = 0x41
	Channel2Port uint16 = 0x42
	CommandPort  uint16 = 0x43
)

// PortB is the PC's system control port B (NMI status and control).
const PortB uint16 = 0x61

// Port B bits.
const (
	PortBGate2      uint8 = 0x01 // timer 2 gate (read/write)
	PortBSpeakerOn  uint8 = 0x02 // speaker data enable: kept off
	PortBOut2       uint8 = 0x20 // timer 2 OUT (read only)
	portBWritesMask uint8 = 0x0F // bits 7:4 are status; write them as 0
)

// Control word fields (8254 datasheet, "Control Word Format").
const (
	cwSelectShift = 6    // SC1:SC0: counter 0-2; 3 is read-back
	CWLatch       = 0x00 // RW1:RW0 = 00: counter latch command
	CWLowHigh     = 0x30 // RW1:RW0 = 11: LSB then MSB
	CWMode0       = 0x00 // M2:M0 = 000: interrupt on terminal count
	CWBinary      = 0x00 // BCD = 0: 16-bit binary counter
)

// PIT is the 8254 and port B.
type PIT struct {
	io hw.PortIO
}

// New returns a driver for the PC's 8254.
func New(io hw.PortIO) *PIT { return &PIT{io: io} }

// StartCountdown starts channel 2 counting down ticks in mode 0 with the
// speaker disconnected. OUT2 (see Expired) reads low until the count
// expires, then high. A count of 0 means 65536 to the 8254.
//
// Counting begins on the first input clock after the MSB is written; the
// gate is raised first so that writing the count is what starts it.
// Callers that use this as a presence check read Expired right after a
// long countdown: a missing or stuck PIT reads high at once.
func (p *PIT) StartCountdown(ticks uint16) {
	b := p.io.In8(PortB)
	p.io.Out8(PortB, (b&portBWritesMask&^PortBSpeakerOn)|PortBGate2)
	p.io.Out8(CommandPort, 2<<cwSelectShift|CWLowHigh|CWMode0|CWBinary)
	p.io.Out8(Channel2Port, uint8(ticks))
	p.io.Out8(Channel2Port, uint8(ticks>>8))
}

// Expired reports whether channel 2's output has gone high, i.e. a countdown
// started by StartCountdown has reached zero.
func (p *PIT) Expired() bool {
	return p.io.In8(PortB)&PortBOut2 != 0
}

// StopCountdown lowers channel 2's gate, which stops the count in mode 0.
func (p *PIT) StopCountdown() {
	b := p.io.In8(PortB)
	p.io.Out8(PortB, b&portBWritesMask&^(PortBGate2|PortBSpeakerOn))
}

// ReadCounter latches and reads the current count of channel 0, 1 or 2. The
// channel must be programmed for LSB-then-MSB access (what firmware and
// StartCountdown use); the latch makes the two byte reads consistent.
func (p *PIT) ReadCounter(channel uint8) (uint16, error) {
	if channel > 2 {
		return 0, fmt.Errorf("pit: channel %d out of range 0-2", channel)
	}
	p.io.Out8(CommandPort, channel<<cwSelectShift|CWLatch)
	port := Channel0Port + uint16(channel)
	lo := p.io.In8(port)
	hi := p.io.In8(port)
	return uint16(lo) | uint16(hi)<<8, nil
}
