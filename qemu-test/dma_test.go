package qemutest

// DMA protection: QEMU's edu device, driven by the hypervisor's DMA
// attack self-test (boot/dmatest.go), aims writes at hypervisor memory
// and at a running guest's memory, under each vendor's emulated IOMMU.
// With the IOMMU driver on, nothing lands and the faults are reported;
// with tamavisor.iommu=off the same writes land, which shows the test can
// fail.

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tamavisor/qemu-test/vmlog"
	"tamavisor/tools/emulator"
)

// EduDevice is QEMU's edu device with its DMA engine able to reach all of
// memory (its default mask is 28 bits, below the hypervisor's RAM).
const EduDevice = "edu,dma_mask=0xffffffffffffffff"

const dmaDeadline = 240 * time.Second

func TestDMAAttack(t *testing.T) {
	skipShort(t)
	for _, c := range []struct {
		name      string
		iommu     emulator.IOMMU
		protected bool
	}{
		{"vt-d", emulator.IOMMUIntel, true},
		{"amd-vi", emulator.IOMMUAMD, true},
		{"vt-d-off", emulator.IOMMUIntel, false},
		{"amd-vi-off", emulator.IOMMUAMD, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a, m := runDMAAttack(t, c.iommu, c.protected)
			t.Logf("%+v", a)
			if a.Attempts < 3 {
				t.Fatalf("only %d DMA attempts (hypervisor memory twice, a guest's once)", a.Attempts)
			}
			if c.protected {
				if !a.IOMMU || a.Landed != 0 {
					t.Errorf("with the IOMMU on, %d of %d DMA writes landed", a.Landed, a.Attempts)
				}
				switch {
				case a.FaultsReported > 0 && len(a.FaultLines) > 0:
				case c.iommu == emulator.IOMMUAMD && !qemuLogsAMDViEvents(t):
					t.Logf("NOT CHECKED: fault reporting under AMD-Vi: this QEMU (before 10.1) never writes an AMD-Vi event record " +
						"(hw/i386/amd_iommu.c amdvi_test_mask ORs instead of ANDs, so amdvi_log_event always returns; fixed by " +
						"upstream commit c0ef803a8); the driver's event-log decoding is covered by drivers/iommu/amdvi's tests")
				default:
					t.Errorf("the IOMMU blocked the writes but no fault was reported on the console")
				}
				for _, f := range a.FaultLines {
					if !strings.Contains(f, "DMA write by ") {
						t.Errorf("fault line without the device and direction: %q", f)
					}
				}
			} else if a.IOMMU || a.Landed != a.Attempts {
				t.Errorf("without the IOMMU driver only %d of %d DMA writes landed: the attack proves nothing", a.Landed, a.Attempts)
			}
			if !a.Done {
				t.Error("the self-test did not finish")
			}
			expectAlive(t, m)
		})
	}
}

// runDMAAttack boots the image on q35 with an IOMMU and the edu device,
// runs the attack self-test while the Linux guest starts, and returns
// what the self-test reported.
func runDMAAttack(t *testing.T, iommu emulator.IOMMU, protected bool) (vmlog.DMAAttack, *emulator.Machine) {
	t.Helper()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	cfg.IOMMU = iommu
	args := "tamavisor.selftest=dma tamavisor.guest=linux"
	if !protected {
		args += " tamavisor.iommu=off"
	}
	cfg.ExtraArgs = []string{"-device", EduDevice, "-append", args}
	_, m := bootMachine(t, cfg, dmaDeadline)
	var a vmlog.DMAAttack
	if _, err := m.WaitUntil("the DMA attack's result", dmaDeadline, func(console string) (int, bool) {
		if !strings.Contains(console, "dma-attack: d") && !strings.Contains(console, "dma-attack: failed") {
			return 0, false
		}
		var ok bool
		a, ok = vmlog.ParseDMAAttack(console)
		return len(console), ok && (a.Done || a.Failed != "")
	}); err != nil {
		t.Fatal(err)
	}
	if a.Failed != "" {
		t.Fatalf("the DMA attack self-test could not run: %s", a.Failed)
	}
	return a, m
}

// qemuLogsAMDViEvents reports whether the installed QEMU writes AMD-Vi
// event records: QEMU 10.1 and later (see TestDMAAttack).
func qemuLogsAMDViEvents(t *testing.T) bool {
	out, err := exec.Command("qemu-system-x86_64", "--version").Output()
	if err != nil {
		t.Fatalf("qemu-system-x86_64 --version: %v", err)
	}
	m := regexp.MustCompile(`version (\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no version in %q", out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	return major > 10 || major == 10 && minor >= 1
}
