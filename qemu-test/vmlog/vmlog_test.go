package vmlog

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"tamavisor/guests"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// crashes.txt is a console of tamavisor.guest=triplefault,garbage,nosuch,
// wildjump,testkernel under QEMU TCG, cut off in the middle of the last
// line.
func TestParseCrashes(t *testing.T) {
	runs := Parse(readTestdata(t, "crashes.txt"))
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "triplefault,garbage,nosuch,wildjump,testkernel" {
		t.Fatalf("runs %s", got)
	}
	for _, r := range runs {
		if len(r.Malformed) > 0 {
			t.Errorf("%s: malformed %q", r.Name, r.Malformed)
		}
	}
	tf := runs[0]
	if tf.Kernel != "triplefault" || tf.Format != "multiboot" || tf.MemoryMiB != 16 {
		t.Errorf("triplefault start: %q %q %d", tf.Kernel, tf.Format, tf.MemoryMiB)
	}
	if !strings.HasPrefix(tf.Fault, "the guest shut down (triple fault) (vCPU 0, exit shutdown") {
		t.Errorf("triplefault fault %q", tf.Fault)
	}
	if len(tf.Dump) != 18 || !strings.HasPrefix(tf.Dump[0], "VMCB at 0x") {
		t.Errorf("triplefault dump has %d lines (want 18, from \"VMCB at\"):\n%s", len(tf.Dump), strings.Join(tf.Dump, "\n"))
	}
	for k, want := range map[string]string{
		"VMCB": "0x103000", "EXITCODE": "0x7f", "EXITINTINFO": "0x80000403", "nCR3": "0x100000",
		"RIP": "0x100068", "RAX": "0x000000002badb002", "R15": "0x0000000000000000",
		"CS.sel": "0x000010", "CS.attr": "0x00c9b", "GDTR.base": "0x86000", "EFER": "0x1000",
	} {
		if got := tf.Fields[k]; got != want {
			t.Errorf("triplefault dump %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := tf.Fields["sel"]; ok {
		t.Error("a segment's pair was read without the segment's name")
	}
	if !tf.Stopped || tf.StoppedAfter != 0.021 || tf.Reason != "the guest shut down (triple fault)" || tf.HasExitCode {
		t.Errorf("triplefault stop: %v %v %q exit code %v", tf.Stopped, tf.StoppedAfter, tf.Reason, tf.HasExitCode)
	}
	if !tf.HasExits || tf.Exits != 1 || tf.ExitsFor("shutdown") != 1 || len(tf.ExitReasons) != 1 {
		t.Errorf("triplefault exits %v %d %+v", tf.HasExits, tf.Exits, tf.ExitReasons)
	}
	if !tf.HasStats || tf.Stats != (Stats{Exits: 1, HeapAllocs: 70, HeapAllocsPerExit: 70, HandlerSharePct: 85.33, WallSeconds: 0.023}) {
		t.Errorf("triplefault stats %+v", tf.Stats)
	}
	if !tf.KeepsRunning {
		t.Error("triplefault: the hypervisor's survival line was not attached")
	}

	if g := runs[1]; g.Fields["EXITINTINFO"] != "0x80000306" || !g.KeepsRunning || len(g.Output) != 0 {
		t.Errorf("garbage: %+v", g)
	}
	ns := runs[2]
	if !strings.HasPrefix(ns.NotStarted, `no guest named "nosuch"`) || ns.Stopped || ns.KeepsRunning {
		t.Errorf("nosuch: %+v", ns)
	}
	wj := runs[3]
	if !strings.HasPrefix(wj.Fault, "cannot emulate the access to 0xfeb00000") ||
		wj.Fields["EXITCODE"] != "0x400" || wj.Fields["EXITINFO2"] != "0xfeb00000" || wj.ExitsFor("npf") != 1 {
		t.Errorf("wildjump: fault %q fields %v", wj.Fault, wj.Fields)
	}

	tk := runs[4]
	if tk.Fault != "" || tk.Dump != nil || !tk.HasExitCode || tk.ExitCode != 1 || tk.Reason != "exit code 1" {
		t.Errorf("testkernel stop: fault %q exit code %v %d reason %q", tk.Fault, tk.HasExitCode, tk.ExitCode, tk.Reason)
	}
	if len(tk.Output) != 15 || tk.Output[0] != "testkernel: start" || tk.Output[14] != "testkernel: done, 0 failed" {
		t.Errorf("testkernel output %q", tk.Output)
	}
	var sum uint64
	for _, e := range tk.ExitReasons {
		sum += e.Count
	}
	if tk.Exits != 1704 || sum != 1704 || tk.ExitsFor("io") != 1642 || tk.ExitsFor("interrupt-window") != 1 {
		t.Errorf("testkernel exits %d (reasons sum to %d): %+v", tk.Exits, sum, tk.ExitReasons)
	}
	if tk.KeepsRunning {
		t.Error("the console was cut before the testkernel's survival line, yet it was counted")
	}
	if Find(runs, "testkernel") != tk || Find(runs, "linux") != nil {
		t.Error("Find")
	}
}

// linux.txt: tamavisor.guest=linux, cat /proc/cpuinfo, poweroff.
func TestParseLinux(t *testing.T) {
	runs := Parse(readTestdata(t, "linux.txt"))
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	r := runs[0]
	if r.Name != "debian" || r.Kernel != "vmlinuz" || r.Format != "bzImage" || r.MemoryMiB != 512 {
		t.Errorf("start: %+v", r)
	}
	if r.Reason != "powered off (ACPI S5)" || r.HasExitCode || r.Fault != "" || !r.KeepsRunning {
		t.Errorf("stop: reason %q exit code %v fault %q keeps running %v", r.Reason, r.HasExitCode, r.Fault, r.KeepsRunning)
	}
	if r.Exits != 69872 || r.Stats.Exits != 69872 || r.Stats.HandlerSharePct != 3.77 || r.ExitsFor("msr-write") != 1695 {
		t.Errorf("exits %d stats %+v", r.Exits, r.Stats)
	}
	text := r.GuestText()
	for _, want := range []string{
		"\n$ \ncat /proc/cpuinfo\nprocessor\t: 0\nvendor_id\t: AuthenticAMD\n",
		"\n\npoweroff\n$ [    3.608309] reboot: Power down\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("guest text lacks %q:\n%s", want, text)
		}
	}
	// The empty guest line after the banner ("[debian] ") is kept.
	if !strings.Contains(text, "\\__|\n\ninit: ") {
		t.Errorf("the banner's empty line was lost:\n%s", text)
	}
}

// TestGuestLineCut ties MaxGuestLine to guests.Console, which cuts the
// lines, and checks that GuestText joins the pieces again.
func TestGuestLineCut(t *testing.T) {
	var out bytes.Buffer
	c := guests.NewConsole("vm", &out)
	long := strings.Repeat("0123456789", 60) // 600 bytes: cut twice
	c.Write([]byte("short\r\n" + long + "\n" + strings.Repeat("y", MaxGuestLine-1) + "\nprompt$ "))
	c.Flush()
	console := "tamavisor: vm vm: starting k (pvh, 1 MiB, 1 vCPU, AMD-V)\n" + out.String() +
		"tamavisor: vm vm stopped after 1.5 s: powered off (ACPI S5)\n"
	runs := Parse(console)
	if len(runs) != 1 {
		t.Fatalf("%d runs from:\n%s", len(runs), console)
	}
	r := runs[0]
	if len(r.Output) != 6 || len(r.Output[1]) != MaxGuestLine || len(r.Output[2]) != MaxGuestLine {
		t.Fatalf("guests.Console no longer cuts lines at MaxGuestLine (%d) bytes: %q", MaxGuestLine, r.Output)
	}
	want := "short\n" + long + "\n" + strings.Repeat("y", MaxGuestLine-1) + "\nprompt$ \n"
	if got := r.GuestText(); got != want {
		t.Errorf("GuestText:\n%q\nwant\n%q", got, want)
	}
	if got := GuestText(console, "vm"); got != want {
		t.Errorf("GuestText of the console:\n%q\nwant\n%q", got, want)
	}
	if got := GuestText(console, "v"); got != "" {
		t.Errorf("GuestText of another VM's lines: %q", got)
	}
	if !r.Stopped || r.StoppedAfter != 1.5 {
		t.Errorf("stop %v %v", r.Stopped, r.StoppedAfter)
	}
}

func TestMalformed(t *testing.T) {
	console := strings.Join([]string{
		"tamavisor: vm a: starting k (pvh, many MiB, 1 vCPU, AMD-V)",
		"[a] hello",
		"[b] not a running guest",
		"tamavisor: vm a exits x: io=1",
		"tamavisor: vm a exits 3: io=one",
		"tamavisor: vm a stats: exits=1 heap-allocs=2",
		"tamavisor: vm a stopped after soon s: done",
		"tamavisor: vm a exit code -",
		"[a] after the stop",
	}, "\n")
	runs := Parse(console)
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	r := runs[0]
	if len(r.Malformed) != 6 {
		t.Errorf("malformed lines %d, want 6: %q", len(r.Malformed), r.Malformed)
	}
	if r.HasExits || r.HasStats || r.HasExitCode || r.MemoryMiB != 0 {
		t.Errorf("figures read from malformed lines: %+v", r)
	}
	if !r.Stopped || len(r.Output) != 1 || r.Output[0] != "hello" {
		t.Errorf("stopped %v output %q", r.Stopped, r.Output)
	}
}

// FuzzParse: any console parses without panicking, every run has a name,
// a fault's fields come only with a fault, and GuestText keeps every byte
// of the guest's output.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"crashes.txt", "linux.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("tamavisor: vm x: starting (\ntamavisor: vm x: stopped: \nVMCB at\n CS sel\n[x] \n[x]\n[]\n[x")
	f.Add("tamavisor: vm \ntamavisor: guest  not started: \ntamavisor: vm a b c\ntamavisor: vm a exits :=\n")
	f.Fuzz(func(t *testing.T, console string) {
		for _, r := range Parse(console) {
			if r.Name == "" && r.NotStarted == "" {
				t.Errorf("a started run without a name: %+v", r)
			}
			if r.Fault == "" && len(r.Dump) > 0 {
				t.Errorf("a dump without a fault: %+v", r)
			}
			n := 0
			for _, l := range r.Output {
				n += len(l)
			}
			if got := len(r.GuestText()); got < n || got > n+len(r.Output) {
				t.Errorf("GuestText has %d bytes for %d lines of %d bytes", got, len(r.Output), n)
			}
		}
	})
}
