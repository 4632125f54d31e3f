package passthrough

import "fmt"

// MSI capability (PCI 3.0, 6.8.1): Message Control at +2, Message Address
// at +4, then either Message Data at +8 (32-bit) or Message Upper Address
// at +8 and Message Data at +0x0C (64-bit); with per-vector masking, Mask
// Bits and Pending Bits follow the data DWORD.
const (
	msiCtlEnable     = 1 << 0
	msiCtl64         = 1 << 7
	msiCtlPerVector  = 1 << 8
	msiOffAddress    = 0x04
	msiOffUpper      = 0x08
	msiLength32      = 0x0A
	msiLength64      = 0x0E
	msiMaskingLength = 0x0A // mask and pending DWORDs, and the data DWORD's padding
)

// MSI-X capability (PCI 3.0, 6.8.2): Message Control at +2, Table
// Offset/BIR at +4, PBA Offset/BIR at +8; table entries of 16 bytes
// (address, upper address, data, vector control), PBA one bit per entry
// in QWORDs.
const (
	msixCapLength      = 12
	msixCtlTableSize   = 0x7FF
	msixCtlFuncMask    = 1 << 14
	msixCtlEnable      = 1 << 15
	msixOffTable       = 0x04
	msixOffPBA         = 0x08
	msixBIRMask        = 7
	msixEntrySize      = 16
	msixMaxEntries     = msixCtlTableSize + 1
	msixVectorMasked   = 1 << 0
	msixEntryAddress   = 0x0
	msixEntryUpper     = 0x4
	msixEntryData      = 0x8
	msixEntryVectorCtl = 0xC
)

// Host-side message (Intel SDM Vol. 3A 11.11.1-11.11.2): physical
// destination mode, no redirection hint; fixed delivery, edge.
const msiAddressBase = 0xFEE00000

func hostMessage(v HostVector) (addr, data uint32) {
	return msiAddressBase | v.APICID<<12, uint32(v.Vector)
}

func msiLength(ctl uint16) uint16 {
	n := uint16(msiLength32)
	if ctl&msiCtl64 != 0 {
		n = msiLength64
	}
	if ctl&msiCtlPerVector != 0 {
		n += msiMaskingLength
	}
	return n
}

// msiState is the guest's MSI capability and the vector behind it.
type msiState struct {
	present  bool
	off      uint16
	is64     bool
	maskable bool
	// offsets of the data, mask and pending DWORDs from the capability
	dataRel, maskRel, pendRel uint16

	enabled        bool
	addrLo, addrHi uint32
	data           uint32 // 16 bits
	masked         bool
	pending        bool // a message arrived while masked
	vec            HostVector
	allocated      bool
}

// msixEntry is one entry of the guest's MSI-X table.
type msixEntry struct {
	addrLo, addrHi, data, vectorCtl uint32
	pending                         bool
	vec                             HostVector
	allocated                       bool
}

type msixState struct {
	present          bool
	off              uint16
	tableBAR, pbaBAR int
	tableOff, pbaOff uint64
	tableRaw, pbaRaw uint32
	hostEntries      int
	entries          []msixEntry // the ones the guest sees
	enabled          bool
	funcMask         bool
}

func (m *msixState) tableLen() uint64 { return uint64(m.hostEntries) * msixEntrySize }
func (m *msixState) pbaLen() uint64   { return (uint64(m.hostEntries) + 63) / 64 * 8 }

func (f *Function) msiAdopt(off uint16, ctl uint16) {
	m := &f.msi
	*m = msiState{present: true, off: off, is64: ctl&msiCtl64 != 0, maskable: ctl&msiCtlPerVector != 0}
	m.dataRel = 0x08
	if m.is64 {
		m.dataRel = 0x0C
	}
	m.maskRel, m.pendRel = m.dataRel+4, m.dataRel+8
}

// msixUsable checks that the table and PBA lie inside memory BARs the
// guest sees; otherwise MSI-X is hidden.
func (f *Function) msixUsable(ptr uint8, ctl uint16) bool {
	entries := uint64(ctl&msixCtlTableSize) + 1
	inside := func(reg uint32, length uint64) bool {
		bir := reg & msixBIRMask
		if bir > 5 {
			return false // BIR 6 and 7 are reserved
		}
		b := &f.bars[bir]
		off := uint64(reg &^ msixBIRMask)
		return b.isMem() && off < b.size && length <= b.size-off
	}
	return inside(f.cfgRead(uint16(ptr)+msixOffTable), entries*msixEntrySize) &&
		inside(f.cfgRead(uint16(ptr)+msixOffPBA), (entries+63)/64*8)
}

func (f *Function) msixAdopt(off uint16, ctl uint16) {
	m := &f.msix
	m.present, m.off = true, off
	m.tableRaw, m.pbaRaw = f.cfgRead(off+msixOffTable), f.cfgRead(off+msixOffPBA)
	m.tableBAR, m.tableOff = int(m.tableRaw&msixBIRMask), uint64(m.tableRaw&^msixBIRMask)
	m.pbaBAR, m.pbaOff = int(m.pbaRaw&msixBIRMask), uint64(m.pbaRaw&^msixBIRMask)
	m.hostEntries = int(ctl&msixCtlTableSize) + 1
}

func (f *Function) hostTableEntry(i int) uint64 {
	return f.bars[f.msix.tableBAR].hostPA + f.msix.tableOff + uint64(i)*msixEntrySize
}

// allocate takes a host vector for handler and checks it can be named in
// an MSI without interrupt remapping.
func (f *Function) allocate(handler func()) (HostVector, error) {
	v, err := f.cfg.Vectors.Allocate(handler)
	if err != nil {
		return v, fmt.Errorf("passthrough: %s: host vector: %w", f.name, err)
	}
	if v.Vector < 0x20 || v.APICID > 0xFF {
		f.cfg.Vectors.Free(v)
		return v, fmt.Errorf("passthrough: %s: host vector %#x on APIC %d cannot be an MSI target (vector below 0x20 or APIC ID above 255)", f.name, v.Vector, v.APICID)
	}
	return v, nil
}

// setupInterrupts takes the host vectors and programs the device's MSI
// and MSI-X with them, disabled and masked; the guest's enables and masks
// are mirrored later. The device's memory decode must be on (the MSI-X
// table is in a BAR).
func (f *Function) setupInterrupts() error {
	if m := &f.msi; m.present {
		v, err := f.allocate(f.msiFired)
		if err != nil {
			return err
		}
		m.vec, m.allocated = v, true
		addr, data := hostMessage(v)
		f.cfgWrite(m.off, 0) // Message Control: disabled, one message
		f.cfgWrite(m.off+msiOffAddress, addr)
		if m.is64 {
			f.cfgWrite(m.off+msiOffUpper, 0)
		}
		f.cfgWrite(m.off+m.dataRel, data)
		if m.maskable {
			f.cfgWrite(m.off+m.maskRel, 0)
		}
	}
	if m := &f.msix; m.present {
		m.entries = make([]msixEntry, min(m.hostEntries, f.cfg.MaxMSIXVectors))
		f.cfgWrite(m.off, msixCtlFuncMask<<16)
		for i := range m.entries {
			e := &m.entries[i]
			e.vectorCtl = msixVectorMasked // reset state (PCI 3.0, 6.8.2.9)
			v, err := f.allocate(func() { f.msixFired(i) })
			if err != nil {
				f.freeVectors()
				return err
			}
			e.vec, e.allocated = v, true
			addr, data := hostMessage(v)
			t := f.hostTableEntry(i)
			f.cfg.HostMMIO.Write32(t+msixEntryVectorCtl, msixVectorMasked)
			f.cfg.HostMMIO.Write32(t+msixEntryAddress, addr)
			f.cfg.HostMMIO.Write32(t+msixEntryUpper, 0)
			f.cfg.HostMMIO.Write32(t+msixEntryData, data)
		}
		// Entries the guest does not see stay masked for good.
		for i := len(m.entries); i < m.hostEntries; i++ {
			f.cfg.HostMMIO.Write32(f.hostTableEntry(i)+msixEntryVectorCtl, msixVectorMasked)
		}
	}
	return nil
}

func (f *Function) freeVectors() {
	if f.msi.allocated {
		f.cfg.Vectors.Free(f.msi.vec)
		f.msi.allocated = false
	}
	for i := range f.msix.entries {
		if e := &f.msix.entries[i]; e.allocated {
			f.cfg.Vectors.Free(e.vec)
			e.allocated = false
		}
	}
}

// deliver sends a guest message; the caller holds the lock.
func (f *Function) deliver(addrLo, addrHi, data uint32) {
	if f.cfg.MSI.DeliverMSI(uint64(addrHi)<<32|uint64(addrLo), data) {
		f.count.Delivered++
	} else {
		f.count.Refused++
	}
}

// merge applies the bytes of val selected by be to old, within writable.
func merge(old, val, be, writable uint32) uint32 {
	w := be & writable
	return old&^w | val&w
}

// MSI

func (f *Function) msiControl() uint16 {
	m := &f.msi
	var ctl uint16
	if m.enabled {
		ctl |= msiCtlEnable
	}
	if m.is64 {
		ctl |= msiCtl64
	}
	if m.maskable {
		ctl |= msiCtlPerVector
	}
	return ctl // Multiple Message Capable/Enable 0: one vector
}

func (f *Function) msiRead(c *capability, rel uint16) uint32 {
	m := &f.msi
	switch {
	case rel == 0:
		return c.header() | uint32(f.msiControl())<<16
	case rel == msiOffAddress:
		return m.addrLo
	case rel == msiOffUpper && m.is64:
		return m.addrHi
	case rel == m.dataRel:
		return m.data
	case rel == m.maskRel && m.maskable:
		if m.masked {
			return 1
		}
		return 0
	case rel == m.pendRel && m.maskable:
		p := f.cfgRead(m.off+m.pendRel) & 1
		if m.pending {
			p = 1
		}
		return p
	}
	return 0
}

func (f *Function) msiWrite(rel uint16, val, be uint32) {
	m := &f.msi
	switch {
	case rel == 0:
		en := merge(0, val, be, msiCtlEnable<<16) != 0
		if en != m.enabled {
			m.enabled = en
			var ctl uint32
			if en {
				ctl = msiCtlEnable
			}
			f.cfgWrite(m.off, ctl<<16)
		}
	case rel == msiOffAddress:
		m.addrLo = merge(m.addrLo, val, be, 0xFFFFFFFC)
	case rel == msiOffUpper && m.is64:
		m.addrHi = merge(m.addrHi, val, be, 0xFFFFFFFF)
	case rel == m.dataRel:
		m.data = merge(m.data, val, be, 0xFFFF)
	case rel == m.maskRel && m.maskable:
		masked := merge(0, val, be, 1) != 0
		if masked != m.masked {
			m.masked = masked
			var bit uint32
			if masked {
				bit = 1
			}
			f.cfgWrite(m.off+m.maskRel, bit)
		}
	default:
		return
	}
	if m.pending && m.enabled && !m.masked {
		m.pending = false
		f.deliver(m.addrLo, m.addrHi, m.data)
	}
}

// msiFired handles the device's MSI on its host vector.
func (f *Function) msiFired() {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &f.msi
	switch {
	case f.stopped:
	case !m.enabled:
		f.count.Dropped++
	case m.masked:
		m.pending = true
		f.count.Pending++
	default:
		f.deliver(m.addrLo, m.addrHi, m.data)
	}
}

// MSI-X

func (f *Function) msixRead(c *capability, rel uint16) uint32 {
	m := &f.msix
	switch rel {
	case 0:
		ctl := uint32(len(m.entries) - 1)
		if m.funcMask {
			ctl |= msixCtlFuncMask
		}
		if m.enabled {
			ctl |= msixCtlEnable
		}
		return c.header() | ctl<<16
	case msixOffTable:
		return m.tableRaw
	case msixOffPBA:
		return m.pbaRaw
	}
	return 0
}

func (f *Function) msixWrite(rel uint16, val, be uint32) {
	m := &f.msix
	if rel != 0 {
		return // table and PBA locations are read-only
	}
	ctl := merge(f.msixHostControl()<<16, val, be, (msixCtlEnable|msixCtlFuncMask)<<16) >> 16
	en, fm := ctl&msixCtlEnable != 0, ctl&msixCtlFuncMask != 0
	if en == m.enabled && fm == m.funcMask {
		return
	}
	m.enabled, m.funcMask = en, fm
	f.cfgWrite(m.off, f.msixHostControl()<<16)
	for i := range m.entries {
		f.msixFlush(i)
	}
}

func (f *Function) msixHostControl() uint32 {
	var ctl uint32
	if f.msix.enabled {
		ctl |= msixCtlEnable
	}
	if f.msix.funcMask {
		ctl |= msixCtlFuncMask
	}
	return ctl
}

// msixFlush delivers entry i's held message if the guest now takes it.
func (f *Function) msixFlush(i int) {
	m := &f.msix
	e := &m.entries[i]
	if e.pending && m.enabled && !m.funcMask && e.vectorCtl&msixVectorMasked == 0 {
		e.pending = false
		f.deliver(e.addrLo, e.addrHi, e.data)
	}
}

// msixFired handles the device's MSI-X message for entry i.
func (f *Function) msixFired(i int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &f.msix
	switch {
	case f.stopped:
	case !m.enabled:
		f.count.Dropped++
	case m.funcMask || m.entries[i].vectorCtl&msixVectorMasked != 0:
		m.entries[i].pending = true
		f.count.Pending++
	default:
		e := &m.entries[i]
		f.deliver(e.addrLo, e.addrHi, e.data)
	}
}

func (f *Function) tableDword(t uint64) uint32 {
	i := t / msixEntrySize
	if i >= uint64(len(f.msix.entries)) {
		return 0
	}
	e := &f.msix.entries[i]
	switch t % msixEntrySize {
	case msixEntryAddress:
		return e.addrLo
	case msixEntryUpper:
		return e.addrHi
	case msixEntryData:
		return e.data
	}
	return e.vectorCtl
}

// tableRead reads the emulated table at offset t (aligned to size).
func (f *Function) tableRead(t uint64, size uint8) uint64 {
	if size == 8 {
		return uint64(f.tableDword(t)) | uint64(f.tableDword(t+4))<<32
	}
	return uint64(f.tableDword(t&^3)>>(8*(t&3))) & uint64(sizeMask(size))
}

func (f *Function) tableWrite(t uint64, size uint8, v uint64) {
	if size == 8 {
		f.tableWriteDword(t, uint32(v), ^uint32(0))
		f.tableWriteDword(t+4, uint32(v>>32), ^uint32(0))
		return
	}
	shift := 8 * uint32(t&3)
	f.tableWriteDword(t&^3, uint32(v)<<shift, sizeMask(size)<<shift)
}

func (f *Function) tableWriteDword(t uint64, val, be uint32) {
	i := t / msixEntrySize
	if i >= uint64(len(f.msix.entries)) {
		return // past the table the guest sees: never reaches the device
	}
	e := &f.msix.entries[i]
	switch t % msixEntrySize {
	case msixEntryAddress:
		e.addrLo = merge(e.addrLo, val, be, 0xFFFFFFFC)
	case msixEntryUpper:
		e.addrHi = merge(e.addrHi, val, be, 0xFFFFFFFF)
	case msixEntryData:
		e.data = merge(e.data, val, be, 0xFFFFFFFF)
	default:
		ctl := merge(e.vectorCtl, val, be, msixVectorMasked)
		if ctl != e.vectorCtl {
			e.vectorCtl = ctl
			f.cfg.HostMMIO.Write32(f.hostTableEntry(int(i))+msixEntryVectorCtl, ctl)
			f.msixFlush(int(i))
		}
	}
}

// pbaRead reads the PBA at offset p: the device's pending bits for the
// entries the guest sees, plus the messages held while the guest masked.
func (f *Function) pbaRead(p uint64, size uint8) uint64 {
	m := &f.msix
	v := f.hostRead(f.bars[m.pbaBAR].hostPA+m.pbaOff+p, size)
	var keep, held uint64
	for b := uint64(0); b < 8*uint64(size); b++ {
		if e := 8*p + b; e < uint64(len(m.entries)) {
			keep |= 1 << b
			if m.entries[e].pending {
				held |= 1 << b
			}
		}
	}
	return v&keep | held
}
