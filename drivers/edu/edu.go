// Package edu drives QEMU's "edu" educational PCI device (QEMU
// docs/specs/edu.rst), whose DMA engine copies between a 4 KiB on-device
// buffer and any bus address the driver names. The hypervisor uses it
// only as an attacker: a device that can aim DMA at hypervisor or guest
// memory, to prove that the IOMMU stops it (tamavisor.selftest=dma).
//
// The register layout is QEMU's (edu.rst, "MMIO area spec"): BAR0, 1 MiB.
package edu

import (
	"errors"
	"fmt"
	"time"

	"tamavisor/drivers/hw"
	"tamavisor/drivers/pci"
)

// PCI identity (edu.rst: "PCI ID 1234:11e8").
const (
	VendorID = 0x1234
	DeviceID = 0x11e8
)

// Registers, offsets in BAR0 (edu.rst).
const (
	regIdentification = 0x00 // 0xRRrr00ed: major, minor, magic 0xed
	regLiveness       = 0x04 // reads back the bitwise inverse of what was written
	regDMASource      = 0x80
	regDMADestination = 0x88
	regDMACount       = 0x90
	regDMACommand     = 0x98
)

// DMA command register bits (edu.rst).
const (
	dmaStart   = 1 << 0 // start; reads 1 while the transfer runs
	dmaToRAM   = 1 << 1 // direction: 1 from the device buffer to RAM
	identMagic = 0xed
)

// Buffer is where the device's own DMA buffer sits in its DMA address
// space, and BufferSize its length (edu.rst: "DMA buffer at 0x40000,
// 4096 bytes").
const (
	Buffer     = 0x40000
	BufferSize = 4096
)

// MaxTransfer is the longest transfer the driver asks for. QEMU 7.2's
// range check treats the buffer's end as exclusive of its last byte and
// stops the whole emulator (hw_error) on a full 4 KiB transfer, so the
// driver stays well inside the buffer.
const MaxTransfer = BufferSize / 2

// transferTimeout bounds a DMA wait: QEMU completes a transfer from a
// 100 ms virtual-clock timer.
const transferTimeout = 2 * time.Second

// Device is one edu function.
type Device struct {
	mmio  hw.MMIO
	base  uint64
	sleep func(time.Duration)
}

// Find returns the first edu function in an enumeration.
func Find(devs []pci.Device) (pci.Device, bool) {
	for _, d := range devs {
		if d.VendorID == VendorID && d.DeviceID == DeviceID {
			return d, true
		}
	}
	return pci.Device{}, false
}

// New checks the device's identification and liveness registers at BAR0
// base. sleep waits between polls of a running transfer.
func New(mmio hw.MMIO, base uint64, sleep func(time.Duration)) (*Device, error) {
	if base == 0 {
		return nil, errors.New("edu: BAR0 is not assigned")
	}
	d := &Device{mmio: mmio, base: base, sleep: sleep}
	if id := mmio.Read32(base + regIdentification); id&0xff != identMagic {
		return nil, fmt.Errorf("edu: identification register at %#x reads %#x, not an edu device", base, id)
	}
	const probe = 0x5a5a1234
	mmio.Write32(base+regLiveness, probe)
	if got := mmio.Read32(base + regLiveness); got != ^uint32(probe) {
		return nil, fmt.Errorf("edu: liveness check failed (wrote %#x, read %#x)", probe, got)
	}
	return d, nil
}

// EnableBusMaster turns on memory decoding and bus mastering in the
// function's command register (PCI 3.0 6.2.2): without it the device's
// DMA goes nowhere, IOMMU or not.
func EnableBusMaster(cs pci.ConfigSpace, d pci.Device) {
	const memorySpace, busMaster = 1 << 1, 1 << 2
	v := cs.Read32(d.Bus, d.Dev, d.Fn, pci.OffCommand)
	cs.Write32(d.Bus, d.Dev, d.Fn, pci.OffCommand, v&0xffff|memorySpace|busMaster)
}

// CopyToRAM has the device write n bytes of its buffer to bus address
// addr, and waits for the transfer to end. The device does not say
// whether the write reached memory: an IOMMU that blocks it reports a
// fault instead.
func (d *Device) CopyToRAM(addr uint64, n uint32) error {
	return d.transfer(Buffer, addr, n, dmaToRAM)
}

// CopyFromRAM has the device read n bytes at bus address addr into its
// buffer.
func (d *Device) CopyFromRAM(addr uint64, n uint32) error {
	return d.transfer(addr, Buffer, n, 0)
}

func (d *Device) transfer(src, dst uint64, n uint32, direction uint64) error {
	if n == 0 || n > MaxTransfer {
		return fmt.Errorf("edu: transfer of %d bytes (1..%d)", n, MaxTransfer)
	}
	if d.mmio.Read64(d.base+regDMACommand)&dmaStart != 0 {
		return errors.New("edu: a DMA transfer is already running")
	}
	d.mmio.Write64(d.base+regDMASource, src)
	d.mmio.Write64(d.base+regDMADestination, dst)
	d.mmio.Write64(d.base+regDMACount, uint64(n))
	d.mmio.Write64(d.base+regDMACommand, dmaStart|direction)
	const poll = 10 * time.Millisecond
	for waited := time.Duration(0); waited < transferTimeout; waited += poll {
		if d.mmio.Read64(d.base+regDMACommand)&dmaStart == 0 {
			return nil
		}
		d.sleep(poll)
	}
	return fmt.Errorf("edu: DMA transfer %#x -> %#x (%d bytes) did not finish in %v", src, dst, n, transferTimeout)
}
