// Package inventory renders the report the hypervisor prints once at boot:
// what machine it found and what it can do with it.
//
// Every line has the form `topic: token token ...`, between the markers
// `tamavisor: inventory begin` and `tamavisor: inventory end`. A token is a
// field `key=value` (a value that is not plain printable ASCII without
// spaces is double-quoted in Go syntax) or a bare word (the PCI device
// lines), so that operators can read the report and tests and tools can
// parse it back: Parse is the one reader of the format Lines writes, and
// the emulator boot tests (qemu-test) use it on the console log.
package inventory

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"tamavisor/boot/memmap"
	"tamavisor/drivers/acpi"
	"tamavisor/drivers/pci"
	"tamavisor/svm"
	"tamavisor/vmx"
)

// Markers around the report.
const (
	Begin = "tamavisor: inventory begin"
	End   = "tamavisor: inventory end"
)

// CPU describes the processors.
type CPU struct {
	Vendor                  string
	Name                    string
	Family, Model, Stepping uint32
	// Listed are the APIC IDs of the processors the MADT lists as
	// enabled; Online those running the hypervisor, BSP first.
	Listed, Online []uint32
}

// IOMMU is one DMA-remapping unit named by the firmware.
type IOMMU struct {
	Kind    string // "vt-d" or "amd-vi"
	Base    uint64
	Segment uint16
}

// Report is everything the inventory shows. Nil or zero parts are shown as
// absent, with the error that explains why where there is one.
type Report struct {
	Protocol string
	Loader   string

	CPU    CPU
	Memory memmap.Map

	ACPI      *acpi.Tables
	ACPIError error

	TSCHz     uint64
	TSCSource string
	TSCNotes  []string
	Entropy   string

	VMX       *vmx.Capabilities
	SVM       *svm.Capabilities
	VirtError error

	IOMMUs []IOMMU

	PCI      []pci.Device
	PCIError error

	PageTables string
}

// IOMMUsFromACPI lists the IOMMU units the DMAR and IVRS describe. The IVRS
// may describe one unit in several IVHD blocks (types 10h, 11h, 40h): units
// are counted once per register base.
func IOMMUsFromACPI(t *acpi.Tables) []IOMMU {
	if t == nil {
		return nil
	}
	var units []IOMMU
	if t.DMAR != nil {
		for _, d := range t.DMAR.DRHDs {
			units = append(units, IOMMU{Kind: "vt-d", Base: d.RegisterBase, Segment: d.Segment})
		}
	}
	if t.IVRS != nil {
		seen := map[uint64]bool{}
		for _, h := range t.IVRS.IVHDs {
			if seen[h.BaseAddress] {
				continue
			}
			seen[h.BaseAddress] = true
			units = append(units, IOMMU{Kind: "amd-vi", Base: h.BaseAddress, Segment: h.Segment})
		}
	}
	return units
}

// Lines renders the report, markers included.
func (r *Report) Lines() []string {
	out := []string{Begin}
	add := func(topic string, kv ...string) {
		out = append(out, topic+": "+strings.Join(kv, " "))
	}

	add("boot", "protocol="+word(r.Protocol), "loader="+quote(r.Loader))

	c := r.CPU
	add("cpu", "vendor="+word(c.Vendor), "name="+quote(c.Name),
		fmt.Sprintf("family=%#x", c.Family), fmt.Sprintf("model=%#x", c.Model),
		fmt.Sprintf("stepping=%d", c.Stepping),
		fmt.Sprintf("listed=%d", len(c.Listed)), fmt.Sprintf("online=%d", len(c.Online)),
		"apic-ids="+ids(c.Online))

	if r.Memory != nil {
		add("memory",
			fmt.Sprintf("usable-mib=%d", r.Memory.Total(memmap.Usable)>>20),
			fmt.Sprintf("reserved-kib=%d", r.Memory.Total(memmap.Reserved)>>10),
			fmt.Sprintf("acpi-kib=%d", (r.Memory.Total(memmap.ACPIReclaimable)+r.Memory.Total(memmap.ACPINVS))>>10),
			fmt.Sprintf("regions=%d", len(r.Memory)),
			fmt.Sprintf("max-address=%#x", r.Memory.MaxAddress()))
	}
	if r.PageTables != "" {
		add("paging", "host="+quote(r.PageTables))
	}

	switch {
	case r.ACPI != nil:
		var sigs []string
		for _, t := range r.ACPI.All {
			sigs = append(sigs, t.Signature)
		}
		add("acpi", fmt.Sprintf("revision=%d", r.ACPI.RSDP.Revision), "oem="+quote(strings.TrimSpace(r.ACPI.RSDP.OEMID)),
			"tables="+word(strings.Join(sigs, ",")), fmt.Sprintf("problems=%d", len(r.ACPI.Problems)))
		for _, p := range r.ACPI.Problems {
			add("acpi-problem", "detail="+quote(p.Error()))
		}
	default:
		add("acpi", "tables=none", "error="+quote(errText(r.ACPIError)))
	}

	add("timer", fmt.Sprintf("tsc-hz=%d", r.TSCHz), "source="+word(r.TSCSource),
		fmt.Sprintf("notes=%d", len(r.TSCNotes)))
	// One line per note, as for ACPI problems: a key appears once a line.
	for _, n := range r.TSCNotes {
		add("timer-note", "detail="+quote(n))
	}
	add("entropy", "source="+word(r.Entropy))

	switch {
	case r.VMX != nil:
		out = append(out, r.VMX.Summary())
	case r.SVM != nil:
		out = append(out, r.SVM.Summary())
	default:
		add("virt", "none", "reason="+quote(errText(r.VirtError)))
	}

	units := []string{fmt.Sprintf("units=%d", len(r.IOMMUs))}
	if len(r.IOMMUs) > 0 {
		units = append(units, "kind="+r.IOMMUs[0].Kind)
		var bases []string
		for _, u := range r.IOMMUs {
			bases = append(bases, fmt.Sprintf("%#x", u.Base))
		}
		units = append(units, "base="+strings.Join(bases, ","))
	}
	add("iommu", units...)

	pciLine := []string{fmt.Sprintf("devices=%d", len(r.PCI))}
	if r.PCIError != nil {
		pciLine = append(pciLine, "error="+quote(r.PCIError.Error()))
	}
	add("pci", pciLine...)
	for i := range r.PCI {
		out = append(out, "pci: "+r.PCI[i].String())
	}
	return append(out, End)
}

// word renders a value that is normally one plain word (a CPU vendor, a
// source name) as it is, and quotes it when it holds anything else: the
// CPU vendor comes from CPUID and may be any 12 bytes.
func word(s string) string {
	if s == "" {
		return "unknown"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\' {
			return quote(s)
		}
	}
	return s
}

func quote(s string) string { return strconv.Quote(s) }

func errText(err error) string {
	if err == nil {
		return "unknown"
	}
	return err.Error()
}

func ids(v []uint32) string {
	if len(v) == 0 {
		return "none"
	}
	s := append([]uint32(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	parts := make([]string, len(s))
	for i, id := range s {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, ",")
}
