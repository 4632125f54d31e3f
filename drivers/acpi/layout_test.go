package acpi

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// These mirror the specification's layouts field by field, with Go types
// of the specified widths, so that the hand-written offsets the decoders
// use are checked against an independent transcription.

type specHeader struct { // ACPI 6.5, 5.2.6
	Signature       [4]byte
	Length          uint32
	Revision        uint8
	Checksum        uint8
	OEMID           [6]byte
	OEMTableID      [8]byte
	OEMRevision     uint32
	CreatorID       [4]byte
	CreatorRevision uint32
}

type specRSDP struct { // ACPI 6.5, 5.2.5.3
	Signature        [8]byte
	Checksum         uint8
	OEMID            [6]byte
	Revision         uint8
	RsdtAddress      uint32
	Length           uint32
	XsdtAddress      uint64
	ExtendedChecksum uint8
	Reserved         [3]byte
}

type specGAS [12]byte

type specFADT struct { // ACPI 6.5, 5.2.9
	Header             specHeader
	FirmwareCtrl       uint32
	DSDT               uint32
	Reserved0          uint8
	PreferredPMProfile uint8
	SCIInt             uint16
	SMICmd             uint32
	ACPIEnable         uint8
	ACPIDisable        uint8
	S4BIOSReq          uint8
	PStateCnt          uint8
	PM1aEvtBlk         uint32
	PM1bEvtBlk         uint32
	PM1aCntBlk         uint32
	PM1bCntBlk         uint32
	PM2CntBlk          uint32
	PMTmrBlk           uint32
	GPE0Blk            uint32
	GPE1Blk            uint32
	PM1EvtLen          uint8
	PM1CntLen          uint8
	PM2CntLen          uint8
	PMTmrLen           uint8
	GPE0BlkLen         uint8
	GPE1BlkLen         uint8
	GPE1Base           uint8
	CSTCnt             uint8
	PLvl2Lat           uint16
	PLvl3Lat           uint16
	FlushSize          uint16
	FlushStride        uint16
	DutyOffset         uint8
	DutyWidth          uint8
	DayAlrm            uint8
	MonAlrm            uint8
	Century            uint8
	IAPCBootArch       uint16
	Reserved1          uint8
	Flags              uint32
	ResetReg           specGAS
	ResetValue         uint8
	ARMBootArch        uint16
	MinorVersion       uint8
	XFirmwareCtrl      uint64
	XDSDT              uint64
	XPM1aEvtBlk        specGAS
	XPM1bEvtBlk        specGAS
	XPM1aCntBlk        specGAS
	XPM1bCntBlk        specGAS
	XPM2CntBlk         specGAS
	XPMTmrBlk          specGAS
	XGPE0Blk           specGAS
	XGPE1Blk           specGAS
	SleepControlReg    specGAS
	SleepStatusReg     specGAS
	HypervisorVendorID uint64
}

type specHPET struct { // IA-PC HPET 1.0a, 3.2.4
	Header         specHeader
	BlockID        uint32
	Base           specGAS
	Number         uint8
	MinimumTick    uint16
	PageProtection uint8
}

type specMADT struct { // ACPI 6.5, 5.2.12
	Header           specHeader
	LocalAPICAddress uint32
	Flags            uint32
}

type specLocalAPIC struct {
	Type, Length, UID, APICID uint8
	Flags                     uint32
} // 5.2.12.2
type specIOAPIC struct {
	Type, Length, ID, Reserved uint8
	Address, GSIBase           uint32
} // 5.2.12.3
type specOverride struct {
	Type, Length, Bus, Source uint8
	GSI                       uint32
	Flags                     uint16
} // 5.2.12.5
type specNMISource struct {
	Type, Length uint8
	Flags        uint16
	GSI          uint32
} // 5.2.12.6
type specLocalNMI struct {
	Type, Length, UID uint8
	Flags             uint16
	LINT              uint8
} // 5.2.12.7
type specAddrOverride struct {
	Type, Length uint8
	Reserved     uint16
	Address      uint64
} // 5.2.12.8
type specX2APIC struct {
	Type, Length         uint8
	Reserved             uint16
	X2APICID, Flags, UID uint32
} // 5.2.12.12
type specX2NMI struct {
	Type, Length uint8
	Flags        uint16
	UID          uint32
	LINT         uint8
	R            [3]byte
} // 5.2.12.13
type specMCFGAlloc struct {
	Base             uint64
	Segment          uint16
	StartBus, EndBus uint8
	R                uint32
} // PCI FW 4.1.2
type specDRHD struct {
	Type, Length uint16
	Flags, Size  uint8
	Segment      uint16
	Base         uint64
} // VT-d 8.3
type specRMRR struct {
	Type, Length, Reserved, Segment uint16
	Base, Limit                     uint64
} // VT-d 8.4
type specATSR struct {
	Type, Length    uint16
	Flags, Reserved uint8
	Segment         uint16
} // VT-d 8.5
type specRHSA struct {
	Type, Length uint16
	Reserved     uint32
	Base         uint64
	Domain       uint32
}                                                                                     // VT-d 8.6
type specScope struct{ Type, Length, Flags, Reserved, EnumerationID, StartBus uint8 } // VT-d 8.3.1
type specIVMD struct {
	Type, Flags           uint8
	Length, DeviceID, Aux uint16
	R, Start, Size        uint64
} // AMD 5.2.3

type specIVHD10 struct { // #48882, 5.2.2.1
	Type, Flags      uint8
	Length, DeviceID uint16
	CapOffset        uint16
	Base             uint64
	Segment, Info    uint16
	Feature          uint32
}

type specIVHD11 struct {
	specIVHD10
	EFR, EFR2 uint64
}

// offset returns the packed offset of field name in the struct v.
func offset(t *testing.T, v any, name string) int {
	t.Helper()
	typ := reflect.TypeOf(v)
	off := 0
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Name == name {
			return off
		}
		off += binary.Size(reflect.Zero(f.Type).Interface())
	}
	t.Fatalf("%T has no field %s", v, name)
	return 0
}

func TestLayouts(t *testing.T) {
	size := func(v any) int { return binary.Size(v) }
	checks := []struct {
		what      string
		got, want int
	}{
		{"header size", HeaderLength, size(specHeader{})},
		{"header Length", hdrOffLength, offset(t, specHeader{}, "Length")},
		{"header Revision", hdrOffRevision, offset(t, specHeader{}, "Revision")},
		{"header OEMID", hdrOffOEMID, offset(t, specHeader{}, "OEMID")},
		{"header OEMTableID", hdrOffOEMTableID, offset(t, specHeader{}, "OEMTableID")},
		{"header OEMRevision", hdrOffOEMRevision, offset(t, specHeader{}, "OEMRevision")},
		{"header CreatorID", hdrOffCreatorID, offset(t, specHeader{}, "CreatorID")},
		{"header CreatorRevision", hdrOffCreatorRevision, offset(t, specHeader{}, "CreatorRevision")},

		{"RSDP v2 size", rsdpV2Length, size(specRSDP{})},
		{"RSDP v1 size", rsdpV1Length, offset(t, specRSDP{}, "Length")},
		{"RSDP Revision", rsdpOffRevision, offset(t, specRSDP{}, "Revision")},
		{"RSDP RSDT", rsdpOffRSDT, offset(t, specRSDP{}, "RsdtAddress")},
		{"RSDP Length", rsdpOffLength, offset(t, specRSDP{}, "Length")},
		{"RSDP XSDT", rsdpOffXSDT, offset(t, specRSDP{}, "XsdtAddress")},

		{"GAS size", GASLength, size(specGAS{})},

		{"FADT size", FADTLength, size(specFADT{})},
		{"FADT v1 size", fadtV1Length, offset(t, specFADT{}, "ResetReg")},
		{"FADT v2 size", fadtV2Length, offset(t, specFADT{}, "XFirmwareCtrl")},
		{"FADT FIRMWARE_CTRL", fadtOffFirmwareCtrl, offset(t, specFADT{}, "FirmwareCtrl")},
		{"FADT DSDT", fadtOffDSDT, offset(t, specFADT{}, "DSDT")},
		{"FADT PM profile", fadtOffPMProfile, offset(t, specFADT{}, "PreferredPMProfile")},
		{"FADT SCI_INT", fadtOffSCIInt, offset(t, specFADT{}, "SCIInt")},
		{"FADT SMI_CMD", fadtOffSMICmd, offset(t, specFADT{}, "SMICmd")},
		{"FADT ACPI_ENABLE", fadtOffACPIEnable, offset(t, specFADT{}, "ACPIEnable")},
		{"FADT ACPI_DISABLE", fadtOffACPIDisable, offset(t, specFADT{}, "ACPIDisable")},
		{"FADT S4BIOS_REQ", fadtOffS4BIOSReq, offset(t, specFADT{}, "S4BIOSReq")},
		{"FADT PSTATE_CNT", fadtOffPStateCnt, offset(t, specFADT{}, "PStateCnt")},
		{"FADT PM1a_EVT_BLK", fadtOffPM1aEvtBlk, offset(t, specFADT{}, "PM1aEvtBlk")},
		{"FADT PM1b_EVT_BLK", fadtOffPM1bEvtBlk, offset(t, specFADT{}, "PM1bEvtBlk")},
		{"FADT PM1a_CNT_BLK", fadtOffPM1aCntBlk, offset(t, specFADT{}, "PM1aCntBlk")},
		{"FADT PM1b_CNT_BLK", fadtOffPM1bCntBlk, offset(t, specFADT{}, "PM1bCntBlk")},
		{"FADT PM2_CNT_BLK", fadtOffPM2CntBlk, offset(t, specFADT{}, "PM2CntBlk")},
		{"FADT PM_TMR_BLK", fadtOffPMTmrBlk, offset(t, specFADT{}, "PMTmrBlk")},
		{"FADT GPE0_BLK", fadtOffGPE0Blk, offset(t, specFADT{}, "GPE0Blk")},
		{"FADT GPE1_BLK", fadtOffGPE1Blk, offset(t, specFADT{}, "GPE1Blk")},
		{"FADT PM1_EVT_LEN", fadtOffPM1EvtLen, offset(t, specFADT{}, "PM1EvtLen")},
		{"FADT PM1_CNT_LEN", fadtOffPM1CntLen, offset(t, specFADT{}, "PM1CntLen")},
		{"FADT PM2_CNT_LEN", fadtOffPM2CntLen, offset(t, specFADT{}, "PM2CntLen")},
		{"FADT PM_TMR_LEN", fadtOffPMTmrLen, offset(t, specFADT{}, "PMTmrLen")},
		{"FADT GPE0_BLK_LEN", fadtOffGPE0BlkLen, offset(t, specFADT{}, "GPE0BlkLen")},
		{"FADT GPE1_BLK_LEN", fadtOffGPE1BlkLen, offset(t, specFADT{}, "GPE1BlkLen")},
		{"FADT GPE1_BASE", fadtOffGPE1Base, offset(t, specFADT{}, "GPE1Base")},
		{"FADT CST_CNT", fadtOffCSTCnt, offset(t, specFADT{}, "CSTCnt")},
		{"FADT CENTURY", fadtOffCentury, offset(t, specFADT{}, "Century")},
		{"FADT IAPC_BOOT_ARCH", fadtOffBootArch, offset(t, specFADT{}, "IAPCBootArch")},
		{"FADT Flags", fadtOffFlags, offset(t, specFADT{}, "Flags")},
		{"FADT RESET_REG", fadtOffResetReg, offset(t, specFADT{}, "ResetReg")},
		{"FADT RESET_VALUE", fadtOffResetValue, offset(t, specFADT{}, "ResetValue")},
		{"FADT minor version", fadtOffMinorVersion, offset(t, specFADT{}, "MinorVersion")},
		{"FADT X_FIRMWARE_CTRL", fadtOffXFirmwareCtrl, offset(t, specFADT{}, "XFirmwareCtrl")},
		{"FADT X_DSDT", fadtOffXDSDT, offset(t, specFADT{}, "XDSDT")},
		{"FADT X_PM1a_EVT_BLK", fadtOffXPM1aEvtBlk, offset(t, specFADT{}, "XPM1aEvtBlk")},
		{"FADT X_PM1b_EVT_BLK", fadtOffXPM1bEvtBlk, offset(t, specFADT{}, "XPM1bEvtBlk")},
		{"FADT X_PM1a_CNT_BLK", fadtOffXPM1aCntBlk, offset(t, specFADT{}, "XPM1aCntBlk")},
		{"FADT X_PM1b_CNT_BLK", fadtOffXPM1bCntBlk, offset(t, specFADT{}, "XPM1bCntBlk")},
		{"FADT X_PM2_CNT_BLK", fadtOffXPM2CntBlk, offset(t, specFADT{}, "XPM2CntBlk")},
		{"FADT X_PM_TMR_BLK", fadtOffXPMTmrBlk, offset(t, specFADT{}, "XPMTmrBlk")},
		{"FADT X_GPE0_BLK", fadtOffXGPE0Blk, offset(t, specFADT{}, "XGPE0Blk")},
		{"FADT X_GPE1_BLK", fadtOffXGPE1Blk, offset(t, specFADT{}, "XGPE1Blk")},
		{"FADT SLEEP_CONTROL_REG", fadtOffSleepControl, offset(t, specFADT{}, "SleepControlReg")},
		{"FADT SLEEP_STATUS_REG", fadtOffSleepStatus, offset(t, specFADT{}, "SleepStatusReg")},
		{"FADT hypervisor ID", fadtOffHypervisorID, offset(t, specFADT{}, "HypervisorVendorID")},

		{"HPET size", HPETLength, size(specHPET{})},
		{"HPET block ID", hpetOffBlockID, offset(t, specHPET{}, "BlockID")},
		{"HPET base", hpetOffBase, offset(t, specHPET{}, "Base")},
		{"HPET number", hpetOffNumber, offset(t, specHPET{}, "Number")},
		{"HPET minimum tick", hpetOffMinimumTick, offset(t, specHPET{}, "MinimumTick")},
		{"HPET page protection", hpetOffPageProtection, offset(t, specHPET{}, "PageProtection")},

		{"MADT fixed part", madtEntriesOffset, size(specMADT{})},
		{"MADT LAPIC address", madtOffLocalAPICAddress, offset(t, specMADT{}, "LocalAPICAddress")},
		{"MADT flags", madtOffFlags, offset(t, specMADT{}, "Flags")},
		{"MADT local APIC", madtLocalAPICLen, size(specLocalAPIC{})},
		{"MADT IOAPIC", madtIOAPICLen, size(specIOAPIC{})},
		{"MADT override", madtOverrideLen, size(specOverride{})},
		{"MADT NMI source", madtNMISourceLen, size(specNMISource{})},
		{"MADT local APIC NMI", madtLocalAPICNMILen, size(specLocalNMI{})},
		{"MADT address override", madtAddrOverrideLen, size(specAddrOverride{})},
		{"MADT x2APIC", madtLocalX2APICLen, size(specX2APIC{})},
		{"MADT x2APIC NMI", madtLocalX2APICNMILn, size(specX2NMI{})},

		{"MCFG allocation", mcfgAllocationLength, size(specMCFGAlloc{})},

		{"DRHD fixed part", drhdScopesOffset, size(specDRHD{})},
		{"RMRR fixed part", rmrrScopesOffset, size(specRMRR{})},
		{"ATSR fixed part", atsrScopesOffset, size(specATSR{})},
		{"RHSA", rhsaLength, size(specRHSA{})},
		{"device scope header", scopeHeader, size(specScope{})},

		{"IVHD 10h fixed part", ivhd10EntriesOffset, size(specIVHD10{})},
		{"IVHD 11h fixed part", ivhd11EntriesOffset, size(specIVHD11{})},
		{"IVMD", ivmdLength, size(specIVMD{})},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: code uses %d, the layout says %d", c.what, c.got, c.want)
		}
	}
}
