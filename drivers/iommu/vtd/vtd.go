// Package vtd drives Intel VT-d DMA remapping units (Intel Virtualization
// Technology for Directed I/O, Architecture Specification rev 3.x/4.x;
// section numbers below are that spec's) behind the hypervisor's
// iommu.Unit interface.
//
// One Unit is one DRHD of the ACPI DMAR table. It works in legacy mode
// (root table of 256 entries, one per bus, each pointing to a context
// table of 256 entries, one per device and function: 9.1, 9.3) with
// second-level translation only (context-entry TT = 00b: untranslated
// requests are translated, ATS translation requests are blocked) through
// 4-level, 48-bit tables that package ept builds in ept.VTdFormat.
//
// States of a device the unit covers:
//   - blocking: its context entry is not present, so its DMA faults with
//     reason 2 ("context entry not present") and reaches no memory. Enable
//     puts every covered device there; Detach puts one back.
//   - attached: its context entry points at a domain's tables and carries
//     the domain's id.
//
// Every change of a context entry is followed by a device-selective
// context-cache invalidation and a domain-selective IOTLB invalidation, in
// that order (6.5.3.3), and the driver waits for both: through the
// invalidation queue (6.5.2, an invalidation wait descriptor that writes a
// status word) when the unit has one, else through the context command and
// IOTLB registers (6.5.1). All polling is bounded (Options.PollLimit) and a
// stuck unit yields an error naming the register and bits it waited for.
//
// GCMD_REG is written one command at a time, as 11.4 requires: the
// persistent enables are read back from GSTS_REG, the one-shot status bits
// are dropped, and exactly one bit is changed per write.
//
// Caching mode (CAP_REG.CM = 1, as emulated units such as QEMU's with
// caching-mode=on report): the unit may cache not-present entries, tagged
// with domain-id 0 (6.1), so making a context entry present is invalidated
// with domain-id 0, and TableConfig asks package ept to report new
// mappings too (ept.Config.InvalidateNewMappings). Required write-buffer
// flushing (CAP_REG.RWBF) is honoured before every invalidation.
//
// Coherency: a unit whose table walks do not snoop the processor caches
// (ECAP_REG.C = 0) needs every table write flushed to memory (CLFLUSH).
// Such a unit is refused unless Options.FlushCache is given; the driver
// then flushes its own root, context and interrupt tables and queue, and
// TableMemory wraps the ept.Memory a domain's tables are written through.
// QEMU's intel-iommu reports C = 0 although it reads guest memory
// directly: there a no-op FlushCache is correct, on hardware it must
// write back the lines.
//
// Faults are polled, never signalled: Enable masks the fault event
// interrupt (FECTL_REG.IM) and DrainFaults reads, decodes (Appendix A
// reason codes) and clears the primary fault recording registers, and
// reports an overflow (FSTS_REG.PFO) as one fault saying records were
// lost.
//
// Interrupt remapping (chapter 5) is optional (Options.InterruptRemapping)
// and off by default. When asked for, and the unit has it, Enable installs
// a 256-entry remapping table with every entry not present and sets
// GCMD_REG.CFI before IRE, so that compatibility-format interrupts (the
// host's IOAPIC messages and MSIs, which this hypervisor programs in that
// format) still pass untranslated, while remappable-format requests,
// which only a device or a guest could produce, are blocked and recorded
// as faults. The LAPIC timer is local to the processor and never passes a
// remapping unit. SetInterruptEntry programs single entries for later use.
// CFI is honoured only with IRTA_REG.EIME = 0 (xAPIC-format destinations),
// which the driver uses; blocking compatibility-format interrupts as well
// (CFI = 0) needs every host MSI and IOAPIC entry moved to remappable
// format first, which is not done here.
//
// Units that only walk 3-level (39-bit) tables are refused
// (ErrNo4LevelTables): package ept builds 4-level tables only. QEMU 7.2's
// intel-iommu defaults to aw-bits=39 and must be given aw-bits=48.
//
// Methods are not safe for concurrent use. After New, nothing allocates
// on the Go heap except the errors returned.
package vtd

import (
	"errors"
	"fmt"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/iommu"
	"tamavisor/ept"
)

// DefaultPollLimit bounds every wait on the unit: register reads (about
// 1 us each on hardware, so about a second in all) before a timeout error.
const DefaultPollLimit = 1 << 20

// Options are what New needs besides the DRHD.
type Options struct {
	// HostAddressWidth is the DMAR's host address width in bits
	// (acpi.DMAR.HostAddressWidth): the unit reaches no memory at or
	// above 2^HostAddressWidth, so its tables and the pages they map
	// must lie below. Required, 32..52.
	HostAddressWidth int
	// FlushCache writes the processor cache lines covering
	// [addr, addr+size) back to memory (CLFLUSH and a fence). Required
	// when the unit's table walks are not coherent (ECAP_REG.C = 0).
	FlushCache func(addr, size uint64)
	// BridgeBuses gives a PCI-to-PCI bridge's secondary and subordinate
	// bus numbers (PCI-to-PCI Bridge Architecture Specification 3.2.5.3
	// and 3.2.5.4: configuration offsets 19h and 1Ah). Device scopes
	// with paths through bridges, and sub-hierarchy scopes, need it
	// (VT-d 8.3.1); without it New refuses such scopes.
	BridgeBuses func(segment uint16, bus, dev, fn uint8) (secondary, subordinate uint8, err error)
	// InterruptRemapping turns on interrupt remapping, where the unit has
	// it, with an empty table and compatibility-format interrupts passed
	// through (see the package comment).
	InterruptRemapping bool
	// PageSizes restricts the large pages TableConfig allows; zero means
	// all the unit supports.
	PageSizes ept.PageSizes
	// PollLimit bounds each wait; zero means DefaultPollLimit.
	PollLimit int
}

// Unit is one VT-d remapping unit. It implements iommu.Unit.
type Unit struct {
	mmio    hw.MMIO
	mem     ept.Memory
	base    uint64
	size    uint64
	name    string
	segment uint16
	caps    Capabilities
	haw     uint
	cfg     ept.Config
	flush   func(addr, size uint64)
	poll    int
	wantIR  bool

	root    uint64
	context [rootEntries]uint64 // context table of each bus, 0 where the root entry is not present

	queue  uint64 // invalidation queue, 0 without ECAP_REG.QI
	status uint64 // status word the invalidation wait descriptor writes
	tail   uint64 // next free queue slot
	seq    uint32 // status data of the last wait descriptor
	irt    uint64 // interrupt remapping table, 0 when not used

	// Devices the DRHD's scopes name. An INCLUDE_PCI_ALL unit covers
	// the rest of its segment, less what other units claim (excluded).
	claims     []claim
	includeAll bool
	excluded   []claim

	enabled bool // Enable has run: tables live, invalidation interface up
	qiOn    bool
	irOn    bool
}

var _ iommu.Unit = (*Unit)(nil)

// New reads the unit's capabilities, checks that the driver can use it,
// resolves its device scopes and allocates its root and context tables,
// invalidation queue and (with Options.InterruptRemapping) interrupt
// remapping table. It changes nothing on the unit: Enable does.
//
// mmio reaches the unit's registers; mem is physical memory, through
// which the driver writes its tables; pages gives the memory for them,
// which must lie below 2^Options.HostAddressWidth.
func New(mmio hw.MMIO, mem ept.Memory, pages iommu.PageAllocator, drhd acpi.DRHD, opts Options) (*Unit, error) {
	if mmio == nil || mem == nil || pages == nil {
		return nil, errors.New("vtd: nil MMIO, Memory or PageAllocator")
	}
	base := drhd.RegisterBase
	name := fmt.Sprintf("vt-d unit at %#x", base)
	if base == 0 || base%pageSize != 0 {
		return nil, fmt.Errorf("%s: register base is not a 4 KiB-aligned, non-zero address", name)
	}
	if opts.HostAddressWidth < minHostAddrBits || opts.HostAddressWidth > ept.MaxOutputAddrBits {
		return nil, fmt.Errorf("%s: host address width of %d bits is outside %d..%d (give the DMAR's HAW in Options)", name, opts.HostAddressWidth, minHostAddrBits, ept.MaxOutputAddrBits)
	}
	u := &Unit{
		mmio: mmio, mem: mem, base: base, name: name, segment: drhd.Segment,
		size:       minRegisterSet << (drhd.Size & 0xf),
		haw:        uint(opts.HostAddressWidth),
		flush:      opts.FlushCache,
		poll:       opts.PollLimit,
		includeAll: drhd.IncludePCIAll(),
	}
	if u.poll <= 0 {
		u.poll = DefaultPollLimit
	}
	ver := mmio.Read32(base + regVER)
	capReg, ecapReg := mmio.Read64(base+regCAP), mmio.Read64(base+regECAP)
	if ver == ^uint32(0) && capReg == ^uint64(0) {
		return nil, fmt.Errorf("%s: registers read all ones: no unit answers there", name)
	}
	caps, err := ParseCapabilities(ver, capReg, ecapReg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	u.caps = caps
	if end := caps.FaultRecordOffset + uint64(caps.FaultRecords)*faultRecordSize; end > u.size {
		return nil, fmt.Errorf("%s: %d fault recording registers at %#x end beyond the %#x-byte register set", name, caps.FaultRecords, caps.FaultRecordOffset, u.size)
	}
	if caps.IOTLBOffset+16 > u.size {
		return nil, fmt.Errorf("%s: IOTLB registers at %#x lie beyond the %#x-byte register set", name, caps.IOTLBOffset, u.size)
	}
	if !caps.Coherent {
		if u.flush == nil {
			return nil, fmt.Errorf("%s: table walks do not snoop processor caches (ECAP_REG.C = 0): Options.FlushCache is required", name)
		}
	} else {
		u.flush = nil
	}
	if u.claims, err = resolveScopes(drhd, opts.BridgeBuses); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	u.wantIR = opts.InterruptRemapping && caps.InterruptRemapping

	sizes := caps.LargePages
	if opts.PageSizes != 0 {
		sizes &= opts.PageSizes
	}
	in := caps.MaxGuestAddrBits
	if in > agaw48 {
		in = agaw48
	}
	u.cfg = ept.Config{
		Format:         ept.VTdFormat{Snoop: caps.SnoopControl},
		InputAddrBits:  in,
		OutputAddrBits: u.haw,
		PageSizes:      sizes | ept.Pages4K,
		// Not-present entries may be cached (CM), or new entries sit in
		// a write buffer (RWBF): both must hear of new mappings.
		InvalidateNewMappings: caps.CachingMode || caps.RequiresWBF,
	}
	if err := u.allocate(pages); err != nil {
		return nil, err
	}
	return u, nil
}

// allocate takes the unit's memory: the root table, a context table per
// bus the unit covers, the invalidation queue and its status word, and the
// interrupt remapping table.
func (u *Unit) allocate(pages iommu.PageAllocator) error {
	var err error
	if u.root, err = u.alloc(pages, pageSize, pageSize, "root table"); err != nil {
		return err
	}
	var buses [rootEntries]bool
	n := 0
	for b := range buses {
		if u.includeAll || u.claimsBus(uint8(b)) {
			buses[b] = true
			n++
		}
	}
	if n > 0 {
		ctx, err := u.alloc(pages, uint64(n)*pageSize, pageSize, "context tables")
		if err != nil {
			return err
		}
		for b := range buses {
			if buses[b] {
				u.context[b] = ctx
				ctx += pageSize
			}
		}
	}
	if u.caps.QueuedInvalidation {
		if u.queue, err = u.alloc(pages, pageSize<<iqaQS, pageSize, "invalidation queue"); err != nil {
			return err
		}
		if u.status, err = u.alloc(pages, 64, 64, "invalidation status word"); err != nil {
			return err
		}
	}
	if u.wantIR {
		if u.irt, err = u.alloc(pages, irtEntries*irteSize, pageSize, "interrupt remapping table"); err != nil {
			return err
		}
	}
	return nil
}

func (u *Unit) alloc(pages iommu.PageAllocator, size, align uint64, what string) (uint64, error) {
	p, err := pages.Alloc(size, align)
	if err != nil {
		return 0, fmt.Errorf("%s: allocating the %s: %w", u.name, what, err)
	}
	switch {
	case p == 0 || p%align != 0:
		return 0, fmt.Errorf("%s: allocator gave the %s at %#x, not %#x-aligned and non-zero", u.name, what, p, align)
	case p+size < p || p+size > uint64(1)<<u.haw:
		return 0, fmt.Errorf("%s: allocator gave the %s at %#x, beyond the %d-bit host address width", u.name, what, p, u.haw)
	}
	return p, nil
}

// String names the unit for the console.
func (u *Unit) String() string { return u.name }

// Capabilities are the unit's decoded capability registers.
func (u *Unit) Capabilities() Capabilities { return u.caps }

// Segment is the PCI segment the unit serves.
func (u *Unit) Segment() uint16 { return u.segment }

// TableConfig is the configuration a domain's tables must be built with
// to be attached to this unit: VT-d format (SNP in leaves when the unit
// honours snoop control), 4 levels, input addresses below the unit's
// maximum guest address width (at most 48 bits), tables and pages below
// the host address width, the large pages CAP_REG.SLLPS allows. The
// caller sets OnInvalidate to call Invalidate on every unit the domain is
// attached to, and writes the tables through TableMemory.
func (u *Unit) TableConfig() ept.Config { return u.cfg }

// TableMemory is the memory a domain's tables for this unit are written
// through: mem itself on a coherent unit, else mem with each write
// flushed from the processor caches.
func (u *Unit) TableMemory(mem ept.Memory) ept.Memory {
	if u.flush == nil {
		return mem
	}
	return flushingMemory{mem, u.flush}
}

type flushingMemory struct {
	ept.Memory
	flush func(addr, size uint64)
}

func (m flushingMemory) Write64(addr, v uint64) {
	m.Memory.Write64(addr, v)
	m.flush(addr, 8)
}

// InterruptRemapping reports whether Enable turned interrupt remapping on.
func (u *Unit) InterruptRemapping() bool { return u.irOn }

// Register access.

func (u *Unit) r32(off uint64) uint32    { return u.mmio.Read32(u.base + off) }
func (u *Unit) r64(off uint64) uint64    { return u.mmio.Read64(u.base + off) }
func (u *Unit) w32(off uint64, v uint32) { u.mmio.Write32(u.base+off, v) }
func (u *Unit) w64(off uint64, v uint64) { u.mmio.Write64(u.base+off, v) }
func (u *Unit) flushed(addr, size uint64) {
	if u.flush != nil {
		u.flush(addr, size)
	}
}

// clearPage zeroes a table page and makes it visible to the unit.
func (u *Unit) clearPage(p uint64) {
	for off := uint64(0); off < pageSize; off += 8 {
		u.mem.Write64(p+off, 0)
	}
	u.flushed(p, pageSize)
}

// setCommand turns one persistent GCMD_REG enable on or off and waits for
// GSTS_REG to follow.
func (u *Unit) setCommand(bit uint32, on bool, what string) error {
	sts := u.r32(regGSTS)
	if (sts&bit != 0) == on {
		return nil
	}
	cmd := sts & gPersistent
	if on {
		cmd |= bit
	} else {
		cmd &^= bit
	}
	u.w32(regGCMD, cmd)
	return u.waitStatus(bit, on, what)
}

// oneShot issues a one-shot GCMD_REG command and waits for its status bit
// to reach done.
func (u *Unit) oneShot(bit uint32, done bool, what string) error {
	u.w32(regGCMD, u.r32(regGSTS)&gPersistent|bit)
	return u.waitStatus(bit, done, what)
}

func (u *Unit) waitStatus(bit uint32, want bool, what string) error {
	var sts uint32
	for i := 0; i < u.poll; i++ {
		if sts = u.r32(regGSTS); (sts&bit != 0) == want {
			return nil
		}
	}
	state := "clear"
	if want {
		state = "set"
	}
	return fmt.Errorf("%s: %s: GSTS_REG bit %#x not %s after %d polls (GSTS_REG %#x)", u.name, what, bit, state, u.poll, sts)
}

// flushWriteBuffer drains the chipset's write buffers so the unit sees
// table updates, on units that need it (CAP_REG.RWBF, 6.8).
func (u *Unit) flushWriteBuffer() error {
	if !u.caps.RequiresWBF {
		return nil
	}
	return u.oneShot(gWBF, false, "write buffer flush")
}

// Enable builds the tables with every covered device blocked, points the
// unit at them, starts the invalidation queue, masks the fault interrupt,
// optionally turns interrupt remapping on, and turns translation on. A
// unit the firmware left translating keeps translating throughout: the
// new (blocking) root table replaces the old one before anything else.
func (u *Unit) Enable() error {
	u.enabled = false
	// Blocking tables: every covered bus has a present root entry and a
	// context table with no present entry.
	u.clearPage(u.root)
	for b, ctx := range u.context {
		if ctx == 0 {
			continue
		}
		u.clearPage(ctx)
		e := u.root + uint64(b)*rootEntrySize
		u.mem.Write64(e+8, 0)
		u.mem.Write64(e, ctx|rootPresent)
	}
	u.flushed(u.root, pageSize)

	// What the firmware may have left running: the queue's registers can
	// be reprogrammed only with QI off, the remapping table only with IR
	// off (a firmware table may lie in memory handed to guests).
	sts := u.r32(regGSTS)
	if sts&gQIE != 0 {
		if err := u.stopQueue(); err != nil {
			return err
		}
	}
	if sts&gIRE != 0 {
		if err := u.setCommand(gIRE, false, "disabling interrupt remapping left on by firmware"); err != nil {
			return err
		}
	}
	u.qiOn, u.irOn = false, false

	if err := u.flushWriteBuffer(); err != nil {
		return err
	}
	u.w64(regRTADDR, u.root|rtaddrLegacy)
	if err := u.oneShot(gSRTP, true, "setting the root table pointer"); err != nil {
		return err
	}
	if u.queue != 0 {
		if err := u.startQueue(); err != nil {
			return err
		}
	}
	// After SRTP, a global context-cache then a global IOTLB
	// invalidation (6.6, GCMD_REG.SRTP).
	if err := u.invalidateContext(granGlobal, 0, 0); err != nil {
		return err
	}
	if err := u.invalidateIOTLB(granGlobal, 0); err != nil {
		return err
	}
	if err := u.sync(); err != nil {
		return err
	}

	// Faults are polled (DrainFaults): no fault event interrupt.
	u.w32(regFECTL, fectlIM)

	if u.wantIR {
		if err := u.enableInterruptRemapping(); err != nil {
			return err
		}
	}
	if err := u.setCommand(gTE, true, "enabling translation"); err != nil {
		return err
	}
	if err := u.disableProtectedRanges(); err != nil {
		return err
	}
	u.enabled = true
	return nil
}

// disableProtectedRanges turns off the protected memory regions firmware
// may have used to guard memory from DMA during boot (11.4, PMEN_REG):
// with translation on they only get in the way of attached devices.
func (u *Unit) disableProtectedRanges() error {
	if !u.caps.ProtectedLowMemory && !u.caps.ProtectedHighMemory {
		return nil
	}
	if u.r32(regPMEN)&pmenEPM == 0 {
		return nil
	}
	u.w32(regPMEN, 0)
	for i := 0; i < u.poll; i++ {
		if u.r32(regPMEN)&pmenPRS == 0 {
			return nil
		}
	}
	return fmt.Errorf("%s: protected memory regions still enabled (PMEN_REG.PRS) after %d polls", u.name, u.poll)
}

// Disable turns translation off: DMA from every device then reaches
// memory unchecked. The tables stay as they are; Enable rebuilds them.
func (u *Unit) Disable() error {
	return u.setCommand(gTE, false, "disabling translation")
}

func (u *Unit) ready() error {
	if !u.enabled {
		return fmt.Errorf("%s: not enabled", u.name)
	}
	return nil
}

func (u *Unit) checkDomainID(id uint16) error {
	if id == 0 {
		return fmt.Errorf("%s: domain-id 0 is reserved for the blocking state", u.name)
	}
	if u.caps.DomainIDBits < 16 && id>>u.caps.DomainIDBits != 0 {
		return fmt.Errorf("%s: domain-id %d is beyond the unit's %d domains", u.name, id, u.caps.DomainIDs())
	}
	return nil
}

// contextSlot is the address of src's context entry.
func (u *Unit) contextSlot(src iommu.Source) (uint64, error) {
	if !u.Covers(src) {
		return 0, fmt.Errorf("%s: does not cover %v", u.name, src)
	}
	if src.Device > 31 || src.Function > 7 {
		return 0, fmt.Errorf("%s: %v is not a PCI function", u.name, src)
	}
	ctx := u.context[src.Bus]
	if ctx == 0 {
		return 0, fmt.Errorf("%s: no context table for bus %#x of %v", u.name, src.Bus, src)
	}
	return ctx + uint64(src.RequesterID()&0xff)*contextEntrySize, nil
}

// Attach makes src translate through d's tables, tagged with d.ID. A
// domain with nil Tables blocks: Attach then detaches.
func (u *Unit) Attach(src iommu.Source, d *iommu.Domain) error {
	if err := u.ready(); err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("%s: attach %v: nil domain", u.name, src)
	}
	if d.Tables == nil {
		return u.Detach(src)
	}
	if err := u.checkDomainID(d.ID); err != nil {
		return err
	}
	f, ok := d.Tables.Format().(ept.VTdFormat)
	if !ok {
		return fmt.Errorf("%s: attach %v: domain %d has %v tables, not VT-d", u.name, src, d.ID, d.Tables.Format())
	}
	if f.Snoop && !u.caps.SnoopControl {
		return fmt.Errorf("%s: attach %v: domain %d's tables set SNP, which the unit does not support (ECAP_REG.SC = 0)", u.name, src, d.ID)
	}
	root := d.Tables.Root()
	if root == 0 || root%pageSize != 0 || root>>u.haw != 0 {
		return fmt.Errorf("%s: attach %v: domain %d's root table %#x is not a 4 KiB page below the host address width", u.name, src, d.ID, root)
	}
	slot, err := u.contextSlot(src)
	if err != nil {
		return err
	}
	lo, hi := contextEntry(root, d.ID)
	oldLo, oldHi := u.mem.Read64(slot), u.mem.Read64(slot+8)
	if oldLo == lo && oldHi == hi {
		return nil
	}
	if oldLo&contextPresent != 0 {
		// A 128-bit entry cannot be replaced atomically: through not
		// present, with the old translations flushed.
		if err := u.Detach(src); err != nil {
			return err
		}
	}
	u.mem.Write64(slot+8, hi)
	u.mem.Write64(slot, lo)
	u.flushed(slot, contextEntrySize)
	if err := u.flushWriteBuffer(); err != nil {
		return err
	}
	// Not present to present: only a caching-mode unit may hold the old
	// entry, under domain-id 0 (6.1).
	did := d.ID
	if u.caps.CachingMode {
		did = 0
	}
	if err := u.invalidateContext(granDevice, did, src.RequesterID()); err != nil {
		return fmt.Errorf("attach %v: %w", src, err)
	}
	if err := u.invalidateIOTLB(granDomain, d.ID); err != nil {
		return fmt.Errorf("attach %v: %w", src, err)
	}
	if err := u.sync(); err != nil {
		return fmt.Errorf("attach %v: %w", src, err)
	}
	return nil
}

// Detach puts src back in the blocking state and waits until the unit
// holds no cached translation for it.
func (u *Unit) Detach(src iommu.Source) error {
	if err := u.ready(); err != nil {
		return err
	}
	slot, err := u.contextSlot(src)
	if err != nil {
		return err
	}
	lo, hi := u.mem.Read64(slot), u.mem.Read64(slot+8)
	if lo&contextPresent == 0 {
		return nil
	}
	did := contextDomain(hi)
	u.mem.Write64(slot, 0)
	u.flushed(slot, contextEntrySize)
	if err := u.flushWriteBuffer(); err != nil {
		return err
	}
	if err := u.invalidateContext(granDevice, did, src.RequesterID()); err != nil {
		return fmt.Errorf("detach %v: %w", src, err)
	}
	if err := u.invalidateIOTLB(granDomain, did); err != nil {
		return fmt.Errorf("detach %v: %w", src, err)
	}
	if err := u.sync(); err != nil {
		return fmt.Errorf("detach %v: %w", src, err)
	}
	u.mem.Write64(slot+8, 0)
	u.flushed(slot, contextEntrySize)
	return nil
}

// Invalidate flushes the unit's cached translations of d (a
// domain-selective IOTLB invalidation) and waits for it.
func (u *Unit) Invalidate(d *iommu.Domain) error {
	if err := u.ready(); err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("%s: invalidate: nil domain", u.name)
	}
	if err := u.checkDomainID(d.ID); err != nil {
		return err
	}
	if err := u.flushWriteBuffer(); err != nil {
		return err
	}
	if err := u.invalidateIOTLB(granDomain, d.ID); err != nil {
		return err
	}
	return u.sync()
}
