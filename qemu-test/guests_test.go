package qemutest

// Guests under the hypervisor: the image, booted under QEMU TCG with AMD-V
// and nested paging, starts the guests tamavisor.guest= names on its
// command line, one after another (boot/guest.go), and reports each run
// in the lines package vmlog reads.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tamavisor/guests"
	"tamavisor/guests/crashkernel"
	"tamavisor/guests/testkernel"
	"tamavisor/qemu-test/vmlog"
	"tamavisor/tools/emulator"
)

// linuxVM is the name the hypervisor gives the `linux` guest (Debian's
// kernel with the u-root initramfs): its console lines read "[debian] ...".
const linuxVM = "debian"

// Deadlines, generous for a loaded 2-core host. Alone, the test kernel is
// done about a second after QEMU starts, and Debian's shell prompt comes
// after about 11 s under the hypervisor (5 s when QEMU boots the kernel
// directly).
const (
	guestDeadline = 120 * time.Second // test and crash kernels
	linuxDeadline = 300 * time.Second // Linux to its prompt, the commands and poweroff
	promptTimeout = 240 * time.Second
	shellTimeout  = 60 * time.Second // one command at the shell
)

// startGuests boots the image with tamavisor.guest=names and waits for its
// inventory (checked as every boot test does).
func startGuests(t *testing.T, names string, deadline time.Duration) *emulator.Machine {
	t.Helper()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	cfg.ExtraArgs = []string{"-append", "tamavisor.guest=" + names}
	_, m := bootMachine(t, cfg, deadline)
	return m
}

// waitRunEnd waits until the hypervisor has reported the end of the last
// guest named (its VM name), or that it could not start it, and returns
// every run on the console by then.
func waitRunEnd(t *testing.T, m *emulator.Machine, vm, asked string, timeout time.Duration) []*vmlog.Run {
	t.Helper()
	var runs []*vmlog.Run
	_, err := m.WaitUntil(fmt.Sprintf("the end of guest %s's run", vm), timeout, func(console string) (int, bool) {
		if !strings.Contains(console, vmlog.KeepsRunning) && !strings.Contains(console, " not started: ") {
			return 0, false // cheap test first: the console grows byte by byte
		}
		runs = vmlog.Parse(console)
		for _, r := range runs {
			if r.Name == asked && r.NotStarted != "" {
				return len(console), true
			}
		}
		r := vmlog.Find(runs, vm)
		return len(console), r != nil && r.KeepsRunning
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.Name == asked && r.NotStarted != "" {
			t.Fatalf("the hypervisor did not start guest %s: %s (make test-boot builds testkernel and guest before the image)", asked, r.NotStarted)
		}
	}
	return runs
}

// expectAlive checks that QEMU still runs a moment after the hypervisor
// said it keeps running: the hypervisor did not halt or reset the machine.
func expectAlive(t *testing.T, m *emulator.Machine) {
	t.Helper()
	select {
	case <-m.Done():
		t.Error("QEMU ended after the guests stopped: the hypervisor did not keep running")
	case <-time.After(500 * time.Millisecond):
	}
}

// checkReport checks the report lines every run ends with: a stop reason,
// the exits by reason adding up to the total, the statistics line agreeing
// with it, and the hypervisor's survival.
func checkReport(t *testing.T, r *vmlog.Run) {
	t.Helper()
	if len(r.Malformed) > 0 {
		t.Errorf("vm %s: report lines that do not read: %q", r.Name, r.Malformed)
	}
	if !r.Stopped || r.Reason == "" {
		t.Errorf("vm %s: no \"stopped after N s: REASON\" line", r.Name)
	}
	if !r.HasExits || r.Exits == 0 {
		t.Errorf("vm %s: no \"exits N: ...\" line with exits", r.Name)
	}
	var sum uint64
	for _, e := range r.ExitReasons {
		sum += e.Count
	}
	if sum != r.Exits {
		t.Errorf("vm %s: the exits by reason add up to %d, the total says %d: %+v", r.Name, sum, r.Exits, r.ExitReasons)
	}
	if !r.HasStats || r.Stats.Exits != r.Exits {
		t.Errorf("vm %s: stats line %+v (present %v) does not count the %d exits", r.Name, r.Stats, r.HasStats, r.Exits)
	}
	if !r.KeepsRunning {
		t.Errorf("vm %s: no %q after it stopped", r.Name, vmlog.KeepsRunning)
	}
}

// checkTestKernel checks a test kernel run to its end: every step passed,
// the hypervisor's CPUID leaf seen, and its isa-debug-exit code.
func checkTestKernel(t *testing.T, r *vmlog.Run) {
	t.Helper()
	if r.Kernel != "testkernel.elf" || r.Format != "multiboot" {
		t.Errorf("testkernel started as %q (%s), want testkernel.elf loaded through Multiboot", r.Kernel, r.Format)
	}
	rep := testkernel.Parse(r.GuestText())
	if err := rep.Check(); err != nil {
		t.Errorf("%v\nguest console:\n%s", err, r.GuestText())
	}
	vendor := fmt.Sprintf("cpuid: leaf 0x40000000 vendor %q", guests.HypervisorSignature)
	found := false
	for _, info := range rep.Info {
		found = found || strings.HasPrefix(info, vendor)
	}
	if !found {
		t.Errorf("the test kernel did not see the hypervisor's CPUID leaf: no %q in %q", vendor, rep.Info)
	}
	if r.Fault != "" {
		t.Errorf("testkernel stopped by a fault: %s", r.Fault)
	}
	// The kernel writes its failure count, 0, to the debug exit port,
	// which reports (0 << 1) | 1 as QEMU's isa-debug-exit would.
	want := testkernel.QEMUExitStatus(0)
	if !r.HasExitCode || r.ExitCode != want || r.Reason != fmt.Sprintf("exit code %d", want) {
		t.Errorf("testkernel stop: reason %q, exit code %d (reported %v); want exit code %d", r.Reason, r.ExitCode, r.HasExitCode, want)
	}
	// CPUID is intercepted, the serial port is emulated, and the local
	// APIC is an MMIO page outside the guest's RAM.
	for _, reason := range []string{"cpuid", "io", "npf"} {
		if r.ExitsFor(reason) == 0 {
			t.Errorf("testkernel: no %s exits in %+v", reason, r.ExitReasons)
		}
	}
	checkReport(t, r)
}

// (a) The multiboot test kernel as the only guest.
func TestGuestTestKernelSVM(t *testing.T) {
	skipShort(t)
	t.Parallel()
	m := startGuests(t, "testkernel", guestDeadline)
	runs := waitRunEnd(t, m, "testkernel", "testkernel", guestDeadline)
	if len(runs) != 1 {
		t.Fatalf("%d guest runs, want the test kernel's alone", len(runs))
	}
	checkTestKernel(t, runs[0])
	expectAlive(t, m)
}

// crashExpectation is what stopping one crash kernel must show.
type crashExpectation struct {
	fault    string // the diagnostic's start
	exitCode string // VMCB EXITCODE (AMD APM Vol. 2, Appendix C)
	reason   string // the one exit counted
	rip      func(uint64) bool
}

const (
	vmexitShutdown = "0x7f"  // VMEXIT_SHUTDOWN: the triple fault
	vmexitNPF      = "0x400" // VMEXIT_NPF: a nested page fault
)

// inKernel: RIP in the crash kernel's code, loaded at 1 MiB.
func inKernel(rip uint64) bool { return rip >= 0x100000 && rip < 0x101000 }

var crashes = map[string]crashExpectation{
	crashkernel.TripleFault: {"the guest shut down (triple fault)", vmexitShutdown, "shutdown", inKernel},
	crashkernel.Garbage:     {"the guest shut down (triple fault)", vmexitShutdown, "shutdown", inKernel},
	crashkernel.WildJump: {fmt.Sprintf("cannot emulate the access to %#x", crashkernel.WildAddress), vmexitNPF, "npf",
		func(rip uint64) bool { return rip == crashkernel.WildAddress }},
}

// (b) Three guests that crash, each stopped alone with its diagnostic,
// then the test kernel on the same hypervisor.
func TestGuestFaultsStopOnlyTheGuest(t *testing.T) {
	skipShort(t)
	t.Parallel()
	order := []string{crashkernel.TripleFault, crashkernel.Garbage, crashkernel.WildJump, "testkernel"}
	m := startGuests(t, strings.Join(order, ","), guestDeadline)
	runs := waitRunEnd(t, m, "testkernel", "testkernel", guestDeadline)
	var got []string
	for _, r := range runs {
		got = append(got, r.Name)
	}
	if strings.Join(got, ",") != strings.Join(order, ",") {
		t.Fatalf("guest runs %v, want %v in this order", got, order)
	}
	for i, name := range order[:3] {
		r, want := runs[i], crashes[name]
		if !strings.HasPrefix(r.Fault, want.fault) {
			t.Errorf("vm %s: fault %q, want it to start %q", name, r.Fault, want.fault)
		}
		if !strings.Contains(r.Fault, "(vCPU 0, exit ") {
			t.Errorf("vm %s: the diagnostic %q names no vCPU and exit", name, r.Fault)
		}
		if len(r.Dump) == 0 || !strings.HasPrefix(r.Dump[0], "VMCB at 0x") {
			t.Errorf("vm %s: no VMCB dump after the diagnostic", name)
		}
		if got := r.Fields["EXITCODE"]; got != want.exitCode {
			t.Errorf("vm %s: VMCB EXITCODE %q, want %s", name, got, want.exitCode)
		}
		for _, reg := range []string{"RIP", "RSP", "RFLAGS", "CR0", "CR3", "EFER", "CS.sel", "RAX", "RBX", "RCX", "RDX",
			"RSI", "RDI", "RBP", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"} {
			if _, ok := r.Fields[reg]; !ok {
				t.Errorf("vm %s: the VMCB dump shows no %s", name, reg)
			}
		}
		var rip uint64
		if _, err := fmt.Sscanf(r.Fields["RIP"], "0x%x", &rip); err != nil || !want.rip(rip) {
			t.Errorf("vm %s: RIP %q is not where this kernel faults", name, r.Fields["RIP"])
		}
		if name == crashkernel.WildJump && r.Fields["EXITINFO2"] != fmt.Sprintf("%#x", crashkernel.WildAddress) {
			t.Errorf("vm %s: EXITINFO2 (the faulting guest-physical address) %q, want %#x", name, r.Fields["EXITINFO2"], crashkernel.WildAddress)
		}
		if !strings.HasPrefix(r.Reason, want.fault) {
			t.Errorf("vm %s: stopped with reason %q, want %q", name, r.Reason, want.fault)
		}
		if r.HasExitCode {
			t.Errorf("vm %s: a crash reported exit code %d", name, r.ExitCode)
		}
		if r.Exits != 1 || r.ExitsFor(want.reason) != 1 {
			t.Errorf("vm %s: exits %d %+v, want the one %s exit", name, r.Exits, r.ExitReasons, want.reason)
		}
		checkReport(t, r)
	}
	checkTestKernel(t, runs[3])
	expectAlive(t, m)
}

// shell drives the Linux guest's u-root shell through the hypervisor's
// console: what is typed on QEMU's stdin reaches COM1 of the machine, and
// the hypervisor forwards it to the guest's serial port.
type shell struct {
	t *testing.T
	m *emulator.Machine
}

// promptLine is the shell's prompt as the hypervisor prints it: flushed as
// a line of its own when the guest goes idle waiting for input.
const promptLine = "\n[" + linuxVM + "] " + "$ \n"

// waitPrompt waits for a prompt that starts at or after byte from of the
// console, and returns when it arrived and where it ends. It stops early
// when the guest stops instead.
func (s *shell) waitPrompt(from int, timeout time.Duration) (time.Duration, int) {
	s.t.Helper()
	stopped := "tamavisor: vm " + linuxVM + " stopped after "
	end := -1
	at, err := s.m.WaitUntil("the shell prompt", timeout, func(console string) (int, bool) {
		if from > len(console) {
			return 0, false
		}
		tail := console[from:]
		if i := strings.Index(tail, promptLine); i >= 0 {
			end = from + i + len(promptLine) - 1
			return end, true
		}
		return len(console), strings.Contains(tail, stopped) || strings.Contains(tail, "tamavisor: guest linux not started")
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if end < 0 {
		s.t.Fatalf("the guest stopped or was not started instead of prompting:\n%s", s.m.Console()[from:])
	}
	return at, end
}

// run types a command line and returns the guest's lines up to the next
// prompt: the tty's echo of the line, then the command's output. Lines the
// hypervisor cut at vmlog.MaxGuestLine bytes are joined again.
func (s *shell) run(line string) []string {
	s.t.Helper()
	return s.runWithin(line, shellTimeout)
}

// runWithin is run with its own bound on the command.
func (s *shell) runWithin(line string, timeout time.Duration) []string {
	s.t.Helper()
	from := len(s.m.Console())
	if err := s.m.Type(line + "\n"); err != nil {
		s.t.Fatal(err)
	}
	_, end := s.waitPrompt(from, timeout)
	text := strings.TrimSuffix(vmlog.GuestText(s.m.Console()[from:end], linuxVM), "\n")
	return strings.Split(text, "\n")
}

// (c) Debian's distribution kernel boots to the u-root shell under the
// hypervisor; the shell answers commands typed on the host's serial
// console, and poweroff stops the guest through ACPI.
func TestGuestLinuxShellSVM(t *testing.T) {
	skipShort(t)
	t.Parallel()
	release := recordedRelease(t)
	start := time.Now()
	m := startGuests(t, "linux", linuxDeadline)
	sh := &shell{t: t, m: m}
	toPrompt, _ := sh.waitPrompt(0, promptTimeout)
	t.Logf("QEMU start to the guest's shell prompt: %.1f s", toPrompt.Seconds())

	if out := sh.run("uname -r"); !contains(out, release) {
		t.Errorf("uname -r printed %q, want the kernel's release %q (build/guest/kernel.version)", out, release)
	}

	cpuinfo := map[string][]string{}
	for _, l := range sh.run("cat /proc/cpuinfo") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			k := strings.TrimSpace(k)
			cpuinfo[k] = append(cpuinfo[k], strings.TrimSpace(v))
		}
	}
	// The guest has one vCPU on QEMU's qemu64 processor, which CPUID
	// passes through, with the hypervisor bit set and SVM hidden (no
	// nested virtualization: guests/cpuid.go).
	if p := cpuinfo["processor"]; len(p) != 1 || p[0] != "0" {
		t.Errorf("/proc/cpuinfo lists processors %q, want the one vCPU 0", p)
	}
	if v := cpuinfo["vendor_id"]; len(v) != 1 || v[0] != "AuthenticAMD" {
		t.Errorf("/proc/cpuinfo vendor_id %q, want AuthenticAMD", v)
	}
	if n := cpuinfo["model name"]; len(n) != 1 || !strings.Contains(n[0], "QEMU") {
		t.Errorf("/proc/cpuinfo model name %q, want QEMU's", n)
	}
	if f := cpuinfo["flags"]; len(f) != 1 {
		t.Errorf("/proc/cpuinfo flags lines %q, want one", f)
	} else {
		flags := " " + f[0] + " "
		if !strings.Contains(flags, " hypervisor ") {
			t.Errorf("the guest does not see the hypervisor CPUID bit: flags %s", f[0])
		}
		if strings.Contains(flags, " svm ") {
			t.Errorf("the guest sees SVM, which the hypervisor hides: flags %s", f[0])
		}
	}

	from := len(m.Console())
	if err := m.Type("poweroff\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitUntil("the hypervisor's report after poweroff", shellTimeout, func(console string) (int, bool) {
		i := strings.Index(console[min(from, len(console)):], vmlog.KeepsRunning)
		return from + i + len(vmlog.KeepsRunning), i >= 0
	}); err != nil {
		t.Fatal(err)
	}
	r := vmlog.Find(vmlog.Parse(m.Console()), linuxVM)
	if r == nil {
		t.Fatal("no run of the Linux guest on the console")
	}
	if r.Kernel != "vmlinuz" || r.Format != "bzImage" {
		t.Errorf("the Linux guest started as %q (%s), want vmlinuz loaded as a bzImage", r.Kernel, r.Format)
	}
	if r.Reason != "powered off (ACPI S5)" || r.Fault != "" {
		t.Errorf("the Linux guest stopped with %q (fault %q), want \"powered off (ACPI S5)\"", r.Reason, r.Fault)
	}
	// Linux prints this at KERN_EMERG (kernel/reboot.c), quiet or not.
	if !strings.Contains(r.GuestText(), "reboot: Power down") {
		t.Error("no \"reboot: Power down\" from the kernel")
	}
	checkReport(t, r)
	expectAlive(t, m)
	t.Logf("Linux guest: %d exits %+v; stats %+v; whole test %.1f s", r.Exits, r.ExitReasons, r.Stats, time.Since(start).Seconds())
}

// recordedRelease is the kernel release make guest wrote beside the kernel
// it embedded ("package version release" in build/guest/kernel.version).
func recordedRelease(t *testing.T) string {
	t.Helper()
	path := filepath.Join(filepath.Dir(prepared(t).Kernel), "guest", "kernel.version")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: make guest writes it with the kernel the image embeds", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || !strings.HasSuffix(f[2], "-amd64") {
		t.Fatalf("%s holds %q, want \"package version release\"", path, b)
	}
	return f[2]
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}
