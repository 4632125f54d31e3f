package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testFiles are the guest images the test host has.
var testFiles = []string{"vmlinuz", "initramfs.cpio", "testkernel.elf", "mod1.bin", "mod2.bin"}

func testEnv() Env {
	return Env{
		Files:      func(name string) bool { return slices.Contains(testFiles, name) },
		HostMemory: 4 << 30,
		MaxVCPUs:   16,
	}
}

// vmTOML is a valid VM named name, in four lines (header, name, memory,
// kernel), followed by extra lines; an extra line setting memory or
// kernel takes the place of the default one.
func vmTOML(name string, extra ...string) string {
	s := fmt.Sprintf("[[vm]]\nname = %q\n", name)
	memory, kernel := "memory = \"256M\"", "kernel = \"vmlinuz\""
	var rest []string
	for _, e := range extra {
		switch {
		case strings.HasPrefix(e, "memory = "):
			memory = e
		case strings.HasPrefix(e, "kernel = "):
			kernel = e
		default:
			rest = append(rest, e)
		}
	}
	for _, e := range append([]string{memory, kernel}, rest...) {
		s += e + "\n"
	}
	return s
}

// wantErr is an expected error: its position, VM, field and a part of
// its message.
type wantErr struct {
	line, column int
	vm           string
	index        int
	field        string
	msg          string
}

func checkErrors(t *testing.T, errs []error, want []wantErr) {
	t.Helper()
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d:", len(errs), len(want))
		for _, e := range errs {
			t.Errorf("  %v", e)
		}
		return
	}
	for i, err := range errs {
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("error %d is %T (%v), want *Error", i, err, err)
			continue
		}
		w := want[i]
		if e.File != "vms.toml" || e.Line != w.line || (w.column != 0 && e.Column != w.column) ||
			e.VM != w.vm || e.Index != w.index || e.Field != w.field || !strings.Contains(e.Msg, w.msg) {
			t.Errorf("error %d = %v\n  (line %d column %d vm %q index %d field %q)\nwant line %d column %d vm %q index %d field %q msg containing %q",
				i, e, e.Line, e.Column, e.VM, e.Index, e.Field, w.line, w.column, w.vm, w.index, w.field, w.msg)
		}
	}
}

func vmNames(cfg *Config) []string {
	var names []string
	for _, v := range cfg.VMs {
		names = append(names, v.Name)
	}
	return names
}

// TestErrors covers every class of error: where it is reported, which
// VM and field it names, and which VMs survive it.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		env  func(*Env)
		want []wantErr
		vms  []string // the valid VMs, in order
	}{
		{
			name: "syntax error: no VMs",
			src:  vmTOML("a") + "[[vm]\nname = \"b\"\n",
			want: []wantErr{{line: 5, column: 5, msg: "expected ']]'"}},
		},
		{
			name: "key given twice: no VMs",
			src:  "[[vm]]\nname = \"a\"\nname = \"b\"\n" + vmTOML("b"),
			want: []wantErr{{line: 3, column: 1, msg: "key name is already defined"}},
		},
		{
			name: "integer beyond 64 bits: no VMs",
			src:  vmTOML("a", "vcpus = 99999999999999999999") + vmTOML("b"),
			want: []wantErr{{line: 5, msg: "too large"}},
		},
		{
			name: "unknown key with a suggestion",
			src:  vmTOML("a") + vmTOML("b", "vcpsu = 2"),
			want: []wantErr{{line: 9, column: 1, vm: "b", index: 2, field: "vcpsu", msg: `unknown key; did you mean "vcpus"?`}},
			vms:  []string{"a"},
		},
		{
			name: "unknown key far from any",
			src:  vmTOML("a", "colour = \"blue\""),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "colour", msg: "unknown key; the keys here are name, vcpus, memory"}},
		},
		{
			name: "unknown dotted key reported once",
			src:  vmTOML("a", "extra.one = 1", "extra.two = 2") + vmTOML("b"),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "extra", msg: "unknown key"}},
			vms:  []string{"b"},
		},
		{
			name: "unknown sub-table",
			src:  vmTOML("a", "[vm.extra]", "x = 1") + vmTOML("b"),
			want: []wantErr{{line: 5, column: 2, vm: "a", index: 1, field: "extra", msg: "unknown table"}},
			vms:  []string{"b"},
		},
		{
			name: "unknown key in an inline module",
			src:  vmTOML("a", `modules = [{file = "mod1.bin"}, {file = "mod2.bin", cmd = "x"}]`),
			want: []wantErr{{line: 5, column: 53, vm: "a", index: 1, field: "modules[1].cmd", msg: "unknown key; the keys here are file, cmdline"}},
		},
		{
			name: "unknown key in a module table",
			src:  vmTOML("a", "[[vm.modules]]", `file = "mod1.bin"`, "[[vm.modules]]", `fiel = "mod2.bin"`),
			want: []wantErr{
				{line: 7, column: 3, vm: "a", index: 1, field: "modules[1].file", msg: "missing"},
				{line: 8, vm: "a", index: 1, field: "modules[1].fiel", msg: `did you mean "file"?`},
			},
		},
		{
			name: "unknown root table, the VMs stay",
			src:  "[hots]\nreserve_memory = \"1G\"\n" + vmTOML("a"),
			want: []wantErr{{line: 1, column: 2, field: "hots", msg: `unknown table; did you mean "host"?`}},
			vms:  []string{"a"},
		},
		{
			name: "unknown host key, the VMs stay",
			src:  "[host]\nreserve = \"1G\"\n" + vmTOML("a"),
			want: []wantErr{{line: 2, field: "host.reserve", msg: "unknown key"}},
			vms:  []string{"a"},
		},
		{
			name: "misspelt array of VMs",
			src:  "[[vms]]\nname = \"a\"\n" + vmTOML("b"),
			want: []wantErr{{line: 1, column: 3, field: "vms", msg: `did you mean "vm"?`}},
			vms:  []string{"b"},
		},
		{
			name: "a VM as a plain table",
			src:  "[vm]\nname = \"a\"\nmemory = \"256M\"\nkernel = \"vmlinuz\"\n",
			want: []wantErr{{line: 1, column: 2, field: "vm", msg: "write [[vm]]"}},
		},
		{
			name: "VMs as an inline array",
			src:  `vm = [{name = "a", memory = "256M", kernel = "vmlinuz"}]` + "\n",
			want: []wantErr{{line: 1, column: 1, field: "vm", msg: "write [[vm]]"}},
		},
		{
			name: "wrong type: string for an integer",
			src:  vmTOML("a", `vcpus = "two"`) + vmTOML("b"),
			want: []wantErr{{line: 5, column: 1, vm: "a", index: 1, field: "vcpus", msg: `"two" is a string; want an integer`}},
			vms:  []string{"b"},
		},
		{
			name: "wrong type: integer for a size",
			src:  "[[vm]]\nname = \"a\"\nmemory = 512\nkernel = \"vmlinuz\"\n" + vmTOML("b"),
			want: []wantErr{{line: 3, vm: "a", index: 1, field: "memory", msg: "512 is an integer; want a string"}},
			vms:  []string{"b"},
		},
		{
			name: "wrong type: string for a boolean",
			src:  vmTOML("a", `autostart = "yes"`),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "autostart", msg: "want true or false"}},
		},
		{
			name: "wrong type: float for an integer",
			src:  vmTOML("a", "weight = 1.5"),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "weight", msg: "1.5 is a float; want an integer"}},
		},
		{
			name: "wrong type: element of a list",
			src:  vmTOML("a", `devices = ["uart", 3]`),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "devices", msg: "an element of the list has the wrong type; want a list of strings"}},
		},
		{
			name: "wrong type: a string for a list",
			src:  vmTOML("a", `passthrough = "00:03.0"`),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "passthrough", msg: "want a list of strings"}},
		},
		{
			name: "wrong type: inside an inline module",
			src:  vmTOML("a", `modules = [{file = 7}]`),
			want: []wantErr{{line: 5, column: 13, vm: "a", index: 1, field: "modules[0].file", msg: "7 is an integer; want a string"}},
		},
		{
			name: "wrong type: a table for a string",
			src:  vmTOML("a", "[vm.cmdline]", "x = 1") + vmTOML("b"),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "cmdline", msg: "want a string"}},
			vms:  []string{"b"},
		},
		{
			name: "missing name, memory and kernel",
			src:  vmTOML("a") + "\n[[vm]]\nvcpus = 1\n",
			want: []wantErr{
				{line: 6, column: 3, index: 2, field: "name", msg: "missing: every VM needs a name"},
				{line: 6, column: 3, index: 2, field: "memory", msg: "missing"},
				{line: 6, column: 3, index: 2, field: "kernel", msg: "missing"},
			},
			vms: []string{"a"},
		},
		{
			name: "missing module file",
			src:  vmTOML("a", "[[vm.modules]]", `cmdline = "x"`),
			want: []wantErr{{line: 5, column: 3, vm: "a", index: 1, field: "modules[0].file", msg: "missing"}},
		},
		{
			name: "missing inline module file",
			src:  vmTOML("a", `modules = [{cmdline = "x"}]`),
			want: []wantErr{{line: 5, column: 1, vm: "a", index: 1, field: "modules[0].file", msg: "missing"}},
		},
		{
			name: "name syntax",
			src: "[[vm]]\nname = \"Web 1\"\nmemory = \"256M\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"-a\"\nmemory = \"256M\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"abcdefghijklmnopqrstuvwxyz0123456\"\nmemory = \"256M\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"\"\nmemory = \"256M\"\nkernel = \"vmlinuz\"\n" +
				vmTOML("ok-1"),
			want: []wantErr{
				{line: 2, vm: "Web 1", index: 1, field: "name", msg: `has U+0057 'W' at byte 0`},
				{line: 6, vm: "-a", index: 2, field: "name", msg: "starts with '-'"},
				{line: 10, vm: "abcdefghijklmnopqrstuvwxyz0123456", index: 3, field: "name", msg: "33 characters long, more than 32"},
				{line: 14, index: 4, field: "name", msg: "the name is empty"},
			},
			vms: []string{"ok-1"},
		},
		{
			name: "duplicate names: the second names the first's line",
			src:  vmTOML("a") + vmTOML("b") + vmTOML("a"),
			want: []wantErr{{line: 10, column: 1, vm: "a", index: 3, field: "name", msg: `"a" is already the name of the VM at line 2`}},
			vms:  []string{"a", "b"},
		},
		{
			name: "duplicate name of an invalid VM",
			src:  vmTOML("a", "vcpus = 0") + vmTOML("a"),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "vcpus", msg: "0 vCPUs: a VM has 1 to 16"},
				{line: 7, vm: "a", index: 2, field: "name", msg: "already the name of the VM at line 2"},
			},
		},
		{
			name: "vcpus range",
			src:  vmTOML("a", "vcpus = 17") + vmTOML("b", "vcpus = 16") + vmTOML("c", "vcpus = -1"),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "vcpus", msg: "17 vCPUs: a VM has 1 to 16"},
				{line: 15, vm: "c", index: 3, field: "vcpus", msg: "-1 vCPUs"},
			},
			vms: []string{"b"},
		},
		{
			name: "vcpus bound by the platform when the host sets none",
			src:  vmTOML("a", "vcpus = 256") + vmTOML("b", "vcpus = 255"),
			env:  func(e *Env) { e.MaxVCPUs = 0 },
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "vcpus", msg: "a VM has 1 to 255"}},
			vms:  []string{"b"},
		},
		{
			name: "memory syntax and size",
			src: "[[vm]]\nname = \"a\"\nmemory = \"lots\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"b\"\nmemory = \"512\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"c\"\nmemory = \"1.5G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"d\"\nmemory = \"8M\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"e\"\nmemory = \"513M\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"f\"\nmemory = \"5P\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"g\"\nmemory = \"600G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"h\"\nmemory = \"99999999999999999999G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"i\"\nmemory = \"16 MiB\"\nkernel = \"vmlinuz\"\n",
			want: []wantErr{
				{line: 3, vm: "a", index: 1, field: "memory", msg: `"lots" is not a size`},
				{line: 7, vm: "b", index: 2, field: "memory", msg: `"512" has no unit: write e.g. "512M"`},
				{line: 11, vm: "c", index: 3, field: "memory", msg: `not a whole number: write it in a smaller unit`},
				{line: 15, vm: "d", index: 4, field: "memory", msg: "8M is less than the 16M a VM needs at least"},
				{line: 19, vm: "e", index: 5, field: "memory", msg: "513M is not a multiple of 2M"},
				{line: 23, vm: "f", index: 6, field: "memory", msg: `unknown unit "P"`},
				{line: 27, vm: "g", index: 7, field: "memory", msg: "600G is more than the 511G a VM can address"},
				{line: 31, vm: "h", index: 8, field: "memory", msg: "too large"},
			},
			vms: []string{"i"},
		},
		{
			name: "more memory than the host has",
			src:  vmTOML("a", `memory = "5G"`),
			want: []wantErr{{line: 3, column: 1, vm: "a", index: 1, field: "memory", msg: "5G is more than the 4G the host has left for guests"}},
		},
		{
			name: "cumulative memory: the VM that goes over is refused, later ones that fit start",
			src: "[[vm]]\nname = \"a\"\nmemory = \"2G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"b\"\nmemory = \"1G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"c\"\nmemory = \"2G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"d\"\nmemory = \"1G\"\nkernel = \"vmlinuz\"\n" +
				"[[vm]]\nname = \"e\"\nmemory = \"2G\"\nkernel = \"vmlinuz\"\nautostart = false\n" +
				"[[vm]]\nname = \"f\"\nmemory = \"8G\"\nkernel = \"vmlinuz\"\nautostart = false\n",
			want: []wantErr{
				{line: 11, vm: "c", index: 3, field: "memory", msg: "2G is more than the 1G the host has left for guests (3G of 4G taken by the autostart VMs before it: a, b)"},
				{line: 24, vm: "f", index: 6, field: "memory", msg: "8G is more than the 4G the host has for guests"},
			},
			vms: []string{"a", "b", "d", "e"},
		},
		{
			name: "a refused VM takes no memory",
			src:  vmTOML("a", `memory = "3G"`, "vcpus = 99") + vmTOML("b", `memory = "3G"`),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "vcpus", msg: "99 vCPUs"}},
			vms:  []string{"b"},
		},
		{
			name: "reserve_memory counts",
			src:  "[host]\nreserve_memory = \"1G\"\n" + vmTOML("a", `memory = "2G"`) + vmTOML("b", `memory = "2G"`),
			want: []wantErr{{line: 9, vm: "b", index: 2, field: "memory", msg: `2G is more than the 1G the host has left for guests (2G of 3G after reserve_memory = "1G" taken by the autostart VMs before it: a)`}},
			vms:  []string{"a"},
		},
		{
			name: "no host memory check when the host does not say",
			src:  vmTOML("a", `memory = "500G"`),
			env:  func(e *Env) { e.HostMemory = 0 },
			vms:  []string{"a"},
		},
		{
			name: "bad reserve_memory: reported, default applies, VMs stay",
			src:  "[host]\nreserve_memory = \"8G\"\n" + vmTOML("a", `memory = "4G"`),
			want: []wantErr{{line: 2, field: "host.reserve_memory", msg: "8G is more than the 4G the host has for guests"}},
			vms:  []string{"a"},
		},
		{
			name: "reserve_memory of the wrong type",
			src:  "[host]\nreserve_memory = 1\n" + vmTOML("a"),
			want: []wantErr{{line: 2, field: "host.reserve_memory", msg: "1 is an integer; want a string"}},
			vms:  []string{"a"},
		},
		{
			name: "missing files",
			src: vmTOML("a", `initrd = "initrd.img"`) +
				"[[vm]]\nname = \"b\"\nmemory = \"256M\"\nkernel = \"bzImage\"\n" +
				vmTOML("c", `modules = [{file = "mod1.bin"}, {file = "mod3.bin"}]`) +
				vmTOML("d", `kernel2 = "x"`),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "initrd", msg: `no file "initrd.img" among the guest images`},
				{line: 9, vm: "b", index: 2, field: "kernel", msg: `no file "bzImage"`},
				{line: 14, column: 34, vm: "c", index: 3, field: "modules[1].file", msg: `no file "mod3.bin"`},
				{line: 19, vm: "d", index: 4, field: "kernel2", msg: `did you mean "kernel"?`},
			},
		},
		{
			name: "file name syntax",
			src:  vmTOML("a", `initrd = "my initrd"`),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "initrd", msg: "no spaces or control characters"}},
		},
		{
			name: "files not checked when the host does not say",
			src:  vmTOML("a", `initrd = "anything"`),
			env:  func(e *Env) { e.Files = nil },
			vms:  []string{"a"},
		},
		{
			name: "command line with a newline",
			src:  vmTOML("a", "cmdline = \"\"\"console=ttyS0\nquiet\"\"\""),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "cmdline", msg: "U+000A"}},
		},
		{
			name: "command line too long",
			src:  vmTOML("a", `cmdline = "`+strings.Repeat("x", 16385)+`"`),
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "cmdline", msg: "16385 bytes long, more than 16384"}},
		},
		{
			name: "too many modules",
			src:  vmTOML("a", `initrd = "initramfs.cpio"`, "modules = ["+strings.Repeat(`{file = "mod1.bin"}, `, 64)+"]"),
			want: []wantErr{{line: 6, vm: "a", index: 1, field: "modules", msg: "64 modules: a VM has at most 64 (63 with an initrd"}},
		},
		{
			name: "weight range",
			src:  vmTOML("a", "weight = 0") + vmTOML("b", "weight = 65536") + vmTOML("c", "weight = 65535"),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "weight", msg: "0 is not a weight: use 1 to 65535"},
				{line: 10, vm: "b", index: 2, field: "weight", msg: "65536 is not a weight"},
			},
			vms: []string{"c"},
		},
		{
			name: "enumerations",
			src: vmTOML("a", `console = "tty"`) + vmTOML("b", `on_crash = "reboot"`) +
				vmTOML("c", `on_poweroff = "halt"`) + vmTOML("d", `on_reboot = "Restart"`) +
				vmTOML("e", "max_restarts = -1") + vmTOML("f", "max_restarts = 1001"),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "console", msg: `"tty" is not a console: use "serial", "log" or "none"`},
				{line: 10, vm: "b", index: 2, field: "on_crash", msg: `"reboot" is not an action: use "stop" or "restart"`},
				{line: 15, vm: "c", index: 3, field: "on_poweroff", msg: `"halt" is not an action`},
				{line: 20, vm: "d", index: 4, field: "on_reboot", msg: `"Restart" is not an action`},
				{line: 25, vm: "e", index: 5, field: "max_restarts", msg: "-1 is out of range: use 0 to 1000"},
				{line: 30, vm: "f", index: 6, field: "max_restarts", msg: "1001 is out of range"},
			},
		},
		{
			name: "devices",
			src:  vmTOML("a", `devices = ["uart", "vga"]`) + vmTOML("b", `devices = ["uart", "uart"]`) + vmTOML("c", "devices = []"),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "devices", msg: `"vga" is not a device: the devices are uart, pit, rtc, i8042, debug-exit`},
				{line: 10, vm: "b", index: 2, field: "devices", msg: `"uart" is listed twice`},
			},
			vms: []string{"c"},
		},
		{
			name: "devices the host names",
			src:  vmTOML("a", `devices = ["virtio-net"]`) + vmTOML("b", `devices = ["uart"]`),
			env:  func(e *Env) { e.Devices = []string{"virtio-net"} },
			want: []wantErr{{line: 10, vm: "b", index: 2, field: "devices", msg: `"uart" is not a device: the devices are virtio-net`}},
			vms:  []string{"a"},
		},
		{
			name: "passthrough syntax",
			src: vmTOML("a", `passthrough = ["00:3.0"]`) + vmTOML("b", `passthrough = ["00:20.0"]`) +
				vmTOML("c", `passthrough = ["00:03.8"]`) + vmTOML("d", `passthrough = ["0:00:03.0"]`) +
				vmTOML("e", `passthrough = ["00:03"]`) + vmTOML("f", `passthrough = ["0001:ff:1f.7", "02:00.0"]`),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "passthrough", msg: "the device is not 00-1f"},
				{line: 10, vm: "b", index: 2, field: "passthrough", msg: "the device is not 00-1f"},
				{line: 15, vm: "c", index: 3, field: "passthrough", msg: "the function is not 0-7"},
				{line: 20, vm: "d", index: 4, field: "passthrough", msg: "the segment is not 4 hex digits"},
				{line: 25, vm: "e", index: 5, field: "passthrough", msg: "no '.' before the function"},
			},
			vms: []string{"f"},
		},
		{
			name: "passthrough listed twice in a VM and given to two VMs",
			src: vmTOML("a", `passthrough = ["00:03.0", "0000:00:03.0"]`) +
				vmTOML("b", `passthrough = ["0000:00:04.0"]`) +
				vmTOML("c", `passthrough = ["00:04.0"]`),
			want: []wantErr{
				{line: 5, vm: "a", index: 1, field: "passthrough", msg: "0000:00:03.0 is listed twice"},
				{line: 15, vm: "c", index: 3, field: "passthrough", msg: `0000:00:04.0 is already given to the VM at line 6 ("b")`},
			},
			vms: []string{"b"},
		},
		{
			name: "passthrough of a function the host lacks",
			src:  vmTOML("a", `passthrough = ["00:05.0"]`) + vmTOML("b", `passthrough = ["00:03.0"]`),
			env: func(e *Env) {
				e.PCIFunction = func(a PCIAddress) bool { return a == PCIAddress{Device: 3} }
			},
			want: []wantErr{{line: 5, vm: "a", index: 1, field: "passthrough", msg: "the host has no PCI function 0000:00:05.0"}},
			vms:  []string{"b"},
		},
		{
			name: "more than MaxVMs",
			src: func() string {
				var b strings.Builder
				for i := 0; i <= MaxVMs; i++ {
					b.WriteString(vmTOML(fmt.Sprintf("vm%d", i), `memory = "16M"`))
				}
				return b.String()
			}(),
			want: []wantErr{{line: 4*MaxVMs + 1, column: 3, vm: "vm64", index: MaxVMs + 1, msg: "more than 64 VMs: this one is left out"}},
			vms: func() []string {
				var names []string
				for i := 0; i < MaxVMs; i++ {
					names = append(names, fmt.Sprintf("vm%d", i))
				}
				return names
			}(),
		},
		{
			name: "errors beyond MaxErrors are counted",
			src:  strings.Repeat("[[vm]]\n", 40),
			want: func() []wantErr {
				var w []wantErr
				for i := 1; len(w) < MaxErrors; i++ {
					for _, f := range []string{"name", "memory", "kernel"} {
						w = append(w, wantErr{line: i, column: 3, index: i, field: f, msg: "missing"})
					}
				}
				return append(w[:MaxErrors], wantErr{msg: "20 more errors not shown"})
			}(),
		},
		{
			name: "file too large",
			src:  vmTOML("a") + "# " + strings.Repeat("x", MaxFileSize) + "\n",
			want: []wantErr{{msg: "more than the 262144 a configuration may have"}},
		},
		{
			name: "too many keys",
			src: func() string {
				var b strings.Builder
				b.WriteString(vmTOML("a"))
				for i := 0; i < MaxKeys; i++ {
					fmt.Fprintf(&b, "k%d = 1\n", i)
				}
				return b.String()
			}(),
			want: []wantErr{{msg: "the file has 8196 keys, more than the 8192"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testEnv()
			if tc.env != nil {
				tc.env(&env)
			}
			cfg, errs := Parse("vms.toml", []byte(tc.src), env)
			if cfg == nil {
				t.Fatal("Parse returned no Config")
			}
			checkErrors(t, errs, tc.want)
			if got := vmNames(cfg); !slices.Equal(got, tc.vms) {
				t.Errorf("valid VMs %q, want %q", got, tc.vms)
			}
		})
	}
}

// TestErrorFormat checks the line an operator reads.
func TestErrorFormat(t *testing.T) {
	src := vmTOML("web1", "memory = \"3G\"\nmemory = \"3G\"") // a key given twice: not TOML
	_, errs := Parse("vms.toml", []byte(src), testEnv())
	if len(errs) != 1 || errs[0].Error() != "vms.toml:4:1: key memory is already defined" {
		t.Errorf("errors %v, want [vms.toml:4:1: key memory is already defined]", errs)
	}

	src = "[[vm]]\nname = \"web1\"\nvcpus = 1\nmemory = \"3G\"\nkernel = \"vmlinuz\"\n"
	env := testEnv()
	env.HostMemory = 2 << 30
	_, errs = Parse("vms.toml", []byte(src), env)
	want := `vms.toml:4:1: vm "web1": field "memory": 3G is more than the 2G the host has left for guests`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("errors %v, want [%s]", errs, want)
	}

	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f", Msg: "m"}, "f: m"},
		{Error{File: "f", Line: 3, Msg: "m"}, "f:3: m"},
		{Error{File: "f", Line: 3, Column: 7, Index: 2, Field: "name", Msg: "m"}, `f:3:7: vm #2: field "name": m`},
		{Error{File: "f", Line: 3, Column: 7, VM: "a", Index: 2, Field: "x", Msg: "m"}, `f:3:7: vm "a": field "x": m`},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

// TestValidBesideInvalid: every kind of bad VM leaves the good ones, with
// their values, intact.
func TestValidBesideInvalid(t *testing.T) {
	src := vmTOML("good1", "vcpus = 2") +
		vmTOML("bad-type", `memory2 = 1`, `vcpus = "x"`) +
		vmTOML("good2", `cmdline = "quiet"`) +
		"[[vm]]\nname = \"bad-missing\"\n" +
		vmTOML("bad-value", "weight = 0", `console = "vga"`) +
		vmTOML("good3", "[[vm.modules]]", `file = "mod1.bin"`)
	cfg, errs := Parse("vms.toml", []byte(src), testEnv())
	if got, want := vmNames(cfg), []string{"good1", "good2", "good3"}; !slices.Equal(got, want) {
		t.Fatalf("valid VMs %q, want %q (errors %v)", got, want, errs)
	}
	byVM := map[string]int{}
	for _, err := range errs {
		byVM[err.(*Error).VM]++
	}
	// bad-type: its unknown key and its type error; bad-missing: memory
	// and kernel; bad-value: weight and console.
	if want := map[string]int{"bad-type": 2, "bad-missing": 2, "bad-value": 2}; !reflect.DeepEqual(byVM, want) {
		t.Errorf("errors per VM %v, want %v: %v", byVM, want, errs)
	}
	if cfg.VMs[0].VCPUs != 2 || cfg.VMs[1].Cmdline != "quiet" || len(cfg.VMs[2].Modules) != 1 || cfg.VMs[2].Modules[0].File != "mod1.bin" {
		t.Errorf("values lost: %+v", cfg.VMs)
	}
	if cfg.VMs[0].Line != 1 || cfg.VMs[1].Line != 12 {
		t.Errorf("VM lines %d, %d, want 1, 12", cfg.VMs[0].Line, cfg.VMs[1].Line)
	}
}

// TestDefaults: a VM with only the required keys gets every default.
func TestDefaults(t *testing.T) {
	cfg, errs := Parse("vms.toml", []byte(vmTOML("a")), testEnv())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := VM{Name: "a", VCPUs: 1, Memory: 256 << 20, Kernel: "vmlinuz", Console: ConsoleSerial,
		Weight: 256, Autostart: true, OnCrash: ActionStop, OnPoweroff: ActionStop, OnReboot: ActionRestart,
		MaxRestarts: 3, Devices: Devices, Line: 1}
	if len(cfg.VMs) != 1 || !reflect.DeepEqual(cfg.VMs[0], want) {
		t.Errorf("VMs %+v\nwant [%+v]", cfg.VMs, want)
	}
	if cfg.Host != (Host{}) || cfg.File != "vms.toml" {
		t.Errorf("host %+v file %q", cfg.Host, cfg.File)
	}
	// The default device list is a copy: a caller may change it.
	cfg.VMs[0].Devices[0] = "changed"
	if Devices[0] != "uart" {
		t.Error("VM.Devices aliases the package's Devices")
	}
}

// TestEveryKey sets every key to a value other than its default.
func TestEveryKey(t *testing.T) {
	src := `
[host]
reserve_memory = "512M"

[[vm]]
name = "all-keys"
vcpus = 4
memory = "1G"
kernel = "testkernel.elf"
initrd = "initramfs.cpio"
cmdline = 'console=ttyS0 "quoted"'
console = "log"
weight = 1000
autostart = false
on_crash = "restart"
max_restarts = 0
on_poweroff = "restart"
on_reboot = "stop"
devices = ["rtc", "uart"]
passthrough = ["0000:03:00.1", "ab:1f.7"]

[[vm.modules]]
file = "mod1.bin"
cmdline = "first"

[[vm.modules]]
file = "mod2.bin"
`
	cfg, errs := Parse("vms.toml", []byte(src), testEnv())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := VM{Name: "all-keys", VCPUs: 4, Memory: 1 << 30, Kernel: "testkernel.elf", Initrd: "initramfs.cpio",
		Cmdline: `console=ttyS0 "quoted"`, Modules: []Module{{"mod1.bin", "first"}, {"mod2.bin", ""}},
		Console: ConsoleLog, Weight: 1000, Autostart: false, OnCrash: ActionRestart, MaxRestarts: 0,
		OnPoweroff: ActionRestart, OnReboot: ActionStop, Devices: []string{"rtc", "uart"},
		Passthrough: []PCIAddress{{0, 3, 0, 1}, {0, 0xab, 0x1f, 7}}, Line: 5}
	if len(cfg.VMs) != 1 || !reflect.DeepEqual(cfg.VMs[0], want) {
		t.Errorf("VMs %+v\nwant [%+v]", cfg.VMs, want)
	}
	if cfg.Host.ReserveMemory != 512<<20 {
		t.Errorf("reserve %d", cfg.Host.ReserveMemory)
	}
	// Every key the decoder knows is set above, so none was forgotten.
	for _, f := range vmSchema {
		if !strings.Contains(src, "\n"+f.name+" = ") && f.name != "modules" {
			t.Errorf("key %q not covered", f.name)
		}
	}
}

// TestPositionsWithCRLFAndUnicode: columns count bytes as go-toml does,
// and CRLF line ends do not shift lines.
func TestPositionsWithCRLFAndUnicode(t *testing.T) {
	src := "# héllo wörld\r\n[[vm]]\r\nname = \"a\"\r\ncmdline = \"é\" ; vcpus = 1\r\n"
	_, errs := Parse("vms.toml", []byte(src), testEnv())
	if len(errs) != 1 || errs[0].(*Error).Line != 4 {
		t.Fatalf("errors %v, want one syntax error on line 4", errs)
	}
	src = "# héllo wörld\r\n[[vm]]\r\nname = \"é\"\r\nmemory = \"256M\"\r\nkernel = \"vmlinuz\"\r\n" +
		"[[vm]]\r\nname = \"ü\" # ünïcode\r\n  vcpus = \"é\"\r\n"
	_, errs = Parse("vms.toml", []byte(src), testEnv())
	checkErrors(t, errs, []wantErr{
		{line: 3, column: 1, vm: "é", index: 1, field: "name", msg: "has U+00E9"},
		{line: 8, column: 3, vm: "ü", index: 2, field: "vcpus", msg: `"é" is a string; want an integer`},
	})
}

// TestDefaultFile: the configuration an image carries by default parses
// against the files make guest embeds and describes today's guest.
func TestDefaultFile(t *testing.T) {
	env := testEnv()
	env.Files = func(name string) bool {
		return slices.Contains([]string{"vmlinuz", "initramfs.cpio", "testkernel.elf"}, name)
	}
	env.HostMemory = 1 << 30
	cfg, errs := Default(env)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if cfg.File != DefaultFileName || len(cfg.VMs) != 1 {
		t.Fatalf("config %+v", cfg)
	}
	v := cfg.VMs[0]
	if v.Name != "debian" || v.VCPUs != 1 || v.Memory != 512<<20 || v.Kernel != "vmlinuz" ||
		v.Initrd != "initramfs.cpio" || v.Cmdline != "console=ttyS0 quiet panic=-1" ||
		v.Console != ConsoleSerial || !v.Autostart {
		t.Errorf("default VM %+v", v)
	}
	// Without the Debian kernel in the image, the default has no VM to
	// start and says why.
	env.Files = func(string) bool { return false }
	cfg, errs = Default(env)
	if len(cfg.VMs) != 0 || len(errs) != 2 || !strings.Contains(errs[0].Error(), `default.toml:9:1: vm "debian": field "kernel": no file "vmlinuz"`) {
		t.Errorf("without images: VMs %v, errors %v", cfg.VMs, errs)
	}
}

// TestConsolidationExample: four Linux guests, two vCPUs each, equal
// weights, that fit a QEMU -m 4G machine (about 3.5 GiB outside the
// hypervisor's 512 MiB window; 3 GiB is asked here to leave a margin).
func TestConsolidationExample(t *testing.T) {
	data, err := os.ReadFile("examples/consolidation.toml")
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv()
	env.HostMemory = 3 << 30
	env.MaxVCPUs = 2
	cfg, errs := Parse("consolidation.toml", data, env)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if len(cfg.VMs) != 4 {
		t.Fatalf("%d VMs, want 4", len(cfg.VMs))
	}
	var total uint64
	for _, v := range cfg.VMs {
		if v.VCPUs != 2 || v.Weight != cfg.VMs[0].Weight || !v.Autostart || v.Kernel != "vmlinuz" || v.Initrd != "initramfs.cpio" {
			t.Errorf("VM %+v", v)
		}
		total += v.Memory
	}
	if total > 2<<30 {
		t.Errorf("the four VMs take %s", FormatSize(total))
	}
}

// TestBadExample is the example of docs/vm-config.md: the errors it shows
// are those Parse gives.
func TestBadExample(t *testing.T) {
	data, err := os.ReadFile("testdata/bad.toml")
	if err != nil {
		t.Fatal(err)
	}
	env := testEnv()
	env.HostMemory = 2 << 30
	cfg, errs := Parse("vms.toml", data, env)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	doc, err := os.ReadFile("../../docs/vm-config.md")
	if err != nil {
		t.Fatal(err)
	}
	block := codeBlock(t, string(doc), "```\nvms.toml:")
	if want := strings.Split(strings.TrimSpace(block), "\n"); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nthe document shows:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if names := vmNames(cfg); !slices.Equal(names, []string{"ok"}) {
		t.Errorf("valid VMs %q, want [ok]", names)
	}
}

// TestDocumentExample: the full example in docs/vm-config.md is valid
// and names every key the parser knows.
func TestDocumentExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/vm-config.md")
	if err != nil {
		t.Fatal(err)
	}
	example := codeBlock(t, string(doc), "```toml\n")
	cfg, errs := Parse("vm-config.md", []byte(example), testEnv())
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if len(cfg.VMs) != 2 || len(cfg.VMs[1].Modules) != 2 || cfg.Host.ReserveMemory != 256<<20 {
		t.Errorf("config %+v", cfg)
	}
	for _, f := range append(append([]field(nil), rootSchema...), vmSchema...) {
		if !strings.Contains(example, f.name) || !strings.Contains(string(doc), "| `"+f.name+"` |") && f.name != "host" && f.name != "vm" {
			t.Errorf("key %q is not in the document's example and key tables", f.name)
		}
	}
	for _, f := range find(vmSchema, "modules").sub {
		if !strings.Contains(example, f.name+" = ") {
			t.Errorf("module key %q is not in the example", f.name)
		}
	}
	for _, d := range Devices {
		if !strings.Contains(string(doc), "`"+d+"`") {
			t.Errorf("device %q is not documented", d)
		}
	}
}

// codeBlock returns the first fenced block that starts with start.
func codeBlock(t *testing.T, doc, start string) string {
	t.Helper()
	i := strings.Index(doc, start)
	if i < 0 {
		t.Fatalf("no block starting %q", start)
	}
	body := doc[i+strings.Index(doc[i:], "\n")+1:]
	end := strings.Index(body, "```")
	if end < 0 {
		t.Fatalf("block %q does not end", start)
	}
	return body[:end]
}
