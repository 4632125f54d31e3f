package machine

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"tamavisor/drivers/acpi"
	"tamavisor/guests"
	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
)

type clock struct{ now int64 }

func (c *clock) Now() int64 { return c.now }

type ramPhys struct{ r *guests.RAM }

func (p ramPhys) ReadPhys(addr uint64, b []byte) error { return p.r.ReadGuest(addr, b) }

func newMachine(t *testing.T) (*Machine, *bytes.Buffer) {
	t.Helper()
	layout, err := platform.NewLayout(64<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	var console bytes.Buffer
	ram := guests.NewRAM(make([]byte, 64<<20), 0)
	m, err := New(Config{Name: "t", RAM: ram, Layout: layout, Clock: &clock{}, Now: time.Now,
		Cycles: func() uint64 { return 0 }, TSCHz: 1e9, Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	return m, &console
}

func TestGuestSeesItsACPITables(t *testing.T) {
	m, _ := newMachine(t)
	tables, err := acpi.Parse(ramPhys{m.cfg.RAM}, platform.RSDPAddress)
	if err != nil {
		t.Fatalf("the guest's ACPI tables do not parse: %v", err)
	}
	if len(tables.Problems) != 0 || tables.MADT == nil || tables.FADT == nil {
		t.Fatalf("problems %v, MADT %v, FADT %v", tables.Problems, tables.MADT != nil, tables.FADT != nil)
	}
	if p, ok := tables.FADT.PMTimer(); !ok || p.Address != platform.PMTimerPort {
		t.Errorf("FADT PM timer %+v, want port %#x where the model listens", p, platform.PMTimerPort)
	}
}

func TestSerialDebugExitAndPowerOff(t *testing.T) {
	m, console := newMachine(t)
	for _, c := range []byte("hello\n") {
		m.VM.Ports.Write(0x3f8, 1, uint32(c))
	}
	if !strings.Contains(console.String(), "[t] hello") {
		t.Errorf("guest serial output not on the console: %q", console.String())
	}
	m.VM.Ports.Write(0xf4, 1, 3)
	if reason, code, ok := m.VM.StopReason(); !ok || code != 7 {
		t.Errorf("debug exit of 3: stop %q code %d (%v), want QEMU's (3<<1)|1 = 7", reason, code, ok)
	}

	m2, _ := newMachine(t)
	// SLP_TYPa = S5 in bits 12:10, SLP_EN bit 13 (ACPI 6.5, 4.8.3.2.1).
	m2.VM.Ports.Write(platform.PM1aControlPort, 2, uint32(platform.SleepTypeS5)<<10|1<<13)
	if !m2.PoweredOff || m2.VM.State() != guests.Stopped {
		t.Errorf("ACPI S5 did not power the guest off (state %v)", m2.VM.State())
	}
}

func TestLoadTestKernel(t *testing.T) {
	path := "../../build/testkernel.elf"
	image, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("SKIPPED, NOT TESTED: %s is missing (run `make testkernel`): %v", path, err)
	}
	m, _ := newMachine(t)
	res, err := m.Load(image, loader.Options{KernelName: "testkernel.elf"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != loader.FormatMultiboot || res.State.GPR[0] != 0x2badb002 || res.State.Mode != loader.ModeProtected {
		t.Errorf("test kernel loaded as %v, EAX %#x, mode %v", res.Format, res.State.GPR[0], res.State.Mode)
	}
}
