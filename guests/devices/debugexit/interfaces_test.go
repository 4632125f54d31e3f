package debugexit

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*Device)(nil)
