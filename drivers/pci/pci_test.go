package pci

import (
	"reflect"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

func find(t *testing.T, devs []Device, bus, dev, fn uint8) *Device {
	t.Helper()
	for i := range devs {
		if devs[i].Bus == bus && devs[i].Dev == dev && devs[i].Fn == fn {
			return &devs[i]
		}
	}
	t.Fatalf("%02x:%02x.%x not found", bus, dev, fn)
	return nil
}

func TestEnumerateQ35(t *testing.T) {
	s := q35()
	devs, err := Enumerate(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range devs {
		got = append(got, devs[i].String())
	}
	want := []string{
		"0000:00:00.0 8086:29c0 Host bridge [class 06.00.00]",
		"0000:00:01.0 1234:1111 VGA compatible controller [class 03.00.00]",
		"0000:00:02.0 8086:10d3 Ethernet controller [class 02.00.00]",
		"0000:00:1c.0 1b36:000c PCI bridge [class 06.04.00]",
		"0000:00:1c.1 1b36:000c PCI bridge [class 06.04.00]",
		"0000:00:1f.0 8086:2918 ISA bridge [class 06.01.00]",
		"0000:00:1f.2 8086:2922 SATA controller (AHCI) [class 01.06.01]",
		"0000:00:1f.3 8086:2930 SMBus [class 0c.05.00]",
		"0000:01:00.0 1af4:1041 Ethernet controller [class 02.00.00]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("devices:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Bus 2 (behind 00:1c.1) is scanned and empty; bus 3 is never touched.
	if s.reads[2] == 0 {
		t.Error("bus 2 behind 00:1c.1 was not scanned")
	}
	if s.reads[3] != 0 {
		t.Errorf("bus 3 was read %d times; no bridge leads there", s.reads[3])
	}

	nic := find(t, devs, 0, 2, 0)
	if nic.IRQLine != 11 || nic.IRQPin != 1 || nic.Revision != 2 || nic.IsMultiFunction() || nic.IsBridge() {
		t.Errorf("e1000e: %+v", nic)
	}
	wantCaps := []Capability{{0x01, 0xC8}, {0x05, 0xD0}, {0x10, 0xE0}, {0x11, 0xA0}}
	if !reflect.DeepEqual(nic.Capabilities, wantCaps) {
		t.Errorf("e1000e capabilities %+v, want %+v", nic.Capabilities, wantCaps)
	}
	if nic.ExtendedCapabilities != nil {
		t.Errorf("extended capabilities read through a mechanism without extended space: %+v", nic.ExtendedCapabilities)
	}
	wantBARs := []BAR{
		{Index: 0, Address: 0xFEB8_0000},
		{Index: 2, IO: true, Address: 0xC000},
		{Index: 3, Address: 0xFEBD_4000},
	}
	if !reflect.DeepEqual(nic.BARs, wantBARs) {
		t.Errorf("e1000e BARs %+v, want %+v", nic.BARs, wantBARs)
	}

	rp := find(t, devs, 0, 0x1C, 0)
	if !rp.IsBridge() || !rp.IsMultiFunction() || rp.SecondaryBus != 1 || rp.SubordinateBus != 1 || len(rp.BARs) != 1 {
		t.Errorf("root port: %+v", rp)
	}
	vnet := find(t, devs, 1, 0, 0)
	want64 := BAR{Index: 4, Is64: true, Prefetchable: true, Address: 0x80_0000_0000}
	if len(vnet.BARs) != 2 || vnet.BARs[1] != want64 {
		t.Errorf("virtio-net BARs %+v, want a 64-bit BAR %+v", vnet.BARs, want64)
	}
}

func TestExtendedCapabilitiesWithECAM(t *testing.T) {
	devs, err := Enumerate(withExtended{q35()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	nic := find(t, devs, 0, 2, 0)
	want := []ExtendedCapability{{ID: 0x0001, Version: 1, Offset: 0x100}, {ID: 0x0003, Version: 1, Offset: 0x140}}
	if !reflect.DeepEqual(nic.ExtendedCapabilities, want) {
		t.Errorf("extended capabilities %+v, want %+v", nic.ExtendedCapabilities, want)
	}
	// Conventional PCI functions (no PCIe capability) are not probed.
	if sata := find(t, devs, 0, 0x1F, 2); sata.ExtendedCapabilities != nil {
		t.Errorf("SATA (no PCIe capability) has extended capabilities %+v", sata.ExtendedCapabilities)
	}
}

func TestSizeBARs(t *testing.T) {
	s := q35()
	sata := s.fns[bdf{0, 0x1F, 2}]
	before := sata.cfg
	devs, err := Enumerate(s, 0, Options{SizeBARs: true})
	if err != nil {
		t.Fatal(err)
	}
	check := func(bus, dev, fn uint8, want []BAR) {
		t.Helper()
		d := find(t, devs, bus, dev, fn)
		if !reflect.DeepEqual(d.BARs, want) {
			t.Errorf("%s BARs %+v, want %+v", d.Address(), d.BARs, want)
		}
	}
	check(0, 1, 0, []BAR{
		{Index: 0, Prefetchable: true, Address: 0xFD00_0000, Size: 16 << 20},
		{Index: 2, Address: 0xFEBD_0000, Size: 4 << 10},
	})
	check(0, 0x1F, 2, []BAR{
		{Index: 4, IO: true, Address: 0xC040, Size: 32},
		{Index: 5, Address: 0xFEBD_1000, Size: 4 << 10},
	})
	check(0, 0x1F, 3, []BAR{{Index: 4, IO: true, Address: 0x0700, Size: 64}})
	check(1, 0, 0, []BAR{
		{Index: 1, Address: 0xFE80_0000, Size: 4 << 10},
		{Index: 4, Is64: true, Prefetchable: true, Address: 0x80_0000_0000, Size: 16 << 10},
	})
	check(0, 0, 0, nil) // no BARs at all

	if sata.cfg != before {
		t.Error("SATA configuration space differs after sizing (BARs, command or RW1C status not restored)")
	}
	if len(sata.decodeOnAllOnes) != 6 {
		t.Errorf("SATA: %d all-ones BAR writes, want 6", len(sata.decodeOnAllOnes))
	}
	for _, fn := range s.fns {
		for _, dec := range fn.decodeOnAllOnes {
			if dec != 0 {
				t.Fatalf("a BAR was sized with decode bits %#x on", dec)
			}
		}
	}
}

func TestBridgeGuards(t *testing.T) {
	s := q35()
	// Behind bus 1: a bridge pointing back at bus 1, one pointing at bus 0,
	// one at bus 2 (already reached through 00:1c.1), one with subordinate
	// below secondary, and one left unconfigured.
	for dev, b := range map[uint8][2]uint8{1: {1, 1}, 2: {0, 5}, 3: {2, 2}, 4: {9, 8}, 5: {0, 0}} {
		br := s.add(1, dev, 0, 0x1B36, 0x000C, 0x06, 0x04, 0x00, HeaderTypeBridge)
		br.cfg[OffPrimaryBus], br.cfg[OffSecondaryBus], br.cfg[OffSubordinateBus] = 1, b[0], b[1]
	}
	devs, err := Enumerate(s, 0)
	if err == nil {
		t.Fatal("impossible bridges not reported")
	}
	for _, frag := range []string{"01:01.0", "01:02.0", "01:03.0", "01:04.0"} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error does not name bridge %s: %v", frag, err)
		}
	}
	if strings.Contains(err.Error(), "01:05.0") {
		t.Errorf("an unconfigured bridge is reported as a problem: %v", err)
	}
	if len(devs) != 9+5 {
		t.Errorf("found %d functions, want %d", len(devs), 9+5)
	}
	seen := map[bdf]bool{}
	for _, d := range devs {
		k := bdf{d.Bus, d.Dev, d.Fn}
		if seen[k] {
			t.Errorf("%s listed twice", d.Address())
		}
		seen[k] = true
	}
}

func TestBusRangeLimitsWalk(t *testing.T) {
	s := q35()
	e, err := NewECAM(hwfake.NewMemory(), 0xB000_0000, 0, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ranged := struct {
		*fakeSpace
		BusRanger
	}{s, e}
	devs, err := Enumerate(ranged, 0)
	if err == nil || !strings.Contains(err.Error(), "00:1c.1") {
		t.Errorf("bridge to bus 2 beyond end bus 1 not reported: %v", err)
	}
	if len(devs) != 9 || s.reads[2] != 0 {
		t.Errorf("%d devices, %d reads of bus 2", len(devs), s.reads[2])
	}
	if _, err := Enumerate(s, 0, Options{RootBuses: []uint8{0, 0x80}}); err != nil {
		t.Errorf("second root bus with nothing on it: %v", err)
	}
	if _, err := Enumerate(ranged, 0, Options{RootBuses: []uint8{7}}); err == nil {
		t.Error("root bus outside the ECAM range accepted")
	}
	if _, err := Enumerate(nil, 0); err == nil {
		t.Error("nil config space accepted")
	}
}

func TestCapabilityGuards(t *testing.T) {
	s := newSpace()
	self := s.add(0, 0, 0, 0x8086, 0x0001, 0x08, 0x80, 0, 0)
	self.caps(OffCapPtr, [2]uint16{0x09, 0x40})
	self.cfg[0x41] = 0x40 // points at itself

	cycle := s.add(0, 1, 0, 0x8086, 0x0002, 0x08, 0x80, 0, 0)
	cycle.caps(OffCapPtr, [2]uint16{0x01, 0x50}, [2]uint16{0x05, 0x60}, [2]uint16{0x09, 0x70})
	cycle.cfg[0x71] = 0x50

	full := s.add(0, 2, 0, 0x8086, 0x0003, 0x08, 0x80, 0, 0)
	var chain [][2]uint16
	for off := uint16(0x40); off < 0x100; off += 4 {
		chain = append(chain, [2]uint16{0x09, off})
	}
	full.caps(OffCapPtr, chain...)

	low := s.add(0, 3, 0, 0x8086, 0x0004, 0x08, 0x80, 0, 0)
	low.caps(OffCapPtr, [2]uint16{0x05, 0x44})
	low.cfg[0x45] = 0x3C // into the header: ends the list

	noStatus := s.add(0, 4, 0, 0x8086, 0x0005, 0x08, 0x80, 0, 0)
	noStatus.cfg[OffCapPtr] = 0x40 // pointer without the status bit: ignored
	noStatus.cfg[0x40] = 0x05

	pcie := s.add(0, 5, 0, 0x8086, 0x0006, 0x08, 0x80, 0, 0)
	pcie.caps(OffCapPtr, [2]uint16{0x10, 0x40})
	pcie.extCaps([2]uint16{0x0001, 0x100}, [2]uint16{0x000B, 0x200})
	pcie.w32(0x200, 0x100<<20|1<<16|0x000B) // loops back to 0x100

	devs, err := Enumerate(withExtended{s}, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[uint8]int{0: 1, 1: 3, 2: MaxCapabilities, 3: 1, 4: 0, 5: 1}
	for dev, n := range counts {
		if got := len(find(t, devs, 0, dev, 0).Capabilities); got != n {
			t.Errorf("device %d: %d capabilities, want %d", dev, got, n)
		}
	}
	if MaxCapabilities != 48 {
		t.Errorf("MaxCapabilities = %d, want 48", MaxCapabilities)
	}
	if ext := find(t, devs, 0, 5, 0).ExtendedCapabilities; len(ext) != 2 || ext[1].ID != 0x000B {
		t.Errorf("looping extended list: %+v", ext)
	}
}

func TestMultiFunctionAndAliasing(t *testing.T) {
	s := newSpace()
	// A single-function device that ignores the function number.
	s.add(0, 3, 0, 0x10EC, 0x8139, 0x02, 0x00, 0x00, 0x00)
	s.ignoreFn[[2]uint8{0, 3}] = true
	// A multi-function device with only functions 0 and 6.
	s.add(0, 4, 0, 0x8086, 0x1111, 0x0C, 0x03, 0x30, HeaderTypeMultiFunction)
	s.add(0, 4, 6, 0x8086, 0x2222, 0x0C, 0x03, 0x20, 0x00)
	// Present-but-odd vendor dwords that mean "nothing here".
	for dev, id := range map[uint8]uint32{5: 0, 6: 0xFFFF_0000, 7: 0x0000_FFFF} {
		f := s.add(0, dev, 0, 0, 0, 0, 0, 0, 0)
		f.w32(OffVendorID, id)
	}
	devs, err := Enumerate(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range devs {
		got = append(got, devs[i].String())
	}
	want := []string{
		"0003:00:03.0 10ec:8139 Ethernet controller [class 02.00.00]",
		"0003:00:04.0 8086:1111 USB controller (xHCI) [class 0c.03.30]",
		"0003:00:04.6 8086:2222 USB controller (EHCI) [class 0c.03.20]",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestClassName(t *testing.T) {
	for _, c := range []struct {
		class, sub, pi uint8
		want           string
	}{
		{0x01, 0x08, 0x02, "Non-Volatile memory controller (NVMe)"},
		{0x01, 0x06, 0x00, "SATA controller"},
		{0x06, 0x04, 0x01, "PCI bridge (subtractive decode)"},
		{0x03, 0x00, 0x00, "VGA compatible controller"},
		{0x0C, 0x03, 0x30, "USB controller (xHCI)"},
		{0x02, 0x07, 0x00, "Network controller"},
		{0x40, 0x00, 0x00, "Unknown class"},
		{0xFF, 0xFF, 0xFF, "Unknown class"},
	} {
		if got := ClassName(c.class, c.sub, c.pi); got != c.want {
			t.Errorf("ClassName(%02x.%02x.%02x) = %q, want %q", c.class, c.sub, c.pi, got, c.want)
		}
	}
}

func TestNarrowReadsDerived(t *testing.T) {
	s := newSpace()
	f := s.add(0, 0, 0, 0x8086, 0x29C0, 0x06, 0x00, 0x00, 0x00)
	f.w32(0x40, 0xDDCC_BBAA)
	f.w32(0x44, 0x1100_FFEE)
	for off, want := range map[uint16]uint16{0x40: 0xBBAA, 0x41: 0xCCBB, 0x42: 0xDDCC, 0x43: 0xEEDD, 0x02: 0x29C0} {
		if got := Read16(s, 0, 0, 0, off); got != want {
			t.Errorf("Read16(%#x) = %#x, want %#x", off, got, want)
		}
	}
	for off, want := range map[uint16]uint8{0x40: 0xAA, 0x43: 0xDD, 0x47: 0x11} {
		if got := Read8(s, 0, 0, 0, off); got != want {
			t.Errorf("Read8(%#x) = %#x, want %#x", off, got, want)
		}
	}
}
