//go:build tamago

package svm

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/guests/vcpu"
)

// Pages is where the engine gets physically contiguous, 4 KiB-aligned,
// identity-mapped pages for VMCBs, host save areas and permission maps
// (package physmem on the image).
type Pages interface {
	Alloc(size, align uint64) (uint64, error)
}

// fxArea is an FXSAVE image (Intel SDM Vol. 1, 10.5.1): 512 bytes, 16-byte
// aligned, hence carved out of a physical page rather than the Go heap.
type fxArea [512]byte

// defined in worldswitch_amd64.s
func vmrun(guestVMCB, hostVMCB uint64, regs *[16]uint64, guestFPU, hostFPU *fxArea)

// perCPU is the SVM state of one physical CPU: the host save area VMRUN
// uses and the page VMSAVE/VMLOAD keep the host's hidden state in.
type perCPU struct {
	hostSave, hostVMCB uint64
	hostFPU            *fxArea
}

var (
	cpusMu sync.Mutex
	cpus   = map[uint32]*perCPU{}
)

// Engine runs guests with AMD-V on the CPUs of this machine.
type Engine struct {
	Caps  *Capabilities
	m     *hw.Machine
	pages Pages
	asids *ASIDs
}

// NewEngine prepares the AMD-V engine; CPUs are enabled lazily by the first
// vCPU that runs on each.
func NewEngine(caps *Capabilities, m *hw.Machine, pages Pages) *Engine {
	return &Engine{Caps: caps, m: m, pages: pages, asids: NewASIDs(caps.MaxGuestASID())}
}

func pageAt(pa uint64) unsafe.Pointer { return unsafe.Pointer(uintptr(pa)) }

// enableThisCPU sets EFER.SVME and VM_HSAVE_PA on the calling CPU (AMD APM
// Vol. 2, 15.4 "Enabling SVM"). The caller's goroutine is locked to its
// thread, and on TamaGo each thread is one CPU for good.
func (e *Engine) enableThisCPU(apicID uint32) (*perCPU, error) {
	cpusMu.Lock()
	defer cpusMu.Unlock()
	if c, ok := cpus[apicID]; ok {
		return c, nil
	}
	if vmcr := DecodeVMCR(e.m.ReadMSR(MSRVMCR)); vmcr.SVMDisabled {
		return nil, fmt.Errorf("svm: SVM is disabled on CPU %d (VM_CR.SVMDIS)", apicID)
	}
	c := &perCPU{}
	var err error
	if c.hostSave, err = e.pages.Alloc(4096, 4096); err != nil {
		return nil, err
	}
	if c.hostVMCB, err = e.pages.Alloc(4096, 4096); err != nil {
		return nil, err
	}
	fpu, err := e.pages.Alloc(4096, 4096)
	if err != nil {
		return nil, err
	}
	c.hostFPU = (*fxArea)(pageAt(fpu))
	e.m.WriteMSR(MSREFER, e.m.ReadMSR(MSREFER)|EFERSVME)
	e.m.WriteMSR(MSRVMHsavePA, c.hostSave)
	cpus[apicID] = c
	return c, nil
}

// VCPU is one virtual CPU under AMD-V. It implements vcpu.VCPU.
type VCPU struct {
	engine *Engine
	cpu    *perCPU
	apicID uint32 // the physical CPU this VMCB was last run on

	vmcb   *VMCB
	vmcbPA uint64
	regs   [16]uint64
	fpu    *fxArea

	IOPM  *IOPM
	MSRPM *MSRPM

	nrips          bool
	pendingEvent   uint64 // EVENTINJ to write at the next entry
	windowRequired bool

	asid  uint32
	pages [4]uint64 // VMCB, FPU area, IOPM, MSRPM: given back by Release
}

// SetNestedCR3 points the vCPU at its VM's nested page tables (package ept,
// NPT format).
func (v *VCPU) SetNestedCR3(root uint64) {
	v.vmcb.Control.NestedCR3 = root
	v.vmcb.Control.TLBControl = TLBControlFlushAll
}

// Pager frees what Alloc gave, for Release.
type Pager interface{ Free(addr, size uint64) }

// Release returns the vCPU's ASID and, when the engine's page source can
// free, its pages. The vCPU must not run again.
func (v *VCPU) Release() {
	if v.asid != 0 {
		v.engine.asids.Put(v.asid)
		v.asid = 0
	}
	if f, ok := v.engine.pages.(Pager); ok {
		sizes := [...]uint64{4096, 4096, uint64(len(IOPM{})), uint64(len(MSRPM{}))}
		for i, pa := range v.pages {
			if pa != 0 {
				f.Free(pa, sizes[i])
				v.pages[i] = 0
			}
		}
	}
}

// NewVCPU allocates and initialises a VMCB: every intercept the guest core
// relies on, nested paging on, a fresh ASID, and the architectural reset
// state of a flat 32-bit protected-mode CPU (loaders then set the boot
// protocol's registers).
//
// Every port and MSR access exits (the permission maps are all ones): the
// guest core decides what each one means.
func (e *Engine) NewVCPU() (*VCPU, error) {
	if !e.Caps.Features.Has(FeatureNP) {
		return nil, fmt.Errorf("svm: nested paging is not supported by this CPU")
	}
	asid, err := e.asids.Get()
	if err != nil {
		return nil, err
	}
	pa, err := e.pages.Alloc(4096, 4096)
	if err != nil {
		return nil, err
	}
	fpu, err := e.pages.Alloc(4096, 4096)
	if err != nil {
		return nil, err
	}
	iopm, err := e.pages.Alloc(uint64(len(IOPM{})), 4096)
	if err != nil {
		return nil, err
	}
	msrpm, err := e.pages.Alloc(uint64(len(MSRPM{})), 4096)
	if err != nil {
		return nil, err
	}
	v := &VCPU{engine: e, vmcb: (*VMCB)(pageAt(pa)), vmcbPA: pa, fpu: (*fxArea)(pageAt(fpu)),
		nrips: e.Caps.Features.Has(FeatureNRIPS), asid: asid, pages: [...]uint64{pa, fpu, iopm, msrpm}}
	*v.vmcb = VMCB{}
	*v.fpu = fxArea{}
	v.fpu[0], v.fpu[1] = 0x7f, 0x03   // FCW 0x037F (x87 reset)
	v.fpu[24], v.fpu[25] = 0x80, 0x1f // MXCSR 0x1F80
	v.IOPM, v.MSRPM = (*IOPM)(pageAt(iopm)), (*MSRPM)(pageAt(msrpm))
	v.IOPM.InterceptAll()
	v.MSRPM.InterceptAll()

	c := &v.vmcb.Control
	c.InterceptMisc1 = InterceptINTR | InterceptNMI | InterceptSMI | InterceptINIT |
		InterceptCPUID | InterceptHLT | InterceptIOIOProt | InterceptMSRProt |
		InterceptShutdown | InterceptINVD | InterceptTaskSwitch | InterceptFERRFreeze
	c.InterceptMisc2 = Intercept2VMRUN | Intercept2VMMCALL | Intercept2VMLOAD | Intercept2VMSAVE |
		Intercept2STGI | Intercept2CLGI | Intercept2SKINIT | Intercept2XSETBV | Intercept2ICEBP
	// #MC goes to the host's handler; a guest must not see the host's machine checks.
	c.InterceptExceptions = 1 << 18
	c.IOPMBase, c.MSRPMBase = iopm, msrpm
	c.GuestASID = asid
	c.TLBControl = TLBControlFlushAll
	c.NestedControl = NestedPagingEnable
	c.VIntr = VIntrMasking // the guest's RFLAGS.IF masks only virtual interrupts

	s := &v.vmcb.Save
	flat := func(attrib uint16) Segment { return Segment{Attrib: attrib, Limit: 0xffffffff} }
	s.CS, s.DS, s.ES, s.SS, s.FS, s.GS = flat(AttribCode32), flat(AttribData), flat(AttribData), flat(AttribData), flat(AttribData), flat(AttribData)
	s.CS.Selector, s.DS.Selector, s.ES.Selector, s.SS.Selector = 0x10, 0x18, 0x18, 0x18
	s.GDTR.Limit, s.IDTR.Limit = 0xffff, 0xffff
	s.TR = Segment{Attrib: AttribTSS, Limit: 0xffff}
	s.LDTR = Segment{Attrib: AttribLDT, Limit: 0xffff}
	s.CR0 = 0x11 // PE, ET
	s.EFER = EFERSVME
	s.RFLAGS = 0x2
	s.DR6, s.DR7 = 0xffff0ff0, 0x400
	s.GPAT = 0x0007040600070406 // power-on PAT
	return v, nil
}

// VMCB exposes the control block, for loaders setting the entry state.
func (v *VCPU) VMCB() *VMCB { return v.vmcb }

// Run enters the guest on the calling CPU (the caller's goroutine is
// locked to its thread) and decodes the exit into e.
func (v *VCPU) Run(e *vcpu.Exit) error {
	apicID := currentAPICID(v.engine.m)
	if v.cpu == nil || v.apicID != apicID {
		c, err := v.engine.enableThisCPU(apicID)
		if err != nil {
			return err
		}
		// A VMCB run on another CPU before may have left translations
		// for its ASID there and here: flush this ASID on this CPU.
		v.cpu, v.apicID = c, apicID
		v.vmcb.Control.TLBControl = TLBControlFlushAll
	}
	c := &v.vmcb.Control
	c.EventInjection = v.pendingEvent
	v.pendingEvent = 0
	if v.windowRequired {
		c.InterceptMisc1 |= InterceptVINTR
		c.VIntr |= VIntrIRQ | VIntrIgnTPR | 0xf<<vIntrPrioShift
	} else {
		c.InterceptMisc1 &^= InterceptVINTR
		c.VIntr &^= VIntrIRQ | VIntrIgnTPR | 0xf<<vIntrPrioShift
	}
	v.vmcb.Save.RAX = v.regs[vcpu.RAX]
	v.vmcb.Save.RSP = v.regs[vcpu.RSP]

	vmrun(v.vmcbPA, v.cpu.hostVMCB, &v.regs, v.fpu, v.cpu.hostFPU)

	v.regs[vcpu.RAX] = v.vmcb.Save.RAX
	v.regs[vcpu.RSP] = v.vmcb.Save.RSP
	c.TLBControl = TLBControlNone
	// An event being delivered when the exit happened is re-injected
	// (AMD APM Vol. 2, 15.7.2 EXITINTINFO).
	if c.ExitIntInfo&EventValid != 0 {
		v.pendingEvent = c.ExitIntInfo
	}
	DecodeExit(v.vmcb, v.nrips, e)
	if e.Reason == vcpu.ReasonMSRRead || e.Reason == vcpu.ReasonMSRWrite {
		e.MSR = uint32(v.regs[vcpu.RCX])
	}
	return nil
}

func currentAPICID(m *hw.Machine) uint32 { return m.Read32(0xfee00020) >> 24 }

func (v *VCPU) GPR(r vcpu.GPR) uint64       { return v.regs[r&15] }
func (v *VCPU) SetGPR(r vcpu.GPR, x uint64) { v.regs[r&15] = x }
func (v *VCPU) RIP() uint64                 { return v.vmcb.Save.RIP }
func (v *VCPU) SetRIP(x uint64)             { v.vmcb.Save.RIP = x }
func (v *VCPU) RFLAGS() uint64              { return v.vmcb.Save.RFLAGS }
func (v *VCPU) SetRFLAGS(x uint64)          { v.vmcb.Save.RFLAGS = x | 0x2 }
func (v *VCPU) CPL() uint8                  { return v.vmcb.Save.CPL }

func (v *VCPU) Control() vcpu.ControlRegisters {
	s := &v.vmcb.Save
	return vcpu.ControlRegisters{CR0: s.CR0, CR2: s.CR2, CR3: s.CR3, CR4: s.CR4, EFER: s.EFER &^ EFERSVME}
}

func (v *VCPU) Segment(r vcpu.SegmentRegister) vcpu.Segment {
	s := v.segment(r)
	return vcpu.Segment{Selector: s.Selector, Base: s.Base, Limit: s.Limit, Attributes: s.Attrib}
}

func (v *VCPU) SetSegment(r vcpu.SegmentRegister, seg vcpu.Segment) {
	*v.segment(r) = Segment{Selector: seg.Selector, Attrib: seg.Attributes, Limit: seg.Limit, Base: seg.Base}
	if r == vcpu.SS {
		v.vmcb.Save.CPL = uint8(seg.Attributes>>5) & 3 // SS.DPL is the CPL (AMD APM Vol. 2, 15.5.1)
	}
}

func (v *VCPU) SetControl(c vcpu.ControlRegisters) {
	s := &v.vmcb.Save
	s.CR0, s.CR2, s.CR3, s.CR4, s.EFER = c.CR0, c.CR2, c.CR3, c.CR4, c.EFER|EFERSVME
}

func (v *VCPU) SetDescriptorTables(gdtBase uint64, gdtLimit uint16, idtBase uint64, idtLimit uint16) {
	v.vmcb.Save.GDTR = Segment{Base: gdtBase, Limit: uint32(gdtLimit)}
	v.vmcb.Save.IDTR = Segment{Base: idtBase, Limit: uint32(idtLimit)}
}

func (v *VCPU) segment(r vcpu.SegmentRegister) *Segment {
	var s *Segment
	switch r {
	case vcpu.ES:
		s = &v.vmcb.Save.ES
	case vcpu.CS:
		s = &v.vmcb.Save.CS
	case vcpu.SS:
		s = &v.vmcb.Save.SS
	case vcpu.DS:
		s = &v.vmcb.Save.DS
	case vcpu.FS:
		s = &v.vmcb.Save.FS
	default:
		s = &v.vmcb.Save.GS
	}
	return s
}

// AdvanceRIP is the one place RIP moves past an emulated instruction.
func (v *VCPU) AdvanceRIP(length uint8) {
	v.vmcb.Save.RIP += uint64(length)
	v.vmcb.Control.InterruptShadow = 0
}

func (v *VCPU) InjectException(vector uint8, errorCode uint32, hasErrorCode bool) {
	typ := uint64(EventTypeException)
	if vector == 2 {
		typ = EventTypeNMI
	}
	v.pendingEvent = EventInjection(vector, typ, errorCode, hasErrorCode)
}

// NMIAllowed: without vNMI the engine does not track the guest's NMI
// blocking (which lasts until its IRET); it only avoids clobbering a
// pending event.
func (v *VCPU) NMIAllowed() bool { return v.pendingEvent == 0 }

func (v *VCPU) InjectNMI() { v.pendingEvent = EventInjection(2, EventTypeNMI, 0, false) }

func (v *VCPU) RequestNMIWindow(on bool) {
	if on {
		v.windowRequired = true
	}
}

func (v *VCPU) InjectInterrupt(vector uint8) {
	v.pendingEvent = EventInjection(vector, EventTypeInterrupt, 0, false)
}

func (v *VCPU) Interruptible() bool {
	return v.pendingEvent == 0 && v.vmcb.Save.RFLAGS&(1<<9) != 0 && v.vmcb.Control.InterruptShadow&1 == 0
}

func (v *VCPU) RequestInterruptWindow(on bool) { v.windowRequired = on }

func (v *VCPU) SetTSCOffset(offset int64) { v.vmcb.Control.TSCOffset = uint64(offset) }

// Dump prints the VMCB fields a failed guest is diagnosed with.
func (v *VCPU) Dump() string {
	c, s := &v.vmcb.Control, &v.vmcb.Save
	var b strings.Builder
	fmt.Fprintf(&b, "VMCB at %#x (AMD APM Vol. 2, Appendix B)\n", v.vmcbPA)
	fmt.Fprintf(&b, "  EXITCODE %#x EXITINFO1 %#x EXITINFO2 %#x EXITINTINFO %#x\n", c.ExitCode, c.ExitInfo1, c.ExitInfo2, c.ExitIntInfo)
	fmt.Fprintf(&b, "  ASID %d NP %#x nCR3 %#x EVENTINJ %#x VINTR %#x shadow %#x\n", c.GuestASID, c.NestedControl, c.NestedCR3, c.EventInjection, c.VIntr, c.InterruptShadow)
	fmt.Fprintf(&b, "  RIP %#x RSP %#x RFLAGS %#x CPL %d\n", s.RIP, s.RSP, s.RFLAGS, s.CPL)
	fmt.Fprintf(&b, "  CR0 %#x CR2 %#x CR3 %#x CR4 %#x EFER %#x\n", s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
	for _, seg := range []struct {
		name string
		s    *Segment
	}{{"CS", &s.CS}, {"DS", &s.DS}, {"SS", &s.SS}, {"ES", &s.ES}, {"FS", &s.FS}, {"GS", &s.GS}, {"TR", &s.TR}, {"GDTR", &s.GDTR}, {"IDTR", &s.IDTR}} {
		fmt.Fprintf(&b, "  %-4s sel %#06x attr %#05x limit %#x base %#x\n", seg.name, seg.s.Selector, seg.s.Attrib, seg.s.Limit, seg.s.Base)
	}
	names := [16]string{"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"}
	for i, n := range names {
		fmt.Fprintf(&b, "  %-3s %#016x", n, v.regs[i])
		if i%4 == 3 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// MSRs the VMCB holds for the guest (AMD APM Vol. 2, Table B-2).
const (
	msrPAT          = 0x277
	msrFSBase       = 0xC0000100
	msrGSBase       = 0xC0000101
	msrKernelGSBase = 0xC0000102
	msrSTAR         = 0xC0000081
	msrLSTAR        = 0xC0000082
	msrCSTAR        = 0xC0000083
	msrSFMASK       = 0xC0000084
	msrSysenterCS   = 0x174
	msrSysenterESP  = 0x175
	msrSysenterEIP  = 0x176
	// EFER bits a guest may set: SCE 0, LME 8, LMA 10, NXE 11, LMSLE 13,
	// FFXSR 14 (AMD APM Vol. 2, 3.1.7). SVME stays hidden and set.
	eferGuestBits = 1<<0 | 1<<8 | 1<<10 | 1<<11 | 1<<13 | 1<<14
)

func (v *VCPU) EngineMSR(msr uint32, write bool, value uint64) (uint64, vcpu.MSRStatus) {
	s := &v.vmcb.Save
	var field *uint64
	switch msr {
	case MSREFER:
		if !write {
			return s.EFER &^ EFERSVME, vcpu.MSRDone
		}
		if value&^eferGuestBits != 0 {
			return 0, vcpu.MSRFault
		}
		s.EFER = value | EFERSVME
		return 0, vcpu.MSRDone
	case msrPAT:
		field = &s.GPAT
	case msrFSBase:
		field = &s.FS.Base
	case msrGSBase:
		field = &s.GS.Base
	case msrKernelGSBase:
		field = &s.KernelGSBase
	case msrSTAR:
		field = &s.STAR
	case msrLSTAR:
		field = &s.LSTAR
	case msrCSTAR:
		field = &s.CSTAR
	case msrSFMASK:
		field = &s.SFMASK
	case msrSysenterCS:
		field = &s.SysenterCS
	case msrSysenterESP:
		field = &s.SysenterESP
	case msrSysenterEIP:
		field = &s.SysenterEIP
	default:
		return 0, vcpu.MSRNotEngine
	}
	if write {
		*field = value
		return 0, vcpu.MSRDone
	}
	return *field, vcpu.MSRDone
}
