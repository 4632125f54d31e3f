// Package cpuvendor tells the processor's vendor from the CPUID vendor
// identification string (CPUID leaf 0: EBX, EDX, ECX; Intel SDM Vol. 2A,
// CPUID; AMD APM Vol. 3, Appendix E.3.1 "Function 0h"), so that boot code
// picks the VMX or the SVM engine. Whether the chosen extension is usable
// is then for vmx.Probe or svm.Probe to say from the feature flags.
package cpuvendor

import (
	"fmt"
	"strings"

	"tamavisor/drivers/hw"
)

// Vendor is a processor vendor as far as the choice of engine goes.
type Vendor uint8

const (
	Other Vendor = iota
	// Intel: "GenuineIntel", VT-x (package vmx).
	Intel
	// AMD: "AuthenticAMD", AMD-V/SVM (package svm).
	AMD
	// Hygon: "HygonGenuine", AMD family 18h derivatives that implement
	// SVM as AMD documents it (package svm).
	Hygon
)

func (v Vendor) String() string {
	switch v {
	case Intel:
		return "Intel"
	case AMD:
		return "AMD"
	case Hygon:
		return "Hygon"
	}
	return "other"
}

// UsesSVM reports whether the vendor's virtualization extension is SVM.
func (v Vendor) UsesSVM() bool { return v == AMD || v == Hygon }

// UsesVMX reports whether the vendor's virtualization extension is VMX.
func (v Vendor) UsesVMX() bool { return v == Intel }

// Signature returns the 12-byte vendor identification string of CPUID
// leaf 0, in the register order EBX, EDX, ECX.
func Signature(cpu hw.CPUID) string {
	_, ebx, ecx, edx := cpu.CPUID(0, 0)
	var b [12]byte
	for i, r := range [3]uint32{ebx, edx, ecx} {
		b[4*i] = byte(r)
		b[4*i+1] = byte(r >> 8)
		b[4*i+2] = byte(r >> 16)
		b[4*i+3] = byte(r >> 24)
	}
	return string(b[:])
}

// Detect returns the vendor named by CPUID leaf 0.
func Detect(cpu hw.CPUID) Vendor {
	switch Signature(cpu) {
	case "GenuineIntel":
		return Intel
	case "AuthenticAMD":
		return AMD
	case "HygonGenuine":
		return Hygon
	}
	return Other
}

// Reason classifies why a vendor's hardware virtualization cannot be used.
type Reason uint8

const (
	// NotReported: CPUID does not report VMX or SVM.
	NotReported Reason = iota + 1
	// DisabledByFirmware: IA32_FEATURE_CONTROL (Intel) or VM_CR (AMD) is
	// locked with virtualization off.
	DisabledByFirmware
	// Inconsistent: CPUID or a capability MSR holds a value the manual
	// rules out, typically from a broken nested hypervisor.
	Inconsistent
)

func (r Reason) String() string {
	switch r {
	case NotReported:
		return "not reported"
	case DisabledByFirmware:
		return "disabled by firmware"
	case Inconsistent:
		return "inconsistent capabilities"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// UnavailableError says why an engine's Probe found its hardware
// virtualization unusable, in words meant for the person at the console.
type UnavailableError struct {
	Engine string // "vmx" or "svm"
	Reason Reason
	Detail string
}

func (e *UnavailableError) Error() string { return e.Engine + ": " + e.Detail }

// Summary builds an inventory line: "topic:" then space-separated
// key=value pairs in the order added, flags as yes/no.
type Summary struct{ b strings.Builder }

// NewSummary starts a line for topic.
func NewSummary(topic string) *Summary {
	s := &Summary{}
	s.b.WriteString(topic)
	s.b.WriteByte(':')
	return s
}

// KV adds key=value.
func (s *Summary) KV(key, value string) {
	s.b.WriteByte(' ')
	s.b.WriteString(key)
	s.b.WriteByte('=')
	s.b.WriteString(value)
}

// YesNo adds key=yes or key=no.
func (s *Summary) YesNo(key string, v bool) {
	if v {
		s.KV(key, "yes")
	} else {
		s.KV(key, "no")
	}
}

func (s *Summary) String() string { return s.b.String() }
