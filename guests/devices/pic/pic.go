// Package pic models the PC's pair of Intel 8259A programmable interrupt
// controllers: the master at ports 0x20/0x21 with the slave cascaded on its
// IR2, the slave at 0xA0/0xA1, and the edge/level control registers (ELCR)
// of PIIX/ICH chipsets at 0x4D0/0x4D1.
//
// Behaviour follows the 8259A datasheet (Intel, order number 231468):
// "Initialization Command Words" (ICW1-ICW4), "Operation Command Words"
// (OCW1-OCW3), "Fully Nested Mode", "End of Interrupt", "Automatic
// Rotation", "Specific Rotation", "Special Mask Mode", "Poll Command",
// "Reading the 8259A Status" and "Edge and Level Triggered Modes". The
// ELCR follows the Intel ICH9 datasheet (section 13.4.2.2/13.4.2.3
// "ELCR1/ELCR2"): IRQ0, 1, 2, 8 and 13 are always edge triggered, and the
// ELCR replaces ICW1's LTIM bit, which is ignored.
//
// The interrupt injection logic asks PendingVector whether the master's INT
// output is up and which vector the next INTA cycle would give, and calls
// Acknowledge to perform that INTA cycle. When nothing is left to deliver
// at INTA time the 8259A answers with IR7 of the chip concerned (the
// "spurious interrupt" of the datasheet) and sets no ISR bit.
//
// Concurrency: every method takes the device lock; Config.Notify is called
// with the lock held and must not call back into the PIC.
package pic

import (
	"sync"
)

// I/O ports (IBM PC/AT Technical Reference; ICH9 datasheet 13.4 for ELCR).
const (
	MasterCommand uint16 = 0x20
	MasterData    uint16 = 0x21
	SlaveCommand  uint16 = 0xA0
	SlaveData     uint16 = 0xA1
	ELCRMaster    uint16 = 0x4D0
	ELCRSlave     uint16 = 0x4D1
)

// CascadeIRQ is the master input the slave's INT output drives on a PC.
const CascadeIRQ = 2

// elcrWritable: bits of ELCR1/ELCR2 that are not hard-wired to edge
// (ICH9 datasheet 13.4.2.2, 13.4.2.3).
var elcrWritable = [2]uint8{0xF8, 0xDE}

// Command bits (8259A datasheet, ICW1/OCW2/OCW3 formats).
const (
	icw1Select  = 0x10 // D4=1: ICW1
	icw1IC4     = 0x01 // ICW4 needed
	icw1Single  = 0x02 // SNGL: no cascade, no ICW3
	ocw3Select  = 0x08 // D4:D3=01: OCW3 (00 is OCW2)
	ocw3RIS     = 0x01 // read ISR (with RR)
	ocw3RR      = 0x02 // read register command
	ocw3Poll    = 0x04
	ocw3SMM     = 0x20 // special mask mode (with ESMM)
	ocw3ESMM    = 0x40
	icw4AEOI    = 0x02
	icw4SFNM    = 0x10
	ocw2EOI     = 0x20
	ocw2SL      = 0x40
	ocw2R       = 0x80
	pollPending = 0x80 // poll word bit 7: an interrupt was pending
)

// Initialization sequence position (datasheet "Initialization Command
// Words", flowchart).
const (
	initDone uint8 = iota
	initICW2
	initICW3
	initICW4
)

// ChipState is one 8259A.
type ChipState struct {
	IRR, ISR, IMR uint8
	// Lines are the IR input levels, for edge detection.
	Lines uint8
	ELCR  uint8
	// VectorBase is ICW2 with bits 2:0 clear (8086 mode).
	VectorBase uint8
	ICW3       uint8
	InitStep   uint8
	NeedICW4   bool
	Single     bool
	AutoEOI    bool
	// RotateOnAutoEOI: OCW2 "rotate in automatic EOI mode".
	RotateOnAutoEOI bool
	// SpecialFullyNested: ICW4 SFNM (master only matters).
	SpecialFullyNested bool
	SpecialMask        bool
	ReadISR            bool
	Poll               bool
	// HighestPriority is the IR with priority 0; rotation moves it.
	HighestPriority uint8
}

// State is the pair plus the master's INT output.
type State struct {
	Master, Slave ChipState
	Output        bool
}

// Config wires the PIC pair into a VM.
type Config struct {
	// Notify, if set, is called when the master's INT output changes, so
	// the VM can wake a halted vCPU or request an interrupt window.
	Notify func(asserted bool)
}

// PIC is the cascaded master/slave pair.
type PIC struct {
	mu  sync.Mutex
	cfg Config
	s   State
}

// New returns the pair in the state firmware hands over on a PC: vectors
// 0x08 and 0x70, all inputs edge triggered and unmasked, which is what
// "uninitialised" means to an OS (it always reprograms them).
func New(cfg Config) *PIC {
	p := &PIC{cfg: cfg}
	p.s = powerOnState()
	return p
}

func powerOnState() State {
	return State{
		Master: ChipState{VectorBase: 0x08},
		Slave:  ChipState{VectorBase: 0x70},
	}
}

// Reset returns the pair to its power-on state (a guest reboot). Input
// levels are kept: the devices driving them were not reset by this call.
func (p *PIC) Reset() {
	p.mu.Lock()
	lines := [2]uint8{p.s.Master.Lines, p.s.Slave.Lines}
	out := p.s.Output
	p.s = powerOnState()
	p.s.Master.Lines, p.s.Slave.Lines = lines[0], lines[1]
	p.s.Output = out
	p.update()
	p.mu.Unlock()
}

// SetIRQ sets ISA interrupt line irq (0-15) to level; it implements
// bus.IRQ for a router that hands the PIC its ISA lines. Line 2 is the
// cascade input, driven by the slave only, and lines above 15 do not exist
// here: both are ignored.
func (p *PIC) SetIRQ(irq uint32, level bool) {
	if irq >= 16 || irq == CascadeIRQ {
		return
	}
	p.mu.Lock()
	if irq < 8 {
		p.s.Master.setLine(uint8(irq), level)
	} else {
		p.s.Slave.setLine(uint8(irq-8), level)
	}
	p.update()
	p.mu.Unlock()
}

// PendingVector reports whether the master's INT output is asserted and the
// vector the next INTA cycle would return, without changing any state.
func (p *PIC) PendingVector() (vector uint8, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ir, ok := p.s.Master.pending(true)
	if !ok {
		return 0, false
	}
	if ir == CascadeIRQ {
		if sir, ok := p.s.Slave.pending(false); ok {
			return p.s.Slave.VectorBase + sir, true
		}
		return p.s.Slave.VectorBase + 7, true
	}
	return p.s.Master.VectorBase + ir, true
}

// Acknowledge performs the INTA cycle and returns the vector delivered. With
// nothing pending it returns the master's IR7 vector (spurious), and when
// the cascade input has gone away on the slave, the slave's IR7 vector.
func (p *PIC) Acknowledge() uint8 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, sl := &p.s.Master, &p.s.Slave
	ir, ok := m.pending(true)
	if !ok {
		return m.VectorBase + 7
	}
	var vector uint8
	if ir == CascadeIRQ {
		if sir, ok := sl.pending(false); ok {
			sl.acknowledge(sir)
			vector = sl.VectorBase + sir
		} else {
			vector = sl.VectorBase + 7
		}
	} else {
		vector = m.VectorBase + ir
	}
	m.acknowledge(ir)
	p.update()
	return vector
}

// State returns a copy of the device state.
func (p *PIC) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

// SetState restores a snapshot, bringing out-of-range fields back into
// range, and drives the output to match it.
func (p *PIC) SetState(s State) {
	p.mu.Lock()
	out := p.s.Output
	for i, c := range []*ChipState{&s.Master, &s.Slave} {
		c.ELCR &= elcrWritable[i]
		c.VectorBase &^= 7
		c.HighestPriority &= 7
		if c.InitStep > initICW4 {
			c.InitStep = initDone
		}
	}
	p.s = s
	p.s.Output = out
	p.update()
	p.mu.Unlock()
}

// ReadPort implements bus.PortDevice. Wider accesses read consecutive
// ports, as the ISA bus splits them; ports the PIC does not decode read
// 0xFF.
func (p *PIC) ReadPort(port uint16, size uint8) uint32 {
	p.mu.Lock()
	var v uint32
	for i := uint8(0); i < size && i < 4; i++ {
		v |= uint32(p.readByte(port+uint16(i))) << (8 * i)
	}
	p.update()
	p.mu.Unlock()
	return v
}

// WritePort implements bus.PortDevice.
func (p *PIC) WritePort(port uint16, size uint8, v uint32) {
	p.mu.Lock()
	for i := uint8(0); i < size && i < 4; i++ {
		p.writeByte(port+uint16(i), uint8(v>>(8*i)))
		p.update()
	}
	p.mu.Unlock()
}

func (p *PIC) chip(port uint16) (*ChipState, bool) {
	switch port {
	case MasterCommand, MasterData:
		return &p.s.Master, true
	case SlaveCommand, SlaveData:
		return &p.s.Slave, true
	}
	return nil, false
}

func (p *PIC) readByte(port uint16) uint8 {
	switch port {
	case ELCRMaster:
		return p.s.Master.ELCR
	case ELCRSlave:
		return p.s.Slave.ELCR
	}
	c, ok := p.chip(port)
	if !ok {
		return 0xFF
	}
	if c.Poll {
		// Poll command: this read is the chip's INTA (datasheet "Poll
		// Command"); either port answers.
		c.Poll = false
		if ir, ok := c.pending(c == &p.s.Master); ok {
			c.acknowledge(ir)
			return pollPending | ir
		}
		return 0
	}
	if port&1 != 0 {
		return c.IMR
	}
	if c.ReadISR {
		return c.ISR
	}
	return c.IRR
}

func (p *PIC) writeByte(port uint16, v uint8) {
	switch port {
	case ELCRMaster:
		p.s.Master.setELCR(v & elcrWritable[0])
		return
	case ELCRSlave:
		p.s.Slave.setELCR(v & elcrWritable[1])
		return
	}
	c, ok := p.chip(port)
	if !ok {
		return
	}
	if port&1 == 0 {
		c.writeCommand(v)
	} else {
		c.writeData(v)
	}
}

// update propagates the slave's INT output to the master's cascade input
// and the master's INT output to Notify.
func (p *PIC) update() {
	_, slaveOut := p.s.Slave.pending(false)
	p.s.Master.setLine(CascadeIRQ, slaveOut)
	_, out := p.s.Master.pending(true)
	if out != p.s.Output {
		p.s.Output = out
		if p.cfg.Notify != nil {
			p.cfg.Notify(out)
		}
	}
}

func (c *ChipState) writeCommand(v uint8) {
	switch {
	case v&icw1Select != 0:
		c.initialize(v)
	case v&ocw3Select != 0:
		if v&ocw3RR != 0 {
			c.ReadISR = v&ocw3RIS != 0
		}
		c.Poll = v&ocw3Poll != 0
		if v&ocw3ESMM != 0 {
			c.SpecialMask = v&ocw3SMM != 0
		}
	default:
		c.writeOCW2(v)
	}
}

// initialize applies ICW1 (datasheet "Initialization Command Words": the
// edge sense circuit is reset, IMR cleared, IR7 given the lowest priority,
// special mask mode cleared, status read set to IRR, and ICW4 functions
// cleared when IC4 is 0).
func (c *ChipState) initialize(v uint8) {
	// With the edge sense reset, an input already high needs a new
	// low-to-high transition; level inputs keep requesting.
	c.IRR = c.Lines & c.ELCR
	c.ISR = 0
	c.IMR = 0
	c.HighestPriority = 0
	c.SpecialMask = false
	c.ReadISR = false
	c.Poll = false
	c.AutoEOI = false
	c.RotateOnAutoEOI = false
	c.SpecialFullyNested = false
	c.NeedICW4 = v&icw1IC4 != 0
	c.Single = v&icw1Single != 0
	c.InitStep = initICW2
}

func (c *ChipState) writeData(v uint8) {
	switch c.InitStep {
	case initICW2:
		c.VectorBase = v &^ 7
		switch {
		case !c.Single:
			c.InitStep = initICW3
		case c.NeedICW4:
			c.InitStep = initICW4
		default:
			c.InitStep = initDone
		}
	case initICW3:
		c.ICW3 = v
		if c.NeedICW4 {
			c.InitStep = initICW4
		} else {
			c.InitStep = initDone
		}
	case initICW4:
		c.AutoEOI = v&icw4AEOI != 0
		c.SpecialFullyNested = v&icw4SFNM != 0
		c.InitStep = initDone
	default:
		c.IMR = v // OCW1
	}
}

// writeOCW2 applies the EOI and rotation commands (R, SL, EOI in bits 7:5).
func (c *ChipState) writeOCW2(v uint8) {
	level := v & 7
	switch v & (ocw2R | ocw2SL | ocw2EOI) {
	case ocw2EOI: // non-specific EOI
		if ir, ok := c.highestInService(); ok {
			c.ISR &^= 1 << ir
		}
	case ocw2SL | ocw2EOI: // specific EOI
		c.ISR &^= 1 << level
	case ocw2R | ocw2EOI: // rotate on non-specific EOI
		if ir, ok := c.highestInService(); ok {
			c.ISR &^= 1 << ir
			c.HighestPriority = (ir + 1) & 7
		}
	case ocw2R | ocw2SL | ocw2EOI: // rotate on specific EOI
		c.ISR &^= 1 << level
		c.HighestPriority = (level + 1) & 7
	case ocw2R: // set rotate in automatic EOI mode
		c.RotateOnAutoEOI = true
	case 0: // clear rotate in automatic EOI mode
		c.RotateOnAutoEOI = false
	case ocw2R | ocw2SL: // set priority: level becomes the lowest
		c.HighestPriority = (level + 1) & 7
	case ocw2SL: // no operation
	}
}

func (c *ChipState) setELCR(v uint8) {
	// Inputs that turn level triggered request for as long as they are
	// high; inputs that turn edge triggered keep what they latched.
	c.IRR = c.IRR&^v | c.Lines&v
	c.ELCR = v
}

// setLine applies a new input level: a level-triggered input requests
// while high, an edge-triggered one latches its rising edge in IRR.
func (c *ChipState) setLine(ir uint8, level bool) {
	bit := uint8(1) << ir
	if c.ELCR&bit != 0 {
		if level {
			c.IRR |= bit
		} else {
			c.IRR &^= bit
		}
	} else if level && c.Lines&bit == 0 {
		c.IRR |= bit
	}
	if level {
		c.Lines |= bit
	} else {
		c.Lines &^= bit
	}
}

// highest returns the IR of the highest priority bit set in mask, with
// HighestPriority rotating the order (datasheet "Automatic Rotation").
func (c *ChipState) highest(mask uint8) (ir uint8, rank uint8) {
	for rank = 0; rank < 8; rank++ {
		ir = (c.HighestPriority + rank) & 7
		if mask&(1<<ir) != 0 {
			return ir, rank
		}
	}
	return 0, 8
}

func (c *ChipState) highestInService() (uint8, bool) {
	ir, rank := c.highest(c.ISR)
	return ir, rank < 8
}

// pending returns the IR whose request the chip would signal on INT: the
// highest unmasked request with a higher priority than anything in
// service (fully nested mode). In special mask mode masked in-service
// levels do not block; in special fully nested mode the master lets the
// slave nest a higher-priority request while the cascade is in service.
func (c *ChipState) pending(master bool) (uint8, bool) {
	ir, rank := c.highest(c.IRR &^ c.IMR)
	if rank == 8 {
		return 0, false
	}
	inService := c.ISR
	if c.SpecialMask {
		inService &^= c.IMR
	}
	if master && c.SpecialFullyNested {
		inService &^= 1 << CascadeIRQ
	}
	if _, busy := c.highest(inService); rank < busy {
		return ir, true
	}
	return 0, false
}

// acknowledge is the chip's part of an INTA cycle for ir.
func (c *ChipState) acknowledge(ir uint8) {
	bit := uint8(1) << ir
	if c.AutoEOI {
		if c.RotateOnAutoEOI {
			c.HighestPriority = (ir + 1) & 7
		}
	} else {
		c.ISR |= bit
	}
	if c.ELCR&bit == 0 {
		c.IRR &^= bit
	}
}
