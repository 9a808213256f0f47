package transport

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendTTL sends b to to with the IP time-to-live set to ttl for this packet
// only (an IP_TTL control message), leaving the socket's other traffic as
// it is.
func sendTTL(c *net.UDPConn, b []byte, to *net.UDPAddr, ttl int) error {
	level, typ := unix.IPPROTO_IP, unix.IP_TTL
	if to.IP.To4() == nil {
		level, typ = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
	}
	oob := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = int32(level), int32(typ)
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(ttl))
	_, _, err := c.WriteMsgUDP(b, oob, to)
	return err
}
