package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLargeFiles: files at the size and key limits, wrong throughout,
// are answered quickly (go-toml's duplicate-key check is quadratic in a
// table's keys, and each unknown key it reported itself would cost a pass
// over the file) and with at most MaxErrors errors and a count.
func TestLargeFiles(t *testing.T) {
	build := func(f func(b *strings.Builder)) string {
		var b strings.Builder
		f(&b)
		return b.String()
	}
	for _, tc := range []struct {
		name string
		src  string
		vms  int
	}{
		{"many VMs", build(func(b *strings.Builder) {
			for i := 0; i < 1500; i++ {
				b.WriteString(vmTOML(fmt.Sprintf("a%d", i), `memory = "16M"`, `cmdline = "`+strings.Repeat("x", 100)+`"`))
			}
		}), MaxVMs},
		{"many unknown keys", build(func(b *strings.Builder) {
			b.WriteString(vmTOML("a"))
			for i := 0; i < MaxKeys-10; i++ {
				fmt.Fprintf(b, "k%d = 1\n", i)
			}
		}), 0},
		{"many unknown keys in inline modules", build(func(b *strings.Builder) {
			b.WriteString(vmTOML("a"))
			b.WriteString("modules = [")
			for i := 0; i < MaxKeys/2-10; i++ {
				b.WriteString("{file = 'x', y = 1},")
			}
			b.WriteString("]\n")
		}), 0},
		{"many empty VMs", strings.Repeat("[[vm]]\n", MaxKeys), 0},
		{"a long list", build(func(b *strings.Builder) {
			b.WriteString(vmTOML("a"))
			b.WriteString("devices = [")
			for b.Len() < MaxFileSize-100 {
				b.WriteString("'uart',")
			}
			b.WriteString("]\n")
		}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			cfg, errs := Parse("vms.toml", []byte(tc.src), testEnv())
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Parse took %v", d)
			}
			if len(errs) != MaxErrors+1 || !strings.HasSuffix(errs[MaxErrors].Error(), "more errors not shown") {
				t.Errorf("%d errors, the last %v", len(errs), errs[len(errs)-1])
			}
			if len(cfg.VMs) != tc.vms {
				t.Errorf("%d VMs, want %d", len(cfg.VMs), tc.vms)
			}
		})
	}
}
