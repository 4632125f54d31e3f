package emulator

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeEmulator writes a shell script standing in for QEMU or Bochs.
func fakeEmulator(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-emulator")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func fakeKernel(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kernel.elf")
	if err := os.WriteFile(p, []byte("ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func qemuConfig(t *testing.T, script string) Config {
	return Config{Emulator: QEMU, Accel: AccelTCG, Kernel: fakeKernel(t), QEMUBinary: script, Timeout: 20 * time.Second}
}

func processAlive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func readPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %q: %v", b, err)
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the fake emulator wrote no pid file")
	return 0
}

func TestMachineWaitForAndClose(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := fakeEmulator(t, `
printf '\033[2J\033[01;01Hfirmware\r\n'
sleep 0.3
printf 'tama'
sleep 0.1
printf 'visor: ready\r\n'
sleep 300 &
echo $! > `+pidFile+`
exec sleep 300
`)
	m, err := Start(context.Background(), qemuConfig(t, script))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	at, err := m.WaitFor("tamavisor: ready", 10*time.Second)
	if err != nil {
		t.Fatalf("WaitFor: %v\nconsole: %q", err, m.Console())
	}
	// The marker's last part came after the two sleeps.
	if at < 350*time.Millisecond || at > 8*time.Second {
		t.Errorf("marker arrival %v, want just after the script's 0.4 s of sleeps", at)
	}
	again, err := m.WaitFor("firmware", time.Second)
	if err != nil || again >= at {
		t.Errorf("earlier marker: %v, %v; want its own, earlier, arrival (before %v)", again, err, at)
	}
	child := readPid(t, pidFile)
	r := m.Close()
	if !r.Closed || r.TimedOut || r.ExitCode != -1 {
		t.Errorf("Close of a running emulator: Closed %v TimedOut %v ExitCode %d", r.Closed, r.TimedOut, r.ExitCode)
	}
	if r.Console != "firmware\ntamavisor: ready\n" {
		t.Errorf("console %q, want escape sequences and carriage returns removed", r.Console)
	}
	if !strings.HasPrefix(string(r.RawConsole), "\x1b[2J") {
		t.Errorf("raw console %q lost its bytes", r.RawConsole)
	}
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(child) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if processAlive(child) {
		syscall.Kill(child, syscall.SIGKILL)
		t.Errorf("the emulator's child %d survived Close: the process group was not killed", child)
	}
	if r2 := m.Close(); r2 != r {
		t.Error("a second Close returned a different result")
	}
}

func TestMachineExitBeforeMarker(t *testing.T) {
	script := fakeEmulator(t, "echo 'bad option' >&2\nprintf 'hello\\n'\nexit 3\n")
	m, err := Start(context.Background(), qemuConfig(t, script))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.WaitFor("tamavisor: ready", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited (status 3)") {
		t.Errorf("WaitFor after exit: %v, want the exit status", err)
	}
	r := m.Close()
	if r.ExitCode != 3 || r.Closed || r.TimedOut || r.Console != "hello\n" || !strings.Contains(r.Diagnostics, "bad option") {
		t.Errorf("result %+v", r)
	}
}

func TestMachineDeadline(t *testing.T) {
	script := fakeEmulator(t, "printf 'starting\\n'\nexec sleep 300\n")
	cfg := qemuConfig(t, script)
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run took %v past a 300 ms deadline", took)
	}
	if !r.TimedOut || r.Closed || r.Console != "starting\n" {
		t.Errorf("result after the deadline: TimedOut %v Closed %v console %q", r.TimedOut, r.Closed, r.Console)
	}

	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.WaitFor("never", time.Minute); err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("WaitFor across the deadline: %v", err)
	}
}

func TestMachineWaitForTimeout(t *testing.T) {
	script := fakeEmulator(t, "exec sleep 300\n")
	m, err := Start(context.Background(), qemuConfig(t, script))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.WaitFor("never", 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "within") {
		t.Errorf("WaitFor with its own timeout: %v", err)
	}
	select {
	case <-m.Done():
		t.Error("a WaitFor timeout ended the emulator")
	default:
	}
}

// TestMachineBochsTail checks that the console of a Bochs run comes from the
// serial file named in the bochsrc, read while Bochs runs.
func TestMachineBochsTail(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"bios", "vgabios", "t.iso"} {
		mustWrite(t, filepath.Join(dir, f), "x")
	}
	script := fakeEmulator(t, `
while [ "$1" != "-f" ]; do shift; done
com=$(sed -n 's/^com1: .*dev="\(.*\)"$/\1/p' "$2")
echo "bochs starting"
printf 'GRUB\r\n' >> "$com"
sleep 0.3
printf 'tamavisor: ready\n' >> "$com"
exec sleep 300
`)
	cfg := Config{Emulator: Bochs, ISO: filepath.Join(dir, "t.iso"), BochsBinary: script,
		BochsBIOS: filepath.Join(dir, "bios"), BochsVGABIOS: filepath.Join(dir, "vgabios"), Timeout: 20 * time.Second}
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.Contains(m.BochsRC(), "ata0-slave: type=cdrom, path=\""+cfg.ISO+"\"") {
		t.Errorf("bochsrc does not boot the ISO:\n%s", m.BochsRC())
	}
	if _, err := m.WaitFor("tamavisor: ready", 10*time.Second); err != nil {
		t.Fatalf("WaitFor: %v (console %q)", err, m.Console())
	}
	r := m.Close()
	if r.Console != "GRUB\ntamavisor: ready\n" || !strings.Contains(r.Diagnostics, "bochs starting") {
		t.Errorf("console %q, diagnostics %q", r.Console, r.Diagnostics)
	}
}

func TestStartRefusesMissingMedium(t *testing.T) {
	cfg := Config{Emulator: QEMU, Kernel: filepath.Join(t.TempDir(), "absent.elf"), QEMUBinary: "/bin/true"}
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "kernel") {
		t.Errorf("Start with a missing kernel: %v", err)
	}
}

// TestMachineType checks that typed text reaches the emulator's standard
// input (COM1's receiver under -serial stdio) and that WaitUntil times the
// match's end, not the console's.
func TestMachineType(t *testing.T) {
	script := fakeEmulator(t, `
printf 'login: '
read line
printf 'got [%s]\n' "$line"
sleep 0.3
printf 'later\n'
read line2
printf 'second [%s]\n' "$line2"
exec sleep 300
`)
	m, err := Start(context.Background(), qemuConfig(t, script))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.WaitFor("login: ", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.Type("root\n"); err != nil {
		t.Fatal(err)
	}
	got, err := m.WaitUntil("the echo", 10*time.Second, func(console string) (int, bool) {
		i := strings.Index(console, "got [root]")
		return i + len("got [root]"), i >= 0
	})
	if err != nil {
		t.Fatalf("%v (console %q)", err, m.Console())
	}
	later, err := m.WaitFor("later", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if later-got < 250*time.Millisecond {
		t.Errorf("the echo arrived at %v and the line 0.3 s after it at %v: WaitUntil did not time its match", got, later)
	}
	if err := m.Type("a b"); err != nil {
		t.Fatal(err)
	}
	if err := m.Type(" c\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor("second [a b c]", 10*time.Second); err != nil {
		t.Fatalf("%v (console %q): text typed in two pieces did not arrive as one line", err, m.Console())
	}
	if _, err := m.WaitUntil("nothing", 100*time.Millisecond, func(string) (int, bool) { return 0, false }); err == nil ||
		!strings.Contains(err.Error(), "no nothing on the console within") {
		t.Errorf("WaitUntil that never matches: %v", err)
	}
	m.Close()
	if err := m.Type("x\n"); err == nil {
		t.Error("Type after Close succeeded")
	}
}

func TestTypeRefusedWithoutInput(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"bios", "vgabios", "t.iso"} {
		mustWrite(t, filepath.Join(dir, f), "x")
	}
	script := fakeEmulator(t, "exec sleep 300\n")
	cfg := Config{Emulator: Bochs, ISO: filepath.Join(dir, "t.iso"), BochsBinary: script,
		BochsBIOS: filepath.Join(dir, "bios"), BochsVGABIOS: filepath.Join(dir, "vgabios"), Timeout: 20 * time.Second}
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Type("x\n"); err != ErrNoInput {
		t.Errorf("Type into Bochs: %v, want ErrNoInput", err)
	}
}

// TestMachineBochsTerminal checks that with BochsTerminal COM1 is a
// pseudo-terminal named in the bochsrc (mode=term), that what the machine
// writes there is the console, including what it wrote just before it
// ended, and that Type reaches it.
func TestMachineBochsTerminal(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"bios", "vgabios", "t.iso"} {
		mustWrite(t, filepath.Join(dir, f), "x")
	}
	// As Bochs does, the fake opens the device and makes it raw.
	script := fakeEmulator(t, `
while [ "$1" != "-f" ]; do shift; done
com=$(sed -n 's/^com1: enabled=1, mode=term, dev="\(.*\)"$/\1/p' "$2")
[ -c "$com" ] || { echo "no terminal in the bochsrc" >&2; exit 9; }
exec 3<>"$com"
stty -F "$com" raw -echo
printf 'login: ' >&3
read -r line <&3
printf 'got [%s]\n' "$line" >&3
printf 'bye\n' >&3
exit 0
`)
	cfg := Config{Emulator: Bochs, ISO: filepath.Join(dir, "t.iso"), BochsBinary: script, BochsTerminal: true,
		BochsBIOS: filepath.Join(dir, "bios"), BochsVGABIOS: filepath.Join(dir, "vgabios"), Timeout: 20 * time.Second}
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.Contains(m.BochsRC(), `com1: enabled=1, mode=term, dev="/dev/pts/`) {
		t.Errorf("bochsrc has no terminal COM1:\n%s", m.BochsRC())
	}
	if _, err := m.WaitFor("login: ", 10*time.Second); err != nil {
		t.Fatalf("%v (console %q, diagnostics %q)", err, m.Console(), m.Close().Diagnostics)
	}
	if err := m.Type("root\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the fake did not end after its input (console %q)", m.Console())
	}
	r := m.Close()
	if r.Console != "login: got [root]\nbye\n" || r.ExitCode != 0 {
		t.Errorf("console %q (exit %d, diagnostics %q)", r.Console, r.ExitCode, r.Diagnostics)
	}
	cfg.Interactive = true
	if _, err := Start(context.Background(), cfg); err == nil {
		t.Error("BochsTerminal with an interactive run was accepted")
	}
}
