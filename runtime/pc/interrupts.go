//go:build tamago

package pc

import (
	"errors"
	"fmt"
	"runtime/goos"
	"sync"
	"sync/atomic"
	"time"

	"tamavisor/runtime/pc/hostirq"
)

// Defined in interrupts_amd64.s.
var irqStubs [224]uintptr

// irqCounts counts host interrupts per vector (incremented by the stubs).
var irqCounts [256]uint64

// irqPending has one bit per vector, set by the stubs (LOCK BTS) and taken
// by DispatchInterrupts for the vectors that have a handler.
var irqPending hostirq.Bitmap

func openInterruptWindow()

// KickVector is the host interrupt that ends a guest's run when a device
// model's deadline arrives (see ArmKick).
const KickVector = 0xee

// Device vectors: the range AllocateVector hands out, below the kick
// timer's vector and the spurious vector (0xff), above the exception
// vectors (Intel SDM Vol. 3A, 6.2) and the legacy PIC's usual bases.
const (
	FirstDeviceVector = 0x40
	LastDeviceVector  = 0xdf
)

var deviceVectors = func() *hostirq.Table {
	t, err := hostirq.New(FirstDeviceVector, LastDeviceVector, &irqPending)
	if err != nil {
		panic(err) // constant arguments
	}
	t.OnPanic = func(v uint8, p any) {
		fmt.Printf("tamavisor: interrupt handler for host vector %#x panicked: %v; the vector is freed\n", v, p)
	}
	return t
}()

// pollInterval bounds how long an interrupt waits for its handler when no
// vCPU exits on the CPU that took it: the poller looks this often.
const pollInterval = time.Millisecond

var startPolling sync.Once

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
// whatever its interrupt flag was, and runs the handlers of the device
// vectors that fired (DispatchInterrupts).
func TakePendingInterrupts() {
	openInterruptWindow()
	deviceVectors.Dispatch()
}

// DispatchInterrupts runs the handler of each allocated vector that fired
// since the last dispatch, on the calling goroutine, and returns how many
// ran.
func DispatchInterrupts() int { return deviceVectors.Dispatch() }

// AllocateVector takes a free device vector and arranges for handler to
// run, in a goroutine's ordinary Go code, after each interrupt on it: on
// a vCPU's goroutine right after a VM exit (TakePendingInterrupts), or on
// the interrupt poller within about pollInterval. It returns the vector
// and the APIC ID of the boot CPU, which a message-signalled interrupt
// must target: an idle CPU takes pending interrupts in the scheduler's
// idle loop, a CPU in a guest at its exit.
func AllocateVector(handler func()) (vector uint8, apicID uint32, err error) {
	if len(apicIDs) == 0 {
		return 0, 0, errors.New("host interrupts: the boot CPU's APIC ID is not known (the processors were not started)")
	}
	v, err := deviceVectors.Allocate(handler)
	if err != nil {
		return 0, 0, fmt.Errorf("host interrupts: %w", err)
	}
	startPolling.Do(func() {
		goos.Idle = idleWindow
		go pollInterrupts()
	})
	return v, apicIDs[0], nil
}

// FreeVector gives a vector back; its handler may run once more if a
// dispatch already took its pending bit.
func FreeVector(vector uint8) { deviceVectors.Free(vector) }

// VectorsInUse returns how many device vectors are allocated.
func VectorsInUse() int { return deviceVectors.InUse() }

// pollInterrupts runs the handlers of interrupts that no vCPU exit
// dispatched: the CPU that took one may be idle or running the
// hypervisor's own goroutines. It also opens an interrupt window on
// whichever CPU it runs.
func pollInterrupts() {
	for {
		openInterruptWindow()
		deviceVectors.Dispatch()
		time.Sleep(pollInterval)
	}
}

// idleWindow is the runtime's idle hook (goos.Idle), installed once a
// device vector is in use: an idle CPU takes its pending interrupts (they
// would otherwise wait in its local APIC until it next entered a guest),
// and the stubs mark them pending for the poller. It does not halt: the
// CPU goes back to looking for goroutines at once.
//
//go:nosplit
func idleWindow(until int64) { openInterruptWindow() }
