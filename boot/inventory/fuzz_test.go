package inventory

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(sampleLog)
	f.Add("tamavisor: inventory begin\ncpu: name=\"a\\\"b\" x\ntamavisor: inventory end\n")
	f.Add("tamavisor: inventory begin\n")
	f.Add("x: \"\ntamavisor: inventory end")
	f.Add(console(&Report{Protocol: "pvh", CPU: CPU{Name: "a b"}, VirtError: errors.New(`x "y"`)}))
	f.Fuzz(func(t *testing.T, log string) {
		inv, err := Parse(log)
		if err != nil {
			return
		}
		for _, l := range inv.Lines {
			if !validTopic(l.Topic) {
				t.Fatalf("topic %q accepted", l.Topic)
			}
			for k := range l.Fields {
				if !validKey(k) {
					t.Fatalf("key %q accepted", k)
				}
			}
			// Reparsing a line gives the same line.
			again, err := ParseLine(l.Raw)
			if err != nil || !reflect.DeepEqual(again, l) {
				t.Fatalf("reparse of %q: %+v, %v; first %+v", l.Raw, again, err, l)
			}
		}
		inv.Missing()
		inv.PCIDevices()
		for _, topic := range RequiredTopics {
			inv.Int(topic, "x")
			inv.Uint(topic, "x")
		}
	})
}

// FuzzRoundTrip puts arbitrary strings everywhere the Report carries text
// from outside (firmware, CPUID, error messages) and checks that Parse
// reads each back unchanged from what Lines renders.
func FuzzRoundTrip(f *testing.F) {
	f.Add("GRUB 2.06-13+deb12u2", "AuthenticAMD", "QEMU Virtual CPU version 2.5+", "acpi-pm", `svm: "SVM Mode"`, "note")
	f.Add("", "", "", "", "", "")
	f.Add("a=b", "x y", "\n", `\`, "\"", "tamavisor: inventory end")
	f.Fuzz(func(t *testing.T, loader, vendor, name, source, virt, note string) {
		r := &Report{
			Protocol: "pvh", Loader: loader,
			CPU:       CPU{Vendor: vendor, Name: name},
			TSCSource: source, TSCNotes: []string{note, note},
			VirtError: errors.New(virt), ACPIError: errors.New(note), PCIError: errors.New(virt),
		}
		lines := r.Lines()
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("line %q spans lines", l)
			}
		}
		inv, err := Parse(strings.Join(lines, "\n"))
		if err != nil {
			t.Fatalf("Parse(Lines()): %v\n%s", err, strings.Join(lines, "\n"))
		}
		orUnknown := func(s string) string {
			if s == "" {
				return "unknown"
			}
			return s
		}
		for _, c := range []struct{ topic, key, want string }{
			{"boot", "loader", loader},
			{"cpu", "vendor", orUnknown(vendor)},
			{"cpu", "name", name},
			{"timer", "source", orUnknown(source)},
			{"timer-note", "detail", note},
			{"virt", "reason", virt},
			{"acpi", "error", note},
			{"pci", "error", virt},
		} {
			if got, ok := inv.Field(c.topic, c.key); !ok || got != c.want {
				t.Errorf("%s %s=%q (present %v), want %q", c.topic, c.key, got, ok, c.want)
			}
		}
		if n := len(inv.Topic("timer-note")); n != 2 {
			t.Errorf("%d timer-note lines, want 2", n)
		}
	})
}
