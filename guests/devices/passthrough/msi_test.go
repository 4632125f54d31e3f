package passthrough

import (
	"testing"
	"time"

	"tamavisor/guests/devices/lapic"
	"tamavisor/guests/devices/pcihost"
)

// Host vectors the rig's allocator hands out: MSI first, then one per
// MSI-X entry; all on host APIC 2.
const (
	msiVector      = 0x40
	msixVector0    = 0x41
	hostMSIAddress = 0xFEE02000
)

const (
	msiCtlReg  = capMSIOff      // ID, next, Message Control
	msiAddrReg = capMSIOff + 4  // address
	msiHiReg   = capMSIOff + 8  // upper address
	msiDataReg = capMSIOff + 12 // data
	msiMaskReg = capMSIOff + 16
	msiPendReg = capMSIOff + 20
)

func TestMSIHostProgramming(t *testing.T) {
	r := newRig(t, nil)
	d := r.dev
	if got := d.get32(msiAddrReg); got != hostMSIAddress {
		t.Errorf("device MSI address %#x, want the host APIC's %#x", got, hostMSIAddress)
	}
	if d.get32(msiHiReg) != 0 || d.get32(msiDataReg) != msiVector {
		t.Errorf("device MSI upper %#x data %#x", d.get32(msiHiReg), d.get32(msiDataReg))
	}
	if d.get32(msiCtlReg)>>16&(msiCtlEnable|7<<4) != 0 {
		t.Errorf("device MSI enabled or multi-message after New: control %#x", d.get32(msiCtlReg)>>16)
	}
	// Guest's view: 64-bit, per-vector masking, one message, disabled.
	if got := r.rd(msiCtlReg+2, 2); got != msiCtl64|msiCtlPerVector {
		t.Errorf("guest MSI control %#x", got)
	}
	if r.rd(msiAddrReg, 4) != 0 || r.rd(msiDataReg, 4) != 0 {
		t.Error("guest sees the host's MSI message")
	}
}

// TestMSIGuestMessageNeverReachesDevice programs MSI as Linux does
// (address, upper address, data, then enable) and checks that the device
// keeps the host message while a host interrupt delivers the guest's.
func TestMSIGuestMessageNeverReachesDevice(t *testing.T) {
	r := newRig(t, nil)
	d := r.dev
	r.wr(msiAddrReg, 4, 0xFEE01000)
	r.wr(msiHiReg, 4, 0)
	r.wr(msiDataReg, 2, 0x4045)
	r.wr(msiCtlReg+2, 2, msiCtlEnable|3<<4) // asks for 8 messages
	if got := r.rd(msiCtlReg+2, 2); got != msiCtlEnable|msiCtl64|msiCtlPerVector {
		t.Errorf("guest MSI control %#x: multiple message enable must stay 0", got)
	}
	if r.rd(msiAddrReg, 4) != 0xFEE01000 || r.rd(msiDataReg, 2) != 0x4045 {
		t.Error("guest MSI message not kept")
	}
	if d.get32(msiAddrReg) != hostMSIAddress || d.get32(msiDataReg) != msiVector {
		t.Fatalf("device MSI message changed to %#x/%#x", d.get32(msiAddrReg), d.get32(msiDataReg))
	}
	if d.get32(msiCtlReg)>>16&(msiCtlEnable|7<<4) != msiCtlEnable {
		t.Errorf("device MSI control %#x, want enabled with one message", d.get32(msiCtlReg)>>16)
	}
	for _, w := range r.hostWritesSince() {
		if w.v == 0xFEE01000 || (w.off != msiCtlReg && w.off != msiMaskReg) {
			t.Errorf("guest MSI programming wrote %#x to device register %#x", w.v, w.off)
		}
	}
	r.vecs.fire(t, msiVector)
	if len(r.msis.msgs) != 1 || r.msis.msgs[0] != (msg{0xFEE01000, 0x4045}) {
		t.Fatalf("delivered %+v, want the guest's message", r.msis.msgs)
	}

	// Masking: mirrored to the device; a message that still arrives is
	// held, shown in the pending bit, and delivered on unmask.
	r.wr(msiMaskReg, 4, 1)
	if d.get32(msiMaskReg)&1 != 1 {
		t.Error("guest mask not mirrored to the device")
	}
	r.vecs.fire(t, msiVector)
	if len(r.msis.msgs) != 1 || r.rd(msiPendReg, 4) != 1 {
		t.Fatalf("masked MSI: delivered %d, pending %#x", len(r.msis.msgs), r.rd(msiPendReg, 4))
	}
	r.wr(msiMaskReg, 4, 0xFFFFFFFE) // only bit 0 exists
	if d.get32(msiMaskReg)&1 != 0 || r.rd(msiMaskReg, 4) != 0 {
		t.Error("unmask not mirrored")
	}
	if len(r.msis.msgs) != 2 || r.rd(msiPendReg, 4) != 0 {
		t.Fatalf("held MSI not delivered on unmask: %+v", r.msis.msgs)
	}
	// Device's own pending bit reads through.
	d.set32(msiPendReg, 1)
	if r.rd(msiPendReg, 4) != 1 {
		t.Error("device pending bit not read through")
	}
	// Disabled: host interrupts are dropped, the device is disabled.
	r.wr(msiCtlReg+2, 2, 0)
	if d.get32(msiCtlReg)>>16&msiCtlEnable != 0 {
		t.Error("disable not mirrored")
	}
	r.vecs.fire(t, msiVector)
	if c := r.f.Counters(); c.Delivered != 2 || c.Pending != 1 || c.Dropped != 1 {
		t.Errorf("counters %+v", c)
	}
}

// TestMSIReachesTheRightVirtualAPIC delivers through a real lapic.Group.
func TestMSIReachesTheRightVirtualAPIC(t *testing.T) {
	g := &lapic.Group{}
	var kicked []int
	g.Kick = func(i int) { kicked = append(kicked, i) }
	for id := uint32(0); id < 2; id++ {
		l, err := lapic.New(lapic.Config{ID: id, BSP: id == 0, Clock: zeroClock{}, IPI: g})
		if err != nil {
			t.Fatal(err)
		}
		l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegSVR), 4, uint64(lapic.SVREnable|0xFF))
		g.APICs = append(g.APICs, l)
	}
	r := newRig(t, func(c *Config) { c.MSI = g })
	r.wr(msiAddrReg, 4, uint32(lapic.MSIAddress(1, false)))
	r.wr(msiDataReg, 2, lapic.MSIData(0x45, lapic.DeliveryFixed))
	r.wr(msiCtlReg+2, 2, msiCtlEnable)
	r.vecs.fire(t, msiVector)
	if v, ok := g.APICs[1].PendingVector(); !ok || v != 0x45 {
		t.Errorf("APIC 1 pending %#x, %v; want 0x45", v, ok)
	}
	if _, ok := g.APICs[0].PendingVector(); ok {
		t.Error("APIC 0 got the MSI too")
	}
	if len(kicked) != 1 || kicked[0] != 1 {
		t.Errorf("kicked %v", kicked)
	}
	if c := r.f.Counters(); c.Delivered != 1 {
		t.Errorf("counters %+v", c)
	}
}

type zeroClock struct{}

func (zeroClock) Now() int64 { return 0 }

// MSI-X through the window: the table at the start of BAR3, the PBA at
// 0x2000.
func msixEntryGPA(i int) uint64 { return gpa3 + msixTableOff + uint64(i)*16 }

const pbaGPA = gpa3 + msixPBAOff

func hostEntry(i int) uint64 { return bar3Host + msixTableOff + uint64(i)*16 }

func TestMSIXHostProgramming(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxMSIXVectors = 3 })
	for i := 0; i < msixEntries; i++ {
		a, ctl := r.mem.Read32(hostEntry(i)), r.mem.Read32(hostEntry(i)+12)
		if ctl&1 != 1 {
			t.Errorf("device entry %d unmasked after New", i)
		}
		if i < 3 && (a != hostMSIAddress || r.mem.Read32(hostEntry(i)+8) != uint32(msixVector0+i)) {
			t.Errorf("device entry %d: address %#x data %#x", i, a, r.mem.Read32(hostEntry(i)+8))
		}
	}
	if r.dev.get32(capMSIXOff)>>16 != msixCtlFuncMask|(msixEntries-1) {
		t.Errorf("device MSI-X control %#x, want disabled and function-masked", r.dev.get32(capMSIXOff)>>16)
	}
	// Guest's view: a 3-entry table, the device's locations.
	if got := r.rd(capMSIXOff+2, 2); got != 2 {
		t.Errorf("guest MSI-X control %#x, want table size 3 (field 2), disabled", got)
	}
	if r.rd(capMSIXOff+4, 4) != msixTableOff|3 || r.rd(capMSIXOff+8, 4) != msixPBAOff|3 {
		t.Error("table/PBA locations not read through")
	}
	if len(r.vecs.handlers) != 4 {
		t.Errorf("%d host vectors taken, want 4 (MSI + 3 MSI-X)", len(r.vecs.handlers))
	}
}

func TestMSIXTableEmulation(t *testing.T) {
	r := newRig(t, func(c *Config) { c.MaxMSIXVectors = 3 })
	w := r.win
	r.wr(0x04, 2, uint32(pcihost.CommandMemory|pcihost.CommandBusMaster))
	// Linux's msix_capability_init: enable with the function masked, set
	// up the entries, then unmask the function.
	r.wr(capMSIXOff+2, 2, msixCtlEnable|msixCtlFuncMask)
	if r.dev.get32(capMSIXOff)>>16&(msixCtlEnable|msixCtlFuncMask) != msixCtlEnable|msixCtlFuncMask {
		t.Fatal("MSI-X enable/function mask not mirrored")
	}
	for i := 0; i < 3; i++ {
		w.WriteMMIO(msixEntryGPA(i), 4, uint64(lapic.MSIAddress(uint8(i), false)))
		w.WriteMMIO(msixEntryGPA(i)+4, 4, 0)
		w.WriteMMIO(msixEntryGPA(i)+8, 4, uint64(0x50+i))
	}
	// A QWORD write of address and upper address.
	w.WriteMMIO(msixEntryGPA(2), 8, 0x00000000_FEE03000)
	w.WriteMMIO(msixEntryGPA(1)+12, 4, 0) // unmask entry 1
	for i := 0; i < 3; i++ {
		if a := r.mem.Read32(hostEntry(i)); a != hostMSIAddress || r.mem.Read32(hostEntry(i)+8) != uint32(msixVector0+i) {
			t.Errorf("device entry %d message became %#x/%#x", i, a, r.mem.Read32(hostEntry(i)+8))
		}
	}
	if r.mem.Read32(hostEntry(1)+12) != 0 || r.mem.Read32(hostEntry(0)+12) != 1 {
		t.Error("entry mask bits not mirrored")
	}
	// Reading back: DWORD, QWORD, byte.
	if got := w.ReadMMIO(msixEntryGPA(1), 4); got != 0xFEE01000 {
		t.Errorf("entry 1 address reads %#x", got)
	}
	if got := w.ReadMMIO(msixEntryGPA(2), 8); got != 0xFEE03000 {
		t.Errorf("entry 2 address QWORD reads %#x", got)
	}
	if got := w.ReadMMIO(msixEntryGPA(1)+8, 1); got != 0x51 {
		t.Errorf("entry 1 data byte reads %#x", got)
	}
	if got := w.ReadMMIO(msixEntryGPA(0)+12, 4); got != 1 {
		t.Errorf("entry 0 vector control %#x, want masked", got)
	}

	// The function is masked: entry 1's message is held and pending.
	r.vecs.fire(t, msixVector0+1)
	if len(r.msis.msgs) != 0 {
		t.Fatal("delivered while the function was masked")
	}
	if got := w.ReadMMIO(pbaGPA, 8); got != 1<<1 {
		t.Errorf("PBA %#x, want entry 1 pending", got)
	}
	// Unmasking the entry alone does not let it through.
	w.WriteMMIO(msixEntryGPA(1)+12, 4, 1)
	w.WriteMMIO(msixEntryGPA(1)+12, 4, 0)
	if len(r.msis.msgs) != 0 {
		t.Fatal("entry unmask delivered while the function was masked")
	}
	r.wr(capMSIXOff+2, 2, msixCtlEnable)
	if len(r.msis.msgs) != 1 || r.msis.msgs[0] != (msg{0xFEE01000, 0x51}) {
		t.Fatalf("function unmask delivered %+v", r.msis.msgs)
	}
	if r.dev.get32(capMSIXOff)>>16&msixCtlFuncMask != 0 {
		t.Error("function unmask not mirrored")
	}
	// Straight delivery.
	r.vecs.fire(t, msixVector0+1)
	if len(r.msis.msgs) != 2 {
		t.Fatal("entry 1 not delivered")
	}
	// Entry 0 is masked: held; the device's own pending bit for entry 0
	// and for entry 4 (not the guest's) show as they should.
	r.vecs.fire(t, msixVector0)
	r.mem.Write64(bar3Host+msixPBAOff, 1<<4|1<<2)
	if got := w.ReadMMIO(pbaGPA, 4); got != 1<<0|1<<2 {
		t.Errorf("PBA %#x, want entries 0 (held) and 2 (device)", got)
	}
	w.WriteMMIO(msixEntryGPA(0)+12, 4, 0)
	if len(r.msis.msgs) != 3 || r.msis.msgs[2] != (msg{0xFEE00000, 0x50}) {
		t.Fatalf("entry 0 unmask delivered %+v", r.msis.msgs)
	}
	// Entries past the guest's table: read 0, writes go nowhere.
	before := len(r.mem.writes)
	w.WriteMMIO(msixEntryGPA(3), 4, 0xFEE0F000)
	w.WriteMMIO(msixEntryGPA(4)+12, 4, 0)
	if w.ReadMMIO(msixEntryGPA(3), 4) != 0 || len(r.mem.writes) != before {
		t.Error("entry beyond the guest's table reached the device")
	}
	// The PBA is read-only.
	w.WriteMMIO(pbaGPA, 8, 0)
	if len(r.mem.writes) != before {
		t.Error("PBA write reached the device")
	}
	// Other registers on the trapped pages are the device's.
	w.WriteMMIO(gpa3+0x1000, 4, 0xCAFE)
	if r.mem.Read32(bar3Host+0x1000) != 0xCAFE || w.ReadMMIO(gpa3+0x1000, 2) != 0xCAFE {
		t.Error("access beside the table not forwarded")
	}
	// The mapped page after the PBA is not the window's to serve.
	u := w.Unclaimed()
	w.ReadMMIO(gpa3+0x3000, 4)
	if w.Unclaimed() != u+1 {
		t.Error("the window claimed a mapped page")
	}
	// Disabling: host interrupts are dropped, the device is disabled.
	r.wr(capMSIXOff+2, 2, 0)
	if r.dev.get32(capMSIXOff)>>16&msixCtlEnable != 0 {
		t.Error("disable not mirrored")
	}
	r.vecs.fire(t, msixVector0+1)
	if c := r.f.Counters(); c.Delivered != 3 || c.Dropped != 1 || c.Pending != 2 {
		t.Errorf("counters %+v", c)
	}
}

func TestSubPageBARForwarded(t *testing.T) {
	r := newRig(t, nil)
	w := r.win
	u := w.Unclaimed()
	w.WriteMMIO(gpa1+0x10, 4, 1)
	if w.Unclaimed() != u+1 || len(r.mem.writes) != r.initMem {
		t.Fatal("sub-page BAR served with decoding off")
	}
	r.wr(0x04, 2, uint32(pcihost.CommandMemory))
	w.WriteMMIO(gpa1+0x10, 4, 0x12345678)
	if r.mem.Read32(bar1Host+0x10) != 0x12345678 {
		t.Error("write not forwarded to the device's BAR1")
	}
	if got := w.ReadMMIO(gpa1+0x12, 2); got != 0x1234 {
		t.Errorf("read %#x", got)
	}
	// Past the BAR's 256 bytes (same page): not BAR1's.
	u = w.Unclaimed()
	w.WriteMMIO(gpa1+0x100, 4, 1)
	if w.Unclaimed() != u+1 {
		t.Error("access past BAR1 claimed")
	}
	// Misaligned or crossing the end: refused, not forwarded.
	n := len(r.mem.writes)
	w.WriteMMIO(gpa1+0xFE, 4, 1)
	w.WriteMMIO(gpa1+0xFC, 8, 1)
	if len(r.mem.writes) != n || w.ReadMMIO(gpa1+0xFF, 2) != 0xFFFF {
		t.Error("misaligned access forwarded")
	}
	// The guest moves it: served at the new address only.
	r.wr(0x14, 4, windowBase+0x300000)
	w.WriteMMIO(windowBase+0x300000, 4, 0xAB)
	if r.mem.Read32(bar1Host) != 0xAB {
		t.Error("moved sub-page BAR not served")
	}
	u = w.Unclaimed()
	w.ReadMMIO(gpa1, 4)
	if w.Unclaimed() != u+1 {
		t.Error("old address still served")
	}
	for _, c := range r.mapper.calls {
		if c.index == 1 {
			t.Errorf("sub-page BAR mapped: %+v", c)
		}
	}
}

func TestQuiesce(t *testing.T) {
	r := newRig(t, nil)
	d := r.dev
	r.wr(0x04, 2, uint32(pcihost.CommandMemory|pcihost.CommandBusMaster))
	r.wr(capMSIXOff+2, 2, msixCtlEnable)
	r.wr(msiCtlReg+2, 2, msiCtlEnable)
	if d.get32(0x04)&uint32(pcihost.CommandBusMaster) == 0 {
		t.Fatal("bus master not on before Quiesce")
	}
	r.mapper.calls = nil
	if err := r.f.Quiesce(); err != nil {
		t.Fatal(err)
	}
	// The order matters: bus master and the enables go off before the
	// reset, so nothing is in flight when it happens.
	flrAt, bmOffAt := -1, -1
	for i, w := range r.hostWritesSince() {
		if w.off == 0x04 && w.v&uint32(pcihost.CommandBusMaster) == 0 && bmOffAt < 0 {
			bmOffAt = i
		}
		if w.off == capPCIeOff+8 && w.v&devCtlInitiateFLR != 0 {
			flrAt = i
		}
	}
	if bmOffAt < 0 || flrAt < 0 || bmOffAt > flrAt || d.flrs != 1 {
		t.Fatalf("bus master off at write %d, FLR at %d (%d FLRs)", bmOffAt, flrAt, d.flrs)
	}
	if got := uint16(d.get32(0x04)); got != pcihost.CommandINTxDisable {
		t.Errorf("device command %#x after Quiesce, want decode and bus master off", got)
	}
	if d.get32(msiCtlReg)>>16&msiCtlEnable != 0 || d.get32(capMSIXOff)>>16&msixCtlEnable != 0 {
		t.Error("MSI/MSI-X still enabled")
	}
	waited := time.Duration(0)
	for _, s := range r.sleeps {
		waited += s
	}
	if waited < 100*time.Millisecond {
		t.Errorf("waited %v after the FLR, want at least 100 ms", waited)
	}
	for i, want := range []uint32{bar0Host, bar1Host, bar2Port | 1, uint32(bar3Host&0xFFFFFFFF) | 0xC, uint32(bar3Host >> 32)} {
		if got := d.get32(uint16(0x10 + 4*i)); got != want {
			t.Errorf("device BAR%d %#x after the reset, want %#x restored", i, got, want)
		}
	}
	if d.get32(capPCIeOff+8)&0xFFFF != 0x2810 || d.get32(capPCIeOff+0x28)&0xFFFF != 0x400 {
		t.Error("device control not restored after the reset")
	}
	if len(r.vecs.handlers) != 0 || len(r.vecs.freed) != 1+msixEntries {
		t.Errorf("host vectors held %d, freed %d", len(r.vecs.handlers), len(r.vecs.freed))
	}
	unmapped := 0
	for _, c := range r.mapper.calls {
		if c.newGPA != NoMapping {
			t.Errorf("mapping during Quiesce: %+v", c)
		}
		unmapped++
	}
	if unmapped != 2 {
		t.Errorf("%d pieces unmapped, want 2 (BAR0, BAR3's mapped part)", unmapped)
	}
	// From now on the guest reaches nothing.
	n := len(d.writes)
	r.wr(0x04, 2, 0xFFFF)
	r.wr(msiCtlReg+2, 2, msiCtlEnable)
	r.win.WriteMMIO(gpa1, 4, 1)
	if len(d.writes) != n || len(r.mapper.calls) != unmapped {
		t.Error("guest accesses reached the device after Quiesce")
	}
	if err := r.f.Quiesce(); err != nil {
		t.Error("second Quiesce:", err)
	}
}

func TestQuiesceDeviceNotBack(t *testing.T) {
	r := newRig(t, nil)
	r.dev.notReady = 1000
	err := r.f.Quiesce()
	if err == nil {
		t.Fatal("a device that never answers after its FLR was not reported")
	}
	if len(r.sleeps) > flrPendingPolls+1+flrReadyPolls {
		t.Errorf("%d sleeps: the wait is not bounded", len(r.sleeps))
	}
	if r.f.Err() == nil {
		t.Error("error not kept")
	}
	// It comes back after a few polls: fine.
	r2 := newRig(t, nil)
	r2.dev.notReady = 3
	if err := r2.f.Quiesce(); err != nil {
		t.Fatal(err)
	}
}

func TestQuiesceWithoutFLR(t *testing.T) {
	d := newFakeDevice()
	d.set32(capPCIeOff+4, 0x1) // no FLR
	r := newRigWith(t, d)
	r.wr(0x04, 2, uint32(pcihost.CommandBusMaster))
	if err := r.f.Quiesce(); err != nil {
		t.Fatal(err)
	}
	if d.flrs != 0 || len(r.sleeps) != 0 {
		t.Error("FLR attempted on a device without it")
	}
	if uint16(d.get32(0x04)) != pcihost.CommandINTxDisable {
		t.Errorf("device command %#x", uint16(d.get32(0x04)))
	}
}

func TestExitPathsDoNotAllocate(t *testing.T) {
	r := newRig(t, nil)
	h, err := pcihost.New(pcihost.Config{ECAMBase: 0xE0000000, ECAMEndBus: 255})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddFunction(0, 3, 0, r.f); err != nil {
		t.Fatal(err)
	}
	r.wr(0x04, 2, uint32(pcihost.CommandMemory))
	r.wr(capMSIXOff+2, 2, msixCtlEnable)
	w := r.win
	// Prime the fake memory's pages.
	w.WriteMMIO(gpa3+0x1000, 4, 0)
	allocs := testing.AllocsPerRun(200, func() {
		h.ReadMMIO(0xE0000000|3<<15|capMSIXOff, 4)
		h.ReadMMIO(0xE0000000|3<<15|capPCIeOff, 4)
		h.ReadMMIO(0xE0000000|3<<15|0x1C, 4)
		w.ReadMMIO(msixEntryGPA(0), 4)
		w.WriteMMIO(msixEntryGPA(0)+8, 4, 0x30)
		w.ReadMMIO(pbaGPA, 8)
		w.ReadMMIO(gpa3+0x1000, 4)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per config/MMIO sequence", allocs)
	}
}
