//go:build tamago

package main

import (
	"bytes"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"tamavisor/drivers/edu"
	"tamavisor/drivers/hw"
	"tamavisor/drivers/iommu"
	"tamavisor/drivers/pci"
	"tamavisor/ept"
)

// guestMemory records the host-physical RAM of each running guest, for
// the DMA attack test to aim at.
var guestMemory struct {
	sync.Mutex
	ram map[string][2]uint64 // name -> host-physical base, size
}

func registerGuestRAM(name string, hpa, size uint64) {
	guestMemory.Lock()
	defer guestMemory.Unlock()
	if guestMemory.ram == nil {
		guestMemory.ram = map[string][2]uint64{}
	}
	guestMemory.ram[name] = [2]uint64{hpa, size}
}

func unregisterGuestRAM(name string) {
	guestMemory.Lock()
	defer guestMemory.Unlock()
	delete(guestMemory.ram, name)
}

func anyGuestRAM() (name string, hpa, size uint64, ok bool) {
	guestMemory.Lock()
	defer guestMemory.Unlock()
	for n, r := range guestMemory.ram {
		return n, r[0], r[1], true
	}
	return "", 0, 0, false
}

// attackPattern is what the edu device writes: bytes no guest or
// hypervisor structure would hold by chance.
var attackPattern = func() []byte {
	b := bytes.Repeat([]byte("tamavisor-dma-attack!"), edu.MaxTransfer/21+1)
	return b[:edu.MaxTransfer]
}()

// dmaAttack is `tamavisor.selftest=dma`: QEMU's edu device, driven by the
// hypervisor, aims DMA writes at hypervisor memory and at a running
// guest's memory. With the IOMMU on, the device first sits in a domain
// that maps only its own two buffer pages (DMA to them works, the write
// to hypervisor memory must not land), then in the blocking state every
// device the hypervisor does not use is in: the writes must fault
// (reported on the console) and the targets stay unchanged. With tamavisor.iommu=off the same writes land, which
// proves the test can fail.
func dmaAttack(m *hw.Machine, g *dmaGuard, devs []pci.Device, spaces map[uint16]pci.ConfigSpace) {
	report := func(format string, args ...any) { fmt.Printf("tamavisor: dma-attack: "+format+"\n", args...) }
	dev, ok := edu.Find(devs)
	if !ok || len(dev.BARs) == 0 || spaces[dev.Segment] == nil {
		report("failed: no edu device (QEMU -device edu,dma_mask=0xffffffffffffffff)")
		return
	}
	d, err := edu.New(m, dev.BARs[0].Address, time.Sleep)
	if err != nil {
		report("failed: %v", err)
		return
	}
	edu.EnableBusMaster(spaces[dev.Segment], dev)

	// The device's own buffers: a source page the pattern is read from
	// and a destination page, outside the Go heap.
	own, err := g.pages.Alloc(2*4096, 4096)
	if err != nil {
		report("failed: %v", err)
		return
	}
	src := unsafe.Slice((*byte)(unsafe.Pointer(uintptr(own))), 2*4096)
	copy(src, attackPattern)
	protected := len(g.units) > 0
	var unit iommu.Unit
	srcID := iommu.Source{Segment: dev.Segment, Bus: dev.Bus, Device: dev.Dev, Function: dev.Fn}
	if protected {
		domain, u, err := g.attachNew(srcID)
		if err != nil {
			report("failed: attaching the device to its own domain: %v", err)
			return
		}
		unit = u
		if err := domain.Tables.Map(own, own, 2*4096, ept.Read|ept.Write, ept.WB); err != nil {
			report("failed: mapping its buffers: %v", err)
			return
		}
		report("device %02x:%02x.%d behind %s, domain %d maps only its buffers at %#x", dev.Bus, dev.Dev, dev.Fn, unit, domain.ID, own)
	} else {
		report("device %02x:%02x.%d, no IOMMU", dev.Bus, dev.Dev, dev.Fn)
	}
	if err := d.CopyFromRAM(own, edu.MaxTransfer); err != nil {
		report("failed: loading the pattern: %v", err)
		return
	}
	if err := d.CopyToRAM(own+4096, edu.MaxTransfer); err != nil || !bytes.Equal(src[4096:4096+edu.MaxTransfer], attackPattern) {
		report("own-buffer DMA: failed (%v)", err)
	} else {
		report("own-buffer DMA: works")
	}

	// The targets: the hypervisor's own memory (the Go heap, identity
	// mapped), first from the device's own domain, then, like every
	// device the hypervisor does not use, from the blocking state; and
	// a guest's RAM once one runs.
	heap := make([]byte, edu.MaxTransfer)
	heapAddr := uint64(uintptr(unsafe.Pointer(&heap[0])))
	landed, attempts := 0, 0
	faultsBefore := g.faults()
	try := func(what string, addr uint64, target []byte) {
		attempts++
		clear(target)
		if attack(d, what, addr, target, report) {
			landed++
		}
	}
	try("hypervisor, from the device's own domain", heapAddr, heap)
	if protected {
		if err := unit.Detach(srcID); err != nil {
			report("failed: detaching the device: %v", err)
			return
		}
	}
	try("hypervisor", heapAddr, heap)
	var name string
	var hpa, size uint64
	for i := 0; i < 3000; i++ {
		if name, hpa, size, ok = anyGuestRAM(); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !ok {
		report("failed: no guest started to aim at")
	} else {
		page := (hpa + size/2) &^ 4095
		try("guest "+name, page, unsafe.Slice((*byte)(unsafe.Pointer(uintptr(page))), edu.MaxTransfer))
	}
	time.Sleep(200 * time.Millisecond) // the fault reporter drains every 20 ms
	report("dma_writes_landed=%d attempts=%d faults_reported=%d iommu=%v", landed, attempts, g.faults()-faultsBefore, protected)
	fmt.Println("tamavisor: dma-attack: done; the hypervisor keeps running")
}

// attack has the device write its pattern at addr and tells whether it
// reached target (the same memory, as the hypervisor sees it).
func attack(d *edu.Device, what string, addr uint64, target []byte, report func(string, ...any)) bool {
	if err := d.CopyToRAM(addr, edu.MaxTransfer); err != nil {
		report("target=%q addr=%#x: %v", what, addr, err)
		return false
	}
	landed := bytes.Equal(target, attackPattern)
	report("target=%q addr=%#x landed=%v", what, addr, landed)
	return landed
}

func (g *dmaGuard) faults() uint64 {
	if g.log == nil {
		return 0
	}
	return g.log.Total.Load()
}
