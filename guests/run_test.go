package guests

import (
	"bytes"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
	"tamavisor/guests/vcpu"
)

// fakeVCPU replays a script of exits and records what the core did.
type fakeVCPU struct {
	regs      [16]uint64
	rip       uint64
	rflags    uint64
	segs      [vcpu.NumSegments]vcpu.Segment
	ctrl      vcpu.ControlRegisters
	gdt, idt  [2]uint64 // base, limit
	script    []vcpu.Exit
	runs      int
	injected  []uint8
	errorCode uint32
	window    bool
	engine    map[uint32]uint64
	// repeat, when set, is the exit of every run after the script.
	repeat *vcpu.Exit
	// onRun, when set, runs at each entry, in the guest as it were.
	onRun func(f *fakeVCPU)
}

func (f *fakeVCPU) Run(e *vcpu.Exit) error {
	if f.onRun != nil {
		f.onRun(f)
	}
	switch {
	case f.runs < len(f.script):
		*e = f.script[f.runs]
	case f.repeat != nil:
		*e = *f.repeat
	default:
		*e = vcpu.Exit{Reason: vcpu.ReasonShutdown}
	}
	f.runs++
	return nil
}
func (f *fakeVCPU) GPR(r vcpu.GPR) uint64                       { return f.regs[r] }
func (f *fakeVCPU) SetGPR(r vcpu.GPR, v uint64)                 { f.regs[r] = v }
func (f *fakeVCPU) RIP() uint64                                 { return f.rip }
func (f *fakeVCPU) SetRIP(v uint64)                             { f.rip = v }
func (f *fakeVCPU) RFLAGS() uint64                              { return f.rflags }
func (f *fakeVCPU) SetRFLAGS(v uint64)                          { f.rflags = v }
func (f *fakeVCPU) Control() vcpu.ControlRegisters              { return f.ctrl }
func (f *fakeVCPU) Segment(s vcpu.SegmentRegister) vcpu.Segment { return f.segs[s] }
func (f *fakeVCPU) CPL() uint8                                  { return 0 }
func (f *fakeVCPU) AdvanceRIP(n uint8)                          { f.rip += uint64(n) }
func (f *fakeVCPU) InjectInterrupt(v uint8)                     { f.injected = append(f.injected, v) }
func (f *fakeVCPU) Interruptible() bool                         { return true }
func (f *fakeVCPU) RequestInterruptWindow(on bool)              { f.window = on }
func (f *fakeVCPU) SetTSCOffset(int64)                          {}
func (f *fakeVCPU) Dump() string                                { return "FAKE VCPU DUMP" }
func (f *fakeVCPU) InjectException(v uint8, code uint32, _ bool) {
	f.injected = append(f.injected, v)
	f.errorCode = code
}
func (f *fakeVCPU) EngineMSR(msr uint32, write bool, v uint64) (uint64, vcpu.MSRStatus) {
	if msr != 0xc0000080 {
		return 0, vcpu.MSRNotEngine
	}
	if write {
		f.engine[msr] = v
		return 0, vcpu.MSRDone
	}
	return f.engine[msr], vcpu.MSRDone
}

type manualClock struct{ now int64 }

func (c *manualClock) Now() int64 { return c.now }

type port struct{ written []uint32 }

func (p *port) ReadPort(port uint16, size uint8) uint32     { return 0x12345678 }
func (p *port) WritePort(port uint16, size uint8, v uint32) { p.written = append(p.written, v) }

func newTestVM(t *testing.T, script ...vcpu.Exit) (*VM, *VCPU, *fakeVCPU, *bytes.Buffer) {
	t.Helper()
	var console bytes.Buffer
	vm := NewVM("test", nil, &manualClock{}, &console)
	host := hwfake.CPUID{
		{Leaf: 0}:          {EAX: 0xd, EBX: 0x68747541, ECX: 0x444d4163, EDX: 0x69746e65},
		{Leaf: 1}:          {EAX: 0x00a20f10, EBX: 0x00020800, ECX: 0xfed83203 | 1<<5, EDX: 0x178bfbff},
		{Leaf: 7}:          {EBX: 0xffffffff, ECX: 0xffffffff, EDX: 0xffffffff},
		{Leaf: 0x80000001}: {ECX: 0x75c237ff, EDX: 0x2fd3fbff},
	}
	vm.CPUID = NewCPUIDPolicy(host, 2)
	f := &fakeVCPU{script: script, rip: 0x1000, engine: map[uint32]uint64{}}
	v := vm.AddVCPU(f, 1)
	return vm, v, f, &console
}

func TestCPUIDExit(t *testing.T) {
	vm, v, f, _ := newTestVM(t, vcpu.Exit{Reason: vcpu.ReasonCPUID, InstructionLength: 2})
	f.regs[vcpu.RAX] = 1
	if err := v.Run(); err != nil {
		t.Fatal(err)
	}
	ecx, ebx := uint32(f.regs[vcpu.RCX]), uint32(f.regs[vcpu.RBX])
	if ecx&leaf1ECXVMX != 0 || ecx&leaf1ECXHypervisor == 0 || ecx&leaf1ECXXSAVE != 0 {
		t.Errorf("leaf 1 ECX = %#x: VMX must be hidden, the hypervisor bit set, XSAVE hidden", ecx)
	}
	if ebx>>24 != 1 || ebx>>16&0xff != 2 {
		t.Errorf("leaf 1 EBX = %#x: want APIC ID 1, 2 logical CPUs", ebx)
	}
	if f.rip != 0x1002 {
		t.Errorf("RIP = %#x, want 0x1002", f.rip)
	}
	if got := vm.Stats.Exits[vcpu.ReasonCPUID].Load(); got != 1 {
		t.Errorf("CPUID exits counted %d", got)
	}
}

func TestCPUIDHypervisorLeafAndHiddenFeatures(t *testing.T) {
	_, _, _, _ = newTestVM(t)
	p := NewCPUIDPolicy(hwfake.CPUID{{Leaf: 7}: {EBX: 0xffffffff}, {Leaf: 0x80000001}: {ECX: 0xffffffff}}, 1)
	a, b, c, d := p.Leaf(0x40000000, 0, 0)
	sig := string([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24), byte(c), byte(c >> 8), byte(c >> 16), byte(c >> 24), byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)})
	if a != 0x40000001 || sig != HypervisorSignature {
		t.Errorf("leaf 0x40000000 = %#x %q", a, sig)
	}
	if _, ebx, _, _ := p.Leaf(7, 0, 0); ebx&(1<<5) != 0 || ebx&(1<<16) != 0 {
		t.Errorf("leaf 7 EBX = %#x: AVX2 and AVX-512 must be hidden", ebx)
	}
	if _, _, ecx, _ := p.Leaf(0x80000001, 0, 0); ecx&ext1ECXSVM != 0 {
		t.Errorf("extended leaf ECX = %#x: SVM must be hidden", ecx)
	}
}

func TestPortIO(t *testing.T) {
	vm, v, f, _ := newTestVM(t,
		vcpu.Exit{Reason: vcpu.ReasonIO, InstructionLength: 1, IO: vcpu.IOExit{Port: 0x3f8, Size: 1}},
		vcpu.Exit{Reason: vcpu.ReasonIO, InstructionLength: 1, IO: vcpu.IOExit{Port: 0x3f8, Size: 2, In: true}},
		vcpu.Exit{Reason: vcpu.ReasonIO, InstructionLength: 1, IO: vcpu.IOExit{Port: 0x3f8, Size: 4, In: true}},
	)
	p := &port{}
	if err := vm.Ports.Register("uart", 0x3f8, 8, p); err != nil {
		t.Fatal(err)
	}
	f.regs[vcpu.RAX] = 0xffffffff_aabbcc41
	// Check each step by replaying the script one exit at a time.
	v.VM.state.Store(int32(Running))
	for i := 0; i < 3; i++ {
		if err := f.Run(&v.exit); err != nil {
			t.Fatal(err)
		}
		v.dispatch(&v.exit)
		switch i {
		case 0:
			if len(p.written) != 1 || p.written[0] != 0x41 {
				t.Errorf("OUT wrote %#x, want 0x41", p.written)
			}
		case 1:
			if f.regs[vcpu.RAX] != 0xffffffff_aabb5678 {
				t.Errorf("IN AX left RAX = %#x, want upper bits kept", f.regs[vcpu.RAX])
			}
		case 2:
			if f.regs[vcpu.RAX] != 0x12345678 {
				t.Errorf("IN EAX left RAX = %#x, want zero-extended", f.regs[vcpu.RAX])
			}
		}
	}
	if f.rip != 0x1003 {
		t.Errorf("RIP = %#x after three 1-byte instructions", f.rip)
	}
}

func TestMSRs(t *testing.T) {
	vm, v, f, _ := newTestVM(t)
	vm.state.Store(int32(Running))
	// Unknown MSR: #GP, RIP stays.
	f.regs[vcpu.RCX] = 0x12345
	v.dispatch(&vcpu.Exit{Reason: vcpu.ReasonMSRRead, MSR: 0x12345, InstructionLength: 2})
	if len(f.injected) != 1 || f.injected[0] != vectorGP || f.rip != 0x1000 {
		t.Errorf("unknown RDMSR: injected %v, RIP %#x; want #GP and RIP unchanged", f.injected, f.rip)
	}
	// MTRR default type reads write-back, writes are kept.
	v.dispatch(&vcpu.Exit{Reason: vcpu.ReasonMSRRead, MSR: msrMTRRDefType, InstructionLength: 2})
	if f.regs[vcpu.RAX] != 0xc06 || f.rip != 0x1002 {
		t.Errorf("MTRRdefType = %#x", f.regs[vcpu.RAX])
	}
	f.regs[vcpu.RAX], f.regs[vcpu.RDX] = 0x0500, 0x1
	v.dispatch(&vcpu.Exit{Reason: vcpu.ReasonMSRWrite, MSR: 0xc0000080, InstructionLength: 2})
	if f.engine[0xc0000080] != 0x1_00000500 {
		t.Errorf("EFER write reached the engine as %#x", f.engine[0xc0000080])
	}
	// IA32_FEATURE_CONTROL: locked, VMX off.
	v.dispatch(&vcpu.Exit{Reason: vcpu.ReasonMSRRead, MSR: msrFeatureControl, InstructionLength: 2})
	if f.regs[vcpu.RAX] != 1 || f.regs[vcpu.RDX] != 0 {
		t.Errorf("FEATURE_CONTROL = %#x", f.regs[vcpu.RAX])
	}
}

func TestGuestFaultsStopOnlyTheVM(t *testing.T) {
	for _, c := range []struct {
		exit vcpu.Exit
		want string
	}{
		{vcpu.Exit{Reason: vcpu.ReasonShutdown}, "triple fault"},
		{vcpu.Exit{Reason: vcpu.ReasonInvalidState, Detail: "bad CR0"}, "bad CR0"},
		{vcpu.Exit{Reason: vcpu.ReasonNestedPageFault, NPF: vcpu.NPFExit{GPA: 0xdead000, Execute: true}}, "instruction fetch from 0xdead000"},
		{vcpu.Exit{Reason: vcpu.ReasonUnhandled, VendorCode: 0x8e}, "vendor code 0x8e"},
		{vcpu.Exit{Reason: vcpu.ReasonIO, IO: vcpu.IOExit{Port: 0x1f0, String: true, Size: 2}}, "string port I/O"},
	} {
		vm, v, _, console := newTestVM(t, c.exit)
		if err := v.Run(); err != nil {
			t.Fatalf("%v: Run returned a hypervisor error %v", c.exit.Reason, err)
		}
		reason, _, _ := vm.StopReason()
		if vm.State() != Stopped || !strings.Contains(reason, c.want) {
			t.Errorf("%v: state %v reason %q, want stopped with %q", c.exit.Reason, vm.State(), reason, c.want)
		}
		if !strings.Contains(console.String(), "FAKE VCPU DUMP") {
			t.Errorf("%v: no register dump on the console:\n%s", c.exit.Reason, console.String())
		}
	}
}

func TestHypercallAndXSETBVRaiseUD(t *testing.T) {
	vm, v, f, _ := newTestVM(t)
	vm.state.Store(int32(Running))
	v.dispatch(&vcpu.Exit{Reason: vcpu.ReasonHypercall})
	v.dispatch(&vcpu.Exit{Reason: vcpu.ReasonXSETBV})
	if len(f.injected) != 2 || f.injected[0] != vectorUD || f.injected[1] != vectorUD || vm.State() != Running {
		t.Errorf("injected %v, state %v", f.injected, vm.State())
	}
}

func TestExitWithCode(t *testing.T) {
	vm, _, _, _ := newTestVM(t)
	vm.ExitWithCode(3)
	vm.Stop("later reason")
	reason, code, ok := vm.StopReason()
	if !ok || code != 3 || reason != "exit code 3" {
		t.Errorf("StopReason = %q %d %v", reason, code, ok)
	}
}

func TestDispatchDoesNotAllocate(t *testing.T) {
	vm, v, f, _ := newTestVM(t)
	vm.state.Store(int32(Running))
	if err := vm.Ports.Register("uart", 0x3f8, 8, &port{written: make([]uint32, 0, 10000)}); err != nil {
		t.Fatal(err)
	}
	cpuid := vcpu.Exit{Reason: vcpu.ReasonCPUID, InstructionLength: 2}
	out := vcpu.Exit{Reason: vcpu.ReasonIO, InstructionLength: 1, IO: vcpu.IOExit{Port: 0x3fd, Size: 1, In: true}}
	msr := vcpu.Exit{Reason: vcpu.ReasonMSRWrite, MSR: msrMTRRDefType, InstructionLength: 2}
	n := testing.AllocsPerRun(1000, func() {
		f.regs[vcpu.RAX] = 1
		v.dispatch(&cpuid)
		v.dispatch(&out)
		v.dispatch(&msr)
	})
	if n != 0 {
		t.Errorf("CPUID/IN/WRMSR dispatch allocates %.1f times", n)
	}
}

func (f *fakeVCPU) SetSegment(s vcpu.SegmentRegister, seg vcpu.Segment) { f.segs[s] = seg }
func (f *fakeVCPU) SetControl(c vcpu.ControlRegisters)                  { f.ctrl = c }
func (f *fakeVCPU) SetDescriptorTables(gdtBase uint64, gdtLimit uint16, idtBase uint64, idtLimit uint16) {
	f.gdt = [2]uint64{gdtBase, uint64(gdtLimit)}
	f.idt = [2]uint64{idtBase, uint64(idtLimit)}
}
func (f *fakeVCPU) NMIAllowed() bool      { return true }
func (f *fakeVCPU) InjectNMI()            { f.injected = append(f.injected, 2) }
func (f *fakeVCPU) RequestNMIWindow(bool) {}
