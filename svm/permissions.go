package svm

import "fmt"

// IOPM is the I/O permission map (AMD APM Vol. 2, 15.10.1): one bit per
// port, set = intercept; 12 KiB so that a multi-byte access at port 0xFFFF
// finds its bits. It must be physically contiguous and 4 KiB aligned.
type IOPM [3 * 4096]byte

// InterceptAll makes every port access exit, the safe default: a port
// opened to a guest is a decision.
func (m *IOPM) InterceptAll() {
	for i := range m {
		m[i] = 0xff
	}
}

// Allow lets the guest reach ports [first, first+count) directly.
func (m *IOPM) Allow(first uint16, count int) {
	for p := int(first); p < int(first)+count && p <= 0xffff; p++ {
		m[p/8] &^= 1 << (p % 8)
	}
}

// Intercepted reports whether an access to port exits.
func (m *IOPM) Intercepted(port uint16) bool { return m[port/8]&(1<<(port%8)) != 0 }

// MSRPM is the MSR permission map (AMD APM Vol. 2, 15.11): two bits per MSR
// (read, then write) for three ranges of 8K MSRs, each range 2 KiB; MSRs
// outside the ranges always exit. 8 KiB, 4 KiB aligned.
type MSRPM [2 * 4096]byte

var msrpmRanges = [...]struct{ first, offset uint32 }{
	{0x00000000, 0x000},
	{0xC0000000, 0x800},
	{0xC0010000, 0x1000},
}

func msrpmBit(msr uint32) (byteIndex int, bit uint, ok bool) {
	for _, r := range msrpmRanges {
		if msr >= r.first && msr < r.first+0x2000 {
			n := (msr - r.first) * 2
			return int(r.offset + n/8), uint(n % 8), true
		}
	}
	return 0, 0, false
}

// InterceptAll makes every RDMSR and WRMSR exit.
func (m *MSRPM) InterceptAll() {
	for i := range m {
		m[i] = 0xff
	}
}

// Allow lets the guest read and/or write msr directly (an MSR the CPU
// switches on VMRUN/#VMEXIT, or one safe to share). MSRs outside the map's
// ranges can not be passed through.
func (m *MSRPM) Allow(msr uint32, read, write bool) error {
	i, bit, ok := msrpmBit(msr)
	if !ok {
		return fmt.Errorf("svm: MSR %#x is outside the MSR permission map: it always exits", msr)
	}
	if read {
		m[i] &^= 1 << bit
	}
	if write {
		m[i] &^= 1 << (bit + 1)
	}
	return nil
}

// Intercepted reports whether a read or write of msr exits.
func (m *MSRPM) Intercepted(msr uint32, write bool) bool {
	i, bit, ok := msrpmBit(msr)
	if !ok {
		return true
	}
	if write {
		bit++
	}
	return m[i]&(1<<bit) != 0
}
