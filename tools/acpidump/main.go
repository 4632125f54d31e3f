// Command acpidump boots emulated PCs just long enough for their firmware to
// build its ACPI tables, dumps their memory and extracts every table into a
// directory per machine, with a manifest giving each table's physical
// address. The output is the test corpus of package tamavisor/drivers/acpi:
// its tests rebuild a fake physical memory from the manifest and run the
// parser end to end on what real firmware wrote.
//
// Usage (from the repository root):
//
//	go run ./tools/acpidump [-out drivers/acpi/testdata] [-only qemu-q35,bochs]
//
// QEMU machines are driven through QMP on stdio: the guest runs with no
// bootable device, and its RAM is saved with the QMP "pmemsave" command
// until the tables are complete (SeaBIOS builds them in a few hundred
// milliseconds, OVMF in a few seconds). Bochs is driven through its
// built-in debugger: a time breakpoint after the BIOS has built the tables,
// then "writemem" of the two windows where the Bochs BIOS puts them (the
// BIOS area below 1 MiB and the last 64 KiB of RAM below the PCI hole).
// Bochs is run in a private network namespace (unshare -n) so that its VNC
// server, the only headless display it has, is reachable from nowhere.
//
// The extraction here is deliberately independent of the package under test
// (a minimal walk: RSDP, RSDT/XSDT, FADT's DSDT and FACS), so that a parser
// bug cannot hide itself by shaping its own corpus.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// machine is one emulated platform to dump.
type machine struct {
	name string
	// qemuArgs, when set, makes this a QEMU machine.
	qemuArgs []string
	// bochsMemMiB, when set, makes this a Bochs machine with that much RAM.
	bochsMemMiB int
	// ramBytes is the guest RAM QEMU gets; the dump covers all of it.
	ramBytes uint64
	// anywhere makes the RSDP search cover all of RAM: UEFI firmware
	// publishes the RSDP through its system table, not in the BIOS area.
	anywhere bool
	notes    string
}

const qemuRAM = 128 << 20

var machines = []machine{
	{
		name:     "qemu-q35",
		qemuArgs: []string{"-machine", "q35", "-smp", "2"},
		ramBytes: qemuRAM,
		notes:    "QEMU q35 (ICH9), SeaBIOS, 2 CPUs",
	},
	{
		name:     "qemu-q35-intel-iommu",
		qemuArgs: []string{"-machine", "q35", "-smp", "2", "-device", "intel-iommu,intremap=on,device-iotlb=on"},
		ramBytes: qemuRAM,
		notes:    "QEMU q35 with an emulated VT-d unit (interrupt remapping and device IOTLB on: DMAR with DRHD, ATSR)",
	},
	{
		name:     "qemu-q35-amd-iommu",
		qemuArgs: []string{"-machine", "q35", "-smp", "2", "-device", "amd-iommu"},
		ramBytes: qemuRAM,
		notes:    "QEMU q35 with an emulated AMD-Vi unit (IVRS)",
	},
	{
		name:     "qemu-pc",
		qemuArgs: []string{"-machine", "pc", "-smp", "2"},
		ramBytes: qemuRAM,
		notes:    "QEMU pc (i440FX/PIIX4), SeaBIOS, 2 CPUs",
	},
	{
		name: "qemu-q35-ovmf",
		qemuArgs: []string{"-machine", "q35", "-smp", "2",
			"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd"},
		ramBytes: qemuRAM,
		anywhere: true,
		notes:    "QEMU q35 with OVMF (UEFI): ACPI 2.0+ RSDP and XSDT; the RSDP lies in RAM, not the BIOS area",
	},
	{
		name:        "bochs",
		bochsMemMiB: 4096,
		notes:       "Bochs 2.7, BIOS-bochs-latest, corei7_skylake_x, 4 GiB (3 GiB below the PCI hole)",
	},
}

// window is a dumped range of guest physical memory.
type window struct {
	base uint64
	data []byte
}

type image []window

func (im image) read(addr, n uint64) ([]byte, error) {
	for _, w := range im {
		if addr >= w.base && addr-w.base <= uint64(len(w.data)) && n <= uint64(len(w.data))-(addr-w.base) {
			off := addr - w.base
			return w.data[off : off+n], nil
		}
	}
	return nil, fmt.Errorf("%#x+%#x is outside the dump", addr, n)
}

func sum8(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// extracted is what one machine produced.
type extracted struct {
	rsdpAddr uint64
	rsdp     []byte
	ebdaSeg  uint16
	tables   []extractedTable
	limit    uint64
	warnings []string
	// command describes how the dump was made, one comment line each.
	command []string
}

type extractedTable struct {
	sig  string
	addr uint64
	raw  []byte
}

// validRSDP checks an RSDP candidate (ACPI 6.5, 5.2.5.3): the ACPI 1.0
// checksum over 20 bytes, and for revision 2+ the extended checksum over
// its length.
func validRSDP(im image, addr uint64) ([]byte, bool) {
	b, err := im.read(addr, 20)
	if err != nil || string(b[:8]) != "RSD PTR " || sum8(b) != 0 {
		return nil, false
	}
	if b[15] < 2 {
		return b, true
	}
	hdr, err := im.read(addr, 36)
	if err != nil {
		return nil, false
	}
	n := uint64(binary.LittleEndian.Uint32(hdr[20:]))
	if n < 36 || n > 4096 {
		return nil, false
	}
	full, err := im.read(addr, n)
	if err != nil || sum8(full) != 0 {
		return nil, false
	}
	return full, true
}

func findRSDP(im image, m machine) (uint64, []byte, uint16, error) {
	var ebda uint16
	if b, err := im.read(0x40e, 2); err == nil {
		ebda = binary.LittleEndian.Uint16(b)
	}
	if m.anywhere {
		// Prefer the highest revision: OVMF leaves QEMU's ACPI 1.0 RSDP
		// next to the ACPI 2.0 one it publishes.
		var best uint64
		var bestRaw []byte
		for _, w := range im {
			for off := 0; ; {
				i := bytes.Index(w.data[off:], []byte("RSD PTR "))
				if i < 0 {
					break
				}
				addr := w.base + uint64(off+i)
				if raw, ok := validRSDP(im, addr); ok && (bestRaw == nil || raw[15] > bestRaw[15]) {
					best, bestRaw = addr, raw
				}
				off += i + 1
			}
		}
		if bestRaw == nil {
			return 0, nil, ebda, errors.New("no valid RSDP anywhere in RAM")
		}
		return best, bestRaw, ebda, nil
	}
	// ACPI 6.5, 5.2.5.1: the first KiB of the EBDA, then the BIOS area.
	var ranges [][2]uint64
	if ebda != 0 {
		ranges = append(ranges, [2]uint64{uint64(ebda) << 4, uint64(ebda)<<4 + 1024})
	}
	ranges = append(ranges, [2]uint64{0xe0000, 0x100000})
	for _, r := range ranges {
		for a := r[0]; a < r[1]; a += 16 {
			if raw, ok := validRSDP(im, a); ok {
				return a, raw, ebda, nil
			}
		}
	}
	return 0, nil, ebda, errors.New("no valid RSDP in the EBDA or the BIOS area")
}

func extract(im image, m machine) (*extracted, error) {
	addr, raw, ebda, err := findRSDP(im, m)
	if err != nil {
		return nil, err
	}
	x := &extracted{rsdpAddr: addr, rsdp: raw, ebdaSeg: ebda}
	seen := map[uint64]bool{}
	add := func(want string, a uint64, facs bool) []byte {
		if a == 0 || seen[a] {
			return nil
		}
		hdr, err := im.read(a, 8)
		if err != nil {
			x.warnings = append(x.warnings, fmt.Sprintf("%s at %#x: %v", want, a, err))
			return nil
		}
		n := uint64(binary.LittleEndian.Uint32(hdr[4:]))
		b, err := im.read(a, n)
		if err != nil {
			x.warnings = append(x.warnings, fmt.Sprintf("%s at %#x: %v", want, a, err))
			return nil
		}
		sig := string(b[:4])
		if want != "" && sig != want {
			x.warnings = append(x.warnings, fmt.Sprintf("expected %s at %#x, found %q", want, a, sig))
		}
		if !facs && sum8(b) != 0 {
			x.warnings = append(x.warnings, fmt.Sprintf("%s at %#x: bad checksum", sig, a))
		}
		seen[a] = true
		x.tables = append(x.tables, extractedTable{sig, a, append([]byte(nil), b...)})
		return b
	}
	rsdt := uint64(binary.LittleEndian.Uint32(raw[16:]))
	var xsdt uint64
	if raw[15] >= 2 {
		xsdt = binary.LittleEndian.Uint64(raw[24:])
	}
	// Keep both roots when both exist, so the RSDT fallback can be tested
	// on real data too; walk the one an OS would use.
	rsdtRaw := add("RSDT", rsdt, false)
	xsdtRaw := add("XSDT", xsdt, false)
	root, size := rsdtRaw, 4
	if xsdtRaw != nil {
		root, size = xsdtRaw, 8
	}
	if root == nil {
		return nil, errors.New("no readable RSDT/XSDT")
	}
	for off := 36; off+size <= len(root); off += size {
		var a uint64
		if size == 8 {
			a = binary.LittleEndian.Uint64(root[off:])
		} else {
			a = uint64(binary.LittleEndian.Uint32(root[off:]))
		}
		b := add("", a, false)
		if b == nil || string(b[:4]) != "FACP" {
			continue
		}
		// ACPI 6.5, 5.2.9: FIRMWARE_CTRL at 36, DSDT at 40, X_FIRMWARE_CTRL
		// at 132, X_DSDT at 140 (the X_ fields win when non-zero).
		facs := uint64(binary.LittleEndian.Uint32(b[36:]))
		dsdt := uint64(binary.LittleEndian.Uint32(b[40:]))
		if len(b) >= 148 {
			if v := binary.LittleEndian.Uint64(b[132:]); v != 0 {
				facs = v
			}
			if v := binary.LittleEndian.Uint64(b[140:]); v != 0 {
				dsdt = v
			}
		}
		add("DSDT", dsdt, false)
		add("FACS", facs, true)
	}
	return x, nil
}

func write(dir string, m machine, x *extracted) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var man strings.Builder
	fmt.Fprintf(&man, "# ACPI tables of %s, written by tools/acpidump.\n", m.name)
	fmt.Fprintf(&man, "# %s\n", m.notes)
	for _, l := range x.command {
		fmt.Fprintf(&man, "#   %s\n", l)
	}
	fmt.Fprintf(&man, "# Format: machine NAME | ram-limit ADDR | ebda-segment SEG | rsdp ADDR FILE | table SIG ADDR FILE\n")
	fmt.Fprintf(&man, "machine %s\n", m.name)
	fmt.Fprintf(&man, "ram-limit %#x\n", x.limit)
	fmt.Fprintf(&man, "ebda-segment %#x\n", x.ebdaSeg)
	if err := os.WriteFile(filepath.Join(dir, "rsdp.bin"), x.rsdp, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(&man, "rsdp %#x rsdp.bin\n", x.rsdpAddr)
	sort.SliceStable(x.tables, func(i, j int) bool { return x.tables[i].addr < x.tables[j].addr })
	for _, t := range x.tables {
		name := fmt.Sprintf("%s-%08x.bin", sanitize(t.sig), t.addr)
		if err := os.WriteFile(filepath.Join(dir, name), t.raw, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&man, "table %s %#x %s\n", sanitize(t.sig), t.addr, name)
	}
	return os.WriteFile(filepath.Join(dir, "manifest.txt"), []byte(man.String()), 0o644)
}

func sanitize(sig string) string {
	b := []byte(sig)
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// qmp is a minimal QMP client over a QEMU child's stdio.
type qmp struct {
	in  *bufio.Writer
	out *bufio.Scanner
}

func (q *qmp) call(cmd string, args map[string]any) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := q.in.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	if err := q.in.Flush(); err != nil {
		return nil, err
	}
	// Asynchronous events may come first; bounded by the child's output.
	for q.out.Scan() {
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(q.out.Bytes(), &resp); err != nil {
			continue
		}
		if resp.Event != "" {
			continue
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
		}
		return resp.Return, nil
	}
	return nil, fmt.Errorf("qmp %s: connection closed: %v", cmd, q.out.Err())
}

func dumpQEMU(ctx context.Context, qemu string, m machine, tmp string) (*extracted, error) {
	args := append([]string{"-accel", "tcg", "-m", fmt.Sprint(m.ramBytes >> 20),
		"-display", "none", "-nodefaults", "-serial", "none", "-no-reboot",
		"-qmp", "stdio"}, m.qemuArgs...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	q := &qmp{in: bufio.NewWriter(stdin), out: sc}
	if !sc.Scan() { // greeting
		return nil, fmt.Errorf("no QMP greeting (stderr: %s)", stderr.String())
	}
	if _, err := q.call("qmp_capabilities", nil); err != nil {
		return nil, err
	}
	file := filepath.Join(tmp, m.name+".ram")
	var lastErr error
	// Poll: the tables are complete once a valid RSDP points at them.
	for attempt := 0; attempt < 30; attempt++ {
		time.Sleep(time.Second)
		if _, err := q.call("pmemsave", map[string]any{"val": 0, "size": m.ramBytes, "filename": file}); err != nil {
			return nil, err
		}
		ram, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		x, err := extract(image{{0, ram}}, m)
		if err == nil && m.anywhere && x.rsdp[15] < 2 {
			err = errors.New("only an ACPI 1.0 RSDP so far")
		}
		if err == nil && len(x.warnings) == 0 && len(x.tables) > 2 {
			_, _ = q.call("quit", nil)
			x.limit = m.ramBytes
			x.command = []string{qemu + " " + strings.Join(args, " "),
				"then, over QMP: pmemsave of all RAM once the firmware's tables are complete"}
			return x, nil
		}
		if err == nil {
			err = fmt.Errorf("incomplete: %v", x.warnings)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("tables never became complete: %v", lastErr)
}

// Bochs BIOS (rombios32) builds the ACPI tables in the last 64 KiB of RAM
// below the PCI hole and the RSDP in the F segment.
const (
	bochsHighWindow = 0x10000
	bochsLowRAM     = 0xc0000000 // 3 GiB below the hole when guest RAM >= 3 GiB
	// bochsStopAt is the instruction count at which the dump is taken:
	// the BIOS has built its tables after ~0.5M instructions and stops
	// with "No bootable device" at ~12.8M.
	bochsStopAt = 3000000
)

func dumpBochs(ctx context.Context, bochs string, m machine, tmp string) (*extracted, error) {
	low := filepath.Join(tmp, "low.bin")
	high := filepath.Join(tmp, "high.bin")
	top := uint64(m.bochsMemMiB) << 20
	if top > bochsLowRAM {
		top = bochsLowRAM
	}
	rc := fmt.Sprintf(`cpu: model=corei7_skylake_x, count=1
memory: guest=%d, host=256
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
display_library: rfb, options="timeout=0"
boot: disk
panic: action=fatal
error: action=report
magic_break: enabled=0
clock: sync=none
sound: driver=dummy
speaker: enabled=0
log: %s
`, m.bochsMemMiB, filepath.Join(tmp, "bochs.log"))
	cmds := fmt.Sprintf("sb %d\nc\nwritemem \"%s\" 0 0x100000\nwritemem \"%s\" %#x %#x\nquit\n",
		bochsStopAt, low, high, top-bochsHighWindow, bochsHighWindow)
	rcFile := filepath.Join(tmp, "bochsrc")
	cmdFile := filepath.Join(tmp, "cmds")
	if err := os.WriteFile(rcFile, []byte(rc), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cmdFile, []byte(cmds), 0o644); err != nil {
		return nil, err
	}
	// The network namespace keeps the VNC listener off every real network.
	cmd := exec.CommandContext(ctx, "unshare", "-n", bochs, "-q", "-f", rcFile, "-rc", cmdFile)
	cmd.Dir = tmp
	cmd.Stdin = nil // /dev/null
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("bochs: %v\n%s", err, tail(out))
	}
	lowRAM, err := os.ReadFile(low)
	if err != nil {
		return nil, fmt.Errorf("bochs wrote no dump: %v\n%s", err, tail(out))
	}
	highRAM, err := os.ReadFile(high)
	if err != nil {
		return nil, err
	}
	x, err := extract(image{{0, lowRAM}, {top - bochsHighWindow, highRAM}}, m)
	if err != nil {
		return nil, err
	}
	if len(x.warnings) != 0 {
		return nil, fmt.Errorf("incomplete: %v", x.warnings)
	}
	x.limit = top
	x.command = []string{fmt.Sprintf("unshare -n %s -q -f bochsrc -rc cmds </dev/null", bochs), "bochsrc:"}
	for _, l := range strings.Split(strings.TrimSpace(strings.ReplaceAll(rc, filepath.Join(tmp, "bochs.log"), "bochs.log")), "\n") {
		x.command = append(x.command, "  "+l)
	}
	x.command = append(x.command, "cmds (debugger commands):")
	for _, l := range strings.Split(strings.TrimSpace(strings.NewReplacer(low, "low.bin", high, "high.bin").Replace(cmds)), "\n") {
		x.command = append(x.command, "  "+l)
	}
	return x, nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func main() {
	out := flag.String("out", "drivers/acpi/testdata", "directory that receives one sub-directory per machine")
	only := flag.String("only", "", "comma-separated machine names (default: all)")
	qemu := flag.String("qemu", "qemu-system-x86_64", "QEMU binary")
	bochs := flag.String("bochs", "bochs", "Bochs binary")
	timeout := flag.Duration("timeout", 90*time.Second, "limit per machine")
	list := flag.Bool("list", false, "list the machines and exit")
	flag.Parse()
	if *list {
		for _, m := range machines {
			fmt.Printf("%-22s %s\n", m.name, m.notes)
		}
		return
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	failed := false
	for _, m := range machines {
		if len(want) > 0 && !want[m.name] {
			continue
		}
		delete(want, m.name)
		if err := run(m, *out, *qemu, *bochs, *timeout); err != nil {
			fmt.Fprintf(os.Stderr, "acpidump: %s: %v\n", m.name, err)
			failed = true
		}
	}
	for n := range want {
		fmt.Fprintf(os.Stderr, "acpidump: unknown machine %q (see -list)\n", n)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
}

func run(m machine, out, qemu, bochs string, timeout time.Duration) error {
	tmp, err := os.MkdirTemp("", "acpidump-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var x *extracted
	if m.qemuArgs != nil {
		x, err = dumpQEMU(ctx, qemu, m, tmp)
	} else {
		x, err = dumpBochs(ctx, bochs, m, tmp)
	}
	if err != nil {
		return err
	}
	dir := filepath.Join(out, m.name)
	if err := write(dir, m, x); err != nil {
		return err
	}
	var sigs []string
	for _, t := range x.tables {
		sigs = append(sigs, t.sig)
	}
	fmt.Printf("%s: RSDP at %#x (revision %d), %d tables: %s\n", m.name, x.rsdpAddr, x.rsdp[15], len(x.tables), strings.Join(sigs, " "))
	return nil
}
