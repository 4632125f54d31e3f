package iommu

import (
	"strings"
	"testing"

	"tamavisor/ept"
)

type coverUnit struct {
	Unit
	name  string
	buses [2]uint8
}

func (u coverUnit) Covers(s Source) bool { return s.Bus >= u.buses[0] && s.Bus <= u.buses[1] }
func (u coverUnit) String() string       { return u.name }
func (u coverUnit) TableConfig() ept.Config {
	return ept.Config{}
}

func TestUnitsForPicksTheFirstCoveringUnit(t *testing.T) {
	us := Units{coverUnit{name: "gfx", buses: [2]uint8{2, 2}}, coverUnit{name: "all", buses: [2]uint8{0, 255}}}
	for _, c := range []struct {
		bus  uint8
		want string
	}{{2, "gfx"}, {0, "all"}, {3, "all"}} {
		if got := us.For(Source{Bus: c.bus}); got == nil || got.String() != c.want {
			t.Errorf("bus %d: unit %v, want %s", c.bus, got, c.want)
		}
	}
	if got := (Units{us[0]}).For(Source{Bus: 5}); got != nil {
		t.Errorf("uncovered source got unit %v", got)
	}
}

func TestRequesterIDRoundTrip(t *testing.T) {
	s := Source{Segment: 1, Bus: 0x3a, Device: 0x1f, Function: 7}
	if rid := s.RequesterID(); rid != 0x3aff {
		t.Fatalf("requester ID %#x", rid)
	}
	if got := SourceFromRequesterID(1, s.RequesterID()); got != s {
		t.Fatalf("round trip %v", got)
	}
	if s.String() != "0001:3a:1f.7" {
		t.Fatalf("String %q", s)
	}
}

func TestFaultLogRateLimits(t *testing.T) {
	var out strings.Builder
	now := int64(0)
	l := &FaultLog{Out: &out, Burst: 2, Interval: 1e9, Now: func() int64 { return now }}
	f := Fault{Unit: "vt-d", Source: Source{Device: 3}, Address: 0x1000, Write: true, Reason: "context entry not present", Code: 2}
	for i := 0; i < 5; i++ {
		l.Report(f)
	}
	if n := strings.Count(out.String(), "blocked"); n != 2 {
		t.Fatalf("%d faults printed in one interval, want 2:\n%s", n, out.String())
	}
	now = 2e9
	l.Report(f)
	s := out.String()
	if !strings.Contains(s, "3 more DMA faults not shown") || strings.Count(s, "blocked") != 3 {
		t.Fatalf("after the interval:\n%s", s)
	}
	if l.Total.Load() != 6 {
		t.Fatalf("Total = %d", l.Total.Load())
	}
	if !strings.Contains(s, "DMA write by 0000:00:03.0 at 0x1000 blocked: context entry not present") {
		t.Fatalf("fault line:\n%s", s)
	}
}
