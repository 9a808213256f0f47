package admin

import "github.com/skyfleet/skywire/cipher"

// ListRoutes lists the router's rules.
var ListRoutes = define(Op[Empty, []RuleInfo]{Method: "GET", Path: "/v1/routes"})

// RemoveRoute removes a rule (closing its route if it is a route's end).
var RemoveRoute = define(Op[RemoveRouteRequest, Empty]{Method: "POST", Path: "/v1/routes/remove"})

// Ping sets up a route to a visor and measures its round trips.
var Ping = define(Op[PingRequest, PingResult]{Method: "POST", Path: "/v1/ping"})

// Bench sends bytes over a route to a visor and times them.
var Bench = define(Op[BenchRequest, BenchResult]{Method: "POST", Path: "/v1/bench"})

// RuleInfo describes one routing rule.
type RuleInfo struct {
	ID          uint32        `json:"id"`
	Kind        string        `json:"kind"` // forward or consume
	InRemote    cipher.PubKey `json:"in_remote"`
	InType      string        `json:"in_type"`
	OutRemote   cipher.PubKey `json:"out_remote,omitempty"`
	OutID       uint32        `json:"out_id,omitempty"`
	Local       string        `json:"local,omitempty"`
	Remote      string        `json:"remote,omitempty"`
	Pending     bool          `json:"pending"`
	IdleSeconds float64       `json:"idle_seconds"`
}

// RemoveRouteRequest is RemoveRoute's request.
type RemoveRouteRequest struct {
	ID uint32 `json:"id"`
}

// PingRequest is Ping's request.
type PingRequest struct {
	PK      cipher.PubKey `json:"pk"`
	Count   int           `json:"count,omitempty"`    // default 4
	MinHops int           `json:"min_hops,omitempty"` // default: the visor's routing.min_hops
	// Via, when PK is this visor's own key, is the neighbour a route to
	// itself loops through (out and back over one transport).
	Via cipher.PubKey `json:"via,omitzero"`
}

// HopInfo is one hop of a route.
type HopInfo struct {
	PK    cipher.PubKey `json:"pk"`
	Type  string        `json:"type"`
	RTTMS float64       `json:"rtt_ms"` // the hop's transport round trip at setup
}

// PingResult is Ping's answer.
type PingResult struct {
	Hops    []HopInfo `json:"hops"`
	SetupMS float64   `json:"setup_ms"`
	RTTsMS  []float64 `json:"rtts_ms"`
}

// BenchRequest is Bench's request.
type BenchRequest struct {
	PK      cipher.PubKey `json:"pk"`
	Bytes   int64         `json:"bytes,omitempty"`    // default 64 MiB
	MinHops int           `json:"min_hops,omitempty"` // default: the visor's routing.min_hops
}

// BenchResult is Bench's answer.
type BenchResult struct {
	Hops          []HopInfo `json:"hops"`
	Bytes         int64     `json:"bytes"`
	Seconds       float64   `json:"seconds"`
	MegabytesPerS float64   `json:"mb_per_s"`
}
