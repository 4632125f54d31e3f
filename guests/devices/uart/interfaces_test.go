package uart

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*UART)(nil)
