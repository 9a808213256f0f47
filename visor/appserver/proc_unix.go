//go:build unix && !linux

package appserver

import (
	"os"
	"syscall"
)

// childAttrs puts an app in its own process group. (Only Linux can tie a
// child's life to its parent's; elsewhere the visor stops its apps when it
// exits normally.)
func childAttrs() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }
