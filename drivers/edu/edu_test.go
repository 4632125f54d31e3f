package edu

import (
	"strings"
	"testing"
	"time"

	"tamavisor/drivers/hw/hwfake"
	"tamavisor/drivers/pci"
)

const bar = 0xfe000000

// fakeEdu models the edu registers over a fake physical memory, running
// a transfer after a number of polls as QEMU's timer does.
type fakeEdu struct {
	*hwfake.Memory
	ram        *hwfake.Memory
	buf        [BufferSize]byte
	pollsLeft  int
	pollsToRun int
	broken     bool
}

func newFake() *fakeEdu {
	f := &fakeEdu{Memory: hwfake.NewMemory(), ram: hwfake.NewMemory(), pollsToRun: 3}
	f.Memory.Write32(bar+regIdentification, 0x010000ed)
	return f
}

func (f *fakeEdu) Write32(a uint64, v uint32) {
	if a == bar+regLiveness && !f.broken {
		v = ^v
	}
	f.Memory.Write32(a, v)
}

func (f *fakeEdu) Write64(a uint64, v uint64) {
	f.Memory.Write64(a, v)
	if a == bar+regDMACommand && v&dmaStart != 0 {
		f.pollsLeft = f.pollsToRun
	}
}

func (f *fakeEdu) Read64(a uint64) uint64 {
	v := f.Memory.Read64(a)
	if a != bar+regDMACommand || v&dmaStart == 0 || f.pollsToRun < 0 {
		return v
	}
	if f.pollsLeft > 0 {
		f.pollsLeft--
		return v
	}
	src, dst := f.Memory.Read64(bar+regDMASource), f.Memory.Read64(bar+regDMADestination)
	n := f.Memory.Read64(bar + regDMACount)
	if v&dmaToRAM != 0 {
		f.ram.Load(dst, f.buf[src-Buffer:src-Buffer+n])
	} else {
		f.ram.ReadPhys(src, f.buf[dst-Buffer:dst-Buffer+n])
	}
	f.Memory.Write64(a, v&^dmaStart)
	return v &^ dmaStart
}

func TestCopiesBothWays(t *testing.T) {
	f := newFake()
	var slept time.Duration
	d, err := New(f, bar, func(t time.Duration) { slept += t })
	if err != nil {
		t.Fatal(err)
	}
	f.ram.Load(0x2000, []byte("pattern"))
	if err := d.CopyFromRAM(0x2000, 7); err != nil {
		t.Fatal(err)
	}
	if err := d.CopyToRAM(0x9000, 7); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 7)
	f.ram.ReadPhys(0x9000, got)
	if string(got) != "pattern" {
		t.Fatalf("RAM at 0x9000 = %q after the round trip", got)
	}
	if slept == 0 {
		t.Error("the driver never waited for the transfer to end")
	}
}

func TestRejectsOtherDevices(t *testing.T) {
	f := newFake()
	f.Memory.Write32(bar, 0x12345678)
	if _, err := New(f, bar, func(time.Duration) {}); err == nil || !strings.Contains(err.Error(), "not an edu") {
		t.Fatalf("err = %v", err)
	}
	f = newFake()
	f.broken = true
	if _, err := New(f, bar, func(time.Duration) {}); err == nil || !strings.Contains(err.Error(), "liveness") {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(f, 0, func(time.Duration) {}); err == nil {
		t.Fatal("an unassigned BAR was accepted")
	}
}

func TestTransferTimesOutAndBounds(t *testing.T) {
	f := newFake()
	f.pollsToRun = -1 // never completes
	d, err := New(f, bar, func(time.Duration) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.CopyToRAM(0x1000, 16); err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("err = %v", err)
	}
	if err := d.CopyToRAM(0x1000, 16); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second transfer while one runs: err = %v", err)
	}
	if err := newDev(t).CopyToRAM(0x1000, MaxTransfer+1); err == nil {
		t.Fatal("an oversized transfer was accepted")
	}
}

func newDev(t *testing.T) *Device {
	d, err := New(newFake(), bar, func(time.Duration) {})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type fakeConfig map[uint16]uint32

func (c fakeConfig) Read32(_, _, _ uint8, off uint16) uint32     { return c[off] }
func (c fakeConfig) Write32(_, _, _ uint8, off uint16, v uint32) { c[off] = v }

func TestFindAndBusMaster(t *testing.T) {
	devs := []pci.Device{{VendorID: 0x8086, DeviceID: 0x29c0}, {Bus: 0, Dev: 3, VendorID: VendorID, DeviceID: DeviceID}}
	d, ok := Find(devs)
	if !ok || d.Dev != 3 {
		t.Fatalf("Find = %+v, %v", d, ok)
	}
	if _, ok := Find(devs[:1]); ok {
		t.Fatal("found an edu device where there is none")
	}
	cs := fakeConfig{pci.OffCommand: 0x00100000}
	EnableBusMaster(cs, d)
	if got := cs[pci.OffCommand]; got != 0x6 {
		t.Fatalf("command/status dword = %#x, want memory+bus master and no write to status", got)
	}
}
