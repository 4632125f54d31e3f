package i8042

import "testing"

type irqRecorder struct{ level map[uint32]bool }

func (r *irqRecorder) SetIRQ(gsi uint32, level bool) {
	if r.level == nil {
		r.level = map[uint32]bool{}
	}
	r.level[gsi] = level
}

type harness struct {
	c      *Controller
	irq    *irqRecorder
	resets int
}

func newController() *harness {
	h := &harness{irq: &irqRecorder{}}
	h.c = New(Config{Reset: func() { h.resets++ }, Lines: h.irq, KbdIRQ: KeyboardIRQ, AuxIRQ: AuxIRQ})
	return h
}

func (h *harness) cmd(v uint8)   { h.c.WritePort(CommandPort, 1, uint32(v)) }
func (h *harness) data(v uint8)  { h.c.WritePort(DataPort, 1, uint32(v)) }
func (h *harness) status() uint8 { return uint8(h.c.ReadPort(CommandPort, 1)) }

// read waits for OBF as i8042_wait_read does (bounded) and reads 0x60.
func (h *harness) read(t *testing.T) uint8 {
	t.Helper()
	if h.status()&StatusOutputFull == 0 {
		t.Fatal("output buffer empty")
	}
	return uint8(h.c.ReadPort(DataPort, 1))
}

// TestLinuxProbe replays the controller part of Linux's i8042 probe
// (drivers/input/serio/i8042.c): flush, self-test, command byte
// read/write, AUX loopback, interface tests.
func TestLinuxProbe(t *testing.T) {
	h := newController()
	if st := h.status(); st&StatusOutputFull != 0 || st&StatusInputFull != 0 {
		t.Fatalf("status after POST %#x: nothing to flush, never busy", st)
	}
	h.cmd(CmdSelfTest)
	if got := h.read(t); got != SelfTestPassed {
		t.Fatalf("self-test answered %#x", got)
	}
	if h.status()&StatusOutputFull != 0 {
		t.Fatal("OBF still set after reading")
	}
	h.cmd(CmdReadCommandByte)
	ctr := h.read(t)
	if ctr != CmdByteKbdInt|CmdByteSystem|CmdByteTranslate {
		t.Fatalf("command byte %#x", ctr)
	}
	h.cmd(CmdWriteCommandByte)
	h.data(ctr | CmdByteAuxOff | CmdByteKbdOff)
	h.cmd(CmdReadCommandByte)
	if got := h.read(t); got != ctr|CmdByteAuxOff|CmdByteKbdOff {
		t.Fatalf("command byte reads %#x after writing", got)
	}
	h.cmd(CmdKbdEnable)
	h.cmd(CmdAuxEnable)
	h.cmd(CmdReadCommandByte)
	if got := h.read(t); got != ctr {
		t.Fatalf("command byte %#x after 0xAE/0xA8, want %#x", got, ctr)
	}
	h.cmd(CmdKbdDisable)
	h.cmd(CmdReadCommandByte)
	if got := h.read(t); got&CmdByteKbdOff == 0 {
		t.Fatal("0xAD did not disable the keyboard clock")
	}
	h.cmd(CmdKbdTest)
	if got := h.read(t); got != InterfaceOK {
		t.Fatalf("keyboard interface test %#x", got)
	}

	// AUX loopback: the byte comes back from the aux side on IRQ12.
	h.cmd(CmdWriteCommandByte)
	h.data(CmdByteKbdInt | CmdByteAuxInt | CmdByteSystem)
	h.cmd(CmdWriteAuxBuffer)
	h.data(0x5A)
	if st := h.status(); st&StatusAuxData == 0 {
		t.Fatalf("loopback byte not marked aux: %#x", st)
	}
	if !h.irq.level[AuxIRQ] || h.irq.level[KeyboardIRQ] {
		t.Fatalf("IRQs %v, want 12 only", h.irq.level)
	}
	if got := h.read(t); got != 0x5A {
		t.Fatalf("loopback %#x", got)
	}
	if h.irq.level[AuxIRQ] {
		t.Fatal("IRQ12 still high after reading")
	}
}

// TestNoDevicesAnswer checks that bytes for the keyboard or mouse come
// back at once as 0xFE with the timeout bit, so atkbd/psmouse fail fast.
func TestNoDevicesAnswer(t *testing.T) {
	h := newController()
	h.data(0xF2) // ATKBD_CMD_GETID
	st := h.status()
	if st&(StatusOutputFull|StatusTimeout) != StatusOutputFull|StatusTimeout || st&StatusAuxData != 0 {
		t.Fatalf("status %#x after a keyboard byte", st)
	}
	if !h.irq.level[KeyboardIRQ] {
		t.Fatal("no IRQ1 for the keyboard answer")
	}
	if got := h.read(t); got != NoDeviceAnswers {
		t.Fatalf("keyboard answered %#x", got)
	}
	if st := h.status(); st&StatusTimeout != 0 || h.irq.level[KeyboardIRQ] {
		t.Fatalf("timeout or IRQ1 left after reading: %#x", st)
	}
	h.cmd(CmdWriteAux)
	h.data(0xFF) // PSMOUSE reset
	if st := h.status(); st&(StatusAuxData|StatusTimeout) != StatusAuxData|StatusTimeout {
		t.Fatalf("status %#x after a mouse byte", st)
	}
	if h.irq.level[AuxIRQ] {
		t.Fatal("IRQ12 raised with the aux interrupt disabled in the command byte")
	}
	if got := h.read(t); got != NoDeviceAnswers {
		t.Fatalf("mouse answered %#x", got)
	}
}

func TestResets(t *testing.T) {
	h := newController()
	h.cmd(CmdPulseReset)
	if h.resets != 1 {
		t.Fatalf("0xFE: %d resets", h.resets)
	}
	h.cmd(0xFF) // pulses nothing
	if h.resets != 1 {
		t.Fatal("0xFF reset")
	}
	h.cmd(CmdWriteOutput)
	h.data(OutputA20 | OutputResetHigh)
	if h.resets != 1 {
		t.Fatal("output port write with reset high reset")
	}
	h.cmd(CmdWriteOutput)
	h.data(OutputA20)
	if h.resets != 2 {
		t.Fatal("output port write with bit 0 clear did not reset")
	}
	h.c.WritePort(PortA, 1, uint32(PortAA20|PortAReset))
	if h.resets != 3 {
		t.Fatal("port 0x92 bit 0 did not reset")
	}
	h.c.WritePort(PortA, 1, uint32(PortAA20|PortAReset))
	if h.resets != 3 {
		t.Fatal("port 0x92 reset without a 0-to-1 transition")
	}
	if got := h.c.ReadPort(PortA, 1); got != uint32(PortAA20|PortAReset) {
		t.Fatalf("port 0x92 = %#x", got)
	}
}

func TestA20AndOutputPort(t *testing.T) {
	h := newController()
	h.cmd(CmdDisableA20)
	h.cmd(CmdReadOutput)
	if got := h.read(t); got != OutputResetHigh {
		t.Fatalf("output port %#x after 0xDD", got)
	}
	h.cmd(CmdEnableA20)
	h.cmd(CmdReadOutput)
	if got := h.read(t); got != OutputResetHigh|OutputA20 {
		t.Fatalf("output port %#x after 0xDF", got)
	}
}

func TestWideAccesses(t *testing.T) {
	h := newController()
	if got := h.c.ReadPort(CommandPort, 2); got>>8 != 0xFF || uint8(got) != h.status() {
		t.Fatalf("16-bit status read %#x", got)
	}
	if got := h.c.ReadPort(DataPort, 0); got != 0 {
		t.Fatalf("size-0 read %#x", got)
	}
	if got := h.c.ReadPort(0x61, 1); got != 0xFF {
		t.Fatalf("foreign port read %#x", got)
	}
	h.c.WritePort(CommandPort, 4, 0xFFFFFF00|uint32(CmdSelfTest))
	if got := h.read(t); got != SelfTestPassed {
		t.Fatalf("32-bit command write: %#x", got)
	}
}

func TestResetAndState(t *testing.T) {
	h := newController()
	h.data(0xF4)
	s := h.c.State()
	h.c.Reset()
	if h.irq.level[KeyboardIRQ] || h.status()&StatusOutputFull != 0 {
		t.Fatal("Reset left output pending")
	}
	s.Status |= StatusInputFull
	h.c.SetState(s)
	if !h.irq.level[KeyboardIRQ] {
		t.Fatal("SetState did not drive IRQ1")
	}
	if h.status()&StatusInputFull != 0 {
		t.Fatal("SetState kept IBF")
	}
}

type countingIRQ struct{ n int }

func (c *countingIRQ) SetIRQ(uint32, bool) { c.n++ }

func TestAccessesDoNotAllocate(t *testing.T) {
	c := New(Config{Reset: func() {}, Lines: &countingIRQ{}})
	allocs := testing.AllocsPerRun(1000, func() {
		c.WritePort(CommandPort, 1, uint32(CmdSelfTest))
		c.ReadPort(CommandPort, 1)
		c.ReadPort(DataPort, 1)
		c.WritePort(DataPort, 1, 0xF2)
		c.ReadPort(DataPort, 2)
		c.WritePort(CommandPort, 1, uint32(CmdPulseReset))
		c.WritePort(PortA, 1, 0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per access sequence", allocs)
	}
}
