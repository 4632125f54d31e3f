package svm

import "testing"

func TestIOPM(t *testing.T) {
	var m IOPM
	m.InterceptAll()
	m.Allow(0x80, 1)
	if m.Intercepted(0x80) || !m.Intercepted(0x7f) || !m.Intercepted(0x81) {
		t.Error("Allow(0x80) opened the wrong ports")
	}
	// Port 0x80 is bit 0 of byte 0x10 (15.10.1: bit n for port n).
	if m[0x10] != 0xfe {
		t.Errorf("IOPM byte 0x10 = %#x, want 0xfe", m[0x10])
	}
	m.Allow(0xfffe, 10) // clamps at 0xffff
	if m.Intercepted(0xffff) || m[0x2000] != 0xff {
		t.Error("top ports: wrong bits")
	}
}

func TestMSRPM(t *testing.T) {
	var m MSRPM
	m.InterceptAll()
	// EFER (0xC0000080): range 2 at byte 0x800; bits 0x100,0x101 -> byte 0x820 bits 0,1.
	if err := m.Allow(0xC0000080, true, false); err != nil {
		t.Fatal(err)
	}
	if m[0x820] != 0xfe || m.Intercepted(0xC0000080, false) || !m.Intercepted(0xC0000080, true) {
		t.Errorf("EFER read pass-through: byte %#x", m[0x820])
	}
	// TSC_DEADLINE 0x6E0: bits 0xDC0,0xDC1 -> byte 0x1B8 bits 0,1.
	if err := m.Allow(0x6e0, true, true); err != nil {
		t.Fatal(err)
	}
	if m[0x1b8] != 0xfc {
		t.Errorf("byte 0x1b8 = %#x, want 0xfc", m[0x1b8])
	}
	// MSR in the third range (VM_CR 0xC0010114): bits 0x228,0x229 -> byte 0x1045 bits 0,1.
	if err := m.Allow(0xC0010114, false, true); err != nil {
		t.Fatal(err)
	}
	if m[0x1045] != 0xfd {
		t.Errorf("byte 0x1045 = %#x, want 0xfd", m[0x1045])
	}
	if err := m.Allow(0x40000000, true, true); err == nil || !m.Intercepted(0x40000000, false) {
		t.Error("an MSR outside the map must always exit")
	}
}
