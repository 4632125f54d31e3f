package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Result is what a finished run leaves.
type Result struct {
	// Console is the serial console with terminal escape sequences,
	// carriage returns and other controls removed. Empty for interactive
	// QEMU, whose console went to the terminal.
	Console string
	// RawConsole is the console byte for byte.
	RawConsole []byte
	// Diagnostics holds the emulator's own messages: QEMU's stderr, or
	// Bochs's output and the tail of its log.
	Diagnostics string

	Argv        []string
	BochsRC     string // the bochsrc used, for Bochs
	Accel       Accel  // the accelerator used (QEMU)
	AccelReason string

	// ExitCode is the emulator's exit status, or -1 where it was killed.
	ExitCode int
	// TimedOut: the run's deadline passed and the emulator was killed.
	TimedOut bool
	// Closed: Close killed the emulator before it ended by itself.
	Closed bool
	// Duration is the wall time from the emulator's start to its end.
	Duration time.Duration
}

// Machine is a running emulator.
type Machine struct {
	cfg         Config
	argv        []string
	bochsrc     string
	accel       Accel
	accelReason string
	tmp         string
	comFile     string // Bochs's serial output file, or its terminal device
	logFile     string // Bochs's log
	// ptyMaster and ptySlave are COM1's pseudo-terminal with BochsTerminal.
	ptyMaster, ptySlave *os.File

	cmd    *exec.Cmd
	stdin  io.WriteCloser // COM1's receive side: QEMU's standard input, or Bochs's terminal
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time

	mu        sync.Mutex
	raw       []byte
	clean     []byte
	arrivals  []arrival // when each piece of clean console arrived
	stripper  escapeStripper
	changed   chan struct{} // closed and replaced on each append
	diag      limitedBuffer
	closed    bool
	exitCode  int
	waitErr   error
	duration  time.Duration
	exited    chan struct{} // closed once the emulator ended and its console was read
	closeOnce sync.Once
	result    *Result
}

type arrival struct {
	end int           // len(clean) after this piece
	at  time.Duration // since start
}

// Start validates cfg, prepares the run's files and starts the emulator.
// The emulator is killed when ctx ends, when cfg.Timeout passes, or on
// Close; call Close in every case to release the temporary files.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, changed: make(chan struct{}), exited: make(chan struct{}), exitCode: -1}
	m.diag.limit = 256 << 10
	var err error
	if err = m.prepare(); err != nil {
		m.removeTemp()
		return nil, err
	}
	if cfg.Timeout > 0 {
		m.ctx, m.cancel = context.WithTimeout(ctx, cfg.Timeout)
	} else {
		m.ctx, m.cancel = context.WithCancel(ctx)
	}
	if err = m.launch(); err != nil {
		m.cancel()
		m.removeTemp()
		return nil, err
	}
	return m, nil
}

// Run starts the emulator and waits until it ends or its deadline passes;
// the error is only for a run that could not start.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	m, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	<-m.exited
	return m.Close(), nil
}

// Plan is what a run would execute, for display (runvm -n).
type Plan struct {
	Argv        []string
	BochsRC     string
	Accel       Accel
	AccelReason string
}

// Describe prepares a run as Start would, without starting it. Paths into
// the run's temporary directory in the result no longer exist.
func Describe(cfg Config) (*Plan, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg}
	defer m.removeTemp()
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return &Plan{Argv: m.argv, BochsRC: m.bochsrc, Accel: m.accel, AccelReason: m.accelReason}, nil
}

// MissingToolError says that an emulator or its firmware is not installed.
type MissingToolError struct{ What, Path string }

func (e *MissingToolError) Error() string {
	return fmt.Sprintf("emulator: %s not found (%s): run `make deps` to install the emulators and firmware", e.What, e.Path)
}

func requireFile(what, path string) error {
	if _, err := os.Stat(path); err != nil {
		return &MissingToolError{What: what, Path: path}
	}
	return nil
}

func requireProgram(what, name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &MissingToolError{What: what, Path: name}
	}
	return p, nil
}

// prepare resolves programs, firmware and the accelerator, and writes the
// run's files into a fresh temporary directory.
func (m *Machine) prepare() error {
	c := &m.cfg
	// The emulator runs in the temporary directory: relative paths given
	// by the caller are made absolute first.
	for _, f := range []struct {
		what string
		path *string
	}{{"kernel", &c.Kernel}, {"ISO", &c.ISO}, {"UEFI disk image", &c.UEFI}} {
		if *f.path == "" {
			continue
		}
		abs, err := filepath.Abs(*f.path)
		if err != nil {
			return fmt.Errorf("emulator: %s: %w", f.what, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("emulator: %s: %w", f.what, err)
		}
		*f.path = abs
	}
	tmp, err := os.MkdirTemp("", "tamavisor-"+string(c.Emulator)+"-")
	if err != nil {
		return fmt.Errorf("emulator: temporary directory: %w", err)
	}
	m.tmp = tmp
	if c.Emulator == QEMU {
		return m.prepareQEMU()
	}
	return m.prepareBochs()
}

func (m *Machine) prepareQEMU() error {
	c := &m.cfg
	bin, err := requireProgram("QEMU", c.QEMUBinary)
	if err != nil {
		return err
	}
	host := c.Host
	if host == nil {
		host = HostAt{}
	}
	var kvm KVMStatus
	if c.Accel != AccelTCG {
		kvm = DetectKVM(host)
	}
	m.accel, m.accelReason, err = ChooseAccel(c.Accel, kvm)
	if err != nil {
		return err
	}
	c.logf("emulator: %s", m.accelReason)
	vars := ""
	if c.UEFI != "" {
		if err := requireFile("OVMF firmware code", c.OVMFCode); err != nil {
			return err
		}
		if err := requireFile("OVMF variable store", c.OVMFVars); err != nil {
			return err
		}
		// OVMF writes its variable store: each run gets its own copy.
		vars = filepath.Join(m.tmp, "OVMF_VARS.fd")
		if err := copyFile(c.OVMFVars, vars); err != nil {
			return fmt.Errorf("emulator: copying the OVMF variable store: %w", err)
		}
	}
	m.argv = append([]string{bin}, qemuArgs(c, m.accel, vars)...)
	return nil
}

func (m *Machine) prepareBochs() error {
	c := &m.cfg
	bin, err := requireProgram("Bochs", c.BochsBinary)
	if err != nil {
		return err
	}
	if err := requireFile("Bochs BIOS", c.BochsBIOS); err != nil {
		return err
	}
	if err := requireFile("Bochs VGA BIOS", c.BochsVGABIOS); err != nil {
		return err
	}
	m.comFile = filepath.Join(m.tmp, "com1.txt")
	if c.BochsTerminal {
		if m.ptyMaster, m.ptySlave, m.comFile, err = openPTY(); err != nil {
			return err
		}
	}
	m.logFile = filepath.Join(m.tmp, "bochs.log")
	rc, err := bochsConfig(c, m.comFile, m.logFile)
	if err != nil {
		return err
	}
	m.bochsrc = rc
	rcPath := filepath.Join(m.tmp, "bochsrc")
	script := filepath.Join(m.tmp, "debugger.rc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(script, []byte(bochsDebuggerScript), 0o644); err != nil {
		return err
	}
	// Bochs creates the serial file when the guest first writes; an empty
	// one lets the tail start at once.
	if !c.BochsTerminal {
		if err := os.WriteFile(m.comFile, nil, 0o644); err != nil {
			return err
		}
	}
	prefix, reason := isolatingPrefix()
	c.logf("emulator: %s", reason)
	m.argv = append(append([]string{}, prefix...), bin, "-q", "-f", rcPath, "-rc", script)
	return nil
}

func (m *Machine) launch() error {
	c := &m.cfg
	cmd := exec.CommandContext(m.ctx, m.argv[0], m.argv[1:]...)
	cmd.Dir = m.tmp
	ownGroup := true
	switch {
	case c.Interactive && c.Emulator == QEMU:
		// QEMU reads the keyboard: it stays in the terminal's foreground
		// process group, and only it is killed at a deadline.
		ownGroup = false
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	case c.Emulator == QEMU:
		cmd.Stdout = consoleWriter{m}
		cmd.Stderr = &m.diag
		// With -serial stdio QEMU feeds its standard input to COM1's
		// receiver, which is how Type reaches the machine. A pipe nobody
		// writes to reads as a keyboard nobody types on; /dev/null would
		// read as end of file.
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return fmt.Errorf("emulator: standard input pipe: %w", err)
		}
		m.stdin = stdin
	default:
		// Bochs's console is a file, followed by tail (onto the terminal
		// when interactive), or a pseudo-terminal read as it comes; what
		// Bochs prints itself is diagnostics.
		cmd.Stdout, cmd.Stderr = &m.diag, &m.diag
		if c.Interactive && c.Echo == nil {
			c.Echo = os.Stdout
		}
		if m.ptyMaster != nil {
			m.stdin = m.ptyMaster
		}
	}
	if ownGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error { return killGroup(cmd) }
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Cancel = func() error { return cmd.Process.Kill() }
	}
	// Pipes held open by a stray grandchild must not block Wait.
	cmd.WaitDelay = 2 * time.Second
	m.cmd = cmd
	m.start = time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("emulator: starting %s: %w", FormatCommand(m.argv), err)
	}
	waited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		d := time.Since(m.start)
		if ownGroup {
			killGroup(cmd) // whatever the emulator left behind
		}
		m.mu.Lock()
		m.waitErr, m.duration = err, d
		if cmd.ProcessState != nil {
			m.exitCode = cmd.ProcessState.ExitCode()
		}
		m.mu.Unlock()
		close(waited)
	}()
	switch {
	case m.ptyMaster != nil:
		go m.readTerminal(waited)
	case c.Emulator == Bochs:
		go m.tail(waited)
	default:
		go func() { <-waited; close(m.exited) }()
	}
	return nil
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// tailInterval is how often Bochs's serial file is read: short against a
// boot of seconds, long enough not to compete with Bochs for a CPU.
const tailInterval = 20 * time.Millisecond

// tail follows Bochs's serial file until Bochs has ended and the file has
// been read to its end.
func (m *Machine) tail(waited <-chan struct{}) {
	defer close(m.exited)
	f, err := os.Open(m.comFile)
	if err != nil {
		m.diag.Write([]byte("emulator: reading the serial file: " + err.Error() + "\n"))
		<-waited
		return
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	tick := time.NewTicker(tailInterval)
	defer tick.Stop()
	for {
		for {
			n, _ := f.Read(buf)
			if n == 0 {
				break
			}
			m.appendConsole(buf[:n])
		}
		select {
		case <-waited:
			for {
				n, _ := f.Read(buf)
				if n == 0 {
					return
				}
				m.appendConsole(buf[:n])
			}
		case <-tick.C:
		}
	}
}

// terminalDrain is how long the terminal is read after Bochs has ended:
// what it wrote last is in the terminal's buffer by then.
const terminalDrain = 200 * time.Millisecond

// readTerminal reads COM1's pseudo-terminal until Bochs has ended and the
// terminal is drained. The slave stays open meanwhile (openPTY), so reads
// block rather than fail while Bochs has not opened it yet.
func (m *Machine) readTerminal(waited <-chan struct{}) {
	defer close(m.exited)
	go func() {
		<-waited
		m.ptyMaster.SetReadDeadline(time.Now().Add(terminalDrain))
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := m.ptyMaster.Read(buf)
		if n > 0 {
			m.appendConsole(buf[:n])
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				select {
				case <-waited:
				default:
					m.diag.Write([]byte("emulator: reading the serial terminal: " + err.Error() + "\n"))
					<-waited
				}
			}
			return
		}
	}
}

type consoleWriter struct{ m *Machine }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.m.appendConsole(p)
	return len(p), nil
}

// maxConsole bounds the captured console: a guest printing in a loop must
// not exhaust the host's memory before the deadline ends it.
const maxConsole = 32 << 20

func (m *Machine) appendConsole(p []byte) {
	at := time.Since(m.start)
	m.mu.Lock()
	if room := maxConsole - len(m.raw); len(p) > room {
		if room <= 0 {
			m.mu.Unlock()
			return
		}
		p = p[:room]
	}
	m.raw = append(m.raw, p...)
	before := len(m.clean)
	m.clean = m.stripper.Strip(m.clean, p)
	piece := m.clean[before:]
	if len(piece) > 0 {
		m.arrivals = append(m.arrivals, arrival{end: len(m.clean), at: at})
		close(m.changed)
		m.changed = make(chan struct{})
	}
	echo := m.cfg.Echo
	m.mu.Unlock()
	if echo != nil && len(piece) > 0 {
		echo.Write(piece)
	}
}

// Argv is the command line the emulator was started with.
func (m *Machine) Argv() []string { return append([]string(nil), m.argv...) }

// BochsRC is the bochsrc of a Bochs run.
func (m *Machine) BochsRC() string { return m.bochsrc }

// Accel is the accelerator in use and why it was chosen (QEMU).
func (m *Machine) Accel() (Accel, string) { return m.accel, m.accelReason }

// Started is when the emulator process was started.
func (m *Machine) Started() time.Time { return m.start }

// Console returns the console so far, without escape sequences.
func (m *Machine) Console() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.clean)
}

// Done is closed when the emulator has ended and its console was read.
func (m *Machine) Done() <-chan struct{} { return m.exited }

// WaitFor waits until the console contains marker, and returns how long
// after the emulator's start the console output completing it arrived. It
// fails when timeout passes, when the emulator ends first, or when the
// run's deadline passes.
func (m *Machine) WaitFor(marker string, timeout time.Duration) (time.Duration, error) {
	if marker == "" {
		return 0, errors.New("emulator: empty marker")
	}
	return m.WaitUntil(fmt.Sprintf("%q", marker), timeout, func(console string) (int, bool) {
		i := strings.Index(console, marker)
		return i + len(marker), i >= 0
	})
}

// WaitUntil waits until found, given the whole console so far (as Console
// returns it) each time more arrives, reports a match ending at byte end of
// it, and returns how long after the emulator's start the output up to end
// arrived. It fails as WaitFor does; what names the awaited output in the
// errors. found must not keep the string beyond the call.
func (m *Machine) WaitUntil(what string, timeout time.Duration, found func(console string) (end int, ok bool)) (time.Duration, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		m.mu.Lock()
		console, changed := string(m.clean), m.changed
		m.mu.Unlock()
		if end, ok := found(console); ok {
			end = min(max(end, 0), len(console))
			m.mu.Lock()
			at := m.arrivalOf(end)
			m.mu.Unlock()
			return at, nil
		}
		select {
		case <-changed:
		case <-m.exited:
			// The console is complete: one last look.
			if _, ok := found(m.Console()); ok {
				continue
			}
			m.mu.Lock()
			code, closed := m.exitCode, m.closed
			m.mu.Unlock()
			switch {
			case closed:
				return 0, fmt.Errorf("emulator: closed before the console showed %s", what)
			case errors.Is(m.ctx.Err(), context.DeadlineExceeded):
				return 0, fmt.Errorf("emulator: run deadline (%v) passed before the console showed %s", m.cfg.Timeout, what)
			}
			return 0, fmt.Errorf("emulator: %s exited (status %d) before the console showed %s", m.cfg.Emulator, code, what)
		case <-timer.C:
			return 0, fmt.Errorf("emulator: no %s on the console within %v", what, timeout)
		}
	}
}

// ErrNoInput says that a run has no input Type could write to: Bochs
// without BochsTerminal (its serial port is a file) or interactive QEMU
// (the terminal types).
var ErrNoInput = errors.New("emulator: this run takes no typed input (only non-interactive QEMU, and Bochs with BochsTerminal, do)")

// Type writes text to the serial console's receive side, as if typed on a
// terminal attached to COM1: a guest's shell gets "\n" as Enter. QEMU
// passes the bytes on as fast as the machine's UART accepts them.
func (m *Machine) Type(text string) error {
	if m.stdin == nil {
		return ErrNoInput
	}
	select {
	case <-m.exited:
		return fmt.Errorf("emulator: typing %q: %s has ended", text, m.cfg.Emulator)
	default:
	}
	if _, err := io.WriteString(m.stdin, text); err != nil {
		return fmt.Errorf("emulator: typing %q: %w", text, err)
	}
	return nil
}

// arrivalOf finds when the clean console first reached length end.
func (m *Machine) arrivalOf(end int) time.Duration {
	k := sort.Search(len(m.arrivals), func(k int) bool { return m.arrivals[k].end >= end })
	if k == len(m.arrivals) {
		return time.Since(m.start)
	}
	return m.arrivals[k].at
}

// Close kills the emulator's process group if it still runs, waits for it,
// removes the temporary files and returns the run's result. It may be
// called more than once; later calls return the same result.
func (m *Machine) Close() *Result {
	m.closeOnce.Do(func() {
		select {
		case <-m.exited:
		default:
			m.mu.Lock()
			m.closed = true
			m.mu.Unlock()
		}
		m.cancel()
		<-m.exited
		m.result = m.collect()
		m.removeTemp()
	})
	return m.result
}

func (m *Machine) collect() *Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &Result{
		Console:     string(m.clean),
		RawConsole:  append([]byte(nil), m.raw...),
		Argv:        m.Argv(),
		BochsRC:     m.bochsrc,
		Accel:       m.accel,
		AccelReason: m.accelReason,
		ExitCode:    m.exitCode,
		Closed:      m.closed,
		Duration:    m.duration,
	}
	r.TimedOut = !m.closed && errors.Is(m.ctx.Err(), context.DeadlineExceeded)
	var d strings.Builder
	d.Write(m.diag.Bytes())
	if m.logFile != "" {
		if log, err := os.ReadFile(m.logFile); err == nil {
			d.WriteString("--- end of bochs.log ---\n")
			d.Write(lastLines(log, 40))
		}
	}
	r.Diagnostics = d.String()
	return r
}

func (m *Machine) removeTemp() {
	for _, f := range []*os.File{m.ptyMaster, m.ptySlave} {
		if f != nil {
			f.Close()
		}
	}
	if m.tmp != "" {
		os.RemoveAll(m.tmp)
	}
}

func lastLines(b []byte, n int) []byte {
	b = bytes.TrimRight(b, "\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			i = 0
			break
		}
	}
	if i > 0 {
		i++
	}
	return append(b[i:len(b):len(b)], '\n')
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// limitedBuffer keeps the first limit bytes written to it; an emulator that
// floods its stderr must not fill the host's memory.
type limitedBuffer struct {
	mu      sync.Mutex
	limit   int
	buf     bytes.Buffer
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.limit - b.buf.Len()
	if room < 0 {
		room = 0
	}
	if len(p) > room {
		b.dropped += len(p) - room
		b.buf.Write(p[:room])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append([]byte(nil), b.buf.Bytes()...)
	if b.dropped > 0 {
		out = append(out, fmt.Sprintf("\n[%d more bytes dropped]\n", b.dropped)...)
	}
	return out
}
