package emulator

import (
	"fmt"
	"strconv"
	"strings"
)

// qemuArgs builds QEMU's arguments (without the program name). accel is
// already resolved (kvm or tcg); varsCopy is the writable copy of the OVMF
// variable store, used only for a UEFI boot.
//
// Every flag here was run on QEMU 7.2 (Debian 1:7.2+dfsg):
//   - q35 is the machine: PCIe, an ICH9 with AHCI, HPET, MCFG, and the
//     only x86 machine that takes intel-iommu and amd-iommu.
//   - -nodefaults removes the default NIC and VGA; with -display none the
//     serial port is the only console, as on a headless server.
//   - -no-reboot turns a guest reset (a triple fault included) into QEMU's
//     exit, so a crash ends the run instead of looping.
//   - The UEFI disk is attached with snapshot=on: the guest's writes go to
//     a throw-away overlay, the build artifact stays untouched, and several
//     runs may share it (QEMU would otherwise take a write lock on it).
func qemuArgs(c *Config, accel Accel, varsCopy string) []string {
	machine := "q35"
	if accel == AccelKVM && c.IOMMU != IOMMUNone {
		// Interrupt remapping in the emulated IOMMU needs the IOAPIC in
		// QEMU rather than in the kernel (QEMU's docs for intel-iommu).
		machine += ",kernel-irqchip=split"
	}
	cpu := c.CPU
	if cpu == "" {
		cpu = TCGCPU
		if accel == AccelKVM {
			cpu = KVMCPU
		}
	}
	serial := "stdio"
	if c.Interactive {
		serial = "mon:stdio" // Ctrl-A X quits, Ctrl-A C reaches the monitor
	}
	args := []string{
		"-machine", machine,
		"-accel", string(accel),
		"-cpu", cpu,
		"-m", strconv.Itoa(c.MemoryMiB) + "M",
		"-smp", strconv.Itoa(c.SMP),
		"-nodefaults",
		"-display", "none",
		"-no-reboot",
		"-serial", serial,
	}
	switch c.IOMMU {
	case IOMMUIntel:
		// 48-bit guest addresses: QEMU 7.2 defaults to 39 bits, whose
		// 3-level second-level tables the VT-d driver does not build
		// (drivers/iommu/vtd refuses such a unit with this advice).
		args = append(args, "-device", "intel-iommu,aw-bits=48")
	case IOMMUAMD:
		args = append(args, "-device", "amd-iommu")
	}
	switch {
	case c.Kernel != "":
		args = append(args, "-kernel", c.Kernel)
	case c.ISO != "":
		args = append(args,
			"-drive", "media=cdrom,format=raw,readonly=on,file="+qemuOptValue(c.ISO),
			"-boot", "order=d")
	case c.UEFI != "":
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+qemuOptValue(c.OVMFCode),
			"-drive", "if=pflash,format=raw,file="+qemuOptValue(varsCopy),
			"-drive", "format=raw,snapshot=on,file="+qemuOptValue(c.UEFI))
	}
	return append(args, c.ExtraArgs...)
}

// qemuOptValue escapes a value inside a QEMU option list, where a comma
// separates options and a doubled comma stands for itself.
func qemuOptValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// FormatCommand renders argv for a shell, quoting what needs it.
func FormatCommand(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && strings.IndexFunc(a, needsQuote) < 0 {
			b.WriteString(a)
			continue
		}
		fmt.Fprintf(&b, "'%s'", strings.ReplaceAll(a, "'", `'\''`))
	}
	return b.String()
}

func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	case strings.ContainsRune("-_=+,.:/@%", r):
		return false
	}
	return true
}
