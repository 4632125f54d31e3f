//go:build tamago

package pc

import (
	"sync"
	_ "unsafe"

	"tamavisor/runtime/pc/jitter"
)

// Defined in entropy_amd64.s: one RDRAND or RDSEED of 64 bits, ok = CF.
func rdrand64() (v uint64, ok bool)
func rdseed64() (v uint64, ok bool)

// Intel's DRNG guide (5.2.1) recommends retrying RDRAND up to 10 times: a
// failure beyond that means the entropy source is broken, and the hypervisor
// must not go on with predictable keys or seeds. RDSEED may legitimately run
// dry for a while, so it gets more tries before RDRAND is used instead.
const (
	rdrandRetries = 10
	rdseedRetries = 100
)

// TamaGo's amd64 package fills random data from RDRAND without looking at
// the carry flag, i.e. a failed RDRAND returns zeros. The runtime reads
// random data through this hook, which ours replaces after start.
//
//go:linkname getRandomDataFn github.com/usbarmory/tamago/internal/rng.GetRandomDataFn
var getRandomDataFn func([]byte)

// hasRDRAND and hasRDSEED are set from CPUID.1:ECX[30] and
// CPUID.(EAX=7,ECX=0):EBX[18] (Intel SDM Vol. 2A, CPUID) by
// installEntropy.
var hasRDRAND, hasRDSEED bool

// The fallback of CPUs with neither instruction (Intel before Ivy Bridge,
// AMD before Zen): TSC jitter mixed through SipHash rounds (package jitter),
// a weaker source that the console warns about. The runtime's own seed
// comes from the entry code in that case (entry_amd64.s, startupRand).
var (
	jitterMu   sync.Mutex
	jitterPool jitter.Pool
	// jitterFlat: the TSC showed no jitter at all when sampled at boot.
	jitterFlat bool
	// jitterBuf is what a jitter sample walks: 64 KiB, more than a
	// level-1 data cache, so that the walk's time depends on cache state.
	jitterBuf [64 << 10]byte
)

func installEntropy() {
	_, _, ecx, _ := machine.CPUID(1, 0)
	hasRDRAND = ecx&(1<<30) != 0
	_, ebx, _, _ := machine.CPUID(7, 0)
	hasRDSEED = ebx&(1<<18) != 0
	if !hasRDRAND && !hasRDSEED {
		seedJitter()
	}
	getRandomDataFn = fillRandom
}

// seedJitter starts the fallback pool from what differs between boots (the
// TSC, the RTC's date and time) and checks that the TSC jitters at all.
func seedJitter() {
	jitterPool.Absorb(rdtsc())
	// MC146818 RTC: seconds, minutes, hours, day, month, year (CMOS
	// registers 0, 2, 4, 7, 8, 9 through index port 70h, data port 71h).
	var rtc uint64
	for _, reg := range []uint8{0, 2, 4, 7, 8, 9} {
		machine.Out8(0x70, reg)
		rtc = rtc<<8 | uint64(machine.In8(0x71))
	}
	jitterPool.Absorb(rtc)
	var samples [128]uint64
	for i := range samples {
		samples[i] = jitterDelta()
		jitterPool.Absorb(samples[i])
	}
	jitterFlat = jitter.Flat(samples[:])
	print("tamavisor: WARNING: this CPU has neither RDRAND nor RDSEED (CPUID.1:ECX[30], CPUID.7:EBX[18]):\n",
		"tamavisor: WARNING: random numbers come from TSC jitter mixed through SipHash rounds, a WEAK source;\n",
		"tamavisor: WARNING: keys, nonces and seeds made on this machine may be guessable\n")
	if jitterFlat {
		print("tamavisor: WARNING: the TSC shows no jitter at all here (an emulator?): the random numbers depend only on the boot time\n")
	}
}

// jitterDelta times a walk over jitterBuf whose stride depends on the
// previous reading, in TSC cycles.
func jitterDelta() uint64 {
	t0 := rdtsc()
	const mask = uint(len(jitterBuf) - 1)
	i := uint(t0) & mask
	var acc byte
	for n := 0; n < 16; n++ {
		acc += jitterBuf[i]
		jitterBuf[i] = acc + byte(n)
		i = (i + 4096 + uint(acc)) & mask
	}
	return rdtsc() - t0
}

// jitterSample is one sample for the pool: the walk's duration, and the
// counter's low bits at its end.
func jitterSample() uint64 {
	d := jitterDelta()
	return d<<32 ^ rdtsc()
}

// fillRandom fills b from the CPU's random number generator, preferring
// RDSEED (conditioned entropy) and falling back to RDRAND (a DRBG the
// hardware reseeds), or from the jitter pool on CPUs with neither.
func fillRandom(b []byte) {
	if !hasRDRAND && !hasRDSEED {
		jitterMu.Lock()
		defer jitterMu.Unlock()
	}
	for len(b) > 0 {
		v := random64()
		for i := 0; i < 8 && len(b) > 0; i++ {
			b[0] = byte(v)
			v >>= 8
			b = b[1:]
		}
	}
}

func random64() uint64 {
	if hasRDSEED {
		for i := 0; i < rdseedRetries; i++ {
			if v, ok := rdseed64(); ok {
				return v
			}
		}
	}
	if hasRDRAND {
		for i := 0; i < rdrandRetries; i++ {
			if v, ok := rdrand64(); ok {
				return v
			}
		}
		panic("tamavisor: the CPU's random number generator failed (RDRAND returned no data 10 times in a row): entropy is unavailable, refusing to continue")
	}
	if hasRDSEED {
		panic("tamavisor: the CPU's random number generator failed (RDSEED returned no data 100 times in a row, and there is no RDRAND): entropy is unavailable, refusing to continue")
	}
	return jitterPool.Next(jitterSample) // fillRandom holds jitterMu
}

// EntropySource names the instructions in use, for the boot inventory.
func EntropySource() string {
	switch {
	case hasRDSEED && hasRDRAND:
		return "rdseed+rdrand"
	case hasRDRAND:
		return "rdrand"
	case hasRDSEED:
		return "rdseed"
	case jitterFlat:
		return "tsc-jitter-weak-flat"
	}
	return "tsc-jitter-weak"
}
