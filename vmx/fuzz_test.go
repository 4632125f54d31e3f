package vmx

import (
	"errors"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// mayExist says, from the SDM's Appendix A and independently of Probe,
// whether a VMX MSR exists on a processor whose CPUID.1:ECX and capability
// MSRs hold these values.
func mayExist(msr uint32, ecx uint32, vals map[uint32]uint64) bool {
	if ecx&(1<<5) == 0 {
		return false
	}
	bit := func(r uint32, b uint) bool { return vals[r]&(1<<b) != 0 }
	switch {
	case msr == 0x3a || msr >= 0x480 && msr <= 0x48a:
		return true
	case msr >= 0x48d && msr <= 0x490:
		return bit(0x480, 55)
	case msr == 0x48b:
		return bit(0x482, 63)
	case msr == 0x48c:
		return bit(0x482, 63) && (bit(0x48b, 33) || bit(0x48b, 37))
	case msr == 0x491:
		return bit(0x482, 63) && bit(0x48b, 45)
	case msr == 0x492:
		return bit(0x482, 49)
	case msr == 0x493:
		return bit(0x483, 63)
	}
	return false
}

// FuzzProbe feeds Probe arbitrary capability values. It must not panic,
// must read only MSRs that exist for those values, must refuse VMX exactly
// as the rules say, and must produce a well-formed summary when it succeeds.
func FuzzProbe(f *testing.F) {
	for _, fx := range allFixtures {
		_, _, ecx, _ := fx.cpuid.CPUID(1, 0)
		m := fx.msrs
		f.Add(ecx, m[0x3a], m[0x480], m[0x482], m[0x483], m[0x48b], m[0x48d], m[0x48e], m[0x486], m[0x489])
	}
	f.Add(uint32(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0))
	f.Add(uint32(1<<5), uint64(1), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0))
	f.Add(uint32(1<<5), uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0))

	f.Fuzz(func(t *testing.T, ecx uint32, fc, basic, proc, exit, proc2, truePin, trueProc, cr0f0, cr4f1 uint64) {
		vals := map[uint32]uint64{
			0x3a: fc, 0x480: basic, 0x481: 0x7f_00000016, 0x482: proc, 0x483: exit,
			0x484: 0xffff_000011ff, 0x485: basic ^ proc, 0x486: cr0f0, 0x487: 0xffffffff,
			0x488: 0x2000, 0x489: cr4f1, 0x48a: proc2 >> 7, 0x48b: proc2, 0x48c: proc ^ proc2,
			0x48d: truePin, 0x48e: trueProc, 0x48f: exit &^ 4, 0x490: 0xffff_000011fb,
			0x491: trueProc >> 3, 0x492: truePin ^ trueProc, 0x493: exit >> 1,
		}
		cpu := hwfake.CPUID{
			{Leaf: 0}: leaf(0x16, intelEBX, intelECX, intelEDX),
			{Leaf: 1}: leaf(0x50654, 0, ecx, 0),
		}
		rec := &recordingMSRs{MSRs: hwfake.MSRs(vals)}
		c, err := Probe(cpu, rec)
		for _, r := range rec.reads {
			if !mayExist(r, ecx, vals) {
				t.Fatalf("Probe read %v, which does not exist for these values", MSR(r))
			}
		}
		var ue *UnavailableError
		switch {
		case ecx&(1<<5) == 0:
			if !errors.As(err, &ue) || ue.Reason != NotReported || len(rec.reads) != 0 {
				t.Fatalf("VMX not in CPUID: err = %v after %d reads", err, len(rec.reads))
			}
		case fc&1 != 0 && fc&4 == 0:
			if !errors.As(err, &ue) || ue.Reason != DisabledByFirmware || len(rec.reads) != 1 {
				t.Fatalf("locked off: err = %v after %d reads", err, len(rec.reads))
			}
		case err != nil:
			if !errors.As(err, &ue) || ue.Reason != Inconsistent {
				t.Fatalf("unexpected error %v", err)
			}
		default:
			for _, w := range []ControlCaps{c.Pin, c.Proc, c.Exit, c.Entry, c.Proc2} {
				if _, err := w.Adjust(0, ^uint32(0)); err != nil {
					t.Fatalf("Probe accepted capabilities that Adjust rejects: %v", err)
				}
			}
			for _, fld := range strings.Fields(c.Summary())[1:] {
				k, v, ok := strings.Cut(fld, "=")
				if !ok || k == "" || v == "" || strings.ContainsAny(v, " =") {
					t.Fatalf("malformed summary field %q", fld)
				}
			}
		}
	})
}
