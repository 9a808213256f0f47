// Package transport is skywire's link layer: authenticated, encrypted,
// reliable byte streams between two visors (transports), one per peer and
// type, carrying packets (packet.go) for the router.
//
// Types (each a Network):
//
//	stcp   TCP to the address in stcp.pk_table; Noise XK
//	stcpr  TCP to the address the address resolver has for the key; Noise XK
//	sudph  UDP hole punching through the address resolver, then one QUIC
//	       stream (quic-go), Noise XK on top
//	dmsg   a dmsg stream to port 45 (already Noise KK end to end)
//
// Flow, once a Network has an authenticated Conn (settle.go):
//
//	dialer   → HELLO  ver ‖ type ‖ time ‖ dialer's signature of the discovery entry
//	acceptor → ANSWER ver ‖ status ‖ acceptor's signature (status: accepted,
//	           simultaneous dial — the lower key's dial wins —, refused, busy)
//
// Then packets flow both ways. Route 0 pings every KeepaliveInterval measure
// the round-trip time; a transport that hears nothing for DeadAfter closes.
// The dialer registers the entry, signed by both edges, in the transport
// discovery, heartbeats it, and withdraws it on close.
package transport

import (
	"context"
	"errors"
	"net"
	"slices"

	"github.com/skyfleet/skywire/cipher"
)

// Type is a transport type.
type Type string

// The transport types.
const (
	STCP  Type = "stcp"
	STCPR Type = "stcpr"
	SUDPH Type = "sudph"
	DMSG  Type = "dmsg"
)

// Types lists the types in order of preference: direct before relayed.
var Types = []Type{STCP, STCPR, SUDPH, DMSG}

// ParseType checks a type name.
func ParseType(s string) (Type, error) {
	t := Type(s)
	if !slices.Contains(Types, t) {
		return "", errors.New("unknown transport type " + s + " (want stcp, stcpr, sudph or dmsg)")
	}
	return t, nil
}

// Conn is an authenticated connection to a known peer.
type Conn interface {
	net.Conn
	// RemotePK is the peer's key, authenticated by the handshake.
	RemotePK() cipher.PubKey
}

// Network makes Conns of one type.
type Network interface {
	Type() Type
	// Dial connects to remote and authenticates it.
	Dial(ctx context.Context, remote cipher.PubKey) (Conn, error)
	// Serve accepts connections, passing each authenticated one to accept,
	// and does the type's background work (address binding), until ctx
	// ends. It releases the Network's sockets before returning.
	Serve(ctx context.Context, accept func(Conn)) error
}

// Errors that say what failed.
var (
	// ErrNoAddress: the dialer knows no address for the key.
	ErrNoAddress = errors.New("no address for this key")
	// ErrRefused: the peer refused the transport.
	ErrRefused = errors.New("transport refused")
	// ErrUnavailable: the type is not configured on this visor.
	ErrUnavailable = errors.New("transport type not available")
	// ErrClosed: the transport or manager is closed.
	ErrClosed = errors.New("transport closed")
)
