package admin

import (
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// StartVPN points vpn-client at a vpn-server (saved in the config) and
// (re)starts it.
var StartVPN = define(Op[VPNRequest, VPNStatus]{Method: "POST", Path: "/v1/vpn/start"})

// StopVPN stops vpn-client and restores whatever a killed one left on the
// host (routes, firewall, DNS).
var StopVPN = define(Op[Empty, VPNStatus]{Method: "POST", Path: "/v1/vpn/stop"})

// GetVPN is vpn-client's state.
var GetVPN = define(Op[Empty, VPNStatus]{Method: "GET", Path: "/v1/vpn"})

// VPNRequest is StartVPN's request.
type VPNRequest struct {
	Server     cipher.PubKey `json:"server"`
	Passcode   string        `json:"passcode,omitempty"`
	Killswitch bool          `json:"killswitch,omitempty"`
	DNS        []string      `json:"dns,omitempty"`
}

// VPNStatus is vpn-client's state: the app, and what it last reported.
type VPNStatus struct {
	App AppInfo `json:"app"`
	VPNReport
	// Restored is set by StopVPN when it undid what a killed client left.
	Restored bool `json:"restored,omitempty"`
}

// VPNReport is what vpn-client reports of its tunnel (its status file).
type VPNReport struct {
	Server     string    `json:"server,omitempty"`
	Connected  bool      `json:"connected"`
	Address    string    `json:"address,omitempty"` // the tunnel address
	Since      time.Time `json:"since,omitzero"`
	Up         uint64    `json:"up"`   // bytes into the tunnel
	Down       uint64    `json:"down"` // bytes out of it
	UpRate     float64   `json:"up_rate"`
	DownRate   float64   `json:"down_rate"` // bytes/s over the last probe interval
	LatencyMS  float64   `json:"latency_ms"`
	Killswitch bool      `json:"killswitch"`
	LastError  string    `json:"last_error,omitempty"`
	Updated    time.Time `json:"updated,omitzero"`
}

// ListServices asks the service discovery for the servers of a type:
// vpn-servers ("vpn") or skysocks servers ("proxy"), every entry verified.
var ListServices = define(Op[ServicesRequest, []ServiceInfo]{Method: "POST", Path: "/v1/services", Reads: true})

// ServicesRequest is ListServices' request.
type ServicesRequest struct {
	Type    string `json:"type"`              // vpn or proxy
	Country string `json:"country,omitempty"` // ISO 3166-1 alpha-2, or every country
	// Ping measures this visor's round trip to each over a route (a few at
	// once; those it cannot reach get PingError).
	Ping bool `json:"ping,omitempty"`
}

// ServiceInfo is one advertised server.
type ServiceInfo struct {
	Type     string        `json:"type"`
	PK       cipher.PubKey `json:"pk"`
	Port     uint16        `json:"port"`
	Version  string        `json:"version"`
	Country  string        `json:"country,omitempty"`
	Label    string        `json:"label,omitempty"`
	LastSeen time.Time     `json:"last_seen"` // when its visor last registered it
	// With Ping: the round trip over a route in ms, or why there is none.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	PingError string  `json:"ping_error,omitempty"`
}
