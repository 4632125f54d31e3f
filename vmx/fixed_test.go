package vmx

import (
	"strings"
	"testing"
)

func TestFixedBits(t *testing.T) {
	cpu, m := realCoreI7_6700K.fakes()
	c, err := Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	// CR0 after reset is 0x60000010 (CD, NW, ET); VMX needs PE, NE, PG.
	if got := c.CR0.Apply(0x60000010); got != 0xe0000031 {
		t.Errorf("CR0.Apply(0x60000010) = %#x, want 0xe0000031", got)
	}
	if err := c.CR0.Check(0xe0000031); err != nil {
		t.Errorf("CR0.Check(0xe0000031): %v", err)
	}
	err = c.CR0.Check(0x60000010)
	if err == nil || !strings.Contains(err.Error(), "bits 0, 5, 31 must be 1") {
		t.Errorf("CR0.Check(0x60000010) = %v; want bits 0, 5, 31 named", err)
	}
	// CR4 needs VMXE; FIXED1 0x3727ff rejects bit 23 (CET) on this part.
	if got := c.CR4.Apply(0x6f0); got != 0x26f0 {
		t.Errorf("CR4.Apply(0x6f0) = %#x, want 0x26f0", got)
	}
	err = c.CR4.Check(0x6f0 | 1<<23)
	if err == nil || !strings.Contains(err.Error(), "bit 13 must be 1 and bit 23 must be 0") {
		t.Errorf("CR4.Check = %v; want bit 13 (VMXE) and bit 23 named", err)
	}
	if got := c.CR4.Apply(0x6f0 | 1<<23); got != 0x26f0 {
		t.Errorf("CR4.Apply drops bits outside FIXED1: got %#x, want 0x26f0", got)
	}
}

func TestGuestCR0UnrestrictedGuest(t *testing.T) {
	cpu, m := bochsSkylakeX.fakes()
	c, err := Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	realMode := uint64(0x60000010 | CR0NE) // a real-mode guest with NE set
	if err := c.GuestCR0(true).Check(realMode); err != nil {
		t.Errorf("unrestricted guest: real-mode CR0 %#x rejected: %v", realMode, err)
	}
	if err := c.GuestCR0(false).Check(realMode); err == nil || !strings.Contains(err.Error(), "bits 0, 31 must be 1") {
		t.Errorf("restricted guest: real-mode CR0 accepted or wrong message: %v", err)
	}
	// NE stays fixed either way.
	if err := c.GuestCR0(true).Check(0x60000010); err == nil || !strings.Contains(err.Error(), "bit 5 must be 1") {
		t.Errorf("unrestricted guest without NE: %v", err)
	}
	if c.CR0.Fixed0 != 0x80000021 {
		t.Errorf("GuestCR0 modified the host rules: CR0.Fixed0 = %#x", c.CR0.Fixed0)
	}
}
