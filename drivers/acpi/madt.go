package acpi

import (
	"encoding/binary"
	"fmt"
)

// MADT is the Multiple APIC Description Table, signature "APIC" (ACPI 6.5,
// 5.2.12). Entry types this hypervisor has no use for (SAPIC, GIC, ...) are
// skipped.
type MADT struct {
	// LocalAPICAddress is the local APIC's physical address: the 64-bit
	// override (entry type 5) when there is one, else the 32-bit field.
	LocalAPICAddress uint64
	AddressOverride  bool
	Flags            MADTFlags
	// LocalAPICs holds the processor entries, local APIC (type 0) and
	// local x2APIC (type 9), in table order: the order in which the OS
	// is expected to bring processors up.
	LocalAPICs    []LocalAPIC
	IOAPICs       []IOAPIC
	Overrides     []InterruptOverride
	NMISources    []NMISource
	LocalAPICNMIs []LocalAPICNMI
}

// MADTFlags is the MADT Flags field (ACPI 6.5, 5.2.12).
type MADTFlags uint32

// MADTPCATCompat: the system also has dual 8259s, which the OS must mask
// before using the APICs.
const MADTPCATCompat MADTFlags = 1 << 0

// LocalAPIC is a Processor Local APIC (ACPI 6.5, 5.2.12.2) or Processor
// Local x2APIC (5.2.12.12) entry.
type LocalAPIC struct {
	ProcessorUID uint32 // matches the processor's _UID in the namespace
	APICID       uint32
	Flags        LocalAPICFlags
	X2APIC       bool // from a type 9 entry
}

// LocalAPICFlags (ACPI 6.5, 5.2.12.2).
type LocalAPICFlags uint32

const (
	LocalAPICEnabled       LocalAPICFlags = 1 << 0
	LocalAPICOnlineCapable LocalAPICFlags = 1 << 1 // may be enabled at runtime; only when not Enabled
)

// Enabled reports a processor that is usable now.
func (l LocalAPIC) Enabled() bool { return l.Flags&LocalAPICEnabled != 0 }

// OnlineCapable reports a disabled processor that can be brought online
// later; a processor with neither flag must not be used.
func (l LocalAPIC) OnlineCapable() bool {
	return l.Flags&LocalAPICEnabled == 0 && l.Flags&LocalAPICOnlineCapable != 0
}

// IOAPIC is an I/O APIC entry (ACPI 6.5, 5.2.12.3).
type IOAPIC struct {
	ID      uint8
	Address uint32
	GSIBase uint32 // first global system interrupt of its inputs
}

// InterruptOverride is an Interrupt Source Override (ACPI 6.5, 5.2.12.5):
// ISA IRQ Source is wired to GSI with the given polarity and trigger.
type InterruptOverride struct {
	Bus    uint8 // 0: ISA
	Source uint8
	GSI    uint32
	Flags  INTIFlags
}

// NMISource is a Non-Maskable Interrupt Source entry (ACPI 6.5, 5.2.12.6):
// a GSI to be programmed as NMI.
type NMISource struct {
	Flags INTIFlags
	GSI   uint32
}

// LocalAPICNMI is a Local APIC NMI (ACPI 6.5, 5.2.12.7) or Local x2APIC
// NMI (5.2.12.13) entry: which LINT pin carries NMI.
type LocalAPICNMI struct {
	ProcessorUID uint32 // AllProcessors for every processor
	Flags        INTIFlags
	LINT         uint8
	X2APIC       bool
}

// AllProcessors is the processor UID of an NMI entry that applies to every
// processor (0xFF in a type 4 entry, 0xFFFFFFFF in a type 0xA one).
const AllProcessors = 0xffffffff

// INTIFlags is the MPS INTI flags field (ACPI 6.5, 5.2.12.5).
type INTIFlags uint16

// Polarity of an interrupt input.
type Polarity uint8

const (
	PolarityConforms   Polarity = 0 // to the bus's default (ISA: active high)
	PolarityActiveHigh Polarity = 1
	PolarityReserved   Polarity = 2
	PolarityActiveLow  Polarity = 3
)

// Trigger mode of an interrupt input.
type Trigger uint8

const (
	TriggerConforms Trigger = 0 // to the bus's default (ISA: edge)
	TriggerEdge     Trigger = 1
	TriggerReserved Trigger = 2
	TriggerLevel    Trigger = 3
)

func (f INTIFlags) Polarity() Polarity { return Polarity(f & 3) }
func (f INTIFlags) Trigger() Trigger   { return Trigger(f >> 2 & 3) }

// MADT entry types and lengths (ACPI 6.5, 5.2.12, and the
// sections named).
const (
	madtOffLocalAPICAddress = 36
	madtOffFlags            = 40
	madtEntriesOffset       = 44

	madtLocalAPIC        = 0x0 // 5.2.12.2
	madtIOAPIC           = 0x1 // 5.2.12.3
	madtOverride         = 0x2 // 5.2.12.5
	madtNMISource        = 0x3 // 5.2.12.6
	madtLocalAPICNMI     = 0x4 // 5.2.12.7
	madtAddressOverride  = 0x5 // 5.2.12.8
	madtLocalX2APIC      = 0x9 // 5.2.12.12
	madtLocalX2APICNMI   = 0xa // 5.2.12.13
	madtLocalAPICLen     = 8
	madtIOAPICLen        = 12
	madtOverrideLen      = 10
	madtNMISourceLen     = 8
	madtLocalAPICNMILen  = 6
	madtAddrOverrideLen  = 12
	madtLocalX2APICLen   = 16
	madtLocalX2APICNMILn = 12
)

var madtMinLength = map[uint8]int{
	madtLocalAPIC:       madtLocalAPICLen,
	madtIOAPIC:          madtIOAPICLen,
	madtOverride:        madtOverrideLen,
	madtNMISource:       madtNMISourceLen,
	madtLocalAPICNMI:    madtLocalAPICNMILen,
	madtAddressOverride: madtAddrOverrideLen,
	madtLocalX2APIC:     madtLocalX2APICLen,
	madtLocalX2APICNMI:  madtLocalX2APICNMILn,
}

// ParseMADT decodes a MADT (the whole table, header included). On a
// malformed entry it returns what came before it, and the error.
func ParseMADT(raw []byte) (*MADT, error) {
	b, err := checkHeader(raw, SigMADT, madtEntriesOffset)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	m := &MADT{
		LocalAPICAddress: uint64(le.Uint32(b[madtOffLocalAPICAddress:])),
		Flags:            MADTFlags(le.Uint32(b[madtOffFlags:])),
	}
	// Every entry is at least two bytes long, so the walk ends within
	// len(b)/2 steps.
	for off := madtEntriesOffset; off < len(b); {
		if len(b)-off < 2 {
			return m, fmt.Errorf("%w: %d stray byte(s) at offset %#x", ErrMalformed, len(b)-off, off)
		}
		typ, n := b[off], int(b[off+1])
		if n < 2 || n > len(b)-off {
			return m, fmt.Errorf("%w: entry type %#x at offset %#x has length %d (%d bytes left)", ErrMalformed, typ, off, n, len(b)-off)
		}
		e := b[off : off+n]
		if want, ok := madtMinLength[typ]; ok && n < want {
			return m, fmt.Errorf("%w: entry type %#x at offset %#x has length %d, want %d", ErrMalformed, typ, off, n, want)
		}
		switch typ {
		case madtLocalAPIC:
			m.LocalAPICs = append(m.LocalAPICs, LocalAPIC{
				ProcessorUID: uint32(e[2]),
				APICID:       uint32(e[3]),
				Flags:        LocalAPICFlags(le.Uint32(e[4:])),
			})
		case madtLocalX2APIC:
			m.LocalAPICs = append(m.LocalAPICs, LocalAPIC{
				APICID:       le.Uint32(e[4:]),
				Flags:        LocalAPICFlags(le.Uint32(e[8:])),
				ProcessorUID: le.Uint32(e[12:]),
				X2APIC:       true,
			})
		case madtIOAPIC:
			m.IOAPICs = append(m.IOAPICs, IOAPIC{
				ID:      e[2],
				Address: le.Uint32(e[4:]),
				GSIBase: le.Uint32(e[8:]),
			})
		case madtOverride:
			m.Overrides = append(m.Overrides, InterruptOverride{
				Bus:    e[2],
				Source: e[3],
				GSI:    le.Uint32(e[4:]),
				Flags:  INTIFlags(le.Uint16(e[8:])),
			})
		case madtNMISource:
			m.NMISources = append(m.NMISources, NMISource{
				Flags: INTIFlags(le.Uint16(e[2:])),
				GSI:   le.Uint32(e[4:]),
			})
		case madtLocalAPICNMI:
			uid := uint32(e[2])
			if uid == 0xff {
				uid = AllProcessors
			}
			m.LocalAPICNMIs = append(m.LocalAPICNMIs, LocalAPICNMI{
				ProcessorUID: uid,
				Flags:        INTIFlags(le.Uint16(e[3:])),
				LINT:         e[5],
			})
		case madtLocalX2APICNMI:
			m.LocalAPICNMIs = append(m.LocalAPICNMIs, LocalAPICNMI{
				Flags:        INTIFlags(le.Uint16(e[2:])),
				ProcessorUID: le.Uint32(e[4:]),
				LINT:         e[8],
				X2APIC:       true,
			})
		case madtAddressOverride:
			m.LocalAPICAddress = le.Uint64(e[4:])
			m.AddressOverride = true
		}
		off += n
	}
	return m, nil
}

// EnabledCPUs counts the processors enabled now.
func (m *MADT) EnabledCPUs() int {
	n := 0
	for _, l := range m.LocalAPICs {
		if l.Enabled() {
			n++
		}
	}
	return n
}

// OverrideFor returns the override for ISA IRQ irq, if any; without one
// the IRQ is identity-mapped to GSI irq, edge-triggered, active high.
func (m *MADT) OverrideFor(irq uint8) (InterruptOverride, bool) {
	for _, o := range m.Overrides {
		if o.Bus == 0 && o.Source == irq {
			return o, true
		}
	}
	return InterruptOverride{}, false
}
