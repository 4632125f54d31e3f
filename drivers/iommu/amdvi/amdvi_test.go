package amdvi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/iommu"
	"tamavisor/ept"
)

const (
	qemuBase = 0xfed80000 // AMDVI_BASE_ADDR
	ramBase  = 0x1000_0000
	ramSize  = 16 << 20
)

// qemuIVRS is the IVRS QEMU 7.2 builds for `-machine q35 -device
// amd-iommu`, dumped by tools/acpidump: IVinfo PASize 40, one IVHD 10h
// (flags D1h: HtTunEn, IotlbSup, PreFSup, PPRSup) for the unit at 00:01.0,
// MMIO at 0xfed80000, Select entries for 00:00.0, 00:01.0, 00:1f.0,
// 00:1f.2, 00:1f.3 and the IOAPIC as special device 00:14.0.
func qemuIVRS(t testing.TB) *acpi.IVRS {
	t.Helper()
	files, _ := filepath.Glob("../../acpi/testdata/qemu-q35-amd-iommu/IVRS-*.bin")
	if len(files) != 1 {
		t.Fatalf("QEMU IVRS dump: found %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	v, err := acpi.ParseIVRS(raw)
	if err != nil || len(v.IVHDs) != 1 {
		t.Fatalf("ParseIVRS: %v, %+v", err, v)
	}
	return v
}

type env struct {
	t    *testing.T
	ram  *ram
	pool *bump
	fake *fakeUnit
	unit *Unit
}

func newEnv(t *testing.T, ivhd *acpi.IVHD, efr uint64, opts Options) *env {
	t.Helper()
	m := newRAM(ramBase, ramSize)
	e := &env{t: t, ram: m, pool: &bump{m: m, next: ramBase}, fake: newFakeUnit(t, ivhd.BaseAddress, m, efr)}
	u, err := New(e.fake, m, e.pool, ivhd, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.unit = u
	return e
}

// qemuEnv is the driver on QEMU's IVRS and EFR.
func qemuEnv(t *testing.T) *env {
	v := qemuIVRS(t)
	return newEnv(t, &v.IVHDs[0], qemuEFR, Options{Info: v.Info})
}

func (e *env) enable() {
	e.t.Helper()
	if err := e.unit.Enable(); err != nil {
		e.t.Fatalf("Enable: %v", err)
	}
	e.noViolations()
}

func (e *env) noViolations() {
	e.t.Helper()
	for _, v := range e.fake.violations {
		e.t.Errorf("fake AMD-Vi: %s", v)
	}
	e.fake.violations = nil
}

func (e *env) drain() []iommu.Fault {
	e.t.Helper()
	var got []iommu.Fault
	n, err := e.unit.DrainFaults(func(f iommu.Fault) { got = append(got, f) })
	if err != nil {
		e.t.Fatalf("DrainFaults: %v", err)
	}
	if n != len(got) {
		e.t.Errorf("DrainFaults returned %d, reported %d", n, len(got))
	}
	return got
}

// domain builds tables with the unit's TableConfig, invalidating through
// the unit unless noInvalidate.
func (e *env) domain(id uint16, noInvalidate bool) *iommu.Domain {
	e.t.Helper()
	d := &iommu.Domain{ID: id}
	cfg := e.unit.TableConfig()
	if !noInvalidate {
		cfg.OnInvalidate = func(gpa, size uint64) {
			if err := e.unit.Invalidate(d); err != nil {
				e.t.Errorf("Invalidate: %v", err)
			}
		}
	}
	tb, err := ept.New(e.ram, e.pool, cfg)
	if err != nil {
		e.t.Fatalf("ept.New: %v", err)
	}
	d.Tables = tb
	return d
}

func src(bus, dev, fn uint8) iommu.Source {
	return iommu.Source{Bus: bus, Device: dev, Function: fn}
}

func (e *env) wantBlocked(id uint16, iova uint64, write bool) {
	e.t.Helper()
	if hpa, err := e.fake.dma(id, iova, write); err == nil {
		e.t.Errorf("DMA by %#04x to %#x (write %v) reached %#x, want blocked", id, iova, write, hpa)
	}
}

func (e *env) wantDMA(id uint16, iova uint64, write bool, want uint64) {
	e.t.Helper()
	hpa, err := e.fake.dma(id, iova, write)
	if err != nil || hpa != want {
		e.t.Errorf("DMA by %#04x to %#x (write %v) = %#x, %v; want %#x", id, iova, write, hpa, err, want)
	}
}

func TestNewQEMU(t *testing.T) {
	e := qemuEnv(t)
	u := e.unit
	if got := u.String(); got != "amd-vi unit at 0xfed80000" {
		t.Errorf("String = %q", got)
	}
	if u.ExtendedFeatures() != qemuEFR {
		t.Errorf("EFR = %#x, want QEMU's %#x", u.ExtendedFeatures(), qemuEFR)
	}
	cfg := u.TableConfig()
	if _, ok := cfg.Format.(ept.AMDViFormat); !ok || cfg.InputAddrBits != 48 || cfg.OutputAddrBits != 40 ||
		cfg.PageSizes != ept.AllPageSizes || !cfg.InvalidateNewMappings || cfg.OnInvalidate != nil {
		t.Errorf("TableConfig = %+v: want AMD-Vi, 48-bit input, 40-bit output (QEMU's PASize), all page sizes, new mappings invalidated (NpCache unknown)", cfg)
	}
	// New programs nothing.
	if len(e.fake.regs) != 0 {
		t.Errorf("New wrote registers %v", e.fake.regs)
	}
	// Allocations: the whole 2 MiB device table, 4 KiB rings.
	if e.pool.sizes[u.devTab] != 2<<20 || e.pool.sizes[u.cmdBuf] != 4096 || e.pool.sizes[u.eventLog] != 4096 || e.pool.sizes[u.emptyRoot] != 4096 {
		t.Errorf("allocations %v", e.pool.sizes)
	}
}

func TestNewCapabilityHeaderNpCache(t *testing.T) {
	v := qemuIVRS(t)
	for _, c := range []struct {
		hdr  uint32
		want bool
	}{{0, true}, {0x0800000f, false}, {0x0c00000f, true}} {
		e := newEnv(t, &v.IVHDs[0], qemuEFR, Options{Info: v.Info, CapabilityHeader: c.hdr})
		if got := e.unit.TableConfig().InvalidateNewMappings; got != c.want {
			t.Errorf("capability header %#x: InvalidateNewMappings = %v, want %v", c.hdr, got, c.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	v := qemuIVRS(t)
	good := v.IVHDs[0]
	m := newRAM(ramBase, ramSize)
	fake := newFakeUnit(t, qemuBase, m, qemuEFR)
	pool := func() *bump { return &bump{m: m, next: ramBase} }
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, want)
		}
	}
	_, err := New(nil, m, pool(), &good, Options{})
	check("nil MMIO", err, "needs")
	bad := good
	bad.Type = 0x20
	_, err = New(fake, m, pool(), &bad, Options{})
	check("IVMD type", err, "not 10h")
	bad = good
	bad.BaseAddress = qemuBase + 0x1000
	_, err = New(fake, m, pool(), &bad, Options{})
	check("unaligned base", err, "16 KiB")
	fake.efr = ^uint64(0)
	_, err = New(fake, m, pool(), &good, Options{})
	check("absent unit", err, "all ones")
	fake.efr = qemuEFR
	p := pool()
	p.fail = errors.New("out of pages")
	_, err = New(fake, m, p, &good, Options{})
	check("allocator error", err, "out of pages")
	p = pool()
	p.misfit = 8
	_, err = New(fake, m, p, &good, Options{})
	check("misaligned allocation", err, "aligned")
}

// The MMIO EFR wins; an IVHD 11h image stands in only when it reads 0
// and IVinfo says the image is valid.
func TestEFRSource(t *testing.T) {
	h := acpi.IVHD{Type: acpi.IVHDType11, BaseAddress: qemuBase, EFR: efrIASup | 1<<efrHATSShift}
	e := newEnv(t, &h, 0, Options{Info: 1})
	if e.unit.ExtendedFeatures() != h.EFR {
		t.Errorf("MMIO EFR 0, IVHD 11h image with EFRSup: EFR = %#x, want %#x", e.unit.ExtendedFeatures(), h.EFR)
	}
	e = newEnv(t, &h, 0, Options{Info: 0})
	if e.unit.ExtendedFeatures() != 0 {
		t.Errorf("image without EFRSup used: EFR = %#x", e.unit.ExtendedFeatures())
	}
	e = newEnv(t, &h, qemuEFR, Options{Info: 1})
	if e.unit.ExtendedFeatures() != qemuEFR {
		t.Errorf("MMIO EFR not preferred: %#x", e.unit.ExtendedFeatures())
	}
}

func TestEnableRefusesWithoutHostTranslation(t *testing.T) {
	v := qemuIVRS(t)
	e := newEnv(t, &v.IVHDs[0], qemuEFR|efrHATSNone, Options{Info: v.Info})
	if err := e.unit.Enable(); err == nil || !strings.Contains(err.Error(), "HATS") {
		t.Errorf("EFR.HATS = 11b: Enable = %v", err)
	}
	h := acpi.IVHD{Type: acpi.IVHDType40, BaseAddress: qemuBase, Features: ivhdAttrHATDis}
	e = newEnv(t, &h, qemuEFR, Options{})
	if err := e.unit.Enable(); err == nil || !strings.Contains(err.Error(), "HATDis") {
		t.Errorf("IVHD HATDis: Enable = %v", err)
	}
	if len(e.fake.regs) != 0 {
		t.Errorf("refused Enable wrote registers %v", e.fake.regs)
	}
}

func TestEnableBlocksEverything(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	u, f := e.unit, e.fake

	// Registers (#48882 3.4): the tables, 4 KiB rings (Len 8), the
	// exclusion range off, and Control = IommuEn | HtTunEn (IVHD flag)
	// | EventLogEn | Coherent | CmdBufEn.
	if got, want := f.regs[regDevTabBase], u.devTab|0x1ff; got != want {
		t.Errorf("device table base register = %#x, want %#x", got, want)
	}
	if got, want := f.regs[regCmdBufBase], u.cmdBuf|0x0800_0000_0000_0000; got != want {
		t.Errorf("command buffer base register = %#x, want %#x", got, want)
	}
	if got, want := f.regs[regEventLogBase], u.eventLog|0x0800_0000_0000_0000; got != want {
		t.Errorf("event log base register = %#x, want %#x", got, want)
	}
	if got := f.regs[regControl]; got != 0x1407 {
		t.Errorf("Control = %#x, want 0x1407", got)
	}
	// Everything cached was flushed: QEMU has IASup.
	if got := opcodes(f.cmds); !slices.Equal(got, []uint64{cmdInvalidateAll, cmdCompletionWait}) {
		t.Errorf("commands after Enable = %v, want INVALIDATE_IOMMU_ALL, COMPLETION_WAIT", got)
	}

	// Every requester ID, covered or not, is blocked, for reads and
	// writes, and each attempt is logged.
	ids := []uint16{0x0000, 0x00f8, 0x00fa, 0x00fb, 0x00a0, 0x0010, 0x1234, 0xffff}
	for _, id := range ids {
		e.wantBlocked(id, 0x10_0000, false)
		e.wantBlocked(id, 0x10_0000, true)
	}
	faults := e.drain()
	if len(faults) != 2*len(ids) {
		t.Fatalf("%d faults, want %d", len(faults), 2*len(ids))
	}
	for i, fl := range faults {
		id := ids[i/2]
		if fl.Source != iommu.SourceFromRequesterID(0, id) || fl.Address != 0x10_0000 || fl.Write != (i%2 == 1) ||
			fl.Code != evIOPageFault || fl.Unit != u.String() || !strings.Contains(fl.Reason, "I/O page fault") {
			t.Errorf("fault %d = %+v", i, fl)
		}
	}
	e.noViolations()
}

// Firmware left the unit running with its own tables, a PPR log and an
// exclusion range open to every device, and stale ring pointers.
func TestEnableTakesOverFromFirmware(t *testing.T) {
	e := qemuEnv(t)
	f := e.fake
	f.regs[regControl] = ctrlIommuEn | ctrlCmdBufEn | ctrlEventLogEn | 1<<13 // PPRLogEn
	f.regs[regDevTabBase] = 0x7000_0000 | 0x1ff
	f.regs[regExclBase] = 0x0 | 3 // ExEn | Allow, from 0
	f.regs[regExclLimit] = 0xff_f000
	f.regs[regCmdBufHead], f.regs[regCmdBufTail] = 0x40, 0x80
	f.regs[regEventLogHead], f.regs[regEventLogTail] = 0x100, 0x200
	f.w1c = statusEventOverflow
	e.enable()
	if f.regs[regControl]&(1<<13) != 0 {
		t.Errorf("PPR log left enabled: Control %#x", f.regs[regControl])
	}
	if f.regs[regExclBase] != 0 || f.regs[regExclLimit] != 0 {
		t.Errorf("exclusion range left: %#x %#x", f.regs[regExclBase], f.regs[regExclLimit])
	}
	e.wantBlocked(0x00f8, 0x5000, true)
	if faults := e.drain(); len(faults) != 1 || faults[0].Address != 0x5000 {
		t.Errorf("faults %+v", faults)
	}
}

// A previous owner left EventLogInt set and its own event log in place.
// On a unit that then ignores Event Log Base writes (QEMU since 10.1),
// Enable must clear the status before programming the log, or the unit
// keeps writing records into the previous owner's memory.
func TestEnableClearsEventLogIntBeforeLogBase(t *testing.T) {
	e := qemuEnv(t)
	f := e.fake
	f.qemuEvtBase = true
	oldLog := uint64(ramBase + ramSize - ringBytes)
	f.regs[regControl] = ctrlIommuEn | ctrlEventLogEn | 1<<3 // EventIntEn
	f.regs[regEventLogBase] = oldLog | ringLenField
	f.regs[regEventLogHead], f.regs[regEventLogTail] = 0x30, 0x30
	f.w1c = statusEventLogInt
	e.enable()
	if got, want := f.regs[regEventLogBase], e.unit.eventLog|ringLenField; got != want {
		t.Fatalf("Event Log Base = %#x, want %#x (the write was ignored)", got, want)
	}
	e.wantBlocked(0x00f8, 0x7000, true)
	if lo := e.ram.Read64(oldLog + 0x30); lo != 0 {
		t.Errorf("record %#x written into the previous owner's log", lo)
	}
	faults := e.drain()
	if len(faults) != 1 || faults[0].Address != 0x7000 || !faults[0].Write || faults[0].Source != src(0, 0x1f, 0) {
		t.Errorf("faults %+v", faults)
	}
	e.noViolations()
}

func TestEnableStopTimeout(t *testing.T) {
	v := qemuIVRS(t)
	e := newEnv(t, &v.IVHDs[0], qemuEFR, Options{Info: v.Info, PollLimit: 100})
	e.fake.stuckRun = true
	err := e.unit.Enable()
	if err == nil || !strings.Contains(err.Error(), "to stop") || !strings.Contains(err.Error(), "100 polls") {
		t.Errorf("Enable with Run bits stuck = %v", err)
	}
}

// Without IASup every device table entry is invalidated one by one: 256
// trips round the ring, through QEMU's way of wrapping the head.
func TestEnableWithoutInvalidateAll(t *testing.T) {
	v := qemuIVRS(t)
	e := newEnv(t, &v.IVHDs[0], qemuEFR&^efrIASup, Options{Info: v.Info})
	e.fake.qemuHead = true
	e.enable()
	cs := e.fake.cmds
	if len(cs) != deviceIDs+1 || cs[len(cs)-1][0]>>60 != cmdCompletionWait {
		t.Fatalf("%d commands, last %#x", len(cs), cs[len(cs)-1])
	}
	seen := make([]bool, deviceIDs)
	for _, c := range cs[:deviceIDs] {
		if c[0]>>60 != cmdInvalidateDevTab {
			t.Fatalf("command %#x, want INVALIDATE_DEVTAB_ENTRY", c)
		}
		seen[uint16(c[0])] = true
	}
	if i := slices.Index(seen, false); i >= 0 {
		t.Errorf("device table entry %#04x not invalidated", i)
	}
}

func TestAttachTranslatesDetachBlocks(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	d := e.domain(7, false)
	const (
		iova4K = 0x20_0000
		hpa4K  = 0x8000_3000
		iova2M = 0x4000_0000
		hpa2M  = 0x1_2340_0000
		iova1G = 0x80_0000_0000
		hpa1G  = 0x40_0000_0000
		iovaRO = 0x30_0000
		hpaRO  = 0x9000_0000
	)
	for _, m := range []struct {
		iova, hpa, size uint64
		perm            ept.Perm
	}{{iova4K, hpa4K, 4096, ept.RW}, {iova2M, hpa2M, 2 << 20, ept.RW}, {iova1G, hpa1G, 1 << 30, ept.RW}, {iovaRO, hpaRO, 4096, ept.Read}} {
		if err := d.Tables.Map(m.iova, m.hpa, m.size, m.perm, ept.WB); err != nil {
			t.Fatalf("Map: %v", err)
		}
	}
	e.fake.cmds = nil
	lpc := src(0, 0x1f, 0) // 00:1f.0, DeviceID f8h
	if err := e.unit.Attach(lpc, d); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	e.noViolations()
	want := []command{invalidateDevTabEntry(0x00f8), invalidateDomainPages(7), completionWait(e.unit.completion, e.unit.seq)}
	if !slices.Equal(e.fake.cmds, want) {
		t.Errorf("Attach commands = %#x, want %#x", e.fake.cmds, want)
	}
	e.wantDMA(0x00f8, iova4K+0x123, true, hpa4K+0x123)
	e.wantDMA(0x00f8, iova2M+0x1_2345, false, hpa2M+0x1_2345)
	e.wantDMA(0x00f8, iova1G+0x3456_789a, true, hpa1G+0x3456_789a)
	e.wantDMA(0x00f8, iovaRO+8, false, hpaRO+8)
	e.wantBlocked(0x00f8, iovaRO+8, true)   // read-only page
	e.wantBlocked(0x00f8, 0x50_0000, false) // not mapped
	e.wantBlocked(0x00fa, iova4K, false)    // another device stays blocked
	faults := e.drain()
	if len(faults) != 3 {
		t.Fatalf("faults %+v", faults)
	}
	if !faults[0].Write || faults[0].Address != iovaRO+8 || !strings.Contains(faults[0].Reason, "not permitted") {
		t.Errorf("write to read-only page: %+v", faults[0])
	}
	if faults[1].Write || faults[1].Address != 0x50_0000 || !strings.Contains(faults[1].Reason, "not present") {
		t.Errorf("unmapped read: %+v", faults[1])
	}

	e.fake.cmds = nil
	if err := e.unit.Detach(lpc); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	want = []command{invalidateDevTabEntry(0x00f8), invalidateDomainPages(7), completionWait(e.unit.completion, e.unit.seq)}
	if !slices.Equal(e.fake.cmds, want) {
		t.Errorf("Detach commands = %#x, want %#x", e.fake.cmds, want)
	}
	// The fake cached the translating entry and its IOTLB: only the
	// invalidations make these block.
	e.wantBlocked(0x00f8, iova4K+0x123, true)
	e.wantBlocked(0x00f8, iova2M, false)
	if w0 := e.ram.Read64(e.unit.dteAddr(0xf8)); w0 != e.unit.blockingDTE() || e.ram.Read64(e.unit.dteAddr(0xf8)+8) != 0 {
		t.Errorf("DTE after Detach = %#x", w0)
	}
	e.noViolations()
}

// Invalidate (ept's OnInvalidate) is what makes an unmapped page fault:
// the fake's IOTLB keeps the old translation otherwise.
func TestInvalidateAfterUnmap(t *testing.T) {
	for _, wired := range []bool{true, false} {
		e := qemuEnv(t)
		e.enable()
		d := e.domain(3, !wired)
		if err := d.Tables.Map(0x1000, 0x7000_0000, 4096, ept.RW, ept.WB); err != nil {
			t.Fatal(err)
		}
		if err := e.unit.Attach(src(0, 0x1f, 2), d); err != nil {
			t.Fatal(err)
		}
		e.wantDMA(0x00fa, 0x1008, true, 0x7000_0008) // fills the IOTLB
		e.fake.cmds = nil
		if err := d.Tables.Unmap(0x1000, 4096); err != nil {
			t.Fatal(err)
		}
		_, err := e.fake.dma(0x00fa, 0x1008, true)
		if wired {
			if err == nil {
				t.Error("unmapped page still reachable after Invalidate")
			}
			if want := []command{invalidateDomainPages(3), completionWait(e.unit.completion, e.unit.seq)}; !slices.Equal(e.fake.cmds, want) {
				t.Errorf("Invalidate commands = %#x, want %#x", e.fake.cmds, want)
			}
		} else if err != nil {
			t.Error("the fake's IOTLB does not cache: the wired case proves nothing")
		}
	}
}

func TestAttachErrors(t *testing.T) {
	e := qemuEnv(t)
	d := e.domain(5, false)
	if err := e.unit.Attach(src(0, 0x1f, 0), d); err == nil || !strings.Contains(err.Error(), "not enabled") {
		t.Errorf("Attach before Enable = %v", err)
	}
	e.enable()
	vtd, err := ept.New(e.ram, e.pool, ept.Config{Format: ept.VTdFormat{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		src  iommu.Source
		d    *iommu.Domain
		want string
	}{
		{"nil domain", src(0, 0x1f, 0), nil, "nil domain"},
		{"domain 0", src(0, 0x1f, 0), &iommu.Domain{ID: 0, Tables: d.Tables}, "reserved"},
		{"VT-d tables", src(0, 0x1f, 0), &iommu.Domain{ID: 9, Tables: vtd}, "not AMD-Vi"},
		{"not covered", src(0, 2, 0), d, "does not cover"},
		{"the unit itself", src(0, 1, 0), d, "does not cover"},
		{"other segment", iommu.Source{Segment: 1, Bus: 0, Device: 0x1f}, d, "does not cover"},
	} {
		if err := e.unit.Attach(c.src, c.d); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Attach = %v, want %q", c.name, err, c.want)
		}
	}
	// Nothing changed.
	if w0 := e.ram.Read64(e.unit.dteAddr(0xf8)); w0 != e.unit.blockingDTE() {
		t.Errorf("DTE f8h = %#x after refused attaches", w0)
	}
	// A domain with nil tables blocks.
	if err := e.unit.Attach(src(0, 0x1f, 0), d); err != nil {
		t.Fatal(err)
	}
	if err := e.unit.Attach(src(0, 0x1f, 0), &iommu.Domain{ID: 5}); err != nil {
		t.Fatalf("Attach(nil tables) = %v", err)
	}
	if w0 := e.ram.Read64(e.unit.dteAddr(0xf8)); w0 != e.unit.blockingDTE() {
		t.Errorf("DTE f8h = %#x after attaching nil tables", w0)
	}
}

// Devices behind a PCIe-to-PCI bridge reach the unit with the alias ID:
// both entries are programmed, and one alias means one domain.
func TestAttachAlias(t *testing.T) {
	h := acpi.IVHD{Type: acpi.IVHDType10, BaseAddress: qemuBase, DeviceID: 0x0002, Entries: []acpi.IVHDEntry{
		{Type: acpi.IVHDEntrySelect, DeviceID: 0x0010},
		{Type: acpi.IVHDEntryAliasStartRange, DeviceID: 0x0300, SourceID: 0x0018},
		{Type: acpi.IVHDEntryEndRange, DeviceID: 0x03ff},
	}}
	e := newEnv(t, &h, qemuEFR, Options{})
	e.enable()
	d := e.domain(11, false)
	if err := d.Tables.Map(0, 0x6000_0000, 2<<20, ept.RW, ept.WB); err != nil {
		t.Fatal(err)
	}
	e.fake.cmds = nil
	if err := e.unit.Attach(src(3, 0, 0), d); err != nil {
		t.Fatal(err)
	}
	if got := opcodes(e.fake.cmds); !slices.Equal(got, []uint64{2, 2, 3, 1}) {
		t.Errorf("commands %v", got)
	}
	e.wantDMA(0x0018, 0x1000, true, 0x6000_1000) // as the bus presents it
	e.wantDMA(0x0300, 0x1000, true, 0x6000_1000)
	other := e.domain(12, false)
	if err := e.unit.Attach(src(3, 1, 0), other); err == nil || !strings.Contains(err.Error(), "attached to domain 11") {
		t.Errorf("second domain behind one alias: %v", err)
	}
	if err := e.unit.Attach(src(3, 1, 0), d); err != nil {
		t.Errorf("same domain behind one alias: %v", err)
	}
	if err := e.unit.Detach(src(3, 0, 0)); err != nil {
		t.Fatal(err)
	}
	e.wantBlocked(0x0018, 0x1000, true)
	e.noViolations()
}

func TestDisable(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	if err := e.unit.Disable(); err != nil {
		t.Fatal(err)
	}
	if e.fake.regs[regControl]&ctrlIommuEn != 0 {
		t.Errorf("Control %#x after Disable", e.fake.regs[regControl])
	}
	e.wantDMA(0x00f8, 0x1234, true, 0x1234)
	if err := e.unit.Attach(src(0, 0x1f, 0), e.domain(2, false)); err == nil {
		t.Error("Attach on a disabled unit succeeded")
	}
	e.enable()
	e.wantBlocked(0x00f8, 0x1234, true)
}

func TestCompletionTimeout(t *testing.T) {
	v := qemuIVRS(t)
	e := newEnv(t, &v.IVHDs[0], qemuEFR, Options{Info: v.Info, PollLimit: 5000})
	e.enable()
	d := e.domain(4, false)

	e.fake.stall = true
	err := e.unit.Attach(src(0, 0x1f, 0), d)
	if err == nil || !strings.Contains(err.Error(), "COMPLETION_WAIT") || !strings.Contains(err.Error(), "did not complete") ||
		!strings.Contains(err.Error(), "5000") || !strings.Contains(err.Error(), "00:1f.0") {
		t.Errorf("stalled unit: Attach = %v", err)
	}

	// A unit that rejects a command stops fetching: the error says so,
	// and the log holds the ILLEGAL_COMMAND_ERROR with its address.
	e = newEnv(t, &v.IVHDs[0], qemuEFR, Options{Info: v.Info, PollLimit: 1 << 20})
	e.enable()
	e.fake.rejectOpcode = cmdInvalidateIOMMUPage
	err = e.unit.Invalidate(&iommu.Domain{ID: 4})
	if err == nil || !strings.Contains(err.Error(), "CmdBufRun = 0") {
		t.Errorf("halted unit: Invalidate = %v", err)
	}
	faults := e.drain()
	if len(faults) != 1 || faults[0].Code != evIllegalCommand || faults[0].Address != e.unit.cmdBuf+2*ringEntry ||
		!strings.Contains(faults[0].Reason, "illegal command") {
		t.Errorf("faults %+v", faults)
	}
}

// A full command buffer that never drains is a timeout too.
func TestCommandBufferFullTimeout(t *testing.T) {
	v := qemuIVRS(t)
	e := newEnv(t, &v.IVHDs[0], qemuEFR&^efrIASup, Options{Info: v.Info, PollLimit: 300})
	e.fake.stall = true
	err := e.unit.Enable()
	if err == nil || !strings.Contains(err.Error(), "stayed full") {
		t.Errorf("Enable with a stalled unit = %v", err)
	}
}

func TestDrainFaultsWraps(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	total := 0
	for round := 0; round < 3; round++ {
		for i := 0; i < 200; i++ {
			n := uint64(total + i)
			if !e.fake.inject(n&0xffff|evIOPageFault<<evCodeShift, n<<12) {
				t.Fatalf("record %d not logged", n)
			}
		}
		faults := e.drain()
		if len(faults) != 200 {
			t.Fatalf("round %d: %d faults", round, len(faults))
		}
		for i, fl := range faults {
			n := uint64(total + i)
			if fl.Address != n<<12 || fl.Source.RequesterID() != uint16(n) {
				t.Fatalf("round %d fault %d = %+v", round, i, fl)
			}
		}
		total += 200
		head, tail := e.fake.regs[regEventLogHead], e.fake.regs[regEventLogTail]
		if head != tail || head != uint64(total%ringEntries)*ringEntry {
			t.Errorf("round %d: head %#x tail %#x", round, head, tail)
		}
	}
	for off := uint64(0); off < ringBytes; off += 8 {
		if e.ram.Read64(e.unit.eventLog+off) != 0 {
			t.Fatalf("consumed record at %#x not cleared", off)
		}
	}
	if n, err := e.unit.DrainFaults(nil); n != 0 || err != nil {
		t.Errorf("empty log: %d, %v", n, err)
	}
}

func TestDrainFaultsOverflow(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	logged := 0
	for i := 0; i < 300; i++ {
		if e.fake.inject(uint64(i)|evIOPageFault<<evCodeShift, 0x1000) {
			logged++
		}
	}
	if logged != ringEntries-1 || e.fake.w1c&statusEventOverflow == 0 || e.fake.evtRunning() {
		t.Fatalf("fake: logged %d, status %#x", logged, e.fake.w1c)
	}
	faults := e.drain()
	if len(faults) != ringEntries {
		t.Fatalf("%d faults, want %d records and the overflow", len(faults), ringEntries)
	}
	last := faults[len(faults)-1]
	if last.Code != OverflowCode || !strings.Contains(last.Reason, "lost") || last.Unit != e.unit.String() {
		t.Errorf("overflow fault = %+v", last)
	}
	if e.fake.w1c&statusEventOverflow != 0 || !e.fake.evtRunning() {
		t.Errorf("log not restarted: status %#x, running %v", e.fake.w1c, e.fake.evtRunning())
	}
	if !e.fake.inject(7|evIOPageFault<<evCodeShift, 0x2000) {
		t.Fatal("record after the restart not logged")
	}
	if faults := e.drain(); len(faults) != 1 || faults[0].Address != 0x2000 {
		t.Errorf("after restart: %+v", faults)
	}
	e.noViolations()
}

// A record the unit announced but has not written reads as code 0.
func TestDrainFaultsEmptyRecord(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	e.fake.regs[regEventLogTail] = ringEntry
	faults := e.drain()
	if len(faults) != 1 || faults[0].Code != 0 || !strings.Contains(faults[0].Reason, "empty") {
		t.Errorf("faults %+v", faults)
	}
}

func TestDrainFaultsBadPointers(t *testing.T) {
	e := qemuEnv(t)
	if n, err := e.unit.DrainFaults(nil); n != 0 || err != nil {
		t.Errorf("before Enable: %d, %v", n, err)
	}
	e.enable()
	e.fake.regs[regEventLogTail] = 0x2000 // beyond the 4 KiB log
	if _, err := e.unit.DrainFaults(nil); err == nil || !strings.Contains(err.Error(), "beyond") {
		t.Errorf("tail beyond the log: %v", err)
	}
}

func TestCoversQEMU(t *testing.T) {
	e := qemuEnv(t)
	for _, c := range []struct {
		src  iommu.Source
		want bool
	}{
		{src(0, 0, 0), true},
		{src(0, 0x1f, 0), true},
		{src(0, 0x1f, 2), true},
		{src(0, 0x1f, 3), true},
		{src(0, 0x14, 0), true},  // the IOAPIC, a special entry
		{src(0, 1, 0), false},    // the unit itself
		{src(0, 2, 0), false},    // not listed
		{src(0, 0x1f, 1), false}, // not listed
		{iommu.Source{Segment: 1, Device: 0x1f}, false},
	} {
		if got := e.unit.Covers(c.src); got != c.want {
			t.Errorf("Covers(%v) = %v, want %v", c.src, got, c.want)
		}
	}
}

func TestCoversEntries(t *testing.T) {
	h := acpi.IVHD{Type: acpi.IVHDType40, BaseAddress: qemuBase, DeviceID: 0x0002, Entries: []acpi.IVHDEntry{
		{Type: acpi.IVHDEntryPad, DeviceID: 0x0500},
		{Type: acpi.IVHDEntrySelect, DeviceID: 0x0008},
		{Type: acpi.IVHDEntryStartRange, DeviceID: 0x0100},
		{Type: acpi.IVHDEntryEndRange, DeviceID: 0x01ff},
		{Type: acpi.IVHDEntryEndRange, DeviceID: 0x0700}, // no open range
		{Type: acpi.IVHDEntryAliasSelect, DeviceID: 0x0208, SourceID: 0x0020},
		{Type: acpi.IVHDEntryExtStartRange, DeviceID: 0x0400},
		{Type: acpi.IVHDEntryEndRange, DeviceID: 0x0300}, // below its start
		{Type: acpi.IVHDEntryExtSelect, DeviceID: 0x0601},
		{Type: acpi.IVHDEntrySpecial, DeviceID: 0x00a0, Variety: acpi.SpecialHPET},
		{Type: acpi.IVHDEntryACPIHID, DeviceID: 0x00a5, HID: "AMDI0020"},
		{Type: acpi.IVHDEntryStartRange, DeviceID: 0xfff0},
		{Type: acpi.IVHDEntryEndRange, DeviceID: 0xffff},
		{Type: 0x3f, DeviceID: 0x0800}, // unknown
	}}
	e := newEnv(t, &h, qemuEFR, Options{})
	covered := map[uint16]bool{0x0008: true, 0x0208: true, 0x0601: true, 0x00a0: true, 0x00a5: true}
	for id := 0x100; id <= 0x1ff; id++ {
		covered[uint16(id)] = true
	}
	for id := 0xfff0; id <= 0xffff; id++ {
		covered[uint16(id)] = true
	}
	for id := 0; id < deviceIDs; id++ {
		s := iommu.SourceFromRequesterID(0, uint16(id))
		if got := e.unit.Covers(s); got != covered[uint16(id)] {
			t.Errorf("Covers(%v) = %v", s, got)
		}
	}
	if to, ok := e.unit.cover.alias(0x0208); !ok || to != 0x0020 {
		t.Errorf("alias of 0208h = %#x, %v", to, ok)
	}
	if _, ok := e.unit.cover.alias(0x0008); ok {
		t.Error("0008h has an alias")
	}

	all := acpi.IVHD{Type: acpi.IVHDType10, BaseAddress: qemuBase, DeviceID: 0x0010, Entries: []acpi.IVHDEntry{{Type: acpi.IVHDEntryAll}}}
	e = newEnv(t, &all, qemuEFR, Options{})
	for _, id := range []uint16{0, 0x0f, 0x11, 0x1234, 0xffff} {
		if !e.unit.Covers(iommu.SourceFromRequesterID(0, id)) {
			t.Errorf("All entry: %#04x not covered", id)
		}
	}
	if e.unit.Covers(iommu.SourceFromRequesterID(0, 0x0010)) {
		t.Error("All entry covers the unit itself")
	}
}

// Attach, Detach, Invalidate and DrainFaults allocate nothing: they run
// on the hypervisor's periodic and guest start/stop paths.
func TestNoAllocations(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	d := e.domain(9, false)
	e.fake.quiet = true
	s := src(0, 0x1f, 3)
	got := testing.AllocsPerRun(20, func() {
		if err := e.unit.Attach(s, d); err != nil {
			t.Fatal(err)
		}
		if err := e.unit.Invalidate(d); err != nil {
			t.Fatal(err)
		}
		if err := e.unit.Detach(s); err != nil {
			t.Fatal(err)
		}
		e.fake.inject(0xfb|evIOPageFault<<evCodeShift, 0x1000)
		if n, err := e.unit.DrainFaults(func(iommu.Fault) {}); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	})
	if got != 0 {
		t.Errorf("%v allocations per attach/invalidate/detach/drain", got)
	}
}
