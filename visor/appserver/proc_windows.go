package appserver

import (
	"os"
	"syscall"
)

func childAttrs() *syscall.SysProcAttr { return nil }

// terminate kills: Windows has no SIGTERM for another process.
func terminate(p *os.Process) { p.Kill() }
