package machine

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tamavisor/drivers/hw/hwfake"
	"tamavisor/guests"
	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// Local APIC registers the tests program (Intel SDM Vol. 3A Table 11-1) and
// ICR values (11.6.1, Figure 11-12).
const (
	apicSVR     = 0xfee000f0
	apicEOI     = 0xfee000b0
	apicICRLow  = 0xfee00300
	apicICRHigh = 0xfee00310
	icrINIT     = 0x4500 // INIT, level assert
	icrSIPI     = 0x4600 // start-up, | vector
	rflagsIF    = 1 << 9
	signature   = 0x000806f8 // CPUID leaf 1 EAX of the fake host
)

// Guest code the MMIO exits point at: "mov [eax], ebx" in 32-bit code, the
// same with operand- and address-size prefixes in 16-bit code, and "mov
// ebx, [eax]" in 32-bit code.
var (
	store32 = []byte{0x89, 0x18}
	store16 = []byte{0x67, 0x66, 0x89, 0x18}
	load32  = []byte{0x8b, 0x18}
)

// cpuState is a fake engine vCPU's architectural state.
type cpuState struct {
	regs     [vcpu.NumGPRs]uint64
	rip      uint64
	rflags   uint64
	segs     [vcpu.NumSegments]vcpu.Segment
	ctrl     vcpu.ControlRegisters
	gdt, idt [2]uint64
	pending  int // vector injected for the next entry, or -1
	injected int // interrupts injected so far
}

func (c *cpuState) GPR(r vcpu.GPR) uint64                       { return c.regs[r&15] }
func (c *cpuState) SetGPR(r vcpu.GPR, v uint64)                 { c.regs[r&15] = v }
func (c *cpuState) RIP() uint64                                 { return c.rip }
func (c *cpuState) SetRIP(v uint64)                             { c.rip = v }
func (c *cpuState) RFLAGS() uint64                              { return c.rflags }
func (c *cpuState) SetRFLAGS(v uint64)                          { c.rflags = v | 2 }
func (c *cpuState) Control() vcpu.ControlRegisters              { return c.ctrl }
func (c *cpuState) Segment(s vcpu.SegmentRegister) vcpu.Segment { return c.segs[s%vcpu.NumSegments] }
func (c *cpuState) CPL() uint8                                  { return 0 }
func (c *cpuState) SetSegment(s vcpu.SegmentRegister, seg vcpu.Segment) {
	c.segs[s%vcpu.NumSegments] = seg
}
func (c *cpuState) SetControl(r vcpu.ControlRegisters) { c.ctrl = r }
func (c *cpuState) SetDescriptorTables(gb uint64, gl uint16, ib uint64, il uint16) {
	c.gdt, c.idt = [2]uint64{gb, uint64(gl)}, [2]uint64{ib, uint64(il)}
}
func (c *cpuState) AdvanceRIP(n uint8) { c.rip += uint64(n) }
func (c *cpuState) InjectException(v uint8, _ uint32, _ bool) {
	panic("unexpected exception injected")
}
func (c *cpuState) InjectInterrupt(v uint8)     { c.pending = int(v); c.injected++ }
func (c *cpuState) Interruptible() bool         { return c.rflags&rflagsIF != 0 && c.pending < 0 }
func (c *cpuState) RequestInterruptWindow(bool) {}
func (c *cpuState) NMIAllowed() bool            { return c.pending < 0 }
func (c *cpuState) InjectNMI()                  { c.pending = 2 }
func (c *cpuState) RequestNMIWindow(bool)       {}
func (c *cpuState) SetTSCOffset(int64)          {}
func (c *cpuState) Dump() string                { return "TEST CPU" }
func (c *cpuState) EngineMSR(uint32, bool, uint64) (uint64, vcpu.MSRStatus) {
	return 0, vcpu.MSRNotEngine
}

// flat32 puts the vCPU in 32-bit protected mode with flat segments and
// interrupts on, as a boot loader or an AP trampoline leaves it.
func (c *cpuState) flat32(rip uint64) {
	for s := range c.segs {
		c.segs[s] = vcpu.Segment{Selector: 0x18, Limit: 0xffffffff, Attributes: 0xc93}
	}
	c.segs[vcpu.CS] = vcpu.Segment{Selector: 0x10, Limit: 0xffffffff, Attributes: 0xc9b}
	c.ctrl = vcpu.ControlRegisters{CR0: 0x11}
	c.rip, c.rflags = rip, 2|rflagsIF
}

// entry is what a steppedCPU saw at one entry into the guest.
type entry struct {
	rip      uint64
	rflags   uint64
	cs       vcpu.Segment
	ctrl     vcpu.ControlRegisters
	regs     [vcpu.NumGPRs]uint64
	injected int // the vector injected at this entry, or -1
}

// steppedCPU is an engine vCPU the test drives one exit at a time: each
// Run reports its entry on entered and returns the exit the test sends on
// exits. The test changes the state only between receiving an entry and
// sending the exit, while the vCPU's goroutine waits in Run.
type steppedCPU struct {
	cpuState
	code    uint64 // RIP of the MMIO store instruction
	entered chan entry
	exits   chan vcpu.Exit
	done    chan struct{}
	kicks   atomic.Int32
}

func newSteppedCPU() *steppedCPU {
	return &steppedCPU{cpuState: cpuState{pending: -1}, entered: make(chan entry),
		exits: make(chan vcpu.Exit), done: make(chan struct{})}
}

func (c *steppedCPU) Run(e *vcpu.Exit) error {
	in := entry{rip: c.rip, rflags: c.rflags, cs: c.segs[vcpu.CS], ctrl: c.ctrl, regs: c.regs, injected: c.pending}
	c.pending = -1
	*e = vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt}
	select {
	case c.entered <- in:
	case <-c.done:
		return nil
	}
	select {
	case x := <-c.exits:
		*e = x
	case <-c.done:
	}
	return nil
}

func (c *steppedCPU) next(t *testing.T, who string) entry {
	t.Helper()
	select {
	case e := <-c.entered:
		return e
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not enter the guest", who)
	}
	return entry{}
}

// notEntered checks that the vCPU stays out of the guest for a while.
func (c *steppedCPU) notEntered(t *testing.T, who string) {
	t.Helper()
	select {
	case e := <-c.entered:
		t.Fatalf("%s entered the guest at RIP %#x CS %+v", who, e.rip, e.cs)
	case <-time.After(30 * time.Millisecond):
	}
}

func (c *steppedCPU) send(t *testing.T, x vcpu.Exit) {
	t.Helper()
	select {
	case c.exits <- x:
	case <-time.After(5 * time.Second):
		t.Fatal("the vCPU does not take its exit")
	}
}

// store makes the vCPU's next exit its 4-byte store of v to gpa, by the
// instruction at its code address, emulated by its own x86emu.
func (c *steppedCPU) store(t *testing.T, gpa uint64, v uint32) {
	t.Helper()
	c.rip, c.regs[vcpu.RAX], c.regs[vcpu.RBX] = c.code, gpa, uint64(v)
	c.send(t, vcpu.Exit{Reason: vcpu.ReasonNestedPageFault, NPF: vcpu.NPFExit{GPA: gpa, Write: true}})
}

func newSMPMachine(t *testing.T, vcpus int) (*Machine, *syncBuffer) {
	t.Helper()
	layout, err := platform.NewLayout(64<<20, vcpus)
	if err != nil {
		t.Fatal(err)
	}
	console := syncBuffer{}
	host := hwfake.CPUID{{Leaf: 0}: {EAX: 0xd}, {Leaf: 1}: {EAX: signature, EBX: 0x0800}}
	m, err := New(Config{Name: "t", RAM: guests.NewRAM(make([]byte, 64<<20), 0), Layout: layout, Clock: &atomicClock{},
		Now: time.Now, Cycles: func() uint64 { return 0 }, TSCHz: 1e9, HostCPUID: host, Console: &console})
	if err != nil {
		t.Fatal(err)
	}
	return m, &console
}

// syncBuffer is a console several vCPUs print to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type atomicClock struct{ now atomic.Int64 }

func (c *atomicClock) Now() int64 { return c.now.Load() }

func writeCode(t *testing.T, m *Machine, gpa uint64, code []byte) {
	t.Helper()
	if err := m.cfg.RAM.WriteGuest(gpa, code); err != nil {
		t.Fatal(err)
	}
}

// runAll runs the vCPUs' loops and, at the end of the test, stops the VM
// and checks that every loop returned.
func runAll(t *testing.T, m *Machine, done []chan struct{}) {
	var wg sync.WaitGroup
	for _, v := range m.VCPUs() {
		wg.Add(1)
		go func(v *guests.VCPU) {
			defer wg.Done()
			if err := v.Run(); err != nil {
				t.Errorf("vCPU %d: Run: %v", v.APICID, err)
			}
		}(v)
	}
	t.Cleanup(func() {
		m.VM.Stop("test over")
		for _, d := range done {
			close(d)
		}
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(5 * time.Second):
			t.Error("a vCPU's Run did not return after the VM stopped")
		}
	})
}

// TestSMPStartupIPIsAndINIT boots an AP the way Linux does (INIT, SIPI,
// SIPI through the BSP's xAPIC ICR, each store emulated by the BSP's
// instruction emulator), then exchanges IPIs: the AP wakes the halted BSP,
// interrupts it while it runs (Kick), the BSP sends the running AP back to
// wait-for-SIPI with INIT and restarts it, and INIT to the BSP resets the
// VM. Run with -race: the two vCPUs' goroutines share the machine.
func TestSMPStartupIPIsAndINIT(t *testing.T) {
	m, _ := newSMPMachine(t, 2)
	bsp, ap := newSteppedCPU(), newSteppedCPU()
	bsp.flat32(0x8000)
	bsp.code = 0x8000
	writeCode(t, m, 0x8000, store32)
	writeCode(t, m, 0x9a000, store16)
	writeCode(t, m, 0x9b000, store16)
	boot := loader.BootState{RIP: 0x8000, RFLAGS: 2 | rflagsIF, Segments: bsp.segs, Control: bsp.ctrl}
	vb, err := m.AddVCPU(bsp, 0, &boot)
	if err != nil {
		t.Fatal(err)
	}
	va, err := m.AddVCPU(ap, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	vb.Kick = func() { bsp.kicks.Add(1) }
	va.Kick = func() { ap.kicks.Add(1) }
	runAll(t, m, []chan struct{}{bsp.done, ap.done})

	if e := bsp.next(t, "the BSP"); e.rip != 0x8000 || e.cs.Attributes != 0xc9b {
		t.Fatalf("BSP entered at %#x with CS %+v, want its boot state", e.rip, e.cs)
	}
	ap.notEntered(t, "the AP before any INIT/SIPI")

	// The BSP enables its APIC and sends INIT, SIPI 0x9a, SIPI 0x9a.
	step := func(c *steppedCPU, who string, gpa uint64, v uint32) entry {
		t.Helper()
		c.store(t, gpa, v)
		return c.next(t, who)
	}
	if e := step(bsp, "the BSP", apicSVR, 0x1ff); e.rip != 0x8002 {
		t.Fatalf("after the emulated store the BSP's RIP is %#x, want 0x8002", e.rip)
	}
	step(bsp, "the BSP", apicICRHigh, 1<<24)
	step(bsp, "the BSP", apicICRLow, icrINIT)
	ap.notEntered(t, "the AP after INIT")
	bsp.store(t, apicICRLow, icrSIPI|0x9a)
	a := ap.next(t, "the AP after SIPI")
	want := vcpu.Segment{Selector: 0x9a00, Base: 0x9a000, Limit: 0xffff, Attributes: 0x9b}
	if a.cs != want || a.rip != 0 || a.rflags != 2 || a.ctrl != (vcpu.ControlRegisters{CR0: 0x60000010}) || a.regs[vcpu.RDX] != signature {
		t.Fatalf("AP started at CS %+v RIP %#x RFLAGS %#x control %+v EDX %#x; want real mode at 9a00:0000, the INIT state",
			a.cs, a.rip, a.rflags, a.ctrl, a.regs[vcpu.RDX])
	}
	bsp.next(t, "the BSP")
	step(bsp, "the BSP", apicICRLow, icrSIPI|0x9a) // the second SIPI: ignored
	if ap.kicks.Load() != 0 {
		t.Errorf("the AP was kicked %d times while it waited or by the ignored SIPI", ap.kicks.Load())
	}

	// The BSP halts; the AP's fixed IPI (vector 0x40, from real mode at
	// the SIPI page) wakes it, without a kick: it was not in the guest.
	bsp.rflags |= rflagsIF
	bsp.send(t, vcpu.Exit{Reason: vcpu.ReasonHLT, InstructionLength: 1})
	waitFor(t, "the BSP's HLT", func() bool { return m.VM.Stats.Exits[vcpu.ReasonHLT].Load() == 1 })
	if e := step(ap, "the AP", apicICRHigh, 0); e.rip != 4 {
		t.Errorf("AP RIP after its 16-bit store = %#x, want 4", e.rip)
	}
	ap.store(t, apicICRLow, 0x40)
	if e := bsp.next(t, "the halted BSP"); e.injected != 0x40 || e.rip != 0x8003 {
		t.Fatalf("BSP woke at RIP %#x with vector %#x injected, want 0x8003 and 0x40", e.rip, e.injected)
	}
	ap.next(t, "the AP")
	if n := bsp.kicks.Load(); n != 0 {
		t.Errorf("the halted BSP was kicked %d times", n)
	}

	// The BSP, in the guest, gets vector 0x41: it is kicked, and takes the
	// interrupt at the entry after the exit the kick causes.
	step(bsp, "the BSP", apicEOI, 0)
	step(ap, "the AP", apicICRLow, 0x41)
	if n := bsp.kicks.Load(); n != 1 {
		t.Fatalf("IPI to the running BSP: %d kicks, want 1", n)
	}
	bsp.send(t, vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt})
	if e := bsp.next(t, "the BSP"); e.injected != 0x41 {
		t.Fatalf("BSP re-entered with vector %#x injected, want 0x41", e.injected)
	}

	// INIT to the running AP: kicked, it stops in wait-for-SIPI; SIPI 0x9b
	// restarts it with a clean INIT state.
	step(bsp, "the BSP", apicICRHigh, 1<<24)
	step(bsp, "the BSP", apicICRLow, icrINIT)
	if n := ap.kicks.Load(); n != 1 {
		t.Fatalf("INIT to the running AP: %d kicks, want 1", n)
	}
	ap.send(t, vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt})
	waitFor(t, "the AP's wait-for-SIPI", m.APICs.APICs[1].WaitingForSIPI)
	ap.notEntered(t, "the AP after the second INIT")
	bsp.store(t, apicICRLow, icrSIPI|0x9b)
	a = ap.next(t, "the AP after the second SIPI")
	if a.cs.Selector != 0x9b00 || a.cs.Base != 0x9b000 || a.rip != 0 || a.regs[vcpu.RAX] != 0 || a.regs[vcpu.RBX] != 0 {
		t.Errorf("AP restarted at %#x:%#x (base %#x) with RAX %#x RBX %#x, want 9b00:0000 and cleared registers",
			a.cs.Selector, a.rip, a.cs.Base, a.regs[vcpu.RAX], a.regs[vcpu.RBX])
	}
	bsp.next(t, "the BSP")

	// INIT to the BSP: a reset of the platform.
	ap.code = 0
	step(ap, "the AP", apicICRHigh, 0)
	ap.store(t, apicICRLow, icrINIT)
	ap.next(t, "the AP")
	if n := bsp.kicks.Load(); n != 2 {
		t.Errorf("INIT to the running BSP: %d kicks, want 2", n)
	}
	bsp.send(t, vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt})
	waitFor(t, "the VM's reset", func() bool { return m.VM.State() == guests.Stopped })
	if reason, _, _ := m.VM.StopReason(); !strings.Contains(reason, "INIT to the boot vCPU") {
		t.Errorf("stop reason %q", reason)
	}
	bsp.notEntered(t, "the BSP after INIT")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 5000; i++ {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// loopCPU is an engine vCPU whose "guest" runs a fixed program of device
// accesses, rounds times, as fast as the run loop takes its exits; then it
// waits for the end of the test.
type loopCPU struct {
	cpuState
	id, other uint32
	rounds    int
	step      int
	round     int
	finished  chan struct{}
	done      chan struct{}
	// online counts the vCPUs whose APIC is enabled: each waits for the
	// other before its first IPI, as Linux waits for its APs.
	online *atomic.Int32
	waited int
	// Checked on the vCPU's own goroutine, read after it finished.
	badCPUID, badAPICBase int
	ioapicReads           int
}

// The program: each step sets up registers and returns its exit; the next
// step may check what the core did with the previous one.
func (c *loopCPU) Run(e *vcpu.Exit) error {
	c.pending = -1 // the entry delivered what was injected
	if c.round == c.rounds && c.injected == 0 && c.waited < 5000 {
		// Done before the other vCPU's IPIs came: wait for one, with
		// interrupts on, as a guest would.
		c.waited++
		time.Sleep(time.Millisecond)
		*e = vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt}
		return nil
	}
	if c.round == c.rounds {
		close(c.finished)
		c.round++
	}
	if c.round > c.rounds {
		<-c.done
		*e = vcpu.Exit{Reason: vcpu.ReasonExternalInterrupt}
		return nil
	}
	io := func(port uint16, size uint8, in bool, v uint64) {
		c.regs[vcpu.RAX] = v
		*e = vcpu.Exit{Reason: vcpu.ReasonIO, InstructionLength: 1, IO: vcpu.IOExit{Port: port, Size: size, In: in}}
	}
	mmio := func(gpa uint64, write bool, v uint32) {
		code := uint64(0x8000)
		if !write {
			code = 0x8010
		}
		c.rip, c.regs[vcpu.RAX], c.regs[vcpu.RBX] = code, gpa, uint64(v)
		*e = vcpu.Exit{Reason: vcpu.ReasonNestedPageFault, NPF: vcpu.NPFExit{GPA: gpa, Write: write, Read: !write}}
	}
	msr := func(write bool, n uint32, v uint64) {
		c.regs[vcpu.RCX], c.regs[vcpu.RAX], c.regs[vcpu.RDX] = uint64(n), v&0xffffffff, v>>32
		r := vcpu.ReasonMSRRead
		if write {
			r = vcpu.ReasonMSRWrite
		}
		*e = vcpu.Exit{Reason: r, InstructionLength: 2, MSR: n}
	}
	switch c.step {
	case 0:
		if c.round == 0 {
			c.flat32(0x8000) // what the AP trampoline would do
		}
		mmio(apicSVR, true, 0x1ff)
	case 1:
		if c.round == 0 {
			c.online.Add(1)
			for i := 0; i < 5000 && c.online.Load() < 2; i++ {
				time.Sleep(time.Millisecond)
			}
		}
		ch := uint64('a' + c.id)
		if c.round%16 == 15 {
			ch = '\n'
		}
		io(0x3f8, 1, false, ch)
	case 2:
		io(0x3fd, 1, true, 0)
	case 3:
		io(0x80, 1, false, 0) // unclaimed: the port-0x80 delay
	case 4:
		io(0x70, 1, false, 0x0a)
	case 5:
		io(0x71, 1, true, 0)
	case 6:
		io(platform.PMTimerPort, 4, true, 0)
	case 7:
		io(0x43, 1, false, 0x34)
	case 8:
		io(0x40, 1, false, 0x9c)
	case 9:
		io(0x40, 1, false, 0x2e)
	case 10:
		c.regs[vcpu.RAX], c.regs[vcpu.RCX] = 1, 0
		*e = vcpu.Exit{Reason: vcpu.ReasonCPUID, InstructionLength: 2}
	case 11:
		if uint32(c.regs[vcpu.RBX])>>24 != c.id {
			c.badCPUID++
		}
		msr(true, 0x2ff, 0xc06)
	case 12:
		msr(false, 0x1b, 0) // IA32_APIC_BASE, from the vCPU's own LAPIC
	case 13:
		if bsp := c.regs[vcpu.RAX]&(1<<8) != 0; bsp != (c.id == 0) {
			c.badAPICBase++
		}
		mmio(0xfec00000, true, 0x10+2*c.id) // IOAPIC index: a redirection entry
	case 14:
		mmio(0xfec00010, false, 0)
	case 15:
		c.ioapicReads++
		mmio(apicICRHigh, true, c.other<<24)
	case 16:
		mmio(apicICRLow, true, 0x50+c.id) // fixed IPI to the other vCPU
	case 17:
		mmio(apicEOI, true, 0)
	case 18:
		io(0x21, 1, true, 0) // PIC mask register
	case 19:
		io(0x64, 1, true, 0) // i8042 status
	case 20:
		io(0xcf8, 4, false, 0x80000000) // PCI configuration: the host bridge's ID
	case 21:
		io(0xcfc, 4, true, 0)
		c.step = -1
		c.round++
	}
	c.step++
	return nil
}

// TestConcurrentVCPUsShareDevices runs two vCPUs at once against one
// machine: serial port, RTC, PM timer, PIT, PIC, i8042, PCI configuration
// ports, the unclaimed port 0x80, CPUID, MSRs, the IOAPIC through each
// vCPU's emulator, and IPIs between them.
// With -race it finds unsynchronized device state; it also checks that
// each vCPU reads its own APIC ID and IA32_APIC_BASE.BSP.
func TestConcurrentVCPUsShareDevices(t *testing.T) {
	m, console := newSMPMachine(t, 2)
	writeCode(t, m, 0x8000, store32)
	writeCode(t, m, 0x8010, load32)
	const rounds = 200
	var cpus [2]*loopCPU
	var done []chan struct{}
	var kicks, online atomic.Int32
	for i := range cpus {
		c := &loopCPU{cpuState: cpuState{pending: -1}, id: uint32(i), other: uint32(1 - i), rounds: rounds,
			finished: make(chan struct{}), done: make(chan struct{}), online: &online}
		cpus[i] = c
		done = append(done, c.done)
		var bs *loader.BootState
		if i == 0 {
			c.flat32(0x8000)
			bs = &loader.BootState{RIP: c.rip, RFLAGS: c.rflags, Segments: c.segs, Control: c.ctrl}
		}
		v, err := m.AddVCPU(c, i, bs)
		if err != nil {
			t.Fatal(err)
		}
		v.Kick = func() { kicks.Add(1) }
	}
	// The AP is started as the BSP's guest would.
	ap := m.APICs.APICs[1]
	ap.DeliverINIT()
	ap.DeliverSIPI(0x10)
	runAll(t, m, done)
	for i, c := range cpus {
		select {
		case <-c.finished:
		case <-time.After(60 * time.Second):
			t.Fatalf("vCPU %d did not finish its %d rounds", i, rounds)
		}
	}
	if m.VM.State() != guests.Running {
		reason, _, _ := m.VM.StopReason()
		t.Fatalf("the VM stopped: %s", reason)
	}
	for i, c := range cpus {
		if c.badCPUID != 0 || c.badAPICBase != 0 || c.ioapicReads != rounds {
			t.Errorf("vCPU %d: %d wrong CPUID APIC IDs, %d wrong IA32_APIC_BASE, %d IOAPIC reads of %d",
				i, c.badCPUID, c.badAPICBase, c.ioapicReads, rounds)
		}
		if c.injected == 0 {
			t.Errorf("vCPU %d never took the other's IPI", i)
		}
	}
	if got := m.VM.Ports.Unclaimed.Load(); got != 2*rounds {
		t.Errorf("%d unclaimed port accesses counted, want %d", got, 2*rounds)
	}
	m.Console.Flush()
	out := console.String()
	if !strings.Contains(out, "[t] aaaa") || !strings.Contains(out, "[t] bbbb") {
		t.Errorf("console lacks one vCPU's output:\n%.400s", out)
	}
}

func TestAddVCPUChecks(t *testing.T) {
	m, _ := newSMPMachine(t, 2)
	bs := &loader.BootState{}
	if _, err := m.AddVCPU(newSteppedCPU(), 1, nil); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("AP before the BSP: %v", err)
	}
	if _, err := m.AddVCPU(newSteppedCPU(), 0, bs); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddVCPU(newSteppedCPU(), 1, bs); err == nil || !strings.Contains(err.Error(), "INIT and SIPI") {
		t.Errorf("AP with a boot state: %v", err)
	}
	ap := newSteppedCPU()
	if _, err := m.AddVCPU(ap, 1, nil); err != nil {
		t.Fatal(err)
	}
	if ap.rip != 0xfff0 || ap.segs[vcpu.CS].Base != 0xffff0000 || ap.ctrl.CR0 != 0x60000010 {
		t.Errorf("a new AP holds RIP %#x CS.base %#x CR0 %#x, want the INIT state", ap.rip, ap.segs[vcpu.CS].Base, ap.ctrl.CR0)
	}
	if _, err := m.AddVCPU(newSteppedCPU(), 2, nil); err == nil || !strings.Contains(err.Error(), "beyond") {
		t.Errorf("vCPU beyond the layout: %v", err)
	}
	m2, _ := newSMPMachine(t, 2)
	if _, err := m2.AddVCPU(newSteppedCPU(), 0, bs); err != nil {
		t.Fatal(err)
	}
	m2.VM.Stop("started and stopped")
	m2.VCPUs()[0].Run()
	if _, err := m2.AddVCPU(newSteppedCPU(), 1, nil); err == nil || !strings.Contains(err.Error(), "after the VM started") {
		t.Errorf("vCPU added to a started VM: %v", err)
	}
}
