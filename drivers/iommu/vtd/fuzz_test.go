package vtd

import (
	"errors"
	"testing"

	"tamavisor/drivers/acpi"
	"tamavisor/drivers/hw/hwfake"
	"tamavisor/ept"
)

func FuzzDecodeFaultRecord(f *testing.F) {
	f.Add(uint16(0), uint64(0x1234_5000), uint64(1<<63|1<<62|2<<32|0xfa))
	f.Add(uint16(1), uint64(0x20_0000), uint64(1<<63|5<<32|0x0308))
	f.Add(uint16(0), uint64(5<<48), uint64(1<<63|0x22<<32|0xfa))
	f.Add(uint16(0xffff), ^uint64(0), ^uint64(0))
	f.Add(uint16(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, seg uint16, lo, hi uint64) {
		got := DecodeFaultRecord(seg, lo, hi)
		code := uint8(hi >> 32)
		if got.Code != uint32(code) || got.Reason == "" || got.Reason != FaultReason(code) {
			t.Fatalf("code %#x reason %q", got.Code, got.Reason)
		}
		if got.Source.Segment != seg || got.Source.RequesterID() != uint16(hi) {
			t.Fatalf("source %v from SID %#x", got.Source, uint16(hi))
		}
		if code >= 0x20 && code <= 0x2f {
			if got.Address != lo>>48 || !got.Write {
				t.Fatalf("interrupt fault %+v", got)
			}
		} else if got.Address != lo&^0xfff || got.Write != (hi&(1<<62) == 0) {
			t.Fatalf("DMA fault %+v from %#x %#x", got, lo, hi)
		}
		_ = got.String()
	})
}

func FuzzParseCapabilities(f *testing.F) {
	for _, c := range [][2]uint64{
		{qemuCap39, qemuECap}, {qemuCap48, qemuECap}, {qemuCap48CM, qemuECapNoIR},
		{qemuCap48NoDrain, qemuECapNoPT}, {qemuCap48, qemuECapSCDT}, {qemuCap48 | capRWBF | capPLMR, qemuECap | ecapC},
		{0x00C9008020E30272, 0x1000}, // an Intel 4 Series chipset datasheet's default CAP_REG
		{0, 0}, {^uint64(0), ^uint64(0)},
	} {
		f.Add(uint32(qemuVer), c[0], c[1], uint8(48))
	}
	f.Fuzz(func(t *testing.T, ver uint32, capReg, ecapReg uint64, haw uint8) {
		c, err := ParseCapabilities(ver, capReg, ecapReg)
		if err != nil {
			if c.SAGAW&sagaw48 == 0 && !errors.Is(err, ErrNo4LevelTables) && capReg&capNDMask != ndReserved &&
				c.FaultRecordOffset != 0 && c.IOTLBOffset != 0 {
				t.Fatalf("no 4-level support reported as %v", err)
			}
			return
		}
		if c.SAGAW&sagaw48 == 0 || c.MaxGuestAddrBits < 32 || c.MaxGuestAddrBits > 64 ||
			c.FaultRecords < 1 || c.FaultRecords > 256 || c.DomainIDBits < 4 || c.DomainIDBits > 16 ||
			c.FaultRecordOffset == 0 || c.FaultRecordOffset%16 != 0 || c.IOTLBOffset == 0 || c.IOTLBOffset%16 != 0 ||
			c.LargePages&ept.Pages4K == 0 || (c.InterruptRemapping && !c.QueuedInvalidation) {
			t.Fatalf("accepted %+v", c)
		}
		_ = c.String()

		// A unit reporting these registers: New either refuses it or
		// gives a table configuration package ept accepts, and Enable
		// ends (with or without an error) without running away.
		mem := hwfake.NewMemory()
		fake := newFakeUnit(mem, qemuBase, capReg, ecapReg, uint(haw))
		fake.quiet = true
		drhd := acpi.DRHD{RegisterBase: qemuBase, Scopes: []acpi.DeviceScope{{Type: acpi.ScopePCIEndpoint, Path: []acpi.PCIPathStep{{Device: 0x1f, Function: 2}}}}}
		u, err := New(fake, mem, newPagePool(), drhd, Options{HostAddressWidth: int(haw), FlushCache: func(uint64, uint64) {}, PollLimit: 50})
		if err != nil {
			return
		}
		cfg := u.TableConfig()
		if _, err := ept.New(mem, newPagePool(), cfg); err != nil {
			t.Fatalf("TableConfig %+v refused by ept: %v", cfg, err)
		}
		if cfg.InputAddrBits > c.MaxGuestAddrBits || cfg.OutputAddrBits != uint(haw) || cfg.PageSizes&^(c.LargePages|ept.Pages4K) != 0 {
			t.Fatalf("TableConfig %+v for %+v", cfg, c)
		}
		_ = u.Enable()
		_, _ = u.DrainFaults(nil)
	})
}

func FuzzInterruptEntry(f *testing.F) {
	f.Add(uint64(1|1<<4|1<<5|0x31<<16|0x12<<40), uint64(0xfa|2<<16|1<<18), false)
	f.Add(uint64(0xf|0xef<<16|0x1234_5678<<32), uint64(0), true)
	f.Add(^uint64(0), ^uint64(0), false)
	f.Fuzz(func(t *testing.T, lo, hi uint64, x2APIC bool) {
		e, err := DecodeInterruptEntry(lo, hi, x2APIC)
		if err != nil {
			return
		}
		lo2, hi2, err := e.Encode(x2APIC)
		if err != nil {
			// Decoding keeps reserved delivery modes and validation
			// types, which Encode refuses.
			return
		}
		// Bits 11:8 are available to software and not kept.
		if lo2 != lo&^0xf00 || hi2 != hi {
			t.Fatalf("%#x %#x -> %+v -> %#x %#x", lo, hi, e, lo2, hi2)
		}
	})
}

func FuzzResolveScopes(f *testing.F) {
	f.Add([]byte{1, 0, 0x1f, 2, 2, 0, 0x1c, 0, 1, 0, 0x1c, 4, 0, 0, 3, 0xf0, 0x1f, 0})
	f.Add([]byte{2, 5, 1, 0, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Each scope: type, start bus, then (device, function) hops
		// until a byte 0xff; bridges map bus b to b+1..b+2.
		var d acpi.DRHD
		for len(b) >= 2 && len(d.Scopes) < 16 {
			sc := acpi.DeviceScope{Type: acpi.DeviceScopeType(b[0] % 6), StartBus: b[1]}
			b = b[2:]
			for len(b) >= 2 && b[0] != 0xff && len(sc.Path) < 8 {
				sc.Path = append(sc.Path, acpi.PCIPathStep{Device: b[0] % 40, Function: b[1] % 10})
				b = b[2:]
			}
			if len(b) > 0 {
				b = b[1:]
			}
			d.Scopes = append(d.Scopes, sc)
		}
		bridges := func(seg uint16, bus, dev, fn uint8) (uint8, uint8, error) {
			if dev%2 == 0 {
				return 0, 0, errors.New("not a bridge")
			}
			return bus + 1, bus + 2, nil
		}
		claims, err := resolveScopes(d, bridges)
		if err != nil {
			return
		}
		for _, c := range claims {
			if c.devfn>>3 > 31 || (c.subordinate && (c.first > c.last || c.first <= c.bus)) {
				t.Fatalf("claim %+v", c)
			}
			if !c.covers(c.bus, c.devfn) {
				t.Fatalf("claim %+v does not cover its own device", c)
			}
		}
	})
}
