// Package shell is the operator's shell on the host serial console: it
// lists the VMs and starts, stops, kills, resets and attaches to them, and
// it owns the console's output so that the VMs' serial output, the
// hypervisor's messages and the shell do not garble one another.
//
// # Input
//
// The host console's driver hands received bytes to Shell.Input. The line
// editor is minimal: printable ASCII is echoed; Backspace (0x08) and DEL
// (0x7f) erase the last character; Ctrl-U (0x15) erases the line; Ctrl-C
// (0x03) abandons it; CR, LF or CR LF ends it; terminal escape sequences
// (arrow keys: ESC [ A) are swallowed. Lines are at most MaxLine bytes.
//
// # Output
//
// Every VM writes its serial output to its Port (Shell.Port), the
// hypervisor its messages to Shell.Log. Detached, output is shown line by
// line, each VM's lines prefixed with "[name] ", a line at a time so that
// two VMs never interleave inside a line; a line arriving while the
// operator types erases the prompt, prints, and redraws the prompt with
// what was typed.
//
// # Attach
//
// "attach NAME" connects the console to the VM's serial port: keystrokes
// go to the guest unchanged, and its output is shown raw (no prefix, no
// line buffering, escape sequences intact), starting with the line it had
// begun (a login prompt). Ctrl-] (0x1d, as in telnet and virsh console)
// detaches. While attached, complete lines from other VMs and from the
// hypervisor are held, not shown, in a buffer of Config.HeldBytes (16 KiB
// by default); on detach they are printed. When more arrives than the
// buffer holds, the oldest lines are dropped and the shell says how many
// bytes were lost. A VM that stops or crashes detaches the console.
package shell

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"tamavisor/guests/lifecycle"
)

// Manager is what the shell acts on; *lifecycle.Manager implements it.
type Manager interface {
	List() []lifecycle.Info
	Start(name string) error
	Stop(name string) error
	Kill(name string) error
	Reset(name string) error
	// Input gives keystrokes to a VM's console and says how many it took.
	Input(name string, p []byte) (int, error)
}

// Keys with a meaning to the shell.
const (
	KeyDetach    = 0x1d // Ctrl-]
	keyInterrupt = 0x03 // Ctrl-C
	keyBackspace = 0x08
	keyKillLine  = 0x15 // Ctrl-U
	keyEscape    = 0x1b
	keyDelete    = 0x7f
	keyBell      = 0x07
)

// MaxLine is the longest command line.
const MaxLine = 128

// DefaultHeldBytes is the output kept while attached to another VM.
const DefaultHeldBytes = 16 << 10

// Bytes written on the output path, which must not allocate.
var (
	carriageReturn = []byte{'\r'}
	blanks         = []byte("                ")
)

// portLine is the longest line a VM port assembles before it cuts it.
const portLine = 256

// inputRetries bounds how long keystrokes wait for a guest whose console
// FIFO is full (each retry sleeps a millisecond).
const inputRetries = 200

// Config sets up a Shell.
type Config struct {
	// Out is the host console.
	Out io.Writer
	VMs Manager
	// Prompt is printed before each command ("tamavisor> " when empty).
	Prompt string
	// HeldBytes bounds the output held while attached
	// (DefaultHeldBytes when 0).
	HeldBytes int
	// Sleep waits between retries of keystrokes a guest did not take
	// (time.Sleep when nil).
	Sleep func(time.Duration)
}

// Shell is the operator's console.
type Shell struct {
	vms    Manager
	sleep  func(time.Duration)
	prompt []byte

	// inMu serializes Input.
	inMu sync.Mutex

	// mu guards the console: output, the line being edited, the ports.
	mu          sync.Mutex
	out         io.Writer
	edit        []byte
	promptShown bool
	lastCR      bool
	esc         uint8 // escape-sequence state: 0 none, 1 after ESC, 2 in CSI
	attached    *Port
	ports       map[string]*Port
	log         *Port

	held        []byte // ring of lines held while attached
	heldStart   int
	heldLen     int
	heldDropped int
}

// New returns a shell; Start shows its prompt.
func New(cfg Config) (*Shell, error) {
	if cfg.Out == nil || cfg.VMs == nil {
		return nil, fmt.Errorf("shell: an output and a VM manager are required")
	}
	if cfg.Prompt == "" {
		cfg.Prompt = "tamavisor> "
	}
	if cfg.HeldBytes <= 0 {
		cfg.HeldBytes = DefaultHeldBytes
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	s := &Shell{vms: cfg.VMs, sleep: cfg.Sleep, prompt: []byte(cfg.Prompt), out: cfg.Out,
		edit: make([]byte, 0, MaxLine), ports: map[string]*Port{}, held: make([]byte, cfg.HeldBytes)}
	s.log = &Port{s: s}
	return s, nil
}

// Start prints a greeting and the prompt.
func (s *Shell) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.out, "tamavisor: operator shell ready; \"help\" lists the commands\n")
	s.showPrompt()
}

// Port is a VM's serial output on the console.
type Port struct {
	s      *Shell
	name   string
	prefix []byte
	line   [portLine + 1]byte // and room for the newline
	n      int
}

// Port returns the VM's output port (the same one for the same name,
// across the VM's runs).
func (s *Shell) Port(name string) *Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port(name)
}

func (s *Shell) port(name string) *Port {
	p := s.ports[name]
	if p == nil {
		p = &Port{s: s, name: name, prefix: []byte("[" + name + "] ")}
		s.ports[name] = p
	}
	return p
}

// Log is where the hypervisor's own messages go: shown as lines, held
// while attached.
func (s *Shell) Log() io.Writer { return s.log }

// Write takes the VM's serial output (bytes as the guest's UART sends
// them). It does not allocate.
func (p *Port) Write(b []byte) (int, error) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attached == p {
		s.out.Write(b)
		return len(b), nil
	}
	for _, c := range b {
		switch c {
		case '\r':
			continue
		case '\n':
			s.emit(p)
			continue
		}
		if p.n == portLine {
			s.emit(p)
		}
		p.line[p.n] = c
		p.n++
	}
	return len(b), nil
}

// Flush shows a line the VM has begun but not ended (a prompt waiting for
// input): call it when the guest goes idle.
func (p *Port) Flush() {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.n > 0 && s.attached != p {
		s.emit(p)
	}
}

// emit shows or holds p's assembled line; under s.mu.
func (s *Shell) emit(p *Port) {
	p.line[p.n] = '\n'
	if s.attached != nil {
		s.hold(p.prefix)
		s.hold(p.line[:p.n+1])
	} else {
		s.erasePrompt()
		s.out.Write(p.prefix)
		s.out.Write(p.line[:p.n+1])
		s.redrawPrompt()
	}
	p.n = 0
}

// hold appends to the ring of held output, dropping the oldest bytes.
func (s *Shell) hold(b []byte) {
	for _, c := range b {
		if s.heldLen == len(s.held) {
			s.heldStart = (s.heldStart + 1) % len(s.held)
			s.heldLen--
			s.heldDropped++
		}
		s.held[(s.heldStart+s.heldLen)%len(s.held)] = c
		s.heldLen++
	}
}

// releaseHeld prints the held output, from the first whole line.
func (s *Shell) releaseHeld() {
	i, n := s.heldStart, s.heldLen
	if s.heldDropped > 0 {
		// The oldest line lost its beginning: skip to the next.
		for n > 0 {
			c := s.held[i]
			i, n = (i+1)%len(s.held), n-1
			s.heldDropped++
			if c == '\n' {
				break
			}
		}
		fmt.Fprintf(s.out, "tamavisor: %d bytes of output were dropped while attached\n", s.heldDropped)
	}
	for n > 0 {
		end := min(len(s.held), i+n)
		s.out.Write(s.held[i:end])
		n -= end - i
		i = end % len(s.held)
	}
	s.heldStart, s.heldLen, s.heldDropped = 0, 0, 0
}

func (s *Shell) showPrompt() {
	s.out.Write(s.prompt)
	s.out.Write(s.edit)
	s.promptShown = true
}

// erasePrompt clears the prompt line before other output, without
// terminal escape sequences: CR, blanks, CR.
func (s *Shell) erasePrompt() {
	if !s.promptShown {
		return
	}
	s.out.Write(carriageReturn)
	for n := len(s.prompt) + len(s.edit); n > 0; n -= len(blanks) {
		s.out.Write(blanks[:min(n, len(blanks))])
	}
	s.out.Write(carriageReturn)
}

func (s *Shell) redrawPrompt() {
	if s.promptShown {
		s.showPrompt()
	}
}

// Attached names the VM the console is attached to ("" when none).
func (s *Shell) Attached() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.attached == nil {
		return ""
	}
	return s.attached.name
}

// Notify shows a VM's state change (wire it to lifecycle.Config.OnChange),
// and detaches the console from a VM that stopped.
func (s *Shell) Notify(c lifecycle.Change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.From == c.To && c.Reason == "" {
		return
	}
	msg := "tamavisor: vm " + c.Name + ": " + c.To.String()
	if c.Reason != "" {
		msg += " (" + c.Reason + ")"
	}
	if s.attached != nil && s.attached.name == c.Name && !c.To.Active() {
		s.detach(msg)
		return
	}
	s.logLine(msg)
}

// logLine shows or holds one line of the hypervisor's; under s.mu.
func (s *Shell) logLine(line string) {
	p := s.log
	for i := 0; i < len(line); i++ {
		if p.n == portLine {
			s.emit(p)
		}
		p.line[p.n] = line[i]
		p.n++
	}
	s.emit(p)
}

// detach ends the attachment, saying why; under s.mu.
func (s *Shell) detach(why string) {
	if s.attached == nil {
		return
	}
	s.attached = nil
	fmt.Fprintf(s.out, "\n%s\n", why)
	s.releaseHeld()
	s.edit = s.edit[:0]
	s.esc, s.lastCR = 0, false
	s.showPrompt()
}

// Input takes keystrokes from the host console.
func (s *Shell) Input(p []byte) {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	for len(p) > 0 {
		s.mu.Lock()
		target := s.attached
		s.mu.Unlock()
		if target != nil {
			n := len(p)
			for i, c := range p {
				if c == KeyDetach {
					n = i
					break
				}
			}
			s.forward(target, p[:n])
			p = p[n:]
			if len(p) > 0 { // the detach key
				p = p[1:]
				s.mu.Lock()
				if s.attached == target {
					s.detach("tamavisor: detached from " + target.name)
				}
				s.mu.Unlock()
			}
			continue
		}
		c := p[0]
		p = p[1:]
		if line, ok := s.key(c); ok {
			s.execute(line)
			s.mu.Lock()
			if s.attached == nil {
				s.showPrompt()
			}
			s.mu.Unlock()
		}
	}
}

// forward sends keystrokes to the attached VM, waiting a little for a
// guest whose console is full.
func (s *Shell) forward(target *Port, b []byte) {
	for tries := 0; len(b) > 0; tries++ {
		n, err := s.vms.Input(target.name, b)
		if err != nil {
			s.mu.Lock()
			if s.attached == target {
				s.detach("tamavisor: detached: " + err.Error())
			}
			s.mu.Unlock()
			return
		}
		b = b[n:]
		if len(b) == 0 {
			return
		}
		if tries == inputRetries {
			s.mu.Lock()
			if s.attached == target {
				fmt.Fprintf(s.out, "\r\ntamavisor: vm %s is not reading its console: %d keystrokes dropped\r\n", target.name, len(b))
			}
			s.mu.Unlock()
			return
		}
		s.sleep(time.Millisecond)
	}
}

// key edits the command line; it returns the line when c ended it.
func (s *Shell) key(c byte) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	afterCR := s.lastCR
	s.lastCR = c == '\r'
	switch s.esc {
	case 1:
		s.esc = 0
		if c == '[' || c == 'O' {
			s.esc = 2
		}
		return "", false
	case 2:
		if c >= 0x40 && c <= 0x7e {
			s.esc = 0 // the final byte (ECMA-48 §5.4)
		}
		return "", false
	}
	switch {
	case c == '\r' || c == '\n':
		if c == '\n' && afterCR {
			return "", false
		}
		line := string(s.edit)
		s.edit = s.edit[:0]
		s.promptShown = false
		io.WriteString(s.out, "\n")
		return line, true
	case c == keyBackspace || c == keyDelete:
		if len(s.edit) > 0 {
			s.edit = s.edit[:len(s.edit)-1]
			io.WriteString(s.out, "\b \b")
		}
	case c == keyKillLine:
		s.erasePrompt()
		s.edit = s.edit[:0]
		s.showPrompt()
	case c == keyInterrupt:
		s.edit = s.edit[:0]
		io.WriteString(s.out, "^C\n")
		s.showPrompt()
	case c == keyEscape:
		s.esc = 1
	case c >= 0x20 && c < 0x7f:
		if len(s.edit) >= MaxLine {
			s.out.Write([]byte{keyBell})
			break
		}
		s.edit = append(s.edit, c)
		s.out.Write(s.edit[len(s.edit)-1:])
	}
	return "", false
}

// printf writes the shell's own output.
func (s *Shell) printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, format, args...)
}

type command struct {
	name, args, help string
	run              func(s *Shell, name string)
}

var commands []command

func init() {
	commands = []command{
		{"help", "", "this list", nil},
		{"list", "", "the VMs: state, vCPUs, memory, weight, CPU time, restarts, last end", nil},
		{"stats", "", "CPU time per VM, its share of all guests' CPU time, and time spent waiting for a CPU", nil},
		{"start", "NAME", "boot a stopped or crashed VM", func(s *Shell, n string) { s.act(n, s.vms.Start, "starting %s") }},
		{"stop", "NAME", "press the VM's power button; it is forced off if it has not stopped after a timeout", func(s *Shell, n string) {
			s.act(n, s.vms.Stop, "stopping %s: power button pressed")
		}},
		{"kill", "NAME", "stop the VM at once", func(s *Shell, n string) { s.act(n, s.vms.Kill, "killing %s") }},
		{"reset", "NAME", "hard-reset the VM: it boots again", func(s *Shell, n string) { s.act(n, s.vms.Reset, "resetting %s") }},
		{"attach", "NAME", "connect this console to the VM's serial port; Ctrl-] detaches", (*Shell).attach},
	}
}

func (s *Shell) execute(line string) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return
	}
	for _, c := range commands {
		if c.name != fields[0] {
			continue
		}
		want := 1
		if c.args != "" {
			want = 2
		}
		if len(fields) != want {
			s.printf("usage: %s %s\n", c.name, c.args)
			return
		}
		switch c.name {
		case "help":
			s.help()
		case "list":
			s.list()
		case "stats":
			s.stats()
		default:
			c.run(s, fields[1])
		}
		return
	}
	s.printf("unknown command %q\n", fields[0])
	s.help()
}

func (s *Shell) help() {
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.out, "commands:\n")
	w := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(w, "  %s %s\t%s\n", c.name, c.args, c.help)
	}
	w.Flush()
}

func (s *Shell) act(name string, f func(string) error, done string) {
	if err := f(name); err != nil {
		s.printf("error: %v\n", err)
		return
	}
	s.printf(done+"\n", name)
}

// find looks a VM up by name, with the manager's view of the others.
func (s *Shell) find(name string) (lifecycle.Info, bool) {
	vms := s.vms.List()
	names := make([]string, 0, len(vms))
	for _, i := range vms {
		if i.Name == name {
			return i, true
		}
		names = append(names, i.Name)
	}
	if len(names) == 0 {
		s.printf("error: no VM named %q (no VMs are configured)\n", name)
	} else {
		s.printf("error: no VM named %q (VMs: %s)\n", name, strings.Join(names, ", "))
	}
	return lifecycle.Info{}, false
}

func (s *Shell) attach(name string) {
	info, ok := s.find(name)
	if !ok {
		return
	}
	if !info.State.Active() {
		s.printf("error: vm %s is %s: start it first (start %s)\n", name, info.State, name)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.port(name)
	fmt.Fprintf(s.out, "tamavisor: attached to %s (%s); Ctrl-] detaches\n", name, info.State)
	s.attached = p
	s.promptShown = false
	s.out.Write(p.line[:p.n]) // the line it had begun: a prompt
	p.n = 0
}

func (s *Shell) list() {
	vms := s.vms.List()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(vms) == 0 {
		io.WriteString(s.out, "no VMs are configured\n")
		return
	}
	w := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	io.WriteString(w, "NAME\tSTATE\tVCPUS\tMEMORY\tWEIGHT\tCPU-TIME\tRESTARTS\n")
	for _, i := range vms {
		restarts := fmt.Sprint(i.Restarts)
		if i.OnCrash == lifecycle.RestartOnCrash {
			restarts = fmt.Sprintf("%d/%d", i.Restarts, i.MaxRestarts)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", i.Name, i.State, i.VCPUs, memory(i.Memory), i.Weight, seconds(i.CPUTime), restarts)
	}
	w.Flush()
	for _, i := range vms {
		if i.LastEnd != "" {
			fmt.Fprintf(s.out, "%s: last run %s\n", i.Name, i.LastEnd)
		}
	}
}

func (s *Shell) stats() {
	vms := s.vms.List()
	var total time.Duration
	for _, i := range vms {
		total += i.CPUTime
	}
	sort.SliceStable(vms, func(a, b int) bool { return vms[a].CPUTime > vms[b].CPUTime })
	s.mu.Lock()
	defer s.mu.Unlock()
	w := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	io.WriteString(w, "NAME\tWEIGHT\tCPU-TIME\tSHARE\tWAITED\n")
	for _, i := range vms {
		share := 0.0
		if total > 0 {
			share = 100 * float64(i.CPUTime) / float64(total)
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%.1f%%\t%s\n", i.Name, i.Weight, seconds(i.CPUTime), share, seconds(i.WaitTime))
	}
	w.Flush()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func memory(b uint64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%dKiB", b>>10)
}
