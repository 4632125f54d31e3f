package inventory

import (
	"reflect"
	"strings"
	"testing"
)

// sampleLog is a console log as the image prints it on OVMF (shortened).
const sampleLog = `BdsDxe: starting Boot0001
tamavisor: starting
tamavisor: booted via uefi
tamavisor: inventory begin
boot: protocol=uefi loader="EDK II"
cpu: vendor=AuthenticAMD name="QEMU Virtual CPU version 2.5+" family=0xf model=0x6b stepping=1 listed=2 online=2 apic-ids=0,1
memory: usable-mib=2047 reserved-kib=12845521 acpi-kib=0 regions=5 max-address=0x10000000000
paging: host="0 x 1 GiB, 2046 x 2 MiB, 1023 x 4 KiB pages; 8 table pages (0 spare); 2047 MiB WB, 2048 MiB UC"
acpi: revision=2 oem="BOCHS" tables=FACP,APIC,HPET,MCFG,WAET problems=0
timer: tsc-hz=2994000000 source=acpi-pm notes=0
entropy: source=rdrand
svm: revision=1 asids=16 npt=yes nrips=no
iommu: units=1 kind=vt-d base=0xfed90000
pci: devices=2
pci: 0000:00:00.0 8086:29c0 host bridge
pci: 0000:00:1f.2 8086:2922 sata "AHCI controller"
tamavisor: inventory end
tamavisor: ready
`

func TestParse(t *testing.T) {
	inv, err := Parse(strings.ReplaceAll(sampleLog, "\n", "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if inv.BootedVia != "uefi" || !inv.Ready {
		t.Errorf("BootedVia %q Ready %v", inv.BootedVia, inv.Ready)
	}
	if len(inv.Lines) != 12 {
		t.Errorf("%d lines, want 12", len(inv.Lines))
	}
	if v, _ := inv.Field("cpu", "name"); v != "QEMU Virtual CPU version 2.5+" {
		t.Errorf("quoted name = %q", v)
	}
	if v, _ := inv.Field("cpu", "apic-ids"); v != "0,1" {
		t.Errorf("apic-ids = %q", v)
	}
	if n, err := inv.Int("cpu", "online"); n != 2 || err != nil {
		t.Errorf("online = %d, %v", n, err)
	}
	if n, err := inv.Int("iommu", "base"); n != 0xfed90000 || err != nil {
		t.Errorf("hex base = %#x, %v", n, err)
	}
	if _, err := inv.Int("cpu", "vendor"); err == nil {
		t.Error("a non-number parsed as an integer")
	}
	if _, err := inv.Int("cpu", "absent"); err == nil {
		t.Error("an absent field parsed")
	}
	devs := inv.PCIDevices()
	if len(devs) != 2 || !reflect.DeepEqual(devs[0].Words, []string{"0000:00:00.0", "8086:29c0", "host", "bridge"}) {
		t.Errorf("PCI devices %+v", devs)
	}
	if devs[1].Words[3] != `"AHCI controller"` {
		t.Errorf("a quoted word is kept whole with its quotes: %q", devs[1].Words)
	}
	if m := inv.Missing(); len(m) != 0 {
		t.Errorf("complete inventory reported missing %v", m)
	}
}

func TestParseMissing(t *testing.T) {
	log := strings.Replace(sampleLog, "timer: tsc-hz=2994000000 source=acpi-pm notes=0\n", "", 1)
	log = strings.Replace(log, "svm: revision=1 asids=16 npt=yes nrips=no\n", "", 1)
	log = strings.Replace(log, "pci: devices=2", "pci: devices=3", 1)
	log = strings.Replace(log, "tamavisor: booted via uefi\n", "", 1)
	inv, err := Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(inv.Missing(), "; ")
	for _, want := range []string{"booted via", "timer", "svm, vmx or virt", "devices=3, 2 listed"} {
		if !strings.Contains(got, want) {
			t.Errorf("Missing() = %q lacks %q", got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, log, want string }{
		{"no block", "tamavisor: ready\n", "no \"tamavisor: inventory begin\""},
		{"truncated", "tamavisor: inventory begin\ncpu: online=2\n", "truncated"},
		{"stray line", "tamavisor: inventory begin\npanic: oops\ngoroutine 1 [running]:\nmain.main()\ntamavisor: inventory end\n", "line 3"},
		{"unterminated quote", "tamavisor: inventory begin\ncpu: name=\"QEMU\ntamavisor: inventory end\n", "unterminated quote"},
		{"duplicate field", "tamavisor: inventory begin\ncpu: online=1 online=2\ntamavisor: inventory end\n", "twice"},
		{"bad topic", "tamavisor: inventory begin\nCPU Info: x=1\ntamavisor: inventory end\n", "topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseLastBlockAndReadyOrder(t *testing.T) {
	log := "tamavisor: inventory begin\ncpu: online=1\ntamavisor: inventory end\ntamavisor: ready\n" +
		"tamavisor: inventory begin\ncpu: online=2\ntamavisor: inventory end\n"
	inv, err := Parse(log)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := inv.Field("cpu", "online"); v != "2" {
		t.Errorf("took online=%s, want the last block's 2", v)
	}
	if inv.Ready {
		t.Error("a ready marker before the block counted as following it")
	}
}

func TestParseLine(t *testing.T) {
	l, err := ParseLine(`virt: none reason="no VMX \"or\" SVM" x=`)
	if err != nil {
		t.Fatal(err)
	}
	if l.Topic != "virt" || !reflect.DeepEqual(l.Words, []string{"none"}) ||
		l.Fields["reason"] != `no VMX "or" SVM` || l.Fields["x"] != "" {
		t.Errorf("ParseLine = %+v", l)
	}
	if l, err := ParseLine("iommu:"); err != nil || l.Topic != "iommu" || len(l.Words)+len(l.Fields) != 0 {
		t.Errorf("empty line: %+v, %v", l, err)
	}
	for _, bad := range []string{"no colon here", ": x=1", `cpu: name="a"b`} {
		if _, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) accepted", bad)
		}
	}
}
