package vmx

import "fmt"

// Field is a VMCS field encoding, the operand of VMREAD and VMWRITE (SDM
// Vol. 3C, 25.11.2 "VMREAD, VMWRITE, and Encodings of VMCS Fields", Table
// "Structure of VMCS Component Encoding"; every encoding is listed in SDM
// Vol. 3D, Appendix B "Field Encoding in VMCS"):
//
//	bit 0       access type: 0 full, 1 high (the upper 32 bits of a 64-bit field)
//	bits 9:1    index
//	bits 11:10  type: 0 control, 1 VM-exit information (read-only), 2 guest state, 3 host state
//	bit 12      reserved, 0
//	bits 14:13  width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural-width
//	bits 31:15  reserved, 0
type Field uint32

// FieldWidth is bits 14:13 of an encoding.
type FieldWidth uint8

const (
	Width16      FieldWidth = 0
	Width64      FieldWidth = 1
	Width32      FieldWidth = 2
	WidthNatural FieldWidth = 3
)

// FieldType is bits 11:10 of an encoding.
type FieldType uint8

const (
	TypeControl  FieldType = 0
	TypeExitInfo FieldType = 1 // read-only VM-exit information
	TypeGuest    FieldType = 2
	TypeHost     FieldType = 3
)

// Width, Type, Index and High decode an encoding (Table "Structure of
// VMCS Component Encoding").
func (f Field) Width() FieldWidth { return FieldWidth(f>>13) & 3 }
func (f Field) Type() FieldType   { return FieldType(f>>10) & 3 }
func (f Field) Index() uint16     { return uint16(f>>1) & 0x1ff }
func (f Field) High() bool        { return f&1 != 0 }

// Valid reports whether the reserved bits (12 and 31:15) are clear and a
// high-access encoding names a 64-bit field, as VMREAD/VMWRITE require.
func (f Field) Valid() bool {
	return f&^0x6fff == 0 && (!f.High() || f.Width() == Width64)
}

// ReadOnly reports a VM-exit information field: VMWRITE fails on it unless
// IA32_VMX_MISC bit 29 allows it.
func (f Field) ReadOnly() bool { return f.Type() == TypeExitInfo }

// Bits is the width of the field's value in bits (natural width is 64 on
// processors with Intel 64).
func (f Field) Bits() int {
	switch f.Width() {
	case Width16:
		return 16
	case Width32:
		return 32
	}
	if f.High() {
		return 32
	}
	return 64
}

// 16-bit fields (Appendix B.1).
const (
	FieldVPID Field = 0x0000 // virtual-processor identifier

	FieldGuestESSelector   Field = 0x0800
	FieldGuestCSSelector   Field = 0x0802
	FieldGuestSSSelector   Field = 0x0804
	FieldGuestDSSelector   Field = 0x0806
	FieldGuestFSSelector   Field = 0x0808
	FieldGuestGSSelector   Field = 0x080A
	FieldGuestLDTRSelector Field = 0x080C
	FieldGuestTRSelector   Field = 0x080E

	FieldHostESSelector Field = 0x0C00
	FieldHostCSSelector Field = 0x0C02
	FieldHostSSSelector Field = 0x0C04
	FieldHostDSSelector Field = 0x0C06
	FieldHostFSSelector Field = 0x0C08
	FieldHostGSSelector Field = 0x0C0A
	FieldHostTRSelector Field = 0x0C0C
)

// 64-bit fields (Appendix B.2); the high halves are these plus 1.
const (
	FieldIOBitmapA            Field = 0x2000
	FieldIOBitmapB            Field = 0x2002
	FieldMSRBitmap            Field = 0x2004
	FieldExitMSRStoreAddress  Field = 0x2006
	FieldExitMSRLoadAddress   Field = 0x2008
	FieldEntryMSRLoadAddress  Field = 0x200A
	FieldTSCOffset            Field = 0x2010
	FieldVirtualAPICAddress   Field = 0x2012
	FieldAPICAccessAddress    Field = 0x2014
	FieldEPTPointer           Field = 0x201A
	FieldTSCOffsetHigh        Field = 0x2011
	FieldGuestPhysicalAddress Field = 0x2400 // read-only

	FieldVMCSLinkPointer Field = 0x2800
	FieldGuestDebugCtl   Field = 0x2802 // IA32_DEBUGCTL
	FieldGuestPAT        Field = 0x2804 // IA32_PAT
	FieldGuestEFER       Field = 0x2806 // IA32_EFER
	FieldGuestPDPTE0     Field = 0x280A
	FieldGuestPDPTE1     Field = 0x280C
	FieldGuestPDPTE2     Field = 0x280E
	FieldGuestPDPTE3     Field = 0x2810

	FieldHostPAT  Field = 0x2C00
	FieldHostEFER Field = 0x2C02
)

// 32-bit fields (Appendix B.3).
const (
	FieldPinControls            Field = 0x4000
	FieldProcControls           Field = 0x4002
	FieldExceptionBitmap        Field = 0x4004
	FieldPFErrorCodeMask        Field = 0x4006
	FieldPFErrorCodeMatch       Field = 0x4008
	FieldCR3TargetCount         Field = 0x400A
	FieldExitControls           Field = 0x400C
	FieldExitMSRStoreCount      Field = 0x400E
	FieldExitMSRLoadCount       Field = 0x4010
	FieldEntryControls          Field = 0x4012
	FieldEntryMSRLoadCount      Field = 0x4014
	FieldEntryInterruptionInfo  Field = 0x4016
	FieldEntryExceptionError    Field = 0x4018
	FieldEntryInstructionLength Field = 0x401A
	FieldTPRThreshold           Field = 0x401C
	FieldProc2Controls          Field = 0x401E

	FieldInstructionError      Field = 0x4400 // read-only from here
	FieldExitReason            Field = 0x4402
	FieldExitInterruptionInfo  Field = 0x4404
	FieldExitInterruptionError Field = 0x4406
	FieldIDTVectoringInfo      Field = 0x4408
	FieldIDTVectoringError     Field = 0x440A
	FieldExitInstructionLength Field = 0x440C
	FieldExitInstructionInfo   Field = 0x440E

	FieldGuestESLimit          Field = 0x4800
	FieldGuestCSLimit          Field = 0x4802
	FieldGuestSSLimit          Field = 0x4804
	FieldGuestDSLimit          Field = 0x4806
	FieldGuestFSLimit          Field = 0x4808
	FieldGuestGSLimit          Field = 0x480A
	FieldGuestLDTRLimit        Field = 0x480C
	FieldGuestTRLimit          Field = 0x480E
	FieldGuestGDTRLimit        Field = 0x4810
	FieldGuestIDTRLimit        Field = 0x4812
	FieldGuestESAccessRights   Field = 0x4814
	FieldGuestCSAccessRights   Field = 0x4816
	FieldGuestSSAccessRights   Field = 0x4818
	FieldGuestDSAccessRights   Field = 0x481A
	FieldGuestFSAccessRights   Field = 0x481C
	FieldGuestGSAccessRights   Field = 0x481E
	FieldGuestLDTRAccessRights Field = 0x4820
	FieldGuestTRAccessRights   Field = 0x4822
	FieldGuestInterruptibility Field = 0x4824
	FieldGuestActivityState    Field = 0x4826
	FieldGuestSMBase           Field = 0x4828
	FieldGuestSysenterCS       Field = 0x482A
	FieldPreemptionTimerValue  Field = 0x482E

	FieldHostSysenterCS Field = 0x4C00
)

// Natural-width fields (Appendix B.4).
const (
	FieldCR0GuestHostMask Field = 0x6000
	FieldCR4GuestHostMask Field = 0x6002
	FieldCR0ReadShadow    Field = 0x6004
	FieldCR4ReadShadow    Field = 0x6006

	FieldExitQualification  Field = 0x6400 // read-only
	FieldGuestLinearAddress Field = 0x640A

	FieldGuestCR0          Field = 0x6800
	FieldGuestCR3          Field = 0x6802
	FieldGuestCR4          Field = 0x6804
	FieldGuestESBase       Field = 0x6806
	FieldGuestCSBase       Field = 0x6808
	FieldGuestSSBase       Field = 0x680A
	FieldGuestDSBase       Field = 0x680C
	FieldGuestFSBase       Field = 0x680E
	FieldGuestGSBase       Field = 0x6810
	FieldGuestLDTRBase     Field = 0x6812
	FieldGuestTRBase       Field = 0x6814
	FieldGuestGDTRBase     Field = 0x6816
	FieldGuestIDTRBase     Field = 0x6818
	FieldGuestDR7          Field = 0x681A
	FieldGuestRSP          Field = 0x681C
	FieldGuestRIP          Field = 0x681E
	FieldGuestRFLAGS       Field = 0x6820
	FieldGuestPendingDebug Field = 0x6822
	FieldGuestSysenterESP  Field = 0x6824
	FieldGuestSysenterEIP  Field = 0x6826

	FieldHostCR0         Field = 0x6C00
	FieldHostCR3         Field = 0x6C02
	FieldHostCR4         Field = 0x6C04
	FieldHostFSBase      Field = 0x6C06
	FieldHostGSBase      Field = 0x6C08
	FieldHostTRBase      Field = 0x6C0A
	FieldHostGDTRBase    Field = 0x6C0C
	FieldHostIDTRBase    Field = 0x6C0E
	FieldHostSysenterESP Field = 0x6C10
	FieldHostSysenterEIP Field = 0x6C12
	FieldHostRSP         Field = 0x6C14
	FieldHostRIP         Field = 0x6C16
)

// FieldInfo describes one encoding for dumps and for the encoding test.
type FieldInfo struct {
	Field Field
	Name  string // the SDM's name, upper case with underscores
	Width FieldWidth
	Type  FieldType
}

// Fields lists every encoding this package names, with the width and type
// the SDM gives it; the encoding bits must agree (vmcs_test.go checks it).
var Fields = []FieldInfo{
	{FieldVPID, "VIRTUAL_PROCESSOR_ID", Width16, TypeControl},
	{FieldGuestESSelector, "GUEST_ES_SELECTOR", Width16, TypeGuest},
	{FieldGuestCSSelector, "GUEST_CS_SELECTOR", Width16, TypeGuest},
	{FieldGuestSSSelector, "GUEST_SS_SELECTOR", Width16, TypeGuest},
	{FieldGuestDSSelector, "GUEST_DS_SELECTOR", Width16, TypeGuest},
	{FieldGuestFSSelector, "GUEST_FS_SELECTOR", Width16, TypeGuest},
	{FieldGuestGSSelector, "GUEST_GS_SELECTOR", Width16, TypeGuest},
	{FieldGuestLDTRSelector, "GUEST_LDTR_SELECTOR", Width16, TypeGuest},
	{FieldGuestTRSelector, "GUEST_TR_SELECTOR", Width16, TypeGuest},
	{FieldHostESSelector, "HOST_ES_SELECTOR", Width16, TypeHost},
	{FieldHostCSSelector, "HOST_CS_SELECTOR", Width16, TypeHost},
	{FieldHostSSSelector, "HOST_SS_SELECTOR", Width16, TypeHost},
	{FieldHostDSSelector, "HOST_DS_SELECTOR", Width16, TypeHost},
	{FieldHostFSSelector, "HOST_FS_SELECTOR", Width16, TypeHost},
	{FieldHostGSSelector, "HOST_GS_SELECTOR", Width16, TypeHost},
	{FieldHostTRSelector, "HOST_TR_SELECTOR", Width16, TypeHost},

	{FieldIOBitmapA, "IO_BITMAP_A", Width64, TypeControl},
	{FieldIOBitmapB, "IO_BITMAP_B", Width64, TypeControl},
	{FieldMSRBitmap, "MSR_BITMAP", Width64, TypeControl},
	{FieldExitMSRStoreAddress, "VM_EXIT_MSR_STORE_ADDR", Width64, TypeControl},
	{FieldExitMSRLoadAddress, "VM_EXIT_MSR_LOAD_ADDR", Width64, TypeControl},
	{FieldEntryMSRLoadAddress, "VM_ENTRY_MSR_LOAD_ADDR", Width64, TypeControl},
	{FieldTSCOffset, "TSC_OFFSET", Width64, TypeControl},
	{FieldTSCOffsetHigh, "TSC_OFFSET_HIGH", Width64, TypeControl},
	{FieldVirtualAPICAddress, "VIRTUAL_APIC_PAGE_ADDR", Width64, TypeControl},
	{FieldAPICAccessAddress, "APIC_ACCESS_ADDR", Width64, TypeControl},
	{FieldEPTPointer, "EPT_POINTER", Width64, TypeControl},
	{FieldGuestPhysicalAddress, "GUEST_PHYSICAL_ADDRESS", Width64, TypeExitInfo},
	{FieldVMCSLinkPointer, "VMCS_LINK_POINTER", Width64, TypeGuest},
	{FieldGuestDebugCtl, "GUEST_IA32_DEBUGCTL", Width64, TypeGuest},
	{FieldGuestPAT, "GUEST_IA32_PAT", Width64, TypeGuest},
	{FieldGuestEFER, "GUEST_IA32_EFER", Width64, TypeGuest},
	{FieldGuestPDPTE0, "GUEST_PDPTE0", Width64, TypeGuest},
	{FieldGuestPDPTE1, "GUEST_PDPTE1", Width64, TypeGuest},
	{FieldGuestPDPTE2, "GUEST_PDPTE2", Width64, TypeGuest},
	{FieldGuestPDPTE3, "GUEST_PDPTE3", Width64, TypeGuest},
	{FieldHostPAT, "HOST_IA32_PAT", Width64, TypeHost},
	{FieldHostEFER, "HOST_IA32_EFER", Width64, TypeHost},

	{FieldPinControls, "PIN_BASED_VM_EXEC_CONTROL", Width32, TypeControl},
	{FieldProcControls, "CPU_BASED_VM_EXEC_CONTROL", Width32, TypeControl},
	{FieldExceptionBitmap, "EXCEPTION_BITMAP", Width32, TypeControl},
	{FieldPFErrorCodeMask, "PAGE_FAULT_ERROR_CODE_MASK", Width32, TypeControl},
	{FieldPFErrorCodeMatch, "PAGE_FAULT_ERROR_CODE_MATCH", Width32, TypeControl},
	{FieldCR3TargetCount, "CR3_TARGET_COUNT", Width32, TypeControl},
	{FieldExitControls, "VM_EXIT_CONTROLS", Width32, TypeControl},
	{FieldExitMSRStoreCount, "VM_EXIT_MSR_STORE_COUNT", Width32, TypeControl},
	{FieldExitMSRLoadCount, "VM_EXIT_MSR_LOAD_COUNT", Width32, TypeControl},
	{FieldEntryControls, "VM_ENTRY_CONTROLS", Width32, TypeControl},
	{FieldEntryMSRLoadCount, "VM_ENTRY_MSR_LOAD_COUNT", Width32, TypeControl},
	{FieldEntryInterruptionInfo, "VM_ENTRY_INTR_INFO_FIELD", Width32, TypeControl},
	{FieldEntryExceptionError, "VM_ENTRY_EXCEPTION_ERROR_CODE", Width32, TypeControl},
	{FieldEntryInstructionLength, "VM_ENTRY_INSTRUCTION_LEN", Width32, TypeControl},
	{FieldTPRThreshold, "TPR_THRESHOLD", Width32, TypeControl},
	{FieldProc2Controls, "SECONDARY_VM_EXEC_CONTROL", Width32, TypeControl},
	{FieldInstructionError, "VM_INSTRUCTION_ERROR", Width32, TypeExitInfo},
	{FieldExitReason, "VM_EXIT_REASON", Width32, TypeExitInfo},
	{FieldExitInterruptionInfo, "VM_EXIT_INTR_INFO", Width32, TypeExitInfo},
	{FieldExitInterruptionError, "VM_EXIT_INTR_ERROR_CODE", Width32, TypeExitInfo},
	{FieldIDTVectoringInfo, "IDT_VECTORING_INFO_FIELD", Width32, TypeExitInfo},
	{FieldIDTVectoringError, "IDT_VECTORING_ERROR_CODE", Width32, TypeExitInfo},
	{FieldExitInstructionLength, "VM_EXIT_INSTRUCTION_LEN", Width32, TypeExitInfo},
	{FieldExitInstructionInfo, "VMX_INSTRUCTION_INFO", Width32, TypeExitInfo},
	{FieldGuestESLimit, "GUEST_ES_LIMIT", Width32, TypeGuest},
	{FieldGuestCSLimit, "GUEST_CS_LIMIT", Width32, TypeGuest},
	{FieldGuestSSLimit, "GUEST_SS_LIMIT", Width32, TypeGuest},
	{FieldGuestDSLimit, "GUEST_DS_LIMIT", Width32, TypeGuest},
	{FieldGuestFSLimit, "GUEST_FS_LIMIT", Width32, TypeGuest},
	{FieldGuestGSLimit, "GUEST_GS_LIMIT", Width32, TypeGuest},
	{FieldGuestLDTRLimit, "GUEST_LDTR_LIMIT", Width32, TypeGuest},
	{FieldGuestTRLimit, "GUEST_TR_LIMIT", Width32, TypeGuest},
	{FieldGuestGDTRLimit, "GUEST_GDTR_LIMIT", Width32, TypeGuest},
	{FieldGuestIDTRLimit, "GUEST_IDTR_LIMIT", Width32, TypeGuest},
	{FieldGuestESAccessRights, "GUEST_ES_AR_BYTES", Width32, TypeGuest},
	{FieldGuestCSAccessRights, "GUEST_CS_AR_BYTES", Width32, TypeGuest},
	{FieldGuestSSAccessRights, "GUEST_SS_AR_BYTES", Width32, TypeGuest},
	{FieldGuestDSAccessRights, "GUEST_DS_AR_BYTES", Width32, TypeGuest},
	{FieldGuestFSAccessRights, "GUEST_FS_AR_BYTES", Width32, TypeGuest},
	{FieldGuestGSAccessRights, "GUEST_GS_AR_BYTES", Width32, TypeGuest},
	{FieldGuestLDTRAccessRights, "GUEST_LDTR_AR_BYTES", Width32, TypeGuest},
	{FieldGuestTRAccessRights, "GUEST_TR_AR_BYTES", Width32, TypeGuest},
	{FieldGuestInterruptibility, "GUEST_INTERRUPTIBILITY_INFO", Width32, TypeGuest},
	{FieldGuestActivityState, "GUEST_ACTIVITY_STATE", Width32, TypeGuest},
	{FieldGuestSMBase, "GUEST_SMBASE", Width32, TypeGuest},
	{FieldGuestSysenterCS, "GUEST_SYSENTER_CS", Width32, TypeGuest},
	{FieldPreemptionTimerValue, "VMX_PREEMPTION_TIMER_VALUE", Width32, TypeGuest},
	{FieldHostSysenterCS, "HOST_IA32_SYSENTER_CS", Width32, TypeHost},

	{FieldCR0GuestHostMask, "CR0_GUEST_HOST_MASK", WidthNatural, TypeControl},
	{FieldCR4GuestHostMask, "CR4_GUEST_HOST_MASK", WidthNatural, TypeControl},
	{FieldCR0ReadShadow, "CR0_READ_SHADOW", WidthNatural, TypeControl},
	{FieldCR4ReadShadow, "CR4_READ_SHADOW", WidthNatural, TypeControl},
	{FieldExitQualification, "EXIT_QUALIFICATION", WidthNatural, TypeExitInfo},
	{FieldGuestLinearAddress, "GUEST_LINEAR_ADDRESS", WidthNatural, TypeExitInfo},
	{FieldGuestCR0, "GUEST_CR0", WidthNatural, TypeGuest},
	{FieldGuestCR3, "GUEST_CR3", WidthNatural, TypeGuest},
	{FieldGuestCR4, "GUEST_CR4", WidthNatural, TypeGuest},
	{FieldGuestESBase, "GUEST_ES_BASE", WidthNatural, TypeGuest},
	{FieldGuestCSBase, "GUEST_CS_BASE", WidthNatural, TypeGuest},
	{FieldGuestSSBase, "GUEST_SS_BASE", WidthNatural, TypeGuest},
	{FieldGuestDSBase, "GUEST_DS_BASE", WidthNatural, TypeGuest},
	{FieldGuestFSBase, "GUEST_FS_BASE", WidthNatural, TypeGuest},
	{FieldGuestGSBase, "GUEST_GS_BASE", WidthNatural, TypeGuest},
	{FieldGuestLDTRBase, "GUEST_LDTR_BASE", WidthNatural, TypeGuest},
	{FieldGuestTRBase, "GUEST_TR_BASE", WidthNatural, TypeGuest},
	{FieldGuestGDTRBase, "GUEST_GDTR_BASE", WidthNatural, TypeGuest},
	{FieldGuestIDTRBase, "GUEST_IDTR_BASE", WidthNatural, TypeGuest},
	{FieldGuestDR7, "GUEST_DR7", WidthNatural, TypeGuest},
	{FieldGuestRSP, "GUEST_RSP", WidthNatural, TypeGuest},
	{FieldGuestRIP, "GUEST_RIP", WidthNatural, TypeGuest},
	{FieldGuestRFLAGS, "GUEST_RFLAGS", WidthNatural, TypeGuest},
	{FieldGuestPendingDebug, "GUEST_PENDING_DBG_EXCEPTIONS", WidthNatural, TypeGuest},
	{FieldGuestSysenterESP, "GUEST_SYSENTER_ESP", WidthNatural, TypeGuest},
	{FieldGuestSysenterEIP, "GUEST_SYSENTER_EIP", WidthNatural, TypeGuest},
	{FieldHostCR0, "HOST_CR0", WidthNatural, TypeHost},
	{FieldHostCR3, "HOST_CR3", WidthNatural, TypeHost},
	{FieldHostCR4, "HOST_CR4", WidthNatural, TypeHost},
	{FieldHostFSBase, "HOST_FS_BASE", WidthNatural, TypeHost},
	{FieldHostGSBase, "HOST_GS_BASE", WidthNatural, TypeHost},
	{FieldHostTRBase, "HOST_TR_BASE", WidthNatural, TypeHost},
	{FieldHostGDTRBase, "HOST_GDTR_BASE", WidthNatural, TypeHost},
	{FieldHostIDTRBase, "HOST_IDTR_BASE", WidthNatural, TypeHost},
	{FieldHostSysenterESP, "HOST_IA32_SYSENTER_ESP", WidthNatural, TypeHost},
	{FieldHostSysenterEIP, "HOST_IA32_SYSENTER_EIP", WidthNatural, TypeHost},
	{FieldHostRSP, "HOST_RSP", WidthNatural, TypeHost},
	{FieldHostRIP, "HOST_RIP", WidthNatural, TypeHost},
}

var fieldNames = func() map[Field]string {
	m := make(map[Field]string, len(Fields))
	for _, f := range Fields {
		m[f.Field] = f.Name
	}
	return m
}()

// String names the field as the SDM does, or gives its encoding.
func (f Field) String() string {
	if n, ok := fieldNames[f]; ok {
		return n
	}
	return fmt.Sprintf("VMCS field 0x%04x", uint32(f))
}

// Segment registers in the order of their VMCS encodings (Appendix B):
// ES, CS, SS, DS, FS, GS (vcpu.SegmentRegister's order), then LDTR and TR.
const (
	SegES = iota
	SegCS
	SegSS
	SegDS
	SegFS
	SegGS
	SegLDTR
	SegTR
	NumSegments
)

// SegmentFields returns the selector, base, limit and access-rights fields
// of segment register seg (SegES..SegTR): consecutive encodings, 2 apart.
func SegmentFields(seg int) (selector, base, limit, accessRights Field) {
	i := Field(seg) * 2
	return FieldGuestESSelector + i, FieldGuestESBase + i, FieldGuestESLimit + i, FieldGuestESAccessRights + i
}

// SegmentName names SegES..SegTR.
func SegmentName(seg int) string {
	if seg >= 0 && seg < NumSegments {
		return [...]string{"ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR"}[seg]
	}
	return fmt.Sprintf("segment(%d)", seg)
}
