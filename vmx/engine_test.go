package vmx

import (
	"errors"
	"strings"
	"testing"
)

func probeFixture(t *testing.T, fx cpuFixture) *Capabilities {
	t.Helper()
	caps, err := Probe(fx.fakes())
	if err != nil {
		t.Fatalf("%s: Probe: %v", fx.name, err)
	}
	return caps
}

// legal checks a control word against its capability MSR: every
// must-be-1 bit set, no not-allowed-1 bit set (SDM Vol. 3D, A.3-A.5).
func legal(t *testing.T, name string, w uint32, c ControlCaps) {
	t.Helper()
	if w&c.Allowed0 != c.Allowed0 || w&^c.Allowed1 != 0 {
		t.Errorf("%s controls %#x violate allowed-0 %#x / allowed-1 %#x", name, w, c.Allowed0, c.Allowed1)
	}
}

func TestNewControlsSkylakeX(t *testing.T) {
	for _, fx := range []cpuFixture{bochsSkylakeX, realCoreI7_6700K} {
		t.Run(fx.name, func(t *testing.T) {
			caps := probeFixture(t, fx)
			ctl, err := NewControls(caps, ControlOptions{RDTSCP: true})
			if err != nil {
				t.Fatal(err)
			}
			legal(t, "pin", ctl.Pin, caps.Pin)
			legal(t, "primary", ctl.Proc, caps.Proc)
			legal(t, "secondary", ctl.Proc2, caps.Proc2)
			legal(t, "exit", ctl.Exit, caps.Exit)
			legal(t, "entry", ctl.Entry, caps.Entry)
			// The IA-32e mode guest control is added per entry.
			legal(t, "entry (IA-32e)", ctl.Entry|EntryIA32eModeGuest, caps.Entry)

			has := func(name string, w, bits uint32) {
				t.Helper()
				if w&bits != bits {
					t.Errorf("%s controls %#x lack %#x", name, w, bits)
				}
			}
			lacks := func(name string, w, bits uint32) {
				t.Helper()
				if w&bits != 0 {
					t.Errorf("%s controls %#x have %#x", name, w, w&bits)
				}
			}
			has("pin", ctl.Pin, PinExternalInterruptExiting|PinNMIExiting|PinVirtualNMIs)
			lacks("pin", ctl.Pin, PinPreemptionTimer|PinPostedInterrupts)
			has("primary", ctl.Proc, ProcHLTExiting|ProcUnconditionalIOExiting|ProcCR8LoadExiting|ProcCR8StoreExiting|
				ProcActivateSecondary|ProcUseTSCOffsetting)
			// No MSR or I/O bitmaps: every RDMSR, WRMSR, IN and OUT exits.
			// No CR3 exiting under EPT; no window exits until asked for.
			lacks("primary", ctl.Proc, ProcUseMSRBitmaps|ProcUseIOBitmaps|ProcCR3LoadExiting|ProcCR3StoreExiting|
				ProcInterruptWindowExiting|ProcNMIWindowExiting|ProcUseTPRShadow|ProcRDTSCExiting)
			has("secondary", ctl.Proc2, Proc2EnableEPT|Proc2UnrestrictedGuest|Proc2EnableVPID|Proc2EnableRDTSCP)
			lacks("secondary", ctl.Proc2, Proc2EnableINVPCID|Proc2EnableXSAVES|Proc2VirtualizeAPICAccesses|Proc2EnablePML)
			has("exit", ctl.Exit, ExitHostAddressSpaceSize|ExitAcknowledgeInterrupt|ExitSaveEFER|ExitLoadEFER|
				ExitSavePAT|ExitLoadPAT|ExitSaveDebugControls)
			lacks("exit", ctl.Exit, ExitSavePreemptionTimer|ExitLoadPerfGlobalCtrl)
			has("entry", ctl.Entry, EntryLoadEFER|EntryLoadPAT|EntryLoadDebugControls)
			lacks("entry", ctl.Entry, EntryIA32eModeGuest|EntryToSMM|EntryDeactivateDualMon)

			if ctl.INVEPTType != 1 || ctl.INVVPIDType != 1 {
				t.Errorf("INVEPT type %d, INVVPID type %d; both processors have single-context invalidation", ctl.INVEPTType, ctl.INVVPIDType)
			}
			if !ctl.VPID() || ctl.Revision != caps.Basic.Revision {
				t.Errorf("VPID %v, revision %#x", ctl.VPID(), ctl.Revision)
			}
			// Unrestricted guest frees CR0.PE and PG, not NE.
			if ctl.GuestCR0.Fixed0 != CR0NE || ctl.GuestCR4.Fixed0 != CR4VMXE {
				t.Errorf("guest fixed bits CR0 %#x CR4 %#x", ctl.GuestCR0.Fixed0, ctl.GuestCR4.Fixed0)
			}
		})
	}
}

// TestNewControlsRefusesOldCPUs: a Core 2 has no secondary controls at
// all, hence no EPT: refused, naming them.
func TestNewControlsRefusesOldCPUs(t *testing.T) {
	_, err := NewControls(probeFixture(t, realCore2X6800), ControlOptions{})
	if !errors.Is(err, ErrNoSecondaryControls) || !strings.Contains(err.Error(), "EPT") {
		t.Errorf("%s: err = %v, want ErrNoSecondaryControls", realCore2X6800.name, err)
	}
}

// TestNewControlsWithoutUnrestrictedGuest: Bochs's corei5_lynnfield_750
// (its capability MSRs as measured) has EPT and VPID but not unrestricted
// guest. The engine runs it with CR0.PE and PG fixed to 1 in the guest,
// for guests that start in paged long mode.
func TestNewControlsWithoutUnrestrictedGuest(t *testing.T) {
	caps := probeFixture(t, bochsLynnfield)
	if caps.UnrestrictedGuest() || !caps.EPT() {
		t.Fatalf("fixture: unrestricted guest %v, EPT %v; want the lynnfield's no and yes", caps.UnrestrictedGuest(), caps.EPT())
	}
	ctl, err := NewControls(caps, ControlOptions{RDTSCP: true})
	if err != nil {
		t.Fatal(err)
	}
	legal(t, "pin", ctl.Pin, caps.Pin)
	legal(t, "primary", ctl.Proc, caps.Proc)
	legal(t, "secondary", ctl.Proc2, caps.Proc2)
	legal(t, "exit", ctl.Exit, caps.Exit)
	legal(t, "entry", ctl.Entry|EntryIA32eModeGuest, caps.Entry)
	if ctl.Proc2&Proc2UnrestrictedGuest != 0 || ctl.Proc2&(Proc2EnableEPT|Proc2EnableVPID) != Proc2EnableEPT|Proc2EnableVPID {
		t.Errorf("secondary controls %#x: want EPT and VPID without unrestricted guest", ctl.Proc2)
	}
	if want := uint64(CR0PE | CR0NE | CR0PG); ctl.GuestCR0.Fixed0 != want {
		t.Errorf("guest CR0 FIXED0 %#x, want PE, NE and PG (%#x): the host's rules", ctl.GuestCR0.Fixed0, want)
	}
}
func TestNewControlsGuestFeatures(t *testing.T) {
	caps := probeFixture(t, bochsSkylakeX)
	// A guest told about RDTSCP on a processor without the control.
	caps.Proc2.Allowed1 &^= Proc2EnableRDTSCP
	if _, err := NewControls(caps, ControlOptions{RDTSCP: true}); err == nil || !strings.Contains(err.Error(), "RDTSCP") {
		t.Errorf("missing RDTSCP control: err = %v", err)
	}
	ctl, err := NewControls(caps, ControlOptions{})
	if err != nil || ctl.Proc2&Proc2EnableRDTSCP != 0 {
		t.Errorf("RDTSCP hidden: %v, secondary %#x", err, ctl.Proc2)
	}
	caps = probeFixture(t, bochsSkylakeX)
	ctl, err = NewControls(caps, ControlOptions{INVPCID: true, XSAVES: true})
	if err != nil || ctl.Proc2&(Proc2EnableINVPCID|Proc2EnableXSAVES) != Proc2EnableINVPCID|Proc2EnableXSAVES {
		t.Errorf("INVPCID/XSAVES: %v, secondary %#x", err, ctl.Proc2)
	}
	// Without INVVPID the engine does without VPIDs.
	caps.EPTVPID &^= VPIDINVVPID
	if ctl, err = NewControls(caps, ControlOptions{}); err != nil || ctl.VPID() || ctl.INVVPIDType != 0 {
		t.Errorf("no INVVPID: %v, VPID %v", err, ctl != nil && ctl.VPID())
	}
	// EPT without a 4-level walk is refused.
	caps = probeFixture(t, bochsSkylakeX)
	caps.EPTVPID &^= EPTPageWalk4
	if _, err := NewControls(caps, ControlOptions{}); err == nil || !strings.Contains(err.Error(), "4-level") {
		t.Errorf("no 4-level EPT: err = %v", err)
	}
	// A required exit control the processor lacks is named.
	caps = probeFixture(t, bochsSkylakeX)
	caps.Exit.Allowed1 &^= ExitLoadPAT
	if _, err := NewControls(caps, ControlOptions{}); err == nil || !strings.Contains(err.Error(), "VM-exit controls") || !strings.Contains(err.Error(), "bit 19") {
		t.Errorf("no load-PAT exit control: err = %v", err)
	}
}

// TestControlsMatchBochsRuns: the control words NewControls computes from
// each Bochs model's capability MSRs are the ones the image wrote to the
// VMCS when it ran guests under that model (its VMCS dumps; the image's
// guest CPUID policy shows RDTSCP there, hence "enable RDTSCP"). The
// IA-32e mode guest entry control, set per entry, is left out.
func TestControlsMatchBochsRuns(t *testing.T) {
	for _, c := range []struct {
		fx                            cpuFixture
		pin, proc, proc2, exit, entry uint32
	}{
		{bochsSkylakeX, 0x3f, 0xa51865fa, 0xaa, 0x3fefff, 0xd1ff},
		{bochsLynnfield, 0x3f, 0xa51865fa, 0x2a, 0x3fefff, 0xd1ff},
	} {
		ctl, err := NewControls(probeFixture(t, c.fx), ControlOptions{RDTSCP: true})
		if err != nil {
			t.Fatalf("%s: %v", c.fx.name, err)
		}
		got := [5]uint32{ctl.Pin, ctl.Proc, ctl.Proc2, ctl.Exit, ctl.Entry}
		if want := [5]uint32{c.pin, c.proc, c.proc2, c.exit, c.entry}; got != want {
			t.Errorf("%s: controls pin/proc/proc2/exit/entry %#x, the image ran with %#x", c.fx.name, got, want)
		}
	}
}
