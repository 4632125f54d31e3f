package config

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{"512M", 512 << 20, ""},
		{"512m", 512 << 20, ""},
		{"512MiB", 512 << 20, ""},
		{"512 MB", 512 << 20, ""},
		{" 2G ", 2 << 30, ""},
		{"2gib", 2 << 30, ""},
		{"1T", 1 << 40, ""},
		{"4K", 4096, ""},
		{"4096B", 4096, ""},
		{"0M", 0, ""},
		{"16777215T", 16777215 << 40, ""},
		{"16777216T", 0, "too large"},
		{"18446744073709551616B", 0, "too large"},
		{"512", 0, "has no unit"},
		{"", 0, "is not a size"},
		{"M", 0, "is not a size"},
		{"-1M", 0, "is not a size"},
		{"1.5G", 0, "not a whole number"},
		{"1,5G", 0, "not a whole number"},
		{"5P", 0, `unknown unit "P"`},
		{"5 BB", 0, "unknown unit"},
		{"5Bi", 0, "unknown unit"},
		{"5MiBs", 0, "unknown unit"},
		{"0x10M", 0, "unknown unit"},
	} {
		got, err := ParseSize(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0B"}, {100, "100B"}, {4096, "4K"}, {1536 << 20, "1536M"}, {3 << 30, "3G"},
		{1 << 40, "1T"}, {511 << 30, "511G"}, {(1 << 20) + 1024, "1025K"},
	} {
		if got := FormatSize(tc.n); got != tc.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
		if back, err := ParseSize(FormatSize(tc.n)); err != nil || back != tc.n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", tc.n, back, err)
		}
	}
}

func TestParsePCIAddress(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PCIAddress
		err  string
	}{
		{"0000:00:03.0", PCIAddress{0, 0, 3, 0}, ""},
		{"00:03.0", PCIAddress{0, 0, 3, 0}, ""},
		{"ffff:ff:1f.7", PCIAddress{0xffff, 0xff, 0x1f, 7}, ""},
		{"000A:0b:0C.1", PCIAddress{0xa, 0xb, 0xc, 1}, ""},
		{"00:20.0", PCIAddress{}, "the device is not 00-1f"},
		{"00:03.8", PCIAddress{}, "the function is not 0-7"},
		{"00:3.0", PCIAddress{}, "the device is not 00-1f"},
		{"0:03.0", PCIAddress{}, "the bus is not 2 hex digits"},
		{"00000:00:03.0", PCIAddress{}, "the segment"},
		{"00:03", PCIAddress{}, "no '.'"},
		{"00:03.00", PCIAddress{}, "the function"},
		{"0000:00:00:03.0", PCIAddress{}, "wrong number of ':'"},
		{"0003.0", PCIAddress{}, "wrong number of ':'"},
		{"+0:03.0", PCIAddress{}, "the bus"},
		{"gg:03.0", PCIAddress{}, "the bus"},
		{"", PCIAddress{}, "wrong number"},
	} {
		got, err := ParsePCIAddress(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParsePCIAddress(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePCIAddress(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
		}
	}
	if s := (PCIAddress{1, 2, 3, 4}).String(); s != "0001:02:03.4" {
		t.Errorf("String() = %q", s)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"memroy", "memory"}, // transposition
		{"vcpu", "vcpus"},    // deletion
		{"kernal", "kernel"}, // substitution
		{"Memory", "memory"}, // case
		{"on-crash", "on_crash"},
		{"mem", ""}, // too far
		{"colour", ""},
		{strings.Repeat("x", 100), ""},
	} {
		if got := suggest(tc.in, vmSchema); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"", "ab", 2}, {"ab", "ba", 1}, {"abcd", "badc", 2},
		{"kitten", "sitting", 3}, {"host", "hots", 1},
	} {
		if got := editDistance(tc.a, tc.b, 10); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	if got := editDistance("kitten", "sitting", 2); got != 3 {
		t.Errorf("editDistance over the limit = %d, want limit+1", got)
	}
}

// TestSchema: the keys the checks know are the decoder's.
func TestSchema(t *testing.T) {
	want := []string{"name", "vcpus", "memory", "kernel", "initrd", "cmdline", "modules", "console", "weight",
		"autostart", "on_crash", "max_restarts", "on_poweroff", "on_reboot", "devices", "passthrough"}
	var got []string
	for _, f := range vmSchema {
		got = append(got, f.name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("VM keys %q, want %q", got, want)
	}
	if m := find(vmSchema, "modules"); m == nil || names(m.sub) != "file, cmdline" || !strings.HasPrefix(m.want, "a list of tables") {
		t.Errorf("modules: %+v", m)
	}
	if h := find(rootSchema, "host"); h == nil || names(h.sub) != "reserve_memory" {
		t.Errorf("host: %+v", h)
	}
}

// TestTablePlacement: TOML's rules on which table a header extends are
// the index's: a [[vm.modules]] after [host] belongs to the last VM.
func TestTablePlacement(t *testing.T) {
	src := vmTOML("a") + vmTOML("b") + "[host]\nreserve_memory = \"1G\"\n[[vm.modules]]\nfile = \"mod1.bin\"\n[[vm.modules]]\nfilee = \"x\"\n"
	cfg, errs := Parse("vms.toml", []byte(src), testEnv())
	checkErrors(t, errs, []wantErr{
		{line: 13, column: 3, vm: "b", index: 2, field: "modules[1].file", msg: "missing"},
		{line: 14, column: 1, vm: "b", index: 2, field: "modules[1].filee", msg: `did you mean "file"?`},
	})
	if len(cfg.VMs) != 1 || cfg.VMs[0].Name != "a" || len(cfg.VMs[0].Modules) != 0 || cfg.Host.ReserveMemory != 1<<30 {
		t.Errorf("config %+v", cfg)
	}
}

// TestUnitDocument: a unit's document keeps its own bytes in place and
// blanks the rest, newlines kept.
func TestUnitDocument(t *testing.T) {
	src := "[host] # h\nreserve_memory = \"0M\"\n[[vm]]\nname = \"a\" # c\n[[vm]]\nname = \"\"\"b\nc\"\"\"\n"
	doc, err := index([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for unit, want := range map[int]string{
		unitHost: "[host] # h\nreserve_memory = \"0M\"\n      \n              \n      \n           \n    \n",
		0:        "          \n                     \n[[vm]]\nname = \"a\"    \n      \n           \n    \n",
		1:        "          \n                     \n      \n              \n[[vm]]\nname = \"\"\"b\nc\"\"\"\n",
	} {
		if got := string(doc.unitDocument(unit)); got != want {
			t.Errorf("unit %d:\n%q\nwant\n%q", unit, got, want)
		}
	}
	if doc.vms != 2 || doc.lookup("vm[1].name") == nil || doc.lookup("vm[1].name").line != 6 {
		t.Errorf("index: %d VMs, keys %+v", doc.vms, doc.keys)
	}
}
