// Package pit models the PC's Intel 8254 programmable interval timer
// (counters at ports 0x40-0x42, control word at 0x43) and the counter 2
// gate and output bits of system control port B (0x61).
//
// Behaviour follows the 8254 datasheet (Intel, order number 231164):
// "Control Word Format", "Read-Back Command", "Counter Latch Command",
// "Read Operations", "Write Operations" and "Mode Definitions" (modes 0-5;
// 6 and 7 alias 2 and 3). Port B's bits follow the IBM PC/AT Technical
// Reference and the ICH9 datasheet 13.7.1 ("NMI_SC—NMI Status and Control
// Register"): bit 0 counter 2 gate, bit 1 speaker data, bit 4 refresh cycle
// toggle, bit 5 counter 2 OUT.
//
// Counters are not ticked: their value and OUT are computed from the clock
// (bus.Clock, ns) and the time the count was loaded, at 1.193182 MHz. A
// counter keeps its elapsed ticks across gate-low periods, so channel 2 in
// mode 0 with the gate from port B works as the calibration reference
// Linux's quick_pit_calibrate and pit_calibrate_tsc use (OUT2 rises at
// terminal count, MSB reads step down every 256 ticks).
//
// Counter 0's OUT drives ISA IRQ0. Instead of polling, the VM arms a host
// timer at NextDeadline and calls Tick when it fires; Tick delivers each
// rising edge of OUT0 due by then as a low-to-high transition of the
// interrupt line. A periodic mode (2 or 3) gives one edge per period; if
// the VM is late by several periods they coalesce into one edge, as
// interrupts do on real hardware when nobody takes them. Port accesses also
// deliver overdue edges, so a late timer is caught up by any PIT access.
//
// Concurrency: every method takes the device lock; the interrupt sink is
// called with it held and must not call back into the PIT.
package pit

import (
	"errors"
	"math"
	"math/bits"
	"sync"

	"tamavisor/guests/bus"
)

// FrequencyHz is the 8254 input clock on a PC: 14.31818 MHz / 12.
const FrequencyHz = 1193182

// Ports (8254 datasheet "Read/Write Logic"; PC wiring).
const (
	Channel0Port uint16 = 0x40
	Channel1Port uint16 = 0x41
	Channel2Port uint16 = 0x42
	ControlPort  uint16 = 0x43
	PortB        uint16 = 0x61
)

// ISAIRQ is the line OUT0 drives on a PC.
const ISAIRQ uint32 = 0

// NoDeadline is what NextDeadline returns when no interrupt is coming.
const NoDeadline int64 = math.MaxInt64

// MinPeriodTicks bounds the IRQ0 rate in the periodic modes (about 100 us,
// 10 kHz): a guest programming a count of 1 would otherwise ask the host
// for a timer every 838 ns. Linux asks for 1193 ticks at HZ=1000. KVM's
// i8254 applies the same kind of floor (min_timer_period_us).
const MinPeriodTicks = 120

// Port B bits.
const (
	PortBGate2    uint8 = 0x01
	PortBSpeaker  uint8 = 0x02
	PortBRefresh  uint8 = 0x10
	PortBOut2     uint8 = 0x20
	portBWritable uint8 = 0x0F
	// refreshPeriodNs: the refresh request toggle flips every 15.085 us
	// (ICH9 datasheet 13.7.1, bit 4).
	refreshPeriodNs = 15085
)

// Control word fields (datasheet "Control Word Format").
const (
	cwReadBack      = 3    // SC1:SC0 = 11
	cwLatch         = 0    // RW1:RW0 = 00: counter latch command
	accessLow       = 1    // RW = 01: LSB only
	accessHigh      = 2    // RW = 10: MSB only
	accessLowHigh   = 3    // RW = 11: LSB then MSB
	rbNoCount       = 0x20 // read-back: !COUNT
	rbNoStatus      = 0x10 // read-back: !STATUS
	statusOut       = 0x80
	statusNullCount = 0x40
)

// Channel is one counter.
type Channel struct {
	Mode   uint8 // 0-5
	Access uint8 // RW1:RW0, 1-3
	BCD    bool
	// Reload is the count N in ticks (1-65536 binary, 1-10000 BCD).
	Reload uint32
	// Loaded: a full count has been written since the control word.
	Loaded    bool
	NullCount bool
	// Write and read flip-flops for LSB-then-MSB access.
	WriteLow  uint8
	WriteHigh bool
	ReadHigh  bool
	// Output latch (counter latch or read-back).
	Latched       bool
	LatchValue    uint16
	LatchHigh     bool
	StatusLatched bool
	StatusValue   uint8
	Gate          bool
	// Triggered: modes 1 and 5 have seen their gate trigger.
	Triggered bool
	// Counting: Running from RunStart (ns), plus ElapsedBase ticks
	// counted before the last gate-low period.
	Running     bool
	RunStart    int64
	ElapsedBase uint64
}

// State is the whole 8254 plus port B and the IRQ0 edge tracking.
type State struct {
	Channels [3]Channel
	PortB    uint8
	// EdgeArmed/NextEdge: the elapsed tick count of counter 0 at which
	// its OUT next rises.
	EdgeArmed bool
	NextEdge  uint64
	IRQLevel  bool
}

// Config wires the PIT into a VM.
type Config struct {
	Clock bus.Clock
	// Lines receives OUT0 as interrupt line IRQ (ISAIRQ on a PC); nil
	// leaves it unconnected.
	Lines bus.IRQ
	IRQ   uint32
}

// PIT is the 8254 and port B.
type PIT struct {
	mu  sync.Mutex
	cfg Config
	s   State
}

// New returns the PIT in its power-on state: every counter in mode 0 with
// no count, gates of counters 0 and 1 tied high, counter 2's gate low.
func New(cfg Config) (*PIT, error) {
	if cfg.Clock == nil {
		return nil, errors.New("pit: no clock")
	}
	p := &PIT{cfg: cfg}
	p.s = powerOnState()
	return p, nil
}

func powerOnState() State {
	var s State
	for i := range s.Channels {
		s.Channels[i] = Channel{Access: accessLowHigh, Gate: i != 2}
	}
	return s
}

// Reset returns the PIT to its power-on state (a guest reboot).
func (p *PIT) Reset() {
	p.mu.Lock()
	level := p.s.IRQLevel
	p.s = powerOnState()
	p.s.IRQLevel = level
	p.mu.Unlock()
}

// State returns a copy of the device state.
func (p *PIT) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.s
}

// SetState restores a snapshot, bringing out-of-range fields back into
// range. Times in it are on the Clock's time base.
func (p *PIT) SetState(s State) {
	p.mu.Lock()
	for i := range s.Channels {
		c := &s.Channels[i]
		c.Mode %= 6
		if c.Access < accessLow || c.Access > accessLowHigh {
			c.Access = accessLowHigh
		}
		if m := uint32(c.modulus()); c.Reload == 0 || c.Reload > m {
			c.Reload = m
		}
		if i != 2 {
			c.Gate = true
		}
		// Keep tick counts far from where the ns conversions overflow.
		c.ElapsedBase %= 1 << 40
	}
	s.NextEdge %= 1 << 41
	s.PortB &= portBWritable
	s.Channels[2].Gate = s.PortB&PortBGate2 != 0
	p.s = s
	p.mu.Unlock()
}

// NextDeadline returns the clock time (ns) of the next rising edge of
// OUT0, or NoDeadline. The answer changes after port writes, so the VM asks
// again after each exit that touched the PIT.
func (p *PIT) NextDeadline() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &p.s.Channels[0]
	if !p.s.EdgeArmed || !c.Running {
		return NoDeadline
	}
	if p.s.NextEdge <= c.ElapsedBase {
		return c.RunStart
	}
	d := ticksToNs(p.s.NextEdge - c.ElapsedBase)
	if d > NoDeadline-c.RunStart {
		return NoDeadline
	}
	return c.RunStart + d
}

// Tick delivers the IRQ0 edges due by now.
func (p *PIT) Tick(now int64) {
	p.mu.Lock()
	p.deliver(now)
	p.mu.Unlock()
}

// ReadPort implements bus.PortDevice. Wider accesses read consecutive
// ports, as the ISA bus splits them; ports the PIT does not decode read
// 0xFF.
func (p *PIT) ReadPort(port uint16, size uint8) uint32 {
	p.mu.Lock()
	now := p.cfg.Clock.Now()
	p.deliver(now)
	var v uint32
	for i := uint8(0); i < size && i < 4; i++ {
		v |= uint32(p.readByte(port+uint16(i), now)) << (8 * i)
	}
	p.mu.Unlock()
	return v
}

// WritePort implements bus.PortDevice.
func (p *PIT) WritePort(port uint16, size uint8, v uint32) {
	p.mu.Lock()
	now := p.cfg.Clock.Now()
	p.deliver(now)
	for i := uint8(0); i < size && i < 4; i++ {
		p.writeByte(port+uint16(i), uint8(v>>(8*i)), now)
	}
	p.mu.Unlock()
}

func (p *PIT) readByte(port uint16, now int64) uint8 {
	switch port {
	case Channel0Port, Channel1Port, Channel2Port:
		return p.s.Channels[port-Channel0Port].readByte(now)
	case ControlPort:
		return 0xFF // write-only
	case PortB:
		v := p.s.PortB & portBWritable
		if now > 0 && (now/refreshPeriodNs)&1 != 0 {
			v |= PortBRefresh
		}
		if p.s.Channels[2].out(now) {
			v |= PortBOut2
		}
		return v
	}
	return 0xFF
}

func (p *PIT) writeByte(port uint16, v uint8, now int64) {
	switch port {
	case Channel0Port, Channel1Port, Channel2Port:
		i := port - Channel0Port
		p.s.Channels[i].writeCount(v, now)
		if i == 0 {
			p.rearm(now)
		}
	case ControlPort:
		p.writeControl(v, now)
	case PortB:
		p.s.PortB = v & portBWritable
		p.s.Channels[2].setGate(v&PortBGate2 != 0, now)
	}
}

func (p *PIT) writeControl(v uint8, now int64) {
	sel := v >> 6
	if sel == cwReadBack {
		for i := range p.s.Channels {
			if v&(2<<i) == 0 {
				continue
			}
			c := &p.s.Channels[i]
			if v&rbNoStatus == 0 && !c.StatusLatched {
				c.StatusLatched = true
				c.StatusValue = c.status(now)
			}
			if v&rbNoCount == 0 {
				c.latch(now)
			}
		}
		return
	}
	c := &p.s.Channels[sel]
	rw := (v >> 4) & 3
	if rw == cwLatch {
		c.latch(now)
		return
	}
	mode := (v >> 1) & 7
	if mode >= 6 {
		mode -= 4
	}
	*c = Channel{Mode: mode, Access: rw, BCD: v&1 != 0, Gate: c.Gate, NullCount: true, Reload: c.Reload}
	if sel == 0 {
		p.rearm(now)
	}
}

// rearm recomputes counter 0's next rising edge and drives IRQ0 to OUT0's
// current level (a control word sets OUT to its mode's initial level, a
// mode 0 count write drives it low).
func (p *PIT) rearm(now int64) {
	c := &p.s.Channels[0]
	p.setLine(c.out(now))
	p.s.NextEdge, p.s.EdgeArmed = c.nextRisingEdge(c.elapsed(now))
}

// deliver raises IRQ0 for an edge of OUT0 due by now.
func (p *PIT) deliver(now int64) {
	c := &p.s.Channels[0]
	if !p.s.EdgeArmed || !c.Running {
		return
	}
	d := c.elapsed(now)
	if d < p.s.NextEdge {
		return
	}
	p.setLine(false)
	p.setLine(true)
	p.s.NextEdge, p.s.EdgeArmed = c.nextRisingEdge(d)
}

func (p *PIT) setLine(level bool) {
	if level == p.s.IRQLevel {
		return
	}
	p.s.IRQLevel = level
	if p.cfg.Lines != nil {
		p.cfg.Lines.SetIRQ(p.cfg.IRQ, level)
	}
}

// modulus is the counting element's range: 2^16 binary, 10^4 BCD.
func (c *Channel) modulus() uint64 {
	if c.BCD {
		return 10000
	}
	return 0x10000
}

// elapsed is the number of ticks the counter has counted since its count
// was loaded or triggered.
func (c *Channel) elapsed(now int64) uint64 {
	if !c.Running {
		return c.ElapsedBase
	}
	return c.ElapsedBase + nsToTicks(now-c.RunStart)
}

func (c *Channel) writeCount(v uint8, now int64) {
	var n uint32
	switch c.Access {
	case accessLow:
		n = uint32(v)
	case accessHigh:
		n = uint32(v) << 8
	default:
		if !c.WriteHigh {
			c.WriteLow = v
			c.WriteHigh = true
			c.NullCount = true
			if c.Mode == 0 {
				// Writing the first byte stops the count
				// (datasheet, Mode 0).
				c.ElapsedBase = c.elapsed(now)
				c.Running = false
			}
			return
		}
		c.WriteHigh = false
		n = uint32(c.WriteLow) | uint32(v)<<8
	}
	c.load(n, now)
}

// load takes a newly written count N: 0 stands for the modulus. Modes 0, 2,
// 3 and 4 start counting (if the gate allows); modes 1 and 5 wait for a
// gate trigger. The count is taken at once rather than at the next period
// boundary in modes 2 and 3: guests write the control word first anyway.
func (c *Channel) load(n uint32, now int64) {
	if c.BCD {
		n = fromBCD(n)
	}
	if n == 0 {
		n = uint32(c.modulus())
	}
	c.Reload = n
	c.Loaded = true
	c.NullCount = false
	switch c.Mode {
	case 1, 5:
		if c.Triggered {
			return
		}
		c.Running = false
		c.ElapsedBase = 0
	default:
		c.ElapsedBase = 0
		c.RunStart = now
		c.Running = c.Gate
	}
}

func (c *Channel) setGate(gate bool, now int64) {
	if gate == c.Gate {
		return
	}
	c.Gate = gate
	if !c.Loaded {
		return
	}
	switch c.Mode {
	case 0, 4:
		// The gate suspends and resumes counting.
		if gate {
			c.RunStart = now
			c.Running = true
		} else {
			c.ElapsedBase = c.elapsed(now)
			c.Running = false
		}
	case 2, 3:
		// Low stops counting with OUT high; the rising edge reloads.
		c.ElapsedBase = 0
		c.RunStart = now
		c.Running = gate
	case 1, 5:
		if gate {
			c.Triggered = true
			c.ElapsedBase = 0
			c.RunStart = now
			c.Running = true
		}
	}
}

// value is the counting element as a binary number in [0, modulus), the
// modulus itself reading as 0.
func (c *Channel) value(now int64) uint64 {
	m := c.modulus()
	if !c.Loaded {
		return 0
	}
	n := uint64(c.Reload)
	d := c.elapsed(now)
	switch c.Mode {
	case 1, 5:
		if !c.Triggered {
			return n % m
		}
		fallthrough
	case 0, 4:
		return (n + m - d%m) % m
	case 2:
		return (n - d%n) % m
	case 3:
		// Decrements by two; an odd count spends one more tick high
		// than low (datasheet, Mode 3).
		p, high := d%n, (n+1)/2
		if p < high {
			return (n - 2*p) % m
		}
		return (n - 2*(p-high)) % m
	}
	return 0
}

// out is the OUT pin (datasheet "Mode Definitions").
func (c *Channel) out(now int64) bool {
	if !c.Loaded {
		return c.Mode != 0
	}
	n := uint64(c.Reload)
	d := c.elapsed(now)
	switch c.Mode {
	case 0:
		return d >= n
	case 1:
		return !c.Triggered || d >= n
	case 2:
		return !c.Gate || d%n != n-1
	case 3:
		return !c.Gate || d%n < (n+1)/2
	case 4:
		return d != n
	case 5:
		return !c.Triggered || d != n
	}
	return true
}

// nextRisingEdge returns the first elapsed tick count after d at which OUT
// goes from low to high.
func (c *Channel) nextRisingEdge(d uint64) (uint64, bool) {
	if !c.Loaded {
		return 0, false
	}
	n := uint64(c.Reload)
	switch c.Mode {
	case 0:
		return n, d < n
	case 1:
		return n, c.Triggered && d < n
	case 2, 3:
		n = max(n, MinPeriodTicks)
		return (d/n + 1) * n, true
	case 4:
		return n + 1, d < n+1
	case 5:
		return n + 1, c.Triggered && d < n+1
	}
	return 0, false
}

func (c *Channel) status(now int64) uint8 {
	v := c.Access<<4 | c.Mode<<1
	if c.BCD {
		v |= 1
	}
	if c.out(now) {
		v |= statusOut
	}
	if c.NullCount {
		v |= statusNullCount
	}
	return v
}

func (c *Channel) displayed(now int64) uint16 {
	v := c.value(now)
	if c.BCD {
		return toBCD(v)
	}
	return uint16(v)
}

// latch freezes the output latch until it is read (a second latch before
// that is ignored: datasheet "Counter Latch Command").
func (c *Channel) latch(now int64) {
	if c.Latched {
		return
	}
	c.Latched = true
	c.LatchHigh = false
	c.LatchValue = c.displayed(now)
}

func (c *Channel) readByte(now int64) uint8 {
	if c.StatusLatched {
		c.StatusLatched = false
		return c.StatusValue
	}
	v := c.displayed(now)
	if c.Latched {
		v = c.LatchValue
	}
	var high bool
	switch c.Access {
	case accessLow:
		c.Latched = false
	case accessHigh:
		high = true
		c.Latched = false
	default:
		if c.Latched {
			high = c.LatchHigh
			c.LatchHigh = !c.LatchHigh
			if high {
				c.Latched = false
			}
		} else {
			high = c.ReadHigh
			c.ReadHigh = !c.ReadHigh
		}
	}
	if high {
		return uint8(v >> 8)
	}
	return uint8(v)
}

// nsToTicks converts a duration to whole ticks (rounding down); negative
// durations are 0. 128-bit arithmetic: ns*FrequencyHz overflows 64 bits
// after about 2 hours.
func nsToTicks(ns int64) uint64 {
	if ns <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(ns), FrequencyHz)
	q, _ := bits.Div64(hi, lo, 1e9) // hi < 1e9: ns < 2^63
	return q
}

// ticksToNs is the shortest duration that holds t ticks (rounding up), so
// that nsToTicks(ticksToNs(t)) == t.
func ticksToNs(t uint64) int64 {
	hi, lo := bits.Mul64(t, 1e9)
	lo, carry := bits.Add64(lo, FrequencyHz-1, 0)
	hi += carry
	if hi >= FrequencyHz {
		return NoDeadline
	}
	q, _ := bits.Div64(hi, lo, FrequencyHz)
	if q > math.MaxInt64 {
		return NoDeadline
	}
	return int64(q)
}

// fromBCD reads a 4-digit BCD count; digits above 9 (a guest's nonsense)
// still weigh their place, and the result is kept within the BCD modulus.
func fromBCD(v uint32) uint32 {
	n := (v>>12&0xF)*1000 + (v>>8&0xF)*100 + (v>>4&0xF)*10 + v&0xF
	if n > 10000 {
		n = 10000
	}
	return n
}

func toBCD(v uint64) uint16 {
	v %= 10000
	return uint16(v/1000)<<12 | uint16(v/100%10)<<8 | uint16(v/10%10)<<4 | uint16(v%10)
}
