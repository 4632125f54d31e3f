package debugexit

import "testing"

func TestNewNeedsExit(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("nil exit accepted")
	}
}

func TestCodeMapping(t *testing.T) {
	var codes []uint32
	d, err := New(func(c uint32) { codes = append(codes, c) })
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		port uint16
		size uint8
		v    uint32
		want uint32
	}{
		{DefaultPort, 1, 0x00, 0x01},
		{DefaultPort, 1, 0x10, 0x21}, // a common "success" value: 33
		{DefaultPort, 1, 0x31, 0x63},
		{DefaultPort, 1, 0xFFFFFF12, 0x25}, // only the byte written counts
		{DefaultPort, 2, 0xABCD1234, 0x2469},
		{DefaultPort, 4, 0x12345678, 0x2468ACF1},
		{DefaultPort, 4, 0x80000001, 0x00000003}, // truncated to 32 bits
		{DefaultPort + 3, 1, 0x02, 0x05},         // any port of the range
	}
	for _, c := range cases {
		codes = codes[:0]
		d.WritePort(c.port, c.size, c.v)
		if len(codes) != 1 || codes[0] != c.want {
			t.Errorf("write %#x (size %d) gave %v, want [%#x]", c.v, c.size, codes, c.want)
		}
	}
	codes = codes[:0]
	d.WritePort(DefaultPort, 0, 1)
	if len(codes) != 0 {
		t.Fatal("size-0 write exited")
	}
}

func TestReads(t *testing.T) {
	d, _ := New(func(uint32) { t.Fatal("a read exited") })
	for size, want := range map[uint8]uint32{0: 0, 1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFF} {
		if got := d.ReadPort(DefaultPort, size); got != want {
			t.Errorf("read size %d = %#x, want %#x", size, got, want)
		}
	}
}

func TestWriteDoesNotAllocate(t *testing.T) {
	var last uint32
	d, _ := New(func(c uint32) { last = c })
	allocs := testing.AllocsPerRun(1000, func() {
		d.WritePort(DefaultPort, 4, 7)
		d.ReadPort(DefaultPort, 1)
	})
	if allocs != 0 || last != 15 {
		t.Fatalf("%v allocations, last code %d", allocs, last)
	}
}
