package admin

import (
	"strings"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// ListApps lists the visor's apps.
var ListApps = define(Op[Empty, []AppInfo]{Method: "GET", Path: "/v1/apps"})

// StartApp starts an app.
var StartApp = define(Op[AppRequest, AppInfo]{Method: "POST", Path: "/v1/apps/start"})

// StopApp stops an app.
var StopApp = define(Op[AppRequest, AppInfo]{Method: "POST", Path: "/v1/apps/stop"})

// SetAutoStart sets whether an app starts with the visor (saved in the
// config file).
var SetAutoStart = define(Op[AutoStartRequest, AppInfo]{Method: "POST", Path: "/v1/apps/autostart"})

// AppLogs returns an app's last output lines.
var AppLogs = define(Op[LogsRequest, []string]{Method: "POST", Path: "/v1/apps/logs", Reads: true})

// StartProxy points skysocks-client at a skysocks server (saved in the
// config file) and (re)starts it.
var StartProxy = define(Op[ProxyRequest, AppInfo]{Method: "POST", Path: "/v1/proxy/start"})

// SetPasscode sets the passcode a skysocks server requires of its clients
// (saved in the config file; "" removes it) and restarts the app if it
// runs. skysocks-client's passcode is set with StartProxy.
var SetPasscode = define(Op[PasscodeRequest, AppInfo]{Method: "POST", Path: "/v1/apps/passcode"})

// PasscodeRequest is SetPasscode's request.
type PasscodeRequest struct {
	Name     string `json:"name"`
	Passcode string `json:"passcode"`
}

// AttachApp registers a process this visor did not start (an app run by
// hand, such as `vpn-client` on a router) as its running app Name: the
// answer is the environment and working directory it runs with.
var AttachApp = define(Op[AttachRequest, AttachReply]{Method: "POST", Path: "/v1/apps/attach"})

// AttachRequest is AttachApp's request.
type AttachRequest struct {
	Name string `json:"name"`
	PID  int    `json:"pid"` // the process, signalled to stop it
}

// AttachReply is AttachApp's answer.
type AttachReply struct {
	Env map[string]string `json:"env"`
	Dir string            `json:"dir"`
}

// AppInfo describes an app.
type AppInfo struct {
	Name      string    `json:"name"`
	Port      uint16    `json:"port"`
	AutoStart bool      `json:"auto_start"`
	Args      []string  `json:"args"`
	State     string    `json:"state"` // stopped, running or errored
	PID       int       `json:"pid,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Error     string    `json:"error,omitempty"`
	Status    string    `json:"status,omitempty"` // the running app's own words
}

// ArgValue is flag's value in an app's args ("--flag value" or
// "--flag=value"; "" if absent).
func ArgValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// AppRequest names an app.
type AppRequest struct {
	Name string `json:"name"`
}

// AutoStartRequest is SetAutoStart's request.
type AutoStartRequest struct {
	Name string `json:"name"`
	On   bool   `json:"on"`
}

// LogsRequest is AppLogs's request.
type LogsRequest struct {
	Name  string `json:"name"`
	Lines int    `json:"lines,omitempty"` // default 100
}

// ProxyRequest is StartProxy's request.
type ProxyRequest struct {
	Server   cipher.PubKey `json:"server"`
	Passcode string        `json:"passcode,omitempty"` // the server's, if it has one
	Addr     string        `json:"addr,omitempty"`     // the local SOCKS5 address (default: as configured)
	HTTP     string        `json:"http,omitempty"`     // also an HTTP proxy on this address ("off": none; default: as configured)
}

// FollowAppLogs streams an app's output: up to Lines of its last lines,
// then every new one (across restarts of the app).
var FollowAppLogs = define(Stream[LogsRequest, string]{Method: "POST", Path: "/v1/apps/logs/follow"})
