//go:build tamago

package pc

import "sync/atomic"

// Defined in interrupts_amd64.s.
var irqStubs [224]uintptr

// irqCounts counts host interrupts per vector (incremented by the stubs).
var irqCounts [256]uint64

func openInterruptWindow()

// KickVector is the host interrupt that ends a guest's run when a device
// model's deadline arrives (see ArmKick).
const KickVector = 0xee

func installInterruptHandlers() {
	idt := sidt()
	for v := 32; v < 256; v++ {
		writeInterruptGate(idt, v, irqStubs[v-32])
	}
}

// InterruptCount returns how many host interrupts arrived on vector.
func InterruptCount(vector uint8) uint64 { return atomic.LoadUint64(&irqCounts[vector]) }

// TakePendingInterrupts lets the calling CPU take host interrupts that
// arrived while interrupts were disabled (after a VM exit caused by one),
// whatever its interrupt flag was.
func TakePendingInterrupts() { openInterruptWindow() }
