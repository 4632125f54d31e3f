//go:build !tamago

package x86emu

// The host's own ALU, the reference the differential tests compare alu
// with (hostalu_amd64.s). Only tests call these; the build tag keeps them
// out of the hypervisor image.

func hostADD8(dst, src, flags uint64) (res, out uint64)
func hostADD16(dst, src, flags uint64) (res, out uint64)
func hostADD32(dst, src, flags uint64) (res, out uint64)
func hostADD64(dst, src, flags uint64) (res, out uint64)
func hostADC8(dst, src, flags uint64) (res, out uint64)
func hostADC16(dst, src, flags uint64) (res, out uint64)
func hostADC32(dst, src, flags uint64) (res, out uint64)
func hostADC64(dst, src, flags uint64) (res, out uint64)
func hostSUB8(dst, src, flags uint64) (res, out uint64)
func hostSUB16(dst, src, flags uint64) (res, out uint64)
func hostSUB32(dst, src, flags uint64) (res, out uint64)
func hostSUB64(dst, src, flags uint64) (res, out uint64)
func hostSBB8(dst, src, flags uint64) (res, out uint64)
func hostSBB16(dst, src, flags uint64) (res, out uint64)
func hostSBB32(dst, src, flags uint64) (res, out uint64)
func hostSBB64(dst, src, flags uint64) (res, out uint64)
func hostCMP8(dst, src, flags uint64) (res, out uint64)
func hostCMP16(dst, src, flags uint64) (res, out uint64)
func hostCMP32(dst, src, flags uint64) (res, out uint64)
func hostCMP64(dst, src, flags uint64) (res, out uint64)
func hostAND8(dst, src, flags uint64) (res, out uint64)
func hostAND16(dst, src, flags uint64) (res, out uint64)
func hostAND32(dst, src, flags uint64) (res, out uint64)
func hostAND64(dst, src, flags uint64) (res, out uint64)
func hostOR8(dst, src, flags uint64) (res, out uint64)
func hostOR16(dst, src, flags uint64) (res, out uint64)
func hostOR32(dst, src, flags uint64) (res, out uint64)
func hostOR64(dst, src, flags uint64) (res, out uint64)
func hostXOR8(dst, src, flags uint64) (res, out uint64)
func hostXOR16(dst, src, flags uint64) (res, out uint64)
func hostXOR32(dst, src, flags uint64) (res, out uint64)
func hostXOR64(dst, src, flags uint64) (res, out uint64)
func hostTEST8(dst, src, flags uint64) (res, out uint64)
func hostTEST16(dst, src, flags uint64) (res, out uint64)
func hostTEST32(dst, src, flags uint64) (res, out uint64)
func hostTEST64(dst, src, flags uint64) (res, out uint64)
func hostBT16(dst, src, flags uint64) (res, out uint64)
func hostBT32(dst, src, flags uint64) (res, out uint64)
func hostBT64(dst, src, flags uint64) (res, out uint64)

// hostALU is indexed by aluOp and operand size (1, 2, 4, 8 bytes as
// 0..3).
var hostALU = [numALUOps][4]func(dst, src, flags uint64) (res, out uint64){
	aluADD:  {hostADD8, hostADD16, hostADD32, hostADD64},
	aluADC:  {hostADC8, hostADC16, hostADC32, hostADC64},
	aluSUB:  {hostSUB8, hostSUB16, hostSUB32, hostSUB64},
	aluSBB:  {hostSBB8, hostSBB16, hostSBB32, hostSBB64},
	aluCMP:  {hostCMP8, hostCMP16, hostCMP32, hostCMP64},
	aluAND:  {hostAND8, hostAND16, hostAND32, hostAND64},
	aluOR:   {hostOR8, hostOR16, hostOR32, hostOR64},
	aluXOR:  {hostXOR8, hostXOR16, hostXOR32, hostXOR64},
	aluTEST: {hostTEST8, hostTEST16, hostTEST32, hostTEST64},
}

// hostBT is indexed by operand size 2, 4, 8 bytes as 0..2.
var hostBT = [3]func(dst, src, flags uint64) (res, out uint64){hostBT16, hostBT32, hostBT64}
