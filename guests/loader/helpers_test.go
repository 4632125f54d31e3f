package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"

	"tamavisor/guests/platform"
)

// sparseRAM is a fake guest memory: the layout's RAM ranges, stored as 4 KiB
// pages created on the first non-zero write (zero writes to an absent page
// are dropped, since absent pages read as zero). Accesses outside RAM fail,
// as the real guest memory's do. It also serves hw.PhysMem, for the ACPI
// parser.
type sparseRAM struct {
	ram    []platform.Region
	pages  map[uint64]*[4096]byte
	writes int
}

func newSparseRAM(l *platform.Layout) *sparseRAM {
	return &sparseRAM{ram: l.RAM(), pages: map[uint64]*[4096]byte{}}
}

func (m *sparseRAM) check(gpa uint64, n int) error {
	end := gpa + uint64(n)
	for _, r := range m.ram {
		if gpa >= r.Start && end <= r.End && end >= gpa {
			return nil
		}
	}
	return fmt.Errorf("guest-physical %#x+%#x is not RAM", gpa, n)
}

func (m *sparseRAM) ReadGuest(gpa uint64, b []byte) error {
	if err := m.check(gpa, len(b)); err != nil {
		return err
	}
	for i := 0; i < len(b); {
		a := gpa + uint64(i)
		off := int(a & 0xfff)
		n := min(len(b)-i, 4096-off)
		if p, ok := m.pages[a>>12]; ok {
			copy(b[i:i+n], p[off:off+n])
		} else {
			clear(b[i : i+n])
		}
		i += n
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (m *sparseRAM) WriteGuest(gpa uint64, b []byte) error {
	if err := m.check(gpa, len(b)); err != nil {
		return err
	}
	m.writes++
	for i := 0; i < len(b); {
		a := gpa + uint64(i)
		off := int(a & 0xfff)
		n := min(len(b)-i, 4096-off)
		p, ok := m.pages[a>>12]
		if !ok {
			if allZero(b[i : i+n]) {
				i += n
				continue
			}
			p = new([4096]byte)
			m.pages[a>>12] = p
		}
		copy(p[off:off+n], b[i:i+n])
		i += n
	}
	return nil
}

func (m *sparseRAM) ReadPhys(addr uint64, b []byte) error { return m.ReadGuest(addr, b) }

func (m *sparseRAM) read(t *testing.T, gpa uint64, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := m.ReadGuest(gpa, b); err != nil {
		t.Fatalf("reading guest %#x+%d: %v", gpa, n, err)
	}
	return b
}

func (m *sparseRAM) u32(t *testing.T, gpa uint64) uint32 {
	return binary.LittleEndian.Uint32(m.read(t, gpa, 4))
}

func (m *sparseRAM) u64(t *testing.T, gpa uint64) uint64 {
	return binary.LittleEndian.Uint64(m.read(t, gpa, 8))
}

func (m *sparseRAM) cstring(t *testing.T, gpa uint64) string {
	t.Helper()
	var out []byte
	for i := 0; i < MaxCmdline+1; i++ {
		c := m.read(t, gpa+uint64(i), 1)[0]
		if c == 0 {
			return string(out)
		}
		out = append(out, c)
	}
	t.Fatalf("no NUL within %d bytes of %#x", MaxCmdline+1, gpa)
	return ""
}

// fill writes a byte pattern over a range, to check that the loader
// overwrites (zero-fills) what it claims.
func (m *sparseRAM) fill(t *testing.T, r platform.Region, c byte) {
	t.Helper()
	if err := m.WriteGuest(r.Start, bytes.Repeat([]byte{c}, int(r.Size()))); err != nil {
		t.Fatal(err)
	}
}

// newGuest returns a guest of ram bytes with its ACPI tables built.
func newGuest(t testing.TB, ram uint64) (Guest, *sparseRAM) {
	t.Helper()
	l, err := platform.NewLayout(ram, 2)
	if err != nil {
		t.Fatal(err)
	}
	mem := newSparseRAM(l)
	tabs, err := platform.Build(mem, l)
	if err != nil {
		t.Fatal(err)
	}
	return Guest{Memory: mem, Layout: l, RSDP: tabs.RSDP}, mem
}

// pattern is deterministic filler that no two offsets of a short span
// share, so a misplaced copy shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1103515245 + 12345
		b[i] = byte(x >> 16)
	}
	return b
}

// wantErr checks that err is a loader *Error of the given kind whose
// message has every fragment.
func wantErr(t *testing.T, err error, kind error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want one mentioning %q", fragments)
		return
	}
	le, ok := err.(*Error)
	if !ok {
		t.Errorf("error %T %q is not a *loader.Error", err, err)
		return
	}
	if kind != nil && le.Kind != kind {
		t.Errorf("error %q is of kind %v, want %v", err, le.Kind, kind)
	}
	if !strings.HasPrefix(err.Error(), "loader: ") {
		t.Errorf("error %q lacks the loader: prefix", err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

// skipLoudly skips with a message that stands out in the test output, with
// or without -v.
func skipLoudly(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(os.Stderr, "\n*** SKIPPING %s: %s ***\n\n", t.Name(), msg)
	t.Skip(msg)
}

// translate walks the 4-level page tables at cr3 in guest memory (Intel SDM
// Vol. 3A, 4.5) and returns the physical address of linear address va,
// independently of the code that built them.
func translate(t *testing.T, m *sparseRAM, cr3, va uint64) (uint64, bool) {
	t.Helper()
	const addrMask = 0x000ffffffffff000
	table := cr3 & addrMask
	for level := 3; level >= 0; level-- {
		idx := (va >> (12 + 9*uint(level))) & 0x1ff
		e := m.u64(t, table+idx*8)
		if e&1 == 0 {
			return 0, false
		}
		if level == 1 && e&(1<<7) != 0 { // 2 MiB page
			return e&0x000fffffffe00000 | va&0x1fffff, true
		}
		if level == 2 && e&(1<<7) != 0 { // 1 GiB page
			return e&0x000fffffc0000000 | va&0x3fffffff, true
		}
		if level == 0 {
			return e&addrMask | va&0xfff, true
		}
		table = e & addrMask
	}
	return 0, false
}
