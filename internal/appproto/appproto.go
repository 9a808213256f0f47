// Package appproto defines the protocol between a visor and its apps (the
// SDK in apps/sdk speaks it for Go apps; docs/apps.md documents it for any
// language).
//
// The visor starts an app with, in its environment:
//
//	APP_KEY          a random key for this run (the app's identity to the gateway)
//	APP_SERVER_ADDR  the gateway's TCP address ("127.0.0.1:5505")
//	VISOR_PK         the visor's public key
//	APP_PORT         the app's configured port (the only one it may listen on)
//	APP_JOIN_ADDR    optional (Linux): "unix:<name>", the join socket (below);
//	                 a name starting with "@" is in the abstract namespace
//
// A TCP connection to the gateway is one of:
//
//  1. Control: JSON-RPC 1.0 (what Go's net/rpc/jsonrpc speaks). Requests
//     {"method": "<APP_KEY>.<Method>", "params": [<args object>], "id": n},
//     answers {"id": n, "result": <reply object>, "error": null or "message"}.
//     A method with another app's key, or a revoked one, is not found.
//  2. Data: the first line is "SWDATA/1 <APP_KEY> <conn id>\n"; the gateway
//     answers "OK\n" (or "ERR <message>\n" and closes), then the socket
//     carries the connection's bytes both ways. An end of stream passes on
//     as a half-close: the app shutting down its writing makes the far end
//     read EOF (and it may still answer), the far end's makes the gateway
//     shut down the socket's writing (the app reads EOF). An error on either
//     side closes both. A connection with a data socket refuses Read and
//     Write calls.
//  3. Join (on APP_JOIN_ADDR only): one message carrying the line
//     "SWJOIN/1 <APP_KEY> <conn id>\n" and, as SCM_RIGHTS, one connected
//     stream socket. The gateway answers "OK\n" (or "ERR <message>\n") and
//     from then on relays that socket ↔ the connection itself, half-closes
//     and errors passed on as on a data socket; the app closes its copy. A
//     proxy uses it after its handshake so that no byte crosses the app. The
//     connection must have no data socket; until it is joined its bytes go
//     through Read and Write calls.
//  4. Packet join (on APP_JOIN_ADDR only): as a join, with the line
//     "SWPACKETS/1 <APP_KEY> <conn id>\n" and a packet device instead of a
//     socket: a TUN, or a datagram socket (one read, one packet). After
//     "OK\n" the gateway relays the device ↔ the connection, every packet
//     a frame "u32 length (big endian, kind and body) | u8 kind 0 | body",
//     and the join socket stays open as the control channel, carrying
//     frames of the same shape: any frame of another kind the route
//     brings goes to the app, any the app writes goes onto the route, but
//     for kind 0xfe (an empty one asks for the counters; the answer holds
//     u64 bytes device → route, u64 route → device) and 0xff (the
//     gateway's last frame: why the relay ended, empty if the route ended
//     cleanly). The relay ends when the route fails or ends, the device
//     fails, the app closes the control channel, or the app stops. A VPN
//     hands over its TUN after its handshake so that no packet crosses
//     the app.
//
// Methods (args → reply):
//
//	Dial          {"pk", "port"}                       → {"conn", "local", "remote"}
//	Listen        {"port"}                             → {"listener"}
//	Accept        {"listener"}                         → {"conn", "local", "remote"}  (waits)
//	Read          {"conn", "n"}                        → {"data": base64, "eof", "timeout"} (waits)
//	Write         {"conn", "data": base64}             → {"n", "timeout"}
//	CloseWrite    {"conn"}                             → {}  (half-close: the far end reads EOF)
//	CloseConn     {"conn"}                             → {}
//	CloseListener {"listener"}                         → {}
//	SetDeadline   {"conn", "kind": read|write|both, "deadline": RFC 3339 or zero time} → {}
//	SetStatus     {"status"}                           → {}  (a line the visor shows with the app)
//	Bypass        {}                                   → {"addrs": ["192.0.2.7", …]} (the IP addresses the
//	              visor itself talks to: transport peers, dmsg servers, services; a VPN keeps them outside)
//	Advertise     {"type": vpn|proxy, "country", "label"} → {}  (the visor lists the app's port in the service
//	              discovery, signed with its key and registered again while the app runs; gone when it stops)
//
// Addresses are "pk:port" (66 hex characters, a colon, a decimal port).
package appproto

import "time"

// Environment variables.
const (
	EnvKey    = "APP_KEY"
	EnvServer = "APP_SERVER_ADDR"
	EnvVisor  = "VISOR_PK"
	EnvPort   = "APP_PORT"
	EnvJoin   = "APP_JOIN_ADDR"
)

// DataPrefix starts a data socket's first line; JoinPrefix a join
// message's, PacketJoinPrefix a packet join's.
const (
	DataPrefix       = "SWDATA/1"
	JoinPrefix       = "SWJOIN/1"
	PacketJoinPrefix = "SWPACKETS/1"
)

// MaxRead bounds one Read call's n.
const MaxRead = 1 << 20

// MaxRequest bounds one request on a control connection (its JSON text;
// a Write's data is base64 in it): the gateway closes a connection whose
// request passes it.
const MaxRequest = 4 << 20

// vpn-client's files in its working directory: the record of its host
// changes (restored by `vpn-client --restore`, which the visor runs after a
// killed client) and its report, read for `cli vpn status`.
const (
	VPNClientState  = "vpn-client-state.json"
	VPNClientStatus = "vpn-client-status.json"
)

// MaxStatus bounds a status line (a longer one is refused).
const MaxStatus = 512

type (
	// DialArgs: connect to the app at pk:port.
	DialArgs struct {
		PK   string `json:"pk"`
		Port uint16 `json:"port"`
	}
	// ConnReply names a new connection (Dial, Accept).
	ConnReply struct {
		Conn   uint32 `json:"conn"`
		Local  string `json:"local"`
		Remote string `json:"remote"`
	}
	// ListenArgs: accept connections to port.
	ListenArgs struct {
		Port uint16 `json:"port"`
	}
	// ListenReply names the listener.
	ListenReply struct {
		Listener uint32 `json:"listener"`
	}
	// AcceptArgs: wait for the listener's next connection.
	AcceptArgs struct {
		Listener uint32 `json:"listener"`
	}
	// ReadArgs: read up to n bytes of conn.
	ReadArgs struct {
		Conn uint32 `json:"conn"`
		N    int    `json:"n"`
	}
	// ReadReply carries the bytes read; EOF once the far end closed.
	// Timeout: the read deadline passed first (no data; not an error
	// answer, so that it is told apart by a field, not by a message).
	ReadReply struct {
		Data    []byte `json:"data"`
		EOF     bool   `json:"eof"`
		Timeout bool   `json:"timeout,omitempty"`
	}
	// WriteArgs: write data to conn.
	WriteArgs struct {
		Conn uint32 `json:"conn"`
		Data []byte `json:"data"`
	}
	// WriteReply says how much was written.
	// Timeout: the write deadline passed after N bytes.
	WriteReply struct {
		N       int  `json:"n"`
		Timeout bool `json:"timeout,omitempty"`
	}
	// CloseArgs names a connection or a listener.
	CloseArgs struct {
		Conn     uint32 `json:"conn,omitempty"`
		Listener uint32 `json:"listener,omitempty"`
	}
	// DeadlineArgs sets a connection's deadline (zero time: none).
	DeadlineArgs struct {
		Conn     uint32    `json:"conn"`
		Kind     string    `json:"kind"`
		Deadline time.Time `json:"deadline"`
	}
	// StatusArgs: the app's state in words, shown by `app ls`.
	StatusArgs struct {
		Status string `json:"status"`
	}
	// BypassReply: the addresses the visor's own traffic goes to.
	BypassReply struct {
		Addrs []string `json:"addrs"`
	}
	// AdvertiseArgs: the visor advertises the app's port in the service
	// discovery as a server of Type ("vpn" or "proxy") while the app runs.
	AdvertiseArgs struct {
		Type    string `json:"type"`
		Country string `json:"country,omitempty"`
		Label   string `json:"label,omitempty"`
	}
	// Empty is an empty reply.
	Empty struct{}
)

// Builtin is one of the apps the skywire executable itself provides.
type Builtin struct {
	Name      string
	Port      uint16 // its reserved app port
	AutoStart bool   // in the default config
	// Addr is the local address it serves on by default (its --addr), ""
	// if it serves none.
	Addr    string
	Summary string
}

// Builtins is the one table of the built-in apps: the CLI's roles, the app
// launcher and the default config all read it.
var Builtins = []Builtin{
	{Name: "skychat", Port: 1, AutoStart: true, Addr: "127.0.0.1:8001", Summary: "chat with a web UI"},
	{Name: "skysocks", Port: 3, AutoStart: true, Summary: "SOCKS5 proxy server reached over the network"},
	{Name: "skysocks-client", Port: 13, Addr: "127.0.0.1:1080", Summary: "local SOCKS5 proxy through a skysocks server"},
	{Name: "vpn-server", Port: 44, Summary: "VPN exit over the network"},
	{Name: "vpn-client", Port: 43, Summary: "full-tunnel VPN client"},
}

// LookupBuiltin returns the built-in app called name.
func LookupBuiltin(name string) (Builtin, bool) {
	for _, b := range Builtins {
		if b.Name == name {
			return b, true
		}
	}
	return Builtin{}, false
}
