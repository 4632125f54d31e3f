package pit

import (
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// fake8254 models channel 2 in mode 0 and the latch/byte-toggle logic of
// all three channels, counting down one tick per port access to 0x61.
type fake8254 struct {
	portB     uint8
	mode      [3]uint8 // last control word per channel
	count     [3]uint16
	latched   [3]bool
	latch     [3]uint16
	readHigh  [3]bool
	writeHigh [3]bool
	loaded    bool
	commands  []uint8
}

func (f *fake8254) tick() {
	if f.loaded && f.portB&PortBGate2 != 0 && f.count[2] != 0 {
		f.count[2]--
	}
}

func (f *fake8254) out2() bool { return f.loaded && f.count[2] == 0 }

func (f *fake8254) In8(port uint16) uint8 {
	switch {
	case port == PortB:
		f.tick()
		v := f.portB & 0x0F
		if f.out2() {
			v |= PortBOut2
		}
		return v
	case port >= Channel0Port && port <= Channel2Port:
		ch := port - Channel0Port
		v := f.count[ch]
		if f.latched[ch] {
			v = f.latch[ch]
		}
		if !f.readHigh[ch] {
			f.readHigh[ch] = true
			return uint8(v)
		}
		f.readHigh[ch] = false
		f.latched[ch] = false
		return uint8(v >> 8)
	}
	return 0xFF
}

func (f *fake8254) Out8(port uint16, v uint8) {
	switch {
	case port == PortB:
		f.portB = v
	case port == CommandPort:
		f.commands = append(f.commands, v)
		ch := v >> 6
		if ch == 3 {
			return
		}
		if v&0x30 == 0 {
			f.latched[ch] = true
			f.latch[ch] = f.count[ch]
			return
		}
		f.mode[ch] = v
		f.writeHigh[ch] = false
		if ch == 2 {
			f.loaded = false // mode 0: OUT goes low on the control word
		}
	case port >= Channel0Port && port <= Channel2Port:
		ch := port - Channel0Port
		if !f.writeHigh[ch] {
			f.count[ch] = f.count[ch]&0xFF00 | uint16(v)
			f.writeHigh[ch] = true
			return
		}
		f.count[ch] = f.count[ch]&0x00FF | uint16(v)<<8
		f.writeHigh[ch] = false
		if ch == 2 {
			f.loaded = true
		}
	}
}

func (f *fake8254) In16(uint16) uint16   { return 0xFFFF }
func (f *fake8254) In32(uint16) uint32   { return 0xFFFFFFFF }
func (f *fake8254) Out16(uint16, uint16) {}
func (f *fake8254) Out32(uint16, uint32) {}

func TestStartCountdownRegisterWrites(t *testing.T) {
	p := hwfake.NewPorts()
	p.Values[PortB] = 0x32 // speaker on, refresh toggle and OUT2 status bits set
	New(p).StartCountdown(0x1234)
	var w []hwfake.PortAccess
	for _, a := range p.Accesses {
		if a.Write {
			w = append(w, a)
		}
	}
	want := []hwfake.PortAccess{
		{Write: true, Port: PortB, Width: 1, Value: 0x01},       // gate on, speaker off, status bits not written back
		{Write: true, Port: CommandPort, Width: 1, Value: 0xB0}, // channel 2, LSB/MSB, mode 0, binary
		{Write: true, Port: Channel2Port, Width: 1, Value: 0x34},
		{Write: true, Port: Channel2Port, Width: 1, Value: 0x12},
	}
	if len(w) != len(want) {
		t.Fatalf("writes %+v, want %+v", w, want)
	}
	for i := range want {
		if w[i] != want[i] {
			t.Errorf("write %d = %+v, want %+v", i, w[i], want[i])
		}
	}
}

func TestCountdownExpires(t *testing.T) {
	f := &fake8254{}
	pit := New(f)
	pit.StartCountdown(100)
	polls := 0
	for !pit.Expired() {
		polls++
		if polls > 1000 {
			t.Fatal("countdown never expired")
		}
	}
	// One tick per port B read in the model: 100 ticks, the last read
	// being the one that sees OUT2 high.
	if polls != 99 {
		t.Errorf("expired after %d polls, want 99", polls)
	}
	pit.StartCountdown(50)
	if pit.Expired() {
		t.Error("a fresh countdown reads expired")
	}
	pit.StopCountdown()
	if f.portB&PortBGate2 != 0 {
		t.Error("StopCountdown left the gate high")
	}
	before := f.count[2]
	pit.Expired()
	if f.count[2] != before {
		t.Error("count moved with the gate low")
	}
}

func TestReadCounterLatches(t *testing.T) {
	f := &fake8254{}
	f.count[0] = 0xBEEF
	pit := New(f)
	got, err := pit.ReadCounter(0)
	if err != nil || got != 0xBEEF {
		t.Fatalf("ReadCounter(0) = %#x, %v; want 0xbeef", got, err)
	}
	if len(f.commands) != 1 || f.commands[0] != 0x00 {
		t.Errorf("latch command %#x, want 0x00 for channel 0", f.commands)
	}
	f.count[2] = 0x0102
	f.commands = nil
	got, _ = pit.ReadCounter(2)
	if got != 0x0102 || f.commands[0] != 0x80 {
		t.Errorf("ReadCounter(2) = %#x with command %#x, want 0x0102 and 0x80", got, f.commands[0])
	}
	p := hwfake.NewPorts()
	if _, err := New(p).ReadCounter(3); err == nil || len(p.Accesses) != 0 {
		t.Errorf("ReadCounter(3) = %v after %d accesses, want an error and none", err, len(p.Accesses))
	}
}
