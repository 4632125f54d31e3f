package pic

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*PIC)(nil)

// The PIC takes its ISA lines straight from a bus.IRQ router.
var _ bus.IRQ = (*PIC)(nil)
