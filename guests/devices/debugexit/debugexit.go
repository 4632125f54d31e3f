// Package debugexit models QEMU's isa-debug-exit device: a port that ends
// the VM with an exit code, so test kernels can report pass or fail the way
// they do under QEMU (-device isa-debug-exit,iobase=0xf4,iosize=0x04).
//
// A write of value v, of any width, to any of the device's ports ends the
// VM with code (v << 1) | 1, as QEMU's hw/misc/debugexit.c does: the code
// is odd, so it never reads as a clean 0 from a guest that crashed some
// other way. The code is truncated to 32 bits. Reads return all ones, as
// from a port nothing answers.
//
// The device has no state; Exit is called on the writing vCPU's exit path
// and may be called again if the guest writes again before the VM stops.
package debugexit

import "errors"

// Conventional placement (QEMU's default iobase, and the 4-port width
// test kernels use).
const (
	DefaultPort uint16 = 0xF4
	Ports              = 4
)

// Device is one isa-debug-exit port range.
type Device struct {
	exit func(code uint32)
}

// New returns the device; exit receives the code of each write.
func New(exit func(code uint32)) (*Device, error) {
	if exit == nil {
		return nil, errors.New("debugexit: no exit function")
	}
	return &Device{exit: exit}, nil
}

// Code is the exit code QEMU reports for a write of v.
func Code(v uint32) uint32 { return v<<1 | 1 }

// ReadPort implements bus.PortDevice.
func (d *Device) ReadPort(port uint16, size uint8) uint32 {
	if size >= 4 {
		return ^uint32(0)
	}
	return ^uint32(0) >> (32 - 8*uint32(size))
}

// WritePort implements bus.PortDevice. Only the bytes the access carries
// count: an 8-bit write of 0x12 gives code 0x25 whatever the upper bits of
// the register the guest wrote from held.
func (d *Device) WritePort(port uint16, size uint8, v uint32) {
	if size == 0 {
		return
	}
	if size < 4 {
		v &= ^uint32(0) >> (32 - 8*uint32(size))
	}
	d.exit(Code(v))
}
