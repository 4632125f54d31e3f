package inventory

import (
	"fmt"
	"strconv"
	"strings"
)

// Console lines the image prints around the report: the boot protocol
// before it, the ready marker after it.
const (
	BootedPrefix = "tamavisor: booted via "
	Ready        = "tamavisor: ready"
)

// RequiredTopics are the topics every complete inventory has, the ones
// Lines always renders for a report built at boot; a virtualization topic
// (svm, vmx or virt) is required besides.
var RequiredTopics = []string{"boot", "cpu", "memory", "paging", "acpi", "timer", "entropy", "iommu", "pci"}

// Line is one parsed inventory line: `<topic>: ` followed by
// space-separated tokens. A token `key=value` is a field (the value may be
// double-quoted, in Go syntax, to hold spaces); any other token is a word.
type Line struct {
	Topic  string
	Words  []string          // tokens that are not key=value, in order
	Fields map[string]string // key=value tokens, quotes removed
	Raw    string
}

// Inventory is a parsed report, as read back from a console log.
type Inventory struct {
	// BootedVia is the boot protocol from the last `tamavisor: booted via X`.
	BootedVia string
	Lines     []Line
	// Ready: `tamavisor: ready` follows the report.
	Ready bool
}

// Parse finds the last complete report (Begin to End) in a console log and
// parses it. Console text outside the report is ignored; every line inside
// it must be an inventory line. Carriage returns are dropped, so a log
// captured from a serial port parses as it is.
func Parse(log string) (Inventory, error) {
	var inv Inventory
	lines := strings.Split(strings.ReplaceAll(log, "\r", ""), "\n")
	begin, end := -1, -1
	for i, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case l == Begin:
			begin, end = i, -1
		case l == End && begin >= 0 && end < 0:
			end = i
		case strings.HasPrefix(l, BootedPrefix):
			inv.BootedVia = strings.TrimSpace(strings.TrimPrefix(l, BootedPrefix))
		}
	}
	if begin < 0 {
		return inv, fmt.Errorf("inventory: no %q line in the console", Begin)
	}
	if end < 0 {
		return inv, fmt.Errorf("inventory: truncated: %q on console line %d has no %q after it", Begin, begin+1, End)
	}
	for i := begin + 1; i < end; i++ {
		raw := strings.TrimSpace(lines[i])
		if raw == "" || strings.HasPrefix(raw, BootedPrefix) {
			continue // the protocol line is taken above
		}
		l, err := ParseLine(raw)
		if err != nil {
			return inv, fmt.Errorf("inventory: console line %d: %w", i+1, err)
		}
		inv.Lines = append(inv.Lines, l)
	}
	for _, l := range lines[end+1:] {
		if strings.TrimSpace(l) == Ready {
			inv.Ready = true
		}
	}
	return inv, nil
}

// ParseLine parses one line `<topic>: token token ...`.
func ParseLine(raw string) (Line, error) {
	colon := strings.Index(raw, ": ")
	if colon < 0 {
		if !strings.HasSuffix(raw, ":") {
			return Line{}, fmt.Errorf("%q is not `<topic>: ...`", raw)
		}
		colon = len(raw) - 1
	}
	l := Line{Topic: raw[:colon], Fields: map[string]string{}, Raw: raw}
	if !validTopic(l.Topic) {
		return Line{}, fmt.Errorf("%q: topic %q is not a lower-case name", raw, l.Topic)
	}
	rest := raw[colon+1:]
	for {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return l, nil
		}
		tok, after, err := nextToken(rest)
		if err != nil {
			return Line{}, fmt.Errorf("%q: %w", raw, err)
		}
		rest = after
		key, value, isField := strings.Cut(tok, "=")
		if !isField || !validKey(key) {
			l.Words = append(l.Words, tok)
			continue
		}
		if strings.HasPrefix(value, `"`) {
			if value, err = strconv.Unquote(value); err != nil {
				return Line{}, fmt.Errorf("%q: field %s: bad quoted value", raw, key)
			}
		}
		if _, dup := l.Fields[key]; dup {
			return Line{}, fmt.Errorf("%q: field %s given twice", raw, key)
		}
		l.Fields[key] = value
	}
}

// nextToken splits off one token; a double-quoted part (a field's value)
// may hold spaces and backslash escapes.
func nextToken(s string) (tok, rest string, err error) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQuote:
			i++ // the escaped byte
		case c == '"':
			inQuote = !inQuote
		case (c == ' ' || c == '\t') && !inQuote:
			return s[:i], s[i:], nil
		}
	}
	if inQuote {
		return "", "", fmt.Errorf("unterminated quote in %q", s)
	}
	return s, "", nil
}

func validTopic(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Topic returns the lines of one topic, in order.
func (inv Inventory) Topic(topic string) []Line {
	var out []Line
	for _, l := range inv.Lines {
		if l.Topic == topic {
			out = append(out, l)
		}
	}
	return out
}

// Has reports whether the topic appears.
func (inv Inventory) Has(topic string) bool { return len(inv.Topic(topic)) > 0 }

// Field returns a field's value from the first line of the topic that has it.
func (inv Inventory) Field(topic, key string) (string, bool) {
	for _, l := range inv.Topic(topic) {
		if v, ok := l.Fields[key]; ok {
			return v, true
		}
	}
	return "", false
}

// Int returns a field as an integer (decimal, or hex with 0x).
func (inv Inventory) Int(topic, key string) (int64, error) {
	v, ok := inv.Field(topic, key)
	if !ok {
		return 0, fmt.Errorf("inventory has no %s %s=", topic, key)
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("inventory %s %s=%q is not an integer", topic, key, v)
	}
	return n, nil
}

// Uint returns a field as an unsigned 64-bit integer (decimal, or hex with
// 0x): addresses such as memory max-address may not fit an int64.
func (inv Inventory) Uint(topic, key string) (uint64, error) {
	v, ok := inv.Field(topic, key)
	if !ok {
		return 0, fmt.Errorf("inventory has no %s %s=", topic, key)
	}
	n, err := strconv.ParseUint(v, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("inventory %s %s=%q is not an unsigned integer", topic, key, v)
	}
	return n, nil
}

// Missing lists what a complete inventory has and this one lacks: the
// boot protocol line, the required topics, a virtualization topic, and PCI
// device lines matching the count.
func (inv Inventory) Missing() []string {
	var missing []string
	if inv.BootedVia == "" {
		missing = append(missing, strconv.Quote(strings.TrimSpace(BootedPrefix)))
	}
	for _, t := range RequiredTopics {
		if !inv.Has(t) {
			missing = append(missing, t)
		}
	}
	if !inv.Has("svm") && !inv.Has("vmx") && !inv.Has("virt") {
		missing = append(missing, "svm, vmx or virt")
	}
	if n, err := inv.Int("pci", "devices"); err != nil {
		missing = append(missing, "pci devices=")
	} else if listed := inv.PCIDevices(); int64(len(listed)) != n {
		missing = append(missing, fmt.Sprintf("pci device lines (devices=%d, %d listed)", n, len(listed)))
	}
	return missing
}

// PCIDevices returns the per-device PCI lines: those whose first word is a
// segment:bus:device.function address.
func (inv Inventory) PCIDevices() []Line {
	var out []Line
	for _, l := range inv.Topic("pci") {
		if len(l.Words) > 0 && strings.Count(l.Words[0], ":") == 2 && strings.Contains(l.Words[0], ".") {
			out = append(out, l)
		}
	}
	return out
}
