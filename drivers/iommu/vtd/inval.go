package vtd

import "fmt"

// Invalidation of the unit's caches: through the invalidation queue when
// the unit has one (VT-d spec 6.5.2), else through the context command and
// IOTLB registers (6.5.1). With the queue, invalidateContext and
// invalidateIOTLB only queue descriptors and sync submits them with an
// invalidation wait descriptor and waits for its status write; without
// it, each completes on its own and sync does nothing.

// invalidateContext invalidates context-cache entries: all of them
// (granGlobal), or those of source-id sid in domain did (granDevice).
func (u *Unit) invalidateContext(gran int, did, sid uint16) error {
	if u.qiOn {
		return u.queueDescriptor(descCC|uint64(gran)<<descGShift|uint64(did)<<descDIDShift|
			uint64(sid)<<descSIDShift|fmNoMask<<descFMShift, 0)
	}
	cmd := ccmdICC | uint64(gran)<<ccmdCIRGShift | fmNoMask<<ccmdFMShift | uint64(sid)<<ccmdSIDShift | uint64(did)
	u.w64(regCCMD, cmd)
	var v uint64
	for i := 0; i < u.poll; i++ {
		if v = u.r64(regCCMD); v&ccmdICC == 0 {
			if v>>ccmdCAIGShift&ccmdGranMask == 0 {
				return fmt.Errorf("%s: context-cache invalidation %#x not performed (CCMD_REG.CAIG = 0)", u.name, cmd)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: context-cache invalidation %#x: CCMD_REG.ICC still set after %d polls", u.name, cmd, u.poll)
}

// invalidateIOTLB invalidates IOTLB entries: all (granGlobal) or those of
// domain did (granDomain), draining in-flight DMA where the unit can, so
// that no request translated with the old entries is still under way when
// the invalidation completes.
func (u *Unit) invalidateIOTLB(gran int, did uint16) error {
	if u.qiOn {
		lo := descIOTLB | uint64(gran)<<descGShift | uint64(did)<<descDIDShift
		if u.caps.DrainReads {
			lo |= descIOTLBDR
		}
		if u.caps.DrainWrites {
			lo |= descIOTLBDW
		}
		return u.queueDescriptor(lo, 0)
	}
	cmd := iotlbIVT | uint64(gran)<<iotlbIIRGShift | uint64(did)<<iotlbDIDShift
	if u.caps.DrainReads {
		cmd |= iotlbDR
	}
	if u.caps.DrainWrites {
		cmd |= iotlbDW
	}
	reg := u.caps.IOTLBOffset + regIOTLBOffset
	u.w64(reg, cmd)
	var v uint64
	for i := 0; i < u.poll; i++ {
		if v = u.r64(reg); v&iotlbIVT == 0 {
			if v>>iotlbIAIGShift&ccmdGranMask == 0 {
				return fmt.Errorf("%s: IOTLB invalidation %#x not performed (IOTLB_REG.IAIG = 0)", u.name, cmd)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: IOTLB invalidation %#x: IOTLB_REG.IVT still set after %d polls", u.name, cmd, u.poll)
}

// invalidateInterruptEntry invalidates the interrupt entry cache: one
// entry, or all with index < 0 (6.5.2.7). Queue only.
func (u *Unit) invalidateInterruptEntry(index int) error {
	lo := uint64(descIEC)
	if index >= 0 {
		lo |= descIECIndexSel | uint64(index)<<descIECIdxShift
	}
	return u.queueDescriptor(lo, 0)
}

// queueDescriptor writes one descriptor at the tail, leaving room for the
// wait descriptor that sync adds; the tail register moves only in sync.
func (u *Unit) queueDescriptor(lo, hi uint64) error {
	if err := u.queueRoom(2); err != nil {
		return err
	}
	slot := u.queue + u.tail*descSize
	u.mem.Write64(slot, lo)
	u.mem.Write64(slot+8, hi)
	u.flushed(slot, descSize)
	u.tail = (u.tail + 1) % queueEntries
	return nil
}

// queueRoom waits until n descriptors fit between the tail and the head
// (one slot stays empty: head == tail means empty).
func (u *Unit) queueRoom(n uint64) error {
	var head uint64
	for i := 0; i < u.poll; i++ {
		head = u.r64(regIQH) & iqPtrMask / descSize
		if (head+queueEntries-u.tail-1)%queueEntries >= n {
			return nil
		}
	}
	return fmt.Errorf("%s: invalidation queue full: IQH_REG at slot %d, tail at %d after %d polls", u.name, head, u.tail, u.poll)
}

// sync submits the queued descriptors followed by an invalidation wait
// descriptor, and waits until the unit has written its status: the unit
// completes descriptors in order, so all before it are done.
func (u *Unit) sync() error {
	if !u.qiOn {
		return nil
	}
	u.seq++
	if u.seq == 0 {
		u.seq = 1
	}
	if err := u.queueDescriptor(descWait|descWaitSW|uint64(u.seq)<<descWaitData, u.status); err != nil {
		return err
	}
	u.w64(regIQT, u.tail*descSize)
	var fsts uint32
	for i := 0; i < u.poll; i++ {
		if uint32(u.mem.Read64(u.status)) == u.seq {
			return nil
		}
		if fsts = u.r32(regFSTS); fsts&(fstsIQE|fstsITE|fstsICE) != 0 {
			return u.queueError(fsts)
		}
	}
	return fmt.Errorf("%s: invalidation wait not completed after %d polls (IQH_REG %#x, IQT_REG %#x, FSTS_REG %#x)",
		u.name, u.poll, u.r64(regIQH), u.r64(regIQT), fsts)
}

// queueError reports a queue error and makes the queue usable again: the
// unit stopped at the descriptor IQH_REG points at (6.5.2.10); the driver
// drops it and the rest by moving the tail to the head.
func (u *Unit) queueError(fsts uint32) error {
	head := u.r64(regIQH) & iqPtrMask
	slot := u.queue + head
	lo, hi := u.mem.Read64(slot), u.mem.Read64(slot+8)
	u.w64(regIQT, head)
	u.tail = head / descSize
	u.w32(regFSTS, fsts&(fstsIQE|fstsITE|fstsICE))
	switch {
	case fsts&fstsIQE != 0:
		return fmt.Errorf("%s: invalidation queue error: descriptor %#x %#x at IQH_REG %#x rejected (FSTS_REG %#x)", u.name, lo, hi, head, fsts)
	case fsts&fstsITE != 0:
		return fmt.Errorf("%s: invalidation time-out error (FSTS_REG %#x, IQH_REG %#x)", u.name, fsts, head)
	}
	return fmt.Errorf("%s: invalidation completion error (FSTS_REG %#x, IQH_REG %#x)", u.name, fsts, head)
}

// startQueue points the unit at an empty queue and turns it on (6.5.2:
// IQT_REG set to 0 and IQA_REG programmed before GCMD_REG.QIE).
func (u *Unit) startQueue() error {
	u.clearPage(u.queue)
	u.w32(regFSTS, fstsIQE|fstsITE|fstsICE)
	u.w64(regIQT, 0)
	u.w64(regIQA, u.queue|iqaDW128|iqaQS)
	u.tail = 0
	if err := u.setCommand(gQIE, true, "enabling queued invalidation"); err != nil {
		return err
	}
	u.qiOn = true
	return nil
}

// stopQueue waits for the unit to consume what a previous owner queued and
// turns the queue off.
func (u *Unit) stopQueue() error {
	var head, tail uint64
	for i := 0; i < u.poll; i++ {
		head, tail = u.r64(regIQH)&iqPtrMask, u.r64(regIQT)&iqPtrMask
		if head == tail {
			u.qiOn = false
			return u.setCommand(gQIE, false, "disabling queued invalidation")
		}
		if u.r32(regFSTS)&fstsIQE != 0 {
			// Stalled on a descriptor it rejected: drop the rest.
			u.w64(regIQT, head)
			u.w32(regFSTS, fstsIQE)
		}
	}
	return fmt.Errorf("%s: invalidation queue left by firmware not drained (IQH_REG %#x, IQT_REG %#x)", u.name, head, tail)
}
