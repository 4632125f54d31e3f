package vtd

import (
	"errors"
	"fmt"

	"tamavisor/ept"
)

// Register offsets from the unit's base (VT-d spec 4.1, 11.4 "Register
// Descriptions", Table 47 "Address Mapping for Remapping Hardware
// Registers"). The IOTLB registers and the fault recording registers sit
// at offsets the capability registers give (ECAP_REG.IRO, CAP_REG.FRO).
const (
	regVER    = 0x00 // 32: VER_REG
	regCAP    = 0x08 // 64: CAP_REG
	regECAP   = 0x10 // 64: ECAP_REG
	regGCMD   = 0x18 // 32: GCMD_REG
	regGSTS   = 0x1c // 32: GSTS_REG
	regRTADDR = 0x20 // 64: RTADDR_REG
	regCCMD   = 0x28 // 64: CCMD_REG
	regFSTS   = 0x34 // 32: FSTS_REG
	regFECTL  = 0x38 // 32: FECTL_REG
	regPMEN   = 0x64 // 32: PMEN_REG
	regIQH    = 0x80 // 64: IQH_REG
	regIQT    = 0x88 // 64: IQT_REG
	regIQA    = 0x90 // 64: IQA_REG
	regICS    = 0x9c // 32: ICS_REG
	regIRTA   = 0xb8 // 64: IRTA_REG

	// Within the IOTLB register block at ECAP_REG.IRO * 16.
	regIVAOffset   = 0x0 // 64: IVA_REG
	regIOTLBOffset = 0x8 // 64: IOTLB_REG

	// minRegisterSet is the smallest register set (DRHD Size 0: one 4 KiB
	// page, VT-d 8.3).
	minRegisterSet = 0x1000
	// faultRecordSize: each fault recording register (FRCD_REG) is
	// 128 bits.
	faultRecordSize = 16
)

// GCMD_REG / GSTS_REG bits (11.4): each command bit has the
// status bit at the same position.
const (
	gTE    uint32 = 1 << 31 // translation enable / TES
	gSRTP  uint32 = 1 << 30 // set root table pointer / RTPS
	gSFL   uint32 = 1 << 29 // set fault log / FLS
	gEAFL  uint32 = 1 << 28 // enable advanced fault logging / AFLS
	gWBF   uint32 = 1 << 27 // write buffer flush / WBFS
	gQIE   uint32 = 1 << 26 // queued invalidation enable / QIES
	gIRE   uint32 = 1 << 25 // interrupt remapping enable / IRES
	gSIRTP uint32 = 1 << 24 // set interrupt remap table pointer / IRTPS
	gCFI   uint32 = 1 << 23 // compatibility format interrupt / CFIS

	// gPersistent are the enables whose status software writes back to
	// GCMD so as to leave them as they are. The other status bits report
	// one-shot commands (RTPS, FLS, WBFS, IRTPS) and must not be echoed
	// back: writing them to GCMD would issue the command again. GCMD_REG
	// takes one command per write: read GSTS_REG, drop the one-shot
	// bits, change the one bit.
	gPersistent = gTE | gEAFL | gQIE | gIRE | gCFI
)

// CAP_REG fields (11.4).
const (
	capNDMask       = 0x7     // 2:0 number of domains supported
	capRWBF         = 1 << 4  // required write-buffer flushing
	capPLMR         = 1 << 5  // protected low-memory region
	capPHMR         = 1 << 6  // protected high-memory region
	capCM           = 1 << 7  // caching mode
	capSAGAWShift   = 8       // 12:8 supported adjusted guest address widths
	capSAGAWMask    = 0x1f    //
	capMGAWShift    = 16      // 21:16 maximum guest address width - 1
	capMGAWMask     = 0x3f    //
	capFROShift     = 24      // 33:24 fault-recording register offset / 16
	capFROMask      = 0x3ff   //
	capSLLPSShift   = 34      // 37:34 second-level large page support
	capSLLPS2M      = 1 << 0  //   21-bit offset: 2 MiB pages
	capSLLPS1G      = 1 << 1  //   30-bit offset: 1 GiB pages
	capPSI          = 1 << 39 // page-selective invalidation
	capNFRShift     = 40      // 47:40 number of fault-recording registers - 1
	capNFRMask      = 0xff    //
	capDWD          = 1 << 54 // write draining
	capDRD          = 1 << 55 // read draining
	sagaw39         = 1 << 1  // SAGAW bit 1: 39-bit AGAW, 3-level table
	sagaw48         = 1 << 2  // SAGAW bit 2: 48-bit AGAW, 4-level table
	sagaw57         = 1 << 3  // SAGAW bit 3: 57-bit AGAW, 5-level table
	ndReserved      = 7       // ND = 111b is reserved
	domainIDBase    = 4       // ND = n: 4 + 2n domain-id bits
	mgawMinForEPT   = 32      // package ept translates at least 32 bits
	minHostAddrBits = 32      // package ept's lowest output address width
	agaw48          = 48      //
	contextAW48     = 2       // context-entry AW for a 48-bit, 4-level table (9.3)
	faultRecordMax  = capNFRMask + 1
)

// ECAP_REG fields (11.4).
const (
	ecapC        = 1 << 0  // page-walk coherency
	ecapQI       = 1 << 1  // queued invalidation
	ecapDT       = 1 << 2  // device-TLB
	ecapIR       = 1 << 3  // interrupt remapping
	ecapEIM      = 1 << 4  // extended interrupt mode (x2APIC)
	ecapPT       = 1 << 6  // pass through
	ecapSC       = 1 << 7  // snoop control
	ecapIROShift = 8       // 17:8 IOTLB register offset / 16
	ecapIROMask  = 0x3ff   //
	ecapSMTS     = 1 << 43 // scalable mode translation
)

// RTADDR_REG (11.4): bits 63:12 root table address; bits 11:10 TTM,
// 00b = legacy mode (root and context entries of 9.1 and 9.3).
const rtaddrLegacy = 0 << 10

// CCMD_REG and IOTLB_REG (11.4; register-based invalidation, 6.5.1).
const (
	ccmdICC        = uint64(1) << 63 // invalidate context-cache, cleared on completion
	ccmdCIRGShift  = 61              // requested granularity
	ccmdCAIGShift  = 59              // actual granularity (0: not performed)
	ccmdGranMask   = 3
	ccmdFMShift    = 32 // function mask
	ccmdSIDShift   = 16
	granGlobal     = 1 // 01b in CIRG / IIRG and in descriptors' G
	granDomain     = 2 // 10b
	granDevice     = 3 // 11b device-selective (context) or page-selective (IOTLB)
	fmNoMask       = 0 // function mask 00b: no SID bits masked
	iotlbIVT       = uint64(1) << 63
	iotlbIIRGShift = 60
	iotlbIAIGShift = 57
	iotlbDR        = uint64(1) << 49
	iotlbDW        = uint64(1) << 48
	iotlbDIDShift  = 32
)

// FSTS_REG and FECTL_REG (11.4).
const (
	fstsPFO      uint32 = 1 << 0 // primary fault overflow (RW1C)
	fstsPPF      uint32 = 1 << 1 // primary pending fault (RO: some F bit set)
	fstsAFO      uint32 = 1 << 2 // advanced fault overflow (RW1C)
	fstsAPF      uint32 = 1 << 3 // advanced pending fault (RW1C)
	fstsIQE      uint32 = 1 << 4 // invalidation queue error (RW1C)
	fstsICE      uint32 = 1 << 5 // invalidation completion error (RW1C)
	fstsITE      uint32 = 1 << 6 // invalidation time-out error (RW1C)
	fstsFRIShift        = 8      // 15:8 fault record index
	fstsFRIMask         = 0xff
	fectlIM      uint32 = 1 << 31 // interrupt mask
)

// PMEN_REG (11.4): EPM enables the protected memory regions, PRS
// reports their state.
const (
	pmenEPM uint32 = 1 << 31
	pmenPRS uint32 = 1 << 0
)

// IQA_REG, IQT_REG/IQH_REG, ICS_REG (11.4; queued invalidation, 6.5.2).
const (
	iqaDW128     = 0 << 11 // DW = 0: 128-bit descriptors
	iqaQS        = 0       // queue size 2^QS pages: one page
	queueEntries = 4096 << iqaQS / descSize
	descSize     = 16          // 128-bit descriptors
	iqPtrMask    = 0x7fff << 4 // QH/QT, bits 18:4, in descriptor units of 16 bytes
	icsIWC       = 1 << 0
)

// Invalidation descriptors (VT-d spec 6.5.2): 128 bits, type in bits 3:0.
const (
	descCC    = 0x1 // context-cache invalidate (6.5.2.1)
	descIOTLB = 0x2 // IOTLB invalidate (6.5.2.2)
	descIEC   = 0x4 // interrupt entry cache invalidate (6.5.2.7)
	descWait  = 0x5 // invalidation wait (6.5.2.8)

	descGShift      = 4  // granularity, bits 5:4 (CC, IOTLB)
	descDIDShift    = 16 // domain-id, bits 31:16 (CC, IOTLB)
	descSIDShift    = 32 // source-id, bits 47:32 (CC)
	descFMShift     = 48 // function mask, bits 49:48 (CC)
	descIOTLBDW     = 1 << 6
	descIOTLBDR     = 1 << 7
	descIECIndexSel = 1 << 4 // IEC G: 1 = index-selective
	descIECIMShift  = 27     // index mask, bits 31:27
	descIECIdxShift = 32     // interrupt index, bits 47:32
	descWaitIF      = 1 << 4 // interrupt on completion
	descWaitSW      = 1 << 5 // status write
	descWaitFN      = 1 << 6 // fence
	descWaitData    = 32     // status data, bits 63:32
)

// IRTA_REG (11.4): bits 63:12 table address, bit 11 EIME, bits 3:0 S
// (2^(S+1) entries).
const (
	irtaEIME       = 1 << 11
	irtaSizeShift  = 0
	irtEntries     = 256
	irtSizeField   = 7 // 2^(7+1) = 256 entries
	irteSize       = 16
	rootEntrySize  = 16
	contextEntries = 256
	rootEntries    = 256
	pageSize       = 4096
)

// Capabilities is what one unit's VER_REG, CAP_REG and ECAP_REG say
// (VT-d spec 11.4), decoded.
type Capabilities struct {
	Major, Minor uint8  // architecture version
	Cap, ECap    uint64 // raw registers

	DomainIDBits        uint // width of a domain-id: 4 + 2 * CAP.ND
	RequiresWBF         bool // CAP.RWBF: flush write buffers after table updates
	ProtectedLowMemory  bool // CAP.PLMR
	ProtectedHighMemory bool // CAP.PHMR
	// CachingMode (CAP.CM): the unit may cache not-present and invalid
	// entries, as emulated units do; making an entry present needs an
	// invalidation too (VT-d spec 6.1).
	CachingMode bool
	SAGAW       uint8 // supported adjusted guest address widths, bit 1 = 39, 2 = 48, 3 = 57
	// MaxGuestAddrBits (CAP.MGAW + 1): DMA addresses at or above 2^this
	// fault whatever the tables say.
	MaxGuestAddrBits  uint
	FaultRecordOffset uint64 // CAP.FRO * 16, from the register base
	FaultRecords      int    // CAP.NFR + 1
	LargePages        ept.PageSizes
	PageSelective     bool // CAP.PSI
	DrainReads        bool // CAP.DRD
	DrainWrites       bool // CAP.DWD

	Coherent           bool   // ECAP.C: table walks snoop the processor caches
	QueuedInvalidation bool   // ECAP.QI
	DeviceTLB          bool   // ECAP.DT
	InterruptRemapping bool   // ECAP.IR
	ExtendedInterrupts bool   // ECAP.EIM (x2APIC destinations)
	PassThrough        bool   // ECAP.PT
	SnoopControl       bool   // ECAP.SC: SNP in leaves is honoured
	IOTLBOffset        uint64 // ECAP.IRO * 16, from the register base
	ScalableMode       bool   // ECAP.SMTS
}

// ErrNo4LevelTables is returned when a unit cannot walk 4-level (48-bit)
// second-level tables, the only depth package ept builds.
var ErrNo4LevelTables = errors.New("vtd: unit does not support 4-level (48-bit AGAW) second-level tables")

// ParseCapabilities decodes the three identification registers. It fails
// on values that no unit may report (reserved ND, zero register offsets)
// and on units this driver cannot use (no 4-level second-level tables, a
// guest address width below 32 bits).
func ParseCapabilities(ver uint32, cap, ecap uint64) (Capabilities, error) {
	c := Capabilities{
		Major: uint8(ver>>4) & 0xf, Minor: uint8(ver) & 0xf,
		Cap: cap, ECap: ecap,
		RequiresWBF:         cap&capRWBF != 0,
		ProtectedLowMemory:  cap&capPLMR != 0,
		ProtectedHighMemory: cap&capPHMR != 0,
		CachingMode:         cap&capCM != 0,
		SAGAW:               uint8(cap>>capSAGAWShift) & capSAGAWMask,
		MaxGuestAddrBits:    uint(cap>>capMGAWShift)&capMGAWMask + 1,
		FaultRecordOffset:   (cap >> capFROShift & capFROMask) * 16,
		FaultRecords:        int(cap>>capNFRShift&capNFRMask) + 1,
		LargePages:          ept.Pages4K,
		PageSelective:       cap&capPSI != 0,
		DrainReads:          cap&capDRD != 0,
		DrainWrites:         cap&capDWD != 0,
		Coherent:            ecap&ecapC != 0,
		QueuedInvalidation:  ecap&ecapQI != 0,
		DeviceTLB:           ecap&ecapDT != 0,
		InterruptRemapping:  ecap&ecapIR != 0,
		ExtendedInterrupts:  ecap&ecapEIM != 0,
		PassThrough:         ecap&ecapPT != 0,
		SnoopControl:        ecap&ecapSC != 0,
		IOTLBOffset:         (ecap >> ecapIROShift & ecapIROMask) * 16,
		ScalableMode:        ecap&ecapSMTS != 0,
	}
	if s := cap >> capSLLPSShift; s&capSLLPS2M != 0 {
		c.LargePages |= ept.Pages2M
	}
	if s := cap >> capSLLPSShift; s&capSLLPS1G != 0 {
		c.LargePages |= ept.Pages1G
	}
	nd := cap & capNDMask
	if nd == ndReserved {
		return c, fmt.Errorf("vtd: CAP_REG %#x: ND = 7 is reserved", cap)
	}
	c.DomainIDBits = domainIDBase + 2*uint(nd)
	if c.FaultRecordOffset == 0 {
		return c, fmt.Errorf("vtd: CAP_REG %#x: fault recording registers at offset 0 (FRO = 0)", cap)
	}
	if c.IOTLBOffset == 0 {
		return c, fmt.Errorf("vtd: ECAP_REG %#x: IOTLB registers at offset 0 (IRO = 0)", ecap)
	}
	if c.SAGAW&sagaw48 == 0 {
		var only string
		switch {
		case c.SAGAW&sagaw39 != 0:
			only = "only 3-level (39-bit) tables; on QEMU give -device intel-iommu,aw-bits=48"
		case c.SAGAW&sagaw57 != 0:
			only = "only 5-level (57-bit) tables"
		default:
			only = "no second-level table depth at all"
		}
		return c, fmt.Errorf("%w: SAGAW = %#x supports %s", ErrNo4LevelTables, c.SAGAW, only)
	}
	if c.MaxGuestAddrBits < mgawMinForEPT {
		return c, fmt.Errorf("vtd: CAP_REG %#x: maximum guest address width of %d bits is below the %d that page tables need", cap, c.MaxGuestAddrBits, mgawMinForEPT)
	}
	// Interrupt entry cache invalidation exists only as a queued
	// descriptor (6.5.2.7): remapping interrupts needs the queue.
	if c.InterruptRemapping && !c.QueuedInvalidation {
		c.InterruptRemapping = false
	}
	return c, nil
}

// DomainIDs is the number of domain-ids the unit tags cache entries with;
// 0 is reserved (for the blocking state here, and by hardware when CM = 1).
func (c Capabilities) DomainIDs() int { return 1 << c.DomainIDBits }

func (c Capabilities) String() string {
	yes := func(b bool, s string) string {
		if b {
			return " " + s
		}
		return ""
	}
	return fmt.Sprintf("VT-d %d.%d, %d-bit guest addresses, %d domains, %d fault records, pages %s%s%s%s%s%s%s",
		c.Major, c.Minor, c.MaxGuestAddrBits, c.DomainIDs(), c.FaultRecords, pageSizesString(c.LargePages),
		yes(c.QueuedInvalidation, "QI"), yes(c.InterruptRemapping, "IR"), yes(c.CachingMode, "CM"),
		yes(!c.Coherent, "non-coherent"), yes(c.SnoopControl, "SC"), yes(c.RequiresWBF, "RWBF"))
}

func pageSizesString(s ept.PageSizes) string {
	out := "4K"
	if s&ept.Pages2M != 0 {
		out += "/2M"
	}
	if s&ept.Pages1G != 0 {
		out += "/1G"
	}
	return out
}
