//go:build tamago

package pc

import (
	_ "unsafe"

	"tamavisor/drivers/hw"
)

// The console is the first 16550 UART (COM1), which QEMU, Bochs and server
// BMCs (serial-over-LAN) all provide. printk runs before the Go runtime is
// fully up, so it touches the UART directly: no allocation, no interfaces.
const (
	com1      = 0x3f8
	uartTHR   = 0 // transmit holding register
	uartLSR   = 5 // line status register
	lsrTHRE   = 1 << 5
	txSpinMax = 100000 // a dead or absent UART must not stop the hypervisor
)

var machine hw.Machine

//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	if c == '\n' {
		uartTx('\r')
	}
	uartTx(c)
}

func uartTx(c byte) {
	for i := 0; i < txSpinMax; i++ {
		if machine.In8(com1+uartLSR)&lsrTHRE != 0 {
			break
		}
	}
	machine.Out8(com1+uartTHR, c)
}
