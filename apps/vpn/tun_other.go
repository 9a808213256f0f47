//go:build !linux

package vpn

import (
	"fmt"
	"runtime"
	"syscall"
)

// canOffload: segmentation offload is Linux's.
const canOffload = false

// openTUN is not built for this system yet (docs/roadmap.md): macOS
// (water's utun) and Windows (wintun) come with their host set-up.
func openTUN(string, bool) (tun, error) {
	return nil, fmt.Errorf("vpn: the tunnel is not built for %s yet (Linux only in this build)", runtime.GOOS)
}

// devConn: only Linux's visor takes a TUN over.
func devConn(tun) (syscall.Conn, bool) { return nil, false }
