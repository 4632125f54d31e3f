package vmlog

import (
	"strconv"
	"strings"
)

// Lines of the DMA attack self-test (tamavisor.selftest=dma,
// boot/dmatest.go):
//
//	tamavisor: dma-attack: target="WHAT" addr=0x... landed=true|false
//	tamavisor: iommu: UNIT: DMA write by SSSS:BB:DD.F at 0x... blocked: REASON (code 0x..)
//	tamavisor: dma-attack: dma_writes_landed=N attempts=N faults_reported=N iommu=true|false
//	tamavisor: dma-attack: done; the hypervisor keeps running
//	tamavisor: dma-attack: failed: WHY                 (instead of a result)
const (
	dmaPrefix     = "tamavisor: dma-attack: "
	DMAAttackDone = "tamavisor: dma-attack: done"
	dmaFault      = "tamavisor: iommu: "
)

// DMAAttack is what the DMA attack self-test reported.
type DMAAttack struct {
	Landed, Attempts, FaultsReported int
	IOMMU                            bool
	// Targets are the target lines, FaultLines the IOMMU's fault reports.
	Targets, FaultLines []string
	// Failed is the reason the test could not run, if it said one.
	Failed string
	Done   bool
}

// ParseDMAAttack reads the self-test's lines from a console; ok is false
// until it printed its result or failure.
func ParseDMAAttack(console string) (a DMAAttack, ok bool) {
	for _, line := range strings.Split(console, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, dmaFault) && strings.Contains(line, " blocked: ") {
			a.FaultLines = append(a.FaultLines, line)
			continue
		}
		rest, found := strings.CutPrefix(line, dmaPrefix)
		if !found {
			continue
		}
		switch {
		case strings.HasPrefix(line, DMAAttackDone):
			a.Done = true
		case strings.HasPrefix(rest, "failed: "):
			a.Failed = strings.TrimPrefix(rest, "failed: ")
			ok = true
		case strings.HasPrefix(rest, "target="):
			a.Targets = append(a.Targets, rest)
		case strings.HasPrefix(rest, "dma_writes_landed="):
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.Atoi(v)
				switch k {
				case "dma_writes_landed":
					a.Landed = n
				case "attempts":
					a.Attempts = n
				case "faults_reported":
					a.FaultsReported = n
				case "iommu":
					a.IOMMU = v == "true"
				}
			}
			ok = true
		}
	}
	return a, ok
}
