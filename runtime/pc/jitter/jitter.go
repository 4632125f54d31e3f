// Package jitter turns timing jitter into random numbers: the entropy
// source of last resort, for CPUs without RDRAND and RDSEED (Intel's before
// Ivy Bridge, AMD's before Zen), which still run servers.
//
// It is weaker than the hardware generators, and the image says so on its
// console when it has to use it. The raw material is the time-stamp
// counter read around a little memory work: on real hardware the cycle
// count of such work varies with cache and DRAM state, interrupts, SMIs and
// the other CPUs, a few bits of unpredictability per sample at best; in an
// emulator it may not vary at all (Flat tells). Nothing here is a
// cryptographic extractor with an entropy estimate in the sense of NIST SP
// 800-90B: samples are absorbed into a 256-bit state by SipHash's ARX
// rounds (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012),
// SamplesPerOutput of them per 64-bit output, and every output is fed back
// so that outputs do not reveal the state directly.
package jitter

import "math/bits"

// SamplesPerOutput is how many timing samples each 64-bit output absorbs.
const SamplesPerOutput = 64

// Pool is the mixing state. The zero Pool is usable but predictable until
// it has absorbed samples: seed it (Absorb) with what the machine offers
// (the TSC at boot, the RTC). A Pool is not safe for concurrent use.
type Pool struct {
	v       [4]uint64
	outputs uint64
}

// The initial state is SipHash's constants ("somepseudorandomlygeneratedbytes").
var initial = [4]uint64{0x736f6d6570736575, 0x646f72616e646f6d, 0x6c7967656e657261, 0x7465646279746573}

func (p *Pool) round() {
	v0, v1, v2, v3 := p.v[0], p.v[1], p.v[2], p.v[3]
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	p.v = [4]uint64{v0, v1, v2, v3}
}

// Absorb mixes one 64-bit word into the state (SipHash's message step:
// two compression rounds).
func (p *Pool) Absorb(x uint64) {
	if p.v == [4]uint64{} {
		p.v = initial
	}
	p.v[3] ^= x
	p.round()
	p.round()
	p.v[0] ^= x
}

// Next absorbs SamplesPerOutput values of sample (timing measurements) and
// returns 64 bits squeezed from the state with SipHash's finalization (four
// rounds), which it then absorbs back.
func (p *Pool) Next(sample func() uint64) uint64 {
	for i := 0; i < SamplesPerOutput; i++ {
		p.Absorb(sample())
	}
	p.outputs++
	p.Absorb(p.outputs)
	p.v[2] ^= 0xff
	for i := 0; i < 4; i++ {
		p.round()
	}
	out := p.v[0] ^ p.v[1] ^ p.v[2] ^ p.v[3]
	p.Absorb(out)
	return out
}

// Flat reports whether samples show no variation at all (every value the
// same): a clock without jitter, as in an emulator that counts
// instructions, whose outputs depend only on the seeds.
func Flat(samples []uint64) bool {
	for _, s := range samples[min(1, len(samples)):] {
		if s != samples[0] {
			return false
		}
	}
	return true
}
