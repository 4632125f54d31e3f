package aml

import (
	"encoding/binary"
	"fmt"
)

// Resource data descriptors (ACPI 6.5, 6.4 "Resource Data Types for
// ACPI"). Small items have a one-byte tag (type 0, name in bits 6:3,
// length in bits 2:0); large items a tag with bit 7 set followed by a
// 16-bit length.
const (
	smallIOPort       = 0x47 // 6.4.2.5, I/O Port Descriptor, length 7
	smallEndTag       = 0x79 // 6.4.2.9, End Tag, length 1
	largeDWordAddress = 0x87 // 6.4.3.5.2, DWord Address Space Descriptor
	largeWordAddress  = 0x88 // 6.4.3.5.3, Word Address Space Descriptor

	wordAddressLength  = 13 // bytes after the 3-byte header
	dwordAddressLength = 23
)

// AddressSpaceType is an address space descriptor's Resource Type (ACPI
// 6.5, Table 6.44).
type AddressSpaceType uint8

const (
	MemoryRange AddressSpaceType = 0
	IORange     AddressSpaceType = 1
	BusRange    AddressSpaceType = 2
)

// General flags of an address space descriptor (ACPI 6.5, Table 6.44).
const (
	// Consumer: this device consumes the range; without it the device
	// produces and consumes it (ResourceProducer, what a bridge decodes).
	Consumer = 1 << 0
	// SubtractiveDecode: the bridge decodes subtractively (_DEC).
	SubtractiveDecode = 1 << 1
	// MinFixed and MaxFixed: the range's minimum and maximum addresses
	// are fixed (_MIF, _MAF).
	MinFixed = 1 << 2
	MaxFixed = 1 << 3
)

// Type-specific flags (ACPI 6.5, 6.4.3.5.4 "Resource Type Specific Flags").
const (
	// IOEntireRange: _RNG = 3, the range covers ISA and non-ISA ports.
	IOEntireRange = 3
	// MemoryReadWrite: _RW set; the other bits left zero make the range
	// non-cacheable (_MEM = 0) AddressRangeMemory (_MTP = 0).
	MemoryReadWrite = 1 << 0
)

// AddressRange is the part common to the Word, DWord and QWord address
// space descriptors: _GRA, _MIN, _MAX, _TRA, _LEN.
type AddressRange struct {
	Type         AddressSpaceType
	GeneralFlags uint8
	TypeFlags    uint8
	Granularity  uint64
	Min, Max     uint64
	Translation  uint64
	Length       uint64
}

// check applies the rules of ACPI 6.5, 6.4.3.5 Table 6.41 for fixed
// ranges: with _MIF and _MAF set and a length, the length is Max-Min+1.
func (r AddressRange) check(limit uint64, what string) error {
	for _, v := range []uint64{r.Granularity, r.Min, r.Max, r.Translation, r.Length} {
		if v > limit {
			return fmt.Errorf("aml: %s: value %#x does not fit the descriptor's %d-bit fields", what, v, bitsOf(limit))
		}
	}
	if r.Max < r.Min {
		return fmt.Errorf("aml: %s: maximum %#x below minimum %#x", what, r.Max, r.Min)
	}
	if r.GeneralFlags&(MinFixed|MaxFixed) == MinFixed|MaxFixed && r.Length != r.Max-r.Min+1 {
		return fmt.Errorf("aml: %s: fixed range %#x-%#x has length %#x, want %#x", what, r.Min, r.Max, r.Length, r.Max-r.Min+1)
	}
	return nil
}

func bitsOf(limit uint64) int {
	n := 0
	for limit != 0 {
		n++
		limit >>= 1
	}
	return n
}

// WordAddress encodes a Word Address Space Descriptor (ACPI 6.5,
// 6.4.3.5.3): iasl's WordBusNumber and WordIO.
func (b *Builder) WordAddress(r AddressRange) []byte {
	if err := r.check(0xffff, "word address descriptor"); err != nil {
		return b.fail(err)
	}
	out := []byte{largeWordAddress, wordAddressLength, 0, byte(r.Type), r.GeneralFlags, r.TypeFlags}
	for _, v := range []uint64{r.Granularity, r.Min, r.Max, r.Translation, r.Length} {
		out = binary.LittleEndian.AppendUint16(out, uint16(v))
	}
	return out
}

// DWordAddress encodes a DWord Address Space Descriptor (ACPI 6.5,
// 6.4.3.5.2): iasl's DWordMemory and DWordIO.
func (b *Builder) DWordAddress(r AddressRange) []byte {
	if err := r.check(0xffffffff, "dword address descriptor"); err != nil {
		return b.fail(err)
	}
	out := []byte{largeDWordAddress, dwordAddressLength, 0, byte(r.Type), r.GeneralFlags, r.TypeFlags}
	for _, v := range []uint64{r.Granularity, r.Min, r.Max, r.Translation, r.Length} {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	return out
}

// IOPort encodes an I/O Port Descriptor with 16-bit decoding (ACPI 6.5,
// 6.4.2.5): iasl's IO(Decode16, min, max, alignment, length).
func (b *Builder) IOPort(min, max uint16, alignment, length uint8) []byte {
	if max < min {
		return b.fail(fmt.Errorf("aml: I/O port descriptor: maximum base %#x below minimum %#x", max, min))
	}
	out := []byte{smallIOPort, 1} // bit 0: decodes 16 address bits
	out = binary.LittleEndian.AppendUint16(out, min)
	out = binary.LittleEndian.AppendUint16(out, max)
	return append(out, alignment, length)
}

// ResourceTemplate encodes ResourceTemplate() { descriptors } as iasl
// does: a Buffer holding the descriptors and an End Tag whose checksum
// byte is zero, which means "valid" (ACPI 6.5, 6.4.2.9).
func (b *Builder) ResourceTemplate(descriptors ...[]byte) []byte {
	if b.err != nil {
		return nil
	}
	var data []byte
	for _, d := range descriptors {
		data = append(data, d...)
	}
	data = append(data, smallEndTag, 0)
	return b.Buffer(data)
}
