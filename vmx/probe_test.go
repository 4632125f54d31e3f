package vmx

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// parseSummary splits a Summary line into its prefix and key=value pairs,
// failing the test on anything malformed.
func parseSummary(t testing.TB, line, prefix string) map[string]string {
	t.Helper()
	fields := strings.Fields(line)
	if len(fields) == 0 || fields[0] != prefix {
		t.Fatalf("summary %q does not start with %q", line, prefix)
	}
	kv := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			t.Fatalf("summary field %q is not key=value", f)
		}
		if _, dup := kv[k]; dup {
			t.Fatalf("summary key %q appears twice", k)
		}
		kv[k] = v
	}
	return kv
}

func TestProbeRealProcessors(t *testing.T) {
	tests := []struct {
		fix cpuFixture
		// want holds every Summary key and its expected value.
		want map[string]string
		// reads is exactly the set of MSRs Probe may read.
		reads []uint32
	}{
		{
			fix: bochsSkylakeX,
			want: map[string]string{
				"revision": "0x2b", "vmcs-size": "4096", "true-controls": "yes", "secondary-controls": "yes",
				"ept": "yes", "ept-4level": "yes", "ept-5level": "no", "ept-wb": "yes", "ept-2m": "yes",
				"ept-1g": "yes", "ept-ad": "yes", "invept": "yes", "vpid": "yes", "invvpid": "yes",
				"unrestricted-guest": "yes", "preemption-timer": "yes", "preemption-rate": "0",
				"apic-virt": "yes", "x2apic-virt": "yes", "apic-register-virt": "yes",
				"virtual-interrupt-delivery": "yes", "posted-interrupts": "no", "virtual-nmi": "yes",
				"tpr-shadow": "yes", "msr-bitmaps": "yes", "io-bitmaps": "yes", "monitor-trap-flag": "no",
				"pause-loop-exiting": "yes", "vmcs-shadowing": "yes", "pml": "yes", "ept-ve": "yes",
				"tsc-scaling": "yes", "vmfunc": "yes", "load-efer": "yes", "load-pat": "yes",
				"feature-control-locked": "yes",
			},
			reads: []uint32{0x3a, 0x480, 0x481, 0x482, 0x483, 0x484, 0x485, 0x486, 0x487, 0x488, 0x489,
				0x48a, 0x48b, 0x48c, 0x48d, 0x48e, 0x48f, 0x490, 0x491},
		},
		{
			fix: bochsLynnfield,
			want: map[string]string{
				"revision": "0x2b", "vmcs-size": "4096", "true-controls": "yes", "secondary-controls": "yes",
				"ept": "yes", "ept-4level": "yes", "ept-5level": "no", "ept-wb": "yes", "ept-2m": "yes",
				"ept-1g": "no", "ept-ad": "no", "invept": "yes", "vpid": "yes", "invvpid": "yes",
				"unrestricted-guest": "no", "preemption-timer": "yes", "preemption-rate": "0",
				"apic-virt": "yes", "x2apic-virt": "yes", "apic-register-virt": "no",
				"virtual-interrupt-delivery": "no", "posted-interrupts": "no", "virtual-nmi": "yes",
				"tpr-shadow": "yes", "msr-bitmaps": "yes", "io-bitmaps": "yes", "monitor-trap-flag": "no",
				"pause-loop-exiting": "no", "vmcs-shadowing": "no", "pml": "no", "ept-ve": "no",
				"tsc-scaling": "no", "vmfunc": "no", "load-efer": "yes", "load-pat": "yes",
				"feature-control-locked": "yes",
			},
			reads: []uint32{0x3a, 0x480, 0x481, 0x482, 0x483, 0x484, 0x485, 0x486, 0x487, 0x488, 0x489,
				0x48a, 0x48b, 0x48c, 0x48d, 0x48e, 0x48f, 0x490},
		},
		{
			fix: realCoreI7_6700K,
			want: map[string]string{
				"revision": "0x4", "vmcs-size": "1024", "true-controls": "yes", "secondary-controls": "yes",
				"ept": "yes", "ept-4level": "yes", "ept-5level": "no", "ept-wb": "yes", "ept-2m": "yes",
				"ept-1g": "yes", "ept-ad": "yes", "invept": "yes", "vpid": "yes", "invvpid": "yes",
				"unrestricted-guest": "yes", "preemption-timer": "yes", "preemption-rate": "7",
				"apic-virt": "yes", "x2apic-virt": "yes", "apic-register-virt": "no",
				"virtual-interrupt-delivery": "no", "posted-interrupts": "no", "virtual-nmi": "yes",
				"tpr-shadow": "yes", "msr-bitmaps": "yes", "io-bitmaps": "yes", "monitor-trap-flag": "yes",
				"pause-loop-exiting": "yes", "vmcs-shadowing": "yes", "pml": "yes", "ept-ve": "yes",
				"tsc-scaling": "no", "vmfunc": "yes", "load-efer": "yes", "load-pat": "yes",
				"feature-control-locked": "yes",
			},
			reads: []uint32{0x3a, 0x480, 0x481, 0x482, 0x483, 0x484, 0x485, 0x486, 0x487, 0x488, 0x489,
				0x48a, 0x48b, 0x48c, 0x48d, 0x48e, 0x48f, 0x490, 0x491},
		},
		{
			fix: realCore2X6800,
			want: map[string]string{
				"revision": "0x7", "vmcs-size": "1024", "true-controls": "no", "secondary-controls": "no",
				"ept": "no", "ept-4level": "no", "ept-5level": "no", "ept-wb": "no", "ept-2m": "no",
				"ept-1g": "no", "ept-ad": "no", "invept": "no", "vpid": "no", "invvpid": "no",
				"unrestricted-guest": "no", "preemption-timer": "no", "preemption-rate": "0",
				"apic-virt": "no", "x2apic-virt": "no", "apic-register-virt": "no",
				"virtual-interrupt-delivery": "no", "posted-interrupts": "no", "virtual-nmi": "no",
				"tpr-shadow": "yes", "msr-bitmaps": "yes", "io-bitmaps": "yes", "monitor-trap-flag": "no",
				"pause-loop-exiting": "no", "vmcs-shadowing": "no", "pml": "no", "ept-ve": "no",
				"tsc-scaling": "no", "vmfunc": "no", "load-efer": "no", "load-pat": "no",
				"feature-control-locked": "yes",
			},
			reads: []uint32{0x3a, 0x480, 0x481, 0x482, 0x483, 0x484, 0x485, 0x486, 0x487, 0x488, 0x489, 0x48a},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fix.name, func(t *testing.T) {
			cpu, m := tt.fix.fakes()
			rec := &recordingMSRs{MSRs: m}
			caps, err := Probe(cpu, rec)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			got := parseSummary(t, caps.Summary(), "vmx:")
			for k, v := range got {
				if v != "yes" && v != "no" && strings.Trim(v, "0123456789abcdefx") != "" {
					t.Errorf("summary value %s=%q is neither yes/no nor a number", k, v)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("summary has %d keys, want %d: %s", len(got), len(tt.want), caps.Summary())
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("summary %s=%q, want %q", k, got[k], v)
				}
			}
			reads := append([]uint32(nil), rec.reads...)
			sort.Slice(reads, func(i, j int) bool { return reads[i] < reads[j] })
			if !equalU32(reads, tt.reads) {
				t.Errorf("Probe read MSRs %#x, want exactly %#x", reads, tt.reads)
			}
		})
	}
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestProbeDecodedFields(t *testing.T) {
	cpu, m := realCoreI7_6700K.fakes()
	c, err := Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	// IA32_VMX_BASIC = 0x00da0400_00000004.
	wantBasic := Basic{Revision: 4, RegionSize: 1024, DualMonitor: true, MemoryType: MemoryTypeWB, InsOutsInfo: true, TrueControls: true}
	if c.Basic != wantBasic {
		t.Errorf("Basic = %+v, want %+v", c.Basic, wantBasic)
	}
	// IA32_VMX_MISC = 0x7004c1e7.
	wantMisc := Misc{PreemptionTimerRate: 7, StoresLMA: true, ActivityHLT: true, ActivityShutdown: true,
		ActivityWaitForSIPI: true, ProcessorTraceInVMX: true, SMBaseReadInSMM: true, CR3TargetCount: 4,
		MaxMSRListEntries: 512, SMMMonitorCtlBit2: true, VMWRITEAnyField: true, ZeroLengthInjection: true}
	if c.Misc != wantMisc {
		t.Errorf("Misc = %+v, want %+v", c.Misc, wantMisc)
	}
	if c.MaxVMCSIndex != 0x17 {
		t.Errorf("MaxVMCSIndex = %#x, want 0x17 (IA32_VMX_VMCS_ENUM 0x2e, bits 9:1)", c.MaxVMCSIndex)
	}
	if c.VMFunc != 1 || c.EPTVPID != 0x00000f01_06334141 {
		t.Errorf("VMFunc = %#x, EPTVPID = %#x", c.VMFunc, c.EPTVPID)
	}
	if c.HasTertiary || c.HasSecondaryExit || c.Hypervisor {
		t.Errorf("HasTertiary=%v HasSecondaryExit=%v Hypervisor=%v, want all false", c.HasTertiary, c.HasSecondaryExit, c.Hypervisor)
	}
	if c.FeatureControl.NeedsEnable() {
		t.Error("IA32_FEATURE_CONTROL = 5 is locked and enabled; NeedsEnable should be false")
	}

	cpu, m = realCore2X6800.fakes()
	c, err = Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	// IA32_VMX_BASIC = 0x001a0400_00000007: dual-monitor, WB, no TRUE MSRs.
	wantBasic = Basic{Revision: 7, RegionSize: 1024, DualMonitor: true, MemoryType: MemoryTypeWB}
	if c.Basic != wantBasic {
		t.Errorf("Core2 Basic = %+v, want %+v", c.Basic, wantBasic)
	}
	if c.HasSecondary || c.EPTVPID != 0 || c.VMFunc != 0 || c.Proc2 != (ControlCaps{}) {
		t.Errorf("Core2: HasSecondary=%v EPTVPID=%#x VMFunc=%#x Proc2=%+v, want none", c.HasSecondary, c.EPTVPID, c.VMFunc, c.Proc2)
	}
}

// TRUE controls let the CR3-load/store exiting controls (primary bits 15,
// 16) and the debug-control save/load (exit/entry bit 2) be 0; the legacy
// MSRs force them to 1 (SDM Appendix A.2).
func TestTrueVersusLegacyControls(t *testing.T) {
	cpu, m := bochsSkylakeX.fakes()
	c, err := Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	if c.Proc != (ControlCaps{0x04006172, 0xf7f9fffe}) || c.LegacyProc != (ControlCaps{0x0401e172, 0xf7f9fffe}) {
		t.Fatalf("Proc = %+v, LegacyProc = %+v", c.Proc, c.LegacyProc)
	}
	want := uint32(0x04006172 | ProcHLTExiting | ProcUseMSRBitmaps | ProcActivateSecondary)
	if got, err := c.Proc.Adjust(ProcHLTExiting|ProcUseMSRBitmaps|ProcActivateSecondary, 0); err != nil || got != want {
		t.Errorf("Proc.Adjust = %#x, %v; want %#x (CR3 exiting left 0)", got, err, want)
	}
	if got, _ := c.Exit.Adjust(ExitHostAddressSpaceSize, 0); got&ExitSaveDebugControls != 0 {
		t.Errorf("Exit.Adjust = %#x forces save-debug-controls although TRUE_EXIT_CTLS allows 0", got)
	}
	if got, _ := c.Entry.Adjust(EntryIA32eModeGuest, 0); got != 0x11fb|EntryIA32eModeGuest {
		t.Errorf("Entry.Adjust = %#x, want %#x", got, 0x11fb|EntryIA32eModeGuest)
	}

	// The Core 2 has no TRUE MSRs: the legacy ones are the effective ones
	// and the CR3 exiting controls stay forced.
	cpu, m = realCore2X6800.fakes()
	c, err = Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	if c.Proc != c.LegacyProc || c.Pin != c.LegacyPin || c.Exit != c.LegacyExit || c.Entry != c.LegacyEntry {
		t.Error("without TRUE MSRs the effective capabilities must be the legacy ones")
	}
	if got, _ := c.Proc.Adjust(ProcHLTExiting, 0); got&(ProcCR3LoadExiting|ProcCR3StoreExiting) != ProcCR3LoadExiting|ProcCR3StoreExiting {
		t.Errorf("legacy Proc.Adjust = %#x must keep CR3-load/store exiting", got)
	}

	// TRUE MSRs present in the file but BASIC bit 55 clear: they must be
	// neither read nor used.
	cpu, m = bochsSkylakeX.fakes()
	m[0x480] &^= 1 << 55
	for _, r := range []uint32{0x48d, 0x48e, 0x48f, 0x490} {
		m[r] = 0xffffffff_00000000 // would make everything optional
	}
	rec := &recordingMSRs{MSRs: m}
	c, err = Probe(cpu, rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.reads {
		if r >= 0x48d && r <= 0x490 {
			t.Errorf("read TRUE MSR %#x although IA32_VMX_BASIC bit 55 is 0", r)
		}
	}
	if c.Proc.Allowed0 != 0x0401e172 || c.Basic.TrueControls {
		t.Errorf("Proc = %+v, TrueControls = %v; want the legacy allowed-0 0x0401e172", c.Proc, c.Basic.TrueControls)
	}
}

func TestProbeVMXNotReported(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cpuid hwfake.CPUID
	}{
		// A QEMU TCG AMD CPU (qemu64), measured: no VMX bit, hypervisor bit.
		{"amd-qemu64", hwfake.CPUID{
			{Leaf: 0}: leaf(0x0d, 0x68747541, 0x444d4163, 0x69746e65),
			{Leaf: 1}: leaf(0x00060fb1, 0x00000800, 0x80002001, 0x078bfbfd),
		}},
		// Leaf 1 claims VMX but leaf 0 says leaf 1 does not exist.
		{"max-leaf-0", hwfake.CPUID{
			{Leaf: 0}: leaf(0, intelEBX, intelECX, intelEDX),
			{Leaf: 1}: leaf(0, 0, 1<<5, 0),
		}},
		{"intel-vmx-masked", hwfake.CPUID{
			{Leaf: 0}: leaf(0x16, intelEBX, intelECX, intelEDX),
			{Leaf: 1}: leaf(0x00050654, 0x00010800, 0x77faf3bf&^(1<<5), 0xbfebfbff),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An empty MSR file: any RDMSR fails the test.
			c, err := Probe(tc.cpuid, hwfake.MSRs{})
			var ue *UnavailableError
			if c != nil || !errors.As(err, &ue) || ue.Reason != NotReported {
				t.Fatalf("Probe = %v, %v; want NotReported", c, err)
			}
			want := "vmx: this CPU does not report VMX (CPUID.1:ECX.VMX[bit 5] = 0); under a hypervisor, enable nested virtualization"
			if err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestProbeFeatureControl(t *testing.T) {
	tests := []struct {
		fc          uint64
		reason      Reason // 0: success
		needsEnable bool
		mention     string
	}{
		{fc: 0x0, needsEnable: true},          // unlocked: engine enables
		{fc: 0x4, needsEnable: true},          // enabled but not locked
		{fc: 0x5},                             // what Bochs's BIOS and real firmware leave
		{fc: 0x7},                             // inside and outside SMX
		{fc: 0x1, reason: DisabledByFirmware}, // locked off
		{fc: 0x3, reason: DisabledByFirmware, mention: "only inside SMX"},
		{fc: 0x20001, reason: DisabledByFirmware}, // SGX bits do not matter
	}
	for _, tt := range tests {
		cpu, m := bochsSkylakeX.fakes()
		m[0x3a] = tt.fc
		if tt.reason == DisabledByFirmware {
			// Only IA32_FEATURE_CONTROL may be read on the way to the error.
			m = hwfake.MSRs{0x3a: tt.fc}
		}
		c, err := Probe(cpu, m)
		if tt.reason == 0 {
			if err != nil {
				t.Errorf("fc=%#x: %v", tt.fc, err)
				continue
			}
			if c.FeatureControl.NeedsEnable() != tt.needsEnable {
				t.Errorf("fc=%#x: NeedsEnable = %v, want %v", tt.fc, c.FeatureControl.NeedsEnable(), tt.needsEnable)
			}
			locked := map[bool]string{true: "yes", false: "no"}[tt.fc&1 != 0]
			if got := parseSummary(t, c.Summary(), "vmx:")["feature-control-locked"]; got != locked {
				t.Errorf("fc=%#x: feature-control-locked=%s, want %s", tt.fc, got, locked)
			}
			continue
		}
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Reason != tt.reason {
			t.Errorf("fc=%#x: err = %v, want reason %v", tt.fc, err, tt.reason)
			continue
		}
		want := "VMX is disabled by firmware: IA32_FEATURE_CONTROL is locked with VMXON outside SMX disabled; enable Intel VT-x in the firmware setup"
		if !strings.HasPrefix(ue.Detail, want) || !strings.Contains(ue.Detail, tt.mention) {
			t.Errorf("fc=%#x: detail %q, want it to start with %q and mention %q", tt.fc, ue.Detail, want, tt.mention)
		}
	}
}

func TestProbeInconsistent(t *testing.T) {
	tests := []struct {
		name    string
		msr     uint32
		value   uint64
		mention string
	}{
		{"vmcs-size-zero", 0x480, 0x00d80000_0000002b, "region size of 0"},
		{"vmcs-size-too-big", 0x480, 0x00d81001_0000002b, "region size of 4097"},
		{"revision-bit-31", 0x480, 0x00d81000_8000002b, "bit 31"},
		{"pin-must-be-1-not-allowed", 0x48d, 0x00000074_00000016, "IA32_VMX_TRUE_PINBASED_CTLS = 0x7400000016 reports bit 1"},
		{"secondary-contradiction", 0x48b, 0x02177ffe_00000001, "IA32_VMX_PROCBASED_CTLS2"},
		{"cr4-fixed", 0x489, 0x1000, "bit 13 must be both 1 and 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cpu, m := bochsSkylakeX.fakes()
			m[tt.msr] = tt.value
			_, err := Probe(cpu, m)
			var ue *UnavailableError
			if !errors.As(err, &ue) || ue.Reason != Inconsistent {
				t.Fatalf("err = %v, want Inconsistent", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

// Tertiary and secondary-exit controls: their MSRs are read exactly when
// the primary MSRs announce them (Appendix A.3.4, A.4.2). No fixture has
// them, so the announcing bits are set by hand.
func TestProbeTertiaryAndSecondaryExit(t *testing.T) {
	cpu, m := bochsSkylakeX.fakes()
	m[0x482] |= uint64(ProcActivateTertiary) << 32
	m[0x483] |= uint64(ExitActivateSecondaryControls) << 32
	m[0x492] = 0xf
	m[0x493] = 0x3
	c, err := Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasTertiary || c.Proc3 != 0xf || !c.HasSecondaryExit || c.Exit2 != 0x3 {
		t.Errorf("HasTertiary=%v Proc3=%#x HasSecondaryExit=%v Exit2=%#x", c.HasTertiary, c.Proc3, c.HasSecondaryExit, c.Exit2)
	}
}

// EPT_VPID_CAP exists when only VPID is allowed, and VMFUNC does not exist
// when "enable VM functions" is not allowed, even if EPT is.
func TestProbeEPTVPIDExistence(t *testing.T) {
	cpu, m := bochsLynnfield.fakes()
	m[0x48b] = uint64(Proc2EnableVPID) << 32
	c, err := Probe(cpu, m)
	if err != nil {
		t.Fatal(err)
	}
	if c.EPT() || !c.VPID() || !c.EPTVPID.Has(VPIDINVVPID) {
		t.Errorf("EPT=%v VPID=%v EPTVPID=%#x; want VPID only, with the cap MSR read", c.EPT(), c.VPID(), c.EPTVPID)
	}
	got := parseSummary(t, c.Summary(), "vmx:")
	if got["ept"] != "no" || got["ept-4level"] != "no" || got["invept"] != "no" || got["invvpid"] != "yes" {
		t.Errorf("summary %s", c.Summary())
	}

	cpu, m = bochsLynnfield.fakes()
	m[0x48b] = 0 // secondary controls exist but allow nothing
	delete(m, 0x48c)
	if _, err := Probe(cpu, m); err != nil {
		t.Fatalf("Probe read IA32_VMX_EPT_VPID_CAP although neither EPT nor VPID may be 1: %v", err)
	}
}
