package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"tamavisor/guests/images"
	"tamavisor/qemu-test/vmlog"
	"tamavisor/tools/emulator"
)

// linuxVM is the name tamavisor gives its `linux` guest: the guest's
// console lines read "[debian] ...".
const linuxVM = "debian"

// linuxPrompt is u-root's shell prompt as tamavisor prints it: flushed as a
// line of its own once the guest idles waiting for input.
const linuxPrompt = "\n[" + linuxVM + "] " + images.Prompt + "\n"

// linuxSample is one run of the Linux guest under tamavisor.
type linuxSample struct {
	toPrompt time.Duration // from QEMU's start
	run      *vmlog.Run    // the hypervisor's report of the guest's run
}

// measureLinuxSVM boots Debian's kernel with the u-root initramfs to its
// shell prompt directly under QEMU TCG (images.BootDirect) and as the
// guest of tamavisor under QEMU TCG with AMD-V, alternately, and compares
// the median times from QEMU's start to the prompt. Both use the same
// kernel command line (images.DefaultAppend, which boot/guest.go's linux
// guest uses too: TestSameKernelCommandLine). Each tamavisor run is then
// powered off from the shell, and the run with the median time gives the
// VM exit figures: every exit from the guest's start to its poweroff.
func measureLinuxSVM(ctx context.Context, e *env) ([]figure, error) {
	image := filepath.Join(e.build, "tamavisor.elf")
	if _, err := os.Stat(image); err != nil {
		return nil, fmt.Errorf("%v (make bench builds it)", err)
	}
	im, err := images.Find(e.build)
	if err != nil {
		return nil, fmt.Errorf("%v (make bench runs make guest)", err)
	}
	var direct []time.Duration
	var svm []linuxSample
	for i := 0; i < e.linuxReps; i++ {
		d, log, err := images.BootDirect(ctx, "", im.Kernel, im.Initrd)
		if err != nil {
			return nil, fmt.Errorf("direct boot: %w\nconsole:\n%s", err, log)
		}
		direct = append(direct, d)
		s, err := linuxUnderTamavisor(ctx, e, image)
		if err != nil {
			return nil, fmt.Errorf("under tamavisor: %w", err)
		}
		svm = append(svm, s)
		e.logf("linux-svm-tcg: run %d: prompt after %.2f s direct, %.2f s under tamavisor (%d exits)",
			i+1, d.Seconds(), s.toPrompt.Seconds(), s.run.Exits)
	}
	med := medianSample(svm)
	d := median(direct)
	if d <= 0 {
		return nil, errors.New("the direct boot reached its prompt in no time: clock trouble")
	}
	e.logf("linux-svm-tcg: under tamavisor to the prompt: %s", formatDurations(sampleTimes(svm)))
	e.logf("linux-svm-tcg: direct to the prompt: %s", formatDurations(direct))
	e.logf("linux-svm-tcg: exits of the median run: %d, stats %+v", med.run.Exits, med.run.Stats)
	figs := []figure{
		{"linux_boot_ratio_svm_tcg", med.toPrompt.Seconds() / d.Seconds(), "%.3f"},
		{"linux_boot_seconds_svm_tcg", med.toPrompt.Seconds(), "%.2f"},
		// The same figure under the name the consolidation figures
		// (guest_boot_4x2_seconds_tcg) are compared with.
		{"linux_boot_seconds_tcg", med.toPrompt.Seconds(), "%.2f"},
		{"linux_boot_seconds_direct_tcg", d.Seconds(), "%.2f"},
		{"exits_per_linux_boot_svm", float64(med.run.Exits), "%.0f"},
	}
	for _, x := range med.run.ExitReasons {
		figs = append(figs, figure{"exits_per_linux_boot_svm_" + figureName(x.Reason), float64(x.Count), "%.0f"})
	}
	figs = append(figs,
		figure{"heap_allocs_per_exit_svm", med.run.Stats.HeapAllocsPerExit, "%.4f"},
		figure{"exit_handling_share_svm_pct", med.run.Stats.HandlerSharePct, "%.2f"},
	)
	return figs, nil
}

// linuxUnderTamavisor boots the image with tamavisor.guest=linux on the
// QEMU command line of the boot measurement, waits for the guest's shell
// prompt, types poweroff, and reads the hypervisor's report of the run.
func linuxUnderTamavisor(ctx context.Context, e *env, image string) (linuxSample, error) {
	cfg := bootTCG(image)
	cfg.ExtraArgs = []string{"-append", "tamavisor.guest=linux"}
	return linuxRun(ctx, cfg, e.linuxTimeout)
}

// linuxRun boots cfg, whose hypervisor starts the Linux guest, waits for
// the guest's shell prompt, types poweroff, and reads the hypervisor's
// report of the run; timeout bounds the emulator run and each wait.
func linuxRun(ctx context.Context, cfg emulator.Config, timeout time.Duration) (linuxSample, error) {
	cfg.Timeout = timeout
	m, err := emulator.Start(ctx, cfg)
	if err != nil {
		return linuxSample{}, err
	}
	fail := func(err error) (linuxSample, error) {
		r := m.Close()
		return linuxSample{}, fmt.Errorf("%w\nconsole:\n%s\nemulator diagnostics:\n%s", err, r.Console, r.Diagnostics)
	}
	notStarted := "tamavisor: guest linux not started"
	toPrompt, err := m.WaitUntil("the Linux guest's shell prompt", timeout, func(console string) (int, bool) {
		if i := strings.Index(console, linuxPrompt); i >= 0 {
			return i + len(linuxPrompt) - 1, true
		}
		return len(console), strings.Contains(console, notStarted)
	})
	if err == nil && strings.Contains(m.Console(), notStarted) {
		err = errors.New("the image did not start its Linux guest (is it embedded? make guest, then make image)")
	}
	if err != nil {
		return fail(err)
	}
	mark := len(m.Console())
	if err := m.Type("poweroff\n"); err != nil {
		return fail(err)
	}
	if _, err := m.WaitUntil("the report after poweroff", timeout, func(console string) (int, bool) {
		i := strings.Index(console[min(mark, len(console)):], vmlog.KeepsRunning)
		return mark + i + len(vmlog.KeepsRunning), i >= 0
	}); err != nil {
		return fail(err)
	}
	r := m.Close()
	run := vmlog.Find(vmlog.Parse(r.Console), linuxVM)
	switch {
	case run == nil:
		return fail(errors.New("no report of the Linux guest's run"))
	case len(run.Malformed) > 0:
		return fail(fmt.Errorf("report lines that do not read: %q", run.Malformed))
	case run.Reason != "powered off (ACPI S5)":
		return fail(fmt.Errorf("the guest stopped with %q, not by its poweroff", run.Reason))
	case !run.HasExits || !run.HasStats:
		return fail(errors.New("no exits or stats line for the guest's run"))
	}
	return linuxSample{toPrompt: toPrompt, run: run}, nil
}

// medianSample is the sample with the median time to the prompt (the lower
// of the middle two for an even count), so that its exit figures all come
// from one run.
func medianSample(s []linuxSample) linuxSample {
	sorted := append([]linuxSample(nil), s...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].toPrompt < sorted[j].toPrompt })
	return sorted[(len(sorted)-1)/2]
}

func sampleTimes(s []linuxSample) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.toPrompt
	}
	return out
}

// figureName turns an exit reason ("external-interrupt") into the
// figure-name style ("external_interrupt").
func figureName(reason string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, reason)
}
