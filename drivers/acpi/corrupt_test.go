package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// fixChecksum makes a table's bytes sum to zero again (ACPI 6.5, 5.2.6:
// the checksum is byte 9).
func fixChecksum(b []byte) {
	b[9] = 0
	b[9] = -checksum(b)
}

// fixRSDP recomputes both RSDP checksums (bytes 8 and 32).
func fixRSDP(b []byte) {
	b[8] = 0
	b[8] = -checksum(b[:20])
	if len(b) >= 36 {
		b[32] = 0
		b[32] = -checksum(b)
	}
}

// onlyProblem requires exactly one problem, naming sig at addr, of kind
// kind, and returns it.
func onlyProblem(t *testing.T, tb *Tables, sig string, addr uint64, kind error) *TableError {
	t.Helper()
	if len(tb.Problems) != 1 {
		t.Fatalf("problems = %v, want exactly one", tb.Problems)
	}
	var te *TableError
	if !errors.As(tb.Problems[0], &te) {
		t.Fatalf("problem %T is not a *TableError", tb.Problems[0])
	}
	if !errors.Is(te, kind) || te.Signature != sig || te.Address != addr {
		t.Fatalf("problem %q: want %s at %#x, kind %v", te, sig, addr, kind)
	}
	prefix := fmt.Sprintf("acpi: %s at %#x: ", sig, addr)
	if !strings.HasPrefix(te.Error(), prefix) {
		t.Fatalf("message %q does not start with %q", te, prefix)
	}
	return te
}

func TestCorruptChecksumSkipsOnlyThatTable(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	madt := m.table(t, SigMADT)
	mem := m.memory()
	// Flip one byte inside the first local APIC entry.
	mem.Write8(madt.addr+44+3, madt.raw[44+3]^0x40)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, SigMADT, madt.addr, ErrChecksum)
	if want := fmt.Sprintf("acpi: APIC at %#x: checksum mismatch (sum 0x40)", madt.addr); te.Error() != want {
		t.Errorf("message %q, want %q", te, want)
	}
	if tb.MADT != nil || tb.Find(SigMADT) != nil {
		t.Error("the corrupt MADT was used")
	}
	if tb.FADT == nil || len(tb.HPETs) != 1 || tb.MCFG == nil || tb.Find(SigDSDT) == nil {
		t.Error("the other tables were not all parsed")
	}
	if got := tb.Summary(); got != "FACP HPET MCFG WAET; 1 problem" {
		t.Errorf("Summary = %q", got)
	}
}

func TestCorruptLengthShorterThanHeader(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	hpet := m.table(t, SigHPET)
	mem := m.memory()
	mem.Write32(hpet.addr+4, 20)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, SigHPET, hpet.addr, ErrTruncated)
	if !strings.Contains(te.Error(), "length 20 is shorter than the 36-byte header") {
		t.Errorf("message %q", te)
	}
	if len(tb.HPETs) != 0 || tb.MADT == nil || tb.MCFG == nil {
		t.Error("wrong tables kept")
	}
}

// A table whose length covers the header but not its own fixed fields,
// with a valid checksum: read, kept raw, not decoded.
func TestCorruptLengthShorterThanFixedPart(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	hpet := m.table(t, SigHPET)
	raw := append([]byte(nil), hpet.raw[:48]...)
	binary.LittleEndian.PutUint32(raw[4:], 48)
	fixChecksum(raw)
	mem := m.memory()
	mem.Load(hpet.addr, raw)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, SigHPET, hpet.addr, ErrTruncated)
	if !strings.Contains(te.Error(), "length 48 is shorter than the 56-byte fixed part") {
		t.Errorf("message %q", te)
	}
	if len(tb.HPETs) != 0 || tb.Find(SigHPET) == nil || tb.Find(SigHPET).Length != 48 {
		t.Error("the short HPET should be kept raw and not decoded")
	}
}

func TestCorruptAbsurdLength(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	mcfg := m.table(t, SigMCFG)
	mem := m.memory()
	mem.Write32(mcfg.addr+4, 0x7fffffff)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, SigMCFG, mcfg.addr, ErrTooLong)
	if !strings.Contains(te.Error(), "length 0x7fffffff is over the 0x1000000 limit") {
		t.Errorf("message %q", te)
	}
	if tb.MCFG != nil || tb.MADT == nil || tb.FADT == nil {
		t.Error("wrong tables kept")
	}
}

func TestCorruptLengthPastMemory(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	waet := m.table(t, "WAET")
	mem := m.memory()
	// 1 MiB: plausible, but it runs past the top of the 128 MiB of RAM.
	mem.Write32(waet.addr+4, 1<<20)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, "WAET", waet.addr, ErrUnreadable)
	if !strings.Contains(te.Error(), "runs past readable memory") {
		t.Errorf("message %q", te)
	}
	if got := tb.Summary(); got != "FACP APIC HPET MCFG; 1 problem" {
		t.Errorf("Summary = %q", got)
	}
}

func TestRootEntryOutsideMemory(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	rsdt := m.table(t, SigRSDT)
	raw := append([]byte(nil), rsdt.raw...)
	// Entry 1 (the MADT) now points above the top of RAM.
	binary.LittleEndian.PutUint32(raw[36+4:], 0xfff00000)
	fixChecksum(raw)
	mem := m.memory()
	mem.Load(rsdt.addr, raw)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Problems) != 1 || !errors.Is(tb.Problems[0], ErrUnreadable) ||
		tb.Problems[0].Error() != "acpi: RSDT entry 1 at 0xfff00000: unreadable: cannot read the header: physical range 0xfff00000+0x8 is outside memory" {
		t.Fatalf("problems = %v", tb.Problems)
	}
	if tb.MADT != nil || tb.FADT == nil || tb.MCFG == nil {
		t.Error("wrong tables kept")
	}
}

func TestRootEntryToGarbage(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	rsdt := m.table(t, SigRSDT)
	raw := append([]byte(nil), rsdt.raw...)
	binary.LittleEndian.PutUint32(raw[36+8:], 0x100000) // zeroed RAM
	fixChecksum(raw)
	mem := m.memory()
	mem.Load(rsdt.addr, raw)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if len(tb.Problems) != 1 || !errors.Is(tb.Problems[0], ErrSignature) ||
		tb.Problems[0].Error() != `acpi: RSDT entry 2 "\x00\x00\x00\x00" at 0x100000: bad signature: "\x00\x00\x00\x00" is not a table signature` {
		t.Fatalf("problems = %v", tb.Problems)
	}
	if len(tb.HPETs) != 0 || tb.MADT == nil {
		t.Error("wrong tables kept")
	}
}

func TestRootEntryListedTwice(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	rsdt := m.table(t, SigRSDT)
	raw := append([]byte(nil), rsdt.raw...)
	copy(raw[36+12:36+16], raw[36+4:36+8]) // MCFG's slot now lists the MADT again
	fixChecksum(raw)
	mem := m.memory()
	mem.Load(rsdt.addr, raw)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	onlyProblem(t, tb, SigMADT, m.table(t, SigMADT).addr, ErrDuplicate)
	if tb.MADT == nil || tb.MCFG != nil || len(tb.FindAll(SigMADT)) != 1 {
		t.Error("the MADT should be used once")
	}
}

func TestDuplicateSignatureUsesFirst(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	madt := m.table(t, SigMADT)
	// A second, different MADT (one CPU fewer) at a free address, listed
	// in the WAET's slot.
	second := append([]byte(nil), madt.raw[:44]...)
	second = append(second, madt.raw[44+8:]...)
	binary.LittleEndian.PutUint32(second[4:], uint32(len(second)))
	fixChecksum(second)
	const at = 0x100000
	rsdt := m.table(t, SigRSDT)
	raw := append([]byte(nil), rsdt.raw...)
	binary.LittleEndian.PutUint32(raw[36+16:], at)
	fixChecksum(raw)
	mem := m.memory()
	mem.Load(rsdt.addr, raw)
	mem.Load(at, second)
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, SigMADT, at, ErrDuplicate)
	if !strings.Contains(te.Error(), fmt.Sprintf("the first at %#x is used", madt.addr)) {
		t.Errorf("message %q", te)
	}
	if len(tb.MADT.LocalAPICs) != 2 || len(tb.FindAll(SigMADT)) != 2 {
		t.Error("the first MADT should be decoded, both kept raw")
	}
}

func TestRSDPBadChecksum(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	mem := m.memory()
	mem.Write8(m.rsdpAddr+9, 'X') // OEMID, under the ACPI 1.0 checksum
	_, err := Parse(mem, m.rsdpAddr)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Parse error = %v, want a checksum error", err)
	}
	if want := fmt.Sprintf("acpi: RSDP at %#x: checksum mismatch (sum ", m.rsdpAddr); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	// The search skips the damaged candidate and says so.
	_, err = FindRSDP(mem)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), fmt.Sprintf("RSDP at %#x: checksum mismatch", m.rsdpAddr)) {
		t.Errorf("FindRSDP error = %v", err)
	}
}

func TestRSDPExtendedChecksum(t *testing.T) {
	m := loadMachine(t, "qemu-q35-ovmf")
	mem := m.memory()
	// The XSDT address lies outside the ACPI 1.0 checksum's 20 bytes.
	mem.Write8(m.rsdpAddr+25, m.rsdp[25]^1)
	_, err := Parse(mem, m.rsdpAddr)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "extended checksum") {
		t.Fatalf("Parse error = %v", err)
	}
}

func TestRSDPWrongAddress(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	_, err := Parse(m.memory(), m.rsdpAddr+16)
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "RSDP at") {
		t.Fatalf("Parse error = %v", err)
	}
	_, err = Parse(m.memory(), 0x10_0000_0000)
	if !errors.Is(err, ErrUnreadable) {
		t.Fatalf("Parse beyond memory: %v", err)
	}
}

func TestXSDTOutsideMemory(t *testing.T) {
	m := loadMachine(t, "qemu-q35-ovmf")
	rsdp := append([]byte(nil), m.rsdp...)
	binary.LittleEndian.PutUint64(rsdp[24:], 0x2_0000_0000) // above the 128 MiB Limit
	t.Run("no RSDT: fatal", func(t *testing.T) {
		r := append([]byte(nil), rsdp...)
		binary.LittleEndian.PutUint32(r[16:], 0)
		fixRSDP(r)
		mem := m.memory()
		mem.Load(m.rsdpAddr, r)
		tb, err := Parse(mem, m.rsdpAddr)
		if tb != nil || !errors.Is(err, ErrUnreadable) {
			t.Fatalf("Parse = %v, %v; want an unreadable-XSDT error", tb, err)
		}
		if want := "acpi: XSDT at 0x200000000: unreadable: cannot read the header"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q, want prefix %q", err, want)
		}
	})
	t.Run("RSDT fallback", func(t *testing.T) {
		r := append([]byte(nil), rsdp...)
		fixRSDP(r)
		mem := m.memory()
		mem.Load(m.rsdpAddr, r)
		tb, err := Parse(mem, m.rsdpAddr)
		if err != nil {
			t.Fatal(err)
		}
		onlyProblem(t, tb, SigXSDT, 0x2_0000_0000, ErrUnreadable)
		if tb.Root.Signature != SigRSDT || tb.Summary() != "FACP APIC HPET MCFG WAET; 1 problem" || tb.MADT == nil {
			t.Errorf("root %s, summary %q", tb.Root.Signature, tb.Summary())
		}
	})
	t.Run("both broken", func(t *testing.T) {
		r := append([]byte(nil), rsdp...)
		binary.LittleEndian.PutUint32(r[16:], 0x7fff000) // zeroed RAM
		fixRSDP(r)
		mem := m.memory()
		mem.Load(m.rsdpAddr, r)
		_, err := Parse(mem, m.rsdpAddr)
		if err == nil || !strings.Contains(err.Error(), "XSDT at 0x200000000") || !strings.Contains(err.Error(), "RSDT at 0x7fff000") {
			t.Fatalf("error = %v, want both roots named", err)
		}
	})
}

func TestXSDTBadChecksumFallsBackToRSDT(t *testing.T) {
	m := loadMachine(t, "qemu-q35-ovmf")
	xsdt := m.table(t, SigXSDT)
	mem := m.memory()
	mem.Write8(xsdt.addr+10, 'x')
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	onlyProblem(t, tb, SigXSDT, xsdt.addr, ErrChecksum)
	if tb.Root.Signature != SigRSDT || tb.Root.Address != m.table(t, SigRSDT).addr || tb.FADT == nil {
		t.Errorf("root %+v", tb.Root)
	}
}

func TestDSDTBroken(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	dsdt := m.table(t, SigDSDT)
	mem := m.memory()
	mem.Load(dsdt.addr, []byte("SSDT"))
	tb, err := Parse(mem, m.rsdpAddr)
	if err != nil {
		t.Fatal(err)
	}
	te := onlyProblem(t, tb, SigDSDT, dsdt.addr, ErrSignature)
	if !strings.Contains(te.Error(), `found "SSDT", want "DSDT"`) {
		t.Errorf("message %q", te)
	}
	if tb.FADT == nil || tb.Find(SigDSDT) != nil || tb.Find(SigFACS) == nil {
		t.Error("wrong tables kept")
	}
}

func TestFindRSDPInEBDA(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	mem := m.memory()
	ebda := uint64(m.ebdaSeg) << 4
	// Copy the RSDP into the EBDA's first KiB: it is searched first.
	at := ebda + 0x3f0
	mem.Load(at, m.rsdp)
	got, err := FindRSDP(mem)
	if err != nil || got != at {
		t.Fatalf("FindRSDP = %#x, %v; want %#x", got, err, at)
	}
	// Beyond the first KiB it is not looked for there.
	mem.Load(at, make([]byte, len(m.rsdp)))
	mem.Load(ebda+0x400, m.rsdp)
	if got, err := FindRSDP(mem); err != nil || got != m.rsdpAddr {
		t.Fatalf("FindRSDP = %#x, %v; want the BIOS-area copy %#x", got, err, m.rsdpAddr)
	}
	// Off the 16-byte grid it is not found.
	mem2 := hwfake.NewMemory()
	mem2.Load(0xe0008, m.rsdp)
	if _, err := FindRSDP(mem2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unaligned RSDP found: %v", err)
	}
}

func TestFindRSDPUnreadableLowMemory(t *testing.T) {
	mem := hwfake.NewMemory()
	mem.Limit = 0x1000
	_, err := FindRSDP(mem)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("FindRSDP = %v", err)
	}
}

// A root with more entries than MaxTables is cut at MaxTables, reported.
func TestRootEntryCap(t *testing.T) {
	m := loadMachine(t, "qemu-q35")
	waet := m.table(t, "WAET")
	n := MaxTables + 100
	root := make([]byte, 36+8*n)
	copy(root, "XSDT")
	binary.LittleEndian.PutUint32(root[4:], uint32(len(root)))
	root[8] = 1
	const tables = 0x200000
	for i := 0; i < n; i++ {
		a := uint64(tables + 64*i)
		binary.LittleEndian.PutUint64(root[36+8*i:], a)
	}
	fixChecksum(root)
	mem := hwfake.NewMemory()
	for i := 0; i < n; i++ {
		mem.Load(uint64(tables+64*i), waet.raw)
	}
	const rootAt = 0x100000
	mem.Load(rootAt, root)
	rsdp := make([]byte, 36)
	copy(rsdp, "RSD PTR ")
	rsdp[15] = 2
	binary.LittleEndian.PutUint32(rsdp[20:], 36)
	binary.LittleEndian.PutUint64(rsdp[24:], rootAt)
	fixRSDP(rsdp)
	mem.Load(0xe0000, rsdp)
	tb, err := Parse(mem, 0xe0000)
	if err != nil {
		t.Fatal(err)
	}
	onlyProblem(t, tb, SigXSDT, rootAt, ErrTooLong)
	if got := len(tb.FindAll("WAET")); got != MaxTables {
		t.Errorf("%d tables read, want %d", got, MaxTables)
	}
}
