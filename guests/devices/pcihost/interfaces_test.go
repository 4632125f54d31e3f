package pcihost

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*Host)(nil)

var (
	_ bus.MMIODevice = (*Host)(nil)
	_ Function       = (*ConfigSpace)(nil)
)
