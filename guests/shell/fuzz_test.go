package shell

import (
	"bytes"
	"testing"
)

// FuzzInput types arbitrary bytes, interleaved with VM output: the shell
// never panics, the edited line stays bounded, and keystrokes reach VMs
// only while attached, never the detach key.
func FuzzInput(f *testing.F) {
	for _, seed := range []string{
		"help\r", "list\r\n", "attach web\rls -l\r\x1dstats\r", "start\x7f\x7f\x7fx\b\r",
		"\x1b[A\x1b[1;5C\x1bOPkill db\x03\r", "attach old\rattach nosuch\r", "reset web\rstop web\r\x15\r",
		string(bytes.Repeat([]byte("y"), 300)) + "\r", "attach db\r\x1d\x1d\x1dattach web\r\xff\x00\x1d",
	} {
		f.Add([]byte(seed), []byte("guest output\n"))
	}
	f.Fuzz(func(t *testing.T, keys, output []byte) {
		s, _, vms := newShell(t, Config{HeldBytes: 128})
		web := s.Port("web")
		// Alternate chunks of keystrokes and guest output.
		for len(keys) > 0 || len(output) > 0 {
			n := min(len(keys), 7)
			s.Input(keys[:n])
			keys = keys[n:]
			m := min(len(output), 5)
			web.Write(output[:m])
			output = output[m:]
			s.mu.Lock()
			if len(s.edit) > MaxLine {
				t.Fatalf("the edited line grew to %d bytes", len(s.edit))
			}
			s.mu.Unlock()
		}
		for name := range vms.input {
			if bytes.IndexByte([]byte(vms.typed(name)), KeyDetach) >= 0 {
				t.Fatalf("%s got the detach key", name)
			}
		}
	})
}
