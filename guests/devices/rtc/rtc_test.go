package rtc

import (
	"testing"
	"time"
)

type hostClock struct{ t time.Time }

func (c *hostClock) now() time.Time { return c.t }

type irqRecorder struct{ levels []bool }

func (r *irqRecorder) SetIRQ(gsi uint32, level bool) {
	if gsi != ISAIRQ {
		panic("wrong line")
	}
	r.levels = append(r.levels, level)
}

// leapDay is Thursday 2024-02-29 13:45:07.25 UTC.
var leapDay = time.Date(2024, 2, 29, 13, 45, 7, 250_000_000, time.UTC)

func newRTC(t testing.TB, at time.Time) (*RTC, *hostClock, *irqRecorder) {
	t.Helper()
	clk := &hostClock{at}
	irq := &irqRecorder{}
	r, err := New(Config{Now: clk.now, Lines: irq, IRQ: ISAIRQ})
	if err != nil {
		t.Fatal(err)
	}
	return r, clk, irq
}

func (r *RTC) get(i uint8) uint8 {
	r.WritePort(IndexPort, 1, uint32(i))
	return uint8(r.ReadPort(DataPort, 1))
}

func (r *RTC) set(i, v uint8) {
	r.WritePort(IndexPort, 1, uint32(i))
	r.WritePort(DataPort, 1, uint32(v))
}

func TestNewNeedsTimeSource(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("RTC without a time source accepted")
	}
}

func checkFields(t *testing.T, r *RTC, want map[uint8]uint8) {
	t.Helper()
	for i, w := range want {
		if got := r.get(i); got != w {
			t.Errorf("register %#x = %#x, want %#x", i, got, w)
		}
	}
}

func TestBCDFieldsAtFixedTime(t *testing.T) {
	r, _, _ := newRTC(t, leapDay)
	checkFields(t, r, map[uint8]uint8{
		RegSeconds: 0x07, RegMinutes: 0x45, RegHours: 0x13, RegWeekday: 5,
		RegDay: 0x29, RegMonth: 0x02, RegYear: 0x24, RegCentury: 0x20,
		RegA: 0x26, RegB: 0x02, RegD: 0x80,
	})
}

func TestBinaryAnd12Hour(t *testing.T) {
	r, clk, _ := newRTC(t, leapDay)
	r.set(RegB, B24Hour|BBinary)
	checkFields(t, r, map[uint8]uint8{RegSeconds: 7, RegMinutes: 45, RegHours: 13, RegYear: 24, RegCentury: 20, RegDay: 29})
	r.set(RegB, 0) // 12-hour BCD
	checkFields(t, r, map[uint8]uint8{RegHours: 0x80 | 0x01})
	clk.t = time.Date(2024, 1, 1, 0, 30, 0, 0, time.UTC)
	checkFields(t, r, map[uint8]uint8{RegHours: 0x12})
	clk.t = time.Date(2024, 1, 1, 12, 30, 0, 0, time.UTC)
	checkFields(t, r, map[uint8]uint8{RegHours: 0x80 | 0x12})
	r.set(RegB, BBinary) // 12-hour binary
	checkFields(t, r, map[uint8]uint8{RegHours: 0x80 | 12})
}

func TestUpdateInProgress(t *testing.T) {
	r, clk, _ := newRTC(t, leapDay)
	if r.get(RegA)&AUIP != 0 {
		t.Fatal("UIP set at .25 s")
	}
	clk.t = leapDay.Add(750*time.Millisecond - 244*time.Microsecond) // 0.999756 s
	if r.get(RegA)&AUIP == 0 {
		t.Fatal("UIP clear 244 us before the update")
	}
	clk.t = leapDay.Add(750*time.Millisecond - 245*time.Microsecond)
	if r.get(RegA)&AUIP != 0 {
		t.Fatal("UIP set 245 us before the update")
	}
	clk.t = leapDay.Add(750*time.Millisecond - time.Microsecond)
	r.set(RegB, BSet|B24Hour)
	if r.get(RegA)&AUIP != 0 {
		t.Fatal("UIP set while SET holds the clock")
	}
	// Register A keeps its writable bits, UIP is not writable.
	r.set(RegB, B24Hour)
	r.set(RegA, 0xFF)
	clk.t = leapDay
	if got := r.get(RegA); got != 0x7F {
		t.Fatalf("register A = %#x after writing 0xff", got)
	}
}

// TestSetTime follows what hwclock --systohc does: SET, write the fields,
// clear SET; the clock then runs from the written time.
func TestSetTime(t *testing.T) {
	r, clk, _ := newRTC(t, leapDay)
	r.set(RegB, BSet|B24Hour)
	// Frozen: time registers hold still while the host clock moves.
	clk.t = clk.t.Add(5 * time.Second)
	if got := r.get(RegSeconds); got != 0x07 {
		t.Fatalf("seconds moved under SET: %#x", got)
	}
	for i, v := range map[uint8]uint8{RegSeconds: 0x30, RegMinutes: 0x15, RegHours: 0x08, RegDay: 0x31, RegMonth: 0x12, RegYear: 0x99, RegCentury: 0x19} {
		r.set(i, v)
	}
	r.set(RegB, B24Hour)
	clk.t = clk.t.Add(2 * time.Second)
	checkFields(t, r, map[uint8]uint8{RegSeconds: 0x32, RegMinutes: 0x15, RegHours: 0x08, RegDay: 0x31, RegMonth: 0x12, RegYear: 0x99, RegCentury: 0x19, RegWeekday: 6})
	// One field while running: minutes only.
	r.set(RegMinutes, 0x59)
	clk.t = clk.t.Add(28 * time.Second) // 08:59:32 + 28 s = 09:00:00
	checkFields(t, r, map[uint8]uint8{RegSeconds: 0x00, RegMinutes: 0x00, RegHours: 0x09})
}

func TestUpdateEndedInterrupt(t *testing.T) {
	r, clk, irq := newRTC(t, leapDay)
	r.set(RegA, 0x20) // no periodic rate: PF stays clear
	r.get(RegC)
	r.set(RegB, B24Hour|BUIE)
	if d, ok := r.NextEvent(); !ok || d != 750*time.Millisecond {
		t.Fatalf("NextEvent = %v, %v; want 750ms", d, ok)
	}
	r.Tick()
	if len(irq.levels) != 0 {
		t.Fatalf("IRQ8 before the second boundary: %v", irq.levels)
	}
	clk.t = leapDay.Add(750 * time.Millisecond)
	r.Tick()
	if len(irq.levels) != 1 || !irq.levels[0] {
		t.Fatalf("IRQ8 %v, want raised at the update", irq.levels)
	}
	if c := r.get(RegC); c != CIRQF|CUF {
		t.Fatalf("register C = %#x, want IRQF|UF", c)
	}
	if len(irq.levels) != 2 || irq.levels[1] {
		t.Fatalf("IRQ8 %v, want lowered by reading C", irq.levels)
	}
	if c := r.get(RegC); c != 0 {
		t.Fatalf("register C = %#x on second read", c)
	}
}

func TestAlarmInterrupt(t *testing.T) {
	r, clk, irq := newRTC(t, leapDay)
	r.set(RegA, 0x20)
	r.set(RegSecondsAlarm, 0x10)
	r.set(RegMinutesAlarm, alarmAny)
	r.set(RegHoursAlarm, 0x13)
	r.set(RegB, B24Hour|BAIE)
	r.get(RegC)
	clk.t = leapDay.Add(time.Second) // 13:45:08
	if c := r.get(RegC); c != CUF {
		t.Fatalf("register C = %#x at :08, want UF only", c)
	}
	clk.t = leapDay.Add(3 * time.Second) // 13:45:10
	r.Tick()
	if c := r.get(RegC); c != CIRQF|CAF|CUF {
		t.Fatalf("register C = %#x at :10, want IRQF|AF|UF", c)
	}
	if len(irq.levels) != 2 {
		t.Fatalf("IRQ8 %v", irq.levels)
	}
}

func TestPeriodicInterrupt(t *testing.T) {
	r, clk, irq := newRTC(t, leapDay)
	r.set(RegA, 0x26) // 1024 Hz
	r.set(RegB, B24Hour|BPIE)
	d, ok := r.NextEvent()
	if !ok || d <= 0 || d > time.Second/1024+1 {
		t.Fatalf("NextEvent = %v, %v", d, ok)
	}
	clk.t = clk.t.Add(d)
	r.Tick()
	if len(irq.levels) != 1 {
		t.Fatalf("IRQ8 %v after one period", irq.levels)
	}
	if c := r.get(RegC); c&(CIRQF|CPF) != CIRQF|CPF {
		t.Fatalf("register C = %#x", c)
	}
	r.set(RegA, 0x2F) // 2 Hz
	if d, ok := r.NextEvent(); !ok || d > time.Second/2 {
		t.Fatalf("NextEvent at 2 Hz = %v", d)
	}
}

func TestRegistersAndRAM(t *testing.T) {
	r, _, _ := newRTC(t, leapDay)
	r.set(RegD, 0)
	r.set(RegC, 0xFF)
	if r.get(RegD) != DVRT || r.get(RegC) != 0 {
		t.Fatal("registers C/D writable")
	}
	r.set(0x40, 0xA5)
	if got := r.get(0x40); got != 0xA5 {
		t.Fatalf("CMOS RAM %#x", got)
	}
	// Bit 7 of the index (NMI mask) is ignored.
	if got := r.get(0x80 | 0x40); got != 0xA5 {
		t.Fatalf("index with NMI bit: %#x", got)
	}
	if got := r.ReadPort(IndexPort, 1); got != 0xFF {
		t.Fatalf("index port read %#x", got)
	}
	// outw(0x70, index | value<<8).
	r.WritePort(IndexPort, 2, 0x5A<<8|0x41)
	if got := r.get(0x41); got != 0x5A {
		t.Fatalf("16-bit index+data write left %#x", got)
	}
}

func TestSetMemorySize(t *testing.T) {
	r, _, _ := newRTC(t, leapDay)
	r.SetMemorySize(3<<30, 5<<30)
	get16 := func(i uint8) int { return int(r.get(i)) | int(r.get(i+1))<<8 }
	if got := get16(RegBaseMemLo); got != 640 {
		t.Errorf("base memory %d KiB", got)
	}
	if got := get16(RegExtMemLo); got != 0xFFFF {
		t.Errorf("extended memory %#x, want saturated", got)
	}
	if got := get16(RegMem16MLo); got != (3<<30-16<<20)>>16 {
		t.Errorf("memory above 16M %#x", got)
	}
	if got := int(r.get(RegMem4GLo)) | int(r.get(RegMem4GMid))<<8 | int(r.get(RegMem4GHi))<<16; got != 5<<30>>16 {
		t.Errorf("memory above 4G %#x", got)
	}
	r.SetMemorySize(8<<20, 0)
	if got := get16(RegExtMemLo); got != 7<<10 {
		t.Errorf("extended memory %d KiB with 8 MiB", got)
	}
}

func TestSetStateKeepsClockOffset(t *testing.T) {
	r, clk, _ := newRTC(t, leapDay)
	r.set(RegHours, 0x02)
	s := r.State()
	r2, _, _ := newRTC(t, clk.t)
	s.Index = 0xFF
	s.CMOS[RegD] = 0
	r2.SetState(s)
	if got := r2.get(RegHours); got != 0x02 {
		t.Fatalf("restored hours %#x", got)
	}
	if got := r2.State(); got.Index >= CMOSSize || got.CMOS[RegD] != DVRT {
		t.Fatalf("SetState kept out-of-range fields")
	}
}

type countingIRQ struct{ n int }

func (c *countingIRQ) SetIRQ(uint32, bool) { c.n++ }

func TestAccessesDoNotAllocate(t *testing.T) {
	clk := &hostClock{leapDay}
	r, err := New(Config{Now: clk.now, Lines: &countingIRQ{}})
	if err != nil {
		t.Fatal(err)
	}
	r.set(RegB, B24Hour|BUIE|BPIE)
	allocs := testing.AllocsPerRun(1000, func() {
		clk.t = clk.t.Add(300 * time.Millisecond)
		for _, i := range [...]uint8{RegSeconds, RegMinutes, RegHours, RegDay, RegA, RegC} {
			r.WritePort(IndexPort, 1, uint32(i))
			r.ReadPort(DataPort, 1)
		}
		r.WritePort(IndexPort, 2, 0x30<<8|RegMinutes)
		r.Tick()
		r.NextEvent()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}
