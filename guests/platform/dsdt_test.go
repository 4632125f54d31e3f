package platform

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dsdtASL is the DSDT that DSDT() encodes, written in ASL for iasl.
const dsdtASL = `DefinitionBlock ("", "DSDT", 2, "TAMAVI", "TAMAVISR", 1)
{
    Name (\_S5, Package (0x04) { 0x05, Zero, Zero, Zero })
    Scope (\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A08"))
            Name (_CID, EisaId ("PNP0A03"))
            Name (_UID, Zero)
            Name (_SEG, Zero)
            Name (_BBN, Zero)
            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100,,,)
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08,)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8,,,, TypeStatic, DenseTranslation)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300,,,, TypeStatic, DenseTranslation)
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x00000000, 0xC0000000, 0xDFFFFFFF, 0x00000000, 0x20000000,,,, AddressRangeMemory, TypeStatic)
            })
        }
    }
}
`

// dsdtVector is the AML body (after the 36-byte header) iasl 20200925
// compiles dsdtASL to, with its default optimizations (which drop the root
// prefix of \_S5 and \_SB, as DSDT() does).
const dsdtVector = "085f53355f1207040a050000001042095f53425f5b824a0850434930085f4849440c41d00a08085f4349440c41d00a03085f55494400085f53454700085f42424e00085f4352531148050a54880d00020c0000000000ff00000000014701f80cf80c0108880d00010c0300000000f70c0000f80c880d00010c030000000dffff000000f3871700000c0100000000000000c0ffffffdf00000000000000207900"

func TestDSDTVector(t *testing.T) {
	l, err := NewLayout(512*MiB, 2)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DSDT(l)
	if err != nil {
		t.Fatal(err)
	}
	if string(d[:4]) != "DSDT" || d[8] != 2 || int(d[4])|int(d[5])<<8 != len(d) {
		t.Errorf("DSDT header % x", d[:36])
	}
	if h := hex.EncodeToString(d[36:]); h != dsdtVector {
		t.Errorf("DSDT body\n got %s\nwant %s", h, dsdtVector)
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

func needIASL(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("iasl")
	if err != nil {
		skipLoudly(t, "iasl not found; install it with `apt-get install acpica-tools`")
	}
	return p
}

// iasl compiles the ASL of the DSDT to the same AML body as DSDT().
func TestDSDTAgainstIASL(t *testing.T) {
	iasl := needIASL(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dsdt.asl"), []byte(dsdtASL), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(iasl, "-p", filepath.Join(dir, "ref"), filepath.Join(dir, "dsdt.asl"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("iasl: %v\n%s", err, out)
	}
	ref, err := os.ReadFile(filepath.Join(dir, "ref.aml"))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := NewLayout(512*MiB, 2)
	d, err := DSDT(l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ref[36:], d[36:]) {
		t.Errorf("iasl's DSDT body differs:\niasl % x\nours % x", ref[36:], d[36:])
	}
}

// iasl disassembles every generated table without complaint, and reads
// back what the tables mean.
func TestTablesDisassemble(t *testing.T) {
	iasl := needIASL(t)
	l, _ := NewLayout(512*MiB, 4)
	img, tabs, err := Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	table := func(addr uint64) []byte {
		b := img[addr-l.ACPIArea.Start:]
		n := int(b[4]) | int(b[5])<<8 | int(b[6])<<16
		return b[:n]
	}
	files := map[string][]byte{
		"dsdt": table(tabs.DSDT), "facp": table(tabs.FADT), "apic": table(tabs.MADT),
		"mcfg": table(tabs.MCFG), "xsdt": table(tabs.XSDT), "rsdt": table(tabs.RSDT),
		"facs": img[tabs.FACS-l.ACPIArea.Start:][:64],
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name+".dat"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{
		"dsdt": {`Name (_S5, Package (0x04)`, `0x05,`, `Device (PCI0)`, `Name (_HID, EisaId ("PNP0A08")`,
			`Name (_CID, EisaId ("PNP0A03")`, `Name (_SEG, Zero)`, `Name (_BBN, Zero)`,
			`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,`,
			`0x0CF7,             // Range Maximum`, `0xDFFFFFFF,         // Range Maximum`},
		"facp": {`Revision : 06`, `SCI Interrupt : 0009`, `PM1A Control Block Address : 00000604`,
			`PM Timer Block Address : 00000608`, `32-bit PM Timer (V1) : 1`,
			`Reset Register Supported (V2) : 1`, `8042 Present on ports 60/64 (V2) : 1`,
			`Value to cause reset : 06`, `Hypervisor ID : 52534956414D4154`},
		"apic": {`Processor Local APIC`, `Local Apic ID : 03`, `I/O APIC`, `Address : FEC00000`,
			`Source : 09`, `Interrupt : 00000009`, `Flags (decoded below) : 000F`, `Flags (decoded below) : 0005`,
			`Subtable Type : 04 [Local APIC NMI]`, `Processor ID : FF`, `Interrupt Input LINT : 01`},
		"mcfg": {`Base Address : 00000000E0000000`, `End Bus Number : FF`},
		"xsdt": {fmt.Sprintf("ACPI Table Address   0 : %016X", tabs.FADT), fmt.Sprintf("ACPI Table Address   2 : %016X", tabs.MCFG)},
		"rsdt": {fmt.Sprintf("ACPI Table Address   1 : %08X", tabs.MADT)},
		"facs": {`Signature : "FACS"`, `Version : 02`},
	}
	for name := range files {
		cmd := exec.Command(iasl, "-d", name+".dat")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("iasl -d %s: %v\n%s", name, err, out)
			continue
		}
		for _, bad := range []string{"Error", "Warning", "Invalid", "Incorrect checksum", "**** "} {
			if strings.Contains(string(out), bad) {
				t.Errorf("iasl -d %s says %q:\n%s", name, bad, out)
			}
		}
		dsl, err := os.ReadFile(filepath.Join(dir, name+".dsl"))
		if err != nil {
			t.Fatal(err)
		}
		// Collapse runs of blanks so that the alignment iasl chooses
		// does not matter.
		text := strings.Join(strings.Fields(string(dsl)), " ")
		for _, w := range want[name] {
			if !strings.Contains(text, strings.Join(strings.Fields(w), " ")) {
				t.Errorf("iasl -d %s: no %q in\n%s", name, w, dsl)
			}
		}
		for _, bad := range []string{"Invalid", "Warning", "Error", "checksum is incorrect"} {
			if strings.Contains(string(dsl), bad) {
				t.Errorf("iasl -d %s: the disassembly says %q:\n%s", name, bad, dsl)
			}
		}
	}
}
