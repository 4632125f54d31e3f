// Package consolidate drives the consolidation scenario of tamavisor:
// several SMP Linux guests from one VM definitions file, each running a
// CPU-bound job, and the share of the host's CPUs each gets over a fixed
// window, read from the operator shell's `list`. The emulator test
// (qemu-test) and make bench (tools/bench) both use it.
package consolidate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tamavisor/tools/emulator"
)

// The operator shell's texts it reads (guests/shell).
const (
	shellPrompt = "tamavisor> "
	detachKey   = "\x1d"
)

// VM is one guest of the scenario as measured.
type VM struct {
	Name string
	// CPUs is how many processors the guest's /proc/cpuinfo lists.
	CPUs int
	// Weight is the VM's scheduler weight and CPU its CPU time over the
	// window, from the shell's list.
	Weight int
	CPU    time.Duration
}

// Result is one run of the scenario.
type Result struct {
	VMs []VM
	// AllPrompts is the time from the emulator's start until every
	// guest's shell prompt was on the console.
	AllPrompts time.Duration
	// Window is the measured window.
	Window time.Duration
	// MaxDeviationPct is the largest relative gap, in percent, between a
	// VM's share of the guests' CPU time and its weight's share.
	MaxDeviationPct float64
}

// Config is a run.
type Config struct {
	Emulator emulator.Config // the image, with the VM definitions as its first module
	Names    []string        // the VMs the definitions start
	Window   time.Duration   // how long the CPU-bound jobs are measured
	Timeout  time.Duration   // for the prompts, and for each shell step
	// Job is the guest shell command line that starts the CPU-bound job
	// in the background.
	Job  string
	Logf func(format string, args ...any)
}

// DefaultJob keeps a guest CPU busy in u-root's shell (gosh), in the
// background.
const DefaultJob = "while true; do true; done &"

// Run boots the image and measures; the Machine is returned for more
// checks (the caller closes it).
func Run(ctx context.Context, cfg Config) (*Result, *emulator.Machine, error) {
	m, err := emulator.Start(ctx, cfg.Emulator)
	if err != nil {
		return nil, nil, err
	}
	r := &Result{Window: cfg.Window}
	fail := func(err error) (*Result, *emulator.Machine, error) { return r, m, err }

	r.AllPrompts, err = m.WaitUntil("every guest's shell prompt", cfg.Timeout, func(console string) (int, bool) {
		for _, n := range cfg.Names {
			if !strings.Contains(console, "["+n+"] $ ") {
				return 0, false
			}
		}
		return len(console), true
	})
	if err != nil {
		return fail(err)
	}
	for _, n := range cfg.Names {
		out, err := attached(m, n, "cat /proc/cpuinfo", cfg.Timeout)
		if err != nil {
			return fail(err)
		}
		vm := VM{Name: n, CPUs: strings.Count(out, "processor\t:")}
		if _, err := attached(m, n, cfg.Job, cfg.Timeout); err != nil {
			return fail(err)
		}
		r.VMs = append(r.VMs, vm)
		if cfg.Logf != nil {
			cfg.Logf("consolidate: %s sees %d CPUs; job started", n, vm.CPUs)
		}
	}
	before, err := list(m, cfg.Timeout)
	if err != nil {
		return fail(err)
	}
	time.Sleep(cfg.Window)
	after, err := list(m, cfg.Timeout)
	if err != nil {
		return fail(err)
	}
	var total time.Duration
	var weights int
	for i := range r.VMs {
		b, okB := before[r.VMs[i].Name]
		a, okA := after[r.VMs[i].Name]
		if !okA || !okB {
			return fail(fmt.Errorf("vm %s is missing from the shell's list", r.VMs[i].Name))
		}
		r.VMs[i].CPU, r.VMs[i].Weight = a.cpu-b.cpu, a.weight
		total += r.VMs[i].CPU
		weights += a.weight
	}
	if total <= 0 || weights <= 0 {
		return fail(errors.New("the guests got no CPU time over the window"))
	}
	for _, vm := range r.VMs {
		want := float64(vm.Weight) / float64(weights)
		got := float64(vm.CPU) / float64(total)
		r.MaxDeviationPct = math.Max(r.MaxDeviationPct, 100*math.Abs(got-want)/want)
	}
	return r, m, nil
}

// attached runs one command in a guest's shell through the operator
// shell (attach, command, detach) and returns what the guest printed.
func attached(m *emulator.Machine, vm, command string, timeout time.Duration) (string, error) {
	from := len(m.Console())
	if err := m.Type("attach " + vm + "\r"); err != nil {
		return "", err
	}
	if _, err := m.WaitUntil("the shell attaching to "+vm, timeout, after(from, "attached to "+vm)); err != nil {
		return "", err
	}
	from = len(m.Console())
	if err := m.Type(command + "\r"); err != nil {
		return "", err
	}
	if _, err := m.WaitUntil(vm+"'s prompt after "+command, timeout, after(from+len(command), "$ ")); err != nil {
		return "", err
	}
	out := m.Console()[from:]
	if err := m.Type(detachKey); err != nil {
		return "", err
	}
	if _, err := m.WaitUntil("the shell detaching from "+vm, timeout, after(from, "detached from "+vm)); err != nil {
		return "", err
	}
	return out, nil
}

func after(from int, text string) func(string) (int, bool) {
	return func(console string) (int, bool) {
		if from > len(console) {
			return 0, false
		}
		i := strings.Index(console[from:], text)
		return from + i + len(text), i >= 0
	}
}

type listed struct {
	weight int
	cpu    time.Duration
}

var listLine = regexp.MustCompile(`(?m)^(\S+)\s+\S+\s+\d+\s+\S+\s+(\d+)\s+([0-9.]+)s\s+\d+`)

// list runs the shell's list and reads each VM's weight and CPU time.
func list(m *emulator.Machine, timeout time.Duration) (map[string]listed, error) {
	from := len(m.Console())
	if err := m.Type("list\r"); err != nil {
		return nil, err
	}
	if _, err := m.WaitUntil("the shell's list", timeout, after(from, "\n"+shellPrompt)); err != nil {
		return nil, err
	}
	out := map[string]listed{}
	for _, f := range listLine.FindAllStringSubmatch(m.Console()[from:], -1) {
		w, _ := strconv.Atoi(f[2])
		s, _ := strconv.ParseFloat(f[3], 64)
		out[f[1]] = listed{weight: w, cpu: time.Duration(s * float64(time.Second))}
	}
	return out, nil
}
