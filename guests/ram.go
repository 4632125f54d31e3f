package guests

import "fmt"

// RAM is a guest's physical memory [0, Size) backed by one host buffer
// (on the image, a physically contiguous range from package physmem, which
// the nested page tables map at guest-physical 0). It implements
// vcpu.Memory; every access is bounds-checked, since the address comes from
// the guest.
type RAM struct {
	buf []byte
	// HostBase is the host-physical address of buf[0] (0 in tests).
	HostBase uint64
}

// NewRAM wraps buf as guest RAM.
func NewRAM(buf []byte, hostBase uint64) *RAM { return &RAM{buf: buf, HostBase: hostBase} }

// Size is the guest RAM size in bytes.
func (r *RAM) Size() uint64 { return uint64(len(r.buf)) }

// Bytes exposes the backing buffer, for loaders that place whole images.
func (r *RAM) Bytes() []byte { return r.buf }

func (r *RAM) check(gpa uint64, n int) error {
	if gpa > uint64(len(r.buf)) || uint64(n) > uint64(len(r.buf))-gpa {
		return fmt.Errorf("guest-physical %#x+%#x is outside the guest's %d MiB of RAM", gpa, n, len(r.buf)>>20)
	}
	return nil
}

// ReadGuest implements vcpu.Memory.
func (r *RAM) ReadGuest(gpa uint64, b []byte) error {
	if err := r.check(gpa, len(b)); err != nil {
		return err
	}
	copy(b, r.buf[gpa:])
	return nil
}

// WriteGuest implements vcpu.Memory.
func (r *RAM) WriteGuest(gpa uint64, b []byte) error {
	if err := r.check(gpa, len(b)); err != nil {
		return err
	}
	copy(r.buf[gpa:], b)
	return nil
}
