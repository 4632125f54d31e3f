package debugexit

import "testing"

// FuzzDebugExit checks that every write of size 1, 2 or 4 exits exactly
// once with (v<<1)|1 of the bytes written, and that nothing else exits.
func FuzzDebugExit(f *testing.F) {
	f.Add(uint16(0xF4), uint8(1), uint32(0x10), false)
	f.Add(uint16(0xF7), uint8(4), uint32(0xFFFFFFFF), false)
	f.Add(uint16(0xF4), uint8(8), uint32(1), true)
	f.Fuzz(func(t *testing.T, port uint16, size uint8, v uint32, read bool) {
		var codes []uint32
		d, _ := New(func(c uint32) { codes = append(codes, c) })
		if read {
			d.ReadPort(port, size)
			if len(codes) != 0 {
				t.Fatal("read exited")
			}
			return
		}
		d.WritePort(port, size, v)
		if size == 0 {
			if len(codes) != 0 {
				t.Fatal("size-0 write exited")
			}
			return
		}
		want := v
		if size < 4 {
			want &= 1<<(8*uint32(size)) - 1
		}
		if len(codes) != 1 || codes[0] != want<<1|1 || codes[0]&1 == 0 {
			t.Fatalf("write %#x size %d: codes %v", v, size, codes)
		}
	})
}
