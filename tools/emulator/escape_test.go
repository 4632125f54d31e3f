package emulator

import (
	"bytes"
	"testing"
)

func TestStripEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text\n", "plain text\n"},
		{"crlf\r\nline\r\n", "crlf\nline\n"},
		// OVMF's first bytes on the serial console (measured).
		{"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading", "BdsDxe: loading"},
		// GRUB's menu drawing (measured).
		{"\x1b[?25l\x1b[m\x1b[H\x1b[J\x1b[1;1H\x1b[2;24HGNU GRUB  version 2.06", "GNU GRUB  version 2.06"},
		{"\x1b[7m*tamavisor\x1b[m", "*tamavisor"},
		{"a\x1b]0;title\x07b", "ab"},
		{"a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"},
		{"charset\x1b(Bok", "charsetok"},
		{"keypad\x1b=mode\x1b>", "keypadmode"},
		{"tab\tbell\x07nul\x00bs\x08del\x7f", "tab\tbellnulbsdel"},
		{"lone esc at end\x1b", "lone esc at end"},
		{"esc esc\x1b\x1b[1mbold", "esc escbold"},
		// A broken CSI gives back the newline that interrupts it.
		{"x\x1b[12\ny", "x\ny"},
		// An unterminated OSC does not swallow the following lines.
		{"x\x1b]title\nnext line\n", "x\nnext line\n"},
		{"utf-8 ✓ stays\n", "utf-8 ✓ stays\n"},
	}
	for _, tt := range tests {
		if got := StripEscapes([]byte(tt.in)); got != tt.want {
			t.Errorf("StripEscapes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStripEscapesLongGarbage(t *testing.T) {
	in := "\x1b]" + string(bytes.Repeat([]byte("x"), 2*maxStringLength)) + "tail"
	got := StripEscapes([]byte(in))
	if len(got) < maxStringLength {
		t.Errorf("an unterminated control string swallowed %d bytes", len(in)-len(got))
	}
}

// checkStripInvariants holds for every input: no escape or carriage
// return survives, stripping is idempotent, and the result does not depend
// on how the input was split into reads.
func checkStripInvariants(t *testing.T, in []byte, split int) {
	whole := StripEscapes(in)
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c == esc || c == '\r' || (c < 0x20 && c != '\n' && c != '\t') || c == del {
			t.Fatalf("control byte %#x left in %q (from %q)", c, whole, in)
		}
	}
	if again := StripEscapes([]byte(whole)); again != whole {
		t.Fatalf("not idempotent: %q then %q", whole, again)
	}
	if split < 0 || split > len(in) {
		split = len(in) / 2
	}
	var s escapeStripper
	out := s.Strip(nil, in[:split])
	out = s.Strip(out, in[split:])
	if string(out) != whole {
		t.Fatalf("split at %d: %q, whole: %q", split, out, whole)
	}
	if bytes.IndexFunc(in, func(r rune) bool { return r < 0x20 || r == del }) < 0 && whole != string(in) {
		t.Fatalf("text without controls changed: %q -> %q", in, whole)
	}
}

func TestStripEscapesSplit(t *testing.T) {
	in := []byte("\x1b[2J\x1b[01;01HBdsDxe\r\n\x1b]0;t\x1b\\ok\x1b(B\n")
	for split := 0; split <= len(in); split++ {
		checkStripInvariants(t, in, split)
	}
}

func FuzzStripEscapes(f *testing.F) {
	f.Add([]byte("\x1b[2J\x1b[01;01H\x1b[=3hBdsDxe\r\n"), 3)
	f.Add([]byte("\x1b]8;;x\x1b\\y\x07"), 5)
	f.Add([]byte("\x1b(B\x1b=\x1b\x1b[1m"), 1)
	f.Add([]byte("tamavisor: ready\n"), 0)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		checkStripInvariants(t, in, split)
	})
}
