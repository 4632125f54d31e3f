package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"tamavisor/qemu-test/vmlog"
	"tamavisor/tools/emulator"
)

// eduDevice is QEMU's edu device with a DMA mask reaching all memory
// (qemu-test/dma_test.go uses the same).
const eduDevice = "edu,dma_mask=0xffffffffffffffff"

// measureDMA runs the DMA attack self-test under each vendor's emulated
// IOMMU, with the IOMMU driver on and off, and reports how many of the
// attack's writes landed: 0 is the goal with the driver on, and the runs
// without it must land writes or the attack proves nothing.
func measureDMA(ctx context.Context, e *env) ([]figure, error) {
	image := filepath.Join(e.build, "tamavisor.elf")
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("%v (make bench builds it)", err)
	}
	var figs []figure
	for _, c := range []struct {
		vendor string
		iommu  emulator.IOMMU
	}{{"intel", emulator.IOMMUIntel}, {"amd", emulator.IOMMUAMD}} {
		for _, protected := range []bool{true, false} {
			cfg := bootTCG(image)
			cfg.IOMMU = c.iommu
			cfg.Timeout = e.linuxTimeout
			args := "tamavisor.selftest=dma tamavisor.guest=linux"
			name := "dma_writes_landed_with_iommu_" + c.vendor
			if !protected {
				args += " tamavisor.iommu=off"
				name = "dma_writes_landed_without_iommu_" + c.vendor
			}
			cfg.ExtraArgs = []string{"-device", eduDevice, "-append", args}
			a, err := dmaRun(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			e.logf("dma: %s: %d of %d writes landed, %d faults reported", name, a.Landed, a.Attempts, a.FaultsReported)
			figs = append(figs, figure{name, float64(a.Landed), "%.0f"})
			if protected {
				figs = append(figs, figure{"dma_faults_reported_" + c.vendor, float64(a.FaultsReported), "%.0f"})
			}
		}
	}
	return figs, nil
}

func dmaRun(ctx context.Context, cfg emulator.Config) (vmlog.DMAAttack, error) {
	m, err := emulator.Start(ctx, cfg)
	if err != nil {
		return vmlog.DMAAttack{}, err
	}
	defer m.Close()
	var a vmlog.DMAAttack
	_, err = m.WaitUntil("the DMA attack's result", cfg.Timeout, func(console string) (int, bool) {
		if !strings.Contains(console, "dma-attack: d") && !strings.Contains(console, "dma-attack: failed") {
			return 0, false
		}
		var ok bool
		a, ok = vmlog.ParseDMAAttack(console)
		return len(console), ok && (a.Done || a.Failed != "")
	})
	if err == nil && a.Failed != "" {
		err = fmt.Errorf("the self-test could not run: %s", a.Failed)
	}
	return a, err
}
