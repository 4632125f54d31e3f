package emulator

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// openPTY opens a pseudo-terminal pair (Linux devpts, pts(4)): the master,
// and the slave, whose device path Bochs opens as COM1's terminal. The
// slave is held open by the caller until Bochs has ended, so that reads of
// the master never see the hang-up of a slave nobody has opened yet.
func openPTY() (master, slave *os.File, path string, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, "", fmt.Errorf("emulator: opening a pseudo-terminal: %w", err)
	}
	var locked int32 // unlockpt: TIOCSPTLCK with 0
	var n uint32     // ptsname: TIOCGPTN
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&locked)); err != nil {
		master.Close()
		return nil, nil, "", fmt.Errorf("emulator: unlocking the pseudo-terminal: %w", err)
	}
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		master.Close()
		return nil, nil, "", fmt.Errorf("emulator: naming the pseudo-terminal: %w", err)
	}
	path = fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, "", fmt.Errorf("emulator: opening %s: %w", path, err)
	}
	return master, slave, path, nil
}

// ioctl on f's descriptor with a pointer argument, through SyscallConn so
// that the file stays in the runtime's poller (Fd would make it blocking).
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
