package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"tamavisor/qemu-test/consolidate"
)

// measureConsolidation boots the four-guest example (two vCPUs each,
// equal weights) on a 2-CPU QEMU TCG host, times until all four shells
// are up, then runs a CPU-bound job in each and reports the largest gap
// between a guest's share of the CPU time and its weight's share.
func measureConsolidation(ctx context.Context, e *env) ([]figure, error) {
	image := filepath.Join(e.build, "tamavisor.elf")
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("%v (make bench builds it)", err)
	}
	cfg := bootTCG(image)
	cfg.SMP, cfg.MemoryMiB = 2, 2048
	cfg.Timeout = 3 * e.linuxTimeout
	cfg.ExtraArgs = []string{"-initrd", "guests/config/examples/consolidation.toml", "-append", "tamavisor.vms=module"}
	r, m, err := consolidate.Run(ctx, consolidate.Config{
		Emulator: cfg, Names: []string{"linux1", "linux2", "linux3", "linux4"},
		Window: 30 * time.Second, Timeout: cfg.Timeout, Job: consolidate.DefaultJob, Logf: e.logf,
	})
	if m != nil {
		defer m.Close()
	}
	if err != nil {
		return nil, err
	}
	for _, vm := range r.VMs {
		e.logf("consolidation: %s: %d CPUs, weight %d, %v CPU time over %v", vm.Name, vm.CPUs, vm.Weight, vm.CPU, r.Window)
	}
	return []figure{
		{"guest_boot_4x2_seconds_tcg", r.AllPrompts.Seconds(), "%.1f"},
		{"fairness_max_deviation_pct", r.MaxDeviationPct, "%.1f"},
	}, nil
}
