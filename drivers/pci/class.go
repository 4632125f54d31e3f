package pci

// Class codes (PCI Code and ID Assignment Specification 1.11, section 1
// "Base Class 00h" onwards). Names follow lspci's, qualified by the
// programming interface where it tells the register interface apart.

// ClassName names the function's class, subclass and programming interface.
func (d *Device) ClassName() string { return ClassName(d.Class, d.Subclass, d.ProgIF) }

type classKey struct{ class, sub uint8 }

var subclassNames = map[classKey]string{
	{0x00, 0x00}: "Non-VGA unclassified device",
	{0x00, 0x01}: "VGA compatible unclassified device",
	{0x01, 0x00}: "SCSI storage controller",
	{0x01, 0x01}: "IDE interface",
	{0x01, 0x04}: "RAID bus controller",
	{0x01, 0x05}: "ATA controller",
	{0x01, 0x06}: "SATA controller",
	{0x01, 0x07}: "Serial Attached SCSI controller",
	{0x01, 0x08}: "Non-Volatile memory controller",
	{0x01, 0x80}: "Mass storage controller",
	{0x02, 0x00}: "Ethernet controller",
	{0x02, 0x80}: "Network controller",
	{0x03, 0x00}: "VGA compatible controller",
	{0x03, 0x01}: "XGA compatible controller",
	{0x03, 0x02}: "3D controller",
	{0x03, 0x80}: "Display controller",
	{0x04, 0x01}: "Multimedia audio controller",
	{0x04, 0x03}: "Audio device",
	{0x05, 0x00}: "RAM memory",
	{0x06, 0x00}: "Host bridge",
	{0x06, 0x01}: "ISA bridge",
	{0x06, 0x04}: "PCI bridge",
	{0x06, 0x07}: "CardBus bridge",
	{0x06, 0x80}: "Bridge",
	{0x07, 0x00}: "Serial controller",
	{0x07, 0x80}: "Communication controller",
	{0x08, 0x00}: "PIC",
	{0x08, 0x05}: "SD Host controller",
	{0x08, 0x06}: "IOMMU",
	{0x08, 0x80}: "System peripheral",
	{0x0C, 0x03}: "USB controller",
	{0x0C, 0x05}: "SMBus",
	{0x0D, 0x00}: "IRDA controller",
	{0x10, 0x80}: "Encryption controller",
	{0x11, 0x80}: "Signal processing controller",
}

// progIFNames qualify a subclass by programming interface.
var progIFNames = map[classKey]map[uint8]string{
	{0x01, 0x06}: {0x01: "AHCI"},
	{0x01, 0x08}: {0x02: "NVMe"},
	{0x06, 0x04}: {0x01: "subtractive decode"},
	{0x07, 0x00}: {0x02: "16550"},
	{0x0C, 0x03}: {0x00: "UHCI", 0x10: "OHCI", 0x20: "EHCI", 0x30: "xHCI", 0xFE: "device"},
}

var classNames = [...]string{
	0x00: "Unclassified device",
	0x01: "Mass storage controller",
	0x02: "Network controller",
	0x03: "Display controller",
	0x04: "Multimedia controller",
	0x05: "Memory controller",
	0x06: "Bridge",
	0x07: "Communication controller",
	0x08: "Generic system peripheral",
	0x09: "Input device controller",
	0x0A: "Docking station",
	0x0B: "Processor",
	0x0C: "Serial bus controller",
	0x0D: "Wireless controller",
	0x0E: "Intelligent controller",
	0x0F: "Satellite communications controller",
	0x10: "Encryption controller",
	0x11: "Signal processing controller",
	0x12: "Processing accelerators",
	0x13: "Non-Essential Instrumentation",
}

// ClassName names a class/subclass/programming-interface triple, e.g.
// "SATA controller (AHCI)" for 01.06.01, falling back to the base class
// name, then to "Unknown class".
func ClassName(class, subclass, progIF uint8) string {
	k := classKey{class, subclass}
	if name, ok := subclassNames[k]; ok {
		if q, ok := progIFNames[k][progIF]; ok {
			return name + " (" + q + ")"
		}
		return name
	}
	if int(class) < len(classNames) {
		return classNames[class]
	}
	return "Unknown class"
}
