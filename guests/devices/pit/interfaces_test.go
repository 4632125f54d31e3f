package pit

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*PIT)(nil)
