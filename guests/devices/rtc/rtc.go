// Package rtc models the PC's Motorola MC146818 real-time clock and its 128
// bytes of CMOS RAM, reached through the index port 0x70 and the data port
// 0x71.
//
// Registers follow the MC146818A datasheet (Motorola): "Address Map"
// (time, alarm and registers A-D at 0x00-0x0D), "Register A" (UIP, DV,
// RS), "Register B" (SET, PIE, AIE, UIE, SQWE, DM, 24/12, DSE), "Register
// C" (IRQF, PF, AF, UF, cleared by reading) and "Register D" (VRT). Byte
// 0x32 holds the century, which is where ACPI's FADT CENTURY field points
// (ACPI 6.5, 5.2.9, "CENTURY"); the memory size bytes are those PC
// firmware fills in (IBM PC/AT Technical Reference, CMOS map; 0x5B-0x5D as
// QEMU and SeaBIOS use them for memory above 4 GiB).
//
// The time comes from the host's clock through Config.Now and is never
// stored: reads compute it, plus an offset the guest sets by writing the
// time registers (with SET held, or one register at a time). Bit 7 of port
// 0x70 (NMI mask on a PC) is ignored.
//
// Register A's UIP bit is set during the 244 us before each second
// boundary, the window in which the datasheet says the time registers are
// about to change; Linux's mc146818_avoid_UIP waits it out. The update-
// ended, alarm and periodic flags of register C are computed when register
// C is read and when the VM calls Tick; IRQ8 follows IRQF. NextEvent tells
// the VM when to call Tick if it wants those interrupts on time.
//
// Concurrency: every method takes the device lock; the interrupt sink is
// called with it held and must not call back into the RTC.
package rtc

import (
	"errors"
	"sync"
	"time"

	"tamavisor/guests/bus"
)

// Ports (IBM PC/AT Technical Reference).
const (
	IndexPort uint16 = 0x70
	DataPort  uint16 = 0x71
)

// ISAIRQ is the line the RTC's IRQ output drives on a PC.
const ISAIRQ uint32 = 8

// CMOSSize is the RAM behind the index port (index bits 6:0).
const CMOSSize = 128

// Register indexes (datasheet "Address Map"; PC CMOS map).
const (
	RegSeconds      = 0x00
	RegSecondsAlarm = 0x01
	RegMinutes      = 0x02
	RegMinutesAlarm = 0x03
	RegHours        = 0x04
	RegHoursAlarm   = 0x05
	RegWeekday      = 0x06
	RegDay          = 0x07
	RegMonth        = 0x08
	RegYear         = 0x09
	RegA            = 0x0A
	RegB            = 0x0B
	RegC            = 0x0C
	RegD            = 0x0D
	RegShutdown     = 0x0F
	RegBaseMemLo    = 0x15 // base memory in KiB
	RegBaseMemHi    = 0x16
	RegExtMemLo     = 0x17 // memory from 1 MiB in KiB (max 0xFFFF)
	RegExtMemHi     = 0x18
	RegExtMem2Lo    = 0x30 // same, as POST found it
	RegExtMem2Hi    = 0x31
	RegCentury      = 0x32
	RegMem16MLo     = 0x34 // memory from 16 MiB to 4 GiB, 64 KiB units
	RegMem16MHi     = 0x35
	RegMem4GLo      = 0x5B // memory above 4 GiB, 64 KiB units (3 bytes)
	RegMem4GMid     = 0x5C
	RegMem4GHi      = 0x5D
)

// Register A, B, C, D bits (datasheet "Register A".."Register D").
const (
	AUIP      uint8 = 0x80
	aWritable uint8 = 0x7F
	ARSMask   uint8 = 0x0F
	BSet      uint8 = 0x80
	BPIE      uint8 = 0x40
	BAIE      uint8 = 0x20
	BUIE      uint8 = 0x10
	BSQWE     uint8 = 0x08
	BBinary   uint8 = 0x04 // DM: 1 = binary, 0 = BCD
	B24Hour   uint8 = 0x02
	BDSE      uint8 = 0x01
	CIRQF     uint8 = 0x80
	CPF       uint8 = 0x40
	CAF       uint8 = 0x20
	CUF       uint8 = 0x10
	DVRT      uint8 = 0x80
	hourPM    uint8 = 0x80 // hours bit 7 in 12-hour mode
	alarmAny  uint8 = 0xC0 // alarm bytes 0xC0-0xFF match every value
)

// uipWindow is how long before the update UIP reads 1: 244 us
// (datasheet "Update Cycle", t_BUC).
const uipWindow = 244 * time.Microsecond

// Config wires the RTC into a VM.
type Config struct {
	// Now returns the host's real time. Fields are taken in the time's
	// own location: pass UTC times for Linux guests.
	Now func() time.Time
	// Lines receives IRQ8 (ISAIRQ on a PC); nil leaves it unconnected.
	Lines bus.IRQ
	IRQ   uint32
}

// State is everything a snapshot needs.
type State struct {
	CMOS  [CMOSSize]byte
	Index uint8
	// Offset is guest time minus host time, in ns.
	Offset int64
	// LastSecond and LastPeriod are the guest time (Unix seconds) and the
	// periodic-interrupt period index when the flags were last computed.
	LastSecond int64
	LastPeriod int64
	IRQLevel   bool
}

// RTC is the MC146818 and CMOS RAM.
type RTC struct {
	mu  sync.Mutex
	cfg Config
	s   State
}

// New returns the RTC as firmware leaves it: 32.768 kHz time base with
// a 1024 Hz periodic rate selected (register A 0x26), 24-hour BCD (register
// B 0x02), valid RAM and time.
func New(cfg Config) (*RTC, error) {
	if cfg.Now == nil {
		return nil, errors.New("rtc: no time source")
	}
	r := &RTC{cfg: cfg}
	r.s.CMOS[RegA] = 0x26
	r.s.CMOS[RegB] = B24Hour
	r.s.CMOS[RegD] = DVRT
	t := cfg.Now()
	r.s.LastSecond = t.Unix()
	r.s.LastPeriod = r.periodIndex(t)
	return r, nil
}

// SetMemorySize fills the CMOS memory size bytes the way PC firmware does:
// low is the RAM below 4 GiB including the first MiB, high the RAM above
// 4 GiB, both in bytes. Linux does not read them; older loaders and
// firmware-style test kernels do.
func (r *RTC) SetMemorySize(low, high uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &r.s.CMOS
	put16 := func(lo int, v uint64) {
		if v > 0xFFFF {
			v = 0xFFFF
		}
		c[lo], c[lo+1] = byte(v), byte(v>>8)
	}
	put16(RegBaseMemLo, 640)
	var ext, above16 uint64
	if low > 1<<20 {
		ext = (low - 1<<20) >> 10
	}
	if low > 16<<20 {
		above16 = (low - 16<<20) >> 16
	}
	put16(RegExtMemLo, ext)
	put16(RegExtMem2Lo, ext)
	put16(RegMem16MLo, above16)
	above4G := high >> 16
	if above4G > 0xFFFFFF {
		above4G = 0xFFFFFF
	}
	c[RegMem4GLo], c[RegMem4GMid], c[RegMem4GHi] = byte(above4G), byte(above4G>>8), byte(above4G>>16)
}

// State returns a copy of the device state.
func (r *RTC) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s
}

// SetState restores a snapshot and drives IRQ8 to match it.
func (r *RTC) SetState(s State) {
	r.mu.Lock()
	level := r.s.IRQLevel
	s.Index &= CMOSSize - 1
	s.CMOS[RegD] = DVRT
	s.CMOS[RegC] &= CIRQF | CPF | CAF | CUF
	r.s = s
	r.s.IRQLevel = level
	r.updateIRQ()
	r.mu.Unlock()
}

// ReadPort implements bus.PortDevice. Wider accesses read consecutive
// ports, as the ISA bus splits them.
func (r *RTC) ReadPort(port uint16, size uint8) uint32 {
	r.mu.Lock()
	var v uint32
	for i := uint8(0); i < size && i < 4; i++ {
		v |= uint32(r.readByte(port+uint16(i))) << (8 * i)
	}
	r.mu.Unlock()
	return v
}

// WritePort implements bus.PortDevice. outw(0x70, index|value<<8), which
// some guests use, selects and writes in one access.
func (r *RTC) WritePort(port uint16, size uint8, v uint32) {
	r.mu.Lock()
	for i := uint8(0); i < size && i < 4; i++ {
		r.writeByte(port+uint16(i), uint8(v>>(8*i)))
	}
	r.mu.Unlock()
}

// Tick computes the interrupt flags for the current time and drives IRQ8.
func (r *RTC) Tick() {
	r.mu.Lock()
	r.updateFlags(r.guestNow())
	r.mu.Unlock()
}

// NextEvent returns how long until the next enabled interrupt source
// (update-ended, alarm check, periodic) may fire, or false if none is
// enabled.
func (r *RTC) NextEvent() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.s.CMOS[RegB]
	if b&BSet != 0 {
		return 0, false
	}
	t := r.guestNow()
	ns := int64(t.Nanosecond())
	next, ok := int64(0), false
	if b&(BUIE|BAIE) != 0 {
		next, ok = int64(time.Second)-ns, true
	}
	if rate := r.periodicRate(); b&BPIE != 0 && rate != 0 {
		// The first instant of the next period, as periodIndex
		// numbers them.
		const sec = int64(time.Second)
		boundary := ((ns*rate/sec+1)*sec + rate - 1) / rate
		d := boundary - ns
		if !ok || d < next {
			next, ok = d, true
		}
	}
	return time.Duration(next), ok
}

func (r *RTC) guestNow() time.Time {
	return r.cfg.Now().Add(time.Duration(r.s.Offset))
}

func (r *RTC) readByte(port uint16) uint8 {
	switch port {
	case IndexPort:
		return 0xFF // write-only on a PC
	case DataPort:
		return r.readRegister(r.s.Index)
	}
	return 0xFF
}

func (r *RTC) writeByte(port uint16, v uint8) {
	switch port {
	case IndexPort:
		r.s.Index = v & (CMOSSize - 1)
	case DataPort:
		r.writeRegister(r.s.Index, v)
	}
}

func isTimeRegister(i uint8) bool {
	switch i {
	case RegSeconds, RegMinutes, RegHours, RegWeekday, RegDay, RegMonth, RegYear, RegCentury:
		return true
	}
	return false
}

func (r *RTC) readRegister(i uint8) uint8 {
	c := &r.s.CMOS
	switch {
	case isTimeRegister(i) && c[RegB]&BSet == 0:
		return r.encodeField(i, r.guestNow())
	case i == RegA:
		v := c[RegA] & aWritable
		if r.updateInProgress() {
			v |= AUIP
		}
		return v
	case i == RegC:
		r.updateFlags(r.guestNow())
		v := c[RegC]
		c[RegC] = 0
		r.updateIRQ()
		return v
	case i == RegD:
		return DVRT
	}
	return c[i&(CMOSSize-1)]
}

func (r *RTC) writeRegister(i uint8, v uint8) {
	c := &r.s.CMOS
	switch {
	case isTimeRegister(i):
		if c[RegB]&BSet != 0 {
			c[i] = v
			return
		}
		// One register set while the clock runs: take the current
		// time in register form, change that field, and run from
		// there.
		r.freeze()
		c[i] = v
		r.thaw()
	case i == RegA:
		c[RegA] = v & aWritable
		// A new rate starts counting periods from now.
		r.s.LastPeriod = r.periodIndex(r.guestNow())
	case i == RegB:
		old := c[RegB]
		if v&BSet != 0 {
			v &^= BUIE // setting SET clears UIE (datasheet, Register B)
			if old&BSet == 0 {
				r.freeze()
			}
		}
		c[RegB] = v
		if old&BSet != 0 && v&BSet == 0 {
			r.thaw()
		}
		r.updateFlags(r.guestNow())
	case i == RegC, i == RegD:
		// Read-only.
	default:
		c[i&(CMOSSize-1)] = v
	}
}

// freeze copies the running time into the time registers, in the format
// register B selects.
func (r *RTC) freeze() {
	t := r.guestNow()
	for _, i := range [...]uint8{RegSeconds, RegMinutes, RegHours, RegWeekday, RegDay, RegMonth, RegYear, RegCentury} {
		r.s.CMOS[i] = r.encodeField(i, t)
	}
}

// thaw makes the time in the registers the running time. Out-of-range
// fields (a guest's nonsense) are normalized the way time.Date does.
func (r *RTC) thaw() {
	c := &r.s.CMOS
	now := r.cfg.Now()
	hour := r.decode(c[RegHours] &^ hourPM)
	if c[RegB]&B24Hour == 0 {
		hour %= 12
		if c[RegHours]&hourPM != 0 {
			hour += 12
		}
	}
	year := r.decode(c[RegCentury])*100 + r.decode(c[RegYear])
	t := time.Date(year, time.Month(r.decode(c[RegMonth])), r.decode(c[RegDay]),
		hour, r.decode(c[RegMinutes]), r.decode(c[RegSeconds]), now.Nanosecond(), now.Location())
	r.s.Offset = int64(t.Sub(now))
	r.s.LastSecond = t.Unix()
}

// encodeField returns time register i for t in the current format.
func (r *RTC) encodeField(i uint8, t time.Time) uint8 {
	var v int
	switch i {
	case RegSeconds:
		v = t.Second()
	case RegMinutes:
		v = t.Minute()
	case RegHours:
		h := t.Hour()
		if r.s.CMOS[RegB]&B24Hour != 0 {
			return r.encode(h)
		}
		pm := h >= 12
		if h %= 12; h == 0 {
			h = 12
		}
		if pm {
			return r.encode(h) | hourPM
		}
		return r.encode(h)
	case RegWeekday:
		v = int(t.Weekday()) + 1 // Sunday = 1
	case RegDay:
		v = t.Day()
	case RegMonth:
		v = int(t.Month())
	case RegYear:
		v = t.Year() % 100
	case RegCentury:
		v = t.Year() / 100
	}
	return r.encode(v)
}

func (r *RTC) encode(v int) uint8 {
	if v < 0 {
		v = -v
	}
	v %= 100
	if r.s.CMOS[RegB]&BBinary != 0 {
		return uint8(v)
	}
	return uint8(v/10<<4 | v%10)
}

func (r *RTC) decode(b uint8) int {
	if r.s.CMOS[RegB]&BBinary != 0 {
		return int(b)
	}
	return int(b>>4)*10 + int(b&0xF)
}

func (r *RTC) updateInProgress() bool {
	if r.s.CMOS[RegB]&BSet != 0 {
		return false
	}
	return time.Duration(r.guestNow().Nanosecond()) >= time.Second-uipWindow
}

// periodicRate is the periodic interrupt rate in Hz that register A's RS
// bits select with the 32.768 kHz time base (datasheet, "Periodic
// Interrupt Rate" table), 0 for none.
func (r *RTC) periodicRate() int64 {
	switch rs := r.s.CMOS[RegA] & ARSMask; rs {
	case 0:
		return 0
	case 1, 2:
		return 256 >> (rs - 1)
	default:
		return 65536 >> rs
	}
}

// periodIndex numbers the periodic interrupt periods up to t.
func (r *RTC) periodIndex(t time.Time) int64 {
	rate := r.periodicRate()
	return t.Unix()*rate + int64(t.Nanosecond())*rate/int64(time.Second)
}

// updateFlags sets register C's flags for what happened since they were
// last computed: an update cycle at each second boundary (UF), an alarm
// match at the current second (AF), a periodic interrupt boundary (PF).
func (r *RTC) updateFlags(t time.Time) {
	c := &r.s.CMOS
	if c[RegB]&BSet != 0 {
		return
	}
	sec := t.Unix()
	if sec != r.s.LastSecond {
		r.s.LastSecond = sec
		c[RegC] |= CUF
		if r.alarmMatches(t) {
			c[RegC] |= CAF
		}
	}
	if r.periodicRate() != 0 {
		if p := r.periodIndex(t); p != r.s.LastPeriod {
			r.s.LastPeriod = p
			c[RegC] |= CPF
		}
	}
	if c[RegC]&c[RegB]&(CPF|CAF|CUF) != 0 {
		c[RegC] |= CIRQF
	}
	r.updateIRQ()
}

func (r *RTC) alarmMatches(t time.Time) bool {
	c := &r.s.CMOS
	for _, f := range [...][2]uint8{{RegSecondsAlarm, RegSeconds}, {RegMinutesAlarm, RegMinutes}, {RegHoursAlarm, RegHours}} {
		a := c[f[0]]
		if a&alarmAny != alarmAny && a != r.encodeField(f[1], t) {
			return false
		}
	}
	return true
}

func (r *RTC) updateIRQ() {
	level := r.s.CMOS[RegC]&CIRQF != 0
	if level == r.s.IRQLevel {
		return
	}
	r.s.IRQLevel = level
	if r.cfg.Lines != nil {
		r.cfg.Lines.SetIRQ(r.cfg.IRQ, level)
	}
}
