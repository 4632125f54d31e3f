// Package i8042 models the PC's 8042 keyboard controller with nothing
// plugged into it, plus system control port A (0x92): enough for a guest
// to probe the controller and give up on the keyboard and mouse cleanly,
// and to reset the machine the two PC ways.
//
// Ports, commands and bits follow the IBM PC/AT Technical Reference
// ("Keyboard Controller": status register, command byte, controller
// commands 0x20-0xFF) and, for port 0x92, the Intel ICH9 datasheet
// 13.7.2 ("PORT92—Init Register": bit 0 INIT_NOW, bit 1 ALT_A20_GATE).
//
// What Linux's i8042 driver sees: self-test (0xAA) answers 0x55, interface
// tests (0xAB, 0xA9) answer 0 (no fault), the command byte reads and writes
// through 0x20/0x60, the AUX loopback (0xD3) works, and every byte sent to
// a device (keyboard, or mouse through 0xD4) is answered at once by the
// controller with the 0xFE it reports when a device does not respond, with
// the timeout status bit. atkbd and psmouse then fail their first command
// in microseconds and the driver moves on.
//
// Reset: controller command 0xFE (and any 0xF0-0xFF pulse command that
// pulses output bit 0), an output port write (0xD1) with bit 0 clear, and a
// 0-to-1 write of port 0x92 bit 0 all call Config.Reset. A20 is tracked
// but not enforced: the VM has no A20 gate.
//
// Concurrency: every method takes the device lock; the interrupt sink is
// called with it held and must not call back into this device. Reset is
// called after the lock is released.
package i8042

import (
	"sync"

	"tamavisor/guests/bus"
)

// Ports (IBM PC/AT Technical Reference; ICH9 datasheet 13.7.2 for 0x92).
const (
	DataPort    uint16 = 0x60
	CommandPort uint16 = 0x64 // status on read, command on write
	PortA       uint16 = 0x92
)

// ISA interrupt lines of the keyboard and auxiliary (mouse) ports.
const (
	KeyboardIRQ uint32 = 1
	AuxIRQ      uint32 = 12
)

// Status register bits.
const (
	StatusOutputFull uint8 = 0x01
	StatusInputFull  uint8 = 0x02 // never set: input is taken at once
	StatusSystem     uint8 = 0x04
	StatusCommand    uint8 = 0x08 // last write was to the command port
	StatusUnlocked   uint8 = 0x10 // keyboard not inhibited
	StatusAuxData    uint8 = 0x20 // output buffer holds auxiliary data
	StatusTimeout    uint8 = 0x40
)

// Command byte bits.
const (
	CmdByteKbdInt    uint8 = 0x01
	CmdByteAuxInt    uint8 = 0x02
	CmdByteSystem    uint8 = 0x04
	CmdByteKbdOff    uint8 = 0x10
	CmdByteAuxOff    uint8 = 0x20
	CmdByteTranslate uint8 = 0x40
)

// Controller commands.
const (
	CmdReadCommandByte  uint8 = 0x20
	CmdWriteCommandByte uint8 = 0x60
	CmdAuxDisable       uint8 = 0xA7
	CmdAuxEnable        uint8 = 0xA8
	CmdAuxTest          uint8 = 0xA9
	CmdSelfTest         uint8 = 0xAA
	CmdKbdTest          uint8 = 0xAB
	CmdKbdDisable       uint8 = 0xAD
	CmdKbdEnable        uint8 = 0xAE
	CmdReadInput        uint8 = 0xC0
	CmdReadOutput       uint8 = 0xD0
	CmdWriteOutput      uint8 = 0xD1
	CmdWriteKbdBuffer   uint8 = 0xD2
	CmdWriteAuxBuffer   uint8 = 0xD3
	CmdWriteAux         uint8 = 0xD4
	CmdDisableA20       uint8 = 0xDD
	CmdEnableA20        uint8 = 0xDF
	CmdReadTestInputs   uint8 = 0xE0
	CmdPulseOutput      uint8 = 0xF0 // 0xF0-0xFF: pulse output bits 3:0 where clear
	CmdPulseReset       uint8 = 0xFE
)

// Answers.
const (
	SelfTestPassed  uint8 = 0x55
	InterfaceOK     uint8 = 0x00
	NoDeviceAnswers uint8 = 0xFE
)

// Output port bits (command 0xD0/0xD1).
const (
	OutputResetHigh uint8 = 0x01 // 0 holds the CPU in reset
	OutputA20       uint8 = 0x02
)

// Port 0x92 bits (ICH9 datasheet 13.7.2).
const (
	PortAReset uint8 = 0x01
	PortAA20   uint8 = 0x02
)

// Config wires the controller into a VM.
type Config struct {
	// Reset is called when the guest resets the machine.
	Reset func()
	// Lines receives the keyboard and aux interrupts as lines KbdIRQ
	// and AuxIRQ (the constants KeyboardIRQ and AuxIRQ on a PC); nil
	// leaves them unconnected.
	Lines  bus.IRQ
	KbdIRQ uint32
	AuxIRQ uint32
}

// State is everything a snapshot needs.
type State struct {
	Status      uint8
	CommandByte uint8
	RAM         [32]byte // controller RAM; byte 0 is the command byte
	Output      uint8
	// Pending is the command waiting for its data byte (0 = none).
	Pending     uint8
	OutputPort  uint8
	PortA       uint8
	KbdIRQLevel bool
	AuxIRQLevel bool
}

// Controller is the 8042 and port 0x92.
type Controller struct {
	mu  sync.Mutex
	cfg Config
	s   State
}

// New returns the controller as firmware leaves it after POST: self-test
// passed (system flag), keyboard interrupt and translation on, A20 on.
func New(cfg Config) *Controller {
	c := &Controller{cfg: cfg}
	c.s = powerOnState()
	return c
}

func powerOnState() State {
	s := State{
		Status:      StatusSystem | StatusUnlocked,
		CommandByte: CmdByteKbdInt | CmdByteSystem | CmdByteTranslate,
		OutputPort:  OutputResetHigh | OutputA20,
		PortA:       PortAA20,
	}
	return s
}

// Reset returns the controller to its power-on state (a guest reboot).
func (c *Controller) Reset() {
	c.mu.Lock()
	kbd, aux := c.s.KbdIRQLevel, c.s.AuxIRQLevel
	c.s = powerOnState()
	c.s.KbdIRQLevel, c.s.AuxIRQLevel = kbd, aux
	c.updateIRQ()
	c.mu.Unlock()
}

// State returns a copy of the device state.
func (c *Controller) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// SetState restores a snapshot and drives the interrupt lines to match.
func (c *Controller) SetState(s State) {
	c.mu.Lock()
	s.KbdIRQLevel, s.AuxIRQLevel = c.s.KbdIRQLevel, c.s.AuxIRQLevel
	s.Status &^= StatusInputFull
	s.PortA &= PortAReset | PortAA20
	c.s = s
	c.updateIRQ()
	c.mu.Unlock()
}

// ReadPort implements bus.PortDevice. The controller's ports are 8 bits
// wide; a wider access returns the register in the low byte and 0xFF
// above it, as the neighbouring ports are not this device's.
func (c *Controller) ReadPort(port uint16, size uint8) uint32 {
	if size == 0 {
		return 0
	}
	c.mu.Lock()
	var v uint8
	switch port {
	case DataPort:
		v = c.s.Output
		if c.s.Status&StatusOutputFull != 0 {
			c.s.Status &^= StatusOutputFull | StatusAuxData | StatusTimeout
		}
	case CommandPort:
		v = c.s.Status
	case PortA:
		v = c.s.PortA
	default:
		v = 0xFF
	}
	c.updateIRQ()
	c.mu.Unlock()
	return (uint32(v) | 0xFFFFFF00) & (^uint32(0) >> (32 - 8*uint32(min(size, 4))))
}

// WritePort implements bus.PortDevice; only the low byte of a wider write
// reaches the register.
func (c *Controller) WritePort(port uint16, size uint8, v uint32) {
	if size == 0 {
		return
	}
	c.mu.Lock()
	reset := false
	b := uint8(v)
	switch port {
	case DataPort:
		c.s.Status &^= StatusCommand
		reset = c.writeData(b)
	case CommandPort:
		c.s.Status |= StatusCommand
		reset = c.writeCommand(b)
	case PortA:
		// INIT_NOW resets on its 0-to-1 transition.
		reset = c.s.PortA&PortAReset == 0 && b&PortAReset != 0
		c.s.PortA = b & (PortAReset | PortAA20)
	}
	c.updateIRQ()
	c.mu.Unlock()
	if reset && c.cfg.Reset != nil {
		c.cfg.Reset()
	}
}

// writeCommand runs a controller command and reports a reset request.
func (c *Controller) writeCommand(cmd uint8) (reset bool) {
	s := &c.s
	s.Pending = 0
	switch {
	case cmd >= CmdReadCommandByte && cmd < CmdReadCommandByte+32:
		if cmd == CmdReadCommandByte {
			c.answer(s.CommandByte, false, false)
		} else {
			c.answer(s.RAM[cmd&31], false, false)
		}
	case cmd >= CmdWriteCommandByte && cmd < CmdWriteCommandByte+32,
		cmd == CmdWriteOutput, cmd == CmdWriteKbdBuffer, cmd == CmdWriteAuxBuffer, cmd == CmdWriteAux:
		s.Pending = cmd
	case cmd == CmdAuxDisable:
		s.CommandByte |= CmdByteAuxOff
	case cmd == CmdAuxEnable:
		s.CommandByte &^= CmdByteAuxOff
	case cmd == CmdAuxTest, cmd == CmdKbdTest:
		c.answer(InterfaceOK, false, false)
	case cmd == CmdSelfTest:
		s.Status |= StatusSystem
		c.answer(SelfTestPassed, false, false)
	case cmd == CmdKbdDisable:
		s.CommandByte |= CmdByteKbdOff
	case cmd == CmdKbdEnable:
		s.CommandByte &^= CmdByteKbdOff
	case cmd == CmdReadInput:
		// Input port: bit 7 keyboard not inhibited (no key lock).
		c.answer(0x80, false, false)
	case cmd == CmdReadOutput:
		v := s.OutputPort
		if s.Status&StatusOutputFull != 0 {
			if s.Status&StatusAuxData != 0 {
				v |= 0x20
			} else {
				v |= 0x10
			}
		}
		c.answer(v, false, false)
	case cmd == CmdDisableA20:
		s.OutputPort &^= OutputA20
	case cmd == CmdEnableA20:
		s.OutputPort |= OutputA20
	case cmd == CmdReadTestInputs:
		c.answer(0, false, false)
	case cmd >= CmdPulseOutput:
		// Bits 3:0 clear = pulse that output low; bit 0 is reset.
		return cmd&OutputResetHigh == 0
	}
	return false
}

// writeData takes a byte on port 0x60: the data of a pending command, or
// else a byte for the keyboard.
func (c *Controller) writeData(b uint8) (reset bool) {
	s := &c.s
	cmd := s.Pending
	s.Pending = 0
	switch {
	case cmd == CmdWriteCommandByte:
		s.CommandByte = b
		if b&CmdByteSystem != 0 {
			s.Status |= StatusSystem
		} else {
			s.Status &^= StatusSystem
		}
	case cmd > CmdWriteCommandByte && cmd < CmdWriteCommandByte+32:
		s.RAM[cmd&31] = b
	case cmd == CmdWriteOutput:
		s.OutputPort = b | OutputResetHigh
		return b&OutputResetHigh == 0
	case cmd == CmdWriteKbdBuffer:
		c.answer(b, false, false)
	case cmd == CmdWriteAuxBuffer:
		c.answer(b, true, false)
	case cmd == CmdWriteAux:
		c.answer(NoDeviceAnswers, true, true)
	default:
		c.answer(NoDeviceAnswers, false, true)
	}
	return false
}

// answer puts a byte in the output buffer, from the keyboard side or the
// aux side, with the timeout bit when it stands for a device that did not
// respond.
func (c *Controller) answer(v uint8, aux, timeout bool) {
	s := &c.s
	s.Output = v
	s.Status |= StatusOutputFull
	s.Status &^= StatusAuxData | StatusTimeout
	if aux {
		s.Status |= StatusAuxData
	}
	if timeout {
		s.Status |= StatusTimeout
	}
}

// updateIRQ drives IRQ1 while keyboard-side data waits and IRQ12 while
// aux-side data waits, each if the command byte enables it.
func (c *Controller) updateIRQ() {
	s := &c.s
	full := s.Status&StatusOutputFull != 0
	aux := s.Status&StatusAuxData != 0
	kbd := full && !aux && s.CommandByte&CmdByteKbdInt != 0
	mouse := full && aux && s.CommandByte&CmdByteAuxInt != 0
	if kbd != s.KbdIRQLevel {
		s.KbdIRQLevel = kbd
		if c.cfg.Lines != nil {
			c.cfg.Lines.SetIRQ(c.cfg.KbdIRQ, kbd)
		}
	}
	if mouse != s.AuxIRQLevel {
		s.AuxIRQLevel = mouse
		if c.cfg.Lines != nil {
			c.cfg.Lines.SetIRQ(c.cfg.AuxIRQ, mouse)
		}
	}
}
