package vmx

// EPTVPIDCap is IA32_VMX_EPT_VPID_CAP (SDM Vol. 3D, Appendix A.10): what the
// processor supports of EPT paging structures and of the INVEPT and INVVPID
// instructions. It is zero when the MSR does not exist.
type EPTVPIDCap uint64

// IA32_VMX_EPT_VPID_CAP bits (Appendix A.10).
const (
	EPTExecuteOnly              EPTVPIDCap = 1 << 0  // execute-only translations
	EPTPageWalk4                EPTVPIDCap = 1 << 6  // page-walk length 4
	EPTPageWalk5                EPTVPIDCap = 1 << 7  // page-walk length 5
	EPTMemoryTypeUC             EPTVPIDCap = 1 << 8  // EPT paging structures may be UC
	EPTMemoryTypeWB             EPTVPIDCap = 1 << 14 // EPT paging structures may be WB
	EPT2MBPages                 EPTVPIDCap = 1 << 16 // PDE may map a 2-MByte page
	EPT1GBPages                 EPTVPIDCap = 1 << 17 // PDPTE may map a 1-GByte page
	EPTINVEPT                   EPTVPIDCap = 1 << 20 // INVEPT supported
	EPTAccessedDirty            EPTVPIDCap = 1 << 21 // accessed and dirty flags
	EPTAdvancedExitInfo         EPTVPIDCap = 1 << 22 // advanced VM-exit information for EPT violations
	EPTSupervisorShadowStack    EPTVPIDCap = 1 << 23 // supervisor shadow-stack control
	EPTINVEPTSingleContext      EPTVPIDCap = 1 << 25 // single-context INVEPT
	EPTINVEPTAllContext         EPTVPIDCap = 1 << 26 // all-context INVEPT
	VPIDINVVPID                 EPTVPIDCap = 1 << 32 // INVVPID supported
	VPIDIndividualAddress       EPTVPIDCap = 1 << 40 // individual-address INVVPID
	VPIDSingleContext           EPTVPIDCap = 1 << 41 // single-context INVVPID
	VPIDAllContext              EPTVPIDCap = 1 << 42 // all-context INVVPID
	VPIDSingleContextKeepGlobal EPTVPIDCap = 1 << 43 // single-context-retaining-globals INVVPID
)

// Has reports whether every capability in f is present.
func (c EPTVPIDCap) Has(f EPTVPIDCap) bool { return c&f == f }
