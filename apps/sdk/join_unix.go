//go:build unix

package sdk

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// sendConn passes local's descriptor to the gateway's join socket in one
// message with line, and reads the answer.
func sendConn(addr, line string, local net.Conn) error {
	sc, ok := local.(syscall.Conn)
	if !ok {
		return ErrJoinUnsupported
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return ErrJoinUnsupported
	}
	c, err := net.DialTimeout("unix", addr, dialTimeout)
	if err != nil {
		return fmt.Errorf("join socket: %w", err)
	}
	defer c.Close()
	uc := c.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(dialTimeout))
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = uc.WriteMsgUnix([]byte(line), syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("join: %w", werr)
	}
	answer, err := readLine(uc)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if answer != "OK" {
		return fmt.Errorf("join: %w", errors.New(strings.TrimPrefix(answer, "ERR ")))
	}
	return nil
}
