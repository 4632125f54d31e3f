package pmtimer

import "testing"

type manualClock struct{ ns int64 }

func (c *manualClock) Now() int64 { return c.ns }

type irqRecorder struct{ levels []bool }

func (r *irqRecorder) SetIRQ(gsi uint32, level bool) {
	if gsi != 9 {
		panic("wrong line")
	}
	r.levels = append(r.levels, level)
}

const base = 0x600 // q35's PMBASE

type harness struct {
	pm       *PM
	clk      *manualClock
	sci      *irqRecorder
	powerOff int
	sleeps   []uint8
}

func newPM(t testing.TB, timer32 bool) *harness {
	t.Helper()
	h := &harness{clk: &manualClock{}, sci: &irqRecorder{}}
	cfg := Config{
		Clock:       h.clk,
		Timer32:     timer32,
		S5SleepType: 5,
		PowerOff:    func() { h.powerOff++ },
		Sleep:       func(typ uint8) { h.sleeps = append(h.sleeps, typ) },
		Lines:       h.sci,
		SCI:         9,
	}
	cfg.Layout(base)
	pm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.pm = pm
	return h
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no clock accepted")
	}
	clk := &manualClock{}
	if _, err := New(Config{Clock: clk, EventBlock: 0x600, ControlBlock: 0x602, TimerPort: 0x608}); err == nil {
		t.Error("overlapping blocks accepted")
	}
	if _, err := New(Config{Clock: clk, EventBlock: 0x600, ControlBlock: 0x604, TimerPort: 0x608, S5SleepType: 8}); err == nil {
		t.Error("sleep type 8 accepted")
	}
}

func TestTimerValueAndWrap(t *testing.T) {
	h := newPM(t, false)
	for _, c := range []struct {
		ns   int64
		want uint32
	}{
		{0, 0},
		{1_000_000_000, 3579545},
		{4686968596, 1<<24 - 1}, // first instant of tick 2^24-1
		{4686968875, 0},         // tick 2^24 wraps to 0
		{10_000_000_000, 2241018},
	} {
		h.clk.ns = c.ns
		if got := h.pm.ReadPort(base+8, 4); got != c.want {
			t.Errorf("PM_TMR at %d ns = %#x, want %#x", c.ns, got, c.want)
		}
	}
	// Byte reads see the same counter.
	h.clk.ns = 1_000_000_000
	var v uint32
	for i := uint16(0); i < 4; i++ {
		v |= h.pm.ReadPort(base+8+i, 1) << (8 * i)
	}
	if v != 3579545 {
		t.Fatalf("byte-wise PM_TMR = %#x", v)
	}
	h.pm.WritePort(base+8, 4, 0)
	if got := h.pm.ReadPort(base+8, 4); got != 3579545 {
		t.Fatal("timer writable")
	}
}

func TestTimer32(t *testing.T) {
	h := newPM(t, true)
	h.clk.ns = 10_000_000_000
	if got := h.pm.ReadPort(base+8, 4); got != 35795450 {
		t.Fatalf("32-bit PM_TMR = %d", got)
	}
}

func TestTimerStatus(t *testing.T) {
	h := newPM(t, false)
	h.clk.ns = 2343484438 - 1
	if st := h.pm.ReadPort(base, 2); st&uint32(StatusTimer) != 0 {
		t.Fatal("TMR_STS before bit 23 changed")
	}
	h.pm.WritePort(base+2, 2, uint32(EnableTimer))
	h.clk.ns = 2343484438 // tick 2^23
	h.pm.ReadPort(base+8, 4)
	if st := h.pm.ReadPort(base, 2); st&uint32(StatusTimer) == 0 {
		t.Fatal("TMR_STS clear after bit 23 changed")
	}
	if len(h.sci.levels) != 1 || !h.sci.levels[0] {
		t.Fatalf("SCI %v, want raised by TMR_STS with TMR_EN", h.sci.levels)
	}
	h.pm.WritePort(base, 2, uint32(StatusTimer))
	if st := h.pm.ReadPort(base, 2); st&uint32(StatusTimer) != 0 {
		t.Fatal("write 1 did not clear TMR_STS")
	}
	if len(h.sci.levels) != 2 || h.sci.levels[1] {
		t.Fatalf("SCI %v, want lowered", h.sci.levels)
	}
}

func TestControlReadsACPIMode(t *testing.T) {
	h := newPM(t, false)
	if got := h.pm.ReadPort(base+4, 2); got != uint32(ControlSCIEnable) {
		t.Fatalf("PM1a_CNT = %#x, want SCI_EN", got)
	}
	h.pm.WritePort(base+4, 2, 0) // the OS cannot leave ACPI mode
	if got := h.pm.ReadPort(base+4, 2); got&uint32(ControlSCIEnable) == 0 {
		t.Fatal("SCI_EN cleared")
	}
}

// TestS5PowerOff replays ACPICA's acpi_hw_legacy_sleep: write SLP_TYP,
// then SLP_TYP|SLP_EN, 16 bits each.
func TestS5PowerOff(t *testing.T) {
	h := newPM(t, false)
	cnt := h.pm.ReadPort(base+4, 2)
	cnt &^= uint32(ControlSleepType | ControlSleepEnable)
	cnt |= 5 << 10
	h.pm.WritePort(base+4, 2, cnt)
	if h.powerOff != 0 {
		t.Fatal("PowerOff before SLP_EN")
	}
	h.pm.WritePort(base+4, 2, cnt|uint32(ControlSleepEnable))
	if h.powerOff != 1 {
		t.Fatalf("PowerOff called %d times, want 1", h.powerOff)
	}
	if got := h.pm.ReadPort(base+4, 2); got&uint32(ControlSleepEnable) != 0 || got&uint32(ControlSleepType) != 5<<10 {
		t.Fatalf("PM1a_CNT after S5 = %#x", got)
	}
	h.pm.WritePort(base+4, 2, cnt|uint32(ControlSleepEnable))
	if h.powerOff != 1 {
		t.Fatalf("PowerOff called %d times after a second S5 write", h.powerOff)
	}
	if len(h.sleeps) != 0 {
		t.Fatalf("Sleep called for S5: %v", h.sleeps)
	}
	h.pm.Reset()
	h.pm.WritePort(base+5, 1, 5<<2|1<<5) // byte write to the high half
	if h.powerOff != 2 {
		t.Fatalf("PowerOff not called after Reset by a byte write (%d)", h.powerOff)
	}
}

func TestOtherSleepType(t *testing.T) {
	h := newPM(t, false)
	h.pm.WritePort(base+4, 2, 1<<10|uint32(ControlSleepEnable))
	if h.powerOff != 0 || len(h.sleeps) != 1 || h.sleeps[0] != 1 {
		t.Fatalf("powerOff %d sleeps %v, want Sleep(1)", h.powerOff, h.sleeps)
	}
	// A 32-bit write at the event block covers status and enable only.
	h.pm.WritePort(base, 4, 0xFFFFFFFF)
	if len(h.sleeps) != 1 || h.powerOff != 0 {
		t.Fatal("event block write reached the control register")
	}
}

func TestPowerButton(t *testing.T) {
	h := newPM(t, false)
	h.pm.PowerButton()
	if len(h.sci.levels) != 0 {
		t.Fatal("SCI raised with PWRBTN_EN clear")
	}
	h.pm.WritePort(base+2, 2, 0xFFFF)
	if en := h.pm.ReadPort(base+2, 2); en != uint32(enableWritable) {
		t.Fatalf("PM1_EN = %#x, want only the defined bits %#x", en, enableWritable)
	}
	if len(h.sci.levels) != 1 || !h.sci.levels[0] {
		t.Fatalf("SCI %v, want raised once enabled", h.sci.levels)
	}
	if st := h.pm.ReadPort(base+1, 1); st&uint32(StatusPowerButton>>8) == 0 {
		t.Fatalf("PWRBTN_STS clear in the status high byte: %#x", st)
	}
	h.pm.WritePort(base+1, 1, uint32(StatusPowerButton>>8))
	if len(h.sci.levels) != 2 || h.sci.levels[1] {
		t.Fatalf("SCI %v, want lowered after clearing PWRBTN_STS", h.sci.levels)
	}
}

func TestUnclaimedPortsAndState(t *testing.T) {
	h := newPM(t, false)
	if got := h.pm.ReadPort(base+6, 2); got != 0xFFFF {
		t.Fatalf("gap between blocks reads %#x", got)
	}
	s := h.pm.State()
	s.Status = 0xFFFF
	s.Enable = 0xFFFF
	s.Control = 0xFFFF
	h.pm.SetState(s)
	got := h.pm.State()
	if got.Status&^statusWritable != 0 || got.Enable&^enableWritable != 0 || got.Control&ControlSleepEnable != 0 {
		t.Fatalf("SetState kept undefined bits: %+v", got)
	}
	if !got.SCILevel {
		t.Fatal("SetState did not drive the SCI")
	}
}

type countingIRQ struct{ n int }

func (c *countingIRQ) SetIRQ(uint32, bool) { c.n++ }

func TestAccessesDoNotAllocate(t *testing.T) {
	clk := &manualClock{}
	cfg := Config{Clock: clk, Lines: &countingIRQ{}, S5SleepType: 5, PowerOff: func() {}}
	cfg.Layout(base)
	pm, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		clk.ns += 1_000_000_000
		pm.ReadPort(base+8, 4)
		pm.ReadPort(base, 4)
		pm.WritePort(base, 2, 0xFFFF)
		pm.WritePort(base+2, 2, 0x0121)
		pm.WritePort(base+4, 2, 5<<10|1<<13)
		pm.PowerButton()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}
