package acpi

import (
	"encoding/binary"
	"fmt"
)

// FADT is the Fixed ACPI Description Table, signature "FACP" (ACPI 6.5,
// 5.2.9). Fields past the table's length (older revisions are
// shorter) are zero. The legacy 32-bit port fields and their 64-bit X_
// counterparts are both kept; the methods pick the one ACPI says to use.
type FADT struct {
	Revision     uint8
	MinorVersion uint8 // FADT Minor Version, from ACPI 5.1

	FirmwareCtrl  uint32 // FACS address (32-bit)
	DSDT          uint32
	XFirmwareCtrl uint64
	XDSDT         uint64

	// PreferredPMProfile, PStateControl, CSTControl and BootArch are
	// reserved in ACPI 1.0 FADTs; like ACPICA, they are read only from
	// tables longer than the ACPI 1.0b layout (132 bytes).
	PreferredPMProfile uint8
	SCIInterrupt       uint16 // the SCI's 8259 IRQ / GSI
	SMICommand         uint32 // port; 0 when the platform has no SMM mode switch
	ACPIEnable         uint8
	ACPIDisable        uint8
	S4BIOSRequest      uint8
	PStateControl      uint8

	PM1aEventBlock   uint32 // legacy I/O ports
	PM1bEventBlock   uint32
	PM1aControlBlock uint32
	PM1bControlBlock uint32
	PM2ControlBlock  uint32
	PMTimerBlock     uint32
	GPE0Block        uint32
	GPE1Block        uint32
	PM1EventLength   uint8
	PM1ControlLength uint8
	PM2ControlLength uint8
	PMTimerLength    uint8
	GPE0BlockLength  uint8
	GPE1BlockLength  uint8
	GPE1Base         uint8
	CSTControl       uint8

	Century  uint8 // RTC CMOS index of the century byte; 0 when none
	BootArch BootArchFlags
	Flags    FADTFlags

	ResetRegister GenericAddress
	ResetValue    uint8

	XPM1aEventBlock   GenericAddress
	XPM1bEventBlock   GenericAddress
	XPM1aControlBlock GenericAddress
	XPM1bControlBlock GenericAddress
	XPM2ControlBlock  GenericAddress
	XPMTimerBlock     GenericAddress
	XGPE0Block        GenericAddress
	XGPE1Block        GenericAddress
	SleepControl      GenericAddress // hardware-reduced platforms
	SleepStatus       GenericAddress
	HypervisorVendor  uint64
}

// FADT field offsets (ACPI 6.5, 5.2.9).
const (
	fadtOffFirmwareCtrl  = 36
	fadtOffDSDT          = 40
	fadtOffPMProfile     = 45
	fadtOffSCIInt        = 46
	fadtOffSMICmd        = 48
	fadtOffACPIEnable    = 52
	fadtOffACPIDisable   = 53
	fadtOffS4BIOSReq     = 54
	fadtOffPStateCnt     = 55
	fadtOffPM1aEvtBlk    = 56
	fadtOffPM1bEvtBlk    = 60
	fadtOffPM1aCntBlk    = 64
	fadtOffPM1bCntBlk    = 68
	fadtOffPM2CntBlk     = 72
	fadtOffPMTmrBlk      = 76
	fadtOffGPE0Blk       = 80
	fadtOffGPE1Blk       = 84
	fadtOffPM1EvtLen     = 88
	fadtOffPM1CntLen     = 89
	fadtOffPM2CntLen     = 90
	fadtOffPMTmrLen      = 91
	fadtOffGPE0BlkLen    = 92
	fadtOffGPE1BlkLen    = 93
	fadtOffGPE1Base      = 94
	fadtOffCSTCnt        = 95
	fadtOffCentury       = 108
	fadtOffBootArch      = 109
	fadtOffFlags         = 112
	fadtOffResetReg      = 116
	fadtOffResetValue    = 128
	fadtOffMinorVersion  = 131
	fadtOffXFirmwareCtrl = 132
	fadtOffXDSDT         = 140
	fadtOffXPM1aEvtBlk   = 148
	fadtOffXPM1bEvtBlk   = 160
	fadtOffXPM1aCntBlk   = 172
	fadtOffXPM1bCntBlk   = 184
	fadtOffXPM2CntBlk    = 196
	fadtOffXPMTmrBlk     = 208
	fadtOffXGPE0Blk      = 220
	fadtOffXGPE1Blk      = 232
	fadtOffSleepControl  = 244
	fadtOffSleepStatus   = 256
	fadtOffHypervisorID  = 268
	// FADTLength is the ACPI 6.5 FADT size.
	FADTLength = 276
	// fadtV1Length is the ACPI 1.0 FADT: everything up to Flags.
	fadtV1Length = 116
	// fadtV2Length ends at FADT Minor Version (ACPICA's ACPI_FADT_V2_SIZE).
	fadtV2Length = 132
)

// FADTFlags is the FADT Flags field (ACPI 6.5, 5.2.9).
type FADTFlags uint32

const (
	FADTWBInvd                FADTFlags = 1 << 0
	FADTWBInvdFlush           FADTFlags = 1 << 1
	FADTProcC1                FADTFlags = 1 << 2
	FADTPLvl2Up               FADTFlags = 1 << 3
	FADTPowerButton           FADTFlags = 1 << 4 // set: power button is a control method device
	FADTSleepButton           FADTFlags = 1 << 5
	FADTFixedRTC              FADTFlags = 1 << 6
	FADTRTCS4                 FADTFlags = 1 << 7
	FADTTimerValExt           FADTFlags = 1 << 8 // TMR_VAL_EXT: the PM timer is 32 bits, else 24
	FADTDockCap               FADTFlags = 1 << 9
	FADTResetRegSupported     FADTFlags = 1 << 10
	FADTSealedCase            FADTFlags = 1 << 11
	FADTHeadless              FADTFlags = 1 << 12
	FADTCPUSoftwareSleep      FADTFlags = 1 << 13
	FADTPCIExpressWake        FADTFlags = 1 << 14
	FADTUsePlatformClock      FADTFlags = 1 << 15
	FADTS4RTCStatusValid      FADTFlags = 1 << 16
	FADTRemotePowerOn         FADTFlags = 1 << 17
	FADTForceAPICCluster      FADTFlags = 1 << 18
	FADTForceAPICPhysicalDest FADTFlags = 1 << 19
	FADTHardwareReduced       FADTFlags = 1 << 20 // HW_REDUCED_ACPI
	FADTLowPowerS0Idle        FADTFlags = 1 << 21
)

// BootArchFlags is IA-PC Boot Architecture Flags (IAPC_BOOT_ARCH; ACPI
// 6.5, 5.2.9.3).
type BootArchFlags uint16

const (
	BootLegacyDevices BootArchFlags = 1 << 0 // LPC/ISA devices the OS cannot enumerate
	Boot8042          BootArchFlags = 1 << 1 // an 8042 keyboard controller is present
	BootNoVGA         BootArchFlags = 1 << 2 // do not probe VGA
	BootNoMSI         BootArchFlags = 1 << 3 // MSI must not be enabled
	BootNoPCIeASPM    BootArchFlags = 1 << 4 // OSPM must not touch ASPM
	BootNoCMOSRTC     BootArchFlags = 1 << 5 // no RTC at the legacy CMOS ports
)

// ParseFADT decodes a FADT (the whole table, header included).
func ParseFADT(raw []byte) (*FADT, error) {
	b, err := checkHeader(raw, SigFADT, fadtV1Length)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	f := &FADT{
		Revision:         b[hdrOffRevision],
		FirmwareCtrl:     le.Uint32(b[fadtOffFirmwareCtrl:]),
		DSDT:             le.Uint32(b[fadtOffDSDT:]),
		SCIInterrupt:     le.Uint16(b[fadtOffSCIInt:]),
		SMICommand:       le.Uint32(b[fadtOffSMICmd:]),
		ACPIEnable:       b[fadtOffACPIEnable],
		ACPIDisable:      b[fadtOffACPIDisable],
		S4BIOSRequest:    b[fadtOffS4BIOSReq],
		PM1aEventBlock:   le.Uint32(b[fadtOffPM1aEvtBlk:]),
		PM1bEventBlock:   le.Uint32(b[fadtOffPM1bEvtBlk:]),
		PM1aControlBlock: le.Uint32(b[fadtOffPM1aCntBlk:]),
		PM1bControlBlock: le.Uint32(b[fadtOffPM1bCntBlk:]),
		PM2ControlBlock:  le.Uint32(b[fadtOffPM2CntBlk:]),
		PMTimerBlock:     le.Uint32(b[fadtOffPMTmrBlk:]),
		GPE0Block:        le.Uint32(b[fadtOffGPE0Blk:]),
		GPE1Block:        le.Uint32(b[fadtOffGPE1Blk:]),
		PM1EventLength:   b[fadtOffPM1EvtLen],
		PM1ControlLength: b[fadtOffPM1CntLen],
		PM2ControlLength: b[fadtOffPM2CntLen],
		PMTimerLength:    b[fadtOffPMTmrLen],
		GPE0BlockLength:  b[fadtOffGPE0BlkLen],
		GPE1BlockLength:  b[fadtOffGPE1BlkLen],
		GPE1Base:         b[fadtOffGPE1Base],
		Century:          b[fadtOffCentury],
		Flags:            FADTFlags(le.Uint32(b[fadtOffFlags:])),
	}
	if len(b) > fadtV2Length {
		f.PreferredPMProfile = b[fadtOffPMProfile]
		f.PStateControl = b[fadtOffPStateCnt]
		f.CSTControl = b[fadtOffCSTCnt]
		f.BootArch = BootArchFlags(le.Uint16(b[fadtOffBootArch:]))
	}
	gas := func(off int) GenericAddress {
		if off+GASLength > len(b) {
			return GenericAddress{}
		}
		return decodeGAS(b[off:])
	}
	f.ResetRegister = gas(fadtOffResetReg)
	if fadtOffResetValue < len(b) {
		f.ResetValue = b[fadtOffResetValue]
	}
	if fadtOffMinorVersion < len(b) {
		f.MinorVersion = b[fadtOffMinorVersion] & 0x0f
	}
	if fadtOffXFirmwareCtrl+8 <= len(b) {
		f.XFirmwareCtrl = le.Uint64(b[fadtOffXFirmwareCtrl:])
	}
	if fadtOffXDSDT+8 <= len(b) {
		f.XDSDT = le.Uint64(b[fadtOffXDSDT:])
	}
	f.XPM1aEventBlock = gas(fadtOffXPM1aEvtBlk)
	f.XPM1bEventBlock = gas(fadtOffXPM1bEvtBlk)
	f.XPM1aControlBlock = gas(fadtOffXPM1aCntBlk)
	f.XPM1bControlBlock = gas(fadtOffXPM1bCntBlk)
	f.XPM2ControlBlock = gas(fadtOffXPM2CntBlk)
	f.XPMTimerBlock = gas(fadtOffXPMTmrBlk)
	f.XGPE0Block = gas(fadtOffXGPE0Blk)
	f.XGPE1Block = gas(fadtOffXGPE1Blk)
	f.SleepControl = gas(fadtOffSleepControl)
	f.SleepStatus = gas(fadtOffSleepStatus)
	if fadtOffHypervisorID+8 <= len(b) {
		f.HypervisorVendor = le.Uint64(b[fadtOffHypervisorID:])
	}
	return f, nil
}

// DSDTAddress is X_DSDT when set, else DSDT (ACPI 6.5, 5.2.9: a non-zero
// X_DSDT supersedes DSDT).
func (f *FADT) DSDTAddress() uint64 {
	if f.XDSDT != 0 {
		return f.XDSDT
	}
	return uint64(f.DSDT)
}

// FACSAddress is X_FIRMWARE_CTRL when set, else FIRMWARE_CTRL.
func (f *FADT) FACSAddress() uint64 {
	if f.XFirmwareCtrl != 0 {
		return f.XFirmwareCtrl
	}
	return uint64(f.FirmwareCtrl)
}

// HardwareReduced reports HW_REDUCED_ACPI: no fixed hardware (PM timer,
// PM1 blocks, GPEs) at all (ACPI 6.5, 4.1).
func (f *FADT) HardwareReduced() bool { return f.Flags&FADTHardwareReduced != 0 }

// resolve picks a fixed-hardware register block: the X_ form when it names
// an address, else the legacy I/O port with the legacy length.
func resolve(x GenericAddress, port uint32, length uint8) GenericAddress {
	if x.Present() {
		return x
	}
	if port == 0 {
		return GenericAddress{}
	}
	return GenericAddress{Space: SpaceSystemIO, BitWidth: length * 8, Address: uint64(port)}
}

// PMTimer is the ACPI power-management timer register (ACPI 6.5, 4.8.3.3),
// and whether the platform has one: hardware-reduced platforms do not.
// Its counter is 32 bits wide when PMTimer32Bit, else 24, and runs at
// 3.579545 MHz.
func (f *FADT) PMTimer() (GenericAddress, bool) {
	if f.HardwareReduced() {
		return GenericAddress{}, false
	}
	g := resolve(f.XPMTimerBlock, f.PMTimerBlock, f.PMTimerLength)
	return g, g.Present()
}

// PMTimer32Bit reports TMR_VAL_EXT.
func (f *FADT) PMTimer32Bit() bool { return f.Flags&FADTTimerValExt != 0 }

// PMTimerHz is the ACPI PM timer's fixed frequency (ACPI 6.5, 4.8.3.3).
const PMTimerHz = 3579545

// PM1aControl is the PM1a control register block (SLP_TYP/SLP_EN live
// there; ACPI 6.5, 4.8.3.2).
func (f *FADT) PM1aControl() GenericAddress {
	return resolve(f.XPM1aControlBlock, f.PM1aControlBlock, f.PM1ControlLength)
}

// PM1bControl is the optional PM1b control register block.
func (f *FADT) PM1bControl() GenericAddress {
	return resolve(f.XPM1bControlBlock, f.PM1bControlBlock, f.PM1ControlLength)
}

// PM1aEvent is the PM1a event register block.
func (f *FADT) PM1aEvent() GenericAddress {
	return resolve(f.XPM1aEventBlock, f.PM1aEventBlock, f.PM1EventLength)
}

// Reset is the reset register and the value to write to it (ACPI 6.5,
// 4.8.4.6), when the firmware says it is supported (RESET_REG_SUP).
func (f *FADT) Reset() (GenericAddress, uint8, bool) {
	if f.Flags&FADTResetRegSupported == 0 || !f.ResetRegister.Present() {
		return GenericAddress{}, 0, false
	}
	return f.ResetRegister, f.ResetValue, true
}

func (f BootArchFlags) String() string {
	names := []string{"legacy-devices", "8042", "no-VGA", "no-MSI", "no-ASPM", "no-CMOS-RTC"}
	return flagString(uint64(f), names)
}

func flagString(v uint64, names []string) string {
	s := ""
	for i, n := range names {
		if v&(1<<i) != 0 {
			if s != "" {
				s += ","
			}
			s += n
			v &^= 1 << i
		}
	}
	if v != 0 {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%#x", v)
	}
	if s == "" {
		return "none"
	}
	return s
}
