// Package config reads the host's VM definitions: one TOML file (TOML
// v1.0, parsed by github.com/pelletier/go-toml/v2) with a [[vm]] table per
// guest naming its vCPUs, memory, kernel, initrd or Multiboot modules,
// command line, console, devices, PCI passthrough, scheduler weight,
// autostart and what to do when it crashes, powers off or reboots.
// docs/vm-config.md is the format's reference.
//
// Parse checks the file against what the host has (Env: the guest image
// files, the RAM left for guests, the vCPU limit) and returns the VMs that
// are valid together with one *Error per problem, each naming the file,
// the line and column of the offending key, the VM and the field. A VM
// with an error is left out and the others are kept, so that one bad
// definition never stops the hypervisor from starting the rest; only a
// file that is not TOML at all yields no VMs.
//
// How: go-toml's unstable parser indexes every key with its position and
// the [[vm]] table it belongs to; unknown keys are reported from that
// index. Each [[vm]] table is then decoded on its own, with the decoder's
// DisallowUnknownFields as a cross-check, from a copy of the file in which
// everything else is blanked (positions unchanged): a wrong type in one
// VM never loses the others. The limits (MaxFileSize, MaxKeys, MaxVMs,
// MaxErrors) keep the work bounded on any input.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"tamavisor/guests/platform"
)

// FileName is the configuration's name when it is given as a boot module
// or built into the image.
const FileName = "vms.toml"

// Limits on a configuration.
const (
	// MaxFileSize bounds the file: a host with MaxVMs guests needs a
	// few tens of KiB.
	MaxFileSize = 256 << 10
	// MaxKeys bounds the keys of a file: the decoder's check for keys
	// given twice takes time quadratic in the keys of a table.
	MaxKeys = 8192
	// MaxVMs bounds the [[vm]] tables of one file.
	MaxVMs = 64
	// MaxErrors bounds the errors Parse returns, so that a file that is
	// wrong throughout does not keep a serial console busy for minutes;
	// one more error says how many were left out.
	MaxErrors = 100
	// MinMemory is the smallest guest RAM accepted: the legacy area,
	// the loader's tables and a small kernel (the project's crash and
	// test kernels run in 16 MiB).
	MinMemory = 16 * platform.MiB
	// MemoryGranule is the unit of guest RAM: the hypervisor allocates
	// it 2 MiB-aligned and maps it with 2 MiB nested pages where it can.
	MemoryGranule = 2 * platform.MiB
	// MaxNameLength bounds a VM's name.
	MaxNameLength = 32
	// MaxFileNameLength bounds a kernel, initrd or module file name.
	MaxFileNameLength = 255
	// DefaultWeight is the scheduler weight of a VM that names none;
	// weights are relative, MinWeight to MaxWeight.
	DefaultWeight = 256
	MinWeight     = 1
	MaxWeight     = 65535
	// DefaultMaxRestarts and MaxMaxRestarts bound how often a VM with
	// on_crash = "restart" is restarted.
	DefaultMaxRestarts = 3
	MaxMaxRestarts     = 1000
)

// Console says where a guest's serial port (COM1) goes.
type Console string

const (
	// ConsoleSerial: the host console shows the guest's output prefixed
	// with its name, and the operator can attach to it to type.
	ConsoleSerial Console = "serial"
	// ConsoleLog: the output is shown, the guest gets no input.
	ConsoleLog Console = "log"
	// ConsoleNone: the output is discarded.
	ConsoleNone Console = "none"
)

// Action is what the hypervisor does when a guest stops.
type Action string

const (
	// ActionStop leaves the VM stopped; its memory goes back to the host.
	ActionStop Action = "stop"
	// ActionRestart starts the VM again from its kernel.
	ActionRestart Action = "restart"
)

// Devices lists the optional device models a guest may be given with the
// devices key, in the order a guest gets them when the key is left out.
// The platform's core (local APICs, I/O APIC, 8259 PICs, PCI host bridge,
// ACPI PM timer) is always there: the ACPI tables describe it and the
// interrupt routing needs it.
var Devices = []string{"uart", "pit", "rtc", "i8042", "debug-exit"}

// Env is what the host has, against which a configuration is checked.
type Env struct {
	// Files reports whether a guest image file of that name (a kernel,
	// initrd or module, embedded in the image or given as a boot module)
	// is available. Nil: file names are not checked.
	Files func(name string) bool
	// HostMemory is the RAM, in bytes, that the host can give to guests.
	// Zero: memory is not checked against the host.
	HostMemory uint64
	// MaxVCPUs is the most vCPUs one guest may have. Zero:
	// platform.MaxVCPUs.
	MaxVCPUs int
	// Devices lists the device names the devices key accepts. Nil:
	// the package's Devices.
	Devices []string
	// PCIFunction reports whether the host has that PCI function and can
	// give it to a guest. Nil: passthrough is checked for syntax and
	// duplicates only.
	PCIFunction func(PCIAddress) bool
}

// Config is a checked configuration.
type Config struct {
	// File is the name the configuration was parsed under.
	File string
	Host Host
	// VMs are the valid VMs, in file order.
	VMs []VM
}

// Host is the [host] table.
type Host struct {
	// ReserveMemory is RAM, in bytes, kept back from the autostart VMs.
	ReserveMemory uint64
}

// VM is one valid [[vm]] table, with every default applied.
type VM struct {
	Name    string
	VCPUs   int
	Memory  uint64 // bytes, a multiple of MemoryGranule
	Kernel  string
	Initrd  string // "" when none
	Cmdline string
	Modules []Module
	Console Console
	Weight  int
	// Autostart VMs start when the hypervisor boots; the others wait for
	// the operator.
	Autostart   bool
	OnCrash     Action
	OnPoweroff  Action
	OnReboot    Action
	MaxRestarts int
	// Devices are the optional device models, from Devices.
	Devices     []string
	Passthrough []PCIAddress
	// Line is where the VM's [[vm]] table starts, for messages.
	Line int
}

// Module is a Multiboot (or PVH) module handed to the kernel.
type Module struct {
	File    string
	Cmdline string
}

// The decoder's targets. Pointers tell a key that is absent from one set
// to its zero value.
type (
	rootFields struct {
		Host *hostFields `toml:"host"`
	}
	hostFields struct {
		ReserveMemory *string `toml:"reserve_memory"`
	}
	vmDocument struct {
		VM []vmFields `toml:"vm"`
	}
	vmFields struct {
		Name        *string        `toml:"name"`
		VCPUs       *int64         `toml:"vcpus"`
		Memory      *string        `toml:"memory"`
		Kernel      *string        `toml:"kernel"`
		Initrd      *string        `toml:"initrd"`
		Cmdline     *string        `toml:"cmdline"`
		Modules     []moduleFields `toml:"modules"`
		Console     *string        `toml:"console"`
		Weight      *int64         `toml:"weight"`
		Autostart   *bool          `toml:"autostart"`
		OnCrash     *string        `toml:"on_crash"`
		MaxRestarts *int64         `toml:"max_restarts"`
		OnPoweroff  *string        `toml:"on_poweroff"`
		OnReboot    *string        `toml:"on_reboot"`
		Devices     *[]string      `toml:"devices"`
		Passthrough []string       `toml:"passthrough"`
	}
	moduleFields struct {
		File    *string `toml:"file"`
		Cmdline *string `toml:"cmdline"`
	}
)

// candidate is one [[vm]] table on its way through the checks.
type candidate struct {
	vm    VM
	index int // 0-based among the [[vm]] tables
	label string
	errs  []*Error
	// nameLine is where its valid name is; 0 when it has none.
	nameLine int
	// pci are its well-formed passthrough addresses, those the host
	// lacks included: a function is taken by the first VM to list it.
	pci []PCIAddress
}

// Parse checks the configuration data read from fileName against env. It
// returns the valid VMs and one error (an *Error) per problem, in file
// order (at most MaxErrors, and one saying how many more there were); the
// Config is never nil. A VM with any error is left out; a file that is not
// TOML yields no VMs.
func Parse(fileName string, data []byte, env Env) (*Config, []error) {
	cfg := &Config{File: fileName}
	p := &parse{file: fileName, env: env, vmErrs: map[int][]*Error{}, undecodable: map[int]bool{}}
	p.run(cfg, data)
	sort.SliceStable(p.errs, func(i, j int) bool {
		a, b := p.errs[i], p.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	var errs []error
	for _, e := range p.errs {
		if len(errs) == MaxErrors {
			errs = append(errs, &Error{File: fileName, Msg: fmt.Sprintf("%d more errors not shown", len(p.errs)-MaxErrors)})
			break
		}
		errs = append(errs, e)
	}
	return cfg, errs
}

// parse holds one Parse call's state.
type parse struct {
	file string
	env  Env
	doc  *document
	errs []*Error
	// vmErrs are the errors found in each VM before its checks.
	vmErrs map[int][]*Error
	// undecodable marks the units with unknown keys inside inline
	// values: they are already in error and are not decoded.
	undecodable map[int]bool
}

func (p *parse) run(cfg *Config, data []byte) {
	if len(data) > MaxFileSize {
		p.errs = append(p.errs, &Error{File: p.file, Msg: fmt.Sprintf("the file is %d bytes, more than the %d a configuration may have", len(data), MaxFileSize)})
		return
	}
	// The whole file first: a file that is not TOML (syntax, a key
	// defined twice, a table redefined) has no VMs to trust.
	doc, err := index(data)
	if err != nil {
		p.errs = append(p.errs, p.parserError(data, err))
		return
	}
	if len(doc.keys) > MaxKeys {
		p.errs = append(p.errs, &Error{File: p.file, Msg: fmt.Sprintf("the file has %d keys, more than the %d a configuration may have", len(doc.keys), MaxKeys)})
		return
	}
	var whole map[string]any
	if err := toml.Unmarshal(data, &whole); err != nil {
		p.errs = append(p.errs, p.tomlError(err))
		return
	}
	p.doc = doc
	for _, s := range doc.shape {
		p.errs = append(p.errs, p.at(s.key, "", 0, s.field, s.msg))
	}
	p.checkUnknown()

	cfg.Host = p.host()
	var cands []*candidate
	for i := range doc.vms {
		if i >= MaxVMs {
			p.errs = append(p.errs, p.at(doc.vmHeader(i), doc.vmLabel(i), i+1, "", fmt.Sprintf("more than %d VMs: this one is left out", MaxVMs)))
			continue
		}
		cands = append(cands, p.vm(i))
	}
	p.crossCheck(cands, cfg.Host)
	for _, c := range cands {
		if len(c.errs) == 0 {
			cfg.VMs = append(cfg.VMs, c.vm)
		}
		p.errs = append(p.errs, c.errs...)
	}
}

// tomlError turns an error of the TOML decoder or parser into an *Error
// at its position.
func (p *parse) tomlError(err error) *Error {
	e := &Error{File: p.file, Msg: err.Error()}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		e.Line, e.Column = de.Position()
		e.Msg = trimTOML(de.Error())
	}
	return e
}

// parserError places an error of go-toml's parser: its highlight is a
// piece of data (unstable.ParserError), whose offset its capacity gives.
func (p *parse) parserError(data []byte, err error) *Error {
	e := &Error{File: p.file, Msg: err.Error()}
	var pe *unstable.ParserError
	if errors.As(err, &pe) {
		if off := cap(data) - cap(pe.Highlight); off >= 0 && off <= len(data) && len(data) > 0 {
			d := document{lines: lineStarts(data)}
			e.Line, e.Column = d.position(off)
		}
	}
	return e
}

// decode decodes one unit's document into target, reporting the
// decoder's errors at the keys they concern. It reports whether the
// decoding succeeded.
func (p *parse) decode(unit int, target any, label string, vmNumber int) bool {
	if p.undecodable[unit] {
		return false
	}
	buf := p.doc.unitDocument(unit)
	err := toml.NewDecoder(bytes.NewReader(buf)).DisallowUnknownFields().Decode(target)
	if err == nil {
		return true
	}
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case errors.As(err, &strict):
		// Unknown keys are found and reported from the index, and left
		// out of the unit's document, before the decoder runs
		// (checkUnknown): this reports what the two disagree on.
		for i := range strict.Errors {
			line, col := strict.Errors[i].Position()
			k := p.doc.keyAt(unit, p.doc.offset(line, col))
			if k != nil && p.doc.reported[k.offset] {
				continue
			}
			field := strings.Join(strict.Errors[i].Key(), ".")
			if unit >= 0 {
				field = strings.TrimPrefix(field, "vm.")
			}
			p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, VM: label, Index: vmNumber, Field: field, Msg: "unknown key"})
		}
		// The decoder fills the target before it reports unknown keys:
		// the known ones are checked even so.
		return true
	case errors.As(err, &de):
		line, col := de.Position()
		off := p.doc.offset(line, col)
		if k := p.doc.valueAt(unit, off); k != nil {
			p.errs = append(p.errs, p.at(k, label, vmNumber, k.field(), typeMessage(k)))
			return false
		}
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: col, VM: label, Index: vmNumber, Msg: trimTOML(de.Error())})
		return false
	}
	p.errs = append(p.errs, &Error{File: p.file, VM: label, Index: vmNumber, Msg: err.Error()})
	return false
}

// at makes an error at key k (a nil k: no position).
func (p *parse) at(k *key, label string, vmNumber int, field, msg string) *Error {
	e := &Error{File: p.file, VM: label, Index: vmNumber, Field: field, Msg: msg}
	if k != nil {
		e.Line, e.Column = k.line, k.column
	}
	return e
}

// host decodes and checks the keys outside the VMs. A bad [host] key is
// reported and its default applies: it does not stop the VMs.
func (p *parse) host() Host {
	var root rootFields
	var h Host
	if !p.decode(unitHost, &root, "", 0) || root.Host == nil {
		return h
	}
	if s := root.Host.ReserveMemory; s != nil {
		k := p.doc.lookup("host.reserve_memory")
		size, err := ParseSize(*s)
		switch {
		case err != nil:
			p.errs = append(p.errs, p.at(k, "", 0, "host.reserve_memory", err.Error()))
		case p.env.HostMemory != 0 && size > p.env.HostMemory:
			p.errs = append(p.errs, p.at(k, "", 0, "host.reserve_memory",
				fmt.Sprintf("%s is more than the %s the host has for guests", FormatSize(size), FormatSize(p.env.HostMemory))))
		default:
			h.ReserveMemory = size
		}
	}
	return h
}
