package ept

import "testing"

// benchTables returns EPT tables over word-slice memory with [0, 1 GiB)
// mapped with 4 KiB pages, and the table area sized for them.
func benchTables(b *testing.B) *Tables {
	b.Helper()
	const pages = 600 // 512 page tables, 1 PD, 1 PDPT, the root, spare
	tb, err := New(newSliceMemory(tableArea, pages), newPool(pages), Config{
		Format: EPTFormat{}, PageSizes: AllPageSizes, OnInvalidate: func(uint64, uint64) {},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := tb.MapWithSizes(0, 0, gib, RWX, WB, Pages4K); err != nil {
		b.Fatal(err)
	}
	return tb
}

// BenchmarkMap4K remaps one 4 KiB page per operation to a new host page,
// which writes the leaf and invalidates it: the cost of a page-granular
// change on a built tree.
func BenchmarkMap4K(b *testing.B) {
	tb := benchTables(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		gpa := uint64(i%262144) * 4096
		hpa := gpa + uint64(i/262144%2+1)*gib
		if err := tb.Map(gpa, hpa, 4096, RW, WB); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup walks 4 levels to a 4 KiB page.
func BenchmarkLookup(b *testing.B) {
	tb := benchTables(b)
	b.ReportAllocs()
	var sink uint64
	for i := 0; b.Loop(); i++ {
		hpa, _, ok := tb.Lookup(uint64(i%262144)*4096 + 0x10)
		if !ok {
			b.Fatal("not mapped")
		}
		sink += hpa
	}
	_ = sink
}
