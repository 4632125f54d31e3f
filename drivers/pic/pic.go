// Package pic drives the pair of cascaded Intel 8259A programmable interrupt
// controllers of a PC (master at ports 0x20/0x21, slave at 0xA0/0xA1, the
// slave's INT wired to the master's IR2).
//
// The hypervisor takes interrupts through the local APIC and IOAPIC and
// keeps the 8259s out of the way, for two reasons:
//
//   - Firmware (BIOS, SeaBIOS, CSM, often UEFI too) leaves the master
//     programmed with vector base 0x08, so the PIT's IRQ0 arrives as vector 8,
//     which the processor also uses for a double fault (#DF): a timer tick
//     taken before the hypervisor's IDT exists, or mistaken for #DF after, is
//     fatal. The 8259s are therefore remapped to a harmless vector range and
//     every line masked.
//   - Masked lines can still yield a spurious interrupt on IR7/IR15 if a
//     line drops during the acknowledge cycle; after Remap those land on
//     base+7 and base+15, where a handler can recognise and ignore them,
//     instead of on an exception vector.
//
// Initialization follows the 8259A datasheet (Intel, order number 231468),
// "Initialization Command Words" ICW1-ICW4 and "Operation Command Words"
// OCW1-OCW3. Guest-visible 8259s are device models elsewhere; this package
// only touches the real ones.
package pic

import (
	"fmt"

	"tamavisor/drivers/hw"
)

// Port addresses of the two 8259As on a PC (IBM PC/AT Technical Reference).
const (
	MasterCommand uint16 = 0x20
	MasterData    uint16 = 0x21
	SlaveCommand  uint16 = 0xA0
	SlaveData     uint16 = 0xA1
)

// DelayPort is the POST diagnostic port; a write there takes one ISA bus
// cycle and is the customary pause between 8259 command words (older
// chipsets drop back-to-back writes).
const DelayPort uint16 = 0x80

// ICW1 bits (8259A datasheet, "Initialization Command Words").
const (
	ICW1Init uint8 = 0x10 // D4=1 marks ICW1 on the command port
	ICW1ICW4 uint8 = 0x01 // IC4: an ICW4 follows
	// ICW1 bit 1 (SNGL) = 0: cascade mode; bit 3 (LTIM) = 0: edge-triggered.
)

// ICW3 values for the PC wiring: the master has a slave on IR2 (bit mask),
// the slave's cascade identity is 2 (a number).
const (
	ICW3MasterHasSlaveOnIR2 uint8 = 1 << CascadeIRQ
	ICW3SlaveIdentity       uint8 = CascadeIRQ
)

// CascadeIRQ is the master input the slave is wired to.
const CascadeIRQ = 2

// ICW4 bits (same section): uPM=1 selects 8086/8088 mode (vector =
// ICW2 base + IR number); AEOI, buffered mode and SFNM stay off.
const ICW4Mode8086 uint8 = 0x01

// OCW2/OCW3 commands on the command port (datasheet, "Operation Command
// Words").
const (
	OCW2NonSpecificEOI uint8 = 0x20
	OCW3ReadIRR        uint8 = 0x0A
	OCW3ReadISR        uint8 = 0x0B
)

// PIC is the master/slave 8259A pair.
type PIC struct {
	io hw.PortIO
}

// New returns a driver for the PC's two 8259As.
func New(io hw.PortIO) *PIC { return &PIC{io: io} }

func (p *PIC) out(port uint16, v uint8) {
	p.io.Out8(port, v)
	p.io.Out8(DelayPort, 0)
}

// Remap reinitializes both controllers so that master IRQs 0-7 arrive at
// masterBase..masterBase+7 and slave IRQs 8-15 at slaveBase..slaveBase+7,
// and leaves every line masked. In 8086 mode the 8259A supplies vector bits
// 7:3 from ICW2 and bits 2:0 from the IR number, so both bases must be
// multiples of 8; they must also stay clear of the exception vectors 0-31.
func (p *PIC) Remap(masterBase, slaveBase uint8) error {
	for _, b := range [...]uint8{masterBase, slaveBase} {
		if b%8 != 0 || b < 32 {
			return fmt.Errorf("pic: vector base %#x must be a multiple of 8 and at least 0x20", b)
		}
	}
	if masterBase == slaveBase {
		return fmt.Errorf("pic: master and slave share vector base %#x", masterBase)
	}
	// Mask first so nothing is delivered half-way through the sequence.
	p.MaskAll()
	p.out(MasterCommand, ICW1Init|ICW1ICW4)
	p.out(SlaveCommand, ICW1Init|ICW1ICW4)
	p.out(MasterData, masterBase) // ICW2
	p.out(SlaveData, slaveBase)
	p.out(MasterData, ICW3MasterHasSlaveOnIR2)
	p.out(SlaveData, ICW3SlaveIdentity)
	p.out(MasterData, ICW4Mode8086)
	p.out(SlaveData, ICW4Mode8086)
	// ICW1 clears the interrupt mask register; mask everything again.
	p.MaskAll()
	return nil
}

// MaskAll masks all sixteen lines (OCW1 = 0xFF on both controllers).
func (p *PIC) MaskAll() {
	p.out(MasterData, 0xFF)
	p.out(SlaveData, 0xFF)
}

// Mask returns the interrupt mask register of both controllers, slave in
// the high byte (OCW1 reads back from the data port).
func (p *PIC) Mask() uint16 {
	return uint16(p.io.In8(MasterData)) | uint16(p.io.In8(SlaveData))<<8
}

// SetMask writes both interrupt mask registers, slave in the high byte.
func (p *PIC) SetMask(mask uint16) {
	p.out(MasterData, uint8(mask))
	p.out(SlaveData, uint8(mask>>8))
}

// EOI acknowledges irq (0-15) with a non-specific EOI to the controller that
// raised it, and to the master as well for a slave line, since the master saw
// it as IR2.
func (p *PIC) EOI(irq uint8) error {
	if irq > 15 {
		return fmt.Errorf("pic: IRQ %d out of range 0-15", irq)
	}
	if irq >= 8 {
		p.io.Out8(SlaveCommand, OCW2NonSpecificEOI)
	}
	p.io.Out8(MasterCommand, OCW2NonSpecificEOI)
	return nil
}

// InService returns the in-service registers (slave in the high byte), read
// through OCW3. A handler for base+7 or base+15 uses it to tell a spurious
// interrupt (its ISR bit clear) from a real one.
func (p *PIC) InService() uint16 { return p.read(OCW3ReadISR) }

// Requested returns the interrupt request registers (slave in the high byte).
func (p *PIC) Requested() uint16 { return p.read(OCW3ReadIRR) }

func (p *PIC) read(ocw3 uint8) uint16 {
	p.io.Out8(MasterCommand, ocw3)
	p.io.Out8(SlaveCommand, ocw3)
	return uint16(p.io.In8(MasterCommand)) | uint16(p.io.In8(SlaveCommand))<<8
}
