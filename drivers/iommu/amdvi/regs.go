package amdvi

// MMIO register offsets from the IVHD's base address (#48882 3.4, "IOMMU
// MMIO Registers": MMIO Offset 0000h...2020h). The driver accesses them 64
// bits at a time, as the specification allows and QEMU implements.
const (
	regDevTabBase   = 0x0000 // Device Table Base Address Register
	regCmdBufBase   = 0x0008 // Command Buffer Base Address Register
	regEventLogBase = 0x0010 // Event Log Base Address Register
	regControl      = 0x0018 // IOMMU Control Register
	regExclBase     = 0x0020 // IOMMU Exclusion Base Register
	regExclLimit    = 0x0028 // IOMMU Exclusion Range Limit Register
	regExtFeatures  = 0x0030 // IOMMU Extended Feature Register (EFR)
	regCmdBufHead   = 0x2000 // Command Buffer Head Pointer Register
	regCmdBufTail   = 0x2008 // Command Buffer Tail Pointer Register
	regEventLogHead = 0x2010 // Event Log Head Pointer Register
	regEventLogTail = 0x2018 // Event Log Tail Pointer Register
	regStatus       = 0x2020 // IOMMU Status Register

	// mmioSize is the register space the driver uses; the IOMMU Base
	// Address capability register holds bits 51:14, so the base is
	// 16 KiB aligned (#48882 3.2.2).
	mmioSize = 0x4000
)

// IOMMU Control Register bits (MMIO Offset 0018h).
const (
	ctrlIommuEn    uint64 = 1 << 0
	ctrlHtTunEn    uint64 = 1 << 1
	ctrlEventLogEn uint64 = 1 << 2
	ctrlPassPW     uint64 = 1 << 8
	ctrlResPassPW  uint64 = 1 << 9
	// ctrlCoherent makes the unit's own reads of the device table,
	// command buffer and event log snooped: the driver writes them with
	// plain cached stores and never flushes.
	ctrlCoherent uint64 = 1 << 10
	ctrlIsoc     uint64 = 1 << 11
	ctrlCmdBufEn uint64 = 1 << 12
)

// IOMMU Status Register bits (MMIO Offset 2020h). The overflow and
// interrupt bits are write-1-to-clear, the Run bits read-only.
const (
	statusEventOverflow uint64 = 1 << 0
	statusEventLogInt   uint64 = 1 << 1
	statusComWaitInt    uint64 = 1 << 2
	statusEventLogRun   uint64 = 1 << 3
	statusCmdBufRun     uint64 = 1 << 4
)

// Extended Feature Register fields (MMIO Offset 0030h).
const (
	efrIASup uint64 = 1 << 6 // INVALIDATE_IOMMU_ALL supported
	// HATS, bits 11:10: the host page-table levels supported beyond 4
	// (00b 4, 01b 5, 10b 6); 11b means host translation is not
	// supported at all (HATDis).
	efrHATSShift        = 10
	efrHATSMask  uint64 = 3 << efrHATSShift
	efrHATSNone  uint64 = 3 << efrHATSShift
)

// IVHD fields (#48882 5.2.2.1).
const (
	// IVHD flags that the Control register mirrors.
	ivhdFlagHtTunEn   = 1 << 0
	ivhdFlagPassPW    = 1 << 1
	ivhdFlagResPassPW = 1 << 2
	ivhdFlagIsoc      = 1 << 3
	// ivhdAttrHATDis is bit 0 of the IOMMU Attributes of IVHD types
	// 11h and 40h: host address translation is disabled.
	ivhdAttrHATDis = 1 << 0
)

// capNpCache is bit 26 of the IOMMU Capability Header in PCI
// configuration space (#48882 3.2.1): the unit caches not-present
// page-table entries, so new mappings need an invalidation too.
const capNpCache = 1 << 26

// Ring buffers (#48882 2.4 and 2.5; Base Address registers 0008h and
// 0010h, Head/Tail Pointer registers 2000h-2018h). Both rings are 4 KiB of
// 16-byte entries, the smallest length the Len fields allow (1000b = 256
// entries): the driver waits on every batch of commands, and the fault
// log is drained periodically, so a larger ring buys nothing.
const (
	ringBytes    = 4096
	ringEntry    = 16
	ringEntries  = ringBytes / ringEntry
	ringLenField = uint64(8) << 56 // ComLen / EventLen, bits 59:56: 2^8 entries
	// ringPtrMask selects the byte offset in a head or tail pointer
	// register, bits 18:4.
	ringPtrMask uint64 = 0x7fff0
)

// Device table (#48882 2.2.2). It is indexed by the 16-bit DeviceID, the
// PCI requester ID, so 65,536 entries of 32 bytes cover every ID; the
// Size field of the base register (bits 8:0) is the table's 4 KiB pages
// less one.
const (
	dteBytes        = 32
	deviceIDs       = 1 << 16
	devTabBytes     = deviceIDs * dteBytes // 2 MiB
	devTabSizeField = devTabBytes/4096 - 1 // 1FFh
)

// Device table entry, first quadword (bits 63:0, #48882 2.2.2.1
// "Device Table Entry Format").
const (
	dteV    uint64 = 1 << 0 // V: bits 127:2... of the entry are valid
	dteTV   uint64 = 1 << 1 // TV: the translation fields are valid
	dteMode        = 9      // Mode, bits 11:9: levels of the host page table
	// dteRootMask selects the Page Table Root Pointer, bits 51:12.
	dteRootMask uint64 = 0x000f_ffff_ffff_f000
	dteIR       uint64 = 1 << 61 // IR: DMA reads allowed
	dteIW       uint64 = 1 << 62 // IW: DMA writes allowed
	// dteModeFourLevel is the 4-level walk of the tables package ept
	// builds (48-bit I/O virtual addresses).
	dteModeFourLevel uint64 = 4 << dteMode
	dteModeMask      uint64 = 7 << dteMode
)

// Device table entry, second quadword (bits 127:64): DomainID in 79:64.
// Everything else in it (I, SE, SA, IoCtl, Cache, SD, EX, SysMgt, the
// guest CR3 pointer) is left 0, and the third and fourth quadwords
// (interrupt remapping, bits 255:128) are all 0: see the package comment.
const dteDomainMask uint64 = 0xffff

// Command opcodes, bits 63:60 of a command's first quadword (#48882 2.4).
const (
	cmdCompletionWait      = 0x1
	cmdInvalidateDevTab    = 0x2
	cmdInvalidateIOMMUPage = 0x3
	cmdInvalidateAll       = 0x8
	cmdOpcodeShift         = 60
)

// Command fields.
const (
	// COMPLETION_WAIT (#48882 2.4.1): S, bit 0, stores the second
	// quadword at the Store Address, bits 51:3 of the first.
	cwStore     uint64 = 1 << 0
	cwAddrMask  uint64 = 0x000f_ffff_ffff_fff8
	cwAddrAlign        = 8
	// INVALIDATE_IOMMU_PAGES (#48882 2.4.3): DomainID in bits 47:32 of
	// the first quadword; S (bit 0) and PDE (bit 1) of the second, whose
	// bits 63:12 are the address. With S = 1 the range size is coded by
	// the lowest zero address bit from 12 up: all ones up to bit 62
	// names every page, and PDE = 1 drops the cached directory entries
	// too.
	ipDomainShift         = 32
	ipSize         uint64 = 1 << 0
	ipPDE          uint64 = 1 << 1
	ipAllPagesAddr uint64 = 0x7fff_ffff_ffff_f000
)

type command [2]uint64

func completionWait(store, data uint64) command {
	return command{store&cwAddrMask | cwStore | cmdCompletionWait<<cmdOpcodeShift, data}
}

func invalidateDevTabEntry(deviceID uint16) command {
	return command{uint64(deviceID) | cmdInvalidateDevTab<<cmdOpcodeShift, 0}
}

func invalidateDomainPages(domain uint16) command {
	return command{uint64(domain)<<ipDomainShift | cmdInvalidateIOMMUPage<<cmdOpcodeShift, ipAllPagesAddr | ipSize | ipPDE}
}

func invalidateAll() command {
	return command{cmdInvalidateAll << cmdOpcodeShift, 0}
}

// Event log entry, first quadword (#48882 2.5 "Event Logging", the event
// figures): the DeviceID in bits 15:0, the DomainID (or PASID) of page
// faults in 47:32, flags in 59:48 and the event code in 63:60. The second
// quadword is the address.
const (
	evCodeShift        = 60
	evGN        uint64 = 1 << 48 // guest (PASID) request
	evNX        uint64 = 1 << 49
	evUS        uint64 = 1 << 50
	evI         uint64 = 1 << 51 // interrupt request, not a memory access
	evPR        uint64 = 1 << 52 // the page was present
	evRW        uint64 = 1 << 53 // write (when I = 0 and TR = 0)
	evPE        uint64 = 1 << 54 // permission denied
	evRZ        uint64 = 1 << 55 // reserved bit set, or bad level encoding
	evTR        uint64 = 1 << 56 // ATS translation request
	// evQEMUPermWrite is where QEMU's page-fault records say "write"
	// (see qemuPageFault); architecturally it is NX.
	evQEMUPermWrite = evNX
	// evTypeShift: hardware-error events give the error in bits 58:57
	// (01b master abort, 10b target abort, 11b data error).
	evTypeShift = 57
)

// Event codes (#48882 2.5).
const (
	evIllegalDevTableEntry = 0x1
	evIOPageFault          = 0x2
	evDevTabHardwareError  = 0x3
	evPageTabHardwareError = 0x4
	evIllegalCommand       = 0x5
	evCommandHardwareError = 0x6
	evIOTLBInvTimeout      = 0x7
	evInvalidDeviceRequest = 0x8
	evInvalidPPRRequest    = 0x9
)

// The interrupt address range (#48882 2.2.5, "Interrupt Remapping"):
// writes there are interrupt requests, not DMA.
const (
	interruptRangeFirst = 0xfee0_0000
	interruptRangeLast  = 0xfeef_ffff
)
