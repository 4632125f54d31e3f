package svm

// The Virtual Machine Control Block (AMD APM Vol. 2, Appendix B "Layout of
// VMCB"): one 4 KiB page per virtual CPU, control area at 0x000 and state
// save area at 0x400. Offsets are checked against the APM's tables in
// vmcb_test.go.

// Segment is a VMCB segment register (APM Vol. 2, Table B-2): selector,
// attributes in the packed 12-bit form (type 3:0, S 4, DPL 6:5, P 7, AVL 8,
// L 9, D/B 10, G 11), limit and base.
type Segment struct {
	Selector uint16
	Attrib   uint16
	Limit    uint32
	Base     uint64
}

// ControlArea is the VMCB control area (APM Vol. 2, Table B-1).
type ControlArea struct {
	InterceptCR         uint32 // 0x000: reads 15:0, writes 31:16
	InterceptDR         uint32 // 0x004
	InterceptExceptions uint32 // 0x008: one bit per vector
	InterceptMisc1      uint32 // 0x00C: Intercept* bits below
	InterceptMisc2      uint32 // 0x010: Intercept2* bits below
	InterceptMisc3      uint32 // 0x014
	_                   [0x3C - 0x18]byte
	PauseFilterThresh   uint16 // 0x03C
	PauseFilterCount    uint16 // 0x03E
	IOPMBase            uint64 // 0x040: physical address of the I/O permission map
	MSRPMBase           uint64 // 0x048: physical address of the MSR permission map
	TSCOffset           uint64 // 0x050
	GuestASID           uint32 // 0x058
	TLBControl          uint8  // 0x05C
	_                   [3]byte
	VIntr               uint64 // 0x060: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR
	InterruptShadow     uint64 // 0x068: bit 0 interrupt shadow
	ExitCode            uint64 // 0x070
	ExitInfo1           uint64 // 0x078
	ExitInfo2           uint64 // 0x080
	ExitIntInfo         uint64 // 0x088
	NestedControl       uint64 // 0x090: bit 0 NP_ENABLE
	AVICAPICBar         uint64 // 0x098
	GHCB                uint64 // 0x0A0
	EventInjection      uint64 // 0x0A8
	NestedCR3           uint64 // 0x0B0
	LBRVirtualization   uint64 // 0x0B8
	CleanBits           uint64 // 0x0C0
	NextRIP             uint64 // 0x0C8: with NRIPS
	InstructionLength   uint8  // 0x0D0: with decode assists
	InstructionBytes    [15]byte
	_                   [0x400 - 0xE0]byte
}

// StateSaveArea is the VMCB state save area (APM Vol. 2, Table B-2),
// starting at VMCB offset 0x400. Offsets in comments are from its start.
type StateSaveArea struct {
	ES, CS, SS, DS, FS, GS Segment // 0x000-0x05F
	GDTR, LDTR, IDTR, TR   Segment // 0x060-0x09F
	_                      [0xCB - 0xA0]byte
	CPL                    uint8 // 0x0CB
	_                      [4]byte
	EFER                   uint64 // 0x0D0
	_                      [0x148 - 0xD8]byte
	CR4                    uint64 // 0x148
	CR3                    uint64 // 0x150
	CR0                    uint64 // 0x158
	DR7                    uint64 // 0x160
	DR6                    uint64 // 0x168
	RFLAGS                 uint64 // 0x170
	RIP                    uint64 // 0x178
	_                      [0x1D8 - 0x180]byte
	RSP                    uint64 // 0x1D8
	SCET                   uint64 // 0x1E0
	SSP                    uint64 // 0x1E8
	ISSTAddr               uint64 // 0x1F0
	RAX                    uint64 // 0x1F8
	STAR                   uint64 // 0x200
	LSTAR                  uint64 // 0x208
	CSTAR                  uint64 // 0x210
	SFMASK                 uint64 // 0x218
	KernelGSBase           uint64 // 0x220
	SysenterCS             uint64 // 0x228
	SysenterESP            uint64 // 0x230
	SysenterEIP            uint64 // 0x238
	CR2                    uint64 // 0x240
	_                      [0x268 - 0x248]byte
	GPAT                   uint64 // 0x268
	DebugCtl               uint64 // 0x270
	BranchFrom             uint64 // 0x278
	BranchTo               uint64 // 0x280
	LastExceptionFrom      uint64 // 0x288
	LastExceptionTo        uint64 // 0x290
	_                      [0xC00 - 0x298]byte
}

// VMCB is the whole 4 KiB block. It must sit at a 4 KiB-aligned physical
// address; the hypervisor's memory is identity-mapped, so a page-aligned Go
// allocation that is never freed serves.
type VMCB struct {
	Control ControlArea
	Save    StateSaveArea
}

// Intercept vector 3 (VMCB offset 0x00C) bits (APM Vol. 2, Table B-1).
const (
	InterceptINTR       = 1 << 0
	InterceptNMI        = 1 << 1
	InterceptSMI        = 1 << 2
	InterceptINIT       = 1 << 3
	InterceptVINTR      = 1 << 4
	InterceptCR0SelWr   = 1 << 5
	InterceptRDTSC      = 1 << 14
	InterceptRDPMC      = 1 << 15
	InterceptCPUID      = 1 << 18
	InterceptRSM        = 1 << 19
	InterceptIRET       = 1 << 20
	InterceptINTn       = 1 << 21
	InterceptINVD       = 1 << 22
	InterceptPAUSE      = 1 << 23
	InterceptHLT        = 1 << 24
	InterceptINVLPG     = 1 << 25
	InterceptINVLPGA    = 1 << 26
	InterceptIOIOProt   = 1 << 27
	InterceptMSRProt    = 1 << 28
	InterceptTaskSwitch = 1 << 29
	InterceptFERRFreeze = 1 << 30
	InterceptShutdown   = 1 << 31
)

// Intercept vector 4 (VMCB offset 0x010) bits.
const (
	Intercept2VMRUN     = 1 << 0 // must be set: VMRUN fails otherwise (15.5.1)
	Intercept2VMMCALL   = 1 << 1
	Intercept2VMLOAD    = 1 << 2
	Intercept2VMSAVE    = 1 << 3
	Intercept2STGI      = 1 << 4
	Intercept2CLGI      = 1 << 5
	Intercept2SKINIT    = 1 << 6
	Intercept2RDTSCP    = 1 << 7
	Intercept2ICEBP     = 1 << 8
	Intercept2WBINVD    = 1 << 9
	Intercept2MONITOR   = 1 << 10
	Intercept2MWAIT     = 1 << 11
	Intercept2MWAITCond = 1 << 12
	Intercept2XSETBV    = 1 << 13
)

// NestedControl bits (VMCB 0x090).
const NestedPagingEnable = 1 << 0

// TLB_CONTROL values (VMCB 0x05C, APM Vol. 2, 15.16.1).
const (
	TLBControlNone        = 0
	TLBControlFlushAll    = 1 // every ASID; the only value without FlushByAsid
	TLBControlFlushGuest  = 3 // this guest's ASID
	TLBControlFlushNonGbl = 7
)

// VIntr (VMCB 0x060) fields (APM Vol. 2, 15.21.3).
const (
	VIntrIRQ       = 1 << 8
	VIntrIgnTPR    = 1 << 20
	VIntrMasking   = 1 << 24
	vIntrPrioShift = 16
)

// EVENTINJ (VMCB 0x0A8, APM Vol. 2, 15.20): vector 7:0, type 10:8,
// EV (error code valid) 11, V (valid) 31, error code 63:32.
const (
	EventTypeInterrupt = 0 << 8 // external or virtual interrupt
	EventTypeNMI       = 2 << 8
	EventTypeException = 3 << 8
	EventTypeSoftware  = 4 << 8 // INTn
	EventErrorValid    = 1 << 11
	EventValid         = 1 << 31
)

// EventInjection encodes an EVENTINJ value.
func EventInjection(vector uint8, typ uint64, errorCode uint32, hasErrorCode bool) uint64 {
	e := uint64(vector) | typ | EventValid
	if hasErrorCode {
		e |= EventErrorValid | uint64(errorCode)<<32
	}
	return e
}

// Segment attributes for flat segments a loader's entry state uses.
const (
	AttribCode32 = 0xC9B // P, S, type 0xB (execute/read, accessed), D/B, G
	AttribCode64 = 0xA9B // P, S, type 0xB, L, G
	AttribData   = 0xC93 // P, S, type 3 (read/write, accessed), D/B, G
	AttribTSS    = 0x08B // P, type 0xB (busy 32/64-bit TSS)
	AttribLDT    = 0x082 // P, type 2
)
