package vmx

import (
	"strings"
	"testing"
	"unsafe"

	"tamavisor/guests"
	"tamavisor/guests/crashkernel"
	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

const msrListPA = 0x5000

// hostVCPU completes Guest into a vcpu.VCPU without hardware, as the
// engine's VCPU does with it.
type hostVCPU struct{ *Guest }

func (hostVCPU) Run(*vcpu.Exit) error { return nil }
func (h hostVCPU) Dump() string {
	var b strings.Builder
	h.DumpTo(&b)
	return b.String()
}

var _ vcpu.VCPU = hostVCPU{}

func newTestGuest(t *testing.T) (*Guest, *MSRList) {
	t.Helper()
	ctl, err := NewControls(probeFixture(t, bochsSkylakeX), ControlOptions{RDTSCP: true})
	if err != nil {
		t.Fatal(err)
	}
	msrs := new(MSRList)
	g := NewGuest(ctl, msrs, msrListPA)
	g.SetEPTP(0x10001e)
	g.SetVPID(1)
	return g, msrs
}

// entered runs PrepareEntry and returns the fields it would write, by
// encoding.
func entered(g *Guest) map[Field]uint64 {
	var ops [MaxWrites]FieldOp
	n := g.PrepareEntry(&ops)
	m := map[Field]uint64{}
	for _, op := range ops[:n] {
		m[Field(op.Field)] = op.Value
	}
	return m
}

func expectNoProblems(t *testing.T, g *Guest) {
	t.Helper()
	if p := g.Problems(); len(p) > 0 {
		t.Errorf("the VM-entry model refuses the state:\n%s", strings.Join(p, "\n"))
	}
}

func TestNewGuestPassesEntryChecks(t *testing.T) {
	g, msrs := newTestGuest(t)
	w := entered(g)
	if len(w) != int(numSlots) {
		t.Errorf("the first entry writes %d fields, want every one of the %d the engine keeps", len(w), numSlots)
	}
	expectNoProblems(t, g)
	for f, want := range map[Field]uint64{
		FieldVMCSLinkPointer: ^uint64(0), FieldGuestCR0: cr0PE | cr0ET | cr0NE, FieldCR0ReadShadow: cr0PE | cr0ET,
		FieldGuestCR4: CR4VMXE, FieldCR4ReadShadow: 0, FieldGuestRFLAGS: 2, FieldGuestDR7: 0x400,
		FieldGuestCSAccessRights: 0xc09b, FieldGuestTRAccessRights: 0x8b, FieldGuestLDTRAccessRights: 0x82,
		FieldEntryMSRLoadAddress: msrListPA, FieldExitMSRStoreAddress: msrListPA,
		FieldEntryMSRLoadCount: uint64(NumListMSRs), FieldExitMSRStoreCount: uint64(NumListMSRs),
		FieldHostCSSelector: 0x08, FieldHostSSSelector: 0x10, FieldHostTRSelector: 0x18, FieldHostFSSelector: 0,
		FieldEPTPointer: 0x10001e, FieldVPID: 1, FieldExceptionBitmap: 1 << 18, FieldEntryInterruptionInfo: 0,
		FieldCR0GuestHostMask: 0xffffffff00000000 | cr0NE, FieldCR3TargetCount: 0, FieldExitMSRLoadCount: 0,
		// Bochs's IA32_VMX_CR4_FIXED1 is 0x3727ff; VMXE, SMX, PCIDE and
		// OSXSAVE are the host's too.
		FieldCR4GuestHostMask: ^uint64(0x3727ff) | CR4VMXE | cr4SMX | cr4PCIDE | cr4OSXSAVE,
	} {
		if got, ok := w[f]; !ok || got != want {
			t.Errorf("%v = %#x (written %v), want %#x", f, got, ok, want)
		}
	}
	if msrs[0].Index != msrKernelGSBase || msrs[2].Index != msrLSTAR || msrs[4].Index != msrSFMASK {
		t.Errorf("MSR list %+v", msrs)
	}
	g.Commit()
	if w := entered(g); len(w) != 0 {
		t.Errorf("nothing changed, yet the next entry writes %v", w)
	}
	g.SetRIP(0x100000)
	if w := entered(g); len(w) != 1 || w[FieldGuestRIP] != 0x100000 {
		t.Errorf("after SetRIP the entry writes %v", w)
	}
}

// loadCrashKernel loads a Multiboot kernel the way the hypervisor does and
// returns the loader's entry state.
func loadCrashKernel(t *testing.T) *loader.BootState {
	t.Helper()
	const mem = 16 << 20
	l, err := platform.NewLayout(mem, 1)
	if err != nil {
		t.Fatal(err)
	}
	ram := guests.NewRAM(make([]byte, mem), 0)
	res, err := loader.Load(loader.Guest{Memory: ram, Layout: l}, crashkernel.Build(crashkernel.TripleFault), loader.Options{KernelName: "triplefault"})
	if err != nil {
		t.Fatal(err)
	}
	return &res.State
}

// TestBootStatePassesEntryChecks: the loaders' 32-bit paging-off entry
// state and the Linux 64-bit boot protocol's long-mode state, put into a
// vCPU through the vendor-neutral contract, satisfy the VM-entry checks.
func TestBootStatePassesEntryChecks(t *testing.T) {
	t.Run("multiboot", func(t *testing.T) {
		g, _ := newTestGuest(t)
		bs := loadCrashKernel(t)
		if bs.Mode != loader.ModeProtected {
			t.Fatalf("mode %v", bs.Mode)
		}
		guests.ApplyBootState(hostVCPU{g}, bs)
		w := entered(g)
		expectNoProblems(t, g)
		if w[FieldEntryControls]&uint64(EntryIA32eModeGuest) != 0 || w[FieldGuestRIP] != bs.RIP || w[FieldGuestRSP] != bs.GPR[vcpu.RSP] {
			t.Errorf("entry controls %#x RIP %#x RSP %#x", w[FieldEntryControls], w[FieldGuestRIP], w[FieldGuestRSP])
		}
		if g.Regs[vcpu.RAX] != 0x2badb002 || g.GPR(vcpu.RBX) != bs.GPR[vcpu.RBX] {
			t.Errorf("Multiboot registers RAX %#x RBX %#x", g.Regs[vcpu.RAX], g.GPR(vcpu.RBX))
		}
		if c := g.Control(); c.CR0 != bs.Control.CR0 || c.CR4 != bs.Control.CR4 {
			t.Errorf("the guest sees CR0 %#x CR4 %#x, the loader set %#x %#x", c.CR0, c.CR4, bs.Control.CR0, bs.Control.CR4)
		}
		for r := vcpu.ES; r < vcpu.NumSegments; r++ {
			if got := g.Segment(r); got != bs.Segments[r] {
				t.Errorf("segment %d reads back %+v, loaded %+v", r, got, bs.Segments[r])
			}
		}
	})
	t.Run("long mode", func(t *testing.T) {
		g, _ := newTestGuest(t)
		flat := func(sel, attr uint16) vcpu.Segment {
			return vcpu.Segment{Selector: sel, Limit: 0xffffffff, Attributes: attr}
		}
		bs := &loader.BootState{Mode: loader.ModeLong, RIP: 0x1000200, RFLAGS: 2,
			Control: vcpu.ControlRegisters{CR0: cr0PE | cr0ET | cr0NE | cr0PG, CR3: 0x9000, CR4: cr4PAE, EFER: eferLME | eferLMA},
			GDTR:    loader.DescriptorTable{Base: 0x8000, Limit: 47}}
		bs.GPR[vcpu.RSI], bs.GPR[vcpu.RSP] = 0x7000, 0x8ff0
		for r := vcpu.ES; r < vcpu.NumSegments; r++ {
			bs.Segments[r] = flat(0x18, 0xc93)
		}
		bs.Segments[vcpu.CS] = flat(0x10, 0xa9b)
		guests.ApplyBootState(hostVCPU{g}, bs)
		w := entered(g)
		expectNoProblems(t, g)
		if w[FieldEntryControls]&uint64(EntryIA32eModeGuest) == 0 || w[FieldGuestEFER] != eferLME|eferLMA {
			t.Errorf("long mode: entry controls %#x EFER %#x", w[FieldEntryControls], w[FieldGuestEFER])
		}
		if w[FieldGuestCSAccessRights] != 0xa09b {
			t.Errorf("CS access rights %#x, want 0xa09b (L, G, P, S, type 11)", w[FieldGuestCSAccessRights])
		}
	})
}

// newGuestOn makes a vCPU's state on the controls a fixture's processor
// gets.
func newGuestOn(t *testing.T, fx cpuFixture) *Guest {
	t.Helper()
	ctl, err := NewControls(probeFixture(t, fx), ControlOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuest(ctl, new(MSRList), msrListPA)
	g.SetEPTP(0x10001e)
	g.SetVPID(1)
	return g
}

// realModeState is a real-mode entry at 0000:7C00 as package loader's boot
// sector protocol makes it.
func realModeState(t *testing.T) *loader.BootState {
	t.Helper()
	const mem = 16 << 20
	l, err := platform.NewLayout(mem, 1)
	if err != nil {
		t.Fatal(err)
	}
	ram := guests.NewRAM(make([]byte, mem), 0)
	res, err := loader.Load(loader.Guest{Memory: ram, Layout: l}, crashkernel.Build(crashkernel.RealMode), loader.Options{KernelName: "realmode"})
	if err != nil {
		t.Fatal(err)
	}
	if res.State.Mode != loader.ModeReal {
		t.Fatalf("the real-mode guest loads in mode %v", res.State.Mode)
	}
	return &res.State
}

// TestRealModeNeedsUnrestrictedGuest: with unrestricted guest (Bochs's
// corei7_skylake_x) a real-mode entry state passes the modeled VM-entry
// checks with CR0.PE clear in the VMCS; without it (corei5_lynnfield_750's
// capability MSRs) the vCPU is refused with a message naming the control,
// and so are a paging-off entry and a guest that later turns paging off,
// while a long-mode entry runs.
func TestRealModeNeedsUnrestrictedGuest(t *testing.T) {
	bs := realModeState(t)

	g := newGuestOn(t, bochsSkylakeX)
	guests.ApplyBootState(hostVCPU{g}, bs)
	w := entered(g)
	expectNoProblems(t, g)
	if r := g.Refusal(); r != "" {
		t.Errorf("skylake: real mode refused: %s", r)
	}
	if w[FieldGuestCR0]&cr0PE != 0 || w[FieldGuestCSBase] != uint64(bs.Segments[vcpu.CS].Selector)<<4 || w[FieldGuestRIP] != bs.RIP {
		t.Errorf("skylake: CR0 %#x CS base %#x RIP %#x; want PE clear and CS base = selector<<4", w[FieldGuestCR0], w[FieldGuestCSBase], w[FieldGuestRIP])
	}

	g = newGuestOn(t, bochsLynnfield)
	guests.ApplyBootState(hostVCPU{g}, bs)
	r := g.Refusal()
	for _, want := range []string{"real mode", "unrestricted guest", "bit 7", "lacks"} {
		if !strings.Contains(r, want) {
			t.Errorf("lynnfield: refusal %q does not say %q", r, want)
		}
	}

	g = newGuestOn(t, bochsLynnfield)
	guests.ApplyBootState(hostVCPU{g}, loadCrashKernel(t))
	if r := g.Refusal(); !strings.Contains(r, "paging off") || !strings.Contains(r, "unrestricted guest") {
		t.Errorf("lynnfield: a Multiboot (paging off) entry: refusal %q", r)
	}

	// The long-mode guest's bzImage, loaded as the hypervisor loads it,
	// enters without unrestricted guest and passes the modeled checks.
	g = newGuestOn(t, bochsLynnfield)
	l, _ := platform.NewLayout(16<<20, 1)
	res, err := loader.Load(loader.Guest{Memory: guests.NewRAM(make([]byte, 16<<20), 0), Layout: l}, crashkernel.Build(crashkernel.LongMode), loader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	guests.ApplyBootState(hostVCPU{g}, &res.State)
	entered(g)
	expectNoProblems(t, g)
	if r := g.Refusal(); r != "" {
		t.Errorf("lynnfield: the long-mode guest refused: %s", r)
	}

	// Long mode runs; turning paging off later is refused at the MOV to
	// CR0 (PG is the host's, so it exits), with RIP left on it.
	g = newGuestOn(t, bochsLynnfield)
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0ET | cr0NE | cr0PG, CR3: 0x9000, CR4: cr4PAE, EFER: eferLME | eferLMA})
	g.SetRIP(0x2000)
	if r := g.Refusal(); r != "" {
		t.Fatalf("lynnfield: long mode refused: %s", r)
	}
	if mask, _ := g.Value(FieldCR0GuestHostMask); mask&(cr0PE|cr0PG) != cr0PE|cr0PG {
		t.Errorf("CR0 guest/host mask %#x: PE and PG must be the host's so that clearing them exits", mask)
	}
	entered(g)
	expectNoProblems(t, g)
	g.Commit()
	g.Regs[vcpu.RAX] = cr0PE | cr0ET | cr0NE
	if !g.EmulateCRAccess(CRAccess{CR: 0, Kind: CRMovTo, GPR: vcpu.RAX}, 3) {
		t.Fatal("MOV to CR0 clearing PG not handled")
	}
	if r := g.Refusal(); !strings.Contains(r, "paging off") || g.RIP() != 0x2000 || g.Control().CR0&cr0PG == 0 {
		t.Errorf("paging turned off: refusal %q, RIP %#x, CR0 %#x", r, g.RIP(), g.Control().CR0)
	}
}

func TestAccessRights(t *testing.T) {
	for a := uint16(0); a < 0x1000; a++ {
		ar := toAccessRights(a)
		if ar&0xf00 != 0 || ar>>17 != 0 {
			t.Fatalf("%#x -> %#x sets reserved access-rights bits", a, ar)
		}
		if (ar&arUnusable != 0) != (a&0x80 == 0) {
			t.Fatalf("%#x -> %#x: unusable must mean not present", a, ar)
		}
		if back := fromAccessRights(ar); back != a {
			t.Fatalf("%#x -> %#x -> %#x", a, ar, back)
		}
	}
	// A segment a VM exit saved as unusable reads as not present, and its
	// DPL (the CPL, for SS) survives.
	if a := fromAccessRights(arUnusable | 0x60 | 0x93); a&0x80 != 0 || a&0x60 != 0x60 {
		t.Errorf("unusable SS reads as %#x", a)
	}
	g, _ := newTestGuest(t)
	g.SetSegment(vcpu.SS, vcpu.Segment{Attributes: 0x60 | 0x12}) // DPL 3, not present: unusable
	if g.CPL() != 3 || g.Segment(vcpu.SS).Attributes&0x80 != 0 {
		t.Errorf("CPL %d, SS %+v", g.CPL(), g.Segment(vcpu.SS))
	}
	// Loading a code or data segment marks it accessed.
	g.SetSegment(vcpu.DS, vcpu.Segment{Limit: 0xffff, Attributes: 0x92})
	if ar, _ := g.Value(FieldGuestDSAccessRights); ar != 0x93 {
		t.Errorf("DS access rights %#x, want 0x93", ar)
	}
}

// TestProblemsNamesTheFailingCheck breaks one thing at a time and expects
// the model to name it.
func TestProblemsNamesTheFailingCheck(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(g *Guest)
		want   string
	}{
		{"cs limit granularity", func(g *Guest) { g.setSegmentAR(SegCS, 0x10, 0, 0xffffffff, 0x9b) }, "GUEST_CS: limit 0xffffffff has bits 31:20 set, so G must be 1"},
		{"ds limit granularity", func(g *Guest) { g.setSegmentAR(SegDS, 0x18, 0, 0xff00, 0x893) }, "GUEST_DS: limit 0xff00 has bits 11:0 not all 1, so G must be 0"},
		{"cs not accessed", func(g *Guest) { g.set(segSlot(SegCS, partAR), 0xc09a) }, "GUEST_CS_AR_BYTES = 0xc09a: type 10"},
		{"tr unusable", func(g *Guest) { g.set(segSlot(SegTR, partAR), arUnusable) }, "GUEST_TR is unusable"},
		{"tr available tss", func(g *Guest) { g.set(segSlot(SegTR, partAR), 0x89) }, "must be 3 or 11"},
		{"rflags reserved", func(g *Guest) { g.set(sRFLAGS, 0x2|1<<3) }, "GUEST_RFLAGS = 0xa"},
		{"long mode without paging", func(g *Guest) { g.vals[sEFER] = eferLMA | eferLME }, "IA-32e mode guest needs GUEST_CR0.PG and GUEST_CR4.PAE"},
		{"lma without lme", func(g *Guest) {
			g.set(sCR0, cr0PE|cr0NE|cr0PG)
			g.set(sCR4, cr4PAE|CR4VMXE)
			g.vals[sEFER] = eferLMA
		}, "with CR0.PG set, LMA must equal LME"},
		{"cr0 ne clear", func(g *Guest) { g.set(sCR0, cr0PE) }, "GUEST_CR0"},
		{"cr4 vmxe clear", func(g *Guest) { g.set(sCR4, 0) }, "GUEST_CR4"},
		{"pg without pe", func(g *Guest) { g.set(sCR0, cr0NE|cr0PG) }, "PG is set without PE"},
		{"link pointer", func(g *Guest) { g.set(sLinkPointer, 0) }, "VMCS_LINK_POINTER"},
		{"sti blocking with if clear", func(g *Guest) { g.set(sInterruptibility, BlockingBySTI) }, "blocking by STI with RFLAGS.IF clear"},
		{"interrupt with if clear", func(g *Guest) { g.InjectInterrupt(0x30) }, "injecting an external interrupt with GUEST_RFLAGS.IF clear"},
		{"bad pat", func(g *Guest) { g.set(sPAT, 0x0202020202020202) }, "GUEST_IA32_PAT"},
		{"gdtr limit", func(g *Guest) { g.set(sGDTRLimit, 0x10000) }, "bits 31:16 must be 0"},
		{"rip high", func(g *Guest) { g.set(sRIP, 1<<40) }, "GUEST_RIP = 0x10000000000: bits 63:32"},
		{"vpid 0", func(g *Guest) { g.SetVPID(0) }, "VIRTUAL_PROCESSOR_ID is 0"},
		{"eptp uc allowed", func(g *Guest) { g.SetEPTP(0x100019) }, "memory type 1 is neither"},
		{"eptp walk length", func(g *Guest) { g.SetEPTP(0x100026) }, "page-walk length 5"},
		{"msr list alignment", func(g *Guest) { g.set(cEntryMSRLoadAddr, 0x5008) }, "VM_ENTRY_MSR_LOAD_ADDR = 0x5008 is not 16-byte aligned"},
		{"nmi window without virtual nmis", func(g *Guest) {
			g.vals[cPin] &^= uint64(PinVirtualNMIs)
			g.RequestNMIWindow(true)
		}, "NMI-window exiting without virtual NMIs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, _ := newTestGuest(t)
			c.break_(g)
			entered(g)
			p := strings.Join(g.Problems(), "\n")
			if !strings.Contains(p, c.want) {
				t.Errorf("problems %q do not name %q", p, c.want)
			}
		})
	}
}

func TestEventInjection(t *testing.T) {
	g, _ := newTestGuest(t)
	entered(g)
	g.Commit()

	// #GP(0) in protected mode: hardware exception, error code delivered.
	g.InjectException(13, 0, true)
	w := entered(g)
	if w[FieldEntryInterruptionInfo] != 0x80000b0d || w[FieldEntryExceptionError] != 0 {
		t.Errorf("#GP: %#x / %#x", w[FieldEntryInterruptionInfo], w[FieldEntryExceptionError])
	}
	expectNoProblems(t, g)
	if g.Interruptible() || g.NMIAllowed() {
		t.Error("an event is pending, yet another could be injected")
	}
	g.Commit()
	// The exit cleared the valid bit; nothing pending, nothing written.
	var vals [numReads]uint64
	copy(vals[:], g.vals[:numGuestSlots])
	g.ReadBack(&vals)
	if w := entered(g); len(w) != 0 {
		t.Errorf("after delivery the entry writes %v", w)
	}

	// In real mode (unrestricted guest, CR0.PE clear) no error code may be
	// delivered (SDM Vol. 3C, 27.2.1.3), whatever the core asks.
	g.SetControl(vcpu.ControlRegisters{CR0: cr0ET})
	g.InjectException(13, 0, true)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x8000030d {
		t.Errorf("#GP in real mode: %#x", w[FieldEntryInterruptionInfo])
	}
	expectNoProblems(t, g)
	g.Commit()

	// #DF needs an error code even if the caller forgot it.
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0ET})
	g.InjectException(8, 0, false)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000b08 {
		t.Errorf("#DF: %#x", w[FieldEntryInterruptionInfo])
	}
	g.Commit()

	g.InjectException(2, 0, false) // vector 2 is an NMI, not an exception
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000202 {
		t.Errorf("NMI: %#x", w[FieldEntryInterruptionInfo])
	}
	g.Commit()

	g.SetRFLAGS(rflagsIF)
	if !g.Interruptible() {
		t.Error("IF set, nothing pending, no blocking: not interruptible")
	}
	g.InjectInterrupt(0x40)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000040 {
		t.Errorf("interrupt 0x40: %#x", w[FieldEntryInterruptionInfo])
	}
	expectNoProblems(t, g)
	g.Commit()

	// STI blocking holds interrupts and NMIs back; AdvanceRIP ends it.
	g.set(sInterruptibility, BlockingBySTI)
	if g.Interruptible() || g.NMIAllowed() {
		t.Error("STI blocking ignored")
	}
	g.AdvanceRIP(1)
	if !g.Interruptible() || !g.NMIAllowed() || g.vals[sInterruptibility] != 0 {
		t.Error("AdvanceRIP did not end STI blocking")
	}
	g.set(sInterruptibility, BlockingByNMI)
	if g.NMIAllowed() || !g.Interruptible() {
		t.Error("virtual-NMI blocking must hold NMIs only")
	}

	// Windows.
	g.RequestInterruptWindow(true)
	g.RequestNMIWindow(true)
	if w := entered(g); w[FieldProcControls]&uint64(ProcInterruptWindowExiting|ProcNMIWindowExiting) != uint64(ProcInterruptWindowExiting|ProcNMIWindowExiting) {
		t.Errorf("windows requested, primary controls %#x", w[FieldProcControls])
	}
	g.Commit()
	g.RequestInterruptWindow(false)
	g.RequestNMIWindow(false)
	if w := entered(g); w[FieldProcControls] != uint64(g.ctl.Proc) {
		t.Errorf("windows off, primary controls %#x, want %#x", w[FieldProcControls], g.ctl.Proc)
	}
}

func TestReadBack(t *testing.T) {
	g, _ := newTestGuest(t)
	entered(g)
	g.Commit()
	var vals [numReads]uint64
	copy(vals[:], g.vals[:numGuestSlots])
	vals[sRIP] = 0x100123
	x := vals[numGuestSlots:]
	// An EPT violation while delivering #PF (error code 2), whose IRET-less
	// qualification has the NMI-unblocking bit.
	x[0], x[1], x[2] = 48, EPTViolationWrite, 0xfee000b0
	x[6], x[7], x[8] = uint64(IntrValid|IntrTypeHardwareExc<<IntrTypeShift|IntrErrorCodeBit|14), 2, 3
	x[10] = 0
	g.ReadBack(&vals)
	if g.RIP() != 0x100123 || g.Exit.Basic() != ExitEPTViolation || g.Exit.GuestPhysical != 0xfee000b0 {
		t.Errorf("exit %+v RIP %#x", g.Exit, g.RIP())
	}
	w := entered(g)
	if w[FieldEntryInterruptionInfo] != 0x80000b0e || w[FieldEntryExceptionError] != 2 || w[FieldEntryInstructionLength] != 0 {
		t.Errorf("#PF re-injection: %#x / %#x / %d", w[FieldEntryInterruptionInfo], w[FieldEntryExceptionError], w[FieldEntryInstructionLength])
	}
	g.Commit()

	// A software interrupt interrupted: re-injected with its length.
	x[0], x[1] = 48, 0
	x[6], x[7], x[8] = uint64(IntrValid|IntrTypeSoftwareInt<<IntrTypeShift|0x80), 0, 2
	g.ReadBack(&vals)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000480 || w[FieldEntryInstructionLength] != 2 {
		t.Errorf("INT 0x80 re-injection: %#x / %d", w[FieldEntryInterruptionInfo], w[FieldEntryInstructionLength])
	}
	g.Commit()

	// An IRET that unblocked NMIs faulted: NMIs stay blocked.
	x[0], x[1], x[6] = 48, EPTViolationNMIUnblocking|EPTViolationRead, 0
	g.ReadBack(&vals)
	if w := entered(g); w[FieldGuestInterruptibility] != BlockingByNMI {
		t.Errorf("NMI unblocking by IRET: interruptibility %#x", w[FieldGuestInterruptibility])
	}
	g.Commit()

	// The VM-instruction error travels with the exit.
	x[0], x[1], x[10] = uint64(ExitReasonEntryFailed|33), 0, 7
	g.ReadBack(&vals)
	if !g.Exit.EntryFailed() || g.InstructionError != 7 {
		t.Errorf("entry failure %+v error %d", g.Exit, g.InstructionError)
	}
}

func TestEngineMSR(t *testing.T) {
	g, msrs := newTestGuest(t)
	read := func(m uint32) (uint64, vcpu.MSRStatus) { return g.EngineMSR(m, false, 0) }
	write := func(m uint32, v uint64) vcpu.MSRStatus { _, s := g.EngineMSR(m, true, v); return s }

	if s := write(msrEFER, eferSCE|eferNXE|eferLME); s != vcpu.MSRDone {
		t.Errorf("EFER write: %v", s)
	}
	if v, _ := read(msrEFER); v != eferSCE|eferNXE|eferLME {
		t.Errorf("EFER reads %#x", v)
	}
	if s := write(msrEFER, 1<<14); s != vcpu.MSRFault { // FFXSR: AMD only, reserved on Intel
		t.Errorf("reserved EFER bit: %v", s)
	}
	// LMA is the processor's: a write does not set it.
	write(msrEFER, eferLME|eferLMA)
	if v, _ := read(msrEFER); v&eferLMA != 0 {
		t.Errorf("EFER.LMA set by WRMSR: %#x", v)
	}
	// Changing LME with paging on faults.
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0PG | cr0NE, CR4: cr4PAE, EFER: eferLME})
	if s := write(msrEFER, 0); s != vcpu.MSRFault {
		t.Errorf("LME cleared with paging on: %v", s)
	}
	if v, _ := read(msrEFER); v != eferLME|eferLMA {
		t.Errorf("EFER after SetControl with PG and LME: %#x", v)
	}

	if s := write(msrPAT, 0x0202020202020202); s != vcpu.MSRFault {
		t.Errorf("PAT with reserved types: %v", s)
	}
	write(msrPAT, 0x0007010600070106)
	if v, _ := g.Value(FieldGuestPAT); v != 0x0007010600070106 {
		t.Errorf("GUEST_IA32_PAT %#x", v)
	}
	if s := write(msrFSBase, 0x0000800000000000); s != vcpu.MSRFault {
		t.Errorf("non-canonical FS base: %v", s)
	}
	write(msrGSBase, 0xffff888000000000)
	if v, _ := g.Value(FieldGuestGSBase); v != 0xffff888000000000 || g.Segment(vcpu.GS).Base != 0xffff888000000000 {
		t.Errorf("GS base %#x", v)
	}
	write(msrSysenterCS, 0x1_0000_0010)
	if v, _ := read(msrSysenterCS); v != 0x10 {
		t.Errorf("SYSENTER_CS %#x", v)
	}

	// The SYSCALL MSRs and KERNEL_GS_BASE live in the MSR list the
	// processor loads at entry and stores at exit.
	write(msrLSTAR, 0xffffffff81000000)
	write(msrSTAR, 0x0023001000000000)
	write(msrKernelGSBase, 0xffff888000001000)
	if msrs[2].Value != 0xffffffff81000000 || msrs[1].Value != 0x0023001000000000 || msrs[0].Value != 0xffff888000001000 {
		t.Errorf("MSR list %+v", msrs)
	}
	msrs[0].Value = 0x1234 // as a VM exit stores it after SWAPGS
	if v, s := read(msrKernelGSBase); v != 0x1234 || s != vcpu.MSRDone {
		t.Errorf("KERNEL_GS_BASE reads %#x %v", v, s)
	}
	if s := write(msrCSTAR, 0x0000900000000000); s != vcpu.MSRFault {
		t.Errorf("non-canonical CSTAR: %v", s)
	}
	if _, s := read(0x1b); s != vcpu.MSRNotEngine { // APIC base: the core's
		t.Errorf("IA32_APIC_BASE: %v", s)
	}
}

func TestEmulateCRAccess(t *testing.T) {
	g, _ := newTestGuest(t)
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0ET})
	g.SetRIP(0x1000)
	entered(g)
	g.Commit()

	// MOV CR0, RAX setting NE (owned by the host: it exited).
	g.Regs[vcpu.RAX] = cr0PE | cr0ET | cr0NE
	if !g.EmulateCRAccess(CRAccess{CR: 0, Kind: CRMovTo, GPR: vcpu.RAX}, 3) {
		t.Fatal("MOV to CR0 not emulated")
	}
	if g.RIP() != 0x1003 || g.Control().CR0 != cr0PE|cr0ET|cr0NE || g.CRExits != 1 {
		t.Errorf("after MOV CR0: RIP %#x CR0 %#x", g.RIP(), g.Control().CR0)
	}

	// Entering long mode by an exiting MOV to CR0: LMA and IA-32e mode.
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0ET, CR4: cr4PAE, EFER: eferLME})
	g.Regs[vcpu.RBX] = cr0PE | cr0ET | cr0NE | cr0PG
	g.EmulateCRAccess(CRAccess{CR: 0, Kind: CRMovTo, GPR: vcpu.RBX}, 3)
	if g.Control().EFER&eferLMA == 0 || !g.FlushTLB {
		t.Errorf("paging on with LME: EFER %#x flush %v", g.Control().EFER, g.FlushTLB)
	}
	if w := entered(g); w[FieldEntryControls]&uint64(EntryIA32eModeGuest) == 0 {
		t.Errorf("IA-32e mode guest not set: entry controls %#x", w[FieldEntryControls])
	}
	g.Commit()

	// Paging on with LME but without PAE: #GP, RIP unchanged.
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE, EFER: eferLME})
	rip := g.RIP()
	g.Regs[vcpu.RBX] = cr0PE | cr0NE | cr0PG
	g.EmulateCRAccess(CRAccess{CR: 0, Kind: CRMovTo, GPR: vcpu.RBX}, 3)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000b0d || g.RIP() != rip {
		t.Errorf("no #GP: entry event %#x RIP %#x", w[FieldEntryInterruptionInfo], g.RIP())
	}
	g.Commit()

	// CR4.VMXE: no nested VMX, #GP.
	g.Regs[vcpu.RCX] = CR4VMXE
	g.EmulateCRAccess(CRAccess{CR: 4, Kind: CRMovTo, GPR: vcpu.RCX}, 3)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000b0d {
		t.Errorf("CR4.VMXE: entry event %#x", w[FieldEntryInterruptionInfo])
	}
	g.Commit()
	g.Regs[vcpu.RCX] = cr4PAE | 1<<7 // PAE, PGE
	g.EmulateCRAccess(CRAccess{CR: 4, Kind: CRMovTo, GPR: vcpu.RCX}, 3)
	if c := g.Control().CR4; c != cr4PAE|1<<7 {
		t.Errorf("CR4 %#x", c)
	}
	if v, _ := g.Value(FieldGuestCR4); v != cr4PAE|1<<7|CR4VMXE {
		t.Errorf("GUEST_CR4 %#x", v)
	}

	// CR4.OSXSAVE: the guest CPUID hides XSAVE, so the bit is the host's.
	g.Regs[vcpu.RCX] = cr4PAE | cr4OSXSAVE
	g.EmulateCRAccess(CRAccess{CR: 4, Kind: CRMovTo, GPR: vcpu.RCX}, 3)
	if w := entered(g); w[FieldEntryInterruptionInfo] != 0x80000b0d || g.Control().CR4&cr4OSXSAVE != 0 {
		t.Errorf("CR4.OSXSAVE: entry event %#x, CR4 %#x", w[FieldEntryInterruptionInfo], g.Control().CR4)
	}
	g.Commit()

	// CR8 stays in the engine.
	g.Regs[vcpu.RDX] = 0xa
	g.EmulateCRAccess(CRAccess{CR: 8, Kind: CRMovTo, GPR: vcpu.RDX}, 4)
	g.EmulateCRAccess(CRAccess{CR: 8, Kind: CRMovFrom, GPR: vcpu.R9}, 4)
	if g.Regs[vcpu.R9] != 0xa {
		t.Errorf("CR8 reads %#x", g.Regs[vcpu.R9])
	}
	// CLTS and LMSW.
	g.SetControl(vcpu.ControlRegisters{CR0: cr0PE | cr0TS | cr0NE})
	g.EmulateCRAccess(CRAccess{CR: 0, Kind: CRCLTS}, 2)
	if g.Control().CR0&cr0TS != 0 {
		t.Error("CLTS left TS set")
	}
	g.EmulateCRAccess(CRAccess{CR: 0, Kind: CRLMSW, LMSWSource: 0x8}, 3) // sets TS, cannot clear PE
	if c := g.Control().CR0; c&cr0TS == 0 || c&cr0PE == 0 {
		t.Errorf("LMSW: CR0 %#x", c)
	}
	// CR3 accesses do not exit under EPT: not emulated.
	if g.EmulateCRAccess(CRAccess{CR: 3, Kind: CRMovTo}, 3) {
		t.Error("MOV to CR3 emulated")
	}
}

func TestDump(t *testing.T) {
	g, _ := newTestGuest(t)
	g.Regs[vcpu.RAX] = 0x2badb002
	g.Exit, g.Exits = ExitFields{Reason: 2}, 1
	g.set(segSlot(SegTR, partAR), arUnusable)
	var b strings.Builder
	g.DumpTo(&b)
	d := b.String()
	for _, want := range []string{"exit 1: reason 0x2 (triple fault)", "RAX 0x000000002badb002", "CS   sel 0x0010",
		"TR   sel 0x0000", "EPTP 0x10001e", "GUEST_TR is unusable"} {
		if !strings.Contains(d, want) {
			t.Errorf("dump lacks %q:\n%s", want, d)
		}
	}
}

func TestHardwareLayouts(t *testing.T) {
	if unsafe.Sizeof(MSREntry{}) != 16 || unsafe.Sizeof(MSRList{}) != 16*uintptr(NumListMSRs) {
		t.Errorf("MSR entry %d bytes, list %d", unsafe.Sizeof(MSREntry{}), unsafe.Sizeof(MSRList{}))
	}
	var a FXArea
	a[100] = 1
	a.Reset()
	if a[0] != 0x7f || a[1] != 0x03 || a[24] != 0x80 || a[25] != 0x1f || a[100] != 0 || unsafe.Sizeof(a) != 512 {
		t.Error("FXArea reset state")
	}
	if len(readFields) != numReads || readFields[sRIP] != uint64(FieldGuestRIP) || readFields[numGuestSlots] != uint64(FieldExitReason) {
		t.Error("read list order")
	}
}

func TestVPIDs(t *testing.T) {
	var a VPIDs
	seen := map[uint16]bool{}
	for i := 0; i < 0xffff; i++ {
		v, err := a.Get()
		if err != nil || v == 0 || seen[v] {
			t.Fatalf("Get %d: %d, %v (seen %v)", i, v, err, seen[v])
		}
		seen[v] = true
	}
	if _, err := a.Get(); err == nil {
		t.Error("65536th VPID handed out")
	}
	if err := a.Put(7); err != nil {
		t.Fatal(err)
	}
	if v, err := a.Get(); err != nil || v != 7 {
		t.Errorf("after Put(7): %d, %v", v, err)
	}
	if a.Put(0) == nil {
		t.Error("Put(0) accepted")
	}
	var b VPIDs
	if b.Put(3) == nil {
		t.Error("Put of a VPID not in use accepted")
	}
}
