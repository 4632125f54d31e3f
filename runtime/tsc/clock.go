package tsc

import (
	"fmt"
	"math"
	"math/bits"
)

// Clock converts between TSC ticks and nanoseconds for one TSC frequency.
//
// The scale factors are 64.64 fixed-point numbers computed once by NewClock:
// nanoseconds per tick = nsInt + nsFrac/2^64, and ticks per nanosecond
// likewise. A conversion is then two 64x64->128-bit multiplications and an
// add (MULQ; math/bits.Mul64 is an intrinsic): no division, no floating
// point, no allocation, so the runtime's nanotime may call it on every read.
//
// The result is floor(ticks * 1e9 / hz) or one more, whatever the uptime:
// the fraction is rounded up, with an error below 2^-64 per tick, so the
// error stays below one nanosecond over the whole 64-bit tick range, and
// there is no drift to accumulate. Rounding up makes conversions exact where
// the true value is a whole number (0.2 ns per tick at 5 GHz is not exact in
// binary) and makes Ticks err late, never early, for a deadline. Results
// that do not fit in 64 bits saturate at MaxUint64 (that is over 580 years
// of nanoseconds).
type Clock struct {
	hz     uint64
	nsInt  uint64 // whole nanoseconds per tick
	nsFrac uint64 // fraction of a nanosecond per tick, in units of 2^-64
	tkInt  uint64 // whole ticks per nanosecond
	tkFrac uint64 // fraction of a tick per nanosecond, in units of 2^-64
}

// NewClock returns the Clock for a TSC running at hz.
func NewClock(hz uint64) (Clock, error) {
	if hz == 0 {
		return Clock{}, fmt.Errorf("tsc: clock frequency of 0 Hz")
	}
	const nsPerSecond = 1_000_000_000
	c := Clock{hz: hz}
	c.nsInt, c.nsFrac = fixed64(nsPerSecond, hz)
	c.tkInt, c.tkFrac = fixed64(hz, nsPerSecond)
	return c, nil
}

// fixed64 returns a/b as a 64.64 fixed-point number, the fraction rounded
// up.
func fixed64(a, b uint64) (whole, frac uint64) {
	whole = a / b
	// The remainder is below b, so the 128-by-64 division cannot overflow,
	// and the quotient is below 2^64-1, so rounding up cannot either.
	frac, rem := bits.Div64(a%b, 0, b)
	if rem != 0 && frac != math.MaxUint64 {
		frac++
	}
	return whole, frac
}

// Hz is the frequency the Clock was made for.
func (c Clock) Hz() uint64 { return c.hz }

// Nanoseconds converts a TSC tick count to nanoseconds. The zero Clock
// returns 0.
//
//go:nosplit
func (c Clock) Nanoseconds(ticks uint64) uint64 {
	return mulFixed(ticks, c.nsInt, c.nsFrac)
}

// Ticks converts nanoseconds to a TSC tick count (e.g. for a TSC-deadline
// timer), rounding down. The zero Clock returns 0.
//
//go:nosplit
func (c Clock) Ticks(ns uint64) uint64 {
	return mulFixed(ns, c.tkInt, c.tkFrac)
}

// mulFixed returns floor(x * (whole + frac/2^64)), or MaxUint64 when that
// does not fit.
//
//go:nosplit
func mulFixed(x, whole, frac uint64) uint64 {
	hi, lo := bits.Mul64(x, whole)
	fracPart, _ := bits.Mul64(x, frac)
	sum, carry := bits.Add64(lo, fracPart, 0)
	if hi|carry != 0 {
		return math.MaxUint64
	}
	return sum
}
