package vtd

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw/hwfake"
	"tamavisor/drivers/iommu"
	"tamavisor/ept"
)

// pagePool is a bump allocator for the driver (iommu.PageAllocator) and
// for domain tables (ept.Allocator).
type pagePool struct {
	next, limit uint64
	fail        bool
}

func newPagePool() *pagePool { return &pagePool{next: 0x10_0000, limit: 0x4000_0000} }

func (p *pagePool) Alloc(size, align uint64) (uint64, error) {
	if p.fail {
		return 0, errors.New("out of memory")
	}
	a := (p.next + align - 1) &^ (align - 1)
	if a+size > p.limit {
		return 0, errors.New("pool exhausted")
	}
	p.next = a + size
	return a, nil
}

func (p *pagePool) AllocTable() (uint64, error) { return p.Alloc(4096, 4096) }
func (p *pagePool) FreeTable(uint64)            {}

// qemuDMAR is the DMAR QEMU 7.2 builds for -device intel-iommu (dumped by
// package acpi's tools): one DRHD at 0xfed90000 without INCLUDE_PCI_ALL,
// listing the IOAPIC and the root bus's devices 00:00.0, 00:1f.0, 00:1f.2
// and 00:1f.3; host address width 39.
func qemuDMAR(t testing.TB) *acpi.DMAR {
	t.Helper()
	raw, err := os.ReadFile("../../acpi/testdata/qemu-q35-intel-iommu/DMAR-07fe226f.bin")
	if err != nil {
		t.Fatal(err)
	}
	d, err := acpi.ParseDMAR(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	sata  = iommu.Source{Bus: 0, Device: 0x1f, Function: 2} // 00:1f.2, in QEMU's scope
	lpc   = iommu.Source{Bus: 0, Device: 0x1f, Function: 0}
	other = iommu.Source{Bus: 0, Device: 3, Function: 0} // not in QEMU's scope
)

type bed struct {
	t       *testing.T
	mem     *hwfake.Memory
	hw      *fakeUnit
	pages   *pagePool
	u       *Unit
	flushes [][2]uint64
}

// newBed builds a unit on a fake with the given capabilities and QEMU's
// DRHD, host address width 48 (aw-bits=48).
func newBed(t *testing.T, cap, ecap uint64, opts Options) *bed {
	t.Helper()
	return newBedDRHD(t, cap, ecap, qemuDMAR(t).DRHDs[0], opts)
}

func newBedDRHD(t *testing.T, cap, ecap uint64, drhd acpi.DRHD, opts Options) *bed {
	t.Helper()
	b := &bed{t: t, mem: hwfake.NewMemory(), pages: newPagePool()}
	if opts.HostAddressWidth == 0 {
		opts.HostAddressWidth = 48
	}
	if opts.FlushCache == nil {
		opts.FlushCache = func(addr, size uint64) { b.flushes = append(b.flushes, [2]uint64{addr, size}) }
	}
	if opts.PollLimit == 0 {
		opts.PollLimit = 100
	}
	b.hw = newFakeUnit(b.mem, drhd.RegisterBase, cap, ecap, uint(opts.HostAddressWidth))
	u, err := New(b.hw, b.mem, b.pages, drhd, opts)
	if err != nil {
		t.Fatal(err)
	}
	b.u = u
	b.hw.check(t)
	return b
}

func (b *bed) enable() {
	b.t.Helper()
	if err := b.u.Enable(); err != nil {
		b.t.Fatal(err)
	}
	b.hw.check(b.t)
	b.hw.events = nil
}

// domain builds tables for the unit and maps what the tests use: 16 KiB
// read-write at 0x10000 -> 0x4000_0000, 2 MiB read-only at 0x20_0000 ->
// 0x4020_0000.
func (b *bed) domain(id uint16) *iommu.Domain {
	b.t.Helper()
	d := &iommu.Domain{ID: id}
	cfg := b.u.TableConfig()
	cfg.OnInvalidate = func(gpa, size uint64) {
		if err := b.u.Invalidate(d); err != nil {
			b.t.Errorf("Invalidate: %v", err)
		}
	}
	tb, err := ept.New(b.u.TableMemory(b.mem), b.pages, cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	d.Tables = tb
	if err := tb.Map(0x10000, 0x4000_0000, 0x4000, ept.RW, ept.WB); err != nil {
		b.t.Fatal(err)
	}
	if err := tb.Map(0x20_0000, 0x4020_0000, 0x20_0000, ept.Read, ept.WB); err != nil {
		b.t.Fatal(err)
	}
	return d
}

func (b *bed) wantDMA(src iommu.Source, iova uint64, write bool, wantHPA uint64, wantCode uint8) {
	b.t.Helper()
	hpa, code := b.hw.dma(src, iova, write)
	if code != wantCode || (code == 0 && hpa != wantHPA) {
		b.t.Errorf("DMA %v %#x write=%v: hpa %#x fault %#x, want hpa %#x fault %#x", src, iova, write, hpa, code, wantHPA, wantCode)
	}
}

func (b *bed) wantEvents(want ...string) {
	b.t.Helper()
	if !reflect.DeepEqual(b.hw.events, want) {
		b.t.Errorf("invalidations:\n got %q\nwant %q", b.hw.events, want)
	}
	b.hw.events = nil
}

func TestQEMUCapabilities(t *testing.T) {
	c, err := ParseCapabilities(qemuVer, qemuCap48, qemuECap)
	if err != nil {
		t.Fatal(err)
	}
	// QEMU's own constants (hw/i386/intel_iommu_internal.h): fault
	// records at DMAR_FRCD_REG_OFFSET 0x220, DMAR_FRCD_REG_NR 1, IOTLB
	// registers at DMAR_IOTLB_REG_OFFSET 0xf0, 16-bit domain-ids, MAMV 18.
	want := Capabilities{
		Major: 1, Minor: 0, Cap: qemuCap48, ECap: qemuECap,
		DomainIDBits: 16, SAGAW: sagaw39 | sagaw48, MaxGuestAddrBits: 48,
		FaultRecordOffset: 0x220, FaultRecords: 1,
		LargePages:    ept.Pages4K | ept.Pages2M | ept.Pages1G,
		PageSelective: true, DrainReads: true, DrainWrites: true,
		QueuedInvalidation: true, InterruptRemapping: true, PassThrough: true,
		IOTLBOffset: 0xf0,
	}
	if c != want {
		t.Errorf("ParseCapabilities(QEMU aw-bits=48) =\n%+v\nwant\n%+v", c, want)
	}
	if c.DomainIDs() != 65536 || c.Cap>>48&0x3f != 18 {
		t.Errorf("domains %d, MAMV %d", c.DomainIDs(), c.Cap>>48&0x3f)
	}
	if s := c.String(); !strings.Contains(s, "VT-d 1.0, 48-bit") || !strings.Contains(s, "4K/2M/1G QI IR non-coherent") {
		t.Errorf("String() = %q", s)
	}

	for _, tc := range []struct {
		name      string
		cap, ecap uint64
		check     func(Capabilities) bool
	}{
		{"caching-mode=on", qemuCap48CM, qemuECap, func(c Capabilities) bool { return c.CachingMode }},
		{"dma-drain=off", qemuCap48NoDrain, qemuECapNoPT, func(c Capabilities) bool {
			return !c.DrainReads && !c.DrainWrites && !c.PassThrough && c.InterruptRemapping
		}},
		{"intremap=off", qemuCap48, qemuECapNoIR, func(c Capabilities) bool { return !c.InterruptRemapping && c.QueuedInvalidation }},
		{"snoop-control=on,device-iotlb=on", qemuCap48, qemuECapSCDT, func(c Capabilities) bool { return c.SnoopControl && c.DeviceTLB }},
	} {
		c, err := ParseCapabilities(qemuVer, tc.cap, tc.ecap)
		if err != nil || !tc.check(c) {
			t.Errorf("%s: %+v, %v", tc.name, c, err)
		}
	}

	// QEMU 7.2's default aw-bits=39: 3-level tables only.
	_, err = ParseCapabilities(qemuVer, qemuCap39, qemuECap)
	if !errors.Is(err, ErrNo4LevelTables) || !strings.Contains(err.Error(), "aw-bits=48") {
		t.Errorf("aw-bits=39: err = %v", err)
	}
}

func TestParseCapabilitiesRejects(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cap, ecap uint64
		want      string
	}{
		{"ND reserved", qemuCap48 | 7, qemuECap, "ND = 7"},
		{"FRO 0", qemuCap48 &^ (capFROMask << capFROShift), qemuECap, "FRO = 0"},
		{"IRO 0", qemuCap48, qemuECap &^ (ecapIROMask << ecapIROShift), "IRO = 0"},
		{"5-level only", qemuCap48&^(capSAGAWMask<<capSAGAWShift) | sagaw57<<capSAGAWShift, qemuECap, "5-level"},
		{"no SAGAW", qemuCap48 &^ (capSAGAWMask << capSAGAWShift), qemuECap, "no second-level"},
		{"MGAW 31", qemuCap48&^(capMGAWMask<<capMGAWShift) | 30<<capMGAWShift, qemuECap, "below the 32"},
	} {
		if _, err := ParseCapabilities(qemuVer, tc.cap, tc.ecap); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	// IR without QI cannot invalidate its entry cache: treated as absent.
	c, err := ParseCapabilities(qemuVer, qemuCap48, qemuECap&^ecapQI)
	if err != nil || c.InterruptRemapping {
		t.Errorf("IR without QI: %+v, %v", c, err)
	}
}

func TestTableConfig(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	want := ept.Config{
		Format:         ept.VTdFormat{},
		InputAddrBits:  48,
		OutputAddrBits: 48,
		PageSizes:      ept.AllPageSizes,
	}
	if got := b.u.TableConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("TableConfig = %+v, want %+v", got, want)
	}
	// The DMAR's HAW (39 on QEMU's default) bounds output addresses;
	// caching mode asks for new mappings; SC sets SNP; Options restrict
	// page sizes; MGAW below 48 bounds input addresses.
	b = newBed(t, qemuCap48CM&^(capMGAWMask<<capMGAWShift)|(42-1)<<capMGAWShift, qemuECapSCDT, Options{HostAddressWidth: 39, PageSizes: ept.Pages2M})
	want = ept.Config{
		Format:                ept.VTdFormat{Snoop: true},
		InputAddrBits:         42,
		OutputAddrBits:        39,
		PageSizes:             ept.Pages4K | ept.Pages2M,
		InvalidateNewMappings: true,
	}
	if got := b.u.TableConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("TableConfig = %+v, want %+v", got, want)
	}
	// The configuration is one package ept accepts.
	if _, err := ept.New(b.mem, b.pages, b.u.TableConfig()); err != nil {
		t.Error(err)
	}
	if b.u.String() != "vt-d unit at 0xfed90000" {
		t.Errorf("String() = %q", b.u.String())
	}
}

func TestNewRejects(t *testing.T) {
	drhd := qemuDMAR(t).DRHDs[0]
	noop := func(uint64, uint64) {}
	for _, tc := range []struct {
		name      string
		cap, ecap uint64
		drhd      func(*acpi.DRHD)
		opts      Options
		want      string
	}{
		{"aw-bits=39", qemuCap39, qemuECap, nil, Options{HostAddressWidth: 39, FlushCache: noop}, "aw-bits=48"},
		{"no flush on a non-coherent unit", qemuCap48, qemuECap, nil, Options{HostAddressWidth: 48}, "ECAP_REG.C = 0"},
		{"no HAW", qemuCap48, qemuECap, nil, Options{FlushCache: noop}, "host address width of 0 bits"},
		{"records beyond the register set", qemuCap48&^(capFROMask<<capFROShift) | 0x100<<capFROShift, qemuECap, nil, Options{HostAddressWidth: 48, FlushCache: noop}, "beyond the 0x1000-byte register set"},
		{"unaligned base", qemuCap48, qemuECap, func(d *acpi.DRHD) { d.RegisterBase += 0x10 }, Options{HostAddressWidth: 48, FlushCache: noop}, "4 KiB-aligned"},
		{"scope through a bridge", qemuCap48, qemuECap, func(d *acpi.DRHD) {
			d.Scopes = []acpi.DeviceScope{{Type: acpi.ScopePCIEndpoint, Path: []acpi.PCIPathStep{hop(0x1c, 0), hop(0, 0)}}}
		}, Options{HostAddressWidth: 48, FlushCache: noop}, "BridgeBuses is required"},
		{"scope naming device 32", qemuCap48, qemuECap, func(d *acpi.DRHD) {
			d.Scopes = []acpi.DeviceScope{{Type: acpi.ScopePCIEndpoint, Path: []acpi.PCIPathStep{hop(32, 0)}}}
		}, Options{HostAddressWidth: 48, FlushCache: noop}, "device 32"},
	} {
		d := drhd
		if tc.drhd != nil {
			tc.drhd(&d)
		}
		mem := hwfake.NewMemory()
		f := newFakeUnit(mem, drhd.RegisterBase, tc.cap, tc.ecap, 48)
		if _, err := New(f, mem, newPagePool(), d, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	// No unit at the address: all ones.
	mem := hwfake.NewMemory()
	mem.OnRead[drhd.RegisterBase+regVER] = func(int) uint64 { return 0xffffffff }
	mem.OnRead[drhd.RegisterBase+regCAP] = func(int) uint64 { return ^uint64(0) }
	if _, err := New(mem, mem, newPagePool(), drhd, Options{HostAddressWidth: 48}); err == nil || !strings.Contains(err.Error(), "all ones") {
		t.Errorf("absent unit: %v", err)
	}
	// Allocator failures and pages the unit cannot reach.
	f := newFakeUnit(mem, drhd.RegisterBase, qemuCap48, qemuECap, 39)
	p := newPagePool()
	p.fail = true
	if _, err := New(f, mem, p, drhd, Options{HostAddressWidth: 39, FlushCache: noop}); err == nil || !strings.Contains(err.Error(), "allocating the root table") {
		t.Errorf("allocator failure: %v", err)
	}
	p = &pagePool{next: 1 << 39, limit: 1 << 40}
	if _, err := New(f, mem, p, drhd, Options{HostAddressWidth: 39, FlushCache: noop}); err == nil || !strings.Contains(err.Error(), "beyond the 39-bit host address width") {
		t.Errorf("unreachable pages: %v", err)
	}
}

func TestEnableBlocksEveryCoveredDevice(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	if !b.u.Covers(sata) || !b.u.Covers(lpc) || b.u.Covers(other) || b.u.Covers(iommu.Source{Segment: 1, Device: 0x1f, Function: 2}) {
		t.Error("Covers does not follow QEMU's device scopes")
	}
	// Before Enable nothing is checked (and Attach refuses).
	b.wantDMA(sata, 0x1000, false, 0x1000, 0)
	if err := b.u.Attach(sata, &iommu.Domain{ID: 1}); err == nil {
		t.Error("Attach before Enable succeeded")
	}
	if err := b.u.Enable(); err != nil {
		t.Fatal(err)
	}
	b.hw.check(t)
	// SRTP, then the queue, then TE, one command per write.
	want := []uint32{gSRTP, gQIE, gQIE | gTE}
	if !reflect.DeepEqual(b.hw.gcmdWrites, want) {
		t.Errorf("GCMD_REG writes %#x, want %#x", b.hw.gcmdWrites, want)
	}
	if b.hw.gsts&(gTE|gQIE) != gTE|gQIE || b.hw.root != b.u.root || b.hw.fectl != fectlIM {
		t.Errorf("GSTS %#x root %#x (want %#x) FECTL %#x", b.hw.gsts, b.hw.root, b.u.root, b.hw.fectl)
	}
	// Global context-cache, then global IOTLB invalidation, then the wait.
	b.wantEvents("cc global", "iotlb global dr dw", "wait")
	for _, src := range []iommu.Source{sata, lpc, other, {Bus: 0, Device: 0, Function: 0}} {
		b.wantDMA(src, 0x1000, false, 0, 0x2)
		b.wantDMA(src, 0x7fff_f000, true, 0, 0x2)
	}
	// Buses no scope names have no root entry at all.
	b.wantDMA(iommu.Source{Bus: 1}, 0x1000, false, 0, 0x1)
	// Root entry for bus 0: present, the context table, high quadword 0.
	lo, hi := b.mem.Read64(b.u.root), b.mem.Read64(b.u.root+8)
	if lo != b.u.context[0]|1 || hi != 0 || b.u.context[1] != 0 {
		t.Errorf("root entry 0 = %#x %#x, context table %#x", lo, hi, b.u.context[0])
	}
	// RTADDR_REG: the root table, legacy mode (TTM = 00b).
	if b.hw.rtaddr != b.u.root || b.hw.rtaddr&0xc00 != 0 {
		t.Errorf("RTADDR_REG = %#x", b.hw.rtaddr)
	}
	// IQA_REG: the queue, 128-bit descriptors, one page.
	if b.hw.iqa != b.u.queue {
		t.Errorf("IQA_REG = %#x, want %#x", b.hw.iqa, b.u.queue)
	}
}

func TestAttachTranslatesDetachBlocks(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	d := b.domain(5)
	// Blocked DMA first, so that the unit has had a chance to cache the
	// not-present context entry.
	b.wantDMA(sata, 0x10123, false, 0, 0x2)

	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.hw.check(t)
	b.wantEvents("cc device did=5 sid=0x00fa", "iotlb domain did=5 dr dw", "wait")
	// The context entry (9.3): SLPTPTR | P; AW = 010b, DID 5.
	slot := b.u.context[0] + 0xfa*16
	if lo, hi := b.mem.Read64(slot), b.mem.Read64(slot+8); lo != d.Tables.Root()|1 || hi != 2|5<<8 {
		t.Errorf("context entry = %#x %#x", lo, hi)
	}
	b.wantDMA(sata, 0x10123, false, 0x4000_0123, 0)
	b.wantDMA(sata, 0x13ff8, true, 0x4000_3ff8, 0)
	b.wantDMA(sata, 0x20_0000+0x12_3456, false, 0x4020_0000+0x12_3456, 0) // through the 2 MiB page
	b.wantDMA(sata, 0x20_0000, true, 0, 0x5)                              // read-only
	b.wantDMA(sata, 0x14000, false, 0, 0x6)                               // not mapped
	b.wantDMA(lpc, 0x10123, false, 0, 0x2)                                // another device stays blocked
	// Attaching again changes nothing and invalidates nothing.
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.wantEvents()

	// Unmapping invalidates (through OnInvalidate): the cached
	// translation of 0x10000 is gone.
	if err := d.Tables.Unmap(0x10000, 0x1000); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("iotlb domain did=5 dr dw", "wait")
	b.wantDMA(sata, 0x10123, false, 0, 0x6)
	b.wantDMA(sata, 0x11000, false, 0x4000_1000, 0)

	if err := b.u.Detach(sata); err != nil {
		t.Fatal(err)
	}
	b.hw.check(t)
	b.wantEvents("cc device did=5 sid=0x00fa", "iotlb domain did=5 dr dw", "wait")
	if lo, hi := b.mem.Read64(slot), b.mem.Read64(slot+8); lo != 0 || hi != 0 {
		t.Errorf("context entry after Detach = %#x %#x", lo, hi)
	}
	// Blocked again, although the unit had the translation cached.
	b.wantDMA(sata, 0x11000, false, 0, 0x2)
	b.wantDMA(sata, 0x20_0000, false, 0, 0x2)
	// Detaching a blocked device is a no-op.
	if err := b.u.Detach(sata); err != nil {
		t.Fatal(err)
	}
	b.wantEvents()

	// Moving a device between domains goes through the blocking state.
	d2 := b.domain(6)
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.wantDMA(sata, 0x11000, false, 0x4000_1000, 0)
	b.hw.events = nil
	if err := d2.Tables.Map(0x11000, 0x5000_0000, 0x1000, ept.RW, ept.WB); err != nil {
		t.Fatal(err)
	}
	b.hw.events = nil
	if err := b.u.Attach(sata, d2); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("cc device did=5 sid=0x00fa", "iotlb domain did=5 dr dw", "wait",
		"cc device did=6 sid=0x00fa", "iotlb domain did=6 dr dw", "wait")
	b.wantDMA(sata, 0x11000, false, 0x5000_0000, 0)
	b.hw.check(t)
}

// TestFakeCachesLikeHardware checks the model the other tests rely on: a
// context entry cleared in memory without invalidation still translates,
// so a driver that forgot to invalidate would fail them.
func TestFakeCachesLikeHardware(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	tb, err := ept.New(b.mem, b.pages, b.u.TableConfig()) // no OnInvalidate
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Map(0x10000, 0x4000_0000, 0x2000, ept.RW, ept.WB); err != nil {
		t.Fatal(err)
	}
	if err := b.u.Attach(sata, &iommu.Domain{ID: 5, Tables: tb}); err != nil {
		t.Fatal(err)
	}
	b.wantDMA(sata, 0x10000, false, 0x4000_0000, 0)
	// A leaf removed without invalidation still translates (IOTLB)...
	if err := tb.Unmap(0x10000, 0x1000); err != nil {
		t.Fatal(err)
	}
	b.wantDMA(sata, 0x10000, false, 0x4000_0000, 0)
	b.hw.invalidateIOTLB(granDomain, 5, 0, false, false)
	b.wantDMA(sata, 0x10000, false, 0, 0x6)
	// ...and so does a context entry cleared without invalidation.
	b.mem.Write64(b.u.context[0]+0xfa*16, 0)
	b.wantDMA(sata, 0x11000, false, 0x4000_1000, 0)
	b.hw.invalidateContext(granDevice, 5, 0xfa, 0)
	b.wantDMA(sata, 0x11000, false, 0, 0x2)
}

func TestCachingMode(t *testing.T) {
	b := newBed(t, qemuCap48CM, qemuECap, Options{})
	b.enable()
	if !b.u.TableConfig().InvalidateNewMappings {
		t.Error("caching mode: TableConfig does not ask for new mappings")
	}
	d := b.domain(7)
	// The unit caches the blocked device's not-present entry...
	b.wantDMA(sata, 0x10000, false, 0, 0x2)
	// ...which an invalidation with the domain's id would not remove
	// (checked on the model), only one with domain-id 0 (6.1).
	b.hw.invalidateContext(granDevice, 7, sata.RequesterID(), 0)
	if _, ok := b.hw.ctxCache[sata.RequesterID()]; !ok {
		t.Fatal("model: not-present entry not cached under domain-id 0")
	}
	b.hw.events = nil
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("cc device did=0 sid=0x00fa", "iotlb domain did=7 dr dw", "wait")
	b.wantDMA(sata, 0x10000, false, 0x4000_0000, 0)
	// New mappings are invalidated too.
	if err := d.Tables.Map(0x80_0000, 0x4100_0000, 0x1000, ept.RW, ept.WB); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("iotlb domain did=7 dr dw", "wait")
	b.hw.check(t)
}

func TestRequiredWriteBufferFlush(t *testing.T) {
	b := newBed(t, qemuCap48|capRWBF, qemuECap, Options{})
	b.hw.lag = 2
	b.enable()
	if !b.u.TableConfig().InvalidateNewMappings {
		t.Error("RWBF: TableConfig does not ask for new mappings")
	}
	d := b.domain(3)
	b.hw.events = nil
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("wbf", "cc device did=3 sid=0x00fa", "iotlb domain did=3 dr dw", "wait")
	b.hw.check(t)
}

func TestRegisterBasedInvalidation(t *testing.T) {
	b := newBed(t, qemuCap48NoDrain, qemuECapNoIR&^ecapQI, Options{InterruptRemapping: true})
	if b.u.queue != 0 || b.u.irt != 0 {
		t.Error("queue or remapping table allocated for a unit without QI")
	}
	if err := b.u.Enable(); err != nil {
		t.Fatal(err)
	}
	b.hw.check(t)
	if want := []uint32{gSRTP, gTE}; !reflect.DeepEqual(b.hw.gcmdWrites, want) {
		t.Errorf("GCMD_REG writes %#x, want %#x", b.hw.gcmdWrites, want)
	}
	b.wantEvents("cc global", "iotlb global")
	d := b.domain(9)
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("cc device did=9 sid=0x00fa", "iotlb domain did=9")
	b.wantDMA(sata, 0x12000, true, 0x4000_2000, 0)
	if err := b.u.Detach(sata); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("cc device did=9 sid=0x00fa", "iotlb domain did=9")
	b.wantDMA(sata, 0x12000, true, 0, 0x2)
	// CCMD_REG: ICC | CIRG device | SID | DID as written, completed with
	// CAIG = device.
	if want := uint64(3)<<61 | 3<<59 | 0xfa<<16 | 9; b.hw.ccmd != want {
		t.Errorf("CCMD_REG = %#x, want %#x", b.hw.ccmd, want)
	}
	if want := uint64(2)<<60 | 2<<57 | 9<<32; b.hw.iotlbR != want {
		t.Errorf("IOTLB_REG = %#x, want %#x", b.hw.iotlbR, want)
	}
	b.hw.check(t)
}

func TestGCMDOneCommandAtATime(t *testing.T) {
	// Slow hardware (each command takes 3 status reads), interrupt
	// remapping on: SRTP, QIE, SIRTP, CFI, IRE, TE, each written with
	// the enables already on and nothing else.
	b := newBed(t, qemuCap48, qemuECap, Options{InterruptRemapping: true})
	b.hw.lag = 3
	b.enable()
	want := []uint32{gSRTP, gQIE, gQIE | gSIRTP, gQIE | gCFI, gQIE | gCFI | gIRE, gQIE | gCFI | gIRE | gTE}
	if !reflect.DeepEqual(b.hw.gcmdWrites, want) {
		t.Errorf("GCMD_REG writes %#x, want %#x", b.hw.gcmdWrites, want)
	}

	// Firmware left translation, the queue and interrupt remapping on:
	// translation stays on in every write while the rest is redone.
	b = newBed(t, qemuCap48, qemuECapNoIR, Options{})
	b.hw.gsts = gTE | gQIE | gIRE | gSRTP
	b.hw.root, b.hw.irtLatched = 0x9000, 0xa000
	b.enable()
	want = []uint32{gTE | gIRE, gTE, gTE | gSRTP, gTE | gQIE}
	if !reflect.DeepEqual(b.hw.gcmdWrites, want) {
		t.Errorf("GCMD_REG writes %#x, want %#x", b.hw.gcmdWrites, want)
	}
	if b.hw.gsts&(gTE|gIRE) != gTE || b.hw.root != b.u.root {
		t.Errorf("GSTS %#x, root %#x", b.hw.gsts, b.hw.root)
	}
	b.wantDMA(sata, 0, false, 0, 0x2)

	// Disable clears TE alone.
	b.hw.gcmdWrites = nil
	if err := b.u.Disable(); err != nil {
		t.Fatal(err)
	}
	if want := []uint32{gQIE}; !reflect.DeepEqual(b.hw.gcmdWrites, want) {
		t.Errorf("Disable wrote GCMD_REG %#x, want %#x", b.hw.gcmdWrites, want)
	}
	b.wantDMA(sata, 0x1234, false, 0x1234, 0) // unchecked
	b.hw.check(t)
}

func TestTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fakeUnit)
		step  string // "enable" or "attach"
		want  []string
	}{
		{"TE never set", func(f *fakeUnit) { f.stuck = gTE }, "enable", []string{"enabling translation", "GSTS_REG bit 0x80000000 not set after 100 polls"}},
		{"RTPS never set", func(f *fakeUnit) { f.stuck = gSRTP }, "enable", []string{"setting the root table pointer", "not set after 100 polls"}},
		{"queue never enabled", func(f *fakeUnit) { f.stuck = gQIE }, "enable", []string{"enabling queued invalidation"}},
		{"queue never processed", func(f *fakeUnit) { f.qiStuck = true }, "enable", []string{"invalidation wait not completed after 100 polls", "IQT_REG 0x30"}},
		{"wait descriptor rejected", func(f *fakeUnit) { f.badWait = true }, "attach", []string{"invalidation queue error", "rejected"}},
		{"firmware queue stuck", func(f *fakeUnit) { f.gsts, f.iqt = gQIE, 0x40 }, "enable", []string{"queue left by firmware not drained"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, qemuCap48, qemuECap, Options{})
			var err error
			if tc.step == "attach" {
				b.enable()
				tc.setup(b.hw)
				err = b.u.Attach(sata, b.domain(1))
			} else {
				tc.setup(b.hw)
				err = b.u.Enable()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "vt-d unit at 0xfed90000") && !strings.HasPrefix(err.Error(), "attach") {
				t.Errorf("error %q does not name the unit", err)
			}
		})
	}
	// The queue recovers from the rejected descriptor.
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	b.hw.badWait = true
	d := b.domain(1)
	if err := b.u.Attach(sata, d); err == nil {
		t.Fatal("no error")
	}
	if b.hw.fsts&fstsIQE != 0 || b.hw.iqh != b.hw.iqt {
		t.Errorf("queue not reset: FSTS %#x IQH %#x IQT %#x", b.hw.fsts, b.hw.iqh, b.hw.iqt)
	}
	b.hw.badWait = false
	if err := b.u.Detach(sata); err != nil {
		t.Fatal(err)
	}
	b.wantDMA(sata, 0x10000, false, 0, 0x2)

	// Invalidation time-out and interrupt remapping table pointer stuck.
	b = newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	b.hw.qiStuck, b.hw.fsts = true, b.hw.fsts|fstsITE
	if err := b.u.Invalidate(d); err == nil || !strings.Contains(err.Error(), "invalidation time-out error") {
		t.Errorf("ITE: %v", err)
	}
	if b.hw.fsts&fstsITE != 0 {
		t.Error("ITE not cleared")
	}
	b = newBed(t, qemuCap48, qemuECap, Options{InterruptRemapping: true})
	b.hw.stuck = gSIRTP
	if err := b.u.Enable(); err == nil || !strings.Contains(err.Error(), "interrupt remapping table pointer") {
		t.Errorf("SIRTP stuck: %v", err)
	}

	// A unit that stops consuming the queue: after the wait times out,
	// later invalidations fill the queue and say so.
	b = newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	b.hw.qiStuck = true
	var err error
	for i := 0; i < 200 && (err == nil || !strings.Contains(err.Error(), "queue full")); i++ {
		err = b.u.Invalidate(d)
	}
	if err == nil || !strings.Contains(err.Error(), "invalidation queue full") {
		t.Errorf("stuck queue: %v", err)
	}

	// Register-based invalidation that never completes, or is refused.
	for _, tc := range []struct {
		name  string
		setup func(*fakeUnit)
		want  string
	}{
		{"ICC stuck", func(f *fakeUnit) { f.regStuck = true }, "CCMD_REG.ICC still set after 100 polls"},
		{"not performed", func(f *fakeUnit) { f.caigZero = true }, "not performed (CCMD_REG.CAIG = 0)"},
	} {
		b := newBed(t, qemuCap48, qemuECapNoIR&^ecapQI, Options{})
		tc.setup(b.hw)
		if err := b.u.Enable(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestAttachRejects(t *testing.T) {
	b := newBed(t, qemuCap48&^capNDMask|2, qemuECap, Options{}) // ND 2: 256 domains
	b.enable()
	d := b.domain(1)
	for _, tc := range []struct {
		name string
		src  iommu.Source
		d    *iommu.Domain
		want string
	}{
		{"domain 0", sata, &iommu.Domain{ID: 0, Tables: d.Tables}, "domain-id 0 is reserved"},
		{"domain 256", sata, &iommu.Domain{ID: 256, Tables: d.Tables}, "beyond the unit's 256 domains"},
		{"nil domain", sata, nil, "nil domain"},
		{"not covered", other, d, "does not cover 0000:00:03.0"},
	} {
		if err := b.u.Attach(tc.src, tc.d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	if err := b.u.Invalidate(nil); err == nil {
		t.Error("Invalidate(nil) succeeded")
	}
	if err := b.u.Invalidate(&iommu.Domain{}); err == nil {
		t.Error("Invalidate(domain 0) succeeded")
	}
	if err := b.u.Detach(other); err == nil {
		t.Error("Detach of an uncovered device succeeded")
	}
	if c := b.u.Capabilities(); c.DomainIDs() != 256 || b.u.Segment() != 0 {
		t.Errorf("Capabilities %+v", c)
	}
	ept4, err := ept.New(b.mem, b.pages, ept.Config{Format: ept.EPTFormat{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.u.Attach(sata, &iommu.Domain{ID: 2, Tables: ept4}); err == nil || !strings.Contains(err.Error(), "not VT-d") {
		t.Errorf("EPT tables: %v", err)
	}
	snp, err := ept.New(b.mem, b.pages, ept.Config{Format: ept.VTdFormat{Snoop: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.u.Attach(sata, &iommu.Domain{ID: 2, Tables: snp}); err == nil || !strings.Contains(err.Error(), "SNP") {
		t.Errorf("SNP tables on a unit without SC: %v", err)
	}
	// A domain without tables blocks.
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	if err := b.u.Attach(sata, &iommu.Domain{ID: 1}); err != nil {
		t.Fatal(err)
	}
	b.wantDMA(sata, 0x10000, false, 0, 0x2)
	b.hw.check(t)
}

func TestDrainFaults(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	var got []iommu.Fault
	report := func(f iommu.Fault) { got = append(got, f) }

	if n, err := b.u.DrainFaults(report); n != 0 || err != nil || len(got) != 0 {
		t.Fatalf("no faults: %d %v %v", n, err, got)
	}
	b.wantDMA(sata, 0x1234_5678, false, 0, 0x2)
	n, err := b.u.DrainFaults(report)
	want := iommu.Fault{Unit: "vt-d unit at 0xfed90000", Source: sata, Address: 0x1234_5000, Reason: "context entry not present (device blocked)", Code: 2}
	if n != 1 || err != nil || !reflect.DeepEqual(got, []iommu.Fault{want}) {
		t.Fatalf("DrainFaults = %d, %v, %+v", n, err, got)
	}
	if b.hw.records[0][1]&frcdF != 0 {
		t.Error("fault record not cleared")
	}
	if s := got[0].String(); s != "vt-d unit at 0xfed90000: DMA read by 0000:00:1f.2 at 0x12345000 blocked: context entry not present (device blocked) (code 0x2)" {
		t.Errorf("Fault.String() = %q", s)
	}

	// QEMU has one record: the second fault overflows while the first is
	// pending; the third is lost too (PFO set).
	got = nil
	d := b.domain(4)
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.wantDMA(sata, 0x20_0010, true, 0, 0x5)
	b.wantDMA(lpc, 0x1000, true, 0, 0x2)
	b.wantDMA(lpc, 0x2000, true, 0, 0x2)
	n, err = b.u.DrainFaults(report)
	wantAll := []iommu.Fault{
		{Unit: want.Unit, Source: sata, Address: 0x20_0000, Write: true, Reason: "write to an unmapped or read-only page", Code: 5},
		{Unit: want.Unit, Reason: overflowReason, Code: FaultOverflow},
	}
	if n != 2 || err != nil || !reflect.DeepEqual(got, wantAll) {
		t.Errorf("DrainFaults = %d, %v, %+v", n, err, got)
	}
	if b.hw.fsts&fstsPFO != 0 {
		t.Error("PFO not cleared")
	}
	// Recording resumes.
	got = nil
	b.wantDMA(lpc, 0x3000, false, 0, 0x2)
	if n, _ := b.u.DrainFaults(report); n != 1 || got[0].Source != lpc || got[0].Address != 0x3000 {
		t.Errorf("after overflow: %d %+v", n, got)
	}
	// A nil report only clears.
	b.wantDMA(lpc, 0x3000, false, 0, 0x2)
	if n, _ := b.u.DrainFaults(nil); n != 1 || b.hw.records[0][1]&frcdF != 0 {
		t.Errorf("DrainFaults(nil) = %d", n)
	}
	b.hw.check(t)
}

func TestDrainFaultsOldestFirst(t *testing.T) {
	// Eight records; the unit has already used six: the next faults go
	// to records 6, 7, 0, 1.
	b := newBed(t, uint64(qemuCap48&^(capNFRMask<<capNFRShift)|7<<capNFRShift), qemuECap, Options{})
	b.enable()
	b.hw.fsts = 6 << fstsFRIShift
	for i := uint64(0); i < 4; i++ {
		b.wantDMA(lpc, i<<12, false, 0, 0x2)
	}
	if b.hw.records[1][1]&frcdF == 0 || b.hw.records[2][1]&frcdF != 0 {
		t.Fatal("model did not wrap")
	}
	var addrs []uint64
	n, err := b.u.DrainFaults(func(f iommu.Fault) { addrs = append(addrs, f.Address) })
	if n != 4 || err != nil || !reflect.DeepEqual(addrs, []uint64{0, 0x1000, 0x2000, 0x3000}) {
		t.Errorf("DrainFaults = %d, %v, %#x", n, err, addrs)
	}
	for i, r := range b.hw.records {
		if r[1]&frcdF != 0 {
			t.Errorf("record %d not cleared", i)
		}
	}
	// A unit whose registers read all ones is reported.
	b.hw.fsts = ^uint32(0)
	if _, err := b.u.DrainFaults(nil); err == nil || !strings.Contains(err.Error(), "all ones") {
		t.Errorf("vanished unit: %v", err)
	}
}

func TestFaultRecordLayout(t *testing.T) {
	// Hand-assembled 128-bit records (FRCD_REG): F at 127, T1 at 126,
	// FR at 103:96, SID at 79:64, FI at 63:12.
	for _, tc := range []struct {
		lo, hi uint64
		want   iommu.Fault
	}{
		{0xdead_beef_cabc, 1<<63 | 0x05<<32 | 0x00fa, iommu.Fault{Source: iommu.Source{Segment: 2, Bus: 0, Device: 0x1f, Function: 2}, Address: 0xdead_beef_c000, Write: true, Reason: "write to an unmapped or read-only page", Code: 5}},
		{0x1000, 1<<63 | 1<<62 | 0x06<<32 | 0x0308, iommu.Fault{Source: iommu.Source{Segment: 2, Bus: 3, Device: 1, Function: 0}, Address: 0x1000, Reason: "read from an unmapped or write-only page", Code: 6}},
		{0x1234 << 48, 1<<63 | 1<<62 | 0x22<<32 | 0xf0f8, iommu.Fault{Source: iommu.Source{Segment: 2, Bus: 0xf0, Device: 0x1f, Function: 0}, Address: 0x1234, Write: true, Reason: "interrupt remapping entry not present", Code: 0x22}},
		{0, 0x99 << 32, iommu.Fault{Source: iommu.Source{Segment: 2}, Write: true, Reason: reasonUnknown, Code: 0x99}},
	} {
		if got := DecodeFaultRecord(2, tc.lo, tc.hi); got != tc.want {
			t.Errorf("DecodeFaultRecord(%#x, %#x) = %+v, want %+v", tc.lo, tc.hi, got, tc.want)
		}
	}
	for code := 1; code <= 0xe; code++ {
		if FaultReason(uint8(code)) == reasonUnknown {
			t.Errorf("DMA remapping reason %#x not decoded", code)
		}
	}
	for code := 0x20; code <= 0x26; code++ {
		if FaultReason(uint8(code)) == reasonUnknown {
			t.Errorf("interrupt remapping reason %#x not decoded", code)
		}
	}
}

func TestStructureLayouts(t *testing.T) {
	// Context entry (9.3): low quadword SLPTPTR | TT 00b | FPD 0 | P;
	// high quadword DID at 23:8, AW at 2:0.
	lo, hi := contextEntry(0x1_2345_6000, 0xabcd)
	if lo != 0x1_2345_6001 || hi != 0xab_cd02 {
		t.Errorf("contextEntry = %#x %#x", lo, hi)
	}
	if contextDomain(hi) != 0xabcd {
		t.Errorf("contextDomain(%#x) = %#x", hi, contextDomain(hi))
	}
	// Register offsets (11.4, Table "Address Mapping for Remapping
	// Hardware Registers").
	regs := map[string][2]uint64{
		"VER": {regVER, 0x00}, "CAP": {regCAP, 0x08}, "ECAP": {regECAP, 0x10}, "GCMD": {regGCMD, 0x18},
		"GSTS": {regGSTS, 0x1c}, "RTADDR": {regRTADDR, 0x20}, "CCMD": {regCCMD, 0x28}, "FSTS": {regFSTS, 0x34},
		"FECTL": {regFECTL, 0x38}, "PMEN": {regPMEN, 0x64}, "IQH": {regIQH, 0x80}, "IQT": {regIQT, 0x88},
		"IQA": {regIQA, 0x90}, "ICS": {regICS, 0x9c}, "IRTA": {regIRTA, 0xb8},
	}
	for name, r := range regs {
		if r[0] != r[1] {
			t.Errorf("%s_REG at %#x, want %#x", name, r[0], r[1])
		}
	}
	if queueEntries != 256 || descSize != 16 || contextEntrySize != 16 || rootEntrySize != 16 || irteSize != 16 || irtEntries != 2<<irtSizeField {
		t.Error("structure sizes")
	}

	// Descriptors as the driver queues them for an attach (6.5.2.1,
	// 6.5.2.3, 6.5.2.8), read back from the queue.
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	d := b.domain(0x1234)
	start := b.u.tail
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	desc := func(i uint64) (uint64, uint64) {
		a := b.u.queue + (start+i)%queueEntries*16
		return b.mem.Read64(a), b.mem.Read64(a + 8)
	}
	for i, want := range [][2]uint64{
		{0x1 | 3<<4 | 0x1234<<16 | 0x00fa<<32, 0},      // context-cache, device-selective, FM 0
		{0x2 | 2<<4 | 1<<6 | 1<<7 | 0x1234<<16, 0},     // IOTLB, domain-selective, DW, DR
		{0x5 | 1<<5 | uint64(b.u.seq)<<32, b.u.status}, // wait, status write
	} {
		if lo, hi := desc(uint64(i)); lo != want[0] || hi != want[1] {
			t.Errorf("descriptor %d = %#x %#x, want %#x %#x", i, lo, hi, want[0], want[1])
		}
	}
	if b.hw.iqt != (start+3)%queueEntries*16 {
		t.Errorf("IQT_REG = %#x", b.hw.iqt)
	}
}

func TestQueueWraps(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	b.hw.quiet = true
	d := b.domain(1)
	for i := 0; i < 200; i++ { // 600 descriptors through a 256-entry queue
		if err := b.u.Attach(sata, d); err != nil {
			t.Fatal(err)
		}
		if err := b.u.Detach(sata); err != nil {
			t.Fatal(err)
		}
	}
	b.wantDMA(sata, 0x10000, false, 0, 0x2)
	b.hw.check(t)
}

func TestProtectedMemoryDisabled(t *testing.T) {
	b := newBed(t, qemuCap48|capPLMR, qemuECap, Options{})
	b.hw.pmen = pmenEPM | pmenPRS // firmware's DMA protection
	b.enable()
	if b.hw.pmen != 0 {
		t.Errorf("PMEN_REG = %#x after Enable", b.hw.pmen)
	}
}

func TestCoherency(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	d := b.domain(2)
	b.flushes = nil
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	slot := b.u.context[0] + 0xfa*16
	found := false
	for _, f := range b.flushes {
		found = found || (f[0] <= slot && slot+16 <= f[0]+f[1])
	}
	if !found {
		t.Errorf("context entry %#x not flushed: %#x", slot, b.flushes)
	}
	// Domain tables written through TableMemory are flushed word by word.
	b.flushes = nil
	if err := d.Tables.Map(0x40_0000, 0x4100_0000, 0x1000, ept.RW, ept.WB); err != nil {
		t.Fatal(err)
	}
	if len(b.flushes) == 0 {
		t.Error("table writes not flushed")
	}
	// A coherent unit flushes nothing and needs no hook.
	b = newBed(t, qemuCap48, qemuECap|ecapC, Options{})
	b.enable()
	if len(b.flushes) != 0 || b.u.TableMemory(b.mem) != ept.Memory(b.mem) {
		t.Errorf("coherent unit flushed %d ranges", len(b.flushes))
	}
}

// mux is the register space of several fake units.
type mux map[uint64]*fakeUnit

func (m mux) unit(a uint64) *fakeUnit    { return m[a&^0xfff] }
func (m mux) Read8(a uint64) uint8       { return m.unit(a).Read8(a) }
func (m mux) Read16(a uint64) uint16     { return m.unit(a).Read16(a) }
func (m mux) Read32(a uint64) uint32     { return m.unit(a).Read32(a) }
func (m mux) Read64(a uint64) uint64     { return m.unit(a).Read64(a) }
func (m mux) Write8(a uint64, v uint8)   { m.unit(a).Write8(a, v) }
func (m mux) Write16(a uint64, v uint16) { m.unit(a).Write16(a, v) }
func (m mux) Write32(a uint64, v uint32) { m.unit(a).Write32(a, v) }
func (m mux) Write64(a uint64, v uint64) { m.unit(a).Write64(a, v) }
func (m mux) check(t testing.TB) {
	t.Helper()
	for _, f := range m {
		f.check(t)
	}
}
func hop(dev, fn uint8) acpi.PCIPathStep  { return acpi.PCIPathStep{Device: dev, Function: fn} }
func src(bus, dev, fn uint8) iommu.Source { return iommu.Source{Bus: bus, Device: dev, Function: fn} }
func srcSeg(seg uint16, b, d, f uint8) iommu.Source {
	return iommu.Source{Segment: seg, Bus: b, Device: d, Function: f}
}

func TestNewAllAndCovers(t *testing.T) {
	// A graphics unit (00:02.0), a unit for the root port 00:1c.0 and
	// what is below it (buses 2..4, through the resolver), a 39-bit-only
	// unit for 00:14.0 that the driver refuses, and the catch-all.
	dmar := &acpi.DMAR{HostAddressWidth: 46, DRHDs: []acpi.DRHD{
		{RegisterBase: 0xfed90000, Scopes: []acpi.DeviceScope{{Type: acpi.ScopePCIEndpoint, Path: []acpi.PCIPathStep{hop(2, 0)}}}},
		{RegisterBase: 0xfed91000, Scopes: []acpi.DeviceScope{
			{Type: acpi.ScopePCISubHierarchy, Path: []acpi.PCIPathStep{hop(0x1c, 0)}},
			{Type: acpi.ScopePCIEndpoint, Path: []acpi.PCIPathStep{hop(0x1c, 4), hop(0, 0)}}, // through a bridge: 05:00.0
			{Type: acpi.ScopeIOAPIC, EnumerationID: 2, StartBus: 0xf0, Path: []acpi.PCIPathStep{hop(0x1f, 0)}},
		}},
		{RegisterBase: 0xfed92000, Scopes: []acpi.DeviceScope{{Type: acpi.ScopePCIEndpoint, Path: []acpi.PCIPathStep{hop(0x14, 0)}}}},
		{RegisterBase: 0xfed93000, Flags: acpi.DRHDIncludePCIAll, Scopes: []acpi.DeviceScope{{Type: acpi.ScopeIOAPIC, StartBus: 0xf0, Path: []acpi.PCIPathStep{hop(0x1f, 0)}}}},
	}}
	mem := hwfake.NewMemory()
	m := mux{}
	for i, d := range dmar.DRHDs {
		cap := uint64(qemuCap48)
		if i == 2 {
			cap = qemuCap39
		}
		m[d.RegisterBase] = newFakeUnit(mem, d.RegisterBase, cap, qemuECap|ecapC, 46)
	}
	bridges := map[[3]uint8][2]uint8{{0, 0x1c, 0}: {2, 4}, {0, 0x1c, 4}: {5, 5}}
	opts := Options{BridgeBuses: func(seg uint16, bus, dev, fn uint8) (uint8, uint8, error) {
		if r, ok := bridges[[3]uint8{bus, dev, fn}]; ok && seg == 0 {
			return r[0], r[1], nil
		}
		return 0, 0, fmt.Errorf("no bridge at %02x:%02x.%d", bus, dev, fn)
	}}
	units, err := NewAll(m, mem, newPagePool(), dmar, opts)
	if err == nil || !strings.Contains(err.Error(), "vt-d unit at 0xfed92000") || !errors.Is(err, ErrNo4LevelTables) {
		t.Errorf("NewAll error = %v", err)
	}
	if len(units) != 3 {
		t.Fatalf("%d units", len(units))
	}
	gfx, port, all := units[0], units[1], units[2]
	for _, tc := range []struct {
		src  iommu.Source
		want *Unit
	}{
		{src(0, 2, 0), gfx},
		{src(0, 0x1c, 0), port},
		{src(2, 0, 0), port},
		{src(4, 31, 7), port},
		{src(5, 0, 0), port},
		{src(0, 0x1c, 4), all}, // the bridge itself is not in a scope
		{src(0, 0x14, 0), nil}, // the refused unit's device: behind no usable unit
		{src(0, 0x1f, 2), all},
		{src(6, 0, 0), all},
		{src(0xf0, 0x1f, 0), all}, // the IOAPIC's source-id is no DMA scope
		{srcSeg(1, 0, 2, 0), nil},
	} {
		if got := For(units, tc.src); got != tc.want {
			t.Errorf("For(%v) = %v, want %v", tc.src, got, tc.want)
		}
		n := 0
		for _, u := range units {
			if u.Covers(tc.src) {
				n++
			}
		}
		if n > 1 {
			t.Errorf("%v covered by %d units", tc.src, n)
		}
	}
	// As iommu.Units.For sees them.
	us := iommu.Units{gfx, port, all}
	if us.For(src(3, 0, 0)) != iommu.Unit(port) {
		t.Error("iommu.Units.For disagrees")
	}
	// Context tables: the port unit has buses 0, 2..5; the catch-all
	// every bus.
	for bus, want := range map[int]bool{0: true, 1: false, 2: true, 4: true, 5: true, 6: false} {
		if (port.context[bus] != 0) != want {
			t.Errorf("port unit: context table for bus %d: %v", bus, port.context[bus] != 0)
		}
	}
	for bus := range all.context {
		if all.context[bus] == 0 {
			t.Fatalf("catch-all unit: no context table for bus %d", bus)
		}
	}
	// Enabling the catch-all blocks the whole segment on it.
	if err := all.Enable(); err != nil {
		t.Fatal(err)
	}
	f := m[0xfed93000]
	for _, s := range []iommu.Source{src(0, 0x1f, 2), src(0x80, 1, 1), src(0xff, 31, 7)} {
		if _, code := f.dma(s, 0x1000, false); code != 0x2 {
			t.Errorf("catch-all: DMA from %v: fault %#x", s, code)
		}
	}
	m.check(t)

	// A sub-hierarchy scope the resolver cannot resolve names the unit.
	_, err = NewAll(m, mem, newPagePool(), dmar, Options{})
	if err == nil || !strings.Contains(err.Error(), "vt-d unit at 0xfed91000: device scope 0 (PCI sub-hierarchy)") {
		t.Errorf("NewAll without resolver: %v", err)
	}
	if _, err := NewAll(m, mem, newPagePool(), nil, opts); err == nil {
		t.Error("NewAll(nil) succeeded")
	}
}

func TestInterruptRemapping(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{InterruptRemapping: true})
	b.enable()
	if !b.u.InterruptRemapping() || b.hw.gsts&(gIRE|gCFI) != gIRE|gCFI {
		t.Fatalf("IR off: GSTS %#x", b.hw.gsts)
	}
	// IRTA_REG: the table, xAPIC destinations (EIME 0), 256 entries.
	if b.hw.irtLatched != b.u.irt|7 {
		t.Errorf("IRTA_REG = %#x", b.hw.irtLatched)
	}
	// The host's compatibility-format MSI (and IOAPIC message) passes.
	if code := b.hw.interrupt(lpc, 0xfee0_0000, 0x30); code != 0 {
		t.Errorf("compatibility-format interrupt blocked: %#x", code)
	}
	// A device's remappable-format request (handle 5) finds no entry.
	if code := b.hw.interrupt(sata, 0xfee0_0000|1<<4|5<<5, 0); code != 0x22 {
		t.Errorf("remappable interrupt: fault %#x", code)
	}
	var got []iommu.Fault
	b.u.DrainFaults(func(f iommu.Fault) { got = append(got, f) })
	if len(got) != 1 || got[0].Source != sata || got[0].Address != 5 || got[0].Code != 0x22 || !got[0].Write {
		t.Errorf("faults %+v", got)
	}
	// An entry for it, with source-id verification.
	e := InterruptEntry{Present: true, Vector: 0x41, Destination: 1, SourceValidation: 1, SourceID: sata.RequesterID()}
	if err := b.u.SetInterruptEntry(5, e); err != nil {
		t.Fatal(err)
	}
	b.wantEvents("iec index=5", "wait")
	if code := b.hw.interrupt(sata, 0xfee0_0000|1<<4|5<<5, 0); code != 0 {
		t.Errorf("remapped interrupt: fault %#x", code)
	}
	if code := b.hw.interrupt(lpc, 0xfee0_0000|1<<4|5<<5, 0); code != 0x26 {
		t.Errorf("interrupt from the wrong source: fault %#x", code)
	}
	if err := b.u.SetInterruptEntry(256, e); err == nil {
		t.Error("index 256 accepted")
	}
	if err := b.u.SetInterruptEntry(5, InterruptEntry{Present: true, Destination: 0x100}); err == nil {
		t.Error("x2APIC destination accepted with EIME = 0")
	}
	b.hw.check(t)

	// Without the hardware, or without the option, it stays off.
	for _, tc := range []struct {
		ecap uint64
		opt  bool
	}{{qemuECapNoIR, true}, {qemuECap, false}} {
		b := newBed(t, qemuCap48, tc.ecap, Options{InterruptRemapping: tc.opt})
		b.enable()
		if b.u.InterruptRemapping() || b.hw.gsts&gIRE != 0 || b.u.irt != 0 {
			t.Errorf("ECAP %#x option %v: IR on", tc.ecap, tc.opt)
		}
		if err := b.u.SetInterruptEntry(0, InterruptEntry{}); err == nil {
			t.Error("SetInterruptEntry with IR off succeeded")
		}
	}
}

func TestInterruptEntryLayout(t *testing.T) {
	e := InterruptEntry{Present: true, Level: true, DeliveryMode: 1, Vector: 0x31, Destination: 0x12,
		SourceValidation: 1, SourceQualifier: 2, SourceID: 0x00fa}
	lo, hi, err := e.Encode(false)
	// P (0), TM (4), DLM 001b (7:5), V (23:16), xAPIC DST (47:40); SID
	// (79:64), SQ (81:80), SVT (83:82).
	if err != nil || lo != 1|1<<4|1<<5|0x31<<16|0x12<<40 || hi != 0xfa|2<<16|1<<18 {
		t.Errorf("Encode = %#x %#x %v", lo, hi, err)
	}
	if back, err := DecodeInterruptEntry(lo, hi, false); err != nil || back != e {
		t.Errorf("Decode = %+v %v", back, err)
	}
	e = InterruptEntry{Present: true, Logical: true, Redirection: true, FaultDisable: true, Vector: 0xef, Destination: 0x1234_5678}
	lo, hi, err = e.Encode(true)
	if err != nil || lo != 1|1<<1|1<<2|1<<3|0xef<<16|0x1234_5678<<32 || hi != 0 {
		t.Errorf("Encode(x2APIC) = %#x %#x %v", lo, hi, err)
	}
	if back, err := DecodeInterruptEntry(lo, hi, true); err != nil || back != e {
		t.Errorf("Decode(x2APIC) = %+v %v", back, err)
	}
	for _, bad := range []InterruptEntry{{DeliveryMode: 3}, {DeliveryMode: 6}, {DeliveryMode: 8}, {SourceValidation: 3}, {SourceQualifier: 4}} {
		if _, _, err := bad.Encode(true); err == nil {
			t.Errorf("Encode(%+v) accepted", bad)
		}
	}
	if _, err := DecodeInterruptEntry(1|1<<12, 0, true); err == nil {
		t.Error("reserved bit 12 accepted")
	}
	if _, err := DecodeInterruptEntry(1|1<<32, 0, false); err == nil {
		t.Error("xAPIC reserved destination bits accepted")
	}
	if _, err := DecodeInterruptEntry(1, 1<<20, false); err == nil {
		t.Error("reserved high bits accepted")
	}
}

func TestNoAllocations(t *testing.T) {
	b := newBed(t, qemuCap48, qemuECap, Options{})
	b.enable()
	d := b.domain(3)
	if err := b.u.Attach(sata, d); err != nil {
		t.Fatal(err)
	}
	b.hw.quiet = true
	if n := testing.AllocsPerRun(100, func() {
		if err := b.u.Invalidate(d); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Invalidate allocates %v times", n)
	}
	var count int
	report := func(iommu.Fault) { count++ }
	if n := testing.AllocsPerRun(100, func() {
		b.hw.records[0][1] = frcdF | 5<<frcdFRShift | 0xfa
		if _, err := b.u.DrainFaults(report); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("DrainFaults allocates %v times", n)
	}
	if count == 0 {
		t.Error("no fault reported")
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := b.u.Detach(sata); err != nil {
			t.Fatal(err)
		}
		if err := b.u.Attach(sata, d); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Attach/Detach allocate %v times", n)
	}
}
