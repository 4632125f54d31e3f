package acpi

import (
	"encoding/binary"
	"fmt"
)

// DMAR is the DMA Remapping Reporting table of Intel VT-d (Intel
// Virtualization Technology for Directed I/O, rev 4.1, chapter 8).
// Remapping structures this hypervisor has no use for (ANDD, SATC, SIDP,
// future types) are skipped by their length.
type DMAR struct {
	// HostAddressWidth is the platform's maximum DMA physical address
	// width in bits (the table field plus one; VT-d 8.1).
	HostAddressWidth int
	Flags            DMARFlags
	DRHDs            []DRHD
	RMRRs            []RMRR
	ATSRs            []ATSR
	RHSAs            []RHSA
}

// DMARFlags (VT-d 4.1, 8.1).
type DMARFlags uint8

const (
	// DMARIntrRemap: interrupt remapping is supported.
	DMARIntrRemap DMARFlags = 1 << 0
	// DMARX2APICOptOut: firmware asks the OS not to enable x2APIC mode
	// (only honoured with interrupt remapping).
	DMARX2APICOptOut DMARFlags = 1 << 1
	// DMARDMACtrlPlatformOptIn: firmware set up DMA protection that the
	// OS may keep (kernel DMA protection).
	DMARDMACtrlPlatformOptIn DMARFlags = 1 << 2
)

// DRHD is a DMA Remapping Hardware Unit Definition (VT-d 4.1, 8.3): one
// remapping unit and the devices it translates for.
type DRHD struct {
	Flags DRHDFlags
	// Size encodes the register set size: 2^Size 4 KiB pages (VT-d
	// 8.3; zero on older firmware, meaning one page).
	Size         uint8
	Segment      uint16
	RegisterBase uint64
	Scopes       []DeviceScope
}

// DRHDFlags (VT-d 4.1, 8.3).
type DRHDFlags uint8

// DRHDIncludePCIAll: the unit covers every PCI device of its segment not
// claimed by another unit's scope; its scopes then list only IOAPICs and
// HPETs. There is at most one such unit per segment, listed last.
const DRHDIncludePCIAll DRHDFlags = 1 << 0

// IncludePCIAll reports INCLUDE_PCI_ALL.
func (d DRHD) IncludePCIAll() bool { return d.Flags&DRHDIncludePCIAll != 0 }

// RMRR is a Reserved Memory Region Reporting structure (VT-d 4.1, 8.4):
// memory that the listed devices DMA to behind the OS's back (USB legacy
// emulation, integrated graphics), to be identity-mapped for them.
type RMRR struct {
	Segment uint16
	Base    uint64
	Limit   uint64 // last byte, inclusive
	Scopes  []DeviceScope
}

// ATSR is a Root Port ATS Capability Reporting structure (VT-d 4.1, 8.5).
type ATSR struct {
	Flags   uint8 // bit 0 ALL_PORTS: every root port of the segment supports ATS
	Segment uint16
	Scopes  []DeviceScope
}

// ATSRAllPorts is ATSR flag ALL_PORTS.
const ATSRAllPorts = 1 << 0

// RHSA is a Remapping Hardware Static Affinity structure (VT-d 4.1, 8.6):
// the NUMA proximity domain of a remapping unit.
type RHSA struct {
	RegisterBase    uint64
	ProximityDomain uint32
}

// DeviceScope names a device or hierarchy a remapping structure applies
// to (VT-d 4.1, 8.3.1).
type DeviceScope struct {
	Type DeviceScopeType
	// EnumerationID is the IOAPIC ID, HPET number or ACPI device number
	// for those scope types; zero for PCI scopes.
	EnumerationID uint8
	StartBus      uint8
	// Path walks from StartBus through bridges to the device: each step
	// is the device and function on the current bus.
	Path []PCIPathStep
}

// PCIPathStep is one (device, function) hop of a device scope path.
type PCIPathStep struct {
	Device   uint8
	Function uint8
}

// DeviceScopeType (VT-d 4.1, 8.3.1).
type DeviceScopeType uint8

const (
	ScopePCIEndpoint     DeviceScopeType = 1
	ScopePCISubHierarchy DeviceScopeType = 2
	ScopeIOAPIC          DeviceScopeType = 3
	ScopeHPET            DeviceScopeType = 4 // MSI-capable HPET
	ScopeACPINamespace   DeviceScopeType = 5
)

func (t DeviceScopeType) String() string {
	switch t {
	case ScopePCIEndpoint:
		return "PCI endpoint"
	case ScopePCISubHierarchy:
		return "PCI sub-hierarchy"
	case ScopeIOAPIC:
		return "IOAPIC"
	case ScopeHPET:
		return "HPET"
	case ScopeACPINamespace:
		return "ACPI namespace device"
	}
	return fmt.Sprintf("scope type %d", uint8(t))
}

// DMAR layout (VT-d 4.1, chapter 8).
const (
	dmarOffWidth         = 36
	dmarOffFlags         = 37
	dmarStructuresOffset = 48

	dmarTypeDRHD = 0 // 8.3
	dmarTypeRMRR = 1 // 8.4
	dmarTypeATSR = 2 // 8.5
	dmarTypeRHSA = 3 // 8.6

	dmarStructHeader = 4 // Type (2), Length (2)
	drhdScopesOffset = 16
	rmrrScopesOffset = 24
	atsrScopesOffset = 8
	rhsaLength       = 20

	scopeHeader = 6 // Type, Length, Flags, Reserved, Enumeration ID, Start Bus
)

// ParseDMAR decodes a DMAR (the whole table, header included). On a
// malformed structure it returns what came before it, and the error.
func ParseDMAR(raw []byte) (*DMAR, error) {
	b, err := checkHeader(raw, SigDMAR, dmarStructuresOffset)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	d := &DMAR{
		HostAddressWidth: int(b[dmarOffWidth]) + 1,
		Flags:            DMARFlags(b[dmarOffFlags]),
	}
	// Every structure is at least 4 bytes: the walk is bounded by len(b)/4.
	for off := dmarStructuresOffset; off < len(b); {
		if len(b)-off < dmarStructHeader {
			return d, fmt.Errorf("%w: %d stray byte(s) at offset %#x", ErrMalformed, len(b)-off, off)
		}
		typ, n := le.Uint16(b[off:]), int(le.Uint16(b[off+2:]))
		if n < dmarStructHeader || n > len(b)-off {
			return d, fmt.Errorf("%w: structure type %d at offset %#x has length %d (%d bytes left)", ErrMalformed, typ, off, n, len(b)-off)
		}
		s := b[off : off+n]
		short := func(want int) error {
			return fmt.Errorf("%w: structure type %d at offset %#x has length %d, want at least %d", ErrMalformed, typ, off, n, want)
		}
		scopes := func(from int) ([]DeviceScope, error) {
			sc, err := parseScopes(s[from:])
			if err != nil {
				err = fmt.Errorf("%w: structure type %d at offset %#x: %v", ErrMalformed, typ, off, err)
			}
			return sc, err
		}
		switch typ {
		case dmarTypeDRHD:
			if n < drhdScopesOffset {
				return d, short(drhdScopesOffset)
			}
			u := DRHD{
				Flags:        DRHDFlags(s[4]),
				Size:         s[5] & 0x0f,
				Segment:      le.Uint16(s[6:]),
				RegisterBase: le.Uint64(s[8:]),
			}
			u.Scopes, err = scopes(drhdScopesOffset)
			d.DRHDs = append(d.DRHDs, u)
		case dmarTypeRMRR:
			if n < rmrrScopesOffset {
				return d, short(rmrrScopesOffset)
			}
			r := RMRR{
				Segment: le.Uint16(s[6:]),
				Base:    le.Uint64(s[8:]),
				Limit:   le.Uint64(s[16:]),
			}
			r.Scopes, err = scopes(rmrrScopesOffset)
			d.RMRRs = append(d.RMRRs, r)
			if err == nil && r.Limit < r.Base {
				err = fmt.Errorf("%w: RMRR at offset %#x: limit %#x below base %#x", ErrMalformed, off, r.Limit, r.Base)
			}
		case dmarTypeATSR:
			if n < atsrScopesOffset {
				return d, short(atsrScopesOffset)
			}
			a := ATSR{Flags: s[4], Segment: le.Uint16(s[6:])}
			a.Scopes, err = scopes(atsrScopesOffset)
			d.ATSRs = append(d.ATSRs, a)
		case dmarTypeRHSA:
			if n < rhsaLength {
				return d, short(rhsaLength)
			}
			d.RHSAs = append(d.RHSAs, RHSA{RegisterBase: le.Uint64(s[8:]), ProximityDomain: le.Uint32(s[16:])})
		}
		if err != nil {
			return d, err
		}
		off += n
	}
	return d, nil
}

// parseScopes decodes a run of device scope entries filling b.
func parseScopes(b []byte) ([]DeviceScope, error) {
	var out []DeviceScope
	// Each entry is at least 6 bytes: bounded by len(b)/6.
	for off := 0; off < len(b); {
		if len(b)-off < scopeHeader {
			return out, fmt.Errorf("device scope at %#x: %d stray byte(s)", off, len(b)-off)
		}
		n := int(b[off+1])
		if n < scopeHeader || n > len(b)-off || (n-scopeHeader)%2 != 0 {
			return out, fmt.Errorf("device scope at %#x: length %d (must be 6 + 2*hops, %d bytes left)", off, n, len(b)-off)
		}
		e := b[off : off+n]
		sc := DeviceScope{Type: DeviceScopeType(e[0]), EnumerationID: e[4], StartBus: e[5]}
		for i := scopeHeader; i < n; i += 2 {
			sc.Path = append(sc.Path, PCIPathStep{Device: e[i], Function: e[i+1]})
		}
		out = append(out, sc)
		off += n
	}
	return out, nil
}
