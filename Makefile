# tamavisor: build the hypervisor image and run it under QEMU or Bochs.
#
#   make image   the ELF image (PVH for QEMU -kernel, Multiboot v1/v2 for GRUB)
#   make iso     a GRUB rescue ISO booting the image through Multiboot (BIOS and UEFI)
#   make uefi    the UEFI application and a FAT disk image holding it as the
#                default boot loader (\EFI\BOOT\BOOTX64.EFI), to write to a USB stick
#   make qemu    build and boot under QEMU: KVM with -cpu host where /dev/kvm offers
#                nested virtualization, else TCG with AMD-V (ACCEL=kvm|tcg forces one)
#   make bochs   build and boot under Bochs with an Intel VT-x CPU (corei7_skylake_x)
#   make test    install what is missing, run host unit tests and the emulator boots
#                (the image with its guests: the test kernel, crash kernels, Linux)
#   make test-long  the long emulator runs make test leaves out
#   make bench   print tracked figures as `name: value` lines
#   make clean

SHELL := /bin/bash
BUILD ?= build

TAMAGO ?= $(shell go tool -n github.com/usbarmory/tamago/cmd/tamago)
GOENV := GOOS=tamago GOOSPKG=github.com/usbarmory/tamago GOARCH=amd64

# The Go runtime's RAM starts at 0x10000000 (runtime/pc); the text follows the
# ELF headers' page. The UEFI application keeps the same addresses: the PE is
# not relocatable, and OVMF loads it at its image base.
IMAGE_BASE := 0x10000000
TEXT_START := 0x10010000
BUILD_TAGS ?= linkcpuinit
LDFLAGS := -E cpuinit -T $(TEXT_START) -R 0x1000
GOFLAGS_IMAGE := -tags $(BUILD_TAGS) -trimpath -ldflags "$(LDFLAGS)"

IMAGE := $(BUILD)/tamavisor.elf
ISO := $(BUILD)/tamavisor.iso
EFI := $(BUILD)/tamavisor.efi
UEFI_DISK := $(BUILD)/tamavisor-uefi.img

# Emulator settings (see tools/runvm -h).
ACCEL ?= auto
SMP ?= 2
MEM ?= 2G
RUNVM := go run ./tools/runvm

.PHONY: all image iso uefi qemu qemu-uefi bochs test test-unit test-boot test-long bench deps clean FORCE guest guest-kernel guest-initramfs testkernel test-guests distclean

all: image iso uefi

deps:
	@tools/install-deps.sh

image: $(IMAGE)

# Default guests are embedded into the image when they have been built
# (make testkernel, make guest); see boot/guestimages/README.md.
$(IMAGE): FORCE
	@mkdir -p $(BUILD)
	@for f in $(BUILD)/testkernel.elf $(BUILD)/guest/vmlinuz $(BUILD)/guest/initramfs.cpio; do \
		if [ -f $$f ]; then cp $$f boot/guestimages/; fi; done
	@if [ -n "$(VMS)" ]; then cp "$(VMS)" boot/guestimages/vms.toml; else rm -f boot/guestimages/vms.toml; fi
	$(GOENV) $(TAMAGO) build $(GOFLAGS_IMAGE) -o $@ ./boot
	go run ./tools/mbheader $@

iso: $(ISO)

# The ISO carries two copies of the image: tamavisor.elf with the Multiboot2
# header only, as make image writes it, and tamavisor-mb1.elf with a
# Multiboot (v1) header besides, for GRUB's `multiboot` command (tools/mbheader
# explains why one image can not carry both for every loader).
$(ISO): $(IMAGE) tools/grub.cfg
	@mkdir -p $(BUILD)/iso/boot/grub
	cp $(IMAGE) $(BUILD)/iso/boot/tamavisor.elf
	go run ./tools/mbheader -multiboot1 -o $(BUILD)/iso/boot/tamavisor-mb1.elf $(IMAGE)
	cp tools/grub.cfg $(BUILD)/iso/boot/grub/grub.cfg
	grub-mkrescue -o $@ $(BUILD)/iso 2>$(BUILD)/grub-mkrescue.log || { cat $(BUILD)/grub-mkrescue.log; exit 1; }

uefi: $(UEFI_DISK)

# The PE entry point is efi_main (runtime/pc/entry_amd64.s), not the ELF's.
$(EFI): $(IMAGE)
	objcopy --strip-debug --output-target efi-app-x86_64 --subsystem=efi-app \
		--image-base $(IMAGE_BASE) --stack=0x10000 \
		--set-start=0x$$(nm $(IMAGE) | awk '$$3 == "efi_main" { print $$1 }') \
		$(IMAGE) $@

$(UEFI_DISK): $(EFI)
	rm -f $@
	truncate -s 64M $@
	mformat -i $@ -F -v TAMAVISOR ::
	mmd -i $@ ::/EFI ::/EFI/BOOT
	mcopy -i $@ $(EFI) ::/EFI/BOOT/BOOTX64.EFI

# IOMMU=intel or IOMMU=amd adds QEMU's emulated VT-d or AMD-Vi unit.
# The image embeds the default guests: build them first.
qemu: deps
	$(MAKE) testkernel guest
	$(MAKE) image
	$(RUNVM) -emulator qemu -accel $(ACCEL) -smp $(SMP) -mem $(MEM) -iommu $(or $(IOMMU),none) -kernel $(IMAGE) -interactive

qemu-uefi: deps
	$(MAKE) testkernel guest
	$(MAKE) uefi
	$(RUNVM) -emulator qemu -accel $(ACCEL) -smp $(SMP) -mem $(MEM) -iommu $(or $(IOMMU),none) -uefi $(UEFI_DISK) -interactive

bochs: deps
	$(MAKE) testkernel
	$(MAKE) iso
	$(RUNVM) -emulator bochs -cpu corei7_skylake_x -iso $(ISO) -interactive

test: deps test-unit test-boot

# -short skips the emulator boots, which test-boot runs on fresh images.
test-unit:
	go vet ./...
	go test -short ./...

# The image embeds the guests build/ holds when it is linked: they are built
# first (make guest downloads Debian's kernel unless GUEST_CACHE has it).
test-boot: deps
	$(MAKE) testkernel guest
	$(MAKE) image iso uefi
	TAMAVISOR_BUILD=$(abspath $(BUILD)) go test -count=1 -v -timeout 25m ./qemu-test/... ./guests/images/ ./guests/testkernel/

# Runs of minutes that make test leaves out (qemu-test/long_test.go).
test-long: deps
	$(MAKE) testkernel guest
	$(MAKE) image iso uefi
	TAMAVISOR_BUILD=$(abspath $(BUILD)) TAMAVISOR_LONG=1 go test -count=1 -v -timeout 20m -run '^TestLong' ./qemu-test/...

# The baseline of make bench: the smallest program on the image's runtime,
# built exactly as the image is.
MINIMAL := $(BUILD)/minimal.elf

$(MINIMAL): FORCE
	@mkdir -p $(BUILD)
	$(GOENV) $(TAMAGO) build $(GOFLAGS_IMAGE) -o $@ ./tools/bench/minimal

# The Linux guest's figures need it embedded, as for test-boot.
bench: deps
	$(MAKE) testkernel guest
	$(MAKE) image $(MINIMAL)
	go run ./tools/bench -build $(BUILD)

clean:
	rm -rf $(BUILD)
	find boot/guestimages -type f ! -name README.md -delete

FORCE:

# ---- Guests ----
#
#   make guest        build/guest/vmlinuz: Debian's unmodified linux-image-6.1
#                     kernel (apt-get download, unpacked with dpkg-deb), and
#                     build/guest/initramfs.cpio: u-root (init, gosh, core
#                     and network commands) at the versions go.mod pins, with
#                     the same package's e1000e module, which init loads at
#                     boot. Both are cached in GUEST_CACHE, keyed by version
#                     and content, so a second run or a run after make clean
#                     downloads and builds nothing.
#   make testkernel   build/testkernel.elf: the Multiboot test guest
#                     (guests/testkernel), with as and ld only.
#   make test-guests  boot both directly under QEMU TCG and check them.
#   make distclean    make clean, and the guest cache too.

GUEST := $(BUILD)/guest
GUEST_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tamavisor
GUESTIMAGE := tools/guestimage/guestimage.sh
# The kernel package: by default the one Debian's linux-image-amd64 depends
# on now (e.g. linux-image-6.1.0-56-amd64); -unsigned variants work too.
GUEST_KERNEL_PKG ?= $(shell $(GUESTIMAGE) kernel-package)

guest: guest-kernel guest-initramfs

guest-kernel:
	$(GUESTIMAGE) kernel "$(GUEST_KERNEL_PKG)" $(GUEST_CACHE) $(GUEST)

# The initramfs carries modules the kernel step takes from the kernel package.
guest-initramfs: guest-kernel
	$(GUESTIMAGE) initramfs $(GUEST_CACHE) $(GUEST) $(BUILD)

TESTKERNEL := $(BUILD)/testkernel.elf

testkernel: $(TESTKERNEL)

$(TESTKERNEL): guests/testkernel/kernel/testkernel.s guests/testkernel/kernel/testkernel.ld
	@mkdir -p $(BUILD)
	as --32 -o $(BUILD)/testkernel.o guests/testkernel/kernel/testkernel.s
	ld -m elf_i386 -T guests/testkernel/kernel/testkernel.ld -z max-page-size=0x1000 \
		-z noexecstack --no-warn-rwx-segments --build-id=none -o $@ $(BUILD)/testkernel.o

test-guests: deps guest testkernel
	TAMAVISOR_BUILD=$(abspath $(BUILD)) go test -count=1 -v -timeout 10m ./guests/images/ ./guests/testkernel/

distclean: clean
	rm -rf $(GUEST_CACHE)
