package qemutest

// Consolidation: four SMP Linux guests from one VM definitions file
// (guests/config/examples/consolidation.toml), plus a guest that
// triple-faults and is restarted per its definition, on a 2-CPU host.
// Every Linux guest reaches its shell and sees its two CPUs, each runs a
// CPU-bound job, and the CPU time each gets over a window is within 10 %
// of its weight's share; the faulting guest never disturbs them.

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tamavisor/qemu-test/consolidate"
)

// consolidationVMs are the Linux guests of the example file.
var consolidationVMs = []string{"linux1", "linux2", "linux3", "linux4"}

const (
	consolidationDeadline = 12 * time.Minute
	fairnessWindow        = 20 * time.Second
)

// consolidationFile writes the example definitions plus a crashing guest.
func consolidationFile(t *testing.T) string {
	t.Helper()
	example, err := os.ReadFile("../guests/config/examples/consolidation.toml")
	if err != nil {
		t.Fatal(err)
	}
	crasher := `
[[vm]]
name = "crasher"
vcpus = 1
memory = "16M"
kernel = "triplefault"
console = "log"
on_crash = "restart"
max_restarts = 2
weight = 256
`
	path := filepath.Join(t.TempDir(), "vms.toml")
	if err := os.WriteFile(path, append(example, crasher...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A long test for now (make test-long): Debian with two vCPUs does not yet
// reach its shell under the hypervisor (no console output after the APs
// start; docs/architecture.md, Known limits), so it fails until that is
// fixed, and four SMP boots take minutes of TCG.
func TestConsolidationFourSMPGuests(t *testing.T) {
	skipUnlessLong(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	cfg.MemoryMiB = 2048
	cfg.Timeout = consolidationDeadline
	cfg.ExtraArgs = []string{"-initrd", consolidationFile(t), "-append", "tamavisor.vms=module"}
	r, m, err := consolidate.Run(context.Background(), consolidate.Config{
		Emulator: cfg, Names: consolidationVMs, Window: fairnessWindow,
		Timeout: consolidationDeadline, Job: consolidate.DefaultJob, Logf: t.Logf,
	})
	if m != nil {
		defer func() {
			res := m.Close()
			if t.Failed() {
				t.Logf("console:\n%s", res.Console)
			}
		}()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all shells after %.1f s; CPU time over %v: %+v; max deviation %.1f %%", r.AllPrompts.Seconds(), r.Window, r.VMs, r.MaxDeviationPct)
	for _, vm := range r.VMs {
		if vm.CPUs != 2 {
			t.Errorf("vm %s sees %d CPUs, want 2", vm.Name, vm.CPUs)
		}
	}
	if r.MaxDeviationPct > 10 {
		t.Errorf("CPU time shares deviate from the weights by %.1f %% (limit 10 %%)", r.MaxDeviationPct)
	}
	console := m.Console()
	restarts := len(regexp.MustCompile(`vm crasher: .*(restart|crash)`).FindAllString(console, -1))
	if !strings.Contains(console, "vm crasher stopped") || restarts == 0 {
		t.Errorf("the crashing guest was not stopped and restarted per its definition")
	}
}
