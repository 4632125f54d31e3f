package guests

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tamavisor/drivers/hw/hwfake"
	"tamavisor/guests/devices/lapic"
	"tamavisor/guests/irq"
	"tamavisor/guests/loader"
	"tamavisor/guests/vcpu"
)

// atomicClock is a manual clock that several goroutines may read.
type atomicClock struct{ now atomic.Int64 }

func (c *atomicClock) Now() int64 { return c.now.Load() }

const testSignature = 0x000806f8 // a CPUID leaf 1 EAX (family 6, model 0x8f)

// newSMPVCPU returns a VM of n vCPUs with vCPU id attached to a real local
// APIC (the BSP for id 0) and its injector, as package machine wires them.
func newSMPVCPU(t *testing.T, n int, id uint32) (*VM, *VCPU, *fakeVCPU, *lapic.LAPIC) {
	t.Helper()
	clock := &atomicClock{}
	vm := NewVM("smp", nil, clock, nil)
	vm.CPUID = NewCPUIDPolicy(hwfake.CPUID{{Leaf: 1}: {EAX: testSignature}}, n)
	l, err := lapic.New(lapic.Config{ID: id, BSP: id == 0, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVCPU{rip: 0x1000, engine: map[uint32]uint64{}}
	v := vm.AddVCPU(f, id)
	v.LAPIC, v.LAPICMMIO, v.Startup = l, l, l
	v.Timers = []Timer{l}
	v.Injector = irq.NewInjector(f, l, nil)
	return vm, v, f, l
}

func checkSegment(t *testing.T, name string, got, want vcpu.Segment) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %+v, want %+v", name, got, want)
	}
}

// TestINITAndSIPIState checks the state INIT and SIPI leave, field by field,
// against Intel SDM Vol. 3A Table 9-1 (INIT column) and 8.4.4.1, once as
// built and once as applied through the vcpu.VCPU setters.
func TestINITAndSIPIState(t *testing.T) {
	data := vcpu.Segment{Selector: 0, Base: 0, Limit: 0xffff, Attributes: 0x93}
	for _, c := range []struct {
		name   string
		st     loader.BootState
		cs     vcpu.Segment
		rip    uint64
		vector uint8
	}{
		{"INIT", INITState(testSignature), vcpu.Segment{Selector: 0xf000, Base: 0xffff0000, Limit: 0xffff, Attributes: 0x9b}, 0xfff0, 0},
		{"SIPI 0x9a", SIPIState(0x9a, testSignature), vcpu.Segment{Selector: 0x9a00, Base: 0x9a000, Limit: 0xffff, Attributes: 0x9b}, 0, 0x9a},
		{"SIPI 0xff", SIPIState(0xff, testSignature), vcpu.Segment{Selector: 0xff00, Base: 0xff000, Limit: 0xffff, Attributes: 0x9b}, 0, 0xff},
	} {
		st := c.st
		if st.Mode != loader.ModeReal || st.RIP != c.rip || st.RFLAGS != 2 {
			t.Errorf("%s: mode %v RIP %#x RFLAGS %#x", c.name, st.Mode, st.RIP, st.RFLAGS)
		}
		if st.Control != (vcpu.ControlRegisters{CR0: 0x60000010}) {
			t.Errorf("%s: control registers %+v, want CR0 0x60000010 and CR2/CR3/CR4/EFER 0", c.name, st.Control)
		}
		for r, v := range st.GPR {
			want := uint64(0)
			if vcpu.GPR(r) == vcpu.RDX {
				want = testSignature
			}
			if v != want {
				t.Errorf("%s: GPR %d = %#x, want %#x", c.name, r, v, want)
			}
		}
		checkSegment(t, c.name+" CS", st.Segments[vcpu.CS], c.cs)
		for _, s := range []vcpu.SegmentRegister{vcpu.ES, vcpu.SS, vcpu.DS, vcpu.FS, vcpu.GS} {
			checkSegment(t, c.name+" data segment", st.Segments[s], data)
		}
		checkSegment(t, c.name+" LDTR", st.LDTR, vcpu.Segment{Limit: 0xffff, Attributes: 0x82})
		checkSegment(t, c.name+" TR", st.TR, vcpu.Segment{Limit: 0xffff, Attributes: 0x8b})
		if st.GDTR != (loader.DescriptorTable{Limit: 0xffff}) || st.IDTR != (loader.DescriptorTable{Limit: 0xffff}) {
			t.Errorf("%s: GDTR %+v IDTR %+v, want base 0 limit 0xffff", c.name, st.GDTR, st.IDTR)
		}

		// Through the run loop's path, onto a vCPU holding a running
		// guest's state: everything is replaced.
		_, v, f, _ := newSMPVCPU(t, 2, 1)
		for r := range f.regs {
			f.regs[r] = 0xdead
		}
		f.rflags, f.ctrl = 0x246, vcpu.ControlRegisters{CR0: 0x80050033, CR2: 1, CR3: 0x1000, CR4: 0x20, EFER: 0xd01}
		f.gdt, f.idt = [2]uint64{0x5000, 0x7f}, [2]uint64{0x6000, 0xfff}
		v.applyStartupState(c.name != "INIT", c.vector)
		if f.rip != c.rip || f.rflags != 2 || f.ctrl != st.Control || f.regs[vcpu.RDX] != testSignature || f.regs[vcpu.RAX] != 0 || f.regs[vcpu.RSP] != 0 {
			t.Errorf("%s applied: RIP %#x RFLAGS %#x control %+v RDX %#x RAX %#x", c.name, f.rip, f.rflags, f.ctrl, f.regs[vcpu.RDX], f.regs[vcpu.RAX])
		}
		if f.segs != st.Segments || f.gdt != [2]uint64{0, 0xffff} || f.idt != [2]uint64{0, 0xffff} {
			t.Errorf("%s applied: segments %+v GDTR %v IDTR %v", c.name, f.segs, f.gdt, f.idt)
		}
	}
}

// resettingVCPU is an engine vCPU with state beyond the setters.
type resettingVCPU struct {
	fakeVCPU
	resets int
}

func (r *resettingVCPU) ResetForINIT() { r.resets++ }

func TestINITCallsEngineReset(t *testing.T) {
	_, v, _, _ := newSMPVCPU(t, 2, 1)
	r := &resettingVCPU{}
	v.CPU = r
	v.applyStartupState(true, 0x10)
	if r.resets != 0 {
		t.Error("SIPI reset the engine's state")
	}
	v.applyStartupState(false, 0)
	if r.resets != 1 || r.rip != 0xfff0 {
		t.Errorf("INIT: engine resets %d, RIP %#x", r.resets, r.rip)
	}
}

// runAsync runs v's loop in a goroutine and returns a channel that gets
// its result.
func runAsync(v *VCPU) chan error {
	done := make(chan error, 1)
	go func() { done <- v.Run() }()
	return done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func waitRun(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the vCPU's Run did not return")
	}
}

// TestAPWaitsForSIPI: an AP does not enter the guest until a SIPI, and then
// enters at the SIPI vector in real mode.
func TestAPWaitsForSIPI(t *testing.T) {
	vm, v, f, l := newSMPVCPU(t, 2, 1)
	var runs atomic.Int32
	var entry [2]uint64 // CS base, RIP at the first entry
	f.onRun = func(f *fakeVCPU) {
		if runs.Add(1) == 1 {
			entry = [2]uint64{f.segs[vcpu.CS].Base, f.rip}
		}
	}
	done := runAsync(v)
	// The AP's goroutine is blocked; spurious wake-ups do not start it.
	time.Sleep(20 * time.Millisecond)
	v.Wake()
	time.Sleep(20 * time.Millisecond)
	if n := runs.Load(); n != 0 {
		t.Fatalf("the AP entered the guest %d times before any SIPI", n)
	}
	l.DeliverINIT()
	l.DeliverSIPI(0x9a)
	v.Wake()
	waitRun(t, done) // the empty script ends in a shutdown exit
	if entry != [2]uint64{0x9a000, 0} {
		t.Errorf("first entry at CS.base %#x RIP %#x, want 0x9a000:0", entry[0], entry[1])
	}
	if reason, _, _ := vm.StopReason(); !strings.Contains(reason, "triple fault") {
		t.Errorf("stop reason %q", reason)
	}
}

// TestINITEndsHaltAndStopsAP: INIT to a halted AP wakes it and puts it back
// into wait-for-SIPI with the INIT state, without entering the guest.
func TestINITEndsHaltAndStopsAP(t *testing.T) {
	vm, v, f, l := newSMPVCPU(t, 2, 1)
	l.DeliverINIT()
	l.DeliverSIPI(0x10)
	var runs atomic.Int32
	f.script = []vcpu.Exit{{Reason: vcpu.ReasonHLT, InstructionLength: 1}}
	f.onRun = func(*fakeVCPU) { runs.Add(1) }
	done := runAsync(v)
	waitFor(t, "the AP's HLT", func() bool { return vm.Stats.Exits[vcpu.ReasonHLT].Load() == 1 })
	time.Sleep(5 * time.Millisecond) // let it reach its sleep
	l.DeliverINIT()
	v.Wake()
	waitFor(t, "wait-for-SIPI", l.WaitingForSIPI)
	time.Sleep(20 * time.Millisecond)
	vm.Stop("test over")
	waitRun(t, done)
	if n := runs.Load(); n != 1 {
		t.Errorf("the AP entered the guest %d times, want once (before its HLT)", n)
	}
	if f.rip != 0xfff0 || f.segs[vcpu.CS].Base != 0xffff0000 || f.ctrl.CR0 != 0x60000010 {
		t.Errorf("after INIT: RIP %#x CS.base %#x CR0 %#x", f.rip, f.segs[vcpu.CS].Base, f.ctrl.CR0)
	}
	if reason, _, _ := vm.StopReason(); reason != "test over" {
		t.Errorf("stop reason %q", reason)
	}
}

// TestINITToBSPResets: the BSP has no firmware to restart, so INIT to it
// stops the VM as a reset, before any entry.
func TestINITToBSPResets(t *testing.T) {
	vm, v, f, l := newSMPVCPU(t, 2, 0)
	l.DeliverINIT()
	if err := v.Run(); err != nil {
		t.Fatal(err)
	}
	if reason, _, _ := vm.StopReason(); reason != bspINITReason || f.runs != 0 {
		t.Errorf("stop reason %q after %d entries, want %q before any", reason, f.runs, bspINITReason)
	}
}

// TestWakeKicksOnlyInGuest: Kick is called for a vCPU in the guest, not for
// one in the hypervisor (which sees the event before its next entry).
func TestWakeKicksOnlyInGuest(t *testing.T) {
	vm, v, f, _ := newTestVM(t)
	kicks := 0
	v.Kick = func() { kicks++ }
	inside := -1
	f.script = []vcpu.Exit{{Reason: vcpu.ReasonExternalInterrupt}}
	f.onRun = func(f *fakeVCPU) {
		if f.runs == 0 {
			v.Wake()
			inside = kicks
		}
	}
	v.Run()
	if inside != 1 {
		t.Errorf("Wake during the run kicked %d times, want 1", inside)
	}
	v.Wake()
	vm.Wake()
	if kicks != 1 {
		t.Errorf("Wake outside the guest kicked: %d kicks", kicks)
	}
}

// fakeScheduler records the run loop's calls.
type fakeScheduler struct {
	calls    []string
	ran      []int64
	sliceEnd int64
}

func (s *fakeScheduler) BeforeEntry() int64 {
	s.calls = append(s.calls, "B")
	return s.sliceEnd
}

func (s *fakeScheduler) AfterExit(ran int64, idle bool) {
	c := "A"
	if idle {
		c = "I"
	}
	s.calls = append(s.calls, c)
	s.ran = append(s.ran, ran)
}

func TestSchedulerHooks(t *testing.T) {
	vm, v, f, _ := newTestVM(t,
		vcpu.Exit{Reason: vcpu.ReasonCPUID, InstructionLength: 2},
		vcpu.Exit{Reason: vcpu.ReasonHLT, InstructionLength: 1},
		vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt},
	)
	clock := vm.Clock.(*manualClock)
	clock.now = 1000
	f.onRun = func(*fakeVCPU) { clock.now += 250 }
	s := &fakeScheduler{sliceEnd: 4000}
	v.Scheduler = s
	var armed []int64
	v.ArmTimer = func(d int64) { armed = append(armed, d) }
	if err := v.Run(); err != nil {
		t.Fatal(err)
	}
	// CPUID, HLT (idle: the CPU is given up), interrupt, the final
	// shutdown, then the release as Run returns.
	want := "BABIBABAI"
	if got := strings.Join(s.calls, ""); got != want {
		t.Errorf("scheduler calls %q, want %q", got, want)
	}
	for i, r := range s.ran[:4] {
		if r != 250 {
			t.Errorf("exit %d charged %d ns, want the 250 spent in the guest", i, r)
		}
	}
	for _, d := range armed {
		if d != 4000 {
			t.Errorf("host timer armed for %d, want the slice end 4000", d)
		}
	}
	if len(armed) != 4 {
		t.Errorf("host timer armed %d times, want 4", len(armed))
	}
	if earliest(0, 5) != 5 || earliest(7, 0) != 7 || earliest(9, 3) != 3 || earliest(2, 8) != 2 || earliest(0, 0) != 0 {
		t.Error("earliest is wrong")
	}
}

// allocFreeScheduler is a scheduler that keeps the CPU.
type allocFreeScheduler struct{ before, after int }

func (s *allocFreeScheduler) BeforeEntry() int64    { s.before++; return 0 }
func (s *allocFreeScheduler) AfterExit(int64, bool) { s.after++ }

// TestAPExitsDoNotAllocate: an AP started by INIT/SIPI, with its local
// APIC, injector, scheduler hook and start-up checks, runs CPUID and port
// exits without allocating.
func TestAPExitsDoNotAllocate(t *testing.T) {
	vm, v, f, l := newSMPVCPU(t, 2, 1)
	if err := vm.Ports.Register("uart", 0x3f8, 8, &port{written: make([]uint32, 0, 10000)}); err != nil {
		t.Fatal(err)
	}
	s := &allocFreeScheduler{}
	v.Scheduler = s
	v.ArmTimer = func(int64) {}
	v.Kick = func() {}
	l.DeliverINIT()
	l.DeliverSIPI(0x10)
	vm.state.Store(int32(Running))
	cpuid := vcpu.Exit{Reason: vcpu.ReasonCPUID, InstructionLength: 2}
	out := vcpu.Exit{Reason: vcpu.ReasonIO, InstructionLength: 1, IO: vcpu.IOExit{Port: 0x3f8, Size: 1}}
	f.repeat = &cpuid
	if err := v.turn(); err != nil || f.runs != 1 || f.segs[vcpu.CS].Base != 0x10000 {
		t.Fatalf("first turn: err %v, %d entries, CS.base %#x", err, f.runs, f.segs[vcpu.CS].Base)
	}
	n := testing.AllocsPerRun(1000, func() {
		f.regs[vcpu.RAX] = 1
		f.repeat = &cpuid
		v.turn()
		f.repeat = &out
		v.turn()
	})
	if n != 0 {
		t.Errorf("an AP's turn allocates %.1f times", n)
	}
	if vm.State() != Running || s.before != s.after || s.before < 2000 {
		t.Errorf("state %v, scheduler calls %d/%d", vm.State(), s.before, s.after)
	}
	if ebx := uint32(f.regs[vcpu.RBX]); ebx>>24 != 1 {
		t.Errorf("CPUID leaf 1 on the AP: EBX %#x, want APIC ID 1", ebx)
	}
}

// TestCPUIDTopology: each vCPU reads its own APIC ID, and the VM's vCPUs
// are the cores of one package.
func TestCPUIDTopology(t *testing.T) {
	amd := hwfake.CPUID{
		{Leaf: 0}:          {EAX: 0x10, EBX: le32("Auth"), EDX: le32("enti"), ECX: le32("cAMD")},
		{Leaf: 1}:          {EAX: testSignature, EBX: 0x00400800, EDX: 1 << 28},
		{Leaf: 0x80000008}: {EAX: 0x3030, ECX: 0x700f}, // 16 cores, 7-bit APIC IDs
	}
	p := NewCPUIDPolicy(amd, 6)
	for _, id := range []uint32{0, 5} {
		_, ebx, _, edx := p.Leaf(1, 0, id)
		if ebx>>24 != id || ebx>>16&0xff != 6 || edx&leaf1EDXHTT == 0 || ebx&0xffff != 0x0800 {
			t.Errorf("vCPU %d leaf 1: EBX %#x EDX %#x, want APIC ID %d, 6 logical CPUs, HTT", id, ebx, edx, id)
		}
		for sub := uint32(0); sub < 3; sub++ {
			a, b, c, d := p.Leaf(0xb, sub, id)
			want := [4]uint32{0, 1, 0x100, id} // threads: one per core
			switch sub {
			case 1:
				want = [4]uint32{3, 6, 0x201, id} // cores: 6, IDs 3 bits wide
			case 2:
				want = [4]uint32{0, 0, 2, id} // end of the list
			}
			if got := [4]uint32{a, b, c, d}; got != want {
				t.Errorf("vCPU %d leaf 0xb.%d = %#x, want %#x", id, sub, got, want)
			}
		}
	}
	if _, _, ecx, _ := p.Leaf(0x80000008, 0, 2); ecx != 0x3005 {
		t.Errorf("AMD 8000_0008h ECX = %#x, want NC 5, ApicIdSize 3", ecx)
	}

	intel := hwfake.CPUID{
		{Leaf: 0}:             {EAX: 0x1f, EBX: le32("Genu"), EDX: le32("ineI"), ECX: le32("ntel")},
		{Leaf: 4}:             {EAX: 0xfc004121}, // L1 data, 64 cores, 2 threads share it
		{Leaf: 4, Subleaf: 3}: {EAX: 0xfc03c163}, // L3, 15 threads share it
		{Leaf: 4, Subleaf: 4}: {},                // no more caches
		{Leaf: 0x80000008}:    {EAX: 0x3027, ECX: 0x1234},
	}
	p = NewCPUIDPolicy(intel, 3)
	if a, _, _, _ := p.Leaf(4, 0, 1); a != 0x0c000121 {
		t.Errorf("leaf 4.0 EAX = %#x, want 4 core IDs, one thread on the L1", a)
	}
	if a, _, _, _ := p.Leaf(4, 3, 1); a != 0x0c00c163 {
		t.Errorf("leaf 4.3 EAX = %#x, want 4 core IDs, 4 IDs sharing the L3", a)
	}
	if a, b, c, d := p.Leaf(4, 4, 1); a|b|c|d != 0 {
		t.Error("leaf 4 past the last cache is not empty")
	}
	if _, _, ecx, _ := p.Leaf(0x80000008, 0, 0); ecx != 0x1234 {
		t.Errorf("Intel 8000_0008h ECX changed to %#x", ecx)
	}
	if a, b, _, _ := NewCPUIDPolicy(intel, 1).Leaf(0xb, 1, 0); a != 0 || b != 1 {
		t.Errorf("one vCPU: leaf 0xb.1 EAX %d EBX %d", a, b)
	}
}
