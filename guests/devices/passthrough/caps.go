package passthrough

import "tamavisor/drivers/pci"

// Capability IDs (PCI Code and ID Assignment Specification 1.11, 2).
const (
	capIDPM     = 0x01
	capIDMSI    = 0x05
	capIDVendor = 0x09
	capIDPCIe   = 0x10
	capIDMSIX   = 0x11
)

// Power Management registers (PCI Bus Power Management Interface 1.2,
// 3.2.3 PMC at +2, 3.2.4 PMCSR at +4).
const (
	pmLength       = 8
	pmcPMESupport  = 0x1F << 11
	pmcsrPMEEnable = 1 << 8
	pmcsrPMEStatus = 1 << 15
)

// PCI Express Capability (PCIe Base 5.0, 7.5.3), offsets from its start.
const (
	pcieCapsTypeShift      = 4 // in the PCI Express Capabilities Register (+2)
	pcieCapsTypeMask       = 0xF << pcieCapsTypeShift
	pcieCapsSlotImpl       = 1 << 8
	pcieCapsVersionMask    = 0xF
	pcieTypeEndpoint       = 0x0
	pcieTypeLegacyEndpoint = 0x1
	pcieTypeRCiEP          = 0x9 // Root Complex Integrated Endpoint
	pcieOffDevCap          = 0x04
	pcieOffDevCtl          = 0x08 // Device Control, Device Status at +0x0A
	pcieOffDevCap2         = 0x24
	pcieOffDevCtl2         = 0x28
	pcieV1Length           = 0x24
	pcieV2Length           = 0x3C
	devCapFLR              = 1 << 28
	devCtlInitiateFLR      = 1 << 15
	devStaTransPending     = 1 << 5
)

type capKind uint8

const (
	capPM capKind = iota
	capMSI
	capMSIX
	capPCIe
	capVendor
	numCapKinds
)

// maxVisibleCaps: every DWORD of the capability area could start one.
const maxVisibleCaps = capDwords

// capability is one capability the guest sees, at the device's offset.
type capability struct {
	kind   capKind
	id     uint8
	off    uint8
	next   uint8 // the guest's next pointer: the next visible one
	length uint16
}

func (c *capability) header() uint32 { return uint32(c.id) | uint32(c.next)<<8 }

// walkCapabilities follows the device's list, with the same guards as host
// enumeration (a pointer into the header, a repeat, or more than
// pci.MaxCapabilities entries ends it), keeps the capabilities the policy
// gives the guest and links them.
func (f *Function) walkCapabilities() {
	if uint16(f.cfgRead(regCommand)>>16)&pci.StatusCapList == 0 {
		return
	}
	var seen [pci.LegacyConfigSize / 4]bool
	var have [numCapKinds]bool
	ptr := uint8(f.cfgRead(regCapPtr)) &^ 3
	for n := 0; n < pci.MaxCapabilities && ptr >= capAreaStart && !seen[ptr/4]; n++ {
		seen[ptr/4] = true
		hdr := f.cfgRead(uint16(ptr))
		if uint8(hdr) == 0xFF {
			break // reads as all ones: the device went away
		}
		next := uint8(hdr>>8) &^ 3
		kind, length, ok := f.classify(ptr, hdr)
		if ok && (kind == capVendor || !have[kind]) && int(ptr)+int(length) <= pci.LegacyConfigSize && f.free(ptr, length) {
			have[kind] = true
			f.adopt(kind, ptr, hdr, length)
		}
		ptr = next
	}
	for i := 0; i < f.ncaps; i++ {
		if i+1 < f.ncaps {
			f.caps[i].next = f.caps[i+1].off
		}
	}
	if f.ncaps > 0 {
		f.firstCap = f.caps[0].off
	}
}

// classify applies the policy (package comment) to the capability at ptr
// with first DWORD hdr: its kind and length, or false to hide it.
func (f *Function) classify(ptr uint8, hdr uint32) (capKind, uint16, bool) {
	ctl := uint16(hdr >> 16)
	room := uint16(pci.LegacyConfigSize) - uint16(ptr)
	switch uint8(hdr) {
	case capIDPM:
		return capPM, pmLength, true
	case capIDMSI:
		return capMSI, msiLength(ctl), true
	case capIDMSIX:
		return capMSIX, msixCapLength, f.msixUsable(ptr, ctl)
	case capIDPCIe:
		// An endpoint's capability may end early: the slot and root
		// registers at its end are not implemented (PCIe 5.0, 7.5.3),
		// and devices put it at 0xE0 with no room for them.
		length := uint16(pcieV1Length)
		if ctl&pcieCapsVersionMask >= 2 {
			length = pcieV2Length
		}
		return capPCIe, min(length, room), true
	case capIDVendor:
		// The third byte is the capability's length (PCI 3.0, 6.7).
		return capVendor, min(uint16(max(uint8(hdr>>16), 3)), room), true
	}
	return 0, 0, false
}

// free reports whether no visible capability owns a DWORD of the range.
func (f *Function) free(ptr uint8, length uint16) bool {
	for d := (uint16(ptr) - capAreaStart) / 4; d < (uint16(ptr)+length+3-capAreaStart)/4; d++ {
		if f.owner[d] != 0 {
			return false
		}
	}
	return true
}

func (f *Function) adopt(kind capKind, ptr uint8, hdr uint32, length uint16) {
	f.caps[f.ncaps] = capability{kind: kind, id: uint8(hdr), off: ptr, length: length}
	f.ncaps++
	for d := (uint16(ptr) - capAreaStart) / 4; d < (uint16(ptr)+length+3-capAreaStart)/4; d++ {
		f.owner[d] = uint8(f.ncaps)
	}
	off := uint16(ptr)
	switch kind {
	case capMSI:
		f.msiAdopt(off, uint16(hdr>>16))
	case capMSIX:
		f.msixAdopt(off, uint16(hdr>>16))
	case capPCIe:
		f.pcieOff, f.pcieLen = off, length
		f.pcieCap = f.cfgRead(off + pcieOffDevCap)
		f.devCtl = f.cfgRead(off+pcieOffDevCtl) & 0xFFFF
		if length >= pcieOffDevCtl2+4 {
			f.devCtl2 = f.cfgRead(off+pcieOffDevCtl2) & 0xFFFF
		}
	}
}

// readCap returns the guest's view of DWORD reg of capability c.
func (f *Function) readCap(c *capability, reg uint16) uint32 {
	rel := reg - uint16(c.off)
	switch c.kind {
	case capMSI:
		return f.msiRead(c, rel)
	case capMSIX:
		return f.msixRead(c, rel)
	case capPM:
		v := f.cfgRead(reg)
		if rel == 0 {
			return c.header() | (v>>16&^pmcPMESupport)<<16
		}
		return v &^ (pmcsrPMEEnable | pmcsrPMEStatus)
	case capPCIe:
		switch rel {
		case 0:
			caps := uint16(f.cfgRead(reg) >> 16)
			if t := caps & pcieCapsTypeMask >> pcieCapsTypeShift; t == pcieTypeEndpoint || t == pcieTypeLegacyEndpoint {
				caps = caps&^pcieCapsTypeMask | pcieTypeRCiEP<<pcieCapsTypeShift
			}
			return c.header() | uint32(caps&^pcieCapsSlotImpl)<<16
		case pcieOffDevCap:
			return f.cfgRead(reg) &^ devCapFLR
		case pcieOffDevCtl, pcieOffDevCap2, pcieOffDevCtl2:
			return f.cfgRead(reg)
		}
		return 0 // link, slot and root registers: not there for an RCiEP
	case capVendor:
		v := f.cfgRead(reg)
		if rel == 0 {
			return v&^0xFFFF | c.header()
		}
		return v
	}
	return 0
}

// writeCap applies a guest write to capability c; only MSI and MSI-X
// take writes, the others are read-only to the guest.
func (f *Function) writeCap(c *capability, reg uint16, val, be uint32) {
	rel := reg - uint16(c.off)
	switch c.kind {
	case capMSI:
		f.msiWrite(rel, val, be)
	case capMSIX:
		f.msixWrite(rel, val, be)
	}
}
