package appserver

import (
	"os"
	"syscall"
)

// childAttrs: an app is killed if the visor dies (even by SIGKILL), and is
// in its own process group (a terminal's Ctrl-C reaches only the visor,
// which then stops the apps in order).
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }
