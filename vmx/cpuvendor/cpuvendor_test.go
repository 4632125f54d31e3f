package cpuvendor

import (
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// leaf0 builds CPUID leaf 0 from a 12-byte signature, the way processors
// store it: bytes 0-3 in EBX, 4-7 in EDX, 8-11 in ECX, little-endian.
func leaf0(sig string) hwfake.CPUID {
	w := func(s string) uint32 {
		return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
	}
	return hwfake.CPUID{{Leaf: 0}: {EAX: 0xd, EBX: w(sig[0:4]), EDX: w(sig[4:8]), ECX: w(sig[8:12])}}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name  string
		cpuid hwfake.CPUID
		want  Vendor
		svm   bool
	}{
		// Register values as measured under Bochs 2.7 (corei7_skylake_x)
		// and QEMU 7.2 TCG (qemu64), not built from the strings.
		{"bochs-skylake", hwfake.CPUID{{Leaf: 0}: {EAX: 0x16, EBX: 0x756e6547, ECX: 0x6c65746e, EDX: 0x49656e69}}, Intel, false},
		{"qemu64", hwfake.CPUID{{Leaf: 0}: {EAX: 0xd, EBX: 0x68747541, ECX: 0x444d4163, EDX: 0x69746e65}}, AMD, true},
		{"hygon", leaf0("HygonGenuine"), Hygon, true},
		{"centaur", leaf0("CentaurHauls"), Other, false},
		{"kvm-style-garbage", leaf0("KVMKVMKVM\x00\x00\x00"), Other, false},
		{"empty", hwfake.CPUID{}, Other, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Detect(tt.cpuid)
			if got != tt.want {
				t.Fatalf("Detect = %v (signature %q), want %v", got, Signature(tt.cpuid), tt.want)
			}
			if got.UsesSVM() != tt.svm || got.UsesVMX() != (tt.want == Intel) {
				t.Errorf("%v: UsesSVM=%v UsesVMX=%v", got, got.UsesSVM(), got.UsesVMX())
			}
		})
	}
	if s := Signature(leaf0("AuthenticAMD")); s != "AuthenticAMD" {
		t.Errorf("Signature round trip = %q", s)
	}
	for v, s := range map[Vendor]string{Intel: "Intel", AMD: "AMD", Hygon: "Hygon", Other: "other"} {
		if v.String() != s {
			t.Errorf("%d.String() = %q, want %q", v, v.String(), s)
		}
	}
}

// FuzzDetect: any register contents decode to a 12-byte signature without
// panicking, and only the three exact strings name a known vendor.
func FuzzDetect(f *testing.F) {
	f.Add(uint32(0x756e6547), uint32(0x6c65746e), uint32(0x49656e69))
	f.Add(uint32(0x68747541), uint32(0x444d4163), uint32(0x69746e65))
	f.Add(uint32(0), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, ebx, ecx, edx uint32) {
		cpu := hwfake.CPUID{{Leaf: 0}: {EBX: ebx, ECX: ecx, EDX: edx}}
		sig := Signature(cpu)
		if len(sig) != 12 {
			t.Fatalf("signature %q is not 12 bytes", sig)
		}
		want := map[string]Vendor{"GenuineIntel": Intel, "AuthenticAMD": AMD, "HygonGenuine": Hygon}[sig]
		if got := Detect(cpu); got != want {
			t.Fatalf("Detect(%q) = %v, want %v", sig, got, want)
		}
	})
}
