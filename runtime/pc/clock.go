//go:build tamago

package pc

import (
	_ "unsafe"

	"tamavisor/runtime/tsc"
)

// defined in clock_amd64.s
func rdtsc() uint64

// The runtime's clock is the TSC: nanotime = baseNS + ticks since baseTSC
// converted by the calibrated tsc.Clock. Until calibration (CalibrateTSC)
// the TSC is taken to tick at 1 GHz, good enough for the few early sleeps;
// recalibration rebases so that nanotime never goes backwards.
var clock struct {
	baseTSC uint64
	baseNS  int64
	tsc     tsc.Clock // zero until calibrated
}

//go:linkname nanotime runtime/goos.Nanotime
//go:nosplit
func nanotime() int64 {
	return clockAt(rdtsc())
}

//go:nosplit
func clockAt(ticks uint64) int64 {
	delta := ticks - clock.baseTSC
	if clock.tsc.Hz() == 0 {
		return clock.baseNS + int64(delta)
	}
	return clock.baseNS + int64(clock.tsc.Nanoseconds(delta))
}

// setTSCFrequency switches the clock to a measured TSC frequency. Called on
// the BSP before other CPUs run Go code.
func setTSCFrequency(hz uint64) error {
	c, err := tsc.NewClock(hz)
	if err != nil {
		return err
	}
	now := rdtsc()
	clock.baseNS = clockAt(now)
	clock.baseTSC = now
	clock.tsc = c
	return nil
}

// TSCFrequency returns the calibrated TSC frequency in Hz (0 before
// calibration).
func TSCFrequency() uint64 { return clock.tsc.Hz() }
