//go:build !unix

package sdk

import "net"

// sendConn: descriptors cannot be passed here.
func sendConn(string, string, net.Conn) error { return ErrJoinUnsupported }
