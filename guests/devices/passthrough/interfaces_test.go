package passthrough

import (
	"tamavisor/guests/bus"
	"tamavisor/guests/devices/lapic"
	"tamavisor/guests/devices/pcihost"
)

var (
	_ pcihost.Function = (*Function)(nil)
	_ bus.MMIODevice   = (*Window)(nil)
	_ MSISink          = (*lapic.Group)(nil)
)
