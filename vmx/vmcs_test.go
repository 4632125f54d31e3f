package vmx

import (
	"strings"
	"testing"
)

// TestFieldEncodings checks every named encoding against the rules of SDM
// Vol. 3C, 25.11.2 (Table "Structure of VMCS Component Encoding"): the
// width in bits 14:13 and the type in bits 11:10 agree with what the SDM
// says the field is (the table in Fields, whose names also carry the
// type), bit 12 and bits 31:15 are 0, only 64-bit fields have a high
// (bit 0 = 1) encoding, and the encoding is rebuilt from its parts.
func TestFieldEncodings(t *testing.T) {
	seenField := map[Field]string{}
	seenName := map[string]bool{}
	for _, fi := range Fields {
		f := fi.Field
		if !f.Valid() {
			t.Errorf("%s %#06x: reserved bits set or high access on a non-64-bit field", fi.Name, uint32(f))
		}
		if f.Width() != fi.Width {
			t.Errorf("%s %#06x: width bits 14:13 = %d, the SDM gives %d", fi.Name, uint32(f), f.Width(), fi.Width)
		}
		if f.Type() != fi.Type {
			t.Errorf("%s %#06x: type bits 11:10 = %d, the SDM gives %d", fi.Name, uint32(f), f.Type(), fi.Type)
		}
		rebuilt := Field(fi.Width)<<13 | Field(fi.Type)<<10 | Field(f.Index())<<1
		if f.High() {
			rebuilt |= 1
		}
		if rebuilt != f {
			t.Errorf("%s: %#06x does not rebuild from width/type/index/high (%#06x)", fi.Name, uint32(f), uint32(rebuilt))
		}
		switch {
		case strings.HasPrefix(fi.Name, "GUEST_") && fi.Name != "GUEST_PHYSICAL_ADDRESS" && fi.Name != "GUEST_LINEAR_ADDRESS":
			if fi.Type != TypeGuest {
				t.Errorf("%s is a guest-state field but has type %d", fi.Name, fi.Type)
			}
		case strings.HasPrefix(fi.Name, "HOST_"):
			if fi.Type != TypeHost {
				t.Errorf("%s is a host-state field but has type %d", fi.Name, fi.Type)
			}
		}
		if f.ReadOnly() != (fi.Type == TypeExitInfo) {
			t.Errorf("%s: ReadOnly() = %v", fi.Name, f.ReadOnly())
		}
		if prev, dup := seenField[f]; dup {
			t.Errorf("%s and %s share the encoding %#06x", prev, fi.Name, uint32(f))
		}
		if seenName[fi.Name] {
			t.Errorf("name %s listed twice", fi.Name)
		}
		seenField[f], seenName[fi.Name] = fi.Name, true
		if f.String() != fi.Name {
			t.Errorf("%#06x.String() = %q, want %q", uint32(f), f.String(), fi.Name)
		}
	}
	// Spot checks against the SDM's appendix B values.
	for f, want := range map[Field]uint32{
		FieldGuestRIP: 0x681E, FieldHostRIP: 0x6C16, FieldEPTPointer: 0x201A, FieldExitReason: 0x4402,
		FieldProc2Controls: 0x401E, FieldVMCSLinkPointer: 0x2800, FieldGuestInterruptibility: 0x4824,
	} {
		if uint32(f) != want {
			t.Errorf("%v = %#x, want %#x", f, uint32(f), want)
		}
	}
	if Field(0x1000).Valid() || Field(0x8000).Valid() || Field(0x4001).Valid() || !FieldTSCOffsetHigh.Valid() {
		t.Error("Valid accepts bit 12 or 15, or a high 32-bit field, or rejects TSC_OFFSET_HIGH")
	}
	if FieldTSCOffsetHigh.Bits() != 32 || FieldTSCOffset.Bits() != 64 || FieldVPID.Bits() != 16 || FieldGuestRIP.Bits() != 64 {
		t.Error("Bits disagrees with the widths")
	}
	if got := Field(0x6C40).String(); got != "VMCS field 0x6c40" {
		t.Errorf("unknown field String() = %q", got)
	}
}

// TestEngineFieldsWithinVMCSEnum: every field the engine reads or writes
// has an index no higher than IA32_VMX_VMCS_ENUM reports on the processors
// of the fixtures that can run guests (SDM Vol. 3D, Appendix A.9): a higher
// one would fail VMREAD/VMWRITE with error 12.
func TestEngineFieldsWithinVMCSEnum(t *testing.T) {
	used := append([]Field{}, slotFields[:]...)
	used = append(used, exitInfoFields[:]...)
	used = append(used, FieldHostCR0, FieldHostCR3, FieldHostCR4, FieldHostFSBase, FieldHostGSBase, FieldHostTRBase,
		FieldHostGDTRBase, FieldHostIDTRBase, FieldHostSysenterCS, FieldHostSysenterESP, FieldHostSysenterEIP,
		FieldHostRSP, FieldHostRIP, FieldHostPAT, FieldHostEFER)
	for _, fx := range []cpuFixture{bochsSkylakeX, realCoreI7_6700K} {
		caps, err := Probe(fx.fakes())
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range used {
			if !f.Valid() {
				t.Errorf("%v is not a valid encoding", f)
			}
			if f.Index() > caps.MaxVMCSIndex {
				t.Errorf("%s: %v has index %d, above IA32_VMX_VMCS_ENUM's %d", fx.name, f, f.Index(), caps.MaxVMCSIndex)
			}
			if _, named := fieldNames[f]; !named {
				t.Errorf("%#06x is used but has no name for the dump", uint32(f))
			}
		}
	}
}

func TestSegmentFields(t *testing.T) {
	for seg := 0; seg < NumSegments; seg++ {
		sel, base, limit, ar := SegmentFields(seg)
		name := SegmentName(seg)
		for _, c := range []struct {
			f      Field
			suffix string
		}{{sel, "_SELECTOR"}, {base, "_BASE"}, {limit, "_LIMIT"}, {ar, "_AR_BYTES"}} {
			if want := "GUEST_" + name + c.suffix; c.f.String() != want {
				t.Errorf("segment %d: %v, want %s", seg, c.f, want)
			}
		}
	}
	if SegmentName(8) != "segment(8)" {
		t.Errorf("SegmentName(8) = %q", SegmentName(8))
	}
}
