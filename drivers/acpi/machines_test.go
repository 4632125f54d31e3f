package acpi

import (
	"bytes"
	"reflect"
	"testing"
)

// The facts asserted here were read from the machines' own tables (see
// testdata/*/manifest.txt for how each dump was made) and cross-checked
// with the emulators' sources where noted.

// parseMachine runs the boot path end to end on a machine's memory:
// FindRSDP, then Parse, and requires a clean parse.
func parseMachine(t *testing.T, name string, legacyRSDP bool) (*machine, *Tables) {
	t.Helper()
	m := loadMachine(t, name)
	mem := m.memory()
	addr := m.rsdpAddr
	if legacyRSDP {
		found, err := FindRSDP(mem)
		if err != nil {
			t.Fatalf("FindRSDP: %v", err)
		}
		if found != m.rsdpAddr {
			t.Fatalf("FindRSDP = %#x, the firmware put it at %#x", found, m.rsdpAddr)
		}
	}
	tb, err := Parse(mem, addr)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(tb.Problems) != 0 {
		t.Fatalf("problems on a healthy machine: %v", tb.Problems)
	}
	// Every table the dump holds is found, at its address, byte for byte.
	for _, want := range m.tables {
		got := tb.Find(want.sig)
		if want.sig == SigRSDT && tb.Root.Signature == SigXSDT {
			continue // not walked when the XSDT is good
		}
		if want.sig == tb.Root.Signature {
			got = tb.Root
		}
		if got == nil || got.Address != want.addr || !bytes.Equal(got.Raw, want.raw) {
			t.Errorf("%s at %#x: not found as dumped (got %+v)", want.sig, want.addr, got)
		}
	}
	return m, tb
}

func wantQEMUMADT(t *testing.T, md *MADT) {
	t.Helper()
	if md == nil {
		t.Fatal("no MADT")
	}
	if md.LocalAPICAddress != 0xfee00000 || md.AddressOverride || md.Flags&MADTPCATCompat == 0 {
		t.Errorf("MADT header: LAPIC %#x override %v flags %#x", md.LocalAPICAddress, md.AddressOverride, md.Flags)
	}
	// -smp 2: two enabled xAPIC processors, UIDs and APIC IDs 0 and 1.
	want := []LocalAPIC{
		{ProcessorUID: 0, APICID: 0, Flags: LocalAPICEnabled},
		{ProcessorUID: 1, APICID: 1, Flags: LocalAPICEnabled},
	}
	if !reflect.DeepEqual(md.LocalAPICs, want) || md.EnabledCPUs() != 2 {
		t.Errorf("local APICs = %+v", md.LocalAPICs)
	}
	for _, l := range md.LocalAPICs {
		if !l.Enabled() || l.OnlineCapable() {
			t.Errorf("%+v: Enabled %v OnlineCapable %v", l, l.Enabled(), l.OnlineCapable())
		}
	}
	if !reflect.DeepEqual(md.IOAPICs, []IOAPIC{{ID: 0, Address: 0xfec00000, GSIBase: 0}}) {
		t.Errorf("IOAPICs = %+v", md.IOAPICs)
	}
	// IRQ0 (PIT) on GSI 2; the PCI link IRQs 5, 9, 10, 11 level, active high.
	o, ok := md.OverrideFor(0)
	if !ok || o.GSI != 2 || o.Flags.Trigger() != TriggerConforms || o.Flags.Polarity() != PolarityConforms {
		t.Errorf("IRQ0 override = %+v %v", o, ok)
	}
	for _, irq := range []uint8{5, 9, 10, 11} {
		o, ok := md.OverrideFor(irq)
		if !ok || o.GSI != uint32(irq) || o.Flags.Trigger() != TriggerLevel || o.Flags.Polarity() != PolarityActiveHigh {
			t.Errorf("IRQ%d override = %+v %v", irq, o, ok)
		}
	}
	if _, ok := md.OverrideFor(4); ok {
		t.Error("IRQ4 has an override; QEMU gives none")
	}
	if len(md.Overrides) != 5 {
		t.Errorf("%d overrides, want 5", len(md.Overrides))
	}
	if !reflect.DeepEqual(md.LocalAPICNMIs, []LocalAPICNMI{{ProcessorUID: AllProcessors, LINT: 1}}) {
		t.Errorf("local APIC NMIs = %+v", md.LocalAPICNMIs)
	}
}

func wantQEMUHPET(t *testing.T, hs []*HPET) {
	t.Helper()
	if len(hs) != 1 {
		t.Fatalf("%d HPETs", len(hs))
	}
	h := hs[0]
	if h.Base != (GenericAddress{Space: SpaceSystemMemory, Address: 0xfed00000}) || h.Number != 0 {
		t.Errorf("HPET = %+v", h)
	}
	// QEMU's HPET: Intel vendor ID, 3 comparators, 64-bit counter,
	// legacy replacement capable (block ID 0x8086a201).
	if h.VendorID() != 0x8086 || h.Comparators() != 3 || !h.Counter64() || !h.LegacyReplacement() || h.HardwareRevision() != 1 {
		t.Errorf("HPET block ID %#x: vendor %#x comparators %d counter64 %v legacy %v rev %d",
			h.EventTimerBlockID, h.VendorID(), h.Comparators(), h.Counter64(), h.LegacyReplacement(), h.HardwareRevision())
	}
}

// wantQ35FADT checks the ICH9 power-management block SeaBIOS/QEMU set up
// at 0x600 (ACPI PM base), with the FADT of ACPI 2.0 layout (revision 3).
func wantQ35FADT(t *testing.T, f *FADT, dsdt, facs uint64) {
	t.Helper()
	if f == nil {
		t.Fatal("no FADT")
	}
	if f.Revision != 3 {
		t.Errorf("FADT revision %d", f.Revision)
	}
	pm, ok := f.PMTimer()
	if !ok || pm.Space != SpaceSystemIO || pm.Address != 0x608 {
		t.Errorf("PM timer = %v %v, want SystemIO 0x608", pm, ok)
	}
	// q35 leaves TMR_VAL_EXT clear: a 24-bit counter (X_PM_TMR_BLK still
	// says 32 bits wide: the register is, its count is not).
	if f.PMTimer32Bit() || f.PMTimerBlock != 0x608 || f.XPMTimerBlock.BitWidth != 32 {
		t.Errorf("PM timer: 32-bit %v, port %#x, X width %d", f.PMTimer32Bit(), f.PMTimerBlock, f.XPMTimerBlock.BitWidth)
	}
	if f.SCIInterrupt != 9 || f.SMICommand != 0xb2 || f.ACPIEnable != 2 || f.ACPIDisable != 3 {
		t.Errorf("SCI %d SMI_CMD %#x enable %#x disable %#x", f.SCIInterrupt, f.SMICommand, f.ACPIEnable, f.ACPIDisable)
	}
	if g := f.PM1aControl(); g.Space != SpaceSystemIO || g.Address != 0x604 || g.BitWidth != 16 {
		t.Errorf("PM1a control = %v", g)
	}
	if g := f.PM1bControl(); g.Present() {
		t.Errorf("PM1b control = %v, want none", g)
	}
	if g := f.PM1aEvent(); g.Address != 0x600 || g.BitWidth != 32 {
		t.Errorf("PM1a event = %v", g)
	}
	r, v, ok := f.Reset()
	if !ok || r.Space != SpaceSystemIO || r.Address != 0xcf9 || v != 0x0f {
		t.Errorf("reset = %v value %#x supported %v, want SystemIO 0xcf9 value 0xf", r, v, ok)
	}
	if f.Century != 0x32 {
		t.Errorf("century register %#x, want 0x32", f.Century)
	}
	if f.BootArch != Boot8042 {
		t.Errorf("IAPC_BOOT_ARCH = %v, want 8042 only", f.BootArch)
	}
	if f.HardwareReduced() {
		t.Error("hardware-reduced")
	}
	if f.DSDTAddress() != dsdt || f.FACSAddress() != facs {
		t.Errorf("DSDT %#x FACS %#x, want %#x %#x", f.DSDTAddress(), f.FACSAddress(), dsdt, facs)
	}
}

func wantQ35MCFG(t *testing.T, mc *MCFG) {
	t.Helper()
	want := []MCFGAllocation{{Base: 0xb0000000, Segment: 0, StartBus: 0, EndBus: 255}}
	if mc == nil || !reflect.DeepEqual(mc.Allocations, want) {
		t.Fatalf("MCFG = %+v", mc)
	}
}

func TestQEMUQ35(t *testing.T) {
	m, tb := parseMachine(t, "qemu-q35", true)
	if tb.RSDP.Revision != 0 || tb.RSDP.OEMID != "BOCHS" || tb.Root.Signature != SigRSDT {
		t.Errorf("RSDP %+v root %s", tb.RSDP, tb.Root.Signature)
	}
	if got := tb.Summary(); got != "FACP APIC HPET MCFG WAET" {
		t.Errorf("Summary = %q", got)
	}
	wantQEMUMADT(t, tb.MADT)
	wantQEMUHPET(t, tb.HPETs)
	wantQ35MCFG(t, tb.MCFG)
	wantQ35FADT(t, tb.FADT, m.table(t, SigDSDT).addr, m.table(t, SigFACS).addr)
	if tb.DMAR != nil || tb.IVRS != nil {
		t.Error("an IOMMU table on a machine without IOMMU")
	}
	// Tables not decoded are there, raw, for whoever needs them.
	if d := tb.Find(SigDSDT); d == nil || d.FromRoot || d.Address != tb.FADT.DSDTAddress() || len(d.Body()) == 0 || d.Length != uint32(len(d.Raw)) {
		t.Errorf("DSDT = %+v", d)
	}
	if w := tb.Find("WAET"); w == nil || w.Length != 40 || !w.FromRoot || w.OEMID != "BOCHS" || w.OEMTableID != "BXPC" || w.CreatorID != "BXPC" {
		t.Errorf("WAET = %+v", w)
	}
	if f := tb.Find(SigFACS); f == nil || f.Length != 64 || len(f.Raw) != 64 {
		t.Errorf("FACS = %+v", f)
	}
}

func TestQEMUQ35IntelIOMMU(t *testing.T) {
	_, tb := parseMachine(t, "qemu-q35-intel-iommu", true)
	if got := tb.Summary(); got != "FACP APIC HPET MCFG DMAR WAET" {
		t.Errorf("Summary = %q", got)
	}
	d := tb.DMAR
	if d == nil {
		t.Fatal("no DMAR")
	}
	// QEMU's VT-d: 39-bit host address width; intremap=on sets INTR_REMAP.
	if d.HostAddressWidth != 39 || d.Flags != DMARIntrRemap {
		t.Errorf("DMAR width %d flags %#x", d.HostAddressWidth, d.Flags)
	}
	if len(d.DRHDs) != 1 {
		t.Fatalf("%d DRHDs", len(d.DRHDs))
	}
	u := d.DRHDs[0]
	if u.RegisterBase != 0xfed90000 || u.Segment != 0 {
		t.Errorf("DRHD base %#x segment %d", u.RegisterBase, u.Segment)
	}
	// QEMU 7.2 does not set INCLUDE_PCI_ALL: it lists the IOAPIC (on its
	// pseudo bus 0xff) and every device on the root bus.
	if u.IncludePCIAll() {
		t.Error("DRHD has INCLUDE_PCI_ALL; QEMU 7.2 lists its devices instead")
	}
	wantScopes := []DeviceScope{
		{Type: ScopeIOAPIC, EnumerationID: 0, StartBus: 0xff, Path: []PCIPathStep{{0, 0}}},
		{Type: ScopePCIEndpoint, StartBus: 0, Path: []PCIPathStep{{0, 0}}},
		{Type: ScopePCIEndpoint, StartBus: 0, Path: []PCIPathStep{{0x1f, 0}}},
		{Type: ScopePCIEndpoint, StartBus: 0, Path: []PCIPathStep{{0x1f, 2}}},
		{Type: ScopePCIEndpoint, StartBus: 0, Path: []PCIPathStep{{0x1f, 3}}},
	}
	if !reflect.DeepEqual(u.Scopes, wantScopes) {
		t.Errorf("DRHD scopes = %+v", u.Scopes)
	}
	// The IOAPIC scope's enumeration ID is the MADT's IOAPIC ID.
	if tb.MADT == nil || u.Scopes[0].EnumerationID != tb.MADT.IOAPICs[0].ID {
		t.Error("DMAR IOAPIC scope does not match the MADT's IOAPIC")
	}
	// device-iotlb=on adds an ATSR covering all root ports.
	if len(d.ATSRs) != 1 || d.ATSRs[0].Flags&ATSRAllPorts == 0 || d.ATSRs[0].Segment != 0 || len(d.ATSRs[0].Scopes) != 0 {
		t.Errorf("ATSRs = %+v", d.ATSRs)
	}
	if len(d.RMRRs) != 0 || len(d.RHSAs) != 0 {
		t.Errorf("RMRRs %+v RHSAs %+v", d.RMRRs, d.RHSAs)
	}
	wantQEMUMADT(t, tb.MADT)
	wantQ35MCFG(t, tb.MCFG)
}

func TestQEMUQ35AMDIOMMU(t *testing.T) {
	_, tb := parseMachine(t, "qemu-q35-amd-iommu", true)
	if got := tb.Summary(); got != "FACP APIC HPET MCFG IVRS WAET" {
		t.Errorf("Summary = %q", got)
	}
	v := tb.IVRS
	if v == nil {
		t.Fatal("no IVRS")
	}
	// QEMU 7.2: 40-bit physical address size, no EFR image, one type
	// 10h IVHD for the IOMMU at 00:01.0 (capability at 0x40), MMIO at
	// 0xfed80000.
	if v.Info.PASize() != 40 || v.Info.VASize() != 0 || v.Info.EFRSupported() {
		t.Errorf("IVinfo %#x: PA %d VA %d EFR %v", uint32(v.Info), v.Info.PASize(), v.Info.VASize(), v.Info.EFRSupported())
	}
	if len(v.IVHDs) != 1 || len(v.IVMDs) != 0 {
		t.Fatalf("IVHDs %d IVMDs %d", len(v.IVHDs), len(v.IVMDs))
	}
	h := v.IVHDs[0]
	if h.Type != IVHDType10 || h.DeviceID != 0x0008 || h.CapabilityOffset != 0x40 || h.BaseAddress != 0xfed80000 || h.Segment != 0 {
		t.Errorf("IVHD = %+v", h)
	}
	// The devices on the root bus, then the IOAPIC as a special device
	// with requester ID 00:14.0 (QEMU's IOAPIC_SB_DEVID) and handle 0,
	// the MADT's IOAPIC ID.
	want := []IVHDEntry{
		{Type: IVHDEntrySelect, DeviceID: 0x0000},
		{Type: IVHDEntrySelect, DeviceID: 0x0008},
		{Type: IVHDEntrySelect, DeviceID: 0x00f8},
		{Type: IVHDEntrySelect, DeviceID: 0x00fa},
		{Type: IVHDEntrySelect, DeviceID: 0x00fb},
		{Type: IVHDEntrySpecial, DeviceID: 0x00a0, Handle: 0, Variety: SpecialIOAPIC},
	}
	if !reflect.DeepEqual(h.Entries, want) {
		t.Errorf("IVHD entries = %+v", h.Entries)
	}
	wantQEMUMADT(t, tb.MADT)
}

func TestQEMUPC(t *testing.T) {
	m, tb := parseMachine(t, "qemu-pc", true)
	if got := tb.Summary(); got != "FACP APIC HPET WAET" {
		t.Errorf("Summary = %q", got)
	}
	if tb.RSDP.Revision != 0 || tb.Root.Signature != SigRSDT || tb.MCFG != nil {
		t.Errorf("RSDP rev %d root %s MCFG %v", tb.RSDP.Revision, tb.Root.Signature, tb.MCFG)
	}
	wantQEMUMADT(t, tb.MADT)
	wantQEMUHPET(t, tb.HPETs)
	f := tb.FADT
	// i440FX/PIIX4: an ACPI 1.0 FADT (116 bytes), PM base 0x600 too, no
	// reset register, no IAPC_BOOT_ARCH.
	if f.Revision != 1 || tb.Find(SigFADT).Length != 116 {
		t.Errorf("FADT revision %d", f.Revision)
	}
	if pm, ok := f.PMTimer(); !ok || pm.Address != 0x608 || pm.Space != SpaceSystemIO || f.PMTimer32Bit() {
		t.Errorf("PM timer %v %v 32-bit %v", pm, ok, f.PMTimer32Bit())
	}
	if _, _, ok := f.Reset(); ok {
		t.Error("reset register on an ACPI 1.0 FADT")
	}
	if f.BootArch != 0 || f.XDSDT != 0 || f.DSDTAddress() != m.table(t, SigDSDT).addr || f.GPE0Block != 0xafe0 {
		t.Errorf("boot arch %v X_DSDT %#x DSDT %#x GPE0 %#x", f.BootArch, f.XDSDT, f.DSDTAddress(), f.GPE0Block)
	}
}

// OVMF publishes an ACPI 2.0 RSDP with an XSDT, found through the UEFI
// system table, not by the legacy search.
func TestQEMUQ35OVMF(t *testing.T) {
	m, tb := parseMachine(t, "qemu-q35-ovmf", false)
	if tb.RSDP.Revision != 2 || tb.RSDP.Length != 36 || tb.RSDP.XSDT == 0 || tb.Root.Signature != SigXSDT || tb.Root.Address != tb.RSDP.XSDT {
		t.Errorf("RSDP %+v root %s at %#x", tb.RSDP, tb.Root.Signature, tb.Root.Address)
	}
	if got := tb.Summary(); got != "FACP APIC HPET MCFG WAET" {
		t.Errorf("Summary = %q", got)
	}
	wantQEMUMADT(t, tb.MADT)
	wantQ35MCFG(t, tb.MCFG)
	wantQ35FADT(t, tb.FADT, m.table(t, SigDSDT).addr, m.table(t, SigFACS).addr)
	// OVMF's FADT points at its FACS with the 32-bit field only.
	if tb.FADT.XFirmwareCtrl != 0 || uint64(tb.FADT.FirmwareCtrl) != m.table(t, SigFACS).addr {
		t.Errorf("FIRMWARE_CTRL %#x X_FIRMWARE_CTRL %#x", tb.FADT.FirmwareCtrl, tb.FADT.XFirmwareCtrl)
	}
	if tb.Find(SigRSDT) != nil {
		t.Error("RSDT walked although the XSDT is good")
	}
}

func TestBochs(t *testing.T) {
	m, tb := parseMachine(t, "bochs", true)
	if got := tb.Summary(); got != "FACP APIC SSDT HPET" {
		t.Errorf("Summary = %q", got)
	}
	f := tb.FADT
	// The Bochs BIOS's PIIX4 PM base is 0xb000: PM timer at 0xb008, 24 bits.
	if pm, ok := f.PMTimer(); !ok || pm.Space != SpaceSystemIO || pm.Address != 0xb008 || f.PMTimer32Bit() {
		t.Errorf("PM timer %v %v 32-bit %v", pm, ok, f.PMTimer32Bit())
	}
	if f.Revision != 1 || f.SCIInterrupt != 9 || f.PM1aControl().Address != 0xb004 || f.Century != 0 {
		t.Errorf("FADT rev %d SCI %d PM1a control %v century %#x", f.Revision, f.SCIInterrupt, f.PM1aControl(), f.Century)
	}
	if f.DSDTAddress() != m.table(t, SigDSDT).addr || f.FACSAddress() != m.table(t, SigFACS).addr {
		t.Errorf("DSDT %#x FACS %#x", f.DSDTAddress(), f.FACSAddress())
	}
	md := tb.MADT
	// One CPU (count=1), APIC ID 0; the Bochs BIOS gives the IOAPIC ID 1.
	if !reflect.DeepEqual(md.LocalAPICs, []LocalAPIC{{ProcessorUID: 0, APICID: 0, Flags: LocalAPICEnabled}}) {
		t.Errorf("local APICs %+v", md.LocalAPICs)
	}
	if !reflect.DeepEqual(md.IOAPICs, []IOAPIC{{ID: 1, Address: 0xfec00000, GSIBase: 0}}) {
		t.Errorf("IOAPICs %+v", md.IOAPICs)
	}
	if o, ok := md.OverrideFor(0); !ok || o.GSI != 2 || len(md.Overrides) != 1 {
		t.Errorf("overrides %+v", md.Overrides)
	}
	if len(tb.HPETs) != 1 || tb.HPETs[0].Base.Address != 0xfed00000 {
		t.Errorf("HPETs %+v", tb.HPETs)
	}
	// The SSDT (processor objects) is kept raw.
	if s := tb.FindAll(SigSSDT); len(s) != 1 || s[0].Length != 55 || s[0].OEMTableID != "BXPCSSDT" || !bytes.Contains(s[0].Raw, []byte("CPU0")) {
		t.Errorf("SSDTs %+v", s)
	}
	if tb.MCFG != nil || tb.DMAR != nil || tb.IVRS != nil {
		t.Error("unexpected MCFG/DMAR/IVRS on Bochs")
	}
}
