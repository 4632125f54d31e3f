// SVM instructions the Go assembler lacks (AMD APM Vol. 3, "VMRUN",
// "VMLOAD", "VMSAVE", "CLGI", "STGI"): all take the VMCB's physical address
// in RAX implicitly.
#define VMRUN	BYTE $0x0f; BYTE $0x01; BYTE $0xd8
#define VMLOAD	BYTE $0x0f; BYTE $0x01; BYTE $0xda
#define VMSAVE	BYTE $0x0f; BYTE $0x01; BYTE $0xdb
#define STGI	BYTE $0x0f; BYTE $0x01; BYTE $0xdc
#define CLGI	BYTE $0x0f; BYTE $0x01; BYTE $0xdd
