package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"tamavisor/guests/images"
	"tamavisor/qemu-test/vmlog"
)

func TestMedian(t *testing.T) {
	s := time.Second
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 100 * s}, 3 * s},
	}
	for _, tt := range tests {
		in := append([]time.Duration(nil), tt.in...)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Errorf("median reordered its input: %v", tt.in)
			}
		}
	}
}

func TestSelectMeasurements(t *testing.T) {
	all, err := selectMeasurements("")
	if err != nil || len(all) != len(measurements) {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	one, err := selectMeasurements("boot-tcg")
	if err != nil || len(one) != 1 || one[0].name != "boot-tcg" {
		t.Fatalf("boot-tcg: %+v, %v", one, err)
	}
	if _, err := selectMeasurements("boot-tcg,nonsense"); err == nil {
		t.Error("an unknown measurement was accepted")
	}
}

// TestSameKernelCommandLine holds the Linux comparison to like with like:
// the command line tamavisor gives its linux guest (boot/guest.go) is the
// one images.BootDirect boots the kernel with.
func TestSameKernelCommandLine(t *testing.T) {
	path := filepath.Join("..", "..", "boot", "guest.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cmdlines []string
	ast.Inspect(f, func(n ast.Node) bool {
		kv, ok := n.(*ast.KeyValueExpr)
		if !ok {
			return true
		}
		if key, ok := kv.Key.(*ast.BasicLit); !ok || key.Value != `"linux"` {
			return true
		}
		ast.Inspect(kv.Value, func(n ast.Node) bool {
			if field, ok := n.(*ast.KeyValueExpr); ok {
				if id, ok := field.Key.(*ast.Ident); ok && id.Name == "cmdline" {
					if lit, ok := field.Value.(*ast.BasicLit); ok {
						if s, err := strconv.Unquote(lit.Value); err == nil {
							cmdlines = append(cmdlines, s)
						}
					}
				}
			}
			return true
		})
		return false
	})
	if len(cmdlines) != 1 {
		t.Fatalf("%s: found %d string cmdline fields for the \"linux\" guest, want 1", path, len(cmdlines))
	}
	if cmdlines[0] != images.DefaultAppend {
		t.Errorf("tamavisor boots its linux guest with %q, BootDirect with %q: the boot ratio would compare unlike runs",
			cmdlines[0], images.DefaultAppend)
	}
}

func TestFigureName(t *testing.T) {
	for in, want := range map[string]string{
		"external-interrupt": "external_interrupt",
		"msr-read":           "msr_read",
		"npf":                "npf",
		"CR0 write":          "cr0_write",
	} {
		if got := figureName(in); got != want {
			t.Errorf("figureName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMedianSample(t *testing.T) {
	s := time.Second
	mk := func(d time.Duration, exits uint64) linuxSample {
		return linuxSample{toPrompt: d, run: &vmlog.Run{Exits: exits}}
	}
	samples := []linuxSample{mk(9*s, 900), mk(3*s, 300), mk(5*s, 500)}
	if got := medianSample(samples); got.run.Exits != 500 {
		t.Errorf("median of 9 s, 3 s, 5 s: the %v sample", got.toPrompt)
	}
	if got := medianSample(samples[:2]); got.run.Exits != 300 {
		t.Errorf("median of two: the %v sample, want the lower (one run's figures)", got.toPrompt)
	}
	if samples[0].run.Exits != 900 {
		t.Error("medianSample reordered its input")
	}
}
