// Package vmlog reads back what tamavisor prints on its console about each
// guest it runs (boot/guest.go): the start line, the guest's own console
// lines, a fault's diagnostic with its VMCB dump, the stop reason, the exit
// code, the VM exits by reason, the run's statistics, and the line saying
// the hypervisor survived. The integration tests (qemu-test) and make bench
// (tools/bench) both check and measure guests through it.
//
// The lines it reads, one guest after another:
//
//	tamavisor: vm NAME: starting KERNEL (FORMAT, N MiB, 1 vCPU, AMD-V)
//	[NAME] a line of the guest's serial console
//	tamavisor: vm NAME: stopped: DIAGNOSTIC            (a fault only)
//	VMCB at 0x... / indented register lines            (a fault only)
//	tamavisor: vm NAME stopped after S s: REASON
//	tamavisor: vm NAME exit code N                     (isa-debug-exit only)
//	tamavisor: vm NAME exits N: reason=count ...
//	tamavisor: vm NAME stats: exits=N heap-allocs=N heap-allocs-per-exit=F handler-share-pct=F wall-s=F
//	tamavisor: the hypervisor keeps running
//	tamavisor: guest NAME not started: ERROR           (instead of all the above)
//
// Lines that belong to none of these (the inventory, another program's
// output) are ignored; a line of this format whose numbers do not read is
// kept in Run.Malformed, so that a test notices the format drifting.
package vmlog

import (
	"strconv"
	"strings"
)

// MaxGuestLine is the longest guest console line tamavisor prints in one
// piece: guests.Console cuts longer lines after this many bytes and
// continues them on the next line, with the prefix again.
const MaxGuestLine = 256

// Line prefixes and texts of the hypervisor (boot/guest.go).
const (
	vmPrefix     = "tamavisor: vm "
	guestPrefix  = "tamavisor: guest "
	notStarted   = " not started: "
	KeepsRunning = "tamavisor: the hypervisor keeps running"
)

// ExitCount is the number of VM exits of one reason.
type ExitCount struct {
	Reason string
	Count  uint64
}

// Stats is the run's statistics line.
type Stats struct {
	Exits             uint64
	HeapAllocs        uint64
	HeapAllocsPerExit float64
	HandlerSharePct   float64 // share of the run's wall time spent handling exits
	WallSeconds       float64
}

// Run is one guest's run.
type Run struct {
	Name string // the VM's name: its console prefix is "[Name] "

	// From the start line; empty when the guest was not started.
	Kernel    string
	Format    string // loader format: bzImage, multiboot, pvh
	MemoryMiB int

	// NotStarted is the error of a guest the hypervisor could not start
	// (Name is then the name asked for on the command line).
	NotStarted string

	// Output is the guest's console, one entry per printed line, without
	// the "[Name] " prefix (see GuestText).
	Output []string

	// Fault is the diagnostic of a guest stopped by a fault ("the guest
	// shut down (triple fault) (vCPU 0, exit shutdown, ...)"), "" when it
	// stopped in an orderly way.
	Fault string
	// Dump is the VMCB dump that follows a fault, line by line, and
	// Fields its NAME 0xVALUE pairs: "EXITCODE", "RIP", "RAX", ...; a
	// segment line's pairs are named after it: "CS.sel", "CS.base"; the
	// VMCB's address is "VMCB".
	Dump   []string
	Fields map[string]string

	// Stopped: the "stopped after" line came.
	Stopped      bool
	StoppedAfter float64 // seconds
	Reason       string

	HasExitCode bool
	ExitCode    int

	HasExits    bool
	Exits       uint64
	ExitReasons []ExitCount // in the order printed

	HasStats bool
	Stats    Stats

	// KeepsRunning: the hypervisor said it keeps running after this
	// guest stopped.
	KeepsRunning bool

	// Malformed are this guest's report lines that did not read.
	Malformed []string
}

// ExitsFor returns the count of one exit reason (0 when not printed).
func (r *Run) ExitsFor(reason string) uint64 {
	for _, e := range r.ExitReasons {
		if e.Reason == reason {
			return e.Count
		}
	}
	return 0
}

// GuestText is the guest's console as text, one line per line the guest
// wrote: a line cut at MaxGuestLine bytes is joined with its continuation.
// (A line the hypervisor flushed early because the guest went idle, such
// as a shell prompt, stays a line of its own.)
func (r *Run) GuestText() string { return joinCut(r.Output) }

// GuestText is the text of the named VM's console lines in any stretch of
// the console, as Run.GuestText gives a whole run's: for reading what a
// guest printed between two points of a run.
func GuestText(console, name string) string {
	prefix := "[" + name + "] "
	var lines []string
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimRight(line, "\r")
		if text, ok := strings.CutPrefix(line, prefix); ok {
			lines = append(lines, text)
		} else if line == strings.TrimSuffix(prefix, " ") {
			lines = append(lines, "")
		}
	}
	return joinCut(lines)
}

func joinCut(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		b.WriteString(l)
		if len(l) != MaxGuestLine || i == len(lines)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Parse reads every guest run from a console, in the order they started.
func Parse(console string) []*Run {
	var p parser
	for _, line := range strings.Split(console, "\n") {
		p.line(strings.TrimRight(line, "\r"))
	}
	return p.runs
}

// Find returns the last run of the named VM, or nil.
func Find(runs []*Run, name string) *Run {
	for i := len(runs) - 1; i >= 0; i-- {
		if runs[i].Name == name {
			return runs[i]
		}
	}
	return nil
}

type parser struct {
	runs   []*Run
	inDump *Run // the faulted run whose VMCB dump is being read
}

func (p *parser) line(line string) {
	switch {
	case strings.HasPrefix(line, vmPrefix):
		p.inDump = nil
		p.vmLine(strings.TrimPrefix(line, vmPrefix), line)
	case line == KeepsRunning:
		p.inDump = nil
		for i := len(p.runs) - 1; i >= 0; i-- {
			if p.runs[i].Stopped {
				p.runs[i].KeepsRunning = true
				break
			}
		}
	case strings.HasPrefix(line, guestPrefix) && strings.Contains(line, notStarted):
		p.inDump = nil
		name, err, _ := strings.Cut(strings.TrimPrefix(line, guestPrefix), notStarted)
		if validName(name) {
			p.runs = append(p.runs, &Run{Name: name, NotStarted: err})
		}
	case strings.HasPrefix(line, "["):
		name, text, ok := strings.Cut(line[1:], "] ")
		if !ok {
			// An empty guest line: the prefix's trailing space is kept
			// ("[name] "); tolerate it trimmed.
			if n, found := strings.CutSuffix(line[1:], "]"); found {
				name, text, ok = n, "", true
			}
		}
		if r := p.running(name); ok && r != nil {
			p.inDump = nil
			r.Output = append(r.Output, text)
		}
	case p.inDump != nil:
		if strings.TrimSpace(line) != "" {
			p.inDump.Dump = append(p.inDump.Dump, line)
			dumpFields(p.inDump.Fields, line)
		}
	}
}

// running returns the last started, not yet stopped run of a VM.
func (p *parser) running(name string) *Run {
	if !validName(name) {
		return nil
	}
	for i := len(p.runs) - 1; i >= 0; i-- {
		r := p.runs[i]
		if r.Name == name && r.NotStarted == "" && !r.Stopped {
			return r
		}
	}
	return nil
}

// validName: a VM's name is one word without the brackets of its prefix.
func validName(name string) bool {
	return name != "" && !strings.ContainsAny(name, " \t[]")
}

// last returns the last run of a VM that was started.
func (p *parser) last(name string) *Run {
	for i := len(p.runs) - 1; i >= 0; i-- {
		if r := p.runs[i]; r.Name == name && r.NotStarted == "" {
			return r
		}
	}
	return nil
}

// vmLine handles "tamavisor: vm " + rest.
func (p *parser) vmLine(rest, whole string) {
	// "NAME: starting ..." and "NAME: stopped: ..." put a colon after
	// the name; the others a space.
	if name, what, ok := strings.Cut(rest, ": "); ok && !strings.Contains(name, " ") {
		if !validName(name) {
			return
		}
		switch {
		case strings.HasPrefix(what, "starting "):
			r := &Run{Name: name}
			if !parseStart(r, strings.TrimPrefix(what, "starting ")) {
				r.Malformed = append(r.Malformed, whole)
			}
			p.runs = append(p.runs, r)
		case strings.HasPrefix(what, "stopped: "):
			r := p.running(name)
			switch {
			case r == nil:
			case strings.TrimSpace(what) == "stopped:":
				r.Malformed = append(r.Malformed, whole) // a fault without its diagnostic
			default:
				r.Fault = strings.TrimPrefix(what, "stopped: ")
				r.Fields = map[string]string{}
				p.inDump = r
			}
		}
		return
	}
	name, what, ok := strings.Cut(rest, " ")
	if !ok {
		return
	}
	switch {
	case strings.HasPrefix(what, "stopped after "):
		r := p.running(name)
		if r == nil {
			return
		}
		r.Stopped = true
		secs, reason, ok := strings.Cut(strings.TrimPrefix(what, "stopped after "), " s: ")
		v, err := strconv.ParseFloat(secs, 64)
		if !ok || err != nil || v < 0 {
			r.Malformed = append(r.Malformed, whole)
			return
		}
		r.StoppedAfter, r.Reason = v, reason
	case strings.HasPrefix(what, "exit code "):
		r := p.last(name)
		if r == nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimPrefix(what, "exit code "))
		if err != nil {
			r.Malformed = append(r.Malformed, whole)
			return
		}
		r.HasExitCode, r.ExitCode = true, n
	case strings.HasPrefix(what, "exits "):
		if r := p.last(name); r != nil && !parseExits(r, strings.TrimPrefix(what, "exits ")) {
			r.Malformed = append(r.Malformed, whole)
		}
	case strings.HasPrefix(what, "stats: "):
		if r := p.last(name); r != nil && !parseStats(r, strings.TrimPrefix(what, "stats: ")) {
			r.Malformed = append(r.Malformed, whole)
		}
	}
}

// parseStart reads "KERNEL (FORMAT, N MiB, ...)".
func parseStart(r *Run, s string) bool {
	kernel, rest, ok := strings.Cut(s, " (")
	if !ok || kernel == "" || !strings.HasSuffix(rest, ")") {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(rest, ")"), ", ")
	if len(parts) < 2 {
		return false
	}
	mib, ok := strings.CutSuffix(parts[1], " MiB")
	n, err := strconv.Atoi(mib)
	if !ok || err != nil || n <= 0 {
		return false
	}
	r.Kernel, r.Format, r.MemoryMiB = kernel, parts[0], n
	return true
}

// parseExits reads "N: reason=count reason=count ...".
func parseExits(r *Run, s string) bool {
	total, list, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(total, 10, 64)
	if !ok || err != nil {
		return false
	}
	var reasons []ExitCount
	for _, f := range strings.Fields(list) {
		k, v, ok := strings.Cut(f, "=")
		c, err := strconv.ParseUint(v, 10, 64)
		if !ok || k == "" || err != nil {
			return false
		}
		reasons = append(reasons, ExitCount{k, c})
	}
	r.HasExits, r.Exits, r.ExitReasons = true, n, reasons
	return true
}

// parseStats reads "exits=N heap-allocs=N heap-allocs-per-exit=F
// handler-share-pct=F wall-s=F"; every field must be there.
func parseStats(r *Run, s string) bool {
	var st Stats
	seen := 0
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return false
		}
		var err error
		switch k {
		case "exits":
			st.Exits, err = strconv.ParseUint(v, 10, 64)
		case "heap-allocs":
			st.HeapAllocs, err = strconv.ParseUint(v, 10, 64)
		case "heap-allocs-per-exit":
			st.HeapAllocsPerExit, err = strconv.ParseFloat(v, 64)
		case "handler-share-pct":
			st.HandlerSharePct, err = strconv.ParseFloat(v, 64)
		case "wall-s":
			st.WallSeconds, err = strconv.ParseFloat(v, 64)
		default:
			continue // a figure added later
		}
		if err != nil {
			return false
		}
		seen++
	}
	if seen != 5 {
		return false
	}
	r.HasStats, r.Stats = true, st
	return true
}

// dumpFields reads the NAME 0xVALUE pairs of a VMCB dump line. A segment
// line ("CS   sel 0x10 attr 0xc9b limit 0xffffffff base 0x0") names its
// pairs after the segment.
func dumpFields(fields map[string]string, line string) {
	f := strings.Fields(line)
	prefix := ""
	if len(f) > 2 && f[0] == "VMCB" && f[1] == "at" {
		fields["VMCB"] = strings.Fields(line)[2] // the VMCB's own address
		return
	}
	if len(f) > 1 && f[1] == "sel" {
		prefix, f = f[0]+".", f[1:]
	}
	for i := 0; i+1 < len(f); i++ {
		if isName(f[i]) && strings.HasPrefix(f[i+1], "0x") {
			if _, seen := fields[prefix+f[i]]; !seen {
				fields[prefix+f[i]] = f[i+1]
			}
			i++
		}
	}
}

func isName(s string) bool {
	if s == "" || !(s[0] >= 'A' && s[0] <= 'Z' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
