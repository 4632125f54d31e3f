package x86emu

import (
	"errors"
	"testing"

	"tamavisor/guests/vcpu"
)

type pagingEnv struct {
	t   *testing.T
	cpu *fakeCPU
	mem vcpu.Memory
	raw *fakeMem
	pt  *pageTables
	e   Emulator
}

func newPagingEnv(t *testing.T, mode pagingMode) *pagingEnv {
	raw := newFakeMem(ramSize)
	pt := newPageTables(raw, mode, tablesStart)
	cpu := &fakeCPU{rflags: 0x2}
	cpu.cr.CR0 = cr0PE | cr0PG | cr0WP
	cpu.cr.CR3 = pt.root
	switch mode {
	case paging32:
		cpu.cr.CR4 = cr4PSE
	case pagingPAE:
		cpu.cr.CR4 = cr4PAE
		cpu.cr.EFER = eferNXE
	case paging4Level:
		cpu.cr.CR4 = cr4PAE
		cpu.cr.EFER = eferLMA | eferNXE
	case paging5Level:
		cpu.cr.CR4 = cr4PAE | cr4LA57
		cpu.cr.EFER = eferLMA | eferNXE
	}
	return &pagingEnv{t: t, cpu: cpu, mem: raw, raw: raw, pt: pt}
}

func (p *pagingEnv) tr(lin uint64, acc access) (uint64, error) {
	p.e.begin(p.cpu, p.mem)
	defer p.e.end()
	return p.e.translate(lin, acc)
}

// expect checks a successful translation.
func (p *pagingEnv) expect(lin uint64, acc access, want uint64) {
	p.t.Helper()
	got, err := p.tr(lin, acc)
	if err != nil || got != want {
		p.t.Errorf("translate(%#x, %d) = %#x, %v; want %#x", lin, acc, got, err, want)
	}
}

// expectFault checks a #PF with the given error code.
func (p *pagingEnv) expectFault(lin uint64, acc access, code uint32) {
	p.t.Helper()
	got, err := p.tr(lin, acc)
	var pf *PageFault
	if !errors.As(err, &pf) {
		p.t.Errorf("translate(%#x, %d) = %#x, %v; want #PF error code %#x", lin, acc, got, err, code)
		return
	}
	if pf.Linear != lin&p.linMask() || pf.ErrorCode != code {
		p.t.Errorf("translate(%#x, %d): #PF at %#x code %#x; want at %#x code %#x", lin, acc, pf.Linear, pf.ErrorCode, lin, code)
	}
}

func (p *pagingEnv) linMask() uint64 {
	if p.pt.mode == paging32 || p.pt.mode == pagingPAE {
		return 0xffff_ffff
	}
	return ^uint64(0)
}

func TestWalk4Level(t *testing.T) {
	p := newPagingEnv(t, paging4Level)
	const (
		lin4K = 0x7f00_0000_1000
		lin2M = 0x7f00_0020_0000
		lin1G = 0x7f80_0000_0000
	)
	p.pt.mapPage(lin4K, 0x1234_5000, 12, pteP|pteRW|pteUS)
	p.pt.mapPage(lin2M, 0x4000_0000, 21, pteP|pteRW|pteUS|ptePS)
	p.pt.mapPage(lin1G, 0x1_4000_0000, 30, pteP|pteRW|pteUS|ptePS)
	p.expect(lin4K+0x123, accessRead, 0x1234_5123)
	p.expect(lin2M+0x1_2345, accessWrite, 0x4001_2345)
	p.expect(lin1G+0x2345_6789, accessFetch, 0x1_6345_6789)

	// Not present at each level: PML4E, PDPTE, PDE, PTE.
	p.expectFault(0x7e00_0000_0000, accessRead, 0)
	p.expectFault(0x7f40_0000_0000, accessWrite, PFWrite)
	p.expectFault(0x7f00_0040_0000, accessRead, 0)
	p.expectFault(lin4K+pageSize, accessFetch, PFFetch)
	p.cpu.cpl = 3
	p.expectFault(lin4K+pageSize, accessRead, PFUser)
	p.cpu.cpl = 0

	// The canonical hole is #GP, not a walk.
	if _, err := p.tr(0x8000_0000_0000, accessRead); !errors.Is(err, ErrNonCanonical) {
		t.Errorf("non-canonical address: %v", err)
	}
	// Upper-half addresses are canonical.
	p.pt.mapPage(0xffff_8000_0000_0000, 0x5000, 12, pteP)
	p.expect(0xffff_8000_0000_0010, accessRead, 0x5010)
}

func TestWalk4LevelReservedBits(t *testing.T) {
	p := newPagingEnv(t, paging4Level)
	p.e.MaxPhysAddrBits = 36
	const rsvd = PFPresent | PFReserved

	// PS in a PML4E.
	pml4e := p.pt.entryAddr(0x1000_0000_0000, 39)
	p.raw.put64(pml4e, 0x20_0000|pteP|pteRW|ptePS)
	p.expectFault(0x1000_0000_0000, accessRead, rsvd)

	// A frame address at or above MAXPHYADDR.
	p.pt.mapPage(0x2000_0000_0000, 1<<36, 12, pteP|pteRW)
	p.expectFault(0x2000_0000_0000, accessWrite, rsvd|PFWrite)
	// The same bit is fine with a 52-bit MAXPHYADDR.
	p.e.MaxPhysAddrBits = 0
	p.expect(0x2000_0000_0000, accessRead, 1<<36)
	p.e.MaxPhysAddrBits = 36

	// Bits 20:13 of a 2 MiB page and 29:13 of a 1 GiB page.
	p.pt.mapPage(0x3000_0000_0000, 0x4000_0000|1<<13, 21, pteP|ptePS)
	p.expectFault(0x3000_0000_0000, accessRead, rsvd)
	p.pt.mapPage(0x3100_0000_0000, 0x4000_0000|1<<29, 30, pteP|ptePS)
	p.expectFault(0x3100_0000_0000, accessRead, rsvd)
	// Bit 12 of a 2 MiB page is PAT, not reserved.
	p.pt.mapPage(0x3200_0000_0000, 0x4000_0000|1<<12, 21, pteP|ptePS)
	p.expect(0x3200_0000_0000+0x42, accessRead, 0x4000_0042)

	// NX is reserved while EFER.NXE is clear.
	p.pt.mapPage(0x4000_0000_0000, 0x9000, 12, pteP|pteNX)
	p.expect(0x4000_0000_0000, accessRead, 0x9000)
	p.cpu.cr.EFER &^= eferNXE
	p.expectFault(0x4000_0000_0000, accessRead, rsvd)
	// Without NXE a fetch fault does not report I/D (no SMEP either).
	p.expectFault(0x4000_0000_0000, accessFetch, rsvd)
}

func TestWalkAccessRights(t *testing.T) {
	p := newPagingEnv(t, paging4Level)
	const (
		supRO   = 0x1000_0000
		userRW  = 0x1000_1000
		userRO  = 0x1000_2000
		noExec  = 0x1000_3000
		userNX  = 0x1000_4000
		upperRO = 0x2000_0000 // read-only in the PDE, writable in the PTE
	)
	p.pt.mapPage(supRO, 0x10000, 12, pteP)
	p.pt.mapPage(userRW, 0x11000, 12, pteP|pteRW|pteUS)
	p.pt.mapPage(userRO, 0x12000, 12, pteP|pteUS)
	p.pt.mapPage(noExec, 0x13000, 12, pteP|pteRW|pteNX)
	p.pt.mapPage(userNX, 0x14000, 12, pteP|pteUS|pteNX)
	p.pt.mapPage(upperRO, 0x15000, 12, pteP|pteRW|pteUS)
	pde := p.pt.entryAddr(upperRO, 21)
	p.raw.put64(pde, p.raw.get64(pde)&^pteRW)

	// Supervisor.
	p.expect(supRO, accessRead, 0x10000)
	p.expectFault(supRO, accessWrite, PFPresent|PFWrite)
	p.expectFault(upperRO, accessWrite, PFPresent|PFWrite)
	p.expectFault(noExec, accessFetch, PFPresent|PFFetch)
	p.expect(noExec, accessWrite, 0x13000)
	p.cpu.cr.CR0 &^= cr0WP
	p.expect(supRO, accessWrite, 0x10000)
	p.expect(upperRO, accessWrite, 0x15000)
	p.cpu.cr.CR0 |= cr0WP

	// User.
	p.cpu.cpl = 3
	p.expectFault(supRO, accessRead, PFPresent|PFUser)
	p.expect(userRW, accessWrite, 0x11000)
	p.expectFault(userRO, accessWrite, PFPresent|PFUser|PFWrite)
	p.expectFault(upperRO, accessWrite, PFPresent|PFUser|PFWrite)
	p.expectFault(userNX, accessFetch, PFPresent|PFUser|PFFetch)
	p.expect(userRO, accessFetch, 0x12000)
	p.cpu.cpl = 0

	// SMEP: no supervisor fetch from user pages.
	p.expect(userRO, accessFetch, 0x12000)
	p.cpu.cr.CR4 |= cr4SMEP
	p.expectFault(userRO, accessFetch, PFPresent|PFFetch)
	// SMAP: no supervisor data access to user pages unless RFLAGS.AC.
	p.cpu.cr.CR4 |= cr4SMAP
	p.expectFault(userRW, accessRead, PFPresent)
	p.expectFault(userRW, accessWrite, PFPresent|PFWrite)
	p.cpu.rflags |= FlagAC
	p.expect(userRW, accessWrite, 0x11000)
	p.expect(supRO, accessRead, 0x10000)
}

func TestWalkAccessedDirty(t *testing.T) {
	for _, atomic := range []bool{false, true} {
		p := newPagingEnv(t, paging4Level)
		var am *atomicFakeMem
		if atomic {
			am = &atomicFakeMem{fakeMem: p.raw}
			p.mem = am
		}
		const lin = 0x1000_0000
		pte := p.pt.mapPage(lin, 0x20000, 12, pteP|pteRW)
		pde := p.pt.entryAddr(lin, 21)
		pml4e := p.pt.entryAddr(lin, 39)
		p.expect(lin, accessRead, 0x20000)
		for _, e := range []uint64{pml4e, pde, pte} {
			if p.raw.get64(e)&pteA == 0 {
				t.Errorf("atomic=%v: Accessed not set in entry at %#x", atomic, e)
			}
		}
		if p.raw.get64(pte)&pteD != 0 {
			t.Errorf("atomic=%v: a read set Dirty", atomic)
		}
		p.expect(lin, accessWrite, 0x20000)
		if p.raw.get64(pte)&pteD == 0 {
			t.Errorf("atomic=%v: a write did not set Dirty", atomic)
		}
		if p.raw.get64(pde)&pteD != 0 {
			t.Errorf("atomic=%v: a write set Dirty in a non-leaf entry", atomic)
		}
		if got := p.raw.get64(pte) &^ (pteA | pteD); got != 0x20000|pteP|pteRW {
			t.Errorf("atomic=%v: PTE became %#x", atomic, got)
		}
		if atomic && am.cas != 5 {
			t.Errorf("compare-and-swap used %d times, want 5 (4 Accessed, 1 Dirty)", am.cas)
		}
		// A faulting walk sets nothing.
		const ro = 0x1000_1000
		rpte := p.pt.mapPage(ro, 0x21000, 12, pteP)
		p.expectFault(ro, accessWrite, PFPresent|PFWrite)
		if p.raw.get64(rpte)&(pteA|pteD) != 0 {
			t.Errorf("atomic=%v: a faulting walk set Accessed/Dirty", atomic)
		}
	}
}

// racingMem changes a paging entry between the walk's read and its
// Accessed update, once, as another vCPU could.
type racingMem struct {
	*fakeMem
	entry uint64
	reads int
	raced bool
}

func (m *racingMem) ReadGuest(gpa uint64, b []byte) error {
	if gpa == m.entry && !m.raced {
		m.reads++
		if m.reads == 2 { // the re-read before the update
			m.raced = true
			m.put64(gpa, (m.get64(gpa)&^addr52)|0x30000)
		}
	}
	return m.fakeMem.ReadGuest(gpa, b)
}

func TestWalkEntryChangedDuringUpdate(t *testing.T) {
	p := newPagingEnv(t, paging4Level)
	const lin = 0x1000_0000
	pte := p.pt.mapPage(lin, 0x20000, 12, pteP|pteRW)
	p.mem = &racingMem{fakeMem: p.raw, entry: pte}
	// The walk restarts and uses the guest's new frame.
	p.expect(lin, accessRead, 0x30000)
	if got := p.raw.get64(pte); got != 0x30000|pteP|pteRW|pteA {
		t.Errorf("PTE %#x: the guest's change must survive", got)
	}
}

func TestWalkTablesOutsideRAM(t *testing.T) {
	p := newPagingEnv(t, paging4Level)
	p.cpu.cr.CR3 = 0xfee0_0000
	_, err := p.tr(0x1000, accessRead)
	var me *GuestMemoryError
	if !errors.As(err, &me) || me.GPA != 0xfee0_0000 {
		t.Errorf("CR3 outside RAM: %v", err)
	}
}

func TestWalk5Level(t *testing.T) {
	p := newPagingEnv(t, paging5Level)
	const lin = 0x00ff_8000_0000_1000
	p.pt.mapPage(lin, 0x7000, 12, pteP|pteRW)
	p.expect(lin+0x10, accessRead, 0x7010)
	// 48-bit canonical is not enough: bit 56 extends.
	if _, err := p.tr(0x0100_0000_0000_0000, accessRead); !errors.Is(err, ErrNonCanonical) {
		t.Errorf("non-canonical 57-bit address: %v", err)
	}
	// An address only 5-level paging can reach: PML5 index 1.
	p.expectFault(0x0001_0000_0000_0000, accessRead, 0)
}

func TestWalkPAE(t *testing.T) {
	p := newPagingEnv(t, pagingPAE)
	p.pt.mapPage(0xc000_1000, 0x1234_5000, 12, pteP|pteRW)
	p.pt.mapPage(0x8020_0000, 0x4000_0000, 21, pteP|pteRW|ptePS)
	p.expect(0xc000_1234, accessRead, 0x1234_5234)
	p.expect(0x8021_2345, accessWrite, 0x4001_2345)
	// Only 32 bits of linear address exist.
	p.expect(0xdead_0000_c000_1234, accessRead, 0x1234_5234)
	// PDPTE 0 is not present.
	p.expectFault(0x1000, accessRead, 0)

	// Reserved bits of a PDPTE: 2:1 (no R/W, U/S in PAE PDPTEs).
	pdpte := p.pt.entryAddr(0xc000_1000, 30)
	good := p.raw.get64(pdpte)
	p.raw.put64(pdpte, good|pteRW)
	p.expectFault(0xc000_1000, accessRead, PFPresent|PFReserved)
	p.raw.put64(pdpte, good)

	// Bits 62:MAXPHYADDR are reserved in PAE entries.
	p.e.MaxPhysAddrBits = 36
	p.pt.mapPage(0x8040_0000, 1<<40, 21, pteP|ptePS)
	p.expectFault(0x8040_0000, accessRead, PFPresent|PFReserved)
	p.e.MaxPhysAddrBits = 0
	// 4-level paging ignores bits 62:52; PAE reserves them.
	p.pt.mapPage(0x8060_0000, 1<<55|0x4000_0000, 21, pteP|ptePS)
	p.expectFault(0x8060_0000, accessRead, PFPresent|PFReserved)

	// NX: honoured with NXE, reserved without.
	p.pt.mapPage(0xc000_2000, 0x2000, 12, pteP|pteNX)
	p.expectFault(0xc000_2000, accessFetch, PFPresent|PFFetch)
	p.cpu.cr.EFER = 0
	p.expectFault(0xc000_2000, accessRead, PFPresent|PFReserved)
}

func TestWalk32(t *testing.T) {
	p := newPagingEnv(t, paging32)
	p.pt.mapPage(0x1234_5000, 0x6_7000, 12, pteP|pteRW)
	p.expect(0x1234_5678, accessRead, 0x6_7678)
	p.expect(0xffff_ffff_1234_5678, accessRead, 0x6_7678)

	// 4 MiB page with PSE-36 bits: PDE bits 20:13 are physical 39:32.
	pde := p.pt.entryAddr(0x8040_0000, 22)
	p.raw.put32(pde, 0x0080_0000|3<<13|pteP|pteRW|ptePS)
	p.expect(0x8041_2345, accessWrite, 0x3_0081_2345)
	// Above MAXPHYADDR.
	p.e.MaxPhysAddrBits = 33
	p.expectFault(0x8041_2345, accessRead, PFPresent|PFReserved)
	p.e.MaxPhysAddrBits = 0
	// Bit 21 is reserved.
	p.raw.put32(pde, 0x0080_0000|1<<21|pteP|ptePS)
	p.expectFault(0x8041_2345, accessRead, PFPresent|PFReserved)
	// Without CR4.PSE, PS is ignored: the PDE points to a page table
	// (here all zero, so the PTE is not present).
	p.raw.put32(pde, 0x0040_0000|pteP|ptePS)
	p.cpu.cr.CR4 = 0
	p.expectFault(0x8041_2345, accessRead, 0)

	// No NX in 32-bit paging: a fetch fault reports I/D only with SMEP.
	p.expectFault(0x0100_0000, accessFetch, 0)
	p.cpu.cr.CR4 = cr4SMEP
	p.expectFault(0x0100_0000, accessFetch, PFFetch)

	// User access to a supervisor page.
	p.cpu.cr.CR4 = 0
	p.cpu.cpl = 3
	p.expectFault(0x1234_5000, accessRead, PFPresent|PFUser)
}

func TestStepThroughPAEPaging(t *testing.T) {
	// A 32-bit PAE guest storing to the IOAPIC through a non-identity
	// mapping: the code is fetched through the guest's tables, the
	// device access goes to the faulting GPA.
	p := newPagingEnv(t, pagingPAE)
	const codeLin, devLin = 0xc010_0000, 0xffb0_0000
	p.pt.mapPage(codeLin, codePhys, 12, pteP)
	p.pt.mapPage(devLin, ioapicGPA, 12, pteP|pteRW)
	p.cpu.rip = codeLin
	p.cpu.seg[vcpu.CS] = vcpu.Segment{Attributes: 0xc9b}
	p.cpu.gpr[rdi] = devLin + 0x40
	p.cpu.gpr[rax] = 0x1234_5678
	copy(p.raw.ram[codePhys:], []byte{0x89, 0x07})
	dev := newFakeDev()
	n, err := p.e.Step(p.cpu, p.mem, dev, vcpu.NPFExit{GPA: ioapicGPA + 0x40, Write: true})
	if err != nil || n != 2 {
		t.Fatalf("Step: %d, %v", n, err)
	}
	if len(dev.log) != 1 || dev.log[0] != W(ioapicGPA+0x40, 4, 0x1234_5678) {
		t.Errorf("device saw %v", dev.log)
	}
}
