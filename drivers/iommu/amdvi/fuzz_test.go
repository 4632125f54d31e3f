package amdvi

import (
	"encoding/binary"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/iommu"
)

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range [][2]uint64{
		{0x2020_0042_0000_00f8, 0xdead_b000},
		{0x2009_0000_0000_0010, 0x5000},
		{0x1020_0000_0000_ffff, 0x4000},
		{0x3400_0000_0000_0100, 0x1000_2000},
		{0x4620_0007_0000_0200, 0x1000_3000},
		{0x5000_0000_0000_0000, 0x1000_4010},
		{0x6600_0000_0000_0000, 0},
		{0x7000_0000_0000_0400, 0x1000_4030},
		{0x8100_0000_0000_0500, 0x9000},
		{0, 0},
		{^uint64(0), ^uint64(0)},
	} {
		f.Add(s[0], s[1], uint16(0))
	}
	f.Fuzz(func(t *testing.T, lo, hi uint64, seg uint16) {
		fl := decodeEvent("unit", seg, lo, hi)
		code := uint32(lo >> 60)
		if fl.Code != code || fl.Address != hi || fl.Reason == "" || fl.Unit != "unit" || fl.Source.Segment != seg {
			t.Fatalf("decodeEvent(%#x, %#x) = %+v", lo, hi, fl)
		}
		switch code {
		case evIllegalCommand, evCommandHardwareError:
			if fl.Source.RequesterID() != 0 {
				t.Fatalf("command event with a device: %+v", fl)
			}
		default:
			if fl.Source.RequesterID() != uint16(lo) {
				t.Fatalf("DeviceID %#x decoded as %v", uint16(lo), fl.Source)
			}
		}
		qemuWrite := code == evIOPageFault && lo&evTR == 0 && lo&evI != 0 && lo&evNX != 0 && (hi < interruptRangeFirst || hi > interruptRangeLast)
		if fl.Write && !qemuWrite && (lo&evRW == 0 || lo&(evI|evTR) != 0 || code < 1 || code > 4) {
			t.Fatalf("Write from %#x: %+v", lo, fl)
		}
		if qemuWrite && !fl.Write {
			t.Fatalf("QEMU's write page fault %#x, %#x read as a read: %+v", lo, hi, fl)
		}
	})
}

// FuzzDrainFaults runs the drain over arbitrary log contents, ring
// pointers and status: it must stay within the log, report at most a
// ringful plus the overflow, and leave the head pointer valid.
func FuzzDrainFaults(f *testing.F) {
	f.Add(uint64(0), uint64(0x30), uint64(0), []byte{0x20, 0, 0, 0, 0, 0, 0, 0x20})
	f.Add(uint64(0xff0), uint64(0x10), uint64(statusEventOverflow), []byte{1, 2, 3})
	f.Add(uint64(0x2000), uint64(0), uint64(0), []byte{})
	f.Add(uint64(0x10), uint64(0x10), uint64(statusEventOverflow|statusEventLogRun), []byte{0xff})
	f.Fuzz(func(t *testing.T, head, tail, status uint64, log []byte) {
		m := newRAM(ramBase, 2*ringBytes)
		fake := newFakeUnit(t, qemuBase, m, qemuEFR)
		u := &Unit{mmio: fake, mem: m, base: qemuBase, name: "unit", eventLog: ramBase, logSet: true, enabled: true, pollLimit: 16}
		for i := 0; i+8 <= len(log) && i < ringBytes; i += 8 {
			m.Write64(ramBase+uint64(i), binary.LittleEndian.Uint64(log[i:]))
		}
		fake.regs[regControl] = ctrlIommuEn | ctrlEventLogEn
		fake.regs[regEventLogBase] = ramBase | ringLenField
		fake.regs[regEventLogHead], fake.regs[regEventLogTail] = head, tail
		fake.w1c = status & (statusEventOverflow | statusEventLogInt | statusComWaitInt)
		fake.stuckRun = status&statusEventLogRun != 0
		reported := 0
		n, err := u.DrainFaults(func(iommu.Fault) { reported++ })
		if n != reported || n > ringEntries+1 {
			t.Fatalf("DrainFaults = %d (%v), reported %d", n, err, reported)
		}
		h, tl := head&ringPtrMask, tail&ringPtrMask
		if h >= ringBytes || tl >= ringBytes {
			if err == nil || n != 0 {
				t.Fatalf("pointers %#x/%#x beyond the log: %d, %v", head, tail, n, err)
			}
			return
		}
		if got := fake.regs[regEventLogHead]; got != tl {
			t.Fatalf("head left at %#x, want the tail %#x", got, tl)
		}
		records := int((tl - h + ringBytes) % ringBytes / ringEntry)
		want := records
		if status&statusEventOverflow != 0 {
			want++
		}
		if n != want {
			t.Fatalf("%d faults for %d records (status %#x)", n, records, status)
		}
	})
}

// FuzzCoverage compares the IVHD coverage bitmap with a per-ID reading of
// the same device entries, at every ID the entries name and next to them.
func FuzzCoverage(f *testing.F) {
	f.Add(uint16(8), []byte{0, 0, 0, 0, 0, 1, 0x08, 0, 0, 0, 1, 0xf8, 0, 0, 0, 7, 0xa0, 0, 0, 0})
	f.Add(uint16(2), []byte{2, 0, 1, 0, 0, 3, 0xff, 1, 0, 0, 3, 0xff, 0xff, 0, 0})
	f.Add(uint16(0), []byte{5, 0, 3, 0x18, 0, 3, 0xff, 3, 0, 0, 4, 0x08, 2, 0x20, 0})
	f.Add(uint16(0x10), []byte{9, 0, 0, 0, 0})
	types := []uint8{acpi.IVHDEntryPad, acpi.IVHDEntrySelect, acpi.IVHDEntryStartRange, acpi.IVHDEntryEndRange,
		acpi.IVHDEntryAliasSelect, acpi.IVHDEntryAliasStartRange, acpi.IVHDEntryExtSelect, acpi.IVHDEntrySpecial,
		acpi.IVHDEntryACPIHID, acpi.IVHDEntryAll, acpi.IVHDEntryExtStartRange, 0x3f}
	f.Fuzz(func(t *testing.T, self uint16, raw []byte) {
		h := acpi.IVHD{Type: acpi.IVHDType10, DeviceID: self}
		for i := 0; i+5 <= len(raw) && len(h.Entries) < 64; i += 5 {
			h.Entries = append(h.Entries, acpi.IVHDEntry{
				Type:     types[int(raw[i])%len(types)],
				DeviceID: binary.LittleEndian.Uint16(raw[i+1:]),
				SourceID: binary.LittleEndian.Uint16(raw[i+3:]),
			})
		}
		c := buildCoverage(&h)
		probes := []uint16{0, 1, 0xfffe, 0xffff, self, self + 1, self - 1}
		for _, e := range h.Entries {
			probes = append(probes, e.DeviceID-1, e.DeviceID, e.DeviceID+1, e.SourceID)
		}
		for _, id := range probes {
			in, to, aliased := refCoverage(&h, id)
			if got := c.covers(id); got != in {
				t.Fatalf("entries %+v: covers(%#04x) = %v, want %v", h.Entries, id, got, in)
			}
			if gto, gal := c.alias(id); gal != aliased || gto != to {
				t.Fatalf("entries %+v: alias(%#04x) = %#x %v, want %#x %v", h.Entries, id, gto, gal, to, aliased)
			}
		}
	})
}

// refCoverage reads the entries for one ID (#48882 5.2.2.2).
func refCoverage(h *acpi.IVHD, id uint16) (covered bool, alias uint16, aliased bool) {
	var start uint32
	var to uint16
	open, rangeAlias := false, false
	for _, e := range h.Entries {
		switch e.Type {
		case acpi.IVHDEntryAll:
			covered = true
		case acpi.IVHDEntrySelect, acpi.IVHDEntryExtSelect, acpi.IVHDEntrySpecial, acpi.IVHDEntryACPIHID:
			covered = covered || e.DeviceID == id
		case acpi.IVHDEntryAliasSelect:
			if e.DeviceID == id {
				covered, alias, aliased = true, e.SourceID, true
			}
		case acpi.IVHDEntryStartRange, acpi.IVHDEntryExtStartRange:
			start, open, rangeAlias = uint32(e.DeviceID), true, false
		case acpi.IVHDEntryAliasStartRange:
			start, open, rangeAlias, to = uint32(e.DeviceID), true, true, e.SourceID
		case acpi.IVHDEntryEndRange:
			if open && uint32(id) >= start && uint32(id) <= uint32(e.DeviceID) {
				covered = true
				if rangeAlias {
					alias, aliased = to, true
				}
			}
			open = false
		}
	}
	return covered && id != h.DeviceID, alias, aliased
}
