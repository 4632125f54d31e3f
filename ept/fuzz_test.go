package ept

import (
	"fmt"
	"testing"
)

// wordMemory is a faster fake than hwfake.Memory (which stores bytes), for
// the fuzzer's throughput; the unit tests use hwfake.Memory.
type wordMemory map[uint64]uint64

func (m wordMemory) Read64(a uint64) uint64     { return m[a] }
func (m wordMemory) Write64(a uint64, v uint64) { m[a] = v }

// refOp is one operation of the reference model.
type refOp struct {
	kind       editKind
	start, end uint64
	hpa        uint64 // Map: what start translates to
	perm       Perm
	mem        MemType
}

func (o refOp) String() string {
	names := [...]string{"map", "unmap", "protect"}
	return fmt.Sprintf("%s [%#x, %#x) -> %#x %v %v", names[o.kind], o.start, o.end, o.hpa, o.perm, o.mem)
}

// refState is what the reference says about one address.
type refState struct {
	mapped bool
	hpa    uint64
	perm   Perm
	mem    MemType
}

// refAt replays the operations for address a: the simple reference the
// tables are checked against.
func refAt(ops []refOp, a uint64) refState {
	var s refState
	for _, o := range ops {
		if a < o.start || a >= o.end {
			continue
		}
		switch o.kind {
		case editMap:
			s = refState{true, o.hpa + (a - o.start), o.perm, o.mem}
		case editUnmap:
			s = refState{}
		case editProtect:
			if s.mapped {
				s.perm = o.perm
			}
		}
	}
	return s
}

const fuzzOpBytes = 6

// fuzzFormat picks the format under test and the permissions and memory
// types valid for it, as Lookup reports them.
type fuzzFormat struct {
	f     Format
	perms []Perm
	mems  []MemType
}

func fuzzFormatFor(b byte) fuzzFormat {
	if b&1 == 0 {
		nx := b&2 != 0
		perms := []Perm{Read, RW, RX, RWX}
		if !nx { // without EFER.NXE every page is executable
			perms = []Perm{RX, RWX}
		}
		return fuzzFormat{NPTFormat{NoExecute: nx}, perms, []MemType{WB, UC, WT, UCMinus}}
	}
	return fuzzFormat{EPTFormat{ExecuteOnly: true, SuppressVE: b&2 != 0},
		[]Perm{Read, RW, RX, RWX, Execute}, []MemType{WB, UC, WT, WC, WP}}
}

// decodeOp turns 6 bytes into an operation on a few interesting parts of a
// 2 TiB space: 4 KiB-granular ranges near 0, 1 GiB and 512 GiB, 2 MiB-granular
// ones in the first 2 GiB and around 512 GiB, 1 GiB-granular ones anywhere;
// host addresses at offsets of 0, 4 KiB, 2 MiB, 1 GiB and odd mixtures from
// the guest address, so that large pages are sometimes possible and
// sometimes not.
func decodeOp(b []byte, ff fuzzFormat) refOp {
	kind, idx, count, attr := b[0], uint64(b[1])|uint64(b[2])<<8, uint64(b[3]), b[4]
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
	}
	offsets := [8]uint64{0, 0, 4 * kib, 2 * mib, gib, 3*gib + 2*mib, 64 * gib, 5*gib + 12*kib}
	offset := offsets[b[5]&7]
	if kind&3 == 2 && offset%(2*mib) != 0 {
		offset = 2 * mib // a GiB of 4 KiB pages is 512 tables: too slow to fuzz
	}
	op := refOp{start: start, end: start + size, hpa: start + offset}
	switch kind >> 2 & 7 {
	case 0, 1, 2, 3:
		op.kind = editMap
	case 4, 5:
		op.kind = editUnmap
	default:
		op.kind = editProtect
	}
	op.perm = ff.perms[int(attr&15)%len(ff.perms)]
	op.mem = ff.mems[int(attr>>4)%len(ff.mems)]
	return op
}

func FuzzTables(f *testing.F) {
	f.Add([]byte{0x01, 0x07,
		0x02, 0x00, 0x00, 0x02, 0x33, 0x00, // 1G op: map 0-3G
		0x00, 0x05, 0x00, 0x00, 0x01, 0x01, // 4K op: one page at 0x5000
		0x10, 0x00, 0x00, 0x00, 0x00, 0x00, // unmap page 0
		0x1c, 0x00, 0x00, 0x40, 0x00, 0x00, // protect
	})
	f.Add([]byte{0x00, 0x03,
		0x01, 0x4a, 0x80, 0x03, 0x12, 0x03, // 2M op around 511 GiB
		0x00, 0xff, 0x8f, 0x40, 0x23, 0x02, // 4K op across 512 GiB
		0x16, 0xff, 0x01, 0x01, 0x00, 0x00, // 1G unmap at 511 GiB
		0x19, 0x02, 0x00, 0x1f, 0x03, 0x04, // 2M protect
	})
	f.Add([]byte{0x03, 0x05,
		0x02, 0x00, 0x00, 0x00, 0x07, 0x04,
		0xf8, 0x10, 0x40, 0xff, 0x07, 0x00, // 4K protect near 1 GiB
		0x01, 0x00, 0x00, 0x1f, 0x03, 0x03,
		0x02, 0x00, 0x00, 0x00, 0x07, 0x04, // merge back
		0x12, 0x00, 0x00, 0x00, 0x00, 0x00, // unmap it all
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		ff := fuzzFormatFor(data[0])
		var sizes PageSizes
		switch data[1] & 3 {
		case 0:
			sizes = Pages2M // a GiB of 4 KiB pages is 512 tables: keep some large
		case 1:
			sizes = Pages2M | Pages1G
		case 2, 3:
			sizes = AllPageSizes
		}
		data = data[2:]
		if len(data) > 24*fuzzOpBytes {
			data = data[:24*fuzzOpBytes]
		}
		mem := wordMemory{}
		p := newPool(1 << 16)
		inv := &invalidations{}
		p.onFree = func(pg uint64) {
			if len(inv.calls) == 0 {
				t.Fatalf("table %#x freed before any invalidation", pg)
			}
		}
		tb, err := New(mem, p, Config{Format: ff.f, InputAddrBits: 42, OutputAddrBits: 44, PageSizes: sizes, OnInvalidate: inv.hook})
		if err != nil {
			t.Fatal(err)
		}
		var ops []refOp
		for ; len(data) >= fuzzOpBytes; data = data[fuzzOpBytes:] {
			op := decodeOp(data, ff)
			probes := probesFor(append(ops, op), tb.InputLimit())
			before := make([]refState, len(probes))
			for i, a := range probes {
				before[i] = refAt(ops, a)
			}
			switch op.kind {
			case editMap:
				err = tb.Map(op.start, op.hpa, op.end-op.start, op.perm, op.mem)
			case editUnmap:
				err = tb.Unmap(op.start, op.end-op.start)
			case editProtect:
				err = tb.Protect(op.start, op.end-op.start, op.perm)
			}
			if err != nil {
				t.Fatalf("%v: %v", op, err)
			}
			ops = append(ops, op)
			calls := inv.take()
			// Every translation that was present and changed is
			// covered by this operation's invalidations.
			for i, a := range probes {
				if was, now := before[i], refAt(ops, a); was.mapped && was != now && !covers(calls, a, 4096) {
					t.Fatalf("%v changed %#x (%+v -> %+v) without invalidating it (calls %v)", op, a, was, now, calls)
				}
			}
			checkAgainstReference(t, tb, ops, probes)
		}
		checkNoLeak(t, tb, mem, p)
		p.check(t)
	})
}

// probesFor returns the edges of every operation and a point inside each.
func probesFor(ops []refOp, limit uint64) []uint64 {
	var probes []uint64
	for _, o := range ops {
		for _, a := range []uint64{o.start, o.end, o.start - 4096, o.end - 4096, o.start + (o.end-o.start)/2&^4095} {
			if a < limit {
				probes = append(probes, a)
			}
		}
	}
	return probes
}

func checkAgainstReference(t *testing.T, tb *Tables, ops []refOp, probes []uint64) {
	for _, a := range probes {
		want := refAt(ops, a)
		hpa, m, ok := tb.Lookup(a + 0x123)
		if ok != want.mapped {
			t.Fatalf("after %v: Lookup(%#x) ok = %v, reference says %v", ops[len(ops)-1], a, ok, want.mapped)
		}
		if !ok {
			continue
		}
		if hpa != want.hpa+0x123 || m.Perm != want.perm || m.Mem != want.mem {
			t.Fatalf("after %v: Lookup(%#x) = %#x %v %v, reference says %#x %v %v",
				ops[len(ops)-1], a, hpa, m.Perm, m.Mem, want.hpa+0x123, want.perm, want.mem)
		}
		if m.Size == Size1G && tb.sizes&Pages1G == 0 || m.Size == Size2M && tb.sizes&Pages2M == 0 {
			t.Fatalf("page of %#x bytes at %#x without that page size configured", m.Size, m.GPA)
		}
		// A large page must agree with the reference wherever an
		// operation's edge falls inside it.
		for _, o := range ops {
			for _, b := range []uint64{o.start, o.end} {
				if b > m.GPA && b < m.GPA+m.Size {
					got := refState{true, m.HPA + (b - m.GPA), m.Perm, m.Mem}
					if r := refAt(ops, b); r != got {
						t.Fatalf("%#x-byte page at %#x maps %#x as %+v, where the reference says %+v", m.Size, m.GPA, b, got, r)
					}
				}
			}
		}
	}
}
