// Package amdvi drives one AMD IOMMU (AMD I/O Virtualization Technology
// (IOMMU) Specification, #48882 rev 3.x, cited below by section), as
// described by one IVHD block of the ACPI IVRS, behind the hypervisor's
// iommu.Unit interface.
//
// # Device table
//
// The device table (#48882 2.2.2) always has all 65,536 entries, 2 MiB:
// every requester ID a device can put on the bus finds an entry the driver
// wrote, whether the IVHD lists it or not (a hot-plugged or phantom
// function, a device forging its requester ID). A table sized to the
// IVHD's highest DeviceID would leave the IDs past its end to whatever the
// implementation does with them, for a saving of at most 2 MiB.
//
// # Blocking state
//
// An entry that blocks has V = 1, TV = 1, Mode = 4, a Page Table Root
// Pointer to one shared, all-zero 4 KiB table, IR = IW = 0 and DomainID 0
// (#48882 2.2.2.1, DTE fields). The choice, by elimination:
//
//   - V = 0 makes the unit pass the device's DMA through untranslated: a
//     zeroed device table protects nothing.
//   - V = 1, TV = 0 leaves the translation fields undefined.
//   - Mode = 000b is "translation disabled, access controlled by IR and
//     IW": with IR = IW = 0 that denies every access, and Linux blocks that
//     way, but emulated units differ (QEMU logs no event for it, and the
//     dma-remap mode of recent QEMU switches a Mode 0 device to
//     pass-through).
//   - Mode = 4 with IR = IW = 0 denies every access at the top of the walk
//     (permissions are ANDed from the entry down the walk, #48882 2.2.3),
//     and a unit that ignored the entry's IR and IW would still find no
//     present entry in the empty root. Both make the unit target-abort the
//     access and log an IO_PAGE_FAULT: this is the state used.
//
// A unit whose extended features say host translation is not supported
// (EFR.HATS = 11b, or HATDis in an IVHD 11h/40h) can translate nothing and
// block nothing this way: Enable refuses it.
//
// The other fields of every entry the driver writes are 0, on purpose:
// SysMgt = 00b (DMA to the system management range is target-aborted),
// IoCtl = 00b (device port I/O is target-aborted), EX = 0 (the exclusion
// range does not apply; Enable also clears the exclusion range registers
// firmware may have programmed), I = 0 (no ATS: devices cannot present
// pre-translated addresses), SE = SA = 0 (faults are logged), HAD = 00b (no
// accessed/dirty updates).
//
// # Interrupts
//
// AMD-Vi remaps interrupts per device, through the entry's bits 191:128.
// The driver leaves all of them 0: IV (bit 128) = 0 says the interrupt
// fields are not valid, and the unit forwards the device's interrupt
// requests (MSI writes to 0xFEEx_xxxx, the IOAPIC's and HPET's messages)
// unmodified, so host interrupts keep working with the unit enabled. It
// also means a device can still send any MSI: interrupt remapping is not
// done here.
//
// # Domains, commands and faults
//
// Attach writes an entry with V = 1, TV = 1, Mode = 4, the domain's
// ept.Tables root, IR = IW = 1 (the I/O page tables then grant what each
// mapping allows) and the domain's ID; Detach writes the blocking entry
// back. Between the two 64-bit stores that change an entry's DomainID and
// its translation, the entry blocks. Each change is followed by
// INVALIDATE_DEVTAB_ENTRY, INVALIDATE_IOMMU_PAGES for the domain and a
// COMPLETION_WAIT whose store the driver polls, a bounded number of times
// (#48882 2.4). Enable flushes everything with INVALIDATE_IOMMU_ALL where
// the EFR has IASup, else with INVALIDATE_DEVTAB_ENTRY for all 65,536 IDs.
//
// DrainFaults decodes the event log (#48882 2.5) into iommu.Faults and
// restarts the log after an overflow, reporting the lost records as one
// Fault with Code 0 (no event has code 0).
//
// QEMU before 10.1 (7.2.x included) blocks the access but writes no
// event record, whatever the driver does: its amdvi_log_event
// (hw/i386/amd_iommu.c) tests EventOverflow as amdvi_readq(s,
// AMDVI_MMIO_STATUS) | AMDVI_MMIO_STATUS_EVT_OVF, which is never 0, and
// returns before writing. There DrainFaults finds nothing to report.
// Upstream fixed it in August 2025 (commit c0ef803a8, "hw/i386/amd_iommu:
// Fix event log generation"), together with the faults behind it: the
// Tail Pointer register never moved, and the log counted as full after as
// many bytes as it has entries. Its page-fault records still differ from
// the specification (see qemuPageFault).
//
// The unit's own PCI function is not covered (Covers is false for it):
// its table walks and log writes do not go through its own translation,
// and firmware lists it in the IVHD anyway (QEMU does).
//
// Nothing here is safe for concurrent use; nothing allocates on the Go
// heap after New except the errors it returns.
package amdvi

import (
	"errors"
	"fmt"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/iommu"
	"tamavisor/ept"
)

// DefaultPollLimit bounds each wait on the unit (a completion store, a
// Run bit, room in the command buffer): that many reads of memory or a
// register, well over a second of polling on hardware that answers in
// microseconds.
const DefaultPollLimit = 1 << 22

// Options are what New needs beyond the IVHD.
type Options struct {
	// Info is the IVRS IVinfo field: its EFRSup bit says whether the
	// EFR image in an IVHD 11h/40h may be used, and its PASize bounds
	// the host addresses the unit can reach.
	Info acpi.IVInfo
	// CapabilityHeader is the IOMMU Capability Header from the unit's
	// PCI configuration space (at IVHD.CapabilityOffset), or 0 if the
	// caller did not read it. Its NpCache bit says whether the unit
	// caches not-present entries; unknown is taken as yes.
	CapabilityHeader uint32
	// PollLimit bounds every wait on the hardware; 0 means
	// DefaultPollLimit.
	PollLimit int
}

// Unit is one AMD IOMMU.
type Unit struct {
	mmio  hw.MMIO
	mem   ept.Memory
	base  uint64
	name  string
	efr   uint64
	flags uint8

	segment   uint16
	cover     *coverage
	outBits   uint
	npCache   bool
	translate bool // host translation supported
	pollLimit int

	// Memory from the PageAllocator, physical addresses.
	devTab, cmdBuf, eventLog, emptyRoot, completion uint64

	cmdTail, cmdHead uint64 // byte offsets in the command ring
	seq              uint64 // last COMPLETION_WAIT store value

	enabled bool
	logSet  bool // the event log registers are programmed
}

var _ iommu.Unit = (*Unit)(nil)

// maxPhys is 2^52, the architectural physical address limit: the base
// registers and the DTE hold bits 51:12.
const maxPhys = 1 << 52

// New describes the unit of ivhd and allocates its device table, command
// buffer, event log, completion word and blocking root table. mmio reaches
// its registers, mem (64-bit words of physical memory) its tables. It
// reads the Extended Feature Register and touches nothing else: Enable
// programs the unit.
func New(mmio hw.MMIO, mem ept.Memory, pages iommu.PageAllocator, ivhd *acpi.IVHD, opts Options) (*Unit, error) {
	if mmio == nil || mem == nil || pages == nil || ivhd == nil {
		return nil, errors.New("amdvi: New needs the MMIO, memory, page allocator and IVHD")
	}
	switch ivhd.Type {
	case acpi.IVHDType10, acpi.IVHDType11, acpi.IVHDType40:
	default:
		return nil, fmt.Errorf("amdvi: IVHD type %#x is not 10h, 11h or 40h", ivhd.Type)
	}
	base := ivhd.BaseAddress
	if base == 0 || base%mmioSize != 0 || base >= maxPhys {
		return nil, fmt.Errorf("amdvi: IVHD base address %#x is not a 16 KiB-aligned physical address (#48882 3.2.2)", base)
	}
	u := &Unit{
		mmio:      mmio,
		mem:       mem,
		base:      base,
		name:      fmt.Sprintf("amd-vi unit at %#x", base),
		flags:     ivhd.Flags,
		segment:   ivhd.Segment,
		cover:     buildCoverage(ivhd),
		outBits:   ept.MaxOutputAddrBits,
		npCache:   opts.CapabilityHeader == 0 || opts.CapabilityHeader&capNpCache != 0,
		pollLimit: opts.PollLimit,
	}
	if u.pollLimit <= 0 {
		u.pollLimit = DefaultPollLimit
	}
	if pa := uint(opts.Info.PASize()); pa >= 32 && pa <= ept.MaxOutputAddrBits {
		u.outBits = pa
	}

	// The MMIO EFR is authoritative; an IVHD 11h/40h carries an image of
	// it for early use (#48882 5.2.2.1), taken only when the register
	// reads 0 (units without the register read it as 0).
	u.efr = u.r64(regExtFeatures)
	if u.efr == ^uint64(0) {
		return nil, fmt.Errorf("amdvi: %s: the Extended Feature Register reads all ones: no IOMMU answers at this address", u.name)
	}
	newIVHD := ivhd.Type != acpi.IVHDType10
	if u.efr == 0 && newIVHD && opts.Info.EFRSupported() {
		u.efr = ivhd.EFR
	}
	u.translate = u.efr&efrHATSMask != efrHATSNone && !(newIVHD && ivhd.Features&ivhdAttrHATDis != 0)

	var err error
	if u.devTab, err = alloc(pages, devTabBytes, 4096, "device table"); err != nil {
		return nil, err
	}
	if u.cmdBuf, err = alloc(pages, ringBytes, ringBytes, "command buffer"); err != nil {
		return nil, err
	}
	if u.eventLog, err = alloc(pages, ringBytes, ringBytes, "event log"); err != nil {
		return nil, err
	}
	if u.emptyRoot, err = alloc(pages, ept.TableSize, ept.TableSize, "blocking root table"); err != nil {
		return nil, err
	}
	if u.completion, err = alloc(pages, 8, cwAddrAlign, "completion word"); err != nil {
		return nil, err
	}
	return u, nil
}

func alloc(pages iommu.PageAllocator, size, align uint64, what string) (uint64, error) {
	p, err := pages.Alloc(size, align)
	if err != nil {
		return 0, fmt.Errorf("amdvi: allocating the %s (%d bytes): %w", what, size, err)
	}
	if p == 0 || p%align != 0 || p >= maxPhys || size > maxPhys-p {
		return 0, fmt.Errorf("amdvi: the allocator gave %#x for the %s: want a non-zero, %d-byte-aligned address with %d bytes below 2^52", p, what, align, size)
	}
	return p, nil
}

func (u *Unit) r64(off uint64) uint64    { return u.mmio.Read64(u.base + off) }
func (u *Unit) w64(off uint64, v uint64) { u.mmio.Write64(u.base+off, v) }

func (u *Unit) String() string { return u.name }

// ExtendedFeatures is the Extended Feature Register New read (or the
// IVHD's image of it).
func (u *Unit) ExtendedFeatures() uint64 { return u.efr }

// TableConfig is the 4-level host page-table format (#48882 2.2.3) that
// Attach points the device table at (Mode = 4, 48-bit I/O virtual
// addresses), with 2 MiB and 1 GiB pages, which the format codes as
// leaves with Next Level = 0 at levels 2 and 3. Host addresses are bounded
// by the IVinfo PASize. A unit that may cache not-present entries
// (NpCache) needs new mappings invalidated too. The caller sets
// OnInvalidate to call Invalidate for the domain.
func (u *Unit) TableConfig() ept.Config {
	return ept.Config{
		Format:                ept.AMDViFormat{},
		InputAddrBits:         ept.MaxInputAddrBits,
		OutputAddrBits:        u.outBits,
		PageSizes:             ept.AllPageSizes,
		InvalidateNewMappings: u.npCache,
	}
}

// Covers reports whether the IVHD's device entries name src (#48882
// 5.2.2.2); the unit's own function is never covered.
func (u *Unit) Covers(src iommu.Source) bool {
	return src.Segment == u.segment && u.cover.covers(src.RequesterID())
}

// blockingDTE is the first quadword of an entry in the blocking state
// (see the package comment); its second quadword is 0.
func (u *Unit) blockingDTE() uint64 {
	return dteV | dteTV | dteModeFourLevel | u.emptyRoot
}

func translatingDTE(root uint64) uint64 {
	return dteV | dteTV | dteModeFourLevel | root&dteRootMask | dteIR | dteIW
}

// Enable stops the unit if firmware left it running, writes every device
// table entry in the blocking state, programs the device table, command
// buffer and event log, clears any exclusion range, turns the unit on and
// flushes its caches. Firmware's translations stop at the stop: until
// IommuEn is set again, DMA is not checked. Calling it again starts over:
// every device is blocked again.
func (u *Unit) Enable() error {
	if !u.translate {
		return fmt.Errorf("amdvi: %s: host address translation is not supported (EFR %#x: HATS = 11b, or IVHD HATDis): the unit can neither translate nor block DMA", u.name, u.efr)
	}
	if err := u.stop(); err != nil {
		return err
	}
	u.enabled, u.logSet = false, false

	for i := uint64(0); i < ept.EntriesPerTable; i++ {
		u.mem.Write64(u.emptyRoot+8*i, 0)
	}
	block := u.blockingDTE()
	for id := uint64(0); id < deviceIDs; id++ {
		e := u.devTab + id*dteBytes
		u.mem.Write64(e, block)
		u.mem.Write64(e+8, 0)
		u.mem.Write64(e+16, 0)
		u.mem.Write64(e+24, 0)
	}
	// Zeroed entries let DrainFaults tell a record the unit has not
	// finished writing (event code 0) from a real one.
	for off := uint64(0); off < ringBytes; off += 8 {
		u.mem.Write64(u.eventLog+off, 0)
	}
	u.mem.Write64(u.completion, 0)
	u.seq = 0

	// Status first: QEMU since 10.1 (hw/i386/amd_iommu.c,
	// amdvi_handle_evtbase_write) ignores an Event Log Base write while
	// EventLogInt is set, which a previous owner that used the event
	// interrupt may have left; the unit would go on logging into that
	// owner's memory. Clearing the write-1-to-clear bits with the log
	// stopped is what the restart procedure does anyway (#48882 2.5).
	u.w64(regStatus, statusEventOverflow|statusEventLogInt|statusComWaitInt)
	u.w64(regDevTabBase, u.devTab|devTabSizeField)
	u.w64(regCmdBufBase, u.cmdBuf|ringLenField)
	u.w64(regCmdBufHead, 0)
	u.w64(regCmdBufTail, 0)
	u.cmdHead, u.cmdTail = 0, 0
	u.w64(regEventLogBase, u.eventLog|ringLenField)
	u.w64(regEventLogHead, 0)
	u.w64(regEventLogTail, 0)
	// An exclusion range lets DMA into it bypass translation for
	// devices with EX = 1, or for all with Allow = 1.
	u.w64(regExclBase, 0)
	u.w64(regExclLimit, 0)

	u.w64(regControl, u.controlDefaults()|ctrlCmdBufEn|ctrlEventLogEn|ctrlIommuEn)
	u.enabled, u.logSet = true, true

	if u.efr&efrIASup != 0 {
		if err := u.queue(invalidateAll()); err != nil {
			return err
		}
	} else {
		for id := 0; id < deviceIDs; id++ {
			if err := u.queue(invalidateDevTabEntry(uint16(id))); err != nil {
				return err
			}
		}
	}
	if err := u.sync(); err != nil {
		return fmt.Errorf("%w (flushing the caches after enabling)", err)
	}
	return nil
}

// controlDefaults are the Control bits the IVHD flags ask for (#48882
// 5.2.2.1: HtTunEn, PassPW, ResPassPW, Isoc mirror the IVHD flags), and
// Coherent.
func (u *Unit) controlDefaults() uint64 {
	c := ctrlCoherent
	if u.flags&ivhdFlagHtTunEn != 0 {
		c |= ctrlHtTunEn
	}
	if u.flags&ivhdFlagPassPW != 0 {
		c |= ctrlPassPW
	}
	if u.flags&ivhdFlagResPassPW != 0 {
		c |= ctrlResPassPW
	}
	if u.flags&ivhdFlagIsoc != 0 {
		c |= ctrlIsoc
	}
	return c
}

// stop clears the whole Control register (translation, the command
// buffer, the event log and the PPR and GA logs firmware may have pointed
// into memory the hypervisor now owns) and waits for the command buffer
// and event log to stop, before their registers are reprogrammed.
func (u *Unit) stop() error {
	u.w64(regControl, 0)
	return u.waitStatusClear(statusCmdBufRun|statusEventLogRun, "the command buffer and event log to stop")
}

func (u *Unit) waitStatusClear(bits uint64, what string) error {
	var s uint64
	for i := 0; i < u.pollLimit; i++ {
		if s = u.r64(regStatus); s&bits == 0 {
			return nil
		}
	}
	return fmt.Errorf("amdvi: %s: waited %d polls for %s; status %#x", u.name, u.pollLimit, what, s)
}

// Disable clears IommuEn: DMA then reaches memory unchecked. The event
// log can still be drained; Enable starts over.
func (u *Unit) Disable() error {
	u.w64(regControl, u.r64(regControl)&^ctrlIommuEn)
	u.enabled = false
	return nil
}

// requesters checks that src may be attached or detached and returns the
// requester IDs its DMA carries: its own and, when the IVHD says its
// requests reach the unit under another ID (an alias entry), that one.
func (u *Unit) requesters(src iommu.Source) (rid, alias uint16, aliased bool, err error) {
	if !u.enabled {
		return 0, 0, false, fmt.Errorf("amdvi: %s: not enabled", u.name)
	}
	if !u.Covers(src) {
		return 0, 0, false, fmt.Errorf("amdvi: %s does not cover %s (segment %d)", u.name, src, u.segment)
	}
	rid = src.RequesterID()
	alias, aliased = u.cover.alias(rid)
	return rid, alias, aliased && alias != rid, nil
}

func (u *Unit) dteAddr(id uint16) uint64 { return u.devTab + uint64(id)*dteBytes }

// Attach points src's device table entry (and its alias's) at d's tables
// and flushes what the unit cached for it. A domain with nil Tables
// blocks, as Detach.
func (u *Unit) Attach(src iommu.Source, d *iommu.Domain) error {
	if d == nil {
		return fmt.Errorf("amdvi: %s: attach %s to a nil domain", u.name, src)
	}
	if d.Tables == nil {
		return u.Detach(src)
	}
	if d.ID == 0 {
		return fmt.Errorf("amdvi: %s: attach %s: domain ID 0 is reserved for the blocking state", u.name, src)
	}
	if _, ok := d.Tables.Format().(ept.AMDViFormat); !ok {
		return fmt.Errorf("amdvi: %s: attach %s: domain %d's tables are in the %v format, not AMD-Vi (build them with TableConfig)", u.name, src, d.ID, d.Tables.Format())
	}
	root := d.Tables.Root()
	if root == 0 || root%ept.TableSize != 0 || root >= maxPhys || root == u.emptyRoot {
		return fmt.Errorf("amdvi: %s: attach %s: domain %d's root table %#x is not a usable 4 KiB page", u.name, src, d.ID, root)
	}
	rid, alias, aliased, err := u.requesters(src)
	if err != nil {
		return err
	}
	if aliased {
		// Devices behind one alias share its entry: they must share
		// the domain too.
		e := u.dteAddr(alias)
		if dom := uint16(u.mem.Read64(e + 8)); u.mem.Read64(e) != u.blockingDTE() && dom != d.ID {
			return fmt.Errorf("amdvi: %s: attach %s: its DMA carries requester ID %s, which is attached to domain %d", u.name, src, iommu.SourceFromRequesterID(u.segment, alias), dom)
		}
	}
	w0 := translatingDTE(root)
	u.writeDTE(rid, w0, d.ID)
	if aliased {
		u.writeDTE(alias, w0, d.ID)
	}
	return u.flushDevice(rid, alias, aliased, d.ID, "attaching")
}

// writeDTE changes an entry so that every state between its stores
// blocks: translation off, DomainID, then translation on.
func (u *Unit) writeDTE(id uint16, w0 uint64, domain uint16) {
	e := u.dteAddr(id)
	block := u.blockingDTE()
	if u.mem.Read64(e) != block {
		u.mem.Write64(e, block)
	}
	u.mem.Write64(e+8, uint64(domain))
	if w0 != block {
		u.mem.Write64(e, w0)
	}
}

// Detach puts src (and its alias) back in the blocking state.
func (u *Unit) Detach(src iommu.Source) error {
	rid, alias, aliased, err := u.requesters(src)
	if err != nil {
		return err
	}
	old := uint16(u.mem.Read64(u.dteAddr(rid)+8) & dteDomainMask)
	block := u.blockingDTE()
	u.writeDTE(rid, block, 0)
	if aliased {
		u.writeDTE(alias, block, 0)
	}
	return u.flushDevice(rid, alias, aliased, old, "detaching")
}

func (u *Unit) flushDevice(rid, alias uint16, aliased bool, domain uint16, what string) error {
	if err := u.queue(invalidateDevTabEntry(rid)); err != nil {
		return err
	}
	if aliased {
		if err := u.queue(invalidateDevTabEntry(alias)); err != nil {
			return err
		}
	}
	if err := u.queue(invalidateDomainPages(domain)); err != nil {
		return err
	}
	if err := u.sync(); err != nil {
		return fmt.Errorf("%w (%s %s)", err, what, iommu.SourceFromRequesterID(u.segment, rid))
	}
	return nil
}

// Invalidate flushes every translation the unit cached for d's domain ID.
// A disabled unit has nothing to flush (Enable flushes everything).
func (u *Unit) Invalidate(d *iommu.Domain) error {
	if d == nil {
		return fmt.Errorf("amdvi: %s: invalidate a nil domain", u.name)
	}
	if !u.enabled {
		return nil
	}
	if err := u.queue(invalidateDomainPages(d.ID)); err != nil {
		return err
	}
	if err := u.sync(); err != nil {
		return fmt.Errorf("%w (invalidating domain %d)", err, d.ID)
	}
	return nil
}
