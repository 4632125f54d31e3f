package acpi

import (
	"encoding/binary"
	"fmt"
)

// HPET is the HPET Description Table (IA-PC HPET Specification 1.0a,
// 3.2.4): one per HPET block.
type HPET struct {
	// EventTimerBlockID mirrors the block's General Capabilities and ID
	// register bits 31:0 (HPET spec 2.3.4): see the methods.
	EventTimerBlockID uint32
	Base              GenericAddress // register block, SystemMemory
	Number            uint8          // HPET sequence number
	// MinimumTick is the smallest periodic tick, in main counter
	// ticks, that does not lose interrupts.
	MinimumTick uint16
	// PageProtection: bits 3:0 the protection of the block's 4 KiB
	// page (0 none, 1 4 KiB, 2 64 KiB), bits 7:4 OEM attributes.
	PageProtection uint8
}

// HPET table layout (HPET spec 1.0a, 3.2.4, Table 3).
const (
	hpetOffBlockID        = 36
	hpetOffBase           = 40
	hpetOffNumber         = 52
	hpetOffMinimumTick    = 53
	hpetOffPageProtection = 55
	// HPETLength is the table's size.
	HPETLength = 56
)

// ParseHPET decodes an HPET table (the whole table, header included).
func ParseHPET(raw []byte) (*HPET, error) {
	b, err := checkHeader(raw, SigHPET, HPETLength)
	if err != nil {
		return nil, err
	}
	h := &HPET{
		EventTimerBlockID: binary.LittleEndian.Uint32(b[hpetOffBlockID:]),
		Base:              decodeGAS(b[hpetOffBase:]),
		Number:            b[hpetOffNumber],
		MinimumTick:       binary.LittleEndian.Uint16(b[hpetOffMinimumTick:]),
		PageProtection:    b[hpetOffPageProtection],
	}
	if h.Base.Space != SpaceSystemMemory {
		return h, fmt.Errorf("%w: base address in %v, want SystemMemory", ErrMalformed, h.Base.Space)
	}
	return h, nil
}

// HardwareRevision is the block's REV_ID.
func (h *HPET) HardwareRevision() uint8 { return uint8(h.EventTimerBlockID) }

// Comparators is the number of timers (NUM_TIM_CAP + 1).
func (h *HPET) Comparators() int { return int(h.EventTimerBlockID>>8&0x1f) + 1 }

// Counter64 reports COUNT_SIZE_CAP: a 64-bit main counter.
func (h *HPET) Counter64() bool { return h.EventTimerBlockID&(1<<13) != 0 }

// LegacyReplacement reports LEG_RT_CAP: timers 0 and 1 can replace the
// PIT's IRQ0 and the RTC's IRQ8.
func (h *HPET) LegacyReplacement() bool { return h.EventTimerBlockID&(1<<15) != 0 }

// VendorID is the PCI vendor ID of the block's maker.
func (h *HPET) VendorID() uint16 { return uint16(h.EventTimerBlockID >> 16) }
