package lapic

// Message signalled interrupts as a PCI function writes them: a DWORD
// write of the message data to the message address (Intel SDM Vol. 3A
// 11.11 "Message Signalled Interrupts": 11.11.1 Figure 11-24 for the
// address, 11.11.2 Figure 11-25 for the data).
const (
	// MSIAddressBase is the address window an MSI must hit to be an
	// interrupt (bits 31:20 = 0xFEE); anything else is an ordinary
	// memory write.
	MSIAddressBase uint64 = 0xFEE00000
	msiAddressMask uint64 = 0xFFFFFFFF_FFF00000
	// MSIAddressDestShift is the position of the 8-bit destination ID
	// (address bits 19:12).
	MSIAddressDestShift = 12
	// MSIAddressLogical is the destination mode bit (DM, bit 2): set for
	// logical destination mode.
	MSIAddressLogical uint64 = 1 << 2
	// MSIAddressRedirectionHint is RH (bit 3): with it set the message
	// goes to the lowest-priority processor of the destination; as for
	// lowest-priority delivery, any single target is correct here.
	MSIAddressRedirectionHint uint64 = 1 << 3

	msiDataVectorMask    uint32 = 0xFF
	msiDataDeliveryShift        = 8
	// MSIDataLevelAssert (bit 14) is the level of a level-triggered
	// message: 1 assert, 0 deassert; ignored for edge.
	MSIDataLevelAssert uint32 = 1 << 14
	// MSIDataTriggerLevel (bit 15) selects level rather than edge
	// trigger mode.
	MSIDataTriggerLevel uint32 = 1 << 15
)

// MSIAddress returns the message address of an MSI for the 8-bit APIC
// destination dest, in physical or logical destination mode.
func MSIAddress(dest uint8, logical bool) uint64 {
	a := MSIAddressBase | uint64(dest)<<MSIAddressDestShift
	if logical {
		a |= MSIAddressLogical
	}
	return a
}

// MSIData returns the message data of an edge-triggered MSI with the
// given vector and delivery mode.
func MSIData(vector uint8, mode DeliveryMode) uint32 {
	return uint32(vector) | uint32(mode&7)<<msiDataDeliveryShift
}

// DeliverMSI delivers the interrupt message a PCI function writes (addr,
// data) to the APICs its destination selects (Group.Deliver), and
// reports whether any took it. A write outside the 0xFEExxxxx window, a
// level-triggered deassert message and the reserved delivery modes 011b
// and 110b (SDM 11.11.2) deliver nothing. Address bits 11:4 are ignored:
// without interrupt remapping the destination is the 8-bit field.
func (g *Group) DeliverMSI(addr uint64, data uint32) bool {
	if addr&msiAddressMask != MSIAddressBase {
		return false
	}
	level := data&MSIDataTriggerLevel != 0
	if level && data&MSIDataLevelAssert == 0 {
		return false
	}
	mode := DeliveryMode(data >> msiDataDeliveryShift & 7)
	if mode == 3 || mode == DeliveryStartUp {
		return false
	}
	dest := uint32(addr>>MSIAddressDestShift) & 0xFF
	return g.Deliver(dest, addr&MSIAddressLogical != 0, uint8(mode), uint8(data&msiDataVectorMask), level)
}
