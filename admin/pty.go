package admin

import "github.com/skyfleet/skywire/cipher"

// The remote shell (package dmsgpty, docs/protocol.md "Remote shell").

// OpenPTY turns the connection into a remote shell stream (the dmsgpty
// protocol): on this visor when PK is empty or its own key, else on visor
// PK, reached over dmsg port 22 with this visor's key (so PK must list this
// visor's key in its dmsgpty.whitelist).
var OpenPTY = Upgrade[PTYRequest]{Method: "POST", Path: "/v1/pty", Protocol: "skywire-pty/1"}

// PTYRequest is OpenPTY's request.
type PTYRequest struct {
	PK cipher.PubKey `json:"pk"`
	// Origin is who the caller acts for, for the visor's log (a hypervisor
	// names its user's session and address).
	Origin string `json:"origin,omitempty"`
}

// PTYWhitelist lists the keys that may open a shell on this visor over
// dmsg (dmsgpty.whitelist), and whether its hypervisors may too.
var PTYWhitelist = define(Op[Empty, PTYAccess]{Method: "GET", Path: "/v1/pty/whitelist"})

// PTYWhitelistAdd adds keys to dmsgpty.whitelist (saved in the config).
var PTYWhitelistAdd = define(Op[PTYKeys, PTYAccess]{Method: "POST", Path: "/v1/pty/whitelist/add"})

// PTYWhitelistRemove removes keys from dmsgpty.whitelist (saved in the
// config).
var PTYWhitelistRemove = define(Op[PTYKeys, PTYAccess]{Method: "POST", Path: "/v1/pty/whitelist/remove"})

// PTYKeys is the request of PTYWhitelistAdd and PTYWhitelistRemove.
type PTYKeys struct {
	Keys []cipher.PubKey `json:"keys"`
}

// PTYAccess is who may open a shell on the visor.
type PTYAccess struct {
	Whitelist   []cipher.PubKey `json:"whitelist"`
	Hypervisors bool            `json:"hypervisors"` // its hypervisors may (dmsgpty.hypervisors)
	Supported   bool            `json:"supported"`   // false on Windows: nobody may
	Sessions    int             `json:"sessions"`    // running now
}
