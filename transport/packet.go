package transport

import (
	"encoding/binary"
	"fmt"
)

// Packet layout on a transport (after settlement), big-endian:
//
//	0  type      u8
//	1  route id  u32
//	5  length    u16   (of the payload)
//	7  payload
//
// A hop rewrites only the route id. Route id 0 is the transport itself:
// its ping and pong keep it alive and measure the round-trip time.
const (
	HeaderSize = 7
	// MaxPayload keeps a packet within one Noise frame (no split packets).
	MaxPayload = 65519 - HeaderSize
	MaxPacket  = HeaderSize + MaxPayload
)

// PacketType says what a packet carries.
type PacketType uint8

// Packet types. The router gives the route-level ones their meaning.
const (
	PacketData         PacketType = 0
	PacketWindowUpdate PacketType = 1
	PacketSetup        PacketType = 2
	PacketSetupOK      PacketType = 3
	PacketSetupErr     PacketType = 4
	PacketClose        PacketType = 5
	PacketKeepalive    PacketType = 6
	PacketPing         PacketType = 7
	PacketPong         PacketType = 8
	// On route 0 only, between the transport's edges: the dialer asks the
	// acceptor to sign the transport's discovery entry anew (payload: BE64
	// timestamp, unix ms), and the acceptor answers with the timestamp and
	// its signature (BE64 ‖ sig 65). The dialer re-registers the entry with
	// both fresh signatures when the discovery lost it.
	PacketResign   PacketType = 9
	PacketResigned PacketType = 10
	maxPacketType  PacketType = 10
)

var packetTypeNames = [...]string{"data", "window-update", "setup", "setup-ok", "setup-err", "close", "keepalive", "ping", "pong", "resign", "resigned"}

func (t PacketType) String() string {
	if t <= maxPacketType {
		return packetTypeNames[t]
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// Packet is one packet's bytes: header and payload, contiguous.
type Packet []byte

// Type is the packet's type.
func (p Packet) Type() PacketType { return PacketType(p[0]) }

// RouteID is the packet's route id.
func (p Packet) RouteID() uint32 { return binary.BigEndian.Uint32(p[1:5]) }

// SetRouteID rewrites the route id (what a forwarding hop does).
func (p Packet) SetRouteID(id uint32) { binary.BigEndian.PutUint32(p[1:5], id) }

// Payload is the packet's payload.
func (p Packet) Payload() []byte { return p[HeaderSize:] }

// MakePacket writes a header for a payload of n bytes into buf[:7] and
// returns buf[:7+n]; the payload goes (or already is) at buf[7:]. Senders
// keep header room in their buffers so packets are never copied to prepend
// one.
func MakePacket(buf []byte, typ PacketType, routeID uint32, n int) Packet {
	if n > MaxPayload {
		panic(fmt.Sprintf("transport: payload of %d bytes (at most %d)", n, MaxPayload))
	}
	buf[0] = byte(typ)
	binary.BigEndian.PutUint32(buf[1:5], routeID)
	binary.BigEndian.PutUint16(buf[5:7], uint16(n))
	return buf[:HeaderSize+n]
}

// NewPacket allocates a packet holding payload (for control packets; data
// paths use MakePacket on pooled buffers).
func NewPacket(typ PacketType, routeID uint32, payload []byte) Packet {
	buf := make([]byte, HeaderSize+len(payload))
	copy(buf[HeaderSize:], payload)
	return MakePacket(buf, typ, routeID, len(payload))
}

// parsePackets calls fn for each complete packet at the start of b and
// returns how many bytes they took. A packet of an unknown type is an error
// (the stream is not ours).
func parsePackets(b []byte, fn func(Packet)) (int, error) {
	off := 0
	for len(b)-off >= HeaderSize {
		n := int(binary.BigEndian.Uint16(b[off+5:]))
		if PacketType(b[off]) > maxPacketType {
			return off, fmt.Errorf("packet of unknown type %d", b[off])
		}
		if n > MaxPayload {
			return off, fmt.Errorf("packet payload of %d bytes (at most %d)", n, MaxPayload)
		}
		if len(b)-off < HeaderSize+n {
			break
		}
		fn(Packet(b[off : off+HeaderSize+n]))
		off += HeaderSize + n
	}
	return off, nil
}
