package vmlog

import "testing"

func TestParseDMAAttack(t *testing.T) {
	console := `tamavisor: ready
tamavisor: dma-attack: own-buffer DMA: works
tamavisor: dma-attack: target="hypervisor" addr=0x13479346 landed=false
tamavisor: iommu: vt-d unit at 0xfed90000: DMA write by 0000:00:01.0 at 0x13479000 blocked: context entry not present (device blocked) (code 0x2)
tamavisor: dma-attack: target="guest debian" addr=0x40000000 landed=true
tamavisor: dma-attack: dma_writes_landed=1 attempts=3 faults_reported=2 iommu=true
tamavisor: dma-attack: done; the hypervisor keeps running
`
	a, ok := ParseDMAAttack(console)
	if !ok || !a.Done || a.Landed != 1 || a.Attempts != 3 || a.FaultsReported != 2 || !a.IOMMU {
		t.Fatalf("%+v ok=%v", a, ok)
	}
	if len(a.Targets) != 2 || len(a.FaultLines) != 1 {
		t.Fatalf("targets %q faults %q", a.Targets, a.FaultLines)
	}
	if _, ok := ParseDMAAttack("tamavisor: dma-attack: own-buffer DMA: works\n"); ok {
		t.Fatal("a console without a result parsed as finished")
	}
	a, ok = ParseDMAAttack("tamavisor: dma-attack: failed: no edu device\n")
	if !ok || a.Failed != "no edu device" {
		t.Fatalf("%+v ok=%v", a, ok)
	}
}
