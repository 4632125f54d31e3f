package i8042

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*Controller)(nil)
