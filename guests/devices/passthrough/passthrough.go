// Package passthrough gives a guest a real PCI function: its configuration
// space, presented through the guest's PCI host bridge (package pcihost)
// with the parts that must not reach the device virtualized, its memory
// BARs mapped into the guest-physical PCI window, and its MSI and MSI-X
// interrupts delivered to the guest's virtual local APICs.
//
// # Configuration space (PCI Local Bus Specification 3.0, 6.1-6.2)
//
//   - Vendor, device, revision, class, subsystem IDs, Min_Gnt/Max_Lat and
//     the status register are read from the device. Status
//     write-one-to-clear bits the guest writes reach the device; the
//     capabilities-list bit says whether any capability is visible.
//   - Header type: the device's layout (type 0 only; bridges are refused)
//     without the multi-function bit, since one function is given. BIST
//     reads 0 (not capable), the CardBus CIS pointer and the expansion ROM
//     BAR read 0 (no ROM), Interrupt Pin reads 0 (no INTx: see below).
//     Cache Line Size and Interrupt Line are guest-private registers.
//   - BARs are emulated (a pcihost.ConfigSpace holds them): each memory BAR
//     has the device's size and type (32/64-bit, prefetchable), so sizing
//     (write all ones, read back, restore) behaves as on hardware, and
//     holds the guest-physical address the guest programmed. The device's
//     BAR registers are never written on the guest's behalf. I/O BARs are
//     hidden (read 0, size 0): forwarding ports would need moving port
//     ranges on the VM's port bus; the drivers this is for (e1000e,
//     virtio-net in modern mode) use memory BARs only.
//   - Command register: the guest's value is kept in the emulated space.
//     On the device, memory decode stays on from New to Quiesce (its BARs
//     keep the host firmware's addresses; the guest's memory-decode bit
//     only decides whether the guest mapping exists), I/O decode stays off,
//     INTx disable stays set, parity and SERR# reporting stay off (a
//     guest's SERR# could raise an NMI on the host), and bus master
//     follows the guest (DMA is confined by the IOMMU domain the caller
//     attaches).
//   - Extended configuration space (0x100-0xFFF) reads 0: no extended
//     capabilities, so neither AER, SR-IOV, ATS nor the resizable BAR
//     capability can be touched.
//
// # Capabilities (PCI 3.0, 6.7)
//
// The guest walks the device's capability list at the device's offsets,
// with next pointers relinked over the hidden ones. Visible:
//
//   - Power Management (PCI Bus Power Management Interface 1.2, 3.2):
//     read-only; PME_Support, PME_En and PME_Status read 0 (no wake path).
//     Power-state writes are dropped, so the device stays in D0: leaving
//     D3hot may reset its BARs (No_Soft_Reset clear), which the guest
//     could not repair.
//   - MSI (PCI 3.0, 6.8.1) and MSI-X (6.8.2): emulated, below.
//   - PCI Express (PCIe Base 5.0, 7.5.3): read-only. The device/port type
//     of an endpoint reads as a Root Complex Integrated Endpoint, since it
//     sits on the guest's root bus with no port above it (as QEMU presents
//     devices there); link and slot registers read 0; Function Level
//     Reset capable reads 0 (a guest FLR would reset the BARs).
//   - Vendor-specific (ID 0x09): read-only (virtio finds its register
//     blocks through them).
//
// Hidden: everything else (VPD, whose writes reach an EEPROM; Enhanced
// Allocation, which carries fixed host addresses; Advanced Features, with
// its FLR; PCI-X, HyperTransport, bridge capabilities...).
//
// # Interrupts
//
// The guest's MSI and MSI-X messages (address, data) are kept in the
// emulated capability and table and never reach the device. The device is
// programmed instead with host vectors taken from Config.Vectors, one per
// visible MSI-X entry and one for MSI, aimed at a host local APIC. When a
// host vector fires, the handler registered with it delivers the guest's
// current message for that entry through Config.MSI (lapic.Group's
// DeliverMSI). Mask bits (MSI per-vector masking, MSI-X vector control and
// function mask) and the enable bits are mirrored to the device, so a
// masked entry does not fire and the device's pending bit records it; a
// message that arrives while the guest has it masked is kept pending and
// delivered on unmask. The MSI-X table and PBA pages of their BAR are not
// mapped into the guest: accesses there trap (Window) and are emulated
// (table) or read from the device (PBA, with the pending messages above),
// while other registers on those pages are forwarded to the device.
//
// MSI is offered with one vector (Multiple Message Capable 0); MSI-X with
// at most Config.MaxMSIXVectors entries (the table size the guest reads).
// INTx is not offered: Linux's e1000e falls back from MSI-X to MSI and only
// then to INTx, and virtio-pci from MSI-X to INTx; with Interrupt Pin 0 the
// last fallback finds no interrupt and the driver fails to bind, which is
// visible rather than silent.
//
// # Guest physical placement
//
// New places each memory BAR naturally aligned in the Window (the guest's
// 32-bit PCI MMIO window, which the DSDT's _CRS offers the OS), largest
// first, as firmware would. Whenever the guest's BAR address or memory
// decode bit changes, the function reports it to Config.Mapper
// (RemapBAR), which maps the guest range to the device's BAR in the
// nested page tables (uncached). A BAR is mapped only while memory decode
// is on and it lies wholly inside the window; a BAR smaller than a page
// is never mapped (another device's registers could share its host page):
// all its accesses trap and are forwarded.
//
// # Stopping
//
// Quiesce clears bus master and the MSI/MSI-X enables on the device,
// unmaps the BARs, resets the function (Function Level Reset, PCIe 5.0
// 6.6.2) when it is capable, puts the host firmware's BAR and Device
// Control values back, turns decode off and frees the host vectors. The
// caller then detaches the device from the guest's IOMMU domain.
//
// # Concurrency
//
// Each Function has a lock; the host bridge calls ReadConfig/WriteConfig
// with its own lock held, the Window calls the trapped MMIO paths, and the
// host vector handlers may run on any goroutine. Mapper, MSI sink and
// Vectors calls are made with the function's lock held (and the host
// bridge's, from configuration writes): they must not call back into the
// Function or the host bridge.
package passthrough

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"tamavisor/drivers/hw"
	"tamavisor/drivers/pci"
	"tamavisor/guests/devices/pcihost"
)

// NoMapping stands for "not mapped" in RemapBAR's oldGPA and newGPA.
const NoMapping = ^uint64(0)

// PageSize is the granule of the nested page tables that map BARs.
const PageSize = 4096

// DefaultMaxMSIXVectors bounds the MSI-X table the guest sees when
// Config.MaxMSIXVectors is 0 (e1000e uses 3 entries, virtio-net 2 per queue
// pair plus 1).
const DefaultMaxMSIXVectors = 16

// Mapper maintains the guest's mappings of the device's BARs.
type Mapper interface {
	// RemapBAR moves size bytes of BAR index, at host-physical hostPA,
	// from guest-physical oldGPA to newGPA: unmap the old range (unless
	// oldGPA is NoMapping) and map the new one (unless newGPA is
	// NoMapping) in the guest's nested page tables, uncached, read-write.
	// Ranges are page aligned. A BAR whose MSI-X table or PBA pages are
	// trapped is reported in up to two pieces (before and after them).
	// On error the Function treats the piece as unmapped and never
	// reports oldGPA for it again: the mapper should leave neither range
	// mapped.
	RemapBAR(index int, oldGPA, newGPA, size, hostPA uint64) error
}

// HostVector is an interrupt vector on one host CPU's local APIC.
type HostVector struct {
	Vector uint8 // 0x20-0xFF
	// APICID is the physical APIC ID of the CPU that takes it: below 256,
	// since an MSI without interrupt remapping has an 8-bit destination.
	APICID uint32
}

// Vectors hands out host interrupt vectors.
type Vectors interface {
	// Allocate reserves a vector and arranges for handler to run after
	// each interrupt on it, on any goroutine, without the host bridge's
	// lock held (the handler takes the Function's lock).
	Allocate(handler func()) (HostVector, error)
	// Free releases a vector; its handler is not called afterwards.
	Free(v HostVector)
}

// MSISink delivers an MSI message to the guest's local APICs;
// *lapic.Group is one.
type MSISink interface {
	DeliverMSI(addr uint64, data uint32) bool
}

// Config describes one passed-through function.
type Config struct {
	// Host reaches the device's configuration space (drivers/pci's ECAM
	// or port mechanism), at Segment and Bus:Dev.Fn on the host.
	Host         pci.ConfigSpace
	Segment      uint16
	Bus, Dev, Fn uint8
	// HostMMIO reads and writes host-physical memory: the device's BARs,
	// for the MSI-X table and forwarded accesses on trapped pages.
	HostMMIO hw.MMIO
	Mapper   Mapper
	Vectors  Vectors
	MSI      MSISink
	// MaxMSIXVectors caps the MSI-X table the guest sees; 0 means
	// DefaultMaxMSIXVectors.
	MaxMSIXVectors int
	// Sleep waits; Quiesce uses it around a Function Level Reset.
	Sleep func(time.Duration)
}

type barKind uint8

const (
	barNone barKind = iota
	barMem32
	barMem64
	barIO // hidden from the guest
)

// bar is one host BAR and its guest-side state.
type bar struct {
	kind     barKind
	prefetch bool
	size     uint64
	hostPA   uint64
	hostRaw  uint32 // the register as host firmware left it, for restoring
	// mapped is the guest-physical base the BAR is mapped (or, for a
	// trapped BAR, claimed) at, NoMapping while not.
	mapped uint64
	// [trapStart, trapEnd) is the part of the BAR that is trapped rather
	// than mapped: the pages of the MSI-X table and PBA, or the whole
	// BAR when it is smaller than a page.
	trapStart, trapEnd uint64
}

// Counters count interrupt events of a Function.
type Counters struct {
	Delivered uint64 // messages delivered to the guest
	Pending   uint64 // messages held because the guest had them masked
	Dropped   uint64 // host interrupts while the guest had MSI/MSI-X off
	Refused   uint64 // messages the guest's APICs did not take
}

// Function is a passed-through PCI function; it implements
// pcihost.Function.
type Function struct {
	mu   sync.Mutex
	cfg  Config
	win  *Window
	name string // host address, for messages

	shadow  pcihost.ConfigSpace // guest BARs, command, cache line, interrupt line
	bars    [6]bar
	hostCmd uint16 // what the device's command register holds
	// guestCmdMask are the command bits the guest may set.
	guestCmdMask uint16

	caps     [maxVisibleCaps]capability
	ncaps    int
	firstCap uint8
	owner    [capDwords]uint8 // dword (reg-0x40)/4 -> capability index+1
	pcieOff  uint16           // 0 when the device has no PCIe capability
	pcieLen  uint16
	pcieCap  uint32 // its DevCap register
	devCtl   uint32 // Device Control and Device Control 2 as
	devCtl2  uint32 // host firmware left them

	msi  msiState
	msix msixState

	stopped bool
	count   Counters
	err     error
}

// cfgRead and cfgWrite reach the device's configuration registers.
func (f *Function) cfgRead(off uint16) uint32 {
	return f.cfg.Host.Read32(f.cfg.Bus, f.cfg.Dev, f.cfg.Fn, off)
}

func (f *Function) cfgWrite(off uint16, v uint32) {
	f.cfg.Host.Write32(f.cfg.Bus, f.cfg.Dev, f.cfg.Fn, off, v)
}

func (f *Function) writeHostCommand() {
	// The upper half is the status register: its bits are read-only or
	// write-one-to-clear, so zeros there change nothing (PCI 3.0, 6.2.3).
	f.cfgWrite(pci.OffCommand, uint32(f.hostCmd))
}

// newFunction reads, sizes and takes over the device (see New on Window).
func newFunction(cfg Config, w *Window) (*Function, error) {
	switch {
	case cfg.Host == nil:
		return nil, errors.New("passthrough: Config.Host is nil")
	case cfg.HostMMIO == nil:
		return nil, errors.New("passthrough: Config.HostMMIO is nil")
	case cfg.Mapper == nil:
		return nil, errors.New("passthrough: Config.Mapper is nil")
	case cfg.Vectors == nil:
		return nil, errors.New("passthrough: Config.Vectors is nil")
	case cfg.MSI == nil:
		return nil, errors.New("passthrough: Config.MSI is nil")
	case cfg.Sleep == nil:
		return nil, errors.New("passthrough: Config.Sleep is nil")
	case cfg.Dev > pci.MaxDevice || cfg.Fn > pci.MaxFunction:
		return nil, fmt.Errorf("passthrough: %02x:%02x.%x is not a valid PCI address", cfg.Bus, cfg.Dev, cfg.Fn)
	case cfg.MaxMSIXVectors < 0 || cfg.MaxMSIXVectors > msixMaxEntries:
		return nil, fmt.Errorf("passthrough: MaxMSIXVectors %d out of 0-%d", cfg.MaxMSIXVectors, msixMaxEntries)
	}
	if cfg.MaxMSIXVectors == 0 {
		cfg.MaxMSIXVectors = DefaultMaxMSIXVectors
	}
	f := &Function{cfg: cfg, win: w}
	// A host vector's handler may run as soon as the vector is taken.
	f.mu.Lock()
	defer f.mu.Unlock()
	f.name = fmt.Sprintf("%04x:%02x:%02x.%x", cfg.Segment, cfg.Bus, cfg.Dev, cfg.Fn)
	id := f.cfgRead(pci.OffVendorID)
	if id == 0xFFFFFFFF || id&0xFFFF == 0xFFFF || id == 0 {
		return nil, fmt.Errorf("passthrough: %s: no function there (IDs read %#x)", f.name, id)
	}
	if ht := uint8(f.cfgRead(regCacheLine) >> 16); ht&pci.HeaderTypeMask != pci.HeaderTypeNormal {
		return nil, fmt.Errorf("passthrough: %s: header type %#x is not an endpoint (type 0)", f.name, ht)
	}
	// Stop DMA and decoding while the BARs are sized; INTx stays off
	// for good.
	f.hostCmd = pcihost.CommandINTxDisable
	f.writeHostCommand()
	if err := f.sizeBARs(); err != nil {
		return nil, err
	}
	f.shadow.Init(pcihost.Header{})
	f.guestCmdMask = pcihost.CommandMemory | pcihost.CommandBusMaster | pcihost.CommandParity |
		pcihost.CommandSERR | pcihost.CommandINTxDisable
	f.shadow.SetWritable(pcihost.OffCommand, 2, uint32(f.guestCmdMask))
	if err := f.placeBARs(); err != nil {
		return nil, err
	}
	f.walkCapabilities()
	f.computeTraps()
	if f.hasMemoryBAR() {
		f.hostCmd |= pcihost.CommandMemory
		f.writeHostCommand()
	}
	if err := f.setupInterrupts(); err != nil {
		f.hostCmd = pcihost.CommandINTxDisable
		f.writeHostCommand()
		return nil, err
	}
	return f, nil
}

func (f *Function) hasMemoryBAR() bool {
	for i := range f.bars {
		if k := f.bars[i].kind; k == barMem32 || k == barMem64 {
			return true
		}
	}
	return false
}

// String names the function by its host address.
func (f *Function) String() string { return f.name }

// Counters returns the interrupt counters.
func (f *Function) Counters() Counters {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Err returns the last error from the Mapper or a device that misbehaved,
// nil if none.
func (f *Function) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// GuestBAR returns the guest-physical address and size of BAR i as the
// guest sees it, and whether the guest sees such a BAR.
func (f *Function) GuestBAR(i int) (addr, size uint64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i > 5 || (f.bars[i].kind != barMem32 && f.bars[i].kind != barMem64) {
		return 0, 0, false
	}
	a, _ := f.shadow.BARAddress(i)
	return a, f.bars[i].size, true
}

func sizeMask(size uint8) uint32 {
	if size >= 4 {
		return ^uint32(0)
	}
	return ^uint32(0) >> (32 - 8*uint32(size))
}

// ReadConfig implements pcihost.Function.
func (f *Function) ReadConfig(off uint16, size uint8) uint32 {
	if off >= pci.LegacyConfigSize {
		return 0 // no extended capabilities (PCIe 5.0, 7.6.2: header 0)
	}
	f.mu.Lock()
	v := f.readDword(off &^ 3)
	f.mu.Unlock()
	return v >> (8 * (off & 3)) & sizeMask(size)
}

// WriteConfig implements pcihost.Function.
func (f *Function) WriteConfig(off uint16, size uint8, v uint32) {
	if off >= pci.LegacyConfigSize || (size != 1 && size != 2 && size != 4) || off%uint16(size) != 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	shift := 8 * uint32(off&3)
	f.writeDword(off&^3, off, size, v&sizeMask(size)<<shift, sizeMask(size)<<shift)
}

// Header registers (PCI 3.0, 6.1 Figure 6-1) by DWORD.
const (
	regID         = 0x00
	regCommand    = 0x04
	regClass      = 0x08
	regCacheLine  = 0x0C
	regBAR0       = 0x10
	regBAR5       = 0x24
	regCardBusCIS = 0x28
	regSubsystem  = 0x2C
	regROM        = 0x30
	regCapPtr     = 0x34
	regInterrupt  = 0x3C
	capAreaStart  = 0x40
	capDwords     = (pci.LegacyConfigSize - capAreaStart) / 4
)

// Status register bits (PCI 3.0, 6.2.3): write-one-to-clear error bits
// (master data parity error, signaled/received target abort, received
// master abort, signaled system error, detected parity error).
const statusWriteOneClear uint16 = 1<<8 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<15

func (f *Function) readDword(reg uint16) uint32 {
	switch {
	case reg == regID || reg == regClass || reg == regSubsystem:
		return f.cfgRead(reg)
	case reg == regCommand:
		st := uint16(f.cfgRead(reg)>>16) &^ pcihost.StatusCapabilities
		if f.ncaps > 0 {
			st |= pcihost.StatusCapabilities
		}
		return uint32(f.shadow.Command()) | uint32(st)<<16
	case reg == regCacheLine:
		ht := uint8(f.cfgRead(reg)>>16) & pci.HeaderTypeMask
		return f.shadow.Get32(reg)&0xFFFF | uint32(ht)<<16
	case reg >= regBAR0 && reg <= regBAR5:
		return f.shadow.Get32(reg)
	case reg == regCapPtr:
		return uint32(f.firstCap)
	case reg == regInterrupt:
		// Interrupt Pin 0; Min_Gnt and Max_Lat from the device.
		return uint32(f.shadow.Get8(pcihost.OffInterruptLine)) | f.cfgRead(reg)&0xFFFF0000
	case reg >= capAreaStart:
		if i := f.owner[(reg-capAreaStart)/4]; i != 0 {
			return f.readCap(&f.caps[i-1], reg)
		}
	}
	return 0 // CardBus CIS, ROM BAR, reserved, hidden capabilities
}

// writeDword applies a guest write of the bytes of val selected by be to
// the DWORD at reg; off and size are the original access.
func (f *Function) writeDword(reg, off uint16, size uint8, val, be uint32) {
	switch {
	case reg == regCommand:
		if be&0xFFFF != 0 {
			old := f.shadow.Command()
			cmd := (old&^uint16(be) | uint16(val)&uint16(be)) & f.guestCmdMask
			f.shadow.Set16(pcihost.OffCommand, cmd)
			f.commandChanged(old, cmd)
		}
		if clear := uint16(val>>16) & uint16(be>>16) & statusWriteOneClear; clear != 0 {
			f.cfgWrite(pci.OffCommand, uint32(f.hostCmd)|uint32(clear)<<16)
		}
	case reg == regCacheLine || reg == regInterrupt:
		f.shadow.WriteConfig(off, size, val>>(8*uint32(off&3)))
	case reg >= regBAR0 && reg <= regBAR5:
		f.shadow.WriteConfig(off, size, val>>(8*uint32(off&3)))
		f.updateMappings()
	case reg >= capAreaStart:
		if i := f.owner[(reg-capAreaStart)/4]; i != 0 {
			f.writeCap(&f.caps[i-1], reg, val, be)
		}
	}
}

// commandChanged applies the guest's command register to the device and
// the mappings: bus master follows the guest, memory decode on the
// device does not (see the package comment).
func (f *Function) commandChanged(old, cmd uint16) {
	if (old^cmd)&pcihost.CommandBusMaster != 0 {
		f.hostCmd = f.hostCmd&^pcihost.CommandBusMaster | cmd&pcihost.CommandBusMaster
		f.writeHostCommand()
	}
	if (old^cmd)&pcihost.CommandMemory != 0 {
		f.updateMappings()
	}
}

// problem records an error for Err.
func (f *Function) problem(err error) {
	f.err = err
}
