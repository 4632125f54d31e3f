package vmx

import (
	"tamavisor/guests/vcpu"
)

// The engine keeps a copy of the VMCS fields it uses (the VMCS is current
// on a CPU only inside the world switch, see engine_tamago.go): Guest.vals,
// indexed by slot. Guest-state slots are written to the VMCS before an
// entry when they changed and read back after every exit; control and
// host slots are only written, when they changed.
type slot uint8

const (
	sRIP slot = iota
	sRSP
	sRFLAGS
	sCR0
	sCR3
	sCR4
	sDR7
	sDebugCtl
	sEFER
	sPAT
	sSysenterCS
	sSysenterESP
	sSysenterEIP
	sInterruptibility
	sActivity
	sPendingDebug
	sGDTRBase
	sGDTRLimit
	sIDTRBase
	sIDTRLimit
	sPDPTE0
	sPDPTE1
	sPDPTE2
	sPDPTE3
	sLinkPointer
	// sSegments starts four slots per segment register, in SegES..SegTR
	// order: selector, base, limit, access rights.
	sSegments
	numGuestSlots = sSegments + 4*NumSegments
)

const (
	cPin slot = numGuestSlots + iota
	cProc
	cProc2
	cExit
	cEntry
	cExceptionBitmap
	cEPTP
	cVPID
	cCR0Mask
	cCR0Shadow
	cCR4Mask
	cCR4Shadow
	cTSCOffset
	cEntryIntrInfo
	cEntryErrorCode
	cEntryInstrLen
	cEntryMSRLoadAddr
	cEntryMSRLoadCount
	cExitMSRStoreAddr
	cExitMSRStoreCount
	// Written once as 0: the engine does not use them, and a VMCS's
	// fields are undefined until written (SDM Vol. 3C, 25.11.3).
	cExitMSRLoadCount
	cCR3TargetCount
	cPFErrorCodeMask
	cPFErrorCodeMatch
	cHostES
	cHostCS
	cHostSS
	cHostDS
	cHostFS
	cHostGS
	cHostTR
	numSlots
)

func segSlot(seg int, part slot) slot { return sSegments + slot(4*seg) + part }

const (
	partSelector slot = iota
	partBase
	partLimit
	partAR
)

// slotFields maps each slot to its VMCS field.
var slotFields = func() (f [numSlots]Field) {
	f[sRIP], f[sRSP], f[sRFLAGS] = FieldGuestRIP, FieldGuestRSP, FieldGuestRFLAGS
	f[sCR0], f[sCR3], f[sCR4], f[sDR7] = FieldGuestCR0, FieldGuestCR3, FieldGuestCR4, FieldGuestDR7
	f[sDebugCtl], f[sEFER], f[sPAT] = FieldGuestDebugCtl, FieldGuestEFER, FieldGuestPAT
	f[sSysenterCS], f[sSysenterESP], f[sSysenterEIP] = FieldGuestSysenterCS, FieldGuestSysenterESP, FieldGuestSysenterEIP
	f[sInterruptibility], f[sActivity], f[sPendingDebug] = FieldGuestInterruptibility, FieldGuestActivityState, FieldGuestPendingDebug
	f[sGDTRBase], f[sGDTRLimit], f[sIDTRBase], f[sIDTRLimit] = FieldGuestGDTRBase, FieldGuestGDTRLimit, FieldGuestIDTRBase, FieldGuestIDTRLimit
	f[sPDPTE0], f[sPDPTE1], f[sPDPTE2], f[sPDPTE3] = FieldGuestPDPTE0, FieldGuestPDPTE1, FieldGuestPDPTE2, FieldGuestPDPTE3
	f[sLinkPointer] = FieldVMCSLinkPointer
	for seg := 0; seg < NumSegments; seg++ {
		f[segSlot(seg, partSelector)], f[segSlot(seg, partBase)], f[segSlot(seg, partLimit)], f[segSlot(seg, partAR)] = SegmentFields(seg)
	}
	f[cPin], f[cProc], f[cProc2], f[cExit], f[cEntry] = FieldPinControls, FieldProcControls, FieldProc2Controls, FieldExitControls, FieldEntryControls
	f[cExceptionBitmap], f[cEPTP], f[cVPID] = FieldExceptionBitmap, FieldEPTPointer, FieldVPID
	f[cCR0Mask], f[cCR0Shadow], f[cCR4Mask], f[cCR4Shadow] = FieldCR0GuestHostMask, FieldCR0ReadShadow, FieldCR4GuestHostMask, FieldCR4ReadShadow
	f[cTSCOffset] = FieldTSCOffset
	f[cEntryIntrInfo], f[cEntryErrorCode], f[cEntryInstrLen] = FieldEntryInterruptionInfo, FieldEntryExceptionError, FieldEntryInstructionLength
	f[cEntryMSRLoadAddr], f[cEntryMSRLoadCount] = FieldEntryMSRLoadAddress, FieldEntryMSRLoadCount
	f[cExitMSRStoreAddr], f[cExitMSRStoreCount] = FieldExitMSRStoreAddress, FieldExitMSRStoreCount
	f[cExitMSRLoadCount], f[cCR3TargetCount] = FieldExitMSRLoadCount, FieldCR3TargetCount
	f[cPFErrorCodeMask], f[cPFErrorCodeMatch] = FieldPFErrorCodeMask, FieldPFErrorCodeMatch
	f[cHostES], f[cHostCS], f[cHostSS], f[cHostDS] = FieldHostESSelector, FieldHostCSSelector, FieldHostSSSelector, FieldHostDSSelector
	f[cHostFS], f[cHostGS], f[cHostTR] = FieldHostFSSelector, FieldHostGSSelector, FieldHostTRSelector
	return f
}()

// exitInfoFields are read after every exit, after the guest-state slots,
// into ExitFields (in this order) and the VM-instruction error.
var exitInfoFields = [...]Field{
	FieldExitReason, FieldExitQualification, FieldGuestPhysicalAddress, FieldGuestLinearAddress,
	FieldExitInterruptionInfo, FieldExitInterruptionError, FieldIDTVectoringInfo, FieldIDTVectoringError,
	FieldExitInstructionLength, FieldExitInstructionInfo, FieldInstructionError,
}

// numReads is the length of the list the world switch reads after an exit.
const numReads = int(numGuestSlots) + len(exitInfoFields)

// readFields is that list, as the world switch takes it (encodings as
// 64-bit words).
var readFields = func() (r [numReads]uint64) {
	for s := slot(0); s < numGuestSlots; s++ {
		r[s] = uint64(slotFields[s])
	}
	for i, f := range exitInfoFields {
		r[int(numGuestSlots)+i] = uint64(f)
	}
	return r
}()

// Host selectors: the hypervisor's GDT (runtime/pc/entry_amd64.s) has its
// 64-bit code at 0x08 and data at 0x10. VM exit loads TR from
// HOST_TR_SELECTOR and HOST_TR_BASE without reading the GDT (SDM Vol. 3C,
// 28.5.2), and VM entry requires a non-null TR selector with TI and RPL
// clear (27.2.3): 0x18 is never loaded with LTR, so it needs no descriptor.
const (
	hostCodeSelector = 0x08
	hostDataSelector = 0x10
	hostTRSelector   = 0x18
)

// Register bits the engine handles (Intel SDM Vol. 3A, 2.5, 2.2.1; Vol. 1,
// 3.4.3).
const (
	cr0PE      = 1 << 0
	cr0TS      = 1 << 3
	cr0ET      = 1 << 4
	cr0NE      = 1 << 5
	cr0WP      = 1 << 16
	cr0NW      = 1 << 29
	cr0CD      = 1 << 30
	cr0PG      = 1 << 31
	cr4PAE     = 1 << 5
	cr4SMX     = 1 << 14
	cr4PCIDE   = 1 << 17
	cr4OSXSAVE = 1 << 18
	// cr4Hidden are the CR4 bits of features the guest CPUID policy
	// hides (VMX, SMX, PCID, XSAVE): the host owns them, and a guest
	// setting one gets the #GP a processor without the feature raises.
	// OSXSAVE matters most: with it, a guest could use the AVX state
	// the host's XCR0 enables, which the world switch does not save.
	cr4Hidden = CR4VMXE | cr4SMX | cr4PCIDE | cr4OSXSAVE

	eferSCE = 1 << 0
	eferLME = 1 << 8
	eferLMA = 1 << 10
	eferNXE = 1 << 11
	// eferGuestBits are the EFER bits an Intel guest may set: VM entry
	// fails on the reserved ones (SDM Vol. 3C, 27.3.1.1), and WRMSR
	// would #GP.
	eferGuestBits = eferSCE | eferLME | eferLMA | eferNXE

	rflagsTF       = 1 << 8
	rflagsIF       = 1 << 9
	rflagsVM       = 1 << 17
	rflagsFixed1   = 1 << 1
	rflagsReserved = ^uint64(0x3f7fd7) // bits 63:22, 15, 5, 3 (Vol. 1, 3.4.3)

	// Access-rights bits beyond the 12-bit VMCB form (SDM Vol. 3C, 25.4.1,
	// Table "Format of Access Rights"): unusable, bit 16.
	arUnusable = 1 << 16
)

// The MSRs the VMCS does not hold but a 64-bit guest owns: their guest
// values live in an MSR list the VM entry loads and the VM exit stores
// (SDM Vol. 3C, 25.7.2, 25.8.2). The host does not use SYSCALL or SWAPGS
// (the Go runtime on bare metal never leaves ring 0), so the exit loads
// nothing back: the guest's values stay in the registers until the next
// entry of any vCPU on that CPU overwrites them.
const (
	msrSTAR         = 0xC0000081
	msrLSTAR        = 0xC0000082
	msrCSTAR        = 0xC0000083
	msrSFMASK       = 0xC0000084
	msrKernelGSBase = 0xC0000102

	msrEFER        = 0xC0000080
	msrPAT         = 0x277
	msrFSBase      = 0xC0000100
	msrGSBase      = 0xC0000101
	msrSysenterCS  = 0x174
	msrSysenterESP = 0x175
	msrSysenterEIP = 0x176
)

// MSREntry is one entry of a VM-entry MSR-load or VM-exit MSR-store list
// (SDM Vol. 3C, 25.7.2, Table "Format of an MSR Entry"): 16 bytes.
type MSREntry struct {
	Index    uint32
	Reserved uint32
	Value    uint64
}

// listMSRs are the MSRs in the guest's list, in order.
var listMSRs = [...]uint32{msrKernelGSBase, msrSTAR, msrLSTAR, msrCSTAR, msrSFMASK}

// NumListMSRs is the length of a vCPU's MSR list.
const NumListMSRs = len(listMSRs)

// MSRList is a vCPU's guest MSR list, in a page the engine allocates (the
// processor reads and writes it by physical address).
type MSRList [NumListMSRs]MSREntry

// Reset fills the list with the guest MSRs at their reset values (0).
func (l *MSRList) Reset() {
	for i, m := range listMSRs {
		l[i] = MSREntry{Index: m}
	}
}

// Guest is a vCPU's state as the engine keeps it between runs: the VMCS
// fields it uses, the guest's general-purpose registers, the event to
// inject and the window requests. It implements every vcpu.VCPU method but
// Run and Dump, which need the hardware; it has no hardware dependency,
// so that the VMCS a vCPU enters with can be checked on the host.
type Guest struct {
	vals  [numSlots]uint64
	dirty [numSlots]bool
	// Regs are the general-purpose registers, in vcpu.GPR order; RSP
	// lives in the VMCS (Regs[RSP] is unused).
	Regs [vcpu.NumGPRs]uint64
	// CR2 is not in the VMCS: the world switch loads and saves it.
	CR2 uint64

	ctl  *Controls
	msrs *MSRList

	// The event for the next entry (VM-entry interruption-information
	// format, valid bit set), its error code and instruction length.
	pending, pendingError, pendingLength uint32
	interruptWindow, nmiWindow           bool
	// tpr is the guest's CR8 (with CR8 exiting it never reaches the
	// hardware).
	tpr uint64
	// FlushTLB asks the world switch to invalidate this vCPU's cached
	// translations before the next entry (an emulated paging change).
	FlushTLB bool

	// refusal, when not empty, is why the engine will not enter this
	// vCPU: its state needs a control the processor lacks (Refusal).
	refusal string

	// Exit is the last exit's information, InstructionError the
	// VM-instruction error field read with it.
	Exit             ExitFields
	InstructionError InstructionError
	// CRExits counts the control-register accesses the engine emulated
	// itself (they never reach the guest core), Exits every VM exit.
	CRExits, Exits uint64
}

// NewGuest returns the state of a fresh vCPU: the controls, and the
// architectural state of a flat 32-bit protected-mode CPU with paging off
// (loaders then set the boot protocol's registers), as svm.NewVCPU does.
// msrs is the vCPU's MSR list and msrsPA its physical address.
func NewGuest(ctl *Controls, msrs *MSRList, msrsPA uint64) *Guest {
	g := &Guest{ctl: ctl, msrs: msrs}
	msrs.Reset()
	for s := range g.dirty {
		g.dirty[s] = true // a VMCS's fields are undefined until written
	}
	g.vals[cPin], g.vals[cProc], g.vals[cProc2], g.vals[cExit], g.vals[cEntry] =
		uint64(ctl.Pin), uint64(ctl.Proc), uint64(ctl.Proc2), uint64(ctl.Exit), uint64(ctl.Entry)
	// #MC is the host's: a guest must not see the host's machine checks.
	g.vals[cExceptionBitmap] = 1 << 18
	// The guest/host masks own every bit the fixed-bit rules constrain:
	// guest reads of them come from the read shadows, and guest writes
	// that change them exit for emulation (SDM Vol. 3C, 26.3 "Changes to
	// Instruction Behavior in VMX Non-Root Operation", MOV to CR0/CR4).
	g.vals[cCR0Mask] = ctl.GuestCR0.Fixed0 | ^ctl.GuestCR0.Fixed1
	g.vals[cCR4Mask] = ctl.GuestCR4.Fixed0 | ^ctl.GuestCR4.Fixed1 | cr4Hidden
	g.vals[cEntryMSRLoadAddr], g.vals[cExitMSRStoreAddr] = msrsPA, msrsPA
	g.vals[cEntryMSRLoadCount], g.vals[cExitMSRStoreCount] = uint64(NumListMSRs), uint64(NumListMSRs)
	g.vals[cHostES], g.vals[cHostCS], g.vals[cHostSS], g.vals[cHostDS] = hostDataSelector, hostCodeSelector, hostDataSelector, hostDataSelector
	g.vals[cHostTR] = hostTRSelector
	g.vals[sLinkPointer] = ^uint64(0) // no shadow VMCS (27.3.1.5)

	flat := func(sel uint16, attrib uint16) vcpu.Segment {
		return vcpu.Segment{Selector: sel, Limit: 0xffffffff, Attributes: attrib}
	}
	const attrCode32, attrData = 0xC9B, 0xC93
	g.SetSegment(vcpu.CS, flat(0x10, attrCode32))
	for _, r := range []vcpu.SegmentRegister{vcpu.DS, vcpu.ES, vcpu.SS, vcpu.FS, vcpu.GS} {
		g.SetSegment(r, flat(0x18, attrData))
	}
	g.setSegmentAR(SegTR, 0, 0, 0xffff, 0x8B)   // busy 32-bit TSS
	g.setSegmentAR(SegLDTR, 0, 0, 0xffff, 0x82) // LDT
	g.SetDescriptorTables(0, 0xffff, 0, 0xffff)
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0ET})
	g.vals[sRFLAGS] = rflagsFixed1
	g.vals[sDR7] = 0x400
	g.vals[sPAT] = 0x0007040600070406 // power-on PAT
	return g
}

func (g *Guest) set(s slot, v uint64) {
	g.vals[s] = v
	g.dirty[s] = true
}

// Value returns the engine's copy of a field it keeps, for dumps and tests.
func (g *Guest) Value(f Field) (uint64, bool) {
	for s, sf := range slotFields {
		if sf == f {
			return g.vals[s], true
		}
	}
	return 0, false
}

func (g *Guest) GPR(r vcpu.GPR) uint64 {
	if r&15 == vcpu.RSP {
		return g.vals[sRSP]
	}
	return g.Regs[r&15]
}

func (g *Guest) SetGPR(r vcpu.GPR, x uint64) {
	if r&15 == vcpu.RSP {
		g.set(sRSP, x)
		return
	}
	g.Regs[r&15] = x
}

func (g *Guest) RIP() uint64        { return g.vals[sRIP] }
func (g *Guest) SetRIP(x uint64)    { g.set(sRIP, x) }
func (g *Guest) RFLAGS() uint64     { return g.vals[sRFLAGS] }
func (g *Guest) SetRFLAGS(x uint64) { g.set(sRFLAGS, x|rflagsFixed1) }

// CPL is SS.DPL, which VM exits save even for an unusable SS (SDM Vol. 3C,
// 28.3.2).
func (g *Guest) CPL() uint8 { return uint8(g.vals[segSlot(SegSS, partAR)]>>5) & 3 }

// visible merges the bits the guest owns with the read shadow of those the
// host owns: what MOV from CR0/CR4 returns in the guest.
func visible(real, shadow, mask uint64) uint64 { return real&^mask | shadow&mask }

func (g *Guest) Control() vcpu.ControlRegisters {
	return vcpu.ControlRegisters{
		CR0:  visible(g.vals[sCR0], g.vals[cCR0Shadow], g.vals[cCR0Mask]),
		CR2:  g.CR2,
		CR3:  g.vals[sCR3],
		CR4:  visible(g.vals[sCR4], g.vals[cCR4Shadow], g.vals[cCR4Mask]),
		EFER: g.vals[sEFER],
	}
}

// SetControl sets the guest's control registers as the guest sees them;
// the VMCS gets them with the fixed bits forced (CR0.NE, CR4.VMXE) and the
// read shadows keep the guest's values. EFER.LMA follows LME and CR0.PG,
// as it would on hardware.
func (g *Guest) SetControl(c vcpu.ControlRegisters) {
	g.refusal = g.cr0Refusal(c.CR0)
	g.setCR0(c.CR0)
	g.setCR4(c.CR4)
	g.set(sCR3, c.CR3)
	g.CR2 = c.CR2
	efer := c.EFER & eferGuestBits &^ eferLMA
	if efer&eferLME != 0 && c.CR0&cr0PG != 0 {
		efer |= eferLMA
	}
	g.set(sEFER, efer)
}

// Without the "unrestricted guest" control, VM entry requires CR0.PE and,
// under EPT, CR0.PG in the guest's CR0 (IA32_VMX_CR0_FIXED0; SDM Vol. 3C,
// 26.3.1.1 "Checks on Guest Control Registers, Debug Registers, and MSRs",
// and 25.6.2, which names the control): a guest in real mode or with paging
// off cannot run. The engine refuses such a vCPU with one of these
// messages rather than enter it in a state the guest did not ask for.
const (
	refusalRealMode = "the guest is in real mode (CR0.PE=0), which VT-x runs only with the \"unrestricted guest\" " +
		"VM-execution control (secondary processor-based control bit 7, Intel SDM Vol. 3C 25.6.2, 26.3.1.1); " +
		"this processor lacks unrestricted guest"
	refusalPagingOff = "the guest runs with paging off (CR0.PG=0), which VT-x with EPT runs only with the \"unrestricted guest\" " +
		"VM-execution control (secondary processor-based control bit 7, Intel SDM Vol. 3C 25.6.2, 26.3.1.1); " +
		"this processor lacks unrestricted guest"
)

// cr0Refusal is the refusal a guest CR0 value calls for on this engine's
// controls, or "".
func (g *Guest) cr0Refusal(cr0 uint64) string {
	switch {
	case g.ctl.Proc2&Proc2UnrestrictedGuest != 0:
		return ""
	case cr0&cr0PE == 0:
		return refusalRealMode
	case cr0&cr0PG == 0:
		return refusalPagingOff
	}
	return ""
}

// Refusal says why the engine will not enter this vCPU, naming the
// control the processor lacks (a guest in real mode or with paging off
// without unrestricted guest), or returns "" when it can run. VCPU.Run
// reports it as a refused entry instead of entering.
func (g *Guest) Refusal() string { return g.refusal }

func (g *Guest) setCR0(v uint64) {
	g.set(cCR0Shadow, v)
	g.set(sCR0, g.ctl.GuestCR0.Apply(v))
}

func (g *Guest) setCR4(v uint64) {
	g.set(cCR4Shadow, v)
	g.set(sCR4, g.ctl.GuestCR4.Apply(v))
}

// toAccessRights converts the VMCB's 12-bit attributes (type 3:0, S 4,
// DPL 6:5, P 7, AVL 8, L 9, D/B 10, G 11) to VMX access rights (the same
// bits at 7:0 and 15:12; SDM Vol. 3C, 25.4.1, Table "Format of Access
// Rights"). A segment without P is unusable (bit 16), as package loader's
// BootState defines it.
func toAccessRights(attrib uint16) uint64 {
	ar := uint64(attrib&0xff) | uint64(attrib&0xf00)<<4
	if attrib&0x80 == 0 {
		ar |= arUnusable
	}
	return ar
}

// fromAccessRights is the inverse: an unusable segment reads as not
// present.
func fromAccessRights(ar uint64) uint16 {
	a := uint16(ar&0xff) | uint16(ar>>4)&0xf00
	if ar&arUnusable != 0 {
		a &^= 0x80
	}
	return a
}

func (g *Guest) Segment(r vcpu.SegmentRegister) vcpu.Segment {
	seg := int(r)
	if seg >= SegLDTR {
		seg = SegGS
	}
	return vcpu.Segment{
		Selector:   uint16(g.vals[segSlot(seg, partSelector)]),
		Base:       g.vals[segSlot(seg, partBase)],
		Limit:      uint32(g.vals[segSlot(seg, partLimit)]),
		Attributes: fromAccessRights(g.vals[segSlot(seg, partAR)]),
	}
}

// SetSegment loads a segment register's hidden state. A usable code or
// data segment gets its accessed bit set, as the processor sets it in the
// descriptor when it loads one (Intel SDM Vol. 3A, 3.4.5.1), and as VM
// entry requires (SDM Vol. 3C, 27.3.1.2).
func (g *Guest) SetSegment(r vcpu.SegmentRegister, s vcpu.Segment) {
	seg := int(r)
	if seg >= SegLDTR {
		seg = SegGS
	}
	attrib := s.Attributes
	if attrib&0x90 == 0x90 { // present, code or data
		attrib |= 1
	}
	g.setSegmentAR(seg, s.Selector, s.Base, s.Limit, attrib)
}

func (g *Guest) setSegmentAR(seg int, sel uint16, base uint64, limit uint32, attrib uint16) {
	g.set(segSlot(seg, partSelector), uint64(sel))
	g.set(segSlot(seg, partBase), base)
	g.set(segSlot(seg, partLimit), uint64(limit))
	g.set(segSlot(seg, partAR), toAccessRights(attrib))
}

func (g *Guest) SetDescriptorTables(gdtBase uint64, gdtLimit uint16, idtBase uint64, idtLimit uint16) {
	g.set(sGDTRBase, gdtBase)
	g.set(sGDTRLimit, uint64(gdtLimit))
	g.set(sIDTRBase, idtBase)
	g.set(sIDTRLimit, uint64(idtLimit))
}

// AdvanceRIP moves past an emulated instruction and ends STI and MOV SS
// blocking, which last one instruction.
func (g *Guest) AdvanceRIP(length uint8) {
	g.set(sRIP, g.vals[sRIP]+uint64(length))
	if g.vals[sInterruptibility]&(BlockingBySTI|BlockingByMovSS) != 0 {
		g.set(sInterruptibility, g.vals[sInterruptibility]&^(BlockingBySTI|BlockingByMovSS))
	}
}

func (g *Guest) InjectException(vector uint8, errorCode uint32, hasErrorCode bool) {
	if vector == 2 {
		g.InjectNMI()
		return
	}
	g.pending = IntrValid | IntrTypeHardwareExc<<IntrTypeShift | uint32(vector)
	if hasErrorCode {
		g.pending |= IntrErrorCodeBit
	}
	g.pendingError, g.pendingLength = errorCode, 0
}

func (g *Guest) InjectNMI() {
	g.pending, g.pendingError, g.pendingLength = IntrValid|IntrTypeNMI<<IntrTypeShift|2, 0, 0
}

func (g *Guest) InjectInterrupt(vector uint8) {
	g.pending, g.pendingError, g.pendingLength = IntrValid|IntrTypeExternal<<IntrTypeShift|uint32(vector), 0, 0
}

// Interruptible: VM entry refuses to inject an external interrupt unless
// RFLAGS.IF is set and there is no STI or MOV SS blocking (SDM Vol. 3C,
// 27.3.1.5).
func (g *Guest) Interruptible() bool {
	return g.pending == 0 && g.vals[sRFLAGS]&rflagsIF != 0 &&
		g.vals[sInterruptibility]&(BlockingBySTI|BlockingByMovSS) == 0
}

// NMIAllowed: no event pending, NMIs not blocked (virtual-NMI blocking
// after an injected NMI, until the guest's IRET), and no STI or MOV SS
// blocking, with which VM entry may refuse NMI injection (27.3.1.5).
func (g *Guest) NMIAllowed() bool {
	return g.pending == 0 && g.vals[sInterruptibility]&(BlockingBySTI|BlockingByMovSS|BlockingByNMI) == 0
}

func (g *Guest) RequestInterruptWindow(on bool) { g.interruptWindow = on }
func (g *Guest) RequestNMIWindow(on bool)       { g.nmiWindow = on }

func (g *Guest) SetTSCOffset(offset int64) { g.set(cTSCOffset, uint64(offset)) }

// canonical reports a 48-bit canonical address (Intel SDM Vol. 1, 3.3.7.1).
func canonical(a uint64) bool { return uint64(int64(a<<16)>>16) == a }

// validPAT reports whether every PAT entry holds a memory type (0 UC, 1
// WC, 4 WT, 5 WP, 6 WB, 7 UC-) and no reserved bit (Intel SDM Vol. 3A,
// 12.12.2).
func validPAT(v uint64) bool {
	for i := 0; i < 8; i++ {
		switch (v >> (8 * i)) & 0xff {
		case 0, 1, 4, 5, 6, 7:
		default:
			return false
		}
	}
	return true
}

// EngineMSR serves the MSRs whose guest values the VMCS or the vCPU's MSR
// list hold. Writes the processor would refuse with #GP (reserved EFER
// bits, LME changed with paging on, a PAT entry that is no memory type, a
// non-canonical base or entry point) fault here, so that VM entry never
// sees them.
func (g *Guest) EngineMSR(msr uint32, write bool, value uint64) (uint64, vcpu.MSRStatus) {
	var s slot
	switch msr {
	case msrEFER:
		if !write {
			return g.vals[sEFER], vcpu.MSRDone
		}
		cur := g.vals[sEFER]
		if value&^eferGuestBits != 0 ||
			(g.vals[sCR0]&cr0PG != 0 && (value^cur)&eferLME != 0) {
			return 0, vcpu.MSRFault
		}
		// LMA is the processor's: it follows LME and CR0.PG.
		g.set(sEFER, value&^eferLMA|cur&eferLMA)
		return 0, vcpu.MSRDone
	case msrPAT:
		if write && !validPAT(value) {
			return 0, vcpu.MSRFault
		}
		s = sPAT
	case msrFSBase:
		s = segSlot(SegFS, partBase)
	case msrGSBase:
		s = segSlot(SegGS, partBase)
	case msrSysenterCS:
		if write {
			value &= 0xffffffff
		}
		s = sSysenterCS
	case msrSysenterESP:
		s = sSysenterESP
	case msrSysenterEIP:
		s = sSysenterEIP
	default:
		for i := range g.msrs {
			if g.msrs[i].Index != msr {
				continue
			}
			if !write {
				return g.msrs[i].Value, vcpu.MSRDone
			}
			if msr != msrSTAR && msr != msrSFMASK && !canonical(value) {
				return 0, vcpu.MSRFault
			}
			if msr == msrSFMASK {
				value &= 0xffffffff
			}
			g.msrs[i].Value = value
			return 0, vcpu.MSRDone
		}
		return 0, vcpu.MSRNotEngine
	}
	if !write {
		return g.vals[s], vcpu.MSRDone
	}
	if s != sPAT && s != sSysenterCS && !canonical(value) {
		return 0, vcpu.MSRFault
	}
	g.set(s, value)
	return 0, vcpu.MSRDone
}

// SetEPTP points the vCPU at its VM's EPT (ept.Tables.EPTP), and VPID
// gives it its virtual-processor identifier (0: none).
func (g *Guest) SetEPTP(eptp uint64) { g.set(cEPTP, eptp) }
func (g *Guest) SetVPID(vpid uint16) { g.set(cVPID, uint64(vpid)) }

// EPTP and VPIDValue return what SetEPTP and SetVPID set.
func (g *Guest) EPTP() uint64      { return g.vals[cEPTP] }
func (g *Guest) VPIDValue() uint16 { return uint16(g.vals[cVPID]) }

// hwErrorCodeVectors are the exceptions VM entry delivers with an error
// code when the guest is in protected mode (SDM Vol. 3C, 27.2.1.3): #DF,
// #TS, #NP, #SS, #GP, #PF, #AC.
const hwErrorCodeVectors = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17

// FieldOp is one VMWRITE of the world switch: an encoding and a value.
type FieldOp struct{ Field, Value uint64 }

// MaxWrites bounds the list PrepareEntry fills.
const MaxWrites = int(numSlots)

// PrepareEntry settles the per-entry controls (the window exits, IA-32e
// mode from EFER.LMA, the event to inject) and fills ops with the fields
// that changed since the VMCS was last written; it returns how many.
// Commit marks them written once the entry happened.
func (g *Guest) PrepareEntry(ops *[MaxWrites]FieldOp) int {
	proc := uint64(g.ctl.Proc)
	if g.interruptWindow {
		proc |= uint64(ProcInterruptWindowExiting)
	}
	if g.nmiWindow {
		proc |= uint64(ProcNMIWindowExiting)
	}
	if g.vals[cProc] != proc {
		g.set(cProc, proc)
	}
	entry := uint64(g.ctl.Entry)
	if g.vals[sEFER]&eferLMA != 0 {
		entry |= uint64(EntryIA32eModeGuest)
	}
	if g.vals[cEntry] != entry {
		g.set(cEntry, entry)
	}
	if g.pending != 0 {
		info := g.pending
		if IntrType(info) == IntrTypeHardwareExc && !g.ctl.AnyErrorCode {
			// VM entry delivers an error code exactly for these
			// vectors in protected mode (27.2.1.3).
			vec := info & IntrVectorMask
			info &^= IntrErrorCodeBit
			if g.vals[sCR0]&cr0PE != 0 && hwErrorCodeVectors&(1<<vec) != 0 {
				info |= IntrErrorCodeBit
			}
		}
		g.set(cEntryIntrInfo, uint64(info))
		g.set(cEntryErrorCode, uint64(g.pendingError&0x7fff))
		g.set(cEntryInstrLen, uint64(g.pendingLength))
	} else if g.vals[cEntryIntrInfo]&uint64(IntrValid) != 0 {
		g.set(cEntryIntrInfo, 0)
	}
	n := 0
	for s := slot(0); s < numSlots; s++ {
		if g.dirty[s] {
			ops[n] = FieldOp{uint64(slotFields[s]), g.vals[s]}
			n++
		}
	}
	return n
}

// Commit records that the VMCS holds every field PrepareEntry listed and
// that the pending event was handed to the processor.
func (g *Guest) Commit() {
	g.dirty = [numSlots]bool{}
	g.pending, g.pendingError, g.pendingLength = 0, 0, 0
	g.FlushTLB = false
}

// ReadBack takes the values the world switch read after an exit (in
// readFields order): the guest state, and the exit information. An event
// the exit interrupted is queued again (SDM Vol. 3C, 28.2.4 "Information
// for VM Exits During Event Delivery"), as the AMD engine re-injects
// EXITINTINFO.
func (g *Guest) ReadBack(vals *[numReads]uint64) {
	copy(g.vals[:numGuestSlots], vals[:numGuestSlots])
	x := vals[numGuestSlots:]
	g.Exit = ExitFields{
		Reason: uint32(x[0]), Qualification: x[1], GuestPhysical: x[2], GuestLinear: x[3],
		InterruptionInfo: uint32(x[4]), InterruptionError: uint32(x[5]),
		IDTVectoringInfo: uint32(x[6]), IDTVectoringError: uint32(x[7]),
		InstructionLength: uint32(x[8]), InstructionInfo: uint32(x[9]),
	}
	g.InstructionError = InstructionError(x[10])
	g.Exits++
	// Every VM exit clears the valid bit of the VM-entry
	// interruption-information field (SDM Vol. 3C, 28.2 "Recording VM-Exit
	// Information and Updating VM-Entry Control Fields").
	g.vals[cEntryIntrInfo] &^= uint64(IntrValid)
	if g.Exit.EntryFailed() {
		return
	}
	if info := g.Exit.IDTVectoringInfo; info&IntrValid != 0 {
		g.pending = info & (IntrValid | 0xfff) // bits 30:12 must be 0 on entry
		g.pendingError = g.Exit.IDTVectoringError
		g.pendingLength = 0
		if t := IntrType(info); t == IntrTypeSoftwareInt || t == IntrTypePrivilegedExc || t == IntrTypeSoftwareExc {
			g.pendingLength = g.Exit.InstructionLength
		}
	}
	// An exit in the middle of an IRET that unblocked NMIs (bit 12 of the
	// qualification or interruption information): the IRET is executed
	// again or emulated, so NMIs stay blocked until it completes (28.2.3
	// "Information About NMI Unblocking Due to IRET").
	nmiUnblock := false
	switch g.Exit.Basic() {
	case ExitEPTViolation:
		nmiUnblock = g.Exit.Qualification&EPTViolationNMIUnblocking != 0
	case ExitExceptionOrNMI:
		nmiUnblock = g.Exit.InterruptionInfo&IntrNMIUnblocking != 0
	}
	if nmiUnblock && g.Exit.IDTVectoringInfo&IntrValid == 0 {
		g.set(sInterruptibility, g.vals[sInterruptibility]|BlockingByNMI)
	}
}

// EmulateCRAccess performs a control-register access that exited because
// it touched a bit the host owns (or CR8): it returns false for an access
// the engine does not emulate. A write the processor would refuse gets the
// guest a #GP, as it would on hardware.
func (g *Guest) EmulateCRAccess(q CRAccess, length uint8) bool {
	switch {
	case q.CR == 0 && q.Kind == CRMovTo:
		return g.writeCR0(g.GPR(q.GPR), length)
	case q.CR == 0 && q.Kind == CRCLTS:
		return g.writeCR0(g.Control().CR0&^cr0TS, length)
	case q.CR == 0 && q.Kind == CRLMSW:
		// LMSW loads CR0 bits 3:0 but cannot clear PE (Intel SDM Vol. 2A,
		// LMSW).
		cr0 := g.Control().CR0
		return g.writeCR0(cr0&^0xe|uint64(q.LMSWSource)&0xf|cr0&cr0PE, length)
	case q.CR == 4 && q.Kind == CRMovTo:
		v := g.GPR(q.GPR)
		allowed := g.ctl.GuestCR4.Fixed1 &^ cr4Hidden
		if v&^allowed != 0 || (g.vals[sEFER]&eferLMA != 0 && v&cr4PAE == 0) {
			g.InjectException(13, 0, true)
			return true
		}
		g.setCR4(v)
		g.FlushTLB = true
	case q.CR == 8 && q.Kind == CRMovTo:
		v := g.GPR(q.GPR)
		if v>>4 != 0 {
			g.InjectException(13, 0, true)
			return true
		}
		g.tpr = v
	case q.CR == 8 && q.Kind == CRMovFrom:
		g.SetGPR(q.GPR, g.tpr)
	default:
		return false
	}
	g.AdvanceRIP(length)
	g.CRExits++
	return true
}

// writeCR0 is MOV to CR0 with the checks of Intel SDM Vol. 2A, "MOV—Move
// to/from Control Registers": reserved bits, PG without PE, NW without CD,
// and entering long mode without PAE raise #GP; turning paging on with
// EFER.LME set activates IA-32e mode (EFER.LMA), off deactivates it.
func (g *Guest) writeCR0(v uint64, length uint8) bool {
	old := g.Control().CR0
	efer := g.vals[sEFER]
	pgOn, pgOff := v&^old&cr0PG != 0, old&^v&cr0PG != 0
	if v>>32 != 0 || (v&cr0PG != 0 && v&cr0PE == 0) || (v&cr0NW != 0 && v&cr0CD == 0) ||
		(pgOn && efer&eferLME != 0 && g.Control().CR4&cr4PAE == 0) {
		g.InjectException(13, 0, true)
		return true
	}
	if r := g.cr0Refusal(v); r != "" {
		// A legal write this processor cannot run: the guest stops
		// before the instruction, with the reason (VCPU.Run).
		g.refusal = r
		return true
	}
	switch {
	case pgOn && efer&eferLME != 0:
		g.set(sEFER, efer|eferLMA)
	case pgOff && efer&eferLMA != 0:
		g.set(sEFER, efer&^eferLMA)
	}
	g.setCR0(v)
	if (old^v)&(cr0PG|cr0PE|cr0WP) != 0 {
		g.FlushTLB = true
	}
	g.AdvanceRIP(length)
	g.CRExits++
	return true
}
