package x86emu

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"tamavisor/guests/vcpu"
)

// fakeCPU is a vcpu.VCPU holding plain state. The embedded interface is
// nil: the emulator may only call the methods defined here, and a call to
// any other one fails the test with a nil dereference.
type fakeCPU struct {
	vcpu.VCPU
	gpr      [vcpu.NumGPRs]uint64
	rip      uint64
	rflags   uint64
	cr       vcpu.ControlRegisters
	seg      [vcpu.NumSegments]vcpu.Segment
	cpl      uint8
	advanced int
}

func (c *fakeCPU) GPR(r vcpu.GPR) uint64                       { return c.gpr[r&15] }
func (c *fakeCPU) SetGPR(r vcpu.GPR, v uint64)                 { c.gpr[r&15] = v }
func (c *fakeCPU) RIP() uint64                                 { return c.rip }
func (c *fakeCPU) SetRIP(v uint64)                             { c.rip = v }
func (c *fakeCPU) RFLAGS() uint64                              { return c.rflags }
func (c *fakeCPU) SetRFLAGS(v uint64)                          { c.rflags = v }
func (c *fakeCPU) Control() vcpu.ControlRegisters              { return c.cr }
func (c *fakeCPU) Segment(s vcpu.SegmentRegister) vcpu.Segment { return c.seg[s%vcpu.NumSegments] }
func (c *fakeCPU) CPL() uint8                                  { return c.cpl }
func (c *fakeCPU) AdvanceRIP(n uint8)                          { c.rip += uint64(n); c.advanced++ }
func (c *fakeCPU) Dump() string                                { return fmt.Sprintf("%+v", *c) }

// fakeMem is guest RAM from guest-physical 0 to len(ram); anything above
// is refused, as the real guest memory refuses what is not RAM.
type fakeMem struct {
	ram    []byte
	reads  int
	writes int
	// With journal set, writes record what they overwrote so that
	// rollback can restore the RAM (fuzz iterations share one RAM).
	journal bool
	undoLog []undoRec
}

type undoRec struct {
	gpa uint64
	old []byte
}

func (m *fakeMem) rollback() {
	for i := len(m.undoLog) - 1; i >= 0; i-- {
		copy(m.ram[m.undoLog[i].gpa:], m.undoLog[i].old)
	}
	m.undoLog = m.undoLog[:0]
}

func newFakeMem(size int) *fakeMem { return &fakeMem{ram: make([]byte, size)} }

func (m *fakeMem) check(gpa uint64, n int) error {
	if gpa >= uint64(len(m.ram)) || uint64(len(m.ram))-gpa < uint64(n) {
		return fmt.Errorf("gpa %#x+%d outside guest RAM", gpa, n)
	}
	return nil
}

func (m *fakeMem) ReadGuest(gpa uint64, b []byte) error {
	if err := m.check(gpa, len(b)); err != nil {
		return err
	}
	m.reads++
	copy(b, m.ram[gpa:])
	return nil
}

func (m *fakeMem) WriteGuest(gpa uint64, b []byte) error {
	if err := m.check(gpa, len(b)); err != nil {
		return err
	}
	m.writes++
	if m.journal {
		m.undoLog = append(m.undoLog, undoRec{gpa, slices.Clone(m.ram[gpa : gpa+uint64(len(b))])})
	}
	copy(m.ram[gpa:], b)
	return nil
}

func (m *fakeMem) put64(gpa, v uint64) { binary.LittleEndian.PutUint64(m.ram[gpa:], v) }
func (m *fakeMem) put32(gpa uint64, v uint32) {
	binary.LittleEndian.PutUint32(m.ram[gpa:], v)
}
func (m *fakeMem) get64(gpa uint64) uint64 { return binary.LittleEndian.Uint64(m.ram[gpa:]) }
func (m *fakeMem) get32(gpa uint64) uint32 { return binary.LittleEndian.Uint32(m.ram[gpa:]) }

// atomicFakeMem adds AtomicMemory to fakeMem and counts its uses.
type atomicFakeMem struct {
	*fakeMem
	cas int
}

func (m *atomicFakeMem) CompareAndSwapGuest(gpa uint64, size uint8, old, new uint64) (bool, error) {
	if err := m.check(gpa, int(size)); err != nil {
		return false, err
	}
	m.cas++
	if size == 4 {
		if uint64(m.get32(gpa)) != old {
			return false, nil
		}
		m.put32(gpa, uint32(new))
		return true, nil
	}
	if m.get64(gpa) != old {
		return false, nil
	}
	m.put64(gpa, new)
	return true, nil
}

// devAccess is one access a fakeDev saw.
type devAccess struct {
	write bool
	gpa   uint64
	size  uint8
	val   uint64
}

func (a devAccess) String() string {
	if a.write {
		return fmt.Sprintf("write %#x/%d = %#x", a.gpa, a.size, a.val)
	}
	return fmt.Sprintf("read %#x/%d", a.gpa, a.size)
}

// fakeDev is a device model recording its accesses. Reads return
// readVal(gpa, size) when set, else regs[gpa] (what was last written).
type fakeDev struct {
	log     []devAccess
	regs    map[uint64]uint64
	readVal func(gpa uint64, size uint8) uint64
	noLog   bool
}

func newFakeDev() *fakeDev { return &fakeDev{regs: map[uint64]uint64{}} }

func (d *fakeDev) ReadMMIO(gpa uint64, size uint8) uint64 {
	var v uint64
	if d.readVal != nil {
		v = d.readVal(gpa, size)
	} else {
		v = d.regs[gpa]
	}
	if !d.noLog {
		d.log = append(d.log, devAccess{false, gpa, size, 0})
	}
	return v
}

func (d *fakeDev) WriteMMIO(gpa uint64, size uint8, v uint64) {
	if !d.noLog {
		d.log = append(d.log, devAccess{true, gpa, size, v})
		d.regs[gpa] = v
	}
}

// pageTables builds a guest's paging structures in fakeMem, allocating
// table pages upward from next.
type pageTables struct {
	mem   *fakeMem
	mode  pagingMode
	root  uint64
	next  uint64
	flags uint64 // flags of the non-leaf entries it creates
}

const (
	rwUser = pteP | pteRW | pteUS
)

func newPageTables(mem *fakeMem, mode pagingMode, at uint64) *pageTables {
	pt := &pageTables{mem: mem, mode: mode, next: at, flags: rwUser}
	pt.root = pt.alloc()
	return pt
}

func (pt *pageTables) alloc() uint64 {
	p := pt.next
	pt.next += pageSize
	clear(pt.mem.ram[p : p+pageSize])
	return p
}

// levels returns the index shifts from the root down.
func (pt *pageTables) levels() []uint {
	switch pt.mode {
	case paging32:
		return []uint{22, 12}
	case pagingPAE:
		return []uint{30, 21, 12}
	case paging4Level:
		return []uint{39, 30, 21, 12}
	}
	return []uint{48, 39, 30, 21, 12}
}

// entryAddr returns the guest-physical address of the entry for lin at the
// level with index shift, creating the tables above it.
func (pt *pageTables) entryAddr(lin uint64, leafShift uint) uint64 {
	table := pt.root
	for _, shift := range pt.levels() {
		var gpa uint64
		switch {
		case pt.mode == paging32:
			gpa = table + (lin>>shift&0x3ff)*4
		case pt.mode == pagingPAE && shift == 30:
			gpa = table + (lin>>30&3)*8
		default:
			gpa = table + (lin>>shift&0x1ff)*8
		}
		if shift == leafShift {
			return gpa
		}
		var ent uint64
		if pt.mode == paging32 {
			ent = uint64(pt.mem.get32(gpa))
		} else {
			ent = pt.mem.get64(gpa)
		}
		if ent&pteP == 0 {
			next := pt.alloc()
			ent = next | pt.flags
			if pt.mode == pagingPAE && shift == 30 {
				ent = next | pteP
			}
			pt.set(gpa, ent)
		}
		if pt.mode == paging32 {
			table = ent & 0xffff_f000
		} else {
			table = ent & addr52
		}
	}
	panic("no such level")
}

func (pt *pageTables) set(gpa, ent uint64) {
	if pt.mode == paging32 {
		pt.mem.put32(gpa, uint32(ent))
	} else {
		pt.mem.put64(gpa, ent)
	}
}

// mapPage maps lin to phys with a leaf at the level of leafShift (12 for
// 4 KiB, 21 for 2 MiB, 22 for 4 MiB, 30 for 1 GiB); flags must include
// pteP and, for large pages, ptePS.
func (pt *pageTables) mapPage(lin, phys uint64, leafShift uint, flags uint64) uint64 {
	gpa := pt.entryAddr(lin, leafShift)
	pt.set(gpa, phys|flags)
	return gpa
}

// Guest layout of the test machines.
const (
	ramSize = 8 << 20

	// 64-bit: the kernel's text and the LAPIC's fixmap slot, as Linux
	// lays them out, and a direct-map window onto RAM.
	codeLin64   = 0xffff_ffff_8100_0000
	codePhys    = 0x20_0000
	apicGPA     = 0xfee0_0000
	apicLin64   = 0xffff_ffff_ff5f_c000
	directMap   = 0xffff_8880_0000_0000
	bufPhys     = 0x30_0000
	ioapicGPA   = 0xfec0_0000
	tablesStart = 0x10_0000
)

type env struct {
	t   testing.TB
	cpu *fakeCPU
	mem *fakeMem
	dev *fakeDev
	pt  *pageTables
	e   Emulator
}

// newEnv64 is a long-mode guest at CPL 0 with 4-level paging: kernel code
// at codeLin64, the LAPIC at apicLin64 and identity-mapped, IOAPIC
// identity-mapped, and RAM [0, 8 MiB) at directMap.
func newEnv64(t testing.TB) *env {
	mem := newFakeMem(ramSize)
	pt := newPageTables(mem, paging4Level, tablesStart)
	for off := uint64(0); off < 0x10_0000; off += pageSize {
		pt.mapPage(codeLin64+off, codePhys+off, 12, pteP|pteRW)
	}
	pt.mapPage(apicLin64, apicGPA, 12, pteP|pteRW)
	pt.mapPage(apicGPA, apicGPA, 12, pteP|pteRW)
	pt.mapPage(apicGPA+pageSize, apicGPA+pageSize, 12, pteP|pteRW)
	pt.mapPage(ioapicGPA, ioapicGPA, 21, pteP|pteRW|ptePS)
	for off := uint64(0); off < ramSize; off += 2 << 20 {
		pt.mapPage(directMap+off, off, 21, pteP|pteRW|ptePS)
	}
	cpu := &fakeCPU{rip: codeLin64, rflags: 0x2}
	cpu.cr = vcpu.ControlRegisters{
		CR0:  cr0PE | cr0PG | cr0WP,
		CR3:  pt.root,
		CR4:  cr4PAE,
		EFER: eferLMA | 1<<8 | eferNXE,
	}
	cpu.seg[vcpu.CS] = vcpu.Segment{Selector: 0x10, Attributes: 0x29b | segAttrL}
	// Bases of the other segments must be ignored in 64-bit mode.
	for _, s := range []vcpu.SegmentRegister{vcpu.DS, vcpu.ES, vcpu.SS} {
		cpu.seg[s] = vcpu.Segment{Selector: 0x18, Base: 0x5000, Attributes: 0x293}
	}
	cpu.seg[vcpu.CS].Base = 0x7000
	return &env{t: t, cpu: cpu, mem: mem, dev: newFakeDev(), pt: pt}
}

// newEnv32 is a flat 32-bit protected-mode guest without paging.
func newEnv32(t testing.TB) *env {
	mem := newFakeMem(ramSize)
	cpu := &fakeCPU{rip: codePhys, rflags: 0x2}
	cpu.cr = vcpu.ControlRegisters{CR0: cr0PE}
	for s := range cpu.seg {
		cpu.seg[s] = vcpu.Segment{Selector: 0x18, Limit: 0xffff_ffff, Attributes: 0xc93}
	}
	cpu.seg[vcpu.CS] = vcpu.Segment{Selector: 0x10, Limit: 0xffff_ffff, Attributes: 0xc9b}
	return &env{t: t, cpu: cpu, mem: mem, dev: newFakeDev()}
}

// newEnv16 is a real-mode guest with CS:IP = 1000:0100.
func newEnv16(t testing.TB) *env {
	mem := newFakeMem(ramSize)
	cpu := &fakeCPU{rip: 0x100, rflags: 0x2}
	for s := range cpu.seg {
		cpu.seg[s] = vcpu.Segment{Limit: 0xffff, Attributes: 0x93}
	}
	cpu.seg[vcpu.CS] = vcpu.Segment{Selector: 0x1000, Base: 0x10000, Limit: 0xffff, Attributes: 0x9b}
	return &env{t: t, cpu: cpu, mem: mem, dev: newFakeDev()}
}

// setSeg loads a real-mode segment register.
func (v *env) setSeg(s vcpu.SegmentRegister, sel uint16) {
	v.cpu.seg[s].Selector = sel
	v.cpu.seg[s].Base = uint64(sel) << 4
}

// codeGPA is where the instruction at RIP lives.
func (v *env) codeGPA() uint64 {
	c := v.cpu
	switch {
	case c.cr.CR0&cr0PG != 0:
		sup := *c
		sup.cpl = 0
		gpa, err := v.e.translateFor(&sup, v.mem, c.rip)
		if err != nil {
			v.t.Fatalf("code not mapped: %v", err)
		}
		return gpa
	case c.cr.CR0&cr0PE == 0:
		return c.seg[vcpu.CS].Base + c.rip&0xffff
	}
	return c.seg[vcpu.CS].Base + c.rip
}

// load writes code at CS:RIP.
func (v *env) load(code []byte) {
	copy(v.mem.ram[v.codeGPA():], code)
}

// step loads code and emulates it against a fault at gpa (a read, or a
// write if write is set).
func (v *env) step(code []byte, gpa uint64, write bool) (int, error) {
	v.load(code)
	return v.e.Step(v.cpu, v.mem, v.dev, vcpu.NPFExit{GPA: gpa, Read: !write, Write: write})
}

// translateFor runs translate for a data read outside Step.
func (e *Emulator) translateFor(cpu vcpu.VCPU, mem vcpu.Memory, lin uint64) (uint64, error) {
	e.begin(cpu, mem)
	defer e.end()
	return e.translate(lin, accessRead)
}
