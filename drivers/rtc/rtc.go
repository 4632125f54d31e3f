// Package rtc reads the PC's Motorola MC146818-compatible real-time clock in
// CMOS (index port 0x70, data port 0x71).
//
// Register numbers and bits follow the MC146818A datasheet (Motorola,
// "Register/RAM Address Map", "Register A-D"); every PC chipset keeps that
// layout. The century byte is not part of the MC146818: ACPI names its CMOS
// index in the FADT's CENTURY field (ACPI 6.5, 5.2.9 "Fixed ACPI Description
// Table", field CENTURY), 0 meaning there is none.
//
// A read is only meaningful while no update cycle is running: the clock sets
// UIP (register A bit 7) 244 us before it starts changing the time registers,
// so registers read right after UIP was seen clear are stable. Under
// virtualization (or with an SMI in between) that window is not guaranteed,
// so the driver reads the whole set twice and accepts it only when both
// reads agree. All waiting is bounded.
//
// NMI masking: on PCs bit 7 of the byte written to port 0x70 is the chipset's
// NMI-disable bit. Port 0x70 cannot be read back reliably (it is write-only on
// Intel PCHs unless "alternate access mode" is enabled, and reads float on
// many others), so the driver does not try to preserve a value "as read".
// Instead it owns the bit: it writes the value chosen with SetNMIDisabled
// with every index, default 0 (NMIs enabled), which is what firmware and
// other kernels leave.
package rtc

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"tamavisor/drivers/hw"
)

// Ports (IBM PC/AT Technical Reference, "CMOS RAM"; Intel PCH datasheets,
// "RTC Indexed Registers").
const (
	IndexPort uint16 = 0x70
	DataPort  uint16 = 0x71
)

// IndexNMIDisable is the NMI-disable bit of the byte written to IndexPort.
const IndexNMIDisable uint8 = 0x80

// Register indices (MC146818A datasheet, "Address Map").
const (
	RegSeconds    uint8 = 0x00
	RegMinutes    uint8 = 0x02
	RegHours      uint8 = 0x04
	RegDayOfWeek  uint8 = 0x06
	RegDayOfMonth uint8 = 0x07
	RegMonth      uint8 = 0x08
	RegYear       uint8 = 0x09
	RegStatusA    uint8 = 0x0A
	RegStatusB    uint8 = 0x0B
	RegStatusC    uint8 = 0x0C
	RegStatusD    uint8 = 0x0D
	// FirstRAMIndex is the first general-purpose CMOS byte; a FADT century
	// index must lie between it and LastIndex.
	FirstRAMIndex uint8 = 0x0E
	LastIndex     uint8 = 0x7F
)

// Status register bits (MC146818A datasheet, "Register A", "Register B").
const (
	StatusAUpdateInProgress uint8 = 0x80 // UIP
	StatusB24Hour           uint8 = 0x02 // 1: 24-hour mode, 0: 12-hour
	StatusBBinary           uint8 = 0x04 // DM: 1: binary, 0: BCD
	StatusBSet              uint8 = 0x80 // updates halted while set
	// HoursPM is bit 7 of the hours register in 12-hour mode.
	HoursPM uint8 = 0x80
)

// UIPPollLimit bounds the status A reads spent waiting for an update cycle
// to end. An update holds UIP for at most 244 us + 1984 us (MC146818A,
// "Update Cycle"); at about 2 us per index/data pair this is some 20 ms.
const UIPPollLimit = 10000

// readAttempts bounds how many pairs of reads are tried before giving up on
// getting two identical ones.
const readAttempts = 8

// Errors returned by Time and WaitSecondEdge.
var (
	ErrUpdateStuck  = errors.New("rtc: update-in-progress never cleared (RTC absent or stopped)")
	ErrInconsistent = errors.New("rtc: time kept changing between consecutive reads")
	ErrInvalid      = errors.New("rtc: register value out of range")
	ErrNoEdge       = errors.New("rtc: seconds register did not change within the poll limit")
)

// RTC is the CMOS real-time clock.
type RTC struct {
	mu           sync.Mutex // the index/data pair is one shared register
	io           hw.PortIO
	centuryIndex uint8
	nmiBit       uint8
}

// New returns a driver for the CMOS clock. centuryIndex is the FADT CENTURY
// field: the CMOS index holding the century, or 0 when the platform has none
// (the year is then taken to be 20xx).
func New(io hw.PortIO, centuryIndex uint8) (*RTC, error) {
	if centuryIndex != 0 && (centuryIndex < FirstRAMIndex || centuryIndex > LastIndex) {
		return nil, fmt.Errorf("rtc: century CMOS index %#x is not in %#x-%#x", centuryIndex, FirstRAMIndex, LastIndex)
	}
	return &RTC{io: io, centuryIndex: centuryIndex}, nil
}

// SetNMIDisabled chooses the NMI-disable bit written with every index.
func (r *RTC) SetNMIDisabled(disabled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nmiBit = 0
	if disabled {
		r.nmiBit = IndexNMIDisable
	}
}

func (r *RTC) read(index uint8) uint8 {
	r.io.Out8(IndexPort, index|r.nmiBit)
	return r.io.In8(DataPort)
}

// ReadCMOS returns the CMOS byte at index (0x00-0x7F).
func (r *RTC) ReadCMOS(index uint8) (uint8, error) {
	if index > LastIndex {
		return 0, fmt.Errorf("rtc: CMOS index %#x out of range", index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.read(index), nil
}

// Registers is one snapshot of the raw clock registers.
type Registers struct {
	Seconds, Minutes, Hours uint8
	DayOfMonth, Month, Year uint8
	Century                 uint8 // 0 when there is no century register
	StatusB                 uint8
	HasCentury              bool
}

func (r *RTC) waitUIPClear() bool {
	for i := 0; i < UIPPollLimit; i++ {
		if r.read(RegStatusA)&StatusAUpdateInProgress == 0 {
			return true
		}
	}
	return false
}

func (r *RTC) snapshot() (Registers, error) {
	if !r.waitUIPClear() {
		return Registers{}, ErrUpdateStuck
	}
	s := Registers{
		Seconds:    r.read(RegSeconds),
		Minutes:    r.read(RegMinutes),
		Hours:      r.read(RegHours),
		DayOfMonth: r.read(RegDayOfMonth),
		Month:      r.read(RegMonth),
		Year:       r.read(RegYear),
		StatusB:    r.read(RegStatusB),
	}
	if r.centuryIndex != 0 {
		s.Century = r.read(r.centuryIndex)
		s.HasCentury = true
	}
	return s, nil
}

// ReadRegisters returns a consistent snapshot of the clock registers: two
// reads, each after UIP was seen clear, that agree.
func (r *RTC) ReadRegisters() (Registers, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prev, err := r.snapshot()
	if err != nil {
		return Registers{}, err
	}
	for i := 0; i < readAttempts; i++ {
		cur, err := r.snapshot()
		if err != nil {
			return Registers{}, err
		}
		if cur == prev {
			return cur, nil
		}
		prev = cur
	}
	return Registers{}, ErrInconsistent
}

// Time reads the clock and returns it as UTC. PC firmware usually keeps the
// RTC in local time; the caller corrects for that if it knows better.
func (r *RTC) Time() (time.Time, error) {
	regs, err := r.ReadRegisters()
	if err != nil {
		return time.Time{}, err
	}
	return regs.Decode()
}

// decodeField converts a register from BCD or binary and checks its range.
func decodeField(name string, v uint8, binary bool, lo, hi int) (int, error) {
	n := int(v)
	if !binary {
		if v&0x0F > 9 || v>>4 > 9 {
			return 0, fmt.Errorf("%w: %s %#02x is not BCD", ErrInvalid, name, v)
		}
		n = int(v>>4)*10 + int(v&0x0F)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s %d not in %d-%d", ErrInvalid, name, n, lo, hi)
	}
	return n, nil
}

// Decode converts a snapshot to a time in UTC, honouring status B's data
// mode (BCD or binary) and hour format (12 or 24 hours). It rejects values
// that are not a real date and time rather than letting time.Date normalize
// them (February 30th is an error, not March 2nd).
func (s Registers) Decode() (time.Time, error) {
	binary := s.StatusB&StatusBBinary != 0
	sec, err := decodeField("seconds", s.Seconds, binary, 0, 59)
	if err != nil {
		return time.Time{}, err
	}
	min, err := decodeField("minutes", s.Minutes, binary, 0, 59)
	if err != nil {
		return time.Time{}, err
	}
	var hour int
	if s.StatusB&StatusB24Hour != 0 {
		if hour, err = decodeField("hours", s.Hours, binary, 0, 23); err != nil {
			return time.Time{}, err
		}
	} else {
		h12, err := decodeField("hours (12-hour)", s.Hours&^HoursPM, binary, 1, 12)
		if err != nil {
			return time.Time{}, err
		}
		hour = h12 % 12 // 12 AM is hour 0, 12 PM is hour 12
		if s.Hours&HoursPM != 0 {
			hour += 12
		}
	}
	day, err := decodeField("day of month", s.DayOfMonth, binary, 1, 31)
	if err != nil {
		return time.Time{}, err
	}
	month, err := decodeField("month", s.Month, binary, 1, 12)
	if err != nil {
		return time.Time{}, err
	}
	year, err := decodeField("year", s.Year, binary, 0, 99)
	if err != nil {
		return time.Time{}, err
	}
	century := 20
	if s.HasCentury {
		if century, err = decodeField("century", s.Century, binary, 19, 99); err != nil {
			return time.Time{}, err
		}
	}
	year += century * 100
	t := time.Date(year, time.Month(month), day, hour, min, sec, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("%w: %04d-%02d-%02d is not a date", ErrInvalid, year, month, day)
	}
	return t, nil
}

// WaitSecondEdge returns when the seconds register changes, giving the new
// seconds value (0-59). It polls at most limit times, reading seconds only
// while UIP is clear. The edge is the end of an update cycle, so two
// successive edges are one second apart to within the poll interval: a last
// resort reference for calibrating the TSC when no HPET, PM timer or PIT is
// usable.
func (r *RTC) WaitSecondEdge(limit int) (uint8, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("rtc: poll limit %d must be positive", limit)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.waitUIPClear() {
		return 0, ErrUpdateStuck
	}
	binary := r.read(RegStatusB)&StatusBBinary != 0
	start := r.read(RegSeconds)
	for i := 0; i < limit; i++ {
		if r.read(RegStatusA)&StatusAUpdateInProgress != 0 {
			continue
		}
		s := r.read(RegSeconds)
		if s == start {
			continue
		}
		sec, err := decodeField("seconds", s, binary, 0, 59)
		if err != nil {
			return 0, err
		}
		return uint8(sec), nil
	}
	return 0, ErrNoEdge
}
