package passthrough

import (
	"fmt"
	"time"

	"tamavisor/drivers/pci"
	"tamavisor/guests/devices/pcihost"
)

// Function Level Reset timing (PCIe Base 5.0, 6.6.2): software should let
// outstanding transactions finish (Transactions Pending clear) before the
// reset, must wait 100 ms after initiating it before a configuration
// request, and a function may then still answer Configuration Request
// Retry Status (read as vendor ID 0x0001 with CRS Software Visibility,
// 2.3.1) or, through a mechanism without it, all ones for a while.
const (
	flrPendingPolls    = 10
	flrPendingInterval = 10 * time.Millisecond // 100 ms in all
	flrWait            = 100 * time.Millisecond
	flrReadyPolls      = 10
	flrReadyInterval   = 100 * time.Millisecond // 1 s more at most
	vendorCRS          = 0x0001
)

// Quiesce stops the device when its guest stops: bus master and the
// MSI/MSI-X enables off (no DMA, no messages), the guest's BAR mappings
// removed, a Function Level Reset when the device is capable of one, the
// host firmware's BAR and Device Control values put back, decoding off,
// the host vectors freed. From its return the function ignores the guest.
// The caller then detaches the device from the guest's IOMMU domain
// (back to blocking). It reports a device that does not come back from
// its reset; the other steps are done regardless.
func (f *Function) Quiesce() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return nil
	}
	f.stopped = true
	f.hostCmd &^= pcihost.CommandBusMaster
	f.writeHostCommand()
	if f.msi.present {
		f.cfgWrite(f.msi.off, 0)
	}
	if f.msix.present {
		f.cfgWrite(f.msix.off, msixCtlFuncMask<<16)
	}
	f.updateMappings() // stopped: unmaps every BAR

	var err error
	if f.pcieOff != 0 && f.pcieCap&devCapFLR != 0 {
		err = f.functionLevelReset()
	}
	// A reset clears the BARs and Device Control (PCIe 5.0, 6.6.2);
	// restore them so the device is where host enumeration found it.
	for i := range f.bars {
		f.cfgWrite(uint16(regBAR0+4*i), f.bars[i].hostRaw)
	}
	if f.pcieOff != 0 {
		f.cfgWrite(f.pcieOff+pcieOffDevCtl, f.devCtl&^devCtlInitiateFLR)
		if f.pcieLen >= pcieOffDevCtl2+4 {
			f.cfgWrite(f.pcieOff+pcieOffDevCtl2, f.devCtl2)
		}
	}
	f.hostCmd = pcihost.CommandINTxDisable
	f.writeHostCommand()
	f.freeVectors()
	if err != nil {
		f.problem(err)
	}
	return err
}

func (f *Function) functionLevelReset() error {
	sta := f.pcieOff + pcieOffDevCtl
	for i := 0; i < flrPendingPolls && f.cfgRead(sta)>>16&devStaTransPending != 0; i++ {
		f.cfg.Sleep(flrPendingInterval)
	}
	// Device Status in the upper half is write-one-to-clear: zeros there
	// change nothing.
	f.cfgWrite(sta, f.devCtl|devCtlInitiateFLR)
	f.cfg.Sleep(flrWait)
	for i := 0; ; i++ {
		vendor := uint16(f.cfgRead(pci.OffVendorID))
		if vendor != pci.VendorNone && vendor != vendorCRS {
			return nil
		}
		if i == flrReadyPolls {
			return fmt.Errorf("passthrough: %s: no answer %v after a Function Level Reset (vendor ID reads %#x)",
				f.name, flrWait+flrReadyPolls*flrReadyInterval, vendor)
		}
		f.cfg.Sleep(flrReadyInterval)
	}
}
