package svm

import (
	"testing"
	"unsafe"
)

func TestVMCBLayout(t *testing.T) {
	var v VMCB
	base := uintptr(unsafe.Pointer(&v))
	off := func(p unsafe.Pointer) uintptr { return uintptr(p) - base }
	c, s := &v.Control, &v.Save
	// Offsets from APM Vol. 2, Tables B-1 and B-2 (state save area at 0x400).
	cases := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"InterceptCR", off(unsafe.Pointer(&c.InterceptCR)), 0x000},
		{"InterceptMisc1", off(unsafe.Pointer(&c.InterceptMisc1)), 0x00C},
		{"InterceptMisc2", off(unsafe.Pointer(&c.InterceptMisc2)), 0x010},
		{"PauseFilterThresh", off(unsafe.Pointer(&c.PauseFilterThresh)), 0x03C},
		{"IOPMBase", off(unsafe.Pointer(&c.IOPMBase)), 0x040},
		{"MSRPMBase", off(unsafe.Pointer(&c.MSRPMBase)), 0x048},
		{"TSCOffset", off(unsafe.Pointer(&c.TSCOffset)), 0x050},
		{"GuestASID", off(unsafe.Pointer(&c.GuestASID)), 0x058},
		{"TLBControl", off(unsafe.Pointer(&c.TLBControl)), 0x05C},
		{"VIntr", off(unsafe.Pointer(&c.VIntr)), 0x060},
		{"InterruptShadow", off(unsafe.Pointer(&c.InterruptShadow)), 0x068},
		{"ExitCode", off(unsafe.Pointer(&c.ExitCode)), 0x070},
		{"ExitInfo1", off(unsafe.Pointer(&c.ExitInfo1)), 0x078},
		{"ExitInfo2", off(unsafe.Pointer(&c.ExitInfo2)), 0x080},
		{"ExitIntInfo", off(unsafe.Pointer(&c.ExitIntInfo)), 0x088},
		{"NestedControl", off(unsafe.Pointer(&c.NestedControl)), 0x090},
		{"EventInjection", off(unsafe.Pointer(&c.EventInjection)), 0x0A8},
		{"NestedCR3", off(unsafe.Pointer(&c.NestedCR3)), 0x0B0},
		{"CleanBits", off(unsafe.Pointer(&c.CleanBits)), 0x0C0},
		{"NextRIP", off(unsafe.Pointer(&c.NextRIP)), 0x0C8},
		{"InstructionLength", off(unsafe.Pointer(&c.InstructionLength)), 0x0D0},
		{"ES", off(unsafe.Pointer(&s.ES)), 0x400},
		{"CS", off(unsafe.Pointer(&s.CS)), 0x410},
		{"GDTR", off(unsafe.Pointer(&s.GDTR)), 0x460},
		{"TR", off(unsafe.Pointer(&s.TR)), 0x490},
		{"CPL", off(unsafe.Pointer(&s.CPL)), 0x4CB},
		{"EFER", off(unsafe.Pointer(&s.EFER)), 0x4D0},
		{"CR4", off(unsafe.Pointer(&s.CR4)), 0x548},
		{"CR3", off(unsafe.Pointer(&s.CR3)), 0x550},
		{"CR0", off(unsafe.Pointer(&s.CR0)), 0x558},
		{"DR7", off(unsafe.Pointer(&s.DR7)), 0x560},
		{"RFLAGS", off(unsafe.Pointer(&s.RFLAGS)), 0x570},
		{"RIP", off(unsafe.Pointer(&s.RIP)), 0x578},
		{"RSP", off(unsafe.Pointer(&s.RSP)), 0x5D8},
		{"RAX", off(unsafe.Pointer(&s.RAX)), 0x5F8},
		{"STAR", off(unsafe.Pointer(&s.STAR)), 0x600},
		{"KernelGSBase", off(unsafe.Pointer(&s.KernelGSBase)), 0x620},
		{"CR2", off(unsafe.Pointer(&s.CR2)), 0x640},
		{"GPAT", off(unsafe.Pointer(&s.GPAT)), 0x668},
		{"LastExceptionTo", off(unsafe.Pointer(&s.LastExceptionTo)), 0x690},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s at offset %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if sz := unsafe.Sizeof(v); sz != 4096 {
		t.Errorf("VMCB is %d bytes, want 4096", sz)
	}
	if sz := unsafe.Sizeof(Segment{}); sz != 16 {
		t.Errorf("Segment is %d bytes, want 16", sz)
	}
}

func TestEventInjection(t *testing.T) {
	// #GP(0x10) as an exception with error code: vector 13, type 3, EV, V.
	if got, want := EventInjection(13, EventTypeException, 0x10, true), uint64(0x10)<<32|1<<31|1<<11|3<<8|13; got != want {
		t.Errorf("#GP injection = %#x, want %#x", got, want)
	}
	if got, want := EventInjection(0x30, EventTypeInterrupt, 0, false), uint64(1<<31|0x30); got != want {
		t.Errorf("interrupt 0x30 = %#x, want %#x", got, want)
	}
}

func TestASIDs(t *testing.T) {
	a := NewASIDs(2)
	x, err1 := a.Get()
	y, err2 := a.Get()
	if err1 != nil || err2 != nil || x != 1 || y != 2 {
		t.Fatalf("Get, Get = %d %v, %d %v", x, err1, y, err2)
	}
	if _, err := a.Get(); err == nil {
		t.Fatal("third ASID handed out from a pool of 2")
	}
	a.Put(1)
	if z, err := a.Get(); err != nil || z != 1 {
		t.Fatalf("after Put(1): %d %v", z, err)
	}
}
