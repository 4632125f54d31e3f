package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"tamavisor/guests/loader"
	"tamavisor/guests/platform"
)

// vm decodes and checks [[vm]] table i on its own.
func (p *parse) vm(i int) *candidate {
	c := &candidate{index: i, label: p.doc.vmLabel(i), errs: p.vmErrs[i]}
	header := p.doc.vmHeader(i)
	c.vm.Line = header.line
	before := len(p.errs)
	var doc vmDocument
	ok := p.decode(i, &doc, c.label, i+1)
	// The decoder's errors belong to this VM.
	c.errs = append(c.errs, p.errs[before:]...)
	p.errs = p.errs[:before]
	if !ok || len(doc.VM) != 1 {
		if ok {
			c.fail(p, header, "", "the table did not decode to one VM")
		}
		return c
	}
	f := doc.VM[0]
	v := &c.vm
	prefix := "vm[" + strconv.Itoa(i) + "]."
	at := func(field string) *key {
		if k := p.doc.lookup(prefix + field); k != nil {
			return k
		}
		return header
	}
	bad := func(field, format string, args ...any) {
		c.fail(p, at(field), field, fmt.Sprintf(format, args...))
	}
	missing := func(field, why string) {
		c.fail(p, header, field, "missing: "+why)
	}

	switch {
	case f.Name == nil:
		missing("name", "every VM needs a name")
	default:
		if err := checkName(*f.Name); err != nil {
			bad("name", "%v", err)
		} else {
			v.Name = *f.Name
			c.nameLine = at("name").line
		}
	}

	maxVCPUs := p.env.MaxVCPUs
	if maxVCPUs <= 0 || maxVCPUs > platform.MaxVCPUs {
		maxVCPUs = platform.MaxVCPUs
	}
	v.VCPUs = 1
	if f.VCPUs != nil {
		if n := *f.VCPUs; n < 1 || n > int64(maxVCPUs) {
			bad("vcpus", "%d vCPUs: a VM has 1 to %d", n, maxVCPUs)
		} else {
			v.VCPUs = int(n)
		}
	}

	if f.Memory == nil {
		missing("memory", "every VM needs its RAM size, e.g. memory = \"512M\"")
	} else if size, err := ParseSize(*f.Memory); err != nil {
		bad("memory", "%v", err)
	} else {
		switch {
		case size < MinMemory:
			bad("memory", "%s is less than the %s a VM needs at least", FormatSize(size), FormatSize(MinMemory))
		case size > platform.MaxRAMSize:
			bad("memory", "%s is more than the %s a VM can address", FormatSize(size), FormatSize(platform.MaxRAMSize))
		case size%MemoryGranule != 0:
			bad("memory", "%s is not a multiple of %s", FormatSize(size), FormatSize(MemoryGranule))
		default:
			v.Memory = size
		}
	}

	if f.Kernel == nil {
		missing("kernel", "every VM needs a kernel, e.g. kernel = \"vmlinuz\"")
	} else if p.checkFile(c, at("kernel"), "kernel", *f.Kernel) {
		v.Kernel = *f.Kernel
	}
	if f.Initrd != nil && p.checkFile(c, at("initrd"), "initrd", *f.Initrd) {
		v.Initrd = *f.Initrd
	}
	if f.Cmdline != nil {
		if err := checkCmdline(*f.Cmdline, loader.MaxCmdline); err != nil {
			bad("cmdline", "%v", err)
		} else {
			v.Cmdline = *f.Cmdline
		}
	}

	// The loader hands an initrd to a Multiboot or PVH kernel as its
	// first module.
	maxModules := loader.MaxModules
	if f.Initrd != nil {
		maxModules--
	}
	if len(f.Modules) > maxModules {
		bad("modules", "%d modules: a VM has at most %d (%d with an initrd, which the loader gives as a module too)", len(f.Modules), loader.MaxModules, loader.MaxModules-1)
	}
	for j, m := range f.Modules {
		field := fmt.Sprintf("modules[%d]", j)
		var mod Module
		switch {
		case m.File == nil:
			// A [[vm.modules]] table has a header; an inline table is
			// reported at the modules key.
			k := p.doc.lookup(prefix + field)
			if k == nil {
				k = at("modules")
			}
			c.fail(p, k, field+".file", "missing: a module names its file")
		case p.checkFile(c, at(field+".file"), field+".file", *m.File):
			mod.File = *m.File
		}
		if m.Cmdline != nil {
			if err := checkCmdline(*m.Cmdline, loader.MaxCmdline); err != nil {
				bad(field+".cmdline", "%v", err)
			} else {
				mod.Cmdline = *m.Cmdline
			}
		}
		v.Modules = append(v.Modules, mod)
	}

	v.Console = ConsoleSerial
	if f.Console != nil {
		if s, ok := oneOf(*f.Console, ConsoleSerial, ConsoleLog, ConsoleNone); ok {
			v.Console = s
		} else {
			bad("console", "%q is not a console: use \"serial\", \"log\" or \"none\"", *f.Console)
		}
	}

	v.Weight = DefaultWeight
	if f.Weight != nil {
		if w := *f.Weight; w < MinWeight || w > MaxWeight {
			bad("weight", "%d is not a weight: use %d to %d (%d is the default)", w, MinWeight, MaxWeight, DefaultWeight)
		} else {
			v.Weight = int(w)
		}
	}

	v.Autostart = true
	if f.Autostart != nil {
		v.Autostart = *f.Autostart
	}

	action := func(field string, value *string, def Action) Action {
		if value == nil {
			return def
		}
		a, ok := oneOf(*value, ActionStop, ActionRestart)
		if !ok {
			bad(field, "%q is not an action: use \"stop\" or \"restart\"", *value)
			return def
		}
		return a
	}
	v.OnCrash = action("on_crash", f.OnCrash, ActionStop)
	v.OnPoweroff = action("on_poweroff", f.OnPoweroff, ActionStop)
	v.OnReboot = action("on_reboot", f.OnReboot, ActionRestart)
	v.MaxRestarts = DefaultMaxRestarts
	if f.MaxRestarts != nil {
		if n := *f.MaxRestarts; n < 0 || n > MaxMaxRestarts {
			bad("max_restarts", "%d is out of range: use 0 to %d", n, MaxMaxRestarts)
		} else {
			v.MaxRestarts = int(n)
		}
	}

	known := p.env.Devices
	if known == nil {
		known = Devices
	}
	if f.Devices == nil {
		v.Devices = append([]string(nil), known...)
	} else {
		v.Devices = []string{}
		for _, d := range *f.Devices {
			switch {
			case !slices.Contains(known, d):
				bad("devices", "%q is not a device: the devices are %s", d, strings.Join(known, ", "))
			case slices.Contains(v.Devices, d):
				bad("devices", "%q is listed twice", d)
			default:
				v.Devices = append(v.Devices, d)
			}
		}
	}

	for _, s := range f.Passthrough {
		a, err := ParsePCIAddress(s)
		switch {
		case err != nil:
			bad("passthrough", "%v", err)
		case slices.Contains(c.pci, a):
			bad("passthrough", "%s is listed twice", a)
		case p.env.PCIFunction != nil && !p.env.PCIFunction(a):
			c.pci = append(c.pci, a)
			bad("passthrough", "the host has no PCI function %s it can give to a guest", a)
		default:
			c.pci = append(c.pci, a)
			v.Passthrough = append(v.Passthrough, a)
		}
	}
	return c
}

// checkFile checks a guest image file name and that the host has it.
func (p *parse) checkFile(c *candidate, k *key, field, name string) bool {
	if err := checkFileName(name); err != nil {
		c.fail(p, k, field, err.Error())
		return false
	}
	if p.env.Files != nil && !p.env.Files(name) {
		c.fail(p, k, field, fmt.Sprintf("no file %q among the guest images (those embedded in the image and the boot modules)", name))
		return false
	}
	return true
}

func (c *candidate) fail(p *parse, k *key, field, msg string) {
	c.errs = append(c.errs, p.at(k, c.label, c.index+1, field, msg))
}

func oneOf[T ~string](s string, values ...T) (T, bool) {
	for _, v := range values {
		if s == string(v) {
			return v, true
		}
	}
	return "", false
}

// crossCheck applies the checks that span VMs, in file order: a name
// is taken by its first VM and a PCI function by the first VM to list it
// (valid or not, so that fixing one VM never breaks another), and the
// autostart VMs' memory adds up within what the host has for guests (a
// VM with other errors takes none; the VM that would go over is the one
// refused).
func (p *parse) crossCheck(cands []*candidate, host Host) {
	names := map[string]int{}
	pci := map[PCIAddress]*candidate{}
	for _, c := range cands {
		prefix := "vm[" + strconv.Itoa(c.index) + "]."
		if c.nameLine > 0 {
			if line, taken := names[c.vm.Name]; taken {
				c.fail(p, p.doc.lookup(prefix+"name"), "name", fmt.Sprintf("%q is already the name of the VM at line %d", c.vm.Name, line))
			} else {
				names[c.vm.Name] = c.nameLine
			}
		}
		for _, a := range c.pci {
			if first, taken := pci[a]; taken {
				c.fail(p, p.doc.lookup(prefix+"passthrough"), "passthrough",
					fmt.Sprintf("%s is already given to the VM at line %d (%s)", a, first.vm.Line, first.describe()))
			} else {
				pci[a] = c
			}
		}
	}
	if p.env.HostMemory == 0 {
		return
	}
	budget := p.env.HostMemory - host.ReserveMemory
	var used uint64
	var users []string
	for _, c := range cands {
		if len(c.errs) > 0 {
			continue
		}
		k := p.doc.lookup("vm[" + strconv.Itoa(c.index) + "].memory")
		left := budget - used
		if !c.vm.Autostart {
			if c.vm.Memory > budget {
				c.fail(p, k, "memory", fmt.Sprintf("%s is more than the %s the host has for guests%s", FormatSize(c.vm.Memory), FormatSize(budget), reserveNote(host)))
			}
			continue
		}
		if c.vm.Memory > left {
			msg := fmt.Sprintf("%s is more than the %s the host has left for guests", FormatSize(c.vm.Memory), FormatSize(left))
			if used > 0 {
				msg += fmt.Sprintf(" (%s of %s%s taken by the autostart VMs before it: %s)", FormatSize(used), FormatSize(budget), reserveNote(host), strings.Join(users, ", "))
			} else {
				msg += reserveNote(host)
			}
			c.fail(p, k, "memory", msg)
			continue
		}
		used += c.vm.Memory
		users = append(users, c.vm.Name)
	}
}

func reserveNote(h Host) string {
	if h.ReserveMemory == 0 {
		return ""
	}
	return fmt.Sprintf(" after reserve_memory = %q", FormatSize(h.ReserveMemory))
}

// describe names a VM for another VM's message.
func (c *candidate) describe() string {
	if c.label != "" {
		return fmt.Sprintf("%q", c.label)
	}
	return fmt.Sprintf("#%d", c.index+1)
}
