package emulator

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// bochsConfig writes the bochsrc for a run. com1 is the serial file in the
// run's temporary directory, or with BochsTerminal the pseudo-terminal's
// device; logFile is in the temporary directory.
//
// Each line is there for a measured reason (Bochs 2.7, Debian):
//   - Debian's build has no "nogui" display; RFB with timeout=0 starts
//     without waiting for a VNC client.
//   - The dummy sound driver and a disabled speaker: with the default ALSA
//     driver Bochs aborts ("buffer overflow detected") on a host without a
//     sound card.
//   - clock sync=none makes a run deterministic; ips then sets how fast
//     emulated time (the PIT, the TSC) runs against executed instructions.
//   - reset_on_triple_fault=0 with panic action=fatal ends Bochs on a
//     triple fault, as -no-reboot does for QEMU.
//   - magic_break disabled: XCHG BX,BX in a guest must not stop in the
//     debugger, which would wait on its prompt forever.
//   - memory: host equal to guest. With less host memory, Bochs (built
//     with its "large ramfile") swaps blocks of guest RAM out to a
//     temporary file once the machine has touched more than host MiB, and
//     hands the freed buffer to another block. Before choosing a victim it
//     checks only the TLBs and the VMCS pointer, not its cached stack page
//     (espHostPtr) or fetch page pointers: a block still in use that way
//     is reused, and the CPU goes on reading and writing the other block's
//     memory. Seen: the hypervisor zeroing a 512 MiB guest's RAM at
//     0x30000000 zeroed its own goroutine stack at 0x13048000, and the
//     RET of memclr jumped to 0. The host array is allocated with new[]
//     and never written whole, so Linux backs only what the machine
//     touches.
func bochsConfig(c *Config, com1, logFile string) (string, error) {
	for what, p := range map[string]string{"ISO": c.ISO, "BIOS": c.BochsBIOS, "VGA BIOS": c.BochsVGABIOS, "serial file": com1, "log file": logFile} {
		if strings.ContainsAny(p, "\"\n\r") {
			return "", fmt.Errorf("emulator: Bochs %s path %q contains a quote or newline, which a bochsrc cannot hold", what, p)
		}
	}
	if strings.ContainsAny(c.CPU, ", \"\n") {
		return "", fmt.Errorf("emulator: Bochs CPU model %q is not a single model name", c.CPU)
	}
	if c.MemoryMiB > BochsMaxMemoryMiB {
		return "", fmt.Errorf("emulator: Bochs memory %d MiB is over %d MiB: Bochs 2.7 backs no more with host RAM, and swaps the rest to a file in a way that corrupts the machine's memory", c.MemoryMiB, BochsMaxMemoryMiB)
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# written by tamavisor/tools/emulator")
	line(`display_library: rfb, options="timeout=0"`)
	line(`romimage: file="%s"`, c.BochsBIOS)
	line(`vgaromimage: file="%s"`, c.BochsVGABIOS)
	line("cpu: model=%s, count=%d, ips=%d, reset_on_triple_fault=0", c.CPU, c.SMP, c.BochsIPS)
	line("memory: guest=%d, host=%d", c.MemoryMiB, c.MemoryMiB)
	line(`ata0-slave: type=cdrom, path="%s", status=inserted`, c.ISO)
	line("boot: cdrom")
	mode := "file"
	if c.BochsTerminal {
		// Bochs opens the device and sets it raw (iodev/serial.cc,
		// mode "term"): bytes pass unchanged both ways.
		mode = "term"
	}
	line(`com1: enabled=1, mode=%s, dev="%s"`, mode, com1)
	line("clock: sync=none, time0=utc")
	line("panic: action=fatal")
	line("error: action=report")
	line("magic_break: enabled=0")
	line("sound: driver=dummy")
	line("speaker: enabled=0")
	line(`log: "%s"`, logFile)
	for _, extra := range c.ExtraArgs {
		line("%s", extra)
	}
	return b.String(), nil
}

// bochsDebuggerScript continues the simulation at once and quits when it
// ends; Bochs's debugger would otherwise wait at its prompt.
const bochsDebuggerScript = "c\nquit\n"

// Bochs's RFB display listens on a TCP port on all addresses and has no
// option to bind elsewhere. A fresh network namespace (unshare -n, as root,
// or unshare -rn, through a user namespace) hides it; the first that works
// on this host is used for every run.
var (
	netnsOnce   sync.Once
	netnsPrefix []string
	netnsReason string
)

func isolatingPrefix() ([]string, string) {
	netnsOnce.Do(func() {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			netnsReason = "unshare(1) not found: Bochs's RFB port listens on all addresses"
			return
		}
		for _, flags := range [][]string{{"-n"}, {"-r", "-n"}} {
			if exec.Command(unshare, append(flags, "true")...).Run() == nil {
				netnsPrefix = append([]string{unshare}, flags...)
				netnsReason = "Bochs runs in a fresh network namespace (" + strings.Join(netnsPrefix, " ") + "): its RFB port is unreachable"
				return
			}
		}
		netnsReason = "no network namespace can be made here: Bochs's RFB port listens on all addresses"
	})
	return netnsPrefix, netnsReason
}
