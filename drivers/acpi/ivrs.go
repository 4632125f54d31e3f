package acpi

import (
	"encoding/binary"
	"fmt"
)

// IVRS is the I/O Virtualization Reporting Structure of AMD-Vi (AMD I/O
// Virtualization Technology (IOMMU) Specification, #48882 rev 3.10,
// section 5.2). Firmware may describe one IOMMU with several IVHD types
// (10h for old OSes, 11h and 40h for newer ones, each a superset): all are
// kept, and the IOMMU driver uses the highest type it understands for each
// IOMMU, as the specification asks.
type IVRS struct {
	Info  IVInfo
	IVHDs []IVHD
	IVMDs []IVMD
}

// IVInfo is the IVRS IVinfo field (#48882, 5.2.1).
type IVInfo uint32

// EFRSupported reports EFRSup: the IVHD type 11h/40h EFR image is valid.
func (i IVInfo) EFRSupported() bool { return i&1 != 0 }

// DMAGuardOptIn reports the DMA remap/guard opt-in bit (bit 1): firmware
// kept DMA protection on across the hand-off.
func (i IVInfo) DMAGuardOptIn() bool { return i&2 != 0 }

// GVASize is the GVAsize field (bits 7:5), an encoded guest virtual
// address size (010b: 48 bits).
func (i IVInfo) GVASize() uint8 { return uint8(i >> 5 & 7) }

// PASize is the maximum guest physical address size in bits (bits 14:8).
func (i IVInfo) PASize() uint8 { return uint8(i >> 8 & 0x7f) }

// VASize is the maximum virtual address size in bits (bits 21:15).
func (i IVInfo) VASize() uint8 { return uint8(i >> 15 & 0x7f) }

// HTATSReserved reports HtAtsResv (bit 22): the HyperTransport ATS
// address range is reserved and must not be translated.
func (i IVInfo) HTATSReserved() bool { return i&(1<<22) != 0 }

// IVHD block types (#48882, 5.2.2).
const (
	IVHDType10 = 0x10 // legacy format, IOMMU feature info
	IVHDType11 = 0x11 // adds the EFR register image
	IVHDType40 = 0x40 // as 11h, plus ACPI HID device entries
)

// IVHD is an I/O Virtualization Hardware Definition block (#48882,
// 5.2.2.1): one IOMMU and the devices it translates for.
type IVHD struct {
	Type  uint8
	Flags uint8 // HtTunEn, PassPW, ResPassPW, Isoc, IotlbSup, Coherent, PreFSup, PPRSup (bits 0-7)
	// DeviceID is the IOMMU's own PCI requester ID (bus<<8 | dev<<3 | fn).
	DeviceID         uint16
	CapabilityOffset uint16 // of the IOMMU capability block in its config space
	BaseAddress      uint64 // MMIO register base
	Segment          uint16
	// Info holds MSInum (bits 4:0) and UnitID (bits 12:8).
	Info uint16
	// Features is "IOMMU Feature Reporting" in type 10h and "IOMMU
	// Attributes" in types 11h/40h.
	Features uint32
	// EFR and EFR2 are images of the Extended Feature registers (types
	// 11h/40h only, valid when IVInfo.EFRSupported).
	EFR     uint64
	EFR2    uint64
	Entries []IVHDEntry
}

// MSINumber is the MSI message number the IOMMU uses for its events.
func (h IVHD) MSINumber() uint8 { return uint8(h.Info & 0x1f) }

// IVHD device entry types (#48882, 5.2.2.2).
const (
	IVHDEntryPad             = 0x00
	IVHDEntryAll             = 0x01
	IVHDEntrySelect          = 0x02
	IVHDEntryStartRange      = 0x03
	IVHDEntryEndRange        = 0x04
	IVHDEntryAliasSelect     = 0x42
	IVHDEntryAliasStartRange = 0x43
	IVHDEntryExtSelect       = 0x46
	IVHDEntryExtStartRange   = 0x47
	IVHDEntrySpecial         = 0x48
	IVHDEntryACPIHID         = 0xf0
)

// Special device varieties (entry type 48h).
const (
	SpecialIOAPIC = 1
	SpecialHPET   = 2
)

// IVHDEntry is one IVHD device entry. Which fields mean something depends
// on Type; the rest are zero.
type IVHDEntry struct {
	Type uint8
	// DeviceID is the requester ID the entry names (for special entries,
	// the IOAPIC's or HPET's requester ID).
	DeviceID   uint16
	DTESetting uint8
	// SourceID is the requester ID that an alias entry's devices use.
	SourceID uint16
	// ExtendedSetting is the extended DTE setting of types 46h/47h.
	ExtendedSetting uint32
	// Handle (IOAPIC ID or HPET number) and Variety of a special entry.
	Handle  uint8
	Variety uint8
	// HID, CID and UID of an ACPI_HID entry (type F0h).
	HID       string
	CID       string
	UIDFormat uint8
	UID       []byte
}

// IVMD is an I/O Virtualization Memory Definition block (#48882, 5.2.3):
// memory that devices need mapped (unity) or blocked (exclusion range).
type IVMD struct {
	Type     uint8 // 20h all peripherals, 21h one device, 22h a device range
	Flags    uint8 // Unity (0), IR (1), IW (2), ExclusionRange (3)
	DeviceID uint16
	// AuxData is the last requester ID of a type 22h range.
	AuxData uint16
	Start   uint64
	Length  uint64
}

// IVMD types and flags (#48882, 5.2.3).
const (
	IVMDAll       = 0x20
	IVMDSelect    = 0x21
	IVMDRange     = 0x22
	IVMDUnity     = 1 << 0
	IVMDRead      = 1 << 1
	IVMDWrite     = 1 << 2
	IVMDExclusion = 1 << 3
)

// IVRS layout (#48882, 5.2).
const (
	ivrsOffInfo         = 36
	ivrsBlocksOffset    = 48
	ivrsBlockHeader     = 4 // Type, Flags, Length (2)
	ivhd10EntriesOffset = 24
	ivhd11EntriesOffset = 40
	ivmdLength          = 32
	ivhdEntryACPIHIDMin = 22 // up to the UID
)

// ParseIVRS decodes an IVRS (the whole table, header included). On a
// malformed block or device entry it returns what came before it, and
// the error.
func ParseIVRS(raw []byte) (*IVRS, error) {
	b, err := checkHeader(raw, SigIVRS, ivrsBlocksOffset)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	v := &IVRS{Info: IVInfo(le.Uint32(b[ivrsOffInfo:]))}
	// Every block is at least 4 bytes: bounded by len(b)/4.
	for off := ivrsBlocksOffset; off < len(b); {
		if len(b)-off < ivrsBlockHeader {
			return v, fmt.Errorf("%w: %d stray byte(s) at offset %#x", ErrMalformed, len(b)-off, off)
		}
		typ, n := b[off], int(le.Uint16(b[off+2:]))
		if n < ivrsBlockHeader || n > len(b)-off {
			return v, fmt.Errorf("%w: block type %#x at offset %#x has length %d (%d bytes left)", ErrMalformed, typ, off, n, len(b)-off)
		}
		blk := b[off : off+n]
		switch typ {
		case IVHDType10, IVHDType11, IVHDType40:
			start := ivhd10EntriesOffset
			if typ != IVHDType10 {
				start = ivhd11EntriesOffset
			}
			if n < start {
				return v, fmt.Errorf("%w: IVHD type %#x at offset %#x has length %d, want at least %d", ErrMalformed, typ, off, n, start)
			}
			h := IVHD{
				Type:             typ,
				Flags:            blk[1],
				DeviceID:         le.Uint16(blk[4:]),
				CapabilityOffset: le.Uint16(blk[6:]),
				BaseAddress:      le.Uint64(blk[8:]),
				Segment:          le.Uint16(blk[16:]),
				Info:             le.Uint16(blk[18:]),
				Features:         le.Uint32(blk[20:]),
			}
			if typ != IVHDType10 {
				h.EFR = le.Uint64(blk[24:])
				h.EFR2 = le.Uint64(blk[32:])
			}
			var eerr error
			h.Entries, eerr = parseIVHDEntries(blk[start:], start)
			v.IVHDs = append(v.IVHDs, h)
			if eerr != nil {
				return v, fmt.Errorf("%w: IVHD type %#x at offset %#x: device entry at block offset %v", ErrMalformed, typ, off, eerr)
			}
		case IVMDAll, IVMDSelect, IVMDRange:
			if n < ivmdLength {
				return v, fmt.Errorf("%w: IVMD type %#x at offset %#x has length %d, want %d", ErrMalformed, typ, off, n, ivmdLength)
			}
			v.IVMDs = append(v.IVMDs, IVMD{
				Type:     typ,
				Flags:    blk[1],
				DeviceID: le.Uint16(blk[4:]),
				AuxData:  le.Uint16(blk[6:]),
				Start:    le.Uint64(blk[16:]),
				Length:   le.Uint64(blk[24:]),
			})
		}
		off += n
	}
	return v, nil
}

// ivhdEntryLength is the size of a device entry (#48882, 5.2.2.2): types
// 00h-3Fh take 4 bytes and 40h-7Fh 8 bytes; of the variable-length types
// (80h-FFh) only ACPI_HID (F0h) is defined, 22 bytes plus its UID. Zero
// means the length cannot be known, so the walk cannot go on.
func ivhdEntryLength(e []byte) int {
	switch t := e[0]; {
	case t < 0x40:
		return 4
	case t < 0x80:
		return 8
	case t == IVHDEntryACPIHID && len(e) >= ivhdEntryACPIHIDMin:
		return ivhdEntryACPIHIDMin + int(e[21])
	}
	return 0
}

func parseIVHDEntries(b []byte, base int) ([]IVHDEntry, error) {
	le := binary.LittleEndian
	var out []IVHDEntry
	// Every entry is at least 4 bytes: bounded by len(b)/4.
	for off := 0; off < len(b); {
		// Offsets in errors are relative to the block, as in dumps.
		at := off + base
		if len(b)-off < 4 {
			return out, fmt.Errorf("%#x: %d stray byte(s)", at, len(b)-off)
		}
		e := b[off:]
		n := ivhdEntryLength(e)
		if n == 0 {
			return out, fmt.Errorf("%#x: type %#x has no known length", at, e[0])
		}
		if n > len(e) {
			return out, fmt.Errorf("%#x: type %#x needs %d bytes, %d left", at, e[0], n, len(e))
		}
		e = e[:n]
		d := IVHDEntry{Type: e[0], DeviceID: le.Uint16(e[1:]), DTESetting: e[3]}
		switch d.Type {
		case IVHDEntryAliasSelect, IVHDEntryAliasStartRange:
			d.SourceID = le.Uint16(e[5:])
		case IVHDEntryExtSelect, IVHDEntryExtStartRange:
			d.ExtendedSetting = le.Uint32(e[4:])
		case IVHDEntrySpecial:
			d.Handle = e[4]
			d.DeviceID = le.Uint16(e[5:])
			d.Variety = e[7]
		case IVHDEntryACPIHID:
			d.HID = trim(e[4:12])
			d.CID = trim(e[12:20])
			d.UIDFormat = e[20]
			d.UID = append([]byte(nil), e[22:]...)
		}
		out = append(out, d)
		off += n
	}
	return out, nil
}
