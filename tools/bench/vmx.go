package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"tamavisor/tools/emulator"
)

// grubConfig boots the image through Multiboot2 with the Linux guest, as
// tools/grub.cfg's default entry does with tamavisor.guest=linux added.
const grubConfig = `set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry "tamavisor (multiboot2)" {
	multiboot2 /boot/tamavisor.elf tamavisor.guest=linux
	boot
}
`

// linuxISO builds a GRUB rescue ISO holding image with grubConfig, in dir
// (Bochs boots only from a disk; make bench builds the image, not an ISO).
func linuxISO(image, dir string) (string, error) {
	tree := filepath.Join(dir, "iso")
	if err := os.MkdirAll(filepath.Join(tree, "boot", "grub"), 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(image)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tree, "boot", "tamavisor.elf"), b, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tree, "boot", "grub", "grub.cfg"), []byte(grubConfig), 0o644); err != nil {
		return "", err
	}
	iso := filepath.Join(dir, "linux.iso")
	if out, err := exec.Command("grub-mkrescue", "-o", iso, tree).CombinedOutput(); err != nil {
		return "", fmt.Errorf("grub-mkrescue: %v\n%s", err, out)
	}
	return iso, nil
}

// measureLinuxVMX boots Debian's kernel with the u-root initramfs as
// tamavisor's guest under Bochs with an Intel VT-x CPU (corei7_skylake_x),
// to its shell prompt and poweroff, and reports the VM exits of the guest's
// run as exits_per_linux_boot_svm does for AMD-V. A run takes minutes (the
// prompt comes 82-95 s after Bochs starts on an idle 2-core host, about
// three minutes on a loaded one), so the figures come from -vmx-reps runs,
// one by default, rather than from the median of several; there is no
// direct-boot baseline under Bochs.
func measureLinuxVMX(ctx context.Context, e *env) ([]figure, error) {
	image := filepath.Join(e.build, "tamavisor.elf")
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("%v (make bench builds it)", err)
	}
	dir, err := os.MkdirTemp("", "tamavisor-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	iso, err := linuxISO(image, dir)
	if err != nil {
		return nil, err
	}
	e.logf("linux-vmx-bochs: %d Bochs run(s) of Debian to its prompt and poweroff, a minute or more each; the figures are those of one run", e.vmxReps)
	var runs []linuxSample
	for i := 0; i < e.vmxReps; i++ {
		cfg := emulator.Config{Emulator: emulator.Bochs, CPU: emulator.BochsCPU, ISO: iso, BochsTerminal: true}
		s, err := linuxRun(ctx, cfg, e.vmxTimeout)
		if err != nil {
			return nil, fmt.Errorf("under tamavisor on Bochs: %w", err)
		}
		runs = append(runs, s)
		e.logf("linux-vmx-bochs: run %d: prompt after %.1f s (%d exits, %s)", i+1, s.toPrompt.Seconds(), s.run.Exits, exitList(s))
	}
	return vmxFigures(medianSample(runs)), nil
}

// vmxFigures are the figures of one Debian run under the VT-x engine.
func vmxFigures(s linuxSample) []figure {
	figs := []figure{
		{"linux_boot_seconds_vmx_bochs", s.toPrompt.Seconds(), "%.1f"},
		{"exits_per_linux_boot_vmx", float64(s.run.Exits), "%.0f"},
	}
	for _, x := range s.run.ExitReasons {
		figs = append(figs, figure{"exits_per_linux_boot_vmx_" + figureName(x.Reason), float64(x.Count), "%.0f"})
	}
	return append(figs,
		figure{"heap_allocs_per_exit_vmx", s.run.Stats.HeapAllocsPerExit, "%.4f"},
		figure{"exit_handling_share_vmx_pct", s.run.Stats.HandlerSharePct, "%.2f"},
	)
}

func exitList(s linuxSample) string {
	var parts []string
	for _, x := range s.run.ExitReasons {
		parts = append(parts, fmt.Sprintf("%s=%d", x.Reason, x.Count))
	}
	return strings.Join(parts, " ")
}
