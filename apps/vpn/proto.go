// Package vpn is vpn-server and vpn-client: IP packets between a TUN device
// on each end, carried on one route connection (docs/protocol.md, "VPN").
//
// The connection begins with a handshake — the client's Hello, the
// server's Welcome, each a frame of JSON — then carries frames:
//
//	u32 length (big endian) | u8 kind | body (length-1 bytes)
//
// kind 0 is an IP packet, 1 a probe and 2 its answer (the body echoed): the
// client's liveness and latency measure, which needs no address inside the
// tunnel.
package vpn

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"

	"github.com/skyfleet/skywire/internal/packets"
)

// Frame kinds (internal/packets carries them; 0xfe and 0xff are its own).
const (
	KindPacket      = packets.KindPacket
	KindProbe  byte = 1
	KindAnswer byte = 2
	KindHello  byte = 3 // the handshake's JSON
)

// Ports of the apps, as in Skywire.
const (
	ServerPort = 44
	ClientPort = 43
)

// MaxFrame bounds a frame's body: an IP packet of up to 64 KiB (a
// segmentation-offload packet) and its virtio-net header.
const MaxFrame = packets.MaxBody

// MTU is the tunnel's: large, so that TCP inside it moves in large segments
// and per-packet costs stay small. Traffic beyond the server is clamped to
// its interfaces' path MTU (TCP MSS clamping).
const MTU = 16384

// Hello is the client's first frame.
type Hello struct {
	Version  int    `json:"version"`
	Passcode string `json:"passcode,omitempty"`
	// InUse are the prefixes the client's host already routes: the tunnel's
	// subnet must not overlap any of them.
	InUse []netip.Prefix `json:"in_use"`
	// Offload says the client carries packets with their virtio-net
	// header (Linux TUN segmentation offload): 64 KiB segments cross the
	// tunnel whole and the far kernel cuts them.
	Offload bool `json:"offload,omitempty"`
	// Previous is the tunnel address of the client's last session (when it
	// reconnects): the server gives it again if it is free, so that
	// connections inside the tunnel survive a reconnection.
	Previous netip.Prefix `json:"previous,omitzero"`
}

// Welcome statuses.
const (
	StatusOK         = "ok"
	StatusForbidden  = "forbidden"   // wrong passcode
	StatusNoSubnets  = "no_subnets"  // none free
	StatusBadRequest = "bad_request" // a malformed hello
	StatusInternal   = "internal"
)

// Welcome is the server's answer.
type Welcome struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Client and Server are the tunnel's two addresses (a /30 between them).
	Client netip.Prefix `json:"client,omitzero"`
	Server netip.Addr   `json:"server,omitzero"`
	MTU    int          `json:"mtu,omitempty"`
	// Offload: both ends carry virtio-net headers (the client offered it
	// and the server can).
	Offload bool `json:"offload,omitempty"`
}

// ProtocolVersion is Hello.Version.
const ProtocolVersion = 1

// writeJSON writes v as a hello frame.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return packets.WriteFrame(w, KindHello, b)
}

// readJSON reads a hello frame into v, and nothing past it: the connection
// may be handed to the visor next.
func readJSON(r io.Reader, v any) error {
	buf := make([]byte, MaxFrame)
	kind, body, err := packets.ReadFrame(r, buf)
	if err != nil {
		return err
	}
	if kind != KindHello {
		return fmt.Errorf("vpn: expected the handshake, got a frame of kind %d", kind)
	}
	return json.Unmarshal(body, v)
}
