package pmtimer

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*PM)(nil)
