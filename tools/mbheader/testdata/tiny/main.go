// Command tiny is the smallest TamaGo program for the QEMU microvm board. The
// mbheader tests build it to get a real TamaGo ELF to patch, and boot it
// under QEMU to check that PVH still starts it once patched.
package main

import (
	_ "github.com/usbarmory/tamago/board/qemu/microvm"
)

func main() { println("tiny: reached main") }
