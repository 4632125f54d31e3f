package vmx

// FXArea is an FXSAVE image (Intel SDM Vol. 1, 10.5.1): 512 bytes, 16-byte
// aligned, hence carved out of a physical page rather than the Go heap.
type FXArea [512]byte

// Reset puts the x87/SSE reset state in an FXSAVE image: FCW 0x037F and
// MXCSR 0x1F80 (Intel SDM Vol. 1, 8.1.5 and 10.2.3.1).
func (a *FXArea) Reset() {
	*a = FXArea{}
	a[0], a[1] = 0x7f, 0x03
	a[24], a[25] = 0x80, 0x1f
}

// worldSwitch is the block the world switch (vmxRun, worldswitch_amd64.s)
// works from: one per vCPU. Its offsets are the WS_* macros of
// vmx_amd64.h; worldswitch_test.go checks that the two agree.
//
// Everything that must happen on the CPU that enters the guest happens in
// vmxRun, with interrupts disabled and no Go code in between, because the
// goroutine running a vCPU is not locked to a thread and can move to
// another CPU at any function call: the check that this is the CPU the
// engine prepared (APICID), VMPTRLD, the VMWRITEs, the host state of this
// CPU (control registers, FS/GS bases, GDTR/IDTR, SYSENTER, EFER, PAT),
// TLB invalidation, VMLAUNCH, the VMREADs after the exit, and VMCLEAR.
type worldSwitch struct {
	APICID     uint64              // in: the local APIC ID of the CPU this was prepared for
	VMCS       uint64              // in: physical address of the VMCS (VMPTRLD/VMCLEAR operand)
	Writes     *[MaxWrites]FieldOp // in: VMWRITEs before the entry
	NWrites    uint64
	ReadFields *[numReads]uint64 // in: VMREADs after the exit
	ReadValues *[numReads]uint64 // out
	NReads     uint64
	Regs       *[16]uint64 // in/out: guest general-purpose registers but RSP
	GuestFPU   *FXArea
	HostFPU    *FXArea
	HostTRBase uint64 // in: this CPU's TSS
	CR2        uint64 // in/out: the guest's CR2
	// Flush asks for INVEPT (INVEPTType with INVEPTDesc) and INVVPID
	// (INVVPIDType with INVVPIDDesc, skipped when 0) before the entry.
	Flush       uint64
	INVEPTType  uint64
	INVEPTDesc  [2]uint64 // EPTP, reserved (SDM Vol. 3C, 31.3 INVEPT)
	INVVPIDType uint64
	INVVPIDDesc [2]uint64 // VPID in bits 15:0, linear address (31.3 INVVPID)
	// FailedField is the encoding whose VMWRITE or VMREAD failed, and
	// InstructionError the VM-instruction error after a VMfailValid.
	FailedField      uint64
	InstructionError uint64
	// FailInvalid: the failing instruction set CF (VMfailInvalid, no
	// current VMCS), not ZF.
	FailInvalid uint64
	// Scratch receives SGDT and SIDT.
	Scratch [2]uint64
	// Init asks for a VMCLEAR of the new VMCS before its first VMPTRLD;
	// the world switch clears it.
	Init uint64
}

// World-switch status codes (vmxRun's result).
const (
	wsExited       = 0 // the guest ran and exited (or VM entry failed while loading guest state)
	wsWrongCPU     = 1 // the goroutine runs on another CPU than APICID: nothing was done
	wsVMPTRLD      = 2 // VMPTRLD failed
	wsVMWRITE      = 3 // a VMWRITE failed: FailedField
	wsVMLAUNCH     = 4 // VMLAUNCH failed: InstructionError (VMfailValid)
	wsVMREAD       = 5 // a VMREAD after the exit failed: FailedField
	wsInvalidation = 6 // INVEPT or INVVPID failed
	wsVMCLEAR      = 7 // VMCLEAR after the exit failed
)

// wsStatusNames describe the status codes for errors and dumps.
var wsStatusNames = [...]string{
	wsExited: "exited", wsWrongCPU: "wrong CPU", wsVMPTRLD: "VMPTRLD failed",
	wsVMWRITE: "VMWRITE failed", wsVMLAUNCH: "VMLAUNCH failed", wsVMREAD: "VMREAD failed",
	wsInvalidation: "INVEPT/INVVPID failed", wsVMCLEAR: "VMCLEAR failed",
}
