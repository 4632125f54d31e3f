package svm

import (
	"fmt"
	"sync"
)

// ASIDs tags TLB entries per guest (AMD APM Vol. 2, 15.16): ASID 0 is the
// host's, guests get 1..MaxGuestASID. Each vCPU gets its own ASID here, so
// that moving a vCPU between physical CPUs never leaves stale translations
// tagged with an ASID another guest uses; when ASIDs run out, allocation
// fails rather than sharing.
type ASIDs struct {
	mu   sync.Mutex
	used []bool
}

// NewASIDs manages ASIDs 1..max.
func NewASIDs(max uint32) *ASIDs {
	return &ASIDs{used: make([]bool, max+1)}
}

// Get returns a free ASID.
func (a *ASIDs) Get() (uint32, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := 1; i < len(a.used); i++ {
		if !a.used[i] {
			a.used[i] = true
			return uint32(i), nil
		}
	}
	return 0, fmt.Errorf("svm: all %d guest ASIDs are in use", len(a.used)-1)
}

// Put returns an ASID; the caller flushes its TLB entries (TLB_CONTROL)
// before it is used again.
func (a *ASIDs) Put(asid uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if asid == 0 || int(asid) >= len(a.used) || !a.used[asid] {
		panic(fmt.Sprintf("svm: ASID %d returned but not in use", asid))
	}
	a.used[asid] = false
}
