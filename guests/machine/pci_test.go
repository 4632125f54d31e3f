package machine

import (
	"strings"
	"testing"

	"tamavisor/guests/devices/pcihost"
	"tamavisor/guests/platform"
)

// fakeFunction is a PCI function with fixed IDs that records writes.
type fakeFunction struct {
	id     uint32
	writes []uint32
}

func (f *fakeFunction) ReadConfig(off uint16, size uint8) uint32 {
	if off == 0 && size == 4 {
		return f.id
	}
	return 0
}

func (f *fakeFunction) WriteConfig(off uint16, size uint8, v uint32) {
	f.writes = append(f.writes, uint32(off)<<16|v&0xffff)
}

// fakeWindow records the MMIO accesses that reach it.
type fakeWindow struct{ reads, writes []uint64 }

func (w *fakeWindow) ReadMMIO(addr uint64, size uint8) uint64 {
	w.reads = append(w.reads, addr)
	return 0x5a
}

func (w *fakeWindow) WriteMMIO(addr uint64, size uint8, v uint64) { w.writes = append(w.writes, addr) }

// configRead reads a DWORD through configuration mechanism #1, as a guest
// does (PCI 3.0, 3.2.2.3.2).
func configRead(m *Machine, dev, fn uint8, reg uint8) uint32 {
	m.VM.Ports.Write(pcihost.ConfigAddressPort, 4, 1<<31|uint32(dev)<<11|uint32(fn)<<8|uint32(reg))
	return m.VM.Ports.Read(pcihost.ConfigDataPort, 4)
}

func TestAddPCIFunctionIsSeenOnTheRootBus(t *testing.T) {
	m, _ := newMachine(t)
	f := &fakeFunction{id: 0x10d38086} // e1000e's IDs
	if err := m.AddPCIFunction(3, 0, f); err != nil {
		t.Fatal(err)
	}
	if got := configRead(m, 3, 0, 0); got != f.id {
		t.Errorf("00:03.0 IDs read %#x through 0xCF8/0xCFC, want %#x", got, f.id)
	}
	// Through ECAM as well (PCIe 5.0, 7.2.2: device in bits 19:15).
	ecam := m.Layout.ECAM.Start + 3<<15
	if got := m.VM.MMIO.ReadMMIO(ecam, 4); uint32(got) != f.id {
		t.Errorf("00:03.0 IDs read %#x through ECAM at %#x, want %#x", got, ecam, f.id)
	}
	if got := configRead(m, 4, 0, 0); got != 0xffffffff {
		t.Errorf("absent 00:04.0 reads %#x, want all ones", got)
	}
	if err := m.AddPCIFunction(3, 0, &fakeFunction{id: 1}); err == nil {
		t.Error("a second function at 00:03.0 was accepted")
	}
	if err := m.AddPCIFunction(0, 0, &fakeFunction{id: 1}); err == nil {
		t.Error("a function over the host bridge 00:00.0 was accepted")
	}
}

func TestPCIWindowGetsTheAccessesThatExit(t *testing.T) {
	m, _ := newMachine(t)
	w := &fakeWindow{}
	if err := m.RegisterPCIWindow(w); err != nil {
		t.Fatal(err)
	}
	in := platform.PCIMMIOStart + 0x1000
	if v := m.VM.MMIO.ReadMMIO(uint64(in), 4); v != 0x5a {
		t.Errorf("read in the PCI window returned %#x, want the window's 0x5a", v)
	}
	m.VM.MMIO.WriteMMIO(uint64(platform.PCIMMIOEnd-4), 4, 1)
	if len(w.reads) != 1 || w.reads[0] != uint64(in) || len(w.writes) != 1 || w.writes[0] != uint64(platform.PCIMMIOEnd-4) {
		t.Errorf("window saw reads %#x writes %#x", w.reads, w.writes)
	}
	m.VM.MMIO.ReadMMIO(uint64(platform.PCIMMIOEnd), 4)
	if len(w.reads) != 1 {
		t.Errorf("an access past the window (%#x) reached it", platform.PCIMMIOEnd)
	}
	if err := m.RegisterPCIWindow(&fakeWindow{}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("a second window: %v, want an overlap error", err)
	}
}

func TestPCIChangesRefusedOnceRunning(t *testing.T) {
	m, _ := newMachine(t)
	m.VM.Stop("test") // no longer Created
	if err := m.AddPCIFunction(5, 0, &fakeFunction{id: 1}); err == nil {
		t.Error("AddPCIFunction accepted after the VM left the created state")
	}
	if err := m.RegisterPCIWindow(&fakeWindow{}); err == nil {
		t.Error("RegisterPCIWindow accepted after the VM left the created state")
	}
}
