// Package emulator runs tamavisor images under QEMU or Bochs on the build
// host and captures their serial console (COM1).
//
// It is the one place that knows the emulators' command lines: tools/runvm
// (make qemu, make bochs), the integration tests in qemu-test/ and
// tools/bench all go through it, so a flag verified once holds for all.
//
// The facts it encodes were measured on QEMU 7.2 and Bochs 2.7 (Debian 12
// packages; the reasons sit beside the flags in qemu.go and bochs.go):
// TamaGo needs RDRAND, hence `-cpu qemu64,+svm,+npt,+rdrand` under TCG
// (AMD-V is the only virtualization extension QEMU's TCG emulates); KVM is
// used only where /dev/kvm is usable and nested virtualization is on, with
// `-cpu host`.
// Bochs has no headless display in Debian's build: it runs with the RFB
// display and a zero connection timeout, inside a fresh network namespace
// where one can be made so that its VNC port is reachable from nowhere.
//
// A non-interactive QEMU run takes input too: Machine.Type writes to QEMU's
// standard input, which -serial stdio hands to COM1's receiver, so a test
// can type at a shell on the machine's console (qemu-test, tools/bench).
//
// Every emulator runs in its own process group, and the whole group is
// killed at the deadline or on Close: a hung guest never outlives its run.
// Interactive QEMU is the exception: it stays in the terminal's foreground
// group to read the keyboard, and only it is killed.
package emulator
