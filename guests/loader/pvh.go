package loader

import (
	"fmt"

	"tamavisor/guests/vcpu"
)

// struct hvm_start_info and the entries it points to (Xen's
// xen/include/public/arch-x86/hvm/start_info.h; docs/misc/pvh.pandoc).
const (
	hvmStartMagic     = 0x336ec578
	hvmStartVersion   = 1 // version 1 adds the memory map
	hvmStartInfoSize  = 56
	hvmOffVersion     = 4
	hvmOffFlags       = 8
	hvmOffNrModules   = 12
	hvmOffModlist     = 16
	hvmOffCmdline     = 24
	hvmOffRSDP        = 32
	hvmOffMemmap      = 40
	hvmOffMemmapCount = 48
	hvmModlistEntry   = 32 // paddr, size, cmdline_paddr, reserved
	hvmMemmapEntry    = 24 // addr, size, type, reserved
)

// LoadPVH loads an ELF image with a XEN_ELFNOTE_PHYS32_ENTRY note by its
// program headers' physical addresses, and builds hvm_start_info (version
// 1: command line, modules with their command lines, the RSDP, the memory
// map). The state is 32-bit protected mode with flat segments and paging
// off, EBX = start info (pvh.pandoc, "Initial state").
func LoadPVH(g Guest, image []byte, opts Options) (*Result, error) {
	file := fileName("PVH", opts.KernelName)
	s, err := newSession(g, file)
	if err != nil {
		return nil, err
	}
	e, err := parseELF(image)
	if err != nil {
		return nil, &Error{File: file, Kind: ErrMalformed, Msg: err.Error()}
	}
	entry, ok, err := e.pvhEntry()
	if err != nil {
		return nil, &Error{File: file, Kind: ErrMalformed, Msg: err.Error()}
	}
	if !ok {
		return nil, &Error{File: file, Kind: ErrUnsupported, Msg: "the ELF has no Xen PHYS32_ENTRY note (type 18): it does not speak PVH"}
	}
	if err := checkString(opts.Cmdline, "the command line", file); err != nil {
		return nil, err
	}
	res := &Result{Format: FormatPVH}
	segs, span, err := s.loadSegments(e, 1<<32, file)
	if err != nil {
		return nil, err
	}
	if err := checkEntry(entry, segs, file); err != nil {
		return nil, err
	}
	res.Kernel, res.Segments = span, segs
	mods := modulesOf(opts)
	if res.Modules, err = s.placeModules(mods, span.End, file); err != nil {
		return nil, err
	}

	info, err := s.alloc(hvmStartInfoSize, 8, "hvm_start_info", file)
	if err != nil {
		return nil, err
	}
	si := make([]byte, hvmStartInfoSize)
	le.PutUint32(si[0:], hvmStartMagic)
	le.PutUint32(si[hvmOffVersion:], hvmStartVersion)
	if res.Cmdline, err = s.putString(opts.Cmdline, "the command line", file); err != nil {
		return nil, err
	}
	le.PutUint64(si[hvmOffCmdline:], res.Cmdline)
	le.PutUint64(si[hvmOffRSDP:], s.g.RSDP)

	if len(mods) > 0 {
		list, err := s.alloc(uint64(len(mods))*hvmModlistEntry, 8, "the module list", file)
		if err != nil {
			return nil, err
		}
		lb := make([]byte, len(mods)*hvmModlistEntry)
		for i, m := range mods {
			e := lb[i*hvmModlistEntry:]
			le.PutUint64(e[0:], res.Modules[i].Start)
			le.PutUint64(e[8:], res.Modules[i].Size())
			if m.Cmdline != "" {
				str, err := s.putString(m.Cmdline, fmt.Sprintf("module %d's command line", i), file)
				if err != nil {
					return nil, err
				}
				le.PutUint64(e[16:], str)
			}
		}
		if err := s.write(list, lb, "the module list", file); err != nil {
			return nil, err
		}
		le.PutUint32(si[hvmOffNrModules:], uint32(len(mods)))
		le.PutUint64(si[hvmOffModlist:], list)
	}

	mm := make([]byte, len(s.mem)*hvmMemmapEntry)
	for i, r := range s.mem {
		e := mm[i*hvmMemmapEntry:]
		le.PutUint64(e[0:], r.Start)
		le.PutUint64(e[8:], r.Size())
		le.PutUint32(e[16:], uint32(r.Type))
	}
	mmap, err := s.alloc(uint64(len(mm)), 8, "the memory map", file)
	if err != nil {
		return nil, err
	}
	if err := s.write(mmap, mm, "the memory map", file); err != nil {
		return nil, err
	}
	le.PutUint64(si[hvmOffMemmap:], mmap)
	le.PutUint32(si[hvmOffMemmapCount:], uint32(len(s.mem)))
	if err := s.write(info, si, "hvm_start_info", file); err != nil {
		return nil, err
	}
	res.Info = info
	res.State.RIP = entry

	st, err := s.entryState(ModeProtected, entry, file)
	if err != nil {
		return nil, err
	}
	st.GPR[vcpu.RBX] = info
	res.State = st
	return res, nil
}
