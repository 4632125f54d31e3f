// Package vmx is the Intel VT-x engine of the hypervisor. This part is its
// capability layer: it decodes the VMX capability MSRs (Intel SDM Vol. 3D,
// Appendix A "VMX Capability Reporting Facility") into a Capabilities value
// that the boot inventory prints and from which the engine computes every
// VMCS control word (ControlCaps.Adjust), so that nothing is hard-coded to
// one processor model.
//
// Probe reads only the MSRs that the processor reports it implements: a
// VMX capability MSR that does not exist raises #GP on RDMSR, and several of
// them exist only when a bit in another one says so (Appendix A.3.3, A.3.4,
// A.10, A.11). The existence rules are spelled out next to each read.
//
// Citations: "SDM" is the Intel 64 and IA-32 Architectures Software
// Developer's Manual. Chapter and table numbers of the VMX chapters differ
// between SDM editions, so the VMCS control tables are cited by their
// titles; the section numbers of Appendix A are stable.
package vmx
