package vmx

import (
	"fmt"
	"strings"
)

// DumpTo writes the engine's copy of the VMCS (the values last written to
// it or read from it), the last exit and the checks of the entry model
// that fail, for the diagnostic printed when a guest is stopped.
func (g *Guest) DumpTo(b *strings.Builder) {
	v := &g.vals
	x := &g.Exit
	if g.Exits == 0 {
		b.WriteString("  no VM exit yet\n")
	} else {
		failure := ""
		if x.EntryFailed() {
			failure = ", VM-entry failure"
		}
		fmt.Fprintf(b, "  exit %d: reason %#x (%v%s) qualification %#x GPA %#x GLA %#x\n",
			g.Exits, x.Reason, x.Basic(), failure, x.Qualification, x.GuestPhysical, x.GuestLinear)
		fmt.Fprintf(b, "  exit interruption %#x error %#x, IDT vectoring %#x error %#x, instruction length %d info %#x\n",
			x.InterruptionInfo, x.InterruptionError, x.IDTVectoringInfo, x.IDTVectoringError, x.InstructionLength, x.InstructionInfo)
	}
	if g.InstructionError != 0 {
		fmt.Fprintf(b, "  %v\n", g.InstructionError)
	}
	fmt.Fprintf(b, "  controls: pin %#x proc %#x proc2 %#x exit %#x entry %#x exceptions %#x EPTP %#x VPID %d\n",
		v[cPin], v[cProc], v[cProc2], v[cExit], v[cEntry], v[cExceptionBitmap], v[cEPTP], v[cVPID])
	fmt.Fprintf(b, "  entry event %#x error %#x length %d; TSC offset %#x; emulated CR accesses %d\n",
		v[cEntryIntrInfo], v[cEntryErrorCode], v[cEntryInstrLen], v[cTSCOffset], g.CRExits)
	fmt.Fprintf(b, "  RIP %#x RSP %#x RFLAGS %#x CPL %d interruptibility %#x activity %d pending-debug %#x\n",
		v[sRIP], v[sRSP], v[sRFLAGS], g.CPL(), v[sInterruptibility], v[sActivity], v[sPendingDebug])
	fmt.Fprintf(b, "  CR0 %#x (guest sees %#x, mask %#x) CR2 %#x CR3 %#x CR4 %#x (guest sees %#x, mask %#x)\n",
		v[sCR0], g.Control().CR0, v[cCR0Mask], g.CR2, v[sCR3], v[sCR4], g.Control().CR4, v[cCR4Mask])
	fmt.Fprintf(b, "  EFER %#x PAT %#x DR7 %#x DEBUGCTL %#x SYSENTER %#x/%#x/%#x\n",
		v[sEFER], v[sPAT], v[sDR7], v[sDebugCtl], v[sSysenterCS], v[sSysenterESP], v[sSysenterEIP])
	for seg := 0; seg < NumSegments; seg++ {
		fmt.Fprintf(b, "  %-4s sel 0x%04x base %#x limit %#x access rights %#x\n", SegmentName(seg),
			v[segSlot(seg, partSelector)], v[segSlot(seg, partBase)], v[segSlot(seg, partLimit)], v[segSlot(seg, partAR)])
	}
	fmt.Fprintf(b, "  GDTR %#x/%#x IDTR %#x/%#x\n", v[sGDTRBase], v[sGDTRLimit], v[sIDTRBase], v[sIDTRLimit])
	names := [16]string{"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"}
	for i, n := range names {
		val := g.Regs[i]
		if i == 4 {
			val = v[sRSP]
		}
		fmt.Fprintf(b, "  %-3s %#016x", n, val)
		if i%4 == 3 {
			b.WriteString("\n")
		}
	}
	if p := g.Problems(); len(p) > 0 {
		b.WriteString("  VM-entry checks this state fails (SDM Vol. 3C, 27.2-27.3):\n")
		for _, s := range p {
			fmt.Fprintf(b, "    %s\n", s)
		}
	} else {
		b.WriteString("  VM-entry checks modeled by the engine: none fails\n")
	}
}
