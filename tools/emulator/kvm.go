package emulator

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Host is what KVM detection reads from the machine; tests give a fake.
type Host interface {
	// OpenReadWrite opens a file read-write and closes it again.
	OpenReadWrite(path string) error
	// ReadFile returns a file's contents.
	ReadFile(path string) ([]byte, error)
}

// HostAt is the host's filesystem under Root ("" or "/" is the real root).
type HostAt struct{ Root string }

func (h HostAt) path(p string) string { return filepath.Join("/", h.Root, p) }

func (h HostAt) OpenReadWrite(path string) error {
	f, err := os.OpenFile(h.path(path), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (h HostAt) ReadFile(path string) ([]byte, error) { return os.ReadFile(h.path(path)) }

const kvmDevice = "/dev/kvm"

// nestedParameters are where the vendor KVM modules say whether a KVM
// guest may itself use VMX or SVM. kvm_intel writes Y/N, kvm_amd 1/0.
var nestedParameters = []string{
	"/sys/module/kvm_intel/parameters/nested",
	"/sys/module/kvm_amd/parameters/nested",
}

// KVMStatus is the outcome of DetectKVM.
type KVMStatus struct {
	// DeviceUsable: /dev/kvm opens read-write.
	DeviceUsable bool
	// Nested: a vendor KVM module has nested virtualization on, so a
	// guest given `-cpu host` sees VMX or SVM.
	Nested bool
	// Reason says in words why KVM can or cannot run tamavisor.
	Reason string
}

// Usable reports whether KVM can run tamavisor with its hardware
// virtualization: without nesting the guest would see no VMX/SVM at all.
func (s KVMStatus) Usable() bool { return s.DeviceUsable && s.Nested }

// DetectKVM checks that /dev/kvm opens read-write and that kvm_intel or
// kvm_amd has nested virtualization enabled.
func DetectKVM(h Host) KVMStatus {
	if err := h.OpenReadWrite(kvmDevice); err != nil {
		return KVMStatus{Reason: fmt.Sprintf("%s cannot be opened read-write (%v)", kvmDevice, describeOpenError(err))}
	}
	var seen []string
	for _, p := range nestedParameters {
		b, err := h.ReadFile(p)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		seen = append(seen, fmt.Sprintf("%s=%s", p, v))
		if v == "Y" || v == "y" || v == "1" {
			return KVMStatus{DeviceUsable: true, Nested: true,
				Reason: fmt.Sprintf("%s is usable and nested virtualization is on (%s)", kvmDevice, p)}
		}
	}
	if len(seen) == 0 {
		return KVMStatus{DeviceUsable: true,
			Reason: fmt.Sprintf("%s opens, but neither kvm_intel nor kvm_amd is loaded, so guests get no VMX/SVM", kvmDevice)}
	}
	return KVMStatus{DeviceUsable: true,
		Reason: fmt.Sprintf("%s opens, but nested virtualization is off (%s)", kvmDevice, strings.Join(seen, ", "))}
}

func describeOpenError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such device"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// ChooseAccel resolves the requested accelerator against the host. A
// forced KVM is refused only where /dev/kvm cannot be opened (QEMU would
// fail); without nesting it runs, with a warning in the reason.
func ChooseAccel(requested Accel, kvm KVMStatus) (Accel, string, error) {
	switch requested {
	case AccelTCG:
		return AccelTCG, "TCG requested: AMD-V (SVM + NPT) emulated by QEMU", nil
	case AccelKVM:
		if !kvm.DeviceUsable {
			return "", "", fmt.Errorf("emulator: KVM requested but %s", kvm.Reason)
		}
		if !kvm.Nested {
			return AccelKVM, "KVM requested; warning: " + kvm.Reason, nil
		}
		return AccelKVM, "KVM requested: " + kvm.Reason, nil
	case AccelAuto, "":
		if kvm.Usable() {
			return AccelKVM, "KVM with -cpu host: " + kvm.Reason, nil
		}
		return AccelTCG, "TCG with AMD-V (SVM + NPT) emulation, not KVM: " + kvm.Reason, nil
	}
	return "", "", fmt.Errorf("emulator: unknown accelerator %q", requested)
}
