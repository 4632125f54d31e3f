package acpi

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Synthetic tables cover what the emulators' tables do not exercise:
// x2APIC entries, type 11h/40h IVHDs, RMRRs, hardware-reduced FADTs, and
// malformed structures.

func u16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// mkTable wraps body in a common header with a valid checksum.
func mkTable(sig string, rev byte, body ...[]byte) []byte {
	b := make([]byte, HeaderLength)
	copy(b, sig)
	b[8] = rev
	copy(b[10:], "TAMA  ")
	copy(b[16:], "TEST    ")
	copy(b[28:], "TEST")
	b = append(b, cat(body...)...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	fixChecksum(b)
	return b
}

func gas(space AddressSpace, width, off uint8, access AccessSize, addr uint64) []byte {
	return cat([]byte{byte(space), width, off, byte(access)}, u64(addr))
}

func TestMADTSynthetic(t *testing.T) {
	raw := mkTable(SigMADT, 5,
		u32(0xfee00000), u32(0),
		[]byte{0, 8, 5, 7}, u32(uint32(LocalAPICOnlineCapable)), // UID 5, APIC ID 7, hot-pluggable
		cat([]byte{9, 16}, u16(0), u32(0x100), u32(1), u32(300)),    // x2APIC ID 256, enabled, UID 300
		cat([]byte{9, 16}, u16(0), u32(0x101), u32(0), u32(301)),    // unusable
		cat([]byte{1, 12, 8, 0}, u32(0xfec01000), u32(24)),          // second IOAPIC
		cat([]byte{3, 8}, u16(0xf), u32(23)),                        // NMI source, level, active low
		cat([]byte{10, 12}, u16(0x5), u32(300), []byte{1, 0, 0, 0}), // x2APIC NMI, LINT1
		cat([]byte{4, 6, 5}, u16(0), []byte{0}),                     // local APIC NMI for UID 5, LINT0
		cat([]byte{5, 12}, u16(0), u64(0x1_fee00000)),               // address override
		[]byte{0x7f, 5, 1, 2, 3},                                    // unknown type: skipped
		cat([]byte{2, 10, 0, 9}, u32(20), u16(0xd)),                 // IRQ9 -> GSI 20
	)
	m, err := ParseMADT(raw)
	if err != nil {
		t.Fatal(err)
	}
	wantCPUs := []LocalAPIC{
		{ProcessorUID: 5, APICID: 7, Flags: LocalAPICOnlineCapable},
		{ProcessorUID: 300, APICID: 0x100, Flags: LocalAPICEnabled, X2APIC: true},
		{ProcessorUID: 301, APICID: 0x101, Flags: 0, X2APIC: true},
	}
	if !reflect.DeepEqual(m.LocalAPICs, wantCPUs) {
		t.Errorf("CPUs = %+v", m.LocalAPICs)
	}
	if !m.LocalAPICs[0].OnlineCapable() || m.LocalAPICs[0].Enabled() || m.LocalAPICs[2].OnlineCapable() || m.LocalAPICs[2].Enabled() || m.EnabledCPUs() != 1 {
		t.Error("CPU flag helpers")
	}
	if m.LocalAPICAddress != 0x1_fee00000 || !m.AddressOverride || m.Flags&MADTPCATCompat != 0 {
		t.Errorf("address %#x override %v flags %#x", m.LocalAPICAddress, m.AddressOverride, m.Flags)
	}
	if !reflect.DeepEqual(m.IOAPICs, []IOAPIC{{ID: 8, Address: 0xfec01000, GSIBase: 24}}) {
		t.Errorf("IOAPICs %+v", m.IOAPICs)
	}
	if len(m.NMISources) != 1 || m.NMISources[0].GSI != 23 || m.NMISources[0].Flags.Polarity() != PolarityActiveLow || m.NMISources[0].Flags.Trigger() != TriggerLevel {
		t.Errorf("NMI sources %+v", m.NMISources)
	}
	wantNMI := []LocalAPICNMI{
		{ProcessorUID: 300, Flags: 5, LINT: 1, X2APIC: true},
		{ProcessorUID: 5, Flags: 0, LINT: 0},
	}
	if !reflect.DeepEqual(m.LocalAPICNMIs, wantNMI) {
		t.Errorf("local NMIs %+v", m.LocalAPICNMIs)
	}
	if o, ok := m.OverrideFor(9); !ok || o.GSI != 20 || o.Flags.Trigger() != TriggerLevel || o.Flags.Polarity() != PolarityActiveHigh {
		t.Errorf("IRQ9 override %+v %v", o, ok)
	}
}

func TestMADTMalformed(t *testing.T) {
	lapic := cat([]byte{0, 8, 0, 0}, u32(1))
	cases := []struct {
		name  string
		entry []byte
		msg   string
	}{
		{"zero length", []byte{1, 0, 0, 0}, "entry type 0x1 at offset 0x34 has length 0"},
		{"past the end", []byte{1, 12, 0, 0, 0, 0}, "entry type 0x1 at offset 0x34 has length 12 (6 bytes left)"},
		{"length 1", []byte{1, 1, 0, 0}, "entry type 0x1 at offset 0x34 has length 1"},
		{"short known entry", []byte{0, 6, 1, 1, 1, 0}, "entry type 0x0 at offset 0x34 has length 6, want 8"},
		{"stray byte", []byte{0}, "1 stray byte(s) at offset 0x34"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMADT(mkTable(SigMADT, 5, u32(0xfee00000), u32(1), lapic, c.entry))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want %q", err, c.msg)
			}
			// What came before the damage is kept.
			if m == nil || len(m.LocalAPICs) != 1 {
				t.Fatalf("partial MADT %+v", m)
			}
		})
	}
}

func TestDecoderHeaderChecks(t *testing.T) {
	good := mkTable(SigMCFG, 1, u64(0), cat(u64(0xe0000000), u16(0), []byte{0, 0xff}, u32(0)))
	if _, err := ParseMCFG(good); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseMADT(good); !errors.Is(err, ErrSignature) {
		t.Errorf("MCFG bytes as MADT: %v", err)
	}
	if _, err := ParseMCFG(good[:50]); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut MCFG: %v", err)
	}
	if _, err := ParseMCFG(good[:20]); !errors.Is(err, ErrTruncated) {
		t.Errorf("header only: %v", err)
	}
	// Bytes past the length field are ignored.
	long := append(append([]byte(nil), good...), 0xff, 0xff, 0xff)
	if m, err := ParseMCFG(long); err != nil || len(m.Allocations) != 1 {
		t.Errorf("trailing bytes: %v %v", m, err)
	}
}

func fadtBytes(length int, set func(b []byte)) []byte {
	b := make([]byte, length)
	copy(b, SigFADT)
	binary.LittleEndian.PutUint32(b[4:], uint32(length))
	b[8] = 6
	set(b)
	fixChecksum(b)
	return b
}

func TestFADTModern(t *testing.T) {
	le := binary.LittleEndian
	raw := fadtBytes(FADTLength, func(b []byte) {
		le.PutUint32(b[fadtOffDSDT:], 0x1000)
		le.PutUint64(b[fadtOffXDSDT:], 0x1_0000_2000)
		le.PutUint32(b[fadtOffFirmwareCtrl:], 0x3000)
		le.PutUint64(b[fadtOffXFirmwareCtrl:], 0x1_0000_3000)
		le.PutUint32(b[fadtOffPMTmrBlk:], 0x408)
		b[fadtOffPMTmrLen] = 4
		copy(b[fadtOffXPMTmrBlk:], gas(SpaceSystemMemory, 32, 0, AccessDword, 0xfe000008))
		le.PutUint32(b[fadtOffPM1aCntBlk:], 0x404)
		b[fadtOffPM1CntLen] = 2
		le.PutUint32(b[fadtOffFlags:], uint32(FADTTimerValExt|FADTResetRegSupported))
		le.PutUint16(b[fadtOffBootArch:], uint16(Boot8042|BootNoVGA|BootNoCMOSRTC))
		copy(b[fadtOffResetReg:], gas(SpaceSystemIO, 8, 0, AccessByte, 0xcf9))
		b[fadtOffResetValue] = 6
		b[fadtOffMinorVersion] = 0x25 // errata 2, minor 5
		le.PutUint64(b[fadtOffHypervisorID:], 0x1234)
		copy(b[fadtOffSleepControl:], gas(SpaceSystemMemory, 8, 0, AccessByte, 0xfe000100))
	})
	f, err := ParseFADT(raw)
	if err != nil {
		t.Fatal(err)
	}
	if f.DSDTAddress() != 0x1_0000_2000 || f.FACSAddress() != 0x1_0000_3000 || f.DSDT != 0x1000 || f.FirmwareCtrl != 0x3000 {
		t.Errorf("DSDT %#x FACS %#x", f.DSDTAddress(), f.FACSAddress())
	}
	// X_PM_TMR_BLK supersedes PM_TMR_BLK.
	pm, ok := f.PMTimer()
	if !ok || pm != (GenericAddress{SpaceSystemMemory, 32, 0, AccessDword, 0xfe000008}) || !f.PMTimer32Bit() {
		t.Errorf("PM timer %v %v", pm, ok)
	}
	// Without an X_ block the legacy port is used, as SystemIO.
	if g := f.PM1aControl(); g != (GenericAddress{Space: SpaceSystemIO, BitWidth: 16, Address: 0x404}) {
		t.Errorf("PM1a control %v", g)
	}
	if r, v, ok := f.Reset(); !ok || r.Address != 0xcf9 || v != 6 {
		t.Errorf("reset %v %d %v", r, v, ok)
	}
	if got := f.BootArch.String(); got != "8042,no-VGA,no-CMOS-RTC" {
		t.Errorf("boot arch %q", got)
	}
	if f.MinorVersion != 5 || f.HypervisorVendor != 0x1234 || f.SleepControl.Address != 0xfe000100 || f.Revision != 6 {
		t.Errorf("minor %d hypervisor %#x sleep %v", f.MinorVersion, f.HypervisorVendor, f.SleepControl)
	}

	// A hardware-reduced platform has no PM timer, whatever the fields say.
	hw := fadtBytes(FADTLength, func(b []byte) {
		le.PutUint32(b[fadtOffPMTmrBlk:], 0x408)
		le.PutUint32(b[fadtOffFlags:], uint32(FADTHardwareReduced))
	})
	f, err = ParseFADT(hw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.PMTimer(); ok || !f.HardwareReduced() {
		t.Error("PM timer on a hardware-reduced platform")
	}
	if _, _, ok := f.Reset(); ok {
		t.Error("reset without RESET_REG_SUP")
	}
}

func TestFADTShort(t *testing.T) {
	raw := fadtBytes(100, func([]byte) {})
	if f, err := ParseFADT(raw); f != nil || !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseFADT(100 bytes) = %v, %v", f, err)
	}
	// An ACPI 1.0b-sized FADT (132 bytes) keeps IAPC_BOOT_ARCH reserved.
	f, err := ParseFADT(fadtBytes(fadtV2Length, func(b []byte) { b[fadtOffBootArch] = 0xff }))
	if err != nil || f.BootArch != 0 || f.XDSDT != 0 {
		t.Fatalf("132-byte FADT: %+v %v", f, err)
	}
}

func TestHPETWrongSpace(t *testing.T) {
	raw := mkTable(SigHPET, 1, u32(0x8086a201), gas(SpaceSystemIO, 0, 0, 0, 0x1000), []byte{0}, u16(0x80), []byte{0})
	h, err := ParseHPET(raw)
	if !errors.Is(err, ErrMalformed) || h == nil || h.MinimumTick != 0x80 {
		t.Fatalf("ParseHPET = %+v, %v", h, err)
	}
}

func TestMCFG(t *testing.T) {
	alloc := func(base uint64, seg uint16, start, end uint8) []byte {
		return cat(u64(base), u16(seg), []byte{start, end}, u32(0))
	}
	m, err := ParseMCFG(mkTable(SigMCFG, 1, u64(0), alloc(0xe0000000, 0, 0, 0x3f), alloc(0x3_0000_0000, 1, 0x40, 0x7f)))
	if err != nil {
		t.Fatal(err)
	}
	want := []MCFGAllocation{{0xe0000000, 0, 0, 0x3f}, {0x3_0000_0000, 1, 0x40, 0x7f}}
	if !reflect.DeepEqual(m.Allocations, want) {
		t.Fatalf("allocations %+v", m.Allocations)
	}
	// Bus numbers index from the segment's bus 0, even when the range
	// starts higher.
	if a, ok := m.Allocations[1].ConfigAddress(0x41, 2, 3, 0x10); !ok || a != 0x3_0000_0000+0x41<<20+2<<15+3<<12+0x10 {
		t.Errorf("ConfigAddress = %#x %v", a, ok)
	}
	for _, c := range [][4]int{{0x3f, 0, 0, 0}, {0x80, 0, 0, 0}, {0x41, 32, 0, 0}, {0x41, 0, 8, 0}, {0x41, 0, 0, 0x1000}} {
		if _, ok := m.Allocations[1].ConfigAddress(uint8(c[0]), uint8(c[1]), uint8(c[2]), uint16(c[3])); ok {
			t.Errorf("ConfigAddress%v accepted", c)
		}
	}
	if _, err := ParseMCFG(mkTable(SigMCFG, 1, u64(0), alloc(0, 0, 0, 0), []byte{1, 2, 3})); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing bytes: %v", err)
	}
	if m, err := ParseMCFG(mkTable(SigMCFG, 1, u64(0), alloc(0, 0, 9, 8))); !errors.Is(err, ErrMalformed) || len(m.Allocations) != 0 {
		t.Errorf("end < start: %v", err)
	}
}

func scope(typ DeviceScopeType, enum, bus uint8, path ...uint8) []byte {
	return cat([]byte{byte(typ), byte(6 + len(path)), 0, 0, enum, bus}, path)
}

func dmarStruct(typ uint16, fixed []byte, scopes ...[]byte) []byte {
	body := cat(fixed, cat(scopes...))
	return cat(u16(typ), u16(uint16(4+len(body))), body)
}

func TestDMARSynthetic(t *testing.T) {
	raw := mkTable(SigDMAR, 1, []byte{45, byte(DMARIntrRemap | DMARX2APICOptOut)}, make([]byte, 10),
		dmarStruct(0, cat([]byte{0, 1}, u16(0), u64(0xfed91000)),
			scope(ScopePCISubHierarchy, 0, 0, 0x1c, 0, 0, 0), // bridge 00:1c.0, then 00.0 behind it
		),
		dmarStruct(0, cat([]byte{byte(DRHDIncludePCIAll), 0}, u16(0), u64(0xfed90000)),
			scope(ScopeIOAPIC, 2, 0xf0, 0x1f, 0),
			scope(ScopeHPET, 0, 0, 0x1f, 7),
		),
		dmarStruct(1, cat(u16(0), u16(0), u64(0x7c000000), u64(0x7c7fffff)),
			scope(ScopePCIEndpoint, 0, 0, 0x14, 0),
		),
		dmarStruct(3, cat(u32(0), u64(0xfed90000), u32(1))),
		dmarStruct(5, cat([]byte{1, 0}, u16(0))), // SATC: skipped
		dmarStruct(2, cat([]byte{0, 0}, u16(0)), scope(ScopePCISubHierarchy, 0, 0, 3, 0)),
	)
	d, err := ParseDMAR(raw)
	if err != nil {
		t.Fatal(err)
	}
	if d.HostAddressWidth != 46 || d.Flags&DMARX2APICOptOut == 0 {
		t.Errorf("width %d flags %#x", d.HostAddressWidth, d.Flags)
	}
	want := []DRHD{
		{Size: 1, RegisterBase: 0xfed91000, Scopes: []DeviceScope{
			{Type: ScopePCISubHierarchy, Path: []PCIPathStep{{0x1c, 0}, {0, 0}}},
		}},
		{Flags: DRHDIncludePCIAll, RegisterBase: 0xfed90000, Scopes: []DeviceScope{
			{Type: ScopeIOAPIC, EnumerationID: 2, StartBus: 0xf0, Path: []PCIPathStep{{0x1f, 0}}},
			{Type: ScopeHPET, Path: []PCIPathStep{{0x1f, 7}}},
		}},
	}
	if !reflect.DeepEqual(d.DRHDs, want) || d.DRHDs[0].IncludePCIAll() || !d.DRHDs[1].IncludePCIAll() {
		t.Errorf("DRHDs %+v", d.DRHDs)
	}
	wantRMRR := []RMRR{{Base: 0x7c000000, Limit: 0x7c7fffff, Scopes: []DeviceScope{{Type: ScopePCIEndpoint, Path: []PCIPathStep{{0x14, 0}}}}}}
	if !reflect.DeepEqual(d.RMRRs, wantRMRR) {
		t.Errorf("RMRRs %+v", d.RMRRs)
	}
	if !reflect.DeepEqual(d.RHSAs, []RHSA{{0xfed90000, 1}}) {
		t.Errorf("RHSAs %+v", d.RHSAs)
	}
	if len(d.ATSRs) != 1 || d.ATSRs[0].Flags != 0 || len(d.ATSRs[0].Scopes) != 1 {
		t.Errorf("ATSRs %+v", d.ATSRs)
	}
}

func TestDMARMalformed(t *testing.T) {
	drhd := dmarStruct(0, cat([]byte{1, 0}, u16(0), u64(0xfed90000)))
	cases := []struct {
		name   string
		bad    []byte
		msg    string
		drhds  int
		scopes int
	}{
		{"structure length 2", cat(u16(0), u16(2)), "structure type 0 at offset 0x40 has length 2", 1, 0},
		{"structure past the end", cat(u16(1), u16(200), make([]byte, 20)), "has length 200", 1, 0},
		{"short DRHD", dmarStruct(0, []byte{0, 0, 0, 0}), "has length 8, want at least 16", 1, 0},
		{"scope odd length", dmarStruct(0, cat([]byte{0, 0}, u16(0), u64(1)), scope(ScopeIOAPIC, 0, 0, 1, 2), []byte{1, 7, 0, 0, 0, 0, 0}), "device scope at 0x8: length 7", 2, 1},
		{"RMRR limit below base", dmarStruct(1, cat(u16(0), u16(0), u64(0x2000), u64(0x1000))), "limit 0x1000 below base 0x2000", 1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := ParseDMAR(mkTable(SigDMAR, 1, []byte{38, 0}, make([]byte, 10), drhd, c.bad))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want %q", err, c.msg)
			}
			if d == nil || len(d.DRHDs) != c.drhds || len(d.DRHDs[len(d.DRHDs)-1].Scopes) != c.scopes {
				t.Fatalf("partial DMAR %+v", d)
			}
		})
	}
}

func ivhd(typ, flags uint8, devID uint16, base uint64, efr uint64, entries ...[]byte) []byte {
	fixed := cat(u16(devID), u16(0x40), u64(base), u16(0), u16(0x0105), u32(0xabcd))
	if typ != IVHDType10 {
		fixed = cat(fixed, u64(efr), u64(0))
	}
	body := cat(fixed, cat(entries...))
	return cat([]byte{typ, flags}, u16(uint16(4+len(body))), body)
}

func TestIVRSSynthetic(t *testing.T) {
	info := uint32(1) | 2 | 2<<5 | 52<<8 | 64<<15
	acpiHID := cat([]byte{0xf0}, u16(0x00a5), []byte{0}, []byte("AMDI0020"), []byte("PNP0501\x00"), []byte{2, 3}, []byte("ID0"))
	raw := mkTable(SigIVRS, 2, u32(info), u64(0),
		ivhd(IVHDType10, 0xb0, 0x0002, 0xfd200000, 0,
			[]byte{IVHDEntryAll, 0, 0, 0},
			[]byte{IVHDEntryStartRange, 0x00, 0x01, 0x11}, []byte{IVHDEntryEndRange, 0xff, 0x01, 0},
			[]byte{IVHDEntryPad, 0, 0, 0},
			cat([]byte{IVHDEntryAliasSelect}, u16(0x0300), []byte{0, 0}, u16(0x0208), []byte{0}),
			cat([]byte{IVHDEntryExtSelect}, u16(0x0400), []byte{0}, u32(0x80000000)),
			cat([]byte{IVHDEntrySpecial, 0, 0, 0xd7, 2}, u16(0x00a0), []byte{SpecialHPET}),
			[]byte{0x05, 1, 2, 3}, // unknown 4-byte type: walked over
		),
		ivhd(IVHDType11, 0x30, 0x0002, 0xfd200000, 0x246577efa2254afa,
			[]byte{IVHDEntryAll, 0, 0, 0},
		),
		cat([]byte{0x50, 0}, u16(8), u32(0)), // unknown block: skipped
		ivhd(IVHDType40, 0x30, 0x0002, 0xfd200000, 0x246577efa2254afa,
			[]byte{IVHDEntrySelect, 0x08, 0, 0},
			acpiHID,
			cat([]byte{0x7e}, make([]byte, 7)), // unknown 8-byte type: walked over
		),
		cat([]byte{IVMDSelect, IVMDUnity | IVMDRead | IVMDWrite}, u16(32), u16(0x00a0), u16(0), u64(0), u64(0xa0000), u64(0x20000)),
	)
	v, err := ParseIVRS(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Info.EFRSupported() || !v.Info.DMAGuardOptIn() || v.Info.GVASize() != 2 || v.Info.PASize() != 52 || v.Info.VASize() != 64 || v.Info.HTATSReserved() {
		t.Errorf("IVinfo %#x", uint32(v.Info))
	}
	if len(v.IVHDs) != 3 {
		t.Fatalf("%d IVHDs", len(v.IVHDs))
	}
	h := v.IVHDs[0]
	if h.Type != IVHDType10 || h.Flags != 0xb0 || h.DeviceID != 2 || h.BaseAddress != 0xfd200000 || h.Info != 0x0105 || h.MSINumber() != 5 || h.Features != 0xabcd || h.EFR != 0 {
		t.Errorf("IVHD 10h %+v", h)
	}
	want := []IVHDEntry{
		{Type: IVHDEntryAll},
		{Type: IVHDEntryStartRange, DeviceID: 0x0100, DTESetting: 0x11},
		{Type: IVHDEntryEndRange, DeviceID: 0x01ff},
		{Type: IVHDEntryPad},
		{Type: IVHDEntryAliasSelect, DeviceID: 0x0300, SourceID: 0x0208},
		{Type: IVHDEntryExtSelect, DeviceID: 0x0400, ExtendedSetting: 0x80000000},
		{Type: IVHDEntrySpecial, DeviceID: 0x00a0, DTESetting: 0xd7, Handle: 2, Variety: SpecialHPET},
		{Type: 0x05, DeviceID: 0x0201, DTESetting: 3},
	}
	if !reflect.DeepEqual(h.Entries, want) {
		t.Errorf("IVHD 10h entries\n got %+v\nwant %+v", h.Entries, want)
	}
	if h := v.IVHDs[1]; h.Type != IVHDType11 || h.EFR != 0x246577efa2254afa || len(h.Entries) != 1 {
		t.Errorf("IVHD 11h %+v", h)
	}
	h = v.IVHDs[2]
	wantHID := IVHDEntry{Type: IVHDEntryACPIHID, DeviceID: 0x00a5, HID: "AMDI0020", CID: "PNP0501", UIDFormat: 2, UID: []byte("ID0")}
	if h.Type != IVHDType40 || len(h.Entries) != 3 || !reflect.DeepEqual(h.Entries[1], wantHID) || h.Entries[2].Type != 0x7e {
		t.Errorf("IVHD 40h %+v", h)
	}
	wantIVMD := []IVMD{{Type: IVMDSelect, Flags: IVMDUnity | IVMDRead | IVMDWrite, DeviceID: 0x00a0, Start: 0xa0000, Length: 0x20000}}
	if !reflect.DeepEqual(v.IVMDs, wantIVMD) {
		t.Errorf("IVMDs %+v", v.IVMDs)
	}
}

func TestIVRSMalformed(t *testing.T) {
	sel := []byte{IVHDEntrySelect, 0x08, 0, 0}
	cases := []struct {
		name    string
		blocks  []byte
		msg     string
		ivhds   int
		entries int
	}{
		{"unknown variable-length entry", ivhd(IVHDType40, 0, 2, 1, 0, sel, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}),
			"device entry at block offset 0x2c: type 0x80 has no known length", 1, 1},
		{"ACPI_HID UID past the block", ivhd(IVHDType40, 0, 2, 1, 0, sel, cat([]byte{0xf0}, make([]byte, 20), []byte{9}, []byte("ab"))),
			"0x2c: type 0xf0 needs 31 bytes, 24 left", 1, 1},
		{"8-byte entry cut", ivhd(IVHDType10, 0, 2, 1, 0, sel, []byte{0x42, 0, 0, 0}),
			"0x1c: type 0x42 needs 8 bytes, 4 left", 1, 1},
		{"stray bytes", ivhd(IVHDType10, 0, 2, 1, 0, sel, []byte{1, 2}), "0x1c: 2 stray byte(s)", 1, 1},
		{"IVHD shorter than its type", cat([]byte{IVHDType11, 0}, u16(24), make([]byte, 20)), "IVHD type 0x11 at offset 0x30 has length 24, want at least 40", 0, 0},
		{"block length 0", cat([]byte{IVHDType10, 0}, u16(0)), "block type 0x10 at offset 0x30 has length 0", 0, 0},
		{"short IVMD", cat([]byte{IVMDAll, 0}, u16(8), u32(0)), "IVMD type 0x20 at offset 0x30 has length 8, want 32", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := ParseIVRS(mkTable(SigIVRS, 2, u32(0), u64(0), c.blocks))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want %q", err, c.msg)
			}
			if v == nil || len(v.IVHDs) != c.ivhds || c.ivhds > 0 && len(v.IVHDs[0].Entries) != c.entries {
				t.Fatalf("partial IVRS %+v", v)
			}
		})
	}
}

func TestGenericAddressString(t *testing.T) {
	cases := []struct {
		g    GenericAddress
		want string
	}{
		{GenericAddress{}, "none"},
		{GenericAddress{Space: SpaceSystemIO, BitWidth: 32, Address: 0x608}, "SystemIO 0x608 bits 32"},
		{GenericAddress{Space: SpaceSystemMemory, BitWidth: 8, BitOffset: 2, AccessSize: AccessQword, Address: 0xfed00000}, "SystemMemory 0xfed00000 bits 8@2 access 8"},
		{GenericAddress{Space: 0x20, Address: 1}, "Reserved(0x20) 0x1"},
		{GenericAddress{Space: 0x85, Address: 1}, "OEM(0x85) 0x1"},
		{GenericAddress{Space: SpaceFunctionalFixedHW, Address: 1}, "FunctionalFixedHW 0x1"},
	}
	for _, c := range cases {
		if got := c.g.String(); got != c.want {
			t.Errorf("%#v: %q, want %q", c.g, got, c.want)
		}
	}
	for a, want := range map[AccessSize]int{AccessUndefined: 0, AccessByte: 1, AccessWord: 2, AccessDword: 4, AccessQword: 8, 5: 0} {
		if got := a.Bytes(); got != want {
			t.Errorf("AccessSize(%d).Bytes() = %d, want %d", a, got, want)
		}
	}
	for typ, want := range map[DeviceScopeType]string{ScopePCIEndpoint: "PCI endpoint", ScopePCISubHierarchy: "PCI sub-hierarchy",
		ScopeIOAPIC: "IOAPIC", ScopeHPET: "HPET", ScopeACPINamespace: "ACPI namespace device", 9: "scope type 9"} {
		if got := typ.String(); got != want {
			t.Errorf("DeviceScopeType(%d) = %q, want %q", typ, got, want)
		}
	}
	g := decodeGAS(gas(SpacePCIConfig, 16, 4, AccessWord, 0x0001_0002_0003_0040))
	if g != (GenericAddress{SpacePCIConfig, 16, 4, AccessWord, 0x0001_0002_0003_0040}) {
		t.Errorf("decodeGAS = %+v", g)
	}
}
