package ept

// Mapping describes one page the tables map.
type Mapping struct {
	GPA, HPA uint64 // page addresses, aligned to Size
	Size     uint64 // Size4K, Size2M or Size1G
	Perm     Perm
	Mem      MemType
	// Accessed and Dirty are the leaf's bits as hardware set them (or the
	// format presets them: the Host format does).
	Accessed, Dirty bool
}

func (t *Tables) mapping(e, base uint64, level int) Mapping {
	a, d := t.f.AccessedDirty()
	return Mapping{
		GPA: base, HPA: t.f.Addr(e, level), Size: LevelSpan(level),
		Perm: t.f.Perm(e), Mem: t.f.MemType(e),
		Accessed: e&a != 0, Dirty: e&d != 0,
	}
}

// Lookup walks the tables for gpa. It returns the host-physical address gpa
// translates to and the page that maps it; ok is false where gpa is not
// mapped.
func (t *Tables) Lookup(gpa uint64) (hpa uint64, page Mapping, ok bool) {
	if gpa >= t.inLim {
		return 0, Mapping{}, false
	}
	table := t.root
	for level := Levels; level >= 1; level-- {
		e := t.mem.Read64(table + 8*Index(gpa, level))
		if !t.f.Present(e) {
			return 0, Mapping{}, false
		}
		if t.f.IsLeaf(e, level) {
			span := LevelSpan(level)
			m := t.mapping(e, gpa&^(span-1), level)
			return m.HPA + gpa&(span-1), m, true
		}
		table = t.f.Addr(e, level)
	}
	return 0, Mapping{}, false // not reached: level 1 entries are leaves
}

// Range calls fn for each page mapped in [gpa, gpa+size), in address order,
// until fn returns false. A page that straddles an edge of the range is
// reported whole. fn must not change the tables.
func (t *Tables) Range(gpa, size uint64, fn func(Mapping) bool) error {
	if err := t.checkInput(gpa, size); err != nil {
		return err
	}
	t.visit(t.root, Levels, gpa, gpa+size, func(slot, e, base uint64, level int) bool {
		return fn(t.mapping(e, base, level))
	})
	return nil
}

// visit calls fn for each present leaf in [start, end) within table, a table
// at level, until fn returns false; it reports whether the walk went on to
// the end.
func (t *Tables) visit(table uint64, level int, start, end uint64, fn func(slot, e, base uint64, level int) bool) bool {
	span := LevelSpan(level)
	for addr := start; addr < end; {
		base := addr &^ (span - 1)
		segEnd := min(end, base+span)
		slot := table + 8*Index(addr, level)
		e := t.mem.Read64(slot)
		switch {
		case !t.f.Present(e):
		case t.f.IsLeaf(e, level):
			if !fn(slot, e, base, level) {
				return false
			}
		case level > 1:
			if !t.visit(t.f.Addr(e, level), level-1, addr, segEnd, fn) {
				return false
			}
		}
		addr = segEnd
	}
	return true
}

// TestAndClearDirty clears the dirty bit of every page mapped in [gpa,
// gpa+size) and calls dirty with each page whose bit was set (a large page
// whole, even where it extends past the range, since its bit is gone). It
// then invalidates (Config.OnInvalidate) so that the next write to those
// pages sets the bit again: copy the pages after it returns, and a write
// made while it ran is in the copy.
//
// Hardware only ever sets these bits, so clearing the dirty bit of an entry
// that has it set can lose at most an accessed bit set at the same moment,
// never a write. For EPT the bits are written only when the EPTP enables them
// (Tables.EPTP(true)); split pages inherit their large page's bits.
func (t *Tables) TestAndClearDirty(gpa, size uint64, dirty func(gpa, size uint64)) error {
	_, d := t.f.AccessedDirty()
	return t.testAndClear(gpa, size, d, dirty)
}

// TestAndClearAccessed is TestAndClearDirty for the accessed bit. Unlike the
// dirty bit, clearing it can lose a dirty bit that hardware sets at the same
// moment; stop the vCPUs or devices using the range if that matters.
func (t *Tables) TestAndClearAccessed(gpa, size uint64, accessed func(gpa, size uint64)) error {
	a, _ := t.f.AccessedDirty()
	return t.testAndClear(gpa, size, a, accessed)
}

func (t *Tables) testAndClear(gpa, size, bit uint64, report func(gpa, size uint64)) error {
	if err := t.checkInput(gpa, size); err != nil {
		return err
	}
	t.visit(t.root, Levels, gpa, gpa+size, func(slot, e, base uint64, level int) bool {
		if e&bit != 0 {
			t.mem.Write64(slot, e&^bit)
			t.changed(base, LevelSpan(level))
			if report != nil {
				report(base, LevelSpan(level))
			}
		}
		return true
	})
	t.flush()
	return nil
}
