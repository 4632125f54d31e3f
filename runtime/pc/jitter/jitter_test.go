package jitter

import (
	"math/bits"
	"testing"
)

// counter is a fake timing source: a fixed sequence of samples.
func counter(seq ...uint64) func() uint64 {
	i := 0
	return func() uint64 {
		v := seq[i%len(seq)]
		i++
		return v
	}
}

func TestSameSamplesSameOutput(t *testing.T) {
	var a, b Pool
	a.Absorb(42)
	b.Absorb(42)
	for i := 0; i < 4; i++ {
		x, y := a.Next(counter(1, 2, 3)), b.Next(counter(1, 2, 3))
		if x != y {
			t.Fatalf("output %d: %#x != %#x from the same seeds and samples", i, x, y)
		}
	}
}

// TestOutputsDependOnEverySample: changing one bit of one sample, or the
// seed, changes about half the output bits, and consecutive outputs from
// the same samples differ.
func TestOutputsDependOnEverySample(t *testing.T) {
	base := func(flipSample, flipBit int, seed uint64) uint64 {
		var p Pool
		p.Absorb(seed)
		n := 0
		return p.Next(func() uint64 {
			v := uint64(1000 + n%7)
			if n == flipSample {
				v ^= 1 << flipBit
			}
			n++
			return v
		})
	}
	ref := base(-1, 0, 1)
	total, trials := 0, 0
	for s := 0; s < SamplesPerOutput; s += 7 {
		for b := 0; b < 64; b += 13 {
			d := bits.OnesCount64(ref ^ base(s, b, 1))
			if d == 0 {
				t.Fatalf("flipping bit %d of sample %d left the output unchanged", b, s)
			}
			total += d
			trials++
		}
	}
	if avg := float64(total) / float64(trials); avg < 24 || avg > 40 {
		t.Errorf("a one-bit change in a sample flips %.1f output bits on average, want about 32", avg)
	}
	if base(-1, 0, 2) == ref {
		t.Error("the seed does not matter")
	}
	var p Pool
	p.Absorb(1)
	seen := map[uint64]bool{}
	for i := 0; i < 1000; i++ {
		v := p.Next(counter(5)) // no jitter at all
		if seen[v] {
			t.Fatalf("output %d repeats an earlier one", i)
		}
		seen[v] = true
	}
}

func TestFlat(t *testing.T) {
	for _, c := range []struct {
		s    []uint64
		flat bool
	}{{nil, true}, {[]uint64{7}, true}, {[]uint64{7, 7, 7}, true}, {[]uint64{7, 7, 8}, false}, {[]uint64{1, 7, 7}, false}} {
		if got := Flat(c.s); got != c.flat {
			t.Errorf("Flat(%v) = %v", c.s, got)
		}
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	var p Pool
	s := counter(3, 1, 4, 1, 5)
	if n := testing.AllocsPerRun(100, func() { p.Next(s) }); n != 0 {
		t.Errorf("Next allocates %v times", n)
	}
}
