package tsc

import (
	"math/bits"
	"time"
)

// sim is a simulated time base, in picoseconds. Every read of a simulated
// counter advances it by that read's cost, as a read takes time on hardware,
// so the algorithm's polling loops make time pass.
type sim struct {
	ps      uint64
	tscHz   uint64
	tscCost uint64 // ps per TSC read
	stuck   bool   // TSC does not move
	reads   uint64 // TSC reads
}

const psPerSecond = 1_000_000_000_000

// ticksAt is floor(ps * hz / 1e12).
func ticksAt(ps, hz uint64) uint64 {
	hi, lo := bits.Mul64(ps, hz)
	q, _ := bits.Div64(hi, lo, psPerSecond)
	return q
}

func (s *sim) advance(d time.Duration) { s.ps += uint64(d) * 1000 }

func (s *sim) tsc() uint64 {
	s.reads++
	s.ps += s.tscCost
	if s.stuck {
		return 0x1234
	}
	return ticksAt(s.ps, s.tscHz)
}

func newSim(tscHz uint64) *sim { return &sim{tscHz: tscHz, tscCost: 10_000} }

// fakeCounter is a free-running counter on the sim's time base. Each Read
// costs pre picoseconds before the counter is sampled and post after; spike
// (when set) adds to pre on the reads it selects, as an SMI would.
type fakeCounter struct {
	s         *sim
	name      string
	hz        uint64 // nominal, reported by Hz
	realHz    func(ps uint64) uint64
	width     uint
	offset    uint64
	pre, post uint64
	spike     func(n uint64) uint64
	reads     uint64
	wrapped   bool
	last      uint64
	override  func(v uint64, n uint64) uint64
}

func (c *fakeCounter) Name() string { return c.name }
func (c *fakeCounter) Hz() uint64   { return c.hz }
func (c *fakeCounter) Width() uint  { return c.width }
func (c *fakeCounter) Read() uint64 {
	c.reads++
	c.s.ps += c.pre
	if c.spike != nil {
		c.s.ps += c.spike(c.reads)
	}
	hz := c.hz
	if c.realHz != nil {
		hz = c.realHz(c.s.ps)
	}
	v := c.offset + ticksAt(c.s.ps, hz)
	if c.width < 64 {
		v &= 1<<c.width - 1
	}
	if c.override != nil {
		v = c.override(v, c.reads)
	}
	if c.reads > 1 && v < c.last {
		c.wrapped = true
	}
	c.last = v
	c.s.ps += c.post
	return v
}

func pmTimer(s *sim, width uint, offset uint64) *fakeCounter {
	return &fakeCounter{s: s, name: "acpi-pm", hz: 3579545, width: width, offset: offset, pre: 400_000, post: 400_000}
}

func hpet(s *sim, width uint) *fakeCounter {
	// 69841279 fs period, as QEMU's and many chipsets' HPETs report.
	return &fakeCounter{s: s, name: "hpet", hz: 1_000_000_000_000_000 / 69841279, width: width, pre: 100_000, post: 100_000}
}

// stuckCounter returns the same value forever.
type stuckCounter struct {
	s     *sim
	name  string
	reads uint64
}

func (c *stuckCounter) Name() string { return c.name }
func (c *stuckCounter) Hz() uint64   { return 14318180 }
func (c *stuckCounter) Width() uint  { return 64 }
func (c *stuckCounter) Read() uint64 { c.reads++; c.s.ps += 200_000; return 0xdeadbeef }

// fakePIT is a one-shot countdown on the sim's time base.
type fakePIT struct {
	s        *sim
	deadline uint64
	armed    bool
	never    bool // never expires
	always   bool // reads as expired at once (absent: port 61h reads 0xff)
	starts   int
	lastArm  uint64
	polls    uint64
}

func (p *fakePIT) Name() string     { return "pit" }
func (p *fakePIT) Hz() uint64       { return 1193182 }
func (p *fakePIT) MaxTicks() uint64 { return 0xffff }
func (p *fakePIT) Start(ticks uint64) error {
	p.s.ps += 3_000_000 // three port writes
	p.starts++
	p.lastArm = ticks
	p.deadline = p.s.ps + ticks*psPerSecond/p.Hz()
	p.armed = true
	return nil
}
func (p *fakePIT) Expired() bool {
	p.polls++
	p.s.ps += 500_000
	v := p.s.ps
	p.s.ps += 500_000
	if p.always {
		return true
	}
	return !p.never && p.armed && v >= p.deadline
}

// fakeRTC is a seconds register on the sim's time base.
type fakeRTC struct {
	s      *sim
	phase  uint64 // ps
	cost   uint64 // ps per read
	stuck  bool
	reads  uint64
	period time.Duration
	first  uint64 // sim time of the first read
}

func (r *fakeRTC) Name() string { return "rtc" }
func (r *fakeRTC) Period() time.Duration {
	if r.period != 0 {
		return r.period
	}
	return time.Second
}
func (r *fakeRTC) Read() uint64 {
	r.reads++
	if r.reads == 1 {
		r.first = r.s.ps
	}
	r.s.ps += r.cost / 2
	v := (r.s.ps + r.phase) / psPerSecond
	r.s.ps += r.cost - r.cost/2
	if r.stuck {
		return 7
	}
	return v % 60
}
