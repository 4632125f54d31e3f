//go:build tools

// This file is never built. It pins, through go.mod and go.sum, the u-root
// program and the commands tools/guestimage puts in the guest initramfs, so
// that `make guest` builds them at the versions recorded here, from the Go
// module proxy, and `go mod tidy` keeps their requirements.
//
// The u-root list must match GUEST_COMMANDS in tools/guestimage/guestimage.sh.
//
// golang.org/x/arch is here for another reason: u-root requires v0.2.0, and
// until a package of this module imports x/arch, `go mod tidy` would drop
// this module's requirement of v0.32.0 and silently fall back to u-root's.
// Remove that line once the hypervisor's instruction decoder imports it.

package images

import (
	_ "github.com/u-root/u-root"
	_ "github.com/u-root/u-root/cmds/core/cat"
	_ "github.com/u-root/u-root/cmds/core/dhclient"
	_ "github.com/u-root/u-root/cmds/core/dmesg"
	_ "github.com/u-root/u-root/cmds/core/echo"
	_ "github.com/u-root/u-root/cmds/core/gosh"
	_ "github.com/u-root/u-root/cmds/core/init"
	_ "github.com/u-root/u-root/cmds/core/ip"
	_ "github.com/u-root/u-root/cmds/core/ls"
	_ "github.com/u-root/u-root/cmds/core/mount"
	_ "github.com/u-root/u-root/cmds/core/ping"
	_ "github.com/u-root/u-root/cmds/core/poweroff"
	_ "github.com/u-root/u-root/cmds/core/shutdown"
	_ "github.com/u-root/u-root/cmds/core/uname"
	_ "github.com/u-root/u-root/cmds/core/wget"
	_ "golang.org/x/arch/x86/x86asm"
)
