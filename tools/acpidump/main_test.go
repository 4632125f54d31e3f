package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const testdata = "../../drivers/acpi/testdata"

// loadImage rebuilds a dumped machine as an image: one window per table,
// the RSDP and the BIOS data area word that points at the EBDA.
func loadImage(t *testing.T, name string) (image, []extractedTable, uint64) {
	t.Helper()
	dir := filepath.Join(testdata, name)
	f, err := os.Open(filepath.Join(dir, "manifest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var im image
	var tables []extractedTable
	var rsdp uint64
	num := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	read := func(file string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The legacy search reads the BIOS area and the EBDA: give it zeros.
	low := make([]byte, 0x100000)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		switch w[0] {
		case "ebda-segment":
			seg := num(w[1])
			low[0x40e], low[0x40f] = byte(seg), byte(seg>>8)
		case "rsdp":
			rsdp = num(w[1])
			b := read(w[2])
			if rsdp+uint64(len(b)) <= uint64(len(low)) {
				copy(low[rsdp:], b)
			} else {
				im = append(im, window{rsdp, b})
			}
		case "table":
			tb := extractedTable{w[1], num(w[2]), read(w[3])}
			tables = append(tables, tb)
			im = append(im, window{tb.addr, tb.raw})
		}
	}
	return append(image{{0, low}}, im...), tables, rsdp
}

// Extracting again from the dumped tables gives the same tables: the walk
// finds everything the manifest lists, at the same addresses.
func TestExtractIsStable(t *testing.T) {
	for _, m := range machines {
		t.Run(m.name, func(t *testing.T) {
			im, want, rsdp := loadImage(t, m.name)
			x, err := extract(im, m)
			if err != nil {
				t.Fatal(err)
			}
			if len(x.warnings) != 0 || x.rsdpAddr != rsdp {
				t.Fatalf("warnings %v, RSDP %#x want %#x", x.warnings, x.rsdpAddr, rsdp)
			}
			if len(x.tables) != len(want) {
				t.Fatalf("%d tables, manifest has %d", len(x.tables), len(want))
			}
			got := map[uint64]extractedTable{}
			for _, tb := range x.tables {
				got[tb.addr] = tb
			}
			for _, w := range want {
				g, ok := got[w.addr]
				if !ok || g.sig != w.sig || !bytes.Equal(g.raw, w.raw) {
					t.Errorf("%s at %#x not extracted as dumped", w.sig, w.addr)
				}
			}
		})
	}
}

func TestValidRSDPRejects(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testdata, "qemu-q35-ovmf", "rsdp.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := validRSDP(image{{0x1000, raw}}, 0x1000); !ok {
		t.Fatal("the real RSDP is rejected")
	}
	bad := append([]byte(nil), raw...)
	bad[24] ^= 1 // XSDT address: only the extended checksum covers it
	if _, ok := validRSDP(image{{0x1000, bad}}, 0x1000); ok {
		t.Error("extended checksum not checked")
	}
	if _, ok := validRSDP(image{{0x1000, raw[:20]}}, 0x1000); ok {
		t.Error("a revision 2 RSDP cut to 20 bytes is accepted")
	}
}
