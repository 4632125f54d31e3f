package tsc

import (
	"math"
	"math/big"
	"math/rand"
	"testing"
)

// exactScale is floor(x * num / den) in arbitrary precision, and whether it
// fits in 64 bits.
func exactScale(x, num, den uint64) (uint64, bool) {
	v := new(big.Int).SetUint64(x)
	v.Mul(v, new(big.Int).SetUint64(num))
	v.Quo(v, new(big.Int).SetUint64(den))
	return v.Uint64(), v.IsUint64()
}

// checkConversion asserts got is floor(x*num/den) or one more, or saturated.
func checkConversion(t *testing.T, what string, x, num, den, got uint64) {
	t.Helper()
	want, fits := exactScale(x, num, den)
	if !fits {
		if got != math.MaxUint64 {
			t.Errorf("%s(%d) at %d/%d = %d, want saturation at MaxUint64", what, x, num, den, got)
		}
		return
	}
	if got != want && (got != want+1 || want == math.MaxUint64) {
		t.Errorf("%s(%d) at %d/%d = %d, want %d (or one more)", what, x, num, den, got, want)
	}
}

var clockFrequencies = []uint64{
	1, 3, 1193182, 3579545, 14318180, 100_000_000, 999_999_999, 1_000_000_000,
	1_000_000_001, 2_400_000_000, 2_494_221_400, 3_600_000_000, 5_000_000_000,
	10_000_000_000, math.MaxUint64,
}

func TestClockAgainstExactArithmetic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, hz := range clockFrequencies {
		c, err := NewClock(hz)
		if err != nil {
			t.Fatal(err)
		}
		if c.Hz() != hz {
			t.Errorf("Hz() = %d, want %d", c.Hz(), hz)
		}
		ticks := []uint64{0, 1, 2, hz - 1, hz, hz + 1, 1 << 32, 1 << 53, 1<<63 - 1, 1 << 63, math.MaxUint64}
		for i := 0; i < 2000; i++ {
			ticks = append(ticks, rng.Uint64()>>uint(rng.Intn(64)))
		}
		for _, tk := range ticks {
			checkConversion(t, "Nanoseconds", tk, 1e9, hz, c.Nanoseconds(tk))
			checkConversion(t, "Ticks", tk, hz, 1e9, c.Ticks(tk))
		}
	}
}

// Years of uptime at 5 GHz: a float64 multiplier (as TamaGo's GetTime uses)
// loses nanoseconds once the tick count passes 2^53; the fixed-point clock
// stays exact to the nanosecond.
func TestClockLongUptime(t *testing.T) {
	const hz = 5_000_000_000
	c, err := NewClock(hz)
	if err != nil {
		t.Fatal(err)
	}
	const secondsPerYear = 365*24*3600 + 6*3600
	for _, years := range []uint64{1, 10, 50, 100} {
		ticks := years * secondsPerYear * hz
		want := years * secondsPerYear * 1_000_000_000
		if got := c.Nanoseconds(ticks); got != want {
			t.Errorf("%d years of ticks at 5 GHz = %d ns, want %d", years, got, want)
		}
		// One tick more is 0.2 ns: still the same nanosecond; five more
		// is exactly one more.
		if got := c.Nanoseconds(ticks + 5); got != want+1 {
			t.Errorf("%d years + 5 ticks = %d ns, want %d", years, got, want+1)
		}
		if got := c.Ticks(want); got != ticks {
			t.Errorf("Ticks(%d years) = %d, want %d", years, got, ticks)
		}
	}
	// An odd frequency, where the fraction is not exact in binary: after a
	// decade the conversion is still exact to the nanosecond.
	c, _ = NewClock(2_494_221_413)
	ticks := uint64(10*secondsPerYear) * 2_494_221_413
	if got, want := c.Nanoseconds(ticks), uint64(10*secondsPerYear)*1_000_000_000; got != want {
		t.Errorf("decade at 2494221413 Hz = %d ns, want %d", got, want)
	}
}

func TestClockMonotonic(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for _, hz := range clockFrequencies {
		c, _ := NewClock(hz)
		for i := 0; i < 2000; i++ {
			tk := rng.Uint64() >> uint(rng.Intn(64))
			if tk == math.MaxUint64 {
				continue
			}
			if a, b := c.Nanoseconds(tk), c.Nanoseconds(tk+1); b < a {
				t.Fatalf("hz %d: Nanoseconds(%d) = %d > Nanoseconds(%d) = %d", hz, tk, a, tk+1, b)
			}
		}
	}
}

func TestClockZeroAndErrors(t *testing.T) {
	if _, err := NewClock(0); err == nil {
		t.Error("NewClock(0) accepted")
	}
	var c Clock
	if c.Nanoseconds(12345) != 0 || c.Ticks(12345) != 0 {
		t.Error("zero Clock does not return 0")
	}
}

func TestClockDoesNotAllocate(t *testing.T) {
	c, _ := NewClock(2_494_221_400)
	var sink uint64
	allocs := testing.AllocsPerRun(1000, func() {
		sink += c.Nanoseconds(sink + 123456789)
		sink += c.Ticks(sink)
	})
	if allocs != 0 {
		t.Errorf("conversion allocates %.1f times per call", allocs)
	}
}

func FuzzClock(f *testing.F) {
	f.Add(uint64(2_400_000_000), uint64(1<<62))
	f.Add(uint64(100_000_000), uint64(12345))
	f.Add(uint64(1), uint64(math.MaxUint64))
	f.Add(uint64(math.MaxUint64), uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, hz, ticks uint64) {
		c, err := NewClock(hz)
		if hz == 0 {
			if err == nil {
				t.Fatal("NewClock(0) accepted")
			}
			return
		}
		checkConversion(t, "Nanoseconds", ticks, 1e9, hz, c.Nanoseconds(ticks))
		checkConversion(t, "Ticks", ticks, hz, 1e9, c.Ticks(ticks))
		if ticks < math.MaxUint64 && c.Nanoseconds(ticks+1) < c.Nanoseconds(ticks) {
			t.Fatalf("not monotonic at %d", ticks)
		}
	})
}

var benchSink uint64

func BenchmarkNanoseconds(b *testing.B) {
	c, _ := NewClock(2_494_221_400)
	var sum uint64
	for i := 0; i < b.N; i++ {
		sum += c.Nanoseconds(uint64(i) << 20)
	}
	benchSink = sum
}
