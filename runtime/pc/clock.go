//go:build tamago

package pc

import (
	"math/bits"
	_ "unsafe"
)

// defined in clock_amd64.s
func rdtsc() uint64

// The clock converts TSC ticks to nanoseconds as
//
//	ns = baseNS + (tsc - baseTSC) * mult >> 32
//
// Until the TSC is calibrated (Init) it assumes 1 GHz; recalibration rebases
// so that nanotime never goes backwards.
var clock = struct {
	baseTSC uint64
	baseNS  int64
	mult    uint64 // nanoseconds per tick, 32.32 fixed point
	hz      uint64
}{mult: 1 << 32, hz: 1e9}

//go:linkname nanotime runtime/goos.Nanotime
func nanotime() int64 {
	return clockAt(rdtsc())
}

func clockAt(tsc uint64) int64 {
	hi, lo := bits.Mul64(tsc-clock.baseTSC, clock.mult)
	return clock.baseNS + int64(hi<<32|lo>>32)
}

// setTSCFrequency switches the clock to a measured TSC frequency. Called once
// on the BSP before other CPUs run Go code.
func setTSCFrequency(hz uint64) {
	now := rdtsc()
	clock.baseNS = clockAt(now)
	clock.baseTSC = now
	clock.mult = (uint64(1e9) << 32) / hz
	clock.hz = hz
}

// TSCFrequency returns the TSC frequency the clock uses, in Hz.
func TSCFrequency() uint64 { return clock.hz }
