//go:build !unix

package sdk

import (
	"net"
	"syscall"
)

// sendConn: descriptors cannot be passed here.
func sendConn(string, string, net.Conn) error { return ErrJoinUnsupported }

// sendFD: descriptors cannot be passed here.
func sendFD(string, string, syscall.Conn) (net.Conn, error) { return nil, ErrJoinUnsupported }
