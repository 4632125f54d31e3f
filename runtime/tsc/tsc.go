// Package tsc measures the frequency of the processor's Time Stamp Counter
// against the platform's real timers and converts TSC ticks to nanoseconds.
//
// A hypervisor on a real server cannot take the TSC frequency from anywhere
// else: CPUID leaves 15h/16h are absent on most AMD parts and many Intel ones,
// and where present they are a claim, not a measurement (Bochs claims 3.5 GHz
// while its TSC runs at its 100 MHz ips setting; QEMU TCG runs the TSC at the
// host's rate whatever CPUID says). There is no KVM pvclock on bare metal.
//
// The package holds only the algorithm. The timers reach it through three
// small interfaces, so that the real drivers plug in through adapters and the
// tests drive the algorithm with simulated clocks:
//
//   - Reference: a free-running counter of known frequency (ACPI PM timer,
//     HPET main counter). Its start and end readings are bracketed by TSC
//     reads, so the error is one reference read, not one reference period.
//   - Countdown: a one-shot timer that is started and polled until it expires
//     (PIT channel 2 in mode 0, output read through port 61h).
//   - Edge: a value that changes once per known period (the RTC seconds
//     register).
//
// # Order of the sources
//
// Calibrate tries its sources in the order given and takes the first that
// passes every check. The platform passes them in this order:
//
//  1. ACPI PM timer. It is present on every ACPI machine (FADT PM_TMR_BLK /
//     X_PM_TMR_BLK, ACPI 6.5 section 4.8.3.3), needs no set-up, and its
//     frequency, 3.579545 MHz, is fixed by the specification rather than
//     reported by the device. A 10 ms window is ~35800 ticks (28 ppm
//     resolution); a port read costs about a microsecond, which the TSC
//     bracket absorbs. Its 24-bit variant wraps every 4.7 s: handled.
//  2. HPET main counter. Finer (>= 10 MHz), but not always there: firmware
//     may hide or disable it, it counts only once enabled, and its frequency
//     is read from the device's period register (IA-PC HPET 1.0a, 2.3.7).
//  3. PIT channel 2. On every PC-compatible and emulator, but it is a
//     one-shot of at most 65535 ticks (55 ms at 1.193182 MHz) whose expiry is
//     only seen by polling a port, and some modern chipsets gate its clock
//     off: a fallback.
//  4. RTC seconds edge. Almost always present and accurate, but its
//     granularity is one second, so a calibration takes two to three
//     seconds: the last resort.
//
// # Checks
//
// A source is rejected, with the reason recorded in Result.Rejected, and the
// next one tried when: it is absent or describes itself impossibly (zero
// frequency, bad width); the reference or the TSC does not move within a
// bounded number of reads; a countdown expires at once or never; the TSC runs
// past a bound before the reference has covered the window; a result lies
// outside the plausible range (10 MHz..10 GHz by default); or the runs of one
// source disagree by more than 1%. Every poll loop is bounded by a read count,
// so a dead timer is reported, never waited on forever.
//
// CPUID's claim (CPUIDClaim) is only compared with the measurement: a
// difference over 2% is written to Result.Notes.
package tsc

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Counter reads the Time Stamp Counter (RDTSC, Intel SDM Vol. 2B "RDTSC";
// Intel SDM Vol. 3B 18.17 "Time-Stamp Counter"). The real one is the
// platform's RDTSC stub; tests pass a simulated one.
type Counter func() uint64

// Reference is a free-running up-counter of known frequency: the ACPI PM
// timer (3579545 Hz, 24 or 32 bits, read by port I/O; ACPI 6.5 section
// 4.8.2.1) or the HPET main counter (frequency 10^15 / period in fs, 32 or 64
// bits, MMIO; IA-PC HPET 1.0a section 2.3.4).
type Reference interface {
	Name() string
	// Hz is the counting frequency.
	Hz() uint64
	// Width is the number of bits the counter counts in before it wraps to
	// zero (1..64). Bits above it in a Read are ignored.
	Width() uint
	// Read returns the current count.
	Read() uint64
}

// Countdown is a one-shot timer: Start arms it for a number of ticks and
// Expired reports when they have elapsed. The PIT's channel 2 fits: mode 0,
// gate through port 61h bit 0, output in port 61h bit 5 (Intel 8254 data
// sheet; the ports are those of the PC/AT).
type Countdown interface {
	Name() string
	// Hz is the counting frequency (1193182 Hz for the PIT).
	Hz() uint64
	// MaxTicks is the longest countdown Start accepts (65535 for the PIT).
	MaxTicks() uint64
	// Start arms the timer; counting must begin by the time it returns.
	Start(ticks uint64) error
	// Expired reports whether the armed countdown has reached zero.
	Expired() bool
}

// Edge is a value that changes once per fixed period, at the same phase each
// time: the RTC's seconds register (MC146818, read when the update-in-progress
// flag is clear), whose period is one second.
type Edge interface {
	Name() string
	// Period is the time between two changes of Read's value.
	Period() time.Duration
	// Read returns the current value; only its changes matter.
	Read() uint64
}

type sourceKind uint8

const (
	kindNone sourceKind = iota
	kindReference
	kindCountdown
	kindEdge
)

// Source is one timer Calibrate may measure the TSC against. Build one with
// FromReference, FromCountdown or FromEdge; the zero Source is rejected as
// absent.
type Source struct {
	kind      sourceKind
	reference Reference
	countdown Countdown
	edge      Edge
}

// FromReference makes a Source of a free-running counter. A nil r gives a
// Source that is rejected as absent.
func FromReference(r Reference) Source {
	if r == nil {
		return Source{}
	}
	return Source{kind: kindReference, reference: r}
}

// FromCountdown makes a Source of a one-shot timer. A nil c gives a Source
// that is rejected as absent.
func FromCountdown(c Countdown) Source {
	if c == nil {
		return Source{}
	}
	return Source{kind: kindCountdown, countdown: c}
}

// FromEdge makes a Source of a periodic edge. A nil e gives a Source that is
// rejected as absent.
func FromEdge(e Edge) Source {
	if e == nil {
		return Source{}
	}
	return Source{kind: kindEdge, edge: e}
}

// Name is the name of the timer behind the Source.
func (s Source) Name() string {
	switch s.kind {
	case kindReference:
		return s.reference.Name()
	case kindCountdown:
		return s.countdown.Name()
	case kindEdge:
		return s.edge.Name()
	}
	return "(absent)"
}

// Options tune Calibrate. The zero value selects the defaults named on each
// field.
type Options struct {
	// Window is the time one run measures over with a Reference or a
	// Countdown (default 10 ms; a Countdown's is cut to its MaxTicks).
	Window time.Duration
	// Runs is the number of runs per Reference or Countdown source, whose
	// median is the result (default 5, at most MaxRuns).
	Runs int
	// EdgeIntervals is the number of periods measured with an Edge source
	// (default 2, at most MaxRuns); one more edge is awaited first to start
	// on a boundary.
	EdgeIntervals int
	// MinHz and MaxHz bound a plausible TSC frequency (default 10 MHz and
	// 10 GHz).
	MinHz, MaxHz uint64
	// MaxSpreadPPM is the largest disagreement between the runs of one
	// source, (max-min)/median in parts per million (default 10000: 1%).
	MaxSpreadPPM uint64
	// MaxPolls bounds the reads of one run (default 1<<26).
	MaxPolls uint64
	// StallPolls is the number of consecutive reads after which a
	// Reference, or the TSC, that has not changed is declared stuck
	// (default 1<<16).
	StallPolls uint64
	// ClaimHz, when non-zero, is the frequency CPUID claims (see
	// CPUIDClaim); a measurement that differs from it by more than
	// ClaimTolerancePPM is noted in Result.Notes.
	ClaimHz uint64
	// ClaimTolerancePPM is the accepted difference from ClaimHz (default
	// 20000: 2%).
	ClaimTolerancePPM uint64
}

// MaxRuns bounds Options.Runs and Options.EdgeIntervals, so that the runs
// fit in a fixed array.
const MaxRuns = 15

// Default option values.
const (
	DefaultWindow            = 10 * time.Millisecond
	DefaultRuns              = 5
	DefaultEdgeIntervals     = 2
	DefaultMinHz             = 10_000_000
	DefaultMaxHz             = 10_000_000_000
	DefaultMaxSpreadPPM      = 10_000
	DefaultMaxPolls          = 1 << 26
	DefaultStallPolls        = 1 << 16
	DefaultClaimTolerancePPM = 20_000
)

// timeoutFactor: a run gives up when the TSC has advanced this many times
// the run's interval at MaxHz, i.e. the reference is far slower than it says
// or has stopped.
const timeoutFactor = 4

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Runs <= 0 {
		o.Runs = DefaultRuns
	}
	if o.Runs > MaxRuns {
		o.Runs = MaxRuns
	}
	if o.EdgeIntervals <= 0 {
		o.EdgeIntervals = DefaultEdgeIntervals
	}
	if o.EdgeIntervals > MaxRuns {
		o.EdgeIntervals = MaxRuns
	}
	if o.MinHz == 0 {
		o.MinHz = DefaultMinHz
	}
	if o.MaxHz == 0 {
		o.MaxHz = DefaultMaxHz
	}
	if o.MaxSpreadPPM == 0 {
		o.MaxSpreadPPM = DefaultMaxSpreadPPM
	}
	if o.MaxPolls == 0 {
		o.MaxPolls = DefaultMaxPolls
	}
	if o.StallPolls == 0 {
		o.StallPolls = DefaultStallPolls
	}
	if o.ClaimTolerancePPM == 0 {
		o.ClaimTolerancePPM = DefaultClaimTolerancePPM
	}
	return o
}

// Result is the outcome of Calibrate.
type Result struct {
	// Hz is the measured TSC frequency: the median of the accepted
	// source's runs. Zero when every source was rejected.
	Hz uint64
	// Source names the timer Hz was measured against.
	Source string
	// Runs is the number of runs (or edge intervals) behind Hz.
	Runs int
	// SpreadPPM is the disagreement between those runs, (max-min)/median
	// in parts per million.
	SpreadPPM uint64
	// Rejected holds one line per source tried and refused, in order,
	// "name: reason".
	Rejected []string
	// Notes holds remarks for the boot log, such as a CPUID claim that
	// disagrees with the measurement.
	Notes []string
}

// ErrNoSource is wrapped by Calibrate's error when every source was
// rejected.
var ErrNoSource = errors.New("tsc: no usable reference timer")

// Calibrate measures the TSC frequency against the first source in refs that
// gives a plausible, consistent result; see the package documentation for the
// checks. When every source is rejected it returns an error wrapping
// ErrNoSource that lists the reasons (also in Result.Rejected); the caller may
// then fall back to CPUIDClaim, knowing it to be a claim.
func Calibrate(tsc Counter, refs []Source, opts Options) (Result, error) {
	o := opts.withDefaults()
	var res Result
	if tsc == nil {
		return res, fmt.Errorf("%w: no TSC counter given", ErrNoSource)
	}
	if o.MinHz >= o.MaxHz {
		return res, fmt.Errorf("tsc: plausible range %d..%d Hz is empty", o.MinHz, o.MaxHz)
	}
	for _, src := range refs {
		var runs runSet
		var err error
		switch src.kind {
		case kindReference:
			err = measureReference(tsc, src.reference, &o, &runs)
		case kindCountdown:
			err = measureCountdown(tsc, src.countdown, &o, &runs)
		case kindEdge:
			err = measureEdge(tsc, src.edge, &o, &runs)
		default:
			err = errors.New("not present")
		}
		if err == nil {
			err = runs.check(&o)
		}
		if err != nil {
			res.Rejected = append(res.Rejected, src.Name()+": "+err.Error())
			continue
		}
		res.Hz = runs.median()
		res.Source = src.Name()
		res.Runs = runs.n
		res.SpreadPPM = runs.spreadPPM()
		if o.ClaimHz != 0 {
			if diff := differencePPM(res.Hz, o.ClaimHz); diff > o.ClaimTolerancePPM {
				res.Notes = append(res.Notes, fmt.Sprintf(
					"measured TSC %s (against %s) differs from the CPUID claim %s by %s: the claim is wrong, using the measurement",
					FormatHz(res.Hz), res.Source, FormatHz(o.ClaimHz), formatPPM(diff)))
			}
		}
		return res, nil
	}
	if len(refs) == 0 {
		return res, fmt.Errorf("%w: no sources given", ErrNoSource)
	}
	return res, fmt.Errorf("%w: %s", ErrNoSource, strings.Join(res.Rejected, "; "))
}

// runSet holds the frequencies of one source's runs.
type runSet struct {
	hz [MaxRuns]uint64
	n  int
}

func (r *runSet) add(hz uint64) { r.hz[r.n] = hz; r.n++ }

// sorted returns the runs in increasing order (insertion sort on a copy:
// at most MaxRuns values).
func (r *runSet) sorted() [MaxRuns]uint64 {
	s := r.hz
	for i := 1; i < r.n; i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

func (r *runSet) median() uint64 {
	s := r.sorted()
	if r.n%2 == 1 {
		return s[r.n/2]
	}
	a, b := s[r.n/2-1], s[r.n/2]
	return a + (b-a)/2
}

func (r *runSet) spreadPPM() uint64 {
	s := r.sorted()
	m := r.median()
	if r.n == 0 || m == 0 {
		return 0
	}
	return scale(s[r.n-1]-s[0], 1_000_000, m)
}

func (r *runSet) check(o *Options) error {
	if r.n == 0 {
		return errors.New("no runs completed")
	}
	for i := 0; i < r.n; i++ {
		if hz := r.hz[i]; hz < o.MinHz || hz > o.MaxHz {
			return fmt.Errorf("run %d measured %s, outside the plausible %s..%s",
				i+1, FormatHz(hz), FormatHz(o.MinHz), FormatHz(o.MaxHz))
		}
	}
	if sp := r.spreadPPM(); sp > o.MaxSpreadPPM {
		s := r.sorted()
		return fmt.Errorf("%d runs disagree by %s (%s..%s), more than %s",
			r.n, formatPPM(sp), FormatHz(s[0]), FormatHz(s[r.n-1]), formatPPM(o.MaxSpreadPPM))
	}
	return nil
}

// differencePPM is |a-b|/b in parts per million.
func differencePPM(a, b uint64) uint64 {
	d := a - b
	if a < b {
		d = b - a
	}
	return scale(d, 1_000_000, b)
}

// FormatHz writes a frequency in MHz with three decimals, e.g.
// "2494.221 MHz", with integer arithmetic only.
func FormatHz(hz uint64) string {
	khz := (hz + 500) / 1000
	return fmt.Sprintf("%d.%03d MHz", khz/1000, khz%1000)
}

func formatPPM(ppm uint64) string {
	return fmt.Sprintf("%d.%02d%%", ppm/10_000, (ppm%10_000)/100)
}
