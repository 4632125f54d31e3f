package main

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"tamavisor/guests/images"
	"tamavisor/qemu-test/vmlog"
)

func TestMedian(t *testing.T) {
	s := time.Second
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 100 * s}, 3 * s},
	}
	for _, tt := range tests {
		in := append([]time.Duration(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median reordered its input: %v", tt.in)
			}
		}
	}
}

func TestSelectMeasurements(t *testing.T) {
	all, err := selectMeasurements("")
	if err != nil || len(all) != len(measurements) {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	one, err := selectMeasurements("boot-tcg")
	if err != nil || len(one) != 1 || one[0].name != "boot-tcg" {
		t.Fatalf("boot-tcg: %+v, %v", one, err)
	}
	if _, err := selectMeasurements("boot-tcg,nonsense"); err == nil {
		t.Error("an unknown measurement was accepted")
	}
}

// TestSameKernelCommandLine holds the Linux comparison to like with like:
// the command line tamavisor gives its linux guest (boot/guest.go) is the
// one images.BootDirect boots the kernel with.
func TestSameKernelCommandLine(t *testing.T) {
	path := filepath.Join("..", "..", "boot", "guest.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cmdlines []string
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if key, ok := kv.Key.(*ast.BasicLit); !ok || key.Value != `"linux"` {
			return true
		}
		ast.Inspect(kv.Value, func(n ast.Node) bool {
			if field, ok := n.(*ast.KeyValueExpr); ok {
				if id, ok := field.Key.(*ast.Ident); ok && id.Name == "cmdline" {
					if lit, ok := field.Value.(*ast.BasicLit); ok {
						if s, err := strconv.Unquote(lit.Value); err == nil {
							cmdlines = append(cmdlines, s)
						}
					}
				}
			}
			return true
		})
		return false
	})
	if len(cmdlines) != 1 {
		t.Fatalf("%s: found %d string cmdline fields for the \"linux\" guest, want 1", path, len(cmdlines))
	}
	if cmdlines[0] != images.DefaultAppend {
		t.Errorf("tamavisor boots its linux guest with %q, BootDirect with %q: the boot ratio would compare unlike runs",
			cmdlines[0], images.DefaultAppend)
	}
}

func TestFigureName(t *testing.T) {
	for in, want := range map[string]string{
		"external-interrupt": "external_interrupt",
		"msr-read":           "msr_read",
		"npf":                "npf",
		"CR0 write":          "cr0_write",
	} {
		if got := figureName(in); got != want {
			t.Errorf("figureName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMedianSample(t *testing.T) {
	s := time.Second
	mk := func(d time.Duration, exits uint64) linuxSample {
		return linuxSample{toPrompt: d, run: &vmlog.Run{Exits: exits}}
	}
	samples := []linuxSample{mk(9*s, 900), mk(3*s, 300), mk(5*s, 500)}
	if got := medianSample(samples); got.run.Exits != 500 {
		t.Errorf("median of 9 s, 3 s, 5 s: the %v sample", got.toPrompt)
	}
	if got := medianSample(samples[:2]); got.run.Exits != 300 {
		t.Errorf("median of two: the %v sample, want the lower (one run's figures)", got.toPrompt)
	}
	if samples[0].run.Exits != 900 {
		t.Error("medianSample reordered its input")
	}
}

// TestVMXFigures: the VT-x figures come from the hypervisor's report of
// the Linux guest's run, the breakdown by reason adding up to the total.
func TestVMXFigures(t *testing.T) {
	console := "tamavisor: vm debian: starting vmlinuz (bzImage, 512 MiB, 1 vCPU, Intel VT-x)\n" +
		"[debian] $ \n" +
		"tamavisor: vm debian stopped after 80.500 s: powered off (ACPI S5)\n" +
		"tamavisor: vm debian exits 1000: cpuid=100 io=700 hlt=200\n" +
		"tamavisor: vm debian stats: exits=1000 heap-allocs=5 heap-allocs-per-exit=0.0050 handler-share-pct=12.50 wall-s=80.500\n" +
		vmlog.KeepsRunning + "\n"
	run := vmlog.Find(vmlog.Parse(console), "debian")
	if run == nil {
		t.Fatal("no run parsed")
	}
	got := map[string]float64{}
	for _, f := range vmxFigures(linuxSample{toPrompt: 3 * time.Minute, run: run}) {
		got[f.name] = f.value
	}
	want := map[string]float64{
		"linux_boot_seconds_vmx_bochs": 180, "exits_per_linux_boot_vmx": 1000,
		"exits_per_linux_boot_vmx_cpuid": 100, "exits_per_linux_boot_vmx_io": 700, "exits_per_linux_boot_vmx_hlt": 200,
		"heap_allocs_per_exit_vmx": 0.005, "exit_handling_share_vmx_pct": 12.5,
	}
	if len(got) != len(want) {
		t.Errorf("figures %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestLinuxISO: the ISO bench boots under Bochs holds the image and a GRUB
// entry starting the Linux guest.
func TestLinuxISO(t *testing.T) {
	if _, err := exec.LookPath("grub-mkrescue"); err != nil {
		t.Skip("grub-mkrescue is not installed (make deps)")
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "image.elf")
	if err := os.WriteFile(image, []byte("not really an ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso, err := linuxISO(image, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(iso)
	if err != nil || len(b) < 1<<20 {
		t.Fatalf("ISO %s: %d bytes, %v", iso, len(b), err)
	}
	if !bytes.Contains(b, []byte("multiboot2 /boot/tamavisor.elf tamavisor.guest=linux")) || !bytes.Contains(b, []byte("not really an ELF")) {
		t.Error("the ISO lacks the GRUB entry or the image")
	}
}
