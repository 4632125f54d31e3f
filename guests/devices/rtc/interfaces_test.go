package rtc

import "tamavisor/guests/bus"

var _ bus.PortDevice = (*RTC)(nil)
