// Package guests is what a guest is to tamavisor: a VM (memory, buses,
// device models, CPUID and MSR policy) and the run loop of each of its
// virtual CPUs, which enters the guest through a vendor engine (package svm
// or vmx, behind the vcpu.VCPU contract), dispatches each exit once on its
// vendor-neutral reason, and emulates what the guest asked for.
//
// A guest's fault (triple fault, refused entry, garbage instructions, an
// access no device claims as code) stops that guest with a diagnostic dump;
// the hypervisor and other guests go on. Nothing on the exit path allocates.
package guests
