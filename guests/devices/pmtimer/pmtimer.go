// Package pmtimer models the ACPI fixed hardware a guest needs for time
// and power-off: the power management timer (PM_TMR) and the PM1a event
// and control register blocks (PM1a_EVT_BLK, PM1a_CNT_BLK).
//
// Register layouts follow ACPI 6.5 section 4.8.3 "Fixed Hardware
// Registers": 4.8.3.1 "PM1 Event Grouping" (PM1 status and enable
// registers, each half of the event block), 4.8.3.2 "PM1 Control Grouping"
// (SCI_EN, BM_RLD, GBL_RLS, SLP_TYPx, SLP_EN) and 4.8.3.3 "Power
// Management Timer" (a 24-bit, or 32-bit with FADT TMR_VAL_EXT, counter
// running at 3.579545 MHz). The blocks sit at ports the VM chooses and
// states in its FADT; QEMU's q35 and PIIX4 place them at PMBASE+0
// (event), +4 (control) and +8 (timer), which Layout gives.
//
// The machine is always in ACPI mode: SCI_EN reads 1, so the FADT's
// SMI_CMD can be 0 and the OS never tries to switch modes. Writing SLP_EN
// with the SLP_TYP value the VM's DSDT gives \_S5 (ACPI 6.5 section 7.4.2
// "\_Sx (System States)") calls Config.PowerOff, once; other sleep types
// go to Config.Sleep, or are ignored. PowerButton raises PWRBTN_STS so the
// host can ask the guest for an orderly shutdown through the SCI.
//
// TMR_STS is set when the counter's top bit changes (4.8.3.3), computed
// when the guest reads the status or the timer; Linux leaves TMR_EN off,
// so no deadline is offered for it.
//
// Concurrency: every method takes the device lock; the interrupt sink is
// called with it held and must not call back into this device. PowerOff
// and Sleep are called after the lock is released.
package pmtimer

import (
	"errors"
	"math/bits"
	"sync"

	"tamavisor/guests/bus"
)

// FrequencyHz is the PM timer's rate (ACPI 6.5, 4.8.3.3).
const FrequencyHz = 3579545

// Block lengths in ports (FADT PM1_EVT_LEN, PM1_CNT_LEN, PM_TMR_LEN).
const (
	EventBlockLen   = 4
	ControlBlockLen = 2
	TimerBlockLen   = 4
)

// PM1 status bits (ACPI 6.5, 4.8.3.1.1, PM1 Status Registers table);
// write 1 to clear.
const (
	StatusTimer       uint16 = 1 << 0
	StatusBusMaster   uint16 = 1 << 4
	StatusGlobal      uint16 = 1 << 5
	StatusPowerButton uint16 = 1 << 8
	StatusSleepButton uint16 = 1 << 9
	StatusRTC         uint16 = 1 << 10
	StatusPCIExpWake  uint16 = 1 << 14
	StatusWake        uint16 = 1 << 15
	statusWritable           = StatusTimer | StatusBusMaster | StatusGlobal | StatusPowerButton | StatusSleepButton | StatusRTC | StatusPCIExpWake | StatusWake
	sciSources               = StatusTimer | StatusGlobal | StatusPowerButton | StatusSleepButton | StatusRTC
	enableWritable           = EnableTimer | EnableGlobal | EnablePowerButton | EnableSleepButton | EnableRTC | EnablePCIExpWakeDisable
	EnableTimer       uint16 = 1 << 0
	EnableGlobal      uint16 = 1 << 5
	EnablePowerButton uint16 = 1 << 8
	EnableSleepButton uint16 = 1 << 9
	EnableRTC         uint16 = 1 << 10
	// EnablePCIExpWakeDisable is PCIEXP_WAKE_DIS (a disable bit).
	EnablePCIExpWakeDisable uint16 = 1 << 14
)

// PM1 control bits (ACPI 6.5, 4.8.3.2.1, PM1 Control Registers table).
const (
	ControlSCIEnable   uint16 = 1 << 0
	ControlBMReload    uint16 = 1 << 1
	ControlGlobalRel   uint16 = 1 << 2 // write-only
	ControlSleepType   uint16 = 7 << 10
	controlSleepShift         = 10
	ControlSleepEnable uint16 = 1 << 13 // write-only
	controlStored             = ControlBMReload | ControlSleepType
)

// Config wires the ACPI PM registers into a VM.
type Config struct {
	Clock bus.Clock
	// EventBlock, ControlBlock and TimerPort are the first ports of
	// PM1a_EVT_BLK, PM1a_CNT_BLK and PM_TMR_BLK, as the FADT gives them.
	EventBlock   uint16
	ControlBlock uint16
	TimerPort    uint16
	// Timer32 makes the counter 32 bits wide (FADT flag TMR_VAL_EXT).
	Timer32 bool
	// S5SleepType is the SLP_TYPa value of \_S5 in the DSDT.
	S5SleepType uint8
	// PowerOff is called once when the guest enters S5.
	PowerOff func()
	// Sleep, if set, is called for SLP_EN with any other sleep type.
	Sleep func(sleepType uint8)
	// Lines receives the SCI as interrupt line SCI (the FADT's SCI_INT,
	// 9 on a PC); nil leaves it unconnected.
	Lines bus.IRQ
	SCI   uint32
}

// Layout fills the block addresses the way QEMU's q35 and PIIX4 machines
// place them: event block at base, control at base+4, timer at base+8.
func (c *Config) Layout(base uint16) {
	c.EventBlock, c.ControlBlock, c.TimerPort = base, base+4, base+8
}

// State is everything a snapshot needs.
type State struct {
	Status, Enable, Control uint16
	// TimerEpoch is the counter's top-bit period number when TMR_STS was
	// last computed.
	TimerEpoch uint64
	PoweredOff bool
	SCILevel   bool
}

// PM is the PM1a register blocks and the PM timer.
type PM struct {
	mu  sync.Mutex
	cfg Config
	s   State
}

// New returns the registers after an S5 wake: ACPI mode on, everything
// else clear.
func New(cfg Config) (*PM, error) {
	if cfg.Clock == nil {
		return nil, errors.New("pmtimer: no clock")
	}
	if cfg.S5SleepType > 7 {
		return nil, errors.New("pmtimer: S5 sleep type does not fit SLP_TYP's 3 bits")
	}
	if overlap(cfg.EventBlock, EventBlockLen, cfg.ControlBlock, ControlBlockLen) ||
		overlap(cfg.EventBlock, EventBlockLen, cfg.TimerPort, TimerBlockLen) ||
		overlap(cfg.ControlBlock, ControlBlockLen, cfg.TimerPort, TimerBlockLen) {
		return nil, errors.New("pmtimer: register blocks overlap")
	}
	p := &PM{cfg: cfg}
	p.s.TimerEpoch = p.epoch(p.ticks(cfg.Clock.Now()))
	return p, nil
}

func overlap(a uint16, alen int, b uint16, blen int) bool {
	return int(a) < int(b)+blen && int(b) < int(a)+alen
}

// Reset returns the registers to their power-on state (a guest reboot) and
// allows PowerOff to be called again.
func (p *PM) Reset() {
	p.mu.Lock()
	level := p.s.SCILevel
	p.s = State{SCILevel: level, TimerEpoch: p.epoch(p.ticks(p.cfg.Clock.Now()))}
	p.updateSCI()
	p.mu.Unlock()
}

// State returns a copy of the device state.
func (p *PM) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

// SetState restores a snapshot and drives the SCI to match it.
func (p *PM) SetState(s State) {
	p.mu.Lock()
	level := p.s.SCILevel
	s.Status &= statusWritable
	s.Enable &= enableWritable
	s.Control &= controlStored
	s.SCILevel = level
	p.s = s
	p.updateSCI()
	p.mu.Unlock()
}

// PowerButton presses the fixed-feature power button (ACPI 6.5, 4.8.2.2.1):
// PWRBTN_STS is set, and the SCI raised if the guest enabled it.
func (p *PM) PowerButton() {
	p.mu.Lock()
	p.s.Status |= StatusPowerButton
	p.updateSCI()
	p.mu.Unlock()
}

// Timer returns the counter value at clock time now.
func (p *PM) Timer(now int64) uint32 {
	return uint32(p.ticks(now) & p.timerMask())
}

// ReadPort implements bus.PortDevice; ports outside the three blocks read
// 0xFF.
func (p *PM) ReadPort(port uint16, size uint8) uint32 {
	p.mu.Lock()
	now := p.cfg.Clock.Now()
	p.sampleTimer(now)
	var v uint32
	for i := uint8(0); i < size && i < 4; i++ {
		v |= uint32(p.readByte(port+uint16(i), now)) << (8 * i)
	}
	p.updateSCI()
	p.mu.Unlock()
	return v
}

// WritePort implements bus.PortDevice. A write may cover several registers
// byte by byte; SLP_EN acts on the control register as the whole access
// left it.
func (p *PM) WritePort(port uint16, size uint8, v uint32) {
	p.mu.Lock()
	p.sampleTimer(p.cfg.Clock.Now())
	sleep := false
	for i := uint8(0); i < size && i < 4; i++ {
		if p.writeByte(port+uint16(i), uint8(v>>(8*i))) {
			sleep = true
		}
	}
	var powerOff, other bool
	typ := uint8((p.s.Control & ControlSleepType) >> controlSleepShift)
	if sleep {
		if typ == p.cfg.S5SleepType {
			powerOff = !p.s.PoweredOff
			p.s.PoweredOff = true
		} else {
			other = true
		}
	}
	p.updateSCI()
	p.mu.Unlock()
	if powerOff && p.cfg.PowerOff != nil {
		p.cfg.PowerOff()
	}
	if other && p.cfg.Sleep != nil {
		p.cfg.Sleep(typ)
	}
}

func (p *PM) timerMask() uint64 {
	if p.cfg.Timer32 {
		return 1<<32 - 1
	}
	return 1<<24 - 1
}

// ticks is the number of timer ticks since clock time 0 (128-bit product:
// ns*FrequencyHz overflows 64 bits after 43 minutes).
func (p *PM) ticks(now int64) uint64 {
	if now <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(now), FrequencyHz)
	q, _ := bits.Div64(hi, lo, 1e9) // hi < 1e9 for any int64 now
	return q
}

// epoch numbers the half-periods of the counter's top bit.
func (p *PM) epoch(ticks uint64) uint64 {
	if p.cfg.Timer32 {
		return ticks >> 31
	}
	return ticks >> 23
}

// sampleTimer sets TMR_STS if the counter's top bit changed since the last
// look.
func (p *PM) sampleTimer(now int64) {
	if e := p.epoch(p.ticks(now)); e != p.s.TimerEpoch {
		p.s.TimerEpoch = e
		p.s.Status |= StatusTimer
	}
}

func (p *PM) readByte(port uint16, now int64) uint8 {
	c := &p.cfg
	switch {
	case port-c.EventBlock < 2:
		return uint8(p.s.Status >> (8 * (port - c.EventBlock)))
	case port-c.EventBlock < EventBlockLen:
		return uint8(p.s.Enable >> (8 * (port - c.EventBlock - 2)))
	case port-c.ControlBlock < ControlBlockLen:
		v := p.s.Control&controlStored | ControlSCIEnable
		return uint8(v >> (8 * (port - c.ControlBlock)))
	case port-c.TimerPort < TimerBlockLen:
		return uint8(p.Timer(now) >> (8 * (port - c.TimerPort)))
	}
	return 0xFF
}

// writeByte applies one byte and reports whether it set SLP_EN.
func (p *PM) writeByte(port uint16, v uint8) (sleep bool) {
	c := &p.cfg
	switch {
	case port-c.EventBlock < 2:
		shift := 8 * (port - c.EventBlock)
		p.s.Status &^= uint16(v) << shift & statusWritable
	case port-c.EventBlock < EventBlockLen:
		shift := 8 * (port - c.EventBlock - 2)
		p.s.Enable = p.s.Enable&^(0xFF<<shift) | uint16(v)<<shift&enableWritable
	case port-c.ControlBlock < ControlBlockLen:
		shift := 8 * (port - c.ControlBlock)
		w := uint16(v) << shift
		p.s.Control = p.s.Control&^(0xFF<<shift) | w&controlStored
		return w&ControlSleepEnable != 0
	}
	// The timer is read-only.
	return false
}

func (p *PM) updateSCI() {
	level := p.s.Status&p.s.Enable&sciSources != 0
	if level == p.s.SCILevel {
		return
	}
	p.s.SCILevel = level
	if p.cfg.Lines != nil {
		p.cfg.Lines.SetIRQ(p.cfg.SCI, level)
	}
}
