package qemutest

// Guests under Intel VT-x: the image on Bochs's corei7_skylake_x (VMX with
// EPT, VPID and unrestricted guest) runs the same guests as under AMD-V,
// through the VT-x engine (package vmx). One Bochs run: a triple-faulting
// guest, stopped alone with a VMCS dump, a real-mode boot sector, then the
// multiboot test kernel, which must pass every step, on the same
// hypervisor.
//
// Bochs's corei5_lynnfield_750 (EPT, no unrestricted guest, no RDRAND) is
// the negative case: the image boots on its weak entropy fallback, the
// engine refuses the real-mode guest by naming the missing control, and
// runs the next guest, a bzImage entered in long mode, which needs none.
// Debian under VT-x boots to its shell and answers a command in a third
// Bochs run (TestGuestLinuxShellVMX), about a minute and a half.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tamavisor/guests/crashkernel"
	"tamavisor/guests/testkernel"
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
	order := []string{crashkernel.TripleFault, crashkernel.RealMode, "testkernel"}
	iso := guestArgsISO(t, prepared(t).ISO, "tamavisor.guest="+strings.Join(order, ","))
	cfg := emulator.Config{Emulator: emulator.Bochs, CPU: emulator.BochsCPU, ISO: iso}
	start := time.Now()
	inv, m := bootMachine(t, cfg, bochsDeadline)
	expectBootedVia(t, inv, "multiboot2")
	expectField(t, inv, "vmx", "unrestricted-guest", "yes")
	runs := waitRunEnd(t, m, "testkernel", "testkernel", bochsDeadline)
	t.Logf("the guests done %.1f s after Bochs started", time.Since(start).Seconds())
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

	checkRealMode(t, runs[1])

	checkTestKernel(t, runs[2])
	if runs[2].Fault != "" || len(runs[2].Dump) != 0 {
		t.Errorf("testkernel: fault %q", runs[2].Fault)
	}
	select {
	case <-m.Done():
		t.Error("Bochs ended after the guests stopped: the hypervisor did not keep running")
	case <-time.After(500 * time.Millisecond):
	}
}

// checkRealMode checks a run of the real-mode boot sector to its end: its
// message printed through COM1 from real mode, and the debug-exit value it
// writes only with CR0.PE clear.
func checkRealMode(t *testing.T, r *vmlog.Run) {
	t.Helper()
	if r.Kernel != crashkernel.RealMode || r.Format != "boot sector" {
		t.Errorf("realmode started as %q (%s), want the boot sector", r.Kernel, r.Format)
	}
	if !strings.Contains(r.GuestText(), crashkernel.RealModeMessage) {
		t.Errorf("realmode: no %q on its console: %q", crashkernel.RealModeMessage, r.GuestText())
	}
	// The value written is RealModeExitValue + CR0.PE as the guest read it.
	want := testkernel.QEMUExitStatus(crashkernel.RealModeExitValue)
	if r.Fault != "" || !r.HasExitCode || r.ExitCode != want {
		t.Errorf("realmode: fault %q, exit code %d (reported %v); want exit code %d (CR0.PE clear)", r.Fault, r.ExitCode, r.HasExitCode, want)
	}
	if r.ExitsFor("io") != r.Exits {
		t.Errorf("realmode: exits %+v; it only does port I/O", r.ExitReasons)
	}
	checkReport(t, r)
}

// lynnfieldIPS is Bochs's instruction rate for corei5_lynnfield_750 runs.
// That CPU has no CPUID leaf 15h TSC claim, and at Bochs's default 4 MIPS
// its TSC (one tick per instruction) runs at 4 MHz, below runtime/tsc's
// plausible 10 MHz: the hypervisor would have no clock, and starts no
// guest. At 20 MIPS the TSC calibrates at 20 MHz.
const lynnfieldIPS = 20_000_000

// TestBochsVMXWithoutUnrestrictedGuest boots the image on Bochs's
// corei5_lynnfield_750, which has neither RDRAND nor unrestricted guest,
// with tamavisor.guest=realmode,longmode: the image warns about its weak
// entropy source, the engine refuses the real-mode guest with a message
// naming the missing control, and the hypervisor runs the long-mode guest
// next.
func TestBochsVMXWithoutUnrestrictedGuest(t *testing.T) {
	skipShort(t)
	t.Parallel()
	order := []string{crashkernel.RealMode, crashkernel.LongMode}
	iso := guestArgsISO(t, prepared(t).ISO, "tamavisor.guest="+strings.Join(order, ","))
	cfg := emulator.Config{Emulator: emulator.Bochs, CPU: "corei5_lynnfield_750", ISO: iso, BochsIPS: lynnfieldIPS}
	inv, m := bootMachine(t, cfg, bochsDeadline)
	expectField(t, inv, "vmx", "unrestricted-guest", "no")
	expectField(t, inv, "vmx", "ept", "yes")
	if src, _ := inv.Field("entropy", "source"); !strings.HasPrefix(src, "tsc-jitter-weak") {
		t.Errorf("entropy source=%s, want the TSC jitter fallback of a CPU without RDRAND", src)
	}
	if !strings.Contains(m.Console(), "tamavisor: WARNING: this CPU has neither RDRAND nor RDSEED") {
		t.Error("no console warning about the weak entropy source")
	}
	runs := waitRunEnd(t, m, crashkernel.LongMode, crashkernel.LongMode, bochsDeadline)
	var got []string
	for _, r := range runs {
		got = append(got, r.Name)
	}
	if strings.Join(got, ",") != strings.Join(order, ",") {
		t.Fatalf("guest runs %v, want %v in this order", got, order)
	}

	rm := runs[0]
	const refused = "the CPU refused to enter the guest: the guest is in real mode (CR0.PE=0)"
	if !strings.HasPrefix(rm.Fault, refused) || !strings.HasPrefix(rm.Reason, refused) {
		t.Errorf("realmode: fault %q, reason %q; want both to start %q", rm.Fault, rm.Reason, refused)
	}
	for _, want := range []string{`"unrestricted guest"`, "secondary processor-based control bit 7", "this processor lacks unrestricted guest"} {
		if !strings.Contains(rm.Reason, want) {
			t.Errorf("realmode: the refusal %q does not name %s", rm.Reason, want)
		}
	}
	if len(rm.Output) != 0 || rm.HasExitCode {
		t.Errorf("realmode: the refused guest ran: output %q, exit code %v", rm.Output, rm.HasExitCode)
	}
	if !rm.KeepsRunning {
		t.Error("realmode: the hypervisor did not say it keeps running")
	}

	lm := runs[1]
	want := testkernel.QEMUExitStatus(crashkernel.LongModeExitValue)
	if lm.Format != "bzImage" || lm.Fault != "" || !lm.HasExitCode || lm.ExitCode != want {
		t.Errorf("longmode: format %q fault %q exit code %d (reported %v); want a bzImage ending with exit code %d", lm.Format, lm.Fault, lm.ExitCode, lm.HasExitCode, want)
	}
	if !strings.Contains(lm.GuestText(), crashkernel.LongModeMessage) {
		t.Errorf("longmode: no %q on its console: %q", crashkernel.LongModeMessage, lm.GuestText())
	}
	checkReport(t, lm)
	select {
	case <-m.Done():
		t.Error("Bochs ended after the guests stopped: the hypervisor did not keep running")
	case <-time.After(500 * time.Millisecond):
	}
}

// TestGuestRealModeSVM: the AMD-V engine runs the real-mode boot sector
// natively (VMRUN accepts CR0.PE clear with nested paging, AMD APM Vol. 2,
// 15.19), under QEMU TCG, then the long-mode bzImage.
func TestGuestRealModeSVM(t *testing.T) {
	skipShort(t)
	t.Parallel()
	m := startGuests(t, crashkernel.RealMode+","+crashkernel.LongMode, guestDeadline)
	runs := waitRunEnd(t, m, crashkernel.LongMode, crashkernel.LongMode, guestDeadline)
	if len(runs) != 2 {
		t.Fatalf("%d guest runs, want realmode and longmode", len(runs))
	}
	checkRealMode(t, runs[0])
	if want := testkernel.QEMUExitStatus(crashkernel.LongModeExitValue); runs[1].ExitCode != want || runs[1].Fault != "" {
		t.Errorf("longmode: exit code %d fault %q, want %d", runs[1].ExitCode, runs[1].Fault, want)
	}
	expectAlive(t, m)
}

// Debian under Intel VT-x in Bochs (corei7_skylake_x). Measured on a
// 2-core host: the hypervisor is ready 12 s after Bochs starts, the guest
// starts at 15 s and its shell prompt comes at 82-95 s when the host is
// otherwise idle, at 178 s under a load average of 5 (most of it the
// kernel's decompression and early start, before its first message);
// uname -r and the poweroff add seconds. Short enough for make test,
// with generous bounds for a loaded host.
const (
	vmxLinuxDeadline = 9 * time.Minute // the whole Bochs run
	vmxPromptTimeout = 7 * time.Minute // Bochs's start to the prompt
	vmxShellTimeout  = 2 * time.Minute // one command, or the poweroff
)

// TestGuestLinuxShellVMX boots the image under Bochs with an Intel VT-x CPU
// and tamavisor.guest=linux: Debian must reach its shell through the VT-x
// engine, answer uname -r with the embedded kernel's release, and power
// off through ACPI, the hypervisor reporting the run and staying up.
func TestGuestLinuxShellVMX(t *testing.T) {
	skipShort(t)
	t.Parallel()
	release := recordedRelease(t)
	iso := guestArgsISO(t, prepared(t).ISO, "tamavisor.guest=linux")
	cfg := emulator.Config{Emulator: emulator.Bochs, CPU: emulator.BochsCPU, ISO: iso, BochsTerminal: true}
	inv, m := bootMachine(t, cfg, vmxLinuxDeadline)
	expectField(t, inv, "vmx", "unrestricted-guest", "yes")
	const started = "tamavisor: vm " + linuxVM + ": starting vmlinuz (bzImage, 512 MiB, 1 vCPU, Intel VT-x)"
	at, err := m.WaitFor(started, bochsDeadline)
	if err != nil {
		t.Fatalf("Debian did not start on the VT-x engine: %v", err)
	}
	t.Logf("Debian started %.1f s after Bochs", at.Seconds())
	sh := &shell{t: t, m: m}
	toPrompt, _ := sh.waitPrompt(0, vmxPromptTimeout)
	t.Logf("Bochs start to Debian's shell prompt under VT-x: %.1f s", toPrompt.Seconds())
	if out := sh.runWithin("uname -r", vmxShellTimeout); !contains(out, release) {
		t.Errorf("uname -r printed %q, want the kernel's release %q", out, release)
	}
	from := len(m.Console())
	if err := m.Type("poweroff\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitUntil("the hypervisor's report after poweroff", vmxShellTimeout, func(console string) (int, bool) {
		i := strings.Index(console[min(from, len(console)):], vmlog.KeepsRunning)
		return from + i + len(vmlog.KeepsRunning), i >= 0
	}); err != nil {
		t.Fatal(err)
	}
	r := vmlog.Find(vmlog.Parse(m.Console()), linuxVM)
	if r == nil {
		t.Fatal("no run of the Linux guest on the console")
	}
	if r.Reason != "powered off (ACPI S5)" || r.Fault != "" {
		t.Errorf("Debian stopped with %q (fault %q), want \"powered off (ACPI S5)\"", r.Reason, r.Fault)
	}
	checkReport(t, r)
	t.Logf("Debian under VT-x: %d exits %+v; stats %+v", r.Exits, r.ExitReasons, r.Stats)
	select {
	case <-m.Done():
		t.Error("Bochs ended after the guest stopped: the hypervisor did not keep running")
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
