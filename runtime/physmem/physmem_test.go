package physmem

import (
	"strings"
	"testing"

	"tamavisor/boot/memmap"
)

func testMap() memmap.Map {
	return memmap.Map{
		{Start: 0x100000, Size: 0x10000000 - 0x100000, Kind: memmap.Usable},
		{Start: 0x30000000, Size: 0x50000000, Kind: memmap.Usable},
		{Start: 0xfec00000, Size: 0x1000, Kind: memmap.Reserved},
		{Start: 0x100000000, Size: 0x40000000, Kind: memmap.Usable},
	}
}

func TestAllocAlignedFirstFit(t *testing.T) {
	a := New(testMap())
	total := a.Available()
	p, err := a.Alloc(64<<20, 2<<20)
	if err != nil || p != 0x200000 {
		t.Fatalf("Alloc(64 MiB, 2 MiB) = %#x, %v; want 0x200000", p, err)
	}
	// The 1 MiB below the aligned start stays free and is used by a small request.
	q, err := a.Alloc(0x1000, 0x1000)
	if err != nil || q != 0x100000 {
		t.Fatalf("Alloc(4 KiB) = %#x, %v; want 0x100000", q, err)
	}
	// 1 GiB aligned: the first aligned GiB inside a free range.
	g, err := a.Alloc(1<<30, 1<<30)
	if err != nil || g != 0x40000000 {
		t.Fatalf("Alloc(1 GiB, 1 GiB) = %#x, %v", g, err)
	}
	if _, err := a.Alloc(4<<30, 4096); err == nil || !strings.Contains(err.Error(), "no free range") {
		t.Fatalf("oversized Alloc: %v", err)
	}
	a.Free(g, 1<<30)
	a.Free(q, 0x1000)
	a.Free(p, 64<<20)
	if a.Available() != total || len(a.free) != 3 {
		t.Fatalf("after freeing everything: %d bytes in %d ranges, want %d in 3", a.Available(), len(a.free), total)
	}
}

func TestAllocRejectsBadArguments(t *testing.T) {
	a := New(testMap())
	for _, c := range []struct{ size, align uint64 }{{0, 4096}, {100, 4096}, {4096, 3000}, {4096, 0}} {
		if _, err := a.Alloc(c.size, c.align); err == nil {
			t.Errorf("Alloc(%#x, %#x) accepted", c.size, c.align)
		}
	}
}

func TestDoubleFreePanics(t *testing.T) {
	a := New(testMap())
	p, _ := a.Alloc(0x2000, 0x1000)
	a.Free(p, 0x2000)
	defer func() {
		if recover() == nil {
			t.Error("double free did not panic")
		}
	}()
	a.Free(p, 0x1000)
}
