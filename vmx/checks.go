package vmx

import "fmt"

// Problems runs the VM-entry checks on the guest-state area and on event
// injection (SDM Vol. 3C, 27.3.1 "Checks on the Guest State Area" and the
// event-injection part of 27.2.1.3) over the values the engine last wrote
// or read, and names every check that fails. When VM entry fails with exit
// reason 33, the processor says only that some check failed; this model
// says which. It covers the checks that apply to this engine's guests
// (unrestricted guest, EPT, no virtual-8086 mode, no SMM, no shadow VMCS);
// an empty result after a failure means the failing check is one it does
// not model. It allocates: use it on the failure path and in dumps only.
func (g *Guest) Problems() []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	v := &g.vals
	cr0, cr4, efer := v[sCR0], v[sCR4], v[sEFER]
	ia32e := v[cEntry]&uint64(EntryIA32eModeGuest) != 0
	unrestricted := v[cProc2]&uint64(Proc2UnrestrictedGuest) != 0

	// 27.3.1.1 Checks on guest control registers, debug registers, MSRs.
	if err := g.ctl.GuestCR0.Check(cr0); err != nil {
		add("GUEST_CR0: %v (27.3.1.1)", err)
	}
	if cr0&cr0PG != 0 && cr0&cr0PE == 0 {
		add("GUEST_CR0 = %#x: PG is set without PE (27.3.1.1)", cr0)
	}
	if err := g.ctl.GuestCR4.Check(cr4); err != nil {
		add("GUEST_CR4: %v (27.3.1.1)", err)
	}
	if ia32e && (cr0&cr0PG == 0 || cr4&cr4PAE == 0) {
		add("IA-32e mode guest needs GUEST_CR0.PG and GUEST_CR4.PAE, CR0 = %#x CR4 = %#x (27.3.1.1)", cr0, cr4)
	}
	if !ia32e && cr4&(1<<17) != 0 {
		add("GUEST_CR4.PCIDE is set outside IA-32e mode (27.3.1.1)")
	}
	if v[cEntry]&uint64(EntryLoadDebugControls) != 0 {
		if v[sDR7]>>32 != 0 {
			add("GUEST_DR7 = %#x: bits 63:32 must be 0 (27.3.1.1)", v[sDR7])
		}
		if v[sDebugCtl]&^0xffc3 != 0 {
			add("GUEST_IA32_DEBUGCTL = %#x sets reserved bits (27.3.1.1)", v[sDebugCtl])
		}
	}
	if !canonical(v[sSysenterESP]) || !canonical(v[sSysenterEIP]) {
		add("GUEST_SYSENTER_ESP/EIP = %#x/%#x: not canonical (27.3.1.1)", v[sSysenterESP], v[sSysenterEIP])
	}
	if v[cEntry]&uint64(EntryLoadPAT) != 0 && !validPAT(v[sPAT]) {
		add("GUEST_IA32_PAT = %#x: an entry is not a memory type (27.3.1.1)", v[sPAT])
	}
	if v[cEntry]&uint64(EntryLoadEFER) != 0 {
		if efer&^eferGuestBits != 0 {
			add("GUEST_IA32_EFER = %#x sets reserved bits (27.3.1.1)", efer)
		}
		if (efer&eferLMA != 0) != ia32e {
			add("GUEST_IA32_EFER.LMA = %d differs from the IA-32e mode guest entry control = %t (27.3.1.1)", efer>>10&1, ia32e)
		}
		if cr0&cr0PG != 0 && (efer&eferLMA != 0) != (efer&eferLME != 0) {
			add("GUEST_IA32_EFER = %#x: with CR0.PG set, LMA must equal LME (27.3.1.1)", efer)
		}
	}

	// 27.3.1.2 Checks on guest segment registers.
	rflags := v[sRFLAGS]
	if rflags&rflagsVM != 0 {
		add("GUEST_RFLAGS.VM is set: virtual-8086 guests are not modeled by this engine")
	}
	type segment struct {
		sel            uint16
		base           uint64
		limit          uint32
		ar             uint64
		typ, dpl       uint64
		s, p, l, db, g bool
		usable         bool
	}
	var seg [NumSegments]segment
	for i := range seg {
		ar := v[segSlot(i, partAR)]
		seg[i] = segment{
			sel: uint16(v[segSlot(i, partSelector)]), base: v[segSlot(i, partBase)],
			limit: uint32(v[segSlot(i, partLimit)]), ar: ar,
			typ: ar & 0xf, dpl: ar >> 5 & 3, s: ar&(1<<4) != 0, p: ar&(1<<7) != 0,
			l: ar&(1<<13) != 0, db: ar&(1<<14) != 0, g: ar&(1<<15) != 0, usable: ar&arUnusable == 0,
		}
	}
	cs, ss := seg[SegCS], seg[SegSS]
	granularity := func(i int) {
		s := seg[i]
		if s.limit&0xfff != 0xfff && s.g {
			add("GUEST_%s: limit %#x has bits 11:0 not all 1, so G must be 0 (27.3.1.2)", SegmentName(i), s.limit)
		}
		if s.limit>>20 != 0 && !s.g {
			add("GUEST_%s: limit %#x has bits 31:20 set, so G must be 1 (27.3.1.2)", SegmentName(i), s.limit)
		}
	}
	reserved := func(i int) {
		if r := seg[i].ar & (0xf00 | 0xfffe0000); r != 0 {
			add("GUEST_%s_AR_BYTES = %#x sets reserved bits %#x (27.3.1.2)", SegmentName(i), seg[i].ar, r)
		}
	}
	if seg[SegTR].sel&4 != 0 {
		add("GUEST_TR_SELECTOR = %#x: TI must be 0 (27.3.1.2)", seg[SegTR].sel)
	}
	if seg[SegLDTR].usable && seg[SegLDTR].sel&4 != 0 {
		add("GUEST_LDTR_SELECTOR = %#x: TI must be 0 (27.3.1.2)", seg[SegLDTR].sel)
	}
	if !unrestricted && ss.sel&3 != cs.sel&3 {
		add("GUEST_SS_SELECTOR.RPL differs from GUEST_CS_SELECTOR.RPL (27.3.1.2)")
	}
	for _, i := range []int{SegTR, SegFS, SegGS} {
		if !canonical(seg[i].base) {
			add("GUEST_%s_BASE = %#x is not canonical (27.3.1.2)", SegmentName(i), seg[i].base)
		}
	}
	if seg[SegLDTR].usable && !canonical(seg[SegLDTR].base) {
		add("GUEST_LDTR_BASE = %#x is not canonical (27.3.1.2)", seg[SegLDTR].base)
	}
	if cs.base>>32 != 0 {
		add("GUEST_CS_BASE = %#x: bits 63:32 must be 0 (27.3.1.2)", cs.base)
	}
	for _, i := range []int{SegSS, SegDS, SegES} {
		if seg[i].usable && seg[i].base>>32 != 0 {
			add("GUEST_%s_BASE = %#x: bits 63:32 must be 0 (27.3.1.2)", SegmentName(i), seg[i].base)
		}
	}
	if rflags&rflagsVM == 0 {
		// CS.
		switch {
		case !cs.usable:
			add("GUEST_CS is unusable (27.3.1.2)")
		case cs.typ == 9 || cs.typ == 11 || cs.typ == 13 || cs.typ == 15:
		case cs.typ == 3 && unrestricted:
		default:
			add("GUEST_CS_AR_BYTES = %#x: type %d; must be 9, 11, 13 or 15 (accessed code), or 3 with unrestricted guest (27.3.1.2)", cs.ar, cs.typ)
		}
		if !cs.s {
			add("GUEST_CS_AR_BYTES = %#x: S must be 1 (27.3.1.2)", cs.ar)
		}
		switch {
		case cs.typ == 3 && cs.dpl != 0:
			add("GUEST_CS_AR_BYTES = %#x: a data-type CS must have DPL 0 (27.3.1.2)", cs.ar)
		case (cs.typ == 9 || cs.typ == 11) && cs.dpl != ss.dpl:
			add("GUEST_CS.DPL %d must equal GUEST_SS.DPL %d for non-conforming code (27.3.1.2)", cs.dpl, ss.dpl)
		case (cs.typ == 13 || cs.typ == 15) && cs.dpl > ss.dpl:
			add("GUEST_CS.DPL %d must not exceed GUEST_SS.DPL %d for conforming code (27.3.1.2)", cs.dpl, ss.dpl)
		}
		if !cs.p {
			add("GUEST_CS_AR_BYTES = %#x: P must be 1 (27.3.1.2)", cs.ar)
		}
		reserved(SegCS)
		if ia32e && cs.l && cs.db {
			add("GUEST_CS: L and D/B are both set in IA-32e mode (27.3.1.2)")
		}
		granularity(SegCS)
		// SS.
		if ss.usable {
			if ss.typ != 3 && ss.typ != 7 {
				add("GUEST_SS_AR_BYTES = %#x: type %d; must be 3 or 7 (read/write, accessed) (27.3.1.2)", ss.ar, ss.typ)
			}
			if !ss.s || !ss.p {
				add("GUEST_SS_AR_BYTES = %#x: S and P must be 1 (27.3.1.2)", ss.ar)
			}
			reserved(SegSS)
			granularity(SegSS)
		}
		if !unrestricted && ss.dpl != uint64(ss.sel&3) {
			add("GUEST_SS.DPL must equal its RPL (27.3.1.2)")
		}
		if (cs.typ == 3 || cr0&cr0PE == 0) && ss.dpl != 0 {
			add("GUEST_SS.DPL = %d must be 0 with a data-type CS or CR0.PE clear (27.3.1.2)", ss.dpl)
		}
		// DS, ES, FS, GS.
		for _, i := range []int{SegDS, SegES, SegFS, SegGS} {
			s := seg[i]
			if !s.usable {
				continue
			}
			if s.typ&1 == 0 {
				add("GUEST_%s_AR_BYTES = %#x: type %d is not accessed (27.3.1.2)", SegmentName(i), s.ar, s.typ)
			}
			if s.typ&8 != 0 && s.typ&2 == 0 {
				add("GUEST_%s_AR_BYTES = %#x: a code segment must be readable (27.3.1.2)", SegmentName(i), s.ar)
			}
			if !s.s || !s.p {
				add("GUEST_%s_AR_BYTES = %#x: S and P must be 1 (27.3.1.2)", SegmentName(i), s.ar)
			}
			if !unrestricted && s.typ <= 11 && s.dpl < uint64(s.sel&3) {
				add("GUEST_%s.DPL is below its RPL (27.3.1.2)", SegmentName(i))
			}
			reserved(i)
			granularity(i)
		}
	}
	// TR and LDTR.
	tr := seg[SegTR]
	switch {
	case !tr.usable:
		add("GUEST_TR is unusable; TR must be usable (27.3.1.2)")
	case ia32e && tr.typ != 11:
		add("GUEST_TR_AR_BYTES = %#x: type %d; must be 11 (busy 64-bit TSS) in IA-32e mode (27.3.1.2)", tr.ar, tr.typ)
	case !ia32e && tr.typ != 3 && tr.typ != 11:
		add("GUEST_TR_AR_BYTES = %#x: type %d; must be 3 or 11 (busy TSS) (27.3.1.2)", tr.ar, tr.typ)
	}
	if tr.s || !tr.p {
		add("GUEST_TR_AR_BYTES = %#x: S must be 0 and P 1 (27.3.1.2)", tr.ar)
	}
	reserved(SegTR)
	granularity(SegTR)
	if ldtr := seg[SegLDTR]; ldtr.usable {
		if ldtr.typ != 2 || ldtr.s || !ldtr.p {
			add("GUEST_LDTR_AR_BYTES = %#x: a usable LDTR must have type 2, S 0, P 1 (27.3.1.2)", ldtr.ar)
		}
		reserved(SegLDTR)
		granularity(SegLDTR)
	}

	// 27.3.1.3 Descriptor-table registers.
	if !canonical(v[sGDTRBase]) || !canonical(v[sIDTRBase]) {
		add("GUEST_GDTR_BASE/IDTR_BASE = %#x/%#x: not canonical (27.3.1.3)", v[sGDTRBase], v[sIDTRBase])
	}
	if v[sGDTRLimit]>>16 != 0 || v[sIDTRLimit]>>16 != 0 {
		add("GUEST_GDTR_LIMIT/IDTR_LIMIT = %#x/%#x: bits 31:16 must be 0 (27.3.1.3)", v[sGDTRLimit], v[sIDTRLimit])
	}

	// 27.3.1.4 RIP and RFLAGS.
	rip := v[sRIP]
	if (!ia32e || !cs.l) && rip>>32 != 0 {
		add("GUEST_RIP = %#x: bits 63:32 must be 0 outside 64-bit mode (27.3.1.4)", rip)
	}
	if ia32e && cs.l && !canonical(rip) {
		add("GUEST_RIP = %#x is not canonical (27.3.1.4)", rip)
	}
	if rflags&rflagsReserved != 0 || rflags&rflagsFixed1 == 0 {
		add("GUEST_RFLAGS = %#x: reserved bits must be 0 and bit 1 must be 1 (27.3.1.4)", rflags)
	}
	if (ia32e || cr0&cr0PE == 0) && rflags&rflagsVM != 0 {
		add("GUEST_RFLAGS.VM must be 0 in IA-32e mode or with CR0.PE clear (27.3.1.4)")
	}
	entryInfo := uint32(v[cEntryIntrInfo])
	injecting := entryInfo&IntrValid != 0
	injType := IntrType(entryInfo)
	if injecting && injType == IntrTypeExternal && rflags&rflagsIF == 0 {
		add("injecting an external interrupt with GUEST_RFLAGS.IF clear (27.3.1.4)")
	}

	// 27.3.1.5 Non-register state.
	intr, act := v[sInterruptibility], v[sActivity]
	if act > 3 {
		add("GUEST_ACTIVITY_STATE = %d is not a defined state (27.3.1.5)", act)
	}
	if act == 1 && ss.dpl != 0 {
		add("GUEST_ACTIVITY_STATE is HLT with SS.DPL %d (27.3.1.5)", ss.dpl)
	}
	if intr&^0x1f != 0 {
		add("GUEST_INTERRUPTIBILITY_INFO = %#x sets reserved bits (27.3.1.5)", intr)
	}
	if intr&BlockingBySTI != 0 && intr&BlockingByMovSS != 0 {
		add("GUEST_INTERRUPTIBILITY_INFO: blocking by STI and by MOV SS are both set (27.3.1.5)")
	}
	if rflags&rflagsIF == 0 && intr&BlockingBySTI != 0 {
		add("GUEST_INTERRUPTIBILITY_INFO: blocking by STI with RFLAGS.IF clear (27.3.1.5)")
	}
	if injecting && injType == IntrTypeExternal && intr&(BlockingBySTI|BlockingByMovSS) != 0 {
		add("injecting an external interrupt during STI or MOV SS blocking (27.3.1.5)")
	}
	if injecting && injType == IntrTypeNMI && intr&BlockingByMovSS != 0 {
		add("injecting an NMI during MOV SS blocking (27.3.1.5)")
	}
	if intr&BlockingBySMI != 0 {
		add("GUEST_INTERRUPTIBILITY_INFO: blocking by SMI outside SMM (27.3.1.5)")
	}
	if injecting && injType == IntrTypeNMI && v[cPin]&uint64(PinVirtualNMIs) != 0 && intr&BlockingByNMI != 0 {
		add("injecting an NMI while virtual-NMI blocking is set (27.3.1.5)")
	}
	pdbg := v[sPendingDebug]
	if pdbg&^(0xf|1<<12|1<<14|1<<16) != 0 {
		add("GUEST_PENDING_DBG_EXCEPTIONS = %#x sets reserved bits (27.3.1.5)", pdbg)
	}
	if intr&(BlockingBySTI|BlockingByMovSS) != 0 || act == 1 {
		bs := pdbg&(1<<14) != 0
		tfNoBTF := rflags&rflagsTF != 0 && v[sDebugCtl]&2 == 0
		if tfNoBTF && !bs {
			add("GUEST_PENDING_DBG_EXCEPTIONS.BS must be 1: RFLAGS.TF is set during STI/MOV SS blocking or HLT (27.3.1.5)")
		}
		if !tfNoBTF && bs {
			add("GUEST_PENDING_DBG_EXCEPTIONS.BS must be 0: RFLAGS.TF is clear or DEBUGCTL.BTF set (27.3.1.5)")
		}
	}
	if v[sLinkPointer] != ^uint64(0) {
		add("VMCS_LINK_POINTER = %#x must be all ones without VMCS shadowing (27.3.1.5)", v[sLinkPointer])
	}

	// 27.2.1.1 VM-execution controls, 27.2.1.2 VM-exit controls: those
	// that depend on values the engine sets (the control words themselves
	// come from ControlCaps.Adjust, legal by construction).
	pin, proc, proc2 := uint32(v[cPin]), uint32(v[cProc]), uint32(v[cProc2])
	if proc&ProcActivateSecondary == 0 {
		proc2 = 0
	}
	if v[cCR3TargetCount] > 4 {
		add("CR3_TARGET_COUNT = %d exceeds 4 (27.2.1.1)", v[cCR3TargetCount])
	}
	if pin&PinNMIExiting == 0 && pin&PinVirtualNMIs != 0 {
		add("virtual NMIs without NMI exiting (27.2.1.1)")
	}
	if pin&PinVirtualNMIs == 0 && proc&ProcNMIWindowExiting != 0 {
		add("NMI-window exiting without virtual NMIs (27.2.1.1)")
	}
	if proc2&Proc2EnableVPID != 0 && uint16(v[cVPID]) == 0 {
		add("VIRTUAL_PROCESSOR_ID is 0 with \"enable VPID\" set (27.2.1.1)")
	}
	if proc2&Proc2UnrestrictedGuest != 0 && proc2&Proc2EnableEPT == 0 {
		add("unrestricted guest without EPT (27.2.1.1)")
	}
	if proc2&Proc2EnableEPT != 0 {
		eptp := v[cEPTP]
		switch {
		case eptp&7 != 0 && eptp&7 != 6:
			add("EPT_POINTER = %#x: memory type %d is neither UC (0) nor WB (6) (27.2.1.1)", eptp, eptp&7)
		case eptp>>3&7 != 3:
			add("EPT_POINTER = %#x: page-walk length %d, the engine's tables have 4 levels (27.2.1.1)", eptp, eptp>>3&7+1)
		case eptp&0xf80 != 0 || eptp>>52 != 0:
			add("EPT_POINTER = %#x sets reserved bits (27.2.1.1)", eptp)
		case eptp&^0xfff == 0:
			add("EPT_POINTER = %#x has no root table", eptp)
		}
	}
	for _, a := range []slot{cEntryMSRLoadAddr, cExitMSRStoreAddr} {
		if v[a]&0xf != 0 {
			add("%v = %#x is not 16-byte aligned (27.2.1.2, 27.2.1.3)", slotFields[a], v[a])
		}
	}
	if v[cExit]&uint64(ExitHostAddressSpaceSize) == 0 {
		add("the \"host address-space size\" VM-exit control is clear: the host is 64-bit (27.2.1.2)")
	}

	// 27.2.1.3 Event injection.
	if injecting {
		vec := entryInfo & IntrVectorMask
		deliver := entryInfo&IntrErrorCodeBit != 0
		switch {
		case entryInfo&0x7ffff000 != 0:
			add("VM_ENTRY_INTR_INFO_FIELD = %#x sets reserved bits 30:12 (27.2.1.3)", entryInfo)
		case injType == 1:
			add("VM_ENTRY_INTR_INFO_FIELD = %#x: type 1 is reserved (27.2.1.3)", entryInfo)
		case injType == IntrTypeNMI && vec != 2:
			add("VM_ENTRY_INTR_INFO_FIELD = %#x: an NMI must have vector 2 (27.2.1.3)", entryInfo)
		case injType == IntrTypeHardwareExc && vec > 31:
			add("VM_ENTRY_INTR_INFO_FIELD = %#x: a hardware exception's vector must be at most 31 (27.2.1.3)", entryInfo)
		}
		if !g.ctl.AnyErrorCode {
			want := injType == IntrTypeHardwareExc && (!unrestricted || cr0&cr0PE != 0) && hwErrorCodeVectors&(1<<vec) != 0
			if deliver != want {
				add("VM_ENTRY_INTR_INFO_FIELD = %#x: deliver-error-code must be %t for this vector and CR0.PE (27.2.1.3)", entryInfo, want)
			}
		}
		if deliver && v[cEntryErrorCode]&0xffff8000 != 0 {
			add("VM_ENTRY_EXCEPTION_ERROR_CODE = %#x: bits 31:15 must be 0 (27.2.1.3)", v[cEntryErrorCode])
		}
		if (injType == IntrTypeSoftwareInt || injType == IntrTypePrivilegedExc || injType == IntrTypeSoftwareExc) &&
			(v[cEntryInstrLen] == 0 || v[cEntryInstrLen] > 15) {
			add("VM_ENTRY_INSTRUCTION_LEN = %d must be 1 to 15 for a software event (27.2.1.3)", v[cEntryInstrLen])
		}
	}
	return p
}
