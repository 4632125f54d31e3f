package amdvi

import "fmt"

// The command buffer is a ring of 16-byte commands (#48882 2.4): software
// writes commands at the tail and moves the Tail Pointer register past
// them; the unit fetches from the head and moves the Head Pointer. The
// ring is full when the tail is one entry behind the head.

// queue writes c at the tail, first handing the queued commands to the
// unit and waiting for room when the ring is full. It does not move the
// Tail Pointer register: sync does, or a later queue that needs room.
func (u *Unit) queue(c command) error {
	next := (u.cmdTail + ringEntry) % ringBytes
	if next == u.cmdHead {
		u.w64(regCmdBufTail, u.cmdTail)
		for i := 0; ; i++ {
			h, err := u.readCmdHead()
			if err != nil {
				return err
			}
			u.cmdHead = h
			if next != h {
				break
			}
			if i >= u.pollLimit {
				return u.stalled(fmt.Sprintf("the command buffer stayed full for %d polls", u.pollLimit))
			}
		}
	}
	e := u.cmdBuf + u.cmdTail
	u.mem.Write64(e, c[0])
	u.mem.Write64(e+8, c[1])
	u.cmdTail = next
	return nil
}

func (u *Unit) readCmdHead() (uint64, error) {
	h := u.r64(regCmdBufHead) & ringPtrMask
	// QEMU (hw/i386/amd_iommu.c, amdvi_cmdbuf_run) writes the register
	// before wrapping the head: past the last slot it reads as the
	// ring's size, meaning offset 0.
	if h == ringBytes {
		h = 0
	}
	if h >= ringBytes {
		return 0, fmt.Errorf("amdvi: %s: command buffer head %#x is beyond the %d-byte buffer", u.name, h, ringBytes)
	}
	return h, nil
}

// sync queues a COMPLETION_WAIT that stores a new sequence number, hands
// everything queued to the unit and polls for the store: when it lands,
// every command before it has completed (#48882 2.4.1).
func (u *Unit) sync() error {
	u.seq++
	if err := u.queue(completionWait(u.completion, u.seq)); err != nil {
		return err
	}
	u.w64(regCmdBufTail, u.cmdTail)
	for i := 0; i < u.pollLimit; i++ {
		if u.mem.Read64(u.completion) == u.seq {
			return nil
		}
		// A unit that stopped fetching (an illegal command, a
		// hardware error) will not store: say so now rather than
		// after the whole wait.
		if i%1024 == 1023 && u.r64(regStatus)&statusCmdBufRun == 0 {
			break
		}
	}
	return u.stalled(fmt.Sprintf("COMPLETION_WAIT %d did not complete", u.seq))
}

// stalled describes a command buffer that is not making progress.
func (u *Unit) stalled(what string) error {
	head := u.r64(regCmdBufHead) & ringPtrMask
	status := u.r64(regStatus)
	why := ""
	if status&statusCmdBufRun == 0 {
		why = "; command processing has stopped (CmdBufRun = 0): see the event log for an ILLEGAL_COMMAND_ERROR or COMMAND_HARDWARE_ERROR"
	}
	return fmt.Errorf("amdvi: %s: %s (polled up to %d times; command buffer head %#x, tail %#x, status %#x)%s",
		u.name, what, u.pollLimit, head, u.cmdTail, status, why)
}
