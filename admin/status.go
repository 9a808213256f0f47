package admin

import (
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// GetStatus is everything `skywire cli status` shows, in one answer: the
// visor, the services it uses (each probed now), its transports, routes,
// apps and hypervisors.
var GetStatus = define(Op[Empty, Status]{Method: "GET", Path: "/v1/status"})

// Status is GetStatus's answer.
type Status struct {
	Info        Info               `json:"info"`
	Services    []ServiceStatus    `json:"services"`
	Transports  []TransportInfo    `json:"transports"`
	Routes      []RuleInfo         `json:"routes"`
	Apps        []AppInfo          `json:"apps"`
	Hypervisors []HypervisorStatus `json:"hypervisors"`
	// Reachability is how the address resolver sees this visor's stcpr and
	// sudph sockets: whether peers can reach them from outside.
	Reachability []Reach `json:"reachability"`
	// PID is the visor's process id.
	PID int `json:"pid"`
}

// Reach is one transport's socket as seen from outside.
type Reach struct {
	Type  string `json:"type"`  // stcpr or sudph
	Local string `json:"local"` // where it listens
	Seen  string `json:"seen"`  // as the address resolver saw it ("": not bound there yet)
	// NAT: "none" (seen at an address this host has), "port-preserving"
	// (another address, the same port: hole punching should work),
	// "port-changing" (another port: a symmetric NAT may defeat sudph), or
	// "" (not known yet).
	NAT string `json:"nat"`
}

// ServiceStatus is one service the visor uses, probed (GET /health).
type ServiceStatus struct {
	Name      string  `json:"name"` // dmsg_discovery, transport_discovery, …
	URL       string  `json:"url"`
	OK        bool    `json:"ok"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
	// ClockOffsetS is the service's clock minus this visor's, from its Date
	// header (1 s resolution): signed requests more than 30 s off are
	// refused.
	ClockOffsetS float64 `json:"clock_offset_s"`
}

// HypervisorStatus is one hypervisor the visor links to.
type HypervisorStatus struct {
	PK        cipher.PubKey `json:"pk"`
	Address   string        `json:"address,omitempty"` // "" over dmsg
	Connected bool          `json:"connected"`
	Since     time.Time     `json:"since,omitzero"` // when the link last went up or down
	LastError string        `json:"last_error,omitempty"`
}
