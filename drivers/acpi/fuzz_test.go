package acpi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var fuzzMachines = []string{"qemu-q35", "qemu-q35-intel-iommu", "qemu-q35-amd-iommu", "qemu-pc", "qemu-q35-ovmf", "bochs"}

var decodedSigs = []string{SigMADT, SigFADT, SigHPET, SigMCFG, SigDMAR, SigIVRS}

// decodeBySig runs the decoder for sig and checks what any decoder must
// guarantee, whatever the bytes: entries bounded by the bytes that hold
// them.
func decodeBySig(t *testing.T, sig string, raw []byte) {
	var err error
	switch sig {
	case SigMADT:
		var m *MADT
		m, err = ParseMADT(raw)
		if m != nil {
			n := len(m.LocalAPICs) + len(m.IOAPICs) + len(m.Overrides) + len(m.NMISources) + len(m.LocalAPICNMIs)
			if n > len(raw)/2 {
				t.Fatalf("MADT: %d entries from %d bytes", n, len(raw))
			}
		}
	case SigFADT:
		var f *FADT
		f, err = ParseFADT(raw)
		if f != nil {
			f.PMTimer()
			f.Reset()
			_ = f.BootArch.String()
		}
	case SigHPET:
		var h *HPET
		h, err = ParseHPET(raw)
		if h != nil && (h.Comparators() < 1 || h.Comparators() > 32) {
			t.Fatalf("HPET: %d comparators", h.Comparators())
		}
	case SigMCFG:
		var m *MCFG
		m, err = ParseMCFG(raw)
		if m != nil && len(m.Allocations) > len(raw)/mcfgAllocationLength {
			t.Fatalf("MCFG: %d allocations from %d bytes", len(m.Allocations), len(raw))
		}
	case SigDMAR:
		var d *DMAR
		d, err = ParseDMAR(raw)
		if d != nil {
			hops := 0
			for _, u := range d.DRHDs {
				for _, s := range u.Scopes {
					hops += len(s.Path)
				}
			}
			if hops > len(raw)/2 {
				t.Fatalf("DMAR: %d path steps from %d bytes", hops, len(raw))
			}
		}
	case SigIVRS:
		var v *IVRS
		v, err = ParseIVRS(raw)
		if v != nil {
			n := 0
			for _, h := range v.IVHDs {
				n += len(h.Entries)
			}
			if n > len(raw)/4 {
				t.Fatalf("IVRS: %d device entries from %d bytes", n, len(raw))
			}
		}
	}
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrSignature) {
		t.Fatalf("%s: error of no known kind: %v", sig, err)
	}
}

// FuzzDecodeTable feeds one table's bytes to the decoder its selector
// picks; the signature is forced so that mutations go to the contents.
func FuzzDecodeTable(f *testing.F) {
	for _, name := range fuzzMachines {
		m := loadMachine(f, name)
		for _, t := range m.tables {
			for i, sig := range decodedSigs {
				if t.sig == sig {
					f.Add(uint8(i), t.raw)
				}
			}
		}
	}
	f.Add(uint8(0), mkTable(SigMADT, 5, u32(0xfee00000), u32(0), cat([]byte{9, 16}, u16(0), u32(0x100), u32(1), u32(300)), cat([]byte{5, 12}, u16(0), u64(0x1_fee00000))))
	f.Add(uint8(5), mkTable(SigIVRS, 2, u32(1), u64(0), ivhd(IVHDType40, 0, 2, 1, 0, []byte{IVHDEntrySelect, 8, 0, 0}, cat([]byte{0xf0}, u16(0xa5), []byte{0}, []byte("AMDI0020"), make([]byte, 8), []byte{2, 1, 'x'}))))
	f.Add(uint8(4), mkTable(SigDMAR, 1, []byte{45, 1}, make([]byte, 10), dmarStruct(1, cat(u16(0), u16(0), u64(0x7c000000), u64(0x7c7fffff)), scope(ScopePCIEndpoint, 0, 0, 0x14, 0))))
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		sig := decodedSigs[int(sel)%len(decodedSigs)]
		raw := append([]byte(nil), data...)
		if len(raw) >= 4 {
			copy(raw, sig)
		}
		decodeBySig(t, sig, raw)
	})
}

// sparseMem is a fast fake physical memory for fuzzing: a few regions,
// zeros elsewhere, reads failing at and above limit.
type sparseMem struct {
	limit   uint64
	regions map[uint64][]byte
}

func (m *sparseMem) ReadPhys(addr uint64, buf []byte) error {
	end := addr + uint64(len(buf))
	if end < addr || end > m.limit {
		return fmt.Errorf("physical range %#x+%#x is outside memory", addr, len(buf))
	}
	clear(buf)
	for base, r := range m.regions {
		rend := base + uint64(len(r))
		if rend <= addr || base >= end {
			continue
		}
		lo, hi := max(base, addr), min(rend, end)
		copy(buf[lo-addr:hi-addr], r[lo-base:hi-base])
	}
	return nil
}

// The fuzzed machine: up to 16 chunks of the input, each at its own
// 64 KiB slot from 1 MiB, and an RSDP at 0xE0000 pointing at slot 0 (and,
// for revision 2, an XSDT in slot 0 and the RSDT in slot 1).
const (
	fuzzRSDP     = 0xe0000
	fuzzSlotBase = 0x100000
	fuzzSlotSize = 0x10000
	fuzzSlots    = 16
	fuzzLimit    = fuzzSlotBase + fuzzSlots*fuzzSlotSize
)

func slotAddr(i int) uint64 { return fuzzSlotBase + uint64(i)*fuzzSlotSize }

// encodeChunks is the fuzz input format: each chunk a 16-bit length and
// its bytes.
func encodeChunks(chunks [][]byte) []byte {
	var b []byte
	for _, c := range chunks {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	return b
}

// seedChunks lays a real machine's tables out in slots: slot 0 the root
// (rebuilt with slot addresses), then the tables, with the FADT's DSDT
// and FACS pointers moved to their slots.
func seedChunks(t testing.TB, name string, xsdt bool) [][]byte {
	m := loadMachine(t, name)
	var tables []machineTable
	for _, x := range m.tables {
		if x.sig != SigRSDT && x.sig != SigXSDT && x.sig != SigDSDT && x.sig != SigFACS {
			tables = append(tables, x)
		}
	}
	first := 1
	if xsdt {
		first = 2 // slot 1 holds the RSDT
	}
	slotOf := map[string]int{}
	var rootBody, rsdtBody []byte
	for i, x := range tables {
		slotOf[x.sig] = first + i
		rootBody = appendEntry(rootBody, slotAddr(first+i), xsdt)
		rsdtBody = appendEntry(rsdtBody, slotAddr(first+i), false)
	}
	next := first + len(tables)
	chunks := [][]byte{mkTable(map[bool]string{true: SigXSDT, false: SigRSDT}[xsdt], 1, rootBody)}
	if xsdt {
		chunks = append(chunks, mkTable(SigRSDT, 1, rsdtBody))
	}
	for _, x := range tables {
		raw := append([]byte(nil), x.raw...)
		if x.sig == SigFADT {
			binary.LittleEndian.PutUint32(raw[fadtOffDSDT:], uint32(slotAddr(next)))
			binary.LittleEndian.PutUint32(raw[fadtOffFirmwareCtrl:], uint32(slotAddr(next+1)))
			if len(raw) >= fadtOffXDSDT+8 {
				binary.LittleEndian.PutUint64(raw[fadtOffXFirmwareCtrl:], 0)
				binary.LittleEndian.PutUint64(raw[fadtOffXDSDT:], slotAddr(next))
			}
		}
		chunks = append(chunks, raw)
	}
	// The DSDT's AML is opaque here; a short one keeps inputs small, which
	// the fuzzer's minimizer needs to finish quickly.
	dsdt := m.table(t, SigDSDT).raw
	chunks = append(chunks, mkTable(SigDSDT, dsdt[8], dsdt[HeaderLength:HeaderLength+16]), m.table(t, SigFACS).raw)
	return chunks
}

func appendEntry(b []byte, addr uint64, wide bool) []byte {
	if wide {
		return binary.LittleEndian.AppendUint64(b, addr)
	}
	return binary.LittleEndian.AppendUint32(b, uint32(addr))
}

// buildFuzzMemory turns the input into a machine. With fix set, each
// chunk's checksum byte is made valid for its declared length, so that
// mutations reach the decoders instead of stopping at the checksum.
func buildFuzzMemory(data []byte, rev2, fix bool) *sparseMem {
	mem := &sparseMem{limit: fuzzLimit, regions: map[uint64][]byte{}}
	for i := 0; i < fuzzSlots && len(data) >= 2; i++ {
		n := int(binary.LittleEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		c := append([]byte(nil), data[:n]...)
		data = data[n:]
		if fix && len(c) >= 10 {
			l := int(binary.LittleEndian.Uint32(c[4:]))
			if l > len(c) || l < 10 {
				l = len(c)
			}
			c[9] = 0
			c[9] = -checksum(c[:l])
		}
		mem.regions[slotAddr(i)] = c
	}
	rsdp := make([]byte, 36)
	copy(rsdp, rsdpSignature)
	copy(rsdp[9:], "FUZZ  ")
	binary.LittleEndian.PutUint32(rsdp[rsdpOffRSDT:], uint32(slotAddr(0)))
	if rev2 {
		rsdp[rsdpOffRevision] = 2
		binary.LittleEndian.PutUint32(rsdp[rsdpOffRSDT:], uint32(slotAddr(1)))
		binary.LittleEndian.PutUint32(rsdp[rsdpOffLength:], 36)
		binary.LittleEndian.PutUint64(rsdp[rsdpOffXSDT:], slotAddr(0))
	}
	fixRSDP(rsdp)
	if !rev2 {
		rsdp = rsdp[:20]
	}
	mem.regions[fuzzRSDP] = rsdp
	return mem
}

func TestFuzzSeedsParse(t *testing.T) {
	// The seed construction itself must give clean machines, or the
	// fuzzer starts from nothing.
	for _, name := range fuzzMachines {
		for _, x := range []bool{false, true} {
			mem := buildFuzzMemory(encodeChunks(seedChunks(t, name, x)), x, true)
			tb, err := Parse(mem, fuzzRSDP)
			if err != nil || len(tb.Problems) != 0 || tb.MADT == nil || tb.FADT == nil || tb.Find(SigDSDT) == nil {
				t.Fatalf("%s (xsdt %v): %v %v", name, x, err, tb.Problems)
			}
			if want := map[bool]string{true: SigXSDT, false: SigRSDT}[x]; tb.Root.Signature != want {
				t.Fatalf("%s: root %s", name, tb.Root.Signature)
			}
		}
	}
}

// FuzzParse runs the whole boot path, FindRSDP then Parse, on a machine
// built from the input.
func FuzzParse(f *testing.F) {
	for _, name := range fuzzMachines {
		f.Add(encodeChunks(seedChunks(f, name, false)), false, true)
		f.Add(encodeChunks(seedChunks(f, name, true)), true, true)
	}
	f.Add([]byte{}, false, false)
	f.Fuzz(func(t *testing.T, data []byte, rev2, fix bool) {
		mem := buildFuzzMemory(data, rev2, fix)
		addr, err := FindRSDP(mem)
		if err != nil || addr != fuzzRSDP {
			t.Fatalf("FindRSDP = %#x, %v", addr, err)
		}
		tb, err := Parse(mem, addr)
		if err != nil {
			var te *TableError
			if !errors.As(err, &te) || !strings.HasPrefix(err.Error(), "acpi: ") {
				t.Fatalf("Parse error %T %v", err, err)
			}
			return
		}
		if tb.Root == nil || len(tb.All) > MaxTables+3 {
			t.Fatalf("root %v, %d tables", tb.Root, len(tb.All))
		}
		for _, x := range tb.All {
			if int(x.Length) != len(x.Raw) || x.Address == 0 || !validSignature(x.Signature) {
				t.Fatalf("table %s at %#x: length %d, %d raw bytes", x.Signature, x.Address, x.Length, len(x.Raw))
			}
		}
		for _, p := range tb.Problems {
			var te *TableError
			if !errors.As(p, &te) || !strings.HasPrefix(p.Error(), "acpi: ") {
				t.Fatalf("problem %T %v", p, p)
			}
		}
		_ = tb.Summary()
	})
}
