// Command runvm boots a tamavisor image under QEMU or Bochs: the
// command-line face of tools/emulator, used by `make qemu`, `make qemu-uefi`
// and `make bochs`.
//
//	runvm -emulator qemu -kernel build/tamavisor.elf -interactive
//	runvm -emulator qemu -uefi build/tamavisor-uefi.img -iommu intel -timeout 60s -expect 'tamavisor: ready'
//	runvm -emulator bochs -iso build/tamavisor.iso -timeout 2m
//
// Interactive QEMU puts the serial console on the terminal (Ctrl-A X
// quits, Ctrl-A C switches to QEMU's monitor). Interactive Bochs shows the
// serial console on the terminal; Ctrl-C ends it. Otherwise the console is
// streamed to stdout without terminal escape sequences and the run ends at
// -timeout, or as soon as every -expect marker has appeared.
//
// Exit status: 0 when the emulator ended by itself with status 0 or when
// all -expect markers appeared; 124 when -timeout passed first; 130 when
// interrupted (Ctrl-C); 1 when a marker was missing; otherwise the
// emulator's own status.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"tamavisor/tools/emulator"
)

type markers []string

func (m *markers) String() string     { return strings.Join(*m, ", ") }
func (m *markers) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	var (
		emu         = flag.String("emulator", "qemu", "qemu or bochs")
		accel       = flag.String("accel", "auto", "QEMU accelerator: auto (KVM where nested virtualization works, else TCG), kvm or tcg")
		cpu         = flag.String("cpu", "", "CPU model (default: "+emulator.TCGCPU+" under TCG, host under KVM, "+emulator.BochsCPU+" for Bochs)")
		smp         = flag.Int("smp", 0, "number of CPUs (default 1)")
		mem         = flag.String("mem", "", "guest memory, e.g. 2G or 4096M (default 2G; Bochs takes at most 2G)")
		kernel      = flag.String("kernel", "", "PVH ELF image booted with QEMU's -kernel")
		iso         = flag.String("iso", "", "bootable ISO (GRUB)")
		uefi        = flag.String("uefi", "", "raw UEFI disk image booted through OVMF (QEMU)")
		iommu       = flag.String("iommu", "none", "emulated IOMMU on QEMU's q35: none, intel (VT-d) or amd (AMD-Vi)")
		timeout     = flag.Duration("timeout", 0, "kill the emulator after this long (default: none when interactive, 5m otherwise)")
		interactive = flag.Bool("interactive", false, "serial console on this terminal until the emulator is quit")
		dryRun      = flag.Bool("n", false, "print the command line (and bochsrc) without running")
		expect      markers
	)
	flag.Var(&expect, "expect", "end the run with status 0 once the console shows this text (repeatable: all must appear)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: runvm [flags] [-- extra emulator arguments or bochsrc lines]\n")
		flag.PrintDefaults()
	}
	flag.Parse()

	cfg := emulator.Config{
		Emulator:    emulator.Emulator(*emu),
		Accel:       emulator.Accel(*accel),
		CPU:         *cpu,
		SMP:         *smp,
		Kernel:      *kernel,
		ISO:         *iso,
		UEFI:        *uefi,
		IOMMU:       emulator.IOMMU(*iommu),
		ExtraArgs:   flag.Args(),
		Timeout:     *timeout,
		Interactive: *interactive,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "runvm: "+format+"\n", args...)
		},
	}
	if *mem != "" {
		mib, err := emulator.ParseMemory(*mem)
		if err != nil {
			return fail(err)
		}
		cfg.MemoryMiB = mib
	}
	if !cfg.Interactive {
		if cfg.Timeout == 0 {
			cfg.Timeout = 5 * time.Minute
		}
		cfg.Echo = os.Stdout
	}
	if *interactive && len(expect) > 0 {
		return fail(errors.New("-expect needs a captured console: drop -interactive"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dryRun {
		return dry(cfg)
	}
	m, err := emulator.Start(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "runvm: %s\n", emulator.FormatCommand(m.Argv()))
	if cfg.Interactive && cfg.Emulator == emulator.QEMU {
		fmt.Fprintf(os.Stderr, "runvm: serial console on this terminal; Ctrl-A X quits\n")
	}

	status := 0
	if len(expect) > 0 {
		for _, marker := range expect {
			at, err := m.WaitFor(marker, cfg.Timeout)
			if err != nil {
				fmt.Fprintf(os.Stderr, "\nrunvm: %v\n", err)
				status = 1
				break
			}
			fmt.Fprintf(os.Stderr, "\nrunvm: %q after %.3f s\n", marker, at.Seconds())
		}
		r := m.Close()
		if status != 0 {
			fmt.Fprintf(os.Stderr, "runvm: emulator diagnostics:\n%s", r.Diagnostics)
			if r.TimedOut {
				status = 124
			}
		}
		return status
	}
	<-m.Done()
	r := m.Close()
	switch {
	case ctx.Err() != nil && !r.TimedOut:
		fmt.Fprintf(os.Stderr, "\nrunvm: interrupted\n")
		return 130
	case r.TimedOut:
		fmt.Fprintf(os.Stderr, "\nrunvm: timed out after %v\n", cfg.Timeout)
		return 124
	case r.ExitCode != 0:
		fmt.Fprintf(os.Stderr, "\nrunvm: %s exited with status %d\n%s", cfg.Emulator, r.ExitCode, r.Diagnostics)
		if r.ExitCode < 0 {
			return 1
		}
		return r.ExitCode
	}
	return 0
}

func dry(cfg emulator.Config) int {
	p, err := emulator.Describe(cfg)
	if err != nil {
		return fail(err)
	}
	fmt.Println(emulator.FormatCommand(p.Argv))
	if p.BochsRC != "" {
		fmt.Print("--- bochsrc ---\n" + p.BochsRC)
	}
	return 0
}

func fail(err error) int {
	fmt.Fprintf(os.Stderr, "runvm: %v\n", err)
	return 2
}
