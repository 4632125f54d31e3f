package acpi

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"tamavisor/drivers/hw/hwfake"
)

// machine is one emulator's tables as tools/acpidump extracted them.
type machine struct {
	name     string
	ramLimit uint64
	ebdaSeg  uint16
	rsdpAddr uint64
	rsdp     []byte
	tables   []machineTable
}

type machineTable struct {
	sig  string
	addr uint64
	raw  []byte
}

func loadMachine(t testing.TB, name string) *machine {
	t.Helper()
	dir := filepath.Join("testdata", name)
	f, err := os.Open(filepath.Join(dir, "manifest.txt"))
	if err != nil {
		t.Fatalf("%s: %v (regenerate with: go run ./tools/acpidump)", name, err)
	}
	defer f.Close()
	m := &machine{name: name}
	num := func(s string) uint64 {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("%s manifest: %v", name, err)
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
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		w := strings.Fields(line)
		switch {
		case w[0] == "machine" && len(w) == 2:
		case w[0] == "ram-limit" && len(w) == 2:
			m.ramLimit = num(w[1])
		case w[0] == "ebda-segment" && len(w) == 2:
			m.ebdaSeg = uint16(num(w[1]))
		case w[0] == "rsdp" && len(w) == 3:
			m.rsdpAddr = num(w[1])
			m.rsdp = read(w[2])
		case w[0] == "table" && len(w) == 4:
			m.tables = append(m.tables, machineTable{w[1], num(w[2]), read(w[3])})
		default:
			t.Fatalf("%s manifest: bad line %q", name, line)
		}
	}
	if m.rsdp == nil || len(m.tables) == 0 {
		t.Fatalf("%s manifest: no RSDP or no tables", name)
	}
	return m
}

// memory rebuilds the machine's physical memory: the BDA's EBDA pointer,
// the RSDP and every table at its real address, reads failing at the top
// of RAM.
func (m *machine) memory() *hwfake.Memory {
	mem := hwfake.NewMemory()
	mem.Limit = m.ramLimit
	mem.Load(0x40e, []byte{byte(m.ebdaSeg), byte(m.ebdaSeg >> 8)})
	mem.Load(m.rsdpAddr, m.rsdp)
	for _, t := range m.tables {
		mem.Load(t.addr, t.raw)
	}
	return mem
}

func (m *machine) table(t testing.TB, sig string) machineTable {
	t.Helper()
	for _, x := range m.tables {
		if x.sig == sig {
			return x
		}
	}
	t.Fatalf("%s has no %s", m.name, sig)
	return machineTable{}
}
