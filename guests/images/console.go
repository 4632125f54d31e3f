package images

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"tamavisor/tools/emulator"
)

// maxConsole bounds the captured console: a guest printing in a loop must
// not exhaust the host's memory before its deadline ends it.
const maxConsole = 8 << 20

// maxOpenLine bounds how much of a line without its newline is kept apart
// for re-stripping (see console.append); past it the line is committed as
// it stands.
const maxOpenLine = 4 << 10

// console accumulates a guest's serial output and its text with terminal
// control sequences and carriage returns removed (emulator.StripEscapes).
//
// Stripping restarts cleanly at every newline: in every state of the
// stripper a newline ends the sequence in progress and is kept. So the text
// is the stripped complete lines, committed once, followed by the stripped
// open line, redone on each arrival; a sequence split between two reads is
// still removed, and no read costs more than the open line.
type console struct {
	mu        sync.Mutex
	start     time.Time
	raw       []byte
	committed []byte // stripped text of raw[:open]
	open      int    // start in raw of the line not yet committed
	text      string // committed + stripped open line
	arrivals  []arrival
	dropped   int
	changed   chan struct{} // closed and replaced on each change
}

// arrival records when the text first reached a length.
type arrival struct {
	end int
	at  time.Duration
}

func newConsole(start time.Time) *console {
	return &console{start: start, changed: make(chan struct{})}
}

// Write appends serial output; it never fails, so that a full console does
// not stall the emulator on a blocked pipe.
func (c *console) Write(p []byte) (int, error) {
	c.append(p, time.Since(c.start))
	return len(p), nil
}

func (c *console) append(p []byte, at time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if room := maxConsole - len(c.raw); n > room {
		c.dropped += n - max(room, 0)
		p = p[:max(room, 0)]
	}
	if len(p) == 0 {
		return
	}
	c.raw = append(c.raw, p...)
	if nl := bytes.LastIndexByte(c.raw[c.open:], '\n'); nl >= 0 {
		end := c.open + nl + 1
		c.committed = append(c.committed, emulator.StripEscapes(c.raw[c.open:end])...)
		c.open = end
	}
	if len(c.raw)-c.open > maxOpenLine {
		c.committed = append(c.committed, emulator.StripEscapes(c.raw[c.open:])...)
		c.open = len(c.raw)
	}
	text := string(c.committed) + emulator.StripEscapes(c.raw[c.open:])
	if text == c.text {
		return
	}
	c.text = text
	c.arrivals = append(c.arrivals, arrival{end: len(text), at: at})
	close(c.changed)
	c.changed = make(chan struct{})
}

// snapshot returns the text so far and a channel closed on the next change.
func (c *console) snapshot() (string, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.text, c.changed
}

// arrivalOf is when the text first reached length end.
func (c *console) arrivalOf(end int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.arrivals {
		if a.end >= end {
			return a.at
		}
	}
	return time.Since(c.start)
}

// Text is the console without control sequences.
func (c *console) Text() string {
	t, _ := c.snapshot()
	return t
}

// Raw is the console byte for byte (its first maxConsole bytes).
func (c *console) Raw() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.raw...)
}

// Prompt is what u-root's gosh (goshsmall) prints when it waits for a line.
const Prompt = "$ "

// promptAfter finds the first shell prompt that starts a line at or after
// from, and returns the index of the prompt, or -1. from is itself taken as
// a line start: it is where a command's echo ended.
func promptAfter(text string, from int) int {
	if from < 0 || from > len(text) {
		return -1
	}
	if strings.HasPrefix(text[from:], Prompt) {
		return from
	}
	i := strings.Index(text[from:], "\n"+Prompt)
	if i < 0 {
		return -1
	}
	return from + i + 1
}

// commandOutput extracts what a command printed from the console text that
// followed its typing: the tty's echo of the command line, the output, and
// the next prompt. ok is false while the prompt has not come yet.
func commandOutput(text, command string) (output string, ok bool) {
	echo := command + "\n"
	e := strings.Index(text, echo)
	if e < 0 {
		return "", false
	}
	from := e + len(echo)
	p := promptAfter(text, from)
	if p < 0 {
		return "", false
	}
	return text[from:p], true
}
