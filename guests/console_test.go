package guests

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestConsolePrefixesLines(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole("debian", &out)
	c.Write([]byte("Linux version 6.1\r\nsecond "))
	c.Write([]byte("line\n$ "))
	c.Flush()
	want := "[debian] Linux version 6.1\n[debian] second line\n[debian] $ \n"
	if out.String() != want {
		t.Errorf("console output %q, want %q", out.String(), want)
	}
	if got := string(c.Recent(4)); got != "e\n$ " {
		t.Errorf("Recent(4) = %q, want %q", got, "e\n$ ")
	}
}

func TestConsoleLongLineIsCut(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole("g", &out)
	c.Write([]byte(strings.Repeat("x", 300) + "\n"))
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || len(lines[0]) != len("[g] ")+256 || lines[1] != "[g] "+strings.Repeat("x", 44) {
		t.Errorf("long line split as %d lines: %q", len(lines), out.String())
	}
}

func TestConsoleWriteDoesNotAllocate(t *testing.T) {
	c := NewConsole("g", io.Discard)
	b := []byte{'a'}
	if n := testing.AllocsPerRun(1000, func() { c.Write(b) }); n != 0 {
		t.Errorf("a byte written allocates %.1f times", n)
	}
}

// TestConsoleFlushIdle: a partial line goes out at the second idle moment
// without output in between, not while another vCPU is still writing it.
func TestConsoleFlushIdle(t *testing.T) {
	var out bytes.Buffer
	c := NewConsole("g", &out)
	c.Write([]byte("a line written by one vCPU"))
	c.FlushIdle() // another vCPU halts mid-line
	c.Write([]byte(" while another halts"))
	c.FlushIdle()
	if out.Len() != 0 {
		t.Fatalf("a line still being written was flushed: %q", out.String())
	}
	c.Write([]byte("\n# "))
	c.FlushIdle()
	if want := "[g] a line written by one vCPU while another halts\n"; out.String() != want {
		t.Fatalf("console %q, want %q", out.String(), want)
	}
	c.FlushIdle()
	if want := "[g] a line written by one vCPU while another halts\n[g] # \n"; out.String() != want {
		t.Errorf("prompt not flushed at the second idle moment: %q", out.String())
	}
	c.FlushIdle()
	if strings.Count(out.String(), "\n") != 2 {
		t.Errorf("nothing to flush, yet: %q", out.String())
	}
}
