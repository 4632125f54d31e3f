package vmx

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// headerDefines reads the numeric #defines of vmx_amd64.h.
func headerDefines(t *testing.T) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile("vmx_amd64.h")
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]uint64{}
	re := regexp.MustCompile(`(?m)^#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\s*(?://.*)?$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseUint(m[2], 0, 64)
		if err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
		defs[m[1]] = v
	}
	return defs
}

// TestWorldSwitchLayout: the offsets the assembly uses are those of the Go
// struct, field by field, and the constants it shares with Go agree.
func TestWorldSwitchLayout(t *testing.T) {
	defs := headerDefines(t)
	typ := reflect.TypeOf(worldSwitch{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := "WS_" + strings.ToUpper(f.Name)
		off, ok := defs[name]
		if !ok {
			t.Errorf("vmx_amd64.h has no %s for worldSwitch.%s", name, f.Name)
			continue
		}
		if off != uint64(f.Offset) {
			t.Errorf("%s = %d, worldSwitch.%s is at %d", name, off, f.Name, f.Offset)
		}
	}
	for name, want := range map[string]uint64{
		"WS_EXITED": wsExited, "WS_WRONGCPU": wsWrongCPU, "WS_VMPTRLD": wsVMPTRLD, "WS_VMWRITE": wsVMWRITE,
		"WS_VMLAUNCH": wsVMLAUNCH, "WS_VMREAD": wsVMREAD, "WS_INVALIDATION": wsInvalidation, "WS_VMCLEAR": wsVMCLEAR,
		"F_HOST_CR0": uint64(FieldHostCR0), "F_HOST_CR3": uint64(FieldHostCR3), "F_HOST_CR4": uint64(FieldHostCR4),
		"F_HOST_FS_BASE": uint64(FieldHostFSBase), "F_HOST_GS_BASE": uint64(FieldHostGSBase),
		"F_HOST_TR_BASE": uint64(FieldHostTRBase), "F_HOST_GDTR_BASE": uint64(FieldHostGDTRBase),
		"F_HOST_IDTR_BASE": uint64(FieldHostIDTRBase), "F_HOST_SYSENTER_ESP": uint64(FieldHostSysenterESP),
		"F_HOST_SYSENTER_EIP": uint64(FieldHostSysenterEIP), "F_HOST_RSP": uint64(FieldHostRSP),
		"F_HOST_RIP": uint64(FieldHostRIP), "F_HOST_SYSENTER_CS": uint64(FieldHostSysenterCS),
		"F_HOST_PAT": uint64(FieldHostPAT), "F_HOST_EFER": uint64(FieldHostEFER),
		"F_INSTRUCTION_ERROR": uint64(FieldInstructionError), "F_EXIT_REASON": uint64(FieldExitReason),
		"F_EXIT_INTR_INFO":    uint64(FieldExitInterruptionInfo),
		"MSR_FEATURE_CONTROL": uint64(IA32FeatureControl), "MSR_SYSENTER_CS": msrSysenterCS,
		"MSR_SYSENTER_ESP": msrSysenterESP, "MSR_SYSENTER_EIP": msrSysenterEIP, "MSR_PAT": msrPAT,
		"MSR_EFER": msrEFER, "MSR_FS_BASE": msrFSBase, "MSR_GS_BASE": msrGSBase,
		"HOST_CS": hostCodeSelector, "HOST_SS": hostDataSelector, "LAPIC_ID_REGISTER": 0xfee00020,
	} {
		if got, ok := defs[name]; !ok || got != want {
			t.Errorf("vmx_amd64.h %s = %#x (defined %v), want %#x", name, got, ok, want)
		}
	}
	if len(wsStatusNames) != wsVMCLEAR+1 {
		t.Errorf("%d status names", len(wsStatusNames))
	}
}

// TestInstructionMacros checks the hand-assembled VMX instructions against
// their encodings in Intel SDM Vol. 2 (as GNU as assembles them).
func TestInstructionMacros(t *testing.T) {
	b, err := os.ReadFile("vmx_amd64.h")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"VMXON_AX":      "f3 0f c7 30", // vmxon (%rax)
		"VMCLEAR_AX":    "66 0f c7 30", // vmclear (%rax)
		"VMPTRLD_AX":    "0f c7 30",    // vmptrld (%rax)
		"VMPTRST_AX":    "0f c7 38",    // vmptrst (%rax)
		"VMREAD_DX_AX":  "0f 78 d0",    // vmread %rdx, %rax
		"VMWRITE_AX_DX": "0f 79 d0",    // vmwrite %rax, %rdx
		"VMLAUNCH":      "0f 01 c2",
		"VMRESUME":      "0f 01 c3",
		"VMXOFF":        "0f 01 c4",
		"INVEPT_AX_CX":  "66 0f 38 80 01", // invept (%rcx), %rax
		"INVVPID_AX_CX": "66 0f 38 81 01", // invvpid (%rcx), %rax
		"SGDT_AX":       "0f 01 00",
		"SIDT_AX":       "0f 01 08",
		"INT_NMI":       "cd 02",
	}
	re := regexp.MustCompile(`(?m)^#define\s+(\w+)\s+((?:BYTE \$0x[0-9a-f]{2};?\s*)+)`)
	found := 0
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		w, ok := want[m[1]]
		if !ok {
			continue
		}
		found++
		var got []string
		for _, by := range regexp.MustCompile(`\$0x([0-9a-f]{2})`).FindAllStringSubmatch(m[2], -1) {
			got = append(got, by[1])
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s = %s, want %s", m[1], strings.Join(got, " "), w)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the %d instruction macros", found, len(want))
	}
}
