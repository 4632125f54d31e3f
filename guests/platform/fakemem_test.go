package platform

import "fmt"

// guestRAM is a fake guest memory with the layout's RAM ranges, each one
// byte slice. It serves both vcpu.Memory (what Build writes through) and
// hw.PhysMem (what drivers/acpi reads through), and refuses any access
// that is not wholly inside one RAM range, as the real one does.
type guestRAM struct {
	ranges []Region
	data   [][]byte
}

func newGuestRAM(l *Layout) *guestRAM {
	m := &guestRAM{}
	for _, r := range l.RAM() {
		m.ranges = append(m.ranges, r)
		m.data = append(m.data, make([]byte, r.Size()))
	}
	return m
}

func (m *guestRAM) find(gpa uint64, n int) ([]byte, error) {
	end := gpa + uint64(n)
	for i, r := range m.ranges {
		if gpa >= r.Start && end <= r.End && end >= gpa {
			return m.data[i][gpa-r.Start : end-r.Start], nil
		}
	}
	return nil, fmt.Errorf("guest-physical %#x+%#x is not RAM", gpa, n)
}

func (m *guestRAM) ReadGuest(gpa uint64, b []byte) error {
	s, err := m.find(gpa, len(b))
	if err != nil {
		return err
	}
	copy(b, s)
	return nil
}

func (m *guestRAM) WriteGuest(gpa uint64, b []byte) error {
	s, err := m.find(gpa, len(b))
	if err != nil {
		return err
	}
	copy(s, b)
	return nil
}

func (m *guestRAM) ReadPhys(addr uint64, b []byte) error { return m.ReadGuest(addr, b) }
