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
	c, err := sendFD(addr, line, sc)
	if err != nil {
		return err
	}
	return c.Close()
}

// sendFD passes d's descriptor to the gateway's join socket in one message
// with line, reads the answer and returns the join socket.
func sendFD(addr, line string, d syscall.Conn) (_ net.Conn, err error) {
	raw, err := d.SyscallConn()
	if err != nil {
		return nil, ErrJoinUnsupported
	}
	c, err := net.DialTimeout("unix", addr, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("join socket: %w", err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	uc := c.(*net.UnixConn)
	uc.SetDeadline(time.Now().Add(dialTimeout))
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = uc.WriteMsgUnix([]byte(line), syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if werr != nil {
		return nil, fmt.Errorf("join: %w", werr)
	}
	answer, err := readLine(uc)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if answer != "OK" {
		return nil, fmt.Errorf("join: %w", errors.New(strings.TrimPrefix(answer, "ERR ")))
	}
	uc.SetDeadline(time.Time{})
	return uc, nil
}
