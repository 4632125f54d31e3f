package memmap

import (
	"encoding/binary"
	"testing"
)

// decodeRegions turns fuzz bytes into firmware entries, 17 bytes each. The
// first byte picks the scale: small addresses make overlaps, touching entries
// and sub-page edges likely; raw ones reach the top of the address space.
func decodeRegions(data []byte) []Region {
	if len(data) == 0 {
		return nil
	}
	small := data[0]&1 == 0
	data = data[1:]
	var out []Region
	for len(data) >= 17 && len(out) < 32 {
		start := binary.LittleEndian.Uint64(data[0:])
		size := binary.LittleEndian.Uint64(data[8:])
		if small {
			start = (start & 0xffff) << 8 // 0-16 MiB, 256-byte steps
			size = (size & 0xffff) << 8
		}
		out = append(out, Region{start, size, Kind(data[16] % (numKinds + 1))})
		data = data[17:]
	}
	return out
}

// refKind is the most-restrictive rule applied directly to the entries: the
// Kind addr must have before Usable memory is trimmed to pages, 0 for none.
func refKind(entries []Region, addr uint64) Kind {
	var best Kind
	for _, e := range entries {
		if e.Size == 0 || e.wraps() || addr < e.Start || addr >= e.End() {
			continue
		}
		k := e.Kind
		if !k.Valid() {
			k = Reserved
		}
		best = max(best, k)
	}
	return best
}

// refWholePageUsable reports whether every byte of the page holding addr is
// Usable under refKind. refKind only changes at entry boundaries, so the page
// start and the boundaries inside the page are enough to look at.
func refWholePageUsable(entries []Region, addr uint64) bool {
	page := addr &^ (PageSize - 1)
	if page+PageSize == 0 { // the last page: no entry can cover its last byte
		return false
	}
	if refKind(entries, page) != Usable {
		return false
	}
	for _, e := range entries {
		for _, b := range []uint64{e.Start, e.End()} {
			if b > page && b < page+PageSize && refKind(entries, b) != Usable {
				return false
			}
		}
	}
	return true
}

func checkInvariants(t *testing.T, m Map) {
	t.Helper()
	for i, reg := range m {
		if reg.Size == 0 || reg.wraps() || !reg.Kind.Valid() {
			t.Fatalf("region %d %v is empty, wraps or has an invalid kind", i, reg)
		}
		if reg.Kind == Usable && (reg.Start%PageSize != 0 || reg.Size%PageSize != 0) {
			t.Fatalf("usable region %d %v is not page-aligned", i, reg)
		}
		if i > 0 {
			prev := m[i-1]
			if prev.End() > reg.Start {
				t.Fatalf("regions %d %v and %d %v overlap or are unsorted", i-1, prev, i, reg)
			}
			if prev.End() == reg.Start && prev.Kind == reg.Kind {
				t.Fatalf("regions %d %v and %d %v touch with one kind but were not merged", i-1, prev, i, reg)
			}
		}
	}
}

func FuzzNormalize(f *testing.F) {
	seed := func(small bool, regs ...Region) []byte {
		b := []byte{1}
		if small {
			b[0] = 0
		}
		for _, reg := range regs {
			b = binary.LittleEndian.AppendUint64(b, reg.Start)
			b = binary.LittleEndian.AppendUint64(b, reg.Size)
			b = append(b, byte(reg.Kind))
		}
		return b
	}
	f.Add(seed(false, span(0, 0x9fc00, Usable), span(0x9fc00, 0xa0000, Reserved), span(0x100000, 0x7ffe0000, Usable),
		span(0x7ffe0000, 0x80000000, Reserved), span(0x100000000, 0x180000000, Usable)))
	f.Add(seed(true, r(0x10, 0x30, Usable), r(0x20, 0x10, ACPINVS), r(0x20, 0x10, Usable), r(0x40, 0x1, Reserved)))
	f.Add(seed(false, r(0xffff_ffff_ffff_f000, 0x1000, Reserved), r(0xffff_ffff_ffff_e001, 0x1ffe, Usable)))
	f.Add(seed(true, r(0, 0x30, Usable), r(0x30, 0x30, Usable), r(0x10, 0x1, Kind(0))))
	f.Add([]byte{})

	f.Fuzz(checkNormalize)
}

func checkNormalize(t *testing.T, data []byte) {
	{
		entries := decodeRegions(data)
		m := Normalize(entries)
		checkInvariants(t, m)

		// Idempotent: a normalized map normalizes to itself.
		again := Normalize(m)
		if len(again) != len(m) {
			t.Fatalf("Normalize(m) has %d regions, m has %d", len(again), len(m))
		}
		for i := range m {
			if again[i] != m[i] {
				t.Fatalf("Normalize(m)[%d] = %v, m[%d] = %v", i, again[i], i, m[i])
			}
		}

		// Every address where the answer can change, and its neighbours,
		// classified by the map and by the reference.
		var samples []uint64
		for _, e := range entries {
			for _, b := range []uint64{e.Start, e.End(), e.Start + e.Size/2} {
				samples = append(samples, b-1, b, b+1, b&^(PageSize-1), (b&^(PageSize-1))-1)
			}
		}
		for _, reg := range m {
			samples = append(samples, reg.Start, reg.End()-1, reg.End())
		}
		for _, a := range samples {
			got, ok := m.KindAt(a)
			want := refKind(entries, a)
			if want == Usable && !refWholePageUsable(entries, a) {
				want = 0 // a partial page of free RAM is trimmed away
			}
			if !ok {
				got = 0
			}
			if got != want {
				t.Fatalf("address %#x: map says %v (present %v), reference %v\nentries %v\nmap\n%v", a, got, ok, want, entries, m)
			}
		}

		// Free with some entries as reservations: the result is Usable
		// memory of m, page-aligned, and clear of every reservation.
		var reserved []Region
		for i, e := range entries {
			if i%2 == 1 {
				reserved = append(reserved, e)
			}
		}
		free := m.Free(reserved...)
		checkInvariantsFree(t, m, free, reserved)
	}
}

// widened is a reservation as Free must honour it: whole pages, hi == 0
// meaning up to the top of the address space.
func widened(res Region) (lo, hi uint64) {
	lo = res.Start &^ (PageSize - 1)
	hi = alignUp(res.End())
	if res.wraps() || hi < res.Start {
		hi = 0
	}
	return lo, hi
}

func overlapsWidened(start, end uint64, res Region) bool {
	if res.Size == 0 {
		return false
	}
	lo, hi := widened(res)
	return lo < end && (hi == 0 || start < hi)
}

func checkInvariantsFree(t *testing.T, m, free Map, reserved []Region) {
	t.Helper()
	var total uint64
	for i, reg := range free {
		if reg.Kind != Usable || reg.Size == 0 || reg.Start%PageSize != 0 || reg.Size%PageSize != 0 {
			t.Fatalf("free region %d %v is not whole pages of usable memory", i, reg)
		}
		if i > 0 && free[i-1].End() > reg.Start {
			t.Fatalf("free regions %v and %v overlap or are unsorted", free[i-1], reg)
		}
		if !m.Contains(reg) {
			t.Fatalf("free region %v is not usable memory of the map", reg)
		}
		for _, res := range reserved {
			if overlapsWidened(reg.Start, reg.End(), res) {
				t.Fatalf("free region %v overlaps the reservation %v", reg, res)
			}
		}
		total += reg.Size
	}
	if len(reserved) == 0 && total != m.Total(Usable) {
		t.Fatalf("with nothing reserved Free keeps %#x of %#x usable bytes", total, m.Total(Usable))
	}
	// Nothing is lost beyond the reserved pages: the first and last page of
	// each usable region are free exactly when no reservation touches them.
	for _, reg := range m {
		if reg.Kind != Usable {
			continue
		}
		for _, page := range []uint64{reg.Start, reg.End() - PageSize} {
			touched := false
			for _, res := range reserved {
				touched = touched || overlapsWidened(page, page+PageSize, res)
			}
			if _, inFree := free.KindAt(page); inFree == touched {
				t.Fatalf("usable page %#x: touched by a reservation %v, in Free %v\nreserved %v\nfree %v", page, touched, inFree, reserved, free)
			}
		}
	}
}
