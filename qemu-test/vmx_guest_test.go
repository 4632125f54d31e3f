package qemutest

// Guests under Intel VT-x: the image on Bochs's corei7_skylake_x (VMX with
// EPT, VPID and unrestricted guest) runs the same guests as under AMD-V,
// through the VT-x engine (package vmx). One Bochs run: a triple-faulting
// guest, stopped alone with a VMCS dump, then the multiboot test kernel,
// which must pass every step, on the same hypervisor.
//
// Bochs's corei5_lynnfield_750 (EPT, no unrestricted guest) would be the
// negative case, the engine refusing to start guests, but that CPU has no
// RDRAND and the image stops at its entry before any VMX code runs; the
// refusal is tested on its capability fixture instead (vmx/engine_test.go).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tamavisor/guests/crashkernel"
	"tamavisor/qemu-test/vmlog"
	"tamavisor/tools/emulator"
)

// multiboot2Entry is the GRUB menu entry of tools/grub.cfg that boots the
// image through Multiboot2, the ISO's default.
const multiboot2Entry = "tamavisor (multiboot2)"

// TestBochsVMXGuests boots the image under Bochs with
// tamavisor.guest=triplefault,testkernel.
func TestBochsVMXGuests(t *testing.T) {
	skipShort(t)
	t.Parallel()
	order := []string{crashkernel.TripleFault, "testkernel"}
	iso := guestArgsISO(t, prepared(t).ISO, "tamavisor.guest="+strings.Join(order, ","))
	cfg := emulator.Config{Emulator: emulator.Bochs, CPU: emulator.BochsCPU, ISO: iso}
	start := time.Now()
	inv, m := bootMachine(t, cfg, bochsDeadline)
	expectBootedVia(t, inv, "multiboot2")
	expectField(t, inv, "vmx", "unrestricted-guest", "yes")
	runs := waitRunEnd(t, m, "testkernel", "testkernel", bochsDeadline)
	t.Logf("both guests done %.1f s after Bochs started", time.Since(start).Seconds())
	var got []string
	for _, r := range runs {
		got = append(got, r.Name)
	}
	if strings.Join(got, ",") != strings.Join(order, ",") {
		t.Fatalf("guest runs %v, want %v in this order", got, order)
	}
	console := m.Console()
	for _, r := range runs {
		want := fmt.Sprintf("tamavisor: vm %s: starting %s (%s, %d MiB, 1 vCPU, Intel VT-x)", r.Name, r.Kernel, r.Format, r.MemoryMiB)
		if !strings.Contains(console, want) {
			t.Errorf("no %q: the guest did not run on the VT-x engine", want)
		}
		t.Logf("vm %s: %d exits %+v, stopped after %.3f s: %s", r.Name, r.Exits, r.ExitReasons, r.StoppedAfter, r.Reason)
	}

	tf := runs[0]
	if want := "the guest shut down (triple fault)"; !strings.HasPrefix(tf.Fault, want) || !strings.HasPrefix(tf.Reason, want) {
		t.Errorf("vm %s: fault %q, reason %q; want both to start %q", tf.Name, tf.Fault, tf.Reason, want)
	}
	if len(tf.Dump) == 0 || !strings.HasPrefix(tf.Dump[0], "VMCS at 0x") {
		t.Errorf("vm %s: no VMCS dump after the diagnostic: %q", tf.Name, tf.Dump)
	}
	// Exit reason 2 is a triple fault (SDM Vol. 3D, Appendix C).
	if got := tf.Fields["reason"]; got != "0x2" {
		t.Errorf("vm %s: the dump's exit reason %q, want 0x2", tf.Name, got)
	}
	for _, reg := range []string{"RIP", "RSP", "RFLAGS", "CR0", "CR3", "CR4", "EFER", "CS.sel", "TR.sel", "RAX", "R15", "EPTP"} {
		if _, ok := tf.Fields[reg]; !ok {
			t.Errorf("vm %s: the VMCS dump shows no %s", tf.Name, reg)
		}
	}
	var rip uint64
	if _, err := fmt.Sscanf(tf.Fields["RIP"], "0x%x", &rip); err != nil || !inKernel(rip) {
		t.Errorf("vm %s: RIP %q is not in the kernel", tf.Name, tf.Fields["RIP"])
	}
	if !strings.Contains(strings.Join(tf.Dump, "\n"), "VM-entry checks modeled by the engine: none fails") {
		t.Errorf("vm %s: the entry-check model finds fault with a state the CPU entered", tf.Name)
	}
	if tf.HasExitCode || tf.Exits != 1 || tf.ExitsFor("shutdown") != 1 {
		t.Errorf("vm %s: exit code %v, exits %d %+v; want the one shutdown exit", tf.Name, tf.HasExitCode, tf.Exits, tf.ExitReasons)
	}
	checkReport(t, tf)

	checkTestKernel(t, runs[1])
	if runs[1].Fault != "" || len(runs[1].Dump) != 0 {
		t.Errorf("testkernel: fault %q", runs[1].Fault)
	}
	select {
	case <-m.Done():
		t.Error("Bochs ended after the guests stopped: the hypervisor did not keep running")
	case <-time.After(500 * time.Millisecond):
	}
}

// guestArgsISO builds an ISO from the tamavisor ISO's Multiboot2 image
// whose GRUB entry passes args on the image's command line.
func guestArgsISO(t *testing.T, fromISO, args string) string {
	return remasterISO(t, fromISO, "tamavisor.elf", func(cfg string) (string, error) {
		return withImageArgs(cfg, multiboot2Entry, args)
	})
}

// withImageArgs appends args to the `multiboot2 /boot/tamavisor.elf` line
// of the named menu entry and makes that entry the default.
func withImageArgs(cfg, title, args string) (string, error) {
	head := fmt.Sprintf("menuentry %q {", title)
	i := strings.Index(cfg, head)
	if i < 0 {
		return "", fmt.Errorf("no %s", head)
	}
	body, _, _ := strings.Cut(cfg[i+len(head):], "}")
	line := regexp.MustCompile(`(?m)^(\s*multiboot2\s+/boot/tamavisor\.elf)([^\n]*)$`)
	if !line.MatchString(body) {
		return "", fmt.Errorf("entry %q does not run `multiboot2 /boot/tamavisor.elf`:%s", title, body)
	}
	cfg = cfg[:i+len(head)] + line.ReplaceAllString(body, "${1}${2} "+args) + cfg[i+len(head)+len(body):]
	def := regexp.MustCompile(`(?m)^set default=.*$`)
	if !def.MatchString(cfg) {
		return "", fmt.Errorf("no `set default=` line")
	}
	return def.ReplaceAllLiteralString(cfg, fmt.Sprintf("set default=%q", title)), nil
}

func TestWithImageArgs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "tools", "grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := withImageArgs(string(b), multiboot2Entry, "tamavisor.guest=triplefault,testkernel")
	if err != nil {
		t.Fatalf("tools/grub.cfg: %v", err)
	}
	if !strings.Contains(got, "\tmultiboot2 /boot/tamavisor.elf tamavisor.guest=triplefault,testkernel\n") {
		t.Errorf("arguments not appended:\n%s", got)
	}
	if strings.Contains(got, "tamavisor-mb1.elf tamavisor.guest") {
		t.Errorf("arguments appended to the Multiboot v1 entry too:\n%s", got)
	}
	if !strings.Contains(got, fmt.Sprintf("\nset default=%q\n", multiboot2Entry)) {
		t.Errorf("default not set:\n%s", got)
	}
	if _, err := withImageArgs(string(b), "no such entry", "x"); err == nil {
		t.Error("a missing entry was accepted")
	}
	if _, err := withImageArgs(strings.Replace(string(b), "multiboot2 /boot/tamavisor.elf", "linux /boot/x", 1), multiboot2Entry, "x"); err == nil {
		t.Error("an entry without the multiboot2 line was accepted")
	}
	// The parser of the hypervisor's report (vmlog) reads this test's
	// dump keys from a VMCS dump line.
	fields := vmlog.Parse("tamavisor: vm x: starting x (multiboot, 16 MiB, 1 vCPU, Intel VT-x)\n" +
		"tamavisor: vm x: stopped: the guest shut down (triple fault) (vCPU 0, exit shutdown, qualification 0x0, info 0x0)\n" +
		"VMCS at 0x103000 (Intel SDM Vol. 3C, 25; Vol. 3D, Appendix B), VPID 1, last CPU 0\n" +
		"  exit 1: reason 0x2 (triple fault) qualification 0x0 GPA 0x0 GLA 0x0\n")[0].Fields
	if fields["reason"] != "0x2" || fields["GPA"] != "0x0" {
		t.Errorf("dump fields %v", fields)
	}
}
