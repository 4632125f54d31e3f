//go:build tamago

// Command boot is the tamavisor image: the hypervisor's main package.
package main

import (
	"fmt"

	"tamavisor/runtime/pc"
)

func main() {
	h := pc.BootHandoff()
	fmt.Printf("tamavisor: entry magic %#x info %#x\n", h.Magic, h.Info)
	fmt.Println("tamavisor: ready")
	for {
	}
}
