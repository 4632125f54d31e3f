package emulator

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Emulator names the program that runs the machine.
type Emulator string

const (
	QEMU  Emulator = "qemu"
	Bochs Emulator = "bochs"
)

// Accel is QEMU's accelerator choice.
type Accel string

const (
	// AccelAuto picks KVM where it can run a hypervisor guest (DetectKVM),
	// TCG otherwise.
	AccelAuto Accel = "auto"
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// IOMMU is the emulated IOMMU QEMU adds to its q35 machine.
type IOMMU string

const (
	IOMMUNone  IOMMU = "none"
	IOMMUIntel IOMMU = "intel" // VT-d, reported in the ACPI DMAR table
	IOMMUAMD   IOMMU = "amd"   // AMD-Vi, reported in the ACPI IVRS table
)

// Default emulator settings.
const (
	// TCGCPU is the CPU model under QEMU's TCG: AMD-V with nested paging,
	// and RDRAND, which TamaGo's amd64 entropy source needs (#UD without).
	TCGCPU = "qemu64,+svm,+npt,+rdrand"
	// KVMCPU passes the host CPU, with its VMX or SVM, to the guest.
	KVMCPU = "host"
	// BochsCPU is an Intel CPU with VMX, EPT, VPID and unrestricted guest
	// in Bochs 2.7's list of models.
	BochsCPU = "corei7_skylake_x"

	DefaultQEMUMemoryMiB = 2048
	// DefaultBochsMemoryMiB gives Bochs a 2 GiB machine, all of it
	// backed by host memory (bochsConfig explains why it must be).
	DefaultBochsMemoryMiB = 2048
	// BochsMaxMemoryMiB is the most host memory Bochs 2.7 accepts
	// (its memory.host parameter ranges 1-2048 MiB), so the most guest
	// memory it runs without swapping blocks to a file.
	BochsMaxMemoryMiB = 2048
	// DefaultBochsIPS is Bochs's own default. With clock sync=none emulated
	// time advances with the instruction count, so the TSC runs at this
	// rate and every fixed delay in the BIOS (its IDE probe timeout) costs
	// ips×delay instructions: measured, the BIOS reached the CD's boot
	// sector after 17 million instructions at 4 MIPS and 312 million at
	// 100 MIPS (Bochs's real speed here), seconds of wall time apart.
	DefaultBochsIPS = 4_000_000

	DefaultQEMUBinary   = "qemu-system-x86_64"
	DefaultBochsBinary  = "bochs"
	DefaultOVMFCode     = "/usr/share/OVMF/OVMF_CODE.fd"
	DefaultOVMFVars     = "/usr/share/OVMF/OVMF_VARS.fd"
	DefaultBochsBIOS    = "/usr/share/bochs/BIOS-bochs-latest"
	DefaultBochsVGABIOS = "/usr/share/vgabios/vgabios.bin"
)

// Config describes one emulator run.
type Config struct {
	Emulator Emulator
	Accel    Accel  // QEMU only; empty means AccelAuto
	CPU      string // CPU model; empty picks the accelerator's or Bochs's default
	SMP      int    // CPUs; 0 means 1
	// MemoryMiB is the guest RAM; 0 picks the emulator's default.
	MemoryMiB int

	// Exactly one boot medium: a PVH ELF for QEMU's -kernel, a bootable
	// ISO (GRUB), or a raw UEFI disk image booted through OVMF (QEMU only).
	Kernel string
	ISO    string
	UEFI   string

	IOMMU IOMMU // QEMU only; empty means IOMMUNone

	// ExtraArgs are appended to QEMU's command line, or added as lines to
	// the bochsrc for Bochs.
	ExtraArgs []string

	// Timeout bounds the whole run; the process group is killed when it
	// passes. Zero means no limit beyond the context's.
	Timeout time.Duration

	// Interactive puts the serial console (QEMU: multiplexed with the
	// monitor, Ctrl-A X quits) on this process's terminal. The console is
	// then not captured.
	Interactive bool

	// BochsTerminal (Bochs only, not interactive) puts COM1 on a
	// pseudo-terminal instead of a file, so that Type reaches the
	// machine: Bochs's file mode only writes. The console then comes from
	// the terminal as Bochs writes it.
	BochsTerminal bool

	// Echo, when set, receives the console output as it arrives, with
	// terminal escape sequences removed (runvm uses it to stream a
	// non-interactive run).
	Echo io.Writer

	// Overrides for programs and firmware; empty means the Default*.
	QEMUBinary   string
	BochsBinary  string
	OVMFCode     string
	OVMFVars     string
	BochsBIOS    string
	BochsVGABIOS string
	BochsIPS     int

	// Host is where KVM availability is probed; nil means the real host.
	Host Host
	// Logf receives the decisions the package makes (accelerator choice,
	// network namespace); nil discards them.
	Logf func(format string, args ...any)
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// validate checks the fields that do not depend on the host and fills in
// the defaults that do not either.
func (c *Config) validate() error {
	switch c.Emulator {
	case QEMU, Bochs:
	case "":
		return errors.New("emulator: no emulator given (qemu or bochs)")
	default:
		return fmt.Errorf("emulator: unknown emulator %q (want qemu or bochs)", c.Emulator)
	}
	if c.Accel == "" {
		c.Accel = AccelAuto
	}
	switch c.Accel {
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		return fmt.Errorf("emulator: unknown accelerator %q (want auto, kvm or tcg)", c.Accel)
	}
	if c.IOMMU == "" {
		c.IOMMU = IOMMUNone
	}
	switch c.IOMMU {
	case IOMMUNone, IOMMUIntel, IOMMUAMD:
	default:
		return fmt.Errorf("emulator: unknown IOMMU %q (want none, intel or amd)", c.IOMMU)
	}
	if c.SMP < 0 {
		return fmt.Errorf("emulator: SMP %d is negative", c.SMP)
	}
	if c.SMP == 0 {
		c.SMP = 1
	}
	if c.MemoryMiB < 0 {
		return fmt.Errorf("emulator: memory %d MiB is negative", c.MemoryMiB)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("emulator: timeout %v is negative", c.Timeout)
	}
	media := 0
	for _, m := range []string{c.Kernel, c.ISO, c.UEFI} {
		if m != "" {
			media++
		}
	}
	if media != 1 {
		return fmt.Errorf("emulator: give exactly one of kernel, ISO or UEFI disk (got %d)", media)
	}
	if c.Emulator == Bochs {
		if c.ISO == "" {
			return errors.New("emulator: Bochs boots only an ISO (its BIOS has no PVH or UEFI)")
		}
		if c.Accel == AccelKVM {
			return errors.New("emulator: Bochs has no KVM acceleration")
		}
		if c.IOMMU != IOMMUNone {
			return errors.New("emulator: Bochs emulates no IOMMU")
		}
		if c.BochsTerminal && c.Interactive {
			return errors.New("emulator: an interactive Bochs run shows its console on this terminal; BochsTerminal is for runs that type through Type")
		}
		if c.MemoryMiB == 0 {
			c.MemoryMiB = DefaultBochsMemoryMiB
		}
		if c.MemoryMiB > BochsMaxMemoryMiB {
			return fmt.Errorf("emulator: Bochs memory %d MiB is over %d MiB: Bochs 2.7 backs no more with host RAM, and swaps the rest to a file in a way that corrupts the machine's memory", c.MemoryMiB, BochsMaxMemoryMiB)
		}
		if c.CPU == "" {
			c.CPU = BochsCPU
		}
		if c.BochsIPS == 0 {
			c.BochsIPS = DefaultBochsIPS
		}
	} else {
		if c.BochsTerminal {
			return errors.New("emulator: BochsTerminal is a Bochs setting")
		}
		if c.MemoryMiB == 0 {
			c.MemoryMiB = DefaultQEMUMemoryMiB
		}
	}
	setDefault(&c.QEMUBinary, DefaultQEMUBinary)
	setDefault(&c.BochsBinary, DefaultBochsBinary)
	setDefault(&c.OVMFCode, DefaultOVMFCode)
	setDefault(&c.OVMFVars, DefaultOVMFVars)
	setDefault(&c.BochsBIOS, DefaultBochsBIOS)
	setDefault(&c.BochsVGABIOS, DefaultBochsVGABIOS)
	return nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// ParseMemory reads a memory size the way QEMU's -m does: a number with an
// optional K, M, G or T suffix (binary units), plain numbers being MiB.
func ParseMemory(s string) (mib int, err error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("emulator: empty memory size")
	}
	kib := uint64(1 << 10) // KiB per unit
	if suffix := t[len(t)-1]; suffix < '0' || suffix > '9' {
		switch suffix {
		case 'K':
			kib = 1
		case 'M':
			kib = 1 << 10
		case 'G':
			kib = 1 << 20
		case 'T':
			kib = 1 << 30
		default:
			return 0, fmt.Errorf("emulator: memory size %q: unknown suffix (want K, M, G or T)", s)
		}
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("emulator: memory size %q is not a number with an optional K/M/G/T suffix", s)
	}
	total := n * kib // at most 2^32 * 2^30: no overflow
	if total%(1<<10) != 0 {
		return 0, fmt.Errorf("emulator: memory size %q is not a whole number of MiB", s)
	}
	v := total >> 10
	if v == 0 || v > 1<<30 {
		return 0, fmt.Errorf("emulator: memory size %q out of range (1 MiB to 1 PiB)", s)
	}
	return int(v), nil
}
