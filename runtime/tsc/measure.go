package tsc

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"
)

// bracketTries is how many bracketed samples are taken at each end of a
// Reference run, keeping the narrowest: one read stretched by an SMI or an
// emulator's exit must not decide the result.
const bracketTries = 4

// minWindowTicks is the shortest window, in reference ticks, worth measuring:
// below it the reference's own quantisation exceeds 1%.
const minWindowTicks = 100

// scale returns a*b/c rounded to nearest, computed in 128 bits, saturating at
// MaxUint64 (also for c == 0) rather than faulting.
func scale(a, b, c uint64) uint64 {
	if c == 0 {
		return math.MaxUint64
	}
	hi, lo := bits.Mul64(a, b)
	lo, carry := bits.Add64(lo, c/2, 0)
	hi += carry // cannot wrap: hi <= 2^64-2 for a product of two uint64
	if hi >= c {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// tscBound is the TSC advance after which a run over interval gives up: the
// interval at the highest plausible TSC frequency, timeoutFactor times over.
func tscBound(interval time.Duration, o *Options) uint64 {
	b := scale(uint64(interval), o.MaxHz, uint64(time.Second))
	if b > math.MaxUint64/timeoutFactor {
		return math.MaxUint64
	}
	return b * timeoutFactor
}

// sample is one reference reading taken between two TSC readings.
type sample struct {
	before, after uint64 // TSC
	ref           uint64
}

func (s sample) width() uint64 { return s.after - s.before }

// mid is the TSC value at which the reference was most likely read.
func (s sample) mid() uint64 { return s.before + (s.after-s.before)/2 }

// poller holds what every poll loop checks: the read count and a TSC that
// moves, and within its bound.
type poller struct {
	tsc        Counter
	o          *Options
	start      uint64 // TSC at the start of the run
	bound      uint64 // largest TSC advance allowed
	polls      uint64
	lastTSC    uint64
	stillTSC   uint64
	what       string // what is awaited, for messages
	boundCause string
}

func newPoller(tsc Counter, o *Options, start uint64, interval time.Duration, what, boundCause string) poller {
	return poller{tsc: tsc, o: o, start: start, bound: tscBound(interval, o), lastTSC: start, what: what, boundCause: boundCause}
}

// step accounts for one read whose TSC stamp is now, and fails when a bound
// is crossed.
func (p *poller) step(now uint64) error {
	p.polls++
	if p.polls > p.o.MaxPolls {
		return fmt.Errorf("%s: gave up after %d reads", p.what, p.o.MaxPolls)
	}
	if now == p.lastTSC {
		p.stillTSC++
		if p.stillTSC >= p.o.StallPolls {
			return fmt.Errorf("TSC not advancing: stuck at %#x for %d reads", now, p.stillTSC)
		}
	} else {
		p.stillTSC = 0
	}
	if now < p.lastTSC {
		return fmt.Errorf("TSC went backwards from %#x to %#x", p.lastTSC, now)
	}
	p.lastTSC = now
	if now-p.start > p.bound {
		return fmt.Errorf("%s: TSC advanced %d ticks (%d times the window at %s) first: %s",
			p.what, now-p.start, timeoutFactor, FormatHz(p.o.MaxHz), p.boundCause)
	}
	return nil
}

func measureReference(tsc Counter, ref Reference, o *Options, runs *runSet) error {
	hz := ref.Hz()
	if hz == 0 {
		return errors.New("reports a frequency of 0 Hz")
	}
	w := ref.Width()
	if w == 0 || w > 64 {
		return fmt.Errorf("reports an impossible width of %d bits", w)
	}
	mask := ^uint64(0) >> (64 - w)
	window := scale(uint64(o.Window), hz, uint64(time.Second))
	if window < minWindowTicks {
		return fmt.Errorf("window %v is only %d ticks at %d Hz", o.Window, window, hz)
	}
	for i := 0; i < o.Runs; i++ {
		f, err := referenceRun(tsc, ref, hz, mask, window, o)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs.add(f)
	}
	return nil
}

func readSample(tsc Counter, ref Reference, mask uint64) sample {
	before := tsc()
	v := ref.Read() & mask
	return sample{before: before, ref: v, after: tsc()}
}

// referenceRun counts window reference ticks and returns the TSC frequency
// they imply. Reference deltas are accumulated modulo the counter's width,
// so wrap-arounds (every 4.7 s for a 24-bit PM timer) are harmless as long
// as two successive reads are less than half a period apart, which is
// checked.
func referenceRun(tsc Counter, ref Reference, hz, mask, window uint64, o *Options) (uint64, error) {
	var elapsed uint64 // reference ticks since the start sample
	jump := func(from, to uint64) error {
		return fmt.Errorf("jumped from %#x to %#x between two reads (went backwards, or wrapped unseen)", from, to)
	}

	// Start: the narrowest of a few samples.
	start := readSample(tsc, ref, mask)
	last := start
	for i := 1; i < bracketTries; i++ {
		s := readSample(tsc, ref, mask)
		d := (s.ref - last.ref) & mask
		if d > mask/2 {
			return 0, jump(last.ref, s.ref)
		}
		last = s
		if s.width() < start.width() {
			start, elapsed = s, 0
		} else {
			elapsed += d
		}
	}

	p := newPoller(tsc, o, start.before, o.Window, "reference",
		fmt.Sprintf("the reference counts slower than its %d Hz", hz))
	var still uint64
	for elapsed < window {
		s := readSample(tsc, ref, mask)
		if err := p.step(s.after); err != nil {
			return 0, fmt.Errorf("%w (counted %d of %d ticks)", err, elapsed, window)
		}
		d := (s.ref - last.ref) & mask
		if d == 0 {
			still++
			if still >= o.StallPolls {
				return 0, fmt.Errorf("not advancing: stuck at %#x for %d reads", s.ref, still)
			}
			continue
		}
		if d > mask/2 {
			return 0, jump(last.ref, s.ref)
		}
		still = 0
		elapsed += d
		last = s
	}

	// End: the sample that closed the window, or a narrower one just
	// after it.
	end, endElapsed := last, elapsed
	for i := 1; i < bracketTries; i++ {
		s := readSample(tsc, ref, mask)
		d := (s.ref - last.ref) & mask
		if d > mask/2 {
			return 0, jump(last.ref, s.ref)
		}
		elapsed += d
		last = s
		if s.width() < end.width() {
			end, endElapsed = s, elapsed
		}
	}

	if end.mid() <= start.mid() {
		return 0, fmt.Errorf("TSC did not advance over %d reference ticks (%#x to %#x)", endElapsed, start.mid(), end.mid())
	}
	return scale(end.mid()-start.mid(), hz, endElapsed), nil
}

func measureCountdown(tsc Counter, c Countdown, o *Options, runs *runSet) error {
	hz := c.Hz()
	if hz == 0 {
		return errors.New("reports a frequency of 0 Hz")
	}
	ticks := scale(uint64(o.Window), hz, uint64(time.Second))
	if m := c.MaxTicks(); ticks > m {
		ticks = m
	}
	if ticks < minWindowTicks {
		return fmt.Errorf("countdown of %d ticks at %d Hz is too short to measure", ticks, hz)
	}
	interval := time.Duration(scale(ticks, uint64(time.Second), hz))
	for i := 0; i < o.Runs; i++ {
		f, err := countdownRun(tsc, c, hz, ticks, interval, o)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs.add(f)
	}
	return nil
}

// countdownRun arms the countdown and polls it to expiry. The start stamp is
// taken right after Start returns and the end stamp right after the read that
// sees expiry: each lags its event by about one port access, so the lags
// cancel.
func countdownRun(tsc Counter, c Countdown, hz, ticks uint64, interval time.Duration, o *Options) (uint64, error) {
	if err := c.Start(ticks); err != nil {
		return 0, fmt.Errorf("start of %d ticks failed: %w", ticks, err)
	}
	t0 := tsc()
	p := newPoller(tsc, o, t0, interval, fmt.Sprintf("countdown of %d ticks", ticks),
		"the timer never expired, or counts far slower than it says")
	for first := true; ; first = false {
		expired := c.Expired()
		t1 := tsc()
		if expired && first {
			return 0, errors.New("reported expiry on the first read after start: absent or not counting")
		}
		if expired {
			if t1 <= t0 {
				return 0, fmt.Errorf("TSC did not advance over a countdown of %d ticks", ticks)
			}
			return scale(t1-t0, hz, ticks), nil
		}
		if err := p.step(t1); err != nil {
			return 0, fmt.Errorf("never expired: %w", err)
		}
	}
}

func measureEdge(tsc Counter, e Edge, o *Options, runs *runSet) error {
	period := e.Period()
	if period <= 0 {
		return fmt.Errorf("reports an impossible period of %v", period)
	}
	// The first edge may be up to a period away; so is each next one.
	prev, err := awaitEdge(tsc, e, period, o, "first edge")
	if err != nil {
		return err
	}
	for i := 0; i < o.EdgeIntervals; i++ {
		next, err := awaitEdge(tsc, e, period, o, fmt.Sprintf("edge %d", i+2))
		if err != nil {
			return err
		}
		if next <= prev {
			return fmt.Errorf("TSC did not advance between edges %d and %d", i+1, i+2)
		}
		runs.add(scale(next-prev, uint64(time.Second), uint64(period)))
		prev = next
	}
	return nil
}

// awaitEdge polls until the edge value changes and returns the TSC at that
// read. Every edge is stamped the same way, so the polling lag cancels in
// the differences.
func awaitEdge(tsc Counter, e Edge, period time.Duration, o *Options, what string) (uint64, error) {
	t0 := tsc()
	v0 := e.Read()
	p := newPoller(tsc, o, t0, period, what, "the value is not changing once per "+period.String())
	for {
		before := tsc()
		v := e.Read()
		after := tsc()
		if v != v0 {
			return before + (after-before)/2, nil
		}
		if err := p.step(after); err != nil {
			return 0, fmt.Errorf("no change from %#x: %w", v0, err)
		}
	}
}
