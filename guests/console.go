package guests

import (
	"io"
	"sync"
)

// Console carries a guest's serial output to the host console, one line at
// a time with the guest's name in front ("[name] text"), so that several
// guests can share the operator's console and their lines do not
// interleave mid-line. A line longer than the buffer is cut and continued.
// Writes do not allocate: the guest's UART model calls it for every byte.
type Console struct {
	mu     sync.Mutex
	out    io.Writer
	prefix []byte
	line   [257]byte // 256 bytes of text and the newline
	n      int
	// quiet: no byte arrived since the last FlushIdle (see there).
	quiet bool
	// Tail keeps the last bytes the guest wrote, for tests and for the
	// operator's view of a stopped guest.
	Tail  [4096]byte
	tailN uint64
}

// NewConsole writes lines of guest name to out.
func NewConsole(name string, out io.Writer) *Console {
	return &Console{out: out, prefix: []byte("[" + name + "] ")}
}

// Write implements io.Writer for the UART model.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quiet = false
	for _, b := range p {
		c.Tail[c.tailN%uint64(len(c.Tail))] = b
		c.tailN++
		switch b {
		case '\r':
			continue
		case '\n':
			c.flush()
			continue
		}
		if c.n == len(c.line)-1 {
			c.flush()
		}
		c.line[c.n] = b
		c.n++
	}
	return len(p), nil
}

// Flush writes out a partial line (a shell prompt waits without newline).
func (c *Console) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n > 0 {
		c.flush()
	}
}

// FlushIdle writes out a partial line that has had no new bytes since the
// previous FlushIdle: a vCPU calls it each time it halts. With several
// vCPUs, one halts while another is in the middle of a line; waiting for
// a second idle moment with nothing written in between keeps such lines
// whole, and a prompt still appears by the next halt (a timer tick).
func (c *Console) FlushIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n > 0 && c.quiet {
		c.flush()
	}
	c.quiet = true
}

func (c *Console) flush() {
	c.out.Write(c.prefix)
	c.line[c.n] = '\n'
	c.out.Write(c.line[:c.n+1])
	c.n = 0
}

// Recent returns up to n of the last bytes the guest wrote.
func (c *Console) Recent(n int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if uint64(n) > c.tailN {
		n = int(c.tailN)
	}
	if n > len(c.Tail) {
		n = len(c.Tail)
	}
	out := make([]byte, n)
	for i := 0; i < n; i++ {
		out[i] = c.Tail[(c.tailN-uint64(n)+uint64(i))%uint64(len(c.Tail))]
	}
	return out
}
