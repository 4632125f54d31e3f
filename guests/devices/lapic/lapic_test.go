package lapic

import (
	"errors"
	"testing"
)

type manualClock struct{ t int64 }

func (c *manualClock) Now() int64 { return c.t }

type ipiLog struct {
	src  []uint32
	ipis []IPI
}

func (s *ipiLog) SendIPI(src uint32, ipi IPI) {
	s.src = append(s.src, src)
	s.ipis = append(s.ipis, ipi)
}

type rig struct {
	l    *LAPIC
	clk  *manualClock
	tsc  uint64
	ipis *ipiLog
	eois []uint8
}

func newRig(t testing.TB, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{clk: &manualClock{t: 1_000_000}, ipis: &ipiLog{}}
	c := Config{
		ID:       3,
		BSP:      true,
		Clock:    r.clk,
		GuestTSC: func() uint64 { return r.tsc },
		TSCHz:    2_000_000_000,
		IPI:      r.ipis,
		EOI:      func(v uint8) { r.eois = append(r.eois, v) },
	}
	if mod != nil {
		mod(&c)
	}
	l, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	r.l = l
	return r
}

func (r *rig) rd(off uint16) uint32 {
	return uint32(r.l.ReadMMIO(DefaultBase+uint64(off), 4))
}

func (r *rig) wr(off uint16, v uint32) { r.l.WriteMMIO(DefaultBase+uint64(off), 4, uint64(v)) }

// enable software-enables the APIC with spurious vector 0xFF.
func (r *rig) enable() { r.wr(RegSVR, SVREnable|0xFF) }

func (r *rig) toX2APIC(t testing.TB) {
	t.Helper()
	if err := r.l.WriteMSR(MSRAPICBase, DefaultBase|APICBaseEnable|APICBaseX2APIC); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) msr(t testing.TB, msr uint32) uint64 {
	t.Helper()
	v, err := r.l.ReadMSR(msr)
	if err != nil {
		t.Fatalf("RDMSR %#x: %v", msr, err)
	}
	return v
}

func TestResetState(t *testing.T) {
	r := newRig(t, nil)
	if got := r.msr(t, MSRAPICBase); got != DefaultBase|APICBaseEnable|APICBaseBSP {
		t.Errorf("IA32_APIC_BASE = %#x", got)
	}
	checks := []struct {
		off  uint16
		want uint32
	}{
		{RegID, 3 << 24},
		{RegVersion, 0x00050014},
		{RegTPR, 0},
		{RegPPR, 0},
		{RegLDR, 0},
		{RegDFR, 0xFFFFFFFF},
		{RegSVR, 0xFF},
		{RegLVTTimer, LVTMasked},
		{RegLVTThermal, LVTMasked},
		{RegLVTPerf, LVTMasked},
		{RegLVTLINT0, 7 << 8}, // BSP: virtual wire, ExtINT unmasked
		{RegLVTLINT1, LVTMasked},
		{RegLVTError, LVTMasked},
		{RegTimerDivide, 0},
		{RegTimerInitial, 0},
		{RegTimerCurrent, 0},
	}
	for _, c := range checks {
		if got := r.rd(c.off); got != c.want {
			t.Errorf("register %#x = %#x, want %#x", c.off, got, c.want)
		}
	}
	if !r.l.PICRouted() {
		t.Error("BSP after reset: PIC not routed through LINT0")
	}
	ap := newRig(t, func(c *Config) { c.BSP = false; c.ID = 1 })
	if ap.rd(RegLVTLINT0) != LVTMasked || ap.l.PICRouted() {
		t.Error("AP after reset: LINT0 should be masked")
	}
	if !ap.l.WaitingForSIPI() || r.l.WaitingForSIPI() {
		t.Error("only the AP should wait for SIPI after reset")
	}
	if got := ap.msr(t, MSRAPICBase); got&APICBaseBSP != 0 {
		t.Errorf("AP IA32_APIC_BASE = %#x has BSP set", got)
	}
}

func TestPPR(t *testing.T) {
	// SDM Vol. 3A 11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else
	// ISRV[7:4]:0.
	cases := []struct {
		tpr    uint32
		isr    uint8 // 0 = none
		wantPP uint32
	}{
		{0x30, 0, 0x30},
		{0x30, 0x45, 0x40},
		{0x52, 0x45, 0x52},
		{0x4F, 0x45, 0x4F},
		{0x00, 0xEE, 0xE0},
		{0xF0, 0xEE, 0xF0},
	}
	for _, c := range cases {
		r := newRig(t, nil)
		r.enable()
		if c.isr != 0 {
			if !r.l.Accept(c.isr, false) || !r.l.Ack(c.isr) {
				t.Fatalf("could not put %#x in service", c.isr)
			}
		}
		r.wr(RegTPR, c.tpr)
		if got := r.rd(RegPPR); got != c.wantPP {
			t.Errorf("TPR %#x ISR %#x: PPR = %#x, want %#x", c.tpr, c.isr, got, c.wantPP)
		}
	}
}

func TestPriorityClassesAndEOIOrder(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.wr(RegTPR, 0x30)
	r.l.Accept(0x35, false)
	r.l.Accept(0x3A, false)
	if v, ok := r.l.PendingVector(); ok {
		t.Fatalf("vector %#x delivered at TPR 0x30 (class 3 is not above 3)", v)
	}
	r.wr(RegTPR, 0x20)
	v, ok := r.l.AckPending()
	if !ok || v != 0x3A {
		t.Fatalf("AckPending = %#x %v, want 0x3A (highest first)", v, ok)
	}
	// 0x35 is in the same class as the in-service 0x3A: held.
	if v, ok := r.l.PendingVector(); ok {
		t.Fatalf("vector %#x delivered while 0x3A (same class) is in service", v)
	}
	// A higher class nests.
	r.l.Accept(0x41, true)
	if v, ok := r.l.AckPending(); !ok || v != 0x41 {
		t.Fatalf("nested AckPending = %#x %v, want 0x41", v, ok)
	}
	if got := r.rd(RegISR + 0x20); got != 1<<(0x41-0x40) {
		t.Errorf("ISR[2] = %#x", got)
	}
	if got := r.rd(RegISR + 0x10); got != 1<<(0x3A-0x20) {
		t.Errorf("ISR[1] = %#x", got)
	}
	if got := r.rd(RegTMR + 0x20); got != 1<<(0x41-0x40) {
		t.Errorf("TMR[2] = %#x: level-triggered 0x41 not recorded", got)
	}
	// EOI retires the highest in-service vector first, and broadcasts
	// only level-triggered ones.
	r.wr(RegEOI, 0)
	if r.rd(RegISR+0x20) != 0 || r.rd(RegISR+0x10) == 0 {
		t.Fatal("first EOI did not retire 0x41 alone")
	}
	if len(r.eois) != 1 || r.eois[0] != 0x41 {
		t.Fatalf("EOI broadcasts = %#x, want [0x41]", r.eois)
	}
	if v, ok := r.l.PendingVector(); ok {
		t.Fatalf("%#x pending while 0x3A still in service", v)
	}
	r.wr(RegEOI, 0)
	if len(r.eois) != 1 {
		t.Fatalf("edge-triggered EOI broadcast: %#x", r.eois)
	}
	if v, ok := r.l.PendingVector(); !ok || v != 0x35 {
		t.Fatalf("after both EOIs: pending = %#x %v, want 0x35", v, ok)
	}
	// EOI with nothing in service does nothing.
	r.l.Ack(0x35)
	r.wr(RegEOI, 0)
	r.wr(RegEOI, 0)
	for i := uint16(0); i < 8; i++ {
		if r.rd(RegISR+i*0x10) != 0 || r.rd(RegIRR+i*0x10) != 0 {
			t.Fatalf("ISR/IRR not empty at word %d", i)
		}
	}
}

func TestAckOnlyRequested(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	if r.l.Ack(0x80) {
		t.Fatal("Ack of a vector not in the IRR succeeded")
	}
	if r.rd(RegISR+0x40) != 0 {
		t.Fatal("ISR bit set without a request")
	}
}

func TestAcceptRules(t *testing.T) {
	r := newRig(t, nil)
	// Software-disabled after reset: fixed interrupts are refused.
	if r.l.Accept(0x40, false) {
		t.Fatal("software-disabled APIC accepted a fixed interrupt")
	}
	r.enable()
	if r.l.Accept(0x05, false) {
		t.Fatal("illegal vector 5 accepted")
	}
	r.wr(RegESR, 0)
	if got := r.rd(RegESR); got != ESRReceiveIllegalVector {
		t.Errorf("ESR = %#x, want receive illegal vector", got)
	}
	r.wr(RegESR, 0)
	if got := r.rd(RegESR); got != 0 {
		t.Errorf("ESR after a second write = %#x, want 0", got)
	}
	// Error LVT raises its vector.
	r.wr(RegLVTError, 0xE0)
	r.l.Accept(0x01, false)
	if v, ok := r.l.PendingVector(); !ok || v != 0xE0 {
		t.Errorf("error LVT: pending %#x %v, want 0xE0", v, ok)
	}
	// Clearing the software enable masks every LVT, and they stay masked.
	r.wr(RegLVTLINT0, 7<<8)
	r.wr(RegSVR, 0xFF)
	r.wr(RegLVTTimer, 0x40)
	for off := RegLVTTimer; off <= RegLVTError; off += 0x10 {
		if r.rd(off)&LVTMasked == 0 {
			t.Errorf("LVT %#x unmasked while software-disabled", off)
		}
	}
}

func TestGloballyDisabled(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.l.Accept(0x40, false)
	if err := r.l.WriteMSR(MSRAPICBase, DefaultBase); err != nil {
		t.Fatal(err)
	}
	if r.l.Contains(DefaultBase) {
		t.Error("xAPIC page decoded while disabled")
	}
	if got := r.l.ReadMMIO(DefaultBase+uint64(RegVersion), 4); got != 0xFFFFFFFF {
		t.Errorf("read while disabled = %#x, want all ones", got)
	}
	if _, ok := r.l.PendingVector(); ok {
		t.Error("disabled APIC presents an interrupt")
	}
	if r.l.Accept(0x41, false) || r.l.DeliverNMI() || r.l.DeliverINIT() {
		t.Error("disabled APIC takes messages")
	}
	if !r.l.PICRouted() {
		t.Error("disabled APIC: LINT0 should be the INTR pin")
	}
	// Re-enabled, it is in its reset state.
	if err := r.l.WriteMSR(MSRAPICBase, DefaultBase|APICBaseEnable); err != nil {
		t.Fatal(err)
	}
	if r.rd(RegSVR) != 0xFF || r.rd(RegIRR+0x20) != 0 || r.rd(RegID) != 3<<24 {
		t.Errorf("after re-enable: SVR %#x IRR %#x ID %#x", r.rd(RegSVR), r.rd(RegIRR+0x20), r.rd(RegID))
	}
}

func TestModeTransitions(t *testing.T) {
	const (
		off = DefaultBase
		x   = DefaultBase | APICBaseEnable
		x2  = DefaultBase | APICBaseEnable | APICBaseX2APIC
		inv = DefaultBase | APICBaseX2APIC
	)
	cases := []struct {
		name  string
		path  []uint64
		want  error // of the last write
		final Mode
	}{
		{"xAPIC to x2APIC", []uint64{x2}, nil, ModeX2APIC},
		{"xAPIC to disabled", []uint64{off}, nil, ModeDisabled},
		{"disabled to xAPIC", []uint64{off, x}, nil, ModeXAPIC},
		{"disabled to x2APIC", []uint64{off, x2}, ErrAPICBaseMode, ModeDisabled},
		{"x2APIC to xAPIC", []uint64{x2, x}, ErrAPICBaseMode, ModeX2APIC},
		{"x2APIC to disabled to xAPIC", []uint64{x2, off, x}, nil, ModeXAPIC},
		{"to invalid from xAPIC", []uint64{inv}, ErrAPICBaseMode, ModeXAPIC},
		{"to invalid from x2APIC", []uint64{x2, inv}, ErrAPICBaseMode, ModeX2APIC},
		{"reserved bit 9", []uint64{x | 1<<9}, ErrAPICBaseReserved, ModeXAPIC},
		{"reserved bit 0", []uint64{x | 1}, ErrAPICBaseReserved, ModeXAPIC},
		{"above MAXPHYADDR", []uint64{x | 1<<40}, ErrAPICBaseReserved, ModeXAPIC},
		{"relocate", []uint64{0xFED00000 | APICBaseEnable}, nil, ModeXAPIC},
	}
	for _, c := range cases {
		r := newRig(t, func(c *Config) { c.PhysAddrBits = 39 })
		var err error
		for _, v := range c.path {
			err = r.l.WriteMSR(MSRAPICBase, v)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if m := r.l.Mode(); m != c.final {
			t.Errorf("%s: mode %v, want %v", c.name, m, c.final)
		}
	}
	r := newRig(t, nil)
	if err := r.l.WriteMSR(MSRAPICBase, 0xFED00000|APICBaseEnable); err != nil {
		t.Fatal(err)
	}
	if r.l.Base() != 0xFED00000 || !r.l.Contains(0xFED00FFF) || r.l.Contains(DefaultBase) {
		t.Error("relocated page not decoded at its new base")
	}
	if got := r.msr(t, MSRAPICBase); got&APICBaseBSP == 0 {
		t.Error("BSP flag lost on write")
	}
}

func TestX2APICRegisters(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ID = 0x25 })
	if _, err := r.l.ReadMSR(0x802); !errors.Is(err, ErrNotX2APIC) {
		t.Errorf("x2APIC MSR in xAPIC mode: %v", err)
	}
	r.wr(RegLDR, 0x01000000)
	r.toX2APIC(t)
	if got := r.msr(t, 0x802); got != 0x25 {
		t.Errorf("x2APIC ID = %#x", got)
	}
	// LDR derived: cluster 0x25>>4 = 2, bit 0x25&0xF = 5.
	if got := r.msr(t, 0x80D); got != 2<<16|1<<5 {
		t.Errorf("x2APIC LDR = %#x, want %#x", got, 2<<16|1<<5)
	}
	if got := r.msr(t, 0x803); got != uint64(VersionValue) {
		t.Errorf("version = %#x", got)
	}
	if got := r.l.ReadMMIO(DefaultBase+uint64(RegVersion), 4); got != 0xFFFFFFFF {
		t.Errorf("xAPIC page decoded in x2APIC mode: %#x", got)
	}
	gp := []struct {
		name  string
		write bool
		msr   uint32
		v     uint64
		want  error
	}{
		{"write ID", true, 0x802, 0, ErrReadOnly},
		{"write version", true, 0x803, 0, ErrReadOnly},
		{"write PPR", true, 0x80A, 0, ErrReadOnly},
		{"write LDR", true, 0x80D, 0, ErrReadOnly},
		{"write ISR", true, 0x810, 0, ErrReadOnly},
		{"write IRR", true, 0x827, 0, ErrReadOnly},
		{"write current count", true, 0x839, 0, ErrReadOnly},
		{"read EOI", false, 0x80B, 0, ErrWriteOnly},
		{"read SELF IPI", false, 0x83F, 0, ErrWriteOnly},
		{"APR", false, 0x809, 0, ErrReservedRegister},
		{"RRD", false, 0x80C, 0, ErrReservedRegister},
		{"DFR", false, 0x80E, 0, ErrReservedRegister},
		{"ICR high", false, 0x831, 0, ErrReservedRegister},
		{"CMCI", false, 0x82F, 0, ErrReservedRegister},
		{"0x800", false, 0x800, 0, ErrReservedRegister},
		{"0x8FF", true, 0x8FF, 0, ErrReservedRegister},
		{"TPR bit 8", true, 0x808, 0x100, ErrReservedBits},
		{"TPR bit 32", true, 0x808, 1 << 32, ErrReservedBits},
		{"EOI non-zero", true, 0x80B, 1, ErrReservedBits},
		{"ESR non-zero", true, 0x828, 1, ErrReservedBits},
		{"SVR bit 12 (no EOI suppression)", true, 0x80F, 1 << 12, ErrReservedBits},
		{"ICR delivery status", true, 0x830, 1 << 12, ErrReservedBits},
		{"ICR bit 13", true, 0x830, 1 << 13, ErrReservedBits},
		{"ICR bit 20", true, 0x830, 1 << 20, ErrReservedBits},
		{"LVT timer bit 19", true, 0x832, 1 << 19, ErrReservedBits},
		{"LVT timer mode 3", true, 0x832, 3 << 17, ErrReservedBits},
		{"LVT error delivery mode", true, 0x837, 4 << 8, ErrReservedBits},
		{"initial count bit 32", true, 0x838, 1 << 32, ErrReservedBits},
		{"divide bit 2", true, 0x83E, 4, ErrReservedBits},
		{"SELF IPI bit 8", true, 0x83F, 0x100, ErrReservedBits},
		{"not an APIC MSR", false, 0x10, 0, ErrNotLAPICMSR},
	}
	for _, c := range gp {
		var err error
		if c.write {
			err = r.l.WriteMSR(c.msr, c.v)
		} else {
			_, err = r.l.ReadMSR(c.msr)
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s (%#x): err = %v, want %v", c.name, c.msr, err, c.want)
		}
	}
	// Valid writes: status bits that are read-only, not reserved, pass.
	ok := []struct {
		msr uint32
		v   uint64
	}{
		{0x808, 0xFF}, {0x80F, 0x1FF}, {0x828, 0}, {0x835, 1<<12 | 1<<14 | 7<<8},
		{0x832, 2<<17 | 0x40}, {0x838, 0xFFFFFFFF}, {0x83E, 0xB},
	}
	for _, c := range ok {
		if err := r.l.WriteMSR(c.msr, c.v); err != nil {
			t.Errorf("WRMSR %#x = %#x: %v", c.msr, c.v, err)
		}
	}
	if got := r.msr(t, 0x835); got != 7<<8 {
		t.Errorf("LINT0 = %#x: read-only bits stored", got)
	}
	// Self IPI through MSR 0x83F.
	if err := r.l.WriteMSR(0x808, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.l.WriteMSR(0x83F, 0x66); err != nil {
		t.Fatal(err)
	}
	if got := r.msr(t, 0x823); got != 1<<(0x66-0x60) {
		t.Errorf("IRR[3] after SELF IPI = %#x", got)
	}
	if v, ok := r.l.AckPending(); !ok || v != 0x66 {
		t.Fatalf("AckPending = %#x %v", v, ok)
	}
	if err := r.l.WriteMSR(0x80B, 0); err != nil {
		t.Fatal(err)
	}
	if got := r.msr(t, 0x813); got != 0 {
		t.Errorf("ISR[3] after EOI = %#x", got)
	}
}

func TestICRXAPIC(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.wr(RegICRHigh, 0x0A<<24|0x123)
	if got := r.rd(RegICRHigh); got != 0x0A<<24 {
		t.Errorf("ICR high = %#x (reserved bits kept)", got)
	}
	r.wr(RegICRLow, 0x40|1<<11|1<<14)
	if len(r.ipis.ipis) != 1 {
		t.Fatalf("sent %d IPIs", len(r.ipis.ipis))
	}
	want := IPI{Vector: 0x40, Mode: DeliveryFixed, Logical: true, Dest: 0x0A}
	if r.ipis.ipis[0] != want || r.ipis.src[0] != 3 {
		t.Errorf("IPI = %+v from %d, want %+v from 3", r.ipis.ipis[0], r.ipis.src[0], want)
	}
	if got := r.rd(RegICRLow); got&icrDeliveryStatus != 0 || got&0xFF != 0x40 {
		t.Errorf("ICR low read back %#x", got)
	}
	// INIT level de-assert (trigger level, level bit 0): ignored.
	r.wr(RegICRLow, uint32(DeliveryINIT)<<8|1<<15)
	// INIT assert, SIPI vector 0x9A, all-but-self.
	r.wr(RegICRLow, uint32(DeliveryINIT)<<8|1<<14|3<<18)
	r.wr(RegICRLow, uint32(DeliveryStartUp)<<8|0x9A|3<<18)
	// Fixed with an illegal vector: not sent, ESR send illegal.
	r.wr(RegICRLow, 0x0F)
	// SMI and reserved mode 3: not sent.
	r.wr(RegICRLow, 2<<8|0x40)
	r.wr(RegICRLow, 3<<8|0x40)
	if len(r.ipis.ipis) != 3 {
		t.Fatalf("sent %d IPIs, want 3: %+v", len(r.ipis.ipis), r.ipis.ipis)
	}
	if i := r.ipis.ipis[1]; i.Mode != DeliveryINIT || i.Shorthand != ShorthandAllButSelf {
		t.Errorf("INIT IPI = %+v", i)
	}
	if i := r.ipis.ipis[2]; i.Mode != DeliveryStartUp || i.Vector != 0x9A {
		t.Errorf("SIPI = %+v", i)
	}
	r.wr(RegESR, 0)
	if got := r.rd(RegESR); got != ESRSendIllegalVector {
		t.Errorf("ESR = %#x, want send illegal vector", got)
	}
	// Self shorthand: accepted locally, nothing sent.
	r.wr(RegICRLow, 0x55|1<<18)
	if len(r.ipis.ipis) != 3 {
		t.Error("self IPI went to the sink")
	}
	if v, ok := r.l.PendingVector(); !ok || v != 0x55 {
		t.Errorf("self IPI: pending %#x %v", v, ok)
	}
}

func TestICRX2APIC(t *testing.T) {
	r := newRig(t, nil)
	r.toX2APIC(t)
	if err := r.l.WriteMSR(0x830, 0x12345<<32|uint64(DeliveryNMI)<<8); err != nil {
		t.Fatal(err)
	}
	want := IPI{Mode: DeliveryNMI, Dest: 0x12345, Wide: true}
	if len(r.ipis.ipis) != 1 || r.ipis.ipis[0] != want {
		t.Fatalf("IPIs = %+v, want [%+v]", r.ipis.ipis, want)
	}
	if got := r.msr(t, 0x830); got != 0x12345<<32|uint64(DeliveryNMI)<<8 {
		t.Errorf("ICR read back %#x", got)
	}
}

func TestDestinationMatching(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ID = 5 })
	l := r.l
	r.wr(RegLDR, 0x24<<24)
	cases := []struct {
		name    string
		dfr     uint32
		dest    uint32
		logical bool
		want    bool
	}{
		{"physical own ID", 0xFFFFFFFF, 5, false, true},
		{"physical other", 0xFFFFFFFF, 6, false, false},
		{"physical broadcast", 0xFFFFFFFF, 0xFF, false, true},
		{"flat hit", 0xFFFFFFFF, 0x04, true, true},
		{"flat hit 2", 0xFFFFFFFF, 0x21, true, true},
		{"flat miss", 0xFFFFFFFF, 0x13, true, false},
		{"flat broadcast", 0xFFFFFFFF, 0xFF, true, true},
		// Cluster model: LDR 0x24 is cluster 2, member bit 2 (0x4).
		{"cluster hit", 0x0FFFFFFF, 0x24, true, true},
		{"cluster multi", 0x0FFFFFFF, 0x2C, true, true},
		{"cluster wrong cluster", 0x0FFFFFFF, 0x34, true, false},
		{"cluster wrong member", 0x0FFFFFFF, 0x28, true, false},
		{"cluster broadcast", 0x0FFFFFFF, 0xFF, true, true},
	}
	for _, c := range cases {
		r.wr(RegDFR, c.dfr)
		if got := l.Matches(c.dest, c.logical, false); got != c.want {
			t.Errorf("%s: Matches(%#x) = %v", c.name, c.dest, got)
		}
	}
	r.toX2APIC(t)
	x2 := []struct {
		name          string
		dest          uint32
		logical, wide bool
		want          bool
	}{
		{"x2 physical", 5, false, true, true},
		{"x2 physical other", 0x105, false, true, false},
		{"x2 broadcast", 0xFFFFFFFF, false, true, true},
		{"x2 logical hit", 0<<16 | 1<<5, true, true, true},
		{"x2 logical wrong cluster", 1<<16 | 1<<5, true, true, false},
		{"x2 logical wrong member", 0<<16 | 1<<4, true, true, false},
		{"x2 logical broadcast", 0xFFFFFFFF, true, true, true},
		{"8-bit physical to x2", 5, false, false, true},
		{"8-bit broadcast to x2", 0xFF, true, false, true},
		{"8-bit logical to x2", 0x20, true, false, false},
	}
	for _, c := range x2 {
		if got := l.Matches(c.dest, c.logical, c.wide); got != c.want {
			t.Errorf("%s: Matches(%#x, %v, %v) = %v", c.name, c.dest, c.logical, c.wide, got)
		}
	}
}

func TestGroupRouting(t *testing.T) {
	clk := &manualClock{}
	var apics []*LAPIC
	g := &Group{}
	var kicked []int
	g.Kick = func(i int) { kicked = append(kicked, i) }
	for id := uint32(0); id < 3; id++ {
		l, err := New(Config{ID: id, BSP: id == 0, Clock: clk, IPI: g})
		if err != nil {
			t.Fatal(err)
		}
		l.WriteMMIO(DefaultBase+uint64(RegSVR), 4, uint64(SVREnable|0xFF))
		l.WriteMMIO(DefaultBase+uint64(RegLDR), 4, uint64(1<<(24+id)))
		apics = append(apics, l)
	}
	g.APICs = apics
	icr := func(src int, high, low uint32) {
		apics[src].WriteMMIO(DefaultBase+uint64(RegICRHigh), 4, uint64(high))
		apics[src].WriteMMIO(DefaultBase+uint64(RegICRLow), 4, uint64(low))
	}
	// Logical flat 0b110: APICs 1 and 2.
	icr(0, 0x06<<24, 0x50|1<<11|1<<14)
	for i, want := range []bool{false, true, true} {
		if _, ok := apics[i].PendingVector(); ok != want {
			t.Errorf("logical IPI: APIC %d pending = %v", i, ok)
		}
	}
	if len(kicked) != 2 || kicked[0] != 1 || kicked[1] != 2 {
		t.Errorf("kicked %v, want [1 2]", kicked)
	}
	// Lowest priority to the same set: the first target only.
	icr(0, 0x06<<24, 0x60|1<<8|1<<11|1<<14)
	if v, _ := apics[1].PendingVector(); v != 0x60 {
		t.Errorf("lowest priority: APIC 1 pending %#x", v)
	}
	if v, _ := apics[2].PendingVector(); v == 0x60 {
		t.Error("lowest priority delivered twice")
	}
	// All including self, NMI.
	icr(1, 0, uint32(DeliveryNMI)<<8|2<<18|1<<14)
	for i, l := range apics {
		if !l.TakeNMI() {
			t.Errorf("NMI to all: APIC %d has none", i)
		}
	}
	// INIT, SIPI, SIPI to APIC 2 (physical), the MP start-up sequence.
	icr(0, 2<<24, uint32(DeliveryINIT)<<8|1<<14)
	icr(0, 2<<24, uint32(DeliveryINIT)<<8|1<<15) // de-assert: ignored
	icr(0, 2<<24, uint32(DeliveryStartUp)<<8|0x9A)
	icr(0, 2<<24, uint32(DeliveryStartUp)<<8|0x9B)
	init, _, ok := apics[2].TakeInitSIPI()
	if !ok || !init {
		t.Fatalf("TakeInitSIPI: init %v ok %v", init, ok)
	}
	if apics[2].rd(t, RegSVR) != 0xFF || apics[2].rd(t, RegLDR) != 0 {
		t.Error("INIT did not reset the APIC's registers")
	}
	init, vec, ok := apics[2].TakeInitSIPI()
	if !ok || init || vec != 0x9A {
		t.Fatalf("TakeInitSIPI: init %v vec %#x ok %v, want the first SIPI 0x9A", init, vec, ok)
	}
	if _, _, ok := apics[2].TakeInitSIPI(); ok {
		t.Fatal("second SIPI was not ignored")
	}
	if _, _, ok := apics[1].TakeInitSIPI(); ok || apics[1].rd(t, RegLDR) != 1<<25 {
		t.Error("APIC 1 affected by INIT to APIC 2")
	}
	// IOAPIC-style message: physical, level-triggered, to APIC 1.
	if !g.Deliver(1, false, uint8(DeliveryFixed), 0x70, true) {
		t.Fatal("Deliver not taken")
	}
	if v, _ := apics[1].AckPending(); v != 0x70 {
		t.Errorf("Deliver: APIC 1 took %#x", v)
	}
	if g.Deliver(7, false, uint8(DeliveryFixed), 0x70, false) {
		t.Error("Deliver to a missing APIC reported taken")
	}
}

// rd reads an xAPIC register of l for tests.
func (l *LAPIC) rd(t testing.TB, off uint16) uint32 {
	return uint32(l.ReadMMIO(DefaultBase+uint64(off), 4))
}

func TestMMIOAccessSizes(t *testing.T) {
	r := newRig(t, func(c *Config) { c.ID = 0xAB })
	if got := r.l.ReadMMIO(DefaultBase+uint64(RegID)+3, 1); got != 0xAB {
		t.Errorf("byte read of ID bits 31:24 = %#x", got)
	}
	if got := r.l.ReadMMIO(DefaultBase+uint64(RegVersion), 2); got != 0x0014 {
		t.Errorf("16-bit read of version = %#x", got)
	}
	if got := r.l.ReadMMIO(DefaultBase+uint64(RegVersion)+4, 4); got != 0 {
		t.Errorf("bytes 4-7 of a register slot = %#x", got)
	}
	r.l.WriteMMIO(DefaultBase+uint64(RegTPR)+1, 1, 0x50)
	r.l.WriteMMIO(DefaultBase+uint64(RegTPR), 2, 0x50)
	if got := r.rd(RegTPR); got != 0 {
		t.Errorf("narrow or misaligned write reached TPR: %#x", got)
	}
	r.l.WriteMMIO(DefaultBase+uint64(RegTPR), 8, 0xFFFFFFFF_00000050)
	if got := r.rd(RegTPR); got != 0x50 {
		t.Errorf("64-bit write: TPR = %#x", got)
	}
	r.wr(0x010, 1) // reserved offset
	r.wr(RegESR, 0)
	if got := r.rd(RegESR); got != ESRIllegalRegister {
		t.Errorf("ESR after a reserved-offset write = %#x", got)
	}
	if got := r.l.ReadMMIO(DefaultBase+PageSize, 4); got != 0xFFFFFFFF {
		t.Errorf("read past the page = %#x", got)
	}
	r.wr(RegDFR, 0)
	if got := r.rd(RegDFR); got != 0x0FFFFFFF {
		t.Errorf("DFR = %#x, want model 0 with bits 27:0 ones", got)
	}
	r.wr(RegVersion, 0)
	if got := r.rd(RegVersion); got != VersionValue {
		t.Errorf("version writable: %#x", got)
	}
}

func TestCR8(t *testing.T) {
	r := newRig(t, nil)
	if err := r.l.SetCR8(0x9); err != nil {
		t.Fatal(err)
	}
	if got := r.rd(RegTPR); got != 0x90 {
		t.Errorf("TPR after CR8=9: %#x", got)
	}
	r.wr(RegTPR, 0x7C)
	if got := r.l.CR8(); got != 7 {
		t.Errorf("CR8 = %d", got)
	}
	if err := r.l.SetCR8(0x10); !errors.Is(err, ErrReservedBits) {
		t.Errorf("CR8 bit 4: %v", err)
	}
}

func TestLINT(t *testing.T) {
	r := newRig(t, nil)
	r.enable()
	r.wr(RegLVTLINT1, uint32(DeliveryNMI)<<8)
	if !r.l.RaiseLINT(1) || !r.l.TakeNMI() {
		t.Error("LINT1 in NMI mode raised no NMI")
	}
	r.wr(RegLVTLINT0, 0x45)
	if !r.l.RaiseLINT(0) {
		t.Error("LINT0 fixed not delivered")
	}
	if v, ok := r.l.PendingVector(); !ok || v != 0x45 {
		t.Errorf("LINT0 fixed: pending %#x", v)
	}
	r.wr(RegLVTLINT0, LVTMasked|uint32(DeliveryExtINT)<<8)
	if r.l.RaiseLINT(0) || r.l.PICRouted() {
		t.Error("masked LINT0 delivered")
	}
	if r.l.RaiseLINT(2) {
		t.Error("pin 2 accepted")
	}
}

func TestHandlesMSR(t *testing.T) {
	for msr, want := range map[uint32]bool{
		0x1B: true, 0x6E0: true, 0x800: true, 0x830: true, 0x8FF: true,
		0x7FF: false, 0x900: false, 0x10: false, 0xC0000080: false,
	} {
		if got := HandlesMSR(msr); got != want {
			t.Errorf("HandlesMSR(%#x) = %v", msr, got)
		}
	}
}

func TestMulDiv(t *testing.T) {
	const max = ^uint64(0)
	cases := []struct {
		a, b, c uint64
		ceil    bool
		want    uint64
	}{
		{3, 5, 2, false, 7},
		{3, 5, 2, true, 8},
		{1 << 40, 1 << 40, 1 << 30, false, 1 << 50},
		{max, max, 1, false, max}, // quotient does not fit: saturate
		{1, 1, 0, false, max},     // no division by zero
		{max, 1, 1, true, max},
	}
	for _, c := range cases {
		if got := mulDiv(c.a, c.b, c.c, c.ceil); got != c.want {
			t.Errorf("mulDiv(%d, %d, %d, %v) = %d, want %d", c.a, c.b, c.c, c.ceil, got, c.want)
		}
	}
	if got := addTime(NoDeadline-5, 100); got != NoDeadline-1 {
		t.Errorf("addTime saturation = %d", got)
	}
}

func TestShorthandsAndX2APICGroup(t *testing.T) {
	clk := &manualClock{}
	g := &Group{}
	for id := uint32(0); id < 3; id++ {
		l, err := New(Config{ID: id * 0x10, BSP: id == 0, Clock: clk, IPI: g})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.WriteMSR(MSRAPICBase, DefaultBase|APICBaseEnable|APICBaseX2APIC); err != nil {
			t.Fatal(err)
		}
		if err := l.WriteMSR(0x80F, uint64(SVREnable|0xFF)); err != nil {
			t.Fatal(err)
		}
		g.APICs = append(g.APICs, l)
	}
	pending := func() (p [3]uint8) {
		for i, l := range g.APICs {
			if v, ok := l.AckPending(); ok {
				p[i] = v
				l.EOI()
			}
		}
		return p
	}
	send := func(src int, icr uint64) {
		if err := g.APICs[src].WriteMSR(0x830, icr); err != nil {
			t.Fatal(err)
		}
	}
	send(1, 0x40|3<<18) // all but self
	if got := pending(); got != [3]uint8{0x40, 0, 0x40} {
		t.Errorf("all-but-self: %#x", got)
	}
	send(1, 0x41|2<<18) // all including self
	if got := pending(); got != [3]uint8{0x41, 0x41, 0x41} {
		t.Errorf("all-including-self: %#x", got)
	}
	send(2, 0x42|1<<18) // self
	if got := pending(); got != [3]uint8{0, 0, 0x42} {
		t.Errorf("self: %#x", got)
	}
	send(0, 0x43|0x20<<32) // physical x2APIC ID 0x20
	if got := pending(); got != [3]uint8{0, 0, 0x43} {
		t.Errorf("physical 0x20: %#x", got)
	}
	// Logical: IDs 0x10 and 0x20 are clusters 1 and 2, member bit 0.
	send(0, 0x44|1<<11|(2<<16|1)<<32)
	if got := pending(); got != [3]uint8{0, 0, 0x44} {
		t.Errorf("logical cluster 2: %#x", got)
	}
	send(0, 0x45|0xFFFFFFFF<<32)
	if got := pending(); got != [3]uint8{0x45, 0x45, 0x45} {
		t.Errorf("x2APIC broadcast: %#x", got)
	}
}

// TestINITToBSPAndStartupPending: after INIT the BSP does not wait for a
// SIPI (it runs the firmware at the reset vector, SDM Vol. 3A 9.1) and
// ignores SIPIs, while an AP waits; StartupPending shows an event until
// TakeInitSIPI takes it.
func TestINITToBSPAndStartupPending(t *testing.T) {
	bsp := newRig(t, nil)
	if !bsp.l.BSP() || bsp.l.StartupPending() {
		t.Fatalf("BSP %v, pending %v after reset", bsp.l.BSP(), bsp.l.StartupPending())
	}
	bsp.l.DeliverINIT()
	if bsp.l.DeliverSIPI(0x10) {
		t.Error("the BSP took a SIPI after INIT")
	}
	if !bsp.l.StartupPending() {
		t.Error("INIT not shown as pending")
	}
	if init, _, ok := bsp.l.TakeInitSIPI(); !ok || !init {
		t.Fatalf("TakeInitSIPI on the BSP: init %v ok %v", init, ok)
	}
	if bsp.l.WaitingForSIPI() || bsp.l.StartupPending() {
		t.Errorf("BSP after INIT: waiting %v, pending %v; want neither", bsp.l.WaitingForSIPI(), bsp.l.StartupPending())
	}
	if _, _, ok := bsp.l.TakeInitSIPI(); ok {
		t.Error("the BSP got a second start-up event")
	}

	ap := newRig(t, func(c *Config) { c.BSP = false; c.ID = 1 })
	if ap.l.BSP() {
		t.Error("AP reports BSP")
	}
	ap.l.DeliverINIT()
	if !ap.l.DeliverSIPI(0x9A) || !ap.l.StartupPending() {
		t.Fatal("AP: SIPI after INIT not taken")
	}
	if init, _, _ := ap.l.TakeInitSIPI(); !init || !ap.l.WaitingForSIPI() || !ap.l.StartupPending() {
		t.Fatal("AP: after INIT it must wait with the SIPI still pending")
	}
	if init, v, ok := ap.l.TakeInitSIPI(); init || !ok || v != 0x9A || ap.l.WaitingForSIPI() || ap.l.StartupPending() {
		t.Errorf("AP SIPI: init %v vector %#x ok %v waiting %v", init, v, ok, ap.l.WaitingForSIPI())
	}
}
