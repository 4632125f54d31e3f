package qemutest

// Boot paths beyond the defaults: an exception report, a CPU without
// hardware virtualization, a large machine, and Multiboot v1 through GRUB.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tamavisor/boot/inventory"
)

// Console lines of the image outside the inventory (boot/main.go,
// runtime/pc).
const (
	virtUnavailablePrefix = "tamavisor: hardware virtualization is unavailable: "
	// haltedPrefix ends every run of the image that exits, a panic
	// included: once it shows, the panic's output is complete.
	haltedPrefix = "tamavisor: halted (exit code "
)

// The exception report (runtime/pc/exception.go, faultPanic): the vector
// and its name, the registers, then a Go panic whose trace starts at the
// faulting function.
var (
	exceptionRIP = regexp.MustCompile(`(?m)^\s*RIP (0x[0-9a-f]{16})\s+CS 0x[0-9a-f]+\s+RFLAGS 0x[0-9a-f]+\s*$`)
	panicRIP     = regexp.MustCompile(`(?m)^panic: CPU exception 14 \(#PF page fault\) at RIP (0x[0-9a-f]+)`)
)

// (a) A nil pointer dereference requested on the command line: the
// exception report shows the #PF with CR2 0 and the registers, and the Go
// panic that follows traces back to the faulting function.
func TestQEMUExceptionReport(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	cfg.ExtraArgs = []string{"-append", "tamavisor.selftest=exception"}
	_, m := bootMachine(t, cfg, qemuDeadline)
	if _, err := m.WaitFor(haltedPrefix, 20*time.Second); err != nil {
		t.Fatalf("no exception report ending in %q: %v", haltedPrefix, err)
	}
	console := m.Console()

	report := strings.Index(console, "tamavisor: CPU exception 14 (#PF page fault)")
	if report < 0 {
		t.Fatal(`no "tamavisor: CPU exception 14 (#PF page fault)" on the console`)
	}
	if ready := strings.Index(console, inventory.Ready); ready < 0 || ready > report {
		t.Errorf("%q (at %d) does not come before the exception report (at %d)", inventory.Ready, ready, report)
	}
	tail := console[report:]
	if !regexp.MustCompile(`\bCR2 0x0000000000000000\b`).MatchString(tail) {
		t.Error("the report does not show CR2 0x0000000000000000 (the nil address)")
	}
	for _, r := range []string{"RSP", "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP",
		"R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"} {
		if !regexp.MustCompile(`(?m)^\s.*\b` + r + `\s+0x[0-9a-f]{16}\b`).MatchString(tail) {
			t.Errorf("the report shows no %s 0x<16 digits>", r)
		}
	}
	rip := exceptionRIP.FindStringSubmatch(tail)
	pan := panicRIP.FindStringSubmatch(tail)
	switch {
	case rip == nil:
		t.Error("no RIP line in the report")
	case pan == nil:
		t.Error(`no "panic: CPU exception 14 (#PF page fault) at RIP ..." after the report`)
	default:
		a, _ := strconv.ParseUint(rip[1], 0, 64)
		b, _ := strconv.ParseUint(pan[1], 0, 64)
		if a != b || a == 0 {
			t.Errorf("the report's RIP %s and the panic's %s differ", rip[1], pan[1])
		}
	}
	trace := regexp.MustCompile(`(?m)^goroutine \d+ .*\[running\]:\n(?:.*\n)*?main\.selftest\(`)
	if !trace.MatchString(tail) {
		t.Error("no goroutine trace naming main.selftest after the panic")
	}
}

// (b) A CPU without AMD-V (and, being AMD, without VT-x): the inventory
// says why, and the hypervisor stays up.
func TestQEMUNoHardwareVirtualization(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.CPU = "qemu64,-svm,+rdrand"
	cfg.Kernel = prepared(t).Kernel
	inv, m := bootMachine(t, cfg, qemuDeadline)
	if inv.Has("svm") || inv.Has("vmx") {
		t.Error("the inventory shows svm or vmx capabilities on a CPU without them")
	}
	virt := inv.Topic("virt")
	if len(virt) != 1 || len(virt[0].Words) == 0 || virt[0].Words[0] != "none" {
		t.Fatalf("virt lines %+v, want one `virt: none reason=...`", virt)
	}
	reason := virt[0].Fields["reason"]
	if !strings.Contains(reason, "SVM") || !strings.Contains(reason, "CPUID") {
		t.Errorf("virt reason %q names neither SVM nor CPUID", reason)
	}
	if !strings.Contains(m.Console(), virtUnavailablePrefix+reason) {
		t.Errorf("no %q line with the reason", virtUnavailablePrefix)
	}
}

// (c) 8 GiB (QEMU allocates it lazily): RAM far above 4 GiB is found and
// mapped write-back by the host page tables.
func TestQEMULargeMemory(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.MemoryMiB = 8192
	cfg.Kernel = prepared(t).Kernel
	inv := boot(t, cfg, qemuDeadline)
	usable, err := inv.Int("memory", "usable-mib")
	if err != nil {
		t.Fatal(err)
	}
	if usable <= 7000 {
		t.Errorf("memory usable-mib=%d, want more than 7000 of the 8192 MiB", usable)
	}
	host, _ := inv.Field("paging", "host")
	wb := regexp.MustCompile(`\b(\d+) MiB WB\b`).FindStringSubmatch(host)
	if wb == nil {
		t.Fatalf("paging host=%q shows no write-back total", host)
	}
	if n, _ := strconv.ParseInt(wb[1], 10, 64); n < usable {
		t.Errorf("paging maps %d MiB write-back, less than the %d MiB of usable RAM", n, usable)
	}
}

// (d) GRUB's `multiboot` command with the ISO's tamavisor-mb1.elf (the copy
// with a Multiboot v1 header, made by the Makefile's iso rule), booted from
// a CD under QEMU. The ISO's own grub.cfg is used, with only its default
// entry changed.
func TestQEMUMultiboot1(t *testing.T) {
	skipShort(t)
	t.Parallel()
	iso := multiboot1ISO(t, prepared(t).ISO)
	cfg := qemuTCG()
	cfg.ISO = iso
	inv := boot(t, cfg, qemuDeadline)
	// bootinfo.Multiboot1 is shown as "multiboot" (Protocol.String).
	expectBootedVia(t, inv, "multiboot")
	expectField(t, inv, "boot", "protocol", "multiboot")
	if loader, _ := inv.Field("boot", "loader"); !strings.HasPrefix(loader, "GRUB ") {
		t.Errorf("boot loader=%q, want GRUB's name", loader)
	}
	expectField(t, inv, "cpu", "online", "2")
	expectAtLeast(t, inv, "memory", "usable-mib", 1900)
}

// multiboot1Entry is the GRUB menu entry of tools/grub.cfg that boots the
// image through Multiboot v1.
const multiboot1Entry = "tamavisor (multiboot)"

// multiboot1ISO builds an ISO from the tamavisor ISO's files whose GRUB
// menu starts the Multiboot v1 entry.
func multiboot1ISO(t *testing.T, fromISO string) string {
	return remasterISO(t, fromISO, "tamavisor-mb1.elf", func(cfg string) (string, error) {
		return withDefaultEntry(cfg, multiboot1Entry)
	})
}

// remasterISO builds a new GRUB ISO holding /boot/<image> and the grub.cfg
// of fromISO as edit rewrites it.
func remasterISO(t *testing.T, fromISO, image string, edit func(cfg string) (string, error)) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "iso")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(tree, "boot", "grub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(tree, "boot", "grub", "grub.cfg")
	run("xorriso", "-osirrox", "on", "-indev", fromISO,
		"-extract", "/boot/"+image, filepath.Join(tree, "boot", image),
		"-extract", "/boot/grub/grub.cfg", cfgPath)
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	grubCfg, err := edit(string(b))
	if err != nil {
		t.Fatalf("the ISO's grub.cfg: %v", err)
	}
	// The copy was extracted read-only from the ISO.
	if err := os.Chmod(cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(grubCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "remastered.iso")
	run("grub-mkrescue", "-o", iso, tree)
	return iso
}

// withDefaultEntry makes GRUB boot the named menu entry, after checking
// that the entry exists and loads tamavisor-mb1.elf with `multiboot`, and
// that the serial console is set up as tools/grub.cfg does.
func withDefaultEntry(cfg, title string) (string, error) {
	head := fmt.Sprintf("menuentry %q {", title)
	i := strings.Index(cfg, head)
	if i < 0 {
		return "", fmt.Errorf("no %s", head)
	}
	body, _, _ := strings.Cut(cfg[i+len(head):], "}")
	if !regexp.MustCompile(`(?m)^\s*multiboot\s+/boot/tamavisor-mb1\.elf\b`).MatchString(body) {
		return "", fmt.Errorf("entry %q does not run `multiboot /boot/tamavisor-mb1.elf`:%s", title, body)
	}
	for _, need := range []string{"serial --unit=0", "terminal_output serial"} {
		if !strings.Contains(cfg, need) {
			return "", fmt.Errorf("no %q: the console would not reach the serial port", need)
		}
	}
	def := regexp.MustCompile(`(?m)^set default=.*$`)
	if !def.MatchString(cfg) {
		return "", fmt.Errorf("no `set default=` line")
	}
	return def.ReplaceAllLiteralString(cfg, fmt.Sprintf("set default=%q", title)), nil
}

func TestWithDefaultEntry(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "tools", "grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := withDefaultEntry(string(b), multiboot1Entry)
	if err != nil {
		t.Fatalf("tools/grub.cfg: %v", err)
	}
	if !strings.Contains(got, "\nset default=\"tamavisor (multiboot)\"\n") || strings.Contains(got, "set default=0") {
		t.Errorf("default not replaced:\n%s", got)
	}
	old := strings.Replace(string(b), "multiboot /boot/tamavisor-mb1.elf", "multiboot /boot/tamavisor.elf", 1)
	if _, err := withDefaultEntry(old, multiboot1Entry); err == nil {
		t.Error("an entry loading the Multiboot2-only image was accepted")
	}
	if _, err := withDefaultEntry(string(b), "no such entry"); err == nil {
		t.Error("a missing entry was accepted")
	}
}
