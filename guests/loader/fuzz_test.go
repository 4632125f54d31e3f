package loader

import (
	"os"
	"path/filepath"
	"testing"

	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// checkResult holds for every successful load: the entry is inside what was
// loaded, everything placed is in usable RAM, the boot information is in
// the loader area and the state names it.
func checkResult(t *testing.T, g Guest, res *Result) {
	t.Helper()
	usable := g.Layout.Usable()
	inUsable := func(r platform.Region) bool {
		for _, u := range usable {
			if u.Contains(r) {
				return true
			}
		}
		return r.Empty()
	}
	for _, r := range append(append([]platform.Region{res.Kernel, res.Initrd}, res.Segments...), res.Modules...) {
		if !inUsable(r) {
			t.Fatalf("%v is not in usable RAM %v", r, usable)
		}
	}
	if !res.Initrd.Empty() && res.Initrd.Overlaps(res.Kernel) {
		t.Fatalf("initrd %v overlaps the kernel %v", res.Initrd, res.Kernel)
	}
	if !g.Layout.LoaderArea.Contains(platform.Region{Start: res.Info, End: res.Info + 1}) {
		t.Fatalf("boot information at %#x outside the loader area", res.Info)
	}
	st := res.State
	switch res.Format {
	case FormatBzImage:
		if st.Mode != ModeLong || st.RIP != res.Kernel.Start+0x200 || st.GPR[vcpu.RSI] != res.Info {
			t.Fatalf("bzImage state: %v", st)
		}
	default:
		if st.Mode != ModeProtected || st.GPR[vcpu.RBX] != res.Info || st.RIP >= 1<<32 {
			t.Fatalf("%v state: %v", res.Format, st)
		}
		in := false
		for _, s := range res.Segments {
			in = in || st.RIP >= s.Start && st.RIP < s.End
		}
		if !in {
			t.Fatalf("entry %#x outside the segments %v", st.RIP, res.Segments)
		}
	}
}

func fuzzGuest(f *testing.F) Guest {
	l, err := platform.NewLayout(64*platform.MiB, 1)
	if err != nil {
		f.Fatal(err)
	}
	mem := newSparseRAM(l)
	tabs, err := platform.Build(mem, l)
	if err != nil {
		f.Fatal(err)
	}
	return Guest{Memory: mem, Layout: l, RSDP: tabs.RSDP}
}

func FuzzBzImage(f *testing.F) {
	for _, s := range []bzSpec{
		{relocatable: 1, setupSects: 1, kernelLen: 256, initSize: 1 << 20},
		{relocatable: 0, setupSects: 0, kernelLen: 512, initSize: 2 << 20, pref: 0x200000},
		{relocatable: 1, setupSects: 3, kernelLen: 64, initSize: 60 << 20},
		{relocatable: 1, setupSects: 2, kernelLen: 128, initSize: 4096, initrdMax: 0x2000000},
	} {
		f.Add(makeBzImage(s), []byte("initrd"), "console=ttyS0")
	}
	if k, err := os.ReadFile(filepath.Join("..", "..", "build", "guest", "vmlinuz")); err == nil && len(k) > 0x4000 {
		f.Add(k[:0x4000], []byte{}, "") // the real header, truncated
	}
	g := fuzzGuest(f)
	f.Fuzz(func(t *testing.T, image, initrd []byte, cmdline string) {
		opts := Options{Cmdline: cmdline}
		if len(initrd) > 0 {
			opts.Initrd = initrd
		}
		res, err := LoadLinux(g, image, opts)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not a *loader.Error: %v", err, err)
			}
			return
		}
		checkResult(t, g, res)
	})
}

func FuzzMultibootELF(f *testing.F) {
	mb1, _, _ := mbKernel(32, mb1Header(0x3))
	mb1x, _, _ := mbKernel(64, mb1Header(0x2))
	mb2, _, _ := mbKernel(64, mb2Header(mb2Tag(1, 0, 6, 15), mb2Tag(6, 0), mb2Tag(5, 1, 1, 2, 3)))
	aout := pattern(0x400, 3)
	copy(aout[0x40:], mb1Header(1<<16, 0x300040, 0x300000, 0x300400, 0x301000, 0x300010))
	aout2 := pattern(0x400, 4)
	copy(aout2[0x10:], mb2Header(mb2Tag(2, 0, 0x400010, 0x400000, 0, 0x402000), mb2Tag(3, 0, 0x400100)))
	pvh := makeELF(64, 0, []elfSeg{{paddr: 0x100000, data: pattern(0x200, 1)}, {typ: ptNote, data: elfNoteBytes("Xen", 18, []byte{0x10, 0, 0x10, 0, 0, 0, 0, 0})}})
	pvh32 := makeELF(32, 0, []elfSeg{{paddr: 0x100000, data: pattern(0x200, 1), memsz: 0x3000}, {typ: ptNote, data: append(elfNoteBytes("GNU", 1, []byte{1, 2, 3}), elfNoteBytes("Xen", 18, []byte{0x10, 0, 0x10, 0})...)}})
	for _, seed := range [][]byte{mb1, mb1x, mb2, aout, aout2, pvh, pvh32} {
		f.Add(seed, "cmd", []byte("module"))
	}
	g := fuzzGuest(f)
	loaders := []func(Guest, []byte, Options) (*Result, error){Load, LoadMultiboot, LoadMultiboot2, LoadPVH}
	f.Fuzz(func(t *testing.T, image []byte, cmdline string, module []byte) {
		opts := Options{Cmdline: cmdline}
		if len(module) > 0 {
			opts.Modules = []Module{{Name: "m", Data: module, Cmdline: cmdline}}
		}
		for _, load := range loaders {
			res, err := load(g, image, opts)
			if err != nil {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error %T is not a *loader.Error: %v", err, err)
				}
				continue
			}
			checkResult(t, g, res)
		}
	})
}
