package loader

import (
	"fmt"

	"tamavisor/guests/platform"
	"tamavisor/guests/vcpu"
)

// The real-mode kernel header ("setup header") of a bzImage, at 0x1f1 in the
// file and in boot_params (Documentation/arch/x86/boot.rst, "The Real-Mode
// Kernel Header"; protocol 2.15).
const (
	setupHeaderOff      = 0x1f1
	setupSectsOff       = 0x1f1 // u8; 0 means 4
	syssizeOff          = 0x1f4 // u32, 16-byte paragraphs (2.04+)
	vidModeOff          = 0x1fa // u16
	bootFlagOff         = 0x1fe // u16, 0xaa55
	jumpOff             = 0x200 // 0xeb, then the header's length past 0x202
	setupHeaderMagicOff = 0x202 // "HdrS"
	versionOff          = 0x206 // u16, major<<8 | minor
	typeOfLoaderOff     = 0x210 // u8
	loadflagsOff        = 0x211 // u8
	code32StartOff      = 0x214 // u32
	ramdiskImageOff     = 0x218 // u32
	ramdiskSizeOff      = 0x21c // u32
	heapEndPtrOff       = 0x224 // u16
	cmdLinePtrOff       = 0x228 // u32
	initrdAddrMaxOff    = 0x22c // u32 (2.03+)
	kernelAlignmentOff  = 0x230 // u32 (2.05+)
	relocatableOff      = 0x234 // u8 (2.05+)
	xloadflagsOff       = 0x236 // u16 (2.12+)
	cmdlineSizeOff      = 0x238 // u32 (2.06+)
	hardwareSubarchOff  = 0x23c // u32 (2.07+)
	setupDataOff        = 0x250 // u64 (2.09+)
	prefAddressOff      = 0x258 // u64 (2.10+)
	initSizeOff         = 0x260 // u32 (2.10+)
	headerMinEnd        = 0x264 // through init_size: what this loader reads

	bootFlagValue    = 0xaa55
	setupHeaderMagic = "HdrS"
	jumpOpcode       = 0xeb
	sectorSize       = 512
	defaultSetupSect = 4

	// minProtocol is 2.12: the first with xloadflags, hence with a
	// declared 64-bit entry point (XLF_KERNEL_64).
	minProtocol = 0x020c

	loadedHigh   = 1 << 0 // loadflags LOADED_HIGH: a bzImage
	canUseHeap   = 1 << 7 // loadflags CAN_USE_HEAP
	xlfKernel64  = 1 << 0 // xloadflags XLF_KERNEL_64: 64-bit entry at +0x200
	entry64      = 0x200  // the 64-bit entry's offset from the load address
	loaderTypeFF = 0xff   // type_of_loader: no assigned ID
	// heapEnd is heap_end_ptr as boot.rst's sample loader sets it: the
	// end of the setup heap (0xe000) less 0x200. Only the real-mode setup
	// code uses it, and the 64-bit entry skips that code.
	heapEnd = 0xe000 - 0x200
	// vidModeNormal is vid_mode "normal" (boot.rst, "Special Command
	// Line Options": 0xffff).
	vidModeNormal = 0xffff
)

// The zero page, struct boot_params (Documentation/arch/x86/zero-page.rst;
// arch/x86/include/uapi/asm/bootparam.h).
const (
	bootParamsSize       = 0x1000
	bpACPIRSDPAddr       = 0x070 // u64
	bpExtRamdiskImage    = 0x0c0 // u32: ramdisk_image bits 63:32
	bpExtRamdiskSize     = 0x0c4 // u32
	bpExtCmdLinePtr      = 0x0c8 // u32
	bpE820Entries        = 0x1e8 // u8
	bpSetupHeaderEnd     = 0x290 // the setup header's space ends here
	bpE820Table          = 0x2d0 // struct boot_e820_entry[128]
	e820EntrySize        = 20    // u64 addr, u64 size, u32 type
	e820MaxZeroPage      = 128
	defaultLoadAddress   = 0x100000 // a bzImage's load address without pref_address
	relocationGranule    = 16 << 20 // where to try a relocatable kernel that does not fit at pref_address
	defaultInitrdAddrMax = 0x37ffffff
)

// bzImage is a parsed and checked bzImage.
type bzImage struct {
	file        []byte
	setupSize   uint64 // bytes of the real-mode part, boot sector included
	kernel      []byte // the protected-mode part
	headerEnd   int    // the setup header ends here, exclusive
	version     uint16
	relocatable bool
	alignment   uint64
	prefAddress uint64
	initSize    uint64
	initrdMax   uint64 // the highest byte an initrd may occupy
	cmdlineSize uint64
	xloadflags  uint16
}

// parseBzImage checks a bzImage's setup header (boot.rst protocol 2.15).
// name names the file in errors.
func parseBzImage(f []byte, file string) (*bzImage, error) {
	bad := func(kind error, format string, args ...any) (*bzImage, error) {
		return nil, &Error{File: file, Kind: kind, Msg: fmt.Sprintf(format, args...)}
	}
	size := platform.SizeString(uint64(len(f)))
	if len(f) < headerMinEnd {
		return bad(ErrMalformed, "the %s file is shorter than the %#x bytes that hold the setup header", size, headerMinEnd)
	}
	if v := u16(f, bootFlagOff); v != bootFlagValue {
		return bad(ErrMalformed, "boot_flag at %#x is %#04x, not %#04x", bootFlagOff, v, bootFlagValue)
	}
	if m := f[setupHeaderMagicOff : setupHeaderMagicOff+4]; string(m) != setupHeaderMagic {
		return bad(ErrMalformed, "header magic at %#x is %q, not %q: a pre-2.00 kernel or not a kernel", setupHeaderMagicOff, m, setupHeaderMagic)
	}
	b := &bzImage{file: f, version: u16(f, versionOff)}
	if b.version < minProtocol {
		return bad(ErrUnsupported, "boot protocol version %d.%02d is older than 2.12, the first with a 64-bit entry point (xloadflags)", b.version>>8, b.version&0xff)
	}
	// The jump at 0x200 is a short jump over the header: its signed
	// displacement gives the header's end (boot.rst, "jump").
	if f[jumpOff] != jumpOpcode || f[jumpOff+1] >= 0x80 {
		return bad(ErrMalformed, "the jump at %#x is % x, not a short forward jump over the setup header", jumpOff, f[jumpOff:jumpOff+2])
	}
	b.headerEnd = 0x202 + int(f[jumpOff+1])
	if b.headerEnd < headerMinEnd || b.headerEnd > bpSetupHeaderEnd {
		return bad(ErrMalformed, "the jump at %#x puts the setup header's end at %#x, outside %#x-%#x for protocol %d.%02d",
			jumpOff, b.headerEnd, headerMinEnd, bpSetupHeaderEnd, b.version>>8, b.version&0xff)
	}
	if f[loadflagsOff]&loadedHigh == 0 {
		return bad(ErrUnsupported, "loadflags %#02x lacks LOADED_HIGH: a zImage, which loads below 1 MiB in real mode", f[loadflagsOff])
	}
	b.xloadflags = u16(f, xloadflagsOff)
	if b.xloadflags&xlfKernel64 == 0 {
		return bad(ErrUnsupported, "xloadflags %#04x lacks XLF_KERNEL_64: a 32-bit kernel, with no 64-bit entry point", b.xloadflags)
	}

	sects := uint64(f[setupSectsOff])
	if sects == 0 {
		sects = defaultSetupSect
	}
	b.setupSize = (sects + 1) * sectorSize
	if b.setupSize >= uint64(len(f)) {
		return bad(ErrMalformed, "setup_sects %d puts the kernel past the end of the %s file", f[setupSectsOff], size)
	}
	b.kernel = f[b.setupSize:]
	syssize := uint64(u32(f, syssizeOff)) * 16
	if syssize == 0 {
		return bad(ErrMalformed, "syssize is 0: no protected-mode kernel")
	}
	if syssize > uint64(len(b.kernel)) {
		return bad(ErrMalformed, "syssize %#x (%d bytes of protected-mode code) runs past the end of the %s file, which has %d bytes after the %d setup sectors",
			syssize/16, syssize, size, len(b.kernel), sects)
	}
	b.kernel = b.kernel[:syssize]

	b.relocatable = f[relocatableOff] != 0
	b.alignment = uint64(u32(f, kernelAlignmentOff))
	if b.relocatable && (b.alignment < pageSize || b.alignment&(b.alignment-1) != 0 || b.alignment > 1<<30) {
		return bad(ErrMalformed, "kernel_alignment %#x of a relocatable kernel is not a power of two from 4 KiB to 1 GiB", b.alignment)
	}
	b.prefAddress = u64(f, prefAddressOff)
	if b.prefAddress == 0 {
		b.prefAddress = defaultLoadAddress
	}
	b.initSize = uint64(u32(f, initSizeOff))
	if b.initSize < uint64(len(b.kernel)) {
		return bad(ErrMalformed, "init_size %#x is smaller than the %d-byte protected-mode kernel it must hold", b.initSize, len(b.kernel))
	}
	b.initrdMax = uint64(u32(f, initrdAddrMaxOff))
	if b.initrdMax == 0 {
		b.initrdMax = defaultInitrdAddrMax
	}
	b.cmdlineSize = uint64(u32(f, cmdlineSizeOff))
	return b, nil
}

// LoadLinux loads a bzImage (protocol 2.12 or later, with XLF_KERNEL_64)
// the way boot.rst's 64-bit boot protocol asks: the protected-mode kernel
// at pref_address (for a relocatable kernel that does not fit there, at the
// lowest 16 MiB-aligned address where init_size bytes fit), the initrd as
// high as initrd_addr_max and RAM allow, the command line and boot_params
// in the loader area; and returns the 64-bit entry state: long mode with
// 0-4 GiB identity-mapped, __BOOT_CS/__BOOT_DS flat, interrupts off, RSI =
// boot_params, RIP = load address + 0x200.
func LoadLinux(g Guest, image []byte, opts Options) (*Result, error) {
	file := fileName("bzImage", opts.KernelName)
	s, err := newSession(g, file)
	if err != nil {
		return nil, err
	}
	b, err := parseBzImage(image, file)
	if err != nil {
		return nil, err
	}
	if err := checkString(opts.Cmdline, "the command line", file); err != nil {
		return nil, err
	}
	if uint64(len(opts.Cmdline)) > b.cmdlineSize {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("the command line is %d bytes, over the kernel's cmdline_size %d", len(opts.Cmdline), b.cmdlineSize)}
	}
	if len(opts.Modules) > 0 {
		return nil, &Error{File: file, Kind: ErrBadOption, Msg: fmt.Sprintf("%d modules given: a bzImage takes only an initrd", len(opts.Modules))}
	}
	res := &Result{Format: FormatBzImage}

	// The kernel.
	load, err := s.placeKernel(b, file)
	if err != nil {
		return nil, err
	}
	res.Kernel = platform.Region{Start: load, End: load + b.initSize}
	res.Segments = []platform.Region{{Start: load, End: load + uint64(len(b.kernel))}}
	if err := s.write(load, b.kernel, "the protected-mode kernel", file); err != nil {
		return nil, err
	}

	// The initrd, as high as it may go.
	if opts.Initrd != nil {
		if res.Initrd, err = s.placeInitrd(b, opts); err != nil {
			return nil, err
		}
	}

	// boot_params and the command line, in the loader area.
	bp, err := s.alloc(bootParamsSize, pageSize, "boot_params", file)
	if err != nil {
		return nil, err
	}
	cmdline, err := s.putString(opts.Cmdline, "the command line", file)
	if err != nil {
		return nil, err
	}
	zp, err := s.zeroPage(b, load, cmdline, res.Initrd, file)
	if err != nil {
		return nil, err
	}
	if err := s.write(bp, zp, "boot_params", file); err != nil {
		return nil, err
	}
	res.Info, res.Cmdline = bp, cmdline

	st, err := s.entryState(ModeLong, load+entry64, file)
	if err != nil {
		return nil, err
	}
	st.GPR[vcpu.RSI] = bp
	res.State = st
	return res, nil
}

// placeKernel picks the load address: pref_address when init_size bytes
// fit there; for a relocatable kernel otherwise the lowest multiple of 16
// MiB (and of kernel_alignment) below 4 GiB where they do. A relocatable
// kernel placed below its LOAD_PHYSICAL_ADDR would decompress to that
// address anyway (arch/x86/boot/compressed/head_64.S), so lower candidates
// than 16 MiB gain nothing.
func (s *session) placeKernel(b *bzImage, file string) (uint64, error) {
	try := func(at uint64) bool {
		r := platform.Region{Start: at, End: at + b.initSize}
		if r.End < r.Start || r.End > 1<<32 {
			return false
		}
		ok, _ := s.fits(r)
		return ok
	}
	at := b.prefAddress
	if try(at) {
		return at, s.claim(platform.Region{Start: at, End: at + b.initSize}, "the kernel (init_size)", file)
	}
	_, why := s.fits(platform.Region{Start: at, End: at + b.initSize})
	if at+b.initSize > 1<<32 || at+b.initSize < at {
		why = "it would reach past 4 GiB"
	}
	if b.relocatable {
		step := max(uint64(relocationGranule), b.alignment)
		for cand := step; cand+b.initSize <= 1<<32; cand += step {
			if try(cand) {
				return cand, s.claim(platform.Region{Start: cand, End: cand + b.initSize}, "the kernel (init_size)", file)
			}
		}
		return 0, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("init_size %#x (%s) from pref_address %#x does not fit (%s), nor at any 16 MiB-aligned address below 4 GiB (usable RAM: %s)",
			b.initSize, platform.SizeString(b.initSize), b.prefAddress, why, s.usableString())}
	}
	return 0, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("the kernel is not relocatable and init_size %#x (%s) at pref_address %#x does not fit: %s",
		b.initSize, platform.SizeString(b.initSize), b.prefAddress, why)}
}

// placeInitrd puts the initrd at the highest 4 KiB-aligned address where
// it ends at or below initrd_addr_max and in usable RAM below 4 GiB.
func (s *session) placeInitrd(b *bzImage, opts Options) (platform.Region, error) {
	file := fileName("initrd", opts.InitrdName)
	size := uint64(len(opts.Initrd))
	if size == 0 {
		return platform.Region{}, &Error{File: file, Kind: ErrBadOption, Msg: "the initrd is empty"}
	}
	limit := min(b.initrdMax+1, 1<<32)
	at, ok := s.findFree(size, pageSize, platform.HighMemoryStart, limit, true)
	if !ok {
		return platform.Region{}, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("%s (%d bytes) does not fit in free usable RAM below initrd_addr_max %#x (usable RAM: %s; taken: %s)",
			platform.SizeString(size), size, b.initrdMax, s.usableString(), s.claimsString())}
	}
	r := platform.Region{Start: at, End: at + size}
	if err := s.claim(r, "the initrd", file); err != nil {
		return platform.Region{}, err
	}
	return r, s.write(at, opts.Initrd, "the initrd", file)
}

// zeroPage builds boot_params: zeroed, the kernel's setup header copied in,
// then the fields a boot loader writes (boot.rst, "Details of Header
// Fields"; zero-page.rst).
func (s *session) zeroPage(b *bzImage, load, cmdline uint64, initrd platform.Region, file string) ([]byte, error) {
	zp := make([]byte, bootParamsSize)
	copy(zp[setupHeaderOff:b.headerEnd], b.file[setupHeaderOff:b.headerEnd])
	le.PutUint16(zp[vidModeOff:], vidModeNormal)
	zp[typeOfLoaderOff] = loaderTypeFF
	zp[loadflagsOff] = loadedHigh | canUseHeap
	le.PutUint32(zp[code32StartOff:], uint32(load))
	le.PutUint16(zp[heapEndPtrOff:], heapEnd)
	le.PutUint32(zp[hardwareSubarchOff:], 0) // the default x86/PC
	le.PutUint64(zp[setupDataOff:], 0)
	le.PutUint32(zp[cmdLinePtrOff:], uint32(cmdline))
	le.PutUint32(zp[bpExtCmdLinePtr:], uint32(cmdline>>32))
	if !initrd.Empty() {
		le.PutUint32(zp[ramdiskImageOff:], uint32(initrd.Start))
		le.PutUint32(zp[ramdiskSizeOff:], uint32(initrd.Size()))
		le.PutUint32(zp[bpExtRamdiskImage:], uint32(initrd.Start>>32))
		le.PutUint32(zp[bpExtRamdiskSize:], uint32(initrd.Size()>>32))
	} else {
		le.PutUint32(zp[ramdiskImageOff:], 0)
		le.PutUint32(zp[ramdiskSizeOff:], 0)
	}
	// acpi_rsdp_addr (zero-page.rst; Linux 4.20+ reads it before
	// searching the BIOS area).
	le.PutUint64(zp[bpACPIRSDPAddr:], s.g.RSDP)

	m := s.mem
	if len(m) > e820MaxZeroPage {
		return nil, &Error{File: file, Kind: ErrNoRoom, Msg: fmt.Sprintf("the memory map has %d entries, more than the %d boot_params holds", len(m), e820MaxZeroPage)}
	}
	zp[bpE820Entries] = byte(len(m))
	for i, e := range m {
		off := bpE820Table + i*e820EntrySize
		le.PutUint64(zp[off:], e.Start)
		le.PutUint64(zp[off+8:], e.Size())
		le.PutUint32(zp[off+16:], uint32(e.Type))
	}
	return zp, nil
}
