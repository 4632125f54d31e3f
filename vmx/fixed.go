package vmx

import "fmt"

// Control register bits that the fixed-bit rules single out (SDM Vol. 3A,
// "Control Registers").
const (
	CR0PE   = 1 << 0  // protection enable
	CR0NE   = 1 << 5  // numeric error
	CR0PG   = 1 << 31 // paging
	CR4VMXE = 1 << 13 // VMX enable
)

// FixedBits is a pair of IA32_VMX_CRn_FIXED0/FIXED1 MSRs (SDM Vol. 3D,
// Appendix A.7 and A.8): a bit set in Fixed0 must be 1 in that control
// register during VMX operation, a bit clear in Fixed1 must be 0. VMXON and
// VM entry (host and guest state checks) enforce them.
type FixedBits struct {
	Register       string // "CR0" or "CR4", for messages
	Fixed0, Fixed1 uint64
}

// Apply returns v with the fixed bits forced: the legal value closest to v.
func (f FixedBits) Apply(v uint64) uint64 { return (v | f.Fixed0) & f.Fixed1 }

// Check reports, naming the bits, whether v violates the fixed bits.
func (f FixedBits) Check(v uint64) error {
	clear := f.Fixed0 &^ v // must be 1, are 0
	set := v &^ f.Fixed1   // must be 0, are 1
	switch {
	case clear != 0 && set != 0:
		return fmt.Errorf("vmx: %s = %#x is not allowed in VMX operation: %s must be 1 and %s must be 0 (FIXED0 %#x, FIXED1 %#x)",
			f.Register, v, bitList(clear), bitList(set), f.Fixed0, f.Fixed1)
	case clear != 0:
		return fmt.Errorf("vmx: %s = %#x is not allowed in VMX operation: %s must be 1 (FIXED0 %#x)",
			f.Register, v, bitList(clear), f.Fixed0)
	case set != 0:
		return fmt.Errorf("vmx: %s = %#x is not allowed in VMX operation: %s must be 0 (FIXED1 %#x)",
			f.Register, v, bitList(set), f.Fixed1)
	}
	return nil
}

// GuestCR0 returns the CR0 rules that VM entry applies to the guest's CR0.
// With the "unrestricted guest" control set, VM entry does not check PE and
// PG against IA32_VMX_CR0_FIXED0, so a guest may run in real mode or with
// paging off (SDM Vol. 3C, "Checks on Guest Control Registers, Debug
// Registers, and MSRs"); PG=1 still requires PE=1, which Apply cannot
// express and the engine must keep. Without it the guest's CR0 obeys the
// same rules as the host's.
func (c *Capabilities) GuestCR0(unrestricted bool) FixedBits {
	f := c.CR0
	if unrestricted {
		f.Fixed0 &^= CR0PE | CR0PG
	}
	return f
}

// validateFixed rejects a pair that requires a bit to be both 1 and 0.
func validateFixed(f FixedBits) error {
	if bad := f.Fixed0 &^ f.Fixed1; bad != 0 {
		return fmt.Errorf("IA32_VMX_%s_FIXED0 = %#x and FIXED1 = %#x contradict each other: %s must be both 1 and 0",
			f.Register, f.Fixed0, f.Fixed1, bitList(bad))
	}
	return nil
}
