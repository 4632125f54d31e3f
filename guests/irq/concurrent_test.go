package irq

import (
	"sync"
	"testing"
	"time"

	"tamavisor/guests/devices/ioapic"
	"tamavisor/guests/devices/lapic"
)

// TestConcurrentDelivery runs two vCPU loops that IPI each other and
// acknowledge and EOI what they get, while a device goroutine toggles a
// level-triggered IOAPIC line whose EOIs re-deliver: no deadlock (the
// lock order IOAPIC -> LAPIC with no lock held on the way back), and with
// -race no data race.
func TestConcurrentDelivery(t *testing.T) {
	g := &lapic.Group{}
	var io *ioapic.IOAPIC
	for id := uint32(0); id < 2; id++ {
		l, err := lapic.New(lapic.Config{ID: id, BSP: id == 0, Clock: &clock{}, IPI: g,
			EOI: func(v uint8) { io.EOI(v) }})
		if err != nil {
			t.Fatal(err)
		}
		enableAPIC(l)
		g.APICs = append(g.APICs, l)
	}
	io = ioapic.New(ioapic.DefaultBase, 0, g)
	io.WriteMMIO(ioapic.DefaultBase, 4, uint64(ioapic.RegRedirFirst+2*9))
	io.WriteMMIO(ioapic.DefaultBase+0x10, 4, 0x39|uint64(ioapic.RedirLevel)|uint64(ioapic.ModeLowestPriority)<<8|uint64(ioapic.RedirLogical))
	io.WriteMMIO(ioapic.DefaultBase, 4, uint64(ioapic.RegRedirFirst+2*9+1))
	io.WriteMMIO(ioapic.DefaultBase+0x10, 4, 0xFF<<24)

	const rounds = 2000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i := range g.APICs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l := g.APICs[i]
			other := uint64(1-i) << 24
			for n := 0; n < rounds; n++ {
				l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegICRHigh), 4, other)
				l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegICRLow), 4, 0x50+uint64(i))
				for k := 0; k < 4; k++ {
					if _, ok := l.AckPending(); ok {
						l.WriteMMIO(lapic.DefaultBase+uint64(lapic.RegEOI), 4, 0)
					}
				}
			}
		}(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; n < rounds; n++ {
			io.SetIRQ(9, n%3 != 2)
		}
	}()
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("deadlock: delivery loops did not finish")
	}
}
