package amdvi

import "tamavisor/drivers/acpi"

// coverage is the set of requester IDs an IVHD's device entries name
// (#48882 5.2.2.2), and the aliases some of them use on the bus.
type coverage struct {
	self    uint16 // the unit's own requester ID, never covered
	ids     [deviceIDs / 64]uint64
	aliases []aliasRange
}

// aliasRange says that the devices first..last reach the unit with
// requester ID to (a device behind a PCI Express-to-PCI bridge, whose
// requests carry the bridge's ID).
type aliasRange struct{ first, last, to uint16 }

// buildCoverage reads the device entries in order. A range opens with a
// Start of Range entry (plain 03h, alias 43h or extended 47h) and closes
// at the next End of Range (04h); an End with no open range, or one below
// its start, names nothing. Select entries (02h, 42h, 46h), special
// devices (48h: IOAPIC, HPET) and ACPI devices (F0h) name their DeviceID;
// All (01h) names every ID. Padding and unknown types name nothing.
func buildCoverage(h *acpi.IVHD) *coverage {
	c := &coverage{self: h.DeviceID}
	var start, to uint16
	open, aliased := false, false
	for _, e := range h.Entries {
		switch e.Type {
		case acpi.IVHDEntryAll:
			c.addRange(0, deviceIDs-1)
		case acpi.IVHDEntrySelect, acpi.IVHDEntryExtSelect, acpi.IVHDEntrySpecial, acpi.IVHDEntryACPIHID:
			c.addRange(e.DeviceID, e.DeviceID)
		case acpi.IVHDEntryAliasSelect:
			c.addRange(e.DeviceID, e.DeviceID)
			c.aliases = append(c.aliases, aliasRange{e.DeviceID, e.DeviceID, e.SourceID})
		case acpi.IVHDEntryStartRange, acpi.IVHDEntryExtStartRange:
			start, open, aliased = e.DeviceID, true, false
		case acpi.IVHDEntryAliasStartRange:
			start, to, open, aliased = e.DeviceID, e.SourceID, true, true
		case acpi.IVHDEntryEndRange:
			if open && e.DeviceID >= start {
				c.addRange(start, e.DeviceID)
				if aliased {
					c.aliases = append(c.aliases, aliasRange{start, e.DeviceID, to})
				}
			}
			open = false
		}
	}
	return c
}

func (c *coverage) addRange(first, last uint16) {
	for id := uint32(first); id <= uint32(last); id++ {
		c.ids[id/64] |= 1 << (id % 64)
	}
}

func (c *coverage) covers(rid uint16) bool {
	return rid != c.self && c.ids[rid/64]&(1<<(rid%64)) != 0
}

// alias is the requester ID rid's DMA carries if an alias entry says so;
// the last entry naming rid wins.
func (c *coverage) alias(rid uint16) (uint16, bool) {
	to, ok := uint16(0), false
	for _, a := range c.aliases {
		if rid >= a.first && rid <= a.last {
			to, ok = a.to, true
		}
	}
	return to, ok
}
