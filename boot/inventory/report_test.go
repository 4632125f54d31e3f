package inventory

// Round trips: a Report built from data captured on real (emulated)
// machines, rendered by Lines and read back by Parse, gives the values back.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"tamavisor/boot/bootinfo"
	"tamavisor/boot/memmap"
	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw/hwfake"
	"tamavisor/drivers/pci"
	"tamavisor/runtime/pagetable"
	"tamavisor/svm"
	"tamavisor/vmx"
)

// acpiTables rebuilds one machine's physical memory from the tables
// tools/acpidump saved in drivers/acpi/testdata/<name> (see its README for
// manifest.txt) and runs the ACPI parser on it, the way the image does.
func acpiTables(t *testing.T, name string) *acpi.Tables {
	t.Helper()
	dir := filepath.Join("..", "..", "drivers", "acpi", "testdata", name)
	f, err := os.Open(filepath.Join(dir, "manifest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem := hwfake.NewMemory()
	num := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("%s manifest: %v", name, err)
		}
		return v
	}
	load := func(addr, file string) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		mem.Load(num(addr), b)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch {
		case len(w) == 0 || strings.HasPrefix(w[0], "#") || w[0] == "machine":
		case w[0] == "ram-limit" && len(w) == 2:
			mem.Limit = num(w[1])
		case w[0] == "ebda-segment" && len(w) == 2:
			seg := num(w[1])
			mem.Load(0x40e, []byte{byte(seg), byte(seg >> 8)}) // BDA word 40Eh
		case w[0] == "rsdp" && len(w) == 3:
			load(w[1], w[2])
		case w[0] == "table" && len(w) == 4:
			load(w[2], w[3])
		default:
			t.Fatalf("%s manifest: bad line %q", name, sc.Text())
		}
	}
	rsdp, err := acpi.FindRSDP(mem)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	tables, err := acpi.Parse(mem, rsdp)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tables
}

// grubMultiboot2 is the boot information Debian's GRUB 2.06 gave a
// Multiboot2 kernel on QEMU 7.2 q35 -m 512M with SeaBIOS, captured from
// the guest's memory (boot/bootinfo/testdata/README.md).
func grubMultiboot2(t *testing.T) *bootinfo.Info {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bootinfo", "testdata", "grub-2.06-bios-multiboot2-0x100008.bin"))
	if err != nil {
		t.Fatal(err)
	}
	mem := hwfake.NewMemory()
	mem.Load(0x100008, b)
	info, err := bootinfo.FromRegisters(mem, bootinfo.Multiboot2Magic, 0x100008)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// hostPaging builds the host page tables for a memory map the way the image
// does (RAM write-back, firmware ranges below 4 GiB uncacheable) into a fake
// memory, and returns what the paging line shows.
func hostPaging(t *testing.T, m memmap.Map) pagetable.Stats {
	t.Helper()
	var regions []pagetable.Region
	for _, r := range m {
		if r.Kind == memmap.Usable || r.End() <= 4<<30 {
			regions = append(regions, pagetable.Region{Start: r.Start, Size: r.Size, Cacheable: r.Kind == memmap.Usable})
		}
	}
	alloc := &bumpAllocator{next: 0x7f000000}
	tables, err := pagetable.New(hwfake.NewMemory(), alloc, pagetable.Config{NoExecute: true, PhysAddrBits: 40})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := pagetable.BuildHostMap(tables, regions, pagetable.HostMapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return stats
}

type bumpAllocator struct{ next uint64 }

func (a *bumpAllocator) AllocTable() (uint64, error) {
	p := a.next
	a.next += 4096
	return p, nil
}

func leaf(eax, ebx, ecx, edx uint32) hwfake.CPUIDLeaf {
	return hwfake.CPUIDLeaf{EAX: eax, EBX: ebx, ECX: ecx, EDX: edx}
}

// qemuSVM is CPUID on QEMU 7.2 TCG, -cpu qemu64,+svm,+npt, as measured for
// the svm package's tests (svm/svm_test.go, qemuSVMNPT).
var qemuSVM = hwfake.CPUID{
	{Leaf: 0}:          leaf(0x0d, 0x68747541, 0x444d4163, 0x69746e65),
	{Leaf: 1}:          leaf(0x00060fb1, 0x00000800, 0x80002001, 0x078bfbfd),
	{Leaf: 0x80000000}: leaf(0x8000000a, 0x68747541, 0x444d4163, 0x69746e65),
	{Leaf: 0x80000001}: leaf(0x00060fb1, 0, 0x00000005, 0x2193fbfd),
	{Leaf: 0x8000000a}: leaf(1, 0x10, 0, 0x00000001),
}

// bochsSkylakeX is CPUID and the VMX capability MSRs of Bochs 2.7's
// corei7_skylake_x, as measured for the vmx package's tests
// (vmx/fixtures_test.go, bochsSkylakeX).
var (
	bochsSkylakeXCPUID = hwfake.CPUID{
		{Leaf: 0}:          leaf(0x16, 0x756e6547, 0x6c65746e, 0x49656e69),
		{Leaf: 1}:          leaf(0x00050654, 0x00010800, 0x77faf3bf, 0xbfebfbff),
		{Leaf: 0x80000000}: leaf(0x80000008, 0, 0, 0),
		{Leaf: 0x80000001}: leaf(0, 0, 0x00000121, 0x2c100000),
	}
	bochsSkylakeXMSRs = hwfake.MSRs{
		0x03a: 0x5,
		0x480: 0x00d81000_0000002b, 0x481: 0x0000007f_00000016, 0x482: 0xf7f9fffe_0401e172,
		0x483: 0x007fffff_00036dff, 0x484: 0x0000ffff_000011ff, 0x485: 0x00000000_600401e0,
		0x486: 0x80000021, 0x487: 0xffffffff, 0x488: 0x00002000, 0x489: 0x003727ff,
		0x48a: 0x34, 0x48b: 0x02177fff_00000000, 0x48c: 0x00000f01_06334141,
		0x48d: 0x0000007f_00000016, 0x48e: 0xf7f9fffe_04006172, 0x48f: 0x007fffff_00036dfb,
		0x490: 0x0000ffff_000011fb, 0x491: 0x1,
	}
)

// qemuQ35PCI are the functions the image lists on QEMU 7.2 q35 with
// -nodefaults (the emulator boot tests' machine).
var qemuQ35PCI = []pci.Device{
	{Bus: 0, Dev: 0, Fn: 0, VendorID: 0x8086, DeviceID: 0x29c0, Class: 0x06},
	{Bus: 0, Dev: 0x1f, Fn: 0, VendorID: 0x8086, DeviceID: 0x2918, Class: 0x06, Subclass: 0x01},
	{Bus: 0, Dev: 0x1f, Fn: 2, VendorID: 0x8086, DeviceID: 0x2922, Class: 0x01, Subclass: 0x06, ProgIF: 0x01},
	{Bus: 0, Dev: 0x1f, Fn: 3, VendorID: 0x8086, DeviceID: 0x2930, Class: 0x0c, Subclass: 0x05},
}

func enabledAPICs(t *acpi.Tables) []uint32 {
	var ids []uint32
	for _, l := range t.MADT.LocalAPICs {
		if l.Flags&acpi.LocalAPICEnabled != 0 {
			ids = append(ids, l.APICID)
		}
	}
	return ids
}

// qemuReport is what the image finds on QEMU q35 with AMD-V and an Intel
// IOMMU, loaded by GRUB through Multiboot2.
func qemuReport(t *testing.T) *Report {
	info := grubMultiboot2(t)
	tables := acpiTables(t, "qemu-q35-intel-iommu")
	caps, err := svm.Probe(qemuSVM, hwfake.MSRs{svm.MSRVMCR: 0})
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{
		Protocol: strings.ToLower(info.Protocol.String()),
		Loader:   info.Loader,
		CPU: CPU{Vendor: "AuthenticAMD", Name: "QEMU Virtual CPU version 2.5+", Family: 0xf, Model: 0x6b, Stepping: 1,
			Listed: enabledAPICs(tables), Online: []uint32{1, 0}},
		Memory:     info.Memory,
		ACPI:       tables,
		TSCHz:      2994000000,
		TSCSource:  "acpi-pm",
		TSCNotes:   []string{`CPUID leaf 0x15 says "0 Hz"`, "second note: ignored"},
		Entropy:    "rdrand",
		SVM:        caps,
		IOMMUs:     IOMMUsFromACPI(tables),
		PCI:        qemuQ35PCI,
		PageTables: hostPaging(t, info.Memory).String(),
	}
	return r
}

// console is what the image prints around the report.
func console(r *Report) string {
	return "SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n" +
		BootedPrefix + r.Protocol + "\r\n" +
		strings.Join(r.Lines(), "\r\n") + "\r\n" + Ready + "\r\n"
}

func parseReport(t *testing.T, r *Report) Inventory {
	t.Helper()
	inv, err := Parse(console(r))
	if err != nil {
		t.Fatalf("Parse(Lines()): %v\n%s", err, strings.Join(r.Lines(), "\n"))
	}
	if !inv.Ready || inv.BootedVia != r.Protocol {
		t.Errorf("Ready %v, BootedVia %q; want true, %q", inv.Ready, inv.BootedVia, r.Protocol)
	}
	if m := inv.Missing(); len(m) > 0 {
		t.Errorf("rendered report parses as incomplete, lacking %v", m)
	}
	return inv
}

func expect(t *testing.T, inv Inventory, topic, key, want string) {
	t.Helper()
	got, ok := inv.Field(topic, key)
	if !ok {
		t.Errorf("no %s %s= (want %q)", topic, key, want)
	} else if got != want {
		t.Errorf("%s %s=%q, want %q", topic, key, got, want)
	}
}

func expectUint(t *testing.T, inv Inventory, topic, key string, want uint64) {
	t.Helper()
	got, err := inv.Uint(topic, key)
	if err != nil {
		t.Error(err)
	} else if got != want {
		t.Errorf("%s %s=%d, want %d", topic, key, got, want)
	}
}

// checkCommon checks every field that Lines derives from the Report's
// plain values against those values.
func checkCommon(t *testing.T, r *Report, inv Inventory) {
	t.Helper()
	expect(t, inv, "boot", "protocol", r.Protocol)
	expect(t, inv, "boot", "loader", r.Loader)

	expect(t, inv, "cpu", "vendor", r.CPU.Vendor)
	expect(t, inv, "cpu", "name", r.CPU.Name)
	expectUint(t, inv, "cpu", "family", uint64(r.CPU.Family))
	expectUint(t, inv, "cpu", "model", uint64(r.CPU.Model))
	expectUint(t, inv, "cpu", "stepping", uint64(r.CPU.Stepping))
	expectUint(t, inv, "cpu", "listed", uint64(len(r.CPU.Listed)))
	expectUint(t, inv, "cpu", "online", uint64(len(r.CPU.Online)))

	expectUint(t, inv, "memory", "usable-mib", r.Memory.Total(memmap.Usable)>>20)
	expectUint(t, inv, "memory", "reserved-kib", r.Memory.Total(memmap.Reserved)>>10)
	expectUint(t, inv, "memory", "regions", uint64(len(r.Memory)))
	expectUint(t, inv, "memory", "max-address", r.Memory.MaxAddress())
	expect(t, inv, "paging", "host", r.PageTables)

	if r.ACPI != nil {
		var sigs []string
		for _, x := range r.ACPI.All {
			sigs = append(sigs, x.Signature)
		}
		expect(t, inv, "acpi", "tables", strings.Join(sigs, ","))
		expectUint(t, inv, "acpi", "revision", uint64(r.ACPI.RSDP.Revision))
		expect(t, inv, "acpi", "oem", strings.TrimSpace(r.ACPI.RSDP.OEMID))
		expectUint(t, inv, "acpi", "problems", uint64(len(r.ACPI.Problems)))
		problems := inv.Topic("acpi-problem")
		if len(problems) != len(r.ACPI.Problems) {
			t.Errorf("%d acpi-problem lines, want %d", len(problems), len(r.ACPI.Problems))
		}
		for i := 0; i < len(problems) && i < len(r.ACPI.Problems); i++ {
			if got, want := problems[i].Fields["detail"], r.ACPI.Problems[i].Error(); got != want {
				t.Errorf("acpi-problem %d: %q, want %q", i, got, want)
			}
		}
	} else {
		expect(t, inv, "acpi", "tables", "none")
		expect(t, inv, "acpi", "error", r.ACPIError.Error())
	}

	expectUint(t, inv, "timer", "tsc-hz", r.TSCHz)
	expect(t, inv, "timer", "source", r.TSCSource)
	expectUint(t, inv, "timer", "notes", uint64(len(r.TSCNotes)))
	notes := inv.Topic("timer-note")
	if len(notes) != len(r.TSCNotes) {
		t.Errorf("%d timer-note lines, want %d", len(notes), len(r.TSCNotes))
	}
	for i := 0; i < len(notes) && i < len(r.TSCNotes); i++ {
		if got := notes[i].Fields["detail"]; got != r.TSCNotes[i] {
			t.Errorf("timer note %d: %q, want %q", i, got, r.TSCNotes[i])
		}
	}
	expect(t, inv, "entropy", "source", r.Entropy)

	expectUint(t, inv, "iommu", "units", uint64(len(r.IOMMUs)))
	if len(r.IOMMUs) > 0 {
		expect(t, inv, "iommu", "kind", r.IOMMUs[0].Kind)
		var bases []string
		for _, u := range r.IOMMUs {
			bases = append(bases, fmt.Sprintf("%#x", u.Base))
		}
		expect(t, inv, "iommu", "base", strings.Join(bases, ","))
	}

	expectUint(t, inv, "pci", "devices", uint64(len(r.PCI)))
	if r.PCIError != nil {
		expect(t, inv, "pci", "error", r.PCIError.Error())
	}
	devs := inv.PCIDevices()
	if len(devs) != len(r.PCI) {
		t.Fatalf("%d PCI device lines, want %d", len(devs), len(r.PCI))
	}
	for i, d := range r.PCI {
		if w := devs[i].Words; len(w) < 2 || w[0] != d.Address() || w[1] != fmt.Sprintf("%04x:%04x", d.VendorID, d.DeviceID) {
			t.Errorf("PCI line %d words %q, want %s %04x:%04x first", i, w, d.Address(), d.VendorID, d.DeviceID)
		}
		if !strings.Contains(devs[i].Raw, d.ClassName()) {
			t.Errorf("PCI line %q lacks the class name %q", devs[i].Raw, d.ClassName())
		}
	}
}

func TestRoundTripQEMUSVM(t *testing.T) {
	r := qemuReport(t)
	inv := parseReport(t, r)
	checkCommon(t, r, inv)

	// The values themselves, from the captures, so that a Report built
	// wrong is caught too and not only a renderer and parser that agree.
	expect(t, inv, "boot", "protocol", "multiboot2")
	expect(t, inv, "boot", "loader", "GRUB 2.06-13+deb12u2")
	expect(t, inv, "cpu", "apic-ids", "0,1")
	expect(t, inv, "cpu", "listed", "2")
	expect(t, inv, "memory", "usable-mib", "511")            // 512 MiB less the BIOS areas and a GRUB module
	expect(t, inv, "memory", "max-address", "0x10000000000") // the 1 TiB HyperTransport hole's end
	expect(t, inv, "acpi", "oem", "BOCHS")
	expect(t, inv, "acpi", "tables", "FACP,APIC,HPET,MCFG,DMAR,WAET,DSDT,FACS")
	expect(t, inv, "timer-note", "detail", `CPUID leaf 0x15 says "0 Hz"`)
	expect(t, inv, "svm", "npt", "yes")
	expect(t, inv, "svm", "asids", "16")
	expect(t, inv, "iommu", "kind", "vt-d")
	expect(t, inv, "iommu", "base", "0xfed90000")
	if inv.Has("vmx") || inv.Has("virt") {
		t.Error("an SVM report has a vmx or virt line")
	}

	// The page tables cover all RAM write-back: what the large-memory boot
	// test relies on.
	wb, usable := writeBackMiB(t, inv), r.Memory.Total(memmap.Usable)>>20
	if wb < usable {
		t.Errorf("paging shows %d MiB WB, less than the %d MiB of usable RAM", wb, usable)
	}
}

// writeBackMiB reads the WB total from the paging line
// ("...; N MiB WB, M MiB UC", pagetable.Stats.String).
func writeBackMiB(t *testing.T, inv Inventory) uint64 {
	t.Helper()
	host, _ := inv.Field("paging", "host")
	for _, part := range strings.Split(host, ";") {
		for _, item := range strings.Split(part, ",") {
			if n, ok := strings.CutSuffix(strings.TrimSpace(item), " MiB WB"); ok {
				v, err := strconv.ParseUint(n, 10, 64)
				if err != nil {
					t.Fatalf("paging host=%q: %v", host, err)
				}
				return v
			}
		}
	}
	t.Fatalf("paging host=%q has no \"N MiB WB\"", host)
	return 0
}

func TestRoundTripBochsVMX(t *testing.T) {
	tables := acpiTables(t, "bochs")
	caps, err := vmx.Probe(bochsSkylakeXCPUID, bochsSkylakeXMSRs)
	if err != nil {
		t.Fatal(err)
	}
	info := grubMultiboot2(t)
	r := &Report{
		Protocol: "multiboot2", Loader: info.Loader,
		CPU: CPU{Vendor: "GenuineIntel", Name: "Intel(R) Core(TM) i7-7800X CPU @ 3.50GHz", Family: 6, Model: 0x55, Stepping: 4,
			Listed: enabledAPICs(tables), Online: enabledAPICs(tables)},
		Memory:     info.Memory,
		ACPI:       tables,
		TSCHz:      4000000,
		TSCSource:  "hpet",
		Entropy:    "rdseed+rdrand",
		VMX:        caps,
		PCI:        []pci.Device{{VendorID: 0x8086, DeviceID: 0x1237, Class: 0x06}},
		PageTables: hostPaging(t, info.Memory).String(),
	}
	inv := parseReport(t, r)
	checkCommon(t, r, inv)
	expect(t, inv, "acpi", "tables", "FACP,APIC,SSDT,HPET,DSDT,FACS")
	expect(t, inv, "entropy", "source", "rdseed+rdrand")
	expect(t, inv, "vmx", "ept", "yes")
	expect(t, inv, "vmx", "unrestricted-guest", "yes")
	expect(t, inv, "vmx", "revision", "0x2b")
	expect(t, inv, "iommu", "units", "0")
	if _, ok := inv.Field("iommu", "kind"); ok {
		t.Error("iommu kind= shown without units")
	}
}

// A machine where nearly everything failed: the errors, with spaces and
// quotes, come back word for word.
func TestRoundTripFailures(t *testing.T) {
	noSVM := withLeaf(qemuSVM, 0x80000001, leaf(0x00060fb1, 0, 0x00000001, 0x2193fbfd))
	_, virtErr := svm.Probe(noSVM, hwfake.MSRs{})
	var unavailable *svm.UnavailableError
	if !errors.As(virtErr, &unavailable) {
		t.Fatalf("svm.Probe without SVM: %v", virtErr)
	}
	// An ACPI walk over empty memory, for a real error message.
	_, acpiErr := acpi.FindRSDP(hwfake.NewMemory())
	if acpiErr == nil {
		t.Fatal("FindRSDP found an RSDP in empty memory")
	}
	info := grubMultiboot2(t)
	r := &Report{
		Protocol: "pvh",
		Loader:   "",
		CPU: CPU{Vendor: "Weird\tVendor", Name: `a "quoted" name with \ backslash`,
			Listed: []uint32{0}, Online: []uint32{0}},
		Memory:     info.Memory,
		ACPIError:  acpiErr,
		TSCSource:  "pit",
		TSCNotes:   []string{"the HPET is absent; the PIT was used"},
		Entropy:    "rdrand",
		VirtError:  virtErr,
		PCIError:   errors.New(`no PCI configuration mechanism: no MCFG and no CF8/CFC`),
		PageTables: "not built",
	}
	inv := parseReport(t, r)
	checkCommon(t, r, inv)
	expect(t, inv, "virt", "reason", virtErr.Error())
	if l := inv.Topic("virt"); len(l) != 1 || len(l[0].Words) != 1 || l[0].Words[0] != "none" {
		t.Errorf("virt line %+v, want the word none", l)
	}
	if !strings.Contains(virtErr.Error(), "SVM") || !strings.Contains(virtErr.Error(), "CPUID") {
		t.Errorf("virt reason %q names neither SVM nor CPUID", virtErr)
	}
}

func withLeaf(c hwfake.CPUID, l uint32, v hwfake.CPUIDLeaf) hwfake.CPUID {
	n := hwfake.CPUID{}
	for k, x := range c {
		n[k] = x
	}
	n[hwfake.CPUIDKey{Leaf: l}] = v
	return n
}

func TestIOMMUsFromACPI(t *testing.T) {
	intel := IOMMUsFromACPI(acpiTables(t, "qemu-q35-intel-iommu"))
	if len(intel) != 1 || intel[0] != (IOMMU{Kind: "vt-d", Base: 0xfed90000}) {
		t.Errorf("QEMU intel-iommu: %+v, want one vt-d unit at 0xfed90000", intel)
	}

	amdTables := acpiTables(t, "qemu-q35-amd-iommu")
	amd := IOMMUsFromACPI(amdTables)
	if len(amd) != 1 || amd[0].Kind != "amd-vi" || amd[0].Base == 0 {
		t.Fatalf("QEMU amd-iommu: %+v, want one amd-vi unit", amd)
	}
	if n := len(amdTables.IVRS.IVHDs); n == 0 {
		t.Fatal("QEMU's IVRS has no IVHD")
	}

	// One unit described by IVHD blocks of types 10h, 11h and 40h (as
	// firmware does for OSes of different ages) is counted once; a second
	// register base is a second unit.
	blocks := append([]acpi.IVHD(nil), amdTables.IVRS.IVHDs...)
	for _, typ := range []uint8{acpi.IVHDType11, acpi.IVHDType40} {
		b := amdTables.IVRS.IVHDs[0]
		b.Type = typ
		blocks = append(blocks, b)
	}
	second := amdTables.IVRS.IVHDs[0]
	second.BaseAddress += 0x80000
	blocks = append(blocks, second)
	units := IOMMUsFromACPI(&acpi.Tables{IVRS: &acpi.IVRS{IVHDs: blocks}})
	if len(units) != 2 || units[0].Base != amd[0].Base || units[1].Base != second.BaseAddress {
		t.Errorf("IVHDs %+v gave units %+v, want the two bases once each", blocks, units)
	}

	if u := IOMMUsFromACPI(acpiTables(t, "qemu-q35")); len(u) != 0 {
		t.Errorf("q35 without IOMMU: %+v", u)
	}
	if u := IOMMUsFromACPI(nil); u != nil {
		t.Errorf("no ACPI: %+v", u)
	}
}

// A vendor string from CPUID may hold any bytes; it stays on one line and
// comes back unchanged.
func TestWordQuoting(t *testing.T) {
	for _, s := range []string{"AuthenticAMD", "a b", "a=b", `a"b`, "a\nb", "\x00\xff", `back\slash`, "unknown"} {
		r := &Report{CPU: CPU{Vendor: s}}
		lines := r.Lines()
		if len(lines) < 3 || !strings.HasPrefix(lines[2], "cpu: ") || strings.Contains(lines[2], "\n") {
			t.Fatalf("vendor %q: cpu line %q", s, lines[2])
		}
		l, err := ParseLine(lines[2])
		if err != nil {
			t.Fatalf("vendor %q: %v", s, err)
		}
		if l.Fields["vendor"] != s {
			t.Errorf("vendor %q came back as %q from %q", s, l.Fields["vendor"], lines[2])
		}
	}
	if got := word(""); got != "unknown" {
		t.Errorf("word(\"\") = %q", got)
	}
	if got := word("AuthenticAMD"); got != "AuthenticAMD" {
		t.Errorf("a plain word was quoted: %q", got)
	}
}
