//go:build tamago

package pc

import (
	_ "unsafe"
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

// hasRDSEED is set from CPUID.(EAX=7,ECX=0):EBX[18] by installEntropy.
var hasRDSEED bool

func installEntropy() {
	_, ebx, _, _ := machine.CPUID(7, 0)
	hasRDSEED = ebx&(1<<18) != 0
	getRandomDataFn = fillRandom
}

// fillRandom fills b from the CPU's random number generator, preferring
// RDSEED (conditioned entropy) and falling back to RDRAND (a DRBG the
// hardware reseeds).
func fillRandom(b []byte) {
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
	for i := 0; i < rdrandRetries; i++ {
		if v, ok := rdrand64(); ok {
			return v
		}
	}
	panic("tamavisor: the CPU's random number generator failed (RDRAND returned no data 10 times in a row): entropy is unavailable, refusing to continue")
}

// EntropySource names the instructions in use, for the boot inventory.
func EntropySource() string {
	if hasRDSEED {
		return "rdseed+rdrand"
	}
	return "rdrand"
}
