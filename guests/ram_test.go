package guests

import "testing"

func TestRAMBounds(t *testing.T) {
	r := NewRAM(make([]byte, 1<<20), 0)
	if err := r.WriteGuest(0xffffc, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if err := r.ReadGuest(0xffffc, b); err != nil || b[3] != 4 {
		t.Fatalf("read back %v, %v", b, err)
	}
	for _, gpa := range []uint64{0xffffd, 1 << 20, ^uint64(0) - 1} {
		if err := r.ReadGuest(gpa, b); err == nil {
			t.Errorf("read of 4 bytes at %#x accepted", gpa)
		}
	}
}
