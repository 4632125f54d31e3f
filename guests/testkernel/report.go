package testkernel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"tamavisor/tools/emulator"
)

// Steps are the test kernel's steps, in the order it runs them.
var Steps = []string{"boot", "serial", "cpuid", "lapic", "timer"}

// DebugExitDevice is QEMU's -device for the exit port the kernel writes
// its failure count to.
const DebugExitDevice = "isa-debug-exit,iobase=0xf4,iosize=4"

// QEMUExitStatus is QEMU's exit status when the kernel writes code to the
// isa-debug-exit port: (code << 1) | 1. Every step passed: status 1.
func QEMUExitStatus(code int) int { return code<<1 | 1 }

// ExitFailure is the code the kernel writes after an unexpected interrupt
// or exception.
const ExitFailure = 0x7F

const prefix = "testkernel: "

// Result is one step's result line.
type Result struct {
	Step   string
	OK     bool
	Detail string // after FAIL
}

// Report is what a run printed.
type Report struct {
	Started bool
	Results []Result
	// Info are the "testkernel: <step>: ..." lines, without the prefix.
	Info []string
	// Done is set by the last line, "testkernel: done, N failed".
	Done   bool
	Failed int
	// Unexpected is the line an unexpected interrupt or exception printed.
	Unexpected string
}

// Parse reads the test kernel's lines from a console log; other lines
// (firmware, the hypervisor's own) are ignored.
func Parse(console string) Report {
	var r Report
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimRight(line, "\r")
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		switch {
		case rest == "start":
			r.Started = true
		case strings.HasPrefix(rest, "FAIL unexpected"):
			r.Unexpected = rest
		case strings.HasPrefix(rest, "done, "):
			n, ok := strings.CutSuffix(strings.TrimPrefix(rest, "done, "), " failed")
			if v, err := strconv.Atoi(n); ok && err == nil && v >= 0 {
				r.Done, r.Failed = true, v
			}
		default:
			step, result, ok := strings.Cut(rest, " ")
			if !ok || step == "" || strings.HasSuffix(step, ":") {
				if step != "" {
					r.Info = append(r.Info, rest)
				}
				continue
			}
			switch {
			case result == "ok":
				r.Results = append(r.Results, Result{Step: step, OK: true})
			case result == "FAIL" || strings.HasPrefix(result, "FAIL "):
				r.Results = append(r.Results, Result{Step: step, Detail: strings.TrimSpace(strings.TrimPrefix(result, "FAIL"))})
			}
		}
	}
	return r
}

// Check says what is wrong with a run: a step missing, out of order or
// failed, an unexpected interrupt, or no final line.
func (r Report) Check() error {
	var problems []string
	if !r.Started {
		problems = append(problems, "no \"testkernel: start\" line")
	}
	if r.Unexpected != "" {
		problems = append(problems, r.Unexpected)
	}
	for i, step := range Steps {
		if i >= len(r.Results) {
			problems = append(problems, fmt.Sprintf("step %s did not report", step))
			continue
		}
		got := r.Results[i]
		switch {
		case got.Step != step:
			problems = append(problems, fmt.Sprintf("result %d is step %q, want %q", i, got.Step, step))
		case !got.OK:
			problems = append(problems, fmt.Sprintf("step %s FAIL %s", step, got.Detail))
		}
	}
	if len(r.Results) > len(Steps) {
		problems = append(problems, fmt.Sprintf("%d results, want %d", len(r.Results), len(Steps)))
	}
	switch {
	case !r.Done:
		problems = append(problems, "no \"testkernel: done\" line")
	case r.Failed != 0:
		problems = append(problems, fmt.Sprintf("the kernel counted %d failed steps", r.Failed))
	}
	if len(problems) > 0 {
		return errors.New("testkernel: " + strings.Join(problems, "; "))
	}
	return nil
}

// RunQEMU boots the test kernel (an ELF built by make testkernel) directly
// under QEMU TCG on q35 with the exit device, and returns the run and its
// parsed console. qemu may be empty for qemu-system-x86_64.
func RunQEMU(ctx context.Context, qemu, kernel string, timeout time.Duration) (*emulator.Result, Report, error) {
	r, err := emulator.Run(ctx, emulator.Config{
		Emulator:   emulator.QEMU,
		Accel:      emulator.AccelTCG,
		MemoryMiB:  128,
		Kernel:     kernel,
		ExtraArgs:  []string{"-device", DebugExitDevice},
		Timeout:    timeout,
		QEMUBinary: qemu,
	})
	if err != nil {
		return nil, Report{}, err
	}
	return r, Parse(r.Console), nil
}
