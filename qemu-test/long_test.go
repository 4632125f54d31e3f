package qemutest

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"tamavisor/qemu-test/vmlog"
)

// LongEnv enables the long tests (make test-long): runs of minutes that
// make test leaves out.
const LongEnv = "TAMAVISOR_LONG"

func skipUnlessLong(t *testing.T) {
	t.Helper()
	skipShort(t)
	if os.Getenv(LongEnv) == "" {
		t.Skipf("a long test: set %s=1 (make test-long)", LongEnv)
	}
}

// linuxRepeats is how many Linux guests TestLongLinuxRepeated runs in a row.
const linuxRepeats = 4

// TestLongLinuxRepeated runs the Linux guest several times on one
// hypervisor, each to its shell, a command and poweroff, then the test
// kernel: every guest's 512 MiB, nested page tables and ASID must come
// back for the next, and the console input must reach each new guest.
func TestLongLinuxRepeated(t *testing.T) {
	skipUnlessLong(t)
	release := recordedRelease(t)
	names := strings.TrimSuffix(strings.Repeat("linux,", linuxRepeats), ",") + ",testkernel"
	m := startGuests(t, names, time.Duration(linuxRepeats)*linuxDeadline)
	sh := &shell{t: t, m: m}
	from := 0
	for i := 0; i < linuxRepeats; i++ {
		at, _ := sh.waitPrompt(from, promptTimeout)
		t.Logf("Linux guest %d: prompt %.1f s after QEMU's start", i+1, at.Seconds())
		if out := sh.run("uname -r"); !contains(out, release) {
			t.Fatalf("Linux guest %d: uname -r printed %q, want %q", i+1, out, release)
		}
		mark := len(m.Console())
		if err := m.Type("poweroff\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := m.WaitUntil("the report after poweroff", shellTimeout, func(console string) (int, bool) {
			j := strings.Index(console[min(mark, len(console)):], vmlog.KeepsRunning)
			return mark + j + len(vmlog.KeepsRunning), j >= 0
		}); err != nil {
			t.Fatalf("Linux guest %d: %v", i+1, err)
		}
		from = len(m.Console())
	}
	runs := waitRunEnd(t, m, "testkernel", "testkernel", guestDeadline)
	var linux []*vmlog.Run
	for _, r := range runs {
		if r.Name == linuxVM {
			linux = append(linux, r)
		}
	}
	if len(linux) != linuxRepeats || len(runs) != linuxRepeats+1 {
		t.Fatalf("%d runs, %d of them Linux; want %d Linux runs and the test kernel", len(runs), len(linux), linuxRepeats)
	}
	for i, r := range linux {
		if r.Reason != "powered off (ACPI S5)" {
			t.Errorf("Linux guest %d stopped with %q", i+1, r.Reason)
		}
		checkReport(t, r)
		t.Logf("Linux guest %d: %d exits, %s s", i+1, r.Exits, strconv.FormatFloat(r.StoppedAfter, 'f', 1, 64))
	}
	checkTestKernel(t, runs[linuxRepeats])
	expectAlive(t, m)
}
