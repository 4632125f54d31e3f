package qemutest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tamavisor/boot/inventory"
	"tamavisor/tools/emulator"
)

// BuildDirEnv names a directory holding tamavisor.elf (built with the
// guests embedded), tamavisor.iso, tamavisor-uefi.img and the guest build's
// guest/kernel.version, to boot as they are, instead of the repository's
// build/ (rebuilt with make when older than the sources or the guests).
const BuildDirEnv = "TAMAVISOR_BUILD"

// Artifacts are the images the boot tests use.
type Artifacts struct{ Kernel, ISO, UEFI string }

var (
	prepareOnce sync.Once
	artifacts   Artifacts
	// setupErr fails every boot test: CI must see missing emulators or a
	// broken build as failures, not as skipped tests.
	setupErr error
)

// prepared builds the images once, for the first boot test that needs
// them, so that running only the parser's tests builds nothing.
func prepared(t *testing.T) Artifacts {
	t.Helper()
	prepareOnce.Do(func() { artifacts, setupErr = prepare() })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return artifacts
}

func prepare() (Artifacts, error) {
	if err := checkEmulators(); err != nil {
		return Artifacts{}, err
	}
	if dir := os.Getenv(BuildDirEnv); dir != "" {
		a := artifactsIn(dir)
		for _, p := range []string{a.Kernel, a.ISO, a.UEFI} {
			if _, err := os.Stat(p); err != nil {
				return a, fmt.Errorf("%s=%s: %w", BuildDirEnv, dir, err)
			}
		}
		return a, nil
	}
	root, err := repoRoot()
	if err != nil {
		return Artifacts{}, err
	}
	a := artifactsIn(filepath.Join(root, "build"))
	fresh, why := fresh(root, a)
	if fresh {
		return a, nil
	}
	// The guests first: the image embeds what build/ holds when it is
	// linked. make guest downloads Debian's kernel unless it is cached.
	start := time.Now()
	for _, goals := range [][]string{{"testkernel", "guest"}, {"image", "iso", "uefi"}} {
		fmt.Fprintf(os.Stderr, "qemu-test: building the images (%s): make -C %s %s\n", why, root, strings.Join(goals, " "))
		cmd := exec.Command("make", append([]string{"-C", root}, goals...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return a, fmt.Errorf("make %s failed (%v):\n%s", strings.Join(goals, " "), err, out.String())
		}
	}
	fmt.Fprintf(os.Stderr, "qemu-test: images built in %.1f s\n", time.Since(start).Seconds())
	return a, nil
}

func artifactsIn(dir string) Artifacts {
	return Artifacts{
		Kernel: filepath.Join(dir, "tamavisor.elf"),
		ISO:    filepath.Join(dir, "tamavisor.iso"),
		UEFI:   filepath.Join(dir, "tamavisor-uefi.img"),
	}
}

// checkEmulators fails with the fix when a program or firmware is absent.
func checkEmulators() error {
	var missing []string
	for _, p := range []string{emulator.DefaultQEMUBinary, emulator.DefaultBochsBinary, "grub-mkrescue", "xorriso", "mformat", "objcopy"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, f := range []string{emulator.DefaultOVMFCode, emulator.DefaultOVMFVars, emulator.DefaultBochsBIOS, emulator.DefaultBochsVGABIOS} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing emulators or firmware (%s): run `make deps` (tools/install-deps.sh) to install them", strings.Join(missing, ", "))
	}
	return nil
}

func repoRoot() (string, error) {
	dir, err := filepath.Abs("..") // go test runs in qemu-test/
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("repository root not found above %s: %w", dir, err)
	}
	return dir, nil
}

// embeddedGuests are the build outputs the image embeds (the Makefile's
// image rule, boot/guestimages), relative to the build directory.
var embeddedGuests = []string{"testkernel.elf", "guest/vmlinuz", "guest/initramfs.cpio"}

// fresh reports whether every artifact is newer than every source file the
// image is built from and than the guest images it embeds.
func fresh(root string, a Artifacts) (bool, string) {
	oldest := time.Time{}
	for _, p := range []string{a.Kernel, a.ISO, a.UEFI} {
		st, err := os.Stat(p)
		if err != nil {
			return false, filepath.Base(p) + " missing"
		}
		if oldest.IsZero() || st.ModTime().Before(oldest) {
			oldest = st.ModTime()
		}
	}
	for _, g := range embeddedGuests {
		p := filepath.Join(filepath.Dir(a.Kernel), g)
		st, err := os.Stat(p)
		if err != nil {
			return false, g + " missing"
		}
		if st.ModTime().After(oldest) {
			return false, g + " is newer than the images"
		}
	}
	newer := ""
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if newer != "" {
			return filepath.SkipAll
		}
		if err != nil {
			return nil // unreadable: not part of the build either
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "build" || name == "qemu-test" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !isSource(path, name) {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().After(oldest) {
			newer = path
		}
		return nil
	})
	if newer != "" {
		rel, _ := filepath.Rel(root, newer)
		return false, rel + " is newer than the images"
	}
	return true, ""
}

func isSource(path, name string) bool {
	switch {
	case strings.HasSuffix(name, "_test.go"):
		return false
	case strings.HasSuffix(name, ".go"), strings.HasSuffix(name, ".s"), strings.HasSuffix(name, ".h"):
		return true
	}
	switch name {
	case "go.mod", "go.sum", "Makefile", "grub.cfg":
		return true
	}
	return false
}

// start runs one machine with a hard deadline, and logs its whole
// console and the emulator's diagnostics if the test fails.
func start(t *testing.T, cfg emulator.Config, deadline time.Duration) *emulator.Machine {
	t.Helper()
	cfg.Timeout = deadline
	var notes []string
	cfg.Logf = func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }
	m, err := emulator.Start(context.Background(), cfg)
	for _, n := range notes {
		t.Log(n)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r := m.Close()
		if t.Failed() {
			t.Logf("command: %s", emulator.FormatCommand(r.Argv))
			if r.BochsRC != "" {
				t.Logf("bochsrc:\n%s", r.BochsRC)
			}
			t.Logf("exit status %d, timed out %v, ran %.1f s", r.ExitCode, r.TimedOut, r.Duration.Seconds())
			t.Logf("console:\n%s", r.Console)
			t.Logf("emulator diagnostics:\n%s", r.Diagnostics)
		}
	})
	return m
}

// boot runs one machine until the image says it is ready and returns its
// parsed inventory, failing the test on an incomplete one.
func boot(t *testing.T, cfg emulator.Config, deadline time.Duration) inventory.Inventory {
	t.Helper()
	inv, _ := bootMachine(t, cfg, deadline)
	return inv
}

// bootMachine is boot that also returns the running machine, for tests
// that watch the console further.
func bootMachine(t *testing.T, cfg emulator.Config, deadline time.Duration) (inventory.Inventory, *emulator.Machine) {
	t.Helper()
	m := start(t, cfg, deadline)
	at, err := m.WaitFor(inventory.Ready, deadline)
	if err != nil {
		t.Fatalf("the image did not reach %q: %v", inventory.Ready, err)
	}
	t.Logf("%q after %.2f s", inventory.Ready, at.Seconds())
	inv, err := inventory.Parse(m.Console())
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	if !inv.Ready {
		t.Errorf("%q does not follow the inventory", inventory.Ready)
	}
	if missing := inv.Missing(); len(missing) > 0 {
		t.Errorf("inventory incomplete, lacks: %s", strings.Join(missing, "; "))
	}
	return inv, m
}

func expectField(t *testing.T, inv inventory.Inventory, topic, key, want string) {
	t.Helper()
	got, ok := inv.Field(topic, key)
	switch {
	case !ok:
		t.Errorf("inventory has no %s %s= (want %s)", topic, key, want)
	case got != want:
		t.Errorf("inventory %s %s=%s, want %s", topic, key, got, want)
	}
}

func expectAtLeast(t *testing.T, inv inventory.Inventory, topic, key string, min int64) {
	t.Helper()
	n, err := inv.Int(topic, key)
	if err != nil {
		t.Error(err)
	} else if n < min {
		t.Errorf("inventory %s %s=%d, want at least %d", topic, key, n, min)
	}
}

func expectBootedVia(t *testing.T, inv inventory.Inventory, want string) {
	t.Helper()
	if inv.BootedVia != want {
		t.Errorf("booted via %q, want %q", inv.BootedVia, want)
	}
}

// Deadlines per boot, generous for a loaded 2-core host: the images reach
// their console in about a second (PVH), five (OVMF) and ten (Bochs) when
// the host is idle.
const (
	qemuDeadline  = 90 * time.Second
	ovmfDeadline  = 150 * time.Second
	bochsDeadline = 150 * time.Second
)

// skipShort skips a boot test under -short (make test-unit): boots take
// minutes and need the emulators; make test-boot runs them.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boot tests run emulators for minutes; -short skips them")
	}
}

func qemuTCG() emulator.Config {
	return emulator.Config{Emulator: emulator.QEMU, Accel: emulator.AccelTCG, SMP: 2, MemoryMiB: 2048}
}

// (a) AMD-V with nested paging on two CPUs, entered through PVH.
func TestQEMUPVHSVM(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	inv := boot(t, cfg, qemuDeadline)
	expectBootedVia(t, inv, "pvh")
	expectField(t, inv, "cpu", "online", "2")
	expectField(t, inv, "svm", "npt", "yes")
}

// (b) UEFI: OVMF loads the image from the FAT disk as BOOTX64.EFI.
func TestQEMUUEFI(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.UEFI = prepared(t).UEFI
	inv := boot(t, cfg, ovmfDeadline)
	expectBootedVia(t, inv, "uefi")
}

// (c) An Intel VT-d unit reported in the ACPI DMAR table.
func TestQEMUIntelIOMMU(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	cfg.IOMMU = emulator.IOMMUIntel
	inv := boot(t, cfg, qemuDeadline)
	expectField(t, inv, "iommu", "kind", "vt-d")
	expectAtLeast(t, inv, "iommu", "units", 1)
}

// (d) An AMD-Vi unit reported in the ACPI IVRS table.
func TestQEMUAMDIOMMU(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := qemuTCG()
	cfg.Kernel = prepared(t).Kernel
	cfg.IOMMU = emulator.IOMMUAMD
	inv := boot(t, cfg, qemuDeadline)
	expectField(t, inv, "iommu", "kind", "amd-vi")
	expectAtLeast(t, inv, "iommu", "units", 1)
}

// (e) Intel VT-x with EPT and unrestricted guest under Bochs, loaded by
// GRUB through Multiboot2 from the ISO.
func TestBochsMultiboot2VMX(t *testing.T) {
	skipShort(t)
	t.Parallel()
	cfg := emulator.Config{Emulator: emulator.Bochs, CPU: emulator.BochsCPU, ISO: prepared(t).ISO}
	inv := boot(t, cfg, bochsDeadline)
	expectBootedVia(t, inv, "multiboot2")
	expectField(t, inv, "vmx", "ept", "yes")
	expectField(t, inv, "vmx", "unrestricted-guest", "yes")
}

// TestFreshness checks the staleness rule that decides whether the tests
// rebuild the images: an artifact older than a source file is stale.
func TestFreshness(t *testing.T) {
	root := t.TempDir()
	a := artifactsIn(filepath.Join(root, "build"))
	write := func(p string, mtime time.Time) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	write(filepath.Join(root, "boot/main.go"), now.Add(-time.Hour))
	write(filepath.Join(root, "boot/main_test.go"), now) // tests do not go into the image
	write(filepath.Join(root, "qemu-test/x.go"), now)    // nor do these tests
	write(filepath.Join(root, "build/notes.go"), now)    // nor the build output
	write(filepath.Join(root, "docs/README.md"), now)    // nor documents
	write(filepath.Join(root, ".git/objects/x.go"), now) // nor git's files
	write(filepath.Join(root, "tools/grub.cfg"), now.Add(-time.Hour))
	if ok, _ := fresh(root, a); ok {
		t.Fatal("missing artifacts counted as fresh")
	}
	for _, p := range []string{a.Kernel, a.ISO, a.UEFI} {
		write(p, now.Add(-time.Minute))
	}
	if ok, why := fresh(root, a); ok || !strings.Contains(why, "testkernel.elf missing") {
		t.Fatalf("artifacts without the guests they embed counted as fresh (%v, %q)", ok, why)
	}
	for _, g := range embeddedGuests {
		write(filepath.Join(root, "build", g), now.Add(-2*time.Minute))
	}
	if ok, why := fresh(root, a); !ok {
		t.Fatalf("fresh artifacts counted as stale: %s", why)
	}
	write(filepath.Join(root, "build", "guest", "vmlinuz"), now)
	if ok, why := fresh(root, a); ok || !strings.Contains(why, "guest/vmlinuz is newer") {
		t.Fatalf("a guest kernel newer than the image left it fresh (%v, %q)", ok, why)
	}
	write(filepath.Join(root, "build", "guest", "vmlinuz"), now.Add(-2*time.Minute))
	write(filepath.Join(root, "runtime/pc/entry_amd64.s"), now)
	if ok, why := fresh(root, a); ok || !strings.Contains(why, "entry_amd64.s") {
		t.Fatalf("an edited source left the artifacts fresh (%v, %q)", ok, why)
	}
}
