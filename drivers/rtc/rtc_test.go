package rtc

import (
	"errors"
	"testing"
	"time"
)

// fakeCMOS models the index/data pair of an MC146818: 128 bytes, UIP in
// register A driven by a script, and hooks to change the time between reads.
type fakeCMOS struct {
	ram        [128]uint8
	index      uint8
	indexes    []uint8 // every byte written to port 0x70
	uipFor     int     // status A reads that still see UIP set
	uipForever bool
	onRead     func(f *fakeCMOS, idx uint8) // runs before each data read
	reads      int
}

func (f *fakeCMOS) In8(port uint16) uint8 {
	if port != DataPort {
		return 0xFF
	}
	idx := f.index & 0x7F
	f.reads++
	if f.onRead != nil {
		f.onRead(f, idx)
	}
	if idx == RegStatusA {
		if f.uipForever || f.uipFor > 0 {
			if f.uipFor > 0 {
				f.uipFor--
			}
			return f.ram[idx] | StatusAUpdateInProgress
		}
		return f.ram[idx] &^ StatusAUpdateInProgress
	}
	return f.ram[idx]
}

func (f *fakeCMOS) Out8(port uint16, v uint8) {
	if port == IndexPort {
		f.index = v
		f.indexes = append(f.indexes, v)
		return
	}
	if port == DataPort {
		f.ram[f.index&0x7F] = v
	}
}

func (f *fakeCMOS) In16(uint16) uint16   { return 0xFFFF }
func (f *fakeCMOS) In32(uint16) uint32   { return 0xFFFFFFFF }
func (f *fakeCMOS) Out16(uint16, uint16) {}
func (f *fakeCMOS) Out32(uint16, uint32) {}

func (f *fakeCMOS) set(sec, min, hour, day, month, year, statusB uint8) {
	f.ram[RegSeconds], f.ram[RegMinutes], f.ram[RegHours] = sec, min, hour
	f.ram[RegDayOfMonth], f.ram[RegMonth], f.ram[RegYear] = day, month, year
	f.ram[RegStatusB] = statusB
}

func mustNew(t *testing.T, f *fakeCMOS, century uint8) *RTC {
	t.Helper()
	r, err := New(f, century)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBCD12HourPM(t *testing.T) {
	f := &fakeCMOS{}
	// 2024-02-29 11:59:58 PM, BCD, 12-hour mode (status B bits 1 and 2 clear).
	f.set(0x58, 0x59, HoursPM|0x11, 0x29, 0x02, 0x24, 0x00)
	got, err := mustNew(t, f, 0).Time()
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time = %v, want %v", got, want)
	}
}

func TestHourFormats(t *testing.T) {
	for _, c := range []struct {
		hours, statusB uint8
		want           int
	}{
		{0x12, 0, 0},                            // 12 AM, BCD
		{HoursPM | 0x12, 0, 12},                 // 12 PM, BCD
		{HoursPM | 0x01, 0, 13},                 // 1 PM, BCD
		{0x11, 0, 11},                           // 11 AM, BCD
		{HoursPM | 12, StatusBBinary, 12},       // 12 PM, binary
		{HoursPM | 11, StatusBBinary, 23},       // 11 PM, binary
		{0x23, StatusB24Hour, 23},               // 24-hour BCD
		{23, StatusB24Hour | StatusBBinary, 23}, // 24-hour binary
		{0, StatusB24Hour | StatusBBinary, 0},
	} {
		f := &fakeCMOS{}
		if c.statusB&StatusBBinary != 0 {
			f.set(1, 2, c.hours, 3, 4, 25, c.statusB)
		} else {
			f.set(0x01, 0x02, c.hours, 0x03, 0x04, 0x25, c.statusB)
		}
		got, err := mustNew(t, f, 0).Time()
		if err != nil {
			t.Errorf("hours %#x status B %#x: %v", c.hours, c.statusB, err)
			continue
		}
		if got.Hour() != c.want || got.Year() != 2025 || got.Minute() != 2 || got.Second() != 1 {
			t.Errorf("hours %#x status B %#x: got %v, want hour %d of 2025-04-03 xx:02:01", c.hours, c.statusB, got, c.want)
		}
	}
}

func TestCenturyRegister(t *testing.T) {
	f := &fakeCMOS{}
	f.set(0x00, 0x00, 0x00, 0x31, 0x12, 0x99, StatusB24Hour)
	f.ram[0x32] = 0x19
	got, err := mustNew(t, f, 0x32).Time()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Time = %v, want %v", got, want)
	}
	// Binary mode applies to the century byte too.
	f.set(0, 0, 0, 1, 1, 5, StatusB24Hour|StatusBBinary)
	f.ram[0x32] = 21
	got, err = mustNew(t, f, 0x32).Time()
	if err != nil || got.Year() != 2105 {
		t.Errorf("binary century: %v, %v; want year 2105", got, err)
	}
	for _, bad := range []uint8{0x01, 0x0D, 0x80, 0xFF} {
		if _, err := New(f, bad); err == nil {
			t.Errorf("New with century index %#x succeeded", bad)
		}
	}
}

func TestInvalidValues(t *testing.T) {
	for _, c := range []struct {
		name                                  string
		sec, min, hour, day, month, year, stb uint8
	}{
		{"non-BCD seconds", 0x1A, 0, 0, 1, 1, 0, StatusB24Hour},
		{"minutes 60", 0x60, 0, 0, 1, 1, 0, StatusB24Hour},
		{"hour 24", 0, 0, 0x24, 1, 1, 0, StatusB24Hour},
		{"12h hour 0", 0, 0, 0x00, 1, 1, 0, 0},
		{"12h hour 13", 0, 0, 0x13, 1, 1, 0, 0},
		{"month 13", 0, 0, 0, 1, 0x13, 0, StatusB24Hour},
		{"day 0", 0, 0, 0, 0, 1, 0, StatusB24Hour},
		{"February 30", 0, 0, 0, 0x30, 0x02, 0x24, StatusB24Hour},
		{"February 29 of 2023", 0, 0, 0, 0x29, 0x02, 0x23, StatusB24Hour},
		{"floating bus", 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
	} {
		f := &fakeCMOS{}
		f.set(c.sec, c.min, c.hour, c.day, c.month, c.year, c.stb)
		if got, err := mustNew(t, f, 0).Time(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Time = %v, %v; want ErrInvalid", c.name, got, err)
		}
	}
}

func TestWaitsOutUpdateInProgress(t *testing.T) {
	f := &fakeCMOS{uipFor: 50}
	f.set(0x10, 0x20, 0x08, 0x15, 0x06, 0x25, StatusB24Hour)
	got, err := mustNew(t, f, 0).Time()
	if err != nil {
		t.Fatal(err)
	}
	if got.Hour() != 8 || got.Minute() != 20 || got.Second() != 10 {
		t.Errorf("Time = %v", got)
	}
	if f.uipFor != 0 {
		t.Errorf("read the time while UIP was still set (%d UIP reads left)", f.uipFor)
	}

	g := &fakeCMOS{uipForever: true}
	_, err = mustNew(t, g, 0).Time()
	if !errors.Is(err, ErrUpdateStuck) {
		t.Fatalf("Time with UIP stuck = %v, want ErrUpdateStuck", err)
	}
	if g.reads > UIPPollLimit+1 {
		t.Errorf("gave up after %d reads, want at most %d", g.reads, UIPPollLimit+1)
	}
}

func TestDoubleReadCatchesRollover(t *testing.T) {
	f := &fakeCMOS{}
	f.set(0x59, 0x59, 0x23, 0x31, 0x12, 0x24, StatusB24Hour)
	// The clock rolls over to the new year while the first snapshot is
	// being taken (after the seconds were read, before the year).
	rolled := false
	f.onRead = func(f *fakeCMOS, idx uint8) {
		if idx == RegMinutes && !rolled {
			rolled = true
			f.set(0x00, 0x00, 0x00, 0x01, 0x01, 0x25, StatusB24Hour)
		}
	}
	got, err := mustNew(t, f, 0).Time()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Time = %v, want %v (a torn read would mix the two)", got, want)
	}

	// A clock that changes on every read never gives two equal snapshots.
	g := &fakeCMOS{}
	g.set(0, 0, 0, 1, 1, 0x25, StatusB24Hour|StatusBBinary)
	g.onRead = func(f *fakeCMOS, idx uint8) {
		if idx == RegSeconds {
			f.ram[RegSeconds] = (f.ram[RegSeconds] + 1) % 60
		}
	}
	if _, err := mustNew(t, g, 0).Time(); !errors.Is(err, ErrInconsistent) {
		t.Errorf("Time on a racing clock = %v, want ErrInconsistent", err)
	}
}

func TestNMIBit(t *testing.T) {
	f := &fakeCMOS{}
	f.set(0, 0, 0, 1, 1, 0, StatusB24Hour)
	r := mustNew(t, f, 0)
	if _, err := r.Time(); err != nil {
		t.Fatal(err)
	}
	for _, v := range f.indexes {
		if v&IndexNMIDisable != 0 {
			t.Fatalf("index write %#x has NMI-disable set by default", v)
		}
	}
	f.indexes = nil
	r.SetNMIDisabled(true)
	if _, err := r.Time(); err != nil {
		t.Fatal(err)
	}
	if len(f.indexes) == 0 {
		t.Fatal("no index writes")
	}
	for _, v := range f.indexes {
		if v&IndexNMIDisable == 0 {
			t.Fatalf("index write %#x lacks NMI-disable after SetNMIDisabled(true)", v)
		}
	}
}

func TestWaitSecondEdge(t *testing.T) {
	f := &fakeCMOS{}
	f.set(0x09, 0, 0, 1, 1, 0, StatusB24Hour)
	polls := 0
	f.onRead = func(f *fakeCMOS, idx uint8) {
		if idx == RegStatusA {
			polls++
			switch polls {
			case 100:
				f.uipFor = 3 // an update cycle begins...
			case 103:
				f.ram[RegSeconds] = 0x10 // ...and ends with the new second
			}
		}
	}
	sec, err := mustNew(t, f, 0).WaitSecondEdge(1000)
	if err != nil || sec != 10 {
		t.Fatalf("WaitSecondEdge = %d, %v; want 10", sec, err)
	}
	if polls < 103 {
		t.Errorf("returned after %d polls, before the edge", polls)
	}

	g := &fakeCMOS{}
	g.set(0x09, 0, 0, 1, 1, 0, StatusB24Hour)
	if _, err := mustNew(t, g, 0).WaitSecondEdge(500); !errors.Is(err, ErrNoEdge) {
		t.Errorf("WaitSecondEdge on a stopped clock = %v, want ErrNoEdge", err)
	}
	if g.reads > 2*500+4 {
		t.Errorf("stopped clock: %d reads for a limit of 500 polls", g.reads)
	}
	if _, err := mustNew(t, g, 0).WaitSecondEdge(0); err == nil {
		t.Error("WaitSecondEdge(0) succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{0x58, 0x59, 0x91, 0x29, 0x02, 0x24, 0x19, 0x00, 1})
	f.Add([]byte{59, 59, 23, 31, 12, 99, 20, StatusB24Hour | StatusBBinary, 0})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in [9]byte
		copy(in[:], b)
		s := Registers{in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8]&1 != 0}
		tm, err := s.Decode()
		if err != nil {
			return
		}
		if tm.Location() != time.UTC {
			t.Fatalf("%+v decoded to a non-UTC time", s)
		}
		lo, hi := 2000, 2099
		if s.HasCentury {
			lo, hi = 1900, 9999
		}
		if tm.Year() < lo || tm.Year() > hi || tm.Nanosecond() != 0 {
			t.Fatalf("%+v decoded to %v", s, tm)
		}
		// The decoded fields must re-encode to the registers (the
		// hour register aside, which has two 12-hour spellings of noon
		// and midnight only through the PM bit).
		binary := s.StatusB&StatusBBinary != 0
		enc := func(n int) uint8 {
			if binary {
				return uint8(n)
			}
			return uint8(n/10<<4 | n%10)
		}
		if enc(tm.Second()) != s.Seconds || enc(tm.Minute()) != s.Minutes ||
			enc(tm.Day()) != s.DayOfMonth || enc(int(tm.Month())) != s.Month || enc(tm.Year()%100) != s.Year {
			t.Fatalf("%+v decoded to %v, which does not re-encode", s, tm)
		}
	})
}
