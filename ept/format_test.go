package ept

import (
	"strings"
	"testing"
)

// The expected entries below are assembled from the manuals' bit positions,
// written out here as numbers, not from this package's constants.

type entryWant struct {
	addr  uint64 // input address the entry translates
	level int
	want  uint64 // exact value; address bits of table entries excluded
	table bool   // table entry: compare bits outside 51:12 only
}

func checkEntries(t *testing.T, fx *fixture, wants []entryWant) {
	t.Helper()
	for _, w := range wants {
		got := entryAt(fx.mem, fx.tb.Root(), w.addr, w.level)
		if w.table {
			if got&^specAddr != w.want {
				t.Errorf("%v: table entry at level %d for %#x has flags %#x, want %#x", fx.tb.f, w.level, w.addr, got&^specAddr, w.want)
			}
			if a := got & specAddr; a < tableArea || a >= tableArea+1<<28 {
				t.Errorf("%v: table entry at level %d for %#x points at %#x, not an allocated table", fx.tb.f, w.level, w.addr, a)
			}
			continue
		}
		if got != w.want {
			t.Errorf("%v: entry at level %d for %#x = %#x, want %#x", fx.tb.f, w.level, w.addr, got, w.want)
		}
	}
}

// Intel SDM Vol. 3C 29.3.2 Tables 29-1 to 29-6, 29.3.7, 25.6.11.
func TestEPTEntryBits(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0x20_0000, 0x20_0000, 2*mib, RWX, WB) // 2 MiB page
	fx.mustMap(t, 0x5000, 0x7_0000_5000, 4*kib, RW, UC) // 4 KiB, gpa != hpa
	fx.mustMap(t, 0x6000, 0x6000, 4*kib, Read, WC)      // 4 KiB read-only WC
	fx.mustMap(t, 0x7000, 0x7000, 4*kib, RX, WP)        // 4 KiB WP
	fx.mustMap(t, 1*gib, 0x1_4000_0000, 1*gib, RX, WT)  // 1 GiB page
	fx.mustMap(t, 0x8000, 0x8000, 4*kib, RWX, WB)       // 4 KiB WB
	checkEntries(t, fx, []entryWant{
		// Non-leaf: R|W|X (bits 2:0), nothing else.
		{0x20_0000, 4, 0x7, true},
		{0x20_0000, 3, 0x7, true},
		{0x5000, 2, 0x7, true},
		// R W X = 0x7, type WB (6) << 3 = 0x30, IPAT bit 6 = 0x40,
		// PS bit 7 = 0x80; A (8), D (9) clear.
		{0x20_0000, 2, 0x2000f7, false},
		// R W = 0x3, type UC = 0, no IPAT, no PS (bit 7 ignored in a PTE).
		{0x5000, 1, 0x7_0000_5003, false},
		// R = 0x1, WC (1) << 3 = 0x8.
		{0x6000, 1, 0x6009, false},
		// R X = 0x5, WP (5) << 3 = 0x28.
		{0x7000, 1, 0x702d, false},
		// R X = 0x5, WT (4) << 3 = 0x20, PS = 0x80.
		{1 * gib, 3, 0x1_4000_00a5, false},
		// R W X = 0x7, WB 0x30, IPAT 0x40.
		{0x8000, 1, 0x8077, false},
		// Not mapped.
		{0x9000, 1, 0, false},
	})
	// EPTP: WB (6) in bits 2:0, walk length 4-1 = 3 in bits 5:3 (0x18),
	// A/D enable bit 6 (0x40).
	root := fx.tb.Root()
	if got := fx.tb.EPTP(false); got != root|0x1e {
		t.Errorf("EPTP(false) = %#x, want %#x", got, root|0x1e)
	}
	if got := fx.tb.EPTP(true); got != root|0x5e {
		t.Errorf("EPTP(true) = %#x, want %#x", got, root|0x5e)
	}
	checkLookups(t, fx.tb, []lookupWant{
		{0x20_0000 + 0x1234, 0x20_1234, RWX, WB, Size2M},
		{0x5008, 0x7_0000_5008, RW, UC, Size4K},
		{0x6000, 0x6000, Read, WC, Size4K},
		{0x7fff, 0x7fff, RX, WP, Size4K},
		{1*gib + 5*mib + 3, 0x1_4050_0003, RX, WT, Size1G},
		{0x9000, 0, 0, 0, 0},
	})
}

// With suppress-#VE, bit 63 is set in leaves and in every not-present entry
// (SDM Vol. 3C 26.5.7.1), while non-leaf entries keep R|W|X only.
func TestEPTSuppressVE(t *testing.T) {
	fx := newFixture(t, Config{Format: EPTFormat{SuppressVE: true}})
	for i := uint64(0); i < 512; i++ {
		if e := fx.mem.Read64(fx.tb.Root() + 8*i); e != 1<<63 {
			t.Fatalf("fresh root entry %d = %#x, want bit 63 only", i, e)
		}
	}
	fx.mustMap(t, 0x3000, 0x3000, 4*kib, RW, WB)
	checkEntries(t, fx, []entryWant{
		{0x3000, 4, 0x7, true},
		{0x3000, 2, 0x7, true},
		{0x3000, 1, 1<<63 | 0x3000 | 0x73, false}, // R W, WB, IPAT
		{0x4000, 1, 1 << 63, false},
	})
	if err := fx.tb.Unmap(0x3000, 4*kib); err != nil {
		t.Fatal(err)
	}
	if e := fx.mem.Read64(fx.tb.Root()); e != 1<<63 {
		t.Errorf("root entry after unmapping everything = %#x, want bit 63 only", e)
	}
	checkNoLeak(t, fx.tb, fx.mem, fx.pool)
}

// AMD APM Vol. 2 15.25.5 (U/S on every nested entry) and 5.4.1 Figures 5-18
// to 5-25 (bit positions).
func TestNPTEntryBits(t *testing.T) {
	fx := newFixture(t, Config{Format: NPTFormat{NoExecute: true}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0x20_0000, 0x20_0000, 2*mib, RW, WB)
	fx.mustMap(t, 0x1000, 0x3_0000_1000, 4*kib, RX, UC)
	fx.mustMap(t, 0x2000, 0x2000, 4*kib, Read, WT)
	fx.mustMap(t, 0x3000, 0x3000, 4*kib, RWX, UCMinus)
	fx.mustMap(t, 2*gib, 2*gib, 1*gib, RWX, WB)
	checkEntries(t, fx, []entryWant{
		// P R/W U/S, no A preset, no NX.
		{0x20_0000, 4, 0x7, true},
		{0x20_0000, 3, 0x7, true},
		{0x1000, 2, 0x7, true},
		// P 1, R/W 2, U/S 4, PS 0x80, NX bit 63 (no Execute).
		{0x20_0000, 2, 1<<63 | 0x20_0000 | 0x87, false},
		// P U/S, PWT 8, PCD 0x10: UC (PAT entry 3); executable.
		{0x1000, 1, 0x3_0000_1000 | 0x1d, false},
		// P U/S PWT: WT (PAT entry 1); NX.
		{0x2000, 1, 1<<63 | 0x2000 | 0xd, false},
		// P R/W U/S PCD: UC- (PAT entry 2).
		{0x3000, 1, 0x3000 | 0x17, false},
		// 1 GiB: P R/W U/S PS.
		{2 * gib, 3, 2*gib | 0x87, false},
	})
	if fx.tb.EPTP(false) != 0 {
		t.Error("EPTP of NPT tables is not 0")
	}

	// Without EFER.NXE bit 63 is reserved: never set, every page executable.
	fx = newFixture(t, Config{Format: NPTFormat{}})
	fx.mustMap(t, 0x1000, 0x1000, 4*kib, Read, WB)
	checkEntries(t, fx, []entryWant{{0x1000, 1, 0x1005, false}})
	checkLookups(t, fx.tb, []lookupWant{{0x1000, 0x1000, RX, WB, Size4K}})
}

// Intel VT-d spec 3.x 9.8.
func TestVTdEntryBits(t *testing.T) {
	fx := newFixture(t, Config{Format: VTdFormat{Snoop: true}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0x20_0000, 0x80_0000, 2*mib, RW, WB)
	fx.mustMap(t, 0x1000, 0x1000, 4*kib, Read, WB)
	fx.mustMap(t, 0x2000, 0x9000, 4*kib, Write, WB) // write-only DMA is allowed
	checkEntries(t, fx, []entryWant{
		{0x1000, 4, 0x3, true}, // R W
		{0x1000, 3, 0x3, true},
		{0x1000, 2, 0x3, true},
		{0x20_0000, 2, 0x80_0000 | 0x883, false}, // R W, PS 0x80, SNP 0x800
		{0x1000, 1, 0x1801, false},               // R, SNP
		{0x2000, 1, 0x9802, false},               // W, SNP
	})
	checkLookups(t, fx.tb, []lookupWant{
		{0x20_0010, 0x80_0010, RW, WB, Size2M},
		{0x2000, 0x9000, Write, WB, Size4K},
	})
}

// AMD IOMMU spec 2.2.3: PR bit 0, next level bits 11:9, IR 61, IW 62, FC 60.
func TestAMDViEntryBits(t *testing.T) {
	fx := newFixture(t, Config{Format: AMDViFormat{}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0x20_0000, 0x20_0000, 2*mib, RW, WB)
	fx.mustMap(t, 0x1000, 0x5000, 4*kib, Read, WB)
	checkEntries(t, fx, []entryWant{
		// PR, IR, IW, next level = the level of the table referenced.
		{0x1000, 4, 1<<62 | 1<<61 | 3<<9 | 1, true},
		{0x1000, 3, 1<<62 | 1<<61 | 2<<9 | 1, true},
		{0x1000, 2, 1<<62 | 1<<61 | 1<<9 | 1, true},
		// Default-size leaves: next level 0.
		{0x20_0000, 2, 1<<62 | 1<<61 | 0x20_0000 | 1, false},
		{0x1000, 1, 1<<61 | 0x5000 | 1, false},
	})
	fx = newFixture(t, Config{Format: AMDViFormat{ForceCoherent: true}})
	fx.mustMap(t, 0x1000, 0x1000, 4*kib, Write, WB)
	checkEntries(t, fx, []entryWant{{0x1000, 1, 1<<62 | 1<<60 | 0x1000 | 1, false}})
	checkLookups(t, fx.tb, []lookupWant{{0x1000, 0x1000, Write, WB, Size4K}})
}

// Intel SDM Vol. 3A 4.5 Tables 4-15 to 4-20.
func TestHostEntryBits(t *testing.T) {
	fx := newFixture(t, Config{Format: HostFormat{NoExecute: true}, PageSizes: AllPageSizes})
	fx.mustMap(t, 0x20_0000, 0x20_0000, 2*mib, RW|Global, UC)
	fx.mustMap(t, 0x1000, 0x1000, 4*kib, RX, WB)
	checkEntries(t, fx, []entryWant{
		{0x1000, 4, 0x23, true}, // P R/W A
		{0x1000, 3, 0x23, true},
		{0x1000, 2, 0x23, true},
		// P R/W PWT PCD A D PS G NX.
		{0x20_0000, 2, 1<<63 | 0x20_0000 | 0x1fb, false},
		// P A D, executable, read-only.
		{0x1000, 1, 0x1061, false},
	})

	fx = newFixture(t, Config{Format: HostFormat{User: true}})
	fx.mustMap(t, 0x1000, 0x1000, 4*kib, RW|User, WB)
	checkEntries(t, fx, []entryWant{
		{0x1000, 4, 0x27, true}, // P R/W U/S A
		{0x1000, 1, 0x1067, false},
	})
	checkLookups(t, fx.tb, []lookupWant{{0x1000, 0x1000, RWX | User, WB, Size4K}})
}

func TestFormatChecks(t *testing.T) {
	for _, c := range []struct {
		f    Format
		perm Perm
		mem  MemType
		want string // "" for accepted
	}{
		{EPTFormat{}, Write, WB, "misconfiguration"},
		{EPTFormat{}, Execute, WB, "execute-only"},
		{EPTFormat{ExecuteOnly: true}, Execute, WB, ""},
		{EPTFormat{}, RW | User, WB, "only R, W and X"},
		{EPTFormat{}, RW, UCMinus, "memory type UC-"},
		{EPTFormat{}, RW, WC, ""},
		{NPTFormat{}, Write, WB, "Read is required"},
		{NPTFormat{}, RW, WC, "memory type WC"},
		{NPTFormat{}, RW | Global, WB, "only R, W and X"},
		{HostFormat{}, RW | User, WB, "HostFormat.User"},
		{HostFormat{}, RW | Global, UCMinus, ""},
		{HostFormat{}, RW, WP, "memory type WP"},
		{VTdFormat{}, RWX, WB, "only R and W"},
		{VTdFormat{}, RW, UC, "memory type UC"},
		{VTdFormat{}, Write, WB, ""},
		{AMDViFormat{}, Read | Execute, WB, "only IR and IW"},
		{AMDViFormat{}, Read, WT, "memory type WT"},
		{AMDViFormat{}, Read, MemType(42), "MemType(42)"},
	} {
		err := c.f.Check(c.perm, c.mem)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v.Check(%v, %v) = %v, want accepted", c.f, c.perm, c.mem, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v.Check(%v, %v) = %v, want %q", c.f, c.perm, c.mem, err, c.want)
		}
	}
}

// Decoding what a format encodes gives the permissions and memory type back,
// at every level, and the page address.
func TestFormatRoundTrip(t *testing.T) {
	formats := []Format{HostFormat{NoExecute: true, User: true}, NPTFormat{NoExecute: true},
		EPTFormat{ExecuteOnly: true, SuppressVE: true}, VTdFormat{Snoop: true}, AMDViFormat{ForceCoherent: true}}
	for _, f := range formats {
		for level := 1; level <= 3; level++ {
			page := uint64(0xa_bcde_f000) &^ (LevelSpan(level) - 1)
			for perm := Perm(1); perm < 1<<5; perm++ {
				for mem := WB; mem < numMemTypes; mem++ {
					if f.Check(perm, mem) != nil {
						continue
					}
					e := f.Leaf(page, level, perm, mem)
					if !f.Present(e) || !f.IsLeaf(e, level) || f.Addr(e, level) != page ||
						f.Perm(e) != perm || f.MemType(e) != mem {
						t.Errorf("%v level %d %v %v: entry %#x decodes as present %v leaf %v %#x %v %v",
							f, level, perm, mem, e, f.Present(e), f.IsLeaf(e, level), f.Addr(e, level), f.Perm(e), f.MemType(e))
					}
				}
			}
			if level > 1 {
				e := f.Table(0x1234_5000, level)
				if !f.Present(e) || f.IsLeaf(e, level) || f.Addr(e, level) != 0x1234_5000 {
					t.Errorf("%v level %d: table entry %#x decodes wrong", f, level, e)
				}
			}
		}
		if f.Present(f.Empty()) {
			t.Errorf("%v: Empty() %#x is present", f, f.Empty())
		}
	}
}
