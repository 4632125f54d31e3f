package amdvi

import (
	"strings"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/iommu"
	"tamavisor/ept"
)

// Command encodings, written out bit by bit from #48882 2.4 (opcode in
// bits 63:60 of the first quadword).
func TestCommandLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want command
	}{
		// Store Address bits 51:3 in 51:3, S = bit 0, data in the second quadword.
		{"COMPLETION_WAIT", completionWait(0x000f_1234_5678_9ab8, 0x1122_3344_5566_7788), command{0x100f_1234_5678_9ab9, 0x1122_3344_5566_7788}},
		// DeviceID in bits 15:0.
		{"INVALIDATE_DEVTAB_ENTRY", invalidateDevTabEntry(0xbeef), command{0x2000_0000_0000_beef, 0}},
		// DomainID in 47:32, PASID 0; S = 1, PDE = 1, address all ones below bit 63.
		{"INVALIDATE_IOMMU_PAGES", invalidateDomainPages(0xabcd), command{0x3000_abcd_0000_0000, 0x7fff_ffff_ffff_f003}},
		{"INVALIDATE_IOMMU_ALL", invalidateAll(), command{0x8000_0000_0000_0000, 0}},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}

	// The same commands as QEMU decodes them (hw/i386/amd_iommu.c:
	// amdvi_completion_wait, amdvi_inval_devtab_entry,
	// amdvi_inval_pages), reserved bits included: QEMU logs an
	// ILLEGAL_COMMAND_ERROR for any set.
	bits := func(v uint64, start, n uint) uint64 { return v >> start & (1<<n - 1) }
	cw := completionWait(0x0000_0001_2345_6780, 42)
	if bits(cw[0], 3, 49)<<3 != 0x1_2345_6780 || cw[1] != 42 || bits(cw[0], 0, 1) != 1 || bits(cw[0], 1, 1) != 0 || bits(cw[0], 52, 8) != 0 {
		t.Errorf("QEMU reads COMPLETION_WAIT %#x differently", cw)
	}
	dt := invalidateDevTabEntry(0x00f8)
	if bits(dt[0], 0, 16) != 0xf8 || bits(dt[0], 16, 44) != 0 || dt[1] != 0 {
		t.Errorf("QEMU reads INVALIDATE_DEVTAB_ENTRY %#x differently", dt)
	}
	ip := invalidateDomainPages(7)
	if bits(ip[0], 32, 16) != 7 || bits(ip[0], 20, 12) != 0 || bits(ip[0], 48, 12) != 0 || bits(ip[1], 3, 9) != 0 || bits(ip[1], 0, 3) != 3 {
		t.Errorf("QEMU reads INVALIDATE_IOMMU_PAGES %#x differently", ip)
	}
	// QEMU's amdvi_decode_invalidation_size: S = 1 and the first zero
	// address bit at 51 or above means the whole address space.
	fz := 12
	for fz < 64 && (ip[1]|0xfff)>>fz&1 == 1 {
		fz++
	}
	if fz < 51 {
		t.Errorf("INVALIDATE_IOMMU_PAGES address %#x covers 2^%d bytes only", ip[1], fz+1)
	}
}

// Device table entry quadword 0, from #48882 2.2.2.1: V bit 0, TV bit 1,
// Mode 11:9, root 51:12, IR 61, IW 62; quadword 1: DomainID 79:64.
func TestDTELayout(t *testing.T) {
	if got, want := translatingDTE(0x000a_bcde_f000), uint64(0x6000_000a_bcde_f803); got != want {
		t.Errorf("translating DTE = %#x, want %#x", got, want)
	}
	u := &Unit{emptyRoot: 0x1234_5000}
	if got, want := u.blockingDTE(), uint64(0x0000_0000_1234_5803); got != want {
		t.Errorf("blocking DTE = %#x, want %#x", got, want)
	}
	// QEMU's reserved-bit masks for quadword 0 (older: 0x80300000000000fc,
	// newer: bits 6:2 and 63); an entry using them is an
	// ILLEGAL_DEV_TABLE_ENTRY there.
	for _, w0 := range []uint64{translatingDTE(0x000f_ffff_ffff_f000), u.blockingDTE()} {
		if w0&0x8030_0000_0000_00fc != 0 {
			t.Errorf("DTE %#x sets bits QEMU reserves", w0)
		}
	}
	if dteBytes != 32 || devTabBytes != 2<<20 || devTabSizeField != 0x1ff {
		t.Errorf("device table geometry: %d-byte entries, %d bytes, size field %#x", dteBytes, devTabBytes, devTabSizeField)
	}
	// Base registers: 4 KiB rings are Len = 1000b in bits 59:56; head
	// and tail offsets in bits 18:4.
	if ringLenField != 0x0800_0000_0000_0000 || ringPtrMask != 0x7fff0 || ringEntries != 256 {
		t.Errorf("ring fields %#x %#x %d", ringLenField, ringPtrMask, ringEntries)
	}
}

// Every store the driver makes to a device table entry leaves it either
// blocking or in its state before or after the operation: a walk between
// two stores never sees a mix (a new DomainID with the old tables).
func TestDTEStoresNeverMix(t *testing.T) {
	e := qemuEnv(t)
	e.enable()
	a, b := e.domain(1, false), e.domain(2, false)
	entry := e.unit.dteAddr(0xf8)
	block := e.unit.blockingDTE()
	rec := &recordingMem{ram: e.ram, lo: entry, hi: entry + dteBytes}
	e.unit.mem = rec
	state := func() [2]uint64 { return [2]uint64{e.ram.Read64(entry), e.ram.Read64(entry + 8)} }
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"attach to 1", func() error { return e.unit.Attach(src(0, 0x1f, 0), a) }},
		{"attach to 2", func() error { return e.unit.Attach(src(0, 0x1f, 0), b) }},
		{"detach", func() error { return e.unit.Detach(src(0, 0x1f, 0)) }},
	} {
		before := state()
		rec.states = nil
		rec.read = state
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		after := state()
		if len(rec.states) == 0 {
			t.Errorf("%s: no stores", step.name)
		}
		for i, s := range rec.states {
			if s[0] != block && s != before && s != after {
				t.Errorf("%s: after store %d the entry is %#x: neither blocking nor the old %#x or new %#x", step.name, i, s, before, after)
			}
		}
	}
}

type recordingMem struct {
	ram    *ram
	lo, hi uint64
	read   func() [2]uint64
	states [][2]uint64
}

func (r *recordingMem) Read64(a uint64) uint64 { return r.ram.Read64(a) }
func (r *recordingMem) Write64(a uint64, v uint64) {
	r.ram.Write64(a, v)
	if a >= r.lo && a < r.hi {
		r.states = append(r.states, r.read())
	}
}

var _ ept.Memory = (*recordingMem)(nil)

// Event records written out from the event figures of #48882 2.5:
// DeviceID 15:0, DomainID 47:32, GN 48, I 51, PR 52, RW 53, PE 54, RZ 55,
// TR 56, hardware error type 58:57, code 63:60; address in the second
// quadword.
func TestDecodeEvent(t *testing.T) {
	for _, c := range []struct {
		name   string
		lo, hi uint64
		src    iommu.Source
		write  bool
		reason string
	}{
		{"page fault, write, not present", 0x2020_0042_0000_00f8, 0xdead_b000, src(0, 0x1f, 0), true, "not present"},
		{"page fault, read, permission", 0x2050_0042_0000_0310, 0x1000, src(3, 2, 0), false, "not permitted"},
		{"page fault, reserved bit", 0x2090_0000_0000_0001, 0x1000, src(0, 0, 1), false, "reserved bit"},
		{"page fault, ATS", 0x2100_0000_0000_0008, 0x1000, src(0, 1, 0), false, "ATS"},
		{"page fault, interrupt", 0x2028_0000_0000_00a0, 0xfee0_0000, src(0, 0x14, 0), false, "interrupt request"},
		// QEMU sets I (and its permission bits in 49:48) on every page
		// fault: outside the interrupt range that is a DMA access.
		{"QEMU page fault", 0x2009_0000_0000_0010, 0x5000, src(0, 2, 0), false, "not present"},
		{"QEMU page fault, write", 0x200a_0000_0000_0010, 0, src(0, 2, 0), true, "not present"},
		{"QEMU-style write bits on an interrupt request", 0x200a_0000_0000_0010, 0xfee0_1000, src(0, 2, 0), false, "interrupt request"},
		{"NX on an architectural page fault", 0x2002_0000_0000_0010, 0x5000, src(0, 2, 0), false, "not present"},
		{"illegal DTE, write", 0x1020_0000_0000_ffff, 0x4000, src(0xff, 0x1f, 7), true, "illegal device table entry"},
		{"device table error, target abort", 0x3400_0000_0000_0100, 0x1000_2000, src(1, 0, 0), false, "device table read failed: target abort"},
		{"page table error, data error", 0x4620_0007_0000_0200, 0x1000_3000, src(2, 0, 0), true, "I/O page table read failed: data error"},
		{"illegal command", 0x5000_0000_0000_0000, 0x1000_4010, iommu.Source{}, false, "illegal command"},
		{"command hardware error", 0x6200_0000_0000_0000, 0x1000_4020, iommu.Source{}, false, "command buffer read failed: master abort"},
		{"IOTLB invalidation timeout", 0x7000_0000_0000_0400, 0x1000_4030, src(4, 0, 0), false, "IOTLB invalidation timed out"},
		{"invalid device request", 0x8100_0000_0000_0500, 0x9000, src(5, 0, 0), false, "invalid device request"},
		{"unknown", 0xf000_0000_0000_0600, 0, src(6, 0, 0), false, "unknown event"},
	} {
		f := decodeEvent("u", 0, c.lo, c.hi)
		if f.Unit != "u" || f.Source != c.src || f.Address != c.hi || f.Write != c.write || f.Code != uint32(c.lo>>60) || !strings.Contains(f.Reason, c.reason) {
			t.Errorf("%s: %+v, want source %v address %#x write %v reason %q code %#x", c.name, f, c.src, c.hi, c.write, c.reason, c.lo>>60)
		}
	}
	if f := decodeEvent("u", 3, 0x2000_0000_0000_0001, 0); f.Source.Segment != 3 {
		t.Errorf("segment not carried: %+v", f)
	}
	if got := testing.AllocsPerRun(100, func() { decodeEvent("u", 0, 0x2050_0042_0000_0310, 0x1000) }); got != 0 {
		t.Errorf("decodeEvent allocates %v times", got)
	}
}

// The QEMU IVRS as the driver reads it: the coverage New builds from it
// matches the device entries the acpi package decoded.
func TestQEMUIVHDFacts(t *testing.T) {
	v := qemuIVRS(t)
	h := v.IVHDs[0]
	if h.Type != acpi.IVHDType10 || h.BaseAddress != qemuBase || h.DeviceID != 0x0008 || h.Flags != 0xd1 || v.Info.PASize() != 40 || v.Info.EFRSupported() {
		t.Fatalf("QEMU IVHD %+v, IVinfo %#x", h, uint32(v.Info))
	}
	c := buildCoverage(&h)
	n := 0
	for _, w := range c.ids {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	// 00:00.0, 00:01.0 (the unit), 00:1f.0, 00:1f.2, 00:1f.3, 00:14.0.
	if n != 6 || c.covers(0x0008) || len(c.aliases) != 0 {
		t.Errorf("coverage: %d IDs, self covered %v, aliases %v", n, c.covers(0x0008), c.aliases)
	}
}
