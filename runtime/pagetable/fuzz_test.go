package pagetable

import (
	"testing"
)

// wordMemory is a faster fake than hwfake.Memory (which stores bytes), for
// the fuzzer's throughput; the unit tests use hwfake.Memory.
type wordMemory map[uint64]uint64

func (m wordMemory) Read64(a uint64) uint64     { return m[a] }
func (m wordMemory) Write64(a uint64, v uint64) { m[a] = v }

// refOp is one operation of the reference model.
type refOp struct {
	start, end uint64
	unmap      bool
	attr       Attr // as Lookup should report it
}

// refMap is the simple reference: the last operation covering an address
// decides it.
type refMap []refOp

func (r refMap) at(a uint64) (Attr, bool) {
	for i := len(r) - 1; i >= 0; i-- {
		if a >= r[i].start && a < r[i].end {
			return r[i].attr, !r[i].unmap
		}
	}
	return Attr{}, false
}

const fuzzOpBytes = 5

// decodeOp turns 5 bytes into an operation on a few interesting parts of a
// 2 TiB space: 4 KiB-granular ranges near 0, 1 GiB and 512 GiB, 2 MiB-granular
// ones in the first 2 GiB and around 512 GiB, 1 GiB-granular ones anywhere.
func decodeOp(b []byte, cfg Config) (op refOp, sizes PageSizes) {
	kind, idx, count := b[0], uint64(b[1])|uint64(b[2])<<8, uint64(b[3])
	sizes = PageSizes(b[4] & 7)
	var start, size uint64
	switch kind & 3 {
	case 0, 3:
		bases := [4]uint64{0, gib - 8*mib, 512*gib - 8*mib, 3 * gib}
		start = bases[idx>>14] + (idx&0xfff)*4096
		size = (count + 1) * 4096
	case 1:
		start = (idx & 0x3ff) * 2 * mib
		if idx&0x8000 != 0 {
			start += 511 * gib
		}
		size = (count%32 + 1) * 2 * mib
	case 2:
		start = (idx & 0x7ff) * gib
		size = (count%4 + 1) * gib
		sizes |= Pages2M // a GiB of 4 KiB pages is 512 tables: too slow to fuzz
	}
	op = refOp{start: start, end: start + size, unmap: kind&4 != 0}
	op.attr = Attr{
		Writable:  kind&8 != 0,
		NoExecute: kind&16 != 0 && cfg.NoExecute,
		Cache:     CacheType(kind >> 5 & 3),
		Global:    kind&128 != 0,
	}
	return op, sizes
}

// checkTree asserts that no table page is referenced twice or is also on
// the spare chains, and that every page is accounted for.
func checkTree(t *testing.T, tb *Tables) {
	seen := map[uint64]bool{}
	var walk func(table uint64, level int)
	walk = func(table uint64, level int) {
		if seen[table] {
			t.Fatalf("table page %#x is referenced twice", table)
		}
		seen[table] = true
		for i := uint64(0); i < entriesPerTab; i++ {
			e := tb.mem.Read64(table + 8*i)
			if e&bitPresent != 0 && !isLeaf(e, level) {
				if level == 1 {
					t.Fatalf("PTE %#x is not a leaf", e)
				}
				walk(e&addrMask, level-1)
			}
			if e&bitUser != 0 {
				t.Fatalf("entry %#x has U/S set", e)
			}
		}
	}
	walk(tb.root, levels)
	spare := 0
	for _, head := range []uint64{tb.free, tb.pending} {
		for p := head; p != 0; p = tb.mem.Read64(p) {
			if seen[p] {
				t.Fatalf("spare page %#x is still in the tree", p)
			}
			seen[p] = true
			spare++
			if spare > tb.allocated {
				t.Fatal("spare chain loops")
			}
		}
	}
	if len(seen) != tb.allocated {
		t.Fatalf("%d pages in tree and spare, %d allocated: a page leaked", len(seen), tb.allocated)
	}
	if s := tb.Stats(); s.Tables+s.Spare != s.Allocated {
		t.Fatalf("stats %+v do not add up", s)
	}
}

func FuzzMapUnmap(f *testing.F) {
	f.Add([]byte{0x01,
		0x02, 0x00, 0x00, 0x02, 0x07, // 1G op: map 0-3G
		0x00, 0x05, 0x00, 0x00, 0x07, // 4K op: one page at 0x5000
		0x04, 0x00, 0x00, 0x00, 0x07, // unmap page 0
	})
	f.Add([]byte{0x03,
		0x4a, 0x00, 0x80, 0x03, 0x07, // 2M op around 511 GiB
		0x00, 0xff, 0x8f, 0x40, 0x07, // 4K op across 512 GiB
		0x06, 0xff, 0x01, 0x01, 0x07, // 1G unmap at 511 GiB
		0xa9, 0x02, 0x00, 0x1f, 0x03, // 2M op, 2M pages only
	})
	f.Add([]byte{0x00,
		0x02, 0x00, 0x00, 0x00, 0x07,
		0xfa, 0x10, 0x40, 0xff, 0x07, // 4K op near 1 GiB
		0x01, 0x00, 0x00, 0x1f, 0x03,
		0x02, 0x00, 0x00, 0x00, 0x07, // merge back
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 1 {
			return
		}
		cfg := Config{Pages1G: data[0]&1 != 0, NoExecute: data[0]&2 != 0, PhysAddrBits: 42}
		data = data[1:]
		if len(data) > 24*fuzzOpBytes {
			data = data[:24*fuzzOpBytes]
		}
		tb, err := New(wordMemory{}, newBump(0x300_0000_0000, 1<<16), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var ref refMap
		for ; len(data) >= fuzzOpBytes; data = data[fuzzOpBytes:] {
			op, sizes := decodeOp(data, cfg)
			if op.unmap {
				err = tb.Unmap(op.start, op.end-op.start)
			} else {
				err = tb.MapIdentity(op.start, op.end-op.start, op.attr, sizes)
			}
			if err != nil {
				t.Fatalf("%+v: %v", op, err)
			}
			ref = append(ref, op)
		}

		// Probe every operation's edges, and where a large page maps a
		// probe, check that the reference is uniform across that page.
		var probes []uint64
		for _, op := range ref {
			for _, p := range []uint64{op.start, op.end, op.start - 4096, op.end - 4096, op.start + (op.end-op.start)/2&^4095} {
				if p < tb.Limit() {
					probes = append(probes, p)
				}
			}
		}
		for _, p := range probes {
			wantAttr, wantOK := ref.at(p)
			phys, attr, size, ok := tb.Lookup(p + 0x123)
			if ok != wantOK {
				t.Fatalf("Lookup(%#x) ok = %v, reference says %v", p, ok, wantOK)
			}
			if !ok {
				continue
			}
			if phys != p+0x123 || attr != wantAttr {
				t.Fatalf("Lookup(%#x) = %#x %+v, reference says %+v", p, phys, attr, wantAttr)
			}
			if size == Page1G && !cfg.Pages1G {
				t.Fatalf("1 GiB page at %#x without Config.Pages1G", p)
			}
			base := p &^ (uint64(size) - 1)
			for _, op := range ref {
				for _, b := range []uint64{op.start, op.end} {
					if b > base && b < base+uint64(size) {
						if a, ok := ref.at(b); !ok || a != wantAttr {
							t.Fatalf("%v page at %#x maps %#x, where the reference differs (%v %+v)", size, base, b, ok, a)
						}
					}
				}
			}
		}
		checkTree(t, tb)
	})
}
