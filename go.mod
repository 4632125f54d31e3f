module tamavisor

go 1.26.0

require (
	github.com/usbarmory/tamago v1.26.0 // indirect
	golang.org/x/arch v0.32.0 // indirect
)

tool github.com/usbarmory/tamago/cmd/tamago
