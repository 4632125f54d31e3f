//go:build tamago

package pc

import (
	"fmt"
	"runtime"
	"runtime/goos"
	"sync/atomic"
	"time"
	"unsafe"

	"tamavisor/drivers/lapic"
)

// Application processors are started with TamaGo's real-mode trampoline
// (amd64 ·apinit, copied below 1 MiB), which loads CR3 from the fixed page
// hostPML4, our GDT (amd64·gdtptr, entry_amd64.s) and the shared IDT, counts
// itself in apTask and waits, halted, for an NMI carrying a Go M to run.
// Unlike TamaGo's own InitSMP, which targets APIC IDs 1..n-1 from CPUID
// counts, the processors started are exactly those the firmware lists in the
// ACPI MADT, whatever their APIC IDs (servers number them sparsely), and
// each runtime thread is sent to one of them by APIC ID.
const (
	apTrampoline = 0x4000 // SIPI vector 4 (Intel SDM Vol. 3A, 9.4.4.1)
	apStartPtr   = 0x5000
	apGDT        = 0x6000
	apGDTR       = 0x6018
	apTask       = 0x6020
	hostPML4     = 0x9000
)

// LowMemoryInUse is the physical range the AP start-up uses; the platform
// keeps it out of guest memory.
const LowMemoryInUse = 0x10000

//go:linkname apinitReloc github.com/usbarmory/tamago/amd64.apinit_reloc
func apinitReloc(init uintptr, start uintptr)

// apTaskSlot mirrors amd64.task, read by ·apstart at apTask.
type apTaskSlot struct{ sp, mp, gp, pc uint64 }

var (
	apicIDs   []uint32 // online CPUs; index 0 is the BSP
	nextAP    atomic.Int32
	localAPIC *lapic.LAPIC
)

func phys64(addr uintptr) *uint64 { return (*uint64)(unsafe.Pointer(addr)) }

// StartAPs starts every processor in listed (APIC IDs from the MADT) other
// than the caller, waits for each to check in, and hands them to the Go
// scheduler. It returns the APIC IDs online, the BSP first. Processors that
// do not answer within a second are reported and left out.
func StartAPs(l *lapic.LAPIC, listed []uint32) (online []uint32, err error) {
	localAPIC = l
	bsp := l.ID()
	online = []uint32{bsp}

	apinitReloc(apTrampoline, apStartPtr)
	*phys64(apGDT + 0x00) = 0x0000000000000000
	*phys64(apGDT + 0x08) = 0x00209a00000fffff // code, limit patched by ·apstart
	*phys64(apGDT + 0x10) = 0x00009200000fffff // data
	*(*uint16)(unsafe.Pointer(uintptr(apGDTR))) = 3*8 - 1
	*(*uint32)(unsafe.Pointer(uintptr(apGDTR + 2))) = apGDT
	counter := (*atomic.Uint32)(unsafe.Pointer(uintptr(apTask)))
	counter.Store(0)

	var missing []uint32
	for _, id := range listed {
		if id == bsp {
			continue
		}
		before := counter.Load()
		// INIT, then STARTUP twice (Intel SDM Vol. 3A, 9.4.4.1).
		if err := l.SendInit(id); err != nil {
			return online, err
		}
		time.Sleep(10 * time.Millisecond)
		for i := 0; i < 2 && counter.Load() == before; i++ {
			if err := l.SendStartup(id, apTrampoline>>12); err != nil {
				return online, err
			}
			time.Sleep(200 * time.Microsecond)
		}
		deadline := time.Now().Add(time.Second)
		for counter.Load() == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if counter.Load() == before {
			missing = append(missing, id)
			continue
		}
		online = append(online, id)
	}

	apicIDs = online
	*(*apTaskSlot)(unsafe.Pointer(uintptr(apTask))) = apTaskSlot{}
	goos.ProcID = procID
	goos.Task = startM
	runtime.GOMAXPROCS(len(online))

	if len(missing) > 0 {
		err = fmt.Errorf("smp: CPUs with APIC IDs %v listed in the MADT did not start", missing)
	}
	return online, err
}

func procID() uint64 { return uint64(localAPIC.ID()) }

// startM implements goos.Task: the runtime asks for a new thread (M), which
// goes to the next idle processor. The Go runtime never drops Ms on tamago,
// so each AP receives exactly one.
func startM(sp, mp, gp, fn unsafe.Pointer) {
	n := int(nextAP.Add(1))
	if n >= len(apicIDs) {
		panic("smp: the runtime asked for more threads than CPUs online")
	}
	slot := (*apTaskSlot)(unsafe.Pointer(uintptr(apTask)))
	// The previous AP clears the slot when it takes its task.
	for i := 0; atomic.LoadUint64(&slot.pc) != 0; i++ {
		if i > 1e8 {
			panic("smp: an application processor did not take its task")
		}
	}
	slot.sp = uint64(uintptr(sp))
	slot.mp = uint64(uintptr(mp))
	slot.gp = uint64(uintptr(gp))
	atomic.StoreUint64(&slot.pc, uint64(uintptr(fn)))
	if err := localAPIC.SendNMI(apicIDs[n]); err != nil {
		panic(err)
	}
}
