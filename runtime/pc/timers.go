//go:build tamago

package pc

import (
	"fmt"
	"time"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hpet"
	"tamavisor/drivers/pit"
	"tamavisor/drivers/rtc"
	"tamavisor/runtime/tsc"
)

// pmTimer is the ACPI power-management timer (ACPI 6.5, 4.8.3.3), a
// free-running 3.579545 MHz counter of 24 or 32 bits read by port I/O.
type pmTimer struct {
	port  uint16
	width uint
}

func (p pmTimer) Name() string { return "acpi-pm" }
func (p pmTimer) Hz() uint64   { return 3579545 }
func (p pmTimer) Width() uint  { return p.width }
func (p pmTimer) Read() uint64 { return uint64(machine.In32(p.port)) }

type hpetReference struct{ h *hpet.HPET }

func (r hpetReference) Name() string { return "hpet" }
func (r hpetReference) Hz() uint64   { return r.h.FrequencyHz() }
func (r hpetReference) Width() uint {
	if r.h.Capabilities().Counter64 {
		return 64
	}
	return 32
}
func (r hpetReference) Read() uint64 { return r.h.Counter() }

type pitCountdown struct{ p *pit.PIT }

func (c pitCountdown) Name() string     { return "pit" }
func (c pitCountdown) Hz() uint64       { return pit.FrequencyHz }
func (c pitCountdown) MaxTicks() uint64 { return 0xffff }
func (c pitCountdown) Start(ticks uint64) error {
	if ticks == 0 || ticks > 0xffff {
		return fmt.Errorf("pit: countdown of %d ticks does not fit 16 bits", ticks)
	}
	c.p.StartCountdown(uint16(ticks))
	return nil
}
func (c pitCountdown) Expired() bool { return c.p.Expired() }

// rtcSeconds reads the RTC's seconds register: an edge once a second,
// the last resort when no counter is usable.
type rtcSeconds struct{ r *rtc.RTC }

func (e rtcSeconds) Name() string          { return "rtc" }
func (e rtcSeconds) Period() time.Duration { return time.Second }
func (e rtcSeconds) Read() uint64 {
	v, _ := e.r.ReadCMOS(0x00)
	return uint64(v)
}

// CalibrateTSC measures the TSC frequency against the platform's timers,
// in the order PM timer, HPET, PIT, RTC (see package tsc), and switches
// the runtime clock to it. Without any usable reference it falls back to
// the CPUID claim, and says so in the result's notes.
func CalibrateTSC(tables *acpi.Tables) (tsc.Result, error) {
	var sources []tsc.Source
	if tables != nil && tables.FADT != nil {
		if p, ok := pmTimerOf(tables.FADT); ok {
			sources = append(sources, tsc.FromReference(p))
		}
	}
	if tables != nil {
		for _, t := range tables.HPETs {
			if t.Base.Space != acpi.SpaceSystemMemory || t.Base.Address == 0 {
				continue
			}
			if h, err := hpet.New(&machine, t.Base.Address); err == nil {
				h.Enable()
				sources = append(sources, tsc.FromReference(hpetReference{h}))
				break
			}
		}
	}
	sources = append(sources, tsc.FromCountdown(pitCountdown{pit.New(&machine)}))
	century := uint8(0)
	if tables != nil && tables.FADT != nil {
		century = tables.FADT.Century
	}
	if r, err := rtc.New(&machine, century); err == nil {
		sources = append(sources, tsc.FromEdge(rtcSeconds{r}))
	}

	opts := tsc.Options{}
	claim, haveClaim := tsc.CPUIDClaim(&machine)
	if haveClaim {
		opts.ClaimHz = claim
	}
	res, err := tsc.Calibrate(rdtsc, sources, opts)
	if err != nil {
		if !haveClaim {
			return res, fmt.Errorf("tsc: no usable timer to calibrate against and no CPUID claim: %w", err)
		}
		res = tsc.Result{Hz: claim, Source: "cpuid-claim", Notes: append(res.Notes, "every timer was rejected; trusting CPUID's claimed frequency")}
	}
	return res, setTSCFrequency(res.Hz)
}

func pmTimerOf(f *acpi.FADT) (pmTimer, bool) {
	width := uint(24)
	if f.Flags&acpi.FADTTimerValExt != 0 {
		width = 32
	}
	if g := f.XPMTimerBlock; g.Address != 0 {
		if g.Space == acpi.SpaceSystemIO && g.Address <= 0xffff {
			return pmTimer{uint16(g.Address), width}, true
		}
		return pmTimer{}, false
	}
	if f.PMTimerBlock != 0 && f.PMTimerBlock <= 0xffff && f.PMTimerLength >= 4 {
		return pmTimer{uint16(f.PMTimerBlock), width}, true
	}
	return pmTimer{}, false
}
