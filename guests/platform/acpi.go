package platform

import (
	"encoding/binary"
	"fmt"

	"tamavisor/guests/platform/aml"
	"tamavisor/guests/vcpu"
)

// ACPI fixed hardware of the guest (ACPI 6.5, 4.8 "ACPI Hardware
// Specification"), in I/O space as on a PC chipset; the ports are those of
// QEMU's q35 (ICH9 PMBASE 0x600). The PM device model implements them.
const (
	// PM1aEventPort is PM1a_EVT_BLK: PM1_STS at +0 and PM1_EN at +2,
	// 16 bits each (ACPI 6.5, 4.8.3.1).
	PM1aEventPort    = 0x600
	PM1EventLength   = 4
	PM1aControlPort  = 0x604 // PM1a_CNT_BLK, 16 bits (ACPI 6.5, 4.8.3.2)
	PM1ControlLength = 2
	PMTimerPort      = 0x608 // PM_TMR_BLK (ACPI 6.5, 4.8.3.3)
	PMTimerLength    = 4
	// PMTimer32Bit is TMR_VAL_EXT: the PM timer counts 32 bits, not 24.
	PMTimer32Bit = true

	// SCIInterrupt is SCI_INT: the SCI is ISA IRQ 9, which the MADT
	// routes to GSI 9, level-triggered, active low (ACPI 6.5, 5.2.9 and
	// 5.2.12.5).
	SCIInterrupt = 9

	// ResetPort and ResetValue are RESET_REG and RESET_VALUE: a byte
	// write of 0x06 to port 0xcf9 (the chipset Reset Control Register:
	// full reset with CPU reset) resets the guest (ACPI 6.5, 4.8.4.6).
	// Port 0xcf9 lies inside the host bridge's 0xcf8-0xcff
	// configuration ports: the bridge model takes byte accesses to it.
	ResetPort  = 0xcf9
	ResetValue = 0x06

	// SleepTypeS5 is the SLP_TYP value of the soft-off state, \_S5 in the
	// DSDT (ACPI 6.5, 7.4.2): a guest powers off by writing
	// SleepTypeS5<<PM1ControlSleepTypeShift | PM1ControlSleepEnable to
	// PM1a_CNT.
	SleepTypeS5 = 5

	// PM1_CNT bits (ACPI 6.5, 4.8.3.2.1, Table 4.16). There is no SMI
	// command port (SMI_CMD is 0), so the platform is always in ACPI
	// mode and SCI_EN must read as 1 (ACPI 6.5, 4.8.2.1; Linux does not
	// look when SMI_CMD is 0, other OSes may).
	PM1ControlSCIEnable      = 1 << 0
	PM1ControlSleepTypeShift = 10
	PM1ControlSleepTypeMask  = 7 << PM1ControlSleepTypeShift
	PM1ControlSleepEnable    = 1 << 13
)

// Identification in every table header (ACPI 6.5, 5.2.6) and the FADT's
// hypervisor vendor identity (5.2.9).
const (
	OEMID            = "TAMAVI"   // 6 characters
	OEMTableID       = "TAMAVISR" // 8 characters
	OEMRevision      = 1
	CreatorID        = "TAMA"
	CreatorRevision  = 1
	HypervisorVendor = "TAMAVISR"
)

// Tables are the guest-physical addresses of the ACPI tables Build wrote.
type Tables struct {
	RSDP, XSDT, RSDT, FADT, FACS, DSDT, MADT, MCFG uint64
	// Used is the part of the ACPI area the tables take.
	Used Region
}

// Table header layout (ACPI 6.5, 5.2.6).
const (
	headerLength      = 36
	hdrOffLength      = 4
	hdrOffChecksum    = 9
	tableAlign        = 16
	facsAlign         = 64 // ACPI 6.5, 5.2.10: 64-byte aligned
	facsLength        = 64
	rsdpLength        = 36
	rsdpV1Length      = 20
	madtEntriesOffset = 44
	mcfgHeaderLength  = 44
)

// Revisions of the tables built: FADT 6 with minor version 5 (ACPI 6.5),
// MADT 5 (the entry types used are those of every revision), DSDT 2 (64-bit
// integers, ACPI 6.5 5.2.11.1), XSDT and RSDT 1, MCFG 1, FACS version 2,
// RSDP 2 (ACPI 2.0 and later).
const (
	fadtRevision     = 6
	fadtMinorVersion = 5
	madtRevision     = 5
	dsdtRevision     = 2
	xsdtRevision     = 1
	rsdtRevision     = 1
	mcfgRevision     = 1
	facsVersion      = 2
	rsdpRevision     = 2
)

// Build writes the guest's ACPI tables into the ACPI area of mem (which
// must be the guest's RAM, laid out by l): RSDP, XSDT and RSDT listing the
// FADT, MADT and MCFG; the FADT pointing at the FACS and DSDT. The RSDP is
// at RSDPAddress, where an OS searching the BIOS area finds it.
func Build(mem vcpu.Memory, l *Layout) (*Tables, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	img, t, err := Encode(l)
	if err != nil {
		return nil, err
	}
	if err := mem.WriteGuest(l.ACPIArea.Start, img); err != nil {
		return nil, fmt.Errorf("platform: writing the ACPI tables at %v: %v", l.ACPIArea, err)
	}
	return t, nil
}

// Encode returns the bytes of the whole ACPI area of l, tables placed, and
// where each table is. Build writes it to guest memory.
func Encode(l *Layout) ([]byte, *Tables, error) {
	if err := l.Validate(); err != nil {
		return nil, nil, err
	}
	area := l.ACPIArea
	img := make([]byte, area.Size())
	t := &Tables{RSDP: area.Start}
	next := area.Start + rsdpLength
	var ferr error
	place := func(b []byte, align uint64, sig string) uint64 {
		at := (next + align - 1) &^ (align - 1)
		if ferr != nil || at+uint64(len(b)) > area.End {
			if ferr == nil {
				ferr = fmt.Errorf("platform: the ACPI tables do not fit %v: %s (%d bytes) would end at %#x", area, sig, len(b), at+uint64(len(b)))
			}
			return 0
		}
		copy(img[at-area.Start:], b)
		next = at + uint64(len(b))
		return at
	}

	t.FACS = place(facs(), facsAlign, "FACS")
	dsdt, err := DSDT(l)
	if err != nil {
		return nil, nil, err
	}
	t.DSDT = place(dsdt, tableAlign, "DSDT")
	t.FADT = place(fadt(t.FACS, t.DSDT), tableAlign, "FACP")
	t.MADT = place(madt(l), tableAlign, "APIC")
	t.MCFG = place(mcfg(l), tableAlign, "MCFG")
	entries := []uint64{t.FADT, t.MADT, t.MCFG}
	t.XSDT = place(rootTable("XSDT", xsdtRevision, entries, 8), tableAlign, "XSDT")
	t.RSDT = place(rootTable("RSDT", rsdtRevision, entries, 4), tableAlign, "RSDT")
	if ferr != nil {
		return nil, nil, ferr
	}
	copy(img[t.RSDP-area.Start:], rsdp(t.RSDT, t.XSDT))
	t.Used = Region{area.Start, next}
	return img, t, nil
}

// header returns a table of length bytes with its common header filled
// in; finish sets the checksum once the body is written.
func header(sig string, revision uint8, length int) []byte {
	b := make([]byte, length)
	copy(b[0:4], sig)
	binary.LittleEndian.PutUint32(b[hdrOffLength:], uint32(length))
	b[8] = revision
	copy(b[10:16], OEMID)
	copy(b[16:24], OEMTableID)
	binary.LittleEndian.PutUint32(b[24:], OEMRevision)
	copy(b[28:32], CreatorID)
	binary.LittleEndian.PutUint32(b[32:], CreatorRevision)
	return b
}

// checksum is the byte that makes b sum to zero, with b's own checksum
// byte taken as zero.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}

// finish sets a table's checksum (ACPI 6.5, 5.2.6): all bytes sum to 0.
func finish(b []byte) []byte {
	b[hdrOffChecksum] = 0
	b[hdrOffChecksum] = checksum(b)
	return b
}

// rsdp builds the Root System Description Pointer, revision 2 (ACPI 6.5,
// 5.2.5.3): the first checksum covers its first 20 bytes, the extended
// checksum all 36.
func rsdp(rsdt, xsdt uint64) []byte {
	b := make([]byte, rsdpLength)
	copy(b[0:8], "RSD PTR ")
	copy(b[9:15], OEMID)
	b[15] = rsdpRevision
	binary.LittleEndian.PutUint32(b[16:], uint32(rsdt))
	binary.LittleEndian.PutUint32(b[20:], rsdpLength)
	binary.LittleEndian.PutUint64(b[24:], xsdt)
	b[8] = checksum(b[:rsdpV1Length])
	b[32] = checksum(b)
	return b
}

// rootTable builds the XSDT (8-byte entries, ACPI 6.5, 5.2.8) or RSDT
// (4-byte entries, 5.2.7).
func rootTable(sig string, revision uint8, entries []uint64, size int) []byte {
	b := header(sig, revision, headerLength+size*len(entries))
	for i, e := range entries {
		off := headerLength + i*size
		if size == 8 {
			binary.LittleEndian.PutUint64(b[off:], e)
		} else {
			binary.LittleEndian.PutUint32(b[off:], uint32(e))
		}
	}
	return finish(b)
}

// facs builds the Firmware ACPI Control Structure (ACPI 6.5, 5.2.10): no
// checksum; hardware signature 0 (the platform never changes), no waking
// vector, no global lock users.
func facs() []byte {
	b := make([]byte, facsLength)
	copy(b[0:4], "FACS")
	binary.LittleEndian.PutUint32(b[4:], facsLength)
	b[32] = facsVersion
	return b
}

// FADT field offsets (ACPI 6.5, 5.2.9, Table 5.9).
const (
	fadtLength           = 276
	fadtOffFirmwareCtrl  = 36
	fadtOffDSDT          = 40
	fadtOffPMProfile     = 45
	fadtOffSCIInt        = 46
	fadtOffSMICmd        = 48
	fadtOffPM1aEvtBlk    = 56
	fadtOffPM1aCntBlk    = 64
	fadtOffPMTmrBlk      = 76
	fadtOffPM1EvtLen     = 88
	fadtOffPM1CntLen     = 89
	fadtOffPMTmrLen      = 91
	fadtOffPLvl2Lat      = 96
	fadtOffPLvl3Lat      = 98
	fadtOffBootArch      = 109
	fadtOffFlags         = 112
	fadtOffResetReg      = 116
	fadtOffResetValue    = 128
	fadtOffMinorVersion  = 131
	fadtOffXFirmwareCtrl = 132
	fadtOffXDSDT         = 140
	fadtOffXPM1aEvtBlk   = 148
	fadtOffXPM1aCntBlk   = 172
	fadtOffXPMTmrBlk     = 208
	fadtOffHypervisorID  = 268
)

// FADT flags set (ACPI 6.5, 5.2.9, Table 5.10).
const (
	FADTFlagWBInvd      = 1 << 0  // WBINVD works
	FADTFlagProcC1      = 1 << 2  // C1 (HLT) on all processors
	FADTFlagSleepButton = 1 << 5  // no fixed-feature sleep button
	FADTFlagFixedRTC    = 1 << 6  // no RTC wake status in fixed registers
	FADTFlagTimerValExt = 1 << 8  // TMR_VAL_EXT: 32-bit PM timer
	FADTFlagResetReg    = 1 << 10 // RESET_REG_SUP
	// FADTFlags is what the guest's FADT says. PWR_BUTTON (bit 4) is
	// clear: the power button is the fixed-feature one, in PM1_STS/PM1_EN,
	// so the hypervisor can ask a guest to shut down.
	FADTFlags = FADTFlagWBInvd | FADTFlagProcC1 | FADTFlagSleepButton | FADTFlagFixedRTC | FADTFlagTimerValExt | FADTFlagResetReg
)

// IA-PC boot architecture flags set (ACPI 6.5, 5.2.9.3, Table 5.11):
// legacy devices (the UART, PIT, RTC the OS cannot enumerate), an 8042, and
// no VGA to probe.
const (
	BootArchLegacyDevices = 1 << 0
	BootArch8042          = 1 << 1
	BootArchNoVGA         = 1 << 2
	BootArchFlags         = BootArchLegacyDevices | BootArch8042 | BootArchNoVGA
)

// P_LVL2_LAT above 100 and P_LVL3_LAT above 1000 say C2 and C3 are not
// supported (ACPI 6.5, 5.2.9).
const (
	noC2Latency = 101
	noC3Latency = 1001
)

// Generic Address Structure (ACPI 6.5, 5.2.3.2).
const (
	gasSystemIO    = 1
	gasAccessByte  = 1
	gasAccessDword = 3
	gasAccessUndef = 0
	gasLength      = 12
)

func putGAS(b []byte, space, bitWidth, accessSize uint8, addr uint64) {
	b[0] = space
	b[1] = bitWidth
	b[2] = 0
	b[3] = accessSize
	binary.LittleEndian.PutUint64(b[4:], addr)
}

// fadt builds the Fixed ACPI Description Table, revision 6.5 (ACPI 6.5,
// 5.2.9). The PM blocks are given both as the legacy port fields and as
// X_ Generic Address Structures, which agree; SMI_CMD 0 says there is no
// ACPI mode to switch to.
func fadt(facsAddr, dsdtAddr uint64) []byte {
	le := binary.LittleEndian
	b := header("FACP", fadtRevision, fadtLength)
	// ACPI 6.5, 5.2.9: FIRMWARE_CTRL and X_FIRMWARE_CTRL are exclusive;
	// the FACS is below 4 GiB, so the 32-bit field. X_DSDT supersedes
	// DSDT; both are given, equal, for OSes that read only one.
	le.PutUint32(b[fadtOffFirmwareCtrl:], uint32(facsAddr))
	le.PutUint32(b[fadtOffDSDT:], uint32(dsdtAddr))
	b[fadtOffPMProfile] = 0 // unspecified
	le.PutUint16(b[fadtOffSCIInt:], SCIInterrupt)
	le.PutUint32(b[fadtOffSMICmd:], 0)
	le.PutUint32(b[fadtOffPM1aEvtBlk:], PM1aEventPort)
	le.PutUint32(b[fadtOffPM1aCntBlk:], PM1aControlPort)
	le.PutUint32(b[fadtOffPMTmrBlk:], PMTimerPort)
	b[fadtOffPM1EvtLen] = PM1EventLength
	b[fadtOffPM1CntLen] = PM1ControlLength
	b[fadtOffPMTmrLen] = PMTimerLength
	le.PutUint16(b[fadtOffPLvl2Lat:], noC2Latency)
	le.PutUint16(b[fadtOffPLvl3Lat:], noC3Latency)
	le.PutUint16(b[fadtOffBootArch:], BootArchFlags)
	le.PutUint32(b[fadtOffFlags:], FADTFlags)
	putGAS(b[fadtOffResetReg:], gasSystemIO, 8, gasAccessByte, ResetPort)
	b[fadtOffResetValue] = ResetValue
	b[fadtOffMinorVersion] = fadtMinorVersion
	le.PutUint64(b[fadtOffXFirmwareCtrl:], 0)
	le.PutUint64(b[fadtOffXDSDT:], dsdtAddr)
	putGAS(b[fadtOffXPM1aEvtBlk:], gasSystemIO, PM1EventLength*8, gasAccessUndef, PM1aEventPort)
	putGAS(b[fadtOffXPM1aCntBlk:], gasSystemIO, PM1ControlLength*8, gasAccessUndef, PM1aControlPort)
	putGAS(b[fadtOffXPMTmrBlk:], gasSystemIO, PMTimerLength*8, gasAccessDword, PMTimerPort)
	copy(b[fadtOffHypervisorID:fadtOffHypervisorID+8], HypervisorVendor)
	return finish(b)
}

// MADT entries (ACPI 6.5, 5.2.12).
const (
	madtFlagPCATCompat = 1 << 0 // dual 8259s present (5.2.12, Table 5.20)

	madtLocalAPIC       = 0 // 5.2.12.2
	madtLocalAPICLength = 8
	madtIOAPIC          = 1 // 5.2.12.3
	madtIOAPICLength    = 12
	madtOverride        = 2 // 5.2.12.5
	madtOverrideLength  = 10
	madtLAPICNMI        = 4 // 5.2.12.7
	madtLAPICNMILength  = 6

	madtLAPICEnabled = 1 << 0

	// MPS INTI flags (5.2.12.5, Table 5.26): polarity bits 1:0, trigger
	// mode bits 3:2.
	intiActiveHigh = 1
	intiActiveLow  = 3
	intiEdge       = 1 << 2
	intiLevel      = 3 << 2

	// allProcessors is the processor UID that means every processor in
	// a type 4 entry.
	allProcessors = 0xff
	// nmiLINT is the local APIC pin wired to NMI on a PC.
	nmiLINT = 1
)

// Interrupt routing the MADT states, for the interrupt controller models.
const (
	// TimerGSI is where ISA IRQ 0 (the PIT) arrives: IOAPIC input 2, as
	// on every PC since the 8259 cascade took input 0's place.
	TimerGSI = 2
	// SCIGSI is where the SCI (ISA IRQ 9) arrives: GSI 9, level, low.
	SCIGSI = SCIInterrupt
)

// madt builds the Multiple APIC Description Table (ACPI 6.5, 5.2.12): one
// enabled local APIC per vCPU (processor UID and APIC ID both i), the I/O
// APIC, IRQ 0 to GSI 2 edge/high, IRQ 9 (the SCI) level/low, and NMI on
// LINT1 of every processor.
func madt(l *Layout) []byte {
	le := binary.LittleEndian
	n := madtEntriesOffset + l.VCPUs*madtLocalAPICLength + madtIOAPICLength + 2*madtOverrideLength + madtLAPICNMILength
	b := header("APIC", madtRevision, n)
	le.PutUint32(b[36:], LocalAPICAddress)
	le.PutUint32(b[40:], madtFlagPCATCompat)
	off := madtEntriesOffset
	for i := 0; i < l.VCPUs; i++ {
		e := b[off : off+madtLocalAPICLength]
		e[0], e[1] = madtLocalAPIC, madtLocalAPICLength
		e[2] = byte(i) // ACPI processor UID
		e[3] = byte(i) // APIC ID
		le.PutUint32(e[4:], madtLAPICEnabled)
		off += madtLocalAPICLength
	}
	e := b[off : off+madtIOAPICLength]
	e[0], e[1], e[2] = madtIOAPIC, madtIOAPICLength, IOAPICID
	le.PutUint32(e[4:], IOAPICAddress)
	le.PutUint32(e[8:], IOAPICGSIBase)
	off += madtIOAPICLength
	for _, o := range []struct {
		irq   uint8
		gsi   uint32
		flags uint16
	}{
		{0, TimerGSI, intiActiveHigh | intiEdge},
		{SCIInterrupt, SCIGSI, intiActiveLow | intiLevel},
	} {
		e := b[off : off+madtOverrideLength]
		e[0], e[1], e[2], e[3] = madtOverride, madtOverrideLength, 0 /* ISA */, o.irq
		le.PutUint32(e[4:], o.gsi)
		le.PutUint16(e[8:], o.flags)
		off += madtOverrideLength
	}
	e = b[off : off+madtLAPICNMILength]
	e[0], e[1], e[2] = madtLAPICNMI, madtLAPICNMILength, allProcessors
	le.PutUint16(e[3:], intiActiveHigh|intiEdge)
	e[5] = nmiLINT
	return finish(b)
}

// mcfg builds the MCFG (PCI Firmware Specification 3.3, 4.1.2): one
// allocation, the ECAM of segment 0.
func mcfg(l *Layout) []byte {
	b := header("MCFG", mcfgRevision, mcfgHeaderLength+16)
	e := b[mcfgHeaderLength:]
	binary.LittleEndian.PutUint64(e[0:], l.ECAM.Start)
	binary.LittleEndian.PutUint16(e[8:], 0) // segment group
	e[10] = ECAMStartBus
	e[11] = ECAMEndBus
	return finish(b)
}

// DSDT returns the Differentiated System Description Table: the header and
// this AML (ACPI 6.5, 5.2.11.1):
//
//	Name (_S5, Package (4) { SleepTypeS5, 0, 0, 0 })
//	Scope (_SB) {
//	    Device (PCI0) {
//	        Name (_HID, EisaId ("PNP0A08"))  // PCI Express root bridge
//	        Name (_CID, EisaId ("PNP0A03"))  // compatible with PCI
//	        Name (_UID, 0)
//	        Name (_SEG, 0)
//	        Name (_BBN, 0)
//	        Name (_CRS, ResourceTemplate () {
//	            WordBusNumber: buses 0-255
//	            IO: 0xcf8-0xcff, the configuration ports, consumed
//	            WordIO: 0x0000-0x0cf7 and 0x0d00-0xffff, forwarded
//	            DWordMemory: the 32-bit MMIO window
//	        })
//	    }
//	}
//
// \_S5 is what an OS writes to PM1a_CNT.SLP_TYP to power off (ACPI 6.5,
// 7.4.2); the second element is PM1b's, which does not exist. Names are
// relative to the root scope, as iasl writes them.
func DSDT(l *Layout) ([]byte, error) {
	var a aml.Builder
	s5 := a.Name("_S5", a.Package(aml.Integer(SleepTypeS5), aml.Integer(0), aml.Integer(0), aml.Integer(0)))
	crs := a.ResourceTemplate(
		a.WordAddress(aml.AddressRange{Type: aml.BusRange, GeneralFlags: aml.MinFixed | aml.MaxFixed,
			Min: ECAMStartBus, Max: ECAMEndBus, Length: ECAMEndBus - ECAMStartBus + 1}),
		a.IOPort(0xcf8, 0xcf8, 1, 8),
		a.WordAddress(aml.AddressRange{Type: aml.IORange, GeneralFlags: aml.MinFixed | aml.MaxFixed, TypeFlags: aml.IOEntireRange,
			Min: 0x0000, Max: 0x0cf7, Length: 0x0cf8}),
		a.WordAddress(aml.AddressRange{Type: aml.IORange, GeneralFlags: aml.MinFixed | aml.MaxFixed, TypeFlags: aml.IOEntireRange,
			Min: 0x0d00, Max: 0xffff, Length: 0xf300}),
		a.DWordAddress(aml.AddressRange{Type: aml.MemoryRange, GeneralFlags: aml.MinFixed | aml.MaxFixed, TypeFlags: aml.MemoryReadWrite,
			Min: l.PCIMMIO.Start, Max: l.PCIMMIO.End - 1, Length: l.PCIMMIO.Size()}),
	)
	pci0 := a.Device("PCI0",
		a.Name("_HID", a.EISAIDTerm("PNP0A08")),
		a.Name("_CID", a.EISAIDTerm("PNP0A03")),
		a.Name("_UID", aml.Integer(0)),
		a.Name("_SEG", aml.Integer(0)),
		a.Name("_BBN", aml.Integer(0)),
		a.Name("_CRS", crs),
	)
	body := a.DefinitionBlock(s5, a.Scope("_SB", pci0))
	if err := a.Err(); err != nil {
		return nil, fmt.Errorf("platform: DSDT: %v", err)
	}
	b := header("DSDT", dsdtRevision, headerLength+len(body))
	copy(b[headerLength:], body)
	return finish(b), nil
}
