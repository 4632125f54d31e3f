// Package vmx is the Intel VT-x engine of the hypervisor.
//
// Its capability layer decodes the VMX capability MSRs (Intel SDM Vol. 3D,
// Appendix A "VMX Capability Reporting Facility") into a Capabilities value
// that the boot inventory prints and from which the engine computes every
// VMCS control word (ControlCaps.Adjust, NewControls), so that nothing is
// hard-coded to one processor model. Probe reads only the MSRs that the
// processor reports it implements: a VMX capability MSR that does not exist
// raises #GP on RDMSR, and several of them exist only when a bit in another
// one says so (Appendix A.3.3, A.3.4, A.10, A.11). The existence rules are
// spelled out next to each read.
//
// The engine runs guests through the vendor-neutral contract of package
// guests/vcpu, as package svm does with AMD-V, and the guest core sees the
// same exits from both (DecodeExit). It is split so that all but the
// hardware access is tested on the host:
//
//   - vmcs.go: VMCS field encodings (Vol. 3D, Appendix B); exit.go: exit
//     reasons (Appendix C) and the exit-qualification decoders; errors.go:
//     VM-instruction errors (Vol. 3C, 31.4) and VM-entry failures;
//     checks.go: a model of the VM-entry checks (Vol. 3C, 27.2-27.3) that
//     names the failing one, which the processor does not.
//   - engine.go: the control words; guest.go: Guest, a vCPU's state as the
//     engine keeps it (every vcpu.VCPU method but Run and Dump), the
//     fields to write before an entry and the reading back after an exit.
//   - engine_tamago.go and worldswitch_amd64.s: VMXON per CPU, the VMCS
//     per vCPU, and the world switch.
//
// The engine needs EPT. It uses "unrestricted guest" where the processor
// has it (guests in real mode and with paging off); without it, guests
// that start and stay in paged mode still run, and a vCPU in a state that
// needs the control is refused by name (Guest.Refusal) rather than entered.
//
// The goroutine running a vCPU is not locked to a thread (boot/guest.go
// runVCPU says why) and may resume on another CPU between two runs, while a
// VMCS may be active on one CPU only. So every run, from VMPTRLD through
// VMLAUNCH to VMCLEAR, happens in one assembly function with interrupts
// disabled, after checking that it runs on the CPU it was prepared for;
// between runs the VMCS is cleared and the engine keeps a copy of its
// fields in Go. The cost, against keeping the VMCS current while the
// goroutine stays on one CPU: a VMCLEAR and a VMPTRLD per run, VMLAUNCH
// instead of VMRESUME, the changed fields written and about 70 fields read
// per run, and INVEPT/INVVPID whenever the vCPU changes CPU.
//
// Citations: "SDM" is the Intel 64 and IA-32 Architectures Software
// Developer's Manual, in the edition where the VMX chapters are Vol. 3C,
// chapters 24-31 (25 "Virtual Machine Control Structures", 27 "VM
// Entries", 28 "VM Exits", 29 "VMX Support for Address Translation", 31
// "VMX Instruction Reference"). Chapter and table numbers of the VMX
// chapters differ between SDM editions, so tables are also cited by their
// titles; the section numbers of Appendix A are stable.
package vmx
