package shell

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"tamavisor/guests/lifecycle"
	"tamavisor/guests/sched"
)

// console is the host console: it keeps what the shell wrote.
type console struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// take returns what was written since the last take.
func (c *console) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.buf.String()
	c.buf.Reset()
	return s
}

// fakeVMs is a Manager that records what the shell asked.
type fakeVMs struct {
	mu    sync.Mutex
	vms   []lifecycle.Info
	calls []string
	input map[string]*bytes.Buffer
	room  int // bytes Input takes per call; <0: none
	err   error
}

func newFakeVMs() *fakeVMs {
	return &fakeVMs{input: map[string]*bytes.Buffer{}, vms: []lifecycle.Info{
		{Name: "web", State: lifecycle.Running, VCPUs: 2, Memory: 512 << 20, Weight: 200,
			CPUTime: 1500 * time.Millisecond, WaitTime: 20 * time.Millisecond, OnCrash: lifecycle.RestartOnCrash, MaxRestarts: 3, Restarts: 1},
		{Name: "db", State: lifecycle.Running, VCPUs: 1, Memory: 2 << 30, Weight: 100, CPUTime: 500 * time.Millisecond},
		{Name: "old", State: lifecycle.Crashed, VCPUs: 1, Memory: 64 << 20, Weight: 100, LastEnd: "crashed: triple fault"},
	}}
}

func (f *fakeVMs) List() []lifecycle.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]lifecycle.Info(nil), f.vms...)
}

func (f *fakeVMs) do(verb, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.vms {
		if v.Name == name {
			f.calls = append(f.calls, verb+" "+name)
			return f.err
		}
	}
	return fmt.Errorf("no VM named %q (VMs: web, db, old)", name)
}

func (f *fakeVMs) Start(n string) error { return f.do("start", n) }
func (f *fakeVMs) Stop(n string) error  { return f.do("stop", n) }
func (f *fakeVMs) Kill(n string) error  { return f.do("kill", n) }
func (f *fakeVMs) Reset(n string) error { return f.do("reset", n) }

func (f *fakeVMs) Input(name string, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	n := len(p)
	if f.room < 0 {
		n = 0
	} else if f.room > 0 && n > f.room {
		n = f.room
	}
	if f.input[name] == nil {
		f.input[name] = &bytes.Buffer{}
	}
	f.input[name].Write(p[:n])
	return n, nil
}

func (f *fakeVMs) typed(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.input[name]; b != nil {
		return b.String()
	}
	return ""
}

func (f *fakeVMs) callList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

func newShell(t *testing.T, cfg Config) (*Shell, *console, *fakeVMs) {
	t.Helper()
	out := &console{}
	vms := newFakeVMs()
	cfg.Out, cfg.VMs = out, vms
	if cfg.Sleep == nil {
		cfg.Sleep = func(time.Duration) {}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	out.take()
	return s, out, vms
}

func type_(s *Shell, text string) { s.Input([]byte(text)) }

func mustContain(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

func TestNewNeedsOutputAndManager(t *testing.T) {
	if _, err := New(Config{VMs: newFakeVMs()}); err == nil {
		t.Error("New without an output succeeded")
	}
	if _, err := New(Config{Out: &console{}}); err == nil {
		t.Error("New without a manager succeeded")
	}
}

func TestHelpAndUnknownCommand(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	type_(s, "help\r")
	got := out.take()
	mustContain(t, got, "commands:", "list", "stats", "start NAME", "stop NAME", "kill NAME", "reset NAME", "attach NAME", "Ctrl-] detaches")
	if !strings.HasSuffix(got, "tamavisor> ") {
		t.Errorf("no prompt after help: %q", got)
	}
	type_(s, "frobnicate web\r")
	got = out.take()
	mustContain(t, got, `unknown command "frobnicate"`, "commands:", "attach NAME")
}

func TestList(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	type_(s, "list\n")
	got := out.take()
	lines := strings.Split(got, "\n")[1:] // after the echoed command
	if len(lines) < 5 {
		t.Fatalf("list printed %q", got)
	}
	for i, want := range [][]string{
		{"NAME", "STATE", "VCPUS", "MEMORY", "WEIGHT", "CPU-TIME", "RESTARTS"},
		{"web", "running", "2", "512MiB", "200", "1.500s", "1/3"},
		{"db", "running", "1", "2GiB", "100", "0.500s", "0"},
		{"old", "crashed", "1", "64MiB", "100", "0.000s", "0"},
	} {
		if f := strings.Fields(lines[i]); strings.Join(f, " ") != strings.Join(want, " ") {
			t.Errorf("list line %d: %q, want fields %v", i, lines[i], want)
		}
	}
	mustContain(t, got, "old: last run crashed: triple fault")
}

func TestStats(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	type_(s, "stats\r")
	got := out.take()
	lines := strings.Split(got, "\n")[1:]
	for i, want := range [][]string{
		{"NAME", "WEIGHT", "CPU-TIME", "SHARE", "WAITED"},
		{"web", "200", "1.500s", "75.0%", "0.020s"},
		{"db", "100", "0.500s", "25.0%", "0.000s"},
		{"old", "100", "0.000s", "0.0%", "0.000s"},
	} {
		if f := strings.Fields(lines[i]); strings.Join(f, " ") != strings.Join(want, " ") {
			t.Errorf("stats line %d: %q, want fields %v", i, lines[i], want)
		}
	}
}

func TestCommandsReachTheManager(t *testing.T) {
	s, out, vms := newShell(t, Config{})
	type_(s, "start old\rstop web\rkill db\rreset web\r")
	if got, want := vms.callList(), "start old,stop web,kill db,reset web"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	mustContain(t, out.take(), "starting old", "stopping web: power button pressed", "killing db", "resetting web")

	type_(s, "stop nosuch\r")
	mustContain(t, out.take(), `error: no VM named "nosuch" (VMs: web, db, old)`)
	type_(s, "start\rkill a b\r")
	mustContain(t, out.take(), "usage: start NAME", "usage: kill NAME")
	vms.err = errors.New("vm web is already stopping")
	type_(s, "stop web\r")
	mustContain(t, out.take(), "error: vm web is already stopping")
}

func TestLineEditing(t *testing.T) {
	s, out, vms := newShell(t, Config{})
	// Backspace and DEL erase; an arrow key's escape sequence is ignored.
	type_(s, "stxp\b\x7fart \x1b[Aold\r")
	if got := vms.callList(); got != "start old" {
		t.Errorf("edited line ran %q, want start old", got)
	}
	got := out.take()
	mustContain(t, got, "\b \b")
	if strings.Contains(got, "[A") {
		t.Errorf("the escape sequence was echoed: %q", got)
	}
	// Ctrl-C abandons the line, Ctrl-U erases it.
	type_(s, "kill web\x03")
	type_(s, "kill db\x15start web\r")
	if got := vms.callList(); got != "start old,start web" {
		t.Errorf("calls %q after Ctrl-C and Ctrl-U", got)
	}
	// CR LF is one line end: one prompt, not two.
	out.take()
	type_(s, "\r\n")
	if got := out.take(); strings.Count(got, "tamavisor> ") != 1 {
		t.Errorf("CR LF gave %q", got)
	}
	// Over-long lines ring the bell instead of growing.
	type_(s, strings.Repeat("x", MaxLine+5))
	if got := out.take(); strings.Count(got, "\a") != 5 {
		t.Errorf("%d bells for 5 bytes too many", strings.Count(got, "\a"))
	}
	type_(s, "\x03")
}

func TestAttachRoutesAndDetaches(t *testing.T) {
	s, out, vms := newShell(t, Config{})
	web, db := s.Port("web"), s.Port("db")
	web.Write([]byte("login: ")) // a line begun before attaching
	type_(s, "attach web\r")
	if s.Attached() != "web" {
		t.Fatalf("attached to %q", s.Attached())
	}
	got := out.take()
	mustContain(t, got, "attached to web", "Ctrl-] detaches", "login: ")

	// Keystrokes go to the guest, the shell sees none of them.
	type_(s, "root\rlist\r")
	if got := vms.typed("web"); got != "root\rlist\r" {
		t.Errorf("web got %q", got)
	}
	if got := out.take(); got != "" {
		t.Errorf("the shell answered keystrokes meant for the guest: %q", got)
	}
	// The guest's output is raw; another VM's and the hypervisor's held.
	web.Write([]byte("\x1b[1mroot@web\x1b[0m:~# "))
	db.Write([]byte("db: checkpoint\n"))
	fmt.Fprintf(s.Log(), "tamavisor: something happened\n")
	if got, want := out.take(), "\x1b[1mroot@web\x1b[0m:~# "; got != want {
		t.Errorf("attached output %q, want %q", got, want)
	}
	if vms.typed("db") != "" {
		t.Error("db got keystrokes")
	}

	// Ctrl-] detaches; what follows it goes to the shell.
	type_(s, "ls\x1dstart old\r")
	if got := vms.typed("web"); got != "root\rlist\rls" {
		t.Errorf("web got %q", got)
	}
	if s.Attached() != "" {
		t.Fatal("still attached after Ctrl-]")
	}
	got = out.take()
	mustContain(t, got, "detached from web", "[db] db: checkpoint\n", "tamavisor: something happened\n", "starting old")
	if i, j := strings.Index(got, "detached"), strings.Index(got, "[db]"); i > j {
		t.Errorf("held output came before the detach: %q", got)
	}
	if vms.callList() != "start old" {
		t.Errorf("calls %q", vms.callList())
	}
	// Detached again, web's lines are prefixed.
	web.Write([]byte("bye\n"))
	mustContain(t, out.take(), "[web] bye\n")
}

func TestAttachErrors(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	type_(s, "attach nosuch\r")
	mustContain(t, out.take(), `error: no VM named "nosuch" (VMs: web, db, old)`)
	type_(s, "attach old\r")
	mustContain(t, out.take(), "error: vm old is crashed: start it first (start old)")
	if s.Attached() != "" {
		t.Error("attached after an error")
	}
	type_(s, "attach\r")
	mustContain(t, out.take(), "usage: attach NAME")
}

func TestHeldOutputOverflow(t *testing.T) {
	s, out, _ := newShell(t, Config{HeldBytes: 64})
	type_(s, "attach web\r")
	db := s.Port("db")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(db, "line %d\n", i)
	}
	out.take()
	type_(s, "\x1d")
	got := out.take()
	mustContain(t, got, "bytes of output were dropped while attached", "[db] line 9\n")
	if strings.Contains(got, "line 0") {
		t.Errorf("the oldest line survived an overflow: %q", got)
	}
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "line") && !strings.HasPrefix(l, "[db] line ") {
			t.Errorf("a held line was cut: %q", l)
		}
	}
	// The ring is empty after the release.
	type_(s, "attach web\r\x1d")
	if got := out.take(); strings.Contains(got, "line") {
		t.Errorf("held output shown twice: %q", got)
	}
}

func TestNotify(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	s.Notify(lifecycle.Change{Name: "db", From: lifecycle.Starting, To: lifecycle.Running})
	mustContain(t, out.take(), "tamavisor: vm db: running\n")
	type_(s, "attach web\r")
	s.Notify(lifecycle.Change{Name: "db", From: lifecycle.Running, To: lifecycle.Crashed, Reason: "crashed: triple fault"})
	if got := out.take(); strings.Contains(got, "triple") {
		t.Errorf("another VM's news interrupted the attached console: %q", got)
	}
	// A reboot keeps the console attached; a stop detaches it.
	s.Notify(lifecycle.Change{Name: "web", From: lifecycle.Running, To: lifecycle.Restarting, Reason: "rebooted"})
	if s.Attached() != "web" {
		t.Fatal("a reboot detached the console")
	}
	s.Notify(lifecycle.Change{Name: "web", From: lifecycle.Stopping, To: lifecycle.Stopped, Reason: "powered off"})
	if s.Attached() != "" {
		t.Fatal("still attached to a stopped VM")
	}
	got := out.take()
	mustContain(t, got, "tamavisor: vm web: stopped (powered off)", "tamavisor: vm db: crashed (crashed: triple fault)", "tamavisor: vm web: restarting (rebooted)")
	if !strings.HasSuffix(got, "tamavisor> ") {
		t.Errorf("no prompt after the detach: %q", got)
	}
}

// Keystrokes wait for a guest whose FIFO is full; a guest that takes none
// loses them with a message; a stopped guest detaches the console.
func TestForwardBackPressure(t *testing.T) {
	sleeps := 0
	s, out, vms := newShell(t, Config{Sleep: func(time.Duration) { sleeps++ }})
	type_(s, "attach web\r")
	out.take()
	vms.room = 3
	type_(s, "0123456789")
	if got := vms.typed("web"); got != "0123456789" {
		t.Errorf("web got %q", got)
	}
	if sleeps != 3 {
		t.Errorf("%d waits for 4 chunks, want 3", sleeps)
	}
	vms.room = -1
	type_(s, "abc")
	mustContain(t, out.take(), "vm web is not reading its console: 3 keystrokes dropped")
	vms.err = errors.New("vm web is stopped: its console takes no input")
	type_(s, "x")
	if s.Attached() != "" {
		t.Error("still attached to a VM that takes no input")
	}
	mustContain(t, out.take(), "detached: vm web is stopped")
}

// A line from a VM while the operator types: the prompt is erased, the
// line printed, the prompt and the typed text redrawn.
func TestPromptRedraw(t *testing.T) {
	s, out, vms := newShell(t, Config{})
	type_(s, "sta")
	out.take()
	s.Port("db").Write([]byte("hello\n"))
	erase := "\r" + strings.Repeat(" ", len("tamavisor> sta")) + "\r"
	if got, want := out.take(), erase+"[db] hello\ntamavisor> sta"; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	type_(s, "rt db\r")
	if vms.callList() != "start db" {
		t.Errorf("calls %q", vms.callList())
	}
}

func TestPortLines(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	s.mu.Lock()
	s.promptShown = false // keep the output plain
	s.mu.Unlock()
	a, b := s.Port("a"), s.Port("b")
	a.Write([]byte("aa"))
	b.Write([]byte("bb"))
	a.Write([]byte("a\r\n"))
	b.Write([]byte("b\n"))
	if got, want := out.take(), "[a] aaa\n[b] bbb\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	a.Write([]byte(strings.Repeat("x", portLine+10) + "\n"))
	if got, want := out.take(), "[a] "+strings.Repeat("x", portLine)+"\n[a] xxxxxxxxxx\n"; got != want {
		t.Errorf("long line: %q", got)
	}
	a.Write([]byte("login: "))
	a.Flush()
	if got := out.take(); got != "[a] login: \n" {
		t.Errorf("Flush: %q", got)
	}
	if s.Port("a") != a {
		t.Error("Port returned a new port for the same VM")
	}
}

// Many VMs writing at once: every line comes out whole.
func TestConcurrentPorts(t *testing.T) {
	s, out, _ := newShell(t, Config{})
	var wg sync.WaitGroup
	for v := 0; v < 4; v++ {
		p := s.Port(fmt.Sprint("vm", v))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				line := fmt.Sprintf("line %d of %s\n", i, p.name)
				for j := 0; j < len(line); j++ {
					p.Write([]byte{line[j]})
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the operator types meanwhile
		defer wg.Done()
		for i := 0; i < 50; i++ {
			type_(s, "x")
		}
		type_(s, "\x03")
	}()
	wg.Wait()
	n := 0
	for _, l := range strings.Split(out.take(), "\n") {
		l = l[strings.LastIndexByte(l, '\r')+1:] // after an erased prompt
		if strings.HasPrefix(l, "tamavisor> ") || l == "" || strings.HasPrefix(l, "x") || strings.HasSuffix(l, "^C") {
			continue
		}
		var i, v int
		var a string
		if _, err := fmt.Sscanf(l, "[vm%d] line %d of %s", &v, &i, &a); err != nil || a != fmt.Sprint("vm", v) {
			t.Fatalf("garbled line %q (%v)", l, err)
		}
		n++
	}
	if n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}

func TestPortWriteDoesNotAllocate(t *testing.T) {
	s, _, _ := newShell(t, Config{})
	p := s.Port("web")
	line := []byte("a line of guest output\n")
	if n := testing.AllocsPerRun(200, func() { p.Write(line) }); n != 0 {
		t.Errorf("detached: %.1f allocations per write", n)
	}
	type_(s, "attach db\r")
	if n := testing.AllocsPerRun(200, func() { p.Write(line) }); n != 0 {
		t.Errorf("held: %.1f allocations per write", n)
	}
	type_(s, "\x1dattach web\r")
	if n := testing.AllocsPerRun(200, func() { p.Write(line) }); n != 0 {
		t.Errorf("attached: %.1f allocations per write", n)
	}
}

// With the real lifecycle manager: the shell starts a VM, attaches,
// types (the guest echoes), detaches and kills it, the state changes
// arriving through Notify. Run with -race: the two packages' locks must
// not deadlock.
func TestWithLifecycle(t *testing.T) {
	out := &console{}
	var sh *Shell
	m := lifecycle.New(lifecycle.Config{OnChange: func(c lifecycle.Change) { sh.Notify(c) }})
	defer m.Close(5 * time.Second)
	sh, err := New(Config{Out: out, VMs: m})
	if err != nil {
		t.Fatal(err)
	}
	inst := &echoInst{stop: make(chan string, 1), port: sh.Port("vm1")}
	if err := m.Add(lifecycle.Spec{Name: "vm1", VCPUs: 1, Memory: 32 << 20,
		Build: func(*sched.Group) (lifecycle.Instance, error) { return inst, nil }}); err != nil {
		t.Fatal(err)
	}
	sh.Start()
	type_(sh, "start vm1\r")
	if _, err := m.Wait("vm1", 5*time.Second, lifecycle.Running); err != nil {
		t.Fatal(err)
	}
	type_(sh, "attach vm1\r")
	out.take()
	type_(sh, "hi")
	if got := out.take(); got != "hi" {
		t.Errorf("the guest's echo came out as %q", got)
	}
	type_(sh, "\x1dkill vm1\r")
	if _, err := m.Wait("vm1", 5*time.Second, lifecycle.Stopped); err != nil {
		t.Fatal(err)
	}
	type_(sh, "list\r")
	mustContain(t, out.take(), "detached from vm1", "killing vm1", "tamavisor: vm1: stopped (killed: killed by the operator)"[len("tamavisor: "):], "vm1: last run killed: killed by the operator")
}

// echoInst is a guest that echoes its console input.
type echoInst struct {
	stop chan string
	port *Port
}

func (e *echoInst) Run() lifecycle.Outcome {
	return lifecycle.Outcome{End: lifecycle.EndKilled, Reason: <-e.stop}
}
func (e *echoInst) PowerButton() {}
func (e *echoInst) ForceStop(why string) {
	select {
	case e.stop <- why:
	default:
	}
}
func (e *echoInst) Input(p []byte) int {
	e.port.Write(p)
	return len(p)
}
