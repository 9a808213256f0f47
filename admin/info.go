package admin

import (
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/buildinfo"
)

// GetInfo describes the visor: who it is, which build, since when.
var GetInfo = define(Op[Empty, Info]{Method: "GET", Path: "/v1/info"})

// Halt stops the visor as SIGTERM does: the answer comes first, then the
// visor closes its apps, routes and transports and exits.
var Halt = define(Op[Empty, Empty]{Method: "POST", Path: "/v1/halt"})

// Info is GetInfo's answer.
type Info struct {
	PK            cipher.PubKey  `json:"pk"`
	Version       string         `json:"version"`
	Build         buildinfo.Info `json:"build"`
	StartedAt     time.Time      `json:"started_at"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	ConfigPath    string         `json:"config_path"`
	LocalPath     string         `json:"local_path"`
	CLIAddr       string         `json:"cli_addr"`
	// Listening maps each transport type the visor accepts on to its
	// local address (stcp, stcpr, sudph).
	Listening map[string]string `json:"listening,omitempty"`
	// DmsgServers are the dmsg servers the visor has sessions with.
	DmsgServers []cipher.PubKey `json:"dmsg_servers,omitempty"`
}

// Reload has the visor read its config file again and apply what changed
// (see ReloadResult); a config that is not valid is refused, with the
// reasons, and the running one kept.
var Reload = define(Op[Empty, ReloadResult]{Method: "POST", Path: "/v1/reload"})

// ReloadResult is what a reload did.
type ReloadResult struct {
	// Applied lists each change made, in words.
	Applied []string `json:"applied"`
	// NeedRestart lists the changed fields that take effect only when the
	// visor starts again.
	NeedRestart []string `json:"need_restart"`
}
