//go:build tamago

package pc

import (
	_ "unsafe"

	"tamavisor/drivers/hw"
	"tamavisor/drivers/uart"
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

// Console is the serial console once Hwinit1 has programmed it; before that
// printk drives the UART as the firmware left it.
var Console *uart.UART

func initConsole() {
	u := uart.New(&machine, com1)
	if !u.Present() {
		return // keep the raw path: output may still reach a BMC's UART
	}
	if err := u.Init(115200); err != nil {
		return
	}
	Console = u
}

//go:linkname printk runtime/goos.Printk
func printk(c byte) {
	if Console != nil {
		if c == '\n' {
			Console.Tx('\r')
		}
		Console.Tx(c)
		return
	}
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
