package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeQEMU writes a shell script that stands in for QEMU running the guest:
// a banner, gosh's prompt, the tty's echo of each line typed, canned
// answers, and the kernel's last line on poweroff. onPoweroff runs then.
func fakeQEMU(t *testing.T, onPoweroff string) (qemu, kernel, initrd string) {
	t.Helper()
	dir := t.TempDir()
	qemu = filepath.Join(dir, "qemu-system-x86_64")
	script := `#!/bin/sh
printf '\033[0mWelcome to u-root!\r\n$ '
while IFS= read -r line; do
	printf '%s\r\n' "$line"
	case "$line" in
	poweroff) printf '[    1.000000] reboot: Power down\r\n'; ` + onPoweroff + `;;
	"uname -r") printf '6.1.0-test-amd64\r\n' ;;
	"true") ;;
	*) printf '"%s": executable file not found in $PATH\r\n' "$line" ;;
	esac
	printf '$ '
done
`
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	kernel, initrd = filepath.Join(dir, KernelFile), filepath.Join(dir, InitrdFile)
	for _, p := range []string{kernel, initrd} {
		if err := os.WriteFile(p, []byte("image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return qemu, kernel, initrd
}

func TestGuestSessionWithFakeQEMU(t *testing.T) {
	qemu, kernel, initrd := fakeQEMU(t, "exit 0")
	g, err := Boot(context.Background(), Options{QEMU: qemu, Kernel: kernel, Initrd: initrd, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	argv := strings.Join(g.Argv(), " ")
	for _, want := range []string{"-kernel " + kernel, "-initrd " + initrd, "-append " + DefaultAppend, "-serial stdio", "-no-reboot", "-m 512M"} {
		if !strings.Contains(argv, want) {
			t.Errorf("QEMU's command line %q lacks %q", argv, want)
		}
	}
	at, err := g.WaitPrompt(10 * time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, g.Log())
	}
	if at <= 0 || at > 10*time.Second {
		t.Errorf("time to prompt %v is not within the wait", at)
	}
	for _, tc := range []struct{ line, want string }{
		{"uname -r", "6.1.0-test-amd64\n"},
		{"true", ""},
		{"head", "\"head\": executable file not found in $PATH\n"},
	} {
		out, err := g.Command(tc.line, 10*time.Second)
		if err != nil {
			t.Fatalf("%v\n%s", err, g.Log())
		}
		if out != tc.want {
			t.Errorf("%q printed %q, want %q", tc.line, out, tc.want)
		}
	}
	if _, err := g.Command("two\nlines", time.Second); err == nil {
		t.Error("a command with a newline was typed")
	}
	if err := g.PowerOff(10 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, g.Log())
	}
}

func TestPowerOffFailures(t *testing.T) {
	for _, tc := range []struct {
		name, onPoweroff, want string
	}{
		{"bad exit status", "exit 3", "status 3"},
		{"no exit", "sleep 30", "still runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qemu, kernel, initrd := fakeQEMU(t, tc.onPoweroff)
			g, err := Boot(context.Background(), Options{QEMU: qemu, Kernel: kernel, Initrd: initrd, Timeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if _, err := g.WaitPrompt(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			err = g.PowerOff(time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PowerOff: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestNoPromptAndCloseKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	qemu := filepath.Join(dir, "qemu")
	// A guest stuck in its boot, with a child process of its own.
	script := "#!/bin/sh\nprintf 'booting\\r\\n'\nsleep 60 &\necho $! >" + pidFile + "\nwait\n"
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, kernel, initrd := fakeQEMU(t, "exit 0")
	g, err := Boot(context.Background(), Options{QEMU: qemu, Kernel: kernel, Initrd: initrd, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WaitPrompt(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "no shell prompt") {
		t.Fatalf("WaitPrompt on a guest without a shell: %v", err)
	}
	var pid int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
	}
	if pid <= 0 {
		t.Fatal("the fake QEMU wrote no child pid")
	}
	g.Close()
	if !strings.Contains(g.Log(), "booting") {
		t.Errorf("log %q lacks the console", g.Log())
	}
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d of the fake QEMU outlived Close", pid)
		}
	}
}

func TestBootDirectHonoursTheContext(t *testing.T) {
	_, kernel, initrd := fakeQEMU(t, "exit 0")
	silent := filepath.Join(t.TempDir(), "silent")
	if err := os.WriteFile(silent, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// DefaultTimeout is minutes: a quick failure comes from the context.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := BootDirect(ctx, silent, kernel, initrd)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("BootDirect on a silent guest with a 300ms context: %v after %v", err, time.Since(start))
	}
}

func TestOptionsAndFind(t *testing.T) {
	if _, err := Boot(context.Background(), Options{Kernel: "k"}); err == nil {
		t.Error("Boot without an initramfs succeeded")
	}
	_, kernel, initrd := fakeQEMU(t, "exit 0")
	if _, err := Boot(context.Background(), Options{QEMU: "/nonexistent/qemu", Kernel: kernel, Initrd: initrd}); err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("Boot with a missing QEMU: %v", err)
	}
	build := t.TempDir()
	if _, err := Find(build); !errors.Is(err, ErrNoImages) {
		t.Errorf("Find on an empty build directory: %v", err)
	}
	dir := filepath.Join(build, GuestDir)
	os.MkdirAll(dir, 0o755)
	for _, f := range []string{KernelFile, InitrdFile} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	im, err := Find(build)
	if err != nil || im.Kernel != filepath.Join(dir, KernelFile) || im.Initrd != filepath.Join(dir, InitrdFile) {
		t.Errorf("Find: %+v, %v", im, err)
	}
}
