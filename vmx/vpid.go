package vmx

import (
	"fmt"
	"sync"
)

// VPIDs hands out virtual-processor identifiers (SDM Vol. 3C, 29.1 "Virtual
// Processor Identifiers (VPIDs)"): 16 bits, 0 being the host's. Each vCPU
// gets its own, so that translations cached for one guest are never used
// by another; the engine invalidates a vCPU's VPID on every CPU it moves to
// (INVVPID), which also covers a VPID that a released vCPU used before.
type VPIDs struct {
	mu   sync.Mutex
	used [1 << 16]bool
	next uint32
}

// Get returns a free VPID.
func (a *VPIDs) Get() (uint16, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := uint32(0); i < 0xffff; i++ {
		v := (a.next+i)%0xffff + 1 // 1..0xffff, round robin
		if !a.used[v] {
			a.used[v] = true
			a.next = v
			return uint16(v), nil
		}
	}
	return 0, fmt.Errorf("vmx: all %d VPIDs are in use", 0xffff)
}

// Put gives a VPID back; it returns an error for 0 or a VPID not in use.
func (a *VPIDs) Put(v uint16) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v == 0 || !a.used[v] {
		return fmt.Errorf("vmx: VPID %d returned but not in use", v)
	}
	a.used[v] = false
	return nil
}
