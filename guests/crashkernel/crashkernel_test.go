package crashkernel

import (
	"bytes"
	"debug/elf"
	"testing"

	"tamavisor/guests"
	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
)

func TestKernelsLoadAsMultiboot(t *testing.T) {
	for _, kind := range Kinds {
		image := Build(kind)
		f, err := elf.NewFile(bytes.NewReader(image))
		if err != nil {
			t.Fatalf("%s: not an ELF: %v", kind, err)
		}
		if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 || f.Entry != loadAddress+codeOffset {
			t.Errorf("%s: class %v machine %v entry %#x", kind, f.Class, f.Machine, f.Entry)
		}
		layout, _ := platform.NewLayout(16<<20, 1)
		ram := guests.NewRAM(make([]byte, 16<<20), 0)
		res, err := loader.Load(loader.Guest{Memory: ram, Layout: layout}, image, loader.Options{KernelName: kind})
		if err != nil {
			t.Fatalf("%s: loader refused it: %v", kind, err)
		}
		if res.Format != loader.FormatMultiboot || res.State.RIP != loadAddress+codeOffset {
			t.Errorf("%s: loaded as %v entering at %#x", kind, res.Format, res.State.RIP)
		}
	}
	if Build("nonsense") != nil {
		t.Error("unknown kind built")
	}
}
