package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tamavisor/tools/emulator"
)

// The files `make guest` writes under build/guest.
const (
	GuestDir   = "guest"
	KernelFile = "vmlinuz"
	InitrdFile = "initramfs.cpio"
)

// Images are the kernel and initramfs of the Linux guest.
type Images struct{ Kernel, Initrd string }

// ErrNoImages says the guest images have not been built.
var ErrNoImages = errors.New("images: the Linux guest images are missing: run `make guest`")

// Find returns the guest images under buildDir (the repository's build/),
// or an error wrapping ErrNoImages naming the first missing file.
func Find(buildDir string) (Images, error) {
	dir := filepath.Join(buildDir, GuestDir)
	im := Images{Kernel: filepath.Join(dir, KernelFile), Initrd: filepath.Join(dir, InitrdFile)}
	for _, p := range []string{im.Kernel, im.Initrd} {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
			return im, fmt.Errorf("%w (no %s)", ErrNoImages, p)
		}
	}
	return im, nil
}

// DefaultAppend is the kernel command line: the console on COM1 (the only
// serial port under -nodefaults), kernel messages below errors kept off it
// so that the shell's prompt is not interleaved with them, and a reboot at
// once on a panic, which -no-reboot turns into QEMU's exit.
const DefaultAppend = "console=ttyS0 quiet panic=-1"

// DefaultMemoryMiB is enough for the kernel and the unpacked initramfs.
const DefaultMemoryMiB = 512

// DefaultTimeout bounds a whole run: the Debian kernel reaches the shell
// in seconds under TCG on one host core.
const DefaultTimeout = 2 * time.Minute

// Options describe one direct boot.
type Options struct {
	// QEMU is the qemu-system-x86_64 program; empty means
	// emulator.DefaultQEMUBinary found in $PATH.
	QEMU   string
	Kernel string
	Initrd string
	// Append is the kernel command line; empty means DefaultAppend.
	Append string
	// CPU is QEMU's -cpu; empty means emulator.TCGCPU, the model
	// tamavisor itself runs on under TCG, so that the guest sees the same
	// processor with and without the hypervisor.
	CPU string
	// MemoryMiB is the guest RAM; 0 means DefaultMemoryMiB.
	MemoryMiB int
	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
	// Timeout bounds the run; the process group is killed when it passes.
	// 0 means DefaultTimeout.
	Timeout time.Duration
}

// Args is QEMU's command line for the boot, without the program name: q35
// under TCG, as tamavisor's own runs (tools/emulator), with the console on
// COM1 through stdin and stdout.
func (o *Options) Args() []string {
	args := []string{
		"-machine", "q35",
		"-accel", "tcg",
		"-cpu", o.CPU,
		"-m", strconv.Itoa(o.MemoryMiB) + "M",
		"-smp", "1",
		"-nodefaults",
		"-display", "none",
		"-no-reboot",
		"-serial", "stdio",
		"-kernel", o.Kernel,
		"-initrd", o.Initrd,
		"-append", o.Append,
	}
	return append(args, o.ExtraArgs...)
}

func (o *Options) fill() error {
	if o.Kernel == "" || o.Initrd == "" {
		return errors.New("images: a kernel and an initramfs are both needed")
	}
	for _, p := range []*string{&o.Kernel, &o.Initrd} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("images: %s: %w", *p, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("images: %w", err)
		}
		*p = abs
	}
	if o.QEMU == "" {
		o.QEMU = emulator.DefaultQEMUBinary
	}
	if o.Append == "" {
		o.Append = DefaultAppend
	}
	if o.CPU == "" {
		o.CPU = emulator.TCGCPU
	}
	if o.MemoryMiB < 0 || o.Timeout < 0 {
		return fmt.Errorf("images: negative memory (%d MiB) or timeout (%v)", o.MemoryMiB, o.Timeout)
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = DefaultMemoryMiB
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return nil
}

// Guest is a Linux guest running under QEMU, reached through its serial
// console.
type Guest struct {
	opts    Options
	argv    []string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	console *console
	stderr  limitedBuffer
	ctx     context.Context
	cancel  context.CancelFunc
	exited  chan struct{}

	mu       sync.Mutex
	exitCode int // -1 until QEMU exits by itself
	waitErr  error
}

// Boot starts QEMU on the guest images. Close the guest in every case.
func Boot(ctx context.Context, opts Options) (*Guest, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	bin, err := exec.LookPath(opts.QEMU)
	if err != nil {
		return nil, &emulator.MissingToolError{What: "QEMU", Path: opts.QEMU}
	}
	g := &Guest{opts: opts, exited: make(chan struct{}), exitCode: -1}
	g.argv = append([]string{bin}, opts.Args()...)
	g.stderr.limit = 64 << 10
	g.ctx, g.cancel = context.WithTimeout(ctx, opts.Timeout)
	cmd := exec.CommandContext(g.ctx, bin, g.argv[1:]...)
	// Its own process group, killed whole at the deadline; and killed with
	// this process, should the test binary die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	if g.stdin, err = cmd.StdinPipe(); err != nil {
		g.cancel()
		return nil, fmt.Errorf("images: %w", err)
	}
	cmd.Stderr = &g.stderr
	g.cmd = cmd
	start := time.Now()
	g.console = newConsole(start)
	cmd.Stdout = g.console
	if err := cmd.Start(); err != nil {
		g.cancel()
		return nil, fmt.Errorf("images: starting %s: %w", emulator.FormatCommand(g.argv), err)
	}
	go func() {
		err := cmd.Wait()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever QEMU left behind
		g.mu.Lock()
		g.waitErr = err
		if cmd.ProcessState != nil {
			g.exitCode = cmd.ProcessState.ExitCode()
		}
		g.mu.Unlock()
		close(g.exited)
	}()
	return g, nil
}

// Argv is QEMU's command line.
func (g *Guest) Argv() []string { return append([]string(nil), g.argv...) }

// Log is the console so far without control sequences, followed by QEMU's
// own messages if it printed any.
func (g *Guest) Log() string {
	var b strings.Builder
	b.WriteString(g.console.Text())
	g.console.mu.Lock()
	dropped := g.console.dropped
	g.console.mu.Unlock()
	if dropped > 0 {
		fmt.Fprintf(&b, "\n[console cut short: %d more bytes dropped]\n", dropped)
	}
	if d := g.stderr.String(); d != "" {
		b.WriteString("\n--- QEMU stderr ---\n")
		b.WriteString(d)
	}
	return b.String()
}

// RawConsole is the console byte for byte.
func (g *Guest) RawConsole() []byte { return g.console.Raw() }

// wait waits until found reports a match in the console text, and returns
// what it returned; it fails at timeout, at the run's deadline, or when
// QEMU exits first.
func (g *Guest) wait(what string, timeout time.Duration, found func(text string) (int, bool)) (int, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		text, changed := g.console.snapshot()
		if v, ok := found(text); ok {
			return v, nil
		}
		select {
		case <-changed:
		case <-g.exited:
			text := g.console.Text() // complete now
			if v, ok := found(text); ok {
				return v, nil
			}
			return 0, fmt.Errorf("images: QEMU exited (%s) before %s", g.exitStatus(), what)
		case <-timer.C:
			return 0, fmt.Errorf("images: no %s within %v", what, timeout)
		case <-g.ctx.Done():
			return 0, fmt.Errorf("images: run ended (%v) before %s", g.ctx.Err(), what)
		}
	}
}

func (g *Guest) exitStatus() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.exitCode >= 0 {
		return "status " + strconv.Itoa(g.exitCode)
	}
	if g.waitErr != nil {
		return g.waitErr.Error()
	}
	return "killed"
}

// WaitPrompt waits for the shell's first prompt and returns how long after
// QEMU's start the output completing it arrived.
func (g *Guest) WaitPrompt(timeout time.Duration) (time.Duration, error) {
	end, err := g.wait("shell prompt", timeout, func(text string) (int, bool) {
		// The first prompt follows the banner on a line of its own.
		p := promptAfter(text, 0)
		return p + len(Prompt), p >= 0
	})
	if err != nil {
		return 0, err
	}
	return g.console.arrivalOf(end), nil
}

// Command types line at the shell — which must be waiting at its prompt —
// and returns what it printed before the next prompt, with the console's
// line ends as newlines.
func (g *Guest) Command(line string, timeout time.Duration) (string, error) {
	if line == "" || strings.ContainsAny(line, "\r\n") {
		return "", fmt.Errorf("images: command %q must be one non-empty line", line)
	}
	before := len(g.console.Text())
	if _, err := io.WriteString(g.stdin, line+"\n"); err != nil {
		return "", fmt.Errorf("images: typing %q: %w", line, err)
	}
	var out string
	_, err := g.wait(fmt.Sprintf("prompt after %q", line), timeout, func(text string) (int, bool) {
		o, ok := commandOutput(text[before:], line)
		out = o
		return 0, ok
	})
	return out, err
}

// PowerOff types poweroff and waits for QEMU to exit. It fails unless the
// kernel reported the power-down and QEMU exited with status 0.
func (g *Guest) PowerOff(timeout time.Duration) error {
	if _, err := io.WriteString(g.stdin, "poweroff\n"); err != nil {
		return fmt.Errorf("images: typing poweroff: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-g.exited:
	case <-timer.C:
		return fmt.Errorf("images: QEMU still runs %v after poweroff", timeout)
	case <-g.ctx.Done():
		return fmt.Errorf("images: run ended (%v) before QEMU exited on poweroff", g.ctx.Err())
	}
	g.mu.Lock()
	code := g.exitCode
	g.mu.Unlock()
	if code != 0 {
		return fmt.Errorf("images: QEMU exited with %s after poweroff", g.exitStatus())
	}
	// Linux prints this at KERN_EMERG (kernel/reboot.c), quiet or not.
	if !strings.Contains(g.console.Text(), "reboot: Power down") {
		return errors.New("images: QEMU exited without the kernel's \"reboot: Power down\"")
	}
	return nil
}

// Done is closed when QEMU has exited.
func (g *Guest) Done() <-chan struct{} { return g.exited }

// Close kills QEMU's process group if it still runs and waits for it.
func (g *Guest) Close() {
	g.cancel()
	<-g.exited
	g.stdin.Close()
}

// BootDirect boots kernel and initrd directly under QEMU TCG (qemuPath, or
// qemu-system-x86_64 when empty) with DefaultAppend, waits for the shell's
// first prompt, then powers the guest off. It returns the time from QEMU's
// start to the prompt and the console log; it fails if the prompt does not
// come within DefaultTimeout or the guest does not power off cleanly. It is
// the baseline of the comparison with the same guest under tamavisor.
func BootDirect(ctx context.Context, qemuPath, kernel, initrd string) (time.Duration, string, error) {
	g, err := Boot(ctx, Options{QEMU: qemuPath, Kernel: kernel, Initrd: initrd})
	if err != nil {
		return 0, "", err
	}
	defer g.Close()
	toPrompt, err := g.WaitPrompt(DefaultTimeout)
	if err == nil {
		err = g.PowerOff(30 * time.Second)
	}
	g.Close()
	return toPrompt, g.Log(), err
}

// limitedBuffer keeps the first limit bytes written to it.
type limitedBuffer struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := max(b.limit-len(b.buf), 0)
	n := min(len(p), room)
	b.buf = append(b.buf, p[:n]...)
	b.dropped += len(p) - n
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("%s\n[%d more bytes dropped]\n", b.buf, b.dropped)
	}
	return string(b.buf)
}
