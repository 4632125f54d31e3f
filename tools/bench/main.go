// Command bench measures tamavisor's tracked figures and prints each on its
// own line as `name: value` (make bench). Progress and the individual
// samples go to stderr, so stdout holds only the figures.
//
// Each measurement is one entry in the measurements table: a name (for
// -only), and a function returning its figures. Figures are ratios against
// a baseline measured in the same run wherever possible, because absolute
// times under emulation depend on the host and its load.
//
//	go run ./tools/bench                 all measurements
//	go run ./tools/bench -only boot-tcg  one of them
//	go run ./tools/bench -reps 9         more repetitions per sample
//	go run ./tools/bench -linux-reps 5   more Linux boots each way
//	go run ./tools/bench -only linux-vmx-bochs   Debian under VT-x in Bochs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"tamavisor/tools/emulator"
)

// figure is one tracked number.
type figure struct {
	name   string
	value  float64
	format string // for the value, e.g. "%.3f"
}

// env is what every measurement gets.
type env struct {
	build   string        // directory with the built images
	reps    int           // repetitions per sample; medians are reported
	timeout time.Duration // per emulator run
	// imageMarker ends the image's boot (-image-marker, to try the bench
	// on an image that does not yet print its inventory).
	imageMarker string
	// linuxReps is the number of Linux guest boots each way (direct and
	// under tamavisor): about 15 s of emulation per pair here.
	linuxReps    int
	linuxTimeout time.Duration // per emulator run with the Linux guest
	// vmxReps and vmxTimeout are the Bochs runs of the Linux guest under
	// the VT-x engine, minutes each.
	vmxReps    int
	vmxTimeout time.Duration
	logf       func(format string, args ...any)
}

// measurement is one group of figures measured together.
type measurement struct {
	name  string
	about string
	run   func(ctx context.Context, e *env) ([]figure, error)
}

// measurements is the table of everything make bench tracks.
var measurements = []measurement{
	{
		name:  "boot-tcg",
		about: "image boot to its inventory under QEMU TCG, against a minimal program on the same runtime",
		run:   measureBootTCG,
	},
	{
		name: "linux-svm-tcg",
		about: "Debian's kernel to its shell prompt as tamavisor's guest under QEMU TCG with AMD-V, against the same " +
			"kernel booted directly by QEMU TCG; VM exits and exit-path figures of the guest's run to poweroff",
		run: measureLinuxSVM,
	},
	{
		name: "linux-vmx-bochs",
		about: "Debian's kernel to its shell prompt and poweroff as tamavisor's guest under Bochs with Intel VT-x " +
			"(corei7_skylake_x): VM exits by reason and exit-path figures of one run (minutes of emulation)",
		run: measureLinuxVMX,
	},
	{
		name: "dma",
		about: "DMA attack by QEMU's edu device on hypervisor and guest memory, under QEMU's VT-d and AMD-Vi, " +
			"with the IOMMU driver on (goal: nothing lands) and off (writes must land, or the attack proves nothing)",
		run: measureDMA,
	},
	{
		name: "consolidation",
		about: "four Debian guests with two vCPUs each from one VM definitions file on a 2-CPU QEMU TCG host: " +
			"time until all four shells are up, and the fairness of the CPU time they get running CPU-bound jobs",
		run: measureConsolidation,
	},
}

func main() {
	var (
		build   = flag.String("build", "build", "directory holding tamavisor.elf and minimal.elf")
		reps    = flag.Int("reps", 5, "runs per sample (the median is reported)")
		only    = flag.String("only", "", "comma-separated measurement names to run (default all)")
		timeout = flag.Duration("timeout", 2*time.Minute, "limit for each emulator run")
		list    = flag.Bool("list", false, "list the measurements and exit")
		marker  = flag.String("image-marker", imageMarker, "console text that ends the image's boot")
		lreps   = flag.Int("linux-reps", 3, "Linux guest boots each way (the median is reported)")
		ltime   = flag.Duration("linux-timeout", 5*time.Minute, "limit for each emulator run with the Linux guest")
		vreps   = flag.Int("vmx-reps", 1, "Bochs runs of the Linux guest under VT-x (the median is reported)")
		vtime   = flag.Duration("vmx-timeout", 20*time.Minute, "limit for each Bochs run with the Linux guest")
	)
	flag.Parse()
	if *list {
		for _, m := range measurements {
			fmt.Printf("%s\t%s\n", m.name, m.about)
		}
		return
	}
	if *reps < 1 || *lreps < 1 || *vreps < 1 {
		fatalf("-reps %d, -linux-reps %d, -vmx-reps %d: need at least one run", *reps, *lreps, *vreps)
	}
	selected, err := selectMeasurements(*only)
	if err != nil {
		fatalf("%v", err)
	}
	e := &env{build: *build, reps: *reps, timeout: *timeout, imageMarker: *marker,
		linuxReps: *lreps, linuxTimeout: *ltime, vmxReps: *vreps, vmxTimeout: *vtime, logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
		}}
	failed := false
	for _, m := range selected {
		figs, err := m.run(context.Background(), e)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", m.name, err)
			failed = true
			continue
		}
		for _, f := range figs {
			fmt.Printf("%s: "+f.format+"\n", f.name, f.value)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func selectMeasurements(only string) ([]measurement, error) {
	if only == "" {
		return measurements, nil
	}
	var out []measurement
	for _, name := range strings.Split(only, ",") {
		found := false
		for _, m := range measurements {
			if m.name == name {
				out = append(out, m)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown measurement %q (see -list)", name)
		}
	}
	return out, nil
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

// Markers the boot measurement waits for.
const (
	imageMarker   = "tamavisor: inventory end"
	minimalMarker = "minimal: ready"
)

// measureBootTCG boots the image and the minimal program alternately (so
// that a change in the host's load hits both alike), each under the same
// QEMU TCG command line, and compares the median wall times from QEMU's
// start to each one's marker.
func measureBootTCG(ctx context.Context, e *env) ([]figure, error) {
	image := filepath.Join(e.build, "tamavisor.elf")
	minimal := filepath.Join(e.build, "minimal.elf")
	for _, p := range []string{image, minimal} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%v (make bench builds it)", err)
		}
	}
	// One discarded pair first: the first QEMU start of a run pays for
	// loading its binary and firmware from disk.
	if _, err := bootTime(ctx, e, minimal, minimalMarker); err != nil {
		return nil, fmt.Errorf("minimal program: %w", err)
	}
	if _, err := bootTime(ctx, e, image, e.imageMarker); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	var imageTimes, minimalTimes []time.Duration
	for i := 0; i < e.reps; i++ {
		d, err := bootTime(ctx, e, minimal, minimalMarker)
		if err != nil {
			return nil, fmt.Errorf("minimal program: %w", err)
		}
		minimalTimes = append(minimalTimes, d)
		d, err = bootTime(ctx, e, image, e.imageMarker)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		imageTimes = append(imageTimes, d)
	}
	e.logf("boot-tcg: image to %q: %s", e.imageMarker, formatDurations(imageTimes))
	e.logf("boot-tcg: minimal to %q: %s", minimalMarker, formatDurations(minimalTimes))
	img, min := median(imageTimes), median(minimalTimes)
	if min <= 0 {
		return nil, errors.New("the minimal program's boot took no time: clock trouble")
	}
	return []figure{
		{"boot_to_inventory_ratio_tcg", img.Seconds() / min.Seconds(), "%.3f"},
		{"boot_to_inventory_seconds_tcg", img.Seconds(), "%.3f"},
	}, nil
}

// bootTCG is the QEMU command line both programs boot with: the one the
// integration tests use for the PVH boot.
func bootTCG(kernel string) emulator.Config {
	return emulator.Config{
		Emulator:  emulator.QEMU,
		Accel:     emulator.AccelTCG,
		SMP:       2,
		MemoryMiB: 2048,
		Kernel:    kernel,
	}
}

// bootTime is the wall time from the emulator's start until marker
// appears on the console.
func bootTime(ctx context.Context, e *env, kernel, marker string) (time.Duration, error) {
	cfg := bootTCG(kernel)
	cfg.Timeout = e.timeout
	m, err := emulator.Start(ctx, cfg)
	if err != nil {
		return 0, err
	}
	at, err := m.WaitFor(marker, e.timeout)
	r := m.Close()
	if err != nil {
		return 0, fmt.Errorf("%w\nconsole:\n%s\nemulator diagnostics:\n%s", err, r.Console, r.Diagnostics)
	}
	return at, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func formatDurations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.3fs", d.Seconds())
	}
	return strings.Join(parts, " ")
}
