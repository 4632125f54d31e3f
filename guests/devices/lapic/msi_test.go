package lapic

import "testing"

type msiClock struct{}

func (msiClock) Now() int64 { return 0 }

// msiGroup returns a group of n software-enabled xAPICs with IDs 0..n-1,
// logical IDs 1<<id in the flat model, and a log of kicked indexes.
func msiGroup(t *testing.T, n int) (*Group, *[]int) {
	t.Helper()
	g := &Group{}
	kicked := &[]int{}
	g.Kick = func(i int) { *kicked = append(*kicked, i) }
	for id := 0; id < n; id++ {
		l, err := New(Config{ID: uint32(id), BSP: id == 0, Clock: msiClock{}, IPI: g})
		if err != nil {
			t.Fatal(err)
		}
		l.WriteMMIO(DefaultBase+uint64(RegSVR), 4, uint64(SVREnable|0xFF))
		l.WriteMMIO(DefaultBase+uint64(RegLDR), 4, uint64(1)<<(24+id))
		g.APICs = append(g.APICs, l)
	}
	return g, kicked
}

func TestMSIEncoding(t *testing.T) {
	// SDM Vol. 3A Figure 11-24: 0xFEE in 31:20, destination in 19:12,
	// DM in bit 2; Figure 11-25: vector 7:0, delivery mode 10:8.
	if got := MSIAddress(0x12, true); got != 0xFEE12004 {
		t.Errorf("MSIAddress(0x12, logical) = %#x", got)
	}
	if got := MSIData(0x41, DeliveryNMI); got != 0x441 {
		t.Errorf("MSIData(0x41, NMI) = %#x", got)
	}
}

func TestDeliverMSI(t *testing.T) {
	g, kicked := msiGroup(t, 3)
	// Physical destination 2, fixed, vector 0x45.
	if !g.DeliverMSI(MSIAddress(2, false), MSIData(0x45, DeliveryFixed)) {
		t.Fatal("fixed MSI to APIC 2 not taken")
	}
	for i, l := range g.APICs {
		v, ok := l.PendingVector()
		if want := i == 2; ok != want || (ok && v != 0x45) {
			t.Errorf("APIC %d pending %#x, %v", i, v, ok)
		}
	}
	if len(*kicked) != 1 || (*kicked)[0] != 2 {
		t.Errorf("kicked %v, want [2]", *kicked)
	}
	// Logical flat 0b011: APICs 0 and 1.
	if !g.DeliverMSI(MSIAddress(0x03, true), MSIData(0x50, DeliveryFixed)) {
		t.Fatal("logical MSI not taken")
	}
	for i, want := range []bool{true, true, false} {
		if v, _ := g.APICs[i].PendingVector(); (v == 0x50) != want {
			t.Errorf("logical MSI: APIC %d pending %#x", i, v)
		}
	}
	// NMI delivery mode.
	if !g.DeliverMSI(MSIAddress(1, false), MSIData(0, DeliveryNMI)) || !g.APICs[1].TakeNMI() {
		t.Error("NMI MSI not delivered")
	}
	// Level-triggered assert sets the TMR, so the EOI reaches the IOAPIC
	// path; deassert delivers nothing.
	if g.DeliverMSI(MSIAddress(0, false), MSIData(0x60, DeliveryFixed)|MSIDataTriggerLevel) {
		t.Error("level deassert message delivered")
	}
	if !g.DeliverMSI(MSIAddress(0, false), MSIData(0x61, DeliveryFixed)|MSIDataTriggerLevel|MSIDataLevelAssert) {
		t.Error("level assert message not delivered")
	}
	if v, _ := g.APICs[0].PendingVector(); v != 0x61 {
		t.Errorf("level MSI: APIC 0 pending %#x, want 0x61", v)
	}
	// Not an interrupt: outside 0xFEExxxxx, or above 4 GiB.
	for _, a := range []uint64{0xFED00000, 0x1_FEE00000, 0} {
		if g.DeliverMSI(a, MSIData(0x70, DeliveryFixed)) {
			t.Errorf("MSI to %#x delivered", a)
		}
	}
	// Reserved delivery modes 011b and 110b.
	for _, m := range []DeliveryMode{3, DeliveryStartUp} {
		if g.DeliverMSI(MSIAddress(0, false), MSIData(0x70, m)) {
			t.Errorf("MSI with reserved delivery mode %d delivered", m)
		}
	}
	// A destination no APIC has.
	if g.DeliverMSI(MSIAddress(9, false), MSIData(0x70, DeliveryFixed)) {
		t.Error("MSI to absent APIC 9 reported taken")
	}
}

// FuzzDeliverMSI decodes arbitrary messages: nothing outside the
// 0xFEExxxxx window is delivered, and a fixed message that is delivered
// lands its own vector in the IRR of an APIC its destination names.
func FuzzDeliverMSI(f *testing.F) {
	f.Add(uint64(0xFEE01000), uint32(0x45))
	f.Add(uint64(0xFEE0300C), uint32(0x4100|0x51))
	f.Add(uint64(0x1_FEE00000), uint32(0x8030))
	f.Fuzz(func(t *testing.T, addr uint64, data uint32) {
		g, kicked := msiGroup(t, 3)
		took := g.DeliverMSI(addr, data)
		if took && addr&0xFFFFFFFF_FFF00000 != MSIAddressBase {
			t.Fatalf("message to %#x delivered", addr)
		}
		if len(*kicked) > 0 != took {
			t.Fatalf("took %v but kicked %v", took, *kicked)
		}
		mode := DeliveryMode(data >> 8 & 7)
		if !took || (mode != DeliveryFixed && mode != DeliveryLowestPriority) {
			return
		}
		for _, i := range *kicked {
			if v, ok := g.APICs[i].PendingVector(); !ok || v != uint8(data) {
				t.Fatalf("APIC %d pending %#x, %v after vector %#x", i, v, ok, uint8(data))
			}
		}
	})
}
