package main

// Tests on a real TamaGo image and with real loaders. They need the TamaGo
// toolchain (go tool github.com/usbarmory/tamago/cmd/tamago), grub-file
// (package grub-common) and qemu-system-x86_64, and skip loudly without
// them; the synthetic-image tests in patch_test.go always run.

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	tinyOnce sync.Once
	tinyELF  []byte
	tinyErr  error
	tinyDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyDir != "" {
		os.RemoveAll(tinyDir)
	}
	os.Exit(code)
}

// skipLoudly skips with a message that stands out in `go test -v` output and
// is printed even without -v.
func skipLoudly(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
}

// tamagoImage builds testdata/tiny with the TamaGo toolchain as the
// hypervisor image is linked (-T 0x10010000 -R 0x1000), once per test run.
// It builds in a scratch module: the repository's go.mod may ask for a newer
// Go than the TamaGo toolchain is.
func tamagoImage(t *testing.T) []byte {
	t.Helper()
	tinyOnce.Do(func() { tinyELF, tinyErr = buildTiny() })
	if tinyErr != nil {
		skipLoudly(t, "no real TamaGo image to test on: %v", tinyErr)
	}
	return append([]byte(nil), tinyELF...)
}

func buildTiny() ([]byte, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`github.com/usbarmory/tamago (v\S+)`).FindSubmatch(goMod)
	if m == nil {
		return nil, errors.New("go.mod requires no github.com/usbarmory/tamago")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	offline := append(os.Environ(), "GOPROXY=off", "GOWORK=off", "GOFLAGS=-mod=mod")

	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "github.com/usbarmory/tamago/cmd/tamago")
	cmd.Dir, cmd.Env = root, offline
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("TamaGo toolchain not found (go tool -n github.com/usbarmory/tamago/cmd/tamago): %v", err)
	}
	tamago := strings.TrimSpace(string(out))
	cmd = exec.CommandContext(ctx, tamago, "env", "GOVERSION")
	cmd.Env = offline
	out, err = cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s env GOVERSION: %v", tamago, err)
	}
	goVersion := strings.TrimPrefix(strings.TrimSpace(string(out)), "go")

	if tinyDir, err = os.MkdirTemp("", "mbheader-tiny-"); err != nil {
		return nil, err
	}
	src, err := os.ReadFile("testdata/tiny/main.go")
	if err != nil {
		return nil, err
	}
	goSum, _ := os.ReadFile(filepath.Join(root, "go.sum"))
	files := map[string][]byte{
		"main.go": src,
		"go.mod":  fmt.Appendf(nil, "module tiny\n\ngo %s\n\nrequire github.com/usbarmory/tamago %s\n", goVersion, m[1]),
		"go.sum":  goSum,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tinyDir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	elfPath := filepath.Join(tinyDir, "tiny.elf")
	cmd = exec.CommandContext(ctx, tamago, "build", "-ldflags", "-T 0x10010000 -R 0x1000", "-o", elfPath, ".")
	cmd.Dir = tinyDir
	cmd.Env = append(offline, "GOOS=tamago", "GOOSPKG=github.com/usbarmory/tamago", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building testdata/tiny with TamaGo: %v\n%s", err, out)
	}
	return os.ReadFile(elfPath)
}

func TestPatchRealImage(t *testing.T) {
	orig := tamagoImage(t)
	f0, err := elf.NewFile(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	// Where the zero padding is: after the section headers, before the
	// first note.
	shEnd := int(le.Uint64(orig[40:])) + int(le.Uint16(orig[58:]))*int(le.Uint16(orig[60:]))
	notes := len(orig)
	for _, p := range f0.Progs {
		if p.Type == elf.PT_NOTE {
			notes = min(notes, int(p.Off))
		}
	}
	for _, s := range f0.Sections {
		if s.Type == elf.SHT_NOTE {
			notes = min(notes, int(s.Offset))
		}
	}
	t.Logf("padding between section headers and notes: %#x-%#x", shEnd, notes)
	if notes-shEnd < 12+80 {
		t.Fatalf("the image has only %d bytes of padding", notes-shEnd)
	}

	out, err := Patch(orig, Multiboot1|Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	mb1, mb2 := findMultiboot1(out), findMultiboot2(out)
	for _, h := range []struct {
		name    string
		off, sz int
	}{{"Multiboot", mb1, 12}, {"Multiboot2", mb2, len(mb2Header())}} {
		if h.off < shEnd || h.off+h.sz > notes {
			t.Errorf("%s header at %#x-%#x is outside the padding %#x-%#x", h.name, h.off, h.off+h.sz, shEnd, notes)
		}
	}
	checkMB1(t, out, mb1)
	checkMB2(t, out, mb2)
	onlyWithin(t, changed(orig, out), [2]int{mb1, mb1 + 12}, [2]int{mb2, mb2 + len(mb2Header())})

	f1, err := elf.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if f0.Entry != f1.Entry || len(f0.Progs) != len(f1.Progs) || len(f0.Sections) != len(f1.Sections) {
		t.Fatal("entry, program headers or sections changed")
	}
	for i := range f0.Progs {
		if !reflect.DeepEqual(f0.Progs[i].ProgHeader, f1.Progs[i].ProgHeader) {
			t.Errorf("program header %d changed", i)
		}
	}
	for i := range f0.Sections {
		if !reflect.DeepEqual(f0.Sections[i].SectionHeader, f1.Sections[i].SectionHeader) {
			t.Errorf("section header %d changed", i)
		}
	}
	img, _ := parseImage(out)
	if img.pvhEntry == 0 || img.pvhEntry != f1.Entry {
		t.Errorf("PVH entry %#x, ELF entry %#x", img.pvhEntry, f1.Entry)
	}

	again, err := Patch(out, Multiboot1|Multiboot2)
	if !errors.Is(err, ErrPresent) || !bytes.Equal(again, out) {
		t.Errorf("second run: err %v, unchanged %v", err, bytes.Equal(again, out))
	}
}

// TestCommand runs the program as the build will: in place, then again.
func TestCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "image.elf")
	orig := defaultSynth().build()
	if err := os.WriteFile(path, orig, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := run(path, "", Multiboot2); err != nil {
		t.Fatal(err)
	}
	once, _ := os.ReadFile(path)
	if findMultiboot2(once) < 0 || findMultiboot1(once) >= 0 {
		t.Fatal("in-place run did not write just the Multiboot2 header")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o751 {
		t.Errorf("mode changed to %v", st.Mode())
	}
	if err := run(path, "", Multiboot2); err != nil {
		t.Fatalf("second run: %v", err)
	}
	twice, _ := os.ReadFile(path)
	if !bytes.Equal(once, twice) {
		t.Error("second run changed the file")
	}
	both := filepath.Join(t.TempDir(), "grub.elf")
	if err := run(path, both, Multiboot1|Multiboot2); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(both)
	if findMultiboot1(b) < 0 || findMultiboot2(b) != findMultiboot2(once) {
		t.Error("-o with -multiboot1 did not add the Multiboot header")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, once) {
		t.Error("-o changed the input")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not an image at all, no ELF magic here........................................"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(bad, "", Multiboot2); err == nil || !strings.Contains(err.Error(), "not an ELF file") {
		t.Errorf("bad input: %v", err)
	}
}

// grubFile asks GRUB's own header check about a file.
func grubFile(t *testing.T, data []byte, flag string) bool {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.elf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := exec.CommandContext(ctx, "grub-file", flag, path).Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("grub-file: %v", err)
	}
	return err == nil
}

func TestGrubFile(t *testing.T) {
	if _, err := exec.LookPath("grub-file"); err != nil {
		skipLoudly(t, "grub-file (package grub-common) is not installed")
	}
	images := map[string][]byte{"synthetic": defaultSynth().build()}
	t.Run("real", func(t *testing.T) { images["real"] = tamagoImage(t) })
	for name, orig := range images {
		mb2, err := Patch(orig, Multiboot2)
		if err != nil {
			t.Fatal(err)
		}
		both, err := Patch(orig, Multiboot1|Multiboot2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			what     string
			data     []byte
			mb1, mb2 bool
		}{{"unpatched", orig, false, false}, {"Multiboot2", mb2, false, true}, {"both", both, true, true}} {
			if got := grubFile(t, c.data, "--is-x86-multiboot"); got != c.mb1 {
				t.Errorf("%s image, %s: grub-file --is-x86-multiboot says %v", name, c.what, got)
			}
			if got := grubFile(t, c.data, "--is-x86-multiboot2"); got != c.mb2 {
				t.Errorf("%s image, %s: grub-file --is-x86-multiboot2 says %v", name, c.what, got)
			}
		}
	}
}

// bootQEMU starts an image with QEMU's -kernel on the microvm machine, as
// TamaGo's microvm board expects, and returns what it printed.
func bootQEMU(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.elf")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "microvm", "-cpu", "qemu64,+rdrand",
		"-m", "4G", "-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot", "-kernel", path)
	out, _ := cmd.CombinedOutput() // QEMU's exit status says nothing here
	return string(out)
}

// TestQEMUStillBootsPVH checks the promise that the default patch leaves PVH
// alone: QEMU's -kernel starts the Go runtime in the patched image as in the
// original (under TCG the microvm board then stops for want of kvmclock; with
// KVM main runs). It also records why Multiboot is not written by default.
func TestQEMUStillBootsPVH(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; not in -short mode")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		skipLoudly(t, "qemu-system-x86_64 is not installed")
	}
	orig := tamagoImage(t)
	started := func(out string) bool {
		return strings.Contains(out, "tiny: reached main") || strings.Contains(out, "github.com/usbarmory/tamago/")
	}
	if out := bootQEMU(t, orig); !started(out) {
		t.Fatalf("the unpatched image does not start under QEMU; output:\n%s", out)
	}
	mb2, err := Patch(orig, Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	if out := bootQEMU(t, mb2); !started(out) {
		t.Errorf("with the Multiboot2 header QEMU no longer starts the image through PVH; output:\n%s", out)
	}
	both, err := Patch(orig, Multiboot1|Multiboot2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("with a Multiboot header as well, QEMU says: %q", strings.TrimSpace(bootQEMU(t, both)))
}
