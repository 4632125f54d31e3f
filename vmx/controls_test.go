package vmx

import (
	"errors"
	"strings"
	"testing"
)

func TestControlCapsFromMSR(t *testing.T) {
	c := ControlCapsFromMSR(0xf7f9fffe_0401e172)
	if c.Allowed0 != 0x0401e172 || c.Allowed1 != 0xf7f9fffe {
		t.Fatalf("ControlCapsFromMSR = %+v", c)
	}
	if !c.Allows(ProcHLTExiting|ProcActivateSecondary) || c.Allows(ProcMonitorTrapFlag) {
		t.Error("Allows disagrees with allowed-1 0xf7f9fffe (bit 27 clear)")
	}
	if !c.Forces(ProcCR3LoadExiting|ProcCR3StoreExiting) || c.Forces(ProcHLTExiting) {
		t.Error("Forces disagrees with allowed-0 0x0401e172")
	}
}

func TestAdjust(t *testing.T) {
	// Bochs corei5_lynnfield_750: IA32_VMX_PROCBASED_CTLS2 = 0x7f_00000000
	// (no unrestricted guest) and IA32_VMX_TRUE_PINBASED_CTLS =
	// 0x7f_00000016.
	secondary := ControlCapsFromMSR(0x0000007f_00000000)
	pin := ControlCapsFromMSR(0x0000007f_00000016)
	tests := []struct {
		name               string
		caps               ControlCaps
		required, optional uint32
		want               uint32
		missing            uint32
	}{
		{"must-be-1-bits-set", pin, 0, 0, 0x16, 0},
		{"required-kept", pin, PinExternalInterruptExiting | PinNMIExiting, 0, 0x16 | 0x1 | 0x8, 0},
		{"optional-allowed-kept", pin, 0, PinVirtualNMIs | PinPreemptionTimer, 0x16 | 0x20 | 0x40, 0},
		{"optional-not-allowed-dropped", pin, 0, PinPostedInterrupts | PinPreemptionTimer, 0x16 | 0x40, 0},
		{"required-missing", pin, PinPostedInterrupts, 0, 0, PinPostedInterrupts},
		{"unrestricted-guest-missing", secondary, Proc2EnableEPT | Proc2UnrestrictedGuest, 0, 0, Proc2UnrestrictedGuest},
		{"two-missing", secondary, Proc2EnableEPT | Proc2UnrestrictedGuest | Proc2EnablePML, Proc2EnableVPID, 0,
			Proc2UnrestrictedGuest | Proc2EnablePML},
		{"secondary-ept-vpid", secondary, Proc2EnableEPT, Proc2EnableVPID | Proc2UnrestrictedGuest,
			Proc2EnableEPT | Proc2EnableVPID, 0},
		// A TRUE MSR that lets the reserved default1 controls be 0: passing
		// them as optional keeps them 1, as the SDM advises.
		{"default1-reserved-as-optional", ControlCaps{Allowed0: 0, Allowed1: 0x7f}, 0, PinDefault1Reserved,
			PinDefault1Reserved, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.caps.Adjust(tt.required, tt.optional)
			if tt.missing == 0 {
				if err != nil || got != tt.want {
					t.Fatalf("Adjust = %#x, %v; want %#x", got, err, tt.want)
				}
				// Whatever Adjust returns satisfies both halves of the MSR.
				if got&tt.caps.Allowed0 != tt.caps.Allowed0 || got&^tt.caps.Allowed1 != 0 {
					t.Errorf("result %#x violates %+v", got, tt.caps)
				}
				return
			}
			var ce *ControlError
			if !errors.As(err, &ce) || ce.Missing != tt.missing || got != 0 {
				t.Fatalf("Adjust = %#x, %v; want ControlError with Missing %#x", got, err, tt.missing)
			}
			for b := 0; b < 32; b++ {
				if tt.missing&(1<<b) != 0 && !strings.Contains(err.Error(), itoa(b)) {
					t.Errorf("error %q does not name bit %d", err, b)
				}
			}
		})
	}
}

func TestAdjustErrorMessages(t *testing.T) {
	_, err := ControlCapsFromMSR(0x7f_00000016).Adjust(PinPostedInterrupts, 0)
	want := "vmx: required controls not supported by this processor: bit 7 (mask 0x80; allowed-1 settings 0x0000007f)"
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	_, err = ControlCaps{Allowed0: 0x16 | 0x100, Allowed1: 0x7f}.Adjust(0, 0)
	var ce *ControlError
	if !errors.As(err, &ce) || ce.Inconsistent != 0x100 || !strings.Contains(err.Error(), "bit 8 must be 1 but may not be 1") {
		t.Errorf("inconsistent MSR: err = %v", err)
	}
	_, err = ControlCaps{Allowed1: 0x1}.Adjust(0x6, 0)
	if err == nil || !strings.Contains(err.Error(), "bits 1, 2 (mask 0x6") {
		t.Errorf("two missing bits: err = %v", err)
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
