package images

import (
	"strings"
	"testing"
	"time"

	"tamavisor/tools/emulator"
)

// feed writes data to a fresh console in pieces cut at the given offsets.
func feed(data []byte, cuts []int) *console {
	c := newConsole(time.Now())
	prev := 0
	for _, cut := range cuts {
		if cut < prev || cut > len(data) {
			continue
		}
		c.Write(data[prev:cut])
		prev = cut
	}
	c.Write(data[prev:])
	return c
}

func TestConsoleStripsSequencesSplitAcrossReads(t *testing.T) {
	data := []byte("\x1b[2J\x1b[1;1Hboot\r\nWelcome to u-root!\r\n\x1b]0;title\x07$ \x1b[?25h")
	want := "boot\nWelcome to u-root!\n$ "
	for cut := 0; cut <= len(data); cut++ {
		for cut2 := cut; cut2 <= len(data); cut2 += 3 {
			if got := feed(data, []int{cut, cut2}).Text(); got != want {
				t.Fatalf("cut at %d and %d: text %q, want %q", cut, cut2, got, want)
			}
		}
	}
}

func TestConsoleArrivals(t *testing.T) {
	c := newConsole(time.Now())
	c.append([]byte("line one\r\n"), 1*time.Second)
	c.append([]byte("\x1b[0m"), 2*time.Second) // no text: no arrival
	c.append([]byte("$ "), 3*time.Second)
	if got := c.arrivalOf(len("line one\n")); got != time.Second {
		t.Errorf("arrival of the first line: %v, want 1s", got)
	}
	if got := c.arrivalOf(len("line one\n$ ")); got != 3*time.Second {
		t.Errorf("arrival of the prompt: %v, want 3s (the escape sequence added no text)", got)
	}
}

func TestConsoleBounded(t *testing.T) {
	c := newConsole(time.Now())
	chunk := []byte(strings.Repeat("x", 1<<20))
	for i := 0; i < maxConsole>>20+3; i++ {
		c.Write(chunk)
	}
	if len(c.Raw()) != maxConsole {
		t.Fatalf("raw console holds %d bytes, want the %d-byte bound", len(c.Raw()), maxConsole)
	}
	if c.dropped != 3<<20 {
		t.Fatalf("dropped %d bytes, want %d", c.dropped, 3<<20)
	}
	if len(c.Text()) != maxConsole {
		t.Fatalf("text holds %d bytes, want %d", len(c.Text()), maxConsole)
	}
}

func TestPromptAfter(t *testing.T) {
	tests := []struct {
		text string
		from int
		want int
	}{
		{"Welcome\n$ ", 0, 8},
		{"$ ", 0, 0},
		{"echo\n$ ", 5, 5},           // empty output: the prompt right after the echo
		{"a$ b\n", 0, -1},            // not at a line start
		{"x\n$ y\n$ ", 3, 6},         // the first after from
		{"x\n$", 0, -1},              // incomplete
		{"x\n$ ", 5, -1},             // from past the end
		{"x\n$ ", -1, -1},            // negative from
		{"output\n$ more\n$ ", 0, 7}, // the first one
	}
	for _, tc := range tests {
		if got := promptAfter(tc.text, tc.from); got != tc.want {
			t.Errorf("promptAfter(%q, %d) = %d, want %d", tc.text, tc.from, got, tc.want)
		}
	}
}

func TestCommandOutput(t *testing.T) {
	tests := []struct {
		text, command, want string
		ok                  bool
	}{
		{"uname -r\n6.1.0-56-amd64\n$ ", "uname -r", "6.1.0-56-amd64\n", true},
		{"true\n$ ", "true", "", true},
		{"uname -r\n6.1.0-56-amd64\n", "uname -r", "", false}, // no prompt yet
		{"uname -\n", "uname -r", "", false},                  // echo incomplete
		{"ls\na\nb\n$ ", "ls", "a\nb\n", true},
		{"[ 3.1] late kernel line\nls\nx\n$ ", "ls", "x\n", true},
	}
	for _, tc := range tests {
		got, ok := commandOutput(tc.text, tc.command)
		if got != tc.want || ok != tc.ok {
			t.Errorf("commandOutput(%q, %q) = %q, %v; want %q, %v", tc.text, tc.command, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzConsole checks that cutting the serial stream anywhere gives the
// same text as stripping it whole, and that the command parser stays
// within the text.
func FuzzConsole(f *testing.F) {
	f.Add([]byte("\x1b[2Jboot\r\n$ uname -r\r\n6.1\r\n$ "), uint16(3), uint16(9), "uname -r")
	f.Add([]byte("\x1b]0;t\x1b\\x\n\x1b(B$ "), uint16(1), uint16(2), "x")
	f.Add([]byte("\x1b\n\x1b[\n\x1b]\n"), uint16(0), uint16(4), "")
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16, command string) {
		if len(data) > maxOpenLine {
			data = data[:maxOpenLine] // past it an open line is committed as it stands
		}
		cuts := []int{int(a) % (len(data) + 1), int(b) % (len(data) + 1)}
		if cuts[0] > cuts[1] {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
		text := feed(data, cuts).Text()
		if want := emulator.StripEscapes(data); text != want {
			t.Fatalf("pieces cut at %v give %q, the whole %q", cuts, text, want)
		}
		if out, ok := commandOutput(text, command); ok && !strings.Contains(text, command+"\n"+out) {
			t.Fatalf("output %q of %q does not follow its echo in %q", out, command, text)
		}
	})
}
