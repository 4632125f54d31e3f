//go:build tamago

package vmx

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/guests/vcpu"
)

// Pages is where the engine gets physically contiguous, 4 KiB-aligned,
// zeroed, identity-mapped pages for VMXON regions, VMCSs, TSSs, FPU areas
// and MSR lists (package physmem on the image).
type Pages interface {
	Alloc(size, align uint64) (uint64, error)
}

// Pager frees what Alloc gave, for Release.
type Pager interface{ Free(addr, size uint64) }

// defined in worldswitch_amd64.s
func vmxOn(apicID, region, cr0Fixed0, cr0Fixed1, cr4Fixed0, cr4Fixed1 uint64) (status uint64)
func vmxRun(ws *worldSwitch) (status uint64)

// perCPU is the VMX state of one physical CPU: its VMXON region, and the
// TSS that HOST_TR_BASE points to (VM exits load TR; nothing in the host
// ever reads this TSS, since the hypervisor runs in ring 0 without IST
// stacks or I/O permission bitmaps, but a real one keeps TR sound).
type perCPU struct {
	vmxon, tss uint64
}

var (
	cpusMu sync.Mutex
	cpus   = map[uint32]*perCPU{}
)

// errWrongCPU: the goroutine moved to another CPU while enabling VMX.
var errWrongCPU = errors.New("vmx: moved to another CPU")

// Engine runs guests with Intel VT-x on the CPUs of this machine.
type Engine struct {
	Caps     *Capabilities
	Controls *Controls
	m        *hw.Machine
	pages    Pages
	vpids    VPIDs
}

// NewEngine computes the controls every vCPU uses (NewControls) and fails,
// naming what is missing, when the processor cannot run this engine's
// guests. CPUs enter VMX operation lazily, when a vCPU first runs on each.
func NewEngine(caps *Capabilities, m *hw.Machine, pages Pages, opts ControlOptions) (*Engine, error) {
	ctl, err := NewControls(caps, opts)
	if err != nil {
		return nil, err
	}
	return &Engine{Caps: caps, Controls: ctl, m: m, pages: pages}, nil
}

func pageAt(pa uint64) unsafe.Pointer { return unsafe.Pointer(uintptr(pa)) }

func currentAPICID(m *hw.Machine) uint32 { return m.Read32(0xfee00020) >> 24 }

// enableThisCPU enters VMX operation on the CPU apicID names, once
// (vmxOn checks that it runs there).
func (e *Engine) enableThisCPU(apicID uint32) (*perCPU, error) {
	cpusMu.Lock()
	defer cpusMu.Unlock()
	if c, ok := cpus[apicID]; ok {
		return c, nil
	}
	c := &perCPU{}
	var err error
	if c.vmxon, err = e.pages.Alloc(4096, 4096); err != nil {
		return nil, err
	}
	if c.tss, err = e.pages.Alloc(4096, 4096); err != nil {
		return nil, err
	}
	// The VMXON region starts with the VMCS revision identifier (SDM
	// Vol. 3C, 25.11.5 "VMXON Region").
	*(*uint32)(pageAt(c.vmxon)) = e.Controls.Revision
	cr0, cr4 := e.Caps.CR0, e.Caps.CR4
	status := vmxOn(uint64(apicID), c.vmxon, cr0.Fixed0, cr0.Fixed1, cr4.Fixed0, cr4.Fixed1)
	if status != 0 {
		if f, ok := e.pages.(Pager); ok {
			f.Free(c.vmxon, 4096)
			f.Free(c.tss, 4096)
		}
	}
	switch status {
	case 0:
		cpus[apicID] = c
		return c, nil
	case 1:
		return nil, errWrongCPU
	case 2:
		return nil, fmt.Errorf("vmx: CPU %d: IA32_FEATURE_CONTROL is locked with VMX outside SMX disabled", apicID)
	case 3:
		return nil, fmt.Errorf("vmx: CPU %d: CR0 holds a bit IA32_VMX_CR0_FIXED1 (%#x) forbids in VMX operation", apicID, cr0.Fixed1)
	case 4:
		return nil, fmt.Errorf("vmx: CPU %d: CR4 holds a bit IA32_VMX_CR4_FIXED1 (%#x) forbids in VMX operation", apicID, cr4.Fixed1)
	case 5:
		return nil, fmt.Errorf("vmx: CPU %d: VMXON failed (VMfailInvalid: the VMXON region at %#x or its revision %#x is refused)", apicID, c.vmxon, e.Controls.Revision)
	}
	return nil, fmt.Errorf("vmx: CPU %d: VMXON failed (VMfailValid: already in VMX operation?)", apicID)
}

// VCPU is one virtual CPU under Intel VT-x. It implements vcpu.VCPU; the
// state methods come from Guest.
type VCPU struct {
	*Guest
	engine *Engine
	vmcs   uint64
	pages  [3]uint64 // VMCS, FPU areas, MSR list: given back by Release
	vpid   uint16

	ws       worldSwitch
	writes   [MaxWrites]FieldOp
	reads    [numReads]uint64
	lastAPIC int64   // the CPU of the last entry, -1 before the first
	lastCPU  *perCPU // its VMX state
	// status and failure describe the last world switch that did not
	// end in a VM exit, for the dump.
	status  uint64
	failure string
}

// NewVCPU allocates a VMCS, FPU areas and an MSR list, and a VPID when the
// processor has them. Nothing touches the hardware until the first Run.
func (e *Engine) NewVCPU() (*VCPU, error) {
	v := &VCPU{engine: e, lastAPIC: -1}
	for i := range v.pages {
		pa, err := e.pages.Alloc(4096, 4096)
		if err != nil {
			v.Release()
			return nil, err
		}
		v.pages[i] = pa
	}
	v.vmcs = v.pages[0]
	// A VMCS region starts with the revision identifier, bit 31 (shadow
	// VMCS) clear (SDM Vol. 3C, 25.2 "Format of the VMCS Region").
	*(*uint32)(pageAt(v.vmcs)) = e.Controls.Revision
	guestFPU, hostFPU := (*FXArea)(pageAt(v.pages[1])), (*FXArea)(pageAt(v.pages[1]+512))
	guestFPU.Reset()
	msrs := (*MSRList)(pageAt(v.pages[2]))
	v.Guest = NewGuest(e.Controls, msrs, v.pages[2])
	if e.Controls.VPID() {
		vpid, err := e.vpids.Get()
		if err != nil {
			v.Release()
			return nil, err
		}
		v.vpid = vpid
		v.SetVPID(vpid)
	}
	v.ws = worldSwitch{
		VMCS: v.vmcs, Writes: &v.writes, ReadFields: &readFields, ReadValues: &v.reads, NReads: uint64(numReads),
		Regs: &v.Guest.Regs, GuestFPU: guestFPU, HostFPU: hostFPU,
		INVEPTType: e.Controls.INVEPTType, INVVPIDType: e.Controls.INVVPIDType, Init: 1,
	}
	if v.vpid == 0 {
		v.ws.INVVPIDType = 0
	}
	return v, nil
}

// Release returns the vCPU's VPID and, when the engine's page source can
// free, its pages. The vCPU must not run again. Its VMCS is not active on
// any CPU: every run ends with VMCLEAR.
func (v *VCPU) Release() {
	if v.vpid != 0 {
		v.engine.vpids.Put(v.vpid)
		v.vpid = 0
	}
	if f, ok := v.engine.pages.(Pager); ok {
		for i, pa := range v.pages {
			if pa != 0 {
				f.Free(pa, 4096)
				v.pages[i] = 0
			}
		}
	}
}

// maxMoves bounds how often Run retries when the goroutine turns out to
// run on another CPU than the one it prepared (each retry prepares the CPU
// it is on now).
const maxMoves = 16

// Run enters the guest and decodes the exit into e. Control-register
// accesses that exit because they touch a bit the host owns (CR0.NE,
// CR4.VMXE, CR8) are emulated here and the guest re-entered: the guest core
// never sees them, as on AMD, where they do not exit at all.
func (v *VCPU) Run(e *vcpu.Exit) error {
	for {
		if r := v.Refusal(); r != "" {
			*e = vcpu.Exit{Reason: vcpu.ReasonInvalidState, Detail: r}
			return nil
		}
		if err := v.enter(); err != nil {
			return err
		}
		if v.failure != "" {
			*e = vcpu.Exit{Reason: vcpu.ReasonInvalidState, Detail: v.failure}
			return nil
		}
		x := &v.Exit
		if x.Basic() == ExitCRAccess && !x.EntryFailed() &&
			v.EmulateCRAccess(DecodeCRAccess(x.Qualification), uint8(x.InstructionLength)) {
			continue
		}
		DecodeExit(x, e)
		switch {
		case e.Reason == vcpu.ReasonMSRRead || e.Reason == vcpu.ReasonMSRWrite:
			e.MSR = uint32(v.Regs[vcpu.RCX])
		case x.EntryFailed() && x.Basic() == ExitInvalidGuestState && x.Qualification == 0:
			// The processor names no check: the engine's model of them
			// may (this allocates, once, as the guest stops).
			if p := v.Problems(); len(p) > 0 {
				e.Detail = "VM entry failed: invalid guest state: " + p[0]
			}
		}
		return nil
	}
}

// enter performs one world switch on the CPU the goroutine runs on.
func (v *VCPU) enter() error {
	v.failure = ""
	for moves := 0; moves < maxMoves; moves++ {
		apicID := currentAPICID(v.engine.m)
		c := v.lastCPU
		if v.lastAPIC != int64(apicID) {
			var err error
			c, err = v.engine.enableThisCPU(apicID)
			if errors.Is(err, errWrongCPU) {
				continue
			}
			if err != nil {
				return err
			}
		}
		ws := &v.ws
		ws.APICID, ws.HostTRBase, ws.CR2 = uint64(apicID), c.tss, v.CR2
		// Translations this vCPU cached on this CPU before it last moved
		// away may be stale (the guest changed its page tables
		// elsewhere): invalidate them (SDM Vol. 3C, 29.4.3 "Invalidating
		// Cached Translation Information").
		ws.Flush = 0
		if v.lastAPIC != int64(apicID) || v.FlushTLB {
			ws.Flush = 1
			ws.INVEPTDesc = [2]uint64{v.EPTP(), 0}
			ws.INVVPIDDesc = [2]uint64{uint64(v.vpid), 0}
		}
		ws.NWrites = uint64(v.PrepareEntry(&v.writes))
		v.status = vmxRun(ws)
		switch v.status {
		case wsWrongCPU:
			continue
		case wsExited:
			v.CR2 = ws.CR2
			v.Commit()
			v.ReadBack(&v.reads)
			v.lastAPIC, v.lastCPU = int64(apicID), c
			return nil
		}
		v.failure = v.describeFailure()
		return nil
	}
	return fmt.Errorf("vmx: the vCPU's goroutine was on another CPU than the one it prepared %d times in a row", maxMoves)
}

// describeFailure names a world switch that failed before the guest ran
// (or after, reading the VMCS back).
func (v *VCPU) describeFailure() string {
	ws := &v.ws
	ie := InstructionError(ws.InstructionError)
	switch v.status {
	case wsVMPTRLD:
		return fmt.Sprintf("VMPTRLD of the VMCS at %#x failed (revision %#x)", v.vmcs, v.engine.Controls.Revision)
	case wsVMWRITE:
		return fmt.Sprintf("VMWRITE of %v failed: %v", Field(ws.FailedField), ie)
	case wsVMLAUNCH:
		if ws.FailInvalid != 0 {
			return "VMLAUNCH failed with VMfailInvalid (no current VMCS)"
		}
		d := fmt.Sprintf("VMLAUNCH failed: %v%s", ie, ie.Hint())
		if p := v.Problems(); len(p) > 0 {
			d += "; the engine's model of the checks names: " + p[0]
		}
		return d
	case wsVMREAD:
		return fmt.Sprintf("VMREAD of %v after the exit failed: %v", Field(ws.FailedField), ie)
	case wsInvalidation:
		return fmt.Sprintf("INVEPT/INVVPID before the entry failed: %v", ie)
	case wsVMCLEAR:
		return "VMCLEAR after the exit failed"
	}
	return fmt.Sprintf("the world switch returned status %d", v.status)
}

// Dump prints the VMCS as the engine last wrote and read it.
func (v *VCPU) Dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VMCS at %#x (Intel SDM Vol. 3C, 25; Vol. 3D, Appendix B), VPID %d, last CPU %d\n", v.vmcs, v.vpid, v.lastAPIC)
	if v.status != wsExited {
		name := "unknown"
		if v.status < uint64(len(wsStatusNames)) {
			name = wsStatusNames[v.status]
		}
		fmt.Fprintf(&b, "  the last world switch ended with status %d (%s)\n", v.status, name)
	}
	v.DumpTo(&b)
	return b.String()
}
