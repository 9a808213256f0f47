//go:build unix

package admin

import (
	"fmt"
	"os"
	"syscall"
)

// checkDir refuses a socket directory that another user owns or may write
// (then anyone could replace the socket). Root's and our own are fine.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := uint32(os.Getuid())
	switch {
	case st.Uid != uid && st.Uid != 0:
		return fmt.Errorf("the directory %s is %w (uid %d): remove it, or choose another cli_addr", dir, ErrNotOwned, st.Uid)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("the directory %s may be written by other users (mode %v): chmod it 0700, or choose another cli_addr", dir, fi.Mode().Perm())
	}
	return nil
}

// checkSocket refuses to talk to a socket another user owns: the CLI sends
// nothing (passcodes included) to a process that took the visor's name.
// Our own sockets and root's (a system visor) are fine.
func checkSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s is not a socket", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := uint32(os.Getuid()); st.Uid != uid && st.Uid != 0 {
		return fmt.Errorf("the socket %s is %w (uid %d), not by this user or root: nothing was sent; run the CLI as the visor's user", path, ErrNotOwned, st.Uid)
	}
	return nil
}
