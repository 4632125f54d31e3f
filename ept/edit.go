package ept

import (
	"errors"
	"fmt"
)

type editKind uint8

const (
	editMap editKind = iota
	editUnmap
	editProtect
)

// edit is one Map, Unmap or Protect call.
type edit struct {
	kind     editKind
	gpa, hpa uint64 // Map: gpa translates to hpa
	perm     Perm
	mem      MemType
	sizes    PageSizes
}

// checkInput validates a range of input addresses.
func (t *Tables) checkInput(gpa, size uint64) error {
	end := gpa + size
	switch {
	case gpa%Size4K != 0 || size%Size4K != 0:
		return fmt.Errorf("ept: range %#x+%#x is not 4 KiB aligned", gpa, size)
	case end < gpa:
		return fmt.Errorf("ept: range %#x+%#x wraps around", gpa, size)
	case end > t.inLim:
		return fmt.Errorf("ept: range %#x-%#x extends beyond the input address limit %#x", gpa, end, t.inLim)
	}
	return nil
}

func (t *Tables) checkPerm(perm Perm, mem MemType) error {
	if perm == 0 {
		return errors.New("ept: empty permission: an entry granting nothing is not present, use Unmap")
	}
	if err := t.f.Check(perm, mem); err != nil {
		return fmt.Errorf("ept: %w", err)
	}
	return nil
}

// Map translates [gpa, gpa+size) to [hpa, hpa+size) with perm and mem, using
// the largest pages Config.PageSizes allows where gpa and hpa are both
// aligned to them, 4 KiB pages elsewhere. What was mapped there before is
// replaced; a larger page the range covers only in part is split into
// smaller pages that keep its mapping outside the range. All three must be
// 4 KiB aligned. On error (the allocator ran out) every entry is still valid
// but the range may be mapped only in part.
func (t *Tables) Map(gpa, hpa, size uint64, perm Perm, mem MemType) error {
	return t.MapWithSizes(gpa, hpa, size, perm, mem, AllPageSizes)
}

// MapWithSizes is Map with page sizes further limited to sizes (4 KiB pages
// are always allowed).
func (t *Tables) MapWithSizes(gpa, hpa, size uint64, perm Perm, mem MemType, sizes PageSizes) error {
	if err := t.checkInput(gpa, size); err != nil {
		return err
	}
	hend := hpa + size
	switch {
	case hpa%Size4K != 0:
		return fmt.Errorf("ept: host address %#x is not 4 KiB aligned", hpa)
	case hend < hpa || hend > t.outLim:
		return fmt.Errorf("ept: host range %#x+%#x extends beyond the output address limit %#x", hpa, size, t.outLim)
	}
	if err := t.checkPerm(perm, mem); err != nil {
		return err
	}
	ed := edit{kind: editMap, gpa: gpa, hpa: hpa, perm: perm, mem: mem, sizes: sizes & t.sizes}
	return t.run(gpa, size, &ed)
}

// Unmap removes the translations of [gpa, gpa+size), splitting larger pages
// that straddle its edges and freeing tables left empty. Unmapping what is
// not mapped does nothing.
func (t *Tables) Unmap(gpa, size uint64) error {
	if err := t.checkInput(gpa, size); err != nil {
		return err
	}
	ed := edit{kind: editUnmap}
	return t.run(gpa, size, &ed)
}

// Protect sets the permissions of every page mapped in [gpa, gpa+size) to
// perm, keeping their addresses, memory types and accessed and dirty bits,
// and splitting larger pages that straddle the edges (unless they already
// have perm). Holes stay unmapped.
func (t *Tables) Protect(gpa, size uint64, perm Perm) error {
	if err := t.checkInput(gpa, size); err != nil {
		return err
	}
	if err := t.checkPerm(perm, WB); err != nil { // every format has WB
		return err
	}
	ed := edit{kind: editProtect, perm: perm}
	return t.run(gpa, size, &ed)
}

// run carries out one operation and then invalidates and frees.
func (t *Tables) run(gpa, size uint64, ed *edit) error {
	err := t.apply(t.root, Levels, gpa, gpa+size, ed)
	t.flush()
	return err
}

// apply carries out ed over [start, end) within table, a table at level.
func (t *Tables) apply(table uint64, level int, start, end uint64, ed *edit) error {
	span := LevelSpan(level)
	for addr := start; addr < end; {
		base := addr &^ (span - 1)
		next := base + span
		segEnd := min(end, next)
		whole := addr == base && segEnd == next
		slot := table + 8*Index(addr, level)
		old := t.mem.Read64(slot)
		present := t.f.Present(old)
		leaf := present && t.f.IsLeaf(old, level)

		// Cases settled at this level.
		switch ed.kind {
		case editMap:
			if whole && ed.sizes.allows(level) {
				if page := ed.hpa + (base - ed.gpa); page%span == 0 {
					t.setLeaf(slot, old, base, level, t.f.Leaf(page, level, ed.perm, ed.mem))
					addr = segEnd
					continue
				}
			}
			if leaf && t.mapsAs(old, base, level, ed) {
				addr = segEnd // already mapped so: no split
				continue
			}
		case editUnmap:
			if !present {
				addr = segEnd
				continue
			}
			if whole {
				t.clearEntry(slot, old, base, level)
				addr = segEnd
				continue
			}
		case editProtect:
			if !present {
				addr = segEnd
				continue
			}
			if leaf {
				e := t.f.Leaf(t.f.Addr(old, level), level, ed.perm, t.f.MemType(old)) | old&t.adMask()
				if e == old {
					addr = segEnd
					continue
				}
				if whole {
					t.mem.Write64(slot, e)
					t.changed(base, span)
					addr = segEnd
					continue
				}
			}
		}

		// The range covers this entry only in part (or may not use its
		// page size): descend, creating or splitting the table below.
		if level == 1 {
			return fmt.Errorf("ept: internal error: range %#x-%#x not page aligned at level 1", addr, segEnd)
		}
		var sub uint64
		var err error
		switch {
		case !present:
			if sub, err = t.newTable(); err != nil {
				return err
			}
			t.mem.Write64(slot, t.f.Table(sub, level))
		case leaf:
			if sub, err = t.split(old, level); err != nil {
				return err
			}
			t.mem.Write64(slot, t.f.Table(sub, level))
		default:
			sub = t.f.Addr(old, level)
		}
		err = t.apply(sub, level-1, addr, segEnd, ed)
		// A table that Unmap emptied, or that a failed Map created
		// and could not fill, goes; the entry that linked it may be
		// cached, so it counts as a change.
		if (ed.kind == editUnmap || err != nil) && t.isEmpty(sub) {
			t.mem.Write64(slot, t.f.Empty())
			t.changed(base, span)
			t.detach(sub, level-1)
		}
		if err != nil {
			return err
		}
		addr = segEnd
	}
	return nil
}

func (t *Tables) adMask() uint64 {
	a, d := t.f.AccessedDirty()
	return a | d
}

// setLeaf writes leaf entry e over old, unless old already is e (apart
// from accessed and dirty bits, which are then kept).
func (t *Tables) setLeaf(slot, old, base uint64, level int, e uint64) {
	present := t.f.Present(old)
	leaf := present && t.f.IsLeaf(old, level)
	ad := t.adMask()
	if leaf && old&^ad == e&^ad {
		return
	}
	t.mem.Write64(slot, e)
	if present || t.invalNew {
		t.changed(base, LevelSpan(level))
	}
	if present && !leaf {
		t.detach(t.f.Addr(old, level), level-1)
	}
}

// clearEntry makes present entry old not present.
func (t *Tables) clearEntry(slot, old, base uint64, level int) {
	t.mem.Write64(slot, t.f.Empty())
	t.changed(base, LevelSpan(level))
	if !t.f.IsLeaf(old, level) {
		t.detach(t.f.Addr(old, level), level-1)
	}
}

// mapsAs reports whether leaf entry old at level (covering base) already
// maps the way ed would map each page within it.
func (t *Tables) mapsAs(old, base uint64, level int, ed *edit) bool {
	span := LevelSpan(level)
	page := ed.hpa + (base - ed.gpa) // wraps when base < ed.gpa: harmless modular arithmetic
	if page%span != 0 || page >= t.outLim {
		return false
	}
	ad := t.adMask()
	return old&^ad == t.f.Leaf(page, level, ed.perm, ed.mem)&^ad
}

// split builds a table of the next level down whose entries map what the
// large leaf entry old (at level) maps, with the same permissions, memory
// type and accessed and dirty bits (a dirty large page makes every piece
// dirty: no write is forgotten).
func (t *Tables) split(old uint64, level int) (uint64, error) {
	sub, err := t.newTable()
	if err != nil {
		return 0, err
	}
	base := t.f.Addr(old, level)
	perm, mem, ad := t.f.Perm(old), t.f.MemType(old), old&t.adMask()
	childSpan := LevelSpan(level - 1)
	for i := uint64(0); i < EntriesPerTable; i++ {
		t.mem.Write64(sub+8*i, t.f.Leaf(base+i*childSpan, level-1, perm, mem)|ad)
	}
	return sub, nil
}

func (t *Tables) isEmpty(table uint64) bool {
	for i := uint64(0); i < EntriesPerTable; i++ {
		if t.f.Present(t.mem.Read64(table + 8*i)) {
			return false
		}
	}
	return true
}
