//go:build !linux

package transport

import "net"

// sendTTL sends b normally: per-packet TTLs are a Linux feature here, so
// elsewhere the first punches may reach the peer's NAT early (a retry, or
// dmsg, then carries the transport).
func sendTTL(c *net.UDPConn, b []byte, to *net.UDPAddr, _ int) error {
	_, err := c.WriteToUDP(b, to)
	return err
}
