package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// buildDirEnv names the build directory to take the images from instead of
// the repository's build/ (as in qemu-test).
const buildDirEnv = "TAMAVISOR_BUILD"

// guestImages returns the images `make guest` built, or skips the test,
// loudly: the images come from a network download the unit tests do not do.
func guestImages(t *testing.T) Images {
	t.Helper()
	if testing.Short() {
		t.Skip("SKIPPED under -short: this test boots QEMU; make test (test-boot) and make test-guests run it")
	}
	build := os.Getenv(buildDirEnv)
	if build == "" {
		build = filepath.Join("..", "..", "build")
	}
	im, err := Find(build)
	if errors.Is(err, ErrNoImages) {
		t.Skipf("SKIPPED, NOT TESTED: %v — run make guest", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestBootDirect boots Debian's kernel with the u-root initramfs straight
// under QEMU TCG to gosh, without a NIC, asks the kernel its release, its
// modules and the processor, and powers off.
func TestBootDirect(t *testing.T) {
	im := guestImages(t)
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	g, err := Boot(ctx, Options{Kernel: im.Kernel, Initrd: im.Initrd})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	toPrompt, err := g.WaitPrompt(90 * time.Second)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
	t.Logf("QEMU TCG start to the shell prompt: %.2f s", toPrompt.Seconds())
	if !strings.Contains(g.Log(), "Welcome to u-root!") {
		t.Errorf("no u-root banner before the prompt:\n%s", g.Log())
	}

	release, err := g.Command("uname -r", 20*time.Second)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
	release = strings.TrimSpace(release)
	// make guest records which package and release it unpacked.
	if want := recordedRelease(t, filepath.Dir(im.Kernel)); want != "" && release != want {
		t.Errorf("uname -r says %q, the kernel package is release %q", release, want)
	}
	if !strings.HasPrefix(release, "6.1.") || !strings.HasSuffix(release, "-amd64") {
		t.Errorf("uname -r says %q, want Debian's 6.1.*-amd64", release)
	}

	// init loads the initramfs's modules whether or not their devices
	// are there (tools/guestimage: GUEST_MODULES).
	if mods := guestModules(t, g); !slices.Contains(mods, NICDevice) {
		t.Errorf("/proc/modules lists %q, want the %s module init loads at boot", mods, NICDevice)
	}

	cpuinfo, err := g.Command("cat /proc/cpuinfo", 20*time.Second)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
	fields := map[string]string{}
	for _, line := range strings.Split(cpuinfo, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	// TCGCPU is qemu64 (an AMD family 15 model) with SVM added.
	if fields["processor"] != "0" || fields["vendor_id"] != "AuthenticAMD" ||
		!strings.Contains(fields["model name"], "QEMU") ||
		!strings.Contains(" "+fields["flags"]+" ", " svm ") {
		t.Errorf("/proc/cpuinfo does not describe one QEMU TCG processor with SVM:\n%s", cpuinfo)
	}

	if err := g.PowerOff(30 * time.Second); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, g.Log())
	}
}

// TestBootDirectBaseline runs BootDirect as tools/bench calls it.
func TestBootDirectBaseline(t *testing.T) {
	im := guestImages(t)
	toPrompt, log, err := BootDirect(context.Background(), "", im.Kernel, im.Initrd)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, log)
	}
	if toPrompt <= 0 || !strings.Contains(log, "reboot: Power down") {
		t.Fatalf("BootDirect: %v to the prompt, log:\n%s", toPrompt, log)
	}
	t.Logf("BootDirect: %.2f s to the shell prompt", toPrompt.Seconds())
}

// recordedRelease reads the kernel release make guest wrote beside the
// kernel ("package version release"), or "" when there is none.
func recordedRelease(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "kernel.version"))
	if err != nil {
		t.Logf("no kernel.version beside the kernel: not checking uname -r against it")
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		t.Fatalf("kernel.version %q is not \"package version release\"", b)
	}
	return f[2]
}
