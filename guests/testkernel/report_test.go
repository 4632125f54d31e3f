package testkernel

import (
	"strings"
	"testing"
)

const passingRun = `SeaBIOS (version 1.16.2)
testkernel: start
testkernel: boot: multiboot, mem_upper 129920 KiB
testkernel: boot ok
testkernel: serial ok
testkernel: cpuid: leaf 0x0 vendor "AuthenticAMD" max leaf 0x0000000d
testkernel: cpuid ok
testkernel: lapic ok
testkernel: timer: one-shot ticks 1, periodic ticks 10
testkernel: timer ok
testkernel: done, 0 failed
`

func TestParsePassingRun(t *testing.T) {
	r := Parse(strings.ReplaceAll(passingRun, "\n", "\r\n"))
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if len(r.Info) != 3 || !strings.HasPrefix(r.Info[1], "cpuid: leaf 0x0") {
		t.Errorf("info lines %q", r.Info)
	}
}

func TestCheckFindsEachProblem(t *testing.T) {
	tests := []struct{ name, console, want string }{
		{"a step failed",
			strings.Replace(passingRun, "lapic ok", "lapic FAIL TPR did not keep what movs/stos wrote: 0x00000000", 1),
			"step lapic FAIL TPR did not keep"},
		{"a step missing", strings.Replace(passingRun, "testkernel: serial ok\n", "", 1), "result 1 is step \"cpuid\""},
		{"no final line", strings.Replace(passingRun, "testkernel: done, 0 failed\n", "", 1), "no \"testkernel: done\""},
		{"failures counted", strings.Replace(passingRun, "done, 0 failed", "done, 1 failed", 1), "counted 1 failed"},
		{"an exception",
			strings.Replace(passingRun, "testkernel: lapic ok\n", "testkernel: FAIL unexpected interrupt, vector 0x0000000d error code 0x00000000 eip 0x00100123\n", 1),
			"vector 0x0000000d"},
		{"no start", strings.Replace(passingRun, "testkernel: start\n", "", 1), "no \"testkernel: start\""},
		{"empty", "", "step boot did not report"},
	}
	for _, tc := range tests {
		err := Parse(tc.console).Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check() = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

func TestQEMUExitStatus(t *testing.T) {
	for code, want := range map[int]int{0: 1, 1: 3, 2: 5, ExitFailure: 255} {
		if got := QEMUExitStatus(code); got != want {
			t.Errorf("QEMUExitStatus(%d) = %d, want %d", code, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(passingRun)
	f.Add("testkernel: done, -1 failed\ntestkernel:  ok\ntestkernel: x FAIL")
	f.Add("testkernel: FAIL unexpected\ntestkernel: a: b\n")
	f.Fuzz(func(t *testing.T, console string) {
		r := Parse(console)
		for _, res := range r.Results {
			if res.Step == "" || strings.ContainsAny(res.Step, " \n") || strings.HasSuffix(res.Step, ":") {
				t.Fatalf("bad step name %q from %q", res.Step, console)
			}
		}
		if r.Failed < 0 {
			t.Fatalf("negative failure count from %q", console)
		}
		if r.Check() == nil {
			if len(r.Results) != len(Steps) || !r.Done || r.Failed != 0 || r.Unexpected != "" {
				t.Fatalf("Check passed %+v", r)
			}
			for i, res := range r.Results {
				if !res.OK || res.Step != Steps[i] {
					t.Fatalf("Check passed a failed or misplaced step %+v", res)
				}
			}
		}
	})
}
