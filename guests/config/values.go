package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Size units: binary multiples, as QEMU's -m and the kernel's mem= read
// them.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}, {"B", 0},
}

// ParseSize reads a memory size: a whole number followed by a unit, K, M,
// G or T (binary: 1K = 1024 bytes), optionally spelled KiB/KB, MiB/MB,
// ..., or B for bytes, in either case, with optional spaces between the
// number and the unit: "512M", "2G", "1536 MiB".
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	digits, unit := t[:i], strings.TrimSpace(t[i:])
	if digits == "" {
		return 0, fmt.Errorf("%q is not a size: write a whole number and a unit, e.g. \"512M\" or \"2G\"", s)
	}
	if unit == "" {
		return 0, fmt.Errorf("%q has no unit: write e.g. \"%sM\" or \"%sG\" (or \"%sB\" for bytes)", s, digits, digits, digits)
	}
	shift, ok := uint(0), false
	u := strings.ToUpper(unit)
	for _, su := range sizeUnits {
		if u == su.suffix || (su.shift > 0 && (u == su.suffix+"B" || u == su.suffix+"IB")) {
			shift, ok = su.shift, true
			break
		}
	}
	if !ok {
		if strings.HasPrefix(unit, ".") || strings.HasPrefix(unit, ",") {
			return 0, fmt.Errorf("%q is not a whole number: write it in a smaller unit, e.g. \"1536M\" for 1.5G", s)
		}
		return 0, fmt.Errorf("%q has an unknown unit %q: use K, M, G or T", s, unit)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// FormatSize writes a size in the largest unit that divides it: "512M",
// "3G", "1536M", "4K", "100B".
func FormatSize(n uint64) string {
	for _, su := range sizeUnits {
		if n != 0 && su.shift > 0 && n%(1<<su.shift) == 0 {
			return strconv.FormatUint(n>>su.shift, 10) + su.suffix
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// checkName checks a VM's name: 1 to MaxNameLength characters among
// a-z, 0-9 and '-', starting with a letter or digit (it names the VM on
// the console and in operator commands).
func checkName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("the name is empty")
	case len(s) > MaxNameLength:
		return fmt.Errorf("%q is %d characters long, more than %d", s, len(s), MaxNameLength)
	case s[0] == '-':
		return fmt.Errorf("%q starts with '-': a name starts with a letter or a digit", s)
	}
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%q has %s at byte %d: a name has only a-z, 0-9 and '-'", s, quoteRune(r), i)
		}
	}
	return nil
}

// checkFileName checks the syntax of a kernel, initrd or module name:
// printable, without spaces (a boot module's name is the first word of
// its command line), at most MaxFileNameLength bytes.
func checkFileName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("the file name is empty")
	case len(s) > MaxFileNameLength:
		return fmt.Errorf("the file name is %d bytes long, more than %d", len(s), MaxFileNameLength)
	}
	for i, r := range s {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return fmt.Errorf("%q has %s at byte %d: a file name has no spaces or control characters", s, quoteRune(r), i)
		}
	}
	return nil
}

// checkCmdline checks a command line: at most loader.MaxCmdline bytes
// and no control characters (the kernel reads a NUL-terminated line).
func checkCmdline(s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("the command line is %d bytes long, more than %d", len(s), limit)
	}
	for i, r := range s {
		if r < ' ' && r != '\t' || r == 0x7f || r == utf8.RuneError {
			return fmt.Errorf("the command line has %s at byte %d: it must be one line of text", quoteRune(r), i)
		}
	}
	return nil
}

func quoteRune(r rune) string {
	if r == utf8.RuneError {
		return "a byte that is not UTF-8"
	}
	return fmt.Sprintf("%U %q", r, r)
}

// PCIAddress names a PCI function: segment (PCI Firmware 3.3, 4.1.2:
// the MCFG's PCI segment group), bus, device (0-31) and function (0-7)
// (PCI Local Bus 3.0, 3.2.2.3.1).
type PCIAddress struct {
	Segment  uint16
	Bus      uint8
	Device   uint8
	Function uint8
}

// String writes the address as lspci -D does: "0000:00:03.0".
func (a PCIAddress) String() string {
	return fmt.Sprintf("%04x:%02x:%02x.%x", a.Segment, a.Bus, a.Device, a.Function)
}

// ParsePCIAddress reads "SSSS:BB:DD.F" or "BB:DD.F" (segment 0), in
// hexadecimal as lspci writes them.
func ParsePCIAddress(s string) (PCIAddress, error) {
	var a PCIAddress
	bad := func(why string) (PCIAddress, error) {
		return PCIAddress{}, fmt.Errorf("%q is not a PCI function address (%s): write segment:bus:device.function in hexadecimal, e.g. \"0000:00:03.0\"", s, why)
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("wrong number of ':'")
	}
	if len(parts) == 3 {
		seg, ok := hexField(parts[0], 4)
		if !ok {
			return bad("the segment is not 4 hex digits")
		}
		a.Segment = uint16(seg)
		parts = parts[1:]
	}
	bus, ok := hexField(parts[0], 2)
	if !ok {
		return bad("the bus is not 2 hex digits")
	}
	dev, fn, found := strings.Cut(parts[1], ".")
	if !found {
		return bad("no '.' before the function")
	}
	d, ok := hexField(dev, 2)
	if !ok || d > 0x1f {
		return bad("the device is not 00-1f")
	}
	f, ok := hexField(fn, 1)
	if !ok || f > 7 {
		return bad("the function is not 0-7")
	}
	a.Bus, a.Device, a.Function = uint8(bus), uint8(d), uint8(f)
	return a, nil
}

// hexField reads exactly n hex digits.
func hexField(s string, n int) (uint64, bool) {
	if len(s) != n {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}
