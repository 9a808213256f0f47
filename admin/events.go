package admin

import "time"

// VisorLog returns the visor's own last log lines.
var VisorLog = define(Op[LogsRequest, []string]{Method: "POST", Path: "/v1/log", Reads: true})

// FollowVisorLog streams the visor's own log: up to Lines of its last lines
// (Name is ignored), then every new one.
var FollowVisorLog = define(Stream[LogsRequest, string]{Method: "POST", Path: "/v1/log/follow"})

// Events streams what changes on the visor: first its whole state (a
// transport-up per transport, an app per app, routes), then every change,
// and each transport's bytes and RTT as they move.
var Events = define(Stream[Empty, Event]{Method: "POST", Path: "/v1/events"})

// Event kinds.
const (
	EventTransportUp   = "transport-up"
	EventTransportDown = "transport-down"
	EventTransport     = "transport" // bytes or RTT moved
	EventApp           = "app"       // an app's state, status or error changed
	EventRoutes        = "routes"    // the number of routing rules changed
)

// Event is one change on a visor.
type Event struct {
	Time      time.Time      `json:"time"`
	Kind      string         `json:"kind"`
	Transport *TransportInfo `json:"transport,omitempty"`
	App       *AppInfo       `json:"app,omitempty"`
	Routes    int            `json:"routes,omitempty"`
}
