package platform

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"tamavisor/drivers/acpi"
)

// buildAndParse builds the tables of a guest with ram and vcpus into fake
// guest memory and parses them back with the hypervisor's own ACPI parser.
func buildAndParse(t *testing.T, ram uint64, vcpus int) (*Layout, *guestRAM, *Tables, *acpi.Tables) {
	t.Helper()
	l, err := NewLayout(ram, vcpus)
	if err != nil {
		t.Fatal(err)
	}
	mem := newGuestRAM(l)
	tabs, err := Build(mem, l)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	parsed, err := acpi.Parse(mem, RSDPAddress)
	if err != nil {
		t.Fatalf("acpi.Parse: %v", err)
	}
	for _, p := range parsed.Problems {
		t.Errorf("acpi.Parse problem: %v", p)
	}
	return l, mem, tabs, parsed
}

func TestTablesParseBack(t *testing.T) {
	for _, vcpus := range []int{1, 2, 16, MaxVCPUs} {
		l, mem, tabs, p := buildAndParse(t, 512*MiB, vcpus)

		if p.RSDP.Revision != 2 || p.RSDP.OEMID != OEMID || p.RSDP.XSDT != tabs.XSDT || uint64(p.RSDP.RSDT) != tabs.RSDT {
			t.Errorf("RSDP: %+v", p.RSDP)
		}
		if p.Root == nil || p.Root.Signature != "XSDT" || p.Root.Address != tabs.XSDT {
			t.Errorf("root table: %+v, want the XSDT at %#x", p.Root, tabs.XSDT)
		}
		if got := p.Summary(); got != "FACP APIC MCFG" {
			t.Errorf("Summary = %q, want the FADT, MADT and MCFG", got)
		}
		for _, tab := range p.All {
			if tab.Signature == "FACS" {
				continue
			}
			if tab.OEMID != OEMID || tab.OEMTableID != OEMTableID || tab.CreatorID != CreatorID {
				t.Errorf("%s header IDs: %q %q %q", tab.Signature, tab.OEMID, tab.OEMTableID, tab.CreatorID)
			}
			if !l.ACPIArea.Contains(Region{tab.Address, tab.Address + uint64(tab.Length)}) {
				t.Errorf("%s at %#x+%#x is outside the ACPI area %v", tab.Signature, tab.Address, tab.Length, l.ACPIArea)
			}
			if tab.Address%16 != 0 {
				t.Errorf("%s at %#x is not 16-byte aligned", tab.Signature, tab.Address)
			}
		}

		// FADT.
		f := p.FADT
		if f == nil {
			t.Fatal("no FADT")
		}
		if f.Revision != 6 || f.MinorVersion != 5 {
			t.Errorf("FADT revision %d.%d, want 6.5", f.Revision, f.MinorVersion)
		}
		if f.SCIInterrupt != SCIInterrupt || f.SMICommand != 0 || f.ACPIEnable != 0 {
			t.Errorf("FADT SCI %d SMI_CMD %#x ACPI_ENABLE %d", f.SCIInterrupt, f.SMICommand, f.ACPIEnable)
		}
		if f.HardwareReduced() {
			t.Error("FADT says hardware-reduced")
		}
		pm, ok := f.PMTimer()
		if !ok || pm.Space != acpi.SpaceSystemIO || pm.Address != PMTimerPort || pm.BitWidth != 32 || !f.PMTimer32Bit() {
			t.Errorf("PM timer %v (present %v, 32-bit %v), want I/O port %#x, 32 bits", pm, ok, f.PMTimer32Bit(), PMTimerPort)
		}
		if f.PMTimerBlock != PMTimerPort || f.PMTimerLength != 4 {
			t.Errorf("legacy PM_TMR_BLK %#x length %d", f.PMTimerBlock, f.PMTimerLength)
		}
		if g := f.PM1aControl(); g.Space != acpi.SpaceSystemIO || g.Address != PM1aControlPort || g.BitWidth != 16 {
			t.Errorf("PM1a control %v, want I/O %#x 16 bits", g, PM1aControlPort)
		}
		if f.PM1aControlBlock != PM1aControlPort || f.PM1ControlLength != 2 {
			t.Errorf("legacy PM1a_CNT_BLK %#x length %d", f.PM1aControlBlock, f.PM1ControlLength)
		}
		if g := f.PM1aEvent(); g.Space != acpi.SpaceSystemIO || g.Address != PM1aEventPort || g.BitWidth != 32 {
			t.Errorf("PM1a event %v, want I/O %#x 32 bits", g, PM1aEventPort)
		}
		if f.PM1bControl().Present() || f.PM1bEventBlock != 0 || f.GPE0Block != 0 || f.GPE1Block != 0 {
			t.Error("FADT names a PM1b or GPE block that does not exist")
		}
		reg, val, ok := f.Reset()
		if !ok || reg.Space != acpi.SpaceSystemIO || reg.Address != 0xcf9 || reg.BitWidth != 8 || val != 0x06 {
			t.Errorf("reset register %v value %#x supported %v, want I/O 0xcf9 = 0x06", reg, val, ok)
		}
		if f.BootArch&acpi.Boot8042 == 0 || f.BootArch&acpi.BootLegacyDevices == 0 || f.BootArch&acpi.BootNoVGA == 0 || f.BootArch&acpi.BootNoMSI != 0 || f.BootArch&acpi.BootNoCMOSRTC != 0 {
			t.Errorf("IAPC_BOOT_ARCH %v", f.BootArch)
		}
		if f.Flags&acpi.FADTPowerButton != 0 {
			t.Error("PWR_BUTTON set: the fixed-feature power button is meant to be there")
		}
		if f.DSDTAddress() != tabs.DSDT || f.XDSDT != tabs.DSDT || uint64(f.DSDT) != tabs.DSDT {
			t.Errorf("FADT DSDT %#x X_DSDT %#x, want %#x", f.DSDT, f.XDSDT, tabs.DSDT)
		}
		if f.FACSAddress() != tabs.FACS || f.XFirmwareCtrl != 0 {
			t.Errorf("FADT FIRMWARE_CTRL %#x X_FIRMWARE_CTRL %#x, want %#x and 0 (they are exclusive)", f.FirmwareCtrl, f.XFirmwareCtrl, tabs.FACS)
		}
		var vendor [8]byte
		binary.LittleEndian.PutUint64(vendor[:], f.HypervisorVendor)
		if string(vendor[:]) != "TAMAVISR" {
			t.Errorf("hypervisor vendor identity %q", vendor)
		}

		// FACS and DSDT, reached through the FADT.
		if fc := p.Find("FACS"); fc == nil || fc.Address%64 != 0 || fc.Length != 64 || fc.Revision != 2 {
			t.Errorf("FACS %+v, want 64 bytes, 64-byte aligned, version 2", fc)
		}
		want, err := DSDT(l)
		if err != nil {
			t.Fatal(err)
		}
		if d := p.Find("DSDT"); d == nil || !bytes.Equal(d.Raw, want) || d.Revision != 2 {
			t.Errorf("DSDT in memory differs from DSDT(l)")
		}

		// MADT.
		m := p.MADT
		if m == nil {
			t.Fatal("no MADT")
		}
		if m.LocalAPICAddress != LocalAPICAddress || m.Flags&acpi.MADTPCATCompat == 0 {
			t.Errorf("MADT local APIC address %#x flags %#x", m.LocalAPICAddress, m.Flags)
		}
		if m.EnabledCPUs() != vcpus || len(m.LocalAPICs) != vcpus {
			t.Errorf("MADT: %d enabled of %d local APICs, want %d", m.EnabledCPUs(), len(m.LocalAPICs), vcpus)
		}
		for i, a := range m.LocalAPICs {
			if a.APICID != uint32(i) || a.ProcessorUID != uint32(i) || !a.Enabled() || a.X2APIC {
				t.Errorf("local APIC %d: %+v", i, a)
			}
		}
		if len(m.IOAPICs) != 1 || m.IOAPICs[0] != (acpi.IOAPIC{ID: IOAPICID, Address: IOAPICAddress, GSIBase: 0}) {
			t.Errorf("I/O APICs %+v", m.IOAPICs)
		}
		o, ok := m.OverrideFor(0)
		if !ok || o.GSI != 2 || o.Flags.Trigger() != acpi.TriggerEdge || o.Flags.Polarity() != acpi.PolarityActiveHigh {
			t.Errorf("IRQ0 override %+v (present %v), want GSI 2 edge high", o, ok)
		}
		o, ok = m.OverrideFor(9)
		if !ok || o.GSI != 9 || o.Flags.Trigger() != acpi.TriggerLevel || o.Flags.Polarity() != acpi.PolarityActiveLow {
			t.Errorf("IRQ9 override %+v (present %v), want GSI 9 level low", o, ok)
		}
		if len(m.Overrides) != 2 {
			t.Errorf("%d overrides, want 2", len(m.Overrides))
		}
		if len(m.LocalAPICNMIs) != 1 || m.LocalAPICNMIs[0].ProcessorUID != acpi.AllProcessors || m.LocalAPICNMIs[0].LINT != 1 {
			t.Errorf("local APIC NMIs %+v, want LINT1 on all processors", m.LocalAPICNMIs)
		}

		// MCFG.
		if p.MCFG == nil || len(p.MCFG.Allocations) != 1 {
			t.Fatalf("MCFG %+v", p.MCFG)
		}
		a := p.MCFG.Allocations[0]
		if a.Base != ECAMBase || a.Segment != 0 || a.StartBus != 0 || a.EndBus != 255 {
			t.Errorf("MCFG allocation %+v", a)
		}
		if addr, ok := a.ConfigAddress(255, 31, 7, 0xfff); !ok || addr != l.ECAM.End-1 {
			t.Errorf("last ECAM byte %#x, want %#x", addr, l.ECAM.End-1)
		}

		// An OS without the boot_params pointer finds the RSDP by the BIOS
		// search.
		if at, err := acpi.FindRSDP(mem); err != nil || at != RSDPAddress {
			t.Errorf("FindRSDP = %#x, %v; want %#x", at, err, RSDPAddress)
		}
	}
}

// An OS that reads only the ACPI 1.0 RSDT finds the same tables.
func TestRSDTFallback(t *testing.T) {
	_, mem, tabs, _ := buildAndParse(t, 256*MiB, 4)
	// Break the XSDT's signature: the parser falls back to the RSDT and
	// says why.
	if err := mem.WriteGuest(tabs.XSDT, []byte("XXXX")); err != nil {
		t.Fatal(err)
	}
	p, err := acpi.Parse(mem, RSDPAddress)
	if err != nil {
		t.Fatal(err)
	}
	if p.Root.Signature != "RSDT" || p.Summary() != "FACP APIC MCFG; 1 problem" {
		t.Errorf("fallback root %s, summary %q", p.Root.Signature, p.Summary())
	}
	if p.MADT == nil || p.MADT.EnabledCPUs() != 4 || p.FADT == nil || p.MCFG == nil {
		t.Error("tables missing through the RSDT")
	}
}

// Every table's checksum is right, and a one-bit change in any table is
// caught by it: the checksum covers the whole length.
func TestChecksumsAndLengths(t *testing.T) {
	l, err := NewLayout(1*GiB, 3)
	if err != nil {
		t.Fatal(err)
	}
	img, tabs, err := Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	at := func(addr uint64) []byte { return img[addr-l.ACPIArea.Start:] }
	sum := func(b []byte) (s byte) {
		for _, c := range b {
			s += c
		}
		return s
	}
	r := at(tabs.RSDP)[:36]
	if sum(r[:20]) != 0 || sum(r) != 0 || binary.LittleEndian.Uint32(r[20:]) != 36 {
		t.Errorf("RSDP checksums %#x %#x length %d", sum(r[:20]), sum(r), binary.LittleEndian.Uint32(r[20:]))
	}
	wantLen := map[string]int{"XSDT": 36 + 3*8, "RSDT": 36 + 3*4, "FACP": 276, "APIC": 44 + 3*8 + 12 + 2*10 + 6, "MCFG": 44 + 16}
	for _, a := range []uint64{tabs.XSDT, tabs.RSDT, tabs.FADT, tabs.MADT, tabs.MCFG, tabs.DSDT} {
		h := at(a)
		sig := string(h[:4])
		n := int(binary.LittleEndian.Uint32(h[4:]))
		if w, ok := wantLen[sig]; ok && n != w {
			t.Errorf("%s length %d, want %d", sig, n, w)
		}
		if s := sum(h[:n]); s != 0 {
			t.Errorf("%s sums to %#x", sig, s)
		}
		// The byte after the table is not part of it: the next table (or
		// padding) starts at or after the end.
		for _, b := range []uint64{tabs.XSDT, tabs.RSDT, tabs.FADT, tabs.MADT, tabs.MCFG, tabs.DSDT, tabs.FACS} {
			if b > a && b < a+uint64(n) {
				t.Errorf("%s at %#x+%d overlaps the table at %#x", sig, a, n, b)
			}
		}
		h[n/2] ^= 1
		if sum(h[:n]) == 0 {
			t.Errorf("%s: a flipped bit keeps the checksum", sig)
		}
		h[n/2] ^= 1
	}
	if !l.ACPIArea.Contains(tabs.Used) || tabs.Used.Start != RSDPAddress {
		t.Errorf("used %v", tabs.Used)
	}
}

// The FADT's fields sit at the offsets of ACPI 6.5 Table 5.9, read here
// independently of the parser.
func TestFADTOffsets(t *testing.T) {
	l, _ := NewLayout(64*MiB, 1)
	img, tabs, err := Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	f := img[tabs.FADT-l.ACPIArea.Start:][:276]
	le := binary.LittleEndian
	checks := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"SCI_INT@46", uint64(le.Uint16(f[46:])), 9},
		{"PM1a_EVT_BLK@56", uint64(le.Uint32(f[56:])), 0x600},
		{"PM1a_CNT_BLK@64", uint64(le.Uint32(f[64:])), 0x604},
		{"PM_TMR_BLK@76", uint64(le.Uint32(f[76:])), 0x608},
		{"PM1_EVT_LEN@88", uint64(f[88]), 4},
		{"PM1_CNT_LEN@89", uint64(f[89]), 2},
		{"PM_TMR_LEN@91", uint64(f[91]), 4},
		{"P_LVL2_LAT@96", uint64(le.Uint16(f[96:])), 101},
		{"P_LVL3_LAT@98", uint64(le.Uint16(f[98:])), 1001},
		{"IAPC_BOOT_ARCH@109", uint64(le.Uint16(f[109:])), 0x7},
		{"Flags@112", uint64(le.Uint32(f[112:])), 1<<0 | 1<<2 | 1<<5 | 1<<6 | 1<<8 | 1<<10},
		{"RESET_REG.space@116", uint64(f[116]), 1},
		{"RESET_REG.address@120", le.Uint64(f[120:]), 0xcf9},
		{"RESET_VALUE@128", uint64(f[128]), 6},
		{"minor@131", uint64(f[131]), 5},
		{"X_DSDT@140", le.Uint64(f[140:]), tabs.DSDT},
		{"X_PM1a_CNT.address@176", le.Uint64(f[176:]), 0x604},
		{"X_PM_TMR.width@209", uint64(f[209]), 32},
		{"X_PM_TMR.address@212", le.Uint64(f[212:]), 0x608},
		{"vendor@268", le.Uint64(f[268:]), le.Uint64([]byte("TAMAVISR"))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("FADT %s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// The \_S5 object holds SleepTypeS5, which the PM1a_CNT model matches; and
// a guest writing it powers off.
func TestS5MatchesPM1Control(t *testing.T) {
	l, _ := NewLayout(64*MiB, 1)
	d, err := DSDT(l)
	if err != nil {
		t.Fatal(err)
	}
	// NameOp "_S5_" PackageOp PkgLength NumElements=4 BytePrefix 5.
	want := []byte{0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, SleepTypeS5, 0x00, 0x00, 0x00}
	if !bytes.Contains(d[36:], want) {
		t.Errorf("DSDT has no \\_S5 package {%d, 0, 0, 0}: % x", SleepTypeS5, d[36:])
	}
	v := uint16(SleepTypeS5<<PM1ControlSleepTypeShift | PM1ControlSleepEnable)
	if v != 0x3400 || (v&PM1ControlSleepTypeMask)>>PM1ControlSleepTypeShift != SleepTypeS5 {
		t.Errorf("S5 write %#x", v)
	}
}

func TestBuildRefuses(t *testing.T) {
	l, _ := NewLayout(64*MiB, 2)
	bad := *l
	bad.VCPUs = 300
	if _, err := Build(newGuestRAM(l), &bad); err == nil || !strings.Contains(err.Error(), "300 vCPUs") {
		t.Errorf("Build with 300 vCPUs: %v", err)
	}
	// Memory that refuses the write: the error names the area.
	if _, err := Build(&guestRAM{}, l); err == nil || !strings.Contains(err.Error(), "0xe0000-0xfffff") {
		t.Errorf("Build into memory without RAM: %v", err)
	}
}
