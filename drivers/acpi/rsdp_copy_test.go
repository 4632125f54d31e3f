package acpi

import (
	"errors"
	"os"
	"testing"
)

func TestDecodeRSDPCopy(t *testing.T) {
	raw, err := os.ReadFile("testdata/qemu-q35-ovmf/rsdp.bin")
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRSDP(raw)
	if err != nil {
		t.Fatalf("DecodeRSDP(OVMF RSDP): %v", err)
	}
	if r.Revision != 2 || r.XSDT == 0 {
		t.Errorf("got revision %d XSDT %#x, want revision 2 with an XSDT", r.Revision, r.XSDT)
	}

	// Multiboot2's "ACPI new" tag may be shorter than the RSDP says.
	if _, err := DecodeRSDP(raw[:24]); !errors.Is(err, ErrUnreadable) {
		t.Errorf("truncated copy: got %v, want ErrUnreadable", err)
	}
	bad := append([]byte(nil), raw...)
	bad[9] ^= 0xff
	if _, err := DecodeRSDP(bad); !errors.Is(err, ErrChecksum) {
		t.Errorf("corrupt copy: got %v, want ErrChecksum", err)
	}
}
