// Package vcpu is the contract between the vendor engines (package svm for
// AMD-V, package vmx for Intel VT-x) and the vendor-neutral guest core
// (package guests): the exit record an engine fills after each VM exit, and
// the operations the core needs on a virtual CPU.
//
// The data path of one exit: the engine decodes its VMCB or VMCS into an
// Exit, the core dispatches on Exit.Reason once, a handler emulates what the
// guest asked for through the VCPU methods (registers, RIP advance, event
// injection), and the engine re-enters the guest. Nothing on this path
// allocates on the Go heap: Exit is filled in place and the VCPU methods take
// and return plain values.
package vcpu

import "fmt"

// Reason is why the guest stopped running, independent of the vendor.
type Reason uint8

const (
	ReasonNone Reason = iota
	// ReasonCPUID: the guest executed CPUID.
	ReasonCPUID
	// ReasonIO: IN, OUT, INS or OUTS to an intercepted port (Exit.IO).
	ReasonIO
	// ReasonMSRRead / ReasonMSRWrite: RDMSR / WRMSR of an intercepted MSR
	// (Exit.MSR; the value is in RDX:RAX).
	ReasonMSRRead
	ReasonMSRWrite
	// ReasonHLT: the guest halted until the next interrupt.
	ReasonHLT
	// ReasonNestedPageFault: a guest-physical access the nested page
	// tables (NPT, EPT) do not allow (Exit.NPF): MMIO to emulate, or a
	// guest touching memory it does not have.
	ReasonNestedPageFault
	// ReasonExternalInterrupt: a host interrupt arrived while the guest
	// ran (host timer, IPI); nothing to do for the guest.
	ReasonExternalInterrupt
	// ReasonInterruptWindow: the guest can now take an interrupt the core
	// asked to be told about (RequestInterruptWindow).
	ReasonInterruptWindow
	// ReasonPreemption: the scheduler's time slice ended (VMX preemption
	// timer, or the host timer on AMD).
	ReasonPreemption
	// ReasonShutdown: the guest triple-faulted or otherwise shut down.
	ReasonShutdown
	// ReasonInvalidState: the hardware refused to enter the guest
	// (VMEXIT_INVALID, VM-entry failure); Exit.Detail says why.
	ReasonInvalidState
	// ReasonException: an intercepted guest exception (Exit.Vector,
	// Exit.ErrorCode).
	ReasonException
	// ReasonINIT / ReasonSIPI: INIT or start-up IPI received by an AP.
	ReasonINIT
	ReasonSIPI
	// ReasonNMI: a host NMI arrived while the guest ran.
	ReasonNMI
	// ReasonXSETBV: the guest wrote an extended control register.
	ReasonXSETBV
	// ReasonHypercall: VMMCALL (AMD) or VMCALL (Intel).
	ReasonHypercall
	// ReasonPause: PAUSE-loop exiting or the pause filter.
	ReasonPause
	// ReasonUnhandled: a vendor exit with no neutral meaning; the guest is
	// stopped with a dump naming Exit.VendorCode.
	ReasonUnhandled

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone: "none", ReasonCPUID: "cpuid", ReasonIO: "io",
	ReasonMSRRead: "msr-read", ReasonMSRWrite: "msr-write", ReasonHLT: "hlt",
	ReasonNestedPageFault: "npf", ReasonExternalInterrupt: "external-interrupt",
	ReasonInterruptWindow: "interrupt-window", ReasonPreemption: "preemption",
	ReasonShutdown: "shutdown", ReasonInvalidState: "invalid-state",
	ReasonException: "exception", ReasonINIT: "init", ReasonSIPI: "sipi",
	ReasonNMI: "nmi", ReasonXSETBV: "xsetbv", ReasonHypercall: "hypercall",
	ReasonPause: "pause", ReasonUnhandled: "unhandled",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// NumReasons bounds Reason values, for per-reason counters.
const NumReasons = int(numReasons)

// IOExit describes an intercepted port access.
type IOExit struct {
	Port   uint16
	Size   uint8 // 1, 2 or 4 bytes
	In     bool  // IN/INS (device to guest)
	String bool  // INS/OUTS: data in guest memory at (R|E)SI/(R|E)DI
	Rep    bool  // REP prefix: RCX counts the repetitions
}

// NPFExit describes a nested page fault (AMD APM Vol. 2, 15.25.6) or EPT
// violation (Intel SDM Vol. 3C, 28.3.3.2).
type NPFExit struct {
	GPA              uint64
	Read, Write      bool
	Execute          bool
	Present          bool // a translation existed, but forbade the access
	GuestLinear      uint64
	GuestLinearValid bool
}

// Exit is the vendor-neutral record of one VM exit. Engines fill the
// fields that apply to Reason and zero the rest.
type Exit struct {
	Reason Reason
	// VendorCode is the raw SVM EXITCODE or VMX basic exit reason, and
	// Qualification/Info2 the raw EXITINFO1/EXITINFO2 or exit
	// qualification/guest-physical address, for dumps and statistics.
	VendorCode    uint64
	Qualification uint64
	Info2         uint64
	// InstructionLength is the length of the exiting instruction, or 0
	// when the hardware does not report it (AMD without NRIPS): the core
	// then decodes the instruction at RIP.
	InstructionLength uint8

	IO  IOExit
	MSR uint32
	NPF NPFExit

	Vector       uint8
	ErrorCode    uint32
	HasErrorCode bool

	// Detail names the failing check for ReasonInvalidState; engines
	// set it from static strings only (no allocation on the exit path).
	Detail string
}

// GPR names a general-purpose register by its x86 encoding number
// (Intel SDM Vol. 2A, Table 2-2), so instruction decoders can index with it.
type GPR uint8

const (
	RAX GPR = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
	NumGPRs
)

// Segment is a guest segment register's hidden state.
type Segment struct {
	Selector uint16
	Base     uint64
	Limit    uint32
	// Attributes in the VMCB's 12-bit packed form (AMD APM Vol. 2,
	// 15.5.1): type 3:0, S 4, DPL 6:5, P 7, AVL 8, L 9, D/B 10, G 11.
	Attributes uint16
}

// SegmentRegister selects a segment register.
type SegmentRegister uint8

const (
	ES SegmentRegister = iota
	CS
	SS
	DS
	FS
	GS
	NumSegments
)

// ControlRegisters is the guest's paging and mode state.
type ControlRegisters struct {
	CR0, CR2, CR3, CR4, EFER uint64
}

// VCPU is a virtual CPU as a vendor engine implements it. All methods act
// on the state saved at the last exit and take effect at the next Run; none
// allocates. A VCPU is used from one goroutine, pinned to the physical CPU
// that owns its VMCB or VMCS.
type VCPU interface {
	// Run enters the guest and returns at the next exit, with e filled
	// in. An error means the hypervisor itself could not run the guest
	// (no VMCB, VMX not on); guest faults are exits, not errors.
	Run(e *Exit) error

	GPR(r GPR) uint64
	SetGPR(r GPR, v uint64)
	RIP() uint64
	SetRIP(v uint64)
	RFLAGS() uint64
	SetRFLAGS(v uint64)
	Control() ControlRegisters
	Segment(s SegmentRegister) Segment
	// CPL is the current privilege level.
	CPL() uint8

	// SetSegment, SetControl and SetDescriptorTables set up the entry
	// state a loader computed (package loader's boot protocols); they are
	// not used on the exit path.
	SetSegment(s SegmentRegister, seg Segment)
	SetControl(c ControlRegisters)
	SetDescriptorTables(gdtBase uint64, gdtLimit uint16, idtBase uint64, idtLimit uint16)

	// AdvanceRIP skips the instruction that caused the exit: the one
	// place RIP moves past emulated instructions. It also clears the
	// interrupt shadow (STI/MOV SS blocking), as executing it would.
	AdvanceRIP(length uint8)

	// InjectException queues a hardware exception for the next entry.
	InjectException(vector uint8, errorCode uint32, hasErrorCode bool)
	// InjectInterrupt queues an external interrupt; the caller checks
	// Interruptible first.
	InjectInterrupt(vector uint8)
	// Interruptible reports whether the guest can take an external
	// interrupt now (RFLAGS.IF set, no interrupt shadow, no event
	// already pending).
	Interruptible() bool
	// RequestInterruptWindow asks for a ReasonInterruptWindow exit as
	// soon as the guest becomes interruptible.
	RequestInterruptWindow(on bool)

	// EngineMSR reads or writes an MSR whose guest value the engine keeps
	// in its control structure (EFER, PAT, the SYSCALL and FS/GS base
	// MSRs on AMD; the VMCS guest fields on Intel). Status MSRNotEngine
	// leaves the MSR to the core's policy; MSRFault means the access
	// must raise #GP in the guest (e.g. a reserved EFER bit).
	EngineMSR(msr uint32, write bool, value uint64) (result uint64, status MSRStatus)

	// NMIAllowed reports whether an NMI can be injected now (no event
	// pending, NMIs not blocked); InjectNMI queues one (its own event type
	// on both vendors: vector 2 as an exception fails the entry), and
	// RequestNMIWindow asks for an exit when one can be.
	NMIAllowed() bool
	InjectNMI()
	RequestNMIWindow(on bool)

	// SetTSCOffset sets guest TSC = host TSC + offset.
	SetTSCOffset(offset int64)

	// Dump writes the engine's view of the virtual CPU (VMCB or VMCS
	// fields) for the diagnostic printed when a guest is stopped.
	Dump() string
}

// MSRStatus is the outcome of VCPU.EngineMSR.
type MSRStatus uint8

const (
	MSRNotEngine MSRStatus = iota
	MSRDone
	MSRFault
)

// Memory is a guest's physical memory as the core, loaders and the
// instruction emulator see it. Accesses outside the guest's RAM return an
// error naming the address: a guest pointer is never trusted.
type Memory interface {
	ReadGuest(gpa uint64, b []byte) error
	WriteGuest(gpa uint64, b []byte) error
}
