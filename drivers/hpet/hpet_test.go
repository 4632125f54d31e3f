package hpet

import (
	"errors"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

const testBase = 0xFED00000

// QEMU's HPET: revision 1, three timers, 64-bit counter, legacy route
// capable, vendor 0x8086, 10 ns period.
const qemuCaps = 0x0098_9680_8086_A201

func TestParseCapabilities(t *testing.T) {
	c, err := ParseCapabilities(qemuCaps)
	if err != nil {
		t.Fatal(err)
	}
	want := Capabilities{Revision: 1, NumTimers: 3, Counter64: true, LegacyRouteCap: true, VendorID: 0x8086, PeriodFs: 10_000_000}
	if c != want {
		t.Errorf("ParseCapabilities = %+v, want %+v", c, want)
	}
	if c.FrequencyHz() != 100_000_000 {
		t.Errorf("FrequencyHz = %d, want 100 MHz", c.FrequencyHz())
	}
	// Intel PCH: 14.31818 MHz, 69841279 fs, 32-bit counter, 8 timers.
	pch, err := ParseCapabilities(0x0429_B17F_8086_0701)
	if err != nil {
		t.Fatal(err)
	}
	if pch.Counter64 || pch.NumTimers != 8 || pch.FrequencyHz() != 14_318_180 {
		t.Errorf("PCH HPET: %+v, %d Hz", pch, pch.FrequencyHz())
	}
	// The longest period the spec allows is accepted.
	if c, err := ParseCapabilities(uint64(MaxPeriodFs)<<32 | 1); err != nil || c.FrequencyHz() != 10_000_000 {
		t.Errorf("period 100 ns: %+v, %v", c, err)
	}
	for name, v := range map[string]uint64{
		"all ones":        0xFFFF_FFFF_FFFF_FFFF,
		"zero":            0,
		"revision 0":      0x0098_9680_8086_A200,
		"period 0":        0x0000_0000_8086_A201,
		"period > 100 ns": uint64(MaxPeriodFs+1)<<32 | 1,
	} {
		if _, err := ParseCapabilities(v); !errors.Is(err, ErrUnusable) {
			t.Errorf("%s (%#x): %v, want ErrUnusable", name, v, err)
		}
	}
}

func TestNewRejectsMissingHPET(t *testing.T) {
	mem := hwfake.NewMemory() // unmapped: reads zero
	if _, err := New(mem, testBase); !errors.Is(err, ErrUnusable) {
		t.Errorf("New on zeros: %v", err)
	}
	if _, err := New(mem, testBase+4); err == nil {
		t.Error("misaligned base accepted")
	}
}

func TestEnableDisable(t *testing.T) {
	mem := hwfake.NewMemory()
	mem.Write64(testBase+RegCapabilities, qemuCaps)
	mem.Write64(testBase+RegConfig, ConfigLegacyRoute)
	h, err := New(mem, testBase)
	if err != nil {
		t.Fatal(err)
	}
	h.Enable()
	if got := mem.Read64(testBase + RegConfig); got != ConfigEnable|ConfigLegacyRoute {
		t.Errorf("config after Enable = %#x", got)
	}
	if !h.Enabled() {
		t.Error("Enabled = false")
	}
	h.Disable()
	if got := mem.Read64(testBase + RegConfig); got != ConfigLegacyRoute {
		t.Errorf("config after Disable = %#x", got)
	}
}

func TestCounterWidth(t *testing.T) {
	mem := hwfake.NewMemory()
	mem.Write64(testBase+RegCapabilities, qemuCaps)
	var widths []int
	mem.OnRead[testBase+RegMainCounter] = func(w int) uint64 {
		widths = append(widths, w)
		return 0x1234_5678_9ABC_DEF0 & (1<<(8*uint(w)) - 1)
	}
	h, _ := New(mem, testBase)
	if got := h.Counter(); got != 0x1234_5678_9ABC_DEF0 || widths[0] != 8 {
		t.Errorf("64-bit counter read %#x with width %v", got, widths)
	}
	if h.Elapsed(10, 5) != ^uint64(0)-4 {
		t.Errorf("64-bit Elapsed(10, 5) = %#x", h.Elapsed(10, 5))
	}

	mem.Write64(testBase+RegCapabilities, qemuCaps&^Cap64BitCounter)
	widths = nil
	h32, _ := New(mem, testBase)
	if got := h32.Counter(); got != 0x9ABC_DEF0 || widths[0] != 4 {
		t.Errorf("32-bit counter read %#x with width %v, want 0x9abcdef0 with one 32-bit access", got, widths)
	}
	if h32.CounterMask() != 0xFFFF_FFFF {
		t.Errorf("CounterMask = %#x", h32.CounterMask())
	}
	if got := h32.Elapsed(0xFFFF_FFF0, 0x10); got != 0x20 {
		t.Errorf("Elapsed across the 32-bit wrap = %#x, want 0x20", got)
	}
}

func TestDisableTimerInterrupts(t *testing.T) {
	mem := hwfake.NewMemory()
	mem.Write64(testBase+RegCapabilities, qemuCaps)
	for n := uint64(0); n < 3; n++ {
		mem.Write64(testBase+RegTimer0Config+n*TimerStride, 0x30|TimerIntEnable|n<<9)
	}
	mem.Write64(testBase+RegTimer0Config+3*TimerStride, TimerIntEnable) // not a timer here
	h, _ := New(mem, testBase)
	h.DisableTimerInterrupts()
	for n := uint64(0); n < 3; n++ {
		if got := mem.Read64(testBase + RegTimer0Config + n*TimerStride); got != 0x30|n<<9 {
			t.Errorf("timer %d config = %#x", n, got)
		}
	}
	if mem.Read64(testBase+RegTimer0Config+3*TimerStride) != TimerIntEnable {
		t.Error("touched a timer past NUM_TIM_CAP")
	}
}

func FuzzParseCapabilities(f *testing.F) {
	f.Add(uint64(qemuCaps))
	f.Add(uint64(0x0429_B17F_8086_0701))
	f.Add(uint64(0))
	f.Add(^uint64(0))
	f.Fuzz(func(t *testing.T, v uint64) {
		c, err := ParseCapabilities(v)
		if err != nil {
			return
		}
		if c.Revision == 0 || c.PeriodFs == 0 || c.PeriodFs > MaxPeriodFs || c.NumTimers < 1 || c.NumTimers > 32 {
			t.Fatalf("accepted %#x as %+v", v, c)
		}
		if hz := c.FrequencyHz(); hz < 10_000_000 || hz > femtosecondsPerSecond {
			t.Fatalf("%#x: frequency %d Hz", v, hz)
		}
	})
}
