package emulator

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestQEMUArgs(t *testing.T) {
	base := []string{"-nodefaults", "-display", "none", "-no-reboot"}
	tests := []struct {
		name  string
		cfg   Config
		accel Accel
		vars  string
		want  []string
	}{
		{
			name:  "PVH under TCG",
			cfg:   Config{Emulator: QEMU, SMP: 2, MemoryMiB: 2048, Kernel: "/b/tamavisor.elf"},
			accel: AccelTCG,
			want: append(append([]string{"-machine", "q35", "-accel", "tcg", "-cpu", "qemu64,+svm,+npt,+rdrand", "-m", "2048M", "-smp", "2"},
				base...), "-serial", "stdio", "-kernel", "/b/tamavisor.elf"),
		},
		{
			name:  "KVM takes the host CPU; an IOMMU under KVM needs the split irqchip",
			cfg:   Config{Emulator: QEMU, SMP: 1, MemoryMiB: 1024, Kernel: "k", IOMMU: IOMMUIntel},
			accel: AccelKVM,
			want: append(append([]string{"-machine", "q35,kernel-irqchip=split", "-accel", "kvm", "-cpu", "host", "-m", "1024M", "-smp", "1"},
				base...), "-serial", "stdio", "-device", "intel-iommu,aw-bits=48", "-kernel", "k"),
		},
		{
			name:  "AMD IOMMU under TCG keeps the plain q35",
			cfg:   Config{Emulator: QEMU, SMP: 1, MemoryMiB: 2048, Kernel: "k", IOMMU: IOMMUAMD},
			accel: AccelTCG,
			want: append(append([]string{"-machine", "q35", "-accel", "tcg", "-cpu", TCGCPU, "-m", "2048M", "-smp", "1"},
				base...), "-serial", "stdio", "-device", "amd-iommu", "-kernel", "k"),
		},
		{
			name: "UEFI through OVMF, commas in paths doubled, extra args last, interactive console",
			cfg: Config{Emulator: QEMU, SMP: 2, MemoryMiB: 2048, UEFI: "/b/a,b.img", OVMFCode: "/fw/CODE.fd",
				ExtraArgs: []string{"-d", "int"}, Interactive: true, CPU: "max"},
			accel: AccelTCG,
			vars:  "/tmp/x/VARS.fd",
			want: append(append([]string{"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "2048M", "-smp", "2"},
				base...), "-serial", "mon:stdio",
				"-drive", "if=pflash,format=raw,readonly=on,file=/fw/CODE.fd",
				"-drive", "if=pflash,format=raw,file=/tmp/x/VARS.fd",
				"-drive", "format=raw,snapshot=on,file=/b/a,,b.img",
				"-d", "int"),
		},
		{
			name:  "ISO from the CD drive",
			cfg:   Config{Emulator: QEMU, SMP: 1, MemoryMiB: 2048, ISO: "/b/t.iso"},
			accel: AccelTCG,
			want: append(append([]string{"-machine", "q35", "-accel", "tcg", "-cpu", TCGCPU, "-m", "2048M", "-smp", "1"},
				base...), "-serial", "stdio", "-drive", "media=cdrom,format=raw,readonly=on,file=/b/t.iso", "-boot", "order=d"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := qemuArgs(&tt.cfg, tt.accel, tt.vars)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("qemuArgs:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no emulator", Config{Kernel: "k"}, "no emulator"},
		{"unknown emulator", Config{Emulator: "vbox", Kernel: "k"}, "unknown emulator"},
		{"no medium", Config{Emulator: QEMU}, "exactly one"},
		{"two media", Config{Emulator: QEMU, Kernel: "k", ISO: "i"}, "exactly one"},
		{"bad accel", Config{Emulator: QEMU, Kernel: "k", Accel: "hvf"}, "unknown accelerator"},
		{"bad iommu", Config{Emulator: QEMU, Kernel: "k", IOMMU: "arm"}, "unknown IOMMU"},
		{"negative smp", Config{Emulator: QEMU, Kernel: "k", SMP: -1}, "negative"},
		{"bochs kernel", Config{Emulator: Bochs, Kernel: "k"}, "only an ISO"},
		{"bochs kvm", Config{Emulator: Bochs, ISO: "i", Accel: AccelKVM}, "no KVM"},
		{"bochs iommu", Config{Emulator: Bochs, ISO: "i", IOMMU: IOMMUIntel}, "no IOMMU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}

	q := Config{Emulator: QEMU, Kernel: "k"}
	if err := q.validate(); err != nil {
		t.Fatal(err)
	}
	if q.SMP != 1 || q.MemoryMiB != DefaultQEMUMemoryMiB || q.Accel != AccelAuto || q.IOMMU != IOMMUNone || q.OVMFCode != DefaultOVMFCode {
		t.Errorf("QEMU defaults not filled in: %+v", q)
	}
	b := Config{Emulator: Bochs, ISO: "i"}
	if err := b.validate(); err != nil {
		t.Fatal(err)
	}
	if b.CPU != BochsCPU || b.MemoryMiB != DefaultBochsMemoryMiB || b.BochsIPS != DefaultBochsIPS {
		t.Errorf("Bochs defaults not filled in: %+v", b)
	}
}

func TestParseMemory(t *testing.T) {
	good := map[string]int{"2G": 2048, "2g": 2048, "4096": 4096, "4096M": 4096, "1T": 1 << 20, "2048K": 2, " 512m ": 512}
	for in, want := range good {
		got, err := ParseMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "2X", "-1G", "0", "1.5G", "1000K", "99999999999"} {
		if got, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) = %d, want an error", in, got)
		}
	}
}

func TestBochsConfig(t *testing.T) {
	c := Config{Emulator: Bochs, ISO: "/b/tamavisor.iso", SMP: 2}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	c.ExtraArgs = []string{"debug: action=report"}
	rc, err := bochsConfig(&c, "/tmp/r/com1.txt", "/tmp/r/bochs.log")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(rc), "\n")
	want := []string{
		`display_library: rfb, options="timeout=0"`,
		`romimage: file="/usr/share/bochs/BIOS-bochs-latest"`,
		`vgaromimage: file="/usr/share/vgabios/vgabios.bin"`,
		"cpu: model=corei7_skylake_x, count=2, ips=4000000, reset_on_triple_fault=0",
		"memory: guest=2048, host=2048",
		`ata0-slave: type=cdrom, path="/b/tamavisor.iso", status=inserted`,
		"boot: cdrom",
		`com1: enabled=1, mode=file, dev="/tmp/r/com1.txt"`,
		"clock: sync=none, time0=utc",
		"panic: action=fatal",
		"magic_break: enabled=0",
		"sound: driver=dummy",
		`log: "/tmp/r/bochs.log"`,
	}
	for _, w := range want {
		found := false
		for _, l := range lines {
			if l == w {
				found = true
			}
		}
		if !found {
			t.Errorf("bochsrc lacks %q:\n%s", w, rc)
		}
	}
	if lines[len(lines)-1] != "debug: action=report" {
		t.Errorf("extra bochsrc lines not appended last: %q", lines[len(lines)-1])
	}

	small := c
	small.MemoryMiB = 128
	rc, _ = bochsConfig(&small, "c", "l")
	if !strings.Contains(rc, "memory: guest=128, host=128\n") {
		t.Errorf("host memory is not the guest's:\n%s", rc)
	}
	// More guest than host memory makes Bochs swap blocks, which
	// corrupts the machine's memory: refused, by validate and here.
	big := c
	big.MemoryMiB = BochsMaxMemoryMiB + 1024
	if _, err := bochsConfig(&big, "c", "l"); err == nil || !strings.Contains(err.Error(), "2048 MiB") {
		t.Errorf("%d MiB under Bochs: %v, want an error naming the %d MiB limit", big.MemoryMiB, err, BochsMaxMemoryMiB)
	}
	big.MemoryMiB = BochsMaxMemoryMiB + 1
	if err := big.validate(); err == nil {
		t.Errorf("validate accepted %d MiB for Bochs", big.MemoryMiB)
	}

	bad := c
	bad.ISO = `/b/"x".iso`
	if _, err := bochsConfig(&bad, "c", "l"); err == nil {
		t.Error("a quote in the ISO path was accepted")
	}
	bad = c
	bad.CPU = "corei7_skylake_x, count=8"
	if _, err := bochsConfig(&bad, "c", "l"); err == nil {
		t.Error("a CPU model carrying more options was accepted")
	}
}

// fakeHost serves files from a map; paths absent are "not found", and the
// device's open error is configurable.
type fakeHost struct {
	openErr error
	files   map[string]string
}

func (h fakeHost) OpenReadWrite(path string) error {
	if path != kvmDevice {
		return fs.ErrNotExist
	}
	return h.openErr
}

func (h fakeHost) ReadFile(path string) ([]byte, error) {
	if v, ok := h.files[path]; ok {
		return []byte(v), nil
	}
	return nil, fs.ErrNotExist
}

const (
	nestedIntel = "/sys/module/kvm_intel/parameters/nested"
	nestedAMD   = "/sys/module/kvm_amd/parameters/nested"
)

func TestDetectKVM(t *testing.T) {
	tests := []struct {
		name         string
		host         fakeHost
		device, nest bool
		reason       string
	}{
		{"no device", fakeHost{openErr: fs.ErrNotExist, files: map[string]string{nestedIntel: "Y\n"}}, false, false, "no such device"},
		{"device not writable", fakeHost{openErr: fs.ErrPermission}, false, false, "permission denied"},
		{"intel nested", fakeHost{files: map[string]string{nestedIntel: "Y\n"}}, true, true, "kvm_intel"},
		{"amd nested", fakeHost{files: map[string]string{nestedAMD: "1\n"}}, true, true, "kvm_amd"},
		{"intel not nested", fakeHost{files: map[string]string{nestedIntel: "N\n"}}, true, false, "nested virtualization is off"},
		{"amd not nested", fakeHost{files: map[string]string{nestedAMD: "0\n"}}, true, false, "=0"},
		{"no vendor module (a paravirtual KVM)", fakeHost{files: map[string]string{}}, true, false, "neither kvm_intel nor kvm_amd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DetectKVM(tt.host)
			if s.DeviceUsable != tt.device || s.Nested != tt.nest {
				t.Errorf("DetectKVM = %+v, want device %v nested %v", s, tt.device, tt.nest)
			}
			if s.Usable() != (tt.device && tt.nest) {
				t.Errorf("Usable() = %v", s.Usable())
			}
			if !strings.Contains(s.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", s.Reason, tt.reason)
			}
		})
	}
}

// TestDetectKVMOnDisk runs the real file access against a fake root.
func TestDetectKVMOnDisk(t *testing.T) {
	root := t.TempDir()
	h := HostAt{Root: root}
	if s := DetectKVM(h); s.DeviceUsable {
		t.Fatalf("empty root: %+v", s)
	}
	mustWrite(t, filepath.Join(root, "dev/kvm"), "")
	mustWrite(t, filepath.Join(root, "sys/module/kvm_amd/parameters/nested"), "0\n")
	if s := DetectKVM(h); !s.DeviceUsable || s.Nested {
		t.Fatalf("device, nesting off: %+v", s)
	}
	mustWrite(t, filepath.Join(root, "sys/module/kvm_amd/parameters/nested"), "1\n")
	if s := DetectKVM(h); !s.Usable() {
		t.Fatalf("device, nesting on: %+v", s)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestChooseAccel(t *testing.T) {
	usable := KVMStatus{DeviceUsable: true, Nested: true, Reason: "ok"}
	flat := KVMStatus{DeviceUsable: true, Reason: "nested off"}
	none := KVMStatus{Reason: "no device"}
	tests := []struct {
		req     Accel
		kvm     KVMStatus
		want    Accel
		wantErr bool
	}{
		{AccelAuto, usable, AccelKVM, false},
		{AccelAuto, flat, AccelTCG, false},
		{AccelAuto, none, AccelTCG, false},
		{"", usable, AccelKVM, false},
		{AccelTCG, usable, AccelTCG, false},
		{AccelKVM, usable, AccelKVM, false},
		{AccelKVM, flat, AccelKVM, false},
		{AccelKVM, none, "", true},
		{"hvf", usable, "", true},
	}
	for _, tt := range tests {
		got, reason, err := ChooseAccel(tt.req, tt.kvm)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ChooseAccel(%q, %+v) = %q, %q, %v; want %q (error %v)", tt.req, tt.kvm, got, reason, err, tt.want, tt.wantErr)
		}
		if err == nil && !strings.Contains(reason, tt.kvm.Reason) && tt.req != AccelTCG {
			t.Errorf("ChooseAccel(%q) reason %q does not say why (%q)", tt.req, reason, tt.kvm.Reason)
		}
	}
	if _, reason, _ := ChooseAccel(AccelKVM, flat); !strings.Contains(reason, "warning") {
		t.Errorf("forced KVM without nesting gives no warning: %q", reason)
	}
}

func TestMissingToolError(t *testing.T) {
	c := Config{Emulator: QEMU, Kernel: os.Args[0], QEMUBinary: "no-such-qemu-binary-xyz"}
	_, err := Describe(c)
	var missing *MissingToolError
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("Describe with a missing QEMU: %v, want a MissingToolError telling to run make deps", err)
	}
}

func TestFormatCommand(t *testing.T) {
	got := FormatCommand([]string{"qemu", "-cpu", "qemu64,+svm", "-append", "a b", "it's", ""})
	want := `qemu -cpu qemu64,+svm -append 'a b' 'it'\''s' ''`
	if got != want {
		t.Errorf("FormatCommand = %s, want %s", got, want)
	}
}
