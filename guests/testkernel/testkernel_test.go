package testkernel

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// build runs make testkernel into a fresh build directory, so that the
// test checks the Makefile's rule and the sources as they are now.
func build(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"make", "as", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: run make deps (binutils)", tool)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "testkernel", "BUILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make testkernel: %v\n%s", err, out)
	}
	return filepath.Join(dir, "testkernel.elf")
}

// TestImageLayout checks what a Multiboot loader needs of the ELF: a
// 32-bit x86 executable loaded at 1 MiB, entered there, with a valid
// header in the first 8 KiB (Multiboot Specification 3.1.1-3.1.2).
func TestImageLayout(t *testing.T) {
	path := build(t)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 || f.Type != elf.ET_EXEC {
		t.Fatalf("%s is %v %v %v, want a 32-bit i386 executable", path, f.Class, f.Machine, f.Type)
	}
	if f.Entry < 0x100000 || f.Entry >= 0x200000 {
		t.Errorf("entry point %#x is not in the MiB above 1 MiB", f.Entry)
	}
	low := uint64(1 << 32)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Paddr < low {
			low = p.Paddr
		}
	}
	if low != 0x100000 {
		t.Errorf("lowest load address %#x, want 1 MiB", low)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for off := 0; off+12 <= len(raw) && off < 8192; off += 4 {
		magic := binary.LittleEndian.Uint32(raw[off:])
		if magic != 0x1BADB002 {
			continue
		}
		flags := binary.LittleEndian.Uint32(raw[off+4:])
		sum := binary.LittleEndian.Uint32(raw[off+8:])
		if magic+flags+sum != 0 {
			t.Errorf("Multiboot header at %#x: checksum does not make the sum 0", off)
		}
		if flags&(1<<16) != 0 {
			t.Errorf("Multiboot header flags %#x ask for the address fields; the kernel relies on the ELF headers", flags)
		}
		found = true
		break
	}
	if !found {
		t.Error("no Multiboot header in the first 8 KiB")
	}
}

// TestUnderQEMU runs the kernel directly under QEMU TCG: every step must
// pass and QEMU must exit with the status for exit code 0.
func TestUnderQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no emulator boots (make test-guests runs this test)")
	}
	kernel := build(t)
	start := time.Now()
	res, report, err := RunQEMU(context.Background(), "", kernel, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QEMU TCG ran the test kernel in %v:\n%s", time.Since(start).Round(time.Millisecond), res.Console)
	if err := report.Check(); err != nil {
		t.Errorf("%v\nconsole:\n%s\nQEMU: %s", err, res.Console, res.Diagnostics)
	}
	if res.TimedOut || res.ExitCode != QEMUExitStatus(0) {
		t.Errorf("QEMU exit status %d (timed out: %v), want %d", res.ExitCode, res.TimedOut, QEMUExitStatus(0))
	}
	// What QEMU's TCG shows: its hypervisor leaf, an xAPIC with a timer.
	info := strings.Join(report.Info, "\n")
	for _, want := range []string{`leaf 0x40000000 vendor "TCGTCGTCGTCG"`, "one-shot ticks 1, periodic ticks 10"} {
		if !strings.Contains(info, want) {
			t.Errorf("no %q among the kernel's lines:\n%s", want, info)
		}
	}
}

// TestFailureReachesTheExitStatus takes the APIC away: the lapic and timer
// steps must fail, and QEMU's status must carry their count.
func TestFailureReachesTheExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no emulator boots")
	}
	kernel := build(t)
	r, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal("qemu-system-x86_64 not found: run make deps")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r, "-machine", "q35", "-accel", "tcg", "-cpu", "qemu64,-apic",
		"-m", "128M", "-nodefaults", "-display", "none", "-no-reboot", "-serial", "stdio",
		"-device", DebugExitDevice, "-kernel", kernel)
	var out bytes.Buffer
	cmd.Stdout = &out
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	report := Parse(out.String())
	if report.Check() == nil {
		t.Fatalf("Check passed a run without an APIC:\n%s", out.String())
	}
	if code != QEMUExitStatus(2) || report.Failed != 2 {
		t.Errorf("QEMU status %d, kernel counted %d failures; want status %d for 2\n%s",
			code, report.Failed, QEMUExitStatus(2), out.String())
	}
	for i, want := range []bool{true, true, true, false, false} {
		if i >= len(report.Results) || report.Results[i].OK != want {
			t.Errorf("results %+v: step %s ok=%v expected", report.Results, Steps[i], want)
		}
	}
}
