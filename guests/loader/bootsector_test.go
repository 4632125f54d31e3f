package loader

import (
	"bytes"
	"testing"

	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// bootSector is a 512-byte sector with the boot signature around code.
func bootSector(code []byte) []byte {
	b := make([]byte, BootSectorSize)
	copy(b, code)
	b[510], b[511] = 0x55, 0xaa
	return b
}

func TestLoadBootSector(t *testing.T) {
	g, mem := newGuest(t, 16*platform.MiB)
	image := bootSector([]byte{0xfa, 0xf4, 0xeb, 0xfd}) // CLI; HLT; JMP $-1
	if f := Detect(image); f != FormatBootSector || f.String() != "boot sector" {
		t.Fatalf("Detect = %v", f)
	}
	res, err := Load(g, image, Options{KernelName: "sector"})
	if err != nil {
		t.Fatal(err)
	}
	if got := mem.read(t, BootSectorAddress, BootSectorSize); !bytes.Equal(got, image) {
		t.Error("the sector is not at 0x7c00")
	}
	st := res.State
	if res.Format != FormatBootSector || st.Mode != ModeReal || st.RIP != 0x7c00 || res.Kernel != (platform.Region{Start: 0x7c00, End: 0x7e00}) {
		t.Errorf("format %v mode %v RIP %#x kernel %v", res.Format, st.Mode, st.RIP, res.Kernel)
	}
	if st.Control.CR0 != cr0ET || st.Control.EFER != 0 || st.Control.CR4 != 0 || st.RFLAGS != 2 {
		t.Errorf("control %+v RFLAGS %#x: want CR0.ET alone (PE and PG clear), interrupts off", st.Control, st.RFLAGS)
	}
	for r, seg := range st.Segments {
		if seg.Selector != 0 || seg.Base != 0 || seg.Limit != 0xffff || seg.Attributes&0x80 == 0 || seg.Attributes&0x600 != 0 {
			t.Errorf("segment %d = %+v: want selector 0, base 0, a present 16-bit 64 KiB segment", r, seg)
		}
	}
	if st.Segments[vcpu.CS].Attributes&0x8 == 0 || st.Segments[vcpu.DS].Attributes&0x8 != 0 {
		t.Errorf("CS %#x must be code, DS %#x data", st.Segments[vcpu.CS].Attributes, st.Segments[vcpu.DS].Attributes)
	}
	if st.GPR[vcpu.RSP] != 0x7c00 || st.GPR[vcpu.RDX] != 0x80 || st.IDTR.Base != 0 || st.IDTR.Limit != 0x3ff {
		t.Errorf("SP %#x DL %#x IDTR %+v", st.GPR[vcpu.RSP], st.GPR[vcpu.RDX], st.IDTR)
	}
}

func TestRealModeStateSegmentBase(t *testing.T) {
	st := RealModeState(0x1234, 0x10)
	if cs := st.Segments[vcpu.CS]; cs.Selector != 0x1234 || cs.Base != 0x12340 || st.RIP != 0x10 {
		t.Errorf("CS %+v RIP %#x: want base = selector<<4", cs, st.RIP)
	}
	if st.Mode != ModeReal || st.Control.CR0&(cr0PE|cr0PG) != 0 {
		t.Errorf("mode %v CR0 %#x", st.Mode, st.Control.CR0)
	}
}

func TestBootSectorRefusals(t *testing.T) {
	g, _ := newGuest(t, 16*platform.MiB)
	good := bootSector(nil)
	_, err := LoadBootSector(g, good[:511], Options{})
	wantErr(t, err, ErrMalformed, "boot sector", "511 bytes")
	bad := bootSector(nil)
	bad[511] = 0
	_, err = LoadBootSector(g, bad, Options{})
	wantErr(t, err, ErrMalformed, "55h AAh")
	if Detect(bad) != FormatUnknown || Detect(append(bootSector(nil), 0)) != FormatUnknown {
		t.Error("a sector without the signature, or longer than one sector, detected as a boot sector")
	}
	_, err = LoadBootSector(g, good, Options{KernelName: "s", Cmdline: "x"})
	wantErr(t, err, ErrBadOption, `boot sector "s"`, "command line")
	_, err = LoadBootSector(g, good, Options{Initrd: []byte{1}})
	wantErr(t, err, ErrBadOption, "initrd")
}

// FuzzBootSector: any image either loads as a sector, in real mode at
// 0x7c00, or is refused with a loader error.
func FuzzBootSector(f *testing.F) {
	f.Add(bootSector([]byte{0xfa, 0xf4}), "")
	f.Add(bootSector(nil)[:300], "")
	f.Add(bootSector(nil), "cmd")
	g := fuzzGuest(f)
	f.Fuzz(func(t *testing.T, image []byte, cmdline string) {
		res, err := LoadBootSector(g, image, Options{Cmdline: cmdline})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v is not a *loader.Error", err, err)
			}
			return
		}
		if !isBootSector(image) || cmdline != "" || res.State.Mode != ModeReal || res.State.RIP != BootSectorAddress {
			t.Fatalf("loaded %d bytes (cmdline %q) as %v at %#x", len(image), cmdline, res.State.Mode, res.State.RIP)
		}
	})
}
