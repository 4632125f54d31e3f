package tsc

import (
	"errors"
	"strings"
	"testing"
	"time"

	"tamavisor/drivers/hw/hwfake"
)

// within reports whether got is within ppm parts per million of want.
func within(got, want, ppm uint64) bool {
	return differencePPM(got, want) <= ppm
}

func mustCalibrate(t *testing.T, s *sim, srcs []Source, o Options) Result {
	t.Helper()
	res, err := Calibrate(s.tsc, srcs, o)
	if err != nil {
		t.Fatalf("Calibrate: %v (rejected: %q)", err, res.Rejected)
	}
	return res
}

func TestPMTimer24BitWrapsDuringWindow(t *testing.T) {
	s := newSim(2_400_000_000)
	pm := pmTimer(s, 24, 0xffffff-2000) // wraps within the first millisecond
	res := mustCalibrate(t, s, []Source{FromReference(pm)}, Options{})
	if !pm.wrapped {
		t.Fatal("the fake PM timer never wrapped: the test does not test wrap-around")
	}
	if res.Source != "acpi-pm" || len(res.Rejected) != 0 {
		t.Errorf("source %q rejected %q, want acpi-pm and none", res.Source, res.Rejected)
	}
	if !within(res.Hz, 2_400_000_000, 100) {
		t.Errorf("Hz = %d, want 2.4 GHz within 100 ppm", res.Hz)
	}
	if res.Runs != DefaultRuns {
		t.Errorf("Runs = %d, want %d", res.Runs, DefaultRuns)
	}
	if res.SpreadPPM > 100 {
		t.Errorf("SpreadPPM = %d on a perfect simulated clock", res.SpreadPPM)
	}
}

func TestPMTimer32BitAndHPET64Bit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tscHz uint64
		ref   func(*sim) *fakeCounter
	}{
		{"pm32", 3_000_000_000, func(s *sim) *fakeCounter { return pmTimer(s, 32, 0xfffff000) }},
		{"hpet64", 1_000_000_000, func(s *sim) *fakeCounter { return hpet(s, 64) }},
		{"hpet32-wrap", 4_700_000_000, func(s *sim) *fakeCounter {
			h := hpet(s, 32)
			h.offset = 0xffffffff - 50_000
			return h
		}},
		{"bochs-100MHz", 100_000_000, func(s *sim) *fakeCounter { return pmTimer(s, 24, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(tc.tscHz)
			ref := tc.ref(s)
			res := mustCalibrate(t, s, []Source{FromReference(ref)}, Options{})
			if res.Source != ref.name {
				t.Errorf("source %q, want %q", res.Source, ref.name)
			}
			if !within(res.Hz, tc.tscHz, 100) {
				t.Errorf("Hz = %d, want %d within 100 ppm", res.Hz, tc.tscHz)
			}
		})
	}
}

// Reads slowed by SMI-like spikes must not spoil the result: the start and
// end of each run use the narrowest TSC bracket.
func TestSpikyReadsAreBracketed(t *testing.T) {
	s := newSim(2_000_000_000)
	pm := pmTimer(s, 24, 0)
	pm.spike = func(n uint64) uint64 {
		if n%3 == 0 {
			return 300_000_000 // 300 us, 3% of a 10 ms window
		}
		return 0
	}
	res := mustCalibrate(t, s, []Source{FromReference(pm)}, Options{})
	if !within(res.Hz, 2_000_000_000, 200) {
		t.Errorf("Hz = %d, want 2 GHz within 200 ppm despite spikes", res.Hz)
	}
}

func TestFallThroughToRTCAsOnBochs(t *testing.T) {
	s := newSim(100_000_000) // Bochs: TSC at ips=100 MHz
	stuck := &stuckCounter{s: s, name: "hpet"}
	pit := &fakePIT{s: s, never: true}
	rtc := &fakeRTC{s: s, phase: 300_000_000_000, cost: 2_000_000}
	srcs := []Source{FromReference(nil), FromReference(stuck), FromCountdown(pit), FromEdge(rtc)}
	cpu := hwfake.CPUID{
		{Leaf: 0}:    {EAX: 0x16},
		{Leaf: 0x16}: {EAX: 3500, EBX: 3500, ECX: 100},
	}
	claim, ok := CPUIDClaim(cpu)
	if !ok || claim != 3_500_000_000 {
		t.Fatalf("CPUIDClaim = %d, %v; want 3.5 GHz", claim, ok)
	}
	start := s.ps
	res := mustCalibrate(t, s, srcs, Options{ClaimHz: claim})
	if res.Source != "rtc" {
		t.Fatalf("source %q, want rtc", res.Source)
	}
	if !within(res.Hz, 100_000_000, 50) {
		t.Errorf("Hz = %d, want 100 MHz within 50 ppm", res.Hz)
	}
	if res.Runs != DefaultEdgeIntervals {
		t.Errorf("Runs = %d, want %d edge intervals", res.Runs, DefaultEdgeIntervals)
	}
	if el := time.Duration((s.ps - rtc.first) / 1000); el < 2*time.Second || el > 3*time.Second {
		t.Errorf("RTC calibration took %v of simulated time, want 2..3 s (3 edges of a 1 s clock)", el)
	}
	// The dead PIT costs the TSC bound: 4 windows at 10 GHz, 4 s at 100 MHz.
	if el := time.Duration((rtc.first - start) / 1000); el < 4*time.Second || el > 4100*time.Millisecond {
		t.Errorf("rejecting the dead sources took %v of simulated time, want about 4 s", el)
	}
	wantRejected := []struct{ prefix, reason string }{
		{"(absent): ", "not present"},
		{"hpet: ", "not advancing: stuck at 0xdeadbeef"},
		{"pit: ", "never expired"},
	}
	if len(res.Rejected) != len(wantRejected) {
		t.Fatalf("Rejected = %q, want %d entries", res.Rejected, len(wantRejected))
	}
	for i, w := range wantRejected {
		if !strings.HasPrefix(res.Rejected[i], w.prefix) || !strings.Contains(res.Rejected[i], w.reason) {
			t.Errorf("Rejected[%d] = %q, want %q...%q", i, res.Rejected[i], w.prefix, w.reason)
		}
	}
	if stuck.reads > DefaultStallPolls+2*bracketTries {
		t.Errorf("stuck HPET read %d times, want about StallPolls (%d)", stuck.reads, DefaultStallPolls)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "3500.000 MHz") || !strings.Contains(res.Notes[0], "100.000 MHz") {
		t.Errorf("Notes = %q, want one note comparing 100 MHz measured with the 3500 MHz claim", res.Notes)
	}
}

func TestFirstGoodSourceWins(t *testing.T) {
	s := newSim(2_000_000_000)
	pm := pmTimer(s, 24, 0)
	h := hpet(s, 64)
	pit := &fakePIT{s: s}
	res := mustCalibrate(t, s, []Source{FromReference(pm), FromReference(h), FromCountdown(pit)}, Options{})
	if res.Source != "acpi-pm" {
		t.Errorf("source %q, want acpi-pm (first in order)", res.Source)
	}
	if h.reads != 0 || pit.starts != 0 {
		t.Errorf("later sources were touched (hpet reads %d, pit starts %d)", h.reads, pit.starts)
	}
	if len(res.Notes) != 0 {
		t.Errorf("Notes = %q with no claim", res.Notes)
	}
}

func TestPITCountdown(t *testing.T) {
	s := newSim(3_200_000_000)
	pit := &fakePIT{s: s}
	res := mustCalibrate(t, s, []Source{FromCountdown(pit)}, Options{ClaimHz: 3_210_000_000})
	if !within(res.Hz, 3_200_000_000, 300) {
		t.Errorf("Hz = %d, want 3.2 GHz within 300 ppm", res.Hz)
	}
	if pit.starts != DefaultRuns || pit.lastArm != 11932 {
		t.Errorf("PIT started %d times for %d ticks, want %d times 11932 ticks (10 ms)", pit.starts, pit.lastArm, DefaultRuns)
	}
	if len(res.Notes) != 0 {
		t.Errorf("Notes = %q for a claim within 2%%", res.Notes)
	}

	// A window longer than 16 bits of PIT is cut to 65535 ticks.
	s = newSim(3_200_000_000)
	pit = &fakePIT{s: s}
	mustCalibrate(t, s, []Source{FromCountdown(pit)}, Options{Window: 100 * time.Millisecond, Runs: 1})
	if pit.lastArm != 0xffff {
		t.Errorf("long window armed %d ticks, want 65535", pit.lastArm)
	}
}

func TestRejections(t *testing.T) {
	type build func(s *sim) Source
	for _, tc := range []struct {
		name   string
		tscHz  uint64
		stuck  bool
		opts   Options
		src    build
		reason string
	}{
		{"tsc stuck", 2e9, true, Options{}, func(s *sim) Source { return FromReference(pmTimer(s, 24, 0)) }, "TSC"},
		{"tsc too slow", 5_000_000, false, Options{}, func(s *sim) Source { return FromReference(pmTimer(s, 24, 0)) },
			"run 1 measured 5.000 MHz, outside the plausible 10.000 MHz..10000.000 MHz"},
		{"zero Hz", 2e9, false, Options{}, func(s *sim) Source { c := pmTimer(s, 24, 0); c.hz = 0; return FromReference(c) }, "frequency of 0 Hz"},
		{"bad width", 2e9, false, Options{}, func(s *sim) Source { c := pmTimer(s, 24, 0); c.width = 65; return FromReference(c) }, "width of 65 bits"},
		{"backwards", 2e9, false, Options{}, func(s *sim) Source {
			c := pmTimer(s, 32, 0)
			c.override = func(v, n uint64) uint64 {
				if n > 100 {
					return v - 10_000
				}
				return v
			}
			return FromReference(c)
		}, "jumped from"},
		{"reference too slow", 2.4e9, false, Options{}, func(s *sim) Source {
			c := pmTimer(s, 24, 0)
			c.realHz = func(uint64) uint64 { return 1000 } // claims 3.58 MHz, counts at 1 kHz
			return FromReference(c)
		}, "counts slower than its 3579545 Hz"},
		{"runs disagree", 2e9, false, Options{}, func(s *sim) Source {
			c := pmTimer(s, 24, 0)
			// 5% faster after the first run: a drifting reference.
			c.realHz = func(ps uint64) uint64 {
				if ps < 12*psPerSecond/1000 {
					return 3579545
				}
				return 3579545 * 105 / 100
			}
			return FromReference(c)
		}, "runs disagree by"},
		{"pit absent", 2e9, false, Options{}, func(s *sim) Source { return FromCountdown(&fakePIT{s: s, always: true}) }, "expiry on the first read"},
		{"pit never, bounded by polls", 1e9, false, Options{MaxPolls: 1000}, func(s *sim) Source {
			return FromCountdown(&fakePIT{s: s, never: true})
		}, "gave up after 1000 reads"},
		{"pit never, bounded by TSC", 1e9, false, Options{}, func(s *sim) Source {
			return FromCountdown(&fakePIT{s: s, never: true})
		}, "the timer never expired"},
		{"rtc stuck", 3e9, false, Options{}, func(s *sim) Source {
			return FromEdge(&fakeRTC{s: s, cost: 10_000_000, stuck: true})
		}, "first edge: TSC advanced"},
		{"rtc period", 3e9, false, Options{}, func(s *sim) Source {
			return FromEdge(&fakeRTC{s: s, cost: 10_000_000, period: -1})
		}, "impossible period"},
		{"zero source", 3e9, false, Options{}, func(s *sim) Source { return Source{} }, "(absent): not present"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(tc.tscHz)
			s.stuck = tc.stuck
			res, err := Calibrate(s.tsc, []Source{tc.src(s)}, tc.opts)
			if err == nil {
				t.Fatalf("Calibrate accepted %d Hz from %s, want rejection", res.Hz, res.Source)
			}
			if !errors.Is(err, ErrNoSource) {
				t.Errorf("error %v does not wrap ErrNoSource", err)
			}
			if res.Hz != 0 || res.Source != "" {
				t.Errorf("rejected calibration left Hz %d source %q", res.Hz, res.Source)
			}
			if len(res.Rejected) != 1 || !strings.Contains(res.Rejected[0], tc.reason) {
				t.Errorf("Rejected = %q, want one containing %q", res.Rejected, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not contain %q", err, tc.reason)
			}
		})
	}
}

func TestNoSources(t *testing.T) {
	s := newSim(1e9)
	if _, err := Calibrate(s.tsc, nil, Options{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("no sources: err = %v, want ErrNoSource", err)
	}
	if _, err := Calibrate(nil, []Source{FromReference(pmTimer(s, 24, 0))}, Options{}); !errors.Is(err, ErrNoSource) {
		t.Errorf("nil TSC: err = %v, want ErrNoSource", err)
	}
	if _, err := Calibrate(s.tsc, []Source{FromReference(pmTimer(s, 24, 0))}, Options{MinHz: 5, MaxHz: 5}); err == nil {
		t.Error("empty plausible range accepted")
	}
}

func TestCPUIDClaim(t *testing.T) {
	for _, tc := range []struct {
		name string
		cpu  hwfake.CPUID
		hz   uint64
		ok   bool
	}{
		{"crystal and ratio", hwfake.CPUID{
			{Leaf: 0}:    {EAX: 0x16},
			{Leaf: 0x15}: {EAX: 2, EBX: 188, ECX: 25_000_000},
			{Leaf: 0x16}: {EAX: 2300},
		}, 2_350_000_000, true},
		{"ratio without crystal uses base MHz", hwfake.CPUID{
			{Leaf: 0}:    {EAX: 0x16},
			{Leaf: 0x15}: {EAX: 2, EBX: 176, ECX: 0},
			{Leaf: 0x16}: {EAX: 2100},
		}, 2_100_000_000, true},
		{"base MHz only, upper bits ignored", hwfake.CPUID{
			{Leaf: 0}:    {EAX: 0x16},
			{Leaf: 0x16}: {EAX: 0xabcd0000 | 3500},
		}, 3_500_000_000, true},
		{"leaves above the maximum are ignored", hwfake.CPUID{
			{Leaf: 0}:    {EAX: 0x14},
			{Leaf: 0x15}: {EAX: 2, EBX: 188, ECX: 25_000_000},
			{Leaf: 0x16}: {EAX: 2300},
		}, 0, false},
		{"15h present but 16h above maximum", hwfake.CPUID{
			{Leaf: 0}:    {EAX: 0x15},
			{Leaf: 0x15}: {EAX: 2, EBX: 176, ECX: 0},
			{Leaf: 0x16}: {EAX: 2100},
		}, 0, false},
		{"AMD: no leaves", hwfake.CPUID{{Leaf: 0}: {EAX: 0x10}}, 0, false},
		{"zero ratio", hwfake.CPUID{
			{Leaf: 0}:    {EAX: 0x15},
			{Leaf: 0x15}: {EAX: 0, EBX: 0, ECX: 24_000_000},
		}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hz, ok := CPUIDClaim(tc.cpu)
			if hz != tc.hz || ok != tc.ok {
				t.Errorf("CPUIDClaim = %d, %v; want %d, %v", hz, ok, tc.hz, tc.ok)
			}
		})
	}
	if _, ok := CPUIDClaim(nil); ok {
		t.Error("nil CPUID gave a claim")
	}
}

func TestMedianAndSpread(t *testing.T) {
	var r runSet
	for _, v := range []uint64{103, 100, 101, 99, 102} {
		r.add(v)
	}
	if m := r.median(); m != 101 {
		t.Errorf("median = %d, want 101", m)
	}
	if sp := r.spreadPPM(); sp != 39604 { // (103-99)/101 = 3.9604%
		t.Errorf("spread = %d ppm, want 39604", sp)
	}
	r = runSet{}
	r.add(200)
	r.add(100)
	if m := r.median(); m != 150 {
		t.Errorf("even median = %d, want 150", m)
	}
}

func TestScaleSaturates(t *testing.T) {
	if v := scale(1<<63, 1<<63, 1); v != ^uint64(0) {
		t.Errorf("overflowing scale = %#x, want saturation", v)
	}
	if v := scale(5, 5, 0); v != ^uint64(0) {
		t.Errorf("scale by /0 = %#x, want saturation", v)
	}
	if v := scale(10, 1, 4); v != 3 { // 2.5 rounds to 3
		t.Errorf("scale(10,1,4) = %d, want 3", v)
	}
	if v := scale(1e18, 1e10, 1e12); v != 1e16 {
		t.Errorf("scale with 128-bit product = %d, want 1e16", v)
	}
}

func TestFormatHz(t *testing.T) {
	for hz, want := range map[uint64]string{
		2_494_221_400: "2494.221 MHz",
		100_000_000:   "100.000 MHz",
		3_579_545:     "3.580 MHz",
		0:             "0.000 MHz",
	} {
		if got := FormatHz(hz); got != want {
			t.Errorf("FormatHz(%d) = %q, want %q", hz, got, want)
		}
	}
}
