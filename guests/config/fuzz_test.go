package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, every error is an *Error that names the
// file and a line of it, and every VM it returns passes the checks.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"default.toml", "examples/consolidation.toml", "testdata/bad.toml", "../../docs/vm-config.md"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		vmTOML("a", "vcpus = 2", `devices = ["uart"]`, `passthrough = ["00:03.0"]`) + vmTOML("a"),
		vmTOML("a", `modules = [{file = "mod1.bin", cmdline = "x"}, {cmd = 1}]`, "[vm.x]", "y = 1"),
		"[host]\nreserve_memory = \"1G\"\n[[vm]]\n[[vm.modules]]\nfile = 'mod1.bin'\n[vm.extra.deep]\nk = [[1], {a = 1}]\n",
		"vm = [{name = 'a'}]\n",
		"[vm]\nname = 'a'\n",
		"[[vm]]\r\nname = \"é\"\r\nvcpus = \"x\"\r\n",
		"a.b.c = 1\n[a.d]\n[[x.y]]\n[[x.y]]\nz = 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env := testEnv()
		cfg, errs := Parse("fuzz.toml", data, env)
		if cfg == nil || cfg.File != "fuzz.toml" {
			t.Fatalf("config %+v", cfg)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, err := range errs {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T %v is not an *Error", err, err)
			}
			if e.File != "fuzz.toml" || e.Line < 0 || e.Line > lines || e.Column < 0 || e.Msg == "" {
				t.Fatalf("error %+v (file has %d lines)", e, lines)
			}
		}
		names := map[string]bool{}
		var autostart uint64
		for _, v := range cfg.VMs {
			if checkName(v.Name) != nil || names[v.Name] {
				t.Fatalf("VM name %q invalid or given twice", v.Name)
			}
			names[v.Name] = true
			if v.Memory < MinMemory || v.Memory%MemoryGranule != 0 || v.Memory > env.HostMemory ||
				v.VCPUs < 1 || v.VCPUs > env.MaxVCPUs || v.Weight < MinWeight || v.Weight > MaxWeight ||
				!env.Files(v.Kernel) || (v.Initrd != "" && !env.Files(v.Initrd)) || v.Line < 1 || v.Line > lines {
				t.Fatalf("invalid VM %+v", v)
			}
			for _, m := range v.Modules {
				if !env.Files(m.File) {
					t.Fatalf("VM %q module %q", v.Name, m.File)
				}
			}
			if v.Autostart {
				autostart += v.Memory
			}
		}
		if autostart+cfg.Host.ReserveMemory > env.HostMemory {
			t.Fatalf("autostart VMs take %d of %d", autostart, env.HostMemory)
		}
		// The same input gives the same answer.
		cfg2, errs2 := Parse("fuzz.toml", data, env)
		if !reflect.DeepEqual(cfg, cfg2) || !reflect.DeepEqual(errs, errs2) {
			t.Fatal("Parse is not deterministic")
		}
	})
}
