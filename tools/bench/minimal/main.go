//go:build tamago

// Command minimal is the smallest program on tamavisor's runtime
// (tamavisor/runtime/pc), built with the image's flags: the baseline that
// tools/bench divides the image's boot time by, so that the figure tracks
// what tamavisor's own start-up costs rather than the emulator's or the
// Go runtime's.
package main

import (
	"fmt"
	"os"

	_ "tamavisor/runtime/pc"
)

func main() {
	fmt.Println("minimal: ready")
	// The runtime's exit halts the CPU (runtime/pc).
	os.Exit(0)
}
