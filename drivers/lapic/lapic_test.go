package lapic

import (
	"errors"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

func cpuid(ecx, edx uint32) hwfake.CPUID {
	return hwfake.CPUID{{Leaf: 1}: {ECX: ecx, EDX: edx}}
}

var allFeatures = cpuid(CPUID1ECXX2APIC|CPUID1ECXDeadline, CPUID1EDXAPIC)

// mmioWrite is one recorded write to the APIC page.
type mmioWrite struct {
	reg Register
	v   uint32
}

// xapicPage returns fake memory whose writes to the APIC page at base are
// recorded, while still being stored so that reads see them.
func xapicPage(base uint64, log *[]mmioWrite) *hwfake.Memory {
	m := hwfake.NewMemory()
	for off := uint64(0); off < 0x400; off += 0x10 {
		addr := base + off
		reg := Register(off)
		m.OnWrite[addr] = func(width int, v uint64) {
			*log = append(*log, mmioWrite{reg, uint32(v)})
			var b [4]byte
			for i := range b {
				b[i] = byte(v >> (8 * i))
			}
			m.Load(addr, b[:])
		}
	}
	return m
}

func newXAPIC(t *testing.T, log *[]mmioWrite) (*LAPIC, *hwfake.Memory, hwfake.MSRs) {
	t.Helper()
	msrs := hwfake.MSRs{MSRAPICBase: DefaultBase | APICBaseEnable | APICBaseBSP}
	mem := xapicPage(DefaultBase, log)
	l, err := New(allFeatures, msrs, mem)
	if err != nil {
		t.Fatal(err)
	}
	return l, mem, msrs
}

func newX2APIC(t *testing.T) (*LAPIC, hwfake.MSRs) {
	t.Helper()
	msrs := hwfake.MSRs{MSRAPICBase: DefaultBase | APICBaseEnable | APICBaseX2Enable}
	l, err := New(allFeatures, msrs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l, msrs
}

func TestX2APICRegisterMSRs(t *testing.T) {
	// SDM Vol. 3A Table 11-6.
	want := map[Register]uint32{
		RegID: 0x802, RegVersion: 0x803, RegTPR: 0x808, RegPPR: 0x80A, RegEOI: 0x80B,
		RegLDR: 0x80D, RegSVR: 0x80F, RegISR0: 0x810, RegTMR0: 0x818, RegIRR0: 0x820,
		RegESR: 0x828, RegLVTCMCI: 0x82F, RegICRLow: 0x830, RegLVTTimer: 0x832,
		RegLVTThermal: 0x833, RegLVTPerf: 0x834, RegLVTLINT0: 0x835, RegLVTLINT1: 0x836,
		RegLVTError: 0x837, RegTimerInitial: 0x838, RegTimerCurrent: 0x839, RegTimerDivide: 0x83E,
	}
	for r, msr := range want {
		if r.MSR() != msr {
			t.Errorf("register %#x maps to MSR %#x, want %#x", uint16(r), r.MSR(), msr)
		}
	}
	if MSRX2APICICR != RegICRLow.MSR() {
		t.Errorf("x2APIC ICR MSR %#x is not the ICR low register's MSR %#x", MSRX2APICICR, RegICRLow.MSR())
	}
}

func TestDetection(t *testing.T) {
	var log []mmioWrite
	mem := xapicPage(DefaultBase, &log)

	if _, err := New(cpuid(0, 0), hwfake.MSRs{}, mem); !errors.Is(err, ErrNoAPIC) {
		t.Errorf("no CPUID APIC bit: %v, want ErrNoAPIC", err)
	}
	if _, err := New(allFeatures, hwfake.MSRs{MSRAPICBase: DefaultBase}, mem); !errors.Is(err, ErrDisabled) {
		t.Errorf("EN clear: %v, want ErrDisabled", err)
	}
	if _, err := New(allFeatures, hwfake.MSRs{MSRAPICBase: DefaultBase | APICBaseX2Enable}, mem); err == nil {
		t.Error("EXTD without EN accepted")
	}
	if _, err := New(allFeatures, hwfake.MSRs{MSRAPICBase: DefaultBase | APICBaseEnable}, nil); err == nil {
		t.Error("xAPIC mode without MMIO accepted")
	}

	l, err := New(cpuid(0, CPUID1EDXAPIC), hwfake.MSRs{MSRAPICBase: 0x1_2345_6000 | APICBaseEnable | APICBaseBSP}, mem)
	if err != nil {
		t.Fatal(err)
	}
	if l.Mode() != ModeXAPIC || l.Base() != 0x1_2345_6000 || !l.IsBSP() || l.SupportsX2APIC() || l.SupportsTSCDeadline() {
		t.Errorf("got mode %v base %#x bsp %v x2 %v deadline %v", l.Mode(), l.Base(), l.IsBSP(), l.SupportsX2APIC(), l.SupportsTSCDeadline())
	}
	if err := l.EnableX2APIC(); !errors.Is(err, ErrNoX2APIC) {
		t.Errorf("EnableX2APIC without CPUID support: %v", err)
	}
	if err := l.SetTimer(TimerTSCDeadline, 0x40, false); !errors.Is(err, ErrNoTSCDeadline) {
		t.Errorf("TSC-deadline without CPUID support: %v", err)
	}
	if err := l.SetTSCDeadline(1); !errors.Is(err, ErrNoTSCDeadline) {
		t.Errorf("SetTSCDeadline without CPUID support: %v", err)
	}

	x2, _ := newX2APIC(t)
	if x2.Mode() != ModeX2APIC || x2.IsBSP() {
		t.Errorf("x2APIC: mode %v bsp %v", x2.Mode(), x2.IsBSP())
	}
}

func TestEnableX2APIC(t *testing.T) {
	var log []mmioWrite
	l, _, msrs := newXAPIC(t, &log)
	if err := l.EnableX2APIC(); err != nil {
		t.Fatal(err)
	}
	want := DefaultBase | APICBaseEnable | APICBaseBSP | APICBaseX2Enable
	if msrs[MSRAPICBase] != want {
		t.Errorf("IA32_APIC_BASE = %#x, want %#x", msrs[MSRAPICBase], want)
	}
	if l.Mode() != ModeX2APIC {
		t.Errorf("mode %v after EnableX2APIC", l.Mode())
	}
	// Registers now go through MSRs, not the page.
	msrs[RegID.MSR()] = 0x0001_0203
	if got := l.ID(); got != 0x0001_0203 {
		t.Errorf("x2APIC ID = %#x, want the full 32 bits 0x10203", got)
	}
	l.EOI()
	if v, ok := msrs[RegEOI.MSR()]; !ok || v != 0 {
		t.Errorf("EOI MSR 0x80b = %#x (written %v), want 0", v, ok)
	}
	if len(log) != 0 {
		t.Errorf("x2APIC mode wrote the MMIO page: %+v", log)
	}
	if err := l.EnableX2APIC(); err != nil {
		t.Errorf("second EnableX2APIC: %v", err)
	}
}

func TestXAPICRegisters(t *testing.T) {
	var log []mmioWrite
	l, mem, _ := newXAPIC(t, &log)
	mem.Write32(DefaultBase+uint64(RegID), 0x0700_00FF) // bits 23:0 reserved
	if got := l.ID(); got != 7 {
		t.Errorf("xAPIC ID = %d, want 7 (bits 31:24)", got)
	}
	mem.Write32(DefaultBase+uint64(RegVersion), 0x0105_0014)
	if v := l.Version(); v != (Version{Version: 0x14, MaxLVT: 5, EOIBroadcastSuppress: true}) {
		t.Errorf("Version = %+v", v)
	}
	log = nil
	l.EOI()
	if len(log) != 1 || log[0] != (mmioWrite{RegEOI, 0}) {
		t.Errorf("EOI writes %+v, want 0 to 0xb0", log)
	}
	mem.Write32(DefaultBase+uint64(RegSVR), 0x0000_10FF&^SVRSoftwareEnable) // EOI-suppression bit 12 set
	if err := l.SoftwareEnable(0xEF); err != nil {
		t.Fatal(err)
	}
	if got := mem.Read32(DefaultBase + uint64(RegSVR)); got != 0x11EF {
		t.Errorf("SVR = %#x, want 0x11ef (vector 0xef, enable, bit 12 kept)", got)
	}
	if err := l.SoftwareEnable(0x0F); !errors.Is(err, ErrBadVector) {
		t.Errorf("SoftwareEnable(0x0f): %v", err)
	}
	l.SoftwareDisable()
	if got := mem.Read32(DefaultBase + uint64(RegSVR)); got != 0x10EF {
		t.Errorf("SVR after disable = %#x, want 0x10ef", got)
	}
	l.SetTPR(0x20)
	if l.TPR() != 0x20 || mem.Read32(DefaultBase+uint64(RegTPR)) != 0x20 {
		t.Errorf("TPR = %#x", l.TPR())
	}
	log = nil
	mem.OnRead[DefaultBase+uint64(RegESR)] = func(int) uint64 { return 0x80 }
	if got := l.ErrorStatus(); got != 0x80 {
		t.Errorf("ErrorStatus = %#x", got)
	}
	if len(log) != 1 || log[0] != (mmioWrite{RegESR, 0}) {
		t.Errorf("ErrorStatus did not write ESR before reading: %+v", log)
	}
}

func TestIPIsXAPIC(t *testing.T) {
	for _, c := range []struct {
		name string
		send func(l *LAPIC) error
		low  uint32
		dest uint32
	}{
		{"INIT", func(l *LAPIC) error { return l.SendInit(3) }, 0x0000_4500, 3},
		{"SIPI", func(l *LAPIC) error { return l.SendStartup(3, 0x08) }, 0x0000_4608, 3},
		{"fixed", func(l *LAPIC) error { return l.SendFixed(0xFE, 0x41) }, 0x0000_4041, 0xFE},
		{"NMI", func(l *LAPIC) error { return l.SendNMI(1) }, 0x0000_4400, 1},
	} {
		var log []mmioWrite
		l, _, _ := newXAPIC(t, &log)
		if err := c.send(l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := []mmioWrite{{RegICRHigh, c.dest << 24}, {RegICRLow, c.low}}
		if len(log) != 2 || log[0] != want[0] || log[1] != want[1] {
			t.Errorf("%s: ICR writes %+v, want %+v (high first: the low write sends)", c.name, log, want)
		}
	}
}

func TestIPIsX2APIC(t *testing.T) {
	for _, c := range []struct {
		name string
		send func(l *LAPIC) error
		icr  uint64
	}{
		{"INIT", func(l *LAPIC) error { return l.SendInit(0x100) }, 0x100_0000_4500},
		{"SIPI", func(l *LAPIC) error { return l.SendStartup(0x100, 0x9F) }, 0x100_0000_469F},
		{"fixed", func(l *LAPIC) error { return l.SendFixed(0xFFFF_FFFE, 0xF0) }, 0xFFFF_FFFE_0000_40F0},
		{"NMI", func(l *LAPIC) error { return l.SendNMI(2) }, 0x2_0000_4400},
	} {
		l, msrs := newX2APIC(t)
		if err := c.send(l); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := msrs[MSRX2APICICR]; got != c.icr {
			t.Errorf("%s: ICR MSR = %#x, want %#x", c.name, got, c.icr)
		}
		if _, ok := msrs[0x831]; ok {
			t.Errorf("%s: wrote MSR 0x831, which does not exist in x2APIC mode", c.name)
		}
	}
}

func TestIPIErrors(t *testing.T) {
	var log []mmioWrite
	l, mem, _ := newXAPIC(t, &log)
	if err := l.SendInit(0x100); !errors.Is(err, ErrBadDest) || len(log) != 0 {
		t.Errorf("xAPIC INIT to 0x100: %v, %d writes", err, len(log))
	}
	if err := l.SendStartup(1, 0xA0); !errors.Is(err, ErrBadVector) || len(log) != 0 {
		t.Errorf("SIPI vector 0xa0: %v, %d writes", err, len(log))
	}
	if err := l.SendFixed(1, 2); !errors.Is(err, ErrBadVector) || len(log) != 0 {
		t.Errorf("fixed vector 2: %v, %d writes", err, len(log))
	}
	reads := 0
	mem.OnRead[DefaultBase+uint64(RegICRLow)] = func(int) uint64 {
		reads++
		return uint64(ICRDeliveryPending)
	}
	if err := l.SendNMI(1); !errors.Is(err, ErrIPIStuck) {
		t.Errorf("stuck delivery status: %v", err)
	}
	if reads != ICRPollLimit {
		t.Errorf("polled ICR %d times, want the bound %d", reads, ICRPollLimit)
	}
	if len(log) != 0 {
		t.Errorf("sent while the previous IPI was pending: %+v", log)
	}

	// Pending clears after a while: the IPI goes out.
	reads = 0
	mem.OnRead[DefaultBase+uint64(RegICRLow)] = func(int) uint64 {
		reads++
		if reads < 10 {
			return uint64(ICRDeliveryPending)
		}
		return 0
	}
	if err := l.SendNMI(1); err != nil || len(log) != 2 {
		t.Errorf("SendNMI after pending cleared: %v, writes %+v", err, log)
	}
}

func TestTimer(t *testing.T) {
	var log []mmioWrite
	l, mem, msrs := newXAPIC(t, &log)
	for div, enc := range map[uint32]uint32{1: 0xB, 2: 0x0, 4: 0x1, 8: 0x2, 16: 0x3, 32: 0x8, 64: 0x9, 128: 0xA} {
		if err := l.SetTimerDivide(div); err != nil {
			t.Fatal(err)
		}
		if got := mem.Read32(DefaultBase + uint64(RegTimerDivide)); got != enc {
			t.Errorf("divide by %d wrote %#x, want %#x", div, got, enc)
		}
	}
	for _, bad := range []uint32{0, 3, 256} {
		if err := l.SetTimerDivide(bad); err == nil {
			t.Errorf("SetTimerDivide(%d) accepted", bad)
		}
	}
	for _, c := range []struct {
		mode   TimerMode
		vector uint8
		masked bool
		want   uint32
	}{
		{TimerOneShot, 0x30, false, 0x0_0030},
		{TimerPeriodic, 0x40, false, 0x2_0040},
		{TimerTSCDeadline, 0xEC, true, 0x5_00EC},
	} {
		if err := l.SetTimer(c.mode, c.vector, c.masked); err != nil {
			t.Fatal(err)
		}
		if got := mem.Read32(DefaultBase + uint64(RegLVTTimer)); got != c.want {
			t.Errorf("%v vector %#x masked %v: LVT timer %#x, want %#x", c.mode, c.vector, c.masked, got, c.want)
		}
	}
	if err := l.SetTimer(3, 0x40, false); err == nil {
		t.Error("timer mode 3 accepted")
	}
	l.SetTimerInitialCount(1_000_000)
	if got := mem.Read32(DefaultBase + uint64(RegTimerInitial)); got != 1_000_000 {
		t.Errorf("initial count %d", got)
	}
	mem.Write32(DefaultBase+uint64(RegTimerCurrent), 4242)
	if got := l.TimerCurrentCount(); got != 4242 {
		t.Errorf("current count %d", got)
	}
	if err := l.SetTSCDeadline(0x1234_5678_9ABC); err != nil || msrs[MSRTSCDeadline] != 0x1234_5678_9ABC {
		t.Errorf("SetTSCDeadline: %v, MSR 0x6e0 = %#x", err, msrs[MSRTSCDeadline])
	}
	l.MaskTimer()
	if got := mem.Read32(DefaultBase + uint64(RegLVTTimer)); got&LVTMasked == 0 || got&0xFF != 0xEC {
		t.Errorf("MaskTimer left %#x", got)
	}

	x2, x2msrs := newX2APIC(t)
	if err := x2.SetTimer(TimerPeriodic, 0x50, false); err != nil {
		t.Fatal(err)
	}
	x2.SetTimerInitialCount(77)
	if x2msrs[0x832] != 0x2_0050 || x2msrs[0x838] != 77 {
		t.Errorf("x2APIC timer MSRs: LVT %#x initial %d", x2msrs[0x832], x2msrs[0x838])
	}
}

func TestMaskLVTHonoursMaxLVT(t *testing.T) {
	l, msrs := newX2APIC(t)
	msrs[RegVersion.MSR()] = 4 << 16 // no thermal, no CMCI: their MSRs #GP
	for _, r := range []Register{RegLVTTimer, RegLVTLINT0, RegLVTLINT1, RegLVTError, RegLVTPerf} {
		msrs[r.MSR()] = 0x20
	}
	l.MaskLVT() // hwfake panics on a read of an MSR that was never set
	for _, r := range []Register{RegLVTTimer, RegLVTLINT0, RegLVTLINT1, RegLVTError, RegLVTPerf} {
		if msrs[r.MSR()] != 0x20|uint64(LVTMasked) {
			t.Errorf("LVT %#x = %#x, want masked with vector kept", uint16(r), msrs[r.MSR()])
		}
	}
	if _, ok := msrs[RegLVTThermal.MSR()]; ok {
		t.Error("wrote the thermal LVT on an APIC without one")
	}
}

func TestNoAllocations(t *testing.T) {
	l, _ := newX2APIC(t)
	if n := testing.AllocsPerRun(100, func() {
		l.EOI()
		_ = l.SendFixed(1, 0x40)
	}); n != 0 {
		t.Errorf("EOI/SendFixed allocate %v times", n)
	}
}
