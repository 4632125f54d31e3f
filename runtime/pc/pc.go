//go:build tamago

package pc

import (
	"runtime/goos"
	_ "unsafe"

	"github.com/usbarmory/tamago/amd64"
	"github.com/usbarmory/tamago/amd64/lapic"
)

// Go runtime RAM: [RamStart, RamStart+RamSize). RamStart is TamaGo's amd64
// default (0x10000000), the image is linked at 0x10010000, and the runtime
// takes this fixed window for its heap and stacks. Guest memory, page tables
// and DMA buffers come from the rest of RAM through the memory map, so the
// window only needs to fit the hypervisor itself: the machine must have RAM
// up to 0x30000000 (768 MiB).
//
//go:linkname ramSize runtime/goos.RamSize
var ramSize uint64 = 0x20000000

// CPU is the bootstrap processor as TamaGo's amd64 package models it; its
// SMP start-up (InitSMP) is used to bring up the application processors.
var CPU = &amd64.CPU{
	TimerMultiplier: 1,
	LAPIC:           &lapic.LAPIC{Base: amd64.LAPIC_BASE},
}

// Hwinit1 runs early in the runtime's start, before package initialisers.
//
//go:linkname hwinit1 runtime/goos.Hwinit1
func hwinit1() {
	goos.Exit = exit
	initConsole()
	CPU.EnableExceptions()
	installExceptionHandlers()
	installInterruptHandlers()
	installEntropy()
}

// defined in pc_amd64.s
func halt()

func exit(code int32) {
	print("tamavisor: halted (exit code ", code, ")\n")
	for {
		halt()
	}
}
