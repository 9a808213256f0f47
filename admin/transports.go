package admin

import (
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// AddTransport makes (or returns the existing) transport to a visor.
var AddTransport = define(Op[AddTransportRequest, TransportInfo]{Method: "POST", Path: "/v1/transports"})

// ListTransports lists the visor's transports, oldest first.
var ListTransports = define(Op[Empty, []TransportInfo]{Method: "GET", Path: "/v1/transports"})

// RemoveTransport closes a transport, by id or a unique prefix of it. A
// persistent transport stops being one (removed from the config too).
var RemoveTransport = define(Op[RemoveTransportRequest, TransportInfo]{Method: "POST", Path: "/v1/transports/remove"})

// TransportTypes lists the types this visor can make, in order of
// preference.
var TransportTypes = define(Op[Empty, []string]{Method: "GET", Path: "/v1/transport-types"})

// AddTransportRequest is AddTransport's request.
type AddTransportRequest struct {
	PK cipher.PubKey `json:"pk"`
	// Type is stcp, stcpr, sudph or dmsg; "" tries them in that order
	// (direct before relayed).
	Type string `json:"type,omitempty"`
	// TimeoutMS bounds the dial (0: 20 s).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Persistent keeps the transport up: it is saved in the config's
	// transport.persistent and redialled whenever it drops.
	Persistent bool `json:"persistent,omitempty"`
	// Label names the peer (saved in the config's transport.labels; shown
	// with its transports); "" keeps the one it has.
	Label string `json:"label,omitempty"`
}

// RemoveTransportRequest is RemoveTransport's request.
type RemoveTransportRequest struct {
	ID string `json:"id"`
}

// TransportInfo describes a transport.
type TransportInfo struct {
	ID         string        `json:"id"`
	Type       string        `json:"type"`
	RemotePK   cipher.PubKey `json:"remote_pk"`
	Label      string        `json:"label,omitempty"` // the peer's, from transport.labels
	Dialer     bool          `json:"dialer"`          // this visor dialled it
	Persistent bool          `json:"persistent"`
	Sent       uint64        `json:"sent"`     // bytes
	Received   uint64        `json:"received"` // bytes
	RTTMS      float64       `json:"rtt_ms"`   // last measured round trip; 0 before the first
	AgeSeconds float64       `json:"age_seconds"`
	Created    time.Time     `json:"created"` // when it came up (age_seconds ago when read)
}
