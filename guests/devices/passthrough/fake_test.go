package passthrough

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"tamavisor/drivers/hw/hwfake"
)

// Host layout of the fake device: a NIC in the manner of an e1000e with a
// virtio-style sub-page BAR thrown in.
const (
	hostBus, hostDev, hostFn = 3, 0, 0

	bar0Host = 0xFE00_0000 // 32-bit, 128 KiB registers
	bar0Size = 128 << 10
	bar1Host = 0xFE02_0100 // 32-bit, 256 bytes
	bar1Size = 256
	bar2Port = 0xE000        // I/O, 32 ports
	bar3Host = 0x8_0000_0000 // 64-bit prefetchable, 16 KiB: MSI-X
	bar3Size = 16 << 10

	msixTableOff = 0x0
	msixPBAOff   = 0x2000
	msixEntries  = 5

	capPMOff     = 0x40
	capMSIOff    = 0x50 // 64-bit, per-vector masking: 0x18 bytes
	capVPDOff    = 0x70 // hidden
	capVendorOff = 0x78 // 0x10 bytes
	capMSIXOff   = 0xA0
	capPCIeOff   = 0xC0 // version 2

	windowBase = 0xC000_0000
	windowSize = 0x2000_0000
)

type cfgAccess struct {
	off uint16
	v   uint32
}

// fakeDevice is one PCI function's configuration space with byte-level
// write masks, as hardware decodes it: read-only bits, write-one-to-clear
// bits, BAR address bits below the size hardwired to zero, and a Function
// Level Reset that clears the BARs and enables.
type fakeDevice struct {
	data     [4096]byte
	writable [4096]byte
	w1c      [4096]byte
	writes   []cfgAccess
	flrs     int
	// notReady makes the vendor ID read all ones for that many reads
	// after an FLR.
	notReady  int
	afterFLR  int
	barInitLo [6]uint32
}

func (d *fakeDevice) set32(off uint16, v uint32) { binary.LittleEndian.PutUint32(d.data[off:], v) }
func (d *fakeDevice) get32(off uint16) uint32    { return binary.LittleEndian.Uint32(d.data[off:]) }
func (d *fakeDevice) mask32(m *[4096]byte, off uint16, v uint32) {
	binary.LittleEndian.PutUint32(m[off:], v)
}

func (d *fakeDevice) Read32(bus, dev, fn uint8, off uint16) uint32 {
	if bus != hostBus || dev != hostDev || fn != hostFn || off >= 4096 {
		return 0xFFFFFFFF
	}
	off &^= 3
	if off == 0 && d.afterFLR > 0 {
		d.afterFLR--
		return 0xFFFFFFFF
	}
	return d.get32(off)
}

func (d *fakeDevice) Write32(bus, dev, fn uint8, off uint16, v uint32) {
	if bus != hostBus || dev != hostDev || fn != hostFn || off >= 4096 {
		return
	}
	off &^= 3
	d.writes = append(d.writes, cfgAccess{off, v})
	for i := uint16(0); i < 4; i++ {
		b, o := uint8(v>>(8*i)), off+i
		w := d.writable[o]
		d.data[o] = d.data[o]&^w | b&w
		d.data[o] &^= b & d.w1c[o]
	}
	if off == capPCIeOff+8 && v&devCtlInitiateFLR != 0 {
		d.flr()
	}
}

func (d *fakeDevice) flr() {
	d.flrs++
	d.afterFLR = d.notReady
	for i := range 6 {
		d.set32(uint16(0x10+4*i), d.barInitLo[i])
	}
	d.set32(0x04, d.get32(0x04)&0xFFFF0000)
	d.set32(capMSIOff, d.get32(capMSIOff)&^(1<<16))
	d.set32(capMSIXOff, d.get32(capMSIXOff)&^(3<<30))
	d.set32(capPCIeOff+8, 0)
}

// newFakeDevice builds the device's configuration space.
func newFakeDevice() *fakeDevice {
	d := &fakeDevice{}
	d.set32(0x00, 0x10D38086)                 // 8086:10d3 (82574L)
	d.set32(0x04, 0x0010<<16)                 // status: capability list
	d.mask32(&d.writable, 0x04, 0x0547)       // command bits
	d.mask32(&d.w1c, 0x04, 0xF900<<16)        // status error bits
	d.set32(0x08, 0x02000000)                 // class 02.00.00, revision 0
	d.set32(0x0C, 0x00800000)                 // header type 0, multi-function
	d.set32(0x2C, 0x00008086|0xA01F<<16)      // subsystem
	d.set32(0x34, capPMOff)                   // capability pointer
	d.set32(0x3C, 0x00000100|0x0B|0x1234<<16) // pin INTA, line 11, min_gnt/max_lat
	d.mask32(&d.writable, 0x3C, 0xFF)
	d.mask32(&d.writable, 0x0C, 0xFF)

	bar := func(i int, low, addrMask uint32, host uint32) {
		off := uint16(0x10 + 4*i)
		d.barInitLo[i] = low
		d.set32(off, low|host)
		d.mask32(&d.writable, off, addrMask)
	}
	bar(0, 0x0, ^uint32(bar0Size-1)&^0xF, bar0Host)
	bar(1, 0x0, ^uint32(bar1Size-1)&^0xF, bar1Host)
	bar(2, 0x1, ^uint32(32-1)&0xFFFC, bar2Port)
	bar(3, 0xC, ^uint32(bar3Size-1)&^0xF, uint32(bar3Host&0xFFFFFFFF))
	bar(4, 0, 0xFFFFFFFF, uint32(bar3Host>>32))

	// Power management, version 3, PME from D0/D3hot; PMCSR in D0 with
	// No_Soft_Reset.
	d.set32(capPMOff, capIDPM|capMSIOff<<8|0xC803<<16)
	d.set32(capPMOff+4, 0x0008)
	d.mask32(&d.writable, capPMOff+4, 0x0103)
	// MSI: 64-bit, per-vector masking, 4 vectors capable.
	d.set32(capMSIOff, capIDMSI|capVPDOff<<8|uint32(msiCtl64|msiCtlPerVector|2<<1)<<16)
	d.mask32(&d.writable, capMSIOff, (msiCtlEnable|7<<4)<<16)
	d.mask32(&d.writable, capMSIOff+4, 0xFFFFFFFC)
	d.mask32(&d.writable, capMSIOff+8, 0xFFFFFFFF)
	d.mask32(&d.writable, capMSIOff+0xC, 0xFFFF)
	d.mask32(&d.writable, capMSIOff+0x10, 0xF)
	// VPD (hidden from the guest).
	d.set32(capVPDOff, 0x03|capVendorOff<<8)
	d.mask32(&d.writable, capVPDOff, 0xFFFF0000)
	// Vendor-specific, 16 bytes.
	d.set32(capVendorOff, capIDVendor|capMSIXOff<<8|0x10<<16|0xAB<<24)
	d.set32(capVendorOff+4, 0x11223344)
	d.set32(capVendorOff+8, 0x55667788)
	d.set32(capVendorOff+12, 0x99AABBCC)
	// MSI-X: 5 entries, table and PBA in BAR3.
	d.set32(capMSIXOff, capIDMSIX|capPCIeOff<<8|(msixEntries-1)<<16)
	d.mask32(&d.writable, capMSIXOff, 0xC000<<16)
	d.set32(capMSIXOff+4, msixTableOff|3)
	d.set32(capMSIXOff+8, msixPBAOff|3)
	// PCI Express v2, endpoint; FLR capable; link up.
	d.set32(capPCIeOff, capIDPCIe|0<<8|0x0002<<16)
	d.set32(capPCIeOff+4, devCapFLR|0x1)
	d.set32(capPCIeOff+8, 0x2810) // DevCtl: MPS 256, MRRS 512 (as firmware set)
	d.mask32(&d.writable, capPCIeOff+8, 0xFFFF)
	d.mask32(&d.w1c, capPCIeOff+8, 0x000F<<16)
	d.set32(capPCIeOff+0x0C, 0x00011C11) // link capabilities
	d.set32(capPCIeOff+0x10, 0x10110040) // link control/status
	d.set32(capPCIeOff+0x24, 0x00000810) // DevCap2
	d.set32(capPCIeOff+0x28, 0x00000400) // DevCtl2
	d.mask32(&d.writable, capPCIeOff+0x28, 0xFFFF)
	return d
}

// hostMem is the host's MMIO, logging writes.
type hostMem struct {
	*hwfake.Memory
	writes []memWrite
}

type memWrite struct {
	addr uint64
	size int
	v    uint64
}

func (m *hostMem) Write8(a uint64, v uint8) {
	m.writes = append(m.writes, memWrite{a, 1, uint64(v)})
	m.Memory.Write8(a, v)
}
func (m *hostMem) Write16(a uint64, v uint16) {
	m.writes = append(m.writes, memWrite{a, 2, uint64(v)})
	m.Memory.Write16(a, v)
}
func (m *hostMem) Write32(a uint64, v uint32) {
	m.writes = append(m.writes, memWrite{a, 4, uint64(v)})
	m.Memory.Write32(a, v)
}
func (m *hostMem) Write64(a uint64, v uint64) {
	m.writes = append(m.writes, memWrite{a, 8, v})
	m.Memory.Write64(a, v)
}

type remapCall struct {
	index                        int
	oldGPA, newGPA, size, hostPA uint64
}

type fakeMapper struct {
	calls []remapCall
	fail  bool
}

func (m *fakeMapper) RemapBAR(index int, oldGPA, newGPA, size, hostPA uint64) error {
	m.calls = append(m.calls, remapCall{index, oldGPA, newGPA, size, hostPA})
	if m.fail && newGPA != NoMapping {
		return errors.New("no table pages")
	}
	return nil
}

type fakeVectors struct {
	handlers map[uint8]func()
	freed    []uint8
	n        int
	limit    int // fail after this many allocations, 0 for no limit
	apic     uint32
}

// Allocate hands out 0x40, 0x41, ... on APIC apic.
func (v *fakeVectors) Allocate(h func()) (HostVector, error) {
	if v.n >= 0xBF || (v.limit != 0 && v.n >= v.limit) {
		return HostVector{}, errors.New("out of vectors")
	}
	hv := HostVector{Vector: uint8(0x40 + v.n), APICID: v.apic}
	v.n++
	v.handlers[hv.Vector] = h
	return hv, nil
}

func (v *fakeVectors) Free(hv HostVector) {
	delete(v.handlers, hv.Vector)
	v.freed = append(v.freed, hv.Vector)
}

// fire runs the handler of a host vector, as the host's interrupt
// dispatch would.
func (v *fakeVectors) fire(t *testing.T, vec uint8) {
	t.Helper()
	h, ok := v.handlers[vec]
	if !ok {
		t.Fatalf("no handler on host vector %#x", vec)
	}
	h()
}

type msg struct {
	addr uint64
	data uint32
}

type msiLog struct{ msgs []msg }

func (l *msiLog) DeliverMSI(addr uint64, data uint32) bool {
	l.msgs = append(l.msgs, msg{addr, data})
	return true
}

type rig struct {
	dev    *fakeDevice
	mem    *hostMem
	mapper *fakeMapper
	vecs   *fakeVectors
	msis   *msiLog
	sleeps []time.Duration
	win    *Window
	f      *Function
	// initWrites is how many config writes New made.
	initWrites int
	initMem    int
}

func newRig(t testing.TB, mod func(*Config)) *rig {
	t.Helper()
	r := &rig{
		dev:    newFakeDevice(),
		mem:    &hostMem{Memory: hwfake.NewMemory()},
		mapper: &fakeMapper{},
		vecs:   &fakeVectors{handlers: map[uint8]func(){}, apic: 2},
		msis:   &msiLog{},
	}
	var err error
	if r.win, err = NewWindow(windowBase, windowSize); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Host: r.dev, Bus: hostBus, Dev: hostDev, Fn: hostFn,
		HostMMIO: r.mem, Mapper: r.mapper, Vectors: r.vecs, MSI: r.msis,
		Sleep: func(d time.Duration) { r.sleeps = append(r.sleeps, d) },
	}
	if mod != nil {
		mod(&cfg)
	}
	if r.f, err = r.win.New(cfg); err != nil {
		t.Fatal(err)
	}
	r.initWrites, r.initMem = len(r.dev.writes), len(r.mem.writes)
	return r
}

func (r *rig) rd(off uint16, size uint8) uint32 { return r.f.ReadConfig(off, size) }
func (r *rig) wr(off uint16, size uint8, v uint32) {
	r.f.WriteConfig(off, size, v)
}

// hostWritesSince returns the config writes the device got after New.
func (r *rig) hostWritesSince() []cfgAccess { return r.dev.writes[r.initWrites:] }
