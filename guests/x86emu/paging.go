package x86emu

import (
	"encoding/binary"
	"errors"
	"fmt"

	"tamavisor/guests/vcpu"
)

// pagingMode is the guest's linear-to-physical translation (Intel SDM
// Vol. 3A, 4.1.1, Table 4-1; AMD APM Vol. 2, 5.1).
type pagingMode uint8

const (
	pagingNone   pagingMode = iota // CR0.PG = 0: linear = physical
	paging32                       // 2 levels of 4-byte entries, 4 MiB pages with CR4.PSE
	pagingPAE                      // 4 PDPTEs, then 2 levels of 8-byte entries
	paging4Level                   // IA-32e / long mode, 48-bit linear
	paging5Level                   // CR4.LA57, 57-bit linear
)

func pagingModeOf(cr vcpu.ControlRegisters) pagingMode {
	switch {
	case cr.CR0&cr0PG == 0:
		return pagingNone
	case cr.EFER&eferLMA != 0 && cr.CR4&cr4LA57 != 0:
		return paging5Level
	case cr.EFER&eferLMA != 0:
		return paging4Level
	case cr.CR4&cr4PAE != 0:
		return pagingPAE
	}
	return paging32
}

type access uint8

const (
	accessRead access = iota
	accessWrite
	accessFetch
)

const (
	pageSize = 4096
	pageMask = pageSize - 1
)

// Paging-entry bits (Intel SDM Vol. 3A, 4.3, 4.4.2 and 4.5.4; AMD APM
// Vol. 2, 5.4.1).
const (
	pteP  = 1 << 0
	pteRW = 1 << 1
	pteUS = 1 << 2
	pteA  = 1 << 5
	pteD  = 1 << 6
	ptePS = 1 << 7
	pteNX = 1 << 63

	// addr52 is the address field of 8-byte entries, bits 51:12.
	addr52 = 0x000f_ffff_ffff_f000
)

// maxWalkRetries bounds how often a walk restarts because the guest changed
// an entry while the walker was setting its Accessed or Dirty bit.
const maxWalkRetries = 4

// errEntryChanged asks translate to walk again.
var errEntryChanged = errors.New("paging entry changed during the walk")

// bitRange returns a mask of bits hi..lo inclusive; empty when hi < lo.
func bitRange(hi, lo uint) uint64 {
	if hi < lo {
		return 0
	}
	return (^uint64(0) >> (63 - hi)) &^ (1<<lo - 1)
}

// walkEntry is one paging-structure entry the walk read, kept to set its
// Accessed and Dirty bits once the whole walk has succeeded.
type walkEntry struct {
	gpa   uint64
	val   uint64
	size  uint8
	noAcc bool // PAE PDPTE: bit 5 is reserved, not Accessed
}

// translate maps a guest linear address to a guest-physical one for acc
// through the guest's paging, checking presence, reserved bits and access
// rights as the CPU does. Guest-generated faults are *PageFault.
func (e *Emulator) translate(lin uint64, acc access) (uint64, error) {
	m := &e.m
	switch m.paging {
	case pagingNone:
		return lin, nil
	case paging4Level:
		if !canonical(lin, 48) {
			return 0, nonCanonical(lin)
		}
	case paging5Level:
		if !canonical(lin, 57) {
			return 0, nonCanonical(lin)
		}
	default:
		lin &= 0xffffffff
	}
	for range maxWalkRetries {
		gpa, err := e.walk(lin, acc)
		if err != errEntryChanged {
			return gpa, err
		}
	}
	return 0, &GuestMemoryError{GPA: 0, What: "paging entry", Err: errEntryChanged}
}

func canonical(lin uint64, width uint) bool {
	top := int64(lin) >> (width - 1)
	return top == 0 || top == -1
}

func nonCanonical(lin uint64) error {
	return &addressError{lin}
}

type addressError struct{ lin uint64 }

func (a *addressError) Error() string {
	return fmt.Sprintf("x86emu: %v %#x", ErrNonCanonical, a.lin)
}

func (a *addressError) Is(target error) bool { return target == ErrNonCanonical }

// walk performs one page walk (Intel SDM Vol. 3A, 4.3-4.6; AMD APM Vol. 2,
// 5.3-5.6).
func (e *Emulator) walk(lin uint64, acc access) (uint64, error) {
	m := &e.m
	cr := &m.cr
	nxe := cr.EFER&eferNXE != 0 && m.paging != paging32
	user := m.cpl == 3

	var (
		ents  [5]walkEntry
		n     int
		table uint64 // guest-physical base of the table being indexed
		shift uint   // lowest linear-address bit indexing it
		size  uint8  // entry size in bytes
		// Reserved bits common to every entry of the mode: address bits
		// at and above MAXPHYADDR, and NX when EFER.NXE is clear.
		rsvd uint64
	)
	switch m.paging {
	case paging32:
		table, shift, size = cr.CR3&0xffff_f000, 22, 4
	case pagingPAE:
		// CR3[31:5] locates the four PDPTEs (Intel SDM Vol. 3A, 4.4.1).
		table, shift, size = cr.CR3&0xffff_ffe0, 30, 8
		rsvd = bitRange(62, uint(m.maxPhys))
	case paging4Level:
		table, shift, size = cr.CR3&addr52&^bitRange(51, uint(m.maxPhys)), 39, 8
		rsvd = bitRange(51, uint(m.maxPhys))
	case paging5Level:
		table, shift, size = cr.CR3&addr52&^bitRange(51, uint(m.maxPhys)), 48, 8
		rsvd = bitRange(51, uint(m.maxPhys))
	}
	if size == 8 && !nxe {
		rsvd |= pteNX
	}

	// Rights accumulate over the levels: writable and user-accessible only
	// if every entry says so, executable unless any entry sets NX.
	writable, userOK, noExec := true, true, false
	var phys uint64
	code := uint32(0)
	if acc == accessWrite {
		code |= PFWrite
	}
	if user {
		code |= PFUser
	}
	if acc == accessFetch && (cr.CR4&cr4SMEP != 0 || nxe) {
		code |= PFFetch
	}

	for {
		var idx uint64
		if m.paging == paging32 {
			idx = lin >> shift & 0x3ff
		} else {
			idx = lin >> shift & 0x1ff
		}
		gpa := table + idx*uint64(size)
		buf := e.walkBuf[:size]
		if err := m.mem.ReadGuest(gpa, buf); err != nil {
			return 0, &GuestMemoryError{GPA: gpa, What: "paging entry", Err: err}
		}
		var ent uint64
		if size == 4 {
			ent = uint64(binary.LittleEndian.Uint32(buf))
		} else {
			ent = binary.LittleEndian.Uint64(buf)
		}
		ents[n] = walkEntry{gpa: gpa, val: ent, size: size}
		n++
		if ent&pteP == 0 {
			return 0, &PageFault{Linear: lin, ErrorCode: code}
		}

		entRsvd := rsvd
		leaf, large := shift == 12, false
		isPDPTE := m.paging == pagingPAE && shift == 30
		switch {
		case isPDPTE:
			// PAE PDPTEs carry no rights; bits 2:1 and 8:5 are reserved
			// (Intel SDM Vol. 3A, Table 4-8).
			entRsvd |= bitRange(2, 1) | bitRange(8, 5) | pteNX
			ents[n-1].noAcc = true
		case m.paging == paging32:
			if shift == 22 && ent&ptePS != 0 && cr.CR4&cr4PSE != 0 {
				// 4 MiB page: bits 20:13 hold physical bits 39:32
				// (PSE-36), bit 21 is reserved (Table 4-4).
				leaf, large = true, true
				lo := uint(13)
				if m.maxPhys > 32 {
					lo += uint(min(m.maxPhys, 40) - 32)
				}
				entRsvd = 1<<21 | bitRange(20, lo)
			}
		case shift == 39 || shift == 48:
			// PML4E, PML5E: PS is reserved (Intel SDM Vol. 3A,
			// Table 4-15; AMD APM Vol. 2, 5.3.3 "MBZ").
			entRsvd |= ptePS
		case shift == 30 && ent&ptePS != 0:
			leaf, large = true, true // 1 GiB page
			entRsvd |= bitRange(29, 13)
		case shift == 21 && ent&ptePS != 0:
			leaf, large = true, true // 2 MiB page
			entRsvd |= bitRange(20, 13)
		}
		if ent&entRsvd != 0 {
			return 0, &PageFault{Linear: lin, ErrorCode: code | PFPresent | PFReserved}
		}
		if !isPDPTE {
			writable = writable && ent&pteRW != 0
			userOK = userOK && ent&pteUS != 0
			noExec = noExec || (nxe && ent&pteNX != 0)
		}

		if leaf {
			switch {
			case m.paging == paging32 && large:
				phys = ent&0xffc0_0000 | (ent>>13&0xff)<<32 | lin&0x3f_ffff
			case m.paging == paging32:
				phys = ent&0xffff_f000 | lin&pageMask
			default:
				off := uint64(1)<<shift - 1
				phys = ent&addr52&^off | lin&off
			}
			break
		}
		if m.paging == paging32 {
			table = ent & 0xffff_f000
			shift -= 10
		} else {
			table = ent & addr52
			shift -= 9
		}
	}

	// Access rights (Intel SDM Vol. 3A, 4.6.1; AMD APM Vol. 2, 5.6).
	violation := false
	switch acc {
	case accessRead:
		if user {
			violation = !userOK
		} else {
			violation = userOK && cr.CR4&cr4SMAP != 0 && m.rflags&FlagAC == 0
		}
	case accessWrite:
		if user {
			violation = !userOK || !writable
		} else {
			violation = (!writable && cr.CR0&cr0WP != 0) ||
				(userOK && cr.CR4&cr4SMAP != 0 && m.rflags&FlagAC == 0)
		}
	case accessFetch:
		if user {
			violation = !userOK || noExec
		} else {
			violation = noExec || (userOK && cr.CR4&cr4SMEP != 0)
		}
	}
	if violation {
		return 0, &PageFault{Linear: lin, ErrorCode: code | PFPresent}
	}

	if err := e.setAccessedDirty(ents[:n], acc == accessWrite); err != nil {
		return 0, err
	}
	return phys, nil
}

// setAccessedDirty sets the Accessed bit of every entry of a successful
// walk and the Dirty bit of the leaf for a write (Intel SDM Vol. 3A, 4.8),
// writing only entries that lack them: the hardware's own walk for the
// faulting access has usually set them already.
func (e *Emulator) setAccessedDirty(ents []walkEntry, write bool) error {
	for i := range ents {
		en := &ents[i]
		if en.noAcc {
			continue
		}
		want := en.val | pteA
		if write && i == len(ents)-1 {
			want |= pteD
		}
		if want == en.val {
			continue
		}
		if am, ok := e.m.mem.(AtomicMemory); ok {
			swapped, err := am.CompareAndSwapGuest(en.gpa, en.size, en.val, want)
			if err != nil {
				return &GuestMemoryError{GPA: en.gpa, What: "paging entry", Err: err}
			}
			if !swapped {
				return errEntryChanged
			}
			continue
		}
		buf := e.walkBuf[:en.size]
		if err := e.m.mem.ReadGuest(en.gpa, buf); err != nil {
			return &GuestMemoryError{GPA: en.gpa, What: "paging entry", Err: err}
		}
		var now uint64
		if en.size == 4 {
			now = uint64(binary.LittleEndian.Uint32(buf))
		} else {
			now = binary.LittleEndian.Uint64(buf)
		}
		if now != en.val {
			return errEntryChanged
		}
		// A and D live in the low byte; writing only it leaves the
		// guest's concurrent changes to the address and NX intact.
		e.walkBuf[0] = byte(want)
		if err := e.m.mem.WriteGuest(en.gpa, e.walkBuf[:1]); err != nil {
			return &GuestMemoryError{GPA: en.gpa, What: "paging entry", Err: err}
		}
	}
	return nil
}
